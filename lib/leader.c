/* SPDX-License-Identifier: Apache-2.0 */
/*
 * leader.c — client-go leader election as a pure state machine; see
 * leader.h for the loop around it and the semantics.
 *
 * State: the last record seen (a private copy of its holder and its
 * resourceVersion) with the monotonic time it was first seen, whether we
 * lead and since when our last successful write was decided, and at most
 * one write in flight (decided_at remembers when it was decided). Loss of
 * leadership is noticed in three places — observe, check, and a record
 * naming another holder — and is reported by observe exactly once through
 * lost_unreported, so the loop sees LOST even if check() noticed first.
 *
 * The elector never calls into lease.c: it only reads and writes KubeLease
 * fields, so its tests link without the HTTP client.
 *
 * Locking: one mutex per elector, taken by every exported function that
 * touches the state (each is short and never blocks on I/O), so the
 * coordinator's election thread can run rounds while the main thread fences
 * its writes with mr_leader_check(). A round spans two calls (observe, then
 * write_done after the HTTP write); between them the state is consistent
 * (one write pending, decided_at remembered) and check() may run.
 */
#include <pthread.h>

#include "meshroll/leader.h"

#define JITTER_FACTOR 1.2 /* client-go's JitterFactor: renew_deadline must exceed retry_period by it */

struct MrLeaderElector {
        pthread_mutex_t lock;        /* guards everything below but the configuration */
        char *identity;
        usec_t lease_duration, renew_deadline, retry_period;
        const MrClock *clock;

        /* what we last saw */
        bool have_observed;
        MrLeaderRecord observed;     /* holder_identity points at observed_holder */
        char *observed_holder;
        char *observed_rv;
        usec_t observed_time;        /* monotonic, when this record was first seen */

        /* our leadership */
        bool leading;
        bool lost_unreported;
        usec_t renewed_at;           /* monotonic, when the last successful write was decided */

        /* the write in flight */
        bool pending;
        usec_t decided_at;
        MrLeaderRecord pending_record;
};

int mr_leader_new(const MrLeaderConfig *config, MrLeaderElector **ret, MrError *err)
{
        if (!config || !ret)
                return -EINVAL;

        usec_t lease = config->lease_duration ? config->lease_duration : 15 * USEC_PER_SEC;
        usec_t renew = config->renew_deadline ? config->renew_deadline : 10 * USEC_PER_SEC;
        usec_t retry = config->retry_period ? config->retry_period : 2 * USEC_PER_SEC;

        if (isempty(config->identity))
                return mr_error_set(err, -EINVAL, "leader election: identity must not be empty");
        if (lease <= renew)
                return mr_error_set(err, -EINVAL, "leader election: leaseDuration must be greater than renewDeadline");
        if ((double)renew <= JITTER_FACTOR * (double)retry)
                return mr_error_set(err, -EINVAL,
                                    "leader election: renewDeadline must be greater than retryPeriod*JitterFactor");
        if (lease % USEC_PER_SEC != 0 || lease / USEC_PER_SEC > INT32_MAX)
                return mr_error_set(err, -EINVAL, "leader election: leaseDuration must be a whole number of seconds");

        MrLeaderElector *e = calloc(1, sizeof(*e));
        if (!e)
                return mr_error_set(err, -ENOMEM, "out of memory");
        e->identity = strdup(config->identity);
        if (!e->identity) {
                free(e);
                return mr_error_set(err, -ENOMEM, "out of memory");
        }
        (void)pthread_mutex_init(&e->lock, NULL); /* cannot fail for a default mutex on Linux */
        e->lease_duration = lease;
        e->renew_deadline = renew;
        e->retry_period = retry;
        e->clock = config->clock;
        *ret = e;
        return 0;
}

MrLeaderElector *mr_leader_free(MrLeaderElector *e)
{
        if (!e)
                return NULL;
        (void)pthread_mutex_destroy(&e->lock);
        free(e->identity);
        free(e->observed_holder);
        free(e->observed_rv);
        free(e);
        return NULL;
}

static bool holder_is_empty(const MrLeaderRecord *r)
{
        return isempty(r->holder_identity);
}

static bool records_equal(const MrLeaderRecord *a, const MrLeaderRecord *b)
{
        return streq(strempty(a->holder_identity), strempty(b->holder_identity)) &&
               a->lease_duration_seconds == b->lease_duration_seconds && a->acquire_time == b->acquire_time &&
               a->renew_time == b->renew_time && a->leader_transitions == b->leader_transitions;
}

/* Stores a copy of r as the observed record, first seen at now. */
static int set_observed(MrLeaderElector *e, const MrLeaderRecord *r, const char *rv, usec_t now)
{
        char *holder = strdup(strempty(r->holder_identity));
        char *rv_copy = rv ? strdup(rv) : NULL;
        if (!holder || (rv && !rv_copy)) {
                free(holder);
                free(rv_copy);
                return -ENOMEM;
        }
        free(e->observed_holder);
        free(e->observed_rv);
        e->observed_holder = holder;
        e->observed_rv = rv_copy;
        e->observed = *r;
        e->observed.holder_identity = holder;
        e->observed_time = now;
        e->have_observed = true;
        return 0;
}

/* Leading, but the last successful write is too old: leadership has lapsed. */
static void expire_if_lapsed(MrLeaderElector *e, usec_t now)
{
        if (e->leading && now >= e->renewed_at + e->renew_deadline) {
                e->leading = false;
                e->lost_unreported = true;
        }
}

static void lose(MrLeaderElector *e)
{
        if (e->leading) {
                e->leading = false;
                e->lost_unreported = true;
        }
}

static MrLeaderAction observe_locked(MrLeaderElector *e, const MrLeaderRecord *observed,
                                     const char *resource_version, MrLeaderRecord *ret_record)
{
        usec_t now = mr_now_monotonic(e->clock);
        usec_t wall = mr_now_realtime(e->clock);

        e->pending = false;
        expire_if_lapsed(e, now);

        bool observed_ok = true;
        if (!observed) {
                /* Deleted under a leader: whoever deleted it meant it. */
                lose(e);
        } else {
                if (!e->have_observed || !records_equal(observed, &e->observed) ||
                    !streq_ptr(resource_version, e->observed_rv))
                        observed_ok = set_observed(e, observed, resource_version, now) >= 0;
                /* Another holder, or a lease cleared by someone else: we no longer lead. */
                if (!streq(strempty(observed->holder_identity), e->identity))
                        lose(e);
        }

        if (e->lost_unreported) {
                e->lost_unreported = false;
                return MR_LEADER_LOST;
        }

        MrLeaderRecord r = {
                .holder_identity = e->identity,
                .lease_duration_seconds = (int32_t)(e->lease_duration / USEC_PER_SEC),
                .acquire_time = wall,
                .renew_time = wall,
        };

        if (!observed) {
                e->pending = true;
                e->decided_at = now;
                e->pending_record = r;
                *ret_record = r;
                return MR_LEADER_CREATE;
        }

        /* Out of memory for the observation: judging expiry would be a guess, so wait. */
        if (!observed_ok)
                return MR_LEADER_FOLLOW;

        if (!holder_is_empty(observed) && !streq(observed->holder_identity, e->identity)) {
                usec_t valid_until = e->observed_time +
                                     (usec_t)MAX(e->observed.lease_duration_seconds, 0) * USEC_PER_SEC;
                if (valid_until > now)
                        return MR_LEADER_FOLLOW;
        }

        if (streq(strempty(observed->holder_identity), e->identity)) {
                r.acquire_time = observed->acquire_time;
                r.leader_transitions = observed->leader_transitions;
        } else
                r.leader_transitions = observed->leader_transitions + (observed->leader_transitions < INT32_MAX);

        e->pending = true;
        e->decided_at = now;
        e->pending_record = r;
        *ret_record = r;
        return MR_LEADER_WRITE;
}

MrLeaderAction mr_leader_observe(MrLeaderElector *e, const MrLeaderRecord *observed, const char *resource_version,
                                 MrLeaderRecord *ret_record)
{
        pthread_mutex_lock(&e->lock);
        MrLeaderAction a = observe_locked(e, observed, resource_version, ret_record);
        pthread_mutex_unlock(&e->lock);
        return a;
}

int mr_leader_renew(MrLeaderElector *e, MrLeaderRecord *ret_record)
{
        pthread_mutex_lock(&e->lock);
        usec_t now = mr_now_monotonic(e->clock);
        expire_if_lapsed(e, now);
        if (!e->leading || !e->have_observed || !streq(strempty(e->observed.holder_identity), e->identity)) {
                pthread_mutex_unlock(&e->lock);
                return 0;
        }
        MrLeaderRecord r = {
                .holder_identity = e->identity,
                .lease_duration_seconds = (int32_t)(e->lease_duration / USEC_PER_SEC),
                .acquire_time = e->observed.acquire_time,
                .renew_time = mr_now_realtime(e->clock),
                .leader_transitions = e->observed.leader_transitions,
        };
        e->pending = true;
        e->decided_at = now;
        e->pending_record = r;
        *ret_record = r;
        pthread_mutex_unlock(&e->lock);
        return 1;
}

void mr_leader_write_done(MrLeaderElector *e, int error, const MrLeaderRecord *answer,
                          const char *new_resource_version)
{
        pthread_mutex_lock(&e->lock);
        if (!e->pending || error < 0) {
                /* a leader keeps trying until its deadline; a candidate just lost a race */
                e->pending = false;
                pthread_mutex_unlock(&e->lock);
                return;
        }
        e->pending = false;

        usec_t now = mr_now_monotonic(e->clock);
        e->leading = true;
        e->lost_unreported = false;
        e->renewed_at = e->decided_at;
        (void)set_observed(e, answer ? answer : &e->pending_record, new_resource_version, now);
        expire_if_lapsed(e, now); /* an answer that took longer than the deadline */
        pthread_mutex_unlock(&e->lock);
}

int mr_leader_check(MrLeaderElector *e)
{
        pthread_mutex_lock(&e->lock);
        expire_if_lapsed(e, mr_now_monotonic(e->clock));
        bool leading = e->leading;
        pthread_mutex_unlock(&e->lock);
        return leading ? 0 : -MR_ELOSTLEASE;
}

bool mr_leader_is_leader(MrLeaderElector *e)
{
        return mr_leader_check(e) == 0;
}

usec_t mr_leader_deadline(MrLeaderElector *e)
{
        pthread_mutex_lock(&e->lock);
        usec_t d = e->leading ? e->renewed_at + e->renew_deadline : USEC_INFINITY;
        pthread_mutex_unlock(&e->lock);
        return d;
}

usec_t mr_leader_retry_period(const MrLeaderElector *e)
{
        return e->retry_period; /* configuration: set once, read without the lock */
}

usec_t mr_leader_renew_deadline(const MrLeaderElector *e)
{
        return e->renew_deadline;
}

static int release_locked(MrLeaderElector *e, MrLeaderRecord *ret_record)
{
        bool named = e->have_observed && streq(strempty(e->observed.holder_identity), e->identity);
        bool was_leading = e->leading;

        e->leading = false;
        e->lost_unreported = false;
        e->pending = false;
        if (!was_leading && !named)
                return 0;

        usec_t wall = mr_now_realtime(e->clock);
        *ret_record = (MrLeaderRecord){
                .holder_identity = "",
                .lease_duration_seconds = 1,
                .acquire_time = wall,
                .renew_time = wall,
                .leader_transitions = e->have_observed ? e->observed.leader_transitions : 0,
        };
        return 1;
}

int mr_leader_release(MrLeaderElector *e, MrLeaderRecord *ret_record)
{
        pthread_mutex_lock(&e->lock);
        int r = release_locked(e, ret_record);
        pthread_mutex_unlock(&e->lock);
        return r;
}

void mr_leader_record_from_lease(const KubeLease *l, MrLeaderRecord *ret)
{
        *ret = (MrLeaderRecord){
                .holder_identity = l->holder_identity,
                .lease_duration_seconds = l->lease_duration_seconds,
                .acquire_time = l->acquire_time,
                .renew_time = l->renew_time,
                .leader_transitions = l->lease_transitions,
        };
}

int mr_leader_record_to_lease(const MrLeaderRecord *r, KubeLease *l)
{
        char *holder = NULL;
        if (r->holder_identity) {
                holder = strdup(r->holder_identity);
                if (!holder)
                        return -ENOMEM;
        }
        free(l->holder_identity);
        l->holder_identity = holder;
        l->lease_duration_seconds = r->lease_duration_seconds;
        l->acquire_time = r->acquire_time;
        l->renew_time = r->renew_time;
        l->lease_transitions = r->leader_transitions;
        return 0;
}
