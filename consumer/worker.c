/*
 * worker: one consumer thread's life (see worker.h).
 *
 * A job goes: the take (take.c); decode and verify (failure: rejected); freshness
 * (older than --max-lifetime, or created further in the future than
 * --max-clock-skew: rejected; past expires_at: failed; taken before its send_at:
 * deferred); BEGIN, which takes the job's lease (take.c); the MIME message built into
 * the worker's reused buffer; the send over the worker's SMTP session; FINISH under the
 * lease (outcome.c). When Redis is lost the worker reconnects with capped, jittered
 * backoff and retries the step it was in, so an outcome is never dropped while the
 * process lives; if it dies, the job is still in its processing list.
 */
#define _POSIX_C_SOURCE 200809L
#include "worker.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "mime.h"
#include "outcome.h"
#include "state.h"
#include "take.h"
#include "worker_redis.h"

int64_t worker_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, uint32_t random)
{
    int64_t delay = base_ms;
    for (int i = 1; i < attempt && delay < max_ms; i++)
        delay *= 2;
    if (delay > max_ms)
        delay = max_ms;
    /* factor in [0.8, 1.2]: 0.8 + 0.4 * random / 2^32 */
    double factor = 0.8 + 0.4 * ((double)random / 4294967296.0);
    return (int64_t)((double)delay * factor);
}

uint64_t worker_job_hash(const char *raw, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)raw[i];
        h *= 0x100000001b3ULL;
    }
    return h ? h : 1;
}

/* Fills the envelope recipients (bare addresses) from to, cc and bcc into w->rcpt.
 * Returns how many, or -1 when memory ran out. */
static long envelope(worker *w)
{
    const job *j = &w->cur.job;
    const char *const *lists[3] = {j->to, j->cc, j->bcc};
    size_t counts[3] = {j->n_to, j->n_cc, j->n_bcc}, offsets[JOB_MAX_RCPT] = {0};
    size_t n = 0;
    buf_reset(&w->rcpt);
    for (int l = 0; l < 3; l++) {
        for (size_t i = 0; i < counts[l] && n < JOB_MAX_RCPT; i++) {
            addr_mailbox mb;
            if (addr_parse(lists[l][i], strlen(lists[l][i]), &mb, NULL) != 0)
                continue; /* cannot happen: validated by job_decode */
            offsets[n++] = w->rcpt.len;
            if (buf_append(&w->rcpt, mb.spec, strlen(mb.spec) + 1) != 0)
                return -1;
        }
    }
    for (size_t i = 0; i < n; i++)
        w->rcpt_ptrs[i] = w->rcpt.data + offsets[i];
    return (long)n;
}

/* Decides what a temporary failure becomes: retrying with a due time, or failed when
 * the attempts or the job's lifetime (--max-lifetime from when it was due) are spent. */
static void temporary_failure(worker *w, outcome *o, char *error, size_t cap)
{
    const consumer_config *cfg = w->cfg;
    const job *j = &w->cur.job;
    long attempt = w->cur.attempt;
    char last[MR_ERROR_MAX];
    snprintf(last, sizeof last, "%s", error);
    int64_t due = j->send_at_ms > j->created_ms ? j->send_at_ms : j->created_ms;
    if (attempt >= cfg->max_attempts) {
        o->state = MAILROOM_STATE_FAILED;
        mr_text_printf(error, cap, "attempts exhausted (%ld): %s", attempt, last);
    } else if (o->at_ms - due >= cfg->max_lifetime_ms) {
        o->state = MAILROOM_STATE_FAILED;
        mr_text_printf(error, cap, "lifetime exceeded: %s", last);
    } else {
        o->state = MAILROOM_STATE_RETRYING;
        o->due_ms = o->at_ms + worker_backoff_ms((int)attempt, cfg->backoff_base_ms,
                                                 cfg->backoff_max_ms, wr_random(w));
    }
}

/* Sends the job in hand, whose attempt has begun, and records the outcome. */
static void deliver(worker *w)
{
    mr_error err = MR_ERROR_INIT;
    char error[MR_ERROR_MAX] = "";
    smtp_result res;
    const job *j = &w->cur.job;
    outcome o = {MAILROOM_STATE_FAILED, j->id, 0, "", error, 0, 0};
    long n_rcpt = envelope(w);
    if (mime_build(j, &w->message, &err) != 0 || n_rcpt < 0) {
        snprintf(error, sizeof error, "cannot build the message: %s",
                 n_rcpt < 0 ? "out of memory" : err.msg);
        o.at_ms = clock_now_ms();
        outcome_finish(w, &o);
        return;
    }
    if (!take_lease_holds(w, &w->cur)) {
        log_msg(LOG_WARN, j->id,
                "lost: the lease lapsed while this consumer was stalled and "
                "another consumer holds the job now; not sent, dropped");
        return;
    }
    smtp_send(&w->smtp, j->from, w->rcpt_ptrs, (size_t)n_rcpt, w->message.data, w->message.len,
              &res);
    o.at_ms = clock_now_ms();
    o.smtp_code = res.code;
    o.reply = res.reply;
    snprintf(error, sizeof error, "%s", res.error);
    if (res.outcome == SMTP_ABORTED) {
        log_msg(LOG_WARN, j->id, "send abandoned by shutdown; the job goes back to pending");
        return;
    }
    if (res.outcome == SMTP_SENT)
        o.state = MAILROOM_STATE_SENT;
    else if (res.outcome == SMTP_TEMPORARY)
        temporary_failure(w, &o, error, sizeof error);
    outcome_finish(w, &o);
}

/*
 * Freshness, checked at every take (the first included): a job older than its
 * lifetime (from its created_at, or its send_at when later) is rejected, and so is one
 * created further in the future than the allowed clock skew: together with a status
 * TTL above the lifetime (checked at start) this bounds replays (docs/reliability.md).
 * A job past its expires_at fails; one taken before its send_at is deferred. Returns
 * 1 when the job was settled here.
 */
static int settled_by_time(worker *w, int64_t now)
{
    const consumer_config *cfg = w->cfg;
    const job *j = &w->cur.job;
    char why[256];
    int64_t due = j->send_at_ms > j->created_ms ? j->send_at_ms : j->created_ms;
    if (j->created_ms > now + cfg->max_clock_skew_ms) {
        snprintf(why, sizeof why,
                 "created_at %s is %lld s in the future (more than the "
                 "allowed clock skew of %lld s)",
                 j->created_at, (long long)((j->created_ms - now) / 1000),
                 (long long)(cfg->max_clock_skew_ms / 1000));
    } else if (now - due > cfg->max_lifetime_ms) {
        snprintf(why, sizeof why,
                 "too old: due at %s, more than --max-lifetime (%lld s) ago "
                 "(a replay, or a backlog older than the lifetime)",
                 j->send_at_ms > j->created_ms ? j->send_at : j->created_at,
                 (long long)(cfg->max_lifetime_ms / 1000));
    } else if (j->expires_ms && now >= j->expires_ms) {
        outcome o = {MAILROOM_STATE_FAILED, j->id, 0, "", "expired", 0, now};
        outcome_finish(w, &o);
        return 1;
    } else if (j->send_at_ms > now + 1000) {
        /* pushed onto pending before its time by a producer that did not schedule it */
        outcome o = {MAILROOM_STATE_QUEUED, j->id, 0, "", "", j->send_at_ms, now};
        outcome_finish(w, &o);
        return 1;
    } else {
        return 0;
    }
    outcome_reject(w, j->id, why);
    return 1;
}

/* Logs what BEGIN said when it was not "send". */
static void log_not_begun(const worker *w, begin_result b)
{
    const char *id = w->cur.job.id;
    if (b == BEGIN_DUPLICATE)
        log_msg(LOG_INFO, id, "duplicate: already sent, acknowledged");
    else if (b == BEGIN_INFLIGHT)
        log_msg(LOG_WARN, id, "a second copy of a job in flight on another take: dropped");
    else if (b == BEGIN_LOST)
        log_msg(LOG_WARN, id,
                "lost: this consumer no longer holds the job (recovered by "
                "another consumer while this one was stalled); dropped");
}

/* Handles the job in w->cur: verify, check its times, begin, deliver. */
static void handle(worker *w)
{
    task *t = &w->cur;
    mr_error err = MR_ERROR_INIT;
    char reason[MR_ERROR_MAX + 16], id[JOB_ID_MAX + 1];
    if (job_decode(t->raw, t->len, &t->job, &err) != 0) {
        job_peek_id(t->raw, t->len, id);
        snprintf(reason, sizeof reason, "invalid job: %s", err.msg);
        outcome_reject(w, id, reason);
        return;
    }
    if (sig_verify_job_with(&t->job, &w->cfg->ring, w->cfg->accept_mask, &w->scratch, &w->mac,
                            &err) != 0) {
        outcome_reject(w, t->job.id, err.msg);
        return;
    }
    if (settled_by_time(w, clock_now_ms()))
        return;
    begin_result b = take_begin(w);
    if (b == BEGIN_SENDING)
        deliver(w);
    else
        log_not_begun(w, b);
}

/* Releases the job in hand. */
static void task_clear(worker *w)
{
    job_clear(&w->cur.job);
    freeReplyObject(w->cur.reply);
    memset(&w->cur, 0, sizeof w->cur);
    atomic_store(&w->held[0], 0);
}

int worker_init(worker *w, int index, consumer_config *cfg)
{
    memset(w, 0, sizeof *w);
    w->index = index;
    w->cfg = cfg;
    if (RAND_bytes((unsigned char *)&w->rng, sizeof w->rng) != 1 || w->rng == 0)
        w->rng = 0x9E3779B9u ^ (unsigned)index;
    if (smtp_session_init(&w->smtp, &cfg->smtp) != 0)
        return -1;
    return 0;
}

void *worker_main(void *arg)
{
    worker *w = arg;
    /* a job already taken along with the last FINISH is handled even when stopping */
    while (!wr_stopping(w) || w->next) {
        if (!take_job(w))
            continue;
        handle(w);
        task_clear(w);
    }
    atomic_fetch_sub(&w->cfg->running, 1);
    return NULL;
}

void worker_free(worker *w)
{
    if (!w)
        return;
    if (w->redis)
        redisFree(w->redis);
    w->redis = NULL;
    freeReplyObject(w->next);
    w->next = NULL;
    task_clear(w);
    smtp_session_free(&w->smtp);
    buf_free(&w->message);
    buf_free(&w->scratch);
    buf_free(&w->dead_entry);
    buf_free(&w->rcpt);
    sig_mac_free(&w->mac);
}
