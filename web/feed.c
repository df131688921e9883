/*
 * feed.c — the live feed: every status event of the dashboard's queues, as
 * server-sent events (text/event-stream, at /events).
 *
 * One thread per queue holds a subscription (mailroom_watch_* of mailroom_admin.h, on a
 * handle of its own: a watch belongs to its handle's thread) and puts each event, made
 * into one line of JSON by json-c, into a ring of the last FEED_RING events, numbered.
 * Each client's stream (a libmicrohttpd content reader, running in its connection's
 * own thread) waits on the ring's condition variable and writes what it has not sent
 * yet: Redis sees one subscription per queue however many browsers watch. A new
 * client first gets the last FEED_RECENT messages; one that reconnects with
 * Last-Event-ID gets what it missed while it is still in the ring, else a "reset" event (the page then reloads its figures). A lost subscription
 * is reopened every second; clients get a "feed" message saying it is down or up.
 *
 * The feed owns the ring's texts, the threads and their handles. A stream ends when
 * the feed stops (SIGTERM), so the server's stop never waits on an idle stream.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "web.h"

#define FEED_RING 512
#define FEED_RECENT 50          /* messages a new client gets from before it came */
#define FEED_BLOCK (128 * 1024) /* bytes a stream writes at most per call */
#define FEED_KEEPALIVE_S 15     /* a comment line when nothing happened */
#define WATCH_WAIT_MS 500       /* how often a subscriber looks at the stop flag */

typedef struct feed_item {
    unsigned long long seq;
    char *text; /* one line of JSON, owned */
} feed_item;

/* A queue's subscriber thread. */
typedef struct feed_queue {
    struct web_feed *f;
    const char *name; /* the web_queue's */
    pthread_t thread;
    int started;
} feed_queue;

struct web_feed {
    web_app *app;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    feed_item ring[FEED_RING];
    unsigned long long next_seq; /* the ring holds [next_seq - FEED_RING, next_seq) */
    int stopping;
    long clients;
    unsigned long long epoch; /* this run's id: a Last-Event-ID of another run is stale */
    feed_queue *queues;
    size_t n_queues;
};

/* One client's stream. */
typedef struct feed_client {
    struct web_feed *f;
    unsigned long long next; /* the next seq to send */
    int greeted, reset;
} feed_client;

/* ------------------------------------------------------------------ the ring */

/* Adds a text (owned from here) to the ring and wakes the streams. */
static void ring_put(struct web_feed *f, char *text)
{
    pthread_mutex_lock(&f->lock);
    feed_item *it = &f->ring[f->next_seq % FEED_RING];
    free(it->text);
    *it = (feed_item){f->next_seq, text};
    f->next_seq++;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

/* Puts one message {"type": type, "queue": q, key: value} (value owned). */
static void publish(struct web_feed *f, const char *type, const char *queue, const char *key,
                    json_object *value)
{
    json_object *o = json_object_new_object();
    if (!o || wj_set(o, "type", wj_str(type)) != 0 || wj_set(o, "queue", wj_str(queue)) != 0) {
        json_object_put(o);
        json_object_put(value);
        return;
    }
    if (wj_set(o, key, value) == 0) {
        char *text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
        if (text)
            ring_put(f, text);
    }
    json_object_put(o);
}

/* ------------------------------------------------------------------ subscribers */

/* Waits up to ms unless the feed stops meanwhile. 1 when it is stopping. */
static int pause_unless_stopping(struct web_feed *f, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->lock);
    while (!f->stopping && pthread_cond_timedwait(&f->cond, &f->lock, &until) != ETIMEDOUT)
        ;
    int stopping = f->stopping;
    pthread_mutex_unlock(&f->lock);
    return stopping;
}

static int is_stopping(struct web_feed *f)
{
    pthread_mutex_lock(&f->lock);
    int s = f->stopping;
    pthread_mutex_unlock(&f->lock);
    return s;
}

/* Relays a watch's events until it fails or the feed stops. */
static void relay_events(feed_queue *fq, mailroom *m, mailroom_watch *w)
{
    publish(fq->f, "feed", fq->name, "state", wj_str("up"));
    while (!is_stopping(fq->f)) {
        const mailroom_event *ev = NULL;
        if (mailroom_watch_next(w, WATCH_WAIT_MS, &ev) != MAILROOM_OK) {
            web_log("warn", "live feed of %s lost: %s", fq->name, mailroom_errmsg(m));
            publish(fq->f, "feed", fq->name, "state", wj_str("down"));
            return;
        }
        if (ev)
            publish(fq->f, "event", fq->name, "event", wj_parse(ev->payload, ev->payload_len));
    }
}

/* A queue's subscriber: (re)opens its handle and watch until the feed stops. */
static void *subscriber(void *arg)
{
    feed_queue *fq = arg;
    int warned = 0;
    while (!is_stopping(fq->f)) {
        mailroom_options o;
        mailroom_options_init(&o);
        o.redis_url = fq->f->app->redis_url;
        o.queue = fq->name;
        mailroom *m = NULL;
        mailroom_watch *w = NULL;
        int rc = mailroom_open(&m, &o);
        if (rc == MAILROOM_OK)
            rc = mailroom_watch_open(m, &w);
        if (rc == MAILROOM_OK) {
            warned = 0;
            relay_events(fq, m, w);
        } else if (!warned++) {
            web_log("warn", "live feed of %s: %s (retrying every second)", fq->name,
                    m ? mailroom_errmsg(m) : mailroom_strerror(rc));
        }
        mailroom_watch_close(w);
        mailroom_close(m);
        pause_unless_stopping(fq->f, 1000);
    }
    return NULL;
}

/* web_feed_start (web.h). */
struct web_feed *web_feed_start(web_app *app)
{
    struct web_feed *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->app = app;
    f->epoch = (unsigned long long)time(NULL);
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->queues = calloc(app->n_queues, sizeof *f->queues);
    f->n_queues = app->n_queues;
    for (size_t i = 0; f->queues && i < app->n_queues; i++) {
        feed_queue *fq = &f->queues[i];
        *fq = (feed_queue){f, app->queues[i].name, 0, 0};
        fq->started = pthread_create(&fq->thread, NULL, subscriber, fq) == 0;
        if (!fq->started) {
            web_feed_stop(f);
            web_feed_free(f);
            return NULL;
        }
    }
    if (!f->queues) {
        web_feed_free(f);
        return NULL;
    }
    return f;
}

/* web_feed_stop (web.h): the streams see the flag at once, the subscribers within
 * WATCH_WAIT_MS. */
void web_feed_stop(struct web_feed *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->lock);
    f->stopping = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    for (size_t i = 0; f->queues && i < f->n_queues; i++)
        if (f->queues[i].started) {
            pthread_join(f->queues[i].thread, NULL);
            f->queues[i].started = 0;
        }
}

/* web_feed_free (web.h): after the server stopped (no stream left). */
void web_feed_free(struct web_feed *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < FEED_RING; i++)
        free(f->ring[i].text);
    free(f->queues);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* ------------------------------------------------------------------ streams */

/* Appends "id: E-S\ndata: TEXT\n\n" to buf when it fits. The bytes written, or 0. */
static size_t put_item(const struct web_feed *f, const feed_item *it, char *buf, size_t max)
{
    int n = snprintf(buf, max, "id: %llu-%llu\ndata: %s\n\n", f->epoch, it->seq, it->text);
    return n > 0 && (size_t)n < max ? (size_t)n : 0;
}

/* Writes what the client has not had yet, as much as fits. Under the lock. */
static size_t put_pending(feed_client *c, char *buf, size_t max)
{
    struct web_feed *f = c->f;
    size_t used = 0;
    if (f->next_seq > FEED_RING && c->next < f->next_seq - FEED_RING) {
        c->next = f->next_seq - FEED_RING; /* fell behind: the page reloads */
        c->reset = 1;
    }
    if (c->reset) {
        int n = snprintf(buf, max, "event: reset\ndata: {}\n\n");
        if (n <= 0 || (size_t)n >= max)
            return 0;
        used = (size_t)n;
        c->reset = 0;
    }
    while (c->next < f->next_seq) {
        size_t n = put_item(f, &f->ring[c->next % FEED_RING], buf + used, max - used);
        if (n == 0 && used > 0)
            break; /* the rest goes in the next call */
        c->next++; /* an event larger than a whole block is skipped */
        used += n;
    }
    return used;
}

/* Waits until the client has something to get, the feed stops or the keep-alive is
 * due. Under the lock. */
static void wait_news(feed_client *c)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += FEED_KEEPALIVE_S;
    while (!c->f->stopping && c->next == c->f->next_seq && !c->reset)
        if (pthread_cond_timedwait(&c->f->cond, &c->f->lock, &until) == ETIMEDOUT)
            break;
}

/* libmicrohttpd's content reader of a stream: blocks in the connection's own thread. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    feed_client *c = cls;
    (void)pos;
    if (!c->greeted) {
        c->greeted = 1;
        int n = snprintf(buf, max, "retry: 2000\nevent: hello\ndata: {}\n\n");
        return n > 0 && (size_t)n < max ? n : 0;
    }
    pthread_mutex_lock(&c->f->lock);
    wait_news(c);
    ssize_t r;
    if (c->f->stopping) {
        r = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        size_t n = put_pending(c, buf, max);
        if (n == 0)
            n = (size_t)snprintf(buf, max, ": keep-alive\n\n");
        r = (ssize_t)n;
    }
    pthread_mutex_unlock(&c->f->lock);
    return r;
}

/* Frees a client when its connection ends. */
static void stream_free(void *cls)
{
    feed_client *c = cls;
    pthread_mutex_lock(&c->f->lock);
    c->f->clients--;
    pthread_mutex_unlock(&c->f->lock);
    free(c);
}

/* Where a client starts: a new one with the last FEED_RECENT messages (the page then
 * shows what just happened), a reconnecting one after the seq of its Last-Event-ID
 * when it is of this run, else at the newest with a reset. Under the lock. */
static void resume_point(feed_client *c, const char *last)
{
    unsigned long long epoch, seq;
    char tail;
    c->next = c->f->next_seq;
    if (!last) {
        c->next = c->next > FEED_RECENT ? c->next - FEED_RECENT : 0;
        return;
    }
    if (sscanf(last, "%llu-%llu%c", &epoch, &seq, &tail) == 2 && epoch == c->f->epoch &&
        seq < c->f->next_seq)
        c->next = seq + 1;
    else
        c->reset = 1;
}

/* web_feed_response (web.h). */
struct MHD_Response *web_feed_response(struct web_feed *f, const char *last_event_id)
{
    feed_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->f = f;
    pthread_mutex_lock(&f->lock);
    int room = f->clients < f->app->opt.max_streams;
    if (room) {
        f->clients++;
        resume_point(c, last_event_id);
    }
    pthread_mutex_unlock(&f->lock);
    if (!room) {
        free(c);
        return NULL;
    }
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, FEED_BLOCK,
                                                                  stream_read, c, stream_free);
    if (!resp) {
        stream_free(c);
        return NULL;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* nginx: do not buffer */
    return resp;
}
