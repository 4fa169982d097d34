/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kubeconfig.h — where the API server is and who we are to it.
 *
 * Resolution follows kubectl/client-go (clientcmd's loading rules), so a
 * user's existing setup just works:
 *
 *   1. --server URL alone (no kubeconfig named): that server, no credentials
 *      unless --token is given. This is how tests and the demo reach the
 *      simulator.
 *   2. --kubeconfig FILE: that file only; a missing file is an error.
 *   3. $KUBECONFIG: a colon-separated list of files merged in order; for each
 *      map entry (cluster, user, context) the first file that names it wins;
 *      current-context comes from the first file that sets one; missing
 *      files are skipped.
 *   4. ~/.kube/config when it exists.
 *   5. In-cluster: $KUBERNETES_SERVICE_HOST/PORT with the service account's
 *      token, CA and namespace under
 *      /var/run/secrets/kubernetes.io/serviceaccount.
 *
 * --context picks a context other than current-context; --server given with
 * --kubeconfig or --context overrides that cluster's server (with neither,
 * it is rule 1 and $KUBECONFIG is not read). --token replaces the user's
 * token, tokenFile, exec plugin and basic auth; --namespace replaces the
 * context's namespace; --insecure-skip-tls-verify drops the configured CA,
 * as kubectl's overrides do. When every file named is missing or empty,
 * in-cluster configuration is tried next.
 *
 * Supported kubeconfig fields (v1): clusters[].cluster.{server,
 * certificate-authority, certificate-authority-data, insecure-skip-tls-verify,
 * tls-server-name}; users[].user.{token, tokenFile, client-certificate,
 * client-certificate-data, client-key, client-key-data, username, password,
 * exec}; contexts[].context.{cluster, user, namespace}; current-context.
 * Relative file paths resolve against the directory of the file that named
 * them, as kubectl does (exec.command only when it contains a slash).
 * *-data fields are base64 and are decoded at load; a *-data field wins
 * over its file field, which is then NULL. A server without a scheme gets
 * https:// when TLS is configured and http:// otherwise (client-go).
 *
 * Every entry of every file is type-checked, so a mistake anywhere is
 * reported; what kubectl checks only for the entries in use (a server is
 * set, certificate and key come together, exec apiVersion and
 * interactiveMode, no impersonation or auth-provider — both unsupported)
 * is checked for the chosen context only.
 *
 * Every error a user can cause is -MR_ECONFIG with a message naming the
 * file, the field path and what was expected, e.g.
 *   "/home/a/.kube/config: users[1].user.client-key-data: not valid base64".
 *
 * The loaded KubeConfig is plain data, owned by the caller; it does not read
 * files later — token rotation is handled by KubeCredentials below,
 * which re-reads token_file when it changes.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "meshroll/errors.h"

/* An exec credential plugin (client.authentication.k8s.io/v1 or v1beta1). */
typedef struct KubeExecConfig {
        char *command;
        char **args;        /* NULL-terminated, may be NULL */
        char **env;         /* NULL-terminated "NAME=value" list, may be NULL */
        char *api_version;  /* "client.authentication.k8s.io/v1" or ".../v1beta1" */
        char *interactive_mode; /* Never | IfAvailable | Always; meshroll never prompts */
        char *install_hint;  /* shown when the command cannot be run, or NULL */
        bool provide_cluster_info;
} KubeExecConfig;

typedef struct KubeConfig {
        /* where */
        char *server;                /* "https://10.0.0.1:6443", no trailing slash; never NULL */
        char *tls_server_name;       /* SNI / verification name override, or NULL */
        char *ca_file;               /* PEM file, or NULL */
        char *ca_data;               /* PEM bytes (decoded), or NULL */
        size_t ca_data_size;
        bool insecure_skip_tls_verify;

        /* who */
        char *token;                 /* static bearer token, or NULL */
        char *token_file;            /* bearer token re-read when it changes, or NULL */
        char *client_cert_file, *client_key_file; /* PEM files, or NULL */
        char *client_cert_data, *client_key_data; /* PEM bytes (decoded), or NULL */
        size_t client_cert_data_size, client_key_data_size;
        char *username, *password;   /* basic auth, or NULL */
        KubeExecConfig *exec;        /* or NULL */

        /* context */
        char *namespace;             /* context namespace (in-cluster: the pod's), or NULL */
        char *context_name;          /* "in-cluster" or "--server" for those sources */
        char *source;                /* the file it came from, for messages; NULL for flags/in-cluster */
        bool in_cluster;
} KubeConfig;

/* What the user said on the command line and what the environment says. */
typedef struct KubeConfigOptions {
        const char *server;       /* --server, or NULL */
        const char *token;        /* --token, or NULL */
        const char *kubeconfig;   /* --kubeconfig, or NULL */
        const char *context;      /* --context, or NULL */
        const char *namespace;    /* --namespace overrides the context's, or NULL */
        bool insecure_skip_tls_verify; /* --insecure-skip-tls-verify */

        /* Injectable environment; NULL means "ask the process" ($KUBECONFIG, $HOME, …). */
        const char *env_kubeconfig;
        const char *home;
        const char *service_host; /* $KUBERNETES_SERVICE_HOST */
        const char *service_port; /* $KUBERNETES_SERVICE_PORT */
        const char *sa_dir;       /* default /var/run/secrets/kubernetes.io/serviceaccount */
} KubeConfigOptions;

/*
 * Resolves the configuration as described above. On success *ret is a new
 * KubeConfig owned by the caller (free with kube_config_free). On failure
 * *ret is untouched, err (if not NULL) holds the sentence, and the return is
 * -MR_ECONFIG (user error), -ENOENT (nothing configured anywhere: the message
 * lists what was tried), -MR_ETOOBIG (a file over 4 MiB) or -ENOMEM.
 */
int kube_config_load(const KubeConfigOptions *opts, KubeConfig **ret, MrError *err);

/* Loads one kubeconfig document held in memory (used by the loader and the fuzzer); same errors. */
int kube_config_load_data(const char *data, size_t size, const char *source_name, const char *context,
                          KubeConfig **ret, MrError *err);

/* Deep copy (the client keeps its own). Returns 0 or -ENOMEM; *ret owned. */
int kube_config_copy(const KubeConfig *c, KubeConfig **ret);

KubeConfig *kube_config_free(KubeConfig *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeConfig *, kube_config_free);

/*
 * Credentials that change while a daemon runs.
 *
 * Bound service-account tokens rotate (kubelet rewrites the file about
 * hourly), so a token_file is re-read whenever its mtime or size changes and
 * at least every 60 s, as client-go does. An exec plugin is run when no
 * cached credential exists or the cached one's expirationTimestamp has
 * passed; its ExecCredential status may carry a token or a client
 * certificate and key.
 */
typedef struct KubeCredentials KubeCredentials;

typedef struct KubeCredential {
        const char *token;                 /* bearer token, or NULL */
        const char *client_cert_data;      /* PEM from an exec plugin, or NULL */
        const char *client_key_data;
} KubeCredential;

struct MrClock;

/* config is borrowed and must outlive the result. clock may be NULL (system clock). */
int kube_credentials_new(const KubeConfig *config, const struct MrClock *clock, KubeCredentials **ret);
KubeCredentials *kube_credentials_free(KubeCredentials *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(KubeCredentials *, kube_credentials_free);

/*
 * Fills *ret with the credential to use now; its strings are borrowed and
 * valid until the next call (or kube_credentials_free). A config without
 * token, token_file or exec gives an all-NULL credential.
 *
 * Returns 0, or 1 when refreshing failed but an earlier credential was kept
 * (a token file that vanished for a moment during the kubelet's rewrite
 * must not drop a valid token; err then says what failed, for a debug log).
 * Errors, when nothing usable is left: -ENOENT/-EACCES/-MR_ETOOBIG/-EINVAL
 * (empty) reading the token file, -MR_ECONFIG when an exec plugin cannot be
 * started, fails, times out or prints an invalid ExecCredential (err names
 * the command and what was wrong), -ENOMEM. Tokens never appear in err.
 *
 * A static token or token_file wins over exec, and so do a client
 * certificate and basic auth (client-go): then the plugin never runs. When
 * it does run, this call blocks until it exits (at most the exec timeout);
 * token files never block. The plugin is reaped with waitpid() on its pid,
 * so SIGCHLD must not be SIG_IGN.
 */
int kube_credentials_get(KubeCredentials *k, KubeCredential *ret, MrError *err);

/*
 * After a 401: forgets a cached exec credential, so the next get runs the
 * plugin again, and makes the next get re-read a token file immediately.
 */
void kube_credentials_invalidate(KubeCredentials *k);

/* Exec plugin limits. Defaults: 60 s to finish, 1 MiB of stdout. 0 keeps the current value. */
void kube_credentials_set_exec_limits(KubeCredentials *k, usec_t timeout, size_t max_output);
