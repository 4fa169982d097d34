/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credentials.c — bearer tokens and client certificates that change while
 * a daemon runs (KubeCredentials in kubeconfig.h).
 *
 * Which source is used follows client-go: a static token or token file
 * wins; an exec plugin is used only when the user has neither a token, a
 * client certificate nor basic auth (exec.go's UpdateTransportConfig).
 *
 * Token files (bound service-account tokens, rotated by the kubelet through
 * a symlink swap): the path is stat()ed on every get, which is cheap, and
 * re-read whenever device, inode, size or mtime differ from the last read,
 * and at least every 60 s of the (injectable) monotonic clock regardless,
 * as client-go's cached file token source does, so a rewrite that keeps
 * size and mtime is still seen within a minute. The file is reopened on
 * each read, never kept open. When re-reading fails, the last good token
 * is kept (return 1): client-go also keeps using its token when a refresh
 * fails. When both token and tokenFile are set, the file's token is used
 * and the static one is the fallback (client-go's bearer round tripper).
 *
 * Exec plugins (client.authentication.k8s.io v1/v1beta1): run with
 * posix_spawnp — never through a shell — with the parent environment plus
 * exec.env plus KUBERNETES_EXEC_INFO; stdin is /dev/null (meshroll never
 * prompts), stderr is passed through, stdout is read with a cap and a
 * deadline on the real monotonic clock (a plugin is a real process, so a
 * fake clock cannot time it). The ExecCredential is cached until its
 * expirationTimestamp on the injectable realtime clock, or until
 * kube_credentials_invalidate(); without a timestamp it is cached until
 * invalidated. The child is reaped with waitpid() on its own pid, so a
 * caller must not set SIGCHLD to SIG_IGN.
 *
 * References: client-go plugin/pkg/client/auth/exec/exec.go,
 * transport/token_source.go; shared reference §12.2–12.3.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "meshroll/fileio.h"
#include "meshroll/json-util.h"
#include "meshroll/kubeconfig.h"
#include "meshroll/time-util.h"

#define TOKEN_FILE_MAX (1u << 20)
#define TOKEN_REREAD_USEC (60 * USEC_PER_SEC)
#define EXEC_TIMEOUT_DEFAULT (60 * USEC_PER_SEC)
#define EXEC_OUTPUT_DEFAULT (1u << 20)
#define CA_FILE_MAX (1u << 20)

extern char **environ;

struct KubeCredentials {
        const KubeConfig *config; /* borrowed */
        const MrClock *clock;     /* borrowed, may be NULL */
        usec_t exec_timeout;
        size_t exec_max_output;

        /* token file */
        char *file_token;
        bool file_stat_valid, file_force;
        dev_t file_dev;
        ino_t file_ino;
        off_t file_size;
        struct timespec file_mtime;
        usec_t file_read_at; /* monotonic */

        /* exec plugin */
        char *exec_token, *exec_cert, *exec_key;
        usec_t exec_expiry; /* realtime; USEC_INFINITY when the plugin gave none */
        bool exec_valid;
};

int kube_credentials_new(const KubeConfig *config, const MrClock *clock, KubeCredentials **ret)
{
        KubeCredentials *k;

        if (!config || !ret)
                return -EINVAL;
        k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        k->config = config;
        k->clock = clock;
        k->exec_timeout = EXEC_TIMEOUT_DEFAULT;
        k->exec_max_output = EXEC_OUTPUT_DEFAULT;
        *ret = k;
        return 0;
}

static void exec_forget(KubeCredentials *k)
{
        free(k->exec_token);
        free(k->exec_cert);
        free(k->exec_key);
        k->exec_token = k->exec_cert = k->exec_key = NULL;
        k->exec_valid = false;
}

KubeCredentials *kube_credentials_free(KubeCredentials *k)
{
        if (!k)
                return NULL;
        exec_forget(k);
        free(k->file_token);
        free(k);
        return NULL;
}

void kube_credentials_invalidate(KubeCredentials *k)
{
        if (!k)
                return;
        exec_forget(k);
        k->file_force = true;
}

void kube_credentials_set_exec_limits(KubeCredentials *k, usec_t timeout, size_t max_output)
{
        if (timeout > 0)
                k->exec_timeout = timeout;
        if (max_output > 0)
                k->exec_max_output = max_output;
}

/* ---- token file ----------------------------------------------------- */

static int token_file_read(KubeCredentials *k, const struct stat *st, MrError *err)
{
        const char *path = k->config->token_file;
        _cleanup_free_ char *buf = NULL;
        size_t n;
        int r;

        r = mr_read_file(path, TOKEN_FILE_MAX, &buf, &n);
        if (r == -MR_ETOOBIG)
                return mr_error_set(err, r, "token file %s: larger than %u bytes", path, TOKEN_FILE_MAX);
        if (r < 0)
                return mr_error_set(err, r, "token file %s: %s", path, mr_strerror(r));
        /* client-go trims surrounding whitespace. */
        while (n > 0 && strchr(" \t\r\n", buf[n - 1]))
                buf[--n] = 0;
        size_t skip = strspn(buf, " \t\r\n");
        if (skip == n)
                return mr_error_set(err, -EINVAL, "token file %s: empty", path);
        if (strlen(buf) != n)
                return mr_error_set(err, -EINVAL, "token file %s: contains a NUL byte", path);
        if (skip > 0)
                memmove(buf, buf + skip, n - skip + 1);

        free(k->file_token);
        k->file_token = TAKE_PTR(buf);
        k->file_stat_valid = true;
        k->file_dev = st->st_dev;
        k->file_ino = st->st_ino;
        k->file_size = st->st_size;
        k->file_mtime = st->st_mtim;
        k->file_read_at = mr_now_monotonic(k->clock);
        k->file_force = false;
        return 0;
}

static bool token_file_changed(const KubeCredentials *k, const struct stat *st)
{
        return !k->file_stat_valid || st->st_dev != k->file_dev || st->st_ino != k->file_ino ||
               st->st_size != k->file_size || st->st_mtim.tv_sec != k->file_mtime.tv_sec ||
               st->st_mtim.tv_nsec != k->file_mtime.tv_nsec;
}

/* Returns 0 (fresh or still valid), 1 (refresh failed, older token kept) or an error. */
static int token_file_refresh(KubeCredentials *k, MrError *err)
{
        const char *path = k->config->token_file;
        usec_t now = mr_now_monotonic(k->clock);
        struct stat st;
        int r;

        if (stat(path, &st) < 0)
                r = mr_error_set(err, -errno, "token file %s: %s", path, mr_strerror(-errno));
        else if (k->file_token && !k->file_force && !token_file_changed(k, &st) &&
                 now - k->file_read_at < TOKEN_REREAD_USEC)
                return 0;
        else
                r = token_file_read(k, &st, err);
        if (r < 0 && (k->file_token || k->config->token))
                return 1;
        return r;
}

/* ---- exec plugins --------------------------------------------------- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const char *data, size_t size)
{
        char *out = malloc((size + 2) / 3 * 4 + 1), *p = out;

        if (!out)
                return NULL;
        for (size_t i = 0; i < size; i += 3) {
                uint32_t v = (uint32_t)(unsigned char)data[i] << 16;
                if (i + 1 < size)
                        v |= (uint32_t)(unsigned char)data[i + 1] << 8;
                if (i + 2 < size)
                        v |= (unsigned char)data[i + 2];
                *p++ = b64_alphabet[v >> 18 & 63];
                *p++ = b64_alphabet[v >> 12 & 63];
                *p++ = i + 1 < size ? b64_alphabet[v >> 6 & 63] : '=';
                *p++ = i + 2 < size ? b64_alphabet[v & 63] : '=';
        }
        *p = 0;
        return out;
}

/* The ExecCredential passed in KUBERNETES_EXEC_INFO (client-go's spec.cluster layout). */
static int exec_info(const KubeConfig *c, const char *what, char **ret, MrError *err)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *spec;

        if (!o)
                return -ENOMEM;
        if (mr_json_set_str(o, "apiVersion", c->exec->api_version) < 0 ||
            mr_json_set_str(o, "kind", "ExecCredential") < 0 || !(spec = mr_json_ensure_object(o, "spec", NULL)) ||
            mr_json_set_bool(spec, "interactive", false) < 0)
                return -ENOMEM;
        if (c->exec->provide_cluster_info) {
                json_object *cl = mr_json_ensure_object(spec, "cluster", NULL);
                _cleanup_free_ char *ca = NULL, *ca_b64 = NULL;
                size_t ca_size = c->ca_data_size;
                if (!cl || mr_json_set_str(cl, "server", c->server) < 0)
                        return -ENOMEM;
                if (c->tls_server_name && mr_json_set_str(cl, "tls-server-name", c->tls_server_name) < 0)
                        return -ENOMEM;
                if (c->insecure_skip_tls_verify && mr_json_set_bool(cl, "insecure-skip-tls-verify", true) < 0)
                        return -ENOMEM;
                if (!c->ca_data && c->ca_file) {
                        int r = mr_read_file(c->ca_file, CA_FILE_MAX, &ca, &ca_size);
                        if (r < 0)
                                return mr_error_set(err, -MR_ECONFIG, "%s: reading %s for provideClusterInfo: %s",
                                                    what, c->ca_file, mr_strerror(r));
                }
                if (c->ca_data || ca) {
                        ca_b64 = b64_encode(c->ca_data ?: ca, ca_size);
                        if (!ca_b64 || mr_json_set_str(cl, "certificate-authority-data", ca_b64) < 0)
                                return -ENOMEM;
                }
        }
        *ret = strdup(mr_json_compact(o));
        return *ret ? 0 : -ENOMEM;
}

/* environ, minus names that exec.env or KUBERNETES_EXEC_INFO set, plus those. Strings borrowed except info. */
static char **exec_envp(const KubeExecConfig *x, char *info)
{
        size_t n_parent = 0, n_extra = 0, n = 0;
        char **envp;

        for (char **e = environ; e && *e; e++)
                n_parent++;
        for (char **e = x->env; e && *e; e++)
                n_extra++;
        envp = calloc(n_parent + n_extra + 2, sizeof(char *));
        if (!envp)
                return NULL;
        for (char **e = environ; e && *e; e++) {
                size_t len = strcspn(*e, "=");
                bool overridden = strneq(*e, "KUBERNETES_EXEC_INFO=", 21);
                for (char **o = x->env; o && *o && !overridden; o++)
                        overridden = strneq(*o, *e, len) && (*o)[len] == '=';
                if (!overridden)
                        envp[n++] = *e;
        }
        for (char **e = x->env; e && *e; e++)
                envp[n++] = *e;
        envp[n++] = info;
        return envp;
}

/*
 * Starts argv with envp: stdin /dev/null, stdout → out_fd, stderr inherited,
 * no blocked signals and default dispositions for the ones daemons change.
 * Returns 0 or a positive errno (posix_spawn's convention).
 */
static int spawn_plugin(char **argv, char **envp, int out_fd, pid_t *ret_pid)
{
        posix_spawn_file_actions_t actions;
        posix_spawnattr_t attr;
        sigset_t none, defaults;
        int r;

        r = posix_spawn_file_actions_init(&actions);
        if (r != 0)
                return r;
        r = posix_spawnattr_init(&attr);
        if (r != 0) {
                (void)posix_spawn_file_actions_destroy(&actions);
                return r;
        }
        sigemptyset(&none);
        sigemptyset(&defaults);
        sigaddset(&defaults, SIGPIPE);
        sigaddset(&defaults, SIGTERM);
        sigaddset(&defaults, SIGINT);
        sigaddset(&defaults, SIGCHLD);
        r = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
        if (r == 0)
                r = posix_spawnattr_setsigmask(&attr, &none);
        if (r == 0)
                r = posix_spawnattr_setsigdefault(&attr, &defaults);
        if (r == 0)
                r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        if (r == 0)
                r = posix_spawnp(ret_pid, argv[0], &actions, &attr, argv, envp);
        (void)posix_spawn_file_actions_destroy(&actions);
        (void)posix_spawnattr_destroy(&attr);
        return r;
}

/* Waits for pid, retrying EINTR. Returns the wait status, or -errno. */
static int reap(pid_t pid)
{
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return status;
}

typedef enum Collect { COLLECT_EOF, COLLECT_TIMEOUT, COLLECT_TOOBIG, COLLECT_ERROR } Collect;

/* Reads fd until EOF, the deadline (real monotonic time) or more than max bytes. */
static Collect collect(int fd, char *buf, size_t max, usec_t timeout, size_t *ret_size)
{
        usec_t deadline = mr_now_monotonic(NULL) + timeout;
        size_t n = 0;

        for (;;) {
                usec_t now = mr_now_monotonic(NULL);
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int q;
                ssize_t got;

                *ret_size = n;
                if (now >= deadline)
                        return COLLECT_TIMEOUT;
                q = poll(&p, 1, (int)MIN((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC, (usec_t)INT32_MAX));
                if (q < 0 && errno == EINTR)
                        continue;
                if (q < 0)
                        return COLLECT_ERROR;
                if (q == 0)
                        continue;
                got = read(fd, buf + n, max + 1 - n);
                if (got < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (got < 0)
                        return COLLECT_ERROR;
                if (got == 0)
                        return COLLECT_EOF;
                n += (size_t)got;
                *ret_size = n;
                if (n > max)
                        return COLLECT_TOOBIG;
        }
}

/*
 * Runs the plugin and collects its stdout (NUL-terminated) in *ret. what
 * names it for messages ("exec plugin \"aws\"").
 */
static int exec_run(const KubeCredentials *k, const char *what, char **ret, size_t *ret_size, MrError *err)
{
        const KubeExecConfig *x = k->config->exec;
        _cleanup_free_ char *info_json = NULL, *info = NULL, *out = NULL;
        _cleanup_free_ char **argv = NULL, **envp = NULL;
        _cleanup_close_ int rfd = -EBADF;
        size_t n_args = 0, n = 0;
        int r, fds[2], status;
        Collect how;
        pid_t pid;

        r = exec_info(k->config, what, &info_json, err);
        if (r < 0)
                return r;
        if (asprintf(&info, "KUBERNETES_EXEC_INFO=%s", info_json) < 0) {
                info = NULL;
                return -ENOMEM;
        }
        for (char **a = x->args; a && *a; a++)
                n_args++;
        argv = calloc(n_args + 2, sizeof(char *));
        envp = exec_envp(x, info);
        out = malloc(k->exec_max_output + 1);
        if (!argv || !envp || !out)
                return -ENOMEM;
        argv[0] = x->command;
        for (size_t i = 0; i < n_args; i++)
                argv[i + 1] = x->args[i];

        if (pipe2(fds, O_CLOEXEC) < 0)
                return mr_error_set(err, -errno, "%s: pipe: %s", what, mr_strerror(-errno));
        rfd = fds[0];
        r = spawn_plugin(argv, envp, fds[1], &pid);
        (void)close(fds[1]);
        if (r != 0)
                return mr_error_set(err, -MR_ECONFIG, "%s: cannot run: %s%s%s", what, mr_strerror(r),
                                    x->install_hint ? "; " : "", strempty(x->install_hint));

        how = collect(rfd, out, k->exec_max_output, k->exec_timeout, &n);
        if (how != COLLECT_EOF)
                (void)kill(pid, SIGKILL);
        status = reap(pid);

        switch (how) {
        case COLLECT_TIMEOUT: {
                char d[32];
                return mr_error_set(err, -MR_ECONFIG, "%s: timed out after %s", what,
                                    mr_duration_format(k->exec_timeout, d, sizeof(d)));
        }
        case COLLECT_TOOBIG:
                return mr_error_set(err, -MR_ECONFIG, "%s: printed more than %zu bytes", what, k->exec_max_output);
        case COLLECT_ERROR:
                return mr_error_set(err, -MR_ECONFIG, "%s: reading its output failed", what);
        case COLLECT_EOF:
                break;
        }
        /* 127: the command was not found (a shell's verdict, or an exec that failed after the fork). */
        if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 127)
                return mr_error_set(err, -MR_ECONFIG, "%s: cannot run: exit status 127 (command not found)%s%s", what,
                                    x->install_hint ? "; " : "", strempty(x->install_hint));
        if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) != 0)
                return mr_error_set(err, -MR_ECONFIG, "%s: exited with status %d", what, WEXITSTATUS(status));
        if (status >= 0 && WIFSIGNALED(status))
                return mr_error_set(err, -MR_ECONFIG, "%s: killed by signal %s", what,
                                    strna(sigabbrev_np(WTERMSIG(status))));
        /* status < 0 (ECHILD: someone else reaped it): judge by the output alone. */
        out[n] = 0;
        *ret = TAKE_PTR(out);
        *ret_size = n;
        return 0;
}

static int exec_parse(KubeCredentials *k, const char *what, const char *out, size_t size, MrError *err)
{
        const KubeExecConfig *x = k->config->exec;
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *status; /* borrowed */
        const char *api, *kind, *token, *cert, *key, *exp;
        usec_t expiry = USEC_INFINITY;

        if (size == 0)
                return mr_error_set(err, -MR_ECONFIG, "%s: printed nothing (expected an ExecCredential)", what);
        if (mr_json_parse(out, size, k->exec_max_output, &o) < 0 || !json_object_is_type(o, json_type_object))
                return mr_error_set(err, -MR_ECONFIG, "%s: did not print an ExecCredential JSON object", what);
        api = mr_json_get_str(o, "apiVersion", NULL);
        kind = mr_json_get_str(o, "kind", NULL);
        if (!streq_ptr(api, x->api_version))
                return mr_error_set(err, -MR_ECONFIG, "%s: printed apiVersion \"%s\", expected \"%s\"", what, strna(api),
                                    x->api_version);
        if (!streq_ptr(kind, "ExecCredential"))
                return mr_error_set(err, -MR_ECONFIG, "%s: printed kind \"%s\", expected \"ExecCredential\"", what,
                                    strna(kind));
        status = mr_json_get(o, "status", NULL);
        if (!json_object_is_type(status, json_type_object))
                return mr_error_set(err, -MR_ECONFIG, "%s: ExecCredential has no status", what);
        token = mr_json_get_str(status, "token", NULL);
        cert = mr_json_get_str(status, "clientCertificateData", NULL);
        key = mr_json_get_str(status, "clientKeyData", NULL);
        exp = mr_json_get_str(status, "expirationTimestamp", NULL);
        token = isempty(token) ? NULL : token;
        cert = isempty(cert) ? NULL : cert;
        key = isempty(key) ? NULL : key;
        if (!cert != !key)
                return mr_error_set(err, -MR_ECONFIG, "%s: status.%s is set without status.%s", what,
                                    cert ? "clientCertificateData" : "clientKeyData",
                                    cert ? "clientKeyData" : "clientCertificateData");
        if (!token && !cert)
                return mr_error_set(err, -MR_ECONFIG,
                                    "%s: status has neither a token nor clientCertificateData and clientKeyData", what);
        if (mr_json_get(status, "expirationTimestamp", NULL) && (!exp || kube_time_parse(exp, &expiry) < 0))
                return mr_error_set(err, -MR_ECONFIG, "%s: status.expirationTimestamp: expected an RFC 3339 time",
                                    what);

        _cleanup_free_ char *t = token ? strdup(token) : NULL, *c = cert ? strdup(cert) : NULL,
                            *kk = key ? strdup(key) : NULL;
        if ((token && !t) || (cert && !c) || (key && !kk))
                return -ENOMEM;
        exec_forget(k);
        k->exec_token = TAKE_PTR(t);
        k->exec_cert = TAKE_PTR(c);
        k->exec_key = TAKE_PTR(kk);
        k->exec_expiry = expiry;
        k->exec_valid = true;
        return 0;
}

static int exec_refresh(KubeCredentials *k, MrError *err)
{
        const KubeExecConfig *x = k->config->exec;
        _cleanup_free_ char *out = NULL;
        char what[256];
        size_t size = 0;
        int r;

        if (k->exec_valid && (k->exec_expiry == USEC_INFINITY || mr_now_realtime(k->clock) < k->exec_expiry))
                return 0;
        (void)snprintf(what, sizeof(what), "exec plugin \"%s\"", x->command);
        if (!streq_ptr(x->api_version, "client.authentication.k8s.io/v1") &&
            !streq_ptr(x->api_version, "client.authentication.k8s.io/v1beta1"))
                return mr_error_set(err, -MR_ECONFIG, "%s: unsupported apiVersion \"%s\"", what,
                                    strna(x->api_version));
        if (streq_ptr(x->interactive_mode, "Always"))
                return mr_error_set(err, -MR_ECONFIG,
                                    "%s: interactiveMode Always needs a terminal, and meshroll never prompts", what);
        r = exec_run(k, what, &out, &size, err);
        if (r == -ENOMEM)
                return mr_error_set(err, r, "%s: out of memory", what);
        if (r < 0)
                return r;
        r = exec_parse(k, what, out, size, err);
        if (r == -ENOMEM)
                return mr_error_set(err, r, "%s: out of memory", what);
        return r;
}

int kube_credentials_get(KubeCredentials *k, KubeCredential *ret, MrError *err)
{
        const KubeConfig *c = k->config;
        int r = 0;

        if (c->token_file) {
                r = token_file_refresh(k, err);
                if (r < 0)
                        return r;
                *ret = (KubeCredential){ .token = k->file_token ?: c->token };
                return r;
        }
        if (c->token || c->client_cert_file || c->client_cert_data || c->username || !c->exec) {
                *ret = (KubeCredential){ .token = c->token };
                return 0;
        }
        r = exec_refresh(k, err);
        if (r < 0)
                return r;
        *ret = (KubeCredential){
                .token = k->exec_token,
                .client_cert_data = k->exec_cert,
                .client_key_data = k->exec_key,
        };
        return 0;
}
