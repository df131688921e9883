/*
 * web.h — what the files of mailroom-web share: the options, the running dashboard
 * (one `web_app`), a request and its reply as the handlers see them, and each file's
 * entry points.
 *
 *     main.c     main(): options, token, queues, the feed and the server; signals
 *     log.c      log lines on stderr
 *     options.c  the option table: getopt, --help, environment variables, defaults
 *     listen.c   the listen address (loopback unless told otherwise), the hosts and
 *                origins a request may name
 *     auth.c     the action token (from a file; compared in constant time) and the
 *                checks every request and every action must pass
 *     queues.c   one library handle per queue, each used under its own lock
 *     server.c   libmicrohttpd: routing, bodies, the pages, JSON replies, headers
 *     assets.c   the page's files by path (their bytes: web_assets.c, generated at
 *                build time from web/assets/ by cmake/embed_assets.cmake)
 *     feed.c     the live feed: one subscription per queue, fanned out as
 *                server-sent events
 *     json.c     json-c helpers: checked members, converted library results
 *     api_read.c the read-only JSON endpoints (overview, history, lists)
 *     api_job.c  a job's page and the search
 *     api_act.c  the actions on the dead list
 *     api_jobs.c job control: waiting jobs, cancel, retry now, pause, resume
 *     api_suppress.c the suppression list: a page, add, remove
 *
 * Like the CLI, mailroom-web uses the public API of libmailroom only (mailroom.h,
 * mailroom_admin.h). Every function that can fail returns 0 (or a pointer) on success
 * and -1 (or NULL) on failure, with one line of text in a caller's buffer where the
 * caller needs it. Nothing here logs or prints the token or the Redis URL.
 */
#ifndef MAILROOM_WEB_H
#define MAILROOM_WEB_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <json-c/json.h>
#include <mailroom.h>
#include <mailroom_admin.h>

struct MHD_Connection;
struct MHD_Daemon;

/* Exit statuses (sysexits.h values, as the other programs). */
enum {
    WEB_EXIT_OK = 0,
    WEB_EXIT_USAGE = 64,
    WEB_EXIT_UNAVAIL = 69,
    WEB_EXIT_SOFTWARE = 70,
    WEB_EXIT_CONFIG = 78
};

#define WEB_ERR_MAX 512
#define WEB_QUEUES_MAX 32
#define WEB_QUEUE_NAME_MAX 64
#define WEB_HOSTS_MAX 8

/* ------------------------------------------------------------------ options.c */

/* The values, raw: strings point into argv, the environment or the table. */
typedef struct web_options {
    const char *listen, *queues, *redis, *token_file, *public_origin;
    int allow_remote, private_reads;
    long max_streams;
    int64_t history_ms;
    int redis_on_command_line; /* --redis was given: it must not hold a password */
} web_options;

typedef enum web_parse { WEB_PARSE_RUN, WEB_PARSE_EXIT, WEB_PARSE_USAGE } web_parse;

/* Parses argv over the environment over the defaults. WEB_PARSE_EXIT after --help or
 * --version (printed); WEB_PARSE_USAGE with err filled. */
web_parse web_options_parse(int argc, char **argv, web_options *out, char err[WEB_ERR_MAX]);

/* ------------------------------------------------------------------ listen.c */

/* Where the server listens, and what a request may call it. */
typedef struct web_listen {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int ipv6, loopback;
    unsigned port;
    char shown[80];                       /* "127.0.0.1:8025", "[::1]:8025" */
    char hosts[WEB_HOSTS_MAX][300];       /* Host header values allowed */
    char origins[WEB_HOSTS_MAX + 1][310]; /* Origin header values allowed */
    size_t n_hosts, n_origins;
} web_listen;

/* Parses "HOST:PORT" (an IPv4 or [IPv6] literal, or localhost). 0, or -1 with err. */
int web_listen_parse(const char *text, web_listen *l, char err[WEB_ERR_MAX]);

/* Fills the allowed hosts and origins once the port is known: the listen address and,
 * on loopback, its other loopback names; public_origin (scheme://host[:port], may be
 * NULL) too. 0, or -1 with err. */
int web_listen_names(web_listen *l, const char *public_origin, char err[WEB_ERR_MAX]);

/* 1 when value (a Host or Origin header) is one of the allowed, 0 otherwise. */
int web_host_allowed(const web_listen *l, const char *host);
int web_origin_allowed(const web_listen *l, const char *origin);

/* ------------------------------------------------------------------ auth.c */

#define WEB_TOKEN_MIN 16
#define WEB_TOKEN_MAX 1024

/* The action token, as its SHA-256 digest only (the text is wiped once hashed). */
typedef struct web_token {
    int set;
    unsigned char digest[32];
} web_token;

/* Reads the token from the first line of path (at least WEB_TOKEN_MIN bytes; the file
 * must not be readable by group or others). 0, or -1 with err naming the file, never
 * its contents. */
int web_token_load(web_token *t, const char *path, char err[WEB_ERR_MAX]);

/* 1 when an Authorization header value is "Bearer <the token>", compared in constant
 * time (digests of equal length); 0 otherwise (also when no token is set). */
int web_token_check(const web_token *t, const char *authorization);

/* The request headers the guard reads (NULL when absent). */
typedef struct web_headers {
    const char *host, *origin, *sec_fetch_site, *authorization, *action_header, *content_type;
} web_headers;

/* Why a request was refused: an HTTP status and a static text. */
typedef struct web_refusal {
    unsigned status;
    const char *text;
} web_refusal;

struct web_app;

/* Whether a request may go on: 0, or -1 with why filled. Every request must name an
 * allowed Host; reads need the token with --private; an action (action 1) needs the
 * token, X-Mailroom-Action: 1, a JSON body, and no foreign Origin or Sec-Fetch-Site. */
int web_guard(const struct web_app *app, const web_headers *h, int action, web_refusal *why);

/* ------------------------------------------------------------------ queues.c */

/* One queue: its library handle, used by one thread at a time. */
typedef struct web_queue {
    char name[WEB_QUEUE_NAME_MAX + 1];
    mailroom *m;
    pthread_mutex_t lock;
} web_queue;

/* The queues of a comma list, each with a handle opened for it (Redis may be down:
 * the handle reconnects at its next call). 0, or -1 with err. */
int web_queues_open(web_queue **out, size_t *n, const char *list, const char *redis_url,
                    char err[WEB_ERR_MAX]);
void web_queues_close(web_queue *q, size_t n);
/* The queue named name, or NULL. */
web_queue *web_queue_find(web_queue *q, size_t n, const char *name);

/* ------------------------------------------------------------------ the app */

struct web_feed;

typedef struct web_app {
    web_options opt;
    web_listen listen;
    web_token token;
    web_queue *queues;
    size_t n_queues;
    struct web_feed *feed;
    const char *redis_url; /* the option, or NULL for the environment's */
} web_app;

/* Logs one line to stderr: "<time> mailroom-web <level>: <text>", control characters
 * masked. The text never holds a secret. */
void web_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------ requests */

/* A request as the handlers see it. */
typedef struct web_req {
    web_app *app;
    struct MHD_Connection *conn;
    json_object *body; /* POST: the parsed JSON object; NULL otherwise */
} web_req;

/* A handler's answer: an HTTP status and a JSON body (owned; NULL: none). */
typedef struct web_reply {
    unsigned status;
    json_object *body;
} web_reply;

/* A query-string argument of the request, or NULL. */
const char *web_arg(const web_req *rq, const char *name);

/* Fills r with {"error": text} and status; returns 0 (a handled request). */
int web_reply_error(web_reply *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Fills r from a failed library call on queue q: 404 for MAILROOM_ENOTFOUND, 409 for a
 * state the call refuses (MAILROOM_ESTATE), 400 for MAILROOM_EINVAL, 503 for Redis,
 * 500 otherwise. Called under q's lock (the text is the handle's). */
int web_reply_lib(web_reply *r, const web_queue *q, int rc, const char *what);
/* Fills r with 200 and body (owned from here; NULL: out of memory, 500). */
int web_reply_ok(web_reply *r, json_object *body);

/* A handler fills out (status and body) and returns 0: the reply says how it went. */
typedef int (*web_handler)(const web_req *rq, web_reply *out);

/* api_read.c */
int api_overview(const web_req *rq, web_reply *out);
int api_history(const web_req *rq, web_reply *out);
int api_dead(const web_req *rq, web_reply *out);
/* api_job.c */
int api_job(const web_req *rq, web_reply *out);
int api_search(const web_req *rq, web_reply *out);
/* api_act.c */
int act_dead_retry(const web_req *rq, web_reply *out);
int act_dead_purge(const web_req *rq, web_reply *out);
/* api_jobs.c */
int api_jobs(const web_req *rq, web_reply *out);
int act_cancel(const web_req *rq, web_reply *out);
int act_retry_now(const web_req *rq, web_reply *out);
int act_pause(const web_req *rq, web_reply *out);
int act_resume(const web_req *rq, web_reply *out);
/* api_suppress.c */
int api_suppressed(const web_req *rq, web_reply *out);
int act_suppress_add(const web_req *rq, web_reply *out);
int act_suppress_remove(const web_req *rq, web_reply *out);

/* The queue a request names (?queue= or the body's "queue"; the first queue when the
 * dashboard has one only); NULL with out filled (400/404) otherwise. */
web_queue *web_req_queue(const web_req *rq, web_reply *out);

/* ------------------------------------------------------------------ json.c */

/* Sets key of o to v, which it owns from then on (freed on failure). 0, or -1 when v
 * is NULL (memory ran out) or the set failed. */
int wj_set(json_object *o, const char *key, json_object *v);
/* Adds v to array a, as wj_set. */
int wj_add(json_object *a, json_object *v);
/* A string; "" for NULL. */
json_object *wj_str(const char *s);
/* An event's JSON text parsed (len bytes); the text as a string when it is not JSON;
 * NULL when memory ran out. */
json_object *wj_parse(const char *s, size_t len);
/* A string member of o, or NULL. */
const char *wj_get_str(json_object *o, const char *key);
/* The library's objects as JSON; NULL when memory ran out. */
json_object *wj_stats(const mailroom_stats *s);
json_object *wj_consumers(const mailroom_consumers *c);
json_object *wj_dead_letter(const mailroom_dead_letter *d);
json_object *wj_recipients(const mailroom_recipient *r, size_t n);
json_object *wj_status(const mailroom_job_status *st);
json_object *wj_event_log(const mailroom_event_log *log, const char *queue);
json_object *wj_webhook(const mailroom_webhook_state *w);
json_object *wj_relays(const mailroom_relays *r);
json_object *wj_job_item(const mailroom_job_item *j);
json_object *wj_suppression(const mailroom_suppression *s);

/* ------------------------------------------------------------------ server.c */

/* Starts the server on app->listen (the port resolved when it was 0). 0, or -1 with
 * err. */
int web_server_start(web_app *app, struct MHD_Daemon **out, char err[WEB_ERR_MAX]);
/* Stops accepting, ends the event streams (through the feed) and stops. */
void web_server_stop(struct MHD_Daemon *d);

/* ------------------------------------------------------------------ assets.c */

typedef struct web_asset {
    const char *path; /* "/app.js" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} web_asset;

/* The asset served at path ("/" is "/index.html"), or NULL. */
const web_asset *web_asset_find(const char *path);

/* ------------------------------------------------------------------ feed.c */

/* Starts one subscription thread per queue. NULL when memory or threads ran out. */
struct web_feed *web_feed_start(web_app *app);
/* Wakes every stream so that it ends, and joins the subscriber threads. Accepts NULL. */
void web_feed_stop(struct web_feed *f);
/* Frees the feed, once the server has stopped (no stream left). Accepts NULL. */
void web_feed_free(struct web_feed *f);
/* A server-sent-events response for one client (Last-Event-ID: resume after it), or
 * NULL when too many clients stream already. */
struct MHD_Response *web_feed_response(struct web_feed *f, const char *last_event_id);

#endif
