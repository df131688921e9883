/*
 * send.c — `mailroom send`: one email from the command line. The flags and the body
 * files become a mailroom_email (the strings point into argv or into buffers this file
 * owns until the command ends), mailroom_send() validates, signs and enqueues it, and
 * the job id is printed; with --wait, mailroom_wait() then waits for the outcome and
 * the status record is printed too. `send --jsonl` is send_jsonl.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define INPUT_FILE_MAX ((size_t)256 * 1024) /* cap on --text-file / --html-file */
#define READ_CHUNK ((size_t)1 << 16)        /* first buffer of read_all, then doubled */
#define WAIT_DEFAULT_S 30                   /* send --wait without a value */
#define WAIT_MAX_S 2000000                  /* keeps the timeout in an int of ms */

/* Checks the required and mutually exclusive options of `send`. */
static int check_send(const struct cli *c, struct failure *f)
{
    static const enum opt_index required[] = {O_TO, O_FROM, O_SUBJECT};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (c->count[required[i]] == 0)
            return fail(f, EXIT_USAGE, "send: --%s is required (try 'mailroom send --help')",
                        option_name(required[i]));
    if (c->value[O_TEXT] && c->value[O_TEXT_FILE])
        return fail(f, EXIT_USAGE, "send: give either --text or --text-file, not both");
    if (!c->value[O_TEXT] && !c->value[O_TEXT_FILE])
        return fail(f, EXIT_USAGE, "send: --text or --text-file is required");
    if (c->value[O_TEXT_FILE] && c->value[O_HTML_FILE] && strcmp(c->value[O_TEXT_FILE], "-") == 0 &&
        strcmp(c->value[O_HTML_FILE], "-") == 0)
        return fail(f, EXIT_USAGE, "send: only one of --text-file and --html-file can be '-'");
    return EXIT_OK;
}

/* How an input path is named in messages: "-" is stdin. */
static const char *input_name(const char *path)
{
    return strcmp(path, "-") == 0 ? "stdin" : path;
}

/*
 * Reads a whole file (cli.h). The read is binary-safe. The buffer starts at READ_CHUNK
 * and doubles as data arrives; more than max bytes is refused (exit 65) rather than
 * silently truncated.
 */
int read_all(const char *opt, const char *path, size_t max, char **out, size_t *len,
             struct failure *f)
{
    int is_stdin = strcmp(path, "-") == 0;
    const char *shown = input_name(path);
    FILE *fp = is_stdin ? stdin : fopen(path, "rb");
    /* Room for one byte more than max, to tell "exactly max" from "too big", and the NUL. */
    size_t limit = max + 2, cap = READ_CHUNK < limit ? READ_CHUNK : limit, n = 0;
    char *data = NULL;
    int rc = EXIT_OK;

    if (!fp) {
        rc = fail(f, EXIT_NOINPUT, "%s %s: %s", opt, shown, strerror(errno));
        goto out;
    }
    if (!(data = malloc(cap))) {
        rc = fail(f, EXIT_SOFTWARE, "%s: %s", opt, strerror(ENOMEM));
        goto out;
    }
    while (n <= max) {
        if (n == cap - 1) {
            size_t bigger = cap <= limit / 2 ? 2 * cap : limit;
            char *p = realloc(data, bigger);
            if (!p) {
                rc = fail(f, EXIT_SOFTWARE, "%s: %s", opt, strerror(ENOMEM));
                goto out;
            }
            data = p;
            cap = bigger;
        }
        size_t got = fread(data + n, 1, cap - 1 - n, fp);
        if (got == 0)
            break;
        n += got;
    }
    if (ferror(fp)) {
        rc = fail(f, EXIT_NOINPUT, "%s %s: %s", opt, shown, strerror(errno));
        goto out;
    }
    if (n > max) {
        rc = max % ((size_t)1 << 20) == 0
                 ? fail(f, EXIT_DATAERR, "%s %s: larger than %zu MiB", opt, shown, max >> 20)
                 : fail(f, EXIT_DATAERR, "%s %s: larger than %zu KiB", opt, shown, max >> 10);
        goto out;
    }
    data[n] = '\0';
    *out = data;
    *len = n;
    data = NULL;
out:
    if (fp && !is_stdin)
        fclose(fp);
    free(data);
    return rc;
}

/*
 * Reads a body file (--text-file, --html-file; "-" is stdin) into a new NUL-terminated
 * string, *out owned by the caller: at most INPUT_FILE_MAX bytes and no NUL byte inside,
 * which would silently cut the body short.
 */
static int read_input(const char *opt, const char *path, char **out, struct failure *f)
{
    char *data = NULL;
    size_t len = 0;
    int rc = read_all(opt, path, INPUT_FILE_MAX, &data, &len, f);
    if (rc != EXIT_OK || !data) /* !data: never with EXIT_OK, but the analyzer cannot tell */
        goto out;
    if (memchr(data, '\0', len)) {
        rc = fail(f, EXIT_DATAERR, "%s %s: contains a NUL byte (binary data?)", opt,
                  input_name(path));
        goto out;
    }
    *out = data;
    data = NULL;
out:
    free(data);
    return rc;
}

/*
 * Splits each "Name: value" argument into a mailroom_header. Names are copied (they
 * must end where the ':' is); values point into argv, past the blanks after ':'.
 */
static int parse_headers(const struct strlist *raw, mailroom_header **out, struct failure *f)
{
    mailroom_header *h = NULL;
    int rc = EXIT_OK;
    size_t done = 0;

    if (raw->n == 0) {
        *out = NULL;
        return EXIT_OK;
    }
    h = calloc(raw->n, sizeof *h);
    if (!h) {
        rc = fail(f, EXIT_SOFTWARE, "--header: %s", strerror(ENOMEM));
        goto out;
    }
    for (; done < raw->n; done++) {
        const char *s = raw->v[done];
        const char *colon = strchr(s, ':');
        if (!colon || colon == s) {
            rc = fail(f, EXIT_USAGE, "--header '%.64s': expected 'Name: value'", s);
            goto out;
        }
        char *name = strndup(s, (size_t)(colon - s));
        if (!name) {
            rc = fail(f, EXIT_SOFTWARE, "--header: %s", strerror(ENOMEM));
            goto out;
        }
        const char *value = colon + 1;
        value += strspn(value, " \t");
        h[done] = (mailroom_header){name, value};
    }
    *out = h;
    h = NULL;
out:
    if (h) {
        for (size_t i = 0; i < done; i++)
            free((char *)h[i].name);
        free(h);
    }
    return rc;
}

static void free_headers(mailroom_header *h, size_t n)
{
    if (!h)
        return;
    for (size_t i = 0; i < n; i++)
        free((char *)h[i].name);
    free(h);
}

/*
 * An RFC 3339 time given to option opt, as whole seconds (mailroom_parse_time: send_at
 * rounds up, expires_at down), which must be after the epoch (0 means "unset" in
 * mailroom_email). Failures are usage errors.
 */
static int parse_time(const char *opt, const char *s, int round_up, time_t *out, struct failure *f)
{
    if (mailroom_parse_time(s, round_up, out) != MAILROOM_OK)
        return fail(f, EXIT_USAGE, "%s '%.64s': not an RFC 3339 time (e.g. 2026-11-24T13:00:00Z)",
                    opt, s);
    if (*out <= 0)
        return fail(f, EXIT_USAGE, "%s '%.64s': must be after 1970-01-01T00:00:00Z", opt, s);
    return EXIT_OK;
}

/* The inputs of one email that need freeing: file contents and parsed headers. */
struct send_inputs {
    char *text;
    char *html;
    mailroom_header *headers;
    size_t n_headers;
};

static void send_inputs_free(struct send_inputs *in)
{
    free(in->text);
    free(in->html);
    free_headers(in->headers, in->n_headers);
}

/* Fills a mailroom_email from the command line, reading files and parsing values. */
static int build_email(const struct cli *c, struct send_inputs *in, mailroom_email *e,
                       struct failure *f)
{
    int rc;
    memset(e, 0, sizeof *e);
    e->to = c->to.v;
    e->n_to = c->to.n;
    e->cc = c->cc.v;
    e->n_cc = c->cc.n;
    e->bcc = c->bcc.v;
    e->n_bcc = c->bcc.n;
    e->from = c->value[O_FROM];
    e->from_name = c->value[O_FROM_NAME];
    e->reply_to = c->value[O_REPLY_TO];
    e->subject = c->value[O_SUBJECT];
    e->id = c->value[O_ID];

    if (c->value[O_SEND_AT] &&
        (rc = parse_time("--send-at", c->value[O_SEND_AT], 1, &e->send_at, f)) != EXIT_OK)
        return rc;
    if (c->value[O_EXPIRES_AT] &&
        (rc = parse_time("--expires-at", c->value[O_EXPIRES_AT], 0, &e->expires_at, f)) != EXIT_OK)
        return rc;
    if ((rc = parse_headers(&c->headers, &in->headers, f)) != EXIT_OK)
        return rc;
    in->n_headers = c->headers.n;
    e->headers = in->headers;
    e->n_headers = in->n_headers;

    if (c->value[O_TEXT_FILE]) {
        if ((rc = read_input("--text-file", c->value[O_TEXT_FILE], &in->text, f)) != EXIT_OK)
            return rc;
        e->text = in->text;
    } else {
        e->text = c->value[O_TEXT];
    }
    if (c->value[O_HTML_FILE]) {
        if ((rc = read_input("--html-file", c->value[O_HTML_FILE], &in->html, f)) != EXIT_OK)
            return rc;
        e->html = in->html;
    }
    return EXIT_OK;
}

/* The --wait value in ms: "" means the default; else a number of seconds. */
static int wait_ms(const char *value, int *ms, struct failure *f)
{
    if (*value == '\0') {
        *ms = WAIT_DEFAULT_S * 1000;
        return EXIT_OK;
    }
    double s = is_number(value) ? strtod(value, NULL) : -1;
    if (s < 0 || s > WAIT_MAX_S)
        return fail(f, EXIT_USAGE, "--wait '%.32s': expected a number of seconds (0 to %d)", value,
                    WAIT_MAX_S);
    *ms = (int)(s * 1000.0 + 0.5);
    return EXIT_OK;
}

/*
 * `send --wait`: waits for the job's outcome and prints its record. sent is success;
 * failed or rejected exit 2 naming the error; not final in time exits 75 (the record
 * read last is printed all the same).
 */
static int wait_outcome(mailroom *m, const char *id, int ms, struct failure *f)
{
    mailroom_job_status st;
    int lrc = mailroom_wait(m, id, ms, &st);
    if (lrc != MAILROOM_OK && lrc != MAILROOM_EPENDING)
        return fail_lib(f, "wait (the job was enqueued)", m, lrc);
    int rc = out_status(m, &st, "wait", f);
    if (rc != EXIT_OK)
        return rc;
    if (lrc == MAILROOM_EPENDING)
        return fail(f, EXIT_TEMPFAIL,
                    "%s not final after %.1f s (state %s%s%s); it stays queued: check later "
                    "with 'mailroom status %s'",
                    id, (double)ms / 1000.0, mailroom_state_name(st.state), st.error[0] ? ": " : "",
                    st.error, id);
    if (st.state != MAILROOM_STATE_SENT)
        return fail(f, EXIT_FINAL_BAD, "%s %s: %s", id, mailroom_state_name(st.state),
                    st.error[0] ? st.error : "(no error recorded)");
    return EXIT_OK;
}

/* `send`: build the email, enqueue it, print the job id (and with --wait, the outcome). */
int cmd_send(const struct cli *c, struct failure *f)
{
    struct send_inputs in = {0};
    mailroom_email e;
    mailroom *m = NULL;
    char id[MAILROOM_ID_MAX];
    int rc, ms = 0;

    if ((rc = check_send(c, f)) != EXIT_OK)
        goto out;
    if (c->value[O_WAIT] && (rc = wait_ms(c->value[O_WAIT], &ms, f)) != EXIT_OK)
        goto out;
    if ((rc = build_email(c, &in, &e, f)) != EXIT_OK)
        goto out;
    if ((rc = open_handle(c, 1, 0, 0, &m, f)) != EXIT_OK)
        goto out;
    int lrc = mailroom_send(m, &e, id);
    if (lrc != MAILROOM_OK) {
        rc = fail_lib(f, "send", m, lrc);
        goto out;
    }
    printf("%s\n", id);
    rc = out_flush("send (the job was enqueued)", f);
    if (rc != EXIT_OK)
        goto out;
    if (c->value[O_WAIT])
        rc = wait_outcome(m, id, ms, f);
out:
    mailroom_close(m);
    send_inputs_free(&in);
    return rc;
}
