/* SPDX-License-Identifier: Apache-2.0 */
/* sim-env.c — see sim-env.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "meshroll/json-util.h"
#include "sim-env.h"

int sim_env_setup(void **state)
{
        Env *e = calloc(1, sizeof *e);
        assert_non_null(e);
        mr_fake_clock_init(&e->fake, 1000 * USEC_PER_SEC, 1767225600 * USEC_PER_SEC);
        sim_clock_init(&e->clock, &e->fake.clock, 1.0);
        assert_int_equal(sim_store_new(&e->clock, -1, &e->store), 0);
        SimControllersOptions o = { .seed = 5 };
        assert_int_equal(sim_controllers_new_manual(e->store, &o, &e->ctl), 0);
        *state = e;
        return 0;
}

int sim_env_teardown(void **state)
{
        Env *e = *state;
        sim_controllers_stop(e->ctl);
        sim_store_free(e->store);
        free(e);
        return 0;
}

void sim_env_settle(Env *e)
{
        assert_int_equal(sim_controllers_settle(e->ctl, 300), 0);
}

void sim_env_run_for(Env *e, usec_t d)
{
        usec_t target = sim_store_now(e->store) + d;
        sim_env_settle(e);
        for (int i = 0; i < 10000; i++) {
                usec_t next = sim_controllers_next_due(e->ctl), now = sim_store_now(e->store);
                if (next == USEC_INFINITY || next > target)
                        break;
                if (next > now)
                        e->fake.monotonic += next - now;
                sim_env_settle(e);
        }
        usec_t now = sim_store_now(e->store);
        if (target > now)
                e->fake.monotonic += target - now;
        sim_env_settle(e);
}

void sim_env_create(Env *e, const SimKind *k, const char *json)
{
        json_object *o = NULL;
        MrError err = {};
        assert_int_equal(mr_json_parse(json, strlen(json), 1 << 20, &o), 0);
        sim_store_lock(e->store);
        int r = sim_store_create(e->store, k, o, "test", NULL, &err);
        sim_store_unlock(e->store);
        if (r < 0)
                fail_msg("create: %s", err.message);
}

void sim_env_add_node(Env *e, const char *name, const char *extra_spec, const char *alloc)
{
        char buf[1024];
        snprintf(buf, sizeof buf,
                 "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"%s\",\"labels\":{\"kubernetes.io/hostname\":"
                 "\"%s\",\"disk\":\"%s\"}},\"spec\":{%s},\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"10.1.0.%zu\"}],"
                 "\"allocatable\":%s}}",
                 name, name, strlen(name) % 2 ? "ssd" : "hdd", extra_spec ? extra_spec : "", strlen(name), alloc ? alloc : "{\"pods\":\"110\"}");
        sim_env_create(e, &SIM_NODES, buf);
}

/* A borrowed copy of a stored object's field, under the lock. */
const char *sim_env_field(Env *e, const SimKind *k, const char *ns, const char *name, const char *a, const char *b,
                          const char *c)
{
        static char buf[512];
        sim_store_lock(e->store);
        const char *v = mr_json_get_str(sim_store_get(e->store, k, ns, name), a, b, c, NULL);
        snprintf(buf, sizeof buf, "%s", strempty(v));
        sim_store_unlock(e->store);
        return buf;
}

