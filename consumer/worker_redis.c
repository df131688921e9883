/* worker_redis: see worker_redis.h. */
#define _POSIX_C_SOURCE 200809L
#include "worker_redis.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

#define WAIT_TIMEOUT_MS 100     /* how long a write waits for a replica (Sentinel only) */
#define CONFIRM_TIMEOUT_MS 1000 /* per connection of a Sentinel confirmation */

int wr_stopping(const worker *w)
{
    return atomic_load(&w->cfg->stopping);
}

int wr_giving_up(const worker *w, int holding_job)
{
    return holding_job ? atomic_load(&w->cfg->hurry) : atomic_load(&w->cfg->stopping);
}

uint32_t wr_random(worker *w)
{
    /* xorshift32: jitter needs spread, not secrecy */
    unsigned x = w->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    w->rng = x;
    return x;
}

void wr_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int wr_connect(worker *w, int holding_job)
{
    int64_t delay = RECONNECT_MIN_MS;
    int logged = 0;
    while (!w->redis) {
        mr_error err = MR_ERROR_INIT;
        w->redis = rconn_connect(&w->cfg->redis, 2000,
                                 w->cfg->block_timeout_ms + w->cfg->redis_timeout_ms, &err);
        if (w->redis) {
            w->epoch = atomic_load(&w->cfg->master_epoch);
            metrics_redis_connected(w->index); /* metrics: counts reconnects */
            break;
        }
        if (!logged++)
            log_msg(LOG_WARN, NULL, "worker %d: %s; retrying", w->index, err.msg);
        if (wr_giving_up(w, holding_job))
            return -1;
        wr_sleep_ms(delay / 2 + (int64_t)(wr_random(w) % (uint32_t)(delay / 2 + 1)));
        delay = delay * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : delay * 2;
    }
    if (logged)
        log_msg(LOG_INFO, NULL, "worker %d: reconnected to Redis", w->index);
    return 0;
}

void wr_drop(worker *w, const char *what)
{
    if (!w->redis)
        return;
    log_msg(LOG_WARN, NULL, "worker %d: Redis %.120s failed: %s", w->index, what,
            w->redis->err ? w->redis->errstr : "server busy; reconnecting");
    redisFree(w->redis);
    w->redis = NULL;
}

int wr_pause_after_refusal(worker *w, int64_t *delay, int holding_job)
{
    *delay = *delay == 0 ? RECONNECT_MIN_MS : *delay * 2;
    if (*delay > RECONNECT_MAX_MS)
        *delay = RECONNECT_MAX_MS;
    int64_t wait = *delay / 2 + (int64_t)(wr_random(w) % (uint32_t)(*delay / 2 + 1));
    for (int64_t slept = 0; slept < wait; slept += 100) {
        if (wr_giving_up(w, holding_job))
            return -1;
        wr_sleep_ms(wait - slept < 100 ? wait - slept : 100);
    }
    return wr_giving_up(w, holding_job) ? -1 : 0;
}

void wr_log_refusal(const char *step, const char *job_id, const char *reply)
{
    char kind[32];
    size_t n = strcspn(reply, " ");
    snprintf(kind, sizeof kind, "%.*s", (int)(n < 31 ? n : 31), reply);
    log_limited(LOG_ERROR, kind, 60000, "Redis refused %s%s%s: %.300s; retrying with backoff", step,
                job_id ? " for job " : "", job_id ? job_id : "", reply);
}

/* Drops the connection and waits a moment before the caller retries. Returns -1 when
 * a hurried shutdown means giving up instead. */
static int retry_later(worker *w)
{
    if (w->redis) {
        redisFree(w->redis);
        w->redis = NULL;
    }
    if (wr_giving_up(w, 1))
        return -1;
    wr_sleep_ms(RECONNECT_MIN_MS);
    return 0;
}

/* Reads the reply of a take sent along with a script: an entry over the size limit is
 * not received (w->next_too_big; the connection is then unusable). */
static int read_carried_take(redisContext *c, void *ctx, redisReply **reply)
{
    worker *w = ctx;
    long long announced = 0;
    rconn_read_result rr = rconn_read_bounded(c, JOB_MAX_BYTES, reply, &announced);
    if (rr == RCONN_READ_TOOBIG) {
        w->next_too_big = announced;
        w->next_lane = w->carry_lane;
    }
    return rr == RCONN_READ_OK ? 0 : -1;
}

/*
 * Keeps the job a take sent along with a script brought (w->next, marked held at once)
 * when the script itself succeeded. Otherwise the script is redone alone, and a job
 * taken meanwhile is left in the processing list, where the housekeeper finds it
 * unheld and returns it to pending (the path of any take reply lost on the way).
 */
static void keep_carried(worker *w, const redisReply *script, redisReply *next)
{
    if (next && next->type == REDIS_REPLY_STRING && script && script->type != REDIS_REPLY_ERROR) {
        w->next = next;
        w->next_lane = w->carry_lane;
        atomic_store(&w->held[2], worker_job_hash(next->str, next->len));
        return;
    }
    if (next && next->type == REDIS_REPLY_STRING)
        log_msg(LOG_WARN, NULL,
                "worker %d: a job taken along with a failed script is left "
                "for the orphan check to return to pending",
                w->index);
    else if (next && next->type == REDIS_REPLY_ERROR)
        wr_log_refusal("the take (BLMOVE)", NULL, next->str);
    freeReplyObject(next);
}

/* Whether a script may carry the next take: not when stopping (take no more jobs),
 * not with Sentinel, where every write is followed by WAIT, and not twice. */
static int may_carry(const worker *w)
{
    return !wr_stopping(w) && w->cfg->redis.n_sentinels == 0 && !w->next && !w->next_too_big;
}

/* One try: the script (and WAIT, or the carried take: 1 BLMOVE, 2 LMOVE, or the
 * command in then, whose reply of an earlier try is dropped first). */
static redisReply *run_once(worker *w, script_id id, const char *const *v, const size_t *len,
                            int carry, wr_then *then, long *acked, int replicas, mr_error *err)
{
    redisReply *r, *next = NULL;
    lane *l = &w->cfg->lanes[w->carry_lane];
    if (then) {
        freeReplyObject(then->reply);
        then->reply = NULL;
    }
    if (carry)
        r = script_run_then(w->redis, id, v, len, carry == 1 ? TAKE_ARGC : POLL_ARGC,
                            carry == 1 ? l->take_argv : l->poll_argv, NULL, read_carried_take, w,
                            &next, err);
    else if (then && then->argc > 0 && w->cfg->redis.n_sentinels == 0)
        r = script_run_then(w->redis, id, v, len, then->argc, then->argv, NULL, NULL, NULL,
                            &then->reply, err);
    else
        r = script_run_acked(w->redis, id, v, len, replicas, WAIT_TIMEOUT_MS, acked, err);
    keep_carried(w, r, next);
    if (r && w->next_too_big) {
        redisFree(w->redis); /* the oversized entry was left unread on it */
        w->redis = NULL;
    } else if (r && carry && !next && w->redis->err) {
        log_msg(LOG_WARN, NULL, "worker %d: the reply after the script was lost: %s", w->index,
                w->redis->errstr); /* the next command reconnects */
    }
    return r;
}

/* wr_run's loop, with the take to carry or the command to send along (then). */
static redisReply *run_until_recorded(worker *w, script_id id, const char *const *v,
                                      const size_t *len, const char *job_id, int carry_take,
                                      wr_then *then)
{
    const consumer_config *cfg = w->cfg;
    int64_t delay = 0;
    for (;;) {
        if (!w->redis && wr_connect(w, 1) != 0)
            return NULL;
        mr_error err = MR_ERROR_INIT;
        long acked = 0;
        int replicas = rconn_replicas_needed(&cfg->redis, &w->guard);
        redisReply *r =
            run_once(w, id, v, len, may_carry(w) ? carry_take : 0, then, &acked, replicas, &err);
        carry_take = 0;
        if (!r && err.rc == MAILROOM_EINVAL) {
            log_msg(LOG_ERROR, job_id, "%s", err.msg);
            return NULL;
        }
        if (!r || rconn_transient_error(r)) {
            wr_drop(w, r ? r->str : script_table[id].name);
            freeReplyObject(r);
            if (retry_later(w) != 0)
                return NULL;
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            wr_log_refusal(script_table[id].name, job_id, r->str);
            freeReplyObject(r);
            if (wr_pause_after_refusal(w, &delay, 1) != 0)
                return NULL;
            continue;
        }
        if (w->redis && !rconn_write_stands(&cfg->redis, &w->guard, w->redis, acked, replicas,
                                            CONFIRM_TIMEOUT_MS)) {
            /* written to a master that a failover is replacing: do it again there */
            freeReplyObject(r);
            log_msg(LOG_WARN, job_id,
                    "no replica acknowledged the write and the sentinels "
                    "name another master; reconnecting");
            if (retry_later(w) != 0)
                return NULL;
            continue;
        }
        return r;
    }
}

redisReply *wr_run(worker *w, script_id id, const char *const *v, const size_t *len,
                   const char *job_id, int carry_take)
{
    return run_until_recorded(w, id, v, len, job_id, carry_take, NULL);
}

redisReply *wr_run_then(worker *w, script_id id, const char *const *v, const size_t *len,
                        const char *job_id, wr_then *then)
{
    then->reply = NULL;
    return run_until_recorded(w, id, v, len, job_id, 0, then);
}

redisReply *wr_try(worker *w, script_id id, const char *const *v, const size_t *len)
{
    if (!w->redis && wr_connect(w, 0) != 0)
        return NULL;
    mr_error err = MR_ERROR_INIT;
    redisReply *r = script_run(w->redis, id, v, len, &err);
    if (!r || rconn_transient_error(r)) {
        wr_drop(w, r ? r->str : script_table[id].name);
        freeReplyObject(r);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        wr_log_refusal(script_table[id].name, NULL, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}
