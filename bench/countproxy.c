/* SPDX-License-Identifier: Apache-2.0 */
/*
 * countproxy.c — see countproxy.h. One acceptor thread, one relay thread
 * per connection (a handful: the coordinator keeps a few keep-alive
 * connections and one per watch). Shutdown: a flag, shutdown(2) on the
 * listening socket and on every relayed pair, then joins.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "countproxy.h"
#include "meshroll/macro.h"

#define MAX_CONNS 1024
#define HEADER_MAX (64u << 10)

typedef struct Relay {
        CountProxy *proxy;
        int client, server;
        pthread_t thread;
        /* request parser (client → server) */
        char head[HEADER_MAX];
        size_t head_len;
        uint64_t body_left;
        bool lost; /* cannot follow the stream any more */
} Relay;

struct CountProxy {
        int listen_fd;
        uint16_t upstream;
        char url[64];
        pthread_t acceptor;
        pthread_mutex_t lock;
        bool stopping;
        Relay *relays[MAX_CONNS];
        size_t n_relays;
        CountProxyStats stats;
        FILE *trace;
        struct timespec t0;
};

static void count_request(Relay *r)
{
        CountProxy *p = r->proxy;
        const char *line = r->head, *sp = strchr(line, ' ');
        size_t mlen = sp ? (size_t)(sp - line) : 0;
        char target[1024] = "";

        if (sp)
                sscanf(sp + 1, "%1023s", target);
        pthread_mutex_lock(&p->lock);
        if (p->trace) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                fprintf(p->trace, "%9.3f %.*s %s\n",
                        (double)(ts.tv_sec - p->t0.tv_sec) + (double)(ts.tv_nsec - p->t0.tv_nsec) / 1e9, (int)mlen,
                        line, target);
        }
        if (mlen == 3 && strncmp(line, "GET", 3) == 0) {
                if (strstr(target, "watch=1") || strstr(target, "watch=true"))
                        p->stats.watch++;
                else
                        p->stats.get++;
        } else if ((mlen == 4 && strncmp(line, "POST", 4) == 0) || (mlen == 3 && strncmp(line, "PUT", 3) == 0) ||
                   (mlen == 5 && strncmp(line, "PATCH", 5) == 0) || (mlen == 6 && strncmp(line, "DELETE", 6) == 0))
                p->stats.write++;
        else
                p->stats.other++;
        pthread_mutex_unlock(&p->lock);

        r->body_left = 0;
        for (const char *h = strstr(r->head, "\r\n"); h && h[2] != '\r'; h = strstr(h + 2, "\r\n")) {
                if (strncasecmp(h + 2, "Content-Length:", 15) == 0)
                        r->body_left = strtoull(h + 2 + 15, NULL, 10);
                else if (strncasecmp(h + 2, "Transfer-Encoding:", 18) == 0 && strstr(h + 2, "chunked"))
                        r->lost = true;
        }
}

/* Feeds client bytes to the parser. */
static void parse(Relay *r, const char *buf, size_t n)
{
        while (n > 0 && !r->lost) {
                if (r->body_left > 0) {
                        size_t k = n < r->body_left ? n : (size_t)r->body_left;
                        r->body_left -= k;
                        buf += k;
                        n -= k;
                        continue;
                }
                size_t room = sizeof(r->head) - 1 - r->head_len;
                size_t k = n < room ? n : room;
                memcpy(r->head + r->head_len, buf, k);
                r->head_len += k;
                r->head[r->head_len] = 0;
                char *end = strstr(r->head, "\r\n\r\n");
                if (!end) {
                        if (r->head_len >= sizeof(r->head) - 1)
                                r->lost = true;
                        buf += k;
                        n -= k;
                        continue;
                }
                size_t used = (size_t)(end + 4 - r->head);
                size_t consumed_now = used - (r->head_len - k); /* bytes of this chunk that ended the head */
                end[2] = 0;
                count_request(r);
                r->head_len = 0;
                buf += consumed_now;
                n -= consumed_now;
        }
        if (r->lost) {
                pthread_mutex_lock(&r->proxy->lock);
                r->proxy->stats.unparsed++;
                pthread_mutex_unlock(&r->proxy->lock);
                r->lost = false;
                r->body_left = UINT64_MAX; /* relay the rest without parsing */
        }
}

static bool send_all(int fd, const char *buf, size_t n)
{
        while (n > 0) {
                ssize_t k = send(fd, buf, n, MSG_NOSIGNAL);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return false;
                buf += k;
                n -= (size_t)k;
        }
        return true;
}

static void *relay_main(void *arg)
{
        Relay *r = arg;
        char buf[64 << 10];

        for (;;) {
                struct pollfd fds[2] = {{.fd = r->client, .events = POLLIN}, {.fd = r->server, .events = POLLIN}};
                if (poll(fds, 2, 1000) < 0 && errno != EINTR)
                        break;
                if (__atomic_load_n(&r->proxy->stopping, __ATOMIC_ACQUIRE))
                        break;
                if (fds[0].revents) {
                        ssize_t n = recv(r->client, buf, sizeof(buf), 0);
                        if (n <= 0)
                                break;
                        parse(r, buf, (size_t)n);
                        if (!send_all(r->server, buf, (size_t)n))
                                break;
                }
                if (fds[1].revents) {
                        ssize_t n = recv(r->server, buf, sizeof(buf), 0);
                        if (n <= 0 || !send_all(r->client, buf, (size_t)n))
                                break;
                }
        }
        shutdown(r->client, SHUT_RDWR);
        shutdown(r->server, SHUT_RDWR);
        return NULL;
}

static void *accept_main(void *arg)
{
        CountProxy *p = arg;

        for (;;) {
                int c = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        return NULL;
                }
                struct sockaddr_in up = {.sin_family = AF_INET, .sin_port = htons(p->upstream),
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                Relay *r = calloc(1, sizeof(*r));
                bool ok = s >= 0 && r && connect(s, (struct sockaddr *)&up, sizeof(up)) == 0;
                pthread_mutex_lock(&p->lock);
                ok = ok && !p->stopping && p->n_relays < MAX_CONNS;
                if (ok) {
                        *r = (Relay){.proxy = p, .client = c, .server = s};
                        ok = pthread_create(&r->thread, NULL, relay_main, r) == 0;
                        if (ok)
                                p->relays[p->n_relays++] = r;
                }
                pthread_mutex_unlock(&p->lock);
                if (!ok) {
                        close(c);
                        if (s >= 0)
                                close(s);
                        free(r);
                }
        }
}

int count_proxy_start(uint16_t upstream_port, FILE *trace, CountProxy **ret)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        CountProxy *p = calloc(1, sizeof(*p));
        int r;

        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->lock, NULL);
        p->upstream = upstream_port;
        p->trace = trace;
        clock_gettime(CLOCK_MONOTONIC, &p->t0);
        p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
            listen(p->listen_fd, 128) < 0 || getsockname(p->listen_fd, (struct sockaddr *)&a, &len) < 0) {
                r = -errno;
                if (p->listen_fd >= 0)
                        close(p->listen_fd);
                free(p);
                return r;
        }
        snprintf(p->url, sizeof(p->url), "http://127.0.0.1:%u", ntohs(a.sin_port));
        if ((r = pthread_create(&p->acceptor, NULL, accept_main, p)) != 0) {
                close(p->listen_fd);
                free(p);
                return -r;
        }
        *ret = p;
        return 0;
}

const char *count_proxy_url(const CountProxy *p)
{
        return p->url;
}

void count_proxy_stats(CountProxy *p, CountProxyStats *ret)
{
        pthread_mutex_lock(&p->lock);
        *ret = p->stats;
        pthread_mutex_unlock(&p->lock);
}

void count_proxy_free(CountProxy *p)
{
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        __atomic_store_n(&p->stopping, true, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&p->lock);
        shutdown(p->listen_fd, SHUT_RDWR);
        pthread_join(p->acceptor, NULL);
        close(p->listen_fd);
        for (size_t i = 0; i < p->n_relays; i++) {
                Relay *r = p->relays[i];
                shutdown(r->client, SHUT_RDWR);
                shutdown(r->server, SHUT_RDWR);
                pthread_join(r->thread, NULL);
                close(r->client);
                close(r->server);
                free(r);
        }
        pthread_mutex_destroy(&p->lock);
        free(p);
}
