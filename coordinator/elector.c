/* SPDX-License-Identifier: Apache-2.0 */
/* elector.c — see elector.h. */
#include "meshroll/lease.h"
#include "meshroll/log.h"
#include "elector.h"

struct Elector {
        sd_event *event;
        KubeClient *client;
        char *namespace, *name;
        MrLeaderElector *state;
        sd_event_source *timer;
        elector_change_t on_change;
        void *userdata;
        bool leading;
        char *last_error;
};

static void arm(Elector *el)
{
        uint64_t now;
        usec_t period = mr_leader_retry_period(el->state);
        usec_t jitter = period / 10;
        usec_t delay = period - jitter + (jitter ? (usec_t)random() % (2 * jitter) : 0);
        usec_t deadline = mr_leader_deadline(el->state);

        (void)sd_event_now(el->event, CLOCK_MONOTONIC, &now);
        usec_t when = now + delay;
        /* Leader: wake by the deadline too (mr_leader_deadline is in the elector's monotonic clock). */
        if (deadline != USEC_INFINITY && deadline > now && deadline < when)
                when = deadline;
        (void)sd_event_source_set_time(el->timer, when);
        (void)sd_event_source_set_enabled(el->timer, SD_EVENT_ONESHOT);
}

static void set_leading(Elector *el, bool leading)
{
        if (el->leading == leading)
                return;
        el->leading = leading;
        if (leading)
                log_notice("Acquired the lease %s/%s: leading", el->namespace, el->name);
        else
                log_warning("Lost the lease %s/%s: following", el->namespace, el->name);
        if (el->on_change)
                el->on_change(el, leading, el->userdata);
}

static void failed(Elector *el, int r, const KubeStatus *st, const char *what)
{
        const char *m = st && st->message[0] ? st->message : mr_strerror(r);
        if (!streq_ptr(el->last_error, m)) {
                log_warning_errno(r, "Leader election: cannot %s the lease %s/%s: %s", what, el->namespace, el->name, m);
                free(el->last_error);
                el->last_error = strdup(m);
        }
}

static void round_once(Elector *el)
{
        _cleanup_(kube_lease_done) KubeLease lease = {};
        MrLeaderRecord observed, record;
        KubeStatus st = {};
        bool exists;
        int r;

        r = kube_lease_get(el->client, el->namespace, el->name, &lease, &st);
        if (r < 0 && r != -ENOENT) {
                failed(el, r, &st, "read");
                return;
        }
        exists = r >= 0;
        if (exists)
                mr_leader_record_from_lease(&lease, &observed);

        MrLeaderAction a = mr_leader_observe(el->state, exists ? &observed : NULL, lease.resource_version, &record);
        switch (a) {
        case MR_LEADER_CREATE:
        case MR_LEADER_WRITE: {
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
                        break;
                }
                MrLeaderRecord answer;
                mr_leader_record_from_lease(&lease, &answer);
                mr_leader_write_done(el->state, 0, &answer, lease.resource_version);
                free(el->last_error);
                el->last_error = NULL;
                break;
        }
        case MR_LEADER_LOST:
        case MR_LEADER_FOLLOW:
                break;
        }
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        Elector *el = userdata;
        round_once(el);
        set_leading(el, mr_leader_check(el->state) == 0);
        arm(el);
        return 0;
}

int elector_new(sd_event *e, KubeClient *client, const char *ns, const char *name, const MrLeaderConfig *config,
                elector_change_t on_change, void *userdata, Elector **ret, MrError *err)
{
        _cleanup_(elector_freep) Elector *el = calloc(1, sizeof(Elector));
        int r;

        if (!el)
                return mr_error_set(err, -ENOMEM, "out of memory");
        el->event = sd_event_ref(e);
        el->client = client;
        el->on_change = on_change;
        el->userdata = userdata;
        el->namespace = strdup(ns);
        el->name = strdup(name);
        if (!el->namespace || !el->name)
                return mr_error_set(err, -ENOMEM, "out of memory");
        r = mr_leader_new(config, &el->state, err);
        if (r < 0)
                return r;
        r = sd_event_add_time(e, &el->timer, CLOCK_MONOTONIC, 0, 0, on_timer, el);
        if (r < 0)
                return mr_error_set(err, r, "cannot add the election timer: %s", mr_strerror(r));
        (void)sd_event_source_set_enabled(el->timer, SD_EVENT_ONESHOT); /* first round at once */
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

        if (!el || mr_leader_release(el->state, &record) <= 0)
                return;
        if (kube_lease_get(el->client, el->namespace, el->name, &lease, &st) < 0 ||
            mr_leader_record_to_lease(&record, &lease) < 0 || kube_lease_update(el->client, &lease, &st) < 0)
                log_debug("Could not release the lease %s/%s (followers will wait it out)", el->namespace, el->name);
        else
                log_info("Released the lease %s/%s", el->namespace, el->name);
        /* Not a loss: no warning, but whoever acts on leadership must stop. */
        el->leading = false;
        if (el->on_change)
                el->on_change(el, false, el->userdata);
}

Elector *elector_free(Elector *el)
{
        if (!el)
                return NULL;
        sd_event_source_disable_unref(el->timer);
        mr_leader_free(el->state);
        sd_event_unref(el->event);
        free(el->namespace);
        free(el->name);
        free(el->last_error);
        free(el);
        return NULL;
}
