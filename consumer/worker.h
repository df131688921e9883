/*
 * worker: one consumer thread. Each owns one Redis connection, one SMTP session, the
 * job in hand (a task) and the buffers it reuses for every job; it reads the shared
 * consumer_config and publishes only `held` (hashes of the jobs it holds, for the
 * housekeeper's orphan check).
 *
 * A job's path through the worker, one file each: take.c (the take from Redis, bounded
 * in size, and BEGIN, which takes the job's lease), worker.c (verification, freshness,
 * the message and its delivery), outcome.c (FINISH: the outcome recorded under the
 * lease). worker_redis.c holds what they share: the connection, retries and backoff.
 */
#ifndef MAILROOM_WORKER_H
#define MAILROOM_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "job.h"
#include "sig.h"
#include "smtp.h"

#define WORKER_HELD_MAX 2 /* jobs a worker holds at once: in hand, and taken next */
#define TOKEN_MAX 160     /* a lease token: "<consumer>:<worker>:<take number>" */

/* A job in hand: the raw job as taken (owned: the reply it came in), its lease token
 * once BEGIN took one, its attempt, and the decoded job (borrowing from its own tree). */
typedef struct task {
    redisReply *reply; /* owned */
    const char *raw;   /* reply->str */
    size_t len;
    char token[TOKEN_MAX]; /* "" until BEGIN */
    long attempt;          /* from BEGIN */
    int64_t begun_ms;      /* when BEGIN answered: the attempt's time starts */
    int stall_epoch;       /* cfg->stall_epoch when BEGIN took the lease */
    job job;
} task;

typedef struct worker {
    int index;
    consumer_config *cfg; /* borrowed; outlives the worker */
    pthread_t thread;
    redisContext *redis;     /* owned; NULL while disconnected */
    int epoch;               /* cfg->master_epoch when redis was connected */
    rconn_write_guard guard; /* Sentinel: the write check's state */
    smtp_session smtp;
    task cur;               /* the job in hand */
    redisReply *next;       /* owned: a job taken along with the last FINISH; NULL */
    long long next_too_big; /* that take met an entry over the size limit: its announced
                               length; 0 when none */
    buf message, scratch, dead_entry;
    buf rcpt; /* the envelope's bare addresses, each NUL-terminated */
    const char *rcpt_ptrs[JOB_MAX_RCPT];
    sig_mac mac;                            /* verifies every job's signature */
    unsigned rng;                           /* jitter state */
    int64_t take_delay;                     /* backoff after refused takes; 0 after a good one */
    unsigned long long takes;               /* takes so far: makes every lease token unique */
    _Atomic uint64_t held[WORKER_HELD_MAX]; /* worker_job_hash of each job held, 0 for
                                               none: the housekeeper's orphan check */
} worker;

/* A 64-bit FNV-1a hash of a raw job (never 0): identifies a processing-list entry. */
uint64_t worker_job_hash(const char *raw, size_t len);

/* Creates a worker's resources. Returns 0, or -1 (nothing is left allocated). */
int worker_init(worker *w, int index, consumer_config *cfg);
/* Thread body: takes and handles jobs until cfg->stopping. */
void *worker_main(void *arg);
/* Frees what worker_init and the thread allocated. Accepts a zeroed worker. */
void worker_free(worker *w);

/*
 * Delay before retry number `attempt` (1 for the first retry):
 * min(max, base * 2^(attempt-1)), then scaled by a factor in [0.8, 1.2] taken from
 * `random` (uniform over 32 bits).
 */
int64_t worker_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, uint32_t random);

#endif
