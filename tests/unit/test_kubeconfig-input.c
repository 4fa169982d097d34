/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_kubeconfig-input.c — malformed kubeconfigs, table-driven.
 *
 * Each case is a kubeconfig a user could really have (a hand edit gone
 * wrong, a field of the wrong type, a half-configured exec plugin) and the
 * text its error must contain: "<file>: <field path>: <what was expected>".
 * Nothing here may crash, return a config with an error, or return an
 * error without saying which field is wrong. test_kubeconfig.c holds the
 * loader's behaviour on good input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "meshroll/errors.h"
#include "meshroll/kubeconfig.h"

#define CLUSTER "clusters: [{name: c, cluster: {server: 'https://s'}}]\n"
#define CONTEXT "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
#define USER(u) "users: [{name: u, user: " u "}]\n"
#define EXEC(x) USER("{exec: {command: plugin, apiVersion: client.authentication.k8s.io/v1beta1" x "}}")

typedef struct Case {
        const char *yaml;
        const char *context;  /* --context, or NULL for current-context */
        const char *message;  /* follows "/etc/kc: " */
} Case;

static const Case cases[] = {
        /* The document and its tables. */
        { "5\n", NULL, "expected a kubeconfig mapping at the top level" },
        { "clusters: c\n", NULL, "clusters: expected a list" },
        { "users: {u: {}}\n", NULL, "users: expected a list" },
        { "contexts: [x]\n", NULL, "contexts[0]: expected a mapping with name and context" },
        { "clusters: [{name: 5, cluster: {}}]\n", NULL, "clusters[0].name: expected a non-empty string" },
        { "users: [{name: '', user: {}}]\n", NULL, "users[0].name: expected a non-empty string" },
        { "users: [{name: u}, {name: v}, {name: u}]\n", NULL, "users[2].name: \"u\" is already defined at users[0]" },
        { "current-context: {x: 1}\n", NULL, "current-context: expected a string" },
        /* Clusters. */
        { "clusters: [{name: c, cluster: https://s}]\n" CONTEXT, NULL, "clusters[0].cluster: expected a mapping" },
        { "clusters: [{name: c, cluster: {server: 6443}}]\n", NULL, "clusters[0].cluster.server: expected a string" },
        { "clusters: [{name: c, cluster: {server: 'https://s', certificate-authority-data: '@@@'}}]\n", NULL,
          "clusters[0].cluster.certificate-authority-data: not valid base64" },
        { "clusters: [{name: c, cluster: {server: 'https://s', certificate-authority-data: 'QUJD='}}]\n", NULL,
          "clusters[0].cluster.certificate-authority-data: not valid base64" },
        { "clusters: [{name: c, cluster: {server: 'https://s', certificate-authority: [ca.crt]}}]\n", NULL,
          "clusters[0].cluster.certificate-authority: expected a string" },
        { "clusters: [{name: c, cluster: {server: 'https://s', tls-server-name: {}}}]\n", NULL,
          "clusters[0].cluster.tls-server-name: expected a string" },
        { "clusters: [{name: c, cluster: {server: 'https://s', insecure-skip-tls-verify: 'true'}}]\n", NULL,
          "clusters[0].cluster.insecure-skip-tls-verify: expected true or false" },
        { "clusters: [{name: c, cluster: {}}]\n" CONTEXT USER("{}"), NULL,
          "clusters[0].cluster.server: expected the API server's URL" },
        { "clusters: [{name: c, cluster: {server: 'ftp://s'}}]\n" CONTEXT USER("{}"), NULL,
          "clusters[0].cluster.server: expected an http:// or https:// URL, got \"ftp://s\"" },
        { "clusters: [{name: c, cluster: {server: 'https://s:99999'}}]\n" CONTEXT USER("{}"), NULL,
          "clusters[0].cluster.server: expected a port from 1 to 65535 after the host, got \"https://s:99999\"" },
        { "clusters: [{name: c, cluster: {server: 'https://s:0/'}}]\n" CONTEXT USER("{}"), NULL,
          "clusters[0].cluster.server: expected a port from 1 to 65535" },
        { "clusters: [{name: c, cluster: {server: 'https://s:https'}}]\n" CONTEXT USER("{}"), NULL,
          "clusters[0].cluster.server: expected a port from 1 to 65535" },
        { "clusters: [{name: c, cluster: {server: 'https://:6443'}}]\n" CONTEXT USER("{}"), NULL,
          "clusters[0].cluster.server: expected an http:// or https:// URL, got \"https://:6443\"" },
        { "clusters: [{name: c, cluster: {server: 'https://api server'}}]\n" CONTEXT USER("{}"), NULL,
          "clusters[0].cluster.server: expected a URL without spaces or control characters" },
        { "clusters: [{name: c, cluster: {server: \"https://s\\t\"}}]\n" CONTEXT USER("{}"), NULL,
          "clusters[0].cluster.server: expected a URL without spaces or control characters" },
        /* Users. */
        { USER("{token: [a]}"), NULL, "users[0].user.token: expected a string" },
        { USER("{tokenFile: 7}"), NULL, "users[0].user.tokenFile: expected a string" },
        { USER("{client-certificate-data: 'not base64!'}"), NULL,
          "users[0].user.client-certificate-data: not valid base64" },
        { USER("{client-key-data: 'QQ=Q'}"), NULL, "users[0].user.client-key-data: not valid base64" },
        { USER("{username: 1, password: 2}"), NULL, "users[0].user.username: expected a string" },
        { USER("{exec: plugin}"), NULL, "users[0].user.exec: expected a mapping" },
        { USER("{exec: {args: [a]}}"), NULL, "users[0].user.exec.command: expected the plugin's command" },
        { EXEC(", args: a"), NULL, "users[0].user.exec.args: expected a list of strings" },
        { EXEC(", env: {A: b}"), NULL, "users[0].user.exec.env: expected a list of {name, value}" },
        { EXEC(", env: ['A=b']"), NULL, "users[0].user.exec.env[0]: expected a mapping with name and value" },
        { EXEC(", env: [{name: 'A=B', value: c}]"), NULL, "users[0].user.exec.env[0]: name: expected a variable name" },
        { EXEC(", env: [{name: A, value: 5}]"), NULL, "users[0].user.exec.env[0]: value: expected a string" },
        { EXEC(", provideClusterInfo: 'yes'"), NULL, "users[0].user.exec.provideClusterInfo: expected true or false" },
        /* Checks made only on the user actually used. */
        { CLUSTER CONTEXT EXEC(", interactiveMode: Sometimes"), NULL,
          "users[0].user.exec.interactiveMode: expected Never, IfAvailable or Always" },
        { CLUSTER CONTEXT USER("{exec: {command: plugin, apiVersion: client.authentication.k8s.io/v2}}"), NULL,
          "users[0].user.exec.apiVersion: expected client.authentication.k8s.io/v1 or" },
        { CLUSTER CONTEXT USER("{auth-provider: {name: gcp}}"), NULL,
          "users[0].user.auth-provider: auth-provider is not supported by meshroll; use an exec credential plugin" },
        { CLUSTER CONTEXT USER("{as-groups: [admins]}"), NULL,
          "users[0].user.as-groups: impersonation is not supported by meshroll" },
        { CLUSTER CONTEXT USER("{client-key: k.pem}"), NULL,
          "users[0].user.client-certificate: a client certificate and key must be given together" },
        /* Contexts. */
        { "contexts: [{name: x, context: [c]}]\n", NULL, "contexts[0].context: expected a mapping" },
        { "contexts: [{name: x, context: {cluster: c, namespace: [a]}}]\n", NULL,
          "contexts[0].context.namespace: expected a string" },
        { "contexts: [{name: x, context: {cluster: c, namespace: Team_A}}]\n", NULL,
          "contexts[0].context.namespace: expected a namespace name (lowercase letters, digits and '-', at most 63), "
          "got \"Team_A\"" },
        { "contexts: [{name: x, context: {cluster: c, namespace: '../kube-system'}}]\n", NULL,
          "contexts[0].context.namespace: expected a namespace name" },
        { CLUSTER "contexts: [{name: x, context: {user: u}}]\ncurrent-context: x\n" USER("{}"), NULL,
          "contexts[0].context.cluster: expected the name of a cluster" },
        { CLUSTER "contexts: [{name: x, context: {cluster: d}}]\ncurrent-context: x\n", NULL,
          "contexts[0].context.cluster: cluster \"d\" not found (clusters: c)" },
        { CLUSTER CONTEXT, NULL, "contexts[0].context.user: user \"u\" not found" },
        { CLUSTER CONTEXT USER("{}"), "y", "context \"y\" not found (contexts: x)" },
        { CLUSTER "contexts: [{name: x, context: {cluster: c}}]\n", NULL,
          "current-context is not set and no --context given" },
        /* A CA with insecure-skip-tls-verify: client-go refuses the pair, so do we. */
        { "clusters: [{name: c, cluster: {server: 'https://s', insecure-skip-tls-verify: true, "
          "certificate-authority-data: 'QUJD'}}]\n" CONTEXT USER("{}"),
          NULL, "context \"x\": insecure-skip-tls-verify cannot be combined with a certificate-authority" },
        /* YAML that does not parse: the message has the line. */
        { "clusters:\n  - name: c\n   cluster: {}\n", NULL, "line 3" },
        { "clusters: [{name: c\n", NULL, "line " },
};

static void test_fields_named(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                KubeConfig *c = NULL;
                MrError e = {};
                char want[600];
                int r = kube_config_load_data(cases[i].yaml, strlen(cases[i].yaml), "/etc/kc", cases[i].context, &c, &e);
                if (r != -MR_ECONFIG)
                        fail_msg("case %zu (%s): got %s, want -MR_ECONFIG: %s", i, cases[i].yaml, mr_errno_name(r),
                                 e.message);
                if (c)
                        fail_msg("case %zu: a config came back with an error", i);
                snprintf(want, sizeof(want), "/etc/kc: %s", cases[i].message);
                /* Errors about the merged files as a whole list them: "/etc/kc: …" too. */
                if (strncmp(e.message, want, strlen(want)) != 0)
                        fail_msg("case %zu (%s): message \"%s\" does not start with \"%s\"", i, cases[i].yaml,
                                 e.message, want);
        }
}

/* The same mistakes read from a file through kube_config_load (--kubeconfig): the path leads. */
static void test_files_named(void **state)
{
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char path[] = "/tmp/meshroll-kc-input-XXXXXX";
                int fd = mkstemp(path);
                assert_true(fd >= 0);
                assert_true(write(fd, cases[i].yaml, strlen(cases[i].yaml)) == (ssize_t)strlen(cases[i].yaml));
                close(fd);

                KubeConfigOptions o = {
                        .kubeconfig = path,
                        .context = cases[i].context,
                        .env_kubeconfig = "",
                        .home = "/nonexistent-home",
                        .service_host = "",
                        .service_port = "",
                        .sa_dir = "/nonexistent-sa",
                };
                KubeConfig *c = NULL;
                MrError e = {};
                char want[600];
                int r = kube_config_load(&o, &c, &e);
                unlink(path);
                if (r != -MR_ECONFIG || c)
                        fail_msg("case %zu: got %s: %s", i, mr_errno_name(r), e.message);
                snprintf(want, sizeof(want), "%s: %s", path, cases[i].message);
                if (strncmp(e.message, want, strlen(want)) != 0)
                        fail_msg("case %zu: message \"%s\" does not start with \"%s\"", i, e.message, want);
        }
}

/* Files that are not kubeconfigs at all, and paths that are not files. */
static void test_unusable_files(void **state)
{
        static const struct {
                const char *data;
                size_t size;
        } garbage[] = {
#define LIT(s) { s, sizeof(s) - 1 }
                LIT("\x00\x01\x02\xff\xfe"),
                LIT("{\"clusters\": ["),
                LIT("- just\n- a list\n"),
                LIT("\"a string\"\n"),
#undef LIT
        };
        for (size_t i = 0; i < ELEMENTSOF(garbage); i++) {
                KubeConfig *c = NULL;
                MrError e = {};
                int r = kube_config_load_data(garbage[i].data, garbage[i].size, "/etc/kc", NULL, &c, &e);
                if (r >= 0 || c)
                        fail_msg("garbage %zu accepted", i);
                if (strncmp(e.message, "/etc/kc: ", 9) != 0)
                        fail_msg("garbage %zu: message \"%s\" does not name the file", i, e.message);
        }

        /* --kubeconfig naming a missing file or a directory */
        static const char *const paths[] = { "/nonexistent/kubeconfig", "/tmp" };
        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                KubeConfigOptions o = { .kubeconfig = paths[i], .env_kubeconfig = "", .home = "/nonexistent-home",
                                        .service_host = "", .service_port = "", .sa_dir = "/nonexistent-sa" };
                KubeConfig *c = NULL;
                MrError e = {};
                if (kube_config_load(&o, &c, &e) >= 0 || c)
                        fail_msg("%s accepted", paths[i]);
                if (!strstr(e.message, paths[i]))
                        fail_msg("message \"%s\" does not name %s", e.message, paths[i]);
        }
}

/* The command-line overrides, named as the user typed them. */
static void test_flags_named(void **state)
{
        static const struct {
                const char *server, *ns, *message;
        } flags[] = {
                { "gopher://x", NULL, "--server: expected an http:// or https:// URL, got \"gopher://x\"" },
                { "https://x:70000", NULL, "--server: expected a port from 1 to 65535 after the host, got \"https://x:70000\"" },
                { "http://[::1]:", NULL, "--server: expected a port from 1 to 65535" },
                { "https://x y", NULL, "--server: expected a URL without spaces or control characters" },
                { "https://x", "kube-system/../default", "--namespace: expected a namespace name" },
                { "https://x", "-ns", "--namespace: expected a namespace name" },
                { "https://x", "a123456789a123456789a123456789a123456789a123456789a123456789abcd",
                  "--namespace: expected a namespace name" },
        };
        for (size_t i = 0; i < ELEMENTSOF(flags); i++) {
                KubeConfigOptions o = { .server = flags[i].server, .namespace = flags[i].ns, .env_kubeconfig = "",
                                        .home = "/nonexistent-home", .service_host = "", .service_port = "",
                                        .sa_dir = "/nonexistent-sa" };
                KubeConfig *c = NULL;
                MrError e = {};
                int r = kube_config_load(&o, &c, &e);
                if (r != -MR_ECONFIG || c)
                        fail_msg("flags %zu: got %s: %s", i, mr_errno_name(r), e.message);
                if (strncmp(e.message, flags[i].message, strlen(flags[i].message)) != 0)
                        fail_msg("flags %zu: message \"%s\" does not start with \"%s\"", i, e.message,
                                 flags[i].message);
        }

        /* What must still be accepted: IPv6 with and without a port, a host alone, a path prefix. */
        static const char *const good[] = { "https://[::1]:6443", "https://[fd00::1]", "api.example:443",
                                            "https://10.0.0.1:6443/prefix/", "http://127.0.0.1:8080" };
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                KubeConfigOptions o = { .server = good[i], .namespace = "team-a", .env_kubeconfig = "",
                                        .home = "/nonexistent-home", .service_host = "", .service_port = "",
                                        .sa_dir = "/nonexistent-sa" };
                _cleanup_(kube_config_freep) KubeConfig *c = NULL;
                MrError e = {};
                if (kube_config_load(&o, &c, &e) < 0)
                        fail_msg("%s refused: %s", good[i], e.message);
                assert_string_equal(c->namespace, "team-a");
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fields_named),
                cmocka_unit_test(test_files_named),
                cmocka_unit_test(test_unusable_files),
                cmocka_unit_test(test_flags_named),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
