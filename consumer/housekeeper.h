/*
 * housekeeper: the consumer's background duties, run once a second by the main
 * thread on its own Redis connection, as asynq keeps one file per duty: the heartbeat
 * and the recovery of consumers gone silent, the promotion of due retries, the
 * orphan check of this consumer's own processing list, and (with Sentinel) following
 * the master. Each duty returns a count, or -1 when Redis failed (the connection is
 * then dropped and the next call reconnects).
 */
#ifndef MAILROOM_HOUSEKEEPER_H
#define MAILROOM_HOUSEKEEPER_H

#include <stdint.h>

#include "clock.h"
#include "config.h"
#include "script.h"
#include "worker.h"

#define HOUSEKEEPING_MAX_SUSPECTS 64

/* An entry of this consumer's processing list that no worker held at first_seen_ms. */
typedef struct orphan_suspect {
    uint64_t hash;
    int64_t first_seen_ms;
} orphan_suspect;

typedef struct housekeeper {
    consumer_config *cfg; /* borrowed; master_epoch is bumped through it */
    redisContext *redis;  /* owned; NULL while disconnected */
    int64_t up_since_ms;  /* when the current connection was made */
    worker *workers;      /* borrowed: the running workers, read for what they hold */
    int n_workers;
    orphan_suspect suspects[LANE_MAX][HOUSEKEEPING_MAX_SUSPECTS]; /* per lane */
    int n_suspects[LANE_MAX];
    int64_t offered_ring[RELAY_MAX][10]; /* each relay's offered count, one a second:
                                            the recent offered rate (mirror.c) */
    unsigned ticks;
    char started_at[CLOCK_ISO_MAX]; /* when this consumer started, RFC 3339 */
} housekeeper;

/* With Sentinel: when the sentinels name a master other than the one this housekeeper
 * is connected to, bumps master_epoch so workers reconnect. Returns 1 when it moved. */
int housekeeping_follow_master(housekeeper *h);
/* Moves due scheduled jobs to pending. */
long housekeeping_promote(housekeeper *h);
/* Heartbeat; and once this connection has been up long enough for live consumers to
 * have heart-beaten after an outage, recovery of consumers that went silent. */
long housekeeping_heartbeat(housekeeper *h);
/* Returns this consumer's processing list to pending, records back to queued with
 * why as their reason, and leaves the consumer set. */
long housekeeping_reclaim(housekeeper *h, const char *why);
/*
 * Finds entries of this consumer's own processing list that no worker holds and
 * returns those still unheld after longer than a BLMOVE reply can take (block and
 * command timeouts): a Redis restart can move a job and lose the reply, and a live
 * consumer is never recovered by others. Returns the number returned to pending.
 */
long housekeeping_orphans(housekeeper *h);
/* Closes the connection. Accepts NULL. */
void housekeeping_close(housekeeper *h);

/* Runs a script on the housekeeper's connection (connecting first when needed); its
 * integer reply, or -1 on failure (an error reply is logged). For mirror.c. */
long housekeeping_run(housekeeper *h, script_id id, const char *const *v, const size_t *len);
/* Connects the housekeeper when it is not: 0, or -1. */
int housekeeping_connect(housekeeper *h);

#endif
