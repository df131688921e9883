/*
 * exporter: see exporter.h. One thread refreshes every queue's figures in turn with
 * the exporter script (common/lua/exporter.lua: the lease, the figures and a sample of
 * the oldest pending jobs in one round trip), reads the sample's shape (shape.c), turns
 * due times into ages with the Redis server's clock (so the consumer hosts' clocks do
 * not matter), and stores the figures under the mutex; exporter_render() copies them
 * out under the same mutex and writes them with metrics.h's exposition functions.
 */
#define _POSIX_C_SOURCE 200809L
#include "exporter.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "job.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "script.h"
#include "shape.h"

#define REFRESH_MS 5000  /* how often the figures are read */
#define LEASE_MS "15000" /* the exporter lease's life (docs/redis.md) */
#define FRESH_MS 12000   /* figures older than this are not exported */
#define ALIVE_MS "10000" /* a consumer heart-beaten this recently is alive */
#define SAMPLE "500"     /* pending jobs sampled for the per-domain figures */
#define BUDGET "1048576" /* ... at most about this many bytes of them */
#define CONNECT_MS 2000  /* the exporter's Redis connection: connect timeout */
#define COMMAND_MS 3000  /* ... and command timeout */
#define FIXED 8          /* the script's answer: the figures before the sampled jobs */

typedef struct domain_figures {
    char name[SHAPE_DOMAIN_MAX + 1];
    double jobs, oldest_age_s;
} domain_figures;

/* The figures of a queue, in the order the script answers them (then the age). */
enum {
    F_PENDING,
    F_SCHEDULED,
    F_PROCESSING,
    F_DEAD,
    F_PAUSED,
    F_CONSUMERS,
    F_SAMPLED,
    F_OLDEST_AGE,
    N_FIGURES
};

/* Their series: one gauge each, labelled with the queue. */
static const struct {
    const char *name, *help;
} figure_series[N_FIGURES] = {
    {"mailroom_queue_pending", "Jobs waiting in pending."},
    {"mailroom_queue_scheduled", "Jobs in scheduled: retries and jobs whose send_at is to come."},
    {"mailroom_queue_processing", "Jobs in the processing lists of the queue's consumers."},
    {"mailroom_queue_dead", "Entries of the dead list."},
    {"mailroom_queue_paused", "1 while the queue is paused, else 0."},
    {"mailroom_queue_consumers", "Consumers of the queue whose heartbeat is at most 10 s old."},
    {"mailroom_queue_sampled_jobs",
     "How many of the oldest pending jobs the per-domain figures were read from."},
    {"mailroom_queue_oldest_pending_age_seconds",
     "Age of the oldest pending job, from its created_at or later send_at (0 when pending is "
     "empty): the queue's latency."},
};

/* One queue's figures as last read; held 0: another consumer exports the queue. */
typedef struct queue_figures {
    int held;
    int64_t read_mono_ms; /* when they were read (clock_mono_ms); 0: never */
    double v[N_FIGURES];
    int n_domains;
    domain_figures domains[SHAPE_TOP];
} queue_figures;

struct exporter {
    const rconn_url *redis; /* borrowed */
    char consumer[KEYS_QUEUE_MAX + 1];
    int n_queues;
    keys_queue *keys;       /* owned, n_queues */
    queue_figures *figures; /* owned, n_queues; under lock */
    pthread_mutex_t lock;
    pthread_cond_t wake; /* signalled by exporter_stop */
    int stop;            /* under lock */
    int started;         /* the thread runs (joined by exporter_stop) */
    pthread_t thread;
    redisContext *c; /* the thread's own; NULL while disconnected */
};

/* ------------------------------------------------------------------ reading Redis */

/* Runs the exporter script for queue i (ttl: LEASE_MS, or "0" to give the lease up) on
 * the thread's connection, connecting first when needed. Returns the reply (caller
 * frees), or NULL when Redis could not be reached or failed (the connection is then
 * dropped, so the next call reconnects). */
static redisReply *run_script(exporter *e, int i, const char *ttl)
{
    mr_error err = MR_ERROR_INIT;
    if (!e->c) {
        e->c = rconn_connect(e->redis, CONNECT_MS, COMMAND_MS, &err);
        if (!e->c)
            return NULL;
        metrics_redis_connected(METRICS_EXPORTER);
    }
    const keys_queue *k = &e->keys[i];
    char prefix[KEYS_NAME_MAX], max_bytes[24];
    keys_processing(k, "", prefix);
    snprintf(max_bytes, sizeof max_bytes, "%d", JOB_MAX_BYTES);
    exporter_args a = {0};
    a.v[EXPORTER_KEY_exporter] = k->exporter;
    a.v[EXPORTER_KEY_pending] = k->pending;
    a.v[EXPORTER_KEY_scheduled] = k->scheduled;
    a.v[EXPORTER_KEY_dead] = k->dead;
    a.v[EXPORTER_KEY_consumers] = k->consumers;
    a.v[EXPORTER_KEY_recovered] = k->recovered;
    a.v[EXPORTER_KEY_paused] = k->paused;
    a.v[EXPORTER_ARG_consumer] = e->consumer;
    a.v[EXPORTER_ARG_ttl_ms] = ttl;
    a.v[EXPORTER_ARG_processing_prefix] = prefix;
    a.v[EXPORTER_ARG_alive_ms] = ALIVE_MS;
    a.v[EXPORTER_ARG_sample] = SAMPLE;
    a.v[EXPORTER_ARG_budget] = BUDGET;
    a.v[EXPORTER_ARG_max_bytes] = max_bytes;
    redisReply *r = script_run(e->c, SCRIPT_EXPORTER, a.v, a.len, &err);
    if (!r || rconn_transient_error(r)) {
        freeReplyObject(r);
        redisFree(e->c);
        e->c = NULL;
        return NULL;
    }
    return r;
}

/* Seconds from due_ms to now_ms, never below 0; 0 when due_ms is unknown (0). */
static double age_s(int64_t now_ms, int64_t due_ms)
{
    return due_ms > 0 && now_ms > due_ms ? (double)(now_ms - due_ms) / 1000.0 : 0;
}

/* The sampled jobs of the script's answer (after the FIXED figures) into f: the age of
 * the oldest and the top domains. 0, or -1 when memory ran out. */
static int read_sample(const redisReply *r, int64_t now_ms, queue_figures *f)
{
    size_t n = r->elements - FIXED;
    const char **raw = calloc(n + 1, sizeof *raw);
    size_t *len = calloc(n + 1, sizeof *len);
    shape sh;
    int rc = -1;
    if (!raw || !len)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[FIXED + i];
        raw[i] = e->type == REDIS_REPLY_STRING ? e->str : "";
        len[i] = e->type == REDIS_REPLY_STRING ? e->len : 0;
    }
    if (shape_read(raw, len, n, &sh) != 0)
        goto out;
    f->v[F_SAMPLED] = (double)sh.sampled;
    f->v[F_OLDEST_AGE] = f->v[F_PENDING] > 0 ? age_s(now_ms, sh.oldest_due_ms) : 0;
    f->n_domains = sh.n_domains;
    for (int i = 0; i < sh.n_domains; i++) {
        memcpy(f->domains[i].name, sh.domains[i].name, sizeof f->domains[i].name);
        f->domains[i].jobs = (double)sh.domains[i].jobs;
        f->domains[i].oldest_age_s = age_s(now_ms, sh.domains[i].oldest_due_ms);
    }
    rc = 0;
out:
    free(raw);
    free(len);
    return rc;
}

/* The script's answer into f. 0, or -1 when it is not one the script gives (or memory
 * ran out). */
static int parse_figures(const redisReply *r, queue_figures *f)
{
    memset(f, 0, sizeof *f);
    if (r->type == REDIS_REPLY_INTEGER)
        return 0; /* another consumer holds the lease */
    if (r->type != REDIS_REPLY_ARRAY || r->elements < FIXED)
        return -1;
    for (size_t i = 0; i < FIXED; i++)
        if (r->element[i]->type != REDIS_REPLY_INTEGER)
            return -1;
    f->held = 1;
    f->read_mono_ms = clock_mono_ms();
    for (size_t i = 0; i < F_SAMPLED; i++)
        f->v[i] = (double)r->element[i + 2]->integer;
    return read_sample(r, (int64_t)r->element[1]->integer, f);
}

/* Reads queue i's figures (renewing or taking the lease) and stores them. A failure
 * leaves the last figures, which stop being exported once they are too old. */
static void refresh(exporter *e, int i)
{
    redisReply *r = run_script(e, i, LEASE_MS);
    if (!r)
        return;
    queue_figures f;
    if (parse_figures(r, &f) == 0) {
        pthread_mutex_lock(&e->lock);
        e->figures[i] = f;
        pthread_mutex_unlock(&e->lock);
    } else {
        log_limited(LOG_ERROR, "exporter", 60000,
                    "metrics exporter: queue %s: unexpected reply%s%.200s", e->keys[i].queue,
                    r->type == REDIS_REPLY_ERROR ? ": " : "",
                    r->type == REDIS_REPLY_ERROR ? r->str : "");
    }
    freeReplyObject(r);
}

/* At the stop: the leases this consumer holds are given up, so that another consumer
 * exports the queues at its next refresh; only when the connection is up. */
static void release(exporter *e)
{
    for (int i = 0; i < e->n_queues && e->c; i++) {
        pthread_mutex_lock(&e->lock);
        int held = e->figures[i].held;
        pthread_mutex_unlock(&e->lock);
        if (held)
            freeReplyObject(run_script(e, i, "0"));
    }
}

/* Waits until ms from now or the stop. Called with lock held. */
static void wait_or_stop(exporter *e, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!e->stop && pthread_cond_timedwait(&e->wake, &e->lock, &until) == 0)
        ;
}

static void *exporter_main(void *arg)
{
    exporter *e = arg;
    pthread_mutex_lock(&e->lock);
    while (!e->stop) {
        pthread_mutex_unlock(&e->lock);
        for (int i = 0; i < e->n_queues; i++)
            refresh(e, i);
        pthread_mutex_lock(&e->lock);
        wait_or_stop(e, REFRESH_MS);
    }
    pthread_mutex_unlock(&e->lock);
    release(e);
    return NULL;
}

/* ------------------------------------------------------------------ the lifecycle */

static void exporter_free(exporter *e)
{
    if (e->c)
        redisFree(e->c);
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->lock);
    free(e->keys);
    free(e->figures);
    free(e);
}

/* The mutex and the condition variable, whose waits use the monotonic clock. */
static int sync_init(exporter *e)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return -1;
    int rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
                     pthread_cond_init(&e->wake, &attr) == 0
                 ? 0
                 : -1;
    pthread_condattr_destroy(&attr);
    if (rc == 0 && pthread_mutex_init(&e->lock, NULL) != 0) {
        pthread_cond_destroy(&e->wake);
        rc = -1;
    }
    return rc;
}

exporter *exporter_start(const rconn_url *redis, const char *consumer, const char *const *queues,
                         int n_queues, mr_error *err)
{
    if (!keys_queue_valid(consumer) || n_queues < 1) {
        mr_fail(err, MAILROOM_EINVAL, "metrics exporter: a consumer id and a queue are needed");
        return NULL;
    }
    exporter *e = calloc(1, sizeof *e);
    if (!e || sync_init(e) != 0) {
        free(e);
        mr_fail(err, MAILROOM_ENOMEM, "metrics exporter: out of memory");
        return NULL;
    }
    e->redis = redis;
    e->n_queues = n_queues;
    snprintf(e->consumer, sizeof e->consumer, "%s", consumer);
    e->keys = calloc((size_t)n_queues, sizeof *e->keys);
    e->figures = calloc((size_t)n_queues, sizeof *e->figures);
    if (!e->keys || !e->figures) {
        mr_fail(err, MAILROOM_ENOMEM, "metrics exporter: out of memory");
        goto fail;
    }
    for (int i = 0; i < n_queues; i++) {
        if (!queues[i] || keys_init(&e->keys[i], queues[i]) != 0) {
            mr_fail(err, MAILROOM_EINVAL, "metrics exporter: bad queue name");
            goto fail;
        }
    }
    if (pthread_create(&e->thread, NULL, exporter_main, e) != 0) {
        mr_fail(err, MAILROOM_ENOMEM, "metrics exporter: cannot start its thread");
        goto fail;
    }
    e->started = 1;
    return e;
fail:
    exporter_free(e);
    return NULL;
}

void exporter_stop(exporter *e)
{
    if (!e)
        return;
    if (e->started) {
        pthread_mutex_lock(&e->lock);
        e->stop = 1;
        pthread_cond_signal(&e->wake);
        pthread_mutex_unlock(&e->lock);
        pthread_join(e->thread, NULL);
    }
    exporter_free(e);
}

/* ------------------------------------------------------------------ the exposition */

/* The figure's gauge: one sample per exported queue. */
static int put_figure(buf *out, int which, const keys_queue *keys, const queue_figures *f, int n)
{
    const char *name = figure_series[which].name;
    if (metrics_family(out, name, "gauge", figure_series[which].help) != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        metrics_label l = {"queue", keys[i].queue};
        if (f[i].held && metrics_sample(out, name, &l, 1, f[i].v[which]) != 0)
            return -1;
    }
    return 0;
}

/* The per-domain families of the exported queues. */
static int put_domains(buf *out, const keys_queue *keys, const queue_figures *f, int n)
{
    static const char *const names[2] = {"mailroom_queue_domain_pending",
                                         "mailroom_queue_domain_oldest_age_seconds"};
    static const char *const helps[2] = {
        "Of the sampled oldest pending jobs, how many have a recipient at the domain "
        "(the top 10 domains of the queue).",
        "Age of the oldest sampled pending job with a recipient at the domain, seconds."};
    int any = 0;
    for (int i = 0; i < n; i++)
        any |= f[i].held && f[i].n_domains > 0;
    for (int k = 0; any && k < 2; k++) {
        if (metrics_family(out, names[k], "gauge", helps[k]) != 0)
            return -1;
        for (int i = 0; i < n; i++) {
            for (int d = 0; f[i].held && d < f[i].n_domains; d++) {
                const domain_figures *df = &f[i].domains[d];
                metrics_label l[2] = {{"queue", keys[i].queue}, {"domain", df->name}};
                if (metrics_sample(out, names[k], l, 2, k ? df->oldest_age_s : df->jobs) != 0)
                    return -1;
            }
        }
    }
    return 0;
}

/* Which queues this consumer exports now: every one, 1 or 0. */
static int put_exporter(buf *out, const keys_queue *keys, const queue_figures *f, int n)
{
    if (metrics_family(out, "mailroom_queue_exporter", "gauge",
                       "1 when this consumer exports the queue's figures (it holds "
                       "mailroom:{Q}:exporter), else 0.") != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        metrics_label l = {"queue", keys[i].queue};
        if (metrics_sample(out, "mailroom_queue_exporter", &l, 1, f[i].held) != 0)
            return -1;
    }
    return 0;
}

/* Every queue's exporter gauge; the figures when this consumer exports any queue. */
static int put_figures(buf *out, const keys_queue *keys, const queue_figures *f, int n)
{
    int any = 0;
    for (int i = 0; i < n; i++)
        any |= f[i].held;
    if (put_exporter(out, keys, f, n) != 0)
        return -1;
    if (!any)
        return 0;
    for (int which = 0; which < N_FIGURES; which++)
        if (put_figure(out, which, keys, f, n) != 0)
            return -1;
    return put_domains(out, keys, f, n);
}

int exporter_render(exporter *e, buf *out)
{
    if (!e)
        return 0;
    queue_figures *f = calloc((size_t)e->n_queues, sizeof *f);
    if (!f)
        return -1;
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&e->lock);
    memcpy(f, e->figures, (size_t)e->n_queues * sizeof *f);
    pthread_mutex_unlock(&e->lock);
    for (int i = 0; i < e->n_queues; i++)
        f[i].held = f[i].held && now - f[i].read_mono_ms <= FRESH_MS;
    int rc = put_figures(out, e->keys, f, e->n_queues);
    free(f);
    return rc;
}
