/* SPDX-License-Identifier: Apache-2.0 */
/*
 * report.c — the demo's report (report.h): a table of meshroll's node
 * groups (how long each drain took, how many connections moved off the
 * group, how many long-lived connections the gate still saw, how long
 * ztunnel's replacement took), then both runs side by side in the manner
 * of the Fortio table in the article that motivated meshroll: requests,
 * failed, success rate, connections reset, wall time.
 *
 * The JSON carries the same numbers under stable names for tests and CI
 * (docs/demo.md); times are seconds with millisecond precision.
 */
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>

#include "meshroll/json-util.h"
#include "report.h"

static double seconds(usec_t a, usec_t b)
{
        return a && b && b >= a ? (double)(b - a) / (double)USEC_PER_SEC : -1;
}

/* The first recorded time at or after state s (a state seen in no poll borrows the next one's). */
static usec_t at(const DemoGroup *g, DemoState s)
{
        for (int i = (int)s; i < _DEMO_STATE_MAX; i++)
                if (g->at[i])
                        return g->at[i];
        return 0;
}

static double drain_s(const DemoGroup *g)
{
        return seconds(at(g, DEMO_CORDONING), at(g, DEMO_GATING));
}
static double gate_s(const DemoGroup *g)
{
        return seconds(at(g, DEMO_GATING), at(g, DEMO_REPLACING));
}
static double replace_s(const DemoGroup *g)
{
        return seconds(at(g, DEMO_REPLACING), at(g, DEMO_UNCORDONING));
}
static double total_s(const DemoGroup *g)
{
        return seconds(at(g, DEMO_CORDONING), g->at[DEMO_DONE]);
}

static const char *secs(double v, char *buf, size_t size)
{
        if (v < 0)
                snprintf(buf, size, "-");
        else
                snprintf(buf, size, "%.1fs", v);
        return buf;
}

static const char *count(int64_t v, char *buf, size_t size)
{
        if (v < 0)
                snprintf(buf, size, "-");
        else
                snprintf(buf, size, "%lld", (long long)v);
        return buf;
}

static double success(const DemoTraffic *t)
{
        uint64_t done = t->requests_ok + t->requests_failed;
        return done ? 100.0 * (double)t->requests_ok / (double)done : 100.0;
}

void demo_report_print(FILE *f, const DemoOptions *o, const DemoRun *m, const DemoRun *ip)
{
        char a[32], b[32], c[32], d[32], e[32];
        bool have_ip = ip && ip->ran && ip->completed;

        fprintf(f, "\n== Report\n\n");
        if (m->n_groups > 0) {
                fprintf(f, "meshroll, group by group:\n");
                fprintf(f, "  %-16s %5s  %-12s %7s  %14s  %13s  %16s  %7s\n", "group", "nodes", "state",
                        "drain", "conns on nodes", "conns at gate", "ztunnel replaced", "total");
                for (size_t i = 0; i < m->n_groups; i++) {
                        const DemoGroup *g = &m->groups[i];
                        fprintf(f, "  %-16s %5u  %-12s %7s  %14s  %13s  %16s  %7s\n", g->name, g->n_nodes,
                                g->state, secs(drain_s(g), a, sizeof(a)),
                                count(g->connections_moved, b, sizeof(b)),
                                count(g->connections_at_gate, c, sizeof(c)),
                                secs(replace_s(g), d, sizeof(d)), secs(total_s(g), e, sizeof(e)));
                }
                fprintf(f, "\n");
        }
        if (!m->completed) {
                if (m->timed_out)
                        fprintf(f, "meshroll's rollout did not finish within --timeout (phase %s).\n",
                                m->phase[0] ? m->phase : "unknown");
                else
                        fprintf(f, "meshroll's rollout ended %s%s%s%s%s\n", m->phase[0] ? m->phase : "early",
                                m->reason[0] ? " (" : "", m->reason, m->reason[0] ? ")" : "",
                                m->message[0] ? ":" : ".");
                if (m->message[0])
                        fprintf(f, "  %s\n", m->message);
                for (size_t i = 0; i < m->n_groups; i++) {
                        const DemoGroup *g = &m->groups[i];
                        if (g->message[0] && !streq(g->state, "Done") && !streq(g->state, "Pending"))
                                fprintf(f, "  group %s (%s): %s\n", g->name, g->state, g->message);
                }
                fprintf(f, "\n");
        }

        fprintf(f, "  %-24s %16s", "", "meshroll");
        if (have_ip)
                fprintf(f, " %28s", "in-place (RollingUpdate)");
        fprintf(f, "\n");
        fprintf(f, "  %-24s %16llu", "requests",
                (unsigned long long)(m->traffic.requests_ok + m->traffic.requests_failed));
        if (have_ip)
                fprintf(f, " %28llu",
                        (unsigned long long)(ip->traffic.requests_ok + ip->traffic.requests_failed));
        fprintf(f, "\n  %-24s %16llu", "failed", (unsigned long long)m->traffic.requests_failed);
        if (have_ip)
                fprintf(f, " %28llu", (unsigned long long)ip->traffic.requests_failed);
        snprintf(a, sizeof(a), "%.2f %%", success(&m->traffic));
        fprintf(f, "\n  %-24s %16s", "success", a);
        if (have_ip) {
                snprintf(b, sizeof(b), "%.2f %%", success(&ip->traffic));
                fprintf(f, " %28s", b);
        }
        fprintf(f, "\n  %-24s %16llu", "connections reset",
                (unsigned long long)m->traffic.connections_reset);
        if (have_ip)
                fprintf(f, " %28llu", (unsigned long long)ip->traffic.connections_reset);
        fprintf(f, "\n  %-24s %16llu", "closed gracefully (FIN)",
                (unsigned long long)m->traffic.connections_closed);
        if (have_ip)
                fprintf(f, " %28llu", (unsigned long long)ip->traffic.connections_closed);
        fprintf(f, "\n  %-24s %16s", "wall time",
                secs((double)m->wall / (double)USEC_PER_SEC, a, sizeof(a)));
        if (have_ip)
                fprintf(f, " %28s", secs((double)ip->wall / (double)USEC_PER_SEC, b, sizeof(b)));
        fprintf(f, "\n\n");
        if (!have_ip && ip && ip->ran)
                fprintf(f, "The in-place run did not finish%s.\n", ip->timed_out ? " in time" : "");
        fprintf(f,
                "Counted from the moment the image changed until the upgrade ended; %u connections, %g "
                "requests/s "
                "each, simulated time ×%g.\n",
                o->connections, o->rate, o->speed);
        fflush(f);
}

bool demo_report_ok(const DemoOptions *o, const DemoRun *m)
{
        bool outcome = o->never_ready ? m->rolled_back : m->completed;
        return m->ran && outcome && m->traffic.connections_reset == 0 && m->traffic.requests_failed == 0 &&
               m->traffic.requests_ok > 0;
}

/* A number written with three decimals ("21.792"), not json-c's shortest round-trip form. */
static json_object *fixed3(double v)
{
        char buf[64];
        snprintf(buf, sizeof(buf), "%.3f", v);
        return json_object_new_double_s(v, buf);
}

static json_object *traffic_json(const DemoRun *r)
{
        json_object *o = json_object_new_object();
        if (!o)
                return NULL;
        const DemoTraffic *t = &r->traffic;
        json_object_object_add(o, "ran", json_object_new_boolean(r->ran));
        json_object_object_add(o, "completed", json_object_new_boolean(r->completed));
        json_object_object_add(o, "timedOut", json_object_new_boolean(r->timed_out));
        json_object_object_add(o, "phase", json_object_new_string(r->phase));
        json_object_object_add(o, "wallSeconds", fixed3((double)r->wall / (double)USEC_PER_SEC));
        json_object_object_add(o, "requests",
                               json_object_new_int64((int64_t)(t->requests_ok + t->requests_failed)));
        json_object_object_add(o, "requestsSent", json_object_new_int64((int64_t)t->requests_sent));
        json_object_object_add(o, "requestsOk", json_object_new_int64((int64_t)t->requests_ok));
        json_object_object_add(o, "requestsFailed", json_object_new_int64((int64_t)t->requests_failed));
        json_object_object_add(o, "requestsRetried", json_object_new_int64((int64_t)t->requests_retried));
        json_object_object_add(o, "successPercent", fixed3(success(t)));
        json_object_object_add(o, "connectionsOpened",
                               json_object_new_int64((int64_t)t->connections_opened));
        json_object_object_add(o, "connectionsClosed",
                               json_object_new_int64((int64_t)t->connections_closed));
        json_object_object_add(o, "connectionsReset", json_object_new_int64((int64_t)t->connections_reset));
        json_object_object_add(o, "connectionsActive",
                               json_object_new_int64((int64_t)t->connections_active));
        return o;
}

static json_object *num_or_null(double v)
{
        return v < 0 ? NULL : fixed3(v);
}

static json_object *int_or_null(int64_t v)
{
        return v < 0 ? NULL : json_object_new_int64(v);
}

int demo_report_write_json(const char *path, const DemoOptions *o, const DemoRun *m, const DemoRun *ip)
{
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();
        _cleanup_free_ char *tmp = NULL;
        json_object *settings = json_object_new_object(), *mr = traffic_json(m),
                    *groups = json_object_new_array();

        if (!root || !settings || !mr || !groups) {
                json_object_put(settings);
                json_object_put(mr);
                json_object_put(groups);
                return -ENOMEM;
        }
        json_object_object_add(root, "version", json_object_new_int(1));
        json_object_object_add(root, "settings", settings);
        json_object_object_add(settings, "nodes", json_object_new_int64(o->nodes));
        json_object_object_add(settings, "groups", json_object_new_int64(o->groups));
        json_object_object_add(settings, "connections", json_object_new_int64(o->connections));
        json_object_object_add(settings, "speed", json_object_new_double(o->speed));
        json_object_object_add(settings, "rate", json_object_new_double(o->rate));
        json_object_object_add(settings, "scenario",
                               o->scenario ? json_object_new_string(o->scenario) : NULL);
        json_object_object_add(settings, "fault",
                               o->never_ready ? json_object_new_string("never-ready") : NULL);

        json_object_object_add(root, "meshroll", mr);
        json_object_object_add(mr, "rolledBack", json_object_new_boolean(m->rolled_back));
        json_object_object_add(mr, "reason", json_object_new_string(m->reason));
        json_object_object_add(mr, "message", json_object_new_string(m->message));
        json_object_object_add(mr, "ok", json_object_new_boolean(demo_report_ok(o, m)));
        json_object_object_add(mr, "groups", groups);
        for (size_t i = 0; i < m->n_groups; i++) {
                const DemoGroup *g = &m->groups[i];
                json_object *j = json_object_new_object();
                if (!j)
                        return -ENOMEM;
                json_object_array_add(groups, j);
                json_object_object_add(j, "name", json_object_new_string(g->name));
                json_object_object_add(j, "nodes", json_object_new_int64(g->n_nodes));
                json_object_object_add(j, "state", json_object_new_string(g->state));
                json_object_object_add(j, "drainSeconds", num_or_null(drain_s(g)));
                json_object_object_add(j, "gateSeconds", num_or_null(gate_s(g)));
                json_object_object_add(j, "replaceSeconds", num_or_null(replace_s(g)));
                json_object_object_add(j, "totalSeconds", num_or_null(total_s(g)));
                json_object_object_add(j, "connectionsMoved", int_or_null(g->connections_moved));
                json_object_object_add(j, "connectionsAtGate", int_or_null(g->connections_at_gate));
        }
        json_object_object_add(root, "inPlace", ip && ip->ran ? traffic_json(ip) : NULL);

        if (asprintf(&tmp, "%s.tmp", path) < 0)
                return -ENOMEM;
        FILE *f = fopen(tmp, "we");
        if (!f)
                return -errno;
        fprintf(
            f, "%s\n",
            json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        if (fclose(f) != 0) {
                int r = -errno;
                (void)unlink(tmp);
                return r;
        }
        if (rename(tmp, path) < 0) {
                int r = -errno;
                (void)unlink(tmp);
                return r;
        }
        return 0;
}
