/* SPDX-License-Identifier: Apache-2.0 */
/*
 * meshroll-demo — the whole ztunnel upgrade on a simulated cluster with
 * real sockets, with meshroll and then in place, side by side
 * (docs/demo.md).
 *
 * This driver composes the real binaries: the simulator runs in this
 * process (it owns the data plane, whose node proxies the agents must see
 * in /proc), while meshroll-agent (one per node) and `meshroll run` are
 * child processes, exactly what an operator runs on a cluster. The
 * production binaries never link the simulator; `meshroll demo` execs
 * this program.
 *
 * main() only runs run(); the steps live in runs.c, the report in report.c.
 */
#include <limits.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "meshroll/log.h"
#include "meshroll/time-util.h"
#include "options.h"
#include "procs.h"
#include "report.h"
#include "runs.h"
#include "scenario.h"
#include "signals.h"
#include "traffic-run.h"

/* Each client connection costs six descriptors (docs/dataplane.md); the API server and agents need more. */
static int raise_nofile(unsigned connections)
{
        struct rlimit rl;
        rlim_t need = (rlim_t)connections * 6 * 2 + 1024;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return log_error_errno(-errno, "Cannot read RLIMIT_NOFILE: %m");
        if (rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        return log_error_errno(-errno, "Cannot raise RLIMIT_NOFILE to %llu: %m",
                                               (unsigned long long)rl.rlim_max);
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
                return log_error_errno(-MR_ECONFIG,
                                       "%u connections need about %llu file descriptors, the limit is %llu: "
                                       "lower --connections or raise `ulimit -Hn`.",
                                       connections, (unsigned long long)need,
                                       (unsigned long long)rl.rlim_cur);
        return 0;
}

static void remove_dir(const char *dir)
{
        char path[512];
        static const char *const files[] = {"rollout.yaml", "traffic-rollout.yaml"};
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
                (void)unlink(path);
        }
        (void)rmdir(dir);
}

static int run(int argc, char **argv)
{
        _cleanup_free_ char *agent = NULL, *meshroll = NULL, *scenario = NULL;
        DemoOptions o;
        DemoRun mr = {}, ip = {};
        char dir[PATH_MAX];
        bool have_dir = false, traffic_ok = false;
        DemoPaths paths = {.dir = dir};
        int r;

        log_open(LOG_TARGET_STDERR);
        r = demo_options_parse(argc, argv, &o);
        if (r != 0) {
                demo_options_done(&o);
                return r > 0 ? 0 : 2;
        }
        if (o.verbose)
                log_set_max_level(LOG_INFO);
        else
                log_set_max_level(LOG_WARNING);
        if ((r = demo_signals_init()) < 0) {
                log_error_errno(r, "Cannot set up signal handling: %m");
                demo_options_done(&o);
                return 1;
        }
        usec_t deadline = mr_now_monotonic(NULL) + o.timeout;

        if ((r = raise_nofile(o.connections)) < 0)
                goto finish;
        if ((r = demo_find_binary("meshroll-agent", "agent", &agent)) < 0) {
                log_error_errno(r, "Cannot find meshroll-agent next to this program or in $PATH.");
                goto finish;
        }
        if ((r = demo_find_binary("meshroll", "coordinator", &meshroll)) < 0) {
                log_error_errno(r, "Cannot find meshroll next to this program or in $PATH.");
                goto finish;
        }
        const char *tmpdir = getenv("TMPDIR");
        snprintf(dir, sizeof(dir), "%s/meshroll-demo-XXXXXX", isempty(tmpdir) ? "/tmp" : tmpdir);
        if (!mkdtemp(dir)) {
                r = log_error_errno(-errno, "Cannot create a temporary directory: %m");
                goto finish;
        }
        have_dir = true;
        paths.agent = agent;
        paths.meshroll = meshroll;
        paths.manifests = o.manifests;
        if (o.traffic) {
                DemoTrafficRun t;
                r = demo_traffic_run(&o, &paths, deadline, &t);
                if (r == -ECANCELED)
                        goto finish;
                demo_traffic_report(stdout, &o, &t);
                if (o.report_json) {
                        int k = demo_traffic_report_json(o.report_json, &o, &t);
                        if (k < 0)
                                log_error_errno(k, "Cannot write %s: %m", o.report_json);
                }
                traffic_ok = r >= 0 && demo_traffic_ok(&o, &t);
                goto finish;
        }
        if (!o.scenario && (r = demo_scenario_build(&o, "OnDelete", &scenario)) < 0) {
                log_error_errno(r, "Cannot build the scenario: %m");
                goto finish;
        }

        r = demo_run_meshroll(&o, scenario, &paths, deadline, &mr);
        if (r >= 0 && !o.skip_inplace && !o.never_ready && !mr.timed_out) {
                free(scenario);
                scenario = NULL;
                if (!o.scenario && (r = demo_scenario_build(&o, "RollingUpdate", &scenario)) < 0)
                        log_error_errno(r, "Cannot build the scenario: %m");
                else
                        r = demo_run_inplace(&o, scenario, deadline, &ip);
        }
        if (r == -ECANCELED)
                goto finish;
        demo_report_print(stdout, &o, &mr, &ip);
        if (o.report_json) {
                int k = demo_report_write_json(o.report_json, &o, &mr, &ip);
                if (k < 0)
                        log_error_errno(k, "Cannot write %s: %m", o.report_json);
        }
        if (o.never_ready && mr.rolled_back)
                printf(
                    "meshroll rolled the canary group back to the previous ztunnel and paused the rollout "
                    "(reason RolledBack); no other group was touched.\n");

finish:
        if (have_dir)
                remove_dir(dir);
        demo_signals_done();
        bool ok = o.traffic ? traffic_ok : r >= 0 && demo_report_ok(&o, &mr);
        demo_run_done(&mr);
        demo_run_done(&ip);
        if (r == -ECANCELED || demo_signal_received()) {
                fprintf(stderr,
                        "meshroll-demo: interrupted; every process and socket it started is gone.\n");
                demo_options_done(&o);
                return 130;
        }
        int code = r == -MR_ECONFIG ? 2 : ok ? 0 : 1;
        demo_options_done(&o);
        return code;
}

int main(int argc, char **argv)
{
        return run(argc, argv);
}
