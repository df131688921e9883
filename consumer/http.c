/*
 * http: see http.h. libmicrohttpd runs the server on one internal thread (poll or
 * epoll), at most 32 connections at a time, each dropped after 10 s idle; its error
 * lines go to the consumer's log. A request is answered in the first call of the
 * access handler: the endpoints take no body, and a /metrics body is built from the
 * counters and the exporter's last figures, never by asking Redis.
 */
#define _POSIX_C_SOURCE 200809L
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "exporter.h"
#include "log.h"
#include "metrics.h"

#define READY_HEARTBEAT_MS 5000 /* /readyz: the last good heartbeat at most this old */
#define CONNECTION_LIMIT 32
#define CONNECTION_TIMEOUT_S 10

#define TEXT_PLAIN "text/plain; charset=utf-8"
#define EXPOSITION "text/plain; version=0.0.4; charset=utf-8"

struct http_server {
    const consumer_config *cfg; /* borrowed */
    struct MHD_Daemon *daemon;  /* owned */
    exporter *exporter;         /* owned */
};

/* ------------------------------------------------------------------ the address */

/* The port of "...:PORT" (1..65535), or -1. */
static int parse_port(const char *s)
{
    if (!*s || strlen(s) > 5 || strspn(s, "0123456789") != strlen(s))
        return -1;
    long port = strtol(s, NULL, 10);
    return port >= 1 && port <= 65535 ? (int)port : -1;
}

int http_listen_parse(const char *text, struct sockaddr_storage *addr, mr_error *err)
{
    struct sockaddr_storage ss;
    char host[64] = "127.0.0.1";
    const char *colon = strrchr(text, ':');
    const char *port_text = colon ? colon + 1 : text;
    size_t host_len = colon ? (size_t)(colon - text) : 0;
    const char *host_text = text;
    int bracketed = host_len >= 2 && text[0] == '[' && text[host_len - 1] == ']';
    if (bracketed) {
        host_text++;
        host_len -= 2;
    }
    /* an IPv6 address needs its brackets: "::1:9780" could be an address alone */
    if (host_len >= sizeof host || (bracketed && host_len == 0) ||
        (!bracketed && memchr(text, ':', host_len)))
        goto bad;
    if (host_len > 0)
        snprintf(host, sizeof host, "%.*s", (int)host_len, host_text);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    int port = parse_port(port_text);
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)(void *)&ss;
    if (port < 0)
        goto bad;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
    } else {
        goto bad;
    }
    if (addr)
        *addr = ss;
    return 0;
bad:
    return mr_fail(err, MAILROOM_EINVAL,
                   "--http takes PORT, :PORT, ADDRESS:PORT or [IPV6]:PORT (a numeric address, "
                   "a port from 1 to 65535), not '%.80s'",
                   text);
}

/* ------------------------------------------------------------------ the answers */

/* Queues a response: body (len bytes) taken over when owned (freed by libmicrohttpd),
 * else a static text. */
static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *type,
                               char *body, size_t len, int owned)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    return respond(conn, status, TEXT_PLAIN, (char *)(uintptr_t)text, strlen(text), 0);
}

/* 1 when the consumer can work: not stopping, Redis answered the housekeeper's
 * heartbeat within READY_HEARTBEAT_MS, some relay's circuit is not open. Else 0 and
 * why. */
static int ready(const consumer_config *cfg, char *why, size_t cap)
{
    int64_t ok_ms = atomic_load(&cfg->heartbeat_ok_ms);
    if (atomic_load(&cfg->stopping)) {
        snprintf(why, cap, "stopping: finishing the jobs in hand");
        return 0;
    }
    if (ok_ms == 0) {
        snprintf(why, cap, "Redis not reached yet: no heartbeat has succeeded");
        return 0;
    }
    int64_t age = clock_mono_ms() - ok_ms;
    if (age > READY_HEARTBEAT_MS) {
        snprintf(why, cap, "Redis unreachable: the last heartbeat succeeded %lld s ago",
                 (long long)(age / 1000));
        return 0;
    }
    return metrics_relays_usable(why, cap);
}

/* mailroom_ready: what /readyz would answer, as a series to alert on. */
static int render_ready(const http_server *s, buf *out)
{
    char why[512];
    if (metrics_family(out, "mailroom_ready", "gauge",
                       "1 when /readyz answers 200 (Redis answers the heartbeat, some relay's "
                       "circuit is not open, not stopping), else 0.") != 0)
        return -1;
    return metrics_sample(out, "mailroom_ready", NULL, 0, ready(s->cfg, why, sizeof why));
}

/* /metrics: the process's series, its readiness, then the exporter's. */
static enum MHD_Result answer_metrics(const http_server *s, struct MHD_Connection *conn)
{
    buf b = BUF_INIT;
    if (metrics_render(&b) != 0 || render_ready(s, &b) != 0 ||
        exporter_render(s->exporter, &b) != 0 || !b.data) {
        buf_free(&b);
        return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    return respond(conn, MHD_HTTP_OK, EXPOSITION, b.data, b.len, 1);
}

static enum MHD_Result answer_ready(const http_server *s, struct MHD_Connection *conn)
{
    char why[512], text[600];
    if (ready(s->cfg, why, sizeof why))
        return respond_text(conn, MHD_HTTP_OK, "ready\n");
    snprintf(text, sizeof text, "not ready: %s\n", why);
    char *body = strdup(text);
    if (!body)
        return MHD_NO;
    return respond(conn, MHD_HTTP_SERVICE_UNAVAILABLE, TEXT_PLAIN, body, strlen(body), 1);
}

/* libmicrohttpd's access handler: every request, answered at its first call. */
static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    const http_server *s = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    if (strcmp(url, "/metrics") == 0)
        return answer_metrics(s, conn);
    if (strcmp(url, "/healthz") == 0)
        return respond_text(conn, MHD_HTTP_OK, "ok\n");
    if (strcmp(url, "/readyz") == 0)
        return answer_ready(s, conn);
    return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz, /readyz\n");
}

/* libmicrohttpd's error lines, into the log. */
static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\r\n")] = '\0';
    log_msg(LOG_WARN, NULL, "http: %s", line);
}

/* ------------------------------------------------------------------ the lifecycle */

/* Starts libmicrohttpd on cfg->http. */
static int start_daemon(http_server *s, mr_error *err)
{
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    if (http_listen_parse(s->cfg->http, &addr, err) != 0)
        return -1;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, answer, s, MHD_OPTION_EXTERNAL_LOGGER,
                                 log_mhd, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
                                 MHD_OPTION_END);
    if (!s->daemon)
        return mr_fail(err, MAILROOM_EINVAL,
                       "--http %.80s: cannot listen there (in use, or not an address of this "
                       "host)",
                       s->cfg->http);
    return 0;
}

http_server *http_start(const consumer_config *cfg, mr_error *err)
{
    const char *queues[LANE_MAX], *relays[RELAY_MAX];
    for (int i = 0; i < cfg->n_lanes; i++)
        queues[i] = cfg->lanes[i].keys.queue;
    for (int r = 0; r < cfg->n_relays; r++)
        relays[r] = cfg->relays[r].name; /* host:port, as docs/relays.md names a relay */
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        mr_fail(err, MAILROOM_ENOMEM, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    if (metrics_init(cfg->id, queues, cfg->n_lanes, relays, cfg->n_relays) != 0) {
        mr_fail(err, MAILROOM_ENOMEM, "out of memory for the metrics");
        goto fail;
    }
    s->exporter = exporter_start(&cfg->redis, cfg->id, queues, cfg->n_lanes, err);
    if (!s->exporter || start_daemon(s, err) != 0)
        goto fail;
    log_msg(LOG_INFO, NULL, "http: serving /metrics, /healthz and /readyz on %s", cfg->http);
    return s;
fail:
    http_stop(s);
    return NULL;
}

void http_stop(http_server *s)
{
    if (!s)
        return;
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    exporter_stop(s->exporter);
    metrics_free();
    free(s);
}
