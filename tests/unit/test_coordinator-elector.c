/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_coordinator-elector.c — coordinator/elector.c against the in-process
 * simulator, with the event loop blocked on purpose.
 *
 * The elector renews from a thread of its own, so a handler that blocks the
 * loop for longer than the lease duration must not cost the lease:
 *
 *   - blocked for twice the lease duration, the leader still leads, its
 *     renewTime has moved on, a second candidate never took over, and no
 *     change of leadership was delivered;
 *   - a lease taken by someone else while the loop is blocked fences the
 *     very next write (the client's write guard, as `meshroll run` installs
 *     it) before the loss is delivered; the loss then reaches on_change on
 *     the loop's thread;
 *   - a lease that cannot be renewed (the API failing every Lease call)
 *     while the loop is blocked fences writes too;
 *   - a loss and a regain within one blocked stretch (stolen, then given
 *     back) are delivered as false, then true;
 *   - release stops the thread and clears the Lease, so the other candidate
 *     takes it at once; no change is delivered after it;
 *   - the fast path (mr_leader_renew, on a fake clock): only a leader within
 *     its deadline whose last record names it renews without reading; the
 *     record keeps acquireTime and leaseTransitions; a failed write leaves
 *     the deadline where it was.
 *
 * The waits are bounded loops on a condition, never assertions on time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "meshroll/kube.h"
#include "meshroll/lease.h"
#include "elector.h"
#include "sim.h"

#define NS "meshroll"
#define LEASE "meshroll-coordinator"

static const char scenario[] = "name: elector-test\n"
                               "nodes:\n"
                               "  - {name: \"n{i}\", count: 1}\n"
                               "namespaces:\n"
                               "  - {name: meshroll}\n";

/* Short periods so a blocked loop outlasts them: lease 4 s, renew deadline 3 s, retry 0.5 s. */
static const usec_t lease_duration = 4 * USEC_PER_SEC;

typedef struct Candidate {
        const char *id;
        Elector *elector;
        bool changes[8];             /* every on_change, in order */
        size_t n_changes;
        pthread_t loop_thread;       /* the thread running the event loop */
        bool off_thread;             /* an on_change ran on another thread than the loop's */
} Candidate;

typedef struct Fixture {
        Sim *sim;
        sd_event *event;
        KubeClient *client;          /* the "main" client: the loop's, fenced by the write guard */
        KubeClient *probe;           /* the test's own view of the cluster, never fenced */
        Candidate a, b;
} Fixture;

static void on_change(Elector *el, bool leading, void *userdata)
{
        Candidate *c = userdata;
        if (!pthread_equal(pthread_self(), c->loop_thread))
                c->off_thread = true;
        if (c->n_changes < ELEMENTSOF(c->changes))
                c->changes[c->n_changes++] = leading;
}

static KubeClient *new_client(Fixture *f, const char *ua)
{
        MrError err = {};
        KubeConfigOptions ko = { .server = sim_url(f->sim) };
        _cleanup_(kube_config_freep) KubeConfig *config = NULL;
        KubeClient *c = NULL;
        assert_int_equal(kube_config_load(&ko, &config, &err), 0);
        KubeClientOptions co = { .qps = -1, .max_retries = 1, .user_agent = ua };
        assert_int_equal(kube_client_new(config, &co, &c, &err), 0);
        return c;
}

static void start(Fixture *f)
{
        MrError err = {};
        SimOptions so = { .scenario_data = scenario, .scenario_size = strlen(scenario) };
        if (sim_start(&so, &f->sim, &err) < 0)
                fail_msg("sim_start: %s", err.message);
        assert_int_equal(sd_event_new(&f->event), 0);
        f->client = new_client(f, "meshroll-elector-test");
        f->probe = new_client(f, "elector-test-probe");
        f->a = (Candidate){ .id = "candidate-a", .loop_thread = pthread_self() };
        f->b = (Candidate){ .id = "candidate-b", .loop_thread = pthread_self() };
}

static void start_candidate(Fixture *f, Candidate *c)
{
        MrError err = {};
        MrLeaderConfig lc = { .identity = c->id, .lease_duration = lease_duration,
                              .renew_deadline = 3 * USEC_PER_SEC, .retry_period = 500 * USEC_PER_MSEC };
        if (elector_new(f->event, f->client, NS, LEASE, &lc, on_change, c, &c->elector, &err) < 0)
                fail_msg("elector_new: %s", err.message);
}

static void stop(Fixture *f)
{
        f->a.elector = elector_free(f->a.elector);
        f->b.elector = elector_free(f->b.elector);
        kube_client_free(f->client);
        kube_client_free(f->probe);
        sd_event_unref(f->event);
        sim_stop(f->sim);
}

/* Runs the loop until c has seen n changes; fails after 30 s (a bound, not a measurement). */
static void run_until_changes(Fixture *f, Candidate *c, size_t n)
{
        usec_t end = mr_now_monotonic(NULL) + 30 * USEC_PER_SEC;
        while (c->n_changes < n) {
                if (mr_now_monotonic(NULL) >= end)
                        fail_msg("%s saw %zu changes of leadership, expected %zu", c->id, c->n_changes, n);
                assert_true(sd_event_run(f->event, 100 * USEC_PER_MSEC) >= 0);
        }
}

static void sleep_usec(usec_t d)
{
        struct timespec ts = { .tv_sec = (time_t)(d / USEC_PER_SEC), .tv_nsec = (long)(d % USEC_PER_SEC * 1000) };
        while (nanosleep(&ts, &ts) < 0)
                ;
}

/* With the loop blocked: waits until c's state machine leads (want) or not; fails after 30 s. */
static void wait_state(Candidate *c, bool want)
{
        for (unsigned i = 0; i < 300; i++) {
                if ((mr_leader_check(elector_state(c->elector)) == 0) == want)
                        return;
                sleep_usec(100 * USEC_PER_MSEC);
        }
        fail_msg("%s did not %s", c->id, want ? "lead" : "stop leading");
}

static void read_lease(Fixture *f, KubeLease *ret)
{
        KubeStatus st;
        if (kube_lease_get(f->probe, NS, LEASE, ret, &st) < 0)
                fail_msg("reading the lease: %s", st.message);
}

/* Runs fn(f) from inside a handler on the loop: the loop is blocked until it returns. */
typedef void (*blocker_t)(Fixture *f);
typedef struct Block {
        Fixture *f;
        blocker_t fn;
        bool ran;
} Block;

static int on_block(sd_event_source *s, uint64_t usec, void *userdata)
{
        Block *b = userdata;
        b->fn(b->f);
        b->ran = true;
        return 0;
}

static void block_loop(Fixture *f, blocker_t fn)
{
        Block b = { .f = f, .fn = fn };
        _cleanup_(sd_event_source_unrefp) sd_event_source *s = NULL;
        assert_int_equal(sd_event_add_time_relative(f->event, &s, CLOCK_MONOTONIC, 0, 0, on_block, &b), 0);
        for (unsigned i = 0; i < 100 && !b.ran; i++)
                assert_true(sd_event_run(f->event, 100 * USEC_PER_MSEC) >= 0);
        assert_true(b.ran);
}

/* A leads, B follows. */
static void a_leads_b_follows(Fixture *f)
{
        start_candidate(f, &f->a);
        run_until_changes(f, &f->a, 1);
        assert_true(f->a.changes[0]);
        start_candidate(f, &f->b);
}

/* ---- blocked for twice the lease duration, the leader still leads ----------------------------- */

static void block_two_leases(Fixture *f)
{
        sleep_usec(2 * lease_duration);
}

static void test_renews_while_loop_blocked(void **state)
{
        Fixture f = {};
        _cleanup_(kube_lease_done) KubeLease before = {}, after = {};
        start(&f);
        a_leads_b_follows(&f);
        read_lease(&f, &before);
        usec_t blocked_at = mr_now_realtime(NULL);

        block_loop(&f, block_two_leases);

        /* Right after the block, before the loop could deliver anything. */
        assert_int_equal(mr_leader_check(elector_state(f.a.elector)), 0);
        assert_int_equal(mr_leader_check(elector_state(f.b.elector)), -MR_ELOSTLEASE);
        read_lease(&f, &after);
        assert_string_equal(after.holder_identity, "candidate-a");
        assert_int_equal(after.lease_transitions, before.lease_transitions);
        assert_int_equal(after.acquire_time, before.acquire_time);
        /* Renewed late in the block, not only before it: the renew deadline would have lapsed otherwise. */
        if (after.renew_time < blocked_at + lease_duration)
                fail_msg("renewTime moved %lld µs past the start of the block, expected more than the lease duration",
                         (long long)after.renew_time - (long long)blocked_at);

        /* Run the loop a little: nothing to deliver, to either. */
        for (unsigned i = 0; i < 10; i++)
                assert_true(sd_event_run(f.event, 100 * USEC_PER_MSEC) >= 0);
        assert_int_equal(f.a.n_changes, 1);
        assert_int_equal(f.b.n_changes, 0);
        assert_false(f.a.off_thread);
        stop(&f);
}

/* ---- a lease taken while the loop is blocked fences the next write ---------------------------- */

static int guard_calls;

/* cmd-run.c's write guard: no write without the lease. */
static int write_guard(const char *method, const char *path, void *userdata)
{
        Fixture *f = userdata;
        guard_calls++;
        return mr_leader_check(elector_state(f->a.elector)) < 0 ? -MR_ELOSTLEASE : 0;
}

/* A write the loop's engines could make: a ConfigMap. 0, or the client's error. */
static int try_write(Fixture *f, const char *name)
{
        _cleanup_(json_object_putp) json_object *cm = json_object_new_object(), *meta = json_object_new_object();
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        assert_int_equal(json_object_object_add(cm, "apiVersion", json_object_new_string("v1")), 0);
        assert_int_equal(json_object_object_add(cm, "kind", json_object_new_string("ConfigMap")), 0);
        assert_int_equal(json_object_object_add(meta, "name", json_object_new_string(name)), 0);
        assert_int_equal(json_object_object_add(cm, "metadata", json_object_get(meta)), 0);
        assert_int_equal(kube_path(&KUBE_CONFIGMAPS, NS, NULL, NULL, &path), 0);
        return kube_create(f->client, path, cm, NULL, &st);
}

static bool exists(Fixture *f, const char *name)
{
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *path = NULL;
        KubeStatus st;
        assert_int_equal(kube_path(&KUBE_CONFIGMAPS, NS, name, NULL, &path), 0);
        int r = kube_get(f->probe, path, &o, &st);
        if (r != 0 && r != -ENOENT)
                fail_msg("reading ConfigMap %s: %s", name, st.message);
        return r == 0;
}

static void steal_lease(Fixture *f)
{
        _cleanup_(kube_lease_done) KubeLease l = {};
        KubeStatus st;

        assert_int_equal(try_write(f, "before-the-theft"), 0);
        read_lease(f, &l);
        free(l.holder_identity);
        l.holder_identity = strdup("thief");
        l.lease_duration_seconds = 60;
        l.acquire_time = l.renew_time = mr_now_realtime(NULL);
        l.lease_transitions++;
        if (kube_lease_update(f->probe, &l, &st) < 0)
                fail_msg("stealing the lease: %s", st.message);
        wait_state(&f->a, false); /* the election thread saw it */
        int before = guard_calls;
        assert_int_equal(try_write(f, "after-the-theft"), -MR_ELOSTLEASE);
        assert_int_equal(guard_calls, before + 1);
        assert_int_equal(f->a.n_changes, 1); /* fenced before the loss was delivered */
}

static void test_stolen_lease_fences_while_loop_blocked(void **state)
{
        Fixture f = {};
        start(&f);
        kube_client_set_write_guard(f.client, write_guard, &f);
        start_candidate(&f, &f.a);
        run_until_changes(&f, &f.a, 1);

        block_loop(&f, steal_lease);
        assert_true(exists(&f, "before-the-theft"));
        assert_false(exists(&f, "after-the-theft"));

        run_until_changes(&f, &f.a, 2);
        assert_false(f.a.changes[1]);
        assert_false(f.a.off_thread);
        _cleanup_(kube_lease_done) KubeLease l = {};
        read_lease(&f, &l);
        assert_string_equal(l.holder_identity, "thief");
        stop(&f);
}

/* ---- a lease that cannot be renewed while the loop is blocked fences too ------------------------ */

static void set_lease_faults(Fixture *f, double rate)
{
        SimStore *store = sim_get_store(f->sim);
        sim_store_lock(store);
        SimFaults *faults = sim_get_faults(f->sim);
        faults->error_rate[SIM_VERB_GET] = rate;
        faults->error_rate[SIM_VERB_UPDATE] = rate;
        sim_store_unlock(store);
}

static void unrenewable(Fixture *f)
{
        set_lease_faults(f, 1.0);
        wait_state(&f->a, false); /* the renew deadline passed without a renewal */
        assert_int_equal(try_write(f, "unproven"), -MR_ELOSTLEASE);
        assert_int_equal(f->a.n_changes, 1);
        set_lease_faults(f, 0);
}

static void test_unrenewable_lease_fences_while_loop_blocked(void **state)
{
        Fixture f = {};
        start(&f);
        kube_client_set_write_guard(f.client, write_guard, &f);
        start_candidate(&f, &f.a);
        run_until_changes(&f, &f.a, 1);

        block_loop(&f, unrenewable);
        assert_false(exists(&f, "unproven"));

        /*
         * Its own lease, not taken: it leads again. Whether the thread saw the loss first (a renewal
         * decided before the deadline may still land, and then counts from when it was decided) the
         * engines see a consistent story: alternating changes, ending in leading.
         */
        usec_t end = mr_now_monotonic(NULL) + 30 * USEC_PER_SEC;
        while (f.a.n_changes % 2 == 0 || mr_leader_check(elector_state(f.a.elector)) < 0) {
                if (mr_now_monotonic(NULL) >= end)
                        fail_msg("candidate-a did not lead again");
                assert_true(sd_event_run(f.event, 100 * USEC_PER_MSEC) >= 0);
        }
        for (size_t i = 0; i < f.a.n_changes; i++)
                assert_int_equal(f.a.changes[i], i % 2 == 0);
        assert_false(f.a.off_thread);
        assert_int_equal(try_write(&f, "proven-again"), 0);
        assert_true(exists(&f, "proven-again"));
        stop(&f);
}

/* ---- lost and regained within one blocked stretch: both reach on_change ---------------------- */

static void steal_and_give_back(Fixture *f)
{
        _cleanup_(kube_lease_done) KubeLease l = {};
        KubeStatus st;

        steal_lease(f);
        read_lease(f, &l);
        free(l.holder_identity);
        l.holder_identity = strdup(""); /* the thief releases it, as client-go does */
        l.lease_duration_seconds = 1;
        l.acquire_time = l.renew_time = mr_now_realtime(NULL);
        if (kube_lease_update(f->probe, &l, &st) < 0)
                fail_msg("releasing the stolen lease: %s", st.message);
        wait_state(&f->a, true);
        assert_int_equal(f->a.n_changes, 1);
}

static void test_loss_and_regain_while_blocked_both_delivered(void **state)
{
        Fixture f = {};
        start(&f);
        kube_client_set_write_guard(f.client, write_guard, &f);
        start_candidate(&f, &f.a);
        run_until_changes(&f, &f.a, 1);

        block_loop(&f, steal_and_give_back);
        assert_false(exists(&f, "after-the-theft"));

        /* The engines must still see the gap (someone else led meanwhile): false, then true. */
        run_until_changes(&f, &f.a, 3);
        assert_true(f.a.changes[0]);
        assert_false(f.a.changes[1]);
        assert_true(f.a.changes[2]);
        assert_false(f.a.off_thread);
        for (unsigned i = 0; i < 5; i++)
                assert_true(sd_event_run(f.event, 100 * USEC_PER_MSEC) >= 0);
        assert_int_equal(f.a.n_changes, 3);
        _cleanup_(kube_lease_done) KubeLease l = {};
        read_lease(&f, &l);
        assert_string_equal(l.holder_identity, "candidate-a");
        stop(&f);
}

/* ---- release on shutdown --------------------------------------------------------------------- */

static void test_release_hands_over(void **state)
{
        Fixture f = {};
        start(&f);
        a_leads_b_follows(&f);
        _cleanup_(kube_lease_done) KubeLease held = {};
        read_lease(&f, &held);

        elector_release(f.a.elector);
        assert_int_equal(f.a.n_changes, 2); /* the end of leadership, delivered by the release itself */
        assert_false(f.a.changes[1]);
        assert_int_equal(mr_leader_check(elector_state(f.a.elector)), -MR_ELOSTLEASE);
        _cleanup_(kube_lease_done) KubeLease released = {};
        read_lease(&f, &released);
        /* B may already hold it; if not, the release record is there. */
        if (!streq_ptr(released.holder_identity, "candidate-b")) {
                assert_string_equal(strempty(released.holder_identity), "");
                assert_int_equal(released.lease_duration_seconds, 1);
        }

        /* B takes it over without waiting out A's lease; A's elector delivers nothing more. */
        run_until_changes(&f, &f.b, 1);
        assert_true(f.b.changes[0]);
        assert_int_equal(f.a.n_changes, 2);
        _cleanup_(kube_lease_done) KubeLease taken = {};
        read_lease(&f, &taken);
        assert_string_equal(taken.holder_identity, "candidate-b");
        assert_int_equal(taken.lease_transitions, held.lease_transitions + 1);
        stop(&f);
}

/* ---- the fast path in the state machine -------------------------------------------------------- */

static void test_fast_path_renews_only_a_valid_leader(void **state)
{
        MrFakeClock clock;
        _cleanup_(mr_leader_freep) MrLeaderElector *e = NULL;
        MrLeaderRecord record, other = { .holder_identity = "other", .lease_duration_seconds = 15,
                                         .acquire_time = 1, .renew_time = 1, .leader_transitions = 4 };
        mr_fake_clock_init(&clock, 1000 * USEC_PER_SEC, 2000 * USEC_PER_SEC);
        MrLeaderConfig lc = { .identity = "me", .clock = &clock.clock };
        assert_int_equal(mr_leader_new(&lc, &e, NULL), 0);

        /* A follower never takes the fast path. */
        assert_int_equal(mr_leader_renew(e, &record), 0);
        assert_int_equal(mr_leader_observe(e, &other, "1", &record), MR_LEADER_FOLLOW);
        assert_int_equal(mr_leader_renew(e, &record), 0);

        /* Take it over once it expired; then renew without reading. */
        clock.monotonic += 16 * USEC_PER_SEC;
        clock.realtime += 16 * USEC_PER_SEC;
        assert_int_equal(mr_leader_observe(e, &other, "1", &record), MR_LEADER_WRITE);
        usec_t acquired = record.acquire_time;
        mr_leader_write_done(e, 0, &record, "2");
        assert_int_equal(mr_leader_check(e), 0);
        clock.monotonic += 2 * USEC_PER_SEC;
        clock.realtime += 2 * USEC_PER_SEC;
        assert_int_equal(mr_leader_renew(e, &record), 1);
        assert_string_equal(record.holder_identity, "me");
        assert_int_equal(record.acquire_time, acquired);
        assert_int_equal(record.renew_time, clock.realtime);
        assert_int_equal(record.leader_transitions, 5);
        assert_int_equal(record.lease_duration_seconds, 15);
        mr_leader_write_done(e, 0, &record, "3");
        assert_int_equal(mr_leader_deadline(e), clock.monotonic + 10 * USEC_PER_SEC);

        /* A failed fast write (a conflict) changes nothing: the deadline stays, the round reads next. */
        usec_t deadline = mr_leader_deadline(e);
        clock.monotonic += 2 * USEC_PER_SEC;
        assert_int_equal(mr_leader_renew(e, &record), 1);
        mr_leader_write_done(e, -MR_ECONFLICT, NULL, NULL);
        assert_int_equal(mr_leader_deadline(e), deadline);
        assert_int_equal(mr_leader_check(e), 0);

        /* Past the deadline: no fast path, and the fence is closed. */
        clock.monotonic = deadline;
        assert_int_equal(mr_leader_renew(e, &record), 0);
        assert_int_equal(mr_leader_check(e), -MR_ELOSTLEASE);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_renews_while_loop_blocked),
                cmocka_unit_test(test_stolen_lease_fences_while_loop_blocked),
                cmocka_unit_test(test_unrenewable_lease_fences_while_loop_blocked),
                cmocka_unit_test(test_loss_and_regain_while_blocked_both_delivered),
                cmocka_unit_test(test_release_hands_over),
                cmocka_unit_test(test_fast_path_renews_only_a_valid_leader),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
