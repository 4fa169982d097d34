/* SPDX-License-Identifier: Apache-2.0 */
/*
 * meshroll-agent against the simulator, in one process: the agent runs on
 * this test's sd-event loop with a recorded /proc tree, the simulator serves
 * the API. The Lease contents, the idle and active cadences (counted in the
 * simulator's audit log) and the recovery from dropped watches are checked.
 * Every wait is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

#include "meshroll/fileio.h"
#include "meshroll/json-util.h"
#include "meshroll/kube.h"
#include "agent.h"
#include "sim.h"

static const char scenario[] = "name: agent-test\n"
                               "nodes:\n"
                               "  - {name: \"worker-{i}\", count: 2, pool: a, zone: zone-a}\n"
                               "namespaces:\n"
                               "  - {name: meshroll}\n";

#define HDR4 "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
#define ESTAB(sl, inode)                                                                                            \
        "   " sl ": 0100007F:3A99 0A000005:9C4" sl " 01 00000000:00000000 00:00000000 00000000  1337        0 " inode \
        " 1 0000000000000000 20 4 30 10 -1\n"

typedef struct Fixture {
        char root[128];
        char audit[160];
        Sim *sim;
        sd_event *event;
        KubeClient *client;
        Agent *agent;
} Fixture;

static void put_file(const char *root, const char *rel, const char *content)
{
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", root, rel);
        for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
                *p = 0;
                (void)mkdir(path, 0755);
                *p = '/';
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
        close(fd);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static int setup(void **state)
{
        Fixture *f = calloc(1, sizeof(*f));
        MrError err = {};

        snprintf(f->root, sizeof(f->root), "/tmp/meshroll-agent-sim-XXXXXX");
        assert_non_null(mkdtemp(f->root));
        snprintf(f->audit, sizeof(f->audit), "%s/audit.jsonl", f->root);
        /* host: one connection; a pod: two */
        put_file(f->root, "proc/1/cgroup", "0::/init.scope\n");
        put_file(f->root, "proc/1/net/tcp", HDR4 ESTAB("1", "9001"));
        put_file(f->root, "proc/1/net/tcp6", HDR4);
        put_file(f->root, "proc/200/cgroup", "0::/kubepods/pod22222222-0000-4000-8000-000000000002/x\n");
        put_file(f->root, "proc/200/net/tcp", HDR4 ESTAB("2", "2001") ESTAB("3", "2002"));

        SimOptions so = { .scenario_data = scenario, .scenario_size = strlen(scenario), .audit_path = f->audit };
        if (sim_start(&so, &f->sim, &err) < 0)
                fail_msg("sim_start: %s", err.message);

        KubeConfigOptions ko = { .server = sim_url(f->sim) };
        _cleanup_(kube_config_freep) KubeConfig *config = NULL;
        assert_int_equal(kube_config_load(&ko, &config, &err), 0);
        KubeClientOptions co = { .qps = -1 };
        assert_int_equal(kube_client_new(config, &co, &f->client, &err), 0);
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(kube_client_attach_event(f->client, f->event), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        Fixture *f = *state;
        agent_free(f->agent);
        kube_client_free(f->client);
        sd_event_unref(f->event);
        sim_stop(f->sim);
        (void)nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(f);
        return 0;
}

/* Runs the loop for about d (real time). */
static void run_for(Fixture *f, usec_t d)
{
        usec_t end = mr_now_monotonic(NULL) + d;
        for (usec_t now; (now = mr_now_monotonic(NULL)) < end;)
                assert_true(sd_event_run(f->event, end - now) >= 0);
}

static json_object *lease_copy(Fixture *f)
{
        SimStore *s = sim_get_store(f->sim);
        sim_store_lock(s);
        json_object *l = mr_json_copy(sim_store_get(s, &SIM_LEASES, "meshroll", "meshroll-agent-worker-1"));
        sim_store_unlock(s);
        return l;
}

/* Runs the loop until the Lease satisfies pred, at most d. Returns the Lease (owned) or fails. */
static json_object *wait_lease(Fixture *f, bool (*pred)(json_object *), usec_t d, const char *what)
{
        usec_t end = mr_now_monotonic(NULL) + d;
        while (mr_now_monotonic(NULL) < end) {
                run_for(f, 50 * USEC_PER_MSEC);
                json_object *l = lease_copy(f);
                if (l && pred(l))
                        return l;
                json_object_put(l);
        }
        fail_msg("timed out waiting for the Lease: %s", what);
        return NULL;
}

/* Lease writes so far, from the audit log. */
static unsigned lease_writes(Fixture *f)
{
        _cleanup_free_ char *data = NULL;
        unsigned n = 0;
        assert_int_equal(mr_read_file(f->audit, 64u << 20, &data, NULL), 0);
        for (char *line = data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
                nl = strchr(line, '\n');
                if (nl)
                        *nl = 0;
                _cleanup_(json_object_putp) json_object *o = NULL;
                if (mr_json_parse(line, strlen(line), 1 << 24, &o) < 0)
                        continue;
                if (streq_ptr(mr_json_get_str(o, "resource", NULL), "leases") &&
                    streq_ptr(mr_json_get_str(o, "name", NULL), "meshroll-agent-worker-1"))
                        n++;
        }
        return n;
}

static void mark_node(Fixture *f, const char *phase)
{
        _cleanup_(json_object_putp) json_object *patch = NULL;
        char buf[256];
        KubeStatus st;
        if (phase)
                snprintf(buf, sizeof(buf), "{\"metadata\":{\"annotations\":{\"meshroll.io/phase\":\"%s\"}}}", phase);
        else
                snprintf(buf, sizeof(buf), "{\"metadata\":{\"annotations\":{\"meshroll.io/phase\":null}}}");
        assert_int_equal(mr_json_parse(buf, strlen(buf), 1 << 16, &patch), 0);
        assert_int_equal(kube_patch(f->client, "/api/v1/nodes/worker-1", KUBE_PATCH_MERGE, patch, NULL, &st), 0);
}

static bool has_report(json_object *l)
{
        return mr_json_get_str(l, "metadata", "annotations", "meshroll.io/connections", NULL) != NULL;
}

static bool has_long_lived(json_object *l)
{
        return streq_ptr(mr_json_get_str(l, "metadata", "annotations", "meshroll.io/long-lived", NULL), "3");
}

static bool phase_g1(json_object *l)
{
        return streq_ptr(mr_json_get_str(l, "metadata", "annotations", "meshroll.io/phase", NULL), "g1");
}

static bool phase_g2(json_object *l)
{
        return streq_ptr(mr_json_get_str(l, "metadata", "annotations", "meshroll.io/phase", NULL), "g2");
}

static bool no_phase(json_object *l)
{
        return has_report(l) && !mr_json_get(l, "metadata", "annotations", "meshroll.io/phase", NULL);
}

static void start_agent(Fixture *f)
{
        AgentOptions o;
        char proc[192];
        MrError err = {};

        agent_options_init(&o);
        snprintf(proc, sizeof(proc), "%s/proc", f->root);
        o.node = "worker-1";
        o.scan.proc_root = proc;
        o.scan.long_lived_after = 700 * USEC_PER_MSEC;
        o.scan_interval = 100 * USEC_PER_MSEC;
        o.idle_interval = 20 * USEC_PER_SEC; /* long enough that no renewal falls in a checked quiet window */
        o.active_interval = 100 * USEC_PER_MSEC;
        o.listen = "127.0.0.1:0";
        if (agent_new(f->event, f->client, &o, &f->agent, &err) < 0)
                fail_msg("agent_new: %s", err.message);
        assert_true(agent_metrics_port(f->agent) > 0);
}

static void test_lease_and_cadence(void **state)
{
        Fixture *f = *state;
        int64_t v;

        start_agent(f);

        /* First report: counts, no phase, long-lived not yet known. */
        _cleanup_(json_object_putp) json_object *l = wait_lease(f, has_report, 5 * USEC_PER_SEC, "first report");
        assert_string_equal(mr_json_get_str(l, "spec", "holderIdentity", NULL), "meshroll-agent/worker-1");
        assert_string_equal(mr_json_get_str(l, "metadata", "annotations", "meshroll.io/established", NULL), "3");
        assert_null(mr_json_get(l, "metadata", "annotations", "meshroll.io/long-lived", NULL));
        assert_null(mr_json_get(l, "metadata", "annotations", "meshroll.io/phase", NULL));
        assert_int_equal(mr_json_get_int(&v, l, "spec", "leaseDurationSeconds", NULL), 0);
        assert_int_equal(v, 60); /* 3 × the 20 s idle interval */
        assert_string_equal(mr_json_get_str(l, "metadata", "labels", "meshroll.io/node", NULL), "worker-1");
        const char *doc = mr_json_get_str(l, "metadata", "annotations", "meshroll.io/connections", NULL);
        _cleanup_(json_object_putp) json_object *report = NULL;
        assert_int_equal(mr_json_parse(doc, strlen(doc), 1 << 20, &report), 0);
        assert_int_equal(mr_json_get_int(&v, report, "total", "outbound", NULL), 0);
        assert_int_equal(v, 3);
        assert_int_equal(json_object_array_length(mr_json_get(report, "pods", NULL)), 1);

        /* Idle: scans every 100 ms, but no second write within the 20 s idle interval. */
        unsigned before = lease_writes(f);
        run_for(f, 1500 * USEC_PER_MSEC);
        assert_int_equal(lease_writes(f), before);

        /* Marked: a report at once, then one every active interval, with the phase. */
        mark_node(f, "g1");
        json_object_put(wait_lease(f, phase_g1, 3 * USEC_PER_SEC, "phase g1"));
        before = lease_writes(f);
        run_for(f, 1 * USEC_PER_SEC);
        unsigned active = lease_writes(f) - before;
        if (active < 3) /* about 10 expected; a loaded machine may manage fewer */
                fail_msg("only %u Lease writes in 1 s while active (every 100 ms expected)", active);
        json_object_put(wait_lease(f, has_long_lived, 3 * USEC_PER_SEC, "long-lived = 3"));
        _cleanup_(json_object_putp) json_object *al = lease_copy(f);
        assert_int_equal(mr_json_get_int(&v, al, "spec", "leaseDurationSeconds", NULL), 0);
        assert_int_equal(v, 5);

        /* Unmarked: the phase disappears at once, then writes stop again. */
        mark_node(f, NULL);
        json_object_put(wait_lease(f, no_phase, 3 * USEC_PER_SEC, "phase removed"));
        run_for(f, 200 * USEC_PER_MSEC);
        before = lease_writes(f);
        run_for(f, 1 * USEC_PER_SEC);
        assert_int_equal(lease_writes(f), before);
}

static void test_survives_dropped_watches(void **state)
{
        Fixture *f = *state;

        /* Every watch is cut after 300 ms: the agent must reconnect and still see its Node change. */
        SimStore *s = sim_get_store(f->sim);
        sim_store_lock(s);
        sim_get_faults(f->sim)->watch_drop_after = 300 * USEC_PER_MSEC;
        sim_store_unlock(s);

        start_agent(f);
        json_object_put(wait_lease(f, has_report, 5 * USEC_PER_SEC, "first report"));
        run_for(f, 1 * USEC_PER_SEC); /* several watch drops */
        mark_node(f, "g2");
        json_object_put(wait_lease(f, phase_g2, 5 * USEC_PER_SEC, "phase g2 after dropped watches"));
}

/*
 * Lease writes that take longer than the scan interval: the scans made
 * while an idle report is on its way must not queue another — an idle
 * agent writes once per idle interval however slow the API is.
 */
static void test_slow_writes_not_repeated(void **state)
{
        Fixture *f = *state;

        SimStore *s = sim_get_store(f->sim);
        sim_store_lock(s);
        sim_get_faults(f->sim)->latency[SIM_VERB_CREATE] = 500 * USEC_PER_MSEC;
        sim_get_faults(f->sim)->latency[SIM_VERB_UPDATE] = 500 * USEC_PER_MSEC;
        sim_store_unlock(s);

        start_agent(f); /* scans every 100 ms: about five of them while the first write is under way */
        json_object_put(wait_lease(f, has_report, 10 * USEC_PER_SEC, "first report"));
        unsigned first = lease_writes(f);
        assert_int_equal(first, 1);
        run_for(f, 1500 * USEC_PER_MSEC);
        assert_int_equal(lease_writes(f), first);

        /* Marked, the slow writes follow each other, each with the freshest report. */
        mark_node(f, "g1");
        json_object_put(wait_lease(f, phase_g1, 10 * USEC_PER_SEC, "phase g1"));
        /* Unmarked while a marked write may be in flight: exactly one more write clears the phase. */
        mark_node(f, NULL);
        json_object_put(wait_lease(f, no_phase, 10 * USEC_PER_SEC, "phase removed"));
        run_for(f, 700 * USEC_PER_MSEC); /* a marked write queued before the unmark lands, then the unmarked one */
        unsigned after = lease_writes(f);
        run_for(f, 1500 * USEC_PER_MSEC);
        assert_int_equal(lease_writes(f), after);
        _cleanup_(json_object_putp) json_object *l = lease_copy(f);
        assert_true(no_phase(l));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_lease_and_cadence, setup, teardown),
                cmocka_unit_test_setup_teardown(test_survives_dropped_watches, setup, teardown),
                cmocka_unit_test_setup_teardown(test_slow_writes_not_repeated, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
