/*
 * control.c — job control (mailroom_admin.h): mailroom_cancel(), mailroom_retry_now(),
 * mailroom_pause() and mailroom_resume().
 *
 * Cancel and retry-now work on a job's raw copy, which only its bytes name in Redis
 * (a list or set member), so the library first finds it: in scheduled with ZSCAN and a
 * MATCH on the quoted id (Redis filters, only candidates travel), then, for cancel,
 * in pending, searched in stretches by a Lua script (common/lua/find_pending.lua) so
 * that the list stays in Redis. Each candidate is confirmed by reading its id. Then one
 * script (cancel.lua, retry_now.lua) checks the record's state and makes the change
 * atomically, so a consumer taking the job meanwhile is never half-overtaken: the
 * script refuses, or the copy it removes is the one the consumer would have taken.
 *
 * A found copy (struct found) owns its bytes until the call ends.
 */
#define _POSIX_C_SOURCE 200809L
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "handle.h"
#include "jobitem.h"
#include "script.h"

#define FIND_STRETCH 1000 /* pending entries find_pending looks at per call */

/* A raw job found in scheduled or pending. raw is owned (malloc), NULL when none. */
typedef struct found {
    char *raw;
    size_t len;
    mailroom_job_place place;
} found;

/* Keeps a copy of a confirmed candidate. 0, or -1 with m->err set (memory). */
static int take_copy(mailroom *m, found *f, const redisReply *e, mailroom_job_place place)
{
    f->raw = malloc(e->len + 1);
    if (!f->raw)
        return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    memcpy(f->raw, e->str, e->len);
    f->raw[e->len] = '\0';
    f->len = e->len;
    f->place = place;
    return 0;
}

/* Looks through one ZSCAN reply's members (every other element) for job id. */
static int zscan_members(mailroom *m, const redisReply *members, const char *id, found *f)
{
    for (size_t i = 0; i + 1 < members->elements && !f->raw; i += 2) {
        const redisReply *e = members->element[i];
        if (e->type == REDIS_REPLY_STRING && e->len <= MAILROOM_JOB_MAX_BYTES &&
            jobitem_has_id(e->str, e->len, id) && take_copy(m, f, e, MAILROOM_PLACE_SCHEDULED) != 0)
            return -1;
    }
    return 0;
}

/* Finds job id in scheduled (ZSCAN ... MATCH *"<id>"*: ids hold no glob character).
 * 0 (f->raw NULL when not there), or -1 with m->err set. */
static int find_scheduled(mailroom *m, const char *id, found *f)
{
    char pattern[JOB_ID_MAX + 8], cursor[32] = "0";
    snprintf(pattern, sizeof pattern, "*\"%s\"*", id);
    do {
        const char *argv[] = {"ZSCAN", m->keys.scheduled, cursor, "MATCH",
                              pattern, "COUNT",           "1000"};
        redisReply *r = redisCommandArgv(m->redis, 7, argv, NULL);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            handle_reply_failed(m, r, "ZSCAN scheduled");
            freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        int rr = zscan_members(m, r->element[1], id, f);
        freeReplyObject(r);
        if (rr != 0)
            return -1;
    } while (!f->raw && strcmp(cursor, "0") != 0);
    return 0;
}

/* One find_pending stretch from *start; *start becomes the next one (0: the end). */
static int find_stretch(mailroom *m, const char *id, long long *start, found *f)
{
    char from[32], count[32], needle[JOB_ID_MAX + 4], bytes[32];
    snprintf(from, sizeof from, "%lld", *start);
    snprintf(count, sizeof count, "%d", FIND_STRETCH);
    snprintf(needle, sizeof needle, "\"%s\"", id);
    snprintf(bytes, sizeof bytes, "%d", MAILROOM_JOB_MAX_BYTES);
    find_pending_args a = {0};
    a.v[FIND_PENDING_KEY_pending] = m->keys.pending;
    a.v[FIND_PENDING_ARG_start] = from;
    a.v[FIND_PENDING_ARG_count] = count;
    a.v[FIND_PENDING_ARG_needle] = needle;
    a.v[FIND_PENDING_ARG_max_bytes] = bytes;
    redisReply *r = script_run(m->redis, SCRIPT_FIND_PENDING, a.v, NULL, &m->err);
    if (!r)
        return m->err.rc == MAILROOM_EREDIS ? handle_connection_failed(m, "find") : -1;
    int rr = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        rr = handle_reply_failed(m, r, "find");
    for (size_t i = 1; rr == 0 && i < r->elements && !f->raw; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING && jobitem_has_id(e->str, e->len, id))
            rr = take_copy(m, f, e, MAILROOM_PLACE_PENDING);
    }
    if (rr == 0)
        *start = r->element[0]->integer;
    freeReplyObject(r);
    return rr;
}

/* Finds job id in pending, from the newest end. 0 (f->raw NULL when not there), or
 * -1 with m->err set. */
static int find_pending(mailroom *m, const char *id, found *f)
{
    long long start = 0;
    do {
        if (find_stretch(m, id, &start, f) != 0)
            return -1;
    } while (!f->raw && start > 0);
    return 0;
}

/* The record's state (into state, "" when there is no record). 0, or -1 with m->err. */
static int record_state(mailroom *m, const char *job_key, char state[32])
{
    const char *argv[] = {"HGET", job_key, "state"};
    redisReply *r = redisCommandArgv(m->redis, 3, argv, NULL);
    int rr = 0;
    state[0] = '\0';
    if (r && r->type == REDIS_REPLY_STRING)
        snprintf(state, 32, "%s", r->str);
    else if (!r || r->type != REDIS_REPLY_NIL)
        rr = handle_reply_failed(m, r, "HGET state");
    freeReplyObject(r);
    return rr;
}

/* Checks id and connects; job_key gets the record's key. 0, or -1 with m->err set. */
static int prepare(mailroom *m, const char *what, const char *id, char job_key[KEYS_NAME_MAX])
{
    if (!id || !job_id_valid(id))
        return mr_fail(&m->err, MAILROOM_EINVAL, "%s: '%.64s' is not a job id", what,
                       id ? id : "(null)");
    if (handle_connect(m) != 0)
        return -1;
    keys_job(&m->keys, id, job_key);
    return 0;
}

/* A script's {word, detail} answer; NULL (with m->err set) for anything else. */
static const redisReply *pair_reply(mailroom *m, const redisReply *r, const char *what)
{
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING)
        return r;
    handle_reply_failed(m, r, what);
    return NULL;
}

/* ------------------------------------------------------------------ cancel */

/* Runs cancel.lua with the copy found (or none). 0 with *where, or -1 with m->err. */
static int cancel_run(mailroom *m, const char *id, const char *job_key, const found *f,
                      mailroom_job_place *where)
{
    char now[CLOCK_ISO_MAX], minute[KEYS_NAME_MAX];
    int64_t now_ms = clock_now_ms();
    clock_format_iso(now_ms, 1, now);
    keys_minute(&m->keys, now_ms / 60000, minute);
    cancel_args a = {0};
    a.v[CANCEL_KEY_job] = job_key;
    a.v[CANCEL_KEY_pending] = m->keys.pending;
    a.v[CANCEL_KEY_scheduled] = m->keys.scheduled;
    a.v[CANCEL_KEY_stats] = m->keys.stats;
    a.v[CANCEL_KEY_minute] = minute;
    a.v[CANCEL_ARG_raw] = f->raw ? f->raw : "";
    a.len[CANCEL_ARG_raw] = f->raw ? f->len : 0;
    a.v[CANCEL_ARG_id] = id;
    a.v[CANCEL_ARG_why] = "cancelled by an operator";
    a.v[CANCEL_ARG_now] = now;
    a.v[CANCEL_ARG_queue] = m->keys.queue;
    a.v[CANCEL_ARG_channel] = m->keys.status;
    a.v[CANCEL_ARG_ttl] = m->ttl_arg;
    redisReply *r = script_run(m->redis, SCRIPT_CANCEL, a.v, a.len, &m->err);
    if (!r)
        return m->err.rc == MAILROOM_EREDIS ? handle_connection_failed(m, "cancel") : -1;
    int rr = -1;
    const redisReply *p = pair_reply(m, r, "cancel");
    if (p && strcmp(p->element[0]->str, "cancelled") == 0) {
        const char *w = p->element[1]->str;
        *where = strcmp(w, "pending") == 0     ? MAILROOM_PLACE_PENDING
                 : strcmp(w, "scheduled") == 0 ? MAILROOM_PLACE_SCHEDULED
                                               : MAILROOM_PLACE_NONE;
        rr = 0;
    } else if (p && strcmp(p->element[0]->str, "state") == 0) {
        mr_fail(&m->err, MAILROOM_ESTATE,
                "cancel: job '%s' is %.32s: only a queued or retrying job can be cancelled", id,
                p->element[1]->str);
    } else if (p) {
        mr_fail(&m->err, MAILROOM_ENOTFOUND, "cancel: no status record for job '%s'", id);
    }
    freeReplyObject(r);
    return rr;
}

/* The state check before the search (the script checks again), then the search,
 * then the script. */
static int cancel(mailroom *m, const char *id, mailroom_job_place *where)
{
    char job_key[KEYS_NAME_MAX], state[32];
    found f = {NULL, 0, MAILROOM_PLACE_NONE};
    int r = -1;
    if (prepare(m, "cancel", id, job_key) != 0 || record_state(m, job_key, state) != 0)
        goto out;
    if (!state[0]) {
        mr_fail(&m->err, MAILROOM_ENOTFOUND, "cancel: no status record for job '%s'", id);
        goto out;
    }
    if (strcmp(state, "queued") != 0 && strcmp(state, "retrying") != 0) {
        mr_fail(&m->err, MAILROOM_ESTATE,
                "cancel: job '%s' is %s: only a queued or retrying job can be cancelled", id,
                state);
        goto out;
    }
    if (find_scheduled(m, id, &f) != 0 || (!f.raw && find_pending(m, id, &f) != 0))
        goto out;
    r = cancel_run(m, id, job_key, &f, where);
out:
    free(f.raw);
    return r;
}

/* mailroom_cancel (mailroom_admin.h). */
int mailroom_cancel(mailroom *m, const char *id, mailroom_job_place *where)
{
    mailroom_job_place w = MAILROOM_PLACE_NONE;
    if (!m)
        return MAILROOM_EINVAL;
    int r = cancel(m, id, &w);
    if (where)
        *where = w;
    return handle_result(m, r);
}

/* ------------------------------------------------------------------ retry now */

/* The job's send_at in ms, as the script takes it ("" when it has none). */
static void send_at_arg(const found *f, char out[32])
{
    mailroom_job_item it = {0};
    json_object *tree = NULL;
    const char **rcpts = NULL;
    int64_t ms;
    out[0] = '\0';
    if (jobitem_read(f->raw, f->len, &it, &tree, &rcpts) == 0 && it.send_at[0] &&
        clock_parse_rfc3339(it.send_at, &ms) == 0)
        snprintf(out, 32, "%lld", (long long)ms);
    json_object_put(tree);
    free((void *)rcpts);
}

/* The message of a refusal by retry_now.lua (word: state, gone or not_yet). */
static int retry_refused(mailroom *m, const char *id, const char *word, const char *state)
{
    if (strcmp(word, "not_yet") == 0)
        return mr_fail(&m->err, MAILROOM_ESTATE,
                       "retry-now: job '%s' waits for its send_at, which its producer signed: it"
                       " is never sent earlier",
                       id);
    if (strcmp(word, "gone") == 0)
        return mr_fail(&m->err, MAILROOM_ESTATE,
                       "retry-now: job '%s' (%.32s) left scheduled meanwhile: it is pending", id,
                       state);
    return mr_fail(&m->err, MAILROOM_ESTATE,
                   "retry-now: job '%s' is %.32s: only a scheduled job (retrying, or queued with"
                   " a send_at) can be moved",
                   id, state);
}

/* Runs retry_now.lua with the copy found in scheduled. 0, or -1 with m->err set. */
static int retry_run(mailroom *m, const char *id, const char *job_key, const found *f)
{
    char now[CLOCK_ISO_MAX], send_at[32];
    clock_format_iso(clock_now_ms(), 1, now);
    send_at_arg(f, send_at);
    retry_now_args a = {0};
    a.v[RETRY_NOW_KEY_job] = job_key;
    a.v[RETRY_NOW_KEY_scheduled] = m->keys.scheduled;
    a.v[RETRY_NOW_KEY_pending] = m->keys.pending;
    a.v[RETRY_NOW_ARG_raw] = f->raw;
    a.len[RETRY_NOW_ARG_raw] = f->len;
    a.v[RETRY_NOW_ARG_id] = id;
    a.v[RETRY_NOW_ARG_send_at] = send_at;
    a.v[RETRY_NOW_ARG_now] = now;
    a.v[RETRY_NOW_ARG_queue] = m->keys.queue;
    a.v[RETRY_NOW_ARG_channel] = m->keys.status;
    redisReply *r = script_run(m->redis, SCRIPT_RETRY_NOW, a.v, a.len, &m->err);
    if (!r)
        return m->err.rc == MAILROOM_EREDIS ? handle_connection_failed(m, "retry-now") : -1;
    int rr = -1;
    const redisReply *p = pair_reply(m, r, "retry-now");
    if (p && strcmp(p->element[0]->str, "moved") == 0)
        rr = 0;
    else if (p && strcmp(p->element[0]->str, "none") == 0)
        mr_fail(&m->err, MAILROOM_ENOTFOUND, "retry-now: no status record for job '%s'", id);
    else if (p)
        retry_refused(m, id, p->element[0]->str, p->element[1]->str);
    freeReplyObject(r);
    return rr;
}

/* The state check, the search of scheduled, then the script. */
static int retry_now(mailroom *m, const char *id)
{
    char job_key[KEYS_NAME_MAX], state[32];
    found f = {NULL, 0, MAILROOM_PLACE_NONE};
    int r = -1;
    if (prepare(m, "retry-now", id, job_key) != 0 || record_state(m, job_key, state) != 0)
        goto out;
    if (!state[0]) {
        mr_fail(&m->err, MAILROOM_ENOTFOUND, "retry-now: no status record for job '%s'", id);
        goto out;
    }
    if (strcmp(state, "queued") != 0 && strcmp(state, "retrying") != 0) {
        retry_refused(m, id, "state", state);
        goto out;
    }
    if (find_scheduled(m, id, &f) != 0)
        goto out;
    if (!f.raw) {
        mr_fail(&m->err, MAILROOM_ESTATE,
                "retry-now: job '%s' (%s) is not scheduled: it waits in pending or a consumer"
                " holds it",
                id, state);
        goto out;
    }
    r = retry_run(m, id, job_key, &f);
out:
    free(f.raw);
    return r;
}

/* mailroom_retry_now (mailroom_admin.h). */
int mailroom_retry_now(mailroom *m, const char *id)
{
    if (!m)
        return MAILROOM_EINVAL;
    return handle_result(m, retry_now(m, id));
}

/* ------------------------------------------------------------------ pause, resume */

/* Runs pause.lua: pause 1 pauses, 0 resumes. 0 with *changed, or -1 with m->err. */
static int set_paused(mailroom *m, int pause, int *changed)
{
    char now[CLOCK_ISO_MAX];
    const char *what = pause ? "pause" : "resume";
    if (handle_connect(m) != 0)
        return -1;
    clock_format_iso(clock_now_ms(), 1, now);
    pause_args a = {0};
    a.v[PAUSE_KEY_paused] = m->keys.paused;
    a.v[PAUSE_ARG_pause] = pause ? "1" : "0";
    a.v[PAUSE_ARG_now] = now;
    a.v[PAUSE_ARG_queue] = m->keys.queue;
    a.v[PAUSE_ARG_channel] = m->keys.status;
    redisReply *r = script_run(m->redis, SCRIPT_PAUSE, a.v, NULL, &m->err);
    if (!r)
        return m->err.rc == MAILROOM_EREDIS ? handle_connection_failed(m, what) : -1;
    int rr = 0;
    if (r->type == REDIS_REPLY_INTEGER)
        *changed = r->integer == 1;
    else
        rr = handle_reply_failed(m, r, what);
    freeReplyObject(r);
    return rr;
}

/* mailroom_pause (mailroom_admin.h). */
int mailroom_pause(mailroom *m, int *changed)
{
    int c = 0;
    if (!m)
        return MAILROOM_EINVAL;
    int r = set_paused(m, 1, &c);
    if (changed)
        *changed = r == 0 ? c : 0;
    return handle_result(m, r);
}

/* mailroom_resume (mailroom_admin.h). */
int mailroom_resume(mailroom *m, int *changed)
{
    int c = 0;
    if (!m)
        return MAILROOM_EINVAL;
    int r = set_paused(m, 0, &c);
    if (changed)
        *changed = r == 0 ? c : 0;
    return handle_result(m, r);
}
