/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api.h — the API server half of meshroll-kubesim: request routing and
 * verbs (api.c), discovery documents (discovery.c), server-side Table
 * printing (table.c) and the HTTP front end (http.c).
 *
 * The HTTP layer turns each request into a SimRequest and asks
 * sim_api_handle() for a SimResponse, so every verb can be exercised
 * without sockets; a watch answers with a SimWatch that the HTTP layer
 * streams.
 */
#pragma once

#include <stdbool.h>

#include "scenario.h"
#include "store.h"
#include "watch.h"

/* The largest request body accepted (the real server's limit is 3 MiB). */
#define SIM_API_BODY_MAX (3u << 20)

typedef struct SimRequest {
        const char *method; /* "GET" … */
        const char *path;   /* URL path, without the query */
        const char *const *query; /* decoded key, value pairs; NULL-terminated (key NULL) */
        const char *accept, *content_type, *user_agent;
        const char *body;
        size_t body_size;
} SimRequest;

typedef struct SimResponse {
        int status;
        char *body; /* owned; JSON unless content_type says otherwise */
        size_t body_size;
        const char *content_type; /* static; NULL → application/json */
        int retry_after;          /* > 0: send Retry-After */
        SimWatch *watch;          /* owned: stream this instead of body */
        usec_t delay;             /* real µs to wait before answering (fault injection) */
} SimResponse;

void sim_response_done(SimResponse *r);

typedef struct SimApi {
        SimStore *store;         /* borrowed */
        SimFaults *faults;       /* borrowed, may be NULL; read under the store lock */
        bool *stopping;          /* borrowed; set under the store lock to end watches */
        const char *server_address; /* "127.0.0.1:PORT" for /api's serverAddressByClientCIDRs */
        usec_t bookmark_interval;   /* 0: 60 s */
} SimApi;

/* Handles one request; always fills *resp (errors are Status bodies). */
void sim_api_handle(SimApi *api, const SimRequest *req, SimResponse *resp);

/* A Status body for an error (code, reason, message; kind/name for details, may be NULL). */
char *sim_status_json(int code, const char *reason, const char *message, const SimKind *k, const char *name,
                      json_object *causes, int retry_after);

/*
 * Discovery (store lock held): answers /version, /api, /api/v1, /apis,
 * /apis/<g> and /apis/<g>/<v>. Returns 1 and fills *ret_body / *ret_status
 * when path is a discovery path, 0 when it is not, -ENOMEM.
 */
int sim_discovery_handle(SimStore *s, const char *path, const char *server_address, char **ret_body,
                         int *ret_status);

/* true when the Accept header asks for a meta.k8s.io Table. */
bool sim_table_wanted(const char *accept);

/*
 * Renders objs (borrowed, n of them, all of kind k) as a meta.k8s.io/v1
 * Table with the columns a real server prints for k (store lock held, for
 * CRD printer columns). include_object: "None", "Object" or NULL/"Metadata".
 * rv and cont go to the list metadata (cont may be NULL). Returns 0 and an
 * owned *ret, or -ENOMEM.
 */
int sim_table_render(SimStore *s, const SimKind *k, json_object *const *objs, size_t n, const char *rv,
                     const char *cont, const char *include_object, usec_t now, char **ret);

/* The human age kubectl shows ("5d", "3m20s"): Go's duration.HumanDuration. Returns buf. */
char *sim_human_duration(usec_t d, char *buf, size_t size);

typedef struct SimHttp SimHttp;

typedef struct SimHttpOptions {
        const char *listen;          /* "127.0.0.1:0" */
        const char *tls_cert, *tls_key; /* PEM files, both or neither */
        const char *token;           /* require this bearer token when set */
} SimHttpOptions;

/* Starts serving api (borrowed, must outlive the server). err names what failed. */
int sim_http_start(SimApi *api, const SimHttpOptions *o, SimHttp **ret, MrError *err);
/* The port actually bound. */
unsigned sim_http_port(const SimHttp *h);
/* Stops: ends watches, closes connections, joins threads. Returns NULL. */
SimHttp *sim_http_stop(SimHttp *h);
