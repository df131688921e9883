/*
 * api_job.c — one job's page and the search (docs/dashboard.md):
 *
 *     GET /api/job?queue=&id=   the record, each recipient, every event of its life
 *                               still in the events stream
 *     GET /api/search?q=        a job id in every queue; a recipient (an address, or
 *                               "@domain") among the waiting jobs, in the newest
 *                               outcomes and dead letters, and on the suppression list
 *
 * A job's events are searched in the stream between its record's created_at and
 * updated_at (a minute of slack each side: the stream's ids are the Redis server's
 * clock, the record's times a consumer's), so that an old job does not make the page
 * read the whole stream.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "web.h"

#define SLACK_MS 60000
#define SEARCH_HITS 50        /* outcomes one queue gives a search at most */
#define SEARCH_DEAD_SCAN 1000 /* newest dead letters a search looks through */

/* ms since the epoch of an RFC 3339 time, or 0 when it is not one. */
static long long time_ms(const char *s)
{
    time_t t;
    return s && *s && mailroom_parse_time(s, 0, &t) == MAILROOM_OK && t > 0 ? (long long)t * 1000
                                                                            : 0;
}

/* The job page's members besides the record: relay_id, recipients, events. Called
 * under the queue's lock. 0, or -1 with out filled. */
static int job_details(web_queue *q, const mailroom_job_status *st, json_object *o, web_reply *out)
{
    mailroom_job_detail *d = NULL;
    mailroom_event_log *log = NULL;
    int rc = mailroom_status_detail(q->m, st->id, &d);
    if (rc != MAILROOM_OK) {
        web_reply_lib(out, q, rc, "job");
        return -1;
    }
    long long from = time_ms(st->created_at), to = time_ms(st->updated_at);
    rc = mailroom_job_events_read(q->m, st->id, from ? from - SLACK_MS : 0, to ? to + SLACK_MS : 0,
                                  0, &log);
    if (rc != MAILROOM_OK) {
        mailroom_job_detail_free(d);
        web_reply_lib(out, q, rc, "job events");
        return -1;
    }
    int ok = wj_set(o, "relay_id", wj_str(d->relay_id)) == 0 &&
             wj_set(o, "recipients", wj_recipients(d->recipients, d->n_recipients)) == 0 &&
             wj_set(o, "events", wj_event_log(log, q->name)) == 0 &&
             wj_set(o, "events_complete", json_object_new_boolean(log->complete)) == 0;
    mailroom_job_detail_free(d);
    mailroom_event_log_free(log);
    if (!ok) {
        web_reply_error(out, 500, "out of memory");
        return -1;
    }
    return 0;
}

/* The job page of id on q, or -1 with out filled (404 when q has no such record). */
static int job_page(web_queue *q, const char *id, web_reply *out)
{
    mailroom_job_status st;
    json_object *o = NULL;
    pthread_mutex_lock(&q->lock);
    int rc = mailroom_status(q->m, id, &st);
    if (rc != MAILROOM_OK) {
        web_reply_lib(out, q, rc, "job");
    } else if (!(o = json_object_new_object()) || wj_set(o, "queue", wj_str(q->name)) != 0 ||
               wj_set(o, "record", wj_status(&st)) != 0) {
        web_reply_error(out, 500, "out of memory");
        rc = MAILROOM_ENOMEM;
    } else if (job_details(q, &st, o, out) != 0) {
        rc = MAILROOM_EREDIS;
    }
    pthread_mutex_unlock(&q->lock);
    if (rc != MAILROOM_OK) {
        json_object_put(o);
        return -1;
    }
    return web_reply_ok(out, o);
}

/* GET /api/job?queue=Q&id=ID (without queue: the first queue that has the job). */
int api_job(const web_req *rq, web_reply *out)
{
    const char *id = web_arg(rq, "id");
    if (!id || !mailroom_id_valid(id))
        return web_reply_error(out, 400, "id must be a job id, [A-Za-z0-9._:-]{1,128}");
    if (web_arg(rq, "queue") || rq->app->n_queues == 1) {
        web_queue *q = web_req_queue(rq, out);
        if (q)
            job_page(q, id, out);
        return 0;
    }
    for (size_t i = 0; i < rq->app->n_queues; i++)
        if (job_page(&rq->app->queues[i], id, out) == 0 || out->status != 404)
            return 0;
    return web_reply_error(out, 404, "no queue here has a job %s", id);
}

/* ------------------------------------------------------------------ search */

/* {queue, id, state, updated_at} of the record of id on q, when there is one. */
static int search_id(web_queue *q, const char *id, json_object *hits)
{
    mailroom_job_status st;
    pthread_mutex_lock(&q->lock);
    int rc = mailroom_status(q->m, id, &st);
    pthread_mutex_unlock(&q->lock);
    if (rc != MAILROOM_OK)
        return 0;
    json_object *o = json_object_new_object();
    if (!o || wj_set(o, "queue", wj_str(q->name)) != 0 ||
        wj_set(o, "record", wj_status(&st)) != 0) {
        json_object_put(o);
        return -1;
    }
    return wj_add(hits, o);
}

/* 1 when a dead letter's raw job names a recipient containing text (ASCII case
 * ignored). */
static int dead_names(const mailroom_dead_letter *d, const char *text)
{
    json_object *j = d->job ? wj_parse(d->job, strlen(d->job)) : NULL, *to = NULL;
    int yes = 0;
    size_t n = strlen(text);
    if (j && json_object_object_get_ex(j, "to", &to) && json_object_is_type(to, json_type_array))
        for (size_t i = 0; !yes && i < json_object_array_length(to); i++) {
            const char *a = json_object_get_string(json_object_array_get_idx(to, i));
            for (size_t k = 0; a && !yes && strlen(a) >= n && k <= strlen(a) - n; k++)
                yes = strncasecmp(a + k, text, n) == 0;
        }
    json_object_put(j);
    return yes;
}

/* Keeps why a search's call on q failed (under q's lock). */
static void search_failed(const web_queue *q, char why[WEB_ERR_MAX])
{
    snprintf(why, WEB_ERR_MAX, "search of %s: %s", q->name, mailroom_errmsg(q->m));
}

/* The newest outcomes and dead letters of q naming a recipient that contains text. 0,
 * or -1 with why filled. */
static int search_recipient(web_queue *q, const char *text, json_object *outcomes,
                            json_object *dead, char why[WEB_ERR_MAX])
{
    mailroom_event_log *log = NULL;
    mailroom_dead_letters *l = NULL;
    pthread_mutex_lock(&q->lock);
    int rc = mailroom_recipient_events_read(q->m, text, SEARCH_HITS, 0, &log);
    if (rc == MAILROOM_OK)
        rc = mailroom_dead_list(q->m, SEARCH_DEAD_SCAN, &l);
    if (rc != MAILROOM_OK)
        search_failed(q, why);
    pthread_mutex_unlock(&q->lock);
    int r = rc == MAILROOM_OK ? 0 : -1;
    json_object *evs = r == 0 ? wj_event_log(log, q->name) : NULL;
    for (size_t i = 0; evs && i < json_object_array_length(evs); i++)
        r |= wj_add(outcomes, json_object_get(json_object_array_get_idx(evs, i)));
    for (size_t i = 0; l && i < l->n; i++) {
        json_object *o = dead_names(&l->items[i], text) ? wj_dead_letter(&l->items[i]) : NULL;
        if (o)
            r |= wj_set(o, "queue", wj_str(q->name)) | wj_add(dead, o);
    }
    json_object_put(evs);
    mailroom_event_log_free(log);
    mailroom_dead_letters_free(l);
    return r;
}

/* The waiting jobs (pending, then scheduled) of q with a recipient text names: an
 * address, or a domain ("@example.com" or "example.com"). One page of each. 0, or -1
 * with why filled. */
static int search_waiting(web_queue *q, const char *text, json_object *waiting,
                          char why[WEB_ERR_MAX])
{
    static const mailroom_jobs_kind kinds[] = {MAILROOM_JOBS_PENDING, MAILROOM_JOBS_SCHEDULED};
    const char *at = strchr(text, '@');
    int r = 0;
    for (size_t k = 0; r == 0 && k < 2; k++) {
        mailroom_jobs_query query;
        mailroom_jobs *l = NULL;
        mailroom_jobs_query_init(&query);
        query.kind = kinds[k];
        query.limit = SEARCH_HITS;
        if (at && at != text)
            query.to = text;
        else
            query.domain = at ? at + 1 : text;
        pthread_mutex_lock(&q->lock);
        int rc = mailroom_jobs_list(q->m, &query, &l);
        if (rc != MAILROOM_OK && rc != MAILROOM_EINVAL)
            search_failed(q, why);
        pthread_mutex_unlock(&q->lock);
        if (rc == MAILROOM_EINVAL) /* not an address or domain: nothing waits for it */
            return 0;
        r = rc == MAILROOM_OK ? 0 : -1;
        for (size_t i = 0; r == 0 && l && i < l->n; i++) {
            json_object *o = wj_job_item(&l->items[i]);
            r = o ? wj_set(o, "queue", wj_str(q->name)) | wj_add(waiting, o) : -1;
        }
        mailroom_jobs_free(l);
    }
    return r;
}

/* The suppression list's entry for an address, when text is one and it has an entry;
 * null otherwise. */
static json_object *search_suppressed(web_queue *q, const char *text)
{
    mailroom_suppression entry;
    const char *at = strchr(text, '@');
    if (!at || at == text)
        return NULL;
    pthread_mutex_lock(&q->lock);
    int rc = mailroom_suppressed(q->m, text, &entry);
    pthread_mutex_unlock(&q->lock);
    return rc == MAILROOM_OK ? wj_suppression(&entry) : NULL;
}

/* GET /api/search?q=TEXT */
int api_search(const web_req *rq, web_reply *out)
{
    const char *text = web_arg(rq, "q");
    size_t n = text ? strlen(text) : 0;
    if (n < 3 || n > 254)
        return web_reply_error(out, 400, "q: a job id, an address or @domain, 3 to 254 bytes");
    int by_id = mailroom_id_valid(text), by_rcpt = strchr(text, '@') || strchr(text, '.');
    json_object *o = json_object_new_object(), *jobs = json_object_new_array(),
                *waiting = json_object_new_array(), *outcomes = json_object_new_array(),
                *dead = json_object_new_array();
    char why[WEB_ERR_MAX] = "out of memory";
    int ok = o && jobs && waiting && outcomes && dead;
    for (size_t i = 0; ok && i < rq->app->n_queues; i++) {
        web_queue *q = &rq->app->queues[i];
        if (by_id && search_id(q, text, jobs) != 0)
            ok = 0;
        if (ok && by_rcpt &&
            (search_waiting(q, text, waiting, why) != 0 ||
             search_recipient(q, text, outcomes, dead, why) != 0))
            ok = 0;
    }
    if (!ok || wj_set(o, "query", wj_str(text)) != 0) {
        json_object_put(jobs);
        json_object_put(waiting);
        json_object_put(outcomes);
        json_object_put(dead);
        json_object_put(o);
        return web_reply_error(out, ok || strcmp(why, "out of memory") == 0 ? 500 : 503, "%s", why);
    }
    json_object *sup = by_rcpt ? search_suppressed(&rq->app->queues[0], text) : NULL;
    ok = wj_set(o, "jobs", jobs) == 0 && wj_set(o, "waiting", waiting) == 0 &&
         wj_set(o, "outcomes", outcomes) == 0 && wj_set(o, "dead", dead) == 0 &&
         json_object_object_add(o, "suppressed", sup) == 0;
    return web_reply_ok(out, ok ? o : (json_object_put(o), NULL));
}
