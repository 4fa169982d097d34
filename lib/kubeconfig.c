/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kubeconfig.c — finds and reads the kubeconfig the way kubectl does (see
 * kubeconfig.h for the resolution order and the supported fields).
 *
 * Design: each file is parsed to JSON (yaml-json.h) and checked whole —
 * every entry's every known field is extracted once into a scratch
 * KubeConfig and thrown away — so a wrong type or bad base64 anywhere is
 * reported with its file and field path, as kubectl's strict decoder
 * reports it, and never surfaces later as a puzzling TLS failure. Then the
 * files' entries are merged by name into one table of borrowed JSON
 * entries (first file wins per name, as clientcmd's merge does), the
 * context is chosen, and only its cluster and user are extracted into the
 * result. Checks that kubectl makes only for what is used (a missing
 * server, a lone client certificate, exec apiVersion, impersonation) run on
 * the chosen entries only.
 *
 * Relative paths are resolved against the absolute directory of the file
 * that named them (clientcmd's ResolveLocalPaths); exec.command is resolved
 * only when it contains a slash, so plain commands keep using $PATH.
 * Where both a *-data field and its file field are set, the data wins
 * (client-go's precedence) and the file is dropped.
 *
 * References: client-go tools/clientcmd/{loader.go,client_config.go,
 * validation.go}, rest/config.go (InClusterConfig); shared reference §12.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "meshroll/fileio.h"
#include "meshroll/json-util.h"
#include "meshroll/kubeconfig.h"
#include "meshroll/yaml-json.h"

#define KUBECONFIG_MAX_SIZE (4u << 20)
#define NAMESPACE_MAX 253
#define DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define MAX_FILES 64

/* ---- small helpers -------------------------------------------------- */

static int b64_value(char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

/*
 * Standard base64 with padding, newlines ignored (Go's StdEncoding, which
 * decodes kubeconfig []byte fields). The result is NUL-terminated.
 */
static int b64_decode(const char *s, char **ret, size_t *ret_size)
{
        size_t len = strlen(s), n = 0, pad = 0, quad = 0;
        uint32_t acc = 0;
        _cleanup_free_ char *out = malloc(len / 4 * 3 + 4);

        if (!out)
                return -ENOMEM;
        for (const char *p = s; *p; p++) {
                int v;
                if (*p == '\n' || *p == '\r')
                        continue;
                if (*p == '=') {
                        if (quad < 2 || ++pad > 2)
                                return -EINVAL;
                        v = 0;
                } else {
                        if (pad > 0)
                                return -EINVAL;
                        v = b64_value(*p);
                        if (v < 0)
                                return -EINVAL;
                }
                acc = acc << 6 | (uint32_t)v;
                if (++quad == 4) {
                        out[n++] = (char)(acc >> 16);
                        if (pad < 2)
                                out[n++] = (char)(acc >> 8);
                        if (pad < 1)
                                out[n++] = (char)acc;
                        acc = 0;
                        quad = 0;
                        if (pad > 0) {
                                /* Padding ends the data; only newlines may follow. */
                                for (p++; *p == '\n' || *p == '\r'; p++)
                                        ;
                                if (*p)
                                        return -EINVAL;
                                break;
                        }
                }
        }
        if (quad != 0)
                return -EINVAL;
        out[n] = 0;
        *ret = TAKE_PTR(out);
        *ret_size = n;
        return 0;
}

/* Joins names with ", " into buf for "(contexts: a, b)" messages; truncates with "…". */
static const char *names_join(char *buf, size_t size, json_object *table)
{
        size_t n = 0, count = json_object_array_length(table);

        buf[0] = 0;
        for (size_t i = 0; i < count && n < size; i++) {
                const char *name = mr_json_get_str(json_object_array_get_idx(table, i), "name", NULL);
                int k = snprintf(buf + n, size - n, "%s%s", i ? ", " : "", strna(name));
                if (k < 0 || (size_t)k >= size - n) {
                        if (size > 4)
                                memcpy(buf + size - 4, "...", 4);
                        break;
                }
                n += (size_t)k;
        }
        return count ? buf : "none defined";
}

/* The absolute directory of path, for resolving the relative paths it names. NULL on ENOMEM. */
static char *dir_of(const char *path)
{
        const char *slash = strrchr(path, '/');
        _cleanup_free_ char *cwd = NULL;
        char *d = NULL;

        if (path[0] == '/')
                return strndup(path, slash == path ? 1 : (size_t)(slash - path));
        cwd = getcwd(NULL, 0);
        if (!cwd)
                cwd = strdup(".");
        if (!cwd)
                return NULL;
        if (!slash)
                return TAKE_PTR(cwd);
        if (asprintf(&d, "%s/%.*s", cwd, (int)(slash - path), path) < 0)
                return NULL;
        return d;
}

/*
 * Checks and canonicalizes a server URL: a missing scheme becomes https://
 * when TLS is configured and http:// otherwise (client-go's
 * DefaultServerURL); trailing slashes go. -EINVAL for another scheme, no
 * host, a space or control character anywhere, or a port that is not a
 * number from 1 to 65535; *ret_why then says which, for the caller's
 * message (curl would otherwise fail later with "URL using bad/illegal
 * format" and no field name).
 */
static int server_normalize(const char *in, bool tls, char **ret, const char **ret_why)
{
        const char *host, *end, *port = NULL;
        char *s = NULL;
        size_t len;

        *ret_why = "expected an http:// or https:// URL";
        if ((host = startswith(in, "https://")) || (host = startswith(in, "http://"))) {
                s = strdup(in);
        } else {
                if (strstr(in, "://"))
                        return -EINVAL;
                host = in;
                if (asprintf(&s, "%s%s", tls ? "https://" : "http://", in) < 0)
                        s = NULL;
        }
        if (!s)
                return -ENOMEM;
        for (const unsigned char *p = (const unsigned char *)in; *p; p++)
                if (*p <= ' ' || *p == 0x7f) {
                        *ret_why = "expected a URL without spaces or control characters";
                        free(s);
                        return -EINVAL;
                }
        end = host + strcspn(host, "/?#");
        if (end == host) {
                free(s);
                return -EINVAL;
        }
        /* The port follows the last ':' of the authority, unless that ':' is inside an IPv6 "[…]". */
        for (const char *p = end; p > host; p--)
                if (p[-1] == ']')
                        break;
                else if (p[-1] == ':') {
                        port = p;
                        break;
                }
        if (port == host + 1) { /* ":6443": no host */
                free(s);
                return -EINVAL;
        }
        if (port) {
                unsigned long n = 0;
                const char *p = port;
                while (p < end && *p >= '0' && *p <= '9' && n <= 65535)
                        n = n * 10 + (unsigned long)(*p++ - '0');
                if (p != end || n < 1 || n > 65535) {
                        *ret_why = "expected a port from 1 to 65535 after the host";
                        free(s);
                        return -EINVAL;
                }
        }
        len = strlen(s);
        while (len > 0 && s[len - 1] == '/')
                s[--len] = 0;
        *ret = s;
        return 0;
}

/*
 * A namespace is a DNS-1123 label (Kubernetes' ValidateNamespaceName):
 * lowercase letters, digits and '-', starting and ending alphanumeric, at
 * most 63 bytes. It goes into every request path, so a '/' or '..' must
 * never get that far.
 */
static bool namespace_is_valid(const char *ns)
{
        size_t n = strlen(ns);

        if (n == 0 || n > 63 || ns[0] == '-' || ns[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((ns[i] >= 'a' && ns[i] <= 'z') || (ns[i] >= '0' && ns[i] <= '9') || ns[i] == '-'))
                        return false;
        return true;
}

#define NAMESPACE_EXPECTED "expected a namespace name (lowercase letters, digits and '-', at most 63)"

/* ---- field extraction ----------------------------------------------- */

/* Where a field lives, for messages: "<file>: <prefix>.<key>: …". */
typedef struct Where {
        const char *file;
        const char *dir; /* absolute directory for relative paths, or NULL to keep them */
        char prefix[96]; /* "users[1].user" */
        MrError *err;
} Where;

static int field_fail(const Where *w, const char *key, const char *fmt, ...) _printf_(3, 4);

static int field_fail(const Where *w, const char *key, const char *fmt, ...)
{
        char what[512];
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        return mr_error_set(w->err, -MR_ECONFIG, "%s: %s%s%s: %s", w->file, w->prefix, key ? "." : "",
                            strempty(key), what);
}

/* String field: missing, null or "" leave *ret NULL. */
static int get_str(json_object *o, const char *key, const Where *w, char **ret)
{
        json_object *v = NULL; /* borrowed */

        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        if (!json_object_is_type(v, json_type_string))
                return field_fail(w, key, "expected a string");
        if (json_object_get_string_len(v) == 0)
                return 0;
        free(*ret);
        *ret = strdup(json_object_get_string(v));
        return *ret ? 0 : -ENOMEM;
}

static int get_bool(json_object *o, const char *key, const Where *w, bool *ret)
{
        json_object *v = NULL; /* borrowed */

        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        if (!json_object_is_type(v, json_type_boolean))
                return field_fail(w, key, "expected true or false");
        *ret = json_object_get_boolean(v);
        return 0;
}

static int get_path(json_object *o, const char *key, const Where *w, char **ret)
{
        int r = get_str(o, key, w, ret);
        char *abs = NULL;

        if (r < 0 || !*ret || (*ret)[0] == '/' || !w->dir)
                return r;
        if (asprintf(&abs, "%s/%s", w->dir, *ret) < 0)
                return -ENOMEM;
        free(*ret);
        *ret = abs;
        return 0;
}

static int get_base64(json_object *o, const char *key, const Where *w, char **ret, size_t *ret_size)
{
        _cleanup_free_ char *text = NULL;
        int r = get_str(o, key, w, &text);

        if (r < 0 || !text)
                return r;
        free(*ret);
        *ret = NULL;
        r = b64_decode(text, ret, ret_size);
        if (r == -EINVAL)
                return field_fail(w, key, "not valid base64");
        return r;
}

static int get_strv(json_object *o, const char *key, const Where *w, char ***ret)
{
        json_object *v = NULL; /* borrowed */
        _cleanup_strv_free_ char **l = NULL;
        size_t n;

        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        if (!json_object_is_type(v, json_type_array))
                return field_fail(w, key, "expected a list of strings");
        n = json_object_array_length(v);
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *s = json_object_array_get_idx(v, i);
                if (!json_object_is_type(s, json_type_string))
                        return field_fail(w, key, "item %zu: expected a string", i);
                l[i] = strdup(json_object_get_string(s));
                if (!l[i])
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* exec.env: [{name, value}] → "NAME=value" list. */
static int get_env(json_object *o, const Where *w, char ***ret)
{
        json_object *v = NULL; /* borrowed */
        _cleanup_strv_free_ char **l = NULL;
        size_t n;

        if (!json_object_object_get_ex(o, "env", &v) || !v)
                return 0;
        if (!json_object_is_type(v, json_type_array))
                return field_fail(w, "env", "expected a list of {name, value}");
        n = json_object_array_length(v);
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *item = json_object_array_get_idx(v, i), *name = NULL, *value = NULL;
                char key[32];
                (void)snprintf(key, sizeof(key), "env[%zu]", i);
                if (!json_object_is_type(item, json_type_object))
                        return field_fail(w, key, "expected a mapping with name and value");
                if (!json_object_object_get_ex(item, "name", &name) || !json_object_is_type(name, json_type_string) ||
                    json_object_get_string_len(name) == 0 || strchr(json_object_get_string(name), '='))
                        return field_fail(w, key, "name: expected a variable name");
                if (json_object_object_get_ex(item, "value", &value) && value &&
                    !json_object_is_type(value, json_type_string))
                        return field_fail(w, key, "value: expected a string");
                if (asprintf(&l[i], "%s=%s", json_object_get_string(name), value ? json_object_get_string(value) : "") <
                    0) {
                        l[i] = NULL;
                        return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static KubeExecConfig *exec_free(KubeExecConfig *x)
{
        if (!x)
                return NULL;
        free(x->command);
        strv_free(x->args);
        strv_free(x->env);
        free(x->api_version);
        free(x->interactive_mode);
        free(x->install_hint);
        free(x);
        return NULL;
}

static int get_exec(json_object *user, const Where *parent, KubeExecConfig **ret)
{
        json_object *o = NULL; /* borrowed */
        KubeExecConfig *x;
        Where w = *parent;
        int r;

        if (!json_object_object_get_ex(user, "exec", &o) || !o)
                return 0;
        if (!json_object_is_type(o, json_type_object))
                return field_fail(parent, "exec", "expected a mapping");
        x = calloc(1, sizeof(*x));
        if (!x)
                return -ENOMEM;
        (void)snprintf(w.prefix, sizeof(w.prefix), "%s.exec", parent->prefix);

        /* Only a command with a slash is a path; a bare name is looked up in $PATH. */
        r = get_str(o, "command", &w, &x->command);
        if (r >= 0 && x->command && strchr(x->command, '/')) {
                free(x->command);
                x->command = NULL;
                r = get_path(o, "command", &w, &x->command);
        }
        if (r >= 0 && !x->command)
                r = field_fail(&w, "command", "expected the plugin's command");
        if (r >= 0)
                r = get_strv(o, "args", &w, &x->args);
        if (r >= 0)
                r = get_env(o, &w, &x->env);
        if (r >= 0)
                r = get_str(o, "apiVersion", &w, &x->api_version);
        if (r >= 0)
                r = get_str(o, "interactiveMode", &w, &x->interactive_mode);
        if (r >= 0)
                r = get_str(o, "installHint", &w, &x->install_hint);
        if (r >= 0)
                r = get_bool(o, "provideClusterInfo", &w, &x->provide_cluster_info);
        if (r < 0) {
                exec_free(x);
                return r;
        }
        exec_free(*ret);
        *ret = x;
        return 0;
}

/* The inner mapping of an entry ("cluster" of a clusters[] item); NULL (and 0) when absent or null. */
static int entry_inner(json_object *entry, const char *what, const Where *w, json_object **ret)
{
        json_object *o = NULL; /* borrowed */

        *ret = NULL;
        if (!json_object_object_get_ex(entry, what, &o) || !o)
                return 0;
        if (!json_object_is_type(o, json_type_object))
                return field_fail(w, NULL, "expected a mapping");
        *ret = o;
        return 0;
}

static int cluster_extract(json_object *entry, Where *w, KubeConfig *c)
{
        json_object *o;
        int r;

        r = entry_inner(entry, "cluster", w, &o);
        if (r < 0 || !o)
                return r;
        r = get_str(o, "server", w, &c->server);
        if (r >= 0)
                r = get_str(o, "tls-server-name", w, &c->tls_server_name);
        if (r >= 0)
                r = get_path(o, "certificate-authority", w, &c->ca_file);
        if (r >= 0)
                r = get_base64(o, "certificate-authority-data", w, &c->ca_data, &c->ca_data_size);
        if (r >= 0)
                r = get_bool(o, "insecure-skip-tls-verify", w, &c->insecure_skip_tls_verify);
        return r;
}

static int user_extract(json_object *entry, Where *w, KubeConfig *c)
{
        json_object *o;
        int r;

        r = entry_inner(entry, "user", w, &o);
        if (r < 0 || !o)
                return r;
        r = get_str(o, "token", w, &c->token);
        if (r >= 0)
                r = get_path(o, "tokenFile", w, &c->token_file);
        if (r >= 0)
                r = get_path(o, "client-certificate", w, &c->client_cert_file);
        if (r >= 0)
                r = get_base64(o, "client-certificate-data", w, &c->client_cert_data, &c->client_cert_data_size);
        if (r >= 0)
                r = get_path(o, "client-key", w, &c->client_key_file);
        if (r >= 0)
                r = get_base64(o, "client-key-data", w, &c->client_key_data, &c->client_key_data_size);
        if (r >= 0)
                r = get_str(o, "username", w, &c->username);
        if (r >= 0)
                r = get_str(o, "password", w, &c->password);
        if (r >= 0)
                r = get_exec(o, w, &c->exec);
        return r;
}

/* Checks made only for the user actually used, as clientcmd's validation does. */
static int user_check_usable(json_object *entry, const Where *w, const KubeConfig *c)
{
        json_object *o = mr_json_get(entry, "user", NULL); /* borrowed */
        static const char *const unsupported[] = { "as", "as-uid", "as-groups", "as-user-extra", "auth-provider" };

        for (size_t i = 0; i < ELEMENTSOF(unsupported); i++)
                if (mr_json_get(o, unsupported[i], NULL))
                        return field_fail(w, unsupported[i], "%s is not supported by meshroll%s",
                                          i < 4 ? "impersonation" : "auth-provider",
                                          i < 4 ? "" : "; use an exec credential plugin");
        if ((c->client_cert_file || c->client_cert_data) != (c->client_key_file || c->client_key_data))
                return field_fail(w, c->client_cert_file || c->client_cert_data ? "client-key" : "client-certificate",
                                  "a client certificate and key must be given together");
        if (c->exec) {
                Where x = *w;
                (void)snprintf(x.prefix, sizeof(x.prefix), "%s.exec", w->prefix);
                if (!streq_ptr(c->exec->api_version, "client.authentication.k8s.io/v1") &&
                    !streq_ptr(c->exec->api_version, "client.authentication.k8s.io/v1beta1"))
                        return field_fail(&x, "apiVersion",
                                          "expected client.authentication.k8s.io/v1 or client.authentication.k8s.io/v1beta1, got \"%s\"",
                                          strna(c->exec->api_version));
                if (!c->exec->interactive_mode && streq(c->exec->api_version, "client.authentication.k8s.io/v1"))
                        return field_fail(&x, "interactiveMode", "required for client.authentication.k8s.io/v1 "
                                                                 "(Never, IfAvailable or Always)");
                if (c->exec->interactive_mode && !streq(c->exec->interactive_mode, "Never") &&
                    !streq(c->exec->interactive_mode, "IfAvailable") && !streq(c->exec->interactive_mode, "Always"))
                        return field_fail(&x, "interactiveMode", "expected Never, IfAvailable or Always");
        }
        return 0;
}

static int context_extract(json_object *entry, Where *w, char **cluster, char **user, char **ns)
{
        json_object *o;
        int r;

        r = entry_inner(entry, "context", w, &o);
        if (r < 0 || !o)
                return r;
        r = get_str(o, "cluster", w, cluster);
        if (r >= 0)
                r = get_str(o, "user", w, user);
        if (r >= 0)
                r = get_str(o, "namespace", w, ns);
        if (r >= 0 && *ns && !namespace_is_valid(*ns))
                r = field_fail(w, "namespace", NAMESPACE_EXPECTED ", got \"%s\"", *ns);
        return r;
}

/* ---- merging files -------------------------------------------------- */

typedef struct Source {
        char *file; /* for messages */
        char *dir;  /* for relative paths, or NULL */
} Source;

/*
 * The merged view: each table is a JSON array of borrowed entries; an
 * entry's source is remembered by index in a parallel array (entries are
 * plain objects from the owned roots).
 */
typedef struct Set {
        json_object *roots; /* owned array of parsed files */
        Source sources[MAX_FILES];
        size_t n_sources;
        json_object *tables[3]; /* owned arrays: clusters, users, contexts; items are {name, entry, src, index} */
        json_object *index[3];  /* owned objects: name → the same items, for lookups in O(1) */
        const char *current_context; /* borrowed from a root */
        size_t current_src;
        MrError *err;
} Set;

enum { T_CLUSTERS, T_USERS, T_CONTEXTS };
static const char *const table_key[] = { "clusters", "users", "contexts" };
static const char *const inner_key[] = { "cluster", "user", "context" };

static void set_done(Set *s)
{
        json_object_put(s->roots);
        for (size_t i = 0; i < s->n_sources; i++) {
                free(s->sources[i].file);
                free(s->sources[i].dir);
        }
        for (size_t i = 0; i < ELEMENTSOF(s->tables); i++) {
                json_object_put(s->tables[i]);
                json_object_put(s->index[i]);
        }
}

static int set_init(Set *s, MrError *err)
{
        *s = (Set){ .roots = json_object_new_array(), .err = err };
        for (size_t i = 0; i < ELEMENTSOF(s->tables); i++) {
                s->tables[i] = json_object_new_array();
                s->index[i] = json_object_new_object();
                if (!s->tables[i] || !s->index[i])
                        return -ENOMEM;
        }
        return s->roots ? 0 : -ENOMEM;
}

/* The merged item named name in table t (borrowed), or NULL. */
static json_object *table_find(const Set *s, int t, const char *name)
{
        json_object *item = NULL;
        return json_object_object_get_ex(s->index[t], name, &item) ? item : NULL;
}

static void where_init(Where *w, const Set *s, size_t src, int table, size_t index)
{
        *w = (Where){ .file = s->sources[src].file, .dir = s->sources[src].dir, .err = s->err };
        (void)snprintf(w->prefix, sizeof(w->prefix), "%s[%zu].%s", table_key[table], index, inner_key[table]);
}

/* Checks every entry of one table in one file, and adds names not seen before. */
static int set_add_table(Set *s, json_object *root, size_t src, int table)
{
        json_object *list = NULL; /* borrowed */
        _cleanup_(json_object_putp) json_object *seen = json_object_new_object(); /* name → index in this file */
        Where w = { .file = s->sources[src].file, .err = s->err };
        size_t n;
        int r;

        if (!seen)
                return -ENOMEM;
        if (!json_object_object_get_ex(root, table_key[table], &list) || !list)
                return 0;
        (void)snprintf(w.prefix, sizeof(w.prefix), "%s", table_key[table]);
        if (!json_object_is_type(list, json_type_array))
                return field_fail(&w, NULL, "expected a list");
        n = json_object_array_length(list);
        for (size_t i = 0; i < n; i++) {
                json_object *entry = json_object_array_get_idx(list, i), *name = NULL;
                (void)snprintf(w.prefix, sizeof(w.prefix), "%s[%zu]", table_key[table], i);
                if (!json_object_is_type(entry, json_type_object))
                        return field_fail(&w, NULL, "expected a mapping with name and %s", inner_key[table]);
                if (!json_object_object_get_ex(entry, "name", &name) || !json_object_is_type(name, json_type_string) ||
                    json_object_get_string_len(name) == 0)
                        return field_fail(&w, "name", "expected a non-empty string");
                int64_t first;
                if (mr_json_get_int(&first, seen, json_object_get_string(name), NULL) == 0)
                        return field_fail(&w, "name", "\"%s\" is already defined at %s[%" PRIi64 "]",
                                          json_object_get_string(name), table_key[table], first);
                if (mr_json_set_int(seen, json_object_get_string(name), (int64_t)i) < 0)
                        return -ENOMEM;

                /* Extract into scratch storage only to check types and base64. */
                Where fw;
                where_init(&fw, s, src, table, i);
                if (table == T_CONTEXTS) {
                        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;
                        r = context_extract(entry, &fw, &a, &b, &c);
                } else {
                        _cleanup_(kube_config_freep) KubeConfig *scratch = calloc(1, sizeof(KubeConfig));
                        if (!scratch)
                                return -ENOMEM;
                        r = table == T_CLUSTERS ? cluster_extract(entry, &fw, scratch)
                                                : user_extract(entry, &fw, scratch);
                }
                if (r < 0)
                        return r;

                if (table_find(s, table, json_object_get_string(name)))
                        continue; /* an earlier file named it first */
                json_object *item = json_object_new_object();
                if (!item || json_object_array_add(s->tables[table], item) < 0) {
                        json_object_put(item);
                        return -ENOMEM;
                }
                if (json_object_object_add(s->index[table], json_object_get_string(name), json_object_get(item)) < 0) {
                        json_object_put(item);
                        return -ENOMEM;
                }
                if (mr_json_set_str(item, "name", json_object_get_string(name)) < 0 ||
                    json_object_object_add(item, "entry", json_object_get(entry)) < 0 ||
                    mr_json_set_int(item, "src", (int64_t)src) < 0 || mr_json_set_int(item, "index", (int64_t)i) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* Adds one parsed document. source_name may be NULL (in-memory data without a name). */
static int set_add(Set *s, const char *data, size_t size, const char *source_name)
{
        _cleanup_(json_object_putp) json_object *root = NULL;
        const char *file = source_name ?: "kubeconfig";
        Source *src;
        json_object *cc = NULL; /* borrowed */
        int r;

        if (s->n_sources >= MAX_FILES)
                return mr_error_set(s->err, -MR_ECONFIG, "%s: more than %d kubeconfig files", file, MAX_FILES);
        r = mr_yaml_parse(data, size, &root, s->err);
        if (r < 0) {
                /* Malformed YAML in a kubeconfig is the user's configuration error. */
                (void)mr_error_prefix(s->err, "%s", file);
                if (r == -MR_EPARSE && s->err)
                        s->err->error = -MR_ECONFIG;
                return r == -MR_EPARSE ? -MR_ECONFIG : r;
        }

        src = &s->sources[s->n_sources];
        *src = (Source){ .file = strdup(file) };
        if (!src->file)
                return -ENOMEM;
        if (source_name) {
                src->dir = dir_of(source_name);
                if (!src->dir) {
                        free(src->file);
                        return -ENOMEM;
                }
        }
        s->n_sources++;

        if (!root)
                return 0; /* an empty file configures nothing */
        if (!json_object_is_type(root, json_type_object))
                return mr_error_set(s->err, -MR_ECONFIG, "%s: expected a kubeconfig mapping at the top level", file);

        for (int t = T_CLUSTERS; t <= T_CONTEXTS; t++) {
                r = set_add_table(s, root, s->n_sources - 1, t);
                if (r < 0)
                        return r;
        }
        if (json_object_object_get_ex(root, "current-context", &cc) && cc) {
                if (!json_object_is_type(cc, json_type_string))
                        return mr_error_set(s->err, -MR_ECONFIG, "%s: current-context: expected a string", file);
                if (!s->current_context && json_object_get_string_len(cc) > 0) {
                        s->current_context = json_object_get_string(cc);
                        s->current_src = s->n_sources - 1;
                }
        }
        /* Keep the root alive: the tables and current_context borrow from it. */
        if (json_object_array_add(s->roots, root) < 0)
                return -ENOMEM;
        root = NULL;
        return 0;
}

static bool set_is_empty(const Set *s)
{
        for (size_t i = 0; i < ELEMENTSOF(s->tables); i++)
                if (json_object_array_length(s->tables[i]) > 0)
                        return false;
        return !s->current_context;
}

static void item_where(const Set *s, json_object *item, int table, Where *w)
{
        int64_t src = 0, index = 0;
        (void)mr_json_get_int(&src, item, "src", NULL);
        (void)mr_json_get_int(&index, item, "index", NULL);
        where_init(w, s, (size_t)src, table, (size_t)index);
}

/* Describes the set's files for messages not tied to one entry. */
static const char *set_files(const Set *s, char *buf, size_t size)
{
        size_t n = 0;
        buf[0] = 0;
        for (size_t i = 0; i < s->n_sources && n < size; i++) {
                int k = snprintf(buf + n, size - n, "%s%s", i ? ", " : "", s->sources[i].file);
                if (k < 0)
                        break;
                n += (size_t)k;
        }
        return s->n_sources ? buf : "kubeconfig";
}

/* Builds the configuration of the chosen context. */
static int set_resolve(const Set *s, const char *context, KubeConfig **ret)
{
        _cleanup_(kube_config_freep) KubeConfig *c = calloc(1, sizeof(KubeConfig));
        _cleanup_free_ char *cluster_name = NULL, *user_name = NULL;
        char files[256], names[400];
        json_object *item;
        Where w;
        int r;

        if (!c)
                return -ENOMEM;
        set_files(s, files, sizeof(files));
        if (isempty(context))
                context = s->current_context;
        if (isempty(context))
                return mr_error_set(s->err, -MR_ECONFIG, "%s: current-context is not set and no --context given",
                                    files);

        item = table_find(s, T_CONTEXTS, context);
        if (!item)
                return mr_error_set(s->err, -MR_ECONFIG, "%s: context \"%s\" not found (contexts: %s)", files,
                                    context, names_join(names, sizeof(names), s->tables[T_CONTEXTS]));
        item_where(s, item, T_CONTEXTS, &w);
        r = context_extract(mr_json_get(item, "entry", NULL), &w, &cluster_name, &user_name, &c->namespace);
        if (r < 0)
                return r;
        c->context_name = strdup(context);
        if (!c->context_name)
                return -ENOMEM;

        if (!cluster_name)
                return field_fail(&w, "cluster", "expected the name of a cluster");
        Where cw = w;
        item = table_find(s, T_CLUSTERS, cluster_name);
        if (!item)
                return field_fail(&w, "cluster", "cluster \"%s\" not found (clusters: %s)", cluster_name,
                                  names_join(names, sizeof(names), s->tables[T_CLUSTERS]));
        item_where(s, item, T_CLUSTERS, &cw);
        r = cluster_extract(mr_json_get(item, "entry", NULL), &cw, c);
        if (r < 0)
                return r;
        c->source = strdup(cw.file);
        if (!c->source)
                return -ENOMEM;

        if (user_name) {
                Where uw;
                item = table_find(s, T_USERS, user_name);
                if (!item)
                        return field_fail(&w, "user", "user \"%s\" not found (users: %s)", user_name,
                                          names_join(names, sizeof(names), s->tables[T_USERS]));
                item_where(s, item, T_USERS, &uw);
                r = user_extract(mr_json_get(item, "entry", NULL), &uw, c);
                if (r >= 0)
                        r = user_check_usable(mr_json_get(item, "entry", NULL), &uw, c);
                if (r < 0)
                        return r;
        }

        if (!c->server)
                return field_fail(&cw, "server", "expected the API server's URL");
        _cleanup_free_ char *server = TAKE_PTR(c->server);
        const char *why;
        r = server_normalize(server, c->ca_file || c->ca_data || c->client_cert_file || c->client_cert_data ||
                                             c->insecure_skip_tls_verify,
                             &c->server, &why);
        if (r == -EINVAL)
                return field_fail(&cw, "server", "%s, got \"%s\"", why, server);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        return 0;
}

/* ---- the public entry points ---------------------------------------- */

KubeConfig *kube_config_free(KubeConfig *c)
{
        if (!c)
                return NULL;
        free(c->server);
        free(c->tls_server_name);
        free(c->ca_file);
        free(c->ca_data);
        free(c->token);
        free(c->token_file);
        free(c->client_cert_file);
        free(c->client_key_file);
        free(c->client_cert_data);
        free(c->client_key_data);
        free(c->username);
        free(c->password);
        exec_free(c->exec);
        free(c->namespace);
        free(c->context_name);
        free(c->source);
        free(c);
        return NULL;
}

static int copy_str(char **dst, const char *src)
{
        if (!src)
                return 0;
        *dst = strdup(src);
        return *dst ? 0 : -ENOMEM;
}

/* Copies size bytes and a NUL after them (PEM data is used as a C string too). */
static int copy_mem(char **dst, const char *src, size_t size)
{
        if (!src)
                return 0;
        *dst = memdup_nul(src, size);
        return *dst ? 0 : -ENOMEM;
}

static int copy_strv(char ***dst, char **src)
{
        size_t n = 0;
        if (!src)
                return 0;
        while (src[n])
                n++;
        char **l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(l[i] = strdup(src[i]))) {
                        strv_free(l);
                        return -ENOMEM;
                }
        *dst = l;
        return 0;
}

/* Kept beside kube_config_free so the two field lists change together. */
int kube_config_copy(const KubeConfig *s, KubeConfig **ret)
{
        _cleanup_(kube_config_freep) KubeConfig *d = calloc(1, sizeof(KubeConfig));
        int r = 0;

        if (!d)
                return -ENOMEM;
        d->insecure_skip_tls_verify = s->insecure_skip_tls_verify;
        d->in_cluster = s->in_cluster;
        d->ca_data_size = s->ca_data_size;
        d->client_cert_data_size = s->client_cert_data_size;
        d->client_key_data_size = s->client_key_data_size;
        r |= copy_str(&d->server, s->server);
        r |= copy_str(&d->tls_server_name, s->tls_server_name);
        r |= copy_str(&d->ca_file, s->ca_file);
        r |= copy_mem(&d->ca_data, s->ca_data, s->ca_data_size);
        r |= copy_str(&d->token, s->token);
        r |= copy_str(&d->token_file, s->token_file);
        r |= copy_str(&d->client_cert_file, s->client_cert_file);
        r |= copy_str(&d->client_key_file, s->client_key_file);
        r |= copy_mem(&d->client_cert_data, s->client_cert_data, s->client_cert_data_size);
        r |= copy_mem(&d->client_key_data, s->client_key_data, s->client_key_data_size);
        r |= copy_str(&d->username, s->username);
        r |= copy_str(&d->password, s->password);
        r |= copy_str(&d->namespace, s->namespace);
        r |= copy_str(&d->context_name, s->context_name);
        r |= copy_str(&d->source, s->source);
        if (s->exec) {
                d->exec = calloc(1, sizeof(KubeExecConfig));
                if (!d->exec)
                        return -ENOMEM;
                d->exec->provide_cluster_info = s->exec->provide_cluster_info;
                r |= copy_str(&d->exec->command, s->exec->command);
                r |= copy_strv(&d->exec->args, s->exec->args);
                r |= copy_strv(&d->exec->env, s->exec->env);
                r |= copy_str(&d->exec->api_version, s->exec->api_version);
                r |= copy_str(&d->exec->interactive_mode, s->exec->interactive_mode);
                r |= copy_str(&d->exec->install_hint, s->exec->install_hint);
        }
        if (r != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(d);
        return 0;
}

/* Data wins over files; a CA cannot be combined with insecure-skip-tls-verify (client-go refuses). */
static int finish(KubeConfig *c, MrError *err)
{
        if (c->ca_data) {
                free(c->ca_file);
                c->ca_file = NULL;
        }
        if (c->client_cert_data) {
                free(c->client_cert_file);
                c->client_cert_file = NULL;
        }
        if (c->client_key_data) {
                free(c->client_key_file);
                c->client_key_file = NULL;
        }
        if (c->insecure_skip_tls_verify && (c->ca_file || c->ca_data))
                return mr_error_set(err, -MR_ECONFIG,
                                    "%s: context \"%s\": insecure-skip-tls-verify cannot be combined with a "
                                    "certificate-authority",
                                    strna(c->source), strna(c->context_name));
        return 0;
}

int kube_config_load_data(const char *data, size_t size, const char *source_name, const char *context,
                          KubeConfig **ret, MrError *err)
{
        _cleanup_(kube_config_freep) KubeConfig *c = NULL;
        Set s;
        int r;

        r = set_init(&s, err);
        if (r >= 0)
                r = set_add(&s, data, size, source_name);
        if (r >= 0)
                r = set_resolve(&s, context, &c);
        if (r >= 0)
                r = finish(c, err);
        set_done(&s);
        if (r == -ENOMEM)
                return mr_error_set(err, r, "out of memory reading the kubeconfig");
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* Reads and adds one file. Returns 0, or -ENOENT (only when missing_ok) for a file that does not exist. */
static int set_add_file(Set *s, const char *path, bool missing_ok)
{
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r;

        r = mr_read_file(path, KUBECONFIG_MAX_SIZE, &data, &size);
        if (r == -ENOENT && missing_ok)
                return -ENOENT;
        if (r == -MR_ETOOBIG)
                return mr_error_set(s->err, r, "%s: larger than %u bytes", path, KUBECONFIG_MAX_SIZE);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return mr_error_set(s->err, -MR_ECONFIG, "%s: cannot read: %s", path, mr_strerror(r));
        return set_add(s, data, size, path);
}

static int in_cluster(const KubeConfigOptions *o, KubeConfig **ret, char *why, size_t why_size, MrError *err)
{
        const char *host = o->service_host ?: getenv("KUBERNETES_SERVICE_HOST");
        const char *port = o->service_port ?: getenv("KUBERNETES_SERVICE_PORT");
        const char *dir = o->sa_dir ?: DEFAULT_SA_DIR;
        _cleanup_(kube_config_freep) KubeConfig *c = calloc(1, sizeof(KubeConfig));
        _cleanup_free_ char *ns = NULL;
        int r;

        if (!c)
                return -ENOMEM;
        if (isempty(host) || isempty(port)) {
                (void)snprintf(why, why_size, "not in a cluster ($KUBERNETES_SERVICE_HOST/PORT not set)");
                return -ENOENT;
        }
        if (asprintf(&c->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port) < 0 ||
            asprintf(&c->token_file, "%s/token", dir) < 0) {
                c->server = c->token_file = NULL;
                return -ENOMEM;
        }
        if (access(c->token_file, R_OK) < 0)
                return mr_error_set(err, -MR_ECONFIG, "in-cluster: %s: cannot read the service account token: %s",
                                    c->token_file, mr_strerror(errno));
        if (asprintf(&c->ca_file, "%s/ca.crt", dir) < 0) {
                c->ca_file = NULL;
                return -ENOMEM;
        }
        if (access(c->ca_file, R_OK) < 0) {
                free(c->ca_file);
                c->ca_file = NULL;
        }
        {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/namespace", dir) < 0)
                        return -ENOMEM;
                r = mr_read_file(path, NAMESPACE_MAX + 16, &ns, NULL);
                if (r == -ENOMEM)
                        return r;
                if (r >= 0) {
                        size_t l = strlen(ns);
                        while (l > 0 && strchr(" \t\r\n", ns[l - 1]))
                                ns[--l] = 0;
                        if (l > 0)
                                c->namespace = TAKE_PTR(ns);
                }
        }
        c->context_name = strdup("in-cluster");
        if (!c->context_name)
                return -ENOMEM;
        c->in_cluster = true;
        *ret = TAKE_PTR(c);
        return 0;
}

/* Applies --server, --token, --namespace and --insecure-skip-tls-verify to a loaded config. */
static int apply_flags(const KubeConfigOptions *o, KubeConfig *c, MrError *err)
{
        int r;

        if (o->server) {
                _cleanup_free_ char *s = NULL;
                const char *why;
                r = server_normalize(o->server, true, &s, &why);
                if (r == -EINVAL)
                        return mr_error_set(err, -MR_ECONFIG, "--server: %s, got \"%s\"", why, o->server);
                if (r < 0)
                        return r;
                free(c->server);
                c->server = TAKE_PTR(s);
        }
        if (o->token) {
                /* An explicit token replaces every other way of authenticating. */
                free(c->token);
                free(c->token_file);
                free(c->username);
                free(c->password);
                c->token_file = c->username = c->password = NULL;
                c->exec = exec_free(c->exec);
                c->token = strdup(o->token);
                if (!c->token)
                        return -ENOMEM;
        }
        if (o->namespace) {
                if (!namespace_is_valid(o->namespace))
                        return mr_error_set(err, -MR_ECONFIG, "--namespace: " NAMESPACE_EXPECTED ", got \"%s\"",
                                            o->namespace);
                free(c->namespace);
                c->namespace = strdup(o->namespace);
                if (!c->namespace)
                        return -ENOMEM;
        }
        if (o->insecure_skip_tls_verify) {
                /* As kubectl's override does: the flag drops the configured CA. */
                c->insecure_skip_tls_verify = true;
                free(c->ca_file);
                free(c->ca_data);
                c->ca_file = c->ca_data = NULL;
                c->ca_data_size = 0;
        }
        return 0;
}

static int server_only(const KubeConfigOptions *o, KubeConfig **ret, MrError *err)
{
        _cleanup_(kube_config_freep) KubeConfig *c = calloc(1, sizeof(KubeConfig));
        int r;

        if (!c)
                return -ENOMEM;
        c->context_name = strdup("--server");
        if (!c->context_name)
                return -ENOMEM;
        r = apply_flags(o, c, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

static int load(const KubeConfigOptions *o, Set *s, KubeConfig **ret)
{
        const char *env = o->env_kubeconfig ?: getenv("KUBECONFIG");
        const char *home = o->home ?: getenv("HOME");
        _cleanup_(kube_config_freep) KubeConfig *c = NULL;
        char tried[768] = "", why[128] = "";
        int r = 0;

        if (o->server && !o->kubeconfig && !o->context)
                return server_only(o, ret, s->err);

        if (o->kubeconfig) {
                r = set_add_file(s, o->kubeconfig, false);
                if (r < 0)
                        return r;
                /* A file named on the command line is used as is: no fallback when it is empty. */
                r = set_resolve(s, o->context, &c);
                if (r < 0)
                        return r;
        } else if (!isempty(env)) {
                _cleanup_free_ char *list = strdup(env);
                char *save = NULL;
                if (!list)
                        return -ENOMEM;
                for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
                        bool dup = false;
                        for (size_t i = 0; i < s->n_sources; i++)
                                dup = dup || streq(s->sources[i].file, p);
                        if (dup)
                                continue;
                        r = set_add_file(s, p, true);
                        if (r < 0 && r != -ENOENT)
                                return r;
                }
                (void)snprintf(tried, sizeof(tried), "$KUBECONFIG (%s) names no non-empty file; ", env);
        } else if (home) {
                _cleanup_free_ char *path = NULL;
                if (asprintf(&path, "%s/.kube/config", home) < 0)
                        return -ENOMEM;
                r = set_add_file(s, path, true);
                if (r < 0 && r != -ENOENT)
                        return r;
                (void)snprintf(tried, sizeof(tried), "%s does not exist or is empty; ", path);
        } else
                (void)snprintf(tried, sizeof(tried), "$HOME is not set; ");

        if (!c && !set_is_empty(s))
                r = set_resolve(s, o->context, &c);
        else if (!c) {
                r = in_cluster(o, &c, why, sizeof(why), s->err);
                if (r == -ENOENT)
                        return mr_error_set(s->err, -ENOENT,
                                            "no Kubernetes configuration found: %s%s; use --kubeconfig or --server",
                                            tried, why);
        }
        if (r >= 0)
                r = finish(c, s->err);
        if (r >= 0)
                r = apply_flags(o, c, s->err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

int kube_config_load(const KubeConfigOptions *opts, KubeConfig **ret, MrError *err)
{
        static const KubeConfigOptions none = {};
        Set s;
        int r;

        r = set_init(&s, err);
        if (r >= 0)
                r = load(opts ?: &none, &s, ret);
        set_done(&s);
        if (r == -ENOMEM)
                return mr_error_set(err, r, "out of memory reading the kubeconfig");
        return r;
}
