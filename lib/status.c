/*
 * status.c — reading a job's status record: mailroom_status() (one HGETALL of
 * mailroom:{Q}:job:<id>) and mailroom_wait(), which waits for the record to become
 * final by listening to the queue's status channel on a second connection that lives
 * for the call only. The caller owns the mailroom_job_status it passes; strings are
 * copied into it.
 */
#define _POSIX_C_SOURCE 200809L
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "handle.h"
#include "job.h"
#include "recipients.h"
#include "state.h"

/* Copies one HGETALL field into the status record. */
static void take_field(mailroom_job_status *st, const char *field, const char *value)
{
    struct {
        const char *name;
        char *dst;
        size_t size;
    } strings[] = {{"smtp_reply", st->smtp_reply, sizeof st->smtp_reply},
                   {"error", st->error, sizeof st->error},
                   {"consumer", st->consumer, sizeof st->consumer},
                   {"created_at", st->created_at, sizeof st->created_at},
                   {"updated_at", st->updated_at, sizeof st->updated_at}};
    if (strcmp(field, "state") == 0)
        st->state = mr_state_parse(value);
    else if (strcmp(field, "attempts") == 0)
        st->attempts = atoi(value);
    else if (strcmp(field, "smtp_code") == 0)
        st->smtp_code = atoi(value);
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if (strcmp(field, strings[i].name) == 0)
            snprintf(strings[i].dst, strings[i].size, "%s", value);
}

/* Fills *out from an HGETALL reply. 0, or -1 with m->err set (no record: ENOTFOUND). */
static int take_record(mailroom *m, const redisReply *r, const char *id, mailroom_job_status *out)
{
    if (r->type == REDIS_REPLY_ERROR)
        return mr_fail(&m->err, MAILROOM_EREDIS, "status refused by Redis: %.300s", r->str);
    if (r->type != REDIS_REPLY_ARRAY)
        return mr_fail(&m->err, MAILROOM_EPROTO, "status: unexpected reply type %d", r->type);
    if (r->elements == 0)
        return mr_fail(&m->err, MAILROOM_ENOTFOUND, "no status record for job '%s'", id);
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            take_field(out, r->element[i]->str, r->element[i + 1]->str);
    return 0;
}

/* Reads the record of job id into *out. 0, or -1 with m->err set. */
static int read_status(mailroom *m, const char *id, mailroom_job_status *out)
{
    if (!id || !out || !job_id_valid(id))
        return mr_fail(&m->err, MAILROOM_EINVAL, "id must match [A-Za-z0-9._:-]{1,128}");
    if (handle_connect(m) != 0)
        return -1;
    char job_key[KEYS_NAME_MAX];
    keys_job(&m->keys, id, job_key);
    const char *argv[] = {"HGETALL", job_key};
    redisReply *r = redisCommandArgv(m->redis, 2, argv, NULL);
    if (!r)
        return handle_connection_failed(m, "status");
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", id);
    int rr = take_record(m, r, id, out);
    freeReplyObject(r);
    return rr;
}

int mailroom_status(mailroom *m, const char *id, mailroom_job_status *out)
{
    if (!m)
        return MAILROOM_EINVAL;
    return handle_result(m, read_status(m, id, out));
}

/* mailroom_job_detail and what its pointers borrow from: the parsed recipients map and
 * the relay id. */
typedef struct detail {
    mailroom_job_detail pub; /* first: the public pointer is the detail's */
    json_object *map;
    mailroom_recipient *recipients;
    char relay_id[256];
    char relay[256];
} detail;

void mailroom_job_detail_free(mailroom_job_detail *d)
{
    detail *x = (detail *)d;
    if (!x)
        return;
    free(x->recipients);
    json_object_put(x->map);
    free(x);
}

/* Fills x from an HGETALL reply (the status commands of the producer's ACL role).
 * 0, or -1 with m->err set. */
static int take_detail(mailroom *m, const redisReply *r, const char *id, detail *x)
{
    size_t n = 0;
    if (r->type == REDIS_REPLY_ERROR)
        return mr_fail(&m->err, MAILROOM_EREDIS, "status refused by Redis: %.300s", r->str);
    if (r->type != REDIS_REPLY_ARRAY)
        return mr_fail(&m->err, MAILROOM_EPROTO, "status: unexpected reply type %d", r->type);
    if (r->elements == 0)
        return mr_fail(&m->err, MAILROOM_ENOTFOUND, "no status record for job '%s'", id);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, "relay_id") == 0)
            snprintf(x->relay_id, sizeof x->relay_id, "%s", v->str);
        else if (strcmp(k->str, "relay") == 0)
            snprintf(x->relay, sizeof x->relay, "%s", v->str);
        else if (strcmp(k->str, "recipients") == 0 && !x->map)
            x->map = job_parse_strict(v->str, v->len, NULL);
    }
    if (recipients_read(x->map, &x->recipients, &n) != 0)
        return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    x->pub.relay_id = x->relay_id;
    x->pub.relay = x->relay;
    x->pub.recipients = x->recipients;
    x->pub.n_recipients = n;
    return 0;
}

/* Reads the detail of job id into a new *out. 0, or -1 with m->err set. */
static int read_detail(mailroom *m, const char *id, mailroom_job_detail **out)
{
    int rc = -1;
    redisReply *r = NULL;
    detail *x = NULL;
    if (!id || !out || !job_id_valid(id))
        return mr_fail(&m->err, MAILROOM_EINVAL, "id must match [A-Za-z0-9._:-]{1,128}");
    if (handle_connect(m) != 0)
        return -1;
    char job_key[KEYS_NAME_MAX];
    keys_job(&m->keys, id, job_key);
    const char *argv[] = {"HGETALL", job_key};
    if (!(r = redisCommandArgv(m->redis, 2, argv, NULL)))
        return handle_connection_failed(m, "status");
    if (!(x = calloc(1, sizeof *x))) {
        mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
        goto out;
    }
    if (take_detail(m, r, id, x) != 0)
        goto out;
    *out = &x->pub;
    x = NULL;
    rc = 0;
out:
    mailroom_job_detail_free(x ? &x->pub : NULL);
    freeReplyObject(r);
    return rc;
}

int mailroom_status_detail(mailroom *m, const char *id, mailroom_job_detail **out)
{
    if (!m)
        return MAILROOM_EINVAL;
    if (out)
        *out = NULL;
    return handle_result(m, read_detail(m, id, out));
}

/* 1 when a status event (JSON) is about job id and says it is final (a redelivered
 * job acknowledged as a duplicate is final too: its record says sent). */
static int final_event_for(const char *payload, size_t len, const char *id)
{
    json_tokener *tok = json_tokener_new();
    json_object *ev =
        tok && len <= (size_t)INT_MAX ? json_tokener_parse_ex(tok, payload, (int)len) : NULL;
    json_object *jid = NULL, *jstate = NULL;
    int final = 0;
    json_tokener_free(tok);
    if (ev && json_object_object_get_ex(ev, "id", &jid) &&
        json_object_object_get_ex(ev, "state", &jstate) &&
        json_object_is_type(jid, json_type_string) &&
        strcmp(json_object_get_string(jid), id) == 0) {
        const char *st = json_object_get_string(jstate);
        final = mr_state_final(mr_state_parse(st)) || strcmp(st, "duplicate") == 0;
    }
    json_object_put(ev);
    return final;
}

/* Opens the subscription connection and confirms SUBSCRIBE. NULL with m->err set. */
static redisContext *subscribe(mailroom *m)
{
    redisContext *sub = handle_connect_new(m);
    if (!sub)
        return NULL;
    const char *argv[] = {"SUBSCRIBE", m->keys.status};
    redisReply *r = redisCommandArgv(sub, 2, argv, NULL);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        mr_fail(&m->err, !r && rconn_timed_out(sub) ? MAILROOM_ETIMEOUT : MAILROOM_EREDIS,
                "wait: SUBSCRIBE failed: %s",
                r && r->type == REDIS_REPLY_ERROR ? r->str : sub->errstr);
        freeReplyObject(r);
        redisFree(sub);
        return NULL;
    }
    freeReplyObject(r);
    return sub;
}

/*
 * Reads the subscription until a final event for job id or the deadline. 1 for a
 * final event, 0 at the deadline, -1 when the subscription was lost (m->err set).
 */
static int await_final(mailroom *m, redisContext *sub, const char *id, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - clock_now_ms();
        if (left <= 0)
            return 0;
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
        redisSetTimeout(sub, tv);
        redisReply *r = NULL;
        if (redisGetReply(sub, (void **)&r) != REDIS_OK || !r) {
            if (rconn_timed_out(sub))
                return 0;
            return mr_fail(&m->err, MAILROOM_EREDIS, "wait: subscription lost: %s", sub->errstr);
        }
        int final = r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                    r->element[2]->type == REDIS_REPLY_STRING &&
                    final_event_for(r->element[2]->str, r->element[2]->len, id);
        freeReplyObject(r);
        if (final)
            return 1;
    }
}

/* mailroom_wait (mailroom.h): subscribe, read the record, then wait for a final event
 * and read it again; the subscription connection lives for this call only. */
int mailroom_wait(mailroom *m, const char *id, int timeout_ms, mailroom_job_status *out)
{
    if (!m)
        return MAILROOM_EINVAL;
    if (!id || !out || !job_id_valid(id) || timeout_ms < 0)
        return handle_result(m, mr_fail(&m->err, MAILROOM_EINVAL,
                                        "wait: a valid id, out and timeout >= 0 are needed"));
    int64_t deadline = clock_now_ms() + timeout_ms;
    redisContext *sub = subscribe(m);
    if (!sub)
        return handle_result(m, -1);
    /* subscribed first: from here on no final event can be missed */
    int r = read_status(m, id, out);
    if (r == 0 && !mr_state_final(out->state)) {
        int got = await_final(m, sub, id, deadline);
        if (got >= 0)
            r = read_status(m, id, out); /* at the timeout too: the record as it is now */
        if (got == 0 && r == 0)
            r = mr_fail(&m->err, MAILROOM_EPENDING, "job '%s' not final after %d ms (state %s%s%s)",
                        id, timeout_ms, mailroom_state_name(out->state), out->error[0] ? ": " : "",
                        out->error);
        else if (got < 0)
            r = -1;
    }
    redisFree(sub);
    return handle_result(m, r);
}
