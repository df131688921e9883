/*
 * cli.c — the `mailroom` command-line tool, a thin front end to libmailroom.
 *
 *     mailroom [GLOBAL] COMMAND [ARGS]      (global options may also follow COMMAND)
 *
 * `send` builds a mailroom_email from flags (and files), enqueues it with
 * mailroom_send() and prints the job id; `status` reads a job's status record with
 * mailroom_status() and prints it as one line of JSON built with json-c.
 *
 * The command line is parsed once, by one getopt_long() loop that knows the options of
 * every command; the first non-option argument names the command and the others are its
 * operands. After parsing, each option given is checked against the command it was
 * given to, so `mailroom status ID --to x` is a usage error rather than silently ignored.
 *
 * Secrets never come from argv: there is no --secret flag. The signing key comes from
 * MAILROOM_KEYS_FILE or MAILROOM_SECRET, and --keys-file PATH only sets
 * MAILROOM_KEYS_FILE for the library to read. `status` signs nothing and loads no key
 * at all. Nothing here prints a secret, the Redis URL (which may hold a password) or
 * the contents of a keys file.
 *
 * Only main() and the two command runners print; every other function reports a
 * failure by filling a `failure` (exit code plus one line of text) that main() prints to
 * stderr as "mailroom: <what>: <why>". Exit codes follow sysexits(3); see usage_main.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "clock.h"
#include "mailroom.h"

/* Exit codes (sysexits.h values, spelled out so the list below is the one truth). */
enum {
    EXIT_OK = 0,
    EXIT_NOTFOUND = 1,  /* status: no such job */
    EXIT_USAGE = 64,    /* EX_USAGE */
    EXIT_DATAERR = 65,  /* EX_DATAERR: invalid email or input data */
    EXIT_NOINPUT = 66,  /* EX_NOINPUT: an input file cannot be read */
    EXIT_UNAVAIL = 69,  /* EX_UNAVAILABLE: Redis unreachable, timeout, error */
    EXIT_SOFTWARE = 70, /* EX_SOFTWARE: internal error, out of memory */
    EXIT_IOERR = 74,    /* EX_IOERR: cannot write the result to stdout */
    EXIT_DUP = 73,      /* EX_CANTCREAT: a job with that id already exists */
    EXIT_CONFIG = 78    /* EX_CONFIG: no usable key, bad Redis URL or queue name */
};

#define INPUT_FILE_MAX (256u * 1024u) /* cap on --text-file / --html-file */

static const char usage_main[] =
    "Usage: mailroom [GLOBAL OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Send transactional email asynchronously through a Redis queue.\n"
    "\n"
    "Commands:\n"
    "  send          enqueue an email and print its job id\n"
    "  status ID     print a job's status record as one line of JSON\n"
    "  help [CMD]    show this help, or the help of CMD\n"
    "\n"
    "Global options (before or after COMMAND):\n"
    "  --redis URL        Redis URL, redis://[user:pass@]host:port/db\n"
    "                     (default: $MAILROOM_REDIS_URL, else redis://127.0.0.1:6379/0)\n"
    "  --queue NAME       queue name (default: $MAILROOM_QUEUE, else \"default\")\n"
    "  --keys-file PATH   signing keys file, lines \"kid secret\"; the first key signs\n"
    "                     (default: $MAILROOM_KEYS_FILE, else the secret in\n"
    "                     $MAILROOM_SECRET with kid \"default\"). Secrets are never\n"
    "                     accepted on the command line.\n"
    "  -h, --help         show help (also: mailroom COMMAND --help)\n"
    "  --version          print the version\n"
    "\n"
    "Exit status:\n"
    "   0  success\n"
    "   1  job not found (status)\n"
    "  64  usage error: unknown or misplaced option, missing or conflicting options\n"
    "  65  invalid email or input data (rejected by validation, too big, NUL byte)\n"
    "  66  an input file cannot be read\n"
    "  69  Redis unreachable, timed out, or answered with an error\n"
    "  70  internal error (out of memory)\n"
    "  73  a job with that --id already exists\n"
    "  74  the result could not be written to stdout\n"
    "  78  configuration: no usable signing key, bad keys file, Redis URL or queue\n";

static const char usage_send[] =
    "Usage: mailroom send --to ADDR [--to ADDR]... [--cc ADDR]... [--bcc ADDR]...\n"
    "                     --from ADDR [--from-name NAME] [--reply-to ADDR]\n"
    "                     --subject TEXT (--text TEXT | --text-file FILE)\n"
    "                     [--html-file FILE] [--header 'Name: value']...\n"
    "                     [--id ID] [--send-at TIME] [--expires-at TIME]\n"
    "\n"
    "Validate, sign and enqueue one email; print its job id on stdout.\n"
    "\n"
    "  --to, --cc, --bcc ADDR  recipient, \"addr@example.com\" or \"Name <addr@...>\";\n"
    "                          repeat for more (at least one --to)\n"
    "  --from ADDR             sender address (bare address)\n"
    "  --from-name NAME        sender display name\n"
    "  --reply-to ADDR         Reply-To mailbox\n"
    "  --subject TEXT          subject (may be empty)\n"
    "  --text TEXT             plain-text body\n"
    "  --text-file FILE        read the plain-text body from FILE ('-': stdin)\n"
    "  --html-file FILE        read an HTML alternative from FILE ('-': stdin)\n"
    "                          (files: UTF-8, at most 256 KiB, no NUL bytes)\n"
    "  --header 'Name: value'  extra header: List-Unsubscribe, List-Unsubscribe-Post,\n"
    "                          List-Id or X-*; repeatable\n"
    "  --id ID                 idempotency key, [A-Za-z0-9._:-]{1,128}; a second send\n"
    "                          with the same id is refused (exit 73)\n"
    "  --send-at TIME          do not send before TIME (RFC 3339, e.g.\n"
    "                          2026-11-24T13:00:00Z)\n"
    "  --expires-at TIME       give up after TIME (RFC 3339)\n"
    "\n"
    "Global options (--redis, --queue, --keys-file): see mailroom --help.\n";

static const char usage_status[] =
    "Usage: mailroom status ID [--json]\n"
    "\n"
    "Print the status record of job ID as one line of JSON:\n"
    "  {\"id\":..,\"queue\":..,\"state\":..,\"attempts\":N,\"smtp_code\":N|null,\n"
    "   \"smtp_reply\":..,\"error\":..,\"consumer\":..,\"created_at\":..,\"updated_at\":..}\n"
    "state is one of queued, sending, sent, retrying, failed, rejected.\n"
    "Exits 1 when there is no record for ID (never sent, or expired).\n"
    "\n"
    "  --json   JSON output (the default and only format; accepted for compatibility)\n"
    "\n"
    "Global options (--redis, --queue): see mailroom --help. status needs no signing\n"
    "key and reads none (--keys-file is accepted and ignored).\n";

static const char usage_help[] =
    "Usage: mailroom help [COMMAND]\n"
    "\n"
    "Show the general help, or the help of COMMAND (send, status, help).\n";

/* Commands, as bits so that each option can list the commands it belongs to. */
enum command { CMD_NONE = 0, CMD_SEND = 1, CMD_STATUS = 2, CMD_HELP = 4 };
#define CMD_ALL (CMD_SEND | CMD_STATUS | CMD_HELP)

/* Long options; an option's getopt value is OPT_BASE + its index in opt_table. */
enum opt_index {
    O_REDIS,
    O_QUEUE,
    O_KEYS_FILE,
    O_HELP,
    O_VERSION,
    O_TO,
    O_CC,
    O_BCC,
    O_FROM,
    O_FROM_NAME,
    O_REPLY_TO,
    O_SUBJECT,
    O_TEXT,
    O_TEXT_FILE,
    O_HTML_FILE,
    O_HEADER,
    O_ID,
    O_SEND_AT,
    O_EXPIRES_AT,
    O_JSON,
    O_COUNT
};
#define OPT_BASE 256

struct opt_spec {
    const char *name;
    int has_arg;
    unsigned commands; /* CMD_* bits this option may be given to */
    int repeatable;
};

static const struct opt_spec opt_table[O_COUNT] = {
    [O_REDIS] = {"redis", required_argument, CMD_ALL, 0},
    [O_QUEUE] = {"queue", required_argument, CMD_ALL, 0},
    [O_KEYS_FILE] = {"keys-file", required_argument, CMD_ALL, 0},
    [O_HELP] = {"help", no_argument, CMD_ALL, 1},
    [O_VERSION] = {"version", no_argument, CMD_ALL, 1},
    [O_TO] = {"to", required_argument, CMD_SEND, 1},
    [O_CC] = {"cc", required_argument, CMD_SEND, 1},
    [O_BCC] = {"bcc", required_argument, CMD_SEND, 1},
    [O_FROM] = {"from", required_argument, CMD_SEND, 0},
    [O_FROM_NAME] = {"from-name", required_argument, CMD_SEND, 0},
    [O_REPLY_TO] = {"reply-to", required_argument, CMD_SEND, 0},
    [O_SUBJECT] = {"subject", required_argument, CMD_SEND, 0},
    [O_TEXT] = {"text", required_argument, CMD_SEND, 0},
    [O_TEXT_FILE] = {"text-file", required_argument, CMD_SEND, 0},
    [O_HTML_FILE] = {"html-file", required_argument, CMD_SEND, 0},
    [O_HEADER] = {"header", required_argument, CMD_SEND, 1},
    [O_ID] = {"id", required_argument, CMD_SEND, 0},
    [O_SEND_AT] = {"send-at", required_argument, CMD_SEND, 0},
    [O_EXPIRES_AT] = {"expires-at", required_argument, CMD_SEND, 0},
    [O_JSON] = {"json", no_argument, CMD_STATUS, 1},
};

/* A growable list of argv strings; its storage is sized for all of argv up front. */
struct strlist {
    const char **v;
    size_t n;
};

/* Everything the command line said. Strings point into argv. */
struct cli {
    enum command cmd;
    const char *cmd_name;         /* as typed, for messages */
    int count[O_COUNT];           /* how often each option was given */
    const char *value[O_COUNT];   /* the argument of single-valued options */
    struct strlist to, cc, bcc, headers, operands;
};

/* A failure on its way to main(): an exit code and one line of explanation. */
struct failure {
    int code;
    char msg[1024];
};

/* Records a failure and returns its exit code, so callers can `return fail(...)`. */
static int fail(struct failure *f, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct failure *f, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
    f->code = code;
    return code;
}

static void cli_free(struct cli *c)
{
    free(c->to.v);
    free(c->cc.v);
    free(c->bcc.v);
    free(c->headers.v);
    free(c->operands.v);
}

/* Sizes every list for the whole of argv, so appending never needs to grow. */
static int cli_init(struct cli *c, int argc, struct failure *f)
{
    size_t n = (size_t)argc + 1;
    memset(c, 0, sizeof *c);
    c->to.v = calloc(n, sizeof *c->to.v);
    c->cc.v = calloc(n, sizeof *c->cc.v);
    c->bcc.v = calloc(n, sizeof *c->bcc.v);
    c->headers.v = calloc(n, sizeof *c->headers.v);
    c->operands.v = calloc(n, sizeof *c->operands.v);
    if (!c->to.v || !c->cc.v || !c->bcc.v || !c->headers.v || !c->operands.v)
        return fail(f, EXIT_SOFTWARE, "memory: %s", strerror(ENOMEM));
    return EXIT_OK;
}

/* Maps a command name to its CMD_* value; CMD_NONE when unknown. */
static enum command command_from_name(const char *name)
{
    if (strcmp(name, "send") == 0)
        return CMD_SEND;
    if (strcmp(name, "status") == 0)
        return CMD_STATUS;
    if (strcmp(name, "help") == 0)
        return CMD_HELP;
    return CMD_NONE;
}

/*
 * Explains an option getopt_long() refused. The offending word is quoted up to any
 * '=', so that `--secret=...` typed by mistake never echoes the secret back.
 */
static int bad_option(struct failure *f, const char *word, int optopt_value)
{
    if (optopt_value >= OPT_BASE && optopt_value < OPT_BASE + O_COUNT)
        return fail(f, EXIT_USAGE, "--%s: takes no argument (try 'mailroom --help')",
                    opt_table[optopt_value - OPT_BASE].name);
    if (optopt_value > 0 && optopt_value < OPT_BASE)
        return fail(f, EXIT_USAGE, "-%c: unknown option (try 'mailroom --help')",
                    (char)optopt_value);
    size_t len = strcspn(word, "=");
    if (strncmp(word, "--secret", 8) == 0)
        return fail(f, EXIT_USAGE,
                    "--secret: no such option; secrets are never accepted on the command"
                    " line: use --keys-file PATH, MAILROOM_KEYS_FILE or MAILROOM_SECRET");
    int shown = len > 64 ? 64 : (int)len;
    return fail(f, EXIT_USAGE, "%.*s: unknown or ambiguous option (try 'mailroom --help')",
                shown, word);
}

/* Stores the argument of one recognised option. */
static int take_option(struct cli *c, enum opt_index idx, const char *arg,
                       struct failure *f)
{
    const struct opt_spec *spec = &opt_table[idx];
    c->count[idx]++;
    if (!spec->repeatable && c->count[idx] > 1)
        return fail(f, EXIT_USAGE, "--%s: given more than once", spec->name);
    switch (idx) {
    case O_TO:
        c->to.v[c->to.n++] = arg;
        break;
    case O_CC:
        c->cc.v[c->cc.n++] = arg;
        break;
    case O_BCC:
        c->bcc.v[c->bcc.n++] = arg;
        break;
    case O_HEADER:
        c->headers.v[c->headers.n++] = arg;
        break;
    default:
        c->value[idx] = arg;
        break;
    }
    return EXIT_OK;
}

/*
 * Parses argv with one getopt_long() loop over the options of all commands. The leading
 * '-' in the option string makes getopt return operands in order (as option 1), so the
 * first operand is the command wherever the options are; ':' makes it report a missing
 * argument distinctly. Words after "--" are operands too.
 */
static int parse_args(struct cli *c, int argc, char **argv, struct failure *f)
{
    struct option longopts[O_COUNT + 1];
    for (int i = 0; i < O_COUNT; i++)
        longopts[i] = (struct option){opt_table[i].name, opt_table[i].has_arg, NULL,
                                      OPT_BASE + i};
    longopts[O_COUNT] = (struct option){NULL, 0, NULL, 0};

    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
        int rc = EXIT_OK;
        if (ch == 1) {
            c->operands.v[c->operands.n++] = optarg;
        } else if (ch == 'h') {
            c->count[O_HELP]++;
        } else if (ch == ':') {
            if (optopt >= OPT_BASE && optopt < OPT_BASE + O_COUNT)
                rc = fail(f, EXIT_USAGE, "--%s: requires an argument",
                          opt_table[optopt - OPT_BASE].name);
            else
                rc = fail(f, EXIT_USAGE, "-%c: requires an argument", (char)optopt);
        } else if (ch == '?') {
            rc = bad_option(f, argv[optind - 1], optopt);
        } else if (ch >= OPT_BASE && ch < OPT_BASE + O_COUNT) {
            rc = take_option(c, (enum opt_index)(ch - OPT_BASE), optarg, f);
        } else {
            rc = fail(f, EXIT_SOFTWARE, "getopt returned %d", ch);
        }
        if (rc != EXIT_OK)
            return rc;
    }
    for (int i = optind; i < argc; i++)
        c->operands.v[c->operands.n++] = argv[i];

    if (c->operands.n > 0) {
        c->cmd_name = c->operands.v[0];
        c->cmd = command_from_name(c->cmd_name);
    }
    return EXIT_OK;
}

/* Checks that every option given belongs to the command, and the operand count. */
static int check_applicable(const struct cli *c, struct failure *f)
{
    for (int i = 0; i < O_COUNT; i++)
        if (c->count[i] > 0 && !(opt_table[i].commands & (unsigned)c->cmd))
            return fail(f, EXIT_USAGE,
                        "--%s: not an option of '%s' (try 'mailroom %s --help')",
                        opt_table[i].name, c->cmd_name, c->cmd_name);
    size_t want_max = c->cmd == CMD_SEND ? 1 : 2; /* the command itself, plus ID/CMD */
    if (c->operands.n > want_max)
        return fail(f, EXIT_USAGE, "%s: unexpected argument '%.64s'", c->cmd_name,
                    c->operands.v[want_max]);
    if (c->cmd == CMD_STATUS && c->operands.n < 2)
        return fail(f, EXIT_USAGE, "status: missing job ID (try 'mailroom status --help')");
    return EXIT_OK;
}

/* Checks the required and mutually exclusive options of `send`. */
static int check_send(const struct cli *c, struct failure *f)
{
    static const enum opt_index required[] = {O_TO, O_FROM, O_SUBJECT};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (c->count[required[i]] == 0)
            return fail(f, EXIT_USAGE, "send: --%s is required (try 'mailroom send --help')",
                        opt_table[required[i]].name);
    if (c->value[O_TEXT] && c->value[O_TEXT_FILE])
        return fail(f, EXIT_USAGE, "send: give either --text or --text-file, not both");
    if (!c->value[O_TEXT] && !c->value[O_TEXT_FILE])
        return fail(f, EXIT_USAGE, "send: --text or --text-file is required");
    if (c->value[O_TEXT_FILE] && c->value[O_HTML_FILE] &&
        strcmp(c->value[O_TEXT_FILE], "-") == 0 && strcmp(c->value[O_HTML_FILE], "-") == 0)
        return fail(f, EXIT_USAGE, "send: only one of --text-file and --html-file can be '-'");
    return EXIT_OK;
}

/*
 * Reads a whole file (or stdin for "-") into a new NUL-terminated string. The read is
 * binary-safe; a NUL byte inside, or more than INPUT_FILE_MAX bytes, is refused rather
 * than silently truncating the body. On success *out is owned by the caller.
 */
static int read_input(const char *opt, const char *path, char **out, struct failure *f)
{
    int is_stdin = strcmp(path, "-") == 0;
    const char *shown = is_stdin ? "stdin" : path;
    FILE *fp = is_stdin ? stdin : fopen(path, "rb");
    char *data = NULL;
    size_t len = 0;
    int rc = EXIT_OK;

    if (!fp) {
        rc = fail(f, EXIT_NOINPUT, "%s %s: %s", opt, shown, strerror(errno));
        goto out;
    }
    /* One byte more than the cap, to tell "exactly the cap" from "too big". */
    data = malloc(INPUT_FILE_MAX + 2);
    if (!data) {
        rc = fail(f, EXIT_SOFTWARE, "%s: %s", opt, strerror(ENOMEM));
        goto out;
    }
    while (len <= INPUT_FILE_MAX) {
        size_t got = fread(data + len, 1, INPUT_FILE_MAX + 1 - len, fp);
        if (got == 0)
            break;
        len += got;
    }
    if (ferror(fp)) {
        rc = fail(f, EXIT_NOINPUT, "%s %s: %s", opt, shown, strerror(errno));
        goto out;
    }
    if (len > INPUT_FILE_MAX) {
        rc = fail(f, EXIT_DATAERR, "%s %s: larger than %u KiB", opt, shown,
                  INPUT_FILE_MAX / 1024u);
        goto out;
    }
    if (memchr(data, '\0', len)) {
        rc = fail(f, EXIT_DATAERR, "%s %s: contains a NUL byte (binary data?)", opt, shown);
        goto out;
    }
    data[len] = '\0';
    *out = data;
    data = NULL;
out:
    if (fp && !is_stdin)
        fclose(fp);
    free(data);
    return rc;
}

/*
 * Splits each "Name: value" argument into a mailroom_header. Names are copied (they
 * must end where the ':' is); values point into argv, past the blanks after ':'.
 */
static int parse_headers(const struct strlist *raw, mailroom_header **out,
                         struct failure *f)
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
 * Parses an RFC 3339 time given to `opt` into whole seconds. send_at rounds up (never
 * earlier than asked), expires_at rounds down (never later than asked). The epoch itself
 * is refused because 0 means "unset" in mailroom_email.
 */
static int parse_time(const char *opt, const char *s, int round_up, time_t *out,
                      struct failure *f)
{
    int64_t ms;
    if (clock_parse_rfc3339(s, &ms) != 0)
        return fail(f, EXIT_USAGE,
                    "%s '%.64s': not an RFC 3339 time (e.g. 2026-11-24T13:00:00Z)", opt, s);
    int64_t secs = ms / 1000;
    int64_t rem = ms % 1000;
    if (rem != 0 && (round_up ? rem > 0 : rem < 0))
        secs += round_up ? 1 : -1;
    if (secs <= 0)
        return fail(f, EXIT_USAGE, "%s '%.64s': must be after 1970-01-01T00:00:00Z", opt, s);
    *out = (time_t)secs;
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
        (rc = parse_time("--expires-at", c->value[O_EXPIRES_AT], 0, &e->expires_at, f)) !=
            EXIT_OK)
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

/* The exit code for a library status code. */
static int exit_code_for(int rc)
{
    switch (rc) {
    case MAILROOM_OK:
        return EXIT_OK;
    case MAILROOM_EINVAL:
    case MAILROOM_ETOOBIG:
        return EXIT_DATAERR;
    case MAILROOM_EREDIS:
    case MAILROOM_ETIMEOUT:
    case MAILROOM_EPROTO:
        return EXIT_UNAVAIL;
    case MAILROOM_ENOTFOUND:
        return EXIT_NOTFOUND;
    case MAILROOM_EDUPLICATE:
        return EXIT_DUP;
    case MAILROOM_EKEY:
        return EXIT_CONFIG;
    case MAILROOM_ENOMEM:
    default:
        return EXIT_SOFTWARE;
    }
}

/*
 * Records a library failure: its message, or the generic text when it has none. A
 * message that already starts with "<what>: " is not prefixed a second time.
 */
static int fail_lib(struct failure *f, const char *what, const mailroom *m, int rc,
                    int code)
{
    const char *msg = mailroom_errmsg(m);
    if (!msg || !*msg)
        msg = mailroom_strerror(rc);
    size_t wlen = strlen(what);
    if (strncmp(msg, what, wlen) == 0 && msg[wlen] == ':' && msg[wlen + 1] == ' ')
        msg += wlen + 2;
    return fail(f, code, "%s: %s", what, msg);
}

/*
 * Opens the library handle. --redis and --queue go into the options; --keys-file is
 * handed over through MAILROOM_KEYS_FILE, which the library prefers to MAILROOM_SECRET,
 * so the secret never passes through this program. The file is checked for readability
 * first so that a wrong path gets a plain strerror message. An EINVAL from opening
 * means a bad URL or queue name, which is configuration, not input data.
 * A command that does not sign (signs = 0) leaves the key alone: `status` works for
 * whoever may read the queue without holding the secret.
 */
static int open_handle(const struct cli *c, int signs, mailroom **out, struct failure *f)
{
    mailroom_options opts;
    mailroom_options_init(&opts);
    opts.redis_url = c->value[O_REDIS];
    opts.queue = c->value[O_QUEUE];

    const char *keys = c->value[O_KEYS_FILE];
    if (!signs) {
        unsetenv("MAILROOM_KEYS_FILE");
        unsetenv("MAILROOM_SECRET");
    } else if (keys) {
        if (*keys == '\0')
            return fail(f, EXIT_USAGE, "--keys-file: empty path");
        FILE *fp = fopen(keys, "r");
        if (!fp)
            return fail(f, EXIT_CONFIG, "--keys-file %s: %s", keys, strerror(errno));
        fclose(fp);
        if (setenv("MAILROOM_KEYS_FILE", keys, 1) != 0)
            return fail(f, EXIT_SOFTWARE, "setenv: %s", strerror(errno));
    }

    int rc = mailroom_open(out, &opts);
    if (rc == MAILROOM_OK)
        return EXIT_OK;
    int code = rc == MAILROOM_EINVAL ? EXIT_CONFIG : exit_code_for(rc);
    fail_lib(f, code == EXIT_CONFIG ? "configuration" : "connect", *out, rc, code);
    mailroom_close(*out);
    *out = NULL;
    return code;
}

/* Flushes stdout; a result that cannot be written is a failure (exit 74). */
static int flush_stdout(const char *what, struct failure *f)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        return fail(f, EXIT_IOERR, "%s: stdout: %s", what, strerror(errno));
    return EXIT_OK;
}

/* `send`: build the email, enqueue it, print the job id. */
static int run_send(const struct cli *c, struct failure *f)
{
    struct send_inputs in = {0};
    mailroom_email e;
    mailroom *m = NULL;
    char id[MAILROOM_ID_MAX];
    int rc;

    if ((rc = check_send(c, f)) != EXIT_OK)
        goto out;
    if ((rc = build_email(c, &in, &e, f)) != EXIT_OK)
        goto out;
    if ((rc = open_handle(c, 1, &m, f)) != EXIT_OK)
        goto out;
    int lrc = mailroom_send(m, &e, id);
    if (lrc != MAILROOM_OK) {
        rc = fail_lib(f, "send", m, lrc, exit_code_for(lrc));
        goto out;
    }
    printf("%s\n", id);
    rc = flush_stdout("send (the job was enqueued)", f);
out:
    mailroom_close(m);
    send_inputs_free(&in);
    return rc;
}

/* Adds a string member of at most max bytes (status fields may fill their array). */
static int json_add_str(json_object *o, const char *key, const char *s, size_t max)
{
    json_object *v = json_object_new_string_len(s, (int)strnlen(s, max));
    if (!v)
        return -1;
    if (json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        return -1;
    }
    return 0;
}

/* Adds an integer member; null when null_if_zero and the value is 0. */
static int json_add_int(json_object *o, const char *key, int n, int null_if_zero)
{
    json_object *v = NULL;
    if (!(null_if_zero && n == 0)) {
        v = json_object_new_int(n);
        if (!v)
            return -1;
    }
    if (json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        return -1;
    }
    return 0;
}

/*
 * Builds the JSON object of a status record, members in a fixed order. The queue is not
 * part of mailroom_status, so the caller passes the name the handle was opened with.
 */
static json_object *status_json(const mailroom_job_status *st, const char *queue)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    const char *state = mailroom_state_name(st->state);
    if (json_add_str(o, "id", st->id, sizeof st->id) != 0 ||
        json_add_str(o, "queue", queue, strlen(queue)) != 0 ||
        json_add_str(o, "state", state, strlen(state)) != 0 ||
        json_add_int(o, "attempts", st->attempts, 0) != 0 ||
        json_add_int(o, "smtp_code", st->smtp_code, 1) != 0 ||
        json_add_str(o, "smtp_reply", st->smtp_reply, sizeof st->smtp_reply) != 0 ||
        json_add_str(o, "error", st->error, sizeof st->error) != 0 ||
        json_add_str(o, "consumer", st->consumer, sizeof st->consumer) != 0 ||
        json_add_str(o, "created_at", st->created_at, sizeof st->created_at) != 0 ||
        json_add_str(o, "updated_at", st->updated_at, sizeof st->updated_at) != 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/*
 * The queue name the library resolved, by the rule mailroom.h documents (option, then
 * MAILROOM_QUEUE, then "default"); the library has no call that reports it.
 */
static const char *effective_queue(const struct cli *c)
{
    if (c->value[O_QUEUE])
        return c->value[O_QUEUE];
    const char *env = getenv("MAILROOM_QUEUE");
    return env && *env ? env : "default";
}

/* `status ID`: read the job's record and print it as one line of JSON. */
static int run_status(const struct cli *c, struct failure *f)
{
    const char *id = c->operands.v[1];
    mailroom *m = NULL;
    mailroom_job_status st;
    json_object *o = NULL;
    int rc;

    if ((rc = open_handle(c, 0, &m, f)) != EXIT_OK)
        goto out;
    int lrc = mailroom_status(m, id, &st);
    if (lrc != MAILROOM_OK) {
        rc = fail_lib(f, "status", m, lrc, exit_code_for(lrc));
        goto out;
    }
    o = status_json(&st, effective_queue(c));
    const char *text = o ? json_object_to_json_string_ext(
                               o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
                         : NULL;
    if (!text) {
        rc = fail(f, EXIT_SOFTWARE, "status: %s", strerror(ENOMEM));
        goto out;
    }
    printf("%s\n", text);
    rc = flush_stdout("status", f);
out:
    json_object_put(o);
    mailroom_close(m);
    return rc;
}

/* The help text of a command (top-level help for none). */
static const char *usage_for(enum command cmd)
{
    switch (cmd) {
    case CMD_SEND:
        return usage_send;
    case CMD_STATUS:
        return usage_status;
    case CMD_HELP:
        return usage_help;
    case CMD_NONE:
    default:
        return usage_main;
    }
}

/*
 * `help [CMD]` and `--help`: picks the text to print, or fails for an unknown CMD.
 * Returns NULL with *rc set when there is nothing to print.
 */
static const char *help_text(const struct cli *c, struct failure *f, int *rc)
{
    *rc = EXIT_OK;
    if (c->cmd != CMD_HELP)
        return usage_for(c->cmd);
    if (c->operands.n > 2) {
        *rc = fail(f, EXIT_USAGE, "help: unexpected argument '%.64s'", c->operands.v[2]);
        return NULL;
    }
    if (c->operands.n < 2)
        return usage_main;
    enum command about = command_from_name(c->operands.v[1]);
    if (about == CMD_NONE) {
        *rc = fail(f, EXIT_USAGE, "help: unknown command '%.64s'", c->operands.v[1]);
        return NULL;
    }
    return usage_for(about);
}

/* Prints a failure as one line, with control characters masked so it stays one line. */
static void print_failure(const struct failure *f)
{
    char line[sizeof f->msg];
    size_t i;
    for (i = 0; f->msg[i] != '\0' && i < sizeof line - 1; i++) {
        unsigned char ch = (unsigned char)f->msg[i];
        line[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    line[i] = '\0';
    fprintf(stderr, "mailroom: %s\n", line);
}

int main(int argc, char **argv)
{
    struct cli c;
    struct failure f = {EXIT_OK, ""};
    int rc;

    if ((rc = cli_init(&c, argc, &f)) != EXIT_OK)
        goto out;
    if ((rc = parse_args(&c, argc, argv, &f)) != EXIT_OK)
        goto out;

    if (c.count[O_VERSION] > 0) {
        printf("%s\n", MAILROOM_VERSION_STRING);
        rc = flush_stdout("--version", &f);
        goto out;
    }
    if (c.cmd_name && c.cmd == CMD_NONE) {
        rc = fail(&f, EXIT_USAGE, "%.64s: unknown command (try 'mailroom --help')",
                  c.cmd_name);
        goto out;
    }
    if (c.count[O_HELP] > 0 || c.cmd == CMD_HELP) {
        const char *text = help_text(&c, &f, &rc);
        if (text) {
            fputs(text, stdout);
            rc = flush_stdout("help", &f);
        }
        goto out;
    }
    if (c.cmd == CMD_NONE) {
        rc = fail(&f, EXIT_USAGE, "no command given (try 'mailroom --help')");
        goto out;
    }
    if ((rc = check_applicable(&c, &f)) != EXIT_OK)
        goto out;

    rc = c.cmd == CMD_SEND ? run_send(&c, &f) : run_status(&c, &f);
out:
    if (rc != EXIT_OK)
        print_failure(&f);
    cli_free(&c);
    return rc;
}
