/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sim.c — one simulated cluster behind one handle (see sim.h): the
 * simulated clock, the store (with its audit log), the scenario, the
 * controllers, the data plane (when asked for) and the HTTP API server,
 * started in that order and stopped in reverse: the server first (no more
 * requests, every watch ended), then the data plane (every socket closed),
 * the controller thread, then the store.
 */
#include <fcntl.h>
#include <stdio.h>

#include "api.h"
#include "controllers.h"
#include "sim.h"

struct Sim {
        SimClock clock;
        SimStore *store;
        SimFaults faults;
        SimApi api;
        SimHttp *http;
        SimControllers *controllers;
        SimDataplane *dataplane;
        int audit_fd;
        char address[300];
        char url[320];
};

int sim_start(const SimOptions *opts, Sim **ret, MrError *err)
{
        const char *listen = isempty(opts->listen) ? "127.0.0.1:0" : opts->listen;
        Sim *sim;
        int r;

        if (opts->speed < 0)
                return mr_error_set(err, -MR_ECONFIG, "speed must be > 0");
        if (opts->tls && (isempty(opts->tls_cert) || isempty(opts->tls_key)))
                return mr_error_set(err, -MR_ECONFIG, "TLS needs both a certificate and a key");
        sim = calloc(1, sizeof(*sim));
        if (!sim)
                return -ENOMEM;
        sim->audit_fd = -1;
        sim_clock_init(&sim->clock, NULL, opts->speed > 0 ? opts->speed : 1.0);

        if (opts->audit_path) {
                sim->audit_fd = open(opts->audit_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                if (sim->audit_fd < 0) {
                        r = mr_error_set(err, -errno, "audit log %s: %m", opts->audit_path);
                        sim_stop(sim);
                        return r;
                }
        }
        if ((r = sim_store_new(&sim->clock, sim->audit_fd, &sim->store)) < 0) {
                sim_stop(sim);
                return mr_error_set(err, r, "cannot create the store: %s", mr_strerror(r));
        }
        sim_store_set_seed(sim->store, opts->seed ? opts->seed : 1);

        if (opts->scenario_data)
                r = sim_scenario_load_data(sim->store, opts->scenario_data, opts->scenario_size, "scenario",
                                           &sim->faults, err);
        else if (opts->scenario_path)
                r = sim_scenario_load_file(sim->store, opts->scenario_path, &sim->faults, err);
        else
                r = 0;
        if (r < 0) {
                sim_stop(sim);
                return r;
        }

        SimControllersOptions co = {.seed = opts->seed, .clock = &sim->clock};
        if ((r = sim_controllers_start(sim->store, &co, &sim->controllers)) < 0) {
                sim_stop(sim);
                return mr_error_set(err, r, "cannot start the controllers: %s", mr_strerror(r));
        }

        if (opts->dataplane && (r = sim_dataplane_start(sim->store, opts->dataplane_options, &sim->dataplane)) < 0) {
                sim_stop(sim);
                return mr_error_set(err, r, "cannot start the data plane: %s", mr_strerror(r));
        }

        sim->api = (SimApi){.store = sim->store, .faults = &sim->faults, .server_address = sim->address};
        SimHttpOptions ho = {
                .listen = listen,
                .tls_cert = opts->tls ? opts->tls_cert : NULL,
                .tls_key = opts->tls ? opts->tls_key : NULL,
                .token = opts->token,
        };
        if ((r = sim_http_start(&sim->api, &ho, &sim->http, err)) < 0) {
                sim_stop(sim);
                return r;
        }

        /* The URL clients use: the listen host (brackets kept for IPv6) and the bound port. */
        const char *colon = strrchr(listen, ':');
        int hostlen = colon ? (int)(colon - listen) : (int)strlen(listen);
        snprintf(sim->address, sizeof(sim->address), "%.*s:%u", hostlen, listen, sim_http_port(sim->http));
        snprintf(sim->url, sizeof(sim->url), "%s://%s", opts->tls ? "https" : "http", sim->address);
        *ret = sim;
        return 0;
}

const char *sim_url(const Sim *sim)
{
        return sim->url;
}

SimStore *sim_get_store(Sim *sim)
{
        return sim->store;
}

SimFaults *sim_get_faults(Sim *sim)
{
        return &sim->faults;
}

SimDataplane *sim_get_dataplane(Sim *sim)
{
        return sim->dataplane;
}

Sim *sim_stop(Sim *sim)
{
        if (!sim)
                return NULL;
        sim->http = sim_http_stop(sim->http);
        sim->dataplane = sim_dataplane_stop(sim->dataplane);
        sim->controllers = sim_controllers_stop(sim->controllers);
        sim->store = sim_store_free(sim->store);
        if (sim->audit_fd >= 0)
                close(sim->audit_fd);
        free(sim);
        return NULL;
}
