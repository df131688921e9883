/*
 * lanes: the queues one consumer serves (--queue reset,signup,receipts, or with weights
 * reset:6,receipts:1), and the order in which a take visits them. In strict order a
 * lower lane is taken from only when every higher one is empty; by weights each take
 * visits the lanes in a random order drawn by weight (as Sidekiq and asynq do), so a
 * busy low lane still gets its share. A paused queue (mailroom pause) is skipped.
 */
#ifndef MAILROOM_LANES_H
#define MAILROOM_LANES_H

#include <stdint.h>

#include "config.h"

/* Fills cfg->lanes from the --queue list: names [A-Za-z0-9._:-]{1,64}, each once, at
 * most LANE_MAX, weights 1..1000 on all or none. A trailing ":<digits>" is always a
 * weight (a queue named "mail:2" is given as "mail:2:1" in a weighted list, and
 * cannot be in a strict one). 0, or -1 with err. */
int lanes_configure(consumer_config *cfg, const char *spec, mr_error *err);

/* The lanes a take visits, in order, paused ones left out: their indexes in order[];
 * returns how many. random is a uniform 32-bit number (weighted order only). */
int lanes_order(consumer_config *cfg, uint32_t random, int order[LANE_MAX]);

/* The lane a worker with nothing to do blocks on: the lanes not paused are shared out
 * among the workers by index, and a worker moves to the next one at every turn, so
 * that each lane has a waiting take even when workers are fewer than lanes. -1 when
 * every lane is paused. */
int lanes_watch(consumer_config *cfg, int worker, unsigned turn);

/* "reset, signup" or "reset:6, receipts:1": the lanes for log lines, into out. */
void lanes_describe(const consumer_config *cfg, char *out, size_t cap);

#endif
