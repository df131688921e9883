/*
 * mailroom-consumer: takes jobs from a mailroom queue, verifies, sends, reports.
 *
 * main() reads flags and environment into one consumer_config, starts --concurrency
 * worker threads, then becomes the housekeeper: once a second it heartbeats (and
 * recovers consumers that went silent) and moves due scheduled jobs back to pending,
 * between waits for SIGTERM/SIGINT. On the first signal it sets `stopping`: workers
 * take no more jobs and finish the one in hand. When --shutdown-timeout passes or a
 * second signal comes, it sets `hurry`: sends in progress are abandoned. Then anything
 * still in this consumer's processing list goes back to pending, the consumer leaves
 * the heartbeat set, and it exits 0.
 * Secrets (signing keys, Redis password) come from the environment or files only.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "housekeeper.h"
#include "http.h"
#include "lanes.h"
#include "log.h"
#include "metrics.h"
#include "mirror.h"
#include "options.h"
#include "schedule.h"
#include "worker.h"

/* Waits up to ms for SIGTERM/SIGINT; returns the signal or 0. */
static int wait_signal(const sigset_t *set, long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    int sig = sigtimedwait(set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

/* The once-a-second duties; a Redis outage is logged once, not every second. */
static void housekeeping_tick(housekeeper *h, int *redis_down)
{
    housekeeping_follow_master(h);
    long beat = housekeeping_heartbeat(h);
    long promoted = beat >= 0 ? housekeeping_promote(h) : -1;
    if (promoted >= 0)
        housekeeping_orphans(h);
    if (promoted >= 0)
        mirror_refresh(h);
    if ((beat < 0 || promoted < 0) && !*redis_down)
        log_msg(LOG_WARN, NULL,
                "housekeeping: Redis unavailable or refusing; retrying every second");
    else if (beat >= 0 && promoted >= 0 && *redis_down)
        log_msg(LOG_INFO, NULL, "housekeeping: Redis is back");
    *redis_down = beat < 0 || promoted < 0;
}

/* Every minute: what this process did in that minute and since it started. */
typedef struct summary {
    int64_t next_ms;
    long sent, retried, failed, rejected, put_back; /* totals at the previous line */
} summary;

static void summary_tick(consumer_config *cfg, summary *sm)
{
    int64_t now = clock_now_ms();
    if (now < sm->next_ms)
        return;
    if (sm->next_ms == 0) {
        sm->next_ms = now + 60000;
        return;
    }
    long sent = atomic_load(&cfg->n_sent), retried = atomic_load(&cfg->n_retried);
    long failed = atomic_load(&cfg->n_failed), rejected = atomic_load(&cfg->n_rejected);
    long put_back = atomic_load(&cfg->n_throttled) + atomic_load(&cfg->n_unreachable);
    log_msg(LOG_INFO, NULL,
            "summary: last minute sent %ld (%.1f/s), retried %ld, failed %ld, rejected %ld, "
            "put back uncounted %ld; since start sent %ld, retried %ld, failed %ld, rejected %ld",
            sent - sm->sent, (double)(sent - sm->sent) / 60.0, retried - sm->retried,
            failed - sm->failed, rejected - sm->rejected, put_back - sm->put_back, sent, retried,
            failed, rejected);
    *sm = (summary){now + 60000, sent, retried, failed, rejected, put_back};
}

/*
 * After the first signal: waits for the workers to finish their jobs, heart-beating
 * meanwhile so no one recovers jobs still in hand; hurries them at the timeout or on
 * a second signal.
 */
static void drain(consumer_config *cfg, housekeeper *h, const sigset_t *set, int *redis_down)
{
    int64_t deadline = clock_now_ms() + cfg->shutdown_timeout_ms, next_tick = 0;
    while (atomic_load(&cfg->running) > 0) {
        int sig = wait_signal(set, 100);
        if ((sig || clock_now_ms() >= deadline) && !atomic_load(&cfg->hurry)) {
            log_msg(LOG_WARN, NULL, "%s: abandoning sends in progress",
                    sig ? "second signal" : "shutdown timeout");
            atomic_store(&cfg->hurry, 1);
        }
        if (clock_now_ms() >= next_tick) {
            housekeeping_tick(h, redis_down);
            next_tick = clock_now_ms() + 1000;
        }
    }
}

/* The line that says the consumer runs: its lanes, workers, relays and id. */
static void log_ready(const consumer_config *cfg)
{
    char lanes[LANE_MAX * (KEYS_QUEUE_MAX + 8)], relays[RELAY_MAX * 320] = "", rate[64] = "";
    lanes_describe(cfg, lanes, sizeof lanes);
    for (int r = 0, at = 0; r < cfg->n_relays; r++) {
        const smtp_config *s = &cfg->relays[r].smtp;
        at += snprintf(relays + at, sizeof relays - (size_t)at, "%s%s (tls %s%s)",
                       r ? ", then " : "", s->url,
                       strncmp(s->url, "smtps://", 8) == 0 ? "implicit"
                       : s->tls_required                   ? "required"
                                                           : "none",
                       s->user ? ", auth" : "");
    }
    if (cfg->rate_max > 0)
        snprintf(rate, sizeof rate, ", rate %.6g/s per relay", cfg->rate_max);
    log_msg(LOG_INFO, NULL, "ready: queue%s %s%s, %d workers, smtp %s%s, consumer %s",
            cfg->n_lanes > 1 ? "s" : "", lanes,
            cfg->n_lanes > 1 ? (cfg->weighted ? " (by weight)" : " (in strict order)") : "",
            cfg->concurrency, relays, rate, cfg->id);
}

/*
 * Starts the worker threads, with 256 KiB stacks (the workers' frames are small; 256
 * of them at the default 8 MiB would only reserve address space, but a small stack
 * keeps a runaway recursion from going unnoticed). On a failure the ones started are
 * told to stop and -1 is returned; *started counts them.
 */
static int start_workers(consumer_config *cfg, housekeeper *h, int *started)
{
    pthread_attr_t attr;
    int rc = -1;
    if (pthread_attr_init(&attr) != 0)
        goto out;
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (; *started < cfg->concurrency; (*started)++) {
        worker *w = &h->workers[*started];
        h->n_workers = *started + 1;
        atomic_fetch_add(&cfg->running, 1);
        if (worker_init(w, *started, cfg) != 0 ||
            pthread_create(&w->thread, &attr, worker_main, w) != 0) {
            atomic_fetch_sub(&cfg->running, 1);
            log_msg(LOG_ERROR, NULL, "cannot start worker %d", *started);
            worker_free(w);
            atomic_store(&cfg->stopping, 1);
            goto out;
        }
    }
    rc = 0;
out:
    pthread_attr_destroy(&attr);
    return rc;
}

/* Logs "ready" once, when the first heartbeat has succeeded (Redis answers); returns
 * whether it has been logged. */
static int log_ready_once(const consumer_config *cfg, int logged)
{
    if (logged || atomic_load(&cfg->heartbeat_ok_ms) == 0)
        return logged;
    log_ready(cfg);
    return 1;
}

static int run(consumer_config *cfg)
{
    int rc = 1, started = 0, redis_down = 0, ready = 0;
    housekeeper h = {.cfg = cfg};
    http_server *web = NULL; /* --http */
    mr_error err = MR_ERROR_INIT;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    worker *workers = calloc((size_t)cfg->concurrency, sizeof *workers);
    if (!workers) {
        log_msg(LOG_ERROR, NULL, "out of memory");
        goto out;
    }
    h.workers = workers;
    /* metrics: counting, the queue exporter and /metrics, /healthz, /readyz (--http) */
    if (cfg->http && !(web = http_start(cfg, &err))) {
        log_msg(LOG_ERROR, NULL, "%s", err.msg);
        goto out;
    }
    for (int r = 0; r < cfg->n_relays; r++) /* the SMTP sessions open, per relay */
        cfg->relays[r].smtp.open_count = metrics_sessions_counter(r);
    long back = housekeeping_reclaim(&h, "returned by a restart of its consumer");
    if (back > 0)
        log_msg(LOG_INFO, NULL, "returned %ld jobs left by an earlier run to pending", back);
    housekeeping_tick(&h, &redis_down);
    if (start_workers(cfg, &h, &started) != 0)
        goto join;
    if (cfg->relays[0].smtp.insecure)
        log_msg(LOG_WARN, NULL, "SMTP server certificates are NOT verified (--smtp-insecure)");
    ready = log_ready_once(cfg, ready);
    int sig = 0;
    summary sm = {0};
    while (!(sig = wait_signal(&set, 1000))) {
        housekeeping_tick(&h, &redis_down);
        ready = log_ready_once(cfg, ready);
        summary_tick(cfg, &sm);
    }
    log_msg(LOG_INFO, NULL, "%s: finishing jobs in hand", sig == SIGINT ? "SIGINT" : "SIGTERM");
    atomic_store(&cfg->stopping, 1);
    rc = 0;
join:
    drain(cfg, &h, &set, &redis_down);
    for (int i = 0; i < started; i++) {
        pthread_join(workers[i].thread, NULL);
        worker_free(&workers[i]);
    }
    back = housekeeping_reclaim(&h, "returned by its consumer at shutdown");
    if (back > 0)
        log_msg(LOG_INFO, NULL, "returned %ld unfinished jobs to pending", back);
    else if (back < 0)
        log_msg(LOG_WARN, NULL,
                "could not return unfinished jobs: Redis unavailable; "
                "another consumer will recover them");
    log_msg(LOG_INFO, NULL, "stopped");
out:
    http_stop(web);
    housekeeping_close(&h);
    free(workers);
    return rc;
}

int main(int argc, char **argv)
{
    consumer_config *cfg = calloc(1, sizeof *cfg);
    consumer_options opts;
    mr_error err = MR_ERROR_INIT;
    int rc = 1;
    if (!cfg) {
        fprintf(stderr, "mailroom-consumer: out of memory\n");
        return 1;
    }
    /* Block the stop signals first, in every thread to come: main() takes them with
     * sigtimedwait, so a SIGTERM that comes while the consumer is still starting is
     * kept and answered by a clean stop, not by dying. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    options_result parsed = options_parse(argc, argv, &opts, &err);
    if (parsed != OPTIONS_RUN) {
        if (parsed == OPTIONS_USAGE)
            fprintf(stderr, "mailroom-consumer: %s (see --help)\n", err.msg);
        rc = parsed == OPTIONS_EXIT ? 0 : 64;
        goto out;
    }
    if (opts.retry_table) {
        schedule_print(stdout, &opts);
        rc = 0;
        goto out;
    }
    if (config_load(cfg, &opts, &err) != 0) {
        fprintf(stderr, "mailroom-consumer: %s\n", err.msg);
        rc = 78;
        goto out;
    }
    /* Up to 256 threads would each get a malloc arena of their own; four keep the
     * memory they churn (messages, replies) shared, and the process small. */
    mallopt(M_ARENA_MAX, 4);
    signal(SIGPIPE, SIG_IGN);
    rc = run(cfg);
out:
    config_clear(cfg);
    free(cfg);
    return rc;
}
