/*
 * config: everything a consumer process runs by, filled once at start from its
 * options (config_load) and then read by every thread. The few fields that change
 * while it runs are atomics: the stop signals, the worker count, the Sentinel master
 * epoch and the outcome counters of the summary log line.
 */
#ifndef MAILROOM_CONFIG_H
#define MAILROOM_CONFIG_H

#include <stdatomic.h>
#include <stdint.h>

#include "error.h"
#include "keyring.h"
#include "keys.h"
#include "options.h"
#include "rconn.h"
#include "smtp.h"

#define WORKER_MAX 256 /* the most worker threads a consumer runs (--concurrency) */
#define TAKE_ARGC 6    /* BLMOVE pending processing RIGHT LEFT timeout */
#define POLL_ARGC 5    /* LMOVE pending processing RIGHT LEFT */

typedef struct consumer_config {
    rconn_url redis;
    keys_queue keys;
    char id[128];                   /* consumer id */
    char processing[KEYS_NAME_MAX]; /* this consumer's processing list */
    keyring ring;                   /* every accepted key (owned: keyring_clear) */
    unsigned accept_mask;           /* bit 1 << sig_alg per accepted algorithm */
    smtp_config smtp;
    char *smtp_password; /* owned (secret_free); smtp.password points here */
    int concurrency;
    int block_timeout_ms; /* BLMOVE timeout */
    int redis_timeout_ms; /* command timeout beyond the block timeout */
    long status_ttl_s;
    long dead_max;
    int max_attempts;
    int64_t backoff_base_ms, backoff_max_ms, max_lifetime_ms;
    int64_t max_clock_skew_ms;   /* a created_at further in the future is refused */
    int64_t dead_after_ms;       /* silent this long: a consumer is recovered */
    int64_t lease_safe_ms;       /* heartbeats closer than this keep every lease:
                                         dead_after less a margin for the round trip */
    int64_t shutdown_timeout_ms; /* in-flight work gets this long after SIGTERM */
    const char *http;            /* metrics: --http, where /metrics is served (borrowed
                                    from the options); NULL: off */
    atomic_int stopping;         /* SIGTERM/SIGINT: take no more jobs */
    atomic_int hurry;            /* shutdown timeout or second signal: abandon */
    atomic_int running;          /* worker threads still in worker_main */
    atomic_int master_epoch;     /* bumped when Sentinel names a new master */
    /* the leases' health: when the last heartbeat was written (clock_mono_ms), and a
       count of the gaps between heartbeats long enough for leases to lapse (a stall
       of the whole process); a worker that sees either checks its lease before it
       sends a message's end of data */
    _Atomic int64_t heartbeat_ok_ms;
    atomic_int stall_epoch;
    /* script arguments that never change, formatted once by config_load */
    char ttl_arg[24];                 /* status_ttl_s */
    char dead_max_arg[24];            /* dead_max */
    char dead_after_arg[24];          /* dead_after_ms */
    char take_timeout[24];            /* block_timeout_ms, in seconds */
    const char *take_argv[TAKE_ARGC]; /* BLMOVE pending -> processing (borrowed from
                                         keys, processing and take_timeout) */
    const char *poll_argv[POLL_ARGC]; /* LMOVE pending -> processing: a take that does
                                         not block */
    /* outcomes recorded by this process since it started, for the summary log line */
    atomic_long n_sent, n_retried, n_failed, n_rejected;
} consumer_config;

/*
 * Fills cfg from the options, the environment's secrets (signing keys, the Redis and
 * SMTP password files) and the checks that need several options at once. Sets up
 * logging. Returns 0, or -1 with the reason in err (the consumer then exits 78).
 * cfg must be zeroed; config_clear releases what it holds, also after a failure.
 */
int config_load(consumer_config *cfg, const consumer_options *o, mr_error *err);

/* Wipes and frees the keys and passwords. Accepts NULL. */
void config_clear(consumer_config *cfg);

#endif
