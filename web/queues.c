/*
 * queues.c — the queues the dashboard shows, each with one library handle. A handle is
 * one Redis connection and serves one thread at a time, so each has its own mutex,
 * which a request holds for the calls it makes on that queue; requests on different
 * queues run side by side. The handles' admin calls get a longer command timeout than
 * the library's default, as the CLI's do: dead retry and purge walk a whole list.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "web.h"

#define WEB_COMMAND_TIMEOUT_MS 10000

/* Opens the handle of one queue. A handle that cannot reach Redis yet is kept: it
 * reconnects at its next call, and the page says Redis is down meanwhile. */
static int queue_open(web_queue *q, const char *redis_url, char err[WEB_ERR_MAX])
{
    mailroom_options o;
    mailroom_options_init(&o);
    o.redis_url = redis_url;
    o.queue = q->name;
    o.command_timeout_ms = WEB_COMMAND_TIMEOUT_MS;
    int rc = mailroom_open(&q->m, &o);
    if (rc == MAILROOM_OK || (q->m && (rc == MAILROOM_EREDIS || rc == MAILROOM_ETIMEOUT))) {
        if (rc != MAILROOM_OK)
            web_log("warn", "queue %s: %s (will retry)", q->name, mailroom_errmsg(q->m));
        return 0;
    }
    snprintf(err, WEB_ERR_MAX, "queue %s: %s", q->name,
             q->m ? mailroom_errmsg(q->m) : mailroom_strerror(rc));
    mailroom_close(q->m);
    q->m = NULL;
    return -1;
}

/* Splits list into names (at most WEB_QUEUES_MAX, no empty or repeated one). The
 * count, or -1 with err. */
static long split_names(const char *list, web_queue *q, char err[WEB_ERR_MAX])
{
    size_t n = 0;
    for (const char *p = list; p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len > WEB_QUEUE_NAME_MAX || n == WEB_QUEUES_MAX) {
            snprintf(err, WEB_ERR_MAX, "--queue: 1 to %d names of 1 to %d bytes, comma separated",
                     WEB_QUEUES_MAX, WEB_QUEUE_NAME_MAX);
            return -1;
        }
        memcpy(q[n].name, p, len);
        q[n].name[len] = '\0';
        for (size_t i = 0; i < n; i++)
            if (strcmp(q[i].name, q[n].name) == 0) {
                snprintf(err, WEB_ERR_MAX, "--queue: %s is named twice", q[n].name);
                return -1;
            }
        n++;
        p = comma ? comma + 1 : NULL;
    }
    return (long)n;
}

/* web_queues_open (web.h). */
int web_queues_open(web_queue **out, size_t *n_out, const char *list, const char *redis_url,
                    char err[WEB_ERR_MAX])
{
    web_queue *q = calloc(WEB_QUEUES_MAX, sizeof *q);
    size_t opened = 0;
    *out = NULL;
    *n_out = 0;
    if (!q) {
        snprintf(err, WEB_ERR_MAX, "out of memory");
        return -1;
    }
    long n = split_names(list, q, err);
    for (long i = 0; i < n; i++, opened++) {
        if (pthread_mutex_init(&q[i].lock, NULL) != 0) {
            snprintf(err, WEB_ERR_MAX, "pthread_mutex_init failed");
            break;
        }
        if (queue_open(&q[i], redis_url, err) != 0) {
            pthread_mutex_destroy(&q[i].lock);
            break;
        }
    }
    if (n < 0 || opened != (size_t)n) {
        web_queues_close(q, opened);
        return -1;
    }
    *out = q;
    *n_out = opened;
    return 0;
}

/* web_queues_close (web.h): accepts NULL. */
void web_queues_close(web_queue *q, size_t n)
{
    if (!q)
        return;
    for (size_t i = 0; i < n; i++) {
        mailroom_close(q[i].m);
        pthread_mutex_destroy(&q[i].lock);
    }
    free(q);
}

web_queue *web_queue_find(web_queue *q, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(q[i].name, name) == 0)
            return &q[i];
    return NULL;
}
