/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd-run.c — `meshroll run -f FILE` and `meshroll controller`.
 *
 * Both run engines on one sd-event loop behind leader election (the Lease
 * meshroll-coordinator, renewed from a thread of its own so a long tick
 * cannot cost it: elector.h), so a foreground run and an in-cluster
 * controller never act at once. `run` first makes the cluster's Rollout match the
 * file (create it, or update its spec), so everything it does is recorded
 * where a controller — or the next `run` — can resume it. It prints one
 * line per change of the current step (a ztunnel group, or the current
 * phase's state and message), or on a terminal a table of every phase and
 * group redrawn in place, and exits 0 when the rollout
 * completes, 1 when it fails; Ctrl-C leaves the rollout resumable.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "meshroll/fileio.h"
#include "meshroll/http-server.h"
#include "meshroll/json-util.h"
#include "meshroll/log.h"
#include "meshroll/yaml-json.h"
#include "cli.h"
#include "elector.h"
#include "engine.h"
#include "rollout-metrics.h"
#include "spec.h"

#define ELECTION_LEASE "meshroll-coordinator"

typedef struct Runner {
        Cli *cli;
        sd_event *event;
        KubeClient *client;
        Elector *elector;
        Engine **engines;
        char **names;
        size_t n_engines;
        bool leading;
        char last_line[1024];
        bool tty;                    /* stdout is a terminal: redraw a table instead of lines */
        unsigned drawn;              /* lines of the table last drawn */
        sd_event_source *scan_timer; /* controller: looks for Rollouts */
        uint64_t exit_deadline;      /* run: when to exit even if Events are still being sent (monotonic) */
        RolloutMetrics metrics;
        int exit_code;
} Runner;

static KubeClientOptions engine_client_options(void)
{
        /* Short retries: a tick should not stall the loop for long (the election has a thread of its own). */
        return (KubeClientOptions){ .max_retries = 2, .backoff_cap = 2 * USEC_PER_SEC,
                                    .request_timeout = 15 * USEC_PER_SEC, .qps = 50, .burst = 100 };
}

static char *default_identity(void)
{
        char host[256] = "meshroll", *id = NULL;
        (void)gethostname(host, sizeof(host) - 1);
        if (asprintf(&id, "%s-%d", host, (int)getpid()) < 0)
                return NULL;
        return id;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        Runner *r = userdata;
        log_notice("Received %s: stopping; the rollout stays recorded and can be resumed.", strsignal((int)si->ssi_signo));
        r->exit_code = 130;
        return sd_event_exit(sd_event_source_get_event(s), 130);
}

static void on_leading(Elector *el, bool leading, void *userdata)
{
        Runner *r = userdata;
        r->leading = leading;
        if (r->metrics.registry)
                (void)mr_metric_set(r->metrics.leader, NULL, leading);
        for (size_t i = 0; i < r->n_engines; i++)
                engine_set_active(r->engines[i], leading);
}

/* On a terminal: the whole rollout as a table, redrawn in place. */
static void draw_table(Runner *r, const RolloutStatus *s)
{
        struct winsize ws = {};
        unsigned width = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40 ? ws.ws_col : 100;
        usec_t now = mr_now_realtime(NULL);
        char since[32];

        if (r->drawn > 0)
                printf("\033[%uA\033[J", r->drawn); /* back to the table's first line, clear below */
        r->drawn = 0;
        printf("%.*s\n", (int)width - 1, "");
        printf("rollout %s%s%.*s\n", rollout_phase_to_string(s->phase), isempty(s->message) ? "" : ": ",
               (int)(width > 30 ? width - 30 : 10), strempty(s->message));
        r->drawn += 2;
        if (s->n_phases > 0) {
                printf("  %-22s %-12s %5s %8s  %s\n", "PHASE", "STATE", "", "SINCE", "MESSAGE");
                r->drawn++;
        }
        for (size_t i = 0; i < s->n_phases; i++) {
                const PhaseStatus *p = &s->phases[i];
                const char *mark = phase_state_finished(p->state) ? "✓" : p->state == PHASE_PENDING ? " " : "▶";
                mr_duration_format(p->since && now > p->since ? now - p->since : 0, since, sizeof(since));
                printf("%s %-22.22s %-12s %5s %8s  %.*s\n", mark, phase_kind_to_string(p->kind),
                       phase_state_to_string(p->state), "", p->since ? since : "-", (int)(width > 58 ? width - 58 : 10),
                       strempty(p->message));
                r->drawn++;
        }
        if (s->n_groups == 0) {
                fflush(stdout);
                return;
        }
        printf("  %-22s %-12s %5s %8s  %s\n", "GROUP", "STATE", "NODES", "SINCE", "MESSAGE");
        r->drawn++;
        for (size_t i = 0; i < s->n_groups; i++) {
                const GroupStatus *g = &s->groups[i];
                const char *mark = group_state_finished(g->state) ? "✓" : g->state == GROUP_PENDING ? " " : "▶";
                mr_duration_format(g->since && now > g->since ? now - g->since : 0, since, sizeof(since));
                printf("%s %-22.22s %-12s %5zu %8s  %.*s\n", mark, g->name, group_state_to_string(g->state),
                       g->n_nodes, g->since ? since : "-", (int)(width > 58 ? width - 58 : 10), strempty(g->message));
                r->drawn++;
        }
        fflush(stdout);
}

/* One line per change of what the rollout is doing (a table on a terminal). */
static void on_change(Engine *e, const RolloutStatus *s, void *userdata)
{
        Runner *r = userdata;
        char line[1024], when[16];
        int cur = rollout_status_current(s);

        if (r->scan_timer)
                return; /* the controller reports through logs, Events and metrics, not a progress view */
        if (r->tty) {
                draw_table(r, s);
                return;
        }
        size_t done = 0;
        time_t now = time(NULL);
        struct tm tm;

        for (size_t i = 0; i < s->n_groups; i++)
                done += group_state_finished(s->groups[i].state);
        int cp = rollout_status_current_phase(s);
        if (cp >= 0 && s->phases[cp].kind != PHASE_ZTUNNEL && s->phase == ROLLOUT_PROGRESSING) {
                const PhaseStatus *p = &s->phases[cp];
                snprintf(line, sizeof(line), "phase %s (%d/%zu): %s%s%s", phase_kind_to_string(p->kind), cp + 1,
                         s->n_phases, phase_state_to_string(p->state), isempty(p->message) ? "" : " — ",
                         strempty(p->message));
        } else if (cur >= 0 && s->phase == ROLLOUT_PROGRESSING) {
                const GroupStatus *g = &s->groups[cur];
                snprintf(line, sizeof(line), "group %s (%d/%zu, %zu nodes): %s%s%s", g->name, cur + 1, s->n_groups,
                         g->n_nodes, group_state_to_string(g->state), isempty(g->message) ? "" : " — ",
                         strempty(g->message));
        } else if (s->n_groups == 0)
                snprintf(line, sizeof(line), "rollout %s%s%s", rollout_phase_to_string(s->phase),
                         isempty(s->message) ? "" : ": ", strempty(s->message));
        else
                snprintf(line, sizeof(line), "rollout %s (%zu/%zu groups done)%s%s", rollout_phase_to_string(s->phase),
                         done, s->n_groups, isempty(s->message) ? "" : ": ", strempty(s->message));
        if (streq(line, r->last_line))
                return;
        snprintf(r->last_line, sizeof(r->last_line), "%s", line);
        strftime(when, sizeof(when), "%H:%M:%S", localtime_r(&now, &tm));
        printf("%s  %s\n", when, line);
        fflush(stdout);
}

/* Exits once the last Events (sent without waiting) are out, or after EXIT_GRACE at most. */
static int on_exit_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        Runner *r = userdata;
        if (kube_client_has_pending_calls(r->client) && usec < r->exit_deadline)
                return sd_event_source_set_time_relative(s, 10 * USEC_PER_MSEC) < 0 ||
                                       sd_event_source_set_enabled(s, SD_EVENT_ONESHOT) < 0
                               ? sd_event_exit(r->event, r->exit_code)
                               : 0;
        return sd_event_exit(r->event, r->exit_code);
}

static void on_finished(Engine *e, RolloutPhase phase, void *userdata)
{
        Runner *r = userdata;
        if (r->scan_timer)
                return; /* the controller keeps running */
        r->exit_code = phase == ROLLOUT_COMPLETED ? 0 : 1;
        /* Up to a second for the last Events, sent without waiting, to reach the API server. */
        uint64_t now;
        (void)sd_event_now(r->event, CLOCK_MONOTONIC, &now);
        r->exit_deadline = now + USEC_PER_SEC;
        if (sd_event_add_time_relative(r->event, NULL, CLOCK_MONOTONIC, 10 * USEC_PER_MSEC, 0, on_exit_timer, r) < 0)
                (void)sd_event_exit(r->event, r->exit_code);
}

static int add_engine(Runner *r, const char *name)
{
        Engine *e = NULL;
        EngineOptions o = {
                .rollout = name,
                .tick = r->cli->tick,
                .elector = r->elector ? elector_state(r->elector) : NULL,
                .metrics = r->metrics.registry ? &r->metrics : NULL,
                .on_change = on_change,
                .on_finished = on_finished,
                .userdata = r,
        };
        Engine **ne = reallocarray(r->engines, r->n_engines + 1, sizeof(Engine *));
        char **nn = ne ? reallocarray(r->names, r->n_engines + 1, sizeof(char *)) : NULL;
        if (ne)
                r->engines = ne;
        if (nn)
                r->names = nn;
        if (!ne || !nn)
                return log_oom();
        int k = engine_new(r->event, r->client, &o, &e);
        if (k < 0)
                return log_error_errno(k, "Cannot start the engine for %s: %m", name);
        r->names[r->n_engines] = strdup(name);
        if (!r->names[r->n_engines]) {
                engine_free(e);
                return log_oom();
        }
        r->engines[r->n_engines++] = e;
        if (r->elector)
                engine_set_active(e, r->leading);
        return 0;
}

/*
 * The client's write guard: no write without the lease. The elector's Lease
 * reads and writes go through its own client (elector.h), so none is
 * exempt. Called on this thread; the state it reads is the election
 * thread's, under its lock, so a lease lost while this loop was busy fences
 * the very next write.
 */
static int write_guard(const char *method, const char *path, void *userdata)
{
        Runner *r = userdata;
        if (!r->elector || mr_leader_check(elector_state(r->elector)) < 0)
                return -MR_ELOSTLEASE;
        return 0;
}

static int setup_loop(Runner *r)
{
        sigset_t mask;
        int k;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(-errno, "Failed to block signals: %m");
        k = sd_event_default(&r->event);
        if (k >= 0)
                k = sd_event_add_signal(r->event, NULL, SIGTERM, on_signal, r);
        if (k >= 0)
                k = sd_event_add_signal(r->event, NULL, SIGINT, on_signal, r);
        if (k >= 0)
                k = sd_event_set_watchdog(r->event, true);
        if (k >= 0)
                k = kube_client_attach_event(r->client, r->event);
        if (k < 0)
                return log_error_errno(k, "Failed to set up the event loop: %m");
        if (!r->cli->leader_elect) {
                r->leading = true;
                return 0;
        }

        _cleanup_free_ char *fallback = NULL;
        const char *identity = r->cli->identity;
        if (!identity && !(identity = fallback = default_identity()))
                return log_oom();
        MrLeaderConfig lc = { .identity = identity };
        MrError err = {};
        k = elector_new(r->event, r->client, r->cli->lease_namespace, ELECTION_LEASE, &lc, on_leading, r, &r->elector,
                        &err);
        if (k < 0)
                return log_error_errno(k, "Leader election: %s", err.message);
        /* Fencing below the engine: no write leaves this process once the lease is lost, queued ones included. */
        kube_client_set_write_guard(r->client, write_guard, r);
        log_info("Waiting for the lease %s/%s as %s", r->cli->lease_namespace, ELECTION_LEASE, identity);
        return 0;
}

static void runner_done(Runner *r)
{
        /* Release leadership first: its callback still reaches the engines. */
        if (r->elector) {
                elector_release(r->elector);
                r->elector = elector_free(r->elector);
        }
        for (size_t i = 0; i < r->n_engines; i++) {
                engine_free(r->engines[i]);
                free(r->names[i]);
        }
        free(r->engines);
        free(r->names);
        sd_event_source_disable_unref(r->scan_timer);
        rollout_metrics_done(&r->metrics);
        kube_client_free(r->client);
        sd_event_unref(r->event);
}

/* Makes the cluster's Rollout match the file's document: create it, or update its spec. */
static int apply_rollout(Runner *r, json_object *doc, const char *name)
{
        _cleanup_(json_object_putp) json_object *current = NULL, *body = NULL;
        _cleanup_free_ char *path = NULL, *collection = NULL;
        KubeStatus st;
        int k;

        if ((k = kube_path(&KUBE_ROLLOUTS, NULL, name, NULL, &path)) < 0 ||
            (k = kube_path(&KUBE_ROLLOUTS, NULL, NULL, NULL, &collection)) < 0)
                return log_error_errno(k, "Rollout name \"%s\" cannot be used in a path: %m", name);
        k = kube_get(r->client, path, &current, &st);
        if (k == -ENOENT) {
                body = mr_json_copy(doc);
                if (!body)
                        return log_oom();
                json_object_object_del(body, "status");
                k = kube_create(r->client, collection, body, NULL, &st);
                if (k == -ENOENT)
                        return log_error_errno(k, "The Rollout resource is not installed in this cluster: "
                                                  "kubectl apply -f manifests/crd-rollout.yaml");
                if (k < 0)
                        return log_error_errno(k, "Cannot create Rollout %s: %s", name, st.message[0] ? st.message : "%m");
                log_info("Created Rollout %s", name);
                return 0;
        }
        if (k < 0)
                return log_error_errno(k, "Cannot read Rollout %s: %s", name, st.message[0] ? st.message : "%m");
        /*
         * spec.paused is the cluster's unless the file sets it: a pause (an operator's, or the engine's own
         * after a rollback) is lifted by `meshroll resume`, never by running the same file again.
         */
        json_object *spec = mr_json_copy(mr_json_get(doc, "spec", NULL));
        json_object *paused = mr_json_get(current, "spec", "paused", NULL);
        if (!spec)
                return log_oom();
        if (!mr_json_get(spec, "paused", NULL) && paused &&
            json_object_object_add(spec, "paused", json_object_get(paused)) < 0) {
                json_object_put(spec);
                return log_oom();
        }
        if (mr_json_equal(mr_json_get(current, "spec", NULL), spec)) {
                json_object_put(spec);
                log_info("Resuming Rollout %s", name);
                return 0;
        }
        if (json_object_object_add(current, "spec", spec) < 0) {
                json_object_put(spec);
                return log_oom();
        }
        k = kube_replace(r->client, path, current, NULL, &st);
        if (k < 0)
                return log_error_errno(k, "Cannot update Rollout %s: %s", name, st.message[0] ? st.message : "%m");
        log_info("Updated the spec of Rollout %s from the file", name);
        return 0;
}

int cmd_run(Cli *cli, int argc, char **argv)
{
        static const struct option options[] = {
                { "filename", required_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                CLI_COMMON_OPTIONS,
                {},
        };
        _cleanup_(json_object_putp) json_object *doc = NULL;
        _cleanup_(rollout_spec_freep) RolloutSpec *spec = NULL;
        _cleanup_free_ char *data = NULL;
        const char *file = NULL;
        Runner r = { .cli = cli };
        MrError err = {};
        size_t size;
        int c, k;

        while ((c = getopt_long(argc, argv, "f:h", options, NULL)) >= 0) {
                if (c == 'f')
                        file = optarg;
                else if (c == 'h') {
                        printf("Usage: meshroll run -f ROLLOUT.yaml [OPTIONS]\n\n"
                               "Creates (or updates) the Rollout in the cluster and runs it in the foreground,\n"
                               "one line per step. Ctrl-C stops; running the same command again resumes.\n\n"
                               "  -f, --filename FILE       the Rollout document (YAML)\n" CLI_COMMON_HELP);
                        return 0;
                } else if ((k = cli_parse_common(cli, c, optarg)) != 0)
                        return k;
        }
        if (!file)
                return cli_usage_error("run", "-f ROLLOUT.yaml is required");
        k = mr_read_file(file, 1u << 20, &data, &size);
        if (k < 0)
                return cli_usage_error("run", "%s: %s", file, mr_strerror(k));
        k = mr_yaml_parse(data, size, &doc, &err);
        if (k >= 0)
                k = rollout_spec_from_json(doc, &spec, &err);
        if (k < 0)
                return cli_usage_error("run", "%s: %s", file, err.message);

        KubeClientOptions co = engine_client_options();
        if ((k = cli_client(cli, &co, &r.client)) != 0)
                return k;
        /* On a terminal the table is the progress; routine log lines would tear it. */
        r.tty = isatty(STDOUT_FILENO) && getenv("TERM") && !streq(getenv("TERM"), "dumb");
        if (r.tty && log_get_max_level() == LOG_INFO)
                log_set_max_level(LOG_WARNING);
        if (apply_rollout(&r, doc, spec->name) < 0) {
                runner_done(&r);
                return 1;
        }
        r.exit_code = 1;
        if (setup_loop(&r) < 0 || add_engine(&r, spec->name) < 0) {
                runner_done(&r);
                return 1;
        }
        k = sd_event_loop(r.event);
        if (k < 0)
                log_error_errno(k, "Event loop failed: %m");
        int code = k < 0 ? 1 : r.exit_code;
        runner_done(&r);
        return code;
}

/* ---- controller ----------------------------------------------------------------- */

static bool has_engine(Runner *r, const char *name)
{
        for (size_t i = 0; i < r->n_engines; i++)
                if (streq(r->names[i], name))
                        return true;
        return false;
}

static int on_scan(sd_event_source *s, uint64_t usec, void *userdata)
{
        Runner *r = userdata;
        _cleanup_(json_object_putp) json_object *items = NULL;
        KubeStatus st;
        uint64_t now;

        (void)sd_event_now(r->event, CLOCK_MONOTONIC, &now);
        (void)sd_event_source_set_time(s, now + 5 * r->cli->tick);
        (void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (!r->leading)
                return 0;
        int k = kube_list(r->client, &KUBE_ROLLOUTS, NULL, NULL, &items, NULL, &st);
        if (k < 0) {
                log_warning_errno(k, "Cannot list Rollouts: %s", st.message[0] ? st.message : "%m");
                return 0;
        }
        for (size_t i = 0; i < json_object_array_length(items); i++) {
                json_object *o = json_object_array_get_idx(items, i);
                const char *name = mr_json_get_str(o, "metadata", "name", NULL);
                const char *phase = mr_json_get_str(o, "status", "phase", NULL);
                if (!name || has_engine(r, name) || streq_ptr(phase, "Completed") || streq_ptr(phase, "Failed"))
                        continue;
                log_info("Reconciling Rollout %s", name);
                (void)add_engine(r, name);
        }
        return 0;
}

static int on_metrics(const char *path, MrHttpReply *reply, void *userdata)
{
        Runner *r = userdata;
        reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
        return mr_metrics_render(r->metrics.registry, &reply->body, &reply->size);
}

static int on_healthz(const char *path, MrHttpReply *reply, void *userdata)
{
        Runner *r = userdata;
        if (asprintf(&reply->body, "ok (%s)\n", r->leading ? "leading" : "following") < 0)
                return -ENOMEM;
        reply->size = strlen(reply->body);
        return 0;
}

int cmd_controller(Cli *cli, int argc, char **argv)
{
        static const struct option options[] = {
                { "listen", required_argument, NULL, 'l' },
                { "help", no_argument, NULL, 'h' },
                CLI_COMMON_OPTIONS,
                {},
        };
        _cleanup_(mr_http_server_freep) MrHttpServer *http = NULL;
        const char *listen_address = ":9478";
        Runner r = { .cli = cli };
        MrError err = {};
        int c, k;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (c == 'l')
                        listen_address = optarg;
                else if (c == 'h') {
                        printf("Usage: meshroll controller [OPTIONS]\n\n"
                               "Reconciles every Rollout in the cluster while holding the lease\n"
                               "meshroll-coordinator. Run two replicas; one leads.\n\n"
                               "  --listen HOST:PORT        /healthz and /metrics (default :9478; \"\" disables)\n" CLI_COMMON_HELP);
                        return 0;
                } else if ((k = cli_parse_common(cli, c, optarg)) != 0)
                        return k;
        }
        KubeClientOptions co = engine_client_options();
        if ((k = cli_client(cli, &co, &r.client)) != 0)
                return k;
        if (rollout_metrics_init(&r.metrics) < 0 || setup_loop(&r) < 0) {
                runner_done(&r);
                return 1;
        }
        if (!isempty(listen_address)) {
                k = mr_http_server_new(r.event, listen_address, &http, &err);
                if (k < 0 || mr_http_server_route(http, "/healthz", on_healthz, &r) < 0 ||
                    mr_http_server_route(http, "/metrics", on_metrics, &r) < 0) {
                        log_error("Cannot serve /healthz: %s", err.message);
                        runner_done(&r);
                        return 2;
                }
        }
        k = sd_event_add_time(r.event, &r.scan_timer, CLOCK_MONOTONIC, 0, 0, on_scan, &r);
        if (k < 0) {
                log_error_errno(k, "Cannot add a timer: %m");
                runner_done(&r);
                return 1;
        }
        k = sd_event_loop(r.event);
        http = mr_http_server_free(http);
        runner_done(&r);
        return k < 0 ? 1 : 0;
}
