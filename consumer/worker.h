/*
 * worker: the consumer's moving parts. consumer_config is filled once by main() and
 * read by every thread; each worker thread owns one Redis connection, one SMTP
 * session, one decoded job and the buffers it reuses for every job. The housekeeping
 * functions run on the main thread between signals.
 */
#ifndef MAILROOM_WORKER_H
#define MAILROOM_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "address.h"
#include "buf.h"
#include "job.h"
#include "keyring.h"
#include "keys.h"
#include "rconn.h"
#include "sig.h"
#include "smtp.h"

#define WORKER_MAX 256 /* the most worker threads a consumer runs (--concurrency) */
#define TAKE_ARGC 6    /* BLMOVE pending processing RIGHT LEFT timeout */

typedef struct consumer_config {
    rconn_url redis;
    keys_queue keys;
    char id[128];                     /* consumer id */
    char processing[KEYS_NAME_MAX];   /* this consumer's processing list */
    keyring ring;                     /* every accepted key */
    unsigned accept_mask;             /* bit 1 << sig_alg per accepted algorithm */
    smtp_config smtp;
    char *smtp_password;              /* owned (secret_free); smtp.password points here */
    int concurrency;
    int block_timeout_ms;             /* BLMOVE timeout */
    int redis_timeout_ms;             /* command timeout beyond the block timeout */
    long status_ttl_s;
    long dead_max;
    int max_attempts;
    int64_t backoff_base_ms, backoff_max_ms, max_lifetime_ms;
    int64_t dead_after_ms;            /* silent this long: a consumer is recovered */
    int64_t shutdown_timeout_ms;      /* in-flight work gets this long after SIGTERM */
    atomic_int stopping;              /* SIGTERM/SIGINT: take no more jobs */
    atomic_int hurry;                 /* shutdown timeout or second signal: abandon */
    atomic_int running;               /* worker threads still in worker_main */
    atomic_int master_epoch;          /* bumped when Sentinel names a new master */
    /* script arguments that never change, formatted once by worker_config_finish */
    char ttl_arg[24];                 /* status_ttl_s */
    char dead_max_arg[24];            /* dead_max */
    char take_timeout[24];            /* block_timeout_ms, in seconds */
    const char *take_argv[TAKE_ARGC]; /* BLMOVE pending -> processing (borrowed from
                                         keys, processing and take_timeout) */
    /* outcomes recorded by this process since it started, for the summary log line */
    atomic_long n_sent, n_retried, n_failed, n_rejected;
} consumer_config;

typedef struct worker {
    int index;
    consumer_config *cfg;             /* borrowed; outlives the worker */
    pthread_t thread;
    redisContext *redis;              /* owned; NULL while disconnected */
    int epoch;                        /* cfg->master_epoch when redis was connected */
    rconn_write_guard guard;          /* Sentinel: the write check's state */
    smtp_session smtp;
    job job;
    buf message, scratch, dead_entry;
    sig_mac mac;                      /* verifies every job's signature */
    char rcpt[JOB_MAX_RCPT][ADDR_SPEC_MAX + 1];
    const char *rcpt_ptrs[JOB_MAX_RCPT];
    unsigned rng;                     /* jitter state */
    _Atomic uint64_t held;            /* worker_job_hash of the job in hand, 0 when none:
                                         the housekeeper's view of what is not orphaned */
    redisReply *next;                 /* owned: a job taken along with the last FINISH,
                                         handled next; NULL when none */
} worker;

/* A 64-bit FNV-1a hash of a raw job (never 0): identifies a processing-list entry. */
uint64_t worker_job_hash(const char *raw, size_t len);

/* Formats the script arguments of cfg that never change; call once cfg is complete. */
void worker_config_finish(consumer_config *cfg);

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

/*
 * The housekeeper: the main thread's own Redis connection and when it came up. Each
 * function returns a count, or -1 when Redis failed (the connection is then dropped
 * and the next call reconnects).
 */
#define HOUSEKEEPING_MAX_SUSPECTS 64

/* An entry of this consumer's processing list that no worker held at first_seen_ms. */
typedef struct orphan_suspect {
    uint64_t hash;
    int64_t first_seen_ms;
} orphan_suspect;

typedef struct housekeeper {
    consumer_config *cfg; /* borrowed; master_epoch is bumped through it */
    redisContext *redis; /* owned; NULL while disconnected */
    int64_t up_since_ms; /* when the current connection was made */
    worker *workers;     /* borrowed: the running workers, read for what they hold */
    int n_workers;
    orphan_suspect suspects[HOUSEKEEPING_MAX_SUSPECTS];
    int n_suspects;
} housekeeper;

/* With Sentinel: when the sentinels name a master other than the one this housekeeper
 * is connected to, bumps master_epoch so workers reconnect. Returns 1 when it moved. */
int housekeeping_follow_master(housekeeper *h);
/* Moves due scheduled jobs to pending. */
long housekeeping_promote(housekeeper *h);
/* Heartbeat; and once this connection has been up long enough for live consumers to
 * have heart-beaten after an outage, recovery of consumers that went silent. */
long housekeeping_heartbeat(housekeeper *h);
/* Returns this consumer's processing list to pending and leaves the consumer set. */
long housekeeping_reclaim(housekeeper *h);
/*
 * Finds entries of this consumer's own processing list that no worker holds and
 * returns those still unheld after longer than a BLMOVE reply can take (block and
 * command timeouts): a Redis restart can move a job and lose the reply, and a live
 * consumer is never recovered by others. Returns the number returned to pending.
 */
long housekeeping_orphans(housekeeper *h);
void housekeeping_close(housekeeper *h);

#endif
