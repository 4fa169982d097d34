/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "meshroll/errors.h"
#include "meshroll/kubeconfig.h"

static char data_dir[1024]; /* tests/unit/data/kubeconfig, absolute */

static const char *data(const char *name)
{
        static char buf[4][1200];
        static unsigned next;
        char *b = buf[next++ % 4];
        (void)snprintf(b, sizeof(buf[0]), "%s/%s", data_dir, name);
        return b;
}

/* Options with the whole environment pinned, so the developer's own kubeconfig never leaks in. */
static KubeConfigOptions isolated(void)
{
        return (KubeConfigOptions){
                .env_kubeconfig = "",
                .home = "/nonexistent-home",
                .service_host = "",
                .service_port = "",
                .sa_dir = "/nonexistent-sa",
        };
}

static KubeConfig *load_ok(const KubeConfigOptions *o)
{
        KubeConfig *c = NULL;
        MrError e = {};
        int r = kube_config_load(o, &c, &e);
        if (r < 0)
                fail_msg("kube_config_load: %s (%s)", e.message, mr_strerror(r));
        return c;
}

static void load_fail(const KubeConfigOptions *o, int want, const char *msg)
{
        KubeConfig *c = (KubeConfig *)0x1;
        MrError e = {};
        int r = kube_config_load(o, &c, &e);
        if (r != want)
                fail_msg("want %s got %s: %s", mr_errno_name(want), mr_errno_name(r), e.message);
        assert_ptr_equal(c, (KubeConfig *)0x1);
        if (!strstr(e.message, msg))
                fail_msg("message \"%s\" lacks \"%s\"", e.message, msg);
}

static KubeConfig *data_ok(const char *yaml, const char *context)
{
        KubeConfig *c = NULL;
        MrError e = {};
        if (kube_config_load_data(yaml, strlen(yaml), "/etc/kc", context, &c, &e) < 0)
                fail_msg("kube_config_load_data: %s", e.message);
        return c;
}

static void data_fail(const char *yaml, const char *context, const char *msg)
{
        KubeConfig *c = NULL;
        MrError e = {};
        assert_int_equal(kube_config_load_data(yaml, strlen(yaml), "/etc/kc", context, &c, &e), -MR_ECONFIG);
        assert_null(c);
        assert_int_equal(e.error, -MR_ECONFIG);
        if (!strstr(e.message, msg))
                fail_msg("message \"%s\" lacks \"%s\"", e.message, msg);
}

#define BASE                                                                                                       \
        "clusters: [{name: c, cluster: {server: 'https://s'}}]\n"                                                  \
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"                                                  \
        "current-context: x\n"

static void test_single_file_and_data_fields(void **state)
{
        KubeConfigOptions o = isolated();
        o.kubeconfig = data("a.yaml");
        _cleanup_(kube_config_freep) KubeConfig *c = load_ok(&o);
        assert_string_equal(c->server, "https://a.example:6443");
        assert_string_equal(c->context_name, "ctx-a");
        assert_string_equal(c->namespace, "ns-a");
        assert_string_equal(c->token, "tok-a");
        assert_string_equal(c->ca_file, data("ca.crt"));
        assert_string_equal(c->source, data("a.yaml"));
        assert_false(c->in_cluster);

        o.context = "ctx-b";
        _cleanup_(kube_config_freep) KubeConfig *b = load_ok(&o);
        assert_string_equal(b->server, "https://c2.example");
        assert_string_equal(b->tls_server_name, "api.internal");
        assert_null(b->ca_file); /* data wins */
        assert_int_equal(b->ca_data_size, strlen(b->ca_data));
        assert_string_equal(b->ca_data, "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n");
        assert_string_equal(b->client_cert_data, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
        assert_string_equal(b->client_key_data, "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
        assert_null(b->token);
        assert_null(b->namespace);
}

static void test_merged_kubeconfig_env(void **state)
{
        char env[4096];
        KubeConfigOptions o = isolated();
        (void)snprintf(env, sizeof(env), "%s:%s::%s:%s", data("a.yaml"), data("missing.yaml"), data("b.yaml"),
                       data("a.yaml"));
        o.env_kubeconfig = env;

        /* current-context and c1/u1 come from the first file. */
        _cleanup_(kube_config_freep) KubeConfig *c = load_ok(&o);
        assert_string_equal(c->context_name, "ctx-a");
        assert_string_equal(c->server, "https://a.example:6443");
        assert_string_equal(c->token, "tok-a");

        /* Entries only the second file has are there, with its paths resolved against its directory. */
        o.context = "ctx-c";
        _cleanup_(kube_config_freep) KubeConfig *d = load_ok(&o);
        assert_string_equal(d->server, "https://c3.example:443"); /* insecure → https */
        assert_true(d->insecure_skip_tls_verify);
        assert_string_equal(d->token_file, data("tokens/u3"));
        assert_string_equal(d->username, "admin");
        assert_string_equal(d->password, "secret");
        assert_string_equal(d->source, data("b.yaml"));

        o.context = "nope";
        load_fail(&o, -MR_ECONFIG, "context \"nope\" not found (contexts: ctx-a, ctx-b, ctx-c)");
}

static void test_relative_paths_and_exec(void **state)
{
        KubeConfigOptions o = isolated();
        o.kubeconfig = data("sub/c.yaml");
        _cleanup_(kube_config_freep) KubeConfig *c = load_ok(&o);
        assert_string_equal(c->server, "http://127.0.0.1:8080");
        assert_string_equal(c->client_cert_file, data("sub/../certs/client.crt"));
        assert_string_equal(c->client_key_file, "/abs/client.key");
        assert_non_null(c->exec);
        assert_string_equal(c->exec->command, data("sub/./bin/plugin"));
        assert_string_equal(c->exec->api_version, "client.authentication.k8s.io/v1beta1");
        assert_string_equal(c->exec->args[0], "--flag");
        assert_string_equal(c->exec->args[1], "value");
        assert_null(c->exec->args[2]);
        assert_string_equal(c->exec->env[0], "FOO=bar");
        assert_string_equal(c->exec->env[1], "EMPTY=");
        assert_null(c->exec->env[2]);
        assert_string_equal(c->exec->install_hint, "install the plugin");
        assert_true(c->exec->provide_cluster_info);
        assert_null(c->exec->interactive_mode);

        /* A copy carries every field (the client keeps its own copy). */
        _cleanup_(kube_config_freep) KubeConfig *copy = NULL;
        assert_int_equal(kube_config_copy(c, &copy), 0);
        assert_ptr_not_equal(copy->exec, c->exec);
        assert_string_equal(copy->server, c->server);
        assert_string_equal(copy->exec->command, c->exec->command);
        assert_string_equal(copy->exec->args[1], "value");
        assert_null(copy->exec->args[2]);
        assert_string_equal(copy->exec->env[1], "EMPTY=");
        assert_string_equal(copy->exec->install_hint, "install the plugin");
        assert_true(copy->exec->provide_cluster_info);
        assert_null(copy->exec->interactive_mode);
        assert_string_equal(strempty(copy->source), strempty(c->source));

        /* A bare command name is looked up in $PATH, not resolved. */
        _cleanup_(kube_config_freep) KubeConfig *p = data_ok(
                BASE "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: aws, "
                     "interactiveMode: Never}}}]\n",
                NULL);
        assert_string_equal(p->exec->command, "aws");
        assert_string_equal(p->exec->interactive_mode, "Never");
}

static void test_relative_source_name(void **state)
{
        /* A relative source name is made absolute against the working directory. */
        const char *y = BASE "users: [{name: u, user: {tokenFile: t}}]\n";
        _cleanup_(kube_config_freep) KubeConfig *c = NULL;
        char cwd[1024], want[1200];
        assert_int_equal(kube_config_load_data(y, strlen(y), "dir/kc", NULL, &c, NULL), 0);
        assert_non_null(getcwd(cwd, sizeof(cwd)));
        (void)snprintf(want, sizeof(want), "%s/dir/t", cwd);
        assert_string_equal(c->token_file, want);

        /* Without a source name, paths stay as written and messages say "kubeconfig". */
        _cleanup_(kube_config_freep) KubeConfig *d = NULL;
        assert_int_equal(kube_config_load_data(y, strlen(y), NULL, NULL, &d, NULL), 0);
        assert_string_equal(d->token_file, "t");
        MrError e = {};
        assert_int_equal(kube_config_load_data("users: 5", 8, NULL, NULL, &d, &e), -MR_ECONFIG);
        assert_string_equal(e.message, "kubeconfig: users: expected a list");
}

static void test_wrong_types_name_the_field(void **state)
{
        KubeConfigOptions o = isolated();
        o.kubeconfig = data("bad-b64.yaml");
        char want[1200];
        (void)snprintf(want, sizeof(want), "%s: users[1].user.client-key-data: not valid base64", data("bad-b64.yaml"));
        load_fail(&o, -MR_ECONFIG, want);

        data_fail("clusters: [{name: c, cluster: {server: s, insecure-skip-tls-verify: 'yes'}}]", NULL,
                  "/etc/kc: clusters[0].cluster.insecure-skip-tls-verify: expected true or false");
        data_fail(BASE "users: [{name: u, user: {token: 5}}]", NULL, "/etc/kc: users[0].user.token: expected a string");
        data_fail(BASE "users: [{name: u, user: [1]}]", NULL, "users[0].user: expected a mapping");
        data_fail("contexts: {a: b}", NULL, "/etc/kc: contexts: expected a list");
        data_fail("clusters: [5]", NULL, "clusters[0]: expected a mapping with name and cluster");
        data_fail("clusters: [{cluster: {}}]", NULL, "clusters[0].name: expected a non-empty string");
        data_fail("clusters: [{name: a}, {name: b}, {name: a}]", NULL,
                  "clusters[2].name: \"a\" is already defined at clusters[0]");
        data_fail("current-context: [x]", NULL, "current-context: expected a string");
        data_fail("- a\n- b\n", NULL, "/etc/kc: expected a kubeconfig mapping at the top level");
        data_fail(BASE "users: [{name: u, user: {exec: {command: x, args: [1]}}}]", NULL,
                  "users[0].user.exec.args: item 0: expected a string");
        data_fail(BASE "users: [{name: u, user: {exec: {command: x, env: [{value: v}]}}}]", NULL,
                  "users[0].user.exec.env[0]: name: expected a variable name");
        data_fail(BASE "users: [{name: u, user: {exec: {args: []}}}]", NULL,
                  "users[0].user.exec.command: expected the plugin's command");
        data_fail(BASE "users: [{name: u, user: {client-certificate-data: 'QQ=x'}}]", NULL, "not valid base64");
        data_fail(BASE "users: [{name: u, user: {client-certificate-data: 'QQ'}}]", NULL, "not valid base64");
}

static void test_base64_forms(void **state)
{
        /* Go's StdEncoding: padding required, line breaks ignored. */
        _cleanup_(kube_config_freep) KubeConfig *c = data_ok(
                BASE "users: [{name: u, user: {client-certificate-data: \"QUJD\\nREVG\\r\\nRw==\\n\", "
                     "client-key-data: 'QUI='}}]\n",
                NULL);
        assert_int_equal(c->client_cert_data_size, 7);
        assert_string_equal(c->client_cert_data, "ABCDEFG");
        assert_string_equal(c->client_key_data, "AB");
}

static void test_checks_on_the_chosen_context_only(void **state)
{
        /* An unusable entry that is not chosen does not matter... */
        const char *y = BASE "users: [{name: u, user: {token: t}}, {name: v, user: {as: admin}}]\n";
        _cleanup_(kube_config_freep) KubeConfig *c = data_ok(y, NULL);
        assert_string_equal(c->token, "t");
        /* ...but the chosen one is checked. */
        data_fail(BASE "users: [{name: u, user: {as: admin}}]", NULL,
                  "users[0].user.as: impersonation is not supported");
        data_fail(BASE "users: [{name: u, user: {auth-provider: {name: gcp}}}]", NULL, "auth-provider is not supported");
        data_fail(BASE "users: [{name: u, user: {client-certificate: c.crt}}]", NULL,
                  "users[0].user.client-key: a client certificate and key must be given together");
        data_fail(BASE "users: [{name: u, user: {exec: {command: x, apiVersion: client.authentication.k8s.io/v1alpha1}}}]",
                  NULL, "users[0].user.exec.apiVersion: expected client.authentication.k8s.io/v1 or");
        data_fail(BASE "users: [{name: u, user: {exec: {command: x, apiVersion: client.authentication.k8s.io/v1}}}]",
                  NULL, "users[0].user.exec.interactiveMode: required");
        data_fail(BASE "users: []", NULL, "contexts[0].context.user: user \"u\" not found (users: none defined)");
        data_fail("clusters: [{name: c, cluster: {server: s}}]\ncontexts: [{name: x, context: {cluster: d}}]", "x",
                  "contexts[0].context.cluster: cluster \"d\" not found (clusters: c)");
        data_fail("clusters: [{name: c}]\ncontexts: [{name: x, context: {cluster: c}}]", "x",
                  "clusters[0].cluster.server: expected the API server's URL");
        data_fail("clusters: [{name: c, cluster: {server: 'ftp://x'}}]\ncontexts: [{name: x, context: {cluster: c}}]",
                  "x", "clusters[0].cluster.server: expected an http:// or https:// URL, got \"ftp://x\"");
        data_fail("contexts: [{name: x, context: {namespace: n}}]", "x",
                  "contexts[0].context.cluster: expected the name of a cluster");
        data_fail("clusters: [{name: c, cluster: {server: 'https://x', insecure-skip-tls-verify: true, "
                  "certificate-authority: ca}}]\ncontexts: [{name: x, context: {cluster: c}}]",
                  "x", "insecure-skip-tls-verify cannot be combined with a certificate-authority");
}

static void test_context_selection_messages(void **state)
{
        data_fail("clusters: []\ncontexts: [{name: a, context: {cluster: c}}, {name: b, context: {cluster: c}}]",
                  NULL, "/etc/kc: current-context is not set and no --context given");
        data_fail("contexts: [{name: a, context: {cluster: c}}, {name: b, context: {cluster: c}}]", "foo",
                  "/etc/kc: context \"foo\" not found (contexts: a, b)");
        data_fail("", "foo", "context \"foo\" not found (contexts: none defined)");
        _cleanup_(kube_config_freep) KubeConfig *c = data_ok(
                "clusters: [{name: c, cluster: {server: 'localhost:8080/'}}]\n"
                "contexts: [{name: a, context: {cluster: c}}, {name: b, context: {cluster: c, namespace: nb}}]\n"
                "current-context: a\n",
                "b");
        assert_string_equal(c->context_name, "b");
        assert_string_equal(c->namespace, "nb");
        assert_string_equal(c->server, "http://localhost:8080"); /* no TLS configured → http */
        assert_null(c->token);
        assert_null(c->exec);
}

static void test_malformed_yaml_has_line(void **state)
{
        KubeConfigOptions o = isolated();
        char want[1200];
        o.kubeconfig = data("bad-yaml.yaml");
        (void)snprintf(want, sizeof(want), "%s: line 7, column 1: found unexpected end of stream while scanning a quoted scalar started at line 5, column 13", data("bad-yaml.yaml"));
        load_fail(&o, -MR_ECONFIG, want);
        data_fail("a: [1,\n", NULL, "/etc/kc: line 2");
}

static void test_missing_files(void **state)
{
        KubeConfigOptions o = isolated();
        o.kubeconfig = data("missing.yaml");
        load_fail(&o, -MR_ECONFIG, "missing.yaml: cannot read: No such file or directory");
        o.kubeconfig = data_dir;
        load_fail(&o, -MR_ECONFIG, "cannot read: Is a directory");

        /* An empty --kubeconfig file configures nothing. */
        o.kubeconfig = data("empty.yaml");
        load_fail(&o, -MR_ECONFIG, "current-context is not set");

        /* Nothing anywhere: -ENOENT saying what was tried. */
        o = isolated();
        load_fail(&o, -ENOENT, "no Kubernetes configuration found: /nonexistent-home/.kube/config does not exist");
        o.env_kubeconfig = data("missing.yaml");
        load_fail(&o, -ENOENT, "names no non-empty file");
        load_fail(&o, -ENOENT, "not in a cluster");
}

static void test_home_default(void **state)
{
        KubeConfigOptions o = isolated();
        o.home = data("home");
        _cleanup_(kube_config_freep) KubeConfig *c = load_ok(&o);
        assert_string_equal(c->server, "https://home.example");
        assert_string_equal(c->context_name, "home");
        assert_null(c->token);

        /* $KUBECONFIG takes precedence over ~/.kube/config. */
        o.env_kubeconfig = data("a.yaml");
        _cleanup_(kube_config_freep) KubeConfig *d = load_ok(&o);
        assert_string_equal(d->context_name, "ctx-a");
}

static void test_in_cluster(void **state)
{
        KubeConfigOptions o = isolated();
        o.service_host = "10.96.0.1";
        o.service_port = "443";
        o.sa_dir = data("sa");
        _cleanup_(kube_config_freep) KubeConfig *c = load_ok(&o);
        assert_true(c->in_cluster);
        assert_string_equal(c->server, "https://10.96.0.1:443");
        assert_string_equal(c->token_file, data("sa/token"));
        assert_string_equal(c->ca_file, data("sa/ca.crt"));
        assert_string_equal(c->namespace, "istio-system");
        assert_string_equal(c->context_name, "in-cluster");
        assert_null(c->source);
        assert_null(c->token);

        o.service_host = "fd00::1";
        o.namespace = "other";
        _cleanup_(kube_config_freep) KubeConfig *d = load_ok(&o);
        assert_string_equal(d->server, "https://[fd00::1]:443");
        assert_string_equal(d->namespace, "other");

        /* A kubeconfig found first wins over in-cluster. */
        o.home = data("home");
        _cleanup_(kube_config_freep) KubeConfig *e = load_ok(&o);
        assert_false(e->in_cluster);

        /* In a pod without a token: a clear error. */
        o = isolated();
        o.service_host = "10.96.0.1";
        o.service_port = "443";
        o.sa_dir = data("sub");
        load_fail(&o, -MR_ECONFIG, "in-cluster: ");
        load_fail(&o, -MR_ECONFIG, "sub/token: cannot read the service account token");
}

static void test_flags(void **state)
{
        KubeConfigOptions o = isolated();
        o.env_kubeconfig = data("a.yaml"); /* ignored: --server alone */
        o.server = "http://127.0.0.1:8080/";
        _cleanup_(kube_config_freep) KubeConfig *s = load_ok(&o);
        assert_string_equal(s->server, "http://127.0.0.1:8080");
        assert_string_equal(s->context_name, "--server");
        assert_null(s->token);
        assert_null(s->namespace);

        o.token = "flag-token";
        o.namespace = "ns";
        _cleanup_(kube_config_freep) KubeConfig *t = load_ok(&o);
        assert_string_equal(t->token, "flag-token");
        assert_string_equal(t->namespace, "ns");

        /* With a kubeconfig, --server overrides the cluster's and the user's other auth goes. */
        o = isolated();
        o.kubeconfig = data("b.yaml");
        o.server = "https://override:6443";
        o.token = "flag-token";
        o.namespace = "ns2";
        _cleanup_(kube_config_freep) KubeConfig *k = load_ok(&o);
        assert_string_equal(k->server, "https://override:6443");
        assert_string_equal(k->token, "flag-token");
        assert_null(k->token_file);
        assert_null(k->username);
        assert_string_equal(k->namespace, "ns2");

        o = isolated();
        o.kubeconfig = data("a.yaml");
        o.insecure_skip_tls_verify = true;
        _cleanup_(kube_config_freep) KubeConfig *i = load_ok(&o);
        assert_true(i->insecure_skip_tls_verify);
        assert_null(i->ca_file);

        o = isolated();
        o.server = "gopher://x";
        load_fail(&o, -MR_ECONFIG, "--server: expected an http:// or https:// URL");
}

static void test_size_cap(void **state)
{
        KubeConfig *c = NULL;
        MrError e = {};
        assert_int_equal(kube_config_load_data("", (4u << 20) + 1, "big", NULL, &c, &e), -MR_ETOOBIG);
        assert_null(c);
}

int main(void)
{
        const char *d = getenv("MESHROLL_TEST_DATA");
        if (!d) {
                fprintf(stderr, "MESHROLL_TEST_DATA is not set\n");
                return 1;
        }
        (void)snprintf(data_dir, sizeof(data_dir), "%s/kubeconfig", d);

        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_single_file_and_data_fields),
                cmocka_unit_test(test_merged_kubeconfig_env),
                cmocka_unit_test(test_relative_paths_and_exec),
                cmocka_unit_test(test_relative_source_name),
                cmocka_unit_test(test_wrong_types_name_the_field),
                cmocka_unit_test(test_base64_forms),
                cmocka_unit_test(test_checks_on_the_chosen_context_only),
                cmocka_unit_test(test_context_selection_messages),
                cmocka_unit_test(test_malformed_yaml_has_line),
                cmocka_unit_test(test_missing_files),
                cmocka_unit_test(test_home_default),
                cmocka_unit_test(test_in_cluster),
                cmocka_unit_test(test_flags),
                cmocka_unit_test(test_size_cap),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
