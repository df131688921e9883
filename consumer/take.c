/* take: see take.h. */
#include "take.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "lanes.h"
#include "log.h"
#include "worker_redis.h"

void take_toobig_args(const consumer_config *cfg, const lane *l, toobig_args *a, char max[24],
                      char now_iso[CLOCK_ISO_MAX])
{
    snprintf(max, 24, "%d", JOB_MAX_BYTES);
    clock_format_iso(clock_now_ms(), 1, now_iso);
    a->v[TOOBIG_KEY_processing] = l->processing;
    a->v[TOOBIG_KEY_dead] = l->keys.dead;
    a->v[TOOBIG_KEY_stats] = l->keys.stats;
    a->v[TOOBIG_ARG_max_bytes] = max;
    a->v[TOOBIG_ARG_keep_bytes] = max;
    a->v[TOOBIG_ARG_consumer] = cfg->id;
    a->v[TOOBIG_ARG_queue] = l->keys.queue;
    a->v[TOOBIG_ARG_channel] = l->keys.status;
    a->v[TOOBIG_ARG_job_prefix] = l->keys.job_prefix;
    a->v[TOOBIG_ARG_now] = now_iso;
    a->v[TOOBIG_ARG_ttl] = cfg->ttl_arg;
    a->v[TOOBIG_ARG_dead_max] = cfg->dead_max_arg;
}

/* The toobig script over this consumer's processing list of a lane: its entries over
 * the size limit are dead-listed (first 256 KiB only) and their records closed as
 * rejected. */
static void reject_oversized(worker *w, int li, long long announced)
{
    char max[24], now_iso[CLOCK_ISO_MAX];
    toobig_args a = {0};
    take_toobig_args(w->cfg, &w->cfg->lanes[li], &a, max, now_iso);
    redisReply *r = wr_run(w, SCRIPT_TOOBIG, a.v, a.len, NULL, 0);
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
        log_msg(LOG_WARN, NULL,
                "rejected an entry of %lld bytes (over the limit of %d) without reading it; "
                "the dead list keeps its first %d bytes",
                announced, JOB_MAX_BYTES, JOB_MAX_BYTES);
    freeReplyObject(r);
}

/* Puts a taken reply into t and marks it held. */
static int hold(worker *w, task *t, redisReply *r, int li)
{
    t->lane = li;
    t->reply = r;
    t->raw = r->str;
    t->len = r->len;
    t->token[0] = '\0';
    atomic_store(&w->held[t->slot], worker_job_hash(r->str, r->len));
    return 1;
}

/* A take of our own (BLMOVE or LMOVE) from one lane, bounded. Returns the reply
 * holding a job, or NULL (*too_big set when it met an oversized entry). */
static redisReply *own_take(worker *w, int li, take_mode mode, long long *too_big)
{
    redisReply *r = NULL;
    const lane *l = &w->cfg->lanes[li];
    const char **argv =
        mode == TAKE_BLOCK ? (const char **)l->take_argv : (const char **)l->poll_argv;
    int argc = mode == TAKE_BLOCK ? TAKE_ARGC : POLL_ARGC;
    if (redisAppendCommandArgv(w->redis, argc, argv, NULL) != REDIS_OK)
        return NULL;
    rconn_read_result rr = rconn_read_bounded(w->redis, JOB_MAX_BYTES, &r, too_big);
    if (rr == RCONN_READ_TOOBIG) {
        redisFree(w->redis); /* the oversized entry was left unread on it */
        w->redis = NULL;
        return NULL;
    }
    if (rr != RCONN_READ_OK || rconn_transient_error(r)) {
        wr_drop(w, r ? r->str : argv[0]);
        if (r)
            wr_sleep_ms(RECONNECT_MIN_MS);
        freeReplyObject(r);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        wr_log_refusal("the take", NULL, r->str);
        freeReplyObject(r);
        wr_pause_after_refusal(w, &w->take_delay, 0);
        return NULL;
    }
    w->take_delay = 0;
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* One take from one lane: 1 with the job in t; 0 when none came (an oversized entry
 * met is rejected here, and *stop set: the connection went with it). */
static int take_from(worker *w, task *t, int li, take_mode mode, int *stop)
{
    long long too_big = -1;
    redisReply *r = own_take(w, li, mode, &too_big);
    if (r)
        return hold(w, t, r, li);
    if (too_big >= 0)
        reject_oversized(w, li, too_big);
    *stop = too_big >= 0 || !w->redis;
    return 0;
}

/* Nothing to take from: every lane is paused. Waits as a blocking take would. */
static int all_paused(worker *w, take_mode mode)
{
    if (mode == TAKE_BLOCK)
        wr_sleep_ms(w->cfg->block_timeout_ms < 1000 ? w->cfg->block_timeout_ms : 1000);
    return 0;
}

int take_job(worker *w, task *t, take_mode mode)
{
    consumer_config *cfg = w->cfg;
    int stop = 0;
    if (w->next_too_big) {
        long long too_big = w->next_too_big;
        w->next_too_big = 0;
        reject_oversized(w, w->next_lane, too_big);
        return 0;
    }
    if (w->next) {
        redisReply *r = w->next;
        w->next = NULL;
        atomic_store(&w->held[2], 0);
        return hold(w, t, r, w->next_lane);
    }
    if (w->redis && w->epoch != atomic_load(&cfg->master_epoch)) {
        redisFree(w->redis); /* Sentinel named a new master: go there */
        w->redis = NULL;
    }
    if (!w->redis && wr_connect(w, 0) != 0)
        return 0;
    int order[LANE_MAX], n = lanes_order(cfg, wr_random(w), order);
    if (n == 0)
        return all_paused(w, mode);
    /* every lane in order without blocking, unless one lane alone may just block */
    if (mode == TAKE_POLL || cfg->n_lanes > 1)
        for (int k = 0; k < n && !stop; k++)
            if (take_from(w, t, order[k], TAKE_POLL, &stop))
                return 1;
    if (mode == TAKE_POLL || stop)
        return 0;
    int watch = lanes_watch(cfg, w->index, w->turn++);
    return watch >= 0 && take_from(w, t, watch, TAKE_BLOCK, &stop);
}

/* Reads BEGIN's answer {what, attempts[, owed, delivered]} into t. */
static begin_result begin_reply(const redisReply *r, task *t)
{
    static const char *const names[] = {"sending", "duplicate", "inflight", "lost", "cancelled"};
    begin_result res = BEGIN_FAILED;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_INTEGER)
        return BEGIN_FAILED;
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(r->element[0]->str, names[i]) == 0)
            res = (begin_result)i;
    t->attempt = (long)r->element[1]->integer;
    buf_reset(&t->owed);
    t->delivered_before = 0;
    if (res == BEGIN_SENDING && r->elements == 4 && r->element[2]->type == REDIS_REPLY_STRING &&
        r->element[3]->type == REDIS_REPLY_INTEGER) {
        if (buf_append(&t->owed, r->element[2]->str, r->element[2]->len) != 0)
            return BEGIN_FAILED;
        t->delivered_before = (long)r->element[3]->integer;
    }
    return res;
}

begin_result take_begin(worker *w, task *t, wr_then *then)
{
    const consumer_config *cfg = w->cfg;
    const lane *l = &cfg->lanes[t->lane];
    char now_iso[CLOCK_ISO_MAX], job_key[KEYS_NAME_MAX];
    clock_format_iso(clock_now_ms(), 1, now_iso);
    keys_job(&l->keys, t->job.id, job_key);
    snprintf(t->token, sizeof t->token, "%s:%d:%llu", cfg->id, w->index, ++w->takes);
    begin_args a = {0};
    a.v[BEGIN_KEY_job] = job_key;
    a.v[BEGIN_KEY_processing] = l->processing;
    a.v[BEGIN_KEY_consumers] = l->keys.consumers;
    a.v[BEGIN_ARG_raw] = t->raw;
    a.len[BEGIN_ARG_raw] = t->len;
    a.v[BEGIN_ARG_now] = now_iso;
    a.v[BEGIN_ARG_consumer] = cfg->id;
    a.v[BEGIN_ARG_queue] = l->keys.queue;
    a.v[BEGIN_ARG_channel] = l->keys.status;
    a.v[BEGIN_ARG_ttl] = cfg->ttl_arg;
    a.v[BEGIN_ARG_id] = t->job.id;
    a.v[BEGIN_ARG_token] = t->token;
    a.v[BEGIN_ARG_dead_after] = cfg->dead_after_arg;
    redisReply *r = then ? wr_run_then(w, SCRIPT_BEGIN, a.v, a.len, t->job.id, then)
                         : wr_run(w, SCRIPT_BEGIN, a.v, a.len, t->job.id, 0);
    if (!r)
        return BEGIN_FAILED;
    begin_result res = begin_reply(r, t);
    t->begun_ms = clock_now_ms();
    t->stall_epoch = atomic_load(&cfg->stall_epoch);
    freeReplyObject(r);
    return res;
}

int take_lease_holds(worker *w, const task *t)
{
    consumer_config *cfg = w->cfg;
    int64_t ok_ms = atomic_load(&cfg->heartbeat_ok_ms);
    if (clock_mono_ms() - ok_ms <= cfg->lease_safe_ms &&
        atomic_load(&cfg->stall_epoch) == t->stall_epoch)
        return 1;
    char job_key[KEYS_NAME_MAX];
    keys_job(&cfg->lanes[t->lane].keys, t->job.id, job_key);
    lease_args a = {0};
    a.v[LEASE_KEY_job] = job_key;
    a.v[LEASE_KEY_processing] = cfg->lanes[t->lane].processing;
    a.v[LEASE_ARG_raw] = t->raw;
    a.len[LEASE_ARG_raw] = t->len;
    a.v[LEASE_ARG_token] = t->token;
    redisReply *r = wr_run(w, SCRIPT_LEASE, a.v, a.len, t->job.id, 0);
    int holds = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return holds;
}
