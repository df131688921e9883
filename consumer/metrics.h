/*
 * metrics: what a consumer process counts for its Prometheus endpoint (/metrics,
 * served by http.c when --http is given), and the exposition of those counts in the
 * Prometheus text format 0.0.4 (docs/operations.md lists every series).
 *
 * The worker threads and the housekeeper call the metrics_* hooks below; each is a few
 * relaxed atomic operations on process-wide counters, cheap enough for the hot path,
 * and does nothing before metrics_init() (a consumer without --http counts nothing).
 * Queues and relays are named by their index in the lists given to metrics_init(); an
 * index out of range is ignored. The queue-level figures read from Redis by one
 * consumer per queue are exporter.c's; both write with metrics_family() and
 * metrics_sample(), which keep the names, labels and numbers in the format's rules.
 *
 * Ownership: metrics_init() copies the names it is given into process-wide state that
 * metrics_free() releases, once every thread that calls a hook has stopped.
 */
#ifndef MAILROOM_METRICS_H
#define MAILROOM_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mailroom.h"

/* metrics_redis_connected(): the connections that are no worker's */
#define METRICS_HOUSEKEEPER (-1)
#define METRICS_EXPORTER (-2)

/* A relay's circuit breaker, as its shared state in Redis says (docs/redis.md). */
typedef enum metrics_circuit {
    METRICS_CIRCUIT_CLOSED = 0,
    METRICS_CIRCUIT_HALF_OPEN,
    METRICS_CIRCUIT_OPEN
} metrics_circuit;

/*
 * Sets the process up for counting: its consumer id, the queues it serves and the
 * relays it sends to (their names as shown in labels: queue names, relay host:port),
 * all copied. Call once, before the threads that call the hooks start. Returns 0, or
 * -1 when memory ran out or a name is missing (nothing is counted then).
 */
int metrics_init(const char *consumer, const char *const *queues, int n_queues,
                 const char *const *relays, int n_relays);

/* Releases what metrics_init() made; the hooks do nothing afterwards. Call after
 * every thread calling them has stopped. Harmless without metrics_init(). */
void metrics_free(void);

/* A job's outcome was recorded (FINISH answered recorded or lost_sent): sent,
 * retrying, failed or rejected; other states are not counted. */
void metrics_outcome(int queue, mailroom_state state);

/* A job's first attempt began at begun_ms; it had been due since its created_at, or
 * its send_at when later (0: none). Observes the wait, never below 0. */
void metrics_queue_time(int queue, int64_t created_ms, int64_t send_at_ms, int64_t begun_ms);

/* One SMTP transaction ended with this deciding reply code (0: no reply at all). */
void metrics_smtp_reply(int relay, int code);

/* One attempt's time, from BEGIN to its final reply, in ms. */
void metrics_send_duration(int relay, int64_t ms);

/* The relay throttled an attempt (421/451/454 or text saying so). */
void metrics_throttled(int relay);

/* The relay's count of open SMTP connections of this process, for the engine to keep
 * (smtp_config.open_count); NULL before metrics_init() or for a bad index. */
atomic_int *metrics_sessions_counter(int relay);

/* The relay's circuit and its current shared send rate (messages per second, 0 when
 * unlimited), as the housekeeper last read them. */
void metrics_relay_state(int relay, metrics_circuit circuit, double rate_per_s);

/* A connection to Redis was made by worker `who` (its index), METRICS_HOUSEKEEPER or
 * METRICS_EXPORTER; every one after the first of each is counted as a reconnect. */
void metrics_redis_connected(int who);

/* 1 when at least one relay's circuit is not open (or there is no relay), else 0 with
 * the open relays named in why. */
int metrics_relays_usable(char *why, size_t cap);

/* Appends the process's series to out. 0, or -1 when memory ran out. */
int metrics_render(buf *out);

/* ------------------------------------------------------------------ the exposition */

typedef struct metrics_label {
    const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]* */
    const char *value; /* UTF-8; escaped here */
} metrics_label;

/* "# HELP name help" and "# TYPE name type" (counter, gauge, histogram). */
int metrics_family(buf *out, const char *name, const char *type, const char *help);

/* One sample line: name{labels} value. NaN and infinities as the format spells them. */
int metrics_sample(buf *out, const char *name, const metrics_label *labels, int n_labels,
                   double value);

/* A number as the format's values are written: integers without a fraction, others in
 * the shortest form that reads back the same; "+Inf", "-Inf", "NaN". */
void metrics_number(double value, char out[32]);

#endif
