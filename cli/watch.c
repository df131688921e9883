/*
 * watch.c — `mailroom watch [--json] [--count N] [--timeout DURATION]`: prints every
 * status event of the queue as it arrives, from a mailroom_watch (mailroom_admin.h),
 * until the count, the idle timeout, SIGINT or SIGTERM (all exit 0), or a lost
 * subscription (69).
 *
 * The signal handlers are this program's (a library installs none): they only set a
 * flag, without SA_RESTART, so the library's wait returns early and the loop sees the
 * flag within one poll of at most WATCH_POLL_MS. --json prints each event exactly as
 * published; the readable form masks control characters and colours the state on a
 * terminal.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
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
};

/*
 * The event loop: waits for the next event at most WATCH_POLL_MS (or what is left of
 * the idle timeout) at a time, so that the stop flag is seen promptly. Ends on a
 * signal, the count or the idle timeout (EXIT_OK), a lost subscription, or stdout.
 */
static int watch_loop(mailroom *m, mailroom_watch *w, const struct watch_opts *o, struct failure *f)
{
    long seen = 0;
    long long last = now_ms();
    while (!watch_stop) {
        long long wait = WATCH_POLL_MS;
        if (o->idle_ms > 0) {
            long long left = last + o->idle_ms - now_ms();
            if (left <= 0)
                return EXIT_OK;
            wait = left < wait ? left : wait;
        }
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
        int rc = out_flush("watch", f);
        if (rc != EXIT_OK)
            return rc;
        last = now_ms();
        if (o->count > 0 && ++seen >= o->count)
            return EXIT_OK;
    }
    return EXIT_OK;
}

/* Reads watch's options (values checked here: exit 64). */
static int watch_options(const struct cli *c, struct watch_opts *o, struct failure *f)
{
    int rc = EXIT_OK;
    memset(o, 0, sizeof *o);
    o->json = c->count[O_JSON] > 0;
    o->colour = !o->json && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    if (c->value[O_COUNT])
        rc = option_positive("count", c->value[O_COUNT], 1000000000L, &o->count, f);
    if (rc == EXIT_OK && c->value[O_TIMEOUT])
        rc = option_duration("timeout", c->value[O_TIMEOUT], 0, &o->idle_ms, f);
    return rc;
}

/* `watch`: options, the stop handlers, a handle and its watch, then the loop; the
 * handle and the watch are closed whatever happened. */
int cmd_watch(const struct cli *c, struct failure *f)
{
    struct watch_opts o;
    mailroom *m = NULL;
    mailroom_watch *w = NULL;
    int rc = watch_options(c, &o, f);
    if (rc != EXIT_OK)
        goto out;
    if (install_stop_handlers() != 0) {
        rc = fail(f, EXIT_SOFTWARE, "watch: sigaction: %s", strerror(errno));
        goto out;
    }
    if ((rc = open_handle(c, 0, 0, 1, &m, f)) != EXIT_OK)
        goto out;
    int lrc = mailroom_watch_open(m, &w);
    rc = lrc == MAILROOM_OK ? watch_loop(m, w, &o, f) : fail_admin(f, m, lrc);
out:
    mailroom_watch_close(w);
    mailroom_close(m);
    return rc;
}
