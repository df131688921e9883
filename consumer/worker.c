/*
 * worker: one consumer thread's life (see worker.h).
 *
 * The loop keeps at most one job whose envelope the relay has accepted (its DATA got
 * 354: cur) and prepares the next one (take, verify, BEGIN, message: nxt). Then one
 * exchange with the SMTP session sends cur's content and nxt's envelope together and
 * reads cur's final reply and nxt's envelope replies: on a warm pipelining connection
 * one round trip per message. cur is recorded (FINISH, which carries the next take in
 * the same write), and nxt becomes cur. While cur waits, the next take does not block
 * (LMOVE); with nothing in hand, it blocks (BLMOVE) for --block-timeout.
 *
 * Before cur's content goes, its lease is checked when a stall may have let it lapse
 * (take_lease_holds): a job another consumer recovered meanwhile is not sent twice.
 * When Redis is lost the worker reconnects with capped, jittered backoff and retries
 * the step it was in, so an outcome is never dropped while the process lives; if it
 * dies, the job is still in its processing list.
 */
#define _POSIX_C_SOURCE 200809L
#include "worker.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "outcome.h"
#include "prepare.h"
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

void task_release(worker *w, task *t)
{
    job_clear(&t->job);
    freeReplyObject(t->reply);
    t->reply = NULL;
    t->raw = NULL;
    t->len = 0;
    t->token[0] = '\0';
    t->attempt = t->delivered_before = 0;
    t->begun_ms = 0;
    memset(&t->txn, 0, sizeof t->txn);
    atomic_store(&w->held[t->slot], 0);
}

/* Takes and prepares the next job into t; 1 when its transaction is ready to send.
 * carry: what the FINISH of a job settled here carries (see prepare_task). */
static int next_job(worker *w, task *t, take_mode mode, int carry)
{
    if (!take_job(w, t, mode))
        return 0;
    if (prepare_task(w, t, carry))
        return 1;
    task_release(w, t);
    return 0;
}

/*
 * After an exchange: records prev (DONE), and next when it is DONE already (refused
 * before its content); returns next when its content goes with the following exchange,
 * else NULL. The last FINISH carries the next take: one that does not block while a
 * job's content waits, else a blocking one (none while stopping).
 */
static task *settle(worker *w, task *prev, task *next)
{
    task *ready = next && next->txn.state == SMTP_TXN_DATA_READY ? next : NULL;
    int carry = wr_stopping(w) ? 0 : ready ? TAKE_POLL : TAKE_BLOCK;
    if (prev) {
        outcome_of_txn(w, prev, next && !ready ? 0 : carry);
        task_release(w, prev);
    }
    if (next && !ready) {
        outcome_of_txn(w, next, carry);
        task_release(w, next);
    }
    return ready;
}

/* A job whose lease lapsed while this consumer was stalled: another consumer holds it
 * now, so its content is not sent; the connection is closed mid-transaction. */
static void drop_lost(worker *w, task *t)
{
    log_msg(LOG_WARN, t->job.id,
            "lost: the lease lapsed while this consumer was stalled and another consumer "
            "holds the job now; not sent, dropped");
    smtp_txn_cancel(w->smtp, &t->txn);
    task_release(w, t);
}

void *worker_main(void *arg)
{
    worker *w = arg;
    task *cur = NULL; /* its envelope accepted: its content goes with the next exchange */
    /* a job in hand, or one taken along with the last FINISH, is finished even when
     * stopping */
    while (!wr_stopping(w) || w->next || cur) {
        task *nxt = cur == &w->tasks[0] ? &w->tasks[1] : &w->tasks[0];
        int ready = (!wr_stopping(w) || w->next) &&
                    next_job(w, nxt, cur ? TAKE_POLL : TAKE_BLOCK, cur ? TAKE_POLL : TAKE_BLOCK);
        if (cur && !take_lease_holds(w, cur)) {
            drop_lost(w, cur);
            cur = NULL;
        }
        if (!cur && !ready)
            continue;
        smtp_exchange(w->smtp, cur ? &cur->txn : NULL, ready ? &nxt->txn : NULL);
        cur = settle(w, cur, ready ? nxt : NULL);
    }
    atomic_fetch_sub(&w->cfg->running, 1);
    return NULL;
}

int worker_init(worker *w, int index, consumer_config *cfg)
{
    mr_error err = MR_ERROR_INIT;
    memset(w, 0, sizeof *w);
    w->index = index;
    w->cfg = cfg;
    w->tasks[0].slot = 0;
    w->tasks[1].slot = 1;
    if (RAND_bytes((unsigned char *)&w->rng, sizeof w->rng) != 1 || w->rng == 0)
        w->rng = 0x9E3779B9u ^ (unsigned)index;
    w->smtp = smtp_session_new(&cfg->smtp, &err);
    if (!w->smtp) {
        log_msg(LOG_ERROR, NULL, "worker %d: %s", index, err.msg);
        return -1;
    }
    return 0;
}

/* Frees a task's job and buffers. */
static void task_free(worker *w, task *t)
{
    task_release(w, t);
    buf_free(&t->message);
    buf_free(&t->owed);
    buf_free(&t->rcpt);
    free(t->rcpt_replies);
    t->rcpt_replies = NULL;
    t->rcpt_cap = 0;
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
    task_free(w, &w->tasks[0]);
    task_free(w, &w->tasks[1]);
    smtp_session_free(w->smtp);
    w->smtp = NULL;
    buf_free(&w->scratch);
    buf_free(&w->dead_entry);
    buf_free(&w->results);
    sig_mac_free(&w->mac);
}
