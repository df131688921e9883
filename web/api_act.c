/*
 * api_act.c — the actions: POSTs whose JSON body names the queue and what to act on.
 * The server has already checked the token and the cross-site rules (auth.c) before
 * any of these runs. A change to a whole list needs "all": true, so that a body
 * missing its id never empties a list by accident.
 *
 *     POST /api/dead/retry  {"queue","id"} or {"queue","all":true}
 *     POST /api/dead/purge  {"queue","older_than":"7d"} or {"queue","all":true}
 *
 * Each answers {"queue", "count"} (how many entries the action moved or removed), or
 * {"error"} with 400 (bad body), 404 (no such entry), 503 (Redis).
 */
#define _POSIX_C_SOURCE 200809L
#include "web.h"

/* 1 when the body's member "all" is true. */
static int body_all(const web_req *rq)
{
    json_object *v = NULL;
    return json_object_object_get_ex(rq->body, "all", &v) &&
           json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

/* {"queue": q, "count": n}. */
static int reply_count(web_reply *out, const web_queue *q, long long n)
{
    json_object *o = json_object_new_object();
    if (o && (wj_set(o, "queue", wj_str(q->name)) != 0 ||
              wj_set(o, "count", json_object_new_int64(n)) != 0)) {
        json_object_put(o);
        o = NULL;
    }
    return web_reply_ok(out, o);
}

/* POST /api/dead/retry */
int act_dead_retry(const web_req *rq, web_reply *out)
{
    web_queue *q = web_req_queue(rq, out);
    if (!q)
        return 0;
    const char *id = wj_get_str(rq->body, "id");
    if (!id && !body_all(rq))
        return web_reply_error(out, 400, "name the entry (\"id\") or \"all\": true");
    if (id && !mailroom_id_valid(id))
        return web_reply_error(out, 400, "id must be a job id");
    long long n = 0;
    pthread_mutex_lock(&q->lock);
    int rc = mailroom_dead_retry(q->m, id, &n);
    if (rc != MAILROOM_OK)
        web_reply_lib(out, q, rc, "dead retry");
    pthread_mutex_unlock(&q->lock);
    return rc == MAILROOM_OK ? reply_count(out, q, n) : 0;
}

/* POST /api/dead/purge */
int act_dead_purge(const web_req *rq, web_reply *out)
{
    web_queue *q = web_req_queue(rq, out);
    if (!q)
        return 0;
    const char *age = wj_get_str(rq->body, "older_than");
    long long older_than = -1;
    if (!age && !body_all(rq))
        return web_reply_error(out, 400, "give \"older_than\" (a duration) or \"all\": true");
    if (age && mailroom_parse_duration(age, &older_than) != MAILROOM_OK)
        return web_reply_error(out, 400, "older_than: not a duration (e.g. 7d, 12h)");
    long long n = 0;
    pthread_mutex_lock(&q->lock);
    int rc = mailroom_dead_purge(q->m, older_than, &n);
    if (rc != MAILROOM_OK)
        web_reply_lib(out, q, rc, "dead purge");
    pthread_mutex_unlock(&q->lock);
    return rc == MAILROOM_OK ? reply_count(out, q, n) : 0;
}
