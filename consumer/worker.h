/*
 * worker: one consumer thread. Each owns one Redis connection, one SMTP session (the
 * engine of consumer/smtp/), up to two jobs in hand (tasks) and the buffers they reuse;
 * it reads the shared consumer_config and publishes only `held` (hashes of the jobs
 * it holds, for the housekeeper's orphan check).
 *
 * The SMTP session is pipelined: while one job's envelope has been accepted (its DATA
 * answered 354), the worker takes and prepares the next, then sends the first one's
 * content and the next one's envelope in one write, so a warm connection costs one
 * round trip per message (docs/smtp.md).
 *
 * A job's path through the worker, one file each: take.c (the take from Redis, bounded
 * in size, and BEGIN, which takes the job's lease), prepare.c (verification,
 * freshness, the message and the envelope), worker.c (the loop and the exchanges),
 * outcome.c (FINISH: the outcome recorded under the lease, per recipient).
 * worker_redis.c holds what they share: the connection, retries and backoff.
 */
#ifndef MAILROOM_WORKER_H
#define MAILROOM_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "address.h"
#include "buf.h"
#include "config.h"
#include "job.h"
#include "sig.h"
#include "smtp.h"

#define WORKER_HELD_MAX 3 /* jobs a worker holds at once: two tasks and a carried take */
#define TOKEN_MAX 160     /* a lease token: "<consumer>:<worker>:<take number>" */

/*
 * A job in hand: the raw job as taken (owned: the reply it came in), its lease token
 * once BEGIN took one, its attempt, the decoded job (borrowing from its own tree), its
 * message and envelope, and its SMTP transaction. Reused from job to job: the buffers
 * keep their allocations.
 */
typedef struct task {
    redisReply *reply; /* owned; NULL when the task is free */
    const char *raw;   /* reply->str */
    size_t len;
    int slot;              /* its index in worker.held */
    int lane;              /* the queue it came from: cfg->lanes[lane] */
    int relay;             /* the relay it goes to: cfg->relays[relay] */
    char token[TOKEN_MAX]; /* "" until BEGIN */
    long attempt;          /* from BEGIN */
    long delivered_before; /* recipients earlier attempts delivered to, from BEGIN */
    int64_t begun_ms;      /* when BEGIN answered: the attempt's time starts */
    int stall_epoch;       /* cfg->stall_epoch when BEGIN took the lease */
    job job;
    buf message; /* the MIME message */
    buf owed;    /* the addresses a retry must still reach (JSON), "" = all */
    buf rcpt;    /* this attempt's recipients, each NUL-terminated twice over:
                               the envelope form (A-label domains), then the address as
                               the job gives it (for records, events and owed) */
    const char *rcpt_ptrs[JOB_MAX_RCPT];   /* envelope forms: what RCPT TO sends */
    const char *shown_ptrs[JOB_MAX_RCPT];  /* as given, in the same order */
    char from_envelope[ADDR_SPEC_MAX + 1]; /* MAIL FROM: the envelope form of from */
    smtp_rcpt_reply *rcpt_replies;         /* owned: n_rcpt of them, grown to need */
    size_t rcpt_cap;
    buf suppressed;      /* the job's recipients on the suppression list, each as three
                            NUL-terminated strings: envelope form, as given, the reason */
    size_t n_suppressed; /* how many */
    size_t n_distinct;   /* the job's distinct recipients, when they were looked up */
    smtp_txn txn;
} task;

typedef struct worker {
    int index;
    consumer_config *cfg; /* borrowed; outlives the worker */
    pthread_t thread;
    redisContext *redis;               /* owned; NULL while disconnected */
    int epoch;                         /* cfg->master_epoch when redis was connected */
    rconn_write_guard guard;           /* Sentinel: the write check's state */
    smtp_session *sessions[RELAY_MAX]; /* owned: one per relay, connected when used */
    atomic_int slot[RELAY_MAX];        /* holds one of the relay's --relay-connections */
    atomic_int connections;            /* SMTP connections open now (for the info hash) */
    char who[KEYS_NAME_MAX];           /* "<consumer>:<index>": this worker in Redis */
    task tasks[2];                     /* the one whose content goes next, and the next one */
    redisReply *next;                  /* owned: a job taken along with the last FINISH; NULL */
    long long next_too_big;            /* that take met an entry over the size limit: its announced
                                 length; 0 when none */
    int carry_lane;                    /* the lane a take carried by a script takes from */
    int next_lane;                     /* the lane of next (or next_too_big) */
    unsigned turn;                     /* moves the lane a blocking take waits on (lanes_watch) */
    buf scratch, dead_entry, results;
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

/* Releases a task's job (the buffers stay for the next) and its held slot. */
void task_release(worker *w, task *t);

/*
 * Delay before retry number `attempt` (1 for the first retry):
 * min(max, base * 2^(attempt-1)), then scaled by a factor in [0.8, 1.2] taken from
 * `random` (uniform over 32 bits).
 */
int64_t worker_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, uint32_t random);

#endif
