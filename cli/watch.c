/*
 * watch.c — `mailroom watch [--json] [--count N] [--timeout DURATION]`: prints every
 * status event of the queue as it arrives, from a mailroom_watch (mailroom_admin.h),
 * until the count, the idle timeout, SIGINT or SIGTERM (all exit 0), or a lost
 * subscription (69). With --from ID|0|$ or --group NAME [--consumer NAME] it reads the
 * events stream instead (mailroom_stream, mailroom_admin.h), which keeps the events:
 * from a position (resume after an entry id), or as a reader of a consumer group that
 * acknowledges each event once it is printed, so a watcher that stops and starts
 * again with the same group and consumer name goes on where it left off.
 *
 * The signal handlers are this program's (a library installs none): they only set a
 * flag, without SA_RESTART, so the library's wait returns early and the loop sees the
 * flag within one poll of at most WATCH_POLL_MS. --json prints each event exactly as
 * published (from the stream: its members, then "stream_id"); the readable form masks
 * control characters and colours the state on a terminal, and from the stream starts
 * with the entry id. Events lost to the stream's trimming are announced on stderr.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define WATCH_POLL_MS 250 /* how often watch looks at the signal flag */

static volatile sig_atomic_t watch_stop;

static void on_stop_signal(int sig)
{
    watch_stop = sig;
}

/* SIGINT and SIGTERM set watch_stop; no SA_RESTART, so a wait returns at once. */
static int install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return -1;
    return 0;
}

/* Milliseconds of a monotonic clock. */
static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The ANSI colour of a state: sent green, retrying yellow, failed/rejected red. */
static const char *state_colour(const char *state)
{
    if (strcmp(state, "sent") == 0)
        return "\033[32m";
    if (strcmp(state, "retrying") == 0)
        return "\033[33m";
    if (strcmp(state, "failed") == 0 || strcmp(state, "rejected") == 0)
        return "\033[31m";
    return NULL;
}

/*
 * Prints one event readably: time, state (coloured when asked), id, attempt number,
 * then the error when there is one, else the SMTP reply. A payload that is not a JSON
 * object is shown masked after a "?".
 */
static void print_event_text(const mailroom_event *ev, int colour)
{
    if (!ev->is_object) {
        fputs("? ", stdout);
        out_clean(ev->payload, stdout);
        fputc('\n', stdout);
        return;
    }
    const char *on = colour && ev->state ? state_colour(ev->state) : NULL;
    size_t state_len = ev->state ? strlen(ev->state) : 1;
    out_clean(ev->at ? ev->at : "-", stdout);
    fputs("  ", stdout);
    if (on)
        fputs(on, stdout);
    out_clean(ev->state ? ev->state : "?", stdout);
    if (on)
        fputs("\033[0m", stdout);
    printf("%*s  ", state_len < 9 ? (int)(9 - state_len) : 0, "");
    out_clean(ev->id ? ev->id : "-", stdout);
    printf("  #%d", ev->attempts);
    const char *detail = ev->error && *ev->error ? ev->error : ev->smtp_reply;
    if (detail && *detail) {
        fputs("  ", stdout);
        out_clean(detail, stdout);
    }
    if (ev->relay_id) {
        fputs("  relay id ", stdout);
        out_clean(ev->relay_id, stdout);
    }
    for (size_t i = 0; i < ev->n_recipients; i++) {
        const mailroom_recipient *r = &ev->recipients[i];
        fputs(i ? ", " : "  recipients: ", stdout);
        out_clean(r->address, stdout);
        fputc(' ', stdout);
        out_clean(r->state, stdout);
        if (r->code)
            printf(" %d", r->code);
    }
    fputc('\n', stdout);
}

/* The options of watch. */
struct watch_opts {
    int json, colour;
    long count;        /* stop after this many events; 0 = no limit */
    long long idle_ms; /* stop after this long without an event; 0 = never */
    const char *from;  /* the stream: where to start (NULL: the status channel) */
    const char *group; /* the stream: as a reader of this consumer group */
    char consumer[65]; /* with group: this reader's name */
};

/* When the loop ends: the count reached or the idle timeout passed since `last`. */
struct watch_progress {
    long seen;
    long long last;
};

/* How long the next wait may be: WATCH_POLL_MS, less when the idle timeout is closer;
 * 0 when the idle timeout has passed. */
static long long next_wait(const struct watch_opts *o, const struct watch_progress *p)
{
    long long wait = WATCH_POLL_MS;
    if (o->idle_ms > 0) {
        long long left = p->last + o->idle_ms - now_ms();
        if (left <= 0)
            return 0;
        wait = left < wait ? left : wait;
    }
    return wait;
}

/* After an event was printed: flushes stdout; 1 when the count is reached. */
static int event_done(const struct watch_opts *o, struct watch_progress *p, struct failure *f,
                      int *rc)
{
    *rc = out_flush("watch", f);
    if (*rc != EXIT_OK)
        return 1;
    p->last = now_ms();
    return o->count > 0 && ++p->seen >= o->count;
}

/*
 * The event loop of the status channel: waits for the next event at most
 * WATCH_POLL_MS (or what is left of the idle timeout) at a time, so that the stop flag
 * is seen promptly. Ends on a signal, the count or the idle timeout (EXIT_OK), a lost
 * subscription, or stdout.
 */
static int watch_loop(mailroom *m, mailroom_watch *w, const struct watch_opts *o, struct failure *f)
{
    struct watch_progress p = {0, now_ms()};
    int rc = EXIT_OK;
    long long wait;
    while (!watch_stop && (wait = next_wait(o, &p)) > 0) {
        const mailroom_event *ev = NULL;
        int lrc = mailroom_watch_next(w, (int)wait, &ev);
        if (lrc != MAILROOM_OK)
            return fail_admin(f, m, lrc);
        if (!ev)
            continue;
        if (o->json) {
            fwrite(ev->payload, 1, ev->payload_len, stdout);
            fputc('\n', stdout);
        } else {
            print_event_text(ev, o->colour);
        }
        if (event_done(o, &p, f, &rc))
            return rc;
    }
    return rc;
}

/* A stream event as one JSON line: the event's members as published, then
 * "stream_id" (and "trimmed", "redelivered" when true); an entry whose payload is not
 * a JSON object is {"stream_id", "payload"} with the payload as a string. */
static int print_stream_json(const mailroom_stream_event *sev, struct failure *f)
{
    const mailroom_event *ev = sev->event;
    json_object *o = ev->is_object ? json_tokener_parse(ev->payload) : NULL;
    int ok = 1;
    if (!o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = json_object_new_object();
        ok = o && out_json_set(o, "payload",
                               json_object_new_string_len(ev->payload, (int)ev->payload_len)) == 0;
    }
    ok = ok && out_json_set(o, "stream_id", json_object_new_string(sev->stream_id)) == 0;
    if (ok && sev->trimmed)
        ok = out_json_set(o, "trimmed", json_object_new_boolean(1)) == 0;
    if (ok && sev->redelivered)
        ok = out_json_set(o, "redelivered", json_object_new_boolean(1)) == 0;
    int rc = ok ? out_json_line(o, f) : fail(f, EXIT_SOFTWARE, "out of memory");
    json_object_put(o);
    return rc;
}

/* Prints one stream event, after a warning on stderr when events were lost before it. */
static int print_stream_event(const mailroom_stream_event *sev, const struct watch_opts *o,
                              struct failure *f)
{
    if (sev->trimmed) {
        fflush(stdout);
        fprintf(stderr,
                "mailroom: warning: events before %s were trimmed from the stream before "
                "they were read (lost to this reader)\n",
                sev->stream_id);
    }
    if (o->json)
        return print_stream_json(sev, f);
    fputs(sev->stream_id, stdout);
    fputs("  ", stdout);
    print_event_text(sev->event, o->colour);
    return EXIT_OK;
}

/* The event loop of the stream: like watch_loop; a group reader acknowledges each
 * event once it is printed and flushed. */
static int stream_loop(mailroom *m, mailroom_stream *s, const struct watch_opts *o,
                       struct failure *f)
{
    struct watch_progress p = {0, now_ms()};
    int rc = EXIT_OK;
    long long wait;
    while (!watch_stop && (wait = next_wait(o, &p)) > 0) {
        const mailroom_stream_event *sev = NULL;
        int lrc = mailroom_stream_next(s, (int)wait, &sev);
        if (lrc != MAILROOM_OK)
            return fail_admin(f, m, lrc);
        if (!sev)
            continue;
        if ((rc = print_stream_event(sev, o, f)) != EXIT_OK)
            return rc;
        int stop = event_done(o, &p, f, &rc);
        if (rc != EXIT_OK)
            return rc;
        if (o->group && (lrc = mailroom_stream_ack(s, sev->stream_id)) != MAILROOM_OK)
            return fail_admin(f, m, lrc);
        if (stop)
            return EXIT_OK;
    }
    return rc;
}

/* The default reader name of --group: this host's name, with every byte outside
 * [A-Za-z0-9._:-] made '-', so that a restarted watch on the same host goes on with
 * the events its previous run was given. */
static void default_consumer(char out[65])
{
    char host[65] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "watch");
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-", *p))
            *p = '-';
    snprintf(out, 65, "%s", host);
}

/* Reads watch's options (values checked here: exit 64). */
static int watch_options(const struct cli *c, struct watch_opts *o, struct failure *f)
{
    int rc = EXIT_OK;
    memset(o, 0, sizeof *o);
    o->json = c->count[O_JSON] > 0;
    o->colour = !o->json && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    o->from = c->value[O_FROM];
    o->group = c->value[O_GROUP];
    if (c->value[O_CONSUMER] && !o->group)
        return fail(f, EXIT_USAGE, "watch: --consumer needs --group");
    if (o->group && c->value[O_CONSUMER])
        snprintf(o->consumer, sizeof o->consumer, "%s", c->value[O_CONSUMER]);
    else if (o->group)
        default_consumer(o->consumer);
    if (c->value[O_COUNT])
        rc = option_positive("count", c->value[O_COUNT], 1000000000L, &o->count, f);
    if (rc == EXIT_OK && c->value[O_TIMEOUT])
        rc = option_duration("timeout", c->value[O_TIMEOUT], 0, &o->idle_ms, f);
    return rc;
}

/* Opens the stream reader --from and --group ask for; a bad value is a usage error. */
static int open_stream(mailroom *m, const struct watch_opts *o, mailroom_stream **s,
                       struct failure *f)
{
    mailroom_stream_options so;
    mailroom_stream_options_init(&so);
    if (o->from)
        so.start = o->from;
    if (o->group) {
        so.group = o->group;
        so.consumer = o->consumer;
    }
    if (o->count > 0 && o->count < so.batch)
        so.batch = (int)o->count; /* a group would hold on to events never printed */
    int lrc = mailroom_stream_open(m, &so, s);
    if (lrc == MAILROOM_EINVAL)
        return fail(f, EXIT_USAGE, "watch: %s", mailroom_errmsg(m));
    return lrc == MAILROOM_OK ? EXIT_OK : fail_admin(f, m, lrc);
}

/* `watch`: options, the stop handlers, a handle and its watch (or stream reader), then
 * the loop; everything is closed whatever happened. */
int cmd_watch(const struct cli *c, struct failure *f)
{
    struct watch_opts o;
    mailroom *m = NULL;
    mailroom_watch *w = NULL;
    mailroom_stream *s = NULL;
    int rc = watch_options(c, &o, f);
    if (rc != EXIT_OK)
        goto out;
    if (install_stop_handlers() != 0) {
        rc = fail(f, EXIT_SOFTWARE, "watch: sigaction: %s", strerror(errno));
        goto out;
    }
    if ((rc = open_handle(c, 0, 0, 1, &m, f)) != EXIT_OK)
        goto out;
    if (o.from || o.group) {
        if ((rc = open_stream(m, &o, &s, f)) == EXIT_OK)
            rc = stream_loop(m, s, &o, f);
        goto out;
    }
    int lrc = mailroom_watch_open(m, &w);
    rc = lrc == MAILROOM_OK ? watch_loop(m, w, &o, f) : fail_admin(f, m, lrc);
out:
    mailroom_stream_close(s);
    mailroom_watch_close(w);
    mailroom_close(m);
    return rc;
}
