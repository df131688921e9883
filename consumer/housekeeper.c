/* housekeeper: see housekeeper.h. */
#include "housekeeper.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "script.h"
#include "take.h"

#define PROMOTE_BATCH "500"
/* A consumer recovered as silent stays in the heartbeat set this much longer, its
 * processing list drained at every heartbeat: a take it had blocked in Redis (at most
 * --block-timeout, 60 s) may still land there. */
#define FORGET_AFTER_MS "120000"

/* Heartbeats after an outage: how long the housekeeper's own connection must have
 * been up before it may judge other consumers silent. Live consumers heartbeat every
 * second and reconnect within this. */
#define RECOVERY_GRACE_MS 3000

/* 1 when a reply means the housekeeper's connection failed (none, or a transient
 * error such as LOADING): the reply is freed and the connection dropped, so the next
 * duty reconnects. */
static int housekeeping_failed(housekeeper *h, redisReply *r)
{
    if (r && !rconn_transient_error(r))
        return 0;
    freeReplyObject(r);
    redisFree(h->redis);
    h->redis = NULL;
    return 1;
}

int housekeeping_connect(housekeeper *h)
{
    mr_error err = MR_ERROR_INIT;
    if (!h->redis) {
        h->redis = rconn_connect(&h->cfg->redis, 2000, 5000, &err);
        if (!h->redis)
            return -1;
        h->up_since_ms = clock_now_ms();
        metrics_redis_connected(METRICS_HOUSEKEEPER); /* metrics: counts reconnects */
    }
    return 0;
}

long housekeeping_run(housekeeper *h, script_id id, const char *const *v, const size_t *len)
{
    mr_error err = MR_ERROR_INIT;
    if (housekeeping_connect(h) != 0)
        return -1;
    redisReply *r = script_run(h->redis, id, v, len, &err);
    if (!r && err.rc == MAILROOM_EINVAL) {
        log_msg(LOG_ERROR, NULL, "housekeeping: %s", err.msg);
        return -1;
    }
    if (housekeeping_failed(h, r))
        return -1;
    long n = r->type == REDIS_REPLY_INTEGER ? (long)r->integer : -1;
    if (r->type == REDIS_REPLY_ERROR)
        log_limited(LOG_ERROR, script_table[id].name, 60000,
                    "housekeeping script %s refused: %.300s", script_table[id].name, r->str);
    freeReplyObject(r);
    return n;
}

int housekeeping_follow_master(housekeeper *h)
{
    consumer_config *cfg = h->cfg;
    rconn_endpoint master;
    if (cfg->redis.n_sentinels == 0 || !h->redis ||
        rconn_sentinel_master(&cfg->redis, 1000, &master) != 0 ||
        rconn_connected_to(h->redis, &master))
        return 0;
    log_msg(LOG_WARN, NULL, "Sentinel names a new Redis master %s:%d; moving there", master.host,
            master.port);
    atomic_fetch_add(&cfg->master_epoch, 1);
    redisFree(h->redis);
    h->redis = NULL;
    return 1;
}

long housekeeping_promote(housekeeper *h)
{
    const consumer_config *cfg = h->cfg;
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)clock_now_ms());
    long moved = 0;
    for (int i = 0; i < cfg->n_lanes; i++) {
        promote_args a = {0};
        a.v[PROMOTE_KEY_scheduled] = cfg->lanes[i].keys.scheduled;
        a.v[PROMOTE_KEY_pending] = cfg->lanes[i].keys.pending;
        a.v[PROMOTE_ARG_now_ms] = now;
        a.v[PROMOTE_ARG_batch] = PROMOTE_BATCH;
        long n = housekeeping_run(h, SCRIPT_PROMOTE, a.v, a.len);
        if (n < 0)
            return -1;
        moved += n;
    }
    return moved;
}

/*
 * A heartbeat was written: when the one before lies further back than --dead-after
 * less a margin (the process was stopped, or starved), other consumers may have judged
 * this one silent and recovered its jobs, so the stall epoch is bumped (before the
 * time is stored: a worker that sees the new time also sees the new epoch) and every
 * worker checks its lease before its next end of data.
 */
static void note_heartbeat(consumer_config *cfg)
{
    int64_t now = clock_mono_ms(), prev = atomic_load(&cfg->heartbeat_ok_ms);
    if (prev && now - prev > cfg->lease_safe_ms) {
        atomic_fetch_add(&cfg->stall_epoch, 1);
        log_msg(LOG_WARN, NULL,
                "no heartbeat for %lld ms (the process was stopped or "
                "starved): leases are checked before sending",
                (long long)(now - prev));
    }
    atomic_store(&cfg->heartbeat_ok_ms, now);
}

/* The heartbeat in one lane's queue, and the recovery of its silent consumers. */
static long heartbeat_lane(housekeeper *h, const lane *l, const char *now_iso, int recover)
{
    const consumer_config *cfg = h->cfg;
    char max_bytes[24], processing_prefix[KEYS_NAME_MAX];
    snprintf(max_bytes, sizeof max_bytes, "%d", JOB_MAX_BYTES);
    keys_processing(&l->keys, "", processing_prefix);
    heartbeat_args a = {0};
    a.v[HEARTBEAT_KEY_consumers] = l->keys.consumers;
    a.v[HEARTBEAT_KEY_recovered] = l->keys.recovered;
    a.v[HEARTBEAT_KEY_pending] = l->keys.pending;
    a.v[HEARTBEAT_KEY_stats] = l->keys.stats;
    a.v[HEARTBEAT_ARG_consumer] = cfg->id;
    a.v[HEARTBEAT_ARG_dead_after] = cfg->dead_after_arg;
    a.v[HEARTBEAT_ARG_forget_after] = FORGET_AFTER_MS;
    a.v[HEARTBEAT_ARG_max_bytes] = max_bytes;
    a.v[HEARTBEAT_ARG_recover] = recover ? "1" : "0";
    a.v[HEARTBEAT_ARG_queue] = l->keys.queue;
    a.v[HEARTBEAT_ARG_channel] = l->keys.status;
    a.v[HEARTBEAT_ARG_processing_prefix] = processing_prefix;
    a.v[HEARTBEAT_ARG_job_prefix] = l->keys.job_prefix;
    a.v[HEARTBEAT_ARG_now] = now_iso;
    a.v[HEARTBEAT_ARG_ttl] = cfg->ttl_arg;
    long n = housekeeping_run(h, SCRIPT_HEARTBEAT, a.v, a.len);
    if (n > 0)
        log_msg(LOG_WARN, NULL,
                "recovered %ld jobs of queue %s from consumers silent for over %lld ms", n,
                l->keys.queue, (long long)cfg->dead_after_ms);
    return n;
}

long housekeeping_heartbeat(housekeeper *h)
{
    const consumer_config *cfg = h->cfg;
    char now_iso[CLOCK_ISO_MAX];
    clock_format_iso(clock_now_ms(), 1, now_iso);
    int recover = h->redis && clock_now_ms() - h->up_since_ms >= RECOVERY_GRACE_MS;
    long recovered = 0;
    for (int i = 0; i < cfg->n_lanes; i++) {
        long n = heartbeat_lane(h, &cfg->lanes[i], now_iso, recover);
        if (n < 0)
            return -1;
        recovered += n;
    }
    note_heartbeat(h->cfg);
    return recovered;
}

long housekeeping_reclaim(housekeeper *h, const char *why)
{
    const consumer_config *cfg = h->cfg;
    char max_bytes[24], now_iso[CLOCK_ISO_MAX];
    snprintf(max_bytes, sizeof max_bytes, "%d", JOB_MAX_BYTES);
    clock_format_iso(clock_now_ms(), 1, now_iso);
    long back = 0;
    for (int i = 0; i < cfg->n_lanes; i++) {
        const lane *l = &cfg->lanes[i];
        reclaim_args a = {0};
        a.v[RECLAIM_KEY_processing] = l->processing;
        a.v[RECLAIM_KEY_pending] = l->keys.pending;
        a.v[RECLAIM_KEY_consumers] = l->keys.consumers;
        a.v[RECLAIM_ARG_consumer] = cfg->id;
        a.v[RECLAIM_ARG_why] = why;
        a.v[RECLAIM_ARG_queue] = l->keys.queue;
        a.v[RECLAIM_ARG_channel] = l->keys.status;
        a.v[RECLAIM_ARG_job_prefix] = l->keys.job_prefix;
        a.v[RECLAIM_ARG_now] = now_iso;
        a.v[RECLAIM_ARG_ttl] = cfg->ttl_arg;
        a.v[RECLAIM_ARG_max_bytes] = max_bytes;
        long n = housekeeping_run(h, SCRIPT_RECLAIM, a.v, a.len);
        if (n < 0)
            return -1;
        back += n;
    }
    return back;
}

void housekeeping_close(housekeeper *h)
{
    if (!h)
        return;
    if (h->redis)
        redisFree(h->redis);
    h->redis = NULL;
}

/* Takes one held hash out of the multiset of what the workers hold; 1 when found. */
static int take_held(uint64_t *held, int n, uint64_t hash)
{
    for (int i = 0; i < n; i++) {
        if (held[i] == hash) {
            held[i] = 0;
            return 1;
        }
    }
    return 0;
}

static int64_t suspect_since(const housekeeper *h, int in_lane, uint64_t hash, int64_t now)
{
    for (int i = 0; i < h->n_suspects[in_lane]; i++)
        if (h->suspects[in_lane][i].hash == hash)
            return h->suspects[in_lane][i].first_seen_ms;
    return now;
}

/* Rejects the entries of this consumer's processing list of lane l over the size
 * limit (an oversized entry whose worker was interrupted before it could): the toobig
 * script. Returns how many, or -1 when Redis failed. */
static long housekeeping_toobig(housekeeper *h, const lane *l)
{
    char max[24], now_iso[CLOCK_ISO_MAX];
    toobig_args a = {0};
    take_toobig_args(h->cfg, l, &a, max, now_iso);
    return housekeeping_run(h, SCRIPT_TOOBIG, a.v, a.len);
}

/* Returns one orphan of lane l to pending (REQUEUE): 1, 0 when it was gone already,
 * -1 when Redis failed. */
static long requeue_orphan(housekeeper *h, const lane *l, const redisReply *entry)
{
    const consumer_config *cfg = h->cfg;
    char now_iso[CLOCK_ISO_MAX], max_bytes[24];
    clock_format_iso(clock_now_ms(), 1, now_iso);
    snprintf(max_bytes, sizeof max_bytes, "%d", JOB_MAX_BYTES);
    requeue_args a = {0};
    a.v[REQUEUE_KEY_processing] = l->processing;
    a.v[REQUEUE_KEY_pending] = l->keys.pending;
    a.v[REQUEUE_KEY_stats] = l->keys.stats;
    a.v[REQUEUE_ARG_raw] = entry->str;
    a.len[REQUEUE_ARG_raw] = entry->len;
    a.v[REQUEUE_ARG_consumer] = cfg->id;
    a.v[REQUEUE_ARG_queue] = l->keys.queue;
    a.v[REQUEUE_ARG_channel] = l->keys.status;
    a.v[REQUEUE_ARG_job_prefix] = l->keys.job_prefix;
    a.v[REQUEUE_ARG_now] = now_iso;
    a.v[REQUEUE_ARG_ttl] = cfg->ttl_arg;
    a.v[REQUEUE_ARG_max_bytes] = max_bytes;
    long n = housekeeping_run(h, SCRIPT_REQUEUE, a.v, a.len);
    if (n > 0)
        log_msg(LOG_WARN, NULL, "returned an orphaned job of %s to pending", l->processing);
    return n;
}

/* Gathers what the workers hold now into held; returns how many. */
static int held_now(const housekeeper *h, uint64_t held[WORKER_MAX * WORKER_HELD_MAX])
{
    int n = 0;
    for (int i = 0; i < h->n_workers && i < WORKER_MAX; i++)
        for (int k = 0; k < WORKER_HELD_MAX; k++)
            held[n++] = atomic_load(&h->workers[i].held[k]);
    return n;
}

/* This consumer's processing list of lane l, each entry over the size limit given as
 * "" (the held script): 0 and *out (caller frees), or -1 when Redis failed. */
static int read_processing(housekeeper *h, const lane *l, redisReply **out)
{
    char max_bytes[24];
    snprintf(max_bytes, sizeof max_bytes, "%d", JOB_MAX_BYTES);
    held_args a = {0};
    a.v[HELD_KEY_processing] = l->processing;
    a.v[HELD_ARG_max_bytes] = max_bytes;
    mr_error err = MR_ERROR_INIT;
    redisReply *r = script_run(h->redis, SCRIPT_HELD, a.v, a.len, &err);
    if (housekeeping_failed(h, r))
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -1;
    }
    *out = r;
    return 0;
}

/* The orphan check of one lane's processing list (see housekeeping_orphans). */
static long orphans_of_lane(housekeeper *h, int lane_index)
{
    const consumer_config *cfg = h->cfg;
    const lane *l = &cfg->lanes[lane_index];
    redisReply *r = NULL;
    if (!h->redis || read_processing(h, l, &r) != 0)
        return -1;
    uint64_t held[WORKER_MAX * WORKER_HELD_MAX];
    int n_held = held_now(h, held);
    int64_t now = clock_now_ms();
    int64_t patience = cfg->block_timeout_ms + cfg->redis_timeout_ms + 2000;
    orphan_suspect next[HOUSEKEEPING_MAX_SUSPECTS] = {{0, 0}};
    int n_next = 0;
    long requeued = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        uint64_t hash = e->len == 0 ? 0 : worker_job_hash(e->str, e->len);
        if (hash && take_held(held, n_held, hash))
            continue;
        int64_t since = suspect_since(h, lane_index, hash, now);
        if (now - since > patience) {
            long n = hash ? requeue_orphan(h, l, e) : housekeeping_toobig(h, l);
            if (n < 0)
                break; /* Redis failed: the connection is dropped; next tick again */
            requeued += n;
        } else if (n_next < HOUSEKEEPING_MAX_SUSPECTS)
            next[n_next++] = (orphan_suspect){hash, since};
    }
    memcpy(h->suspects[lane_index], next, sizeof next[0] * (size_t)n_next);
    h->n_suspects[lane_index] = n_next;
    freeReplyObject(r);
    return requeued;
}

long housekeeping_orphans(housekeeper *h)
{
    long requeued = 0;
    for (int i = 0; i < h->cfg->n_lanes; i++) {
        long n = orphans_of_lane(h, i);
        if (n < 0)
            return -1;
        requeued += n;
    }
    return requeued;
}
