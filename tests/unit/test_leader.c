/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <setjmp.h>
#include <cmocka.h>

#include "meshroll/errors.h"
#include "meshroll/leader.h"

#define SEC USEC_PER_SEC
#define MS USEC_PER_MSEC

/* ---- a Lease endpoint in memory, with strict resourceVersion checks ---- */

typedef struct Server {
        bool exists;
        char holder[64];
        MrLeaderRecord rec;
        unsigned rv;
        char rv_text[16];
        unsigned writes;
        unsigned fail_next;       /* refuse this many writes with -EIO */
        bool lose_answers;        /* apply writes but report -ETIMEDOUT (the answer got lost) */
} Server;

static bool server_read(Server *s, MrLeaderRecord *ret, const char **ret_rv)
{
        if (!s->exists)
                return false;
        *ret = s->rec;
        ret->holder_identity = s->holder;
        snprintf(s->rv_text, sizeof(s->rv_text), "%u", s->rv);
        *ret_rv = s->rv_text;
        return true;
}

static void server_store(Server *s, const MrLeaderRecord *r)
{
        snprintf(s->holder, sizeof(s->holder), "%s", strempty(r->holder_identity));
        s->rec = *r;
        s->rec.holder_identity = s->holder;
        s->exists = true;
        s->rv++;
        s->writes++;
}

/* create: rv NULL. Returns 0, -EEXIST, -MR_ECONFLICT, -ENOENT, or an injected failure. */
static int server_write(Server *s, const MrLeaderRecord *r, const char *rv)
{
        char now_rv[16];
        if (s->fail_next > 0) {
                s->fail_next--;
                return -EIO;
        }
        if (!rv) {
                if (s->exists)
                        return -EEXIST;
        } else {
                if (!s->exists)
                        return -ENOENT;
                snprintf(now_rv, sizeof(now_rv), "%u", s->rv);
                if (!streq(rv, now_rv))
                        return -MR_ECONFLICT;
        }
        server_store(s, r);
        return s->lose_answers ? -ETIMEDOUT : 0;
}

/* ---- a candidate: an elector with its own clock ------------------------ */

typedef struct Candidate {
        MrFakeClock clock;
        MrLeaderElector *e;
        MrLeaderRecord written;
        int write_error;
} Candidate;

static void candidate_init(Candidate *c, const char *identity, usec_t mono, usec_t wall)
{
        mr_fake_clock_init(&c->clock, mono, wall);
        MrLeaderConfig cfg = { .identity = identity, .clock = &c->clock.clock };
        assert_int_equal(mr_leader_new(&cfg, &c->e, NULL), 0);
}

static void candidate_done(Candidate *c)
{
        c->e = mr_leader_free(c->e);
}

static void advance(Candidate *c, usec_t d)
{
        c->clock.monotonic += d;
        c->clock.realtime += d;
}

/* One round of the loop in leader.h: read, observe, write, report. */
static MrLeaderAction round_trip(Candidate *c, Server *s)
{
        MrLeaderRecord seen, out;
        const char *rv = NULL;
        bool exists = server_read(s, &seen, &rv);
        char rv_copy[16] = "";

        if (rv)
                snprintf(rv_copy, sizeof(rv_copy), "%s", rv);
        MrLeaderAction a = mr_leader_observe(c->e, exists ? &seen : NULL, exists ? rv_copy : NULL, &out);
        c->write_error = 0;
        if (a == MR_LEADER_CREATE || a == MR_LEADER_WRITE) {
                c->written = out;
                c->write_error = server_write(s, &out, a == MR_LEADER_CREATE ? NULL : rv_copy);
                if (c->write_error == 0) {
                        MrLeaderRecord answer;
                        const char *new_rv = NULL;
                        assert_true(server_read(s, &answer, &new_rv));
                        mr_leader_write_done(c->e, 0, &answer, new_rv);
                } else
                        mr_leader_write_done(c->e, c->write_error, NULL, NULL);
        }
        return a;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_config(void **state)
{
        static const struct {
                MrLeaderConfig cfg;
                const char *message; /* NULL: valid */
        } cases[] = {
                { { .identity = "a" }, NULL },
                { { .identity = "a", .lease_duration = 60 * SEC, .renew_deadline = 40 * SEC, .retry_period = 5 * SEC },
                  NULL },
                { { .identity = "" }, "identity must not be empty" },
                { { .identity = NULL }, "identity must not be empty" },
                { { .identity = "a", .lease_duration = 10 * SEC }, "leaseDuration must be greater than renewDeadline" },
                { { .identity = "a", .renew_deadline = 15 * SEC }, "leaseDuration must be greater than renewDeadline" },
                { { .identity = "a", .retry_period = 9 * SEC }, "renewDeadline must be greater than retryPeriod*JitterFactor" },
                { { .identity = "a", .renew_deadline = 2400 * MS }, "renewDeadline must be greater than retryPeriod*JitterFactor" },
                { { .identity = "a", .lease_duration = 15500 * MS }, "whole number of seconds" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(mr_leader_freep) MrLeaderElector *e = NULL;
                MrError err = {};
                int r = mr_leader_new(&cases[i].cfg, &e, &err);
                if (!cases[i].message) {
                        if (r < 0)
                                fail_msg("case %zu: %s", i, err.message);
                        continue;
                }
                if (r != -EINVAL || !strstr(err.message, cases[i].message))
                        fail_msg("case %zu: got %d \"%s\", want \"%s\"", i, r, err.message, cases[i].message);
                assert_null(e);
        }

        _cleanup_(mr_leader_freep) MrLeaderElector *e = NULL;
        assert_int_equal(mr_leader_new(&(MrLeaderConfig){ .identity = "a" }, &e, NULL), 0);
        assert_int_equal(mr_leader_retry_period(e), 2 * SEC);
        assert_int_equal(mr_leader_deadline(e), USEC_INFINITY);
        assert_int_equal(mr_leader_check(e), -MR_ELOSTLEASE);
}

static void test_create_and_renew(void **state)
{
        Server s = {};
        Candidate a;
        candidate_init(&a, "a", 100 * SEC, 1700000000 * SEC);

        assert_int_equal(round_trip(&a, &s), MR_LEADER_CREATE);
        assert_int_equal(a.write_error, 0);
        assert_string_equal(s.rec.holder_identity, "a");
        assert_int_equal(s.rec.lease_duration_seconds, 15);
        assert_int_equal(s.rec.acquire_time, 1700000000 * SEC);
        assert_int_equal(s.rec.renew_time, 1700000000 * SEC);
        assert_int_equal(s.rec.leader_transitions, 0);
        assert_int_equal(mr_leader_check(a.e), 0);
        assert_int_equal(mr_leader_deadline(a.e), 110 * SEC);

        for (int i = 1; i <= 5; i++) {
                advance(&a, 2 * SEC);
                assert_int_equal(round_trip(&a, &s), MR_LEADER_WRITE);
                assert_int_equal(a.write_error, 0);
                /* renewal keeps acquireTime and leaseTransitions */
                assert_int_equal(s.rec.acquire_time, 1700000000 * SEC);
                assert_int_equal(s.rec.renew_time, 1700000000 * SEC + (usec_t)i * 2 * SEC);
                assert_int_equal(s.rec.leader_transitions, 0);
                assert_int_equal(mr_leader_deadline(a.e), 110 * SEC + (usec_t)i * 2 * SEC);
        }
        assert_true(mr_leader_is_leader(a.e));
        candidate_done(&a);
}

/* B waits a full lease duration from when *it* first saw the record, then takes over. */
static void test_takeover_after_expiry(void **state)
{
        Server s = {};
        Candidate a, b;
        candidate_init(&a, "a", 0, 1000 * SEC);
        candidate_init(&b, "b", 0, 1000 * SEC);

        assert_int_equal(round_trip(&a, &s), MR_LEADER_CREATE);
        /* A dies right away. B starts looking 5 s later. */
        advance(&b, 5 * SEC);
        assert_int_equal(round_trip(&b, &s), MR_LEADER_FOLLOW);
        for (usec_t t = 7; t < 20; t += 2) {
                advance(&b, 2 * SEC);
                assert_int_equal(round_trip(&b, &s), MR_LEADER_FOLLOW);
        }
        /* t = 19 s: still 1 s to go (5 + 15 = 20), not 15 as A's renewTime would suggest */
        advance(&b, 1 * SEC);
        assert_int_equal(round_trip(&b, &s), MR_LEADER_WRITE);
        assert_int_equal(b.write_error, 0);
        assert_string_equal(s.rec.holder_identity, "b");
        assert_int_equal(s.rec.leader_transitions, 1);
        assert_int_equal(s.rec.acquire_time, 1020 * SEC);
        assert_int_equal(mr_leader_check(b.e), 0);

        /* A, frozen since t = 0, wakes at t = 20: its deadline (10 s) passed long ago */
        advance(&a, 20 * SEC);
        assert_int_equal(mr_leader_check(a.e), -MR_ELOSTLEASE);
        assert_int_equal(round_trip(&a, &s), MR_LEADER_LOST);   /* reported once */
        assert_int_equal(round_trip(&a, &s), MR_LEADER_FOLLOW); /* then it follows B */
        candidate_done(&a);
        candidate_done(&b);
}

/* A live leader keeps a follower out indefinitely: each renewal restarts its wait. */
static void test_live_leader_keeps_lease(void **state)
{
        Server s = {};
        Candidate a, b;
        candidate_init(&a, "a", 0, 0 + 5000 * SEC);
        candidate_init(&b, "b", 0, 5000 * SEC);

        assert_int_equal(round_trip(&a, &s), MR_LEADER_CREATE);
        for (int i = 0; i < 100; i++) {
                advance(&a, 2 * SEC);
                advance(&b, 2 * SEC);
                assert_int_equal(round_trip(&b, &s), MR_LEADER_FOLLOW);
                assert_int_equal(round_trip(&a, &s), MR_LEADER_WRITE);
                assert_int_equal(mr_leader_check(a.e), 0);
                assert_int_equal(mr_leader_check(b.e), -MR_ELOSTLEASE);
        }
        assert_int_equal(s.rec.leader_transitions, 0);
        candidate_done(&a);
        candidate_done(&b);
}

/*
 * Clock skew: A's wall clock is three hours slow, C's a day fast. Expiry is
 * judged on each candidate's own monotonic clock, so neither the ancient
 * renewTime nor C's future "now" lets C in early.
 */
static void test_clock_skew(void **state)
{
        Server s = {};
        Candidate a, c;
        candidate_init(&a, "a", 777 * SEC, 1700000000 * SEC - 3 * 3600 * SEC);
        candidate_init(&c, "c", 5 * SEC, 1700000000 * SEC + 24 * 3600 * SEC);

        assert_int_equal(round_trip(&a, &s), MR_LEADER_CREATE);
        assert_int_equal(round_trip(&c, &s), MR_LEADER_FOLLOW);
        /* A stops renewing; C must still wait the full 15 s on its own clock */
        advance(&c, 15 * SEC - 1);
        assert_int_equal(round_trip(&c, &s), MR_LEADER_FOLLOW);
        advance(&c, 1);
        assert_int_equal(round_trip(&c, &s), MR_LEADER_WRITE);
        assert_string_equal(s.rec.holder_identity, "c");
        /* C writes its own wall time; nobody compares it */
        assert_int_equal(s.rec.renew_time, 1700000000 * SEC + 24 * 3600 * SEC + 15 * SEC);

        /* A wall clock that jumps backwards on the leader changes nothing either */
        Candidate d;
        candidate_init(&d, "d", 0, 1000 * SEC);
        assert_int_equal(round_trip(&d, &s), MR_LEADER_FOLLOW);
        for (int i = 0; i < 20; i++) {
                advance(&c, 2 * SEC);
                c.clock.realtime -= 60 * SEC;
                advance(&d, 2 * SEC);
                assert_int_equal(round_trip(&c, &s), MR_LEADER_WRITE);
                assert_int_equal(round_trip(&d, &s), MR_LEADER_FOLLOW);
        }
        candidate_done(&a);
        candidate_done(&c);
        candidate_done(&d);
}

/* The leader cannot renew for renew_deadline: it must stop, before anyone can take over. */
static void test_renew_deadline_miss(void **state)
{
        Server s = {};
        Candidate a;
        candidate_init(&a, "a", 0, 1000 * SEC);

        assert_int_equal(round_trip(&a, &s), MR_LEADER_CREATE);
        s.fail_next = 1000;
        for (usec_t t = 2; t < 10; t += 2) {
                advance(&a, 2 * SEC);
                assert_int_equal(round_trip(&a, &s), MR_LEADER_WRITE);
                assert_int_equal(a.write_error, -EIO);
                assert_int_equal(mr_leader_check(a.e), 0); /* still within the deadline */
        }
        advance(&a, 2 * SEC - 1);
        assert_int_equal(mr_leader_check(a.e), 0);
        advance(&a, 1); /* t = 10 s: exactly renew_deadline after the last successful write was decided */
        assert_int_equal(mr_leader_check(a.e), -MR_ELOSTLEASE);
        assert_int_equal(mr_leader_deadline(a.e), USEC_INFINITY);
        assert_int_equal(round_trip(&a, &s), MR_LEADER_LOST);
        assert_int_equal(s.writes, 1);

        /* The API server is back and the lease still names A: A may take it up again (as client-go). */
        s.fail_next = 0;
        advance(&a, 2 * SEC);
        assert_int_equal(round_trip(&a, &s), MR_LEADER_WRITE);
        assert_int_equal(mr_leader_check(a.e), 0);
        assert_int_equal(s.rec.leader_transitions, 0);
        candidate_done(&a);
}

/* The deadline counts from when the write was decided: a slow answer does not extend it. */
static void test_slow_answer(void **state)
{
        Candidate a;
        MrLeaderRecord out;
        candidate_init(&a, "a", 0, 1000 * SEC);

        assert_int_equal(mr_leader_observe(a.e, NULL, NULL, &out), MR_LEADER_CREATE);
        advance(&a, 4 * SEC);
        mr_leader_write_done(a.e, 0, NULL, "1");
        assert_int_equal(mr_leader_deadline(a.e), 10 * SEC);

        MrLeaderRecord seen = out;
        assert_int_equal(mr_leader_observe(a.e, &seen, "1", &out), MR_LEADER_WRITE);
        advance(&a, 11 * SEC); /* the answer comes 11 s later */
        mr_leader_write_done(a.e, 0, &out, "2");
        assert_int_equal(mr_leader_check(a.e), -MR_ELOSTLEASE);

        /* write_done without a pending write does nothing */
        mr_leader_write_done(a.e, 0, &out, "3");
        assert_int_equal(mr_leader_check(a.e), -MR_ELOSTLEASE);
        candidate_done(&a);
}

/* Two candidates see the same expired lease and write at once: one wins, the other follows. */
static void test_conflicting_writes(void **state)
{
        Server s = {};
        Candidate a, b;
        MrLeaderRecord seen, out_a, out_b;
        const char *rv;
        char rv_a[16], rv_b[16];
        candidate_init(&a, "a", 0, 1000 * SEC);
        candidate_init(&b, "b", 0, 1000 * SEC);

        /* both race to create */
        assert_int_equal(mr_leader_observe(a.e, NULL, NULL, &out_a), MR_LEADER_CREATE);
        assert_int_equal(mr_leader_observe(b.e, NULL, NULL, &out_b), MR_LEADER_CREATE);
        assert_int_equal(server_write(&s, &out_a, NULL), 0);
        mr_leader_write_done(a.e, 0, NULL, "1");
        assert_int_equal(server_write(&s, &out_b, NULL), -EEXIST);
        mr_leader_write_done(b.e, -EEXIST, NULL, NULL);
        assert_int_equal(mr_leader_check(a.e), 0);
        assert_int_equal(mr_leader_check(b.e), -MR_ELOSTLEASE);

        /* release, so that both may take it at once */
        MrLeaderRecord rel;
        assert_int_equal(mr_leader_release(a.e, &rel), 1);
        assert_int_equal(server_write(&s, &rel, "1"), 0);

        assert_true(server_read(&s, &seen, &rv));
        snprintf(rv_a, sizeof(rv_a), "%s", rv);
        snprintf(rv_b, sizeof(rv_b), "%s", rv);
        assert_int_equal(mr_leader_observe(a.e, &seen, rv_a, &out_a), MR_LEADER_WRITE);
        assert_int_equal(mr_leader_observe(b.e, &seen, rv_b, &out_b), MR_LEADER_WRITE);
        assert_int_equal(out_a.leader_transitions, 1);
        assert_int_equal(out_b.leader_transitions, 1);
        assert_int_equal(server_write(&s, &out_b, rv_b), 0); /* B first */
        mr_leader_write_done(b.e, 0, NULL, "3");
        assert_int_equal(server_write(&s, &out_a, rv_a), -MR_ECONFLICT);
        mr_leader_write_done(a.e, -MR_ECONFLICT, NULL, NULL);

        assert_int_equal(mr_leader_check(b.e), 0);
        assert_int_equal(mr_leader_check(a.e), -MR_ELOSTLEASE);
        assert_string_equal(s.rec.holder_identity, "b");
        assert_int_equal(s.rec.leader_transitions, 1);
        assert_int_equal(round_trip(&a, &s), MR_LEADER_FOLLOW);
        candidate_done(&a);
        candidate_done(&b);
}

/* Release: the record client-go's ReleaseOnCancel writes, and a follower takes over at once. */
static void test_release(void **state)
{
        Server s = {};
        Candidate a, b;
        MrLeaderRecord rel;
        candidate_init(&a, "a", 0, 1000 * SEC);
        candidate_init(&b, "b", 0, 2000 * SEC);

        assert_int_equal(mr_leader_release(a.e, &rel), 0); /* nothing to release yet */
        assert_int_equal(round_trip(&a, &s), MR_LEADER_CREATE);
        advance(&a, 2 * SEC);
        assert_int_equal(round_trip(&a, &s), MR_LEADER_WRITE);
        assert_int_equal(round_trip(&b, &s), MR_LEADER_FOLLOW);

        advance(&a, 1 * SEC);
        assert_int_equal(mr_leader_release(a.e, &rel), 1);
        assert_string_equal(rel.holder_identity, "");
        assert_int_equal(rel.lease_duration_seconds, 1);
        assert_int_equal(rel.acquire_time, 1003 * SEC);
        assert_int_equal(rel.renew_time, 1003 * SEC);
        assert_int_equal(rel.leader_transitions, 0);
        assert_int_equal(mr_leader_check(a.e), -MR_ELOSTLEASE);
        assert_int_equal(server_write(&s, &rel, "2"), 0);

        advance(&b, 1 * SEC);
        assert_int_equal(round_trip(&b, &s), MR_LEADER_WRITE);
        assert_string_equal(s.rec.holder_identity, "b");
        assert_int_equal(s.rec.leader_transitions, 1);
        assert_int_equal(s.rec.acquire_time, 2001 * SEC);
        candidate_done(&a);
        candidate_done(&b);
}

/* Someone else's name in the lease (kubectl edit, a split brain elsewhere): the leader stops at once. */
static void test_other_holder_is_lost_now(void **state)
{
        Server s = {};
        Candidate a;
        candidate_init(&a, "a", 0, 1000 * SEC);

        assert_int_equal(round_trip(&a, &s), MR_LEADER_CREATE);
        server_store(&s, &(MrLeaderRecord){ .holder_identity = "intruder", .lease_duration_seconds = 15 });
        advance(&a, 2 * SEC);
        assert_int_equal(round_trip(&a, &s), MR_LEADER_LOST);
        assert_int_equal(mr_leader_check(a.e), -MR_ELOSTLEASE);
        assert_int_equal(round_trip(&a, &s), MR_LEADER_FOLLOW);

        /* a lease cleared by someone else: lost as well, then taken again */
        candidate_done(&a);
        candidate_init(&a, "a", 0, 1000 * SEC);
        s = (Server){};
        assert_int_equal(round_trip(&a, &s), MR_LEADER_CREATE);
        server_store(&s, &(MrLeaderRecord){ .holder_identity = "", .lease_duration_seconds = 1 });
        assert_int_equal(round_trip(&a, &s), MR_LEADER_LOST);
        assert_int_equal(round_trip(&a, &s), MR_LEADER_WRITE);
        assert_int_equal(s.rec.leader_transitions, 1);

        /* the lease deleted under the leader */
        s = (Server){};
        assert_int_equal(round_trip(&a, &s), MR_LEADER_LOST);
        assert_int_equal(round_trip(&a, &s), MR_LEADER_CREATE);
        candidate_done(&a);
}

/*
 * A randomised schedule: three candidates with independent pauses, failed
 * writes and lost answers, all on one timeline. At no instant may two of
 * them pass mr_leader_check(); and someone leads most of the time.
 */
static void test_never_two_leaders(void **state)
{
        Server s = {};
        Candidate c[3];
        usec_t paused_until[3] = {};
        uint64_t rng = 0x243f6a8885a308d3ULL;
        unsigned led = 0, steps = 20000, takeovers_seen = 0;

#define RAND(n) ((rng = rng * 6364136223846793005ULL + 1442695040888963407ULL), (unsigned)((rng >> 33) % (n)))
        for (int i = 0; i < 3; i++)
                candidate_init(&c[i], (const char *[]){ "a", "b", "c" }[i], 0, (usec_t)(i + 1) * 100000 * SEC);

        usec_t now = 0;
        for (unsigned step = 0; step < steps; step++) {
                usec_t d = (usec_t)(100 + RAND(900)) * MS;
                now += d;
                for (int i = 0; i < 3; i++)
                        advance(&c[i], d);

                int i = (int)RAND(3);
                if (now >= paused_until[i]) {
                        if (RAND(200) == 0)
                                paused_until[i] = now + (usec_t)RAND(30) * SEC; /* a long pause (GC, SIGSTOP) */
                        s.fail_next = RAND(10) == 0;
                        s.lose_answers = RAND(20) == 0;
                        int32_t before = s.rec.leader_transitions;
                        (void)round_trip(&c[i], &s);
                        takeovers_seen += s.rec.leader_transitions != before;
                        s.fail_next = 0;
                        s.lose_answers = false;
                }

                int leaders = 0;
                for (int j = 0; j < 3; j++)
                        leaders += mr_leader_check(c[j].e) == 0;
                if (leaders > 1)
                        fail_msg("step %u: %d leaders at t=%llu", step, leaders, (unsigned long long)now);
                led += leaders;
        }
#undef RAND
        assert_true(led > steps / 2);
        assert_true(takeovers_seen > 3);
        for (int i = 0; i < 3; i++)
                candidate_done(&c[i]);
}

static void test_lease_glue(void **state)
{
        KubeLease l = { .holder_identity = strdup("x"), .lease_duration_seconds = 15, .acquire_time = 5,
                        .renew_time = 6, .lease_transitions = 2 };
        MrLeaderRecord r;

        mr_leader_record_from_lease(&l, &r);
        assert_string_equal(r.holder_identity, "x");
        assert_int_equal(r.lease_duration_seconds, 15);
        assert_int_equal(r.acquire_time, 5);
        assert_int_equal(r.renew_time, 6);
        assert_int_equal(r.leader_transitions, 2);

        assert_int_equal(mr_leader_record_to_lease(&(MrLeaderRecord){ .holder_identity = "", .lease_duration_seconds = 1,
                                                                      .acquire_time = 9, .renew_time = 9,
                                                                      .leader_transitions = 2 },
                                                   &l),
                         0);
        assert_string_equal(l.holder_identity, "");
        assert_int_equal(l.lease_duration_seconds, 1);
        assert_int_equal(l.renew_time, 9);
        assert_int_equal(mr_leader_record_to_lease(&(MrLeaderRecord){}, &l), 0);
        assert_null(l.holder_identity);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_config),
                cmocka_unit_test(test_create_and_renew),
                cmocka_unit_test(test_takeover_after_expiry),
                cmocka_unit_test(test_live_leader_keeps_lease),
                cmocka_unit_test(test_clock_skew),
                cmocka_unit_test(test_renew_deadline_miss),
                cmocka_unit_test(test_slow_answer),
                cmocka_unit_test(test_conflicting_writes),
                cmocka_unit_test(test_release),
                cmocka_unit_test(test_other_holder_is_lost_now),
                cmocka_unit_test(test_never_two_leaders),
                cmocka_unit_test(test_lease_glue),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
