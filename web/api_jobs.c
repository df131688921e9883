/*
 * api_jobs.c — job control (docs/dashboard.md): the jobs waiting in a queue, and the
 * actions on one job or on a whole queue. The actions are POSTs that the server has
 * already checked (token, cross-site rules: auth.c) before any of these runs.
 *
 *     GET  /api/jobs?queue=&kind=&to=&domain=&cursor=&limit=  a page of waiting jobs
 *     POST /api/cancel     {"queue","id"}  a queued or retrying job: never sent
 *     POST /api/retry-now  {"queue","id"}  a scheduled job: taken next
 *     POST /api/pause      {"queue"}       consumers take nothing from it
 *     POST /api/resume     {"queue"}
 *
 * A job whose state does not allow the action answers 409 with the library's reason
 * (it names the state).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "web.h"

/* The kind argument: pending (default), scheduled or retrying; -1 otherwise. */
static int jobs_kind(const char *s, mailroom_jobs_kind *kind)
{
    if (!s || strcmp(s, "pending") == 0)
        *kind = MAILROOM_JOBS_PENDING;
    else if (strcmp(s, "scheduled") == 0)
        *kind = MAILROOM_JOBS_SCHEDULED;
    else if (strcmp(s, "retrying") == 0)
        *kind = MAILROOM_JOBS_RETRYING;
    else
        return -1;
    return 0;
}

/* {"queue", "kind", "items", "next_cursor", "total", "examined"} of a page. */
static json_object *jobs_json(const mailroom_jobs *l, const char *queue, const char *kind)
{
    json_object *o = json_object_new_object(), *items = json_object_new_array();
    int ok = o && items;
    for (size_t i = 0; ok && i < l->n; i++)
        ok = wj_add(items, wj_job_item(&l->items[i])) == 0;
    if (!ok) {
        json_object_put(items);
        json_object_put(o);
        return NULL;
    }
    ok = wj_set(o, "queue", wj_str(queue)) == 0 && wj_set(o, "kind", wj_str(kind)) == 0 &&
         wj_set(o, "items", items) == 0 && wj_set(o, "next_cursor", wj_str(l->next_cursor)) == 0 &&
         wj_set(o, "total", json_object_new_int64(l->total)) == 0 &&
         wj_set(o, "examined", json_object_new_int64(l->examined)) == 0;
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* GET /api/jobs */
int api_jobs(const web_req *rq, web_reply *out)
{
    web_queue *q = web_req_queue(rq, out);
    if (!q)
        return 0;
    mailroom_jobs_query query;
    mailroom_jobs_query_init(&query);
    const char *kind = web_arg(rq, "kind"), *limit = web_arg(rq, "limit");
    if (jobs_kind(kind, &query.kind) != 0)
        return web_reply_error(out, 400, "kind: pending, scheduled or retrying");
    char *end = NULL;
    query.limit = limit ? strtol(limit, &end, 10) : 0;
    if (limit && (!*limit || *end || query.limit < 1 || query.limit > MAILROOM_JOBS_LIST_MAX))
        return web_reply_error(out, 400, "limit: a whole number from 1 to %d",
                               MAILROOM_JOBS_LIST_MAX);
    query.to = web_arg(rq, "to");
    query.domain = web_arg(rq, "domain");
    query.cursor = web_arg(rq, "cursor");
    mailroom_jobs *l = NULL;
    pthread_mutex_lock(&q->lock);
    int rc = mailroom_jobs_list(q->m, &query, &l);
    if (rc != MAILROOM_OK)
        web_reply_lib(out, q, rc, "jobs");
    pthread_mutex_unlock(&q->lock);
    if (rc == MAILROOM_OK)
        web_reply_ok(out, jobs_json(l, q->name, kind ? kind : "pending"));
    mailroom_jobs_free(l);
    return 0;
}

/* {"queue", "id", "state": what the record says now}, after an action on one job.
 * Called under the queue's lock. */
static json_object *job_after(web_queue *q, const char *id)
{
    mailroom_job_status st;
    json_object *o = json_object_new_object();
    int ok = o && wj_set(o, "queue", wj_str(q->name)) == 0 && wj_set(o, "id", wj_str(id)) == 0;
    if (ok && mailroom_status(q->m, id, &st) == MAILROOM_OK)
        ok = wj_set(o, "state", wj_str(mailroom_state_name(st.state))) == 0;
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* The body's job id, or NULL with out filled (400). */
static const char *body_id(const web_req *rq, web_reply *out)
{
    const char *id = wj_get_str(rq->body, "id");
    if (!id || !mailroom_id_valid(id)) {
        web_reply_error(out, 400, "\"id\" must be a job id, [A-Za-z0-9._:-]{1,128}");
        return NULL;
    }
    return id;
}

/* POST /api/cancel */
int act_cancel(const web_req *rq, web_reply *out)
{
    web_queue *q = web_req_queue(rq, out);
    const char *id = q ? body_id(rq, out) : NULL;
    if (!id)
        return 0;
    mailroom_job_place where = MAILROOM_PLACE_NONE;
    json_object *o = NULL;
    pthread_mutex_lock(&q->lock);
    int rc = mailroom_cancel(q->m, id, &where);
    if (rc != MAILROOM_OK)
        web_reply_lib(out, q, rc, "cancel");
    else
        o = job_after(q, id);
    pthread_mutex_unlock(&q->lock);
    if (rc != MAILROOM_OK)
        return 0;
    static const char *const places[] = {"consumer", "pending", "scheduled"};
    if (o && wj_set(o, "removed_from", wj_str(places[where <= 2 ? where : 0])) != 0) {
        json_object_put(o);
        o = NULL;
    }
    return web_reply_ok(out, o);
}

/* POST /api/retry-now */
int act_retry_now(const web_req *rq, web_reply *out)
{
    web_queue *q = web_req_queue(rq, out);
    const char *id = q ? body_id(rq, out) : NULL;
    if (!id)
        return 0;
    json_object *o = NULL;
    pthread_mutex_lock(&q->lock);
    int rc = mailroom_retry_now(q->m, id);
    if (rc != MAILROOM_OK)
        web_reply_lib(out, q, rc, "retry now");
    else
        o = job_after(q, id);
    pthread_mutex_unlock(&q->lock);
    return rc == MAILROOM_OK ? web_reply_ok(out, o) : 0;
}

/* Pause or resume: {"queue", "paused", "changed"}. */
static int pause_or_resume(const web_req *rq, web_reply *out, int pause)
{
    web_queue *q = web_req_queue(rq, out);
    if (!q)
        return 0;
    int changed = 0;
    pthread_mutex_lock(&q->lock);
    int rc = pause ? mailroom_pause(q->m, &changed) : mailroom_resume(q->m, &changed);
    if (rc != MAILROOM_OK)
        web_reply_lib(out, q, rc, pause ? "pause" : "resume");
    pthread_mutex_unlock(&q->lock);
    if (rc != MAILROOM_OK)
        return 0;
    json_object *o = json_object_new_object();
    if (o && (wj_set(o, "queue", wj_str(q->name)) != 0 ||
              wj_set(o, "paused", json_object_new_boolean(pause)) != 0 ||
              wj_set(o, "changed", json_object_new_boolean(changed)) != 0)) {
        json_object_put(o);
        o = NULL;
    }
    return web_reply_ok(out, o);
}

int act_pause(const web_req *rq, web_reply *out)
{
    return pause_or_resume(rq, out, 1);
}

int act_resume(const web_req *rq, web_reply *out)
{
    return pause_or_resume(rq, out, 0);
}
