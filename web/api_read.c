/*
 * api_read.c — the read-only JSON endpoints the page polls (docs/dashboard.md lists
 * them with their members):
 *
 *     GET /api/overview                 every queue's figures, consumers, webhook;
 *                                       the relays
 *     GET /api/history?queue=&minutes=  outcomes per minute, for the charts
 *     GET /api/dead?queue=&limit=       the newest dead letters
 *
 * Each holds a queue's lock for the library calls on that queue only. A queue whose
 * Redis does not answer is shown with its error, not as a failed page.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "web.h"

#define DEAD_LIMIT_DEFAULT 50
#define DEAD_LIMIT_MAX 1000

/* A whole number argument within [lo, hi]: def when absent; -1 with out filled (400)
 * when it is not such a number. */
static long arg_long(const web_req *rq, web_reply *out, const char *name, long def, long lo,
                     long hi)
{
    const char *s = web_arg(rq, name);
    char *end;
    if (!s)
        return def;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) {
        web_reply_error(out, 400, "%s: a whole number from %ld to %ld", name, lo, hi);
        return -1;
    }
    return v;
}

/* One queue's part of the overview: {name, ok, error, stats, consumers, webhook}. */
static json_object *queue_overview(web_queue *q)
{
    mailroom_stats *st = NULL;
    mailroom_consumers *cs = NULL;
    mailroom_webhook_state *wh = NULL;
    json_object *o = json_object_new_object();
    if (!o || wj_set(o, "name", wj_str(q->name)) != 0) {
        json_object_put(o);
        return NULL;
    }
    pthread_mutex_lock(&q->lock);
    int rc = mailroom_stats_read(q->m, &st);
    if (rc == MAILROOM_OK)
        rc = mailroom_consumers_read(q->m, 0, &cs);
    if (rc == MAILROOM_OK)
        rc = mailroom_webhook_state_read(q->m, &wh);
    int ok = wj_set(o, "ok", json_object_new_boolean(rc == MAILROOM_OK)) == 0 &&
             wj_set(o, "error", wj_str(rc == MAILROOM_OK ? "" : mailroom_errmsg(q->m))) == 0;
    pthread_mutex_unlock(&q->lock);
    if (ok && rc == MAILROOM_OK)
        ok = wj_set(o, "stats", wj_stats(st)) == 0 &&
             wj_set(o, "consumers", wj_consumers(cs)) == 0 &&
             wj_set(o, "webhook", wj_webhook(wh)) == 0;
    mailroom_stats_free(st);
    mailroom_consumers_free(cs);
    mailroom_webhook_state_free(wh);
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* The relays every queue shares (read through the first queue's handle): their
 * array, or {"error"} when Redis did not answer. */
static json_object *relays_overview(web_queue *q)
{
    mailroom_relays *r = NULL;
    json_object *o = NULL;
    pthread_mutex_lock(&q->lock);
    int rc = mailroom_relays_read(q->m, &r);
    if (rc != MAILROOM_OK && (o = json_object_new_object()) &&
        wj_set(o, "error", wj_str(mailroom_errmsg(q->m))) != 0) {
        json_object_put(o);
        o = NULL;
    }
    pthread_mutex_unlock(&q->lock);
    if (rc == MAILROOM_OK)
        o = wj_relays(r);
    mailroom_relays_free(r);
    return o;
}

/* GET /api/overview */
int api_overview(const web_req *rq, web_reply *out)
{
    const web_app *app = rq->app;
    json_object *o = json_object_new_object(), *qs = json_object_new_array();
    int ok = o && qs;
    for (size_t i = 0; ok && i < app->n_queues; i++)
        ok = wj_add(qs, queue_overview(&app->queues[i])) == 0;
    if (!ok) {
        json_object_put(o);
        json_object_put(qs);
        return web_reply_error(out, 500, "out of memory");
    }
    ok = wj_set(o, "queues", qs) == 0 &&
         wj_set(o, "relays", relays_overview(&app->queues[0])) == 0 &&
         wj_set(o, "actions", json_object_new_boolean(app->token.set)) == 0 &&
         wj_set(o, "history_minutes", json_object_new_int64(app->opt.history_ms / 60000)) == 0;
    return web_reply_ok(out, ok ? o : (json_object_put(o), NULL));
}

/* The history as arrays, one per outcome, oldest minute first. */
static json_object *history_json(const mailroom_history *h, const char *queue)
{
    static const char *const names[] = {"sent", "retrying", "failed", "rejected", "cancelled"};
    json_object *o = json_object_new_object();
    int ok = o && wj_set(o, "queue", wj_str(queue)) == 0 &&
             wj_set(o, "now_ms", json_object_new_int64(h->now_ms)) == 0 &&
             wj_set(o, "start_minute",
                    json_object_new_int64(h->n ? h->minutes[0].minute : h->now_ms / 60000)) == 0;
    for (size_t k = 0; ok && k < sizeof names / sizeof names[0]; k++) {
        json_object *a = json_object_new_array_ext((int)h->n);
        ok = a != NULL;
        for (size_t i = 0; ok && i < h->n; i++) {
            const mailroom_minute *mm = &h->minutes[i];
            long long v = k == 0   ? mm->sent
                          : k == 1 ? mm->retrying
                          : k == 2 ? mm->failed
                          : k == 3 ? mm->rejected
                                   : mm->cancelled;
            ok = wj_add(a, json_object_new_int64(v)) == 0;
        }
        ok = ok ? wj_set(o, names[k], a) == 0 : (json_object_put(a), 0);
    }
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* GET /api/history?queue=Q&minutes=N */
int api_history(const web_req *rq, web_reply *out)
{
    web_queue *q = web_req_queue(rq, out);
    if (!q)
        return 0;
    long def = (long)(rq->app->opt.history_ms / 60000);
    long minutes = arg_long(rq, out, "minutes", def, 1, MAILROOM_HISTORY_MAX_MINUTES);
    if (minutes < 0)
        return 0;
    mailroom_history *h = NULL;
    pthread_mutex_lock(&q->lock);
    int rc = mailroom_history_read(q->m, (int)minutes, &h);
    if (rc != MAILROOM_OK)
        web_reply_lib(out, q, rc, "history");
    pthread_mutex_unlock(&q->lock);
    if (rc == MAILROOM_OK)
        web_reply_ok(out, history_json(h, q->name));
    mailroom_history_free(h);
    return 0;
}

/* GET /api/dead?queue=Q&limit=N */
int api_dead(const web_req *rq, web_reply *out)
{
    web_queue *q = web_req_queue(rq, out);
    if (!q)
        return 0;
    long limit = arg_long(rq, out, "limit", DEAD_LIMIT_DEFAULT, 1, DEAD_LIMIT_MAX);
    if (limit < 0)
        return 0;
    mailroom_dead_letters *l = NULL;
    pthread_mutex_lock(&q->lock);
    int rc = mailroom_dead_list(q->m, limit, &l);
    if (rc != MAILROOM_OK)
        web_reply_lib(out, q, rc, "dead list");
    pthread_mutex_unlock(&q->lock);
    if (rc != MAILROOM_OK)
        return 0;
    json_object *o = json_object_new_object(), *items = json_object_new_array();
    int ok = o && items && wj_set(o, "queue", wj_str(q->name)) == 0;
    for (size_t i = 0; ok && i < l->n; i++)
        ok = wj_add(items, wj_dead_letter(&l->items[i])) == 0;
    mailroom_dead_letters_free(l);
    if (!ok) {
        json_object_put(items);
        json_object_put(o);
        return web_reply_error(out, 500, "out of memory");
    }
    ok = wj_set(o, "items", items) == 0;
    return web_reply_ok(out, ok ? o : (json_object_put(o), NULL));
}
