/*
 * relay: a worker's side of the relays' shared policy (docs/relays.md): which relay the
 * next job goes to (the first whose circuit is closed, probing an open one whose turn
 * has come on the way), the relay's connection slots (--relay-connections), its shared
 * send rate (relay_rate.lua), and what a finished transaction tells about the relay
 * (a failure to connect, a throttle, or a good session). The shared state lives in
 * Redis (relay_circuit.lua, relay_rate.lua, relay_slot.lua) and is mirrored in
 * cfg->relays[] by the housekeeper every second; a worker that learns something
 * updates the mirror at once.
 *
 * These steps never hold up a job's outcome: when Redis cannot answer them, the worker
 * goes on as if the relay were closed and unlimited (a lost limit for a moment, not
 * a lost job), and the connection is retried by the job's own steps.
 */
#ifndef MAILROOM_RELAY_H
#define MAILROOM_RELAY_H

#include <stdint.h>

#include "worker.h"

/* What a transaction says about its relay. */
typedef enum relay_verdict {
    RELAY_FINE = 0,    /* a session was had: the circuit may close */
    RELAY_UNREACHABLE, /* connection, TLS or greeting failure: counts towards opening */
    RELAY_THROTTLED,   /* the relay throttled us: the shared rate is cut */
    RELAY_NEUTRAL      /* nothing to learn (a refusal of the message itself) */
} relay_verdict;

/* The relay a transaction's result speaks of (see relay_verdict). */
relay_verdict relay_verdict_of(const smtp_txn *x);

/*
 * The relay for the next job: the first one in order whose circuit is closed; an open
 * one whose probe is due is probed on the way (by this worker, when no other consumer
 * probes it), and chosen if the probe opens a session. -1 when none is usable now
 * (every circuit open): the caller takes no job.
 */
int relay_choose(worker *w);

/* The worker's connection slot for relay r (--relay-connections): 1 when it holds one
 * (always, without a cap), 0 when none is free now. */
int relay_slot_acquire(worker *w, int r);
/* Gives the slot back (the connection is closed first). */
void relay_slot_release(worker *w, int r);

/* 1 when the relay's shared rate lets a message go now, else 0 with *wait_ms set. */
int relay_permit(worker *w, int r, int64_t *wait_ms);
/* A permit that was not used (no job came): the rate's clock goes back. */
void relay_refund(worker *w, int r);

/* Records what a finished transaction on relay r says (relay_verdict_of), in Redis and
 * in the mirror, with a log line when a circuit opens or closes or a rate is cut. */
void relay_observe(worker *w, int r, relay_verdict v, const char *why);

#endif
