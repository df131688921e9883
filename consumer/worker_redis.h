/*
 * worker_redis: a worker's Redis connection and the rules every step that uses it
 * follows (take.c, outcome.c): reconnect with capped, jittered backoff after a lost
 * connection or a "not now" reply (LOADING, READONLY ...); retry with capped, jittered
 * backoff after any other error reply (OOM at maxmemory, NOREPLICAS, WRONGTYPE,
 * NOPERM), logging each kind of error once a minute, not once per try; with Sentinel,
 * redo a write that did not stand on the new master. A worker holding a job keeps
 * trying until the shutdown turns into a hurry; one holding nothing gives up as soon
 * as the shutdown begins.
 */
#ifndef MAILROOM_WORKER_REDIS_H
#define MAILROOM_WORKER_REDIS_H

#include "script.h"
#include "worker.h"

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000

int wr_stopping(const worker *w);
/* 1 when the worker should stop trying (see above). */
int wr_giving_up(const worker *w, int holding_job);
uint32_t wr_random(worker *w);
void wr_sleep_ms(int64_t ms);

/* Connects unless connected, retrying with backoff. 0, or -1 when giving up. */
int wr_connect(worker *w, int holding_job);
/* Drops the connection after a failure of `what`, with a log line. */
void wr_drop(worker *w, const char *what);

/* Waits before the next try after an error reply: doubling from RECONNECT_MIN_MS to
 * RECONNECT_MAX_MS, jittered, in slices that notice a shutdown. *delay carries the
 * state (start at 0). Returns -1 when giving up instead. */
int wr_pause_after_refusal(worker *w, int64_t *delay, int holding_job);
/* Logs an error reply to a step, at most once a minute per kind of error. */
void wr_log_refusal(const char *step, const char *job_id, const char *reply);

/*
 * Runs a script for the job in hand until Redis records it, following the rules
 * above. With carry_take (1: BLMOVE, which blocks; 2: LMOVE, which does not), the
 * next take goes out in the same write (not with Sentinel, nor when stopping or
 * already carrying one): the job it takes lands in w->next (or w->next_too_big is
 * set), saving the next take its round trip. Returns
 * the reply (caller frees), or NULL when a hurried shutdown made the worker give up or
 * the arguments were wrong (a bug, logged).
 */
redisReply *wr_run(worker *w, script_id id, const char *const *v, const size_t *len,
                   const char *job_id, int carry_take);

/*
 * A command sent in the same write as a script (wr_run_then), which saves it a round
 * trip: argc words of argv. Its reply lands in reply (the caller frees it), NULL when
 * it was not sent along (with Sentinel, whose writes are each followed by WAIT) or
 * could not be read; the caller then sends it on its own.
 */
typedef struct wr_then {
    int argc;
    const char **argv;
    redisReply *reply;
} wr_then;

/* wr_run for a script that carries no take but the command in then. */
redisReply *wr_run_then(worker *w, script_id id, const char *const *v, const size_t *len,
                        const char *job_id, wr_then *then);

/* One try of a script that holds up no job (the relays' policy, the suppression
 * list): its reply (caller frees), or NULL when Redis failed or refused (the
 * connection dropped after a failure; the job's own steps reconnect). */
redisReply *wr_try(worker *w, script_id id, const char *const *v, const size_t *len);

#endif
