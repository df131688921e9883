/*
 * jobs.c — the job listing (mailroom_admin.h): mailroom_jobs_list() walks the pending
 * list or the scheduled set in stretches, each read by one Lua script
 * (common/lua/list_pending.lua, list_scheduled.lua) that returns the raw jobs with
 * their records' state, attempts and last error, so an entry and its record are read
 * at one instant and a hostile entry too large to be a job never leaves Redis. The
 * filters and the cursors are jobitem.c's.
 *
 * A page the caller gets owns every script reply of its walk (the raw jobs and the
 * record members its items point into), one json-c parse and one recipients array per
 * item; mailroom_jobs_free() releases all.
 */
#define _POSIX_C_SOURCE 200809L
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handle.h"
#include "jobitem.h"
#include "script.h"
#include "state.h"

#define STRETCH 100 /* entries one script call returns at most */

/* One entry as listed.lua returns it. */
enum { ROW_ID, ROW_RAW, ROW_BYTES, ROW_DUE, ROW_STATE, ROW_ATTEMPTS, ROW_ERROR, ROW_N };

/* What mailroom_jobs_list hands out: the public part first. */
typedef struct jobs_impl {
    mailroom_jobs pub;
    redisReply **replies; /* every stretch's reply, owned */
    size_t n_replies, cap_replies;
    mailroom_job_item *items; /* limit of them */
    json_object **trees;      /* per item, owned */
    const char ***rcpts;      /* per item, owned */
    char cursor[JOBS_CURSOR_MAX];
} jobs_impl;

/* The state of a walk: the question, where it is, how far it went. */
typedef struct walk {
    mailroom_jobs_kind kind;
    jobitem_filter filter;
    jobs_cursor cur;
    long limit;
    int ended;
} walk;

void mailroom_jobs_query_init(mailroom_jobs_query *q)
{
    if (!q)
        return;
    memset(q, 0, sizeof *q);
    q->kind = MAILROOM_JOBS_PENDING;
    q->limit = MAILROOM_JOBS_LIST_DEFAULT;
}

void mailroom_jobs_free(mailroom_jobs *l)
{
    jobs_impl *j = (jobs_impl *)l; /* pub is the first member */
    if (!j)
        return;
    for (size_t i = 0; i < j->pub.n; i++) {
        json_object_put(j->trees[i]);
        free((void *)j->rcpts[i]);
    }
    for (size_t i = 0; i < j->n_replies; i++)
        freeReplyObject(j->replies[i]);
    free(j->replies);
    free(j->items);
    free(j->trees);
    free(j->rcpts);
    free(j);
}

/* Keeps a reply for the page's lifetime (its strings are borrowed). 0, or -1. */
static int keep_reply(jobs_impl *j, redisReply *r)
{
    if (j->n_replies == j->cap_replies) {
        size_t cap = j->cap_replies ? 2 * j->cap_replies : 8;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        redisReply **v = realloc(j->replies, cap * sizeof *v);
        if (!v)
            return -1;
        j->replies = v;
        j->cap_replies = cap;
    }
    j->replies[j->n_replies++] = r;
    return 0;
}

/* 1 when r is an entry of listed.lua: ROW_N strings. */
static int is_row(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != ROW_N)
        return 0;
    for (size_t i = 0; i < ROW_N; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING)
            return 0;
    return 1;
}

/* The item of one row: its record's members, then its raw job's. 0, or -1 (memory). */
static int row_item(jobs_impl *j, const redisReply *row, mailroom_job_item *it)
{
    const redisReply *const *e = (const redisReply *const *)row->element;
    memset(it, 0, sizeof *it);
    it->id = e[ROW_ID]->str;
    it->state = e[ROW_STATE]->len ? mr_state_parse(e[ROW_STATE]->str) : MAILROOM_STATE_UNKNOWN;
    it->attempts = atoi(e[ROW_ATTEMPTS]->str);
    it->error = e[ROW_ERROR]->str;
    it->due_ms = e[ROW_DUE]->len ? (long long)strtod(e[ROW_DUE]->str, NULL) : 0;
    size_t n = j->pub.n;
    if (jobitem_read(e[ROW_RAW]->str, e[ROW_RAW]->len, it, &j->trees[n], &j->rcpts[n]) != 0)
        return -1;
    it->raw_bytes = (size_t)strtoull(e[ROW_BYTES]->str, NULL, 10);
    return 0;
}

/* Considers one row: kept as the page's next item when it passes the walk's filters
 * (and, for retrying, its record says so). 0, or -1 with m->err set. */
static int consider(mailroom *m, jobs_impl *j, const walk *w, const redisReply *row)
{
    mailroom_job_item *it = &j->items[j->pub.n];
    if (row_item(j, row, it) != 0)
        return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    int keep = jobitem_matches(&w->filter, it) &&
               (w->kind != MAILROOM_JOBS_RETRYING || it->state == MAILROOM_STATE_RETRYING);
    if (keep) {
        j->pub.n++;
        return 0;
    }
    json_object_put(j->trees[j->pub.n]);
    free((void *)j->rcpts[j->pub.n]);
    j->trees[j->pub.n] = NULL;
    j->rcpts[j->pub.n] = NULL;
    return 0;
}

/* Runs one stretch's script; the reply is kept by the page. NULL with m->err set. */
static redisReply *run_stretch(mailroom *m, jobs_impl *j, const walk *w, long count)
{
    char num[32], count_s[32], bytes[32];
    snprintf(count_s, sizeof count_s, "%ld", count);
    snprintf(bytes, sizeof bytes, "%d", MAILROOM_JOB_MAX_BYTES);
    redisReply *r;
    if (w->kind == MAILROOM_JOBS_PENDING) {
        list_pending_args a = {0};
        snprintf(num, sizeof num, "%lld", w->cur.offset);
        a.v[LIST_PENDING_KEY_pending] = m->keys.pending;
        a.v[LIST_PENDING_ARG_offset] = num;
        a.v[LIST_PENDING_ARG_anchor] = w->cur.anchor;
        a.v[LIST_PENDING_ARG_count] = count_s;
        a.v[LIST_PENDING_ARG_job_prefix] = m->keys.job_prefix;
        a.v[LIST_PENDING_ARG_max_bytes] = bytes;
        r = script_run(m->redis, SCRIPT_LIST_PENDING, a.v, NULL, &m->err);
    } else {
        list_scheduled_args a = {0};
        snprintf(num, sizeof num, "%lld", w->cur.skip);
        a.v[LIST_SCHEDULED_KEY_scheduled] = m->keys.scheduled;
        a.v[LIST_SCHEDULED_ARG_min] = w->cur.at;
        a.v[LIST_SCHEDULED_ARG_skip] = num;
        a.v[LIST_SCHEDULED_ARG_count] = count_s;
        a.v[LIST_SCHEDULED_ARG_job_prefix] = m->keys.job_prefix;
        a.v[LIST_SCHEDULED_ARG_max_bytes] = bytes;
        r = script_run(m->redis, SCRIPT_LIST_SCHEDULED, a.v, NULL, &m->err);
    }
    if (!r) {
        if (m->err.rc == MAILROOM_EREDIS)
            handle_connection_failed(m, "list");
        return NULL;
    }
    if (keep_reply(j, r) != 0) {
        freeReplyObject(r);
        mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
        return NULL;
    }
    return r;
}

/*
 * Checks a stretch's reply: an array of `head` integers, then rows. 0, or -1 with
 * m->err set.
 */
static int check_stretch(mailroom *m, const redisReply *r, size_t head)
{
    int ok = r->type == REDIS_REPLY_ARRAY && r->elements >= head;
    for (size_t i = 0; ok && i < r->elements; i++)
        ok = i < head ? r->element[i]->type == REDIS_REPLY_INTEGER : is_row(r->element[i]);
    return ok ? 0 : handle_reply_failed(m, r, "list");
}

/*
 * Walks one stretch: a script call, its rows considered until the page is full. The
 * cursor moves past every row considered; the walk ends when a stretch comes back
 * short. 0, or -1 with m->err set.
 */
static int stretch(mailroom *m, jobs_impl *j, walk *w, long count)
{
    int pending = w->kind == MAILROOM_JOBS_PENDING;
    size_t head = pending ? 2 : 1;
    redisReply *r = run_stretch(m, j, w, count);
    if (!r || check_stretch(m, r, head) != 0)
        return -1;
    long long start = pending ? r->element[0]->integer : 0;
    j->pub.total = r->element[head - 1]->integer;
    size_t rows = r->elements - head, used = 0;
    for (; used < rows && j->pub.n < (size_t)w->limit; used++) {
        const redisReply *row = r->element[head + used];
        if (consider(m, j, w, row) != 0)
            return -1;
        j->pub.examined++;
        if (pending) {
            w->cur.offset = start + (long long)used + 1;
            snprintf(w->cur.anchor, sizeof w->cur.anchor, "%s", row->element[ROW_ID]->str);
        } else {
            jobs_cursor_pass(&w->cur, row->element[ROW_DUE]->str);
        }
    }
    w->ended = used == rows && rows < (size_t)count;
    return 0;
}

/* The whole walk of one call: stretches until the page is full, the entries looked at
 * reach MAILROOM_JOBS_SCAN_MAX, or the end. 0, or -1 with m->err set. */
static int walk_run(mailroom *m, jobs_impl *j, walk *w)
{
    if (handle_connect(m) != 0)
        return -1;
    while (!w->ended && j->pub.n < (size_t)w->limit && j->pub.examined < MAILROOM_JOBS_SCAN_MAX) {
        long count = STRETCH;
        if (MAILROOM_JOBS_SCAN_MAX - j->pub.examined < count)
            count = (long)(MAILROOM_JOBS_SCAN_MAX - j->pub.examined);
        if (stretch(m, j, w, count) != 0)
            return -1;
    }
    if (w->ended)
        j->cursor[0] = '\0';
    else
        jobs_cursor_format(&w->cur, j->cursor);
    j->pub.items = j->items;
    j->pub.next_cursor = j->cursor;
    return 0;
}

/* The walk a query asks for. 0, or -1 with m->err set (MAILROOM_EINVAL). */
static int walk_init(mailroom *m, const mailroom_jobs_query *q, walk *w)
{
    static const char tags[] = {'p', 's', 'r'};
    memset(w, 0, sizeof *w);
    w->limit = q->limit > 0 ? q->limit : MAILROOM_JOBS_LIST_DEFAULT;
    if ((int)q->kind < 0 || (size_t)q->kind >= sizeof tags)
        return mr_fail(&m->err, MAILROOM_EINVAL, "list: unknown kind %d", (int)q->kind);
    if (q->limit > MAILROOM_JOBS_LIST_MAX)
        return mr_fail(&m->err, MAILROOM_EINVAL, "list: limit %ld is over %d", q->limit,
                       MAILROOM_JOBS_LIST_MAX);
    w->kind = q->kind;
    if (jobitem_filter_init(&w->filter, q->to, q->domain, &m->err) != 0 ||
        jobs_cursor_parse(q->cursor, tags[q->kind], &w->cur, &m->err) != 0)
        return mr_prefix(&m->err, "list");
    return 0;
}

/* A page with room for limit items. NULL when memory ran out. */
static jobs_impl *jobs_new(long limit)
{
    jobs_impl *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->items = calloc((size_t)limit, sizeof *j->items);
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): arrays of pointers */
    j->trees = calloc((size_t)limit, sizeof *j->trees);
    j->rcpts = calloc((size_t)limit, sizeof *j->rcpts);
    if (!j->items || !j->trees || !j->rcpts) {
        mailroom_jobs_free(&j->pub);
        return NULL;
    }
    return j;
}

/* mailroom_jobs_list (mailroom_admin.h). */
int mailroom_jobs_list(mailroom *m, const mailroom_jobs_query *q, mailroom_jobs **out)
{
    mailroom_jobs_query defaults;
    walk w;
    if (!m)
        return MAILROOM_EINVAL;
    if (!out)
        return handle_result(m, mr_fail(&m->err, MAILROOM_EINVAL, "list: out is NULL"));
    *out = NULL;
    if (!q) {
        mailroom_jobs_query_init(&defaults);
        q = &defaults;
    }
    if (walk_init(m, q, &w) != 0)
        return handle_result(m, -1);
    jobs_impl *j = jobs_new(w.limit);
    if (!j)
        return handle_result(m, mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory"));
    int r = walk_run(m, j, &w);
    if (r == 0) {
        *out = &j->pub;
        j = NULL;
    }
    mailroom_jobs_free(j ? &j->pub : NULL);
    return handle_result(m, r);
}
