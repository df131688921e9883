/*
 * take: how a worker comes to hold a job. The take itself (BLMOVE pending ->
 * processing when the worker has nothing else to do; LMOVE, which does not block,
 * while another job's content waits to go; or the one a FINISH carried) never
 * receives an entry larger than the largest valid job: such an entry is stopped at
 * its announced length and rejected in Redis by the toobig script. BEGIN then takes
 * the job's lease (begin.lua), which the lease script checks before a message's end of
 * data when a stall may have let it lapse.
 */
#ifndef MAILROOM_TAKE_H
#define MAILROOM_TAKE_H

#include "clock.h"
#include "script.h"
#include "worker.h"
#include "worker_redis.h"

/* How a take waits: blocking up to --block-timeout, or not at all. */
typedef enum take_mode { TAKE_BLOCK = 1, TAKE_POLL = 2 } take_mode;

/* Takes the next job into t (raw, len and lane set, its hash held). A job a FINISH
 * carried comes first, whatever the mode; then every lane not paused, in the order of
 * lanes_order(), without blocking; then (TAKE_BLOCK) a blocking take on the lane
 * lanes_watch() gives this worker (one lane alone: that blocking take only). 1 when
 * a job was taken; 0 when none came (the block timed out, the queues were empty or
 * paused, an oversized entry was rejected, Redis failed or refused: handled and
 * logged here, with backoff). */
int take_job(worker *w, task *t, take_mode mode);

/* The toobig script's arguments for this consumer's processing list of lane l (the
 * size limit, now), formatted into max and now_iso. Also the housekeeper's. */
void take_toobig_args(const consumer_config *cfg, const lane *l, toobig_args *a, char max[24],
                      char now_iso[CLOCK_ISO_MAX]);

/* What BEGIN said. */
typedef enum begin_result {
    BEGIN_SENDING = 0, /* the lease is this take's: send (attempt, owed set) */
    BEGIN_DUPLICATE,   /* already sent: acknowledged without sending */
    BEGIN_INFLIGHT,    /* a copy of a job in flight elsewhere: dropped */
    BEGIN_LOST,        /* no longer in this consumer's processing list */
    BEGIN_CANCELLED,   /* cancelled (mailroom cancel): acknowledged without sending */
    BEGIN_FAILED       /* Redis could not be reached before a hurried shutdown */
} begin_result;

/* BEGIN for the decoded job in t, with a new lease token; then (may be NULL) goes out
 * in the same write (see wr_run_then). */
begin_result take_begin(worker *w, task *t, wr_then *then);

/*
 * 1 when the job in t may be sent: its lease cannot have lapsed (heartbeats have been
 * written without a long gap since BEGIN), or Redis confirms it still holds (the lease
 * script). 0 when it was lost, or Redis could not say before a hurried shutdown.
 */
int take_lease_holds(worker *w, const task *t);

#endif
