/* SPDX-License-Identifier: Apache-2.0 */
/* cli.c — see cli.h. */
#include <stdarg.h>
#include <stdio.h>

#include "meshroll-config.h"
#include "meshroll/log.h"
#include "cli.h"

void cli_init(Cli *cli)
{
        *cli = (Cli){ .lease_namespace = "meshroll", .leader_elect = true, .tick = USEC_PER_SEC };
        cli->identity = getenv("POD_NAME");
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
        va_list ap;
        fprintf(stderr, "meshroll %s: ", cmd);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return 2;
}

int cli_parse_common(Cli *cli, int opt, const char *arg)
{
        LogFormat format;
        int level;

        switch (opt) {
        case 0x1000:
                cli->kube.server = arg;
                return 0;
        case 0x1001:
                cli->kube.kubeconfig = arg;
                return 0;
        case 0x1002:
                cli->kube.context = arg;
                return 0;
        case 0x1003:
                cli->kube.token = arg;
                return 0;
        case 0x1004:
                cli->kube.insecure_skip_tls_verify = true;
                return 0;
        case 0x1005:
                level = log_level_from_string(arg);
                if (level < 0)
                        return cli_usage_error("", "invalid --log-level \"%s\": expected debug, info, notice, "
                                                   "warning or error", arg);
                log_set_max_level(level);
                return 0;
        case 0x1006:
                if (log_format_from_string(arg, &format) < 0)
                        return cli_usage_error("", "invalid --log-format \"%s\": expected logfmt or json", arg);
                log_set_format(format);
                return 0;
        case 0x1007:
                cli->lease_namespace = arg;
                return 0;
        case 0x1008:
                cli->identity = arg;
                return 0;
        case 0x1009:
                if (!arg || streq(arg, "true"))
                        cli->leader_elect = true;
                else if (streq(arg, "false"))
                        cli->leader_elect = false;
                else
                        return cli_usage_error("", "invalid --leader-elect \"%s\": expected true or false", arg);
                return 0;
        case 0x100a:
                if (mr_duration_parse(arg, &cli->tick) < 0 || cli->tick < 10 * USEC_PER_MSEC)
                        return cli_usage_error("", "invalid --tick \"%s\": expected a duration of at least 10ms", arg);
                return 0;
        default:
                return 2;
        }
}

int cli_client(const Cli *cli, const KubeClientOptions *opts, KubeClient **ret)
{
        _cleanup_(kube_config_freep) KubeConfig *config = NULL;
        MrError err = {};
        int r;

        r = kube_config_load(&cli->kube, &config, &err);
        if (r < 0) {
                log_error("%s", err.message);
                return r == -MR_ECONFIG || r == -ENOENT ? 2 : 1;
        }
        /* The User-Agent names this coordinator (its --identity, else host-pid as the election's default),
         * so an API server's audit log tells two coordinators apart. */
        KubeClientOptions o = opts ? *opts : (KubeClientOptions){};
        char host[128] = "meshroll", ua[384];
        if (!o.user_agent) {
                if (cli->identity)
                        snprintf(ua, sizeof(ua), "meshroll/%s (%s)", MESHROLL_VERSION, cli->identity);
                else {
                        (void)gethostname(host, sizeof(host) - 1);
                        snprintf(ua, sizeof(ua), "meshroll/%s (%s-%d)", MESHROLL_VERSION, host, (int)getpid());
                }
                o.user_agent = ua;
        }
        r = kube_client_new(config, &o, ret, &err);
        if (r < 0) {
                log_error("Cannot use the API server configuration: %s", err.message);
                return 2;
        }
        return 0;
}
