/*
 * mirror: what the housekeeper reads and writes once a second besides the heartbeat,
 * in one pipelined round trip: each relay's shared state (circuit, failures, next
 * probe, current rate) into cfg->relays[], the registry of relays, the renewal of
 * this consumer's connection slots, each lane's pause flag and this consumer's info
 * hash (docs/redis.md); also each relay's recent offered rate here, from the workers'
 * counts, and this consumer's share of it in the relay's per-second buckets.
 */
#ifndef MAILROOM_MIRROR_H
#define MAILROOM_MIRROR_H

#include "housekeeper.h"

#define MIRROR_INFO_TTL_MS 10000 /* the info hash outlives its last write this long */

/* One refresh. 0, or -1 when Redis failed (the connection is dropped). */
int mirror_refresh(housekeeper *h);

#endif
