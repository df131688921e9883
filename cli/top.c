/*
 * top.c — `mailroom top [--queue a,b,c] [--once]`: a terminal view of one or more
 * queues refreshed every second, as `asynq dash` shows asynq's: per queue the
 * pending, scheduled, processing and dead jobs, whether it is paused, the age of its
 * oldest pending job and the sent and failed per minute; then the consumers (once
 * each, whichever queues they serve) and the relays with their circuit and rate.
 *
 * Each refresh reads mailroom_stats_read() per queue (one handle per queue: a handle
 * serves one) and mailroom_relays_read() once, then draws a frame. The loop takes the
 * terminal with plain ANSI escapes (the alternate screen, the cursor hidden, keys read
 * without echo) and gives it back however it ends: q, Ctrl-C (SIGINT) or SIGTERM. A
 * Redis failure is shown in the frame and the next refresh tries again. --once prints
 * one frame without escapes (scripts and tests use it) and exits; without it, top
 * refuses to run unless stdout is a terminal.
 *
 * Every string from Redis is masked (control characters as '?') and cut to its
 * column, so no consumer id or relay error can move the cursor or break the layout.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define TOP_MAX_QUEUES 32
#define TOP_REFRESH_MS 1000

static volatile sig_atomic_t top_stop;

static void on_stop(int sig)
{
    top_stop = sig;
}

/* The queues of a view and their handles; one frame's data. */
struct view {
    const char *names[TOP_MAX_QUEUES]; /* point into list */
    mailroom *handles[TOP_MAX_QUEUES];
    size_t n;
    char list[1024];                       /* --queue, split in place */
    mailroom_stats *stats[TOP_MAX_QUEUES]; /* this frame's; NULL after a failure */
    mailroom_relays *relays;
    char error[512]; /* this frame's first failure; "" when none */
};

/* ------------------------------------------------------------------ columns */

enum align { LEFT, RIGHT, LAST }; /* LAST: left, not padded (the line's last column) */

/* Prints s masked (control characters as '?'), cut or padded to width columns (a
 * UTF-8 character is one column), aligned as align says. */
static void col(FILE *fp, const char *s, int width, enum align align)
{
    int used = 0;
    const unsigned char *p = (const unsigned char *)s, *end = p;
    while (*end && used < width) {
        end++;
        while ((*end & 0xc0) == 0x80)
            end++;
        used++;
    }
    if (align == RIGHT)
        fprintf(fp, "%*s", width - used, "");
    for (; p < end; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            fputc('?', fp);
        } else if (*p == 0xc2 && p + 1 < end && p[1] >= 0x80 && p[1] <= 0x9f) {
            fputc('?', fp); /* a C1 control, U+0080..U+009F */
            p++;
        } else {
            fputc(*p, fp);
        }
    }
    if (align == LEFT)
        fprintf(fp, "%*s", width - used, "");
}

/* A number in a right-aligned column. */
static void col_num(FILE *fp, long long v, int width)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", v);
    col(fp, text, width, RIGHT);
}

/* Seconds with one decimal, "-" for none, right-aligned. */
static void col_secs(FILE *fp, long long ms, int width, int none)
{
    char text[32];
    if (none)
        snprintf(text, sizeof text, "-");
    else
        snprintf(text, sizeof text, "%.1fs", (double)ms / 1000.0);
    col(fp, text, width, RIGHT);
}

/* ------------------------------------------------------------------ a frame */

/* The queues' table: one row per queue, "(error)" for a queue that could not be read. */
static void draw_queues(FILE *fp, const struct view *v)
{
    fputs("QUEUE                 STATE     PENDING SCHEDULED PROCESSING    DEAD   OLDEST"
          "  SENT/MIN FAILED/MIN\n",
          fp);
    for (size_t i = 0; i < v->n; i++) {
        const mailroom_stats *s = v->stats[i];
        col(fp, v->names[i], 20, LEFT);
        fputs("  ", fp);
        if (!s) {
            fputs("(error)\n", fp);
            continue;
        }
        long long held = 0;
        for (size_t k = 0; k < s->n_processing; k++)
            held += s->processing[k].jobs;
        col(fp, s->paused ? "PAUSED" : "running", 8, LEFT);
        col_num(fp, s->pending, 9);
        col_num(fp, s->scheduled, 10);
        col_num(fp, held, 11);
        col_num(fp, s->dead, 8);
        col_secs(fp, s->oldest_pending_age_ms, 9, s->pending == 0);
        fprintf(fp, "%10.1f %10.1f\n", s->sent_per_min, s->failed_per_min);
    }
}

/* The first row of consumer id among the queues before queue q (it is drawn once). */
static int seen_before(const struct view *v, size_t q, const char *id)
{
    for (size_t i = 0; i < q; i++)
        for (size_t k = 0; v->stats[i] && k < v->stats[i]->n_consumers; k++)
            if (strcmp(v->stats[i]->consumers[k].id, id) == 0)
                return 1;
    return 0;
}

/* The jobs consumer id holds in every queue of the view. */
static long long held_everywhere(const struct view *v, const char *id)
{
    long long n = 0;
    for (size_t i = 0; i < v->n; i++)
        for (size_t k = 0; v->stats[i] && k < v->stats[i]->n_consumers; k++)
            if (strcmp(v->stats[i]->consumers[k].id, id) == 0)
                n += v->stats[i]->consumers[k].processing;
    return n;
}

/* One consumer's row: id, state, heartbeat age, jobs held, sessions, host, queues. */
static void draw_consumer(FILE *fp, const struct view *v, const mailroom_consumer *c)
{
    char sessions[48];
    col(fp, c->id, 30, LEFT);
    fputs("  ", fp);
    col(fp, mailroom_consumer_state_name(c->state), 7, LEFT);
    col_secs(fp, c->heartbeat_age_ms, 10, 0);
    col_num(fp, held_everywhere(v, c->id), 7);
    if (c->has_info)
        snprintf(sessions, sizeof sessions, "%lld/%lld", c->sessions, c->concurrency);
    else
        snprintf(sessions, sizeof sessions, "-");
    col(fp, sessions, 10, RIGHT);
    fputs("  ", fp);
    col(fp, c->has_info ? c->host : "-", 16, LEFT);
    fputs("  ", fp);
    col(fp, c->has_info ? c->queues : "-", 60, LAST);
    fputc('\n', fp);
}

/* The consumers of every queue, each once. */
static void draw_consumers(FILE *fp, const struct view *v)
{
    fputs("\nCONSUMER                        STATE   HEARTBEAT  HOLDS  SESSIONS  HOST"
          "              QUEUES\n",
          fp);
    for (size_t i = 0; i < v->n; i++)
        for (size_t k = 0; v->stats[i] && k < v->stats[i]->n_consumers; k++)
            if (!seen_before(v, i, v->stats[i]->consumers[k].id))
                draw_consumer(fp, v, &v->stats[i]->consumers[k]);
}

/* The relays: circuit, rate now of the configured one, sessions, throttles, failures,
 * the last error. */
static void draw_relays(FILE *fp, const struct view *v)
{
    char rate[48];
    fputs("\nRELAY                           CIRCUIT       RATE/S  SESSIONS THROTTLES FAILURES"
          "  LAST ERROR\n",
          fp);
    for (size_t i = 0; v->relays && i < v->relays->n; i++) {
        const mailroom_relay *r = &v->relays->items[i];
        col(fp, r->name, 30, LEFT);
        fputs("  ", fp);
        col(fp, r->circuit, 10, LEFT);
        if (r->rate_max > 0)
            snprintf(rate, sizeof rate, "%.1f/%.1f", r->rate, r->rate_max);
        else
            snprintf(rate, sizeof rate, "-");
        col(fp, rate, 12, RIGHT);
        col_num(fp, r->sessions, 10);
        col_num(fp, r->throttles, 10);
        col_num(fp, r->failures, 9);
        fputs("  ", fp);
        col(fp, r->last_error, 200, LAST);
        fputc('\n', fp);
    }
}

/* A whole frame: the title line, the tables, the failure of this refresh if any. */
static void draw(FILE *fp, const struct view *v, int once)
{
    char now[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    out_time_ms((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, now);
    fprintf(fp, "mailroom top  %s%s\n\n", now, once ? "" : "  (every 1 s; q quits)");
    draw_queues(fp, v);
    draw_consumers(fp, v);
    draw_relays(fp, v);
    if (v->error[0]) {
        fputs("\nerror: ", fp);
        col(fp, v->error, 400, LAST);
        fputc('\n', fp);
    }
}

/* ------------------------------------------------------------------ reading */

/* Frees a frame's data. */
static void frame_free(struct view *v)
{
    for (size_t i = 0; i < v->n; i++) {
        mailroom_stats_free(v->stats[i]);
        v->stats[i] = NULL;
    }
    mailroom_relays_free(v->relays);
    v->relays = NULL;
    v->error[0] = '\0';
}

/* Reads one frame's data; the first failure is kept in v->error and returned as a
 * library code (MAILROOM_OK when every read succeeded). */
static int frame_read(struct view *v)
{
    int first = MAILROOM_OK;
    for (size_t i = 0; i < v->n; i++) {
        int rc = mailroom_stats_read(v->handles[i], &v->stats[i]);
        if (rc != MAILROOM_OK && first == MAILROOM_OK) {
            first = rc;
            snprintf(v->error, sizeof v->error, "%s: %s", v->names[i],
                     mailroom_errmsg(v->handles[i]));
        }
    }
    int rc = mailroom_relays_read(v->handles[0], &v->relays);
    if (rc != MAILROOM_OK && first == MAILROOM_OK) {
        first = rc;
        snprintf(v->error, sizeof v->error, "relays: %s", mailroom_errmsg(v->handles[0]));
    }
    return first;
}

/* Splits --queue (a comma list; none: the handle's default) and opens one handle per
 * queue, with open_handle's checks. EXIT_OK, or the failure's status. */
static int view_open(const struct cli *c, struct view *v, struct failure *f)
{
    struct cli one = *c;
    const char *given = c->value[O_QUEUE];
    if (given && strlen(given) >= sizeof v->list)
        return fail(f, EXIT_USAGE, "top: --queue: too long");
    snprintf(v->list, sizeof v->list, "%s", given ? given : "");
    char *save = NULL;
    for (char *q = strtok_r(v->list, ",", &save); q; q = strtok_r(NULL, ",", &save)) {
        if (v->n == TOP_MAX_QUEUES)
            return fail(f, EXIT_USAGE, "top: at most %d queues", TOP_MAX_QUEUES);
        v->names[v->n++] = q;
    }
    if (given && v->n == 0)
        return fail(f, EXIT_USAGE, "top: --queue: no queue named");
    for (size_t i = 0; i < (v->n ? v->n : 1); i++) {
        one.value[O_QUEUE] = v->n ? v->names[i] : NULL;
        int rc = open_handle(&one, 0, 1, 0, &v->handles[i], f);
        if (rc != EXIT_OK)
            return rc;
    }
    if (v->n == 0)
        v->names[v->n++] = mailroom_queue_name(v->handles[0]);
    return EXIT_OK;
}

static void view_close(struct view *v)
{
    frame_free(v);
    for (size_t i = 0; i < TOP_MAX_QUEUES; i++)
        mailroom_close(v->handles[i]);
}

/* ------------------------------------------------------------------ the terminal */

/* What top changed on the terminal, to give back. */
struct term {
    int keys;             /* stdin is a terminal whose mode was changed */
    struct termios saved; /* its mode before */
};

/* Keys without echo or line editing (Ctrl-C still signals), the alternate screen,
 * the cursor hidden; SIGINT and SIGTERM set top_stop (no SA_RESTART: poll returns). */
static int term_take(struct term *t)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return -1;
    t->keys = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &t->saved) == 0;
    if (t->keys) {
        struct termios raw = t->saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    fputs("\033[?1049h\033[?25l", stdout);
    return 0;
}

/* Gives the terminal back: the cursor, the main screen, the keys' mode. */
static void term_give(const struct term *t)
{
    fputs("\033[?25h\033[?1049l", stdout);
    fflush(stdout);
    if (t->keys)
        tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
}

/* The terminal's width in columns (80 when it does not say). */
static int term_width(void)
{
    struct winsize ws;
    return ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
}

/* Puts a frame on the screen from the top left, each line cut to the width and
 * cleared to its end, and the rest of the screen cleared: no flicker, no wrap. */
static void show(const char *frame, size_t len)
{
    int width = term_width();
    const char *p = frame, *end = frame + len;
    fputs("\033[H", stdout);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        int cols = 0;
        size_t k = 0;
        for (; k < n && cols < width; k++)
            cols += ((unsigned char)p[k] & 0xc0) != 0x80;
        while (k < n && ((unsigned char)p[k] & 0xc0) == 0x80)
            k++;
        fwrite(p, 1, k, stdout);
        fputs("\033[K\n", stdout);
        p += n + 1;
    }
    fputs("\033[J", stdout);
    fflush(stdout);
}

/* Waits up to ms for a key: 1 when it was q (or Q), else 0. */
static int wait_key(const struct term *t, int ms)
{
    struct pollfd pfd = {t->keys ? STDIN_FILENO : -1, POLLIN, 0};
    if (poll(&pfd, 1, ms) <= 0 || !(pfd.revents & POLLIN))
        return 0;
    char buf[16];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    return n > 0 && (memchr(buf, 'q', (size_t)n) || memchr(buf, 'Q', (size_t)n));
}

/* The loop: read, draw into memory, show, wait a second or for q, until told to
 * stop. */
static int top_loop(struct view *v, struct failure *f)
{
    struct term t;
    if (term_take(&t) != 0)
        return fail(f, EXIT_SOFTWARE, "top: sigaction: %s", strerror(errno));
    int rc = EXIT_OK;
    while (!top_stop) {
        char *frame = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&frame, &len);
        if (!mem) {
            rc = fail(f, EXIT_SOFTWARE, "top: out of memory");
            break;
        }
        frame_read(v);
        draw(mem, v, 0);
        fclose(mem);
        show(frame, len);
        free(frame);
        frame_free(v);
        if (wait_key(&t, TOP_REFRESH_MS))
            break;
    }
    term_give(&t);
    return rc;
}

/* `top`: one frame with --once, else the loop on a terminal. */
int cmd_top(const struct cli *c, struct failure *f)
{
    struct view v;
    memset(&v, 0, sizeof v);
    int once = c->count[O_ONCE] > 0;
    if (!once && !isatty(STDOUT_FILENO))
        return fail(f, EXIT_USAGE, "top: stdout is not a terminal (use --once for one frame)");
    int rc = view_open(c, &v, f);
    if (rc == EXIT_OK && once) {
        int lrc = frame_read(&v);
        if (lrc == MAILROOM_OK) {
            draw(stdout, &v, 1);
            rc = out_flush("top", f);
        } else {
            rc = fail(f, exit_for_rc(lrc, 0), "top: %s", v.error);
        }
    } else if (rc == EXIT_OK) {
        rc = top_loop(&v, f);
    }
    view_close(&v);
    return rc;
}
