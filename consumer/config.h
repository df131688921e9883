/*
 * config: everything a consumer process runs by, filled once at start from its
 * options (config_load) and then read by every thread. The few fields that change
 * while it runs are atomics: the stop signals, the worker count, the Sentinel master
 * epoch, the outcome counters of the summary log line, each lane's pause flag and
 * each relay's shared state as last seen (the housekeeper refreshes them every
 * second; a worker that learns something first updates them at once).
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
#define LANE_MAX 8     /* queues one consumer serves (--queue a,b,c) */
#define RELAY_MAX 4    /* relays, in order of preference (--smtp, repeated) */

/*
 * A lane: one queue this consumer serves, with its own keys and processing list (a
 * queue lives in its own Redis Cluster slot). Lanes are taken in strict order (weight
 * 0 for all: a lower lane only when every higher one is empty) or by weights.
 */
typedef struct lane {
    keys_queue keys;
    char processing[KEYS_NAME_MAX];   /* this consumer's processing list in this queue */
    int weight;                       /* 0: strict order */
    atomic_int paused;                /* mailroom pause, as the housekeeper last read it */
    const char *take_argv[TAKE_ARGC]; /* BLMOVE pending -> processing (borrowed from
                                         keys, processing and take_timeout) */
    const char *poll_argv[POLL_ARGC]; /* LMOVE: a take that does not block */
} lane;

/* A relay's circuit, as relay_circuit.lua keeps it. */
typedef enum relay_circuit { CIRCUIT_CLOSED = 0, CIRCUIT_HALF_OPEN, CIRCUIT_OPEN } relay_circuit;

/*
 * A relay: an SMTP server to send through, with the state every consumer of it shares
 * in Redis (docs/redis.md: its circuit and its adaptive rate), as last seen here.
 */
typedef struct relay {
    char name[KEYS_RELAY_MAX + 1]; /* host:port of its URL */
    char key[KEYS_NAME_MAX];       /* mailroom:relay:{name} */
    char sessions_key[KEYS_NAME_MAX];
    smtp_config smtp;
    atomic_int circuit;          /* relay_circuit */
    atomic_int failures;         /* consecutive, across consumers */
    _Atomic int64_t probe_at_ms; /* open: when the next probe may go (Redis' clock) */
    _Atomic int64_t rate_milli;  /* the shared rate in messages per 1000 s; 0: none */
    atomic_long offered;         /* messages this process offered it (answered, whatever
                                    the answer: sent, throttled or refused) */
    _Atomic int64_t seen_milli;  /* this process's recent offered rate, per 1000 s */
} relay;

typedef struct consumer_config {
    rconn_url redis;
    lane lanes[LANE_MAX];
    int n_lanes;
    int weighted;         /* lanes by weight, not in strict order */
    char id[128];         /* consumer id */
    keyring ring;         /* every accepted key (owned: keyring_clear) */
    unsigned accept_mask; /* bit 1 << sig_alg per accepted algorithm */
    relay relays[RELAY_MAX];
    int n_relays;
    char *smtp_password;  /* owned (secret_free); every relay's smtp.password points here */
    char smtp_urls[2048]; /* the --smtp list, cut at the commas: the relays' URLs */
    double rate_max;      /* --rate, messages per second; 0: none configured */
    double rate_floor;    /* the lowest an adaptive cut goes */
    char rate_max_arg[32], rate_floor_arg[32]; /* the same, for relay_rate.lua ("" none) */
    long relay_connections;                    /* per relay, across consumers; 0: no cap */
    int circuit_failures;                      /* consecutive failures that open a circuit */
    int64_t probe_max_ms;                      /* the probes' backoff cap */
    char suppress_on[128];   /* "5.1.*,550,...": RCPT refusals that suppress; "" none */
    int64_t suppress_for_ms; /* how long a suppression lasts */
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
    char ttl_arg[24];        /* status_ttl_s */
    char dead_max_arg[24];   /* dead_max */
    char dead_after_arg[24]; /* dead_after_ms */
    char take_timeout[24];   /* block_timeout_ms, in seconds */
    /* outcomes recorded by this process since it started, for the summary log line */
    atomic_long n_sent, n_retried, n_failed, n_rejected, n_throttled, n_unreachable;
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
