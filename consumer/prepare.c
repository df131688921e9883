/* prepare: see prepare.h. */
#define _POSIX_C_SOURCE 200809L
#include "prepare.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "mime.h"
#include "outcome.h"
#include "suppression.h"
#include "take.h"

/* Records a rejection (invalid, forged or stale job), before any lease. */
static void reject(worker *w, task *t, const char *id, const char *reason, int carry)
{
    outcome o = {MAILROOM_STATE_REJECTED, id,   0,    "",   reason, 0,
                 clock_now_ms(),          NULL, NULL, NULL, NULL};
    outcome_finish_carrying(w, t, &o, carry);
}

/*
 * Freshness, checked at every take (the first included): a job older than its
 * lifetime (from its created_at, or its send_at when later) is rejected, and so is one
 * created further in the future than the allowed clock skew: together with a status
 * TTL above the lifetime (checked at start) this bounds replays (docs/reliability.md).
 * A job past its expires_at fails; one taken before its send_at is deferred. Returns
 * 1 when the job was settled here.
 */
static int settled_by_time(worker *w, task *t, int64_t now, int carry)
{
    const consumer_config *cfg = w->cfg;
    const job *j = &t->job;
    char why[256];
    int64_t due = j->send_at_ms > j->created_ms ? j->send_at_ms : j->created_ms;
    if (j->created_ms > now + cfg->max_clock_skew_ms) {
        snprintf(why, sizeof why,
                 "created_at %s is %lld s in the future (more than the allowed clock skew of "
                 "%lld s)",
                 j->created_at, (long long)((j->created_ms - now) / 1000),
                 (long long)(cfg->max_clock_skew_ms / 1000));
    } else if (now - due > cfg->max_lifetime_ms) {
        snprintf(why, sizeof why,
                 "too old: due at %s, more than --max-lifetime (%lld s) ago (a replay, or a "
                 "backlog older than the lifetime)",
                 j->send_at_ms > j->created_ms ? j->send_at : j->created_at,
                 (long long)(cfg->max_lifetime_ms / 1000));
    } else if (j->expires_ms && now >= j->expires_ms) {
        outcome o = {
            MAILROOM_STATE_FAILED, j->id, 0, "", "expired", 0, now, NULL, NULL, NULL, NULL};
        outcome_finish_carrying(w, t, &o, carry);
        return 1;
    } else if (j->send_at_ms > now + 1000) {
        /* pushed onto pending before its time by a producer that did not schedule it */
        outcome o = {
            MAILROOM_STATE_QUEUED, j->id, 0, "", "", j->send_at_ms, now, NULL, NULL, NULL, NULL};
        outcome_finish_carrying(w, t, &o, carry);
        return 1;
    } else {
        return 0;
    }
    reject(w, t, j->id, why, carry);
    return 1;
}

/* 1 when address is in the owed JSON array (text). */
static int is_owed(json_object *owed, const char *address)
{
    size_t n = json_object_array_length(owed);
    for (size_t i = 0; i < n; i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(owed, i));
        if (s && strcmp(s, address) == 0)
            return 1;
    }
    return 0;
}

/* 1 when an envelope address is already among the first n of t (a@Bücher.de and
 * a@xn--bcher-kva.de are one). */
static int listed(const task *t, size_t n, const char *envelope)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t->rcpt_ptrs[i], envelope) == 0)
            return 1;
    return 0;
}

/* Appends one recipient (its envelope form, then the address as given) to t->rcpt,
 * records its offset and points rcpt_ptrs and shown_ptrs at every entry again (the
 * buffer may have moved). */
static int add_rcpt(task *t, size_t *offsets, size_t *n, const addr_mailbox *mb)
{
    offsets[(*n)++] = t->rcpt.len;
    if (buf_append(&t->rcpt, mb->envelope, strlen(mb->envelope) + 1) != 0 ||
        buf_append(&t->rcpt, mb->spec, strlen(mb->spec) + 1) != 0)
        return -1;
    for (size_t k = 0; k < *n; k++) {
        t->rcpt_ptrs[k] = t->rcpt.data + offsets[k];
        t->shown_ptrs[k] = t->rcpt_ptrs[k] + strlen(t->rcpt_ptrs[k]) + 1;
    }
    return 0;
}

/*
 * This attempt's envelope: the bare addresses of to, cc and bcc, each once, limited on
 * a retry to those still owed (t->owed, a JSON array of the addresses as given; ""
 * means every one). Fills t->rcpt_ptrs (envelope forms: IDN domains as A-labels) and
 * t->shown_ptrs (as given) and returns how many, or -1 when memory ran out.
 */
static long envelope(task *t)
{
    const job *j = &t->job;
    const char *const *lists[3] = {j->to, j->cc, j->bcc};
    size_t counts[3] = {j->n_to, j->n_cc, j->n_bcc}, offsets[JOB_MAX_RCPT] = {0}, n = 0;
    json_object *owed = t->owed.len ? json_tokener_parse(t->owed.data) : NULL;
    long rc = -1;
    buf_reset(&t->rcpt);
    for (int l = 0; l < 3; l++) {
        for (size_t i = 0; i < counts[l] && n < JOB_MAX_RCPT; i++) {
            addr_mailbox mb;
            if (addr_parse(lists[l][i], strlen(lists[l][i]), &mb, NULL) != 0)
                continue; /* cannot happen: validated by job_decode */
            if ((owed && !is_owed(owed, mb.spec)) || listed(t, n, mb.envelope) ||
                suppression_listed(t, mb.envelope))
                continue;
            if (add_rcpt(t, offsets, &n, &mb) != 0)
                goto out;
        }
    }
    rc = (long)n;
out:
    json_object_put(owed);
    return rc;
}

/* Room for n RCPT replies. 0, or -1 when memory ran out. */
static int reserve_replies(task *t, size_t n)
{
    if (n <= t->rcpt_cap)
        return 0;
    smtp_rcpt_reply *p = realloc(t->rcpt_replies, n * sizeof *p);
    if (!p)
        return -1;
    t->rcpt_replies = p;
    t->rcpt_cap = n;
    return 0;
}

/* The message and the transaction of a begun attempt. 0, or -1 with the job failed
 * (its message cannot be built). */
static int build(worker *w, task *t, int carry)
{
    mr_error err = MR_ERROR_INIT;
    long n = envelope(t);
    if (n < 0 || reserve_replies(t, (size_t)(n ? n : 1)) != 0)
        mr_fail(&err, MAILROOM_ENOMEM, "out of memory");
    else if (n == 0)
        mr_fail(&err, MAILROOM_EINVAL, "no recipient left to send to");
    else if (addr_spec_parse(t->job.from, strlen(t->job.from), t->from_envelope, NULL, &err) == 0 &&
             mime_build(&t->job, &t->message, &err) == 0) {
        memset(&t->txn, 0, sizeof t->txn);
        t->txn.from = t->from_envelope;
        t->txn.smtputf8 = mime_needs_smtputf8(&t->job);
        t->txn.rcpt = t->rcpt_ptrs;
        t->txn.n_rcpt = (size_t)n;
        t->txn.data = t->message.data;
        t->txn.len = t->message.len;
        t->txn.rcpt_replies = t->rcpt_replies;
        return 0;
    }
    char error[MR_ERROR_MAX + 32];
    snprintf(error, sizeof error, "cannot build the message: %s", err.msg);
    outcome o = {MAILROOM_STATE_FAILED, t->job.id, 0,    "",   error, 0,
                 clock_now_ms(),        NULL,      NULL, NULL, NULL};
    outcome_finish_carrying(w, t, &o, carry);
    return -1;
}

/* Reads the suppression lookup that went along with BEGIN (or, when it could not,
 * does it now): 1 when every recipient is listed, the job then failed at once, without
 * a connection. Otherwise the listed ones are left out of the envelope (t->suppressed). */
static int suppressed_all(worker *w, task *t, suppression_query *q, const wr_then *then, int carry)
{
    int found = then->reply ? suppression_read(t, q, then->reply) : suppression_lookup(w, t, q);
    if (found <= 0 || t->n_suppressed < t->n_distinct)
        return 0;
    outcome_all_suppressed(w, t, carry);
    return 1;
}

/* Logs what BEGIN said when it was not "send". */
static void log_not_begun(const task *t, begin_result b)
{
    const char *id = t->job.id;
    if (b == BEGIN_DUPLICATE)
        log_msg(LOG_INFO, id, "duplicate: already sent, acknowledged");
    else if (b == BEGIN_CANCELLED)
        log_msg(LOG_INFO, id, "cancelled: acknowledged without sending");
    else if (b == BEGIN_INFLIGHT)
        log_msg(LOG_WARN, id, "a second copy of a job in flight on another take: dropped");
    else if (b == BEGIN_LOST)
        log_msg(LOG_WARN, id,
                "lost: this consumer no longer holds the job (recovered by another "
                "consumer while this one was stalled); dropped");
}

int prepare_task(worker *w, task *t, int carry)
{
    mr_error err = MR_ERROR_INIT;
    char reason[MR_ERROR_MAX + 16], id[JOB_ID_MAX + 1];
    if (job_decode(t->raw, t->len, &t->job, &err) != 0) {
        job_peek_id(t->raw, t->len, id);
        snprintf(reason, sizeof reason, "invalid job: %s", err.msg);
        reject(w, t, id, reason, carry);
        return 0;
    }
    if (sig_verify_job_with(&t->job, &w->cfg->ring, w->cfg->accept_mask, &w->scratch, &w->mac,
                            &err) != 0) {
        reject(w, t, t->job.id, err.msg, carry);
        return 0;
    }
    if (settled_by_time(w, t, clock_now_ms(), carry))
        return 0;
    suppression_query query, *q = &query; /* ~33 KB of the worker's 256 KB stack */
    wr_then then = {0, NULL, NULL};
    if (suppression_query_of(t, q) == 0 && q->n > 0) {
        then.argc = q->n + 1;
        then.argv = q->argv;
    } else {
        q->n = 0;
    }
    begin_result b = take_begin(w, t, &then);
    int go = 0;
    if (b != BEGIN_SENDING)
        log_not_begun(t, b);
    else if (!suppressed_all(w, t, q, &then, carry)) {
        if (t->attempt == 1) /* the wait for the first attempt */
            metrics_queue_time(t->lane, t->job.created_ms, t->job.send_at_ms, t->begun_ms);
        go = build(w, t, carry) == 0;
    }
    freeReplyObject(then.reply);
    return go;
}
