/*
 * mailroom-webhook: posts every final outcome of a queue (sent, failed, rejected,
 * cancelled) to the application's URL (docs/webhook.md).
 *
 * It reads the queue's events stream as a reader of a consumer group (libmailroom's
 * mailroom_stream), so Redis keeps its position: after a restart its own pending
 * events come first, then new ones, and instances with the same group share the
 * events (a dead instance's are taken over after --claim-after). An event that is not
 * an outcome is acknowledged at once. An outcome is POSTed, signed (deliver.c), and
 * acknowledged only after a 2xx; otherwise it waits in the retry set (retry.c), while
 * the following events go on, and is claimed and posted again after a capped,
 * jittered exponential backoff, until a 2xx or until it is --max-age old, when it is
 * given up and recorded (state.c). When the application answers again after
 * failures, every waiting event is made due at once. Deliveries are at least once:
 * a crash between a 2xx and its acknowledgement repeats one, with the same delivery
 * id, which the application uses to act once.
 *
 * main() loads the configuration (exit 64 on bad usage, 78 on bad configuration),
 * then loops until SIGTERM/SIGINT (exit 0), which end the wait for events at once but
 * let a delivery in progress finish (at most --timeout). Secrets come from the
 * environment or a file only and are never logged; neither is the URL's query.
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "deliver.h"
#include "log.h"
#include "mailroom.h"
#include "mailroom_admin.h"
#include "retry.h"
#include "state.h"

#define EXIT_USAGE 64
#define EXIT_CONFIG 78
#define WAIT_MAX_MS 1000      /* the longest wait for events: ticks and the stop flag */
#define TICK_MS 1000          /* the delivery state's lag and URL */
#define SUMMARY_MS 60000      /* a summary line */
#define UNACKED_MAX 256       /* delivered, acknowledgement failed: not delivered again */
#define REDIS_LOG_EVERY 10000 /* one line per 10 s while Redis fails */
#define DELIVERY_ID_MAX (KEYS_QUEUE_MAX + MAILROOM_STREAM_ID_MAX + 2)

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

/* SIGTERM and SIGINT set the flag, without SA_RESTART, so that waits end at once;
 * SIGPIPE is ignored (a peer that went away is an error, not a death). */
static int install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

/* Sleeps up to ms; a signal ends it early. */
static void nap(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    if (ms > 0)
        nanosleep(&ts, NULL);
}

/* Everything the loop works with. */
typedef struct webhook {
    const webhook_config *cfg;
    mailroom *m;        /* owned: the handle the stream reports its errors on */
    mailroom_stream *s; /* owned; NULL until opened */
    deliverer *d;       /* owned */
    webhook_state st;
    retry_set retries;
    char unacked[UNACKED_MAX][MAILROOM_STREAM_ID_MAX]; /* a ring of ids */
    size_t n_unacked;
    int failing; /* the last attempt failed: a 2xx now wakes the retries */
    uint32_t rnd;
    int64_t next_tick, next_summary;
    long delivered, failures, gave_up; /* since the last summary */
} webhook;

/* A random 32-bit value for the backoff's jitter (xorshift: spreading retries needs
 * no cryptographic quality). */
static uint32_t jitter_random(webhook *w)
{
    w->rnd ^= w->rnd << 13;
    w->rnd ^= w->rnd >> 17;
    w->rnd ^= w->rnd << 5;
    return w->rnd;
}

/* ------------------------------------------------------------------ acknowledgements */

/* Acknowledges an event; when Redis fails, remembers it as delivered so that its
 * redelivery (after the reader reconnects) is acknowledged without posting it again. */
static void ack(webhook *w, const char *id)
{
    if (mailroom_stream_ack(w->s, id) == MAILROOM_OK)
        return;
    log_limited(LOG_WARN, "ack", REDIS_LOG_EVERY, "events stream: cannot acknowledge %s: %s", id,
                mailroom_errmsg(w->m));
    snprintf(w->unacked[w->n_unacked++ % UNACKED_MAX], MAILROOM_STREAM_ID_MAX, "%s", id);
}

/* 1 (and acknowledged again) when id was delivered and its acknowledgement failed. */
static int already_delivered(webhook *w, const char *id)
{
    size_t n = w->n_unacked < UNACKED_MAX ? w->n_unacked : UNACKED_MAX;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(w->unacked[i], id) == 0) {
            if (mailroom_stream_ack(w->s, id) == MAILROOM_OK)
                w->unacked[i][0] = '\0';
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ one attempt */

/* 1 for the states of a final outcome, the events the application is told about. */
static int is_final(const mailroom_event *ev)
{
    static const char *const finals[] = {"sent", "failed", "rejected", "cancelled"};
    for (size_t i = 0; ev->is_object && ev->state && i < sizeof finals / sizeof *finals; i++)
        if (strcmp(ev->state, finals[i]) == 0)
            return 1;
    return 0;
}

/* The body of a delivery: the event's members as published, then "delivery_id" (so
 * the id is signed too). A new json-c object, or NULL when memory ran out. */
static json_object *delivery_body(const mailroom_event *ev, const char *delivery_id)
{
    json_object *o = json_tokener_parse(ev->payload);
    if (o && json_object_object_add(o, "delivery_id", json_object_new_string(delivery_id)) == 0)
        return o;
    json_object_put(o);
    return NULL;
}

/* An event given up: acknowledged, counted, recorded, logged. */
static void give_up(webhook *w, const mailroom_stream_event *sev, const char *delivery_id,
                    int attempts, const char *why)
{
    log_msg(LOG_ERROR, sev->event->id, "gave up delivery %s (%s) after %d attempts over %lld s: %s",
            delivery_id, sev->event->state, attempts,
            (long long)(clock_now_ms() - sev->stream_ms) / 1000, why);
    state_gave_up(&w->st, sev, delivery_id, attempts, why);
    retry_remove(&w->retries, sev->stream_id);
    ack(w, sev->stream_id);
    w->gave_up++;
}

/* After a failed attempt: the next one after the backoff, never later than the
 * event's deadline (it happened --max-age ago then); past the deadline, given up. */
static void schedule(webhook *w, const mailroom_stream_event *sev, const char *delivery_id,
                     int attempts, const char *why)
{
    int64_t now = clock_now_ms(), deadline = sev->stream_ms + w->cfg->o.max_age;
    if (now >= deadline) {
        give_up(w, sev, delivery_id, attempts, why);
        return;
    }
    int64_t due = now + retry_delay_ms(attempts, w->cfg->o.backoff_base, w->cfg->o.backoff_max,
                                       jitter_random(w));
    retry_put(&w->retries, sev->stream_id, attempts, due < deadline ? due : deadline);
    log_msg(LOG_WARN, sev->event->id, "delivery %s (%s) attempt %d failed: %s; next in %lld ms",
            delivery_id, sev->event->state, attempts, why,
            (long long)((due < deadline ? due : deadline) - now));
}

/* After a 2xx: acknowledged, counted, recorded; the first 2xx after failures wakes
 * every waiting event (the application is back). */
static void delivered(webhook *w, const mailroom_stream_event *sev, const char *delivery_id,
                      int attempts, const delivery_result *r)
{
    ack(w, sev->stream_id);
    retry_remove(&w->retries, sev->stream_id);
    log_msg(LOG_INFO, sev->event->id, "delivered %s (%s) attempt %d: HTTP %ld in %lld ms",
            delivery_id, sev->event->state, attempts, r->status, (long long)r->duration_ms);
    if (w->failing && w->retries.n)
        retry_wake_all(&w->retries, clock_now_ms());
    w->failing = 0;
    w->delivered++;
}

/* Posts an outcome: attempt number `attempts`. */
static void attempt(webhook *w, const mailroom_stream_event *sev, int attempts)
{
    char delivery_id[DELIVERY_ID_MAX];
    delivery_result r;
    snprintf(delivery_id, sizeof delivery_id, "%s/%s", w->cfg->keys.queue, sev->stream_id);
    json_object *body = delivery_body(sev->event, delivery_id);
    const char *text = body ? json_object_to_json_string_ext(
                                  body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
                            : NULL;
    int ok = text ? deliver_post(w->d, text, strlen(text), delivery_id, attempts, &r) : -1;
    json_object_put(body);
    if (ok < 0) {
        /* memory: try again later, as for a failed attempt */
        snprintf(r.error, sizeof r.error, "%s", "out of memory");
        schedule(w, sev, delivery_id, attempts, r.error);
        return;
    }
    state_attempt(&w->st, sev->stream_id, &r, ok);
    if (ok) {
        delivered(w, sev, delivery_id, attempts, &r);
        return;
    }
    w->failing = 1;
    w->failures++;
    schedule(w, sev, delivery_id, attempts, r.error);
}

/* ------------------------------------------------------------------ the loop */

/* An event read from the stream: one already waiting for a retry is left to it (a
 * reconnect delivers pending events again); one delivered whose acknowledgement
 * failed is acknowledged; one that is not an outcome is acknowledged; an outcome is
 * posted. */
static void handle_new(webhook *w, const mailroom_stream_event *sev)
{
    if (sev->trimmed)
        log_msg(LOG_ERROR, NULL,
                "events before %s were trimmed from the stream before this webhook read "
                "them: their outcomes were never posted",
                sev->stream_id);
    if (retry_find(&w->retries, sev->stream_id) || already_delivered(w, sev->stream_id))
        return;
    if (!is_final(sev->event)) {
        ack(w, sev->stream_id);
        return;
    }
    attempt(w, sev, 1);
}

/* A waiting event whose time came: claimed again (which also keeps other instances'
 * take-over away) and posted. Gone from the pending list: someone else dealt with it,
 * or it was trimmed; dropped. A Redis failure: tried again in a second. */
static void run_retry(webhook *w, const retry_entry *e)
{
    char id[MAILROOM_STREAM_ID_MAX];
    int attempts = e->attempts;
    snprintf(id, sizeof id, "%s", e->id);
    const mailroom_stream_event *sev = NULL;
    int rc = mailroom_stream_claim(w->s, id, &sev);
    if (rc == MAILROOM_ENOTFOUND) {
        log_msg(LOG_WARN, NULL, "event %s is no longer pending (taken over, or trimmed): dropped",
                id);
        retry_remove(&w->retries, id);
    } else if (rc != MAILROOM_OK) {
        log_limited(LOG_WARN, "claim", REDIS_LOG_EVERY, "events stream: %s", mailroom_errmsg(w->m));
        retry_put(&w->retries, id, attempts, clock_now_ms() + 1000);
    } else {
        attempt(w, sev, attempts + 1);
    }
}

/* Opens the stream reader when it is not open. 0, or -1 (logged; tried again later). */
static int ensure_reader(webhook *w)
{
    if (w->s)
        return 0;
    mailroom_stream_options so;
    mailroom_stream_options_init(&so);
    so.start = w->cfg->o.start;
    so.group = w->cfg->o.group;
    so.consumer = w->cfg->id;
    so.claim_after_ms = w->cfg->o.claim_after;
    int rc = mailroom_stream_open(w->m, &so, &w->s);
    if (rc == MAILROOM_OK)
        return 0;
    log_limited(LOG_WARN, "open", REDIS_LOG_EVERY, "events stream: %s (retrying every second)",
                mailroom_errmsg(w->m));
    return -1;
}

/* Reads new events for up to ms and handles one. */
static void read_new(webhook *w, int64_t ms)
{
    const mailroom_stream_event *sev = NULL;
    if (mailroom_stream_next(w->s, (int)ms, &sev) != MAILROOM_OK) {
        log_limited(LOG_WARN, "next", REDIS_LOG_EVERY, "events stream: %s (retrying)",
                    mailroom_errmsg(w->m));
        nap(WAIT_MAX_MS);
    } else if (sev) {
        handle_new(w, sev);
    }
}

/* One step: a due retry, else new events (not while the retry set is full), waiting
 * at most until the next retry is due or WAIT_MAX_MS. */
static void step(webhook *w)
{
    if (ensure_reader(w) != 0) {
        nap(WAIT_MAX_MS);
        return;
    }
    int64_t now = clock_now_ms(), wait = WAIT_MAX_MS;
    const retry_entry *first = retry_earliest(&w->retries);
    if (first && first->due_ms <= now) {
        run_retry(w, first);
        return;
    }
    if (first && first->due_ms - now < wait)
        wait = first->due_ms - now;
    if (w->retries.n >= w->retries.cap)
        nap(wait);
    else
        read_new(w, wait);
}

/* Every second the delivery state's lag; every minute a summary line. */
static void tick(webhook *w)
{
    int64_t now = clock_mono_ms();
    if (now >= w->next_tick) {
        state_tick(&w->st);
        w->next_tick = now + TICK_MS;
    }
    if (now < w->next_summary)
        return;
    if (w->next_summary)
        log_msg(LOG_INFO, NULL,
                "summary: last minute delivered %ld, failed attempts %ld, gave up %ld; %zu "
                "waiting for a retry",
                w->delivered, w->failures, w->gave_up, w->retries.n);
    w->delivered = w->failures = w->gave_up = 0;
    w->next_summary = now + SUMMARY_MS;
}

/* The handle the stream reader works through: the queue and Redis of the options,
 * no signing key (the webhook signs nothing of the queue's; a key meant for producers
 * in the environment must not stop it), a command timeout that a busy Redis meets. */
static int open_handle(webhook *w, mr_error *err)
{
    unsetenv("MAILROOM_KEYS_FILE");
    unsetenv("MAILROOM_SECRET");
    mailroom_options mo;
    mailroom_options_init(&mo);
    mo.redis_url = w->cfg->o.redis;
    mo.queue = w->cfg->o.queue;
    mo.command_timeout_ms = 5000;
    int rc = mailroom_open(&w->m, &mo);
    if (rc == MAILROOM_OK || rc == MAILROOM_EREDIS || rc == MAILROOM_ETIMEOUT)
        return w->m ? 0 : mr_fail(err, MAILROOM_ENOMEM, "out of memory");
    return mr_fail(err, (mailroom_rc)rc, "%s", mailroom_errmsg(w->m));
}

/* Until a signal: the loop; then what is left is logged. */
static void run(webhook *w)
{
    const webhook_config *cfg = w->cfg;
    if (cfg->http_remote)
        log_msg(LOG_WARN, NULL, "posting over plain http:// to a remote host (--allow-http)");
    log_msg(LOG_INFO, NULL,
            "ready: queue %s, group %s as %s, posting to %s, %d secret%s, max age %lld s",
            cfg->keys.queue, cfg->o.group, cfg->id, cfg->url_shown, cfg->n_secrets,
            cfg->n_secrets > 1 ? "s" : "", (long long)(cfg->o.max_age / 1000));
    while (!stop_signal) {
        step(w);
        tick(w);
    }
    log_msg(LOG_INFO, NULL,
            "%s: stopped; %zu events waiting for a retry stay pending for the next run",
            stop_signal == SIGINT ? "SIGINT" : "SIGTERM", w->retries.n);
}

/* Options and configuration: 0 to run, else the exit status (the reason printed). */
static int configure(int argc, char **argv, webhook_options *o, webhook_config *cfg)
{
    mr_error err = MR_ERROR_INIT;
    opttable_result pr = webhook_options_parse(argc, argv, o, &err);
    if (pr == OPTTABLE_EXIT)
        return -1;
    if (pr == OPTTABLE_USAGE) {
        fprintf(stderr, "mailroom-webhook: %s (see --help)\n", err.msg);
        return EXIT_USAGE;
    }
    if (webhook_config_load(cfg, o, &err) != 0 ||
        log_setup(o->log_level, o->log_format, cfg->id) != 0) {
        fprintf(stderr, "mailroom-webhook: configuration: %s\n", err.msg);
        return EXIT_CONFIG;
    }
    return 0;
}

int main(int argc, char **argv)
{
    webhook_options o;
    webhook_config *cfg = calloc(1, sizeof *cfg);
    webhook *w = calloc(1, sizeof *w);
    mr_error err = MR_ERROR_INIT;
    int rc = 1;
    if (!cfg || !w || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "mailroom-webhook: out of memory\n");
        goto out;
    }
    if ((rc = configure(argc, argv, &o, cfg)) != 0) {
        rc = rc < 0 ? 0 : rc;
        goto out;
    }
    *w =
        (webhook){.cfg = cfg, .st = {.cfg = cfg}, .rnd = (uint32_t)getpid() ^ (uint32_t)time(NULL)};
    w->rnd |= 1;
    if (install_signals() != 0 || retry_init(&w->retries, (size_t)o.max_retrying) != 0 ||
        !(w->d = deliverer_new(cfg)) || open_handle(w, &err) != 0) {
        log_msg(LOG_ERROR, NULL, "cannot start: %s", err.msg[0] ? err.msg : strerror(errno));
        rc = err.rc == MAILROOM_EINVAL || err.rc == MAILROOM_EKEY ? EXIT_CONFIG : 1;
        goto out;
    }
    run(w);
    rc = 0;
out:
    if (w) {
        mailroom_stream_close(w->s);
        mailroom_close(w->m);
        deliverer_free(w->d);
        state_close(&w->st);
        retry_free(&w->retries);
    }
    webhook_config_free(cfg);
    free(cfg);
    free(w);
    curl_global_cleanup();
    return rc;
}
