/* SPDX-License-Identifier: Apache-2.0 */
/* elector.c — see elector.h for the design (why a thread, what is shared, the locking rule). */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "meshroll/lease.h"
#include "meshroll/log.h"
#include "elector.h"

struct Elector {
        /* set up before the thread starts, then read-only */
        char *namespace, *name;
        MrLeaderElector *state;      /* locks itself */
        const MrClock *clock;        /* the state machine's (NULL: the system's) */
        int notify_fd;               /* eventfd: the thread → the main loop */

        /* the election thread's while it runs; the main thread's once joined */
        KubeClient *client;
        KubeLease last;              /* the Lease as last read or written: the fast path updates it */
        char *last_error;
        unsigned seed;               /* rand_r: the jitter */

        /* shared: under lock */
        pthread_mutex_t lock;
        pthread_cond_t wake;         /* signalled when stop is set */
        bool stop;
        bool verdict;                /* leading, as the thread last judged */
        unsigned changes;            /* how many times the verdict changed */

        /* the main thread's */
        sd_event *event;
        sd_event_source *notify_source;
        elector_change_t on_change;
        void *userdata;
        bool leading;                /* as last reported through on_change */
        unsigned delivered;          /* changes reported so far */
        pthread_t thread;
        bool running;                /* thread started and not yet joined */
};

/* ---- the election thread ------------------------------------------------------------- */

static void failed(Elector *el, int r, const KubeStatus *st, const char *what)
{
        const char *m = st && st->message[0] ? st->message : mr_strerror(r);
        if (!streq_ptr(el->last_error, m)) {
                log_warning_errno(r, "Leader election: cannot %s the lease %s/%s: %s", what, el->namespace, el->name, m);
                free(el->last_error);
                el->last_error = strdup(m);
        }
}

static void remember(Elector *el, KubeLease *lease)
{
        kube_lease_done(&el->last);
        el->last = *lease;
        *lease = (KubeLease){};
}

/*
 * client-go's fast path: a leader renews by updating the Lease it last saw, without reading it
 * first — one request instead of two against a busy API server. Whatever fails (a conflict: someone
 * else wrote it) falls back to the full round, which reports errors.
 */
static bool renew_fast(Elector *el)
{
        MrLeaderRecord record, answer;
        KubeStatus st = {};
        int r;

        if (!el->last.resource_version || mr_leader_renew(el->state, &record) <= 0)
                return false;
        r = mr_leader_record_to_lease(&record, &el->last);
        if (r >= 0)
                r = kube_lease_update(el->client, &el->last, &st);
        if (r < 0) {
                mr_leader_write_done(el->state, r, NULL, NULL);
                return false;
        }
        mr_leader_record_from_lease(&el->last, &answer);
        mr_leader_write_done(el->state, 0, &answer, el->last.resource_version);
        free(el->last_error);
        el->last_error = NULL;
        return true;
}

/* One round of tryAcquireOrRenew: the fast path, or read the Lease, let the state machine decide, write. */
static void round_once(Elector *el)
{
        _cleanup_(kube_lease_done) KubeLease lease = {};
        MrLeaderRecord observed, record;
        KubeStatus st = {};
        bool exists;
        int r;

        if (renew_fast(el))
                return;
        r = kube_lease_get(el->client, el->namespace, el->name, &lease, &st);
        if (r < 0 && r != -ENOENT) {
                failed(el, r, &st, "read");
                return;
        }
        exists = r >= 0;
        if (exists)
                mr_leader_record_from_lease(&lease, &observed);

        MrLeaderAction a = mr_leader_observe(el->state, exists ? &observed : NULL, lease.resource_version, &record);
        if (a != MR_LEADER_CREATE && a != MR_LEADER_WRITE) {
                remember(el, &lease);
                return;
        }
        if (!exists) {
                lease.namespace = strdup(el->namespace);
                lease.name = strdup(el->name);
                if (!lease.namespace || !lease.name) {
                        mr_leader_write_done(el->state, -ENOMEM, NULL, NULL);
                        return;
                }
        }
        r = mr_leader_record_to_lease(&record, &lease);
        if (r >= 0)
                r = a == MR_LEADER_CREATE ? kube_lease_create(el->client, &lease, &st)
                                          : kube_lease_update(el->client, &lease, &st);
        if (r < 0) {
                mr_leader_write_done(el->state, r, NULL, NULL);
                if (r != -MR_ECONFLICT && r != -EEXIST)
                        failed(el, r, &st, "write");
                return;
        }
        MrLeaderRecord answer;
        mr_leader_record_from_lease(&lease, &answer);
        mr_leader_write_done(el->state, 0, &answer, lease.resource_version);
        remember(el, &lease);
        free(el->last_error);
        el->last_error = NULL;
}

/* How long to wait before the next round: the retry period ±10 %, or less to wake at the deadline. */
static usec_t next_wait(Elector *el)
{
        usec_t period = mr_leader_retry_period(el->state);
        usec_t jitter = period / 10;
        usec_t wait = period - jitter + (jitter ? (usec_t)rand_r(&el->seed) % (2 * jitter) : 0);
        usec_t deadline = mr_leader_deadline(el->state); /* in the state machine's monotonic clock */
        usec_t now = mr_now_monotonic(el->clock);

        if (deadline != USEC_INFINITY && deadline > now && deadline - now < wait)
                wait = deadline - now;
        return wait;
}

static void publish(Elector *el, bool leading)
{
        bool changed;

        pthread_mutex_lock(&el->lock);
        changed = el->verdict != leading;
        if (changed) {
                el->verdict = leading;
                el->changes++;
        }
        pthread_mutex_unlock(&el->lock);
        if (!changed)
                return;
        /* Logged here, when it happens, even if the main loop is busy. */
        if (leading)
                log_notice("Acquired the lease %s/%s: leading", el->namespace, el->name);
        else
                log_warning("Lost the lease %s/%s: following", el->namespace, el->name);
        uint64_t one = 1;
        if (write(el->notify_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
                log_error_errno(-errno, "Leader election: cannot wake the event loop: %m");
}

static void *election_thread(void *userdata)
{
        Elector *el = userdata;

        for (;;) {
                round_once(el);
                publish(el, mr_leader_check(el->state) == 0);

                /* Sleep until the next round or until told to stop, whichever comes first. */
                struct timespec until;
                usec_t wait = next_wait(el);
                (void)clock_gettime(CLOCK_MONOTONIC, &until);
                usec_t t = (usec_t)until.tv_sec * USEC_PER_SEC + (usec_t)until.tv_nsec / NSEC_PER_USEC + wait;
                until = (struct timespec){ .tv_sec = (time_t)(t / USEC_PER_SEC),
                                           .tv_nsec = (long)(t % USEC_PER_SEC * NSEC_PER_USEC) };
                pthread_mutex_lock(&el->lock);
                while (!el->stop && pthread_cond_timedwait(&el->wake, &el->lock, &until) != ETIMEDOUT)
                        ;
                bool stop = el->stop;
                pthread_mutex_unlock(&el->lock);
                if (stop)
                        return NULL;
        }
}

/* ---- the main thread ------------------------------------------------------------------- */

static void deliver(Elector *el, bool leading)
{
        el->leading = leading;
        if (el->on_change)
                el->on_change(el, leading, el->userdata);
}

static int on_notify(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        Elector *el = userdata;
        uint64_t n;
        bool verdict;
        unsigned changes;

        (void)!read(fd, &n, sizeof(n)); /* resets the counter; EAGAIN when a previous wake-up took it */
        pthread_mutex_lock(&el->lock);
        verdict = el->verdict;
        changes = el->changes;
        pthread_mutex_unlock(&el->lock);
        if (changes == el->delivered)
                return 0;
        /* Changed and changed back while the loop was busy: the engines must still see the gap. */
        if (verdict == el->leading)
                deliver(el, !verdict);
        deliver(el, verdict);
        el->delivered = changes;
        return 0;
}

static void stop_thread(Elector *el)
{
        if (!el->running)
                return;
        pthread_mutex_lock(&el->lock);
        el->stop = true;
        pthread_cond_signal(&el->wake);
        pthread_mutex_unlock(&el->lock);
        (void)pthread_join(el->thread, NULL);
        el->running = false;
        /* Nothing the thread said after this point may reach on_change. */
        (void)sd_event_source_set_enabled(el->notify_source, SD_EVENT_OFF);
}

int elector_new(sd_event *e, KubeClient *client, const char *ns, const char *name, const MrLeaderConfig *config,
                elector_change_t on_change, void *userdata, Elector **ret, MrError *err)
{
        _cleanup_(elector_freep) Elector *el = NULL;
        pthread_condattr_t ca;
        MrError inner = {};
        int r;

        /* The lock and the condition variable first: elector_free tears them down. */
        Elector *fresh = calloc(1, sizeof(Elector));
        if (!fresh)
                return mr_error_set(err, -ENOMEM, "out of memory");
        r = -pthread_condattr_init(&ca);
        if (r >= 0) {
                (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the thread's waits */
                r = -pthread_cond_init(&fresh->wake, &ca);
                (void)pthread_condattr_destroy(&ca);
        }
        if (r < 0) {
                free(fresh);
                return mr_error_set(err, r, "leader election: cannot set up a condition variable: %s", mr_strerror(r));
        }
        (void)pthread_mutex_init(&fresh->lock, NULL); /* cannot fail for a default mutex on Linux */
        el = fresh;
        el->notify_fd = -EBADF;
        el->event = sd_event_ref(e);
        el->on_change = on_change;
        el->userdata = userdata;
        el->clock = config ? config->clock : NULL;
        el->seed = (unsigned)getpid() ^ (unsigned)mr_now_monotonic(NULL);
        el->namespace = strdup(ns);
        el->name = strdup(name);
        if (!el->namespace || !el->name)
                return mr_error_set(err, -ENOMEM, "out of memory");
        r = mr_leader_new(config, &el->state, err);
        if (r < 0)
                return r;

        /*
         * The thread's own client. A request is given up after the renew deadline less a retry
         * period (8 s by default): a busy server may answer slowly and still in time (a renewal
         * counts from when it was decided, leader.h), but later is no use. The same bound caps how
         * long a stop waits for a round.
         */
        usec_t timeout = mr_leader_renew_deadline(el->state) - mr_leader_retry_period(el->state);
        KubeClientOptions co = { .qps = -1, .max_retries = 1, .request_timeout = timeout, .connect_timeout = timeout,
                                 .backoff_cap = mr_leader_retry_period(el->state) };
        r = kube_client_new_like(client, &co, &el->client, &inner);
        if (r < 0)
                return mr_error_set(err, r, "leader election: cannot make the election's API client: %s",
                                    inner.message[0] ? inner.message : mr_strerror(r));

        el->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (el->notify_fd < 0) {
                r = -errno;
                return mr_error_set(err, r, "leader election: cannot create an eventfd: %s", mr_strerror(r));
        }
        r = sd_event_add_io(e, &el->notify_source, el->notify_fd, EPOLLIN, on_notify, el);
        if (r < 0)
                return mr_error_set(err, r, "leader election: cannot watch the eventfd: %s", mr_strerror(r));
        /* A loss must reach the engines before their next tick does. */
        (void)sd_event_source_set_priority(el->notify_source, SD_EVENT_PRIORITY_IMPORTANT);

        /* Signals stay with the main thread (its sd-event signal sources): the thread blocks them all. */
        sigset_t all, old;
        sigfillset(&all);
        (void)pthread_sigmask(SIG_SETMASK, &all, &old);
        r = -pthread_create(&el->thread, NULL, election_thread, el);
        (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0)
                return mr_error_set(err, r, "leader election: cannot start its thread: %s", mr_strerror(r));
        el->running = true;
        *ret = TAKE_PTR(el);
        return 0;
}

MrLeaderElector *elector_state(Elector *el)
{
        return el->state;
}

void elector_release(Elector *el)
{
        _cleanup_(kube_lease_done) KubeLease lease = {};
        MrLeaderRecord record;
        KubeStatus st;

        if (!el)
                return;
        stop_thread(el);
        int k = mr_leader_release(el->state, &record);
        if (k > 0) {
                if (kube_lease_get(el->client, el->namespace, el->name, &lease, &st) < 0 ||
                    mr_leader_record_to_lease(&record, &lease) < 0 || kube_lease_update(el->client, &lease, &st) < 0)
                        log_debug("Could not release the lease %s/%s (followers will wait it out)", el->namespace,
                                  el->name);
                else
                        log_info("Released the lease %s/%s", el->namespace, el->name);
        }
        /* Not a loss: no warning, but whoever acts on leadership must stop. */
        if (k > 0 || el->leading)
                deliver(el, false);
}

Elector *elector_free(Elector *el)
{
        if (!el)
                return NULL;
        stop_thread(el);
        sd_event_source_disable_unref(el->notify_source);
        if (el->notify_fd >= 0)
                (void)close(el->notify_fd);
        kube_client_free(el->client);
        kube_lease_done(&el->last);
        mr_leader_free(el->state);
        sd_event_unref(el->event);
        free(el->namespace);
        free(el->name);
        free(el->last_error);
        (void)pthread_cond_destroy(&el->wake);
        (void)pthread_mutex_destroy(&el->lock);
        free(el);
        return NULL;
}
