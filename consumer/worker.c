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

#include "lanes.h"
#include "log.h"
#include "outcome.h"
#include "prepare.h"
#include "relay.h"
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
    buf_reset(&t->suppressed);
    t->n_suppressed = t->n_distinct = 0;
    memset(&t->txn, 0, sizeof t->txn);
    atomic_store(&w->held[t->slot], 0);
}

/* Whether the next take must first pass its relay's gate: a rate (configured, or set
 * by a throttling relay), a cap on connections, or a circuit not closed. */
static int gated(const worker *w)
{
    const consumer_config *cfg = w->cfg;
    if (cfg->rate_max > 0 || cfg->relay_connections > 0)
        return 1;
    for (int r = 0; r < cfg->n_relays; r++)
        if (atomic_load(&cfg->relays[r].circuit) != CIRCUIT_CLOSED ||
            atomic_load(&cfg->relays[r].rate_milli) != 0)
            return 1;
    return 0;
}

/* The relay for the next job, with its connection slot and a permit of its rate: its
 * index, or -1 when not now (*wait: how long waiting is worth). */
static int pass_gate(worker *w, int64_t *wait)
{
    *wait = 250;
    int r = relay_choose(w);
    if (r < 0 || !relay_slot_acquire(w, r) || !relay_permit(w, r, wait))
        return -1;
    return r;
}

/* The gate for a job already in hand (a blocking take, or one a FINISH carried): waits
 * until it passes; -1 when the shutdown began meanwhile. */
static int gate_in_hand(worker *w)
{
    int64_t wait = 0;
    int r;
    while ((r = pass_gate(w, &wait)) < 0 && !wr_stopping(w))
        wr_sleep_ms(wait < 1000 ? wait : 1000);
    return r;
}

/* How many of the worker's sessions hold a connection, for the housekeeper. */
static void count_connections(worker *w)
{
    int n = 0;
    for (int r = 0; r < w->cfg->n_relays; r++)
        n += smtp_session_connected(w->sessions[r]);
    atomic_store(&w->connections, n);
}

/* Nothing to do: connection slots go back, so that busy consumers may use them. */
static void go_idle(worker *w)
{
    for (int r = 0; r < w->cfg->n_relays && w->cfg->relay_connections > 0; r++)
        relay_slot_release(w, r);
    count_connections(w);
}

/*
 * A job taken: without a gate (no rate, no cap, every circuit closed) the take comes
 * first and may block, and the relay is the first. With one, the gate comes first, so
 * that the relay's rate and connections go to whatever is most urgent at that moment:
 * then a take that does not block; and when it finds nothing, the permit is given back
 * and (nothing else in hand) the worker blocks on its lane, gating the job it gets.
 * Returns the relay, or -1 when no job was taken.
 */
static int take_gated(worker *w, task *t, take_mode mode)
{
    int64_t wait = 0;
    if (!w->next && gated(w)) {
        int r = pass_gate(w, &wait);
        if (r < 0) {
            if (mode == TAKE_BLOCK)
                wr_sleep_ms(wait < 1000 ? wait : 1000);
            return -1;
        }
        if (take_job(w, t, TAKE_POLL))
            return r;
        relay_refund(w, r);
        if (mode == TAKE_POLL)
            return -1;
        go_idle(w);
    }
    if (!take_job(w, t, mode))
        return -1;
    int r = gated(w) ? gate_in_hand(w) : relay_choose(w);
    if (r < 0)
        task_release(w, t); /* stopping: the job stays in the processing list, which the
                               shutdown returns to pending */
    return r;
}

/* Takes and prepares the next job into t; 1 when its transaction is ready to send.
 * carry: what the FINISH of a job settled here carries (see prepare_task). */
static int next_job(worker *w, task *t, take_mode mode, int carry)
{
    int r = take_gated(w, t, mode);
    if (r < 0)
        return 0;
    t->relay = r;
    if (prepare_task(w, t, carry))
        return 1;
    task_release(w, t);
    return 0;
}

/*
 * The take a FINISH may carry (wanted: TAKE_POLL or TAKE_BLOCK): none under a rate (its
 * permit must come first), a non-blocking one when several lanes are served (the next
 * turn visits them all), from the lane a take would visit first.
 */
static int carry_for(worker *w, int wanted)
{
    consumer_config *cfg = w->cfg;
    int order[LANE_MAX];
    if (!wanted || gated(w) || lanes_order(cfg, wr_random(w), order) == 0)
        return 0;
    w->carry_lane = order[0];
    return cfg->n_lanes > 1 ? TAKE_POLL : wanted;
}

/* What a finished transaction tells about its relay, then its outcome. */
static void finish_txn(worker *w, task *t, int carry)
{
    relay *rl = &w->cfg->relays[t->relay];
    relay_verdict v = relay_verdict_of(&t->txn);
    if (t->txn.verdict != SMTP_ABORTED && v != RELAY_UNREACHABLE)
        atomic_fetch_add(&rl->offered, 1);
    relay_observe(w, t->relay, v, t->txn.reply[0] ? t->txn.reply : t->txn.error);
    outcome_of_txn(w, t, carry);
    task_release(w, t);
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
    int carry = carry_for(w, wr_stopping(w) ? 0 : ready ? TAKE_POLL : TAKE_BLOCK);
    if (prev)
        finish_txn(w, prev, next && !ready ? 0 : carry);
    if (next && !ready)
        finish_txn(w, next, carry);
    return ready;
}

/* A job whose lease lapsed while this consumer was stalled: another consumer holds it
 * now, so its content is not sent; the connection is closed mid-transaction. */
static void drop_lost(worker *w, task *t)
{
    log_msg(LOG_WARN, t->job.id,
            "lost: the lease lapsed while this consumer was stalled and another consumer "
            "holds the job now; not sent, dropped");
    smtp_txn_cancel(w->sessions[t->relay], &t->txn);
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
        if (cur && ready && cur->relay != nxt->relay) {
            /* the next job goes to another relay: cur's content goes alone */
            smtp_exchange(w->sessions[cur->relay], &cur->txn, NULL);
            finish_txn(w, cur, 0);
            cur = NULL;
        }
        if (!cur && !ready)
            continue;
        smtp_exchange(w->sessions[cur ? cur->relay : nxt->relay], cur ? &cur->txn : NULL,
                      ready ? &nxt->txn : NULL);
        count_connections(w);
        cur = settle(w, cur, ready ? nxt : NULL);
    }
    go_idle(w);
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
    snprintf(w->who, sizeof w->who, "%s:%d", cfg->id, index);
    for (int r = 0; r < cfg->n_relays; r++) {
        w->sessions[r] = smtp_session_new(&cfg->relays[r].smtp, &err);
        if (!w->sessions[r]) {
            log_msg(LOG_ERROR, NULL, "worker %d: %s", index, err.msg);
            return -1;
        }
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
    buf_free(&t->suppressed);
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
    for (int r = 0; r < RELAY_MAX; r++) {
        smtp_session_free(w->sessions[r]);
        w->sessions[r] = NULL;
    }
    buf_free(&w->scratch);
    buf_free(&w->dead_entry);
    buf_free(&w->results);
    sig_mac_free(&w->mac);
}
