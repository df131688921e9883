/* mirror: see mirror.h. */
#define _POSIX_C_SOURCE 200809L
#include "mirror.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "lanes.h"
#include "log.h"
#include "mailroom_version.h"
#include "metrics.h"

/* Each relay's recent offered rate here, over the last 10 seconds, from the workers'
 * counts (relay_rate.lua starts an adaptive rate from the relay's offered rate across
 * consumers). */
static void note_offered_rates(housekeeper *h)
{
    consumer_config *cfg = h->cfg;
    unsigned at = h->ticks++ % 10, oldest = (at + 1) % 10;
    for (int r = 0; r < cfg->n_relays; r++) {
        int64_t offered = atomic_load(&cfg->relays[r].offered);
        h->offered_ring[r][at] = offered;
        int64_t span = h->ticks >= 10 ? 10 : (int64_t)h->ticks;
        int64_t base = h->ticks >= 10 ? h->offered_ring[r][oldest] : h->offered_ring[r][0];
        atomic_store(&cfg->relays[r].seen_milli, (offered - base) * 1000 / span);
    }
}

/* What relay r was offered here since the refresh before (the ring's last two). */
static long long offered_since_last(const housekeeper *h, int r)
{
    unsigned last = (h->ticks + 9) % 10, before = (h->ticks + 8) % 10;
    return (long long)(h->offered_ring[r][last] - (h->ticks > 1 ? h->offered_ring[r][before] : 0));
}

/* Appends the relays' reads and writes: HMGET of the state, the registry, and what
 * this consumer offered the relay in the last second into the relay's bucket of this
 * second (offered:<second mod 8>, shared by every consumer; the bucket four seconds
 * ahead is emptied for its turn: relay_rate.lua reads the last three). */
static void append_relays(housekeeper *h, long long now)
{
    const consumer_config *cfg = h->cfg;
    long long second = now / 1000;
    for (int r = 0; r < cfg->n_relays; r++) {
        const relay *rl = &cfg->relays[r];
        redisAppendCommand(h->redis, "HMGET %s circuit failures probe_at rate", rl->key);
        redisAppendCommand(h->redis, "ZADD %s %lld %s", KEYS_RELAYS, now, rl->name);
        redisAppendCommand(h->redis, "HINCRBY %s offered:%lld %lld", rl->key, second % 8,
                           offered_since_last(h, r));
        redisAppendCommand(h->redis, "HDEL %s offered:%lld", rl->key, (second + 4) % 8);
    }
}

/* Appends the renewal of every connection slot a worker holds; returns how many. */
static int append_slots(housekeeper *h, long long now)
{
    const consumer_config *cfg = h->cfg;
    int n = 0;
    for (int i = 0; i < h->n_workers; i++)
        for (int r = 0; r < cfg->n_relays; r++)
            if (atomic_load(&h->workers[i].slot[r])) {
                redisAppendCommand(h->redis, "ZADD %s XX %lld %s", cfg->relays[r].sessions_key,
                                   now + (long long)cfg->dead_after_ms, h->workers[i].who);
                n++;
            }
    return n;
}

/* The SMTP connections this process holds open now. */
static long sessions_open(const housekeeper *h)
{
    long n = 0;
    for (int i = 0; i < h->n_workers; i++)
        n += atomic_load(&h->workers[i].connections);
    return n;
}

/* Appends per lane: its pause flag, and this consumer's info hash in its queue. */
static void append_lanes(housekeeper *h, const char *started_at)
{
    const consumer_config *cfg = h->cfg;
    char host[256] = "", lanes[LANE_MAX * (KEYS_QUEUE_MAX + 8)], relays[RELAY_MAX * 140] = "";
    gethostname(host, sizeof host - 1);
    lanes_describe(cfg, lanes, sizeof lanes);
    for (int r = 0, at = 0; r < cfg->n_relays; r++)
        at += snprintf(relays + at, sizeof relays - (size_t)at, "%s%s", r ? "," : "",
                       cfg->relays[r].name);
    for (int i = 0; i < cfg->n_lanes; i++) {
        const lane *l = &cfg->lanes[i];
        char info[KEYS_NAME_MAX];
        keys_info(&l->keys, cfg->id, info);
        redisAppendCommand(h->redis, "EXISTS %s", l->keys.paused);
        redisAppendCommand(h->redis,
                           "HSET %s host %s pid %ld version %s started_at %s queues %s relays %s "
                           "concurrency %d sessions %ld",
                           info, host, (long)getpid(), MAILROOM_VERSION_STRING, started_at, lanes,
                           relays, cfg->concurrency, sessions_open(h));
        redisAppendCommand(h->redis, "PEXPIRE %s %d", info, MIRROR_INFO_TTL_MS);
    }
}

/* A relay's state from its HMGET reply, into the mirror. */
static void take_relay(relay *rl, const redisReply *r)
{
    static const char *const names[] = {"closed", "half-open", "open"};
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4)
        return;
    const redisReply *const *e = (const redisReply *const *)r->element;
    int circuit = CIRCUIT_CLOSED;
    for (int c = 0; c < 3 && e[0]->type == REDIS_REPLY_STRING; c++)
        if (strcmp(e[0]->str, names[c]) == 0)
            circuit = c;
    atomic_store(&rl->circuit, circuit);
    atomic_store(&rl->failures, e[1]->type == REDIS_REPLY_STRING ? atoi(e[1]->str) : 0);
    atomic_store(&rl->probe_at_ms,
                 e[2]->type == REDIS_REPLY_STRING ? strtoll(e[2]->str, NULL, 10) : 0);
    atomic_store(&rl->rate_milli, e[3]->type == REDIS_REPLY_STRING
                                      ? (int64_t)(strtod(e[3]->str, NULL) * 1000.0)
                                      : 0);
}

/* A lane's pause flag from its EXISTS reply; the change is logged. */
static void take_pause(lane *l, const redisReply *r)
{
    int paused = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (atomic_exchange(&l->paused, paused) != paused)
        log_msg(LOG_WARN, NULL, "queue %s %s", l->keys.queue,
                paused ? "is paused (mailroom pause): taking nothing from it"
                       : "is resumed: taking from it again");
}

/* The next reply of the pipeline into *r (the one before freed); -1 when the
 * connection failed (*r NULL then). */
static int next_reply(housekeeper *h, redisReply **r)
{
    freeReplyObject(*r);
    *r = NULL;
    return redisGetReply(h->redis, (void **)r) == REDIS_OK && *r ? 0 : -1;
}

/* Reads the replies in the order they were appended. -1 when the connection failed. */
static int read_replies(housekeeper *h, int slots)
{
    consumer_config *cfg = h->cfg;
    redisReply *r = NULL;
    int rc = 0;
    for (int i = 0; i < cfg->n_relays && rc == 0; i++) {
        if ((rc = next_reply(h, &r)) == 0) {
            take_relay(&cfg->relays[i], r);
            metrics_relay_state(i, (metrics_circuit)atomic_load(&cfg->relays[i].circuit),
                                (double)atomic_load(&cfg->relays[i].rate_milli) / 1000.0);
            /* the registry's ZADD, the bucket's HINCRBY, the next bucket's HDEL */
            for (int k = 0; k < 3 && rc == 0; k++)
                rc = next_reply(h, &r);
        }
    }
    for (int i = 0; i < slots && rc == 0; i++)
        rc = next_reply(h, &r);
    for (int i = 0; i < cfg->n_lanes && rc == 0; i++) {
        if ((rc = next_reply(h, &r)) == 0)
            take_pause(&cfg->lanes[i], r);
        for (int k = 0; k < 2 && rc == 0; k++) /* the info hash's HSET and PEXPIRE */
            rc = next_reply(h, &r);
    }
    freeReplyObject(r);
    return rc;
}

int mirror_refresh(housekeeper *h)
{
    if (!h->started_at[0])
        clock_format_iso(clock_now_ms(), 1, h->started_at);
    note_offered_rates(h);
    if (housekeeping_connect(h) != 0)
        return -1;
    long long now = (long long)clock_now_ms();
    append_relays(h, now);
    int slots = append_slots(h, now);
    append_lanes(h, h->started_at);
    if (read_replies(h, slots) == 0)
        return 0;
    redisFree(h->redis);
    h->redis = NULL;
    return -1;
}
