/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "meshroll/errors.h"
#include "meshroll/json-util.h"
#include "meshroll/kubeconfig.h"
#include "meshroll/time-util.h"

static char plugin[1024];  /* tests/unit/data/credentials/plugin.sh */
static char scratch[1024]; /* a private directory under the build dir */

#define T0_REAL (1767225600ULL * USEC_PER_SEC) /* 2026-01-01T00:00:00Z */

static const char *scratch_path(const char *name)
{
        static char buf[4][1200];
        static unsigned next;
        char *b = buf[next++ % 4];
        (void)snprintf(b, sizeof(buf[0]), "%s/%s", scratch, name);
        return b;
}

static void write_file(const char *path, const char *content)
{
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fputs(content, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
}

/* Rewrites the file in place and puts its old mtime back, as a rewrite within one timestamp tick would. */
static void rewrite_keep_mtime(const char *path, const char *content)
{
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        write_file(path, content);
        struct timespec ts[2] = { st.st_atim, st.st_mtim };
        assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static unsigned count_runs(const char *count_file)
{
        FILE *f = fopen(count_file, "re");
        unsigned n = 0;
        int c;
        if (!f)
                return 0;
        while ((c = fgetc(f)) != EOF)
                n += c == '\n';
        fclose(f);
        return n;
}

/* ---- token files ------------------------------------------------------ */

static void test_token_file_rotation(void **state)
{
        const char *path = scratch_path("token");
        MrFakeClock fc;
        KubeConfig c = { .server = (char *)"https://x", .token_file = (char *)path };
        _cleanup_(kube_credentials_freep) KubeCredentials *k = NULL;
        KubeCredential cred;
        MrError e = {};

        mr_fake_clock_init(&fc, 1000 * USEC_PER_SEC, T0_REAL);
        write_file(path, "  token-one\n");
        assert_int_equal(kube_credentials_new(&c, &fc.clock, &k), 0);
        assert_int_equal(kube_credentials_get(k, &cred, &e), 0);
        assert_string_equal(cred.token, "token-one"); /* whitespace trimmed */
        assert_null(cred.client_cert_data);

        /* Same size, same mtime, same inode: not noticed until 60 s have passed. */
        rewrite_keep_mtime(path, "  token-two\n");
        fc.monotonic += 59 * USEC_PER_SEC;
        assert_int_equal(kube_credentials_get(k, &cred, &e), 0);
        assert_string_equal(cred.token, "token-one");
        fc.monotonic += 1 * USEC_PER_SEC;
        assert_int_equal(kube_credentials_get(k, &cred, &e), 0);
        assert_string_equal(cred.token, "token-two");

        /* A size change is seen at once. */
        write_file(path, "token-three-longer");
        assert_int_equal(kube_credentials_get(k, &cred, &e), 0);
        assert_string_equal(cred.token, "token-three-longer");

        /* The kubelet's atomic swap: a new inode of the same size and mtime is seen at once. */
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        write_file(scratch_path("token.new"), "token-four-xlonger");
        struct timespec ts[2] = { st.st_atim, st.st_mtim };
        assert_int_equal(utimensat(AT_FDCWD, scratch_path("token.new"), ts, 0), 0);
        assert_int_equal(rename(scratch_path("token.new"), path), 0);
        assert_int_equal(kube_credentials_get(k, &cred, &e), 0);
        assert_string_equal(cred.token, "token-four-xlonger");

        /* invalidate() (after a 401) forces a re-read even when nothing looks changed. */
        rewrite_keep_mtime(path, "token-five-xlonger");
        assert_int_equal(kube_credentials_get(k, &cred, &e), 0);
        assert_string_equal(cred.token, "token-four-xlonger");
        kube_credentials_invalidate(k);
        assert_int_equal(kube_credentials_get(k, &cred, &e), 0);
        assert_string_equal(cred.token, "token-five-xlonger");

        /* The file vanishes for a moment: the last token is kept, and the return says so. */
        assert_int_equal(unlink(path), 0);
        assert_int_equal(kube_credentials_get(k, &cred, &e), 1);
        assert_string_equal(cred.token, "token-five-xlonger");
        assert_int_equal(e.error, -ENOENT);
        assert_non_null(strstr(e.message, "token file"));

        /* An empty rewrite is not a token either. */
        write_file(path, "\n");
        assert_int_equal(kube_credentials_get(k, &cred, &e), 1);
        assert_string_equal(cred.token, "token-five-xlonger");
        write_file(path, "token-six");
        assert_int_equal(kube_credentials_get(k, &cred, &e), 0);
        assert_string_equal(cred.token, "token-six");
}

static void test_token_file_errors(void **state)
{
        KubeConfig c = { .server = (char *)"https://x", .token_file = (char *)scratch_path("missing") };
        _cleanup_(kube_credentials_freep) KubeCredentials *k = NULL, *k2 = NULL, *k3 = NULL;
        KubeCredential cred = { .token = "untouched" };
        MrError e = {};

        assert_int_equal(kube_credentials_new(&c, NULL, &k), 0);
        assert_int_equal(kube_credentials_get(k, &cred, &e), -ENOENT);
        assert_string_equal(cred.token, "untouched");

        write_file(scratch_path("blank"), " \n\t\n");
        KubeConfig b = { .server = (char *)"https://x", .token_file = (char *)scratch_path("blank") };
        assert_int_equal(kube_credentials_new(&b, NULL, &k2), 0);
        assert_int_equal(kube_credentials_get(k2, &cred, &e), -EINVAL);
        assert_non_null(strstr(e.message, "empty"));

        /* token and tokenFile: the file's token is used, the static one is the fallback. */
        KubeConfig both = { .server = (char *)"https://x", .token = (char *)"static",
                            .token_file = (char *)scratch_path("missing") };
        assert_int_equal(kube_credentials_new(&both, NULL, &k3), 0);
        assert_int_equal(kube_credentials_get(k3, &cred, &e), 1);
        assert_string_equal(cred.token, "static");
        write_file(scratch_path("missing"), "from-file");
        assert_int_equal(kube_credentials_get(k3, &cred, &e), 0);
        assert_string_equal(cred.token, "from-file");
        assert_int_equal(unlink(scratch_path("missing")), 0);
}

static void test_static_and_none(void **state)
{
        KubeConfig c = { .server = (char *)"https://x", .token = (char *)"abc" };
        KubeConfig none = { .server = (char *)"https://x" };
        _cleanup_(kube_credentials_freep) KubeCredentials *k = NULL, *n = NULL;
        KubeCredential cred;

        assert_int_equal(kube_credentials_new(&c, NULL, &k), 0);
        assert_int_equal(kube_credentials_get(k, &cred, NULL), 0);
        assert_string_equal(cred.token, "abc");
        assert_int_equal(kube_credentials_new(&none, NULL, &n), 0);
        assert_int_equal(kube_credentials_get(n, &cred, NULL), 0);
        assert_null(cred.token);
        assert_null(cred.client_key_data);
}

/* ---- exec plugins ----------------------------------------------------- */

typedef struct Plugin {
        char *args[3];
        char *env[6];
        char env_buf[6][1300];
        KubeExecConfig exec;
        KubeConfig config;
} Plugin;

/* A config running "sh plugin.sh MODE" (a bare command, so $PATH lookup is exercised too). */
static void plugin_init(Plugin *p, const char *mode, const char *api, const char *expiry)
{
        *p = (Plugin){};
        p->args[0] = plugin;
        p->args[1] = (char *)mode;
        unsigned n = 0;
        (void)snprintf(p->env_buf[n], sizeof(p->env_buf[0]), "API=%s", api);
        p->env[n] = p->env_buf[n], n++;
        (void)snprintf(p->env_buf[n], sizeof(p->env_buf[0]), "COUNT_FILE=%s", scratch_path("count"));
        p->env[n] = p->env_buf[n], n++;
        (void)snprintf(p->env_buf[n], sizeof(p->env_buf[0]), "INFO_FILE=%s", scratch_path("info"));
        p->env[n] = p->env_buf[n], n++;
        if (expiry) {
                (void)snprintf(p->env_buf[n], sizeof(p->env_buf[0]), "EXPIRY=%s", expiry);
                p->env[n] = p->env_buf[n], n++;
        }
        p->exec = (KubeExecConfig){
                .command = (char *)"sh",
                .args = p->args,
                .env = p->env,
                .api_version = (char *)api,
                .install_hint = (char *)"see docs/auth.md",
        };
        p->config = (KubeConfig){ .server = (char *)"https://api.example:6443", .exec = &p->exec };
        (void)unlink(scratch_path("count"));
        (void)unlink(scratch_path("info"));
}

static void test_exec_token_cached_until_expiry(void **state)
{
        const char *v1 = "client.authentication.k8s.io/v1";
        char expiry[KUBE_TIME_MAX];
        MrFakeClock fc;
        Plugin p;
        _cleanup_(kube_credentials_freep) KubeCredentials *k = NULL;
        KubeCredential cred;
        MrError e = {};

        mr_fake_clock_init(&fc, 0, T0_REAL);
        kube_time_format(T0_REAL + 3600 * USEC_PER_SEC, expiry);
        plugin_init(&p, "token", v1, expiry);
        assert_int_equal(kube_credentials_new(&p.config, &fc.clock, &k), 0);

        int r = kube_credentials_get(k, &cred, &e);
        if (r < 0)
                fail_msg("%s", e.message);
        assert_string_equal(cred.token, "tok-1");

        fc.realtime += 3599 * USEC_PER_SEC;
        assert_int_equal(kube_credentials_get(k, &cred, &e), 0);
        assert_string_equal(cred.token, "tok-1");
        assert_int_equal(count_runs(scratch_path("count")), 1);

        /* Expired: the plugin runs again. */
        fc.realtime += 1 * USEC_PER_SEC;
        assert_int_equal(kube_credentials_get(k, &cred, &e), 0);
        assert_string_equal(cred.token, "tok-2");

        /* A 401: invalidate, and the next get runs it again. */
        kube_credentials_invalidate(k);
        assert_int_equal(kube_credentials_get(k, &cred, &e), 0);
        assert_string_equal(cred.token, "tok-3");
        assert_int_equal(count_runs(scratch_path("count")), 3);

        /* KUBERNETES_EXEC_INFO as kubectl sends it, without cluster info unless asked. */
        _cleanup_free_ char *info = NULL;
        {
                FILE *f = fopen(scratch_path("info"), "re");
                char buf[4096] = "";
                assert_non_null(f);
                size_t n = fread(buf, 1, sizeof(buf) - 1, f);
                fclose(f);
                buf[n] = 0;
                info = strdup(buf);
        }
        _cleanup_(json_object_putp) json_object *o = NULL;
        assert_int_equal(mr_json_parse(info, strlen(info), 1 << 20, &o), 0);
        assert_string_equal(mr_json_get_str(o, "apiVersion", NULL), v1);
        assert_string_equal(mr_json_get_str(o, "kind", NULL), "ExecCredential");
        assert_false(mr_json_get_bool(true, o, "spec", "interactive", NULL));
        assert_null(mr_json_get(o, "spec", "cluster", NULL));
}

static void test_exec_without_expiry_and_cluster_info(void **state)
{
        const char *v1beta1 = "client.authentication.k8s.io/v1beta1";
        MrFakeClock fc;
        Plugin p;
        _cleanup_(kube_credentials_freep) KubeCredentials *k = NULL;
        KubeCredential cred;
        MrError e = {};

        mr_fake_clock_init(&fc, 0, T0_REAL);
        plugin_init(&p, "cert", v1beta1, NULL);
        p.exec.provide_cluster_info = true;
        p.config.ca_data = (char *)"PEM";
        p.config.ca_data_size = 3;
        p.config.tls_server_name = (char *)"api.internal";
        assert_int_equal(kube_credentials_new(&p.config, &fc.clock, &k), 0);
        int r = kube_credentials_get(k, &cred, &e);
        if (r < 0)
                fail_msg("%s", e.message);
        assert_null(cred.token);
        assert_string_equal(cred.client_cert_data, "CERT-1");
        assert_string_equal(cred.client_key_data, "KEY-1");

        /* No expirationTimestamp: cached however long it runs. */
        fc.realtime += 365ULL * 24 * 3600 * USEC_PER_SEC;
        assert_int_equal(kube_credentials_get(k, &cred, &e), 0);
        assert_string_equal(cred.client_cert_data, "CERT-1");
        assert_int_equal(count_runs(scratch_path("count")), 1);

        FILE *f = fopen(scratch_path("info"), "re");
        char buf[4096] = "";
        assert_non_null(f);
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        _cleanup_(json_object_putp) json_object *o = NULL;
        assert_int_equal(mr_json_parse(buf, n, 1 << 20, &o), 0);
        assert_string_equal(mr_json_get_str(o, "apiVersion", NULL), v1beta1);
        assert_string_equal(mr_json_get_str(o, "spec", "cluster", "server", NULL), "https://api.example:6443");
        assert_string_equal(mr_json_get_str(o, "spec", "cluster", "tls-server-name", NULL), "api.internal");
        assert_string_equal(mr_json_get_str(o, "spec", "cluster", "certificate-authority-data", NULL), "UEVN");
}

/* Runs a plugin mode that must fail with a message containing want. */
static void exec_fails(const char *mode, const char *api, const char *want)
{
        Plugin p;
        _cleanup_(kube_credentials_freep) KubeCredentials *k = NULL;
        KubeCredential cred = { .token = "untouched" };
        MrError e = {};

        plugin_init(&p, mode, api, NULL);
        assert_int_equal(kube_credentials_new(&p.config, NULL, &k), 0);
        kube_credentials_set_exec_limits(k, 2 * USEC_PER_SEC, 64 * 1024);
        assert_int_equal(kube_credentials_get(k, &cred, &e), -MR_ECONFIG);
        assert_string_equal(cred.token, "untouched");
        if (!strstr(e.message, want))
                fail_msg("%s: message \"%s\" lacks \"%s\"", mode, e.message, want);
        assert_non_null(strstr(e.message, "exec plugin \"sh\""));
}

static void test_exec_failures(void **state)
{
        const char *v1 = "client.authentication.k8s.io/v1";
        exec_fails("bad-json", v1, "did not print an ExecCredential JSON object");
        exec_fails("empty", v1, "printed nothing");
        exec_fails("wrong-api", v1, "printed apiVersion \"client.authentication.k8s.io/v1alpha1\", expected "
                                    "\"client.authentication.k8s.io/v1\"");
        exec_fails("fail", v1, "exited with status 3");
        exec_fails("no-status", v1, "ExecCredential has no status");
        exec_fails("lone-cert", v1, "status.clientCertificateData is set without status.clientKeyData");
        exec_fails("bad-expiry", v1, "status.expirationTimestamp: expected an RFC 3339 time");
        exec_fails("flood", v1, "printed more than 65536 bytes");
        exec_fails("token", "client.authentication.k8s.io/v1alpha1", "unsupported apiVersion");
}

static void test_exec_timeout(void **state)
{
        Plugin p;
        _cleanup_(kube_credentials_freep) KubeCredentials *k = NULL;
        KubeCredential cred;
        MrError e = {};

        plugin_init(&p, "sleep", "client.authentication.k8s.io/v1", NULL);
        assert_int_equal(kube_credentials_new(&p.config, NULL, &k), 0);
        kube_credentials_set_exec_limits(k, 200 * USEC_PER_MSEC, 0);
        usec_t t0 = mr_now_monotonic(NULL);
        assert_int_equal(kube_credentials_get(k, &cred, &e), -MR_ECONFIG);
        assert_true(mr_now_monotonic(NULL) - t0 < 10 * USEC_PER_SEC);
        assert_non_null(strstr(e.message, "timed out after 200ms"));
}

static void test_exec_not_found_and_precedence(void **state)
{
        Plugin p;
        _cleanup_(kube_credentials_freep) KubeCredentials *k = NULL, *s = NULL;
        KubeCredential cred;
        MrError e = {};

        plugin_init(&p, "token", "client.authentication.k8s.io/v1", NULL);
        p.exec.command = (char *)"/nonexistent/meshroll-test-plugin";
        assert_int_equal(kube_credentials_new(&p.config, NULL, &k), 0);
        assert_int_equal(kube_credentials_get(k, &cred, &e), -MR_ECONFIG);
        /* posix_spawn reports ENOENT; under valgrind (fork, then exec) the child exits 127: both say so */
        assert_true(strstr(e.message, "cannot run: No such file or directory; see docs/auth.md") ||
                    strstr(e.message, "cannot run: exit status 127 (command not found); see docs/auth.md"));

        p.exec.command = (char *)"sh";
        p.exec.interactive_mode = (char *)"Always";
        assert_int_equal(kube_credentials_get(k, &cred, &e), -MR_ECONFIG);
        assert_non_null(strstr(e.message, "never prompts"));

        /* A static token wins over the plugin, which then never runs. */
        p.exec.interactive_mode = NULL;
        p.config.token = (char *)"static";
        assert_int_equal(kube_credentials_new(&p.config, NULL, &s), 0);
        assert_int_equal(kube_credentials_get(s, &cred, &e), 0);
        assert_string_equal(cred.token, "static");
        assert_int_equal(count_runs(scratch_path("count")), 0);
}

static int setup(void **state)
{
        const char *d = getenv("MESHROLL_TEST_DATA"), *b = getenv("MESHROLL_TEST_BUILD");
        if (!d || !b)
                return -1;
        (void)snprintf(plugin, sizeof(plugin), "%s/credentials/plugin.sh", d);
        (void)snprintf(scratch, sizeof(scratch), "%s/credentials-scratch-%d", b, (int)getpid());
        return mkdir(scratch, 0700) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
        static const char *const names[] = { "token", "token.new", "blank", "missing", "count", "info" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                (void)unlink(scratch_path(names[i]));
        return rmdir(scratch) < 0 ? -1 : 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_token_file_rotation),
                cmocka_unit_test(test_token_file_errors),
                cmocka_unit_test(test_static_and_none),
                cmocka_unit_test(test_exec_token_cached_until_expiry),
                cmocka_unit_test(test_exec_without_expiry_and_cluster_info),
                cmocka_unit_test(test_exec_failures),
                cmocka_unit_test(test_exec_timeout),
                cmocka_unit_test(test_exec_not_found_and_precedence),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
