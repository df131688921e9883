/*
 * api_suppress.c — the suppression list (docs/dashboard.md), which every queue of a
 * deployment shares: the calls go through the first queue's handle, whatever queue
 * the request names.
 *
 *     GET  /api/suppressed?cursor=&limit=        a page, the entry lasting longest first
 *     POST /api/suppress/add     {"address","reason","for":"30d"}
 *     POST /api/suppress/remove  {"address"}
 *
 * Entries the dashboard adds say source "web".
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>

#include "web.h"

#define SUPPRESSED_PAGE 50

/* GET /api/suppressed */
int api_suppressed(const web_req *rq, web_reply *out)
{
    web_queue *q = &rq->app->queues[0];
    const char *limit = web_arg(rq, "limit");
    char *end = NULL;
    long n = limit ? strtol(limit, &end, 10) : SUPPRESSED_PAGE;
    if (limit && (!*limit || *end || n < 1 || n > MAILROOM_SUPPRESS_LIST_MAX))
        return web_reply_error(out, 400, "limit: a whole number from 1 to %d",
                               MAILROOM_SUPPRESS_LIST_MAX);
    mailroom_suppressions *l = NULL;
    pthread_mutex_lock(&q->lock);
    int rc = mailroom_suppress_list(q->m, web_arg(rq, "cursor"), n, &l);
    if (rc != MAILROOM_OK)
        web_reply_lib(out, q, rc, "suppression list");
    pthread_mutex_unlock(&q->lock);
    if (rc != MAILROOM_OK)
        return 0;
    json_object *o = json_object_new_object(), *items = json_object_new_array();
    int ok = o && items;
    for (size_t i = 0; ok && i < l->n; i++)
        ok = wj_add(items, wj_suppression(&l->items[i])) == 0;
    ok = ok ? wj_set(o, "items", items) == 0 : (json_object_put(items), 0);
    ok = ok && wj_set(o, "next_cursor", wj_str(l->next_cursor)) == 0 &&
         wj_set(o, "total", json_object_new_int64(l->total)) == 0;
    mailroom_suppressions_free(l);
    if (!ok) {
        json_object_put(o);
        o = NULL;
    }
    return web_reply_ok(out, o);
}

/* The body's address, or NULL with out filled (400). */
static const char *body_address(const web_req *rq, web_reply *out)
{
    const char *a = wj_get_str(rq->body, "address");
    if (!a || !*a)
        web_reply_error(out, 400, "\"address\" is needed");
    return a && *a ? a : NULL;
}

/* POST /api/suppress/add: {"address","reason","for"} → the entry as written. */
int act_suppress_add(const web_req *rq, web_reply *out)
{
    web_queue *q = &rq->app->queues[0];
    const char *address = body_address(rq, out), *span = wj_get_str(rq->body, "for");
    long long for_ms = 0;
    if (!address)
        return 0;
    if (span && mailroom_parse_duration(span, &for_ms) != MAILROOM_OK)
        return web_reply_error(out, 400, "for: a duration such as 30d");
    mailroom_suppression entry;
    pthread_mutex_lock(&q->lock);
    int rc =
        mailroom_suppress_add(q->m, address, wj_get_str(rq->body, "reason"), for_ms, "web", &entry);
    if (rc != MAILROOM_OK)
        web_reply_lib(out, q, rc, "suppress");
    pthread_mutex_unlock(&q->lock);
    return rc == MAILROOM_OK ? web_reply_ok(out, wj_suppression(&entry)) : 0;
}

/* POST /api/suppress/remove: {"address"} → {"address"} */
int act_suppress_remove(const web_req *rq, web_reply *out)
{
    web_queue *q = &rq->app->queues[0];
    const char *address = body_address(rq, out);
    if (!address)
        return 0;
    pthread_mutex_lock(&q->lock);
    int rc = mailroom_suppress_remove(q->m, address);
    if (rc != MAILROOM_OK)
        web_reply_lib(out, q, rc, "unsuppress");
    pthread_mutex_unlock(&q->lock);
    if (rc != MAILROOM_OK)
        return 0;
    json_object *o = json_object_new_object();
    if (o && wj_set(o, "address", wj_str(address)) != 0) {
        json_object_put(o);
        o = NULL;
    }
    return web_reply_ok(out, o);
}
