/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kube-client.c — the client, one HTTP attempt, and the blocking calls
 * (see kube.h for the contract, docs/kube-client.md for the internals).
 *
 * Design:
 *  - The KubeConfig is deep-copied and CA / client certificate files are read
 *    once at creation and handed to libcurl as blobs (CURLOPT_*_BLOB), so a
 *    missing file is a creation error, not a failure of the 1000th request.
 *  - Credentials are asked for on every attempt (KubeCredentials re-reads a
 *    rotated token file itself); the Authorization header lives only in the
 *    attempt's curl_slist and is never logged.
 *  - tls-server-name is implemented the way curl users do SNI overrides: the
 *    URL names tls-server-name and CURLOPT_CONNECT_TO sends the connection
 *    to the real host, so SNI and certificate verification use the name.
 *  - Responses are buffered up to max_response_size in the write callback
 *    (curl's dynbuf "toobig" idea); one byte more aborts the transfer.
 *  - Retrying is decided by kube_retry_next() for blocking and async calls
 *    alike; the blocking path sleeps through opts.sleep (tests inject it).
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "kube-internal.h"
#include "meshroll/fileio.h"
#include "meshroll-config.h"

#define DEFAULT_QPS 5.0
#define DEFAULT_BURST 10u
#define DEFAULT_MAX_RETRIES 5u
#define DEFAULT_REQUEST_TIMEOUT (30 * USEC_PER_SEC)
#define DEFAULT_CONNECT_TIMEOUT (10 * USEC_PER_SEC)
#define DEFAULT_MAX_RESPONSE (64u << 20)
#define DEFAULT_BACKOFF_BASE (200 * USEC_PER_MSEC)
#define DEFAULT_BACKOFF_CAP (30 * USEC_PER_SEC)
#define PEM_FILE_MAX (1u << 20)
#define WATCH_TIMEOUT_SLACK 30u

/* ---- configuration copy ---------------------------------------------------------------- */

/* Reads a whole PEM file (capped). -MR_ECONFIG with a sentence on any failure. */
static int read_pem(const char *path, const char *what, char **ret, size_t *ret_size, MrError *err)
{
        _cleanup_free_ char *buf = NULL;
        size_t n;
        int r;

        r = mr_read_file(path, PEM_FILE_MAX, &buf, &n);
        if (r == -MR_ETOOBIG)
                return mr_error_set(err, -MR_ECONFIG, "%s %s: larger than %u bytes", what, path, PEM_FILE_MAX);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return mr_error_set(err, -MR_ECONFIG, "%s %s: cannot read: %s", what, path, mr_strerror(r));
        if (n == 0)
                return mr_error_set(err, -MR_ECONFIG, "%s %s: file is empty", what, path);
        *ret_size = n;
        *ret = TAKE_PTR(buf);
        return 0;
}

/* PEM material from inline data (copied), else from its file, else nothing (*ret untouched). */
static int load_pem(const char *data, size_t data_size, const char *file, const char *what, char **ret,
                    size_t *ret_size, MrError *err)
{
        if (data) {
                if (!(*ret = memdup_nul(data, data_size)))
                        return -ENOMEM;
                *ret_size = data_size;
                return 0;
        }
        return file ? read_pem(file, what, ret, ret_size, err) : 0;
}

/* Checks the server URL and prepares base_url / connect_to for tls-server-name. */
static int setup_url(KubeClient *c, MrError *err)
{
        const char *server = c->config->server;
        CURLU *u = curl_url();
        char *scheme = NULL, *host = NULL, *port = NULL;
        int r = 0;

        if (!u)
                return -ENOMEM;
        if (isempty(server) || curl_url_set(u, CURLUPART_URL, server, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
            (!streq(scheme, "http") && !streq(scheme, "https"))) {
                r = mr_error_set(err, -MR_ECONFIG, "server URL \"%s\": expected http:// or https://host[:port]",
                                 strna(server));
                goto finish;
        }
        if (endswith(server, "/")) {
                r = mr_error_set(err, -MR_ECONFIG, "server URL \"%s\": must not end with \"/\"", server);
                goto finish;
        }

        if (c->config->tls_server_name && streq(scheme, "https")) {
                char buf[1024];
                if (curl_url_set(u, CURLUPART_HOST, c->config->tls_server_name, 0) != CURLUE_OK) {
                        r = mr_error_set(err, -MR_ECONFIG, "tls-server-name \"%s\": not a host name",
                                         c->config->tls_server_name);
                        goto finish;
                }
                char *url = NULL;
                if (curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
                        r = -ENOMEM;
                        goto finish;
                }
                /* curl_url_get normalises "https://h:1" to "https://h:1/": drop the slash we add back per path */
                c->base_url = strdup(url);
                curl_free(url);
                if (c->base_url && endswith(c->base_url, "/"))
                        c->base_url[strlen(c->base_url) - 1] = 0;
                snprintf(buf, sizeof(buf), "%s:%s:%s:%s", c->config->tls_server_name, port, host, port);
                c->connect_to = strdup(buf);
                if (!c->base_url || !c->connect_to)
                        r = -ENOMEM;
        } else {
                c->base_url = strdup(server);
                if (!c->base_url)
                        r = -ENOMEM;
        }

finish:
        curl_free(scheme);
        curl_free(host);
        curl_free(port);
        curl_url_cleanup(u);
        return r;
}

static void default_sleep(usec_t d, void *userdata)
{
        struct timespec ts = { .tv_sec = (time_t)(d / USEC_PER_SEC),
                               .tv_nsec = (long)((d % USEC_PER_SEC) * NSEC_PER_USEC) };
        while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
                ;
}

int kube_client_new(const KubeConfig *config, const KubeClientOptions *opts, KubeClient **ret, MrError *err)
{
        static const KubeClientOptions none = {};
        _cleanup_(kube_client_freep) KubeClient *c = NULL;
        char ua[128];
        int r;

        if (!config || !ret)
                return -EINVAL;
        if (!opts)
                opts = &none;

        r = (int)curl_global_init(CURL_GLOBAL_DEFAULT);
        if (r != CURLE_OK)
                return -ENOMEM;

        c = calloc(1, sizeof(KubeClient));
        if (!c)
                return -ENOMEM;
        c->opts = *opts;
        if (c->opts.qps == 0)
                c->opts.qps = DEFAULT_QPS;
        if (c->opts.burst == 0)
                c->opts.burst = DEFAULT_BURST;
        if (c->opts.max_retries == 0)
                c->opts.max_retries = DEFAULT_MAX_RETRIES;
        if (c->opts.request_timeout == 0)
                c->opts.request_timeout = DEFAULT_REQUEST_TIMEOUT;
        if (c->opts.connect_timeout == 0)
                c->opts.connect_timeout = DEFAULT_CONNECT_TIMEOUT;
        if (c->opts.max_response_size == 0)
                c->opts.max_response_size = DEFAULT_MAX_RESPONSE;
        if (c->opts.backoff_base == 0)
                c->opts.backoff_base = DEFAULT_BACKOFF_BASE;
        if (c->opts.backoff_cap == 0)
                c->opts.backoff_cap = DEFAULT_BACKOFF_CAP;
        if (!c->opts.sleep)
                c->opts.sleep = default_sleep;
        snprintf(ua, sizeof(ua), "meshroll/%s", MESHROLL_VERSION);
        c->user_agent = strdup(opts->user_agent ? opts->user_agent : ua);
        c->opts.user_agent = c->user_agent;
        if (!c->user_agent)
                return -ENOMEM;
        mr_ratelimit_init(&c->limiter, c->opts.qps, c->opts.burst, c->opts.clock);

        r = kube_config_copy(config, &c->config);
        if (r < 0)
                return r;
        r = setup_url(c, err);
        if (r < 0)
                return r;

        if ((r = load_pem(c->config->ca_data, c->config->ca_data_size, c->config->ca_file, "certificate-authority",
                          &c->ca, &c->ca_size, err)) < 0 ||
            (r = load_pem(c->config->client_cert_data, c->config->client_cert_data_size, c->config->client_cert_file,
                          "client-certificate", &c->cert, &c->cert_size, err)) < 0 ||
            (r = load_pem(c->config->client_key_data, c->config->client_key_data_size, c->config->client_key_file,
                          "client-key", &c->key, &c->key_size, err)) < 0)
                return r;

        r = kube_credentials_new(c->config, c->opts.clock, &c->creds);
        if (r < 0)
                return r == -ENOMEM ? r : mr_error_set(err, -MR_ECONFIG, "credentials: %s", mr_strerror(r));

        c->easy = curl_easy_init();
        if (!c->easy)
                return -ENOMEM;

        *ret = TAKE_PTR(c);
        return 0;
}

static void free_secret(char *p, size_t size)
{
        if (p)
                explicit_bzero(p, size);
        free(p);
}

KubeClient *kube_client_free(KubeClient *c)
{
        if (!c)
                return NULL;
        kube_watch_free_all(c);
        kube_async_free_all(c);
        if (c->easy)
                curl_easy_cleanup(c->easy);
        kube_credentials_free(c->creds);
        kube_config_free(c->config);
        free(c->user_agent);
        free(c->base_url);
        free(c->connect_to);
        free(c->ca);
        free(c->cert);
        free_secret(c->key, c->key_size);
        free(c);
        return NULL;
}

int kube_client_new_like(const KubeClient *c, const KubeClientOptions *opts, KubeClient **ret, MrError *err)
{
        KubeClientOptions o = opts ? *opts : c->opts;
        if (!o.user_agent)
                o.user_agent = c->user_agent;
        if (!o.clock)
                o.clock = c->opts.clock;
        return kube_client_new(c->config, &o, ret, err);
}

const char *kube_client_namespace(const KubeClient *c)
{
        return c->config->namespace && c->config->namespace[0] ? c->config->namespace : "default";
}

const char *kube_client_server(const KubeClient *c)
{
        return c->config->server;
}

/* ---- one attempt -------------------------------------------------------------------------- */

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
        KubeTransfer *t = userdata;
        size_t n = size * nmemb;
        long code = 0;

        if (t->on_data) {
                (void)curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
                if (code >= 200 && code < 300) {
                        int r = t->on_data(t, data, n);
                        if (r < 0) {
                                t->stream_error = r;
                                return 0; /* aborts: CURLE_WRITE_ERROR */
                        }
                        return n;
                }
        }

        if (n > t->cap - t->size) {
                t->too_big = true;
                return 0;
        }
        if (t->size + n + 1 > t->alloc) {
                size_t a = MAX(t->alloc * 2, t->size + n + 1);
                a = MIN(a, t->cap + 1);
                char *p = realloc(t->body, a);
                if (!p)
                        return 0;
                t->body = p;
                t->alloc = a;
        }
        memcpy(t->body + t->size, data, n);
        t->size += n;
        t->body[t->size] = 0;
        return n;
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
        KubeTransfer *t = userdata;
        size_t n = size * nmemb;
        static const char key[] = "retry-after:";

        if (n >= 5 && strneq(data, "HTTP/", 5))
                t->retry_after[0] = 0; /* a new response (after 100 Continue or a retry) */
        else if (n > sizeof(key) - 1 && strncasecmp(data, key, sizeof(key) - 1) == 0) {
                const char *v = data + sizeof(key) - 1;
                size_t l = n - (sizeof(key) - 1);
                while (l > 0 && (*v == ' ' || *v == '\t'))
                        v++, l--;
                while (l > 0 && (v[l - 1] == '\r' || v[l - 1] == '\n' || v[l - 1] == ' '))
                        l--;
                l = MIN(l, sizeof(t->retry_after) - 1);
                memcpy(t->retry_after, v, l);
                t->retry_after[l] = 0;
        }
        return n;
}

static int add_header(struct curl_slist **l, const char *h)
{
        struct curl_slist *n = curl_slist_append(*l, h);
        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

#define SETOPT(e, o, v)                                                                                   \
        do {                                                                                               \
                if (curl_easy_setopt((e), (o), (v)) != CURLE_OK)                                          \
                        return -EINVAL;                                                                    \
        } while (0)

static int setup_tls(KubeTransfer *t, const KubeCredential *cred)
{
        KubeClient *c = t->client;
        CURL *e = t->easy;

        SETOPT(e, CURLOPT_SSL_VERIFYPEER, c->config->insecure_skip_tls_verify ? 0L : 1L);
        SETOPT(e, CURLOPT_SSL_VERIFYHOST, c->config->insecure_skip_tls_verify ? 0L : 2L);
        if (c->ca) {
                struct curl_blob b = { .data = c->ca, .len = c->ca_size, .flags = CURL_BLOB_COPY };
                SETOPT(e, CURLOPT_CAINFO_BLOB, &b);
        }
        const char *cert = c->cert, *key = c->key;
        size_t cert_size = c->cert_size, key_size = c->key_size;
        if (cred->client_cert_data && cred->client_key_data) {
                cert = cred->client_cert_data;
                cert_size = strlen(cert);
                key = cred->client_key_data;
                key_size = strlen(key);
        }
        if (cert && key) {
                struct curl_blob cb = { .data = (void *)cert, .len = cert_size, .flags = CURL_BLOB_COPY };
                struct curl_blob kb = { .data = (void *)key, .len = key_size, .flags = CURL_BLOB_COPY };
                SETOPT(e, CURLOPT_SSLCERTTYPE, "PEM");
                SETOPT(e, CURLOPT_SSLCERT_BLOB, &cb);
                SETOPT(e, CURLOPT_SSLKEYTYPE, "PEM");
                SETOPT(e, CURLOPT_SSLKEY_BLOB, &kb);
        }
        return 0;
}

void kube_client_set_write_guard(KubeClient *c, kube_write_guard_t guard, void *userdata)
{
        c->write_guard = guard;
        c->write_guard_userdata = userdata;
}

/* curl's last call before a request is sent: the client's write guard decides. */
static int prereq_cb(void *userdata, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                     int conn_local_port)
{
        KubeTransfer *t = userdata;
        KubeClient *c = t->client;
        int r = c->write_guard ? c->write_guard(t->method, t->path, c->write_guard_userdata) : 0;
        if (r >= 0)
                return CURL_PREREQFUNC_OK;
        t->guard_error = r;
        return CURL_PREREQFUNC_ABORT;
}

int kube_transfer_setup(KubeTransfer *t, KubeClient *c, CURL *easy, const char *method, const char *path,
                        const char *body, size_t body_size, const char *content_type, unsigned watch_timeout)
{
        KubeCredential cred = {};
        int r;

        t->client = c;
        t->cap = watch_timeout > 0 ? KUBE_ERROR_BODY_MAX : c->opts.max_response_size;
        if (!method || !path || path[0] != '/')
                return -EINVAL;

        r = kube_credentials_get(c->creds, &cred, &t->cred_error);
        if (r < 0)
                return r;

        if (easy) {
                t->easy = easy;
                curl_easy_reset(easy);
        } else {
                t->easy = curl_easy_init();
                if (!t->easy)
                        return -ENOMEM;
                t->owns_easy = true;
        }
        CURL *e = t->easy;

        size_t l = strlen(c->base_url) + strlen(path) + 1;
        t->url = malloc(l);
        if (!t->url)
                return -ENOMEM;
        snprintf(t->url, l, "%s%s", c->base_url, path);

        SETOPT(e, CURLOPT_URL, t->url);
        SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
        SETOPT(e, CURLOPT_NOSIGNAL, 1L);
        SETOPT(e, CURLOPT_PRIVATE, t);
        SETOPT(e, CURLOPT_ERRORBUFFER, t->errbuf);
        SETOPT(e, CURLOPT_WRITEFUNCTION, write_cb);
        SETOPT(e, CURLOPT_WRITEDATA, t);
        SETOPT(e, CURLOPT_HEADERFUNCTION, header_cb);
        SETOPT(e, CURLOPT_HEADERDATA, t);
        SETOPT(e, CURLOPT_USERAGENT, c->user_agent);
        SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->opts.connect_timeout / USEC_PER_MSEC));
        SETOPT(e, CURLOPT_TIMEOUT_MS,
               watch_timeout > 0 ? (long)(watch_timeout + WATCH_TIMEOUT_SLACK) * 1000L
                                 : (long)(c->opts.request_timeout / USEC_PER_MSEC));
        SETOPT(e, CURLOPT_TCP_KEEPALIVE, 1L);
        if (c->connect_to) {
                if (add_header(&t->connect_to, c->connect_to) < 0)
                        return -ENOMEM;
                SETOPT(e, CURLOPT_CONNECT_TO, t->connect_to);
        }
        r = setup_tls(t, &cred);
        if (r < 0)
                return r;

        struct curl_slist *h = NULL;
        r = add_header(&h, "Accept: application/json");
        if (r == 0)
                r = add_header(&h, "Expect:");
        if (r == 0 && body) {
                char ct[128];
                snprintf(ct, sizeof(ct), "Content-Type: %s", content_type ? content_type : "application/json");
                r = add_header(&h, ct);
        }
        if (r == 0 && cred.token) {
                size_t tl = strlen("Authorization: Bearer ") + strlen(cred.token) + 1;
                char *a = malloc(tl);
                if (!a)
                        r = -ENOMEM;
                else {
                        snprintf(a, tl, "Authorization: Bearer %s", cred.token);
                        r = add_header(&h, a);
                        explicit_bzero(a, tl);
                        free(a);
                }
        } else if (r == 0 && c->config->username) {
                SETOPT(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
                SETOPT(e, CURLOPT_USERNAME, c->config->username);
                SETOPT(e, CURLOPT_PASSWORD, strempty(c->config->password));
        }
        if (r < 0) {
                curl_slist_free_all(h);
                return r;
        }
        t->headers = h;
        SETOPT(e, CURLOPT_HTTPHEADER, h);

        if (!streq(method, "GET") && c->write_guard) {
                t->method = method;
                t->path = path;
                SETOPT(e, CURLOPT_PREREQFUNCTION, prereq_cb);
                SETOPT(e, CURLOPT_PREREQDATA, t);
        }
        if (streq(method, "GET"))
                SETOPT(e, CURLOPT_HTTPGET, 1L);
        else if (streq(method, "POST"))
                SETOPT(e, CURLOPT_POST, 1L);
        else
                SETOPT(e, CURLOPT_CUSTOMREQUEST, method);
        if (body) {
                SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_size);
                SETOPT(e, CURLOPT_POSTFIELDS, body);
        } else if (streq(method, "POST")) {
                SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
                SETOPT(e, CURLOPT_POSTFIELDS, "");
        }
        return 0;
}

void kube_transfer_done(KubeTransfer *t)
{
        if (!t)
                return;
        if (t->easy) {
                /* the handle may outlive us (blocking path): drop pointers into t */
                (void)curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, NULL);
                (void)curl_easy_setopt(t->easy, CURLOPT_CONNECT_TO, NULL);
                (void)curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, NULL);
                if (t->owns_easy)
                        curl_easy_cleanup(t->easy);
        }
        t->easy = NULL;
        curl_slist_free_all(t->headers);
        t->headers = NULL;
        curl_slist_free_all(t->connect_to);
        t->connect_to = NULL;
        free(t->url);
        t->url = NULL;
        free(t->body);
        t->body = NULL;
        t->size = t->alloc = 0;
}

static int transport_error(CURLcode cc)
{
        switch (cc) {
        case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
        case CURLE_OUT_OF_MEMORY: return -ENOMEM;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_ENGINE_INITFAILED:
        case CURLE_SSL_ENGINE_NOTFOUND:
        case CURLE_SSL_ENGINE_SETFAILED:
        case CURLE_SSL_SHUTDOWN_FAILED:
        case CURLE_SSL_CLIENTCERT:
        case CURLE_USE_SSL_FAILED: return -MR_ETLS;
        default: return -MR_ETRANSPORT;
        }
}

static bool all_space(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!strchr(" \t\r\n", s[i]))
                        return false;
        return true;
}

int kube_transfer_result(KubeTransfer *t, CURLcode cc, json_object **ret_body, KubeStatus *st)
{
        long code = 0;

        *st = (KubeStatus){};
        if (t->easy)
                (void)curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);

        if (cc != CURLE_OK) {
                st->http_code = (int)code;
                if (t->guard_error < 0) {
                        snprintf(st->message, sizeof(st->message), "not sent: %s", mr_strerror(t->guard_error));
                        return t->guard_error;
                }
                if (t->too_big) {
                        snprintf(st->message, sizeof(st->message), "response larger than %zu bytes", t->cap);
                        return -MR_ETOOBIG;
                }
                if (cc == CURLE_WRITE_ERROR && t->stream_error < 0) {
                        snprintf(st->message, sizeof(st->message), "stream aborted: %s",
                                 mr_strerror(t->stream_error));
                        return t->stream_error;
                }
                snprintf(st->message, sizeof(st->message), "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(cc));
                return transport_error(cc);
        }

        if (code < 200 || code >= 300)
                return kube_status_decode((int)code, t->body, t->size, t->retry_after[0] ? t->retry_after : NULL,
                                          st);

        st->http_code = (int)code;
        if (ret_body) {
                json_object *o = NULL;
                if (t->size > 0 && !all_space(t->body, t->size)) {
                        int r = mr_json_parse(t->body, t->size, t->cap, &o);
                        if (r < 0) {
                                snprintf(st->message, sizeof(st->message), "response is not valid JSON");
                                return r;
                        }
                }
                *ret_body = o;
        }
        return 0;
}

/* ---- retry policy ------------------------------------------------------------------------ */

bool kube_retry_allowed(const char *method, int r)
{
        if (r == -MR_ETOOMANY || r == -ECONNREFUSED)
                return true;
        if (streq(method, "POST"))
                return false;
        return r == -EIO || r == -ETIMEDOUT || r == -MR_ETRANSPORT;
}

void kube_retry_init(KubeClient *c, KubeRetry *rs)
{
        *rs = (KubeRetry){};
        mr_backoff_init(&rs->backoff);
        rs->backoff.base = c->opts.backoff_base;
        rs->backoff.cap = MAX(c->opts.backoff_cap, c->opts.backoff_base);
}

bool kube_retry_next(KubeClient *c, KubeRetry *rs, const char *method, bool no_retry, int r,
                     const KubeStatus *st, usec_t *ret_delay)
{
        if (r == -MR_EUNAUTHORIZED && !rs->auth_retried && (c->config->exec || c->config->token_file)) {
                kube_credentials_invalidate(c->creds);
                rs->auth_retried = true;
                *ret_delay = 0;
                return true;
        }
        if (no_retry || rs->attempts >= c->opts.max_retries || !kube_retry_allowed(method, r))
                return false;
        rs->attempts++;
        *ret_delay = mr_backoff_next_at_least(&rs->backoff, st ? st->retry_after : 0);
        return true;
}

const char *kube_body_string(json_object *body, size_t *ret_size)
{
        if (!body) {
                *ret_size = 0;
                return NULL;
        }
        size_t n = 0;
        const char *s = json_object_to_json_string_length(body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                          &n);
        *ret_size = n;
        return s;
}

/* ---- blocking calls --------------------------------------------------------------------- */

static int request_once(KubeClient *c, const KubeRequest *req, const char *body, size_t body_size,
                        json_object **ret_body, KubeStatus *st)
{
        KubeTransfer t = {};
        int r;

        r = kube_transfer_setup(&t, c, c->easy, req->method, req->path, body, body_size, req->content_type, 0);
        if (r < 0) {
                *st = (KubeStatus){};
                snprintf(st->message, sizeof(st->message), "%s",
                         t.cred_error.message[0] ? t.cred_error.message : mr_strerror(r));
                kube_transfer_done(&t);
                return r;
        }
        CURLcode cc = curl_easy_perform(t.easy);
        r = kube_transfer_result(&t, cc, ret_body, st);
        kube_transfer_done(&t);
        return r;
}

int kube_request(KubeClient *c, const KubeRequest *req, json_object **ret_body, KubeStatus *ret_status)
{
        KubeStatus st = {};
        KubeRetry rs;
        size_t body_size;
        int r;

        if (!c || !req || !req->method || !req->path)
                return -EINVAL;
        const char *body = kube_body_string(req->body, &body_size);
        if (req->body && !body)
                return -ENOMEM;

        kube_retry_init(c, &rs);
        for (;;) {
                json_object *o = NULL;
                usec_t wait = mr_ratelimit_reserve(&c->limiter);
                if (wait > 0)
                        c->opts.sleep(wait, c->opts.sleep_userdata);

                r = request_once(c, req, body, body_size, ret_body ? &o : NULL, &st);
                if (r >= 0) {
                        if (ret_body)
                                *ret_body = o;
                        if (ret_status)
                                *ret_status = st;
                        return 0;
                }
                usec_t delay;
                if (!kube_retry_next(c, &rs, req->method, req->no_retry, r, &st, &delay))
                        break;
                if (delay > 0)
                        c->opts.sleep(delay, c->opts.sleep_userdata);
        }
        if (ret_status)
                *ret_status = st;
        return r;
}

int kube_get(KubeClient *c, const char *path, json_object **ret, KubeStatus *ret_status)
{
        return kube_request(c, &(KubeRequest){ .method = "GET", .path = path }, ret, ret_status);
}

int kube_create(KubeClient *c, const char *path, json_object *body, json_object **ret, KubeStatus *ret_status)
{
        return kube_request(c, &(KubeRequest){ .method = "POST", .path = path, .body = body }, ret, ret_status);
}

int kube_replace(KubeClient *c, const char *path, json_object *body, json_object **ret, KubeStatus *ret_status)
{
        return kube_request(c, &(KubeRequest){ .method = "PUT", .path = path, .body = body }, ret, ret_status);
}

int kube_patch(KubeClient *c, const char *path, KubePatchType type, json_object *patch, json_object **ret,
               KubeStatus *ret_status)
{
        return kube_request(c,
                            &(KubeRequest){ .method = "PATCH",
                                            .path = path,
                                            .body = patch,
                                            .content_type = kube_patch_content_type(type) },
                            ret, ret_status);
}

int kube_delete(KubeClient *c, const char *path, json_object *body, json_object **ret, KubeStatus *ret_status)
{
        return kube_request(c, &(KubeRequest){ .method = "DELETE", .path = path, .body = body }, ret, ret_status);
}

int kube_list_path(const KubeResource *res, const char *ns, const char *label_selector, const char *field_selector,
                   char **ret)
{
        _cleanup_free_ char *p = NULL;
        int r = kube_path(res, ns, NULL, NULL, &p);
        if (r < 0)
                return r;
        r = kube_path_append_query(&p, "labelSelector", isempty(label_selector) ? NULL : label_selector,
                                   "fieldSelector", isempty(field_selector) ? NULL : field_selector, NULL);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

int kube_list(KubeClient *c, const KubeResource *res, const char *ns, const KubeListOptions *opts,
              json_object **ret_items, char **ret_rv, KubeStatus *ret_status)
{
        static const KubeListOptions none = {};
        _cleanup_free_ char *base = NULL, *cont = NULL, *rv = NULL;
        _cleanup_(json_object_putp) json_object *items = NULL;
        bool restarted = false;
        char limit[16];
        unsigned pages = 0;
        int r;

        if (!c || !res || !ret_items)
                return -EINVAL;
        if (!opts)
                opts = &none;
        r = kube_list_path(res, ns, opts->label_selector, opts->field_selector, &base);
        if (r < 0)
                return r;
        snprintf(limit, sizeof(limit), "%u", opts->limit > 0 ? opts->limit : 500);

        items = json_object_new_array();
        if (!items)
                return -ENOMEM;
        for (;;) {
                _cleanup_(json_object_putp) json_object *page = NULL;
                _cleanup_free_ char *path = strdup(base);
                KubeStatus st;

                if (!path)
                        return -ENOMEM;
                /* resourceVersion only on the first page: with a continue token it is a 400 */
                r = kube_path_append_query(&path, "limit", limit, "resourceVersion",
                                           cont ? NULL : opts->resource_version, "continue", cont, NULL);
                if (r < 0)
                        return r;
                r = kube_get(c, path, &page, &st);
                if (r == -MR_EGONE && cont && !restarted) {
                        /* the continue token expired: start over once, from the most recent state */
                        restarted = true;
                        free(cont);
                        cont = NULL;
                        json_object_put(items);
                        items = json_object_new_array();
                        if (!items)
                                return -ENOMEM;
                        pages = 0;
                        continue;
                }
                if (r < 0) {
                        if (ret_status)
                                *ret_status = st;
                        return r;
                }
                json_object *list = mr_json_get(page, "items", NULL); /* borrowed */
                if (list && !json_object_is_type(list, json_type_array))
                        return -EBADMSG;
                size_t n = list ? json_object_array_length(list) : 0;
                for (size_t i = 0; i < n; i++) {
                        json_object *it = json_object_array_get_idx(list, i);
                        json_object *keep = opts->project ? opts->project(it) : json_object_get(it);
                        if (!keep || json_object_array_add(items, keep) < 0) {
                                json_object_put(keep);
                                return -ENOMEM;
                        }
                }
                const char *v = mr_json_get_str(page, "metadata", "resourceVersion", NULL);
                if (v) {
                        free(rv);
                        if (!(rv = strdup(v)))
                                return -ENOMEM;
                }
                const char *next = mr_json_get_str(page, "metadata", "continue", NULL);
                free(cont);
                cont = NULL;
                if (isempty(next)) {
                        if (ret_status)
                                *ret_status = st;
                        break;
                }
                if (!(cont = strdup(next)))
                        return -ENOMEM;
                if (++pages >= KUBE_LIST_MAX_PAGES)
                        return -MR_ETOOBIG;
        }
        *ret_items = TAKE_PTR(items);
        if (ret_rv)
                *ret_rv = TAKE_PTR(rv);
        return 0;
}
