/*
 * send_jsonl.c — `mailroom send --jsonl FILE|-`: many emails, one JSON object per
 * line. The whole input is read, every line is turned into an email by the library
 * (mailroom_email_from_json: the project's one strict JSON parser) and validated
 * (mailroom_validate) before any is enqueued; then they go in pipelined batches of
 * JSONL_BATCH with mailroom_send_batch(), their ids printed in input order, progress
 * and a summary on stderr. The input buffer and its line table are owned here; each
 * batch's parsed emails live until the batch is reported.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define JSONL_INPUT_MAX ((size_t)1 << 30) /* cap on send --jsonl: 1 GiB */
#define JSONL_BATCH 500                   /* emails per pipelined round trip */
#define LINE_ERR_MAX 300
#define REDIS_FAILED_NAMED 5 /* lines named one by one after a Redis failure */

/* Milliseconds of a monotonic clock, for the summary's rate. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* `send --jsonl` takes its emails from the file: no email option may be given too. */
static int check_send_jsonl(const struct cli *c, struct failure *f)
{
    for (int i = O_TO; i <= O_WAIT; i++)
        if (c->count[i] > 0)
            return fail(f, EXIT_USAGE, "send: --%s cannot be combined with --jsonl",
                        option_name((enum opt_index)i));
    if (*c->value[O_JSONL] == '\0')
        return fail(f, EXIT_USAGE, "send: --jsonl: empty path");
    return EXIT_OK;
}

/* One non-blank input line: where it is in the input and its 1-based number. */
struct jsonl_line {
    size_t off, len;
    size_t lineno;
};

/* The whole input and its non-blank lines. */
struct jsonl_input {
    char *data;
    size_t len;
    struct jsonl_line *lines;
    size_t n_lines;
};

static void jsonl_input_free(struct jsonl_input *in)
{
    free(in->data);
    free(in->lines);
}

/* Records the non-blank lines of the input (a trailing CR is not part of a line). */
static int jsonl_split(struct jsonl_input *in, struct failure *f)
{
    size_t cap = 0, lineno = 0;
    for (size_t off = 0; off < in->len;) {
        const char *nl = memchr(in->data + off, '\n', in->len - off);
        size_t end = nl ? (size_t)(nl - in->data) : in->len;
        size_t len = end - off;
        lineno++;
        if (len > 0 && in->data[off + len - 1] == '\r')
            len--;
        size_t blank = 0;
        while (blank < len && strchr(" \t\r", in->data[off + blank]) && in->data[off + blank])
            blank++;
        if (blank < len) {
            if (in->n_lines == cap) {
                cap = cap ? 2 * cap : 1024;
                struct jsonl_line *v = realloc(in->lines, cap * sizeof *v);
                if (!v)
                    return fail(f, EXIT_SOFTWARE, "--jsonl: %s", strerror(ENOMEM));
                in->lines = v;
            }
            in->lines[in->n_lines++] = (struct jsonl_line){off, len, lineno};
        }
        off = end + 1;
    }
    return EXIT_OK;
}

/*
 * Checks one line: the library reads it (strict JSON, known members of their types)
 * and validates the email. EXIT_OK; EXIT_DATAERR with the reason in why (one line of
 * LINE_ERR_MAX bytes); EXIT_SOFTWARE when memory ran out.
 */
static int jsonl_check_line(mailroom *m, const struct jsonl_line *l, const char *data, char *why)
{
    mailroom_email_json *doc = NULL;
    int lrc = mailroom_email_from_json(m, data + l->off, l->len, &doc);
    if (lrc == MAILROOM_OK)
        lrc = mailroom_validate(m, mailroom_email_json_email(doc));
    mailroom_email_json_free(doc);
    if (lrc == MAILROOM_OK)
        return EXIT_OK;
    snprintf(why, LINE_ERR_MAX, "%s", mailroom_errmsg(m));
    return lrc == MAILROOM_ENOMEM ? EXIT_SOFTWARE : EXIT_DATAERR;
}

/*
 * Pass one: parses and validates every line, naming each bad one on stderr. Returns
 * EXIT_OK when all are good, else EXIT_DATAERR (or EXIT_SOFTWARE) with nothing sent.
 */
static int jsonl_validate_all(mailroom *m, const struct jsonl_input *in, struct failure *f)
{
    size_t bad = 0;
    char why[LINE_ERR_MAX], line[LINE_ERR_MAX + 64];
    for (size_t i = 0; i < in->n_lines; i++) {
        int r = jsonl_check_line(m, &in->lines[i], in->data, why);
        if (r == EXIT_SOFTWARE)
            return fail(f, EXIT_SOFTWARE, "--jsonl: %s", strerror(ENOMEM));
        if (r != EXIT_OK) {
            snprintf(line, sizeof line, "line %zu: %s", in->lines[i].lineno, why);
            out_error_line(line);
            bad++;
        }
    }
    if (bad > 0)
        return fail(f, EXIT_DATAERR, "--jsonl: %zu of %zu lines invalid; nothing was enqueued", bad,
                    in->n_lines);
    return EXIT_OK;
}

/* Counters and presentation of pass two. */
struct jsonl_progress {
    size_t done, total, enqueued, duplicates, failed;
    int tty;       /* stderr is a terminal: draw a bar */
    int bar_shown; /* the bar is on the current stderr line */
    int64_t start_ms;
};

/* Clears the progress bar so that a message can take its line. */
static void progress_clear(struct jsonl_progress *p)
{
    if (p->bar_shown)
        fputs("\r\033[K", stderr);
    p->bar_shown = 0;
}

/* A bar on a terminal, else one plain count line per batch. */
static void progress_show(struct jsonl_progress *p)
{
    if (!p->tty) {
        fprintf(stderr, "progress: %zu/%zu lines\n", p->done, p->total);
        return;
    }
    enum { WIDTH = 40 };
    size_t full = p->total ? p->done * WIDTH / p->total : WIDTH;
    char bar[WIDTH + 1];
    for (size_t i = 0; i < WIDTH; i++)
        bar[i] = i < full ? '#' : '-';
    bar[WIDTH] = '\0';
    fprintf(stderr, "\r[%s] %zu/%zu lines", bar, p->done, p->total);
    fflush(stderr);
    p->bar_shown = 1;
}

/* The closing line: enqueued N, duplicates D, failed F in T s (R jobs/s). */
static void progress_summary(struct jsonl_progress *p)
{
    if (p->bar_shown) {
        fputc('\n', stderr);
        p->bar_shown = 0;
    }
    double secs = (double)(now_ms() - p->start_ms) / 1000.0;
    fprintf(stderr, "enqueued %zu, duplicates %zu, failed %zu in %.2f s (%.0f jobs/s)\n",
            p->enqueued, p->duplicates, p->failed, secs,
            secs > 0 ? (double)p->enqueued / secs : (double)p->enqueued);
}

/* Names a line on stderr (over the progress bar, which is redrawn after the batch). */
static void line_message(struct jsonl_progress *p, size_t lineno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void line_message(struct jsonl_progress *p, size_t lineno, const char *fmt, ...)
{
    char msg[LINE_ERR_MAX + 64];
    int n = snprintf(msg, sizeof msg, "line %zu: ", lineno);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    progress_clear(p);
    out_error_line(msg);
}

/* A status code that means Redis (or the connection) failed, not this email. */
static int is_redis_failure(int rc)
{
    return rc == MAILROOM_EREDIS || rc == MAILROOM_ETIMEOUT || rc == MAILROOM_EPROTO;
}

/* Names a line that Redis failed: with an id it may or may not have gone in (Redis may
 * have broken before answering); without one it never left this program. */
static void name_redis_failure(struct jsonl_progress *p, size_t lineno, const char *id)
{
    if (!id || !*id)
        line_message(p, lineno, "not enqueued: Redis failed before it was sent");
    else
        line_message(p, lineno,
                     "job '%s' not enqueued (or, if Redis broke before answering, unknown:"
                     " see 'mailroom status %s')",
                     id, id);
}

/*
 * Reports the outcome of one sent batch in input order: prints the id of each email
 * that went in, names duplicates and failures. A Redis failure (an error reply, or a
 * connection that broke before every reply was read) ends the run after this batch:
 * the ids printed are exactly the lines that went in; each failed line is named, and
 * one whose reply was lost may or may not have gone in (its record tells). lrc is what
 * mailroom_send_batch() returned, the code of the batch's first failure in input order.
 */
static int jsonl_report_batch(const struct jsonl_line *lines, size_t n,
                              char (*ids)[MAILROOM_ID_MAX], const int *results, int lrc,
                              const mailroom *m, struct jsonl_progress *p, struct failure *f)
{
    size_t redis_failed = 0, first_failed = 0;
    int first_rc = MAILROOM_OK;
    for (size_t i = 0; i < n; i++) {
        int r = results[i];
        if (r == MAILROOM_OK) {
            printf("%s\n", ids[i]);
            p->enqueued++;
        } else if (r == MAILROOM_EDUPLICATE) {
            line_message(p, lines[i].lineno, "a job with id '%s' is already recorded; not enqueued",
                         ids[i]);
            p->duplicates++;
        } else if (is_redis_failure(r)) {
            if (redis_failed++ == 0) {
                first_failed = lines[i].lineno;
                first_rc = r;
            }
            if (redis_failed <= REDIS_FAILED_NAMED)
                name_redis_failure(p, lines[i].lineno, ids[i]);
            p->failed++;
        } else {
            line_message(p, lines[i].lineno, "not enqueued: %s", mailroom_strerror(r));
            p->failed++;
        }
    }
    p->done += n;
    if (redis_failed == 0)
        return EXIT_OK;
    if (redis_failed > REDIS_FAILED_NAMED)
        line_message(p, lines[n - 1].lineno,
                     "and %zu more lines of this batch not enqueued (or unknown), up to here",
                     redis_failed - REDIS_FAILED_NAMED);
    /* The library's message describes the first failure in input order: the Redis
     * failure only when no other failure (a duplicate, say) came before it. */
    const char *why = lrc == first_rc ? mailroom_errmsg(m) : mailroom_strerror(first_rc);
    return fail(f, EXIT_UNAVAIL,
                "--jsonl: Redis failed at line %zu: %s; enqueued: exactly the %zu ids"
                " printed; lines after %zu were not sent",
                first_failed, why, p->enqueued, lines[n - 1].lineno);
}

/* The emails of one batch: the documents the library parsed and the emails they
 * hold, which mailroom_send_batch reads. */
struct jsonl_batch {
    mailroom_email_json **docs;
    mailroom_email *emails;
    char (*ids)[MAILROOM_ID_MAX];
    int *results;
    size_t n; /* documents parsed so far */
};

static void jsonl_batch_free(struct jsonl_batch *b)
{
    for (size_t i = 0; b->docs && i < b->n; i++)
        mailroom_email_json_free(b->docs[i]);
    free(b->docs);
    free(b->emails);
    free(b->ids);
    free(b->results);
}

/* Parses lines[first .. first+n) again (they were checked in pass one) into b. */
static int jsonl_parse_batch(mailroom *m, const struct jsonl_input *in, size_t first, size_t n,
                             struct jsonl_batch *b, struct failure *f)
{
    b->docs = calloc(n, sizeof *b->docs); /* NOLINT(bugprone-sizeof-expression): of pointers */
    b->emails = calloc(n, sizeof *b->emails);
    b->ids = calloc(n, sizeof *b->ids);
    b->results = calloc(n, sizeof *b->results);
    if (!b->docs || !b->emails || !b->ids || !b->results) {
        fail(f, EXIT_SOFTWARE, "--jsonl: %s", strerror(ENOMEM));
        return EXIT_SOFTWARE; /* spelt out: the analyzer cannot see what fail() returns */
    }
    for (; b->n < n; b->n++) {
        const struct jsonl_line *l = &in->lines[first + b->n];
        int lrc = mailroom_email_from_json(m, in->data + l->off, l->len, &b->docs[b->n]);
        if (lrc != MAILROOM_OK)
            return fail(f, EXIT_SOFTWARE, "--jsonl: line %zu: %s", l->lineno, mailroom_errmsg(m));
        b->emails[b->n] = *mailroom_email_json_email(b->docs[b->n]);
    }
    return EXIT_OK;
}

/*
 * Sends lines[first .. first+n) with one mailroom_send_batch() call (one pipelined
 * round trip) and reports them.
 */
static int jsonl_send_batch(mailroom *m, const struct jsonl_input *in, size_t first, size_t n,
                            struct jsonl_progress *p, struct failure *f)
{
    struct jsonl_batch b = {0};
    int rc = jsonl_parse_batch(m, in, first, n, &b, f);
    if (rc != EXIT_OK)
        goto out;
    int lrc = mailroom_send_batch(m, b.emails, n, b.ids, b.results);
    if (lrc == MAILROOM_EKEY || lrc == MAILROOM_ENOMEM) {
        rc = fail_lib(f, "send", m, lrc);
        goto out;
    }
    rc = jsonl_report_batch(&in->lines[first], n, b.ids, b.results, lrc, m, p, f);
out:
    jsonl_batch_free(&b);
    return rc;
}

/* Pass two: every line, in batches, with progress; the exit code by what happened. */
static int jsonl_send_all(mailroom *m, const struct jsonl_input *in, struct failure *f)
{
    struct jsonl_progress p = {0, in->n_lines, 0, 0, 0, isatty(STDERR_FILENO), 0, now_ms()};
    int rc = EXIT_OK;
    for (size_t first = 0; first < in->n_lines && rc == EXIT_OK; first += JSONL_BATCH) {
        size_t n = in->n_lines - first < JSONL_BATCH ? in->n_lines - first : JSONL_BATCH;
        rc = jsonl_send_batch(m, in, first, n, &p, f);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            progress_clear(&p);
            rc = fail(f, EXIT_IOERR, "--jsonl: stdout: %s (jobs were enqueued)", strerror(errno));
        }
        if (rc == EXIT_OK)
            progress_show(&p);
    }
    progress_summary(&p);
    if (rc != EXIT_OK)
        return rc;
    if (p.failed > 0)
        return fail(f, EXIT_DATAERR, "--jsonl: %zu lines not enqueued", p.failed);
    if (p.duplicates > 0)
        return fail(f, EXIT_DUP,
                    "--jsonl: %zu lines not enqueued: their ids were already"
                    " recorded",
                    p.duplicates);
    return EXIT_OK;
}

/*
 * `send --jsonl FILE|-`: read everything, validate every line, then enqueue. The
 * handle is kept even when Redis cannot be reached at first, so that bad lines are
 * reported either way; the batch call then fails on Redis with nothing enqueued.
 */
int cmd_send_jsonl(const struct cli *c, struct failure *f)
{
    struct jsonl_input in = {0};
    mailroom *m = NULL;
    int rc;

    if ((rc = check_send_jsonl(c, f)) != EXIT_OK)
        goto out;
    if ((rc = read_all("--jsonl", c->value[O_JSONL], JSONL_INPUT_MAX, &in.data, &in.len, f)) !=
        EXIT_OK)
        goto out;
    if ((rc = jsonl_split(&in, f)) != EXIT_OK)
        goto out;
    if ((rc = open_handle(c, 1, 1, 0, &m, f)) != EXIT_OK)
        goto out;
    if ((rc = jsonl_validate_all(m, &in, f)) != EXIT_OK)
        goto out;
    rc = jsonl_send_all(m, &in, f);
out:
    mailroom_close(m);
    jsonl_input_free(&in);
    return rc;
}
