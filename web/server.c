/*
 * server.c — the HTTP side of mailroom-web, served by libmicrohttpd (one thread per
 * connection, so that a live-feed stream may wait for events in its own thread).
 *
 * A request's path reads top to bottom here: the body of a POST is collected (16 KiB
 * at most), the guard of auth.c passes or refuses it, then it is routed: an API route
 * of the table below (a handler fills a web_reply, made here into a JSON response),
 * the live feed (/events, feed.c), or one of the page's files (assets.c). Every
 * response carries the same security headers: a Content-Security-Policy that allows
 * this origin's scripts and styles only (the page has no inline script or style), no
 * framing, no sniffing, no referrer.
 *
 * Actions are logged with the client's address and their outcome; refused actions
 * too. Nothing logged holds a token or a header's value.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "web.h"

#define BODY_MAX (16 * 1024)
#define CONNECTIONS_SPARE 32 /* connections beyond the streams: page, API, actions */

static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                          "form-action 'none'; frame-ancestors 'none'";

/* One request's state between libmicrohttpd's calls: the body of a POST. */
typedef struct req_state {
    char *body;
    size_t len;
    int too_big;
} req_state;

typedef struct route {
    const char *method, *path;
    web_handler fn;
} route;

static const route routes[] = {
    {"GET", "/api/overview", api_overview},
    {"GET", "/api/history", api_history},
    {"GET", "/api/dead", api_dead},
    {"GET", "/api/job", api_job},
    {"GET", "/api/search", api_search},
    {"GET", "/api/jobs", api_jobs},
    {"GET", "/api/suppressed", api_suppressed},
    {"POST", "/api/dead/retry", act_dead_retry},
    {"POST", "/api/dead/purge", act_dead_purge},
    {"POST", "/api/cancel", act_cancel},
    {"POST", "/api/retry-now", act_retry_now},
    {"POST", "/api/pause", act_pause},
    {"POST", "/api/resume", act_resume},
    {"POST", "/api/suppress/add", act_suppress_add},
    {"POST", "/api/suppress/remove", act_suppress_remove},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

/* ------------------------------------------------------------------ replies */

const char *web_arg(const web_req *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

int web_reply_error(web_reply *r, unsigned status, const char *fmt, ...)
{
    char text[WEB_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_object_put(r->body);
    r->status = status;
    r->body = json_object_new_object();
    if (r->body && wj_set(r->body, "error", wj_str(text)) != 0) {
        json_object_put(r->body);
        r->body = NULL;
    }
    return 0;
}

int web_reply_lib(web_reply *r, const web_queue *q, int rc, const char *what)
{
    unsigned status = 500;
    switch (rc) {
    case MAILROOM_ENOTFOUND: status = 404; break;
    case MAILROOM_EINVAL: status = 400; break;
    case MAILROOM_ESTATE: status = 409; break;
    case MAILROOM_EREDIS:
    case MAILROOM_ETIMEOUT: status = 503; break;
    default: break;
    }
    return web_reply_error(r, status, "%s: %s", what, mailroom_errmsg(q->m));
}

int web_reply_ok(web_reply *r, json_object *body)
{
    if (!body)
        return web_reply_error(r, 500, "out of memory");
    json_object_put(r->body);
    r->status = 200;
    r->body = body;
    return 0;
}

web_queue *web_req_queue(const web_req *rq, web_reply *out)
{
    const web_app *app = rq->app;
    const char *name = web_arg(rq, "queue");
    if (!name)
        name = wj_get_str(rq->body, "queue");
    if (!name && app->n_queues == 1)
        return &app->queues[0];
    web_queue *q = web_queue_find(app->queues, app->n_queues, name);
    if (!q)
        web_reply_error(out, name ? 404 : 400, name ? "no such queue here" : "which queue?");
    return q;
}

/* ------------------------------------------------------------------ responses */

/* The headers every response carries. */
static void add_security_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Content-Security-Policy", csp);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(resp, "Permissions-Policy", "camera=(), microphone=(), geolocation=()");
}

/* Queues resp with status and the security headers, then drops our reference. */
static enum MHD_Result send_response(struct MHD_Connection *conn, unsigned status,
                                     struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    add_security_headers(resp);
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* Sends a reply's JSON (no-store: it shows live data and may name recipients). */
static enum MHD_Result send_json(struct MHD_Connection *conn, const web_reply *r)
{
    const char *text = r->body
                           ? json_object_to_json_string_ext(
                                 r->body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
                           : "{\"error\":\"out of memory\"}";
    unsigned status = r->body ? r->status : 500;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"mailroom-web\"");
    return send_response(conn, status, resp);
}

/* Sends an error as JSON. */
static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *text)
{
    web_reply r = {0, NULL};
    web_reply_error(&r, status, "%s", text);
    enum MHD_Result res = send_json(conn, &r);
    json_object_put(r.body);
    return res;
}

/* Sends one of the page's files. */
static enum MHD_Result send_asset(struct MHD_Connection *conn, const web_asset *a)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", a->content_type);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    return send_response(conn, 200, resp);
}

/* ------------------------------------------------------------------ routing */

/* The client's address as text, for log lines. */
static void peer_text(struct MHD_Connection *conn, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, cap, "?");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)cap);
}

/* The headers the guard reads. */
static web_headers read_headers(struct MHD_Connection *conn)
{
    return (web_headers){
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host"),
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin"),
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-Fetch-Site"),
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"),
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Mailroom-Action"),
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"),
    };
}

/* The route of path: *found the one for method, or NULL; 1 when the path has some
 * route (then a NULL *found is a wrong method). */
static int find_route(const char *method, const char *path, const route **found)
{
    int known = 0;
    *found = NULL;
    for (size_t i = 0; i < N_ROUTES; i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        known = 1;
        if (strcmp(routes[i].method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0))
            *found = &routes[i];
    }
    return known;
}

/* Runs an API route: the body of a POST must be one JSON object. */
static enum MHD_Result run_route(web_app *app, struct MHD_Connection *conn, const route *rt,
                                 const req_state *st)
{
    web_req rq = {app, conn, NULL};
    web_reply out = {500, NULL};
    if (strcmp(rt->method, "POST") == 0) {
        rq.body = st->body ? wj_parse(st->body, st->len) : NULL;
        if (!rq.body || !json_object_is_type(rq.body, json_type_object)) {
            json_object_put(rq.body);
            return send_error(conn, 400, "the body must be a JSON object");
        }
    }
    rt->fn(&rq, &out);
    if (rq.body) {
        char peer[64];
        peer_text(conn, peer, sizeof peer);
        web_log("info", "action %s from %s: %u", rt->path, peer, out.status);
    }
    enum MHD_Result r = send_json(conn, &out);
    json_object_put(out.body);
    json_object_put(rq.body);
    return r;
}

/* /api/... and /events: guarded, then routed. */
static enum MHD_Result serve_api(web_app *app, struct MHD_Connection *conn, const char *url,
                                 const char *method, const req_state *st)
{
    web_headers h = read_headers(conn);
    web_refusal why;
    int action = strcmp(method, "POST") == 0;
    if (web_guard(app, &h, action, &why) != 0) {
        if (action) {
            char peer[64];
            peer_text(conn, peer, sizeof peer);
            web_log("warn", "refused action %s from %s: %u %s", url, peer, why.status, why.text);
        }
        return send_error(conn, why.status, why.text);
    }
    if (st->too_big)
        return send_error(conn, 413, "the body is over 16 KiB");
    if (strcmp(url, "/events") == 0 && !action) {
        struct MHD_Response *resp = web_feed_response(
            app->feed, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID"));
        return resp ? send_response(conn, 200, resp)
                    : send_error(conn, 503, "too many live-feed connections (--max-streams)");
    }
    const route *rt;
    if (!find_route(method, url, &rt))
        return send_error(conn, 404, "no such endpoint");
    if (!rt)
        return send_error(conn, 405, "method not allowed here");
    return run_route(app, conn, rt, st);
}

/* Everything else: the page's files, GET or HEAD only. */
static enum MHD_Result serve_page(web_app *app, struct MHD_Connection *conn, const char *url,
                                  const char *method)
{
    if (!web_host_allowed(&app->listen, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host")))
        return send_error(conn, 403, "this Host is not one the dashboard answers to");
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_error(conn, 405, "method not allowed here");
    const web_asset *a = web_asset_find(url);
    return a ? send_asset(conn, a) : send_error(conn, 404, "not found");
}

/* Collects a request body, at most BODY_MAX bytes (the rest is read and dropped). */
static void collect(req_state *st, const char *data, size_t n)
{
    if (st->too_big || st->len + n > BODY_MAX) {
        st->too_big = 1;
        return;
    }
    char *b = realloc(st->body, st->len + n + 1);
    if (!b) {
        st->too_big = 1;
        return;
    }
    memcpy(b + st->len, data, n);
    st->len += n;
    b[st->len] = '\0';
    st->body = b;
}

/* libmicrohttpd's access handler: called once with the headers, then per piece of the
 * body, then once more with none left, when the request is answered. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    req_state *st = *con_cls;
    if (!st) {
        if (!(st = calloc(1, sizeof *st)))
            return MHD_NO;
        *con_cls = st;
        return MHD_YES;
    }
    if (*upload_size) {
        collect(st, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (strncmp(url, "/api/", 5) == 0 || strcmp(url, "/events") == 0)
        return serve_api(cls, conn, url, method, st);
    return serve_page(cls, conn, url, method);
}

/* Frees a request's state when libmicrohttpd is done with it. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    req_state *st = *con_cls;
    if (st) {
        free(st->body);
        free(st);
    }
    *con_cls = NULL;
}

/* libmicrohttpd's own messages, as our log lines. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char text[WEB_ERR_MAX];
    (void)cls;
    vsnprintf(text, sizeof text, fmt, ap);
    text[strcspn(text, "\n")] = '\0';
    web_log("warn", "http: %s", text);
}

/* web_server_start (web.h). */
int web_server_start(web_app *app, struct MHD_Daemon **out, char err[WEB_ERR_MAX])
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (app->listen.ipv6)
        flags |= MHD_USE_IPv6;
    unsigned limit = (unsigned)app->opt.max_streams + CONNECTIONS_SPARE;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)app->listen.port, NULL, NULL, on_request, app, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&app->listen.addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, limit,
        MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!d) {
        snprintf(err, WEB_ERR_MAX, "cannot listen on %s (in use, or not an address of this host)",
                 app->listen.shown);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (info && info->port)
        app->listen.port = info->port;
    *out = d;
    return 0;
}

void web_server_stop(struct MHD_Daemon *d)
{
    if (d)
        MHD_stop_daemon(d);
}
