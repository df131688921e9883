/*
 * metrics: see metrics.h. The counters are one process-wide metrics_state, made by
 * metrics_init() before any thread starts and read by the HTTP thread at each scrape:
 * plain atomics, added to with relaxed order (a scrape needs no ordering between two
 * counters, only that each is whole). A histogram keeps one counter per bucket, not
 * cumulative, and its sum in microseconds as an integer (C11 has no atomic add on a
 * double); the scrape makes the buckets cumulative and takes _count from them, so a
 * scrape never shows a _count that disagrees with its +Inf bucket.
 *
 * The exposition follows the text format 0.0.4: a # HELP and a # TYPE line before the
 * samples of each family, all samples of a family together, label values escaped (\\,
 * \", \n), numbers as Go's ParseFloat reads them. Names follow the Prometheus naming
 * conventions: the mailroom_ prefix, _total on counters, base units (_seconds).
 */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "mailroom_version.h"

/* Histogram buckets (upper bounds, seconds). An attempt's SMTP time: from a warm
 * pipelined connection on a LAN (milliseconds) to a slow relay near the 60 s command
 * timeout. A job's wait for its first attempt: from an idle queue (milliseconds) to a
 * backlog of days, within the longest --max-lifetime that makes sense (5 days). */
static const double send_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                     2.5,   5,    10,    30,   60,  120,  300};
static const double wait_bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5,  1,     2.5,   5,     10,    30,
                                     60,   300,  900, 1800, 3600, 10800, 43200, 86400, 432000};
#define N_SEND (sizeof send_bounds / sizeof send_bounds[0])
#define N_WAIT (sizeof wait_bounds / sizeof wait_bounds[0])
#define HIST_MAX 19 /* the most bounds of any histogram above */

_Static_assert(N_SEND <= HIST_MAX && N_WAIT <= HIST_MAX, "HIST_MAX too small");

/* The outcomes counted, in the order shown (the states FINISH records). */
static const mailroom_state outcome_states[] = {MAILROOM_STATE_SENT, MAILROOM_STATE_RETRYING,
                                                MAILROOM_STATE_FAILED, MAILROOM_STATE_REJECTED};
static const char *const outcome_names[] = {"sent", "retrying", "failed", "rejected"};
#define N_OUTCOMES 4

/* Classes of the deciding SMTP reply: the engine only reads codes 200 to 599. */
static const char *const class_names[] = {"none", "2xx", "3xx", "4xx", "5xx"};
#define N_CLASSES 5

static const char *const circuit_names[] = {"closed", "half-open", "open"};
#define N_CIRCUIT 3

/* Connections counted for reconnects: workers 0..CONN_SLOTS-3, the housekeeper and
 * the exporter in the last two slots. */
#define CONN_SLOTS 260

typedef struct histogram {
    _Atomic uint64_t counts[HIST_MAX + 1]; /* per bucket; the last one is +Inf */
    _Atomic uint64_t sum_us;
} histogram;

typedef struct queue_counts {
    char *name; /* owned */
    _Atomic uint64_t outcomes[N_OUTCOMES];
    histogram wait;
} queue_counts;

typedef struct relay_counts {
    char *name; /* owned */
    _Atomic uint64_t replies[N_CLASSES];
    _Atomic uint64_t throttled;
    atomic_int sessions;
    atomic_int circuit;          /* metrics_circuit */
    _Atomic uint64_t rate_milli; /* messages per 1000 s */
    histogram send;
} relay_counts;

typedef struct metrics_state {
    char *consumer; /* owned */
    double start_s; /* process_start_time_seconds */
    int n_queues, n_relays;
    queue_counts *queues; /* owned, n_queues */
    relay_counts *relays; /* owned, n_relays */
    _Atomic uint64_t reconnects;
    atomic_bool connected[CONN_SLOTS]; /* that slot has connected once */
} metrics_state;

static metrics_state *M; /* set before the threads start, cleared after they stop */

static void state_free(metrics_state *m)
{
    if (!m)
        return;
    for (int i = 0; m->queues && i < m->n_queues; i++)
        free(m->queues[i].name);
    for (int i = 0; m->relays && i < m->n_relays; i++)
        free(m->relays[i].name);
    free(m->queues);
    free(m->relays);
    free(m->consumer);
    free(m);
}

int metrics_init(const char *consumer, const char *const *queues, int n_queues,
                 const char *const *relays, int n_relays)
{
    metrics_free();
    if (!consumer || n_queues < 0 || n_relays < 0)
        return -1;
    metrics_state *m = calloc(1, sizeof *m);
    if (!m)
        return -1;
    m->n_queues = n_queues;
    m->n_relays = n_relays;
    m->start_s = (double)clock_now_ms() / 1000.0;
    m->consumer = strdup(consumer);
    m->queues = calloc((size_t)n_queues + 1, sizeof *m->queues);
    m->relays = calloc((size_t)n_relays + 1, sizeof *m->relays);
    int ok = m->consumer && m->queues && m->relays;
    for (int i = 0; ok && i < n_queues; i++)
        ok = queues[i] && (m->queues[i].name = strdup(queues[i])) != NULL;
    for (int i = 0; ok && i < n_relays; i++)
        ok = relays[i] && (m->relays[i].name = strdup(relays[i])) != NULL;
    if (!ok) {
        state_free(m);
        return -1;
    }
    M = m;
    return 0;
}

void metrics_free(void)
{
    state_free(M);
    M = NULL;
}

static queue_counts *queue_at(int i)
{
    return M && i >= 0 && i < M->n_queues ? &M->queues[i] : NULL;
}

static relay_counts *relay_at(int i)
{
    return M && i >= 0 && i < M->n_relays ? &M->relays[i] : NULL;
}

static void bump(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Counts one observation of us microseconds: in the first bucket whose bound it does
 * not exceed (bounds are inclusive: le), else +Inf. */
static void observe(histogram *h, const double *bounds, size_t n, int64_t us)
{
    if (us < 0)
        us = 0;
    double s = (double)us / 1e6;
    size_t i = 0;
    while (i < n && s > bounds[i])
        i++;
    bump(&h->counts[i], 1);
    bump(&h->sum_us, (uint64_t)us);
}

void metrics_outcome(int queue, mailroom_state state)
{
    queue_counts *q = queue_at(queue);
    for (int i = 0; q && i < N_OUTCOMES; i++)
        if (outcome_states[i] == state)
            bump(&q->outcomes[i], 1);
}

void metrics_queue_time(int queue, int64_t created_ms, int64_t send_at_ms, int64_t begun_ms)
{
    queue_counts *q = queue_at(queue);
    int64_t due_ms = send_at_ms > created_ms ? send_at_ms : created_ms;
    if (q)
        observe(&q->wait, wait_bounds, N_WAIT, (begun_ms - due_ms) * 1000);
}

void metrics_smtp_reply(int relay, int code)
{
    relay_counts *r = relay_at(relay);
    if (r)
        bump(&r->replies[code >= 200 && code < 600 ? code / 100 - 1 : 0], 1);
}

void metrics_send_duration(int relay, int64_t ms)
{
    relay_counts *r = relay_at(relay);
    if (r)
        observe(&r->send, send_bounds, N_SEND, ms * 1000);
}

void metrics_throttled(int relay)
{
    relay_counts *r = relay_at(relay);
    if (r)
        bump(&r->throttled, 1);
}

atomic_int *metrics_sessions_counter(int relay)
{
    relay_counts *r = relay_at(relay);
    return r ? &r->sessions : NULL;
}

void metrics_relay_state(int relay, metrics_circuit circuit, double rate_per_s)
{
    relay_counts *r = relay_at(relay);
    if (!r)
        return;
    int c = circuit >= METRICS_CIRCUIT_CLOSED && circuit <= METRICS_CIRCUIT_OPEN ? (int)circuit : 0;
    atomic_store_explicit(&r->circuit, c, memory_order_relaxed);
    double milli = rate_per_s > 0 && rate_per_s < 1e12 ? rate_per_s * 1000.0 + 0.5 : 0;
    atomic_store_explicit(&r->rate_milli, (uint64_t)milli, memory_order_relaxed);
}

void metrics_redis_connected(int who)
{
    if (!M || who < METRICS_EXPORTER || who >= CONN_SLOTS - 2)
        return;
    int slot = who >= 0 ? who : CONN_SLOTS + who; /* -1, -2: the last two slots */
    if (atomic_exchange(&M->connected[slot], 1))
        bump(&M->reconnects, 1);
}

int metrics_relays_usable(char *why, size_t cap)
{
    int usable = !M || M->n_relays == 0;
    size_t at = (size_t)snprintf(why, cap, "every relay's circuit is open:");
    for (int i = 0; M && i < M->n_relays; i++) {
        if (atomic_load(&M->relays[i].circuit) != METRICS_CIRCUIT_OPEN)
            usable = 1;
        else if (at < cap)
            at += (size_t)snprintf(why + at, cap - at, " %s", M->relays[i].name);
    }
    return usable;
}

/* ------------------------------------------------------------------ the exposition */

void metrics_number(double value, char out[32])
{
    if (isnan(value)) {
        snprintf(out, 32, "NaN");
    } else if (isinf(value)) {
        snprintf(out, 32, "%s", value > 0 ? "+Inf" : "-Inf");
    } else if (value == floor(value) && fabs(value) < 1e15) {
        snprintf(out, 32, "%.0f", value);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(out, 32, "%.*g", prec, value);
            if (strtod(out, NULL) == value)
                break;
        }
    }
}

/* Appends s with the characters the format escapes in a label value (\, ", newline)
 * or in a HELP text (\, newline) escaped. */
static int put_escaped(buf *out, const char *s, int quote)
{
    for (const char *p = s; *p; p++) {
        int rc = *p == '\\'           ? buf_puts(out, "\\\\")
                 : *p == '\n'         ? buf_puts(out, "\\n")
                 : *p == '"' && quote ? buf_puts(out, "\\\"")
                                      : buf_putc(out, *p);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int metrics_family(buf *out, const char *name, const char *type, const char *help)
{
    if (buf_printf(out, "# HELP %s ", name) != 0 || put_escaped(out, help, 0) != 0)
        return -1;
    return buf_printf(out, "\n# TYPE %s %s\n", name, type);
}

int metrics_sample(buf *out, const char *name, const metrics_label *labels, int n_labels,
                   double value)
{
    char number[32];
    if (buf_puts(out, name) != 0)
        return -1;
    for (int i = 0; i < n_labels; i++) {
        if (buf_printf(out, "%s%s=\"", i ? "," : "{", labels[i].name) != 0 ||
            put_escaped(out, labels[i].value, 1) != 0 || buf_putc(out, '"') != 0)
            return -1;
    }
    metrics_number(value, number);
    return buf_printf(out, "%s %s\n", n_labels ? "}" : "", number);
}

/* The samples of one histogram (name_bucket, name_sum, name_count), with one label
 * (label = value) before le. */
static int put_histogram(buf *out, const char *name, const char *label, const char *value,
                         const histogram *h, const double *bounds, size_t n)
{
    char series[96], le[32];
    uint64_t cumulative = 0;
    metrics_label l[2] = {{label, value}, {"le", le}};
    snprintf(series, sizeof series, "%s_bucket", name);
    for (size_t i = 0; i <= n; i++) {
        cumulative += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        metrics_number(i < n ? bounds[i] : INFINITY, le);
        if (metrics_sample(out, series, l, 2, (double)cumulative) != 0)
            return -1;
    }
    snprintf(series, sizeof series, "%s_sum", name);
    double sum = (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6;
    if (metrics_sample(out, series, l, 1, sum) != 0)
        return -1;
    snprintf(series, sizeof series, "%s_count", name);
    return metrics_sample(out, series, l, 1, (double)cumulative);
}

static double load(const _Atomic uint64_t *c)
{
    return (double)atomic_load_explicit(c, memory_order_relaxed);
}

/* mailroom_jobs_total and mailroom_queue_wait_seconds, by queue. */
static int render_queues(buf *out)
{
    if (metrics_family(out, "mailroom_jobs_total", "counter",
                       "Outcomes this consumer recorded, by queue and state (sent, retrying, "
                       "failed, rejected).") != 0)
        return -1;
    for (int q = 0; q < M->n_queues; q++) {
        for (int i = 0; i < N_OUTCOMES; i++) {
            metrics_label l[2] = {{"queue", M->queues[q].name}, {"state", outcome_names[i]}};
            if (metrics_sample(out, "mailroom_jobs_total", l, 2, load(&M->queues[q].outcomes[i])))
                return -1;
        }
    }
    if (metrics_family(out, "mailroom_queue_wait_seconds", "histogram",
                       "How long a job waited from when it was due (created_at, or send_at "
                       "when later) to the start of its first attempt, by queue.") != 0)
        return -1;
    for (int q = 0; q < M->n_queues; q++)
        if (put_histogram(out, "mailroom_queue_wait_seconds", "queue", M->queues[q].name,
                          &M->queues[q].wait, wait_bounds, N_WAIT) != 0)
            return -1;
    return 0;
}

/* mailroom_smtp_replies_total and mailroom_smtp_throttled_total, by relay. */
static int render_replies(buf *out)
{
    if (metrics_family(out, "mailroom_smtp_replies_total", "counter",
                       "SMTP transactions by relay and class of their deciding reply "
                       "(none: the relay never answered).") != 0)
        return -1;
    for (int r = 0; r < M->n_relays; r++) {
        for (int c = 0; c < N_CLASSES; c++) {
            metrics_label l[2] = {{"relay", M->relays[r].name}, {"class", class_names[c]}};
            if (metrics_sample(out, "mailroom_smtp_replies_total", l, 2,
                               load(&M->relays[r].replies[c])) != 0)
                return -1;
        }
    }
    if (metrics_family(out, "mailroom_smtp_throttled_total", "counter",
                       "Attempts the relay throttled (421, 451, 454, or a reply about rate "
                       "or too many).") != 0)
        return -1;
    for (int r = 0; r < M->n_relays; r++) {
        metrics_label l = {"relay", M->relays[r].name};
        if (metrics_sample(out, "mailroom_smtp_throttled_total", &l, 1,
                           load(&M->relays[r].throttled)) != 0)
            return -1;
    }
    return 0;
}

/* mailroom_send_duration_seconds and mailroom_smtp_sessions, by relay. */
static int render_sessions(buf *out)
{
    if (metrics_family(out, "mailroom_send_duration_seconds", "histogram",
                       "An attempt's time from BEGIN (its lease taken) to the relay's final "
                       "reply, by relay.") != 0)
        return -1;
    for (int r = 0; r < M->n_relays; r++)
        if (put_histogram(out, "mailroom_send_duration_seconds", "relay", M->relays[r].name,
                          &M->relays[r].send, send_bounds, N_SEND) != 0)
            return -1;
    if (metrics_family(out, "mailroom_smtp_sessions", "gauge",
                       "SMTP connections of this consumer open now, by relay.") != 0)
        return -1;
    for (int r = 0; r < M->n_relays; r++) {
        metrics_label l = {"relay", M->relays[r].name};
        if (metrics_sample(out, "mailroom_smtp_sessions", &l, 1,
                           (double)atomic_load(&M->relays[r].sessions)) != 0)
            return -1;
    }
    return 0;
}

/* mailroom_relay_circuit_state (one series per state, 1 for the current one) and
 * mailroom_relay_rate_limit_messages_per_second. */
static int render_relays(buf *out)
{
    if (metrics_family(out, "mailroom_relay_circuit_state", "gauge",
                       "The relay's circuit breaker as this consumer last read it: 1 for its "
                       "state (closed, half-open, open), 0 for the others.") != 0)
        return -1;
    for (int r = 0; r < M->n_relays; r++) {
        int now = atomic_load(&M->relays[r].circuit);
        for (int s = 0; s < N_CIRCUIT; s++) {
            metrics_label l[2] = {{"relay", M->relays[r].name}, {"state", circuit_names[s]}};
            if (metrics_sample(out, "mailroom_relay_circuit_state", l, 2, now == s) != 0)
                return -1;
        }
    }
    if (metrics_family(out, "mailroom_relay_rate_limit_messages_per_second", "gauge",
                       "The relay's current shared send rate (adaptive, across consumers), "
                       "messages per second; 0 when unlimited.") != 0)
        return -1;
    for (int r = 0; r < M->n_relays; r++) {
        metrics_label l = {"relay", M->relays[r].name};
        if (metrics_sample(out, "mailroom_relay_rate_limit_messages_per_second", &l, 1,
                           load(&M->relays[r].rate_milli) / 1000.0) != 0)
            return -1;
    }
    return 0;
}

/* The process: Redis reconnects, build and consumer info, start time. */
static int render_process(buf *out)
{
    metrics_label version = {"version", MAILROOM_VERSION_STRING};
    metrics_label consumer = {"consumer", M->consumer};
    if (metrics_family(out, "mailroom_redis_reconnects_total", "counter",
                       "Connections to Redis made again after a worker, the housekeeper or "
                       "the exporter had lost theirs.") != 0 ||
        metrics_sample(out, "mailroom_redis_reconnects_total", NULL, 0, load(&M->reconnects)) ||
        metrics_family(out, "mailroom_build_info", "gauge",
                       "Always 1; the version of mailroom-consumer in a label.") != 0 ||
        metrics_sample(out, "mailroom_build_info", &version, 1, 1) != 0 ||
        metrics_family(out, "mailroom_consumer_info", "gauge",
                       "Always 1; this process's consumer id (logs, Redis) in a label.") != 0 ||
        metrics_sample(out, "mailroom_consumer_info", &consumer, 1, 1) != 0 ||
        metrics_family(out, "process_start_time_seconds", "gauge",
                       "When the process started, seconds since the Unix epoch.") != 0)
        return -1;
    return metrics_sample(out, "process_start_time_seconds", NULL, 0, M->start_s);
}

int metrics_render(buf *out)
{
    if (!M)
        return 0;
    if (render_queues(out) != 0 || render_replies(out) != 0 || render_sessions(out) != 0 ||
        render_relays(out) != 0 || render_process(out) != 0)
        return -1;
    return 0;
}
