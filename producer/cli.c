/*
 * cli.c — the `mailroom` command-line tool, a thin front end to libmailroom.
 *
 *     mailroom [GLOBAL] COMMAND [ARGS]      (global options may also follow COMMAND)
 *
 * `send` builds a mailroom_email from flags (and files), enqueues it with
 * mailroom_send() and prints the job id; with --wait it then waits for the outcome
 * with mailroom_wait(). `send --jsonl` reads one email per line (JSON, parsed with
 * json-c), validates every line with mailroom_validate() before enqueueing any, then
 * enqueues them in pipelined batches with mailroom_send_batch(). `status` reads a job's
 * status record with mailroom_status() and prints it as one line of JSON. The operator
 * commands (watch, stats, consumers, dead ...) live in admin.c and talk to Redis
 * directly.
 *
 * The command line is parsed once, by one getopt_long() loop that knows the options of
 * every command; the first non-option argument names the command and the others are its
 * operands. After parsing, each option given is checked against the command it was
 * given to, so `mailroom status ID --to x` is a usage error rather than silently ignored.
 *
 * Secrets never come from argv: there is no --secret flag. The signing key comes from
 * MAILROOM_KEYS_FILE or MAILROOM_SECRET, and --keys-file PATH only sets
 * MAILROOM_KEYS_FILE for the library to read. Commands that sign nothing load no key at
 * all. Nothing here prints a secret, the Redis URL (which may hold a password) or the
 * contents of a keys file.
 *
 * Only main() and the command runners print; every other function reports a failure by
 * returning its exit code and filling a `failure` with one line of text, which main()
 * prints to stderr as "mailroom: <what>: <why>" with control characters masked. Exit
 * codes follow sysexits(3) (admin.h lists them; see usage_main).
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
#include <unistd.h>

#include <json-c/json.h>

#include "admin.h"
#include "clock.h"
#include "job.h"
#include "mailroom.h"
#include "rconn.h"

#define INPUT_FILE_MAX ((size_t)256 * 1024) /* cap on --text-file / --html-file */
#define JSONL_INPUT_MAX ((size_t)1 << 30)   /* cap on send --jsonl: 1 GiB */
#define READ_CHUNK ((size_t)1 << 16)        /* first buffer of read_all, then doubled */
#define WAIT_DEFAULT_S 30             /* send --wait without a value */
#define WAIT_MAX_S 2000000            /* keeps the timeout in an int of ms */
#define JSONL_BATCH 500               /* emails per pipelined round trip */
#define LINE_ERR_MAX 300
#define REDIS_FAILED_NAMED 5 /* send --jsonl: lines named one by one after a Redis failure */

static const char usage_main[] =
    "Usage: mailroom [GLOBAL OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Send transactional email asynchronously through a Redis queue.\n"
    "\n"
    "Commands:\n"
    "  send          enqueue an email (or a JSON-lines file of them) and print the job\n"
    "                id; --wait waits for the outcome\n"
    "  status ID     print a job's status record as one line of JSON\n"
    "  watch         print status events as they happen\n"
    "  stats         queue lengths, consumers, counters, sent per minute\n"
    "  consumers     consumers with heartbeat age, alive or silent, jobs held\n"
    "  dead list     show dead letters (failed and rejected jobs), newest first\n"
    "  dead retry    put dead jobs back into the queue (ID or --all)\n"
    "  dead purge    delete dead letters (all, or --older-than DURATION)\n"
    "  help [CMD]    show this help, or the help of CMD\n"
    "\n"
    "Global options (before or after COMMAND):\n"
    "  --redis URL        Redis URL, redis://[user@]host:port/db or\n"
    "                     redis-sentinel://host:port[,host:port...]/master[/db]\n"
    "                     (default: $MAILROOM_REDIS_URL, which may carry user:pass@,\n"
    "                     else redis://127.0.0.1:6379/0; a password never on the\n"
    "                     command line: MAILROOM_REDIS_PASSWORD_FILE)\n"
    "  --queue NAME       queue name (default: $MAILROOM_QUEUE, else \"default\")\n"
    "  --keys-file PATH   signing keys file, lines \"kid secret\"; the first key signs\n"
    "                     (default: $MAILROOM_KEYS_FILE, else the secret in\n"
    "                     $MAILROOM_SECRET with kid \"default\"). Secrets are never\n"
    "                     accepted on the command line. Only send uses a key.\n"
    "  -h, --help         show help (also: mailroom COMMAND --help)\n"
    "  --version          print the version\n"
    "\n"
    "Exit status:\n"
    "   0  success\n"
    "   1  not found: status of an unknown job; dead retry ID matched no entry\n"
    "   2  send --wait: the job ended failed or rejected\n"
    "  64  usage error: unknown or misplaced option, missing or conflicting options\n"
    "  65  invalid email or input data (rejected by validation, too big, NUL byte,\n"
    "      a bad line of send --jsonl: then nothing is enqueued)\n"
    "  66  an input file cannot be read\n"
    "  69  Redis unreachable, timed out, or answered with an error\n"
    "  70  internal error (out of memory)\n"
    "  73  a job with that --id already exists (send --jsonl: some line's id did)\n"
    "  74  the result could not be written to stdout\n"
    "  75  send --wait: the job was not final before the timeout (it stays queued)\n"
    "  78  configuration: no usable signing key, bad keys file, Redis URL or queue\n";

static const char usage_send[] =
    "Usage: mailroom send --to ADDR [--to ADDR]... [--cc ADDR]... [--bcc ADDR]...\n"
    "                     --from ADDR [--from-name NAME] [--reply-to ADDR]\n"
    "                     --subject TEXT (--text TEXT | --text-file FILE)\n"
    "                     [--html-file FILE] [--header 'Name: value']...\n"
    "                     [--id ID] [--send-at TIME] [--expires-at TIME]\n"
    "                     [--wait [SECONDS]]\n"
    "       mailroom send --jsonl FILE|-\n"
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
    "  --wait [SECONDS]        after printing the id, wait up to SECONDS (default 30;\n"
    "                          also --wait=SECONDS) for the outcome and print the\n"
    "                          status record as JSON. Exits 0 when sent, 2 when failed\n"
    "                          or rejected (\"mailroom: ID STATE: ERROR\" on stderr),\n"
    "                          75 when not final in time.\n"
    "\n"
    "  --jsonl FILE|-          enqueue many emails: one JSON object per line, members\n"
    "                          to, cc, bcc (arrays of strings), from, from_name,\n"
    "                          reply_to, subject, text, html (strings), headers\n"
    "                          (object of strings), id, send_at, expires_at (RFC 3339\n"
    "                          strings); blank lines are skipped; at most 1 GiB in\n"
    "                          all. Every line is checked first: if any is bad, each\n"
    "                          bad line is named (\"mailroom: line N: ...\") and\n"
    "                          nothing is enqueued (exit 65). Otherwise all are\n"
    "                          enqueued in pipelined batches and their ids printed\n"
    "                          one per line in input order; progress and a summary\n"
    "                          go to stderr. A line whose id is already recorded is\n"
    "                          named and skipped (exit 73 after the rest). If Redis\n"
    "                          fails midway, the ids printed are exactly the lines\n"
    "                          enqueued (exit 69).\n"
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

static const char usage_watch[] =
    "Usage: mailroom watch [--json] [--count N] [--timeout DURATION]\n"
    "\n"
    "Subscribe to the queue's status channel and print every event as it arrives,\n"
    "one line each: time, state, job id, attempt, then the error or the SMTP reply.\n"
    "On a terminal states are coloured (sent green, retrying yellow, failed and\n"
    "rejected red; NO_COLOR turns that off). Runs until SIGINT or SIGTERM (exit 0).\n"
    "\n"
    "  --json               print each event's JSON exactly as published\n"
    "  --count N            exit 0 after N events\n"
    "  --timeout DURATION   exit 0 after DURATION without an event (30s, 5m, ...;\n"
    "                       a plain number is seconds)\n"
    "\n"
    "Exits 69 when Redis cannot be reached or the subscription is lost.\n";

static const char usage_stats[] =
    "Usage: mailroom stats [--json]\n"
    "\n"
    "Show the queue at a glance: pending jobs, scheduled jobs (and how many are due),\n"
    "jobs each consumer holds, dead letters, consumers with their heartbeat age, the\n"
    "counters (sent, retried, failed, rejected, recovered) and mails sent per minute\n"
    "(a sliding estimate over the last minute). Read in one pipelined round trip.\n"
    "\n"
    "  --json   one JSON object: {\"pending\":N,\"scheduled\":N,\"scheduled_due\":N,\n"
    "           \"dead\":N,\"processing\":{CONSUMER:N,..},\"consumers\":[{\"id\":..,\n"
    "           \"heartbeat_age_ms\":N,\"processing\":N},..],\"counters\":{..},\n"
    "           \"sent_per_min\":X}\n";

static const char usage_consumers[] =
    "Usage: mailroom consumers [--json] [--dead-after DURATION]\n"
    "\n"
    "List the consumers of the queue: id, state, heartbeat age and the jobs each one\n"
    "holds. A consumer is alive when its last heartbeat is at most DURATION old\n"
    "(default 30s), else silent; one that holds jobs without any heartbeat is listed\n"
    "as unregistered. Ages are measured with the Redis server's clock.\n"
    "\n"
    "  --json                 one JSON object per line: {\"id\":..,\n"
    "                         \"heartbeat_age_ms\":N|null,\"alive\":true|false,\n"
    "                         \"state\":\"alive\"|\"silent\"|\"unregistered\",\n"
    "                         \"processing\":N}\n"
    "  --dead-after DURATION  silent after this long without a heartbeat\n";

static const char usage_dead[] =
    "Usage: mailroom dead list [--limit N] [--json]\n"
    "       mailroom dead retry (ID | --all) [--json]\n"
    "       mailroom dead purge [--older-than DURATION] [--json]\n"
    "\n"
    "Dead letters are the jobs that ended failed or rejected, with their reason.\n"
    "\n"
    "  list    the newest N entries (default 20): a table of time, state, job id and\n"
    "          reason, or with --json each entry as stored, one per line:\n"
    "          {\"reason\",\"at\",\"consumer\",\"job\",\"id\",\"state\"}\n"
    "  retry   atomically removes the entries of job ID (or every entry with --all),\n"
    "          puts their jobs back at the head of the queue (taken next) and resets\n"
    "          their status records to queued with no attempts. Prints how many went\n"
    "          back; exits 1 when no entry has that ID. Entries without an id (a job\n"
    "          too broken to read one) only go back with --all.\n"
    "  purge   deletes every entry, or with --older-than DURATION (30s, 15m, 12h, 7d)\n"
    "          those older than that. Prints how many went.\n"
    "\n"
    "  --json  retry and purge print {\"retried\":N} or {\"purged\":N}\n";

static const char usage_help[] =
    "Usage: mailroom help [COMMAND]\n"
    "\n"
    "Show the general help, or the help of COMMAND (send, status, watch, stats,\n"
    "consumers, dead, help).\n";

/* Commands, as bits so that each option can list the commands it belongs to. */
enum command {
    CMD_NONE = 0,
    CMD_SEND = 1,
    CMD_STATUS = 2,
    CMD_HELP = 4,
    CMD_WATCH = 8,
    CMD_STATS = 16,
    CMD_CONSUMERS = 32,
    CMD_DEAD = 64
};
#define CMD_ALL 127u
#define CMD_JSON_OUT (CMD_STATUS | CMD_WATCH | CMD_STATS | CMD_CONSUMERS | CMD_DEAD)

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
    O_WAIT,
    O_JSONL,
    O_JSON,
    O_COUNT,
    O_TIMEOUT,
    O_DEAD_AFTER,
    O_LIMIT,
    O_ALL,
    O_OLDER_THAN,
    O_NOPTS
};
#define OPT_BASE 256

struct opt_spec {
    const char *name;
    int has_arg;
    unsigned commands; /* CMD_* bits this option may be given to */
    int repeatable;
};

static const struct opt_spec opt_table[O_NOPTS] = {
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
    [O_WAIT] = {"wait", optional_argument, CMD_SEND, 0},
    [O_JSONL] = {"jsonl", required_argument, CMD_SEND, 0},
    [O_JSON] = {"json", no_argument, CMD_JSON_OUT, 1},
    [O_COUNT] = {"count", required_argument, CMD_WATCH, 0},
    [O_TIMEOUT] = {"timeout", required_argument, CMD_WATCH, 0},
    [O_DEAD_AFTER] = {"dead-after", required_argument, CMD_CONSUMERS, 0},
    [O_LIMIT] = {"limit", required_argument, CMD_DEAD, 0},
    [O_ALL] = {"all", no_argument, CMD_DEAD, 1},
    [O_OLDER_THAN] = {"older-than", required_argument, CMD_DEAD, 0},
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
    int count[O_NOPTS];           /* how often each option was given */
    const char *value[O_NOPTS];   /* the argument of single-valued options */
    struct strlist to, cc, bcc, headers, operands;
};

/* A failure on its way to main(): one line of explanation (the exit code travels as
 * the return value). admin.c's runners fill msg directly. */
struct failure {
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
    return code;
}

/* Prints "mailroom: <msg>" as one line, control characters (C0, DEL, C1) masked. */
static void print_error_line(const char *msg)
{
    fputs("mailroom: ", stderr);
    admin_put_clean(msg, stderr);
    fputc('\n', stderr);
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
    static const struct {
        const char *name;
        enum command cmd;
    } names[] = {{"send", CMD_SEND},   {"status", CMD_STATUS},       {"help", CMD_HELP},
                 {"watch", CMD_WATCH}, {"stats", CMD_STATS},         {"dead", CMD_DEAD},
                 {"consumers", CMD_CONSUMERS}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0)
            return names[i].cmd;
    return CMD_NONE;
}

/*
 * Explains an option getopt_long() refused. The offending word is quoted up to any
 * '=', so that `--secret=...` typed by mistake never echoes the secret back.
 */
static int bad_option(struct failure *f, const char *word, int optopt_value)
{
    if (optopt_value >= OPT_BASE && optopt_value < OPT_BASE + O_NOPTS)
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

/* 1 when s is a plain non-negative decimal number ("30", "2.5"): --wait's value. */
static int is_number(const char *s)
{
    size_t digits = strspn(s, "0123456789");
    if (s[digits] == '.')
        return digits + 1 + strspn(s + digits + 1, "0123456789") == strlen(s) &&
               (digits > 0 || s[digits + 1] != '\0');
    return digits > 0 && s[digits] == '\0';
}

/*
 * Parses argv with one getopt_long() loop over the options of all commands. The leading
 * '-' in the option string makes getopt return operands in order (as option 1), so the
 * first operand is the command wherever the options are; ':' makes it report a missing
 * argument distinctly. Words after "--" are operands too. --wait takes an optional
 * value, which getopt only sees as "--wait=N"; "--wait N" is recognised here by taking
 * the next word when it is a number (send has no operands, so nothing is lost).
 */
static int parse_args(struct cli *c, int argc, char **argv, struct failure *f)
{
    struct option longopts[O_NOPTS + 1];
    for (int i = 0; i < O_NOPTS; i++)
        longopts[i] = (struct option){opt_table[i].name, opt_table[i].has_arg, NULL,
                                      OPT_BASE + i};
    longopts[O_NOPTS] = (struct option){NULL, 0, NULL, 0};

    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
        int rc = EXIT_OK;
        if (ch == 1) {
            c->operands.v[c->operands.n++] = optarg;
        } else if (ch == 'h') {
            c->count[O_HELP]++;
        } else if (ch == ':') {
            if (optopt >= OPT_BASE && optopt < OPT_BASE + O_NOPTS)
                rc = fail(f, EXIT_USAGE, "--%s: requires an argument",
                          opt_table[optopt - OPT_BASE].name);
            else
                rc = fail(f, EXIT_USAGE, "-%c: requires an argument", (char)optopt);
        } else if (ch == '?') {
            rc = bad_option(f, argv[optind - 1], optopt);
        } else if (ch == OPT_BASE + O_WAIT) {
            const char *arg = optarg;
            if (!arg && optind < argc && is_number(argv[optind]))
                arg = argv[optind++];
            rc = take_option(c, O_WAIT, arg ? arg : "", f);
        } else if (ch >= OPT_BASE && ch < OPT_BASE + O_NOPTS) {
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

/* How many operands (the command word included) a command takes at most. */
static size_t max_operands(const struct cli *c)
{
    switch (c->cmd) {
    case CMD_STATUS:
        return 2;
    case CMD_DEAD:
        return c->operands.n > 1 && strcmp(c->operands.v[1], "retry") == 0 ? 3 : 2;
    default:
        return 1;
    }
}

/* Checks that every option given belongs to the command, and the operand count. */
static int check_applicable(const struct cli *c, struct failure *f)
{
    for (int i = 0; i < O_NOPTS; i++)
        if (c->count[i] > 0 && !(opt_table[i].commands & (unsigned)c->cmd))
            return fail(f, EXIT_USAGE,
                        "--%s: not an option of '%s' (try 'mailroom %s --help')",
                        opt_table[i].name, c->cmd_name, c->cmd_name);
    size_t want_max = max_operands(c);
    if (c->operands.n > want_max)
        return fail(f, EXIT_USAGE, "%s: unexpected argument '%.64s'", c->cmd_name,
                    c->operands.v[want_max]);
    if (c->cmd == CMD_STATUS && c->operands.n < 2)
        return fail(f, EXIT_USAGE, "status: missing job ID (try 'mailroom status --help')");
    if (c->value[O_REDIS] && rconn_url_has_password(c->value[O_REDIS]))
        return fail(f, EXIT_USAGE, "--redis must not carry a password (ps would show it); "
                                   "use MAILROOM_REDIS_URL or MAILROOM_REDIS_PASSWORD_FILE");
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

/* `send --jsonl` takes its emails from the file: no email option may be given too. */
static int check_send_jsonl(const struct cli *c, struct failure *f)
{
    for (int i = O_TO; i <= O_WAIT; i++)
        if (c->count[i] > 0)
            return fail(f, EXIT_USAGE, "send: --%s cannot be combined with --jsonl",
                        opt_table[i].name);
    if (*c->value[O_JSONL] == '\0')
        return fail(f, EXIT_USAGE, "send: --jsonl: empty path");
    return EXIT_OK;
}

/* How an input path is named in messages: "-" is stdin. */
static const char *input_name(const char *path)
{
    return strcmp(path, "-") == 0 ? "stdin" : path;
}

/*
 * Reads a whole file (or stdin for "-"), the argument of option opt, into a new
 * NUL-terminated buffer (*out, owned by the caller) of *len bytes. The read is
 * binary-safe. The buffer starts at READ_CHUNK and doubles as data arrives; more than
 * max bytes is refused (exit 65) rather than silently truncated.
 */
static int read_all(const char *opt, const char *path, size_t max, char **out, size_t *len,
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
    if (rc != EXIT_OK)
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
 * Converts an RFC 3339 time into whole seconds. send_at rounds up (never earlier than
 * asked), expires_at rounds down (never later than asked). Returns 0, -1 when s is not
 * RFC 3339, -2 when it is not after the epoch (0 means "unset" in mailroom_email).
 */
static int rfc3339_seconds(const char *s, int round_up, time_t *out)
{
    int64_t ms;
    if (clock_parse_rfc3339(s, &ms) != 0)
        return -1;
    int64_t secs = ms / 1000;
    int64_t rem = ms % 1000;
    if (rem != 0 && (round_up ? rem > 0 : rem < 0))
        secs += round_up ? 1 : -1;
    if (secs <= 0)
        return -2;
    *out = (time_t)secs;
    return 0;
}

/* What is wrong with a time that rfc3339_seconds() refused with r (-1 or -2). */
static const char *rfc3339_problem(int r)
{
    return r == -1 ? "not an RFC 3339 time (e.g. 2026-11-24T13:00:00Z)"
                   : "must be after 1970-01-01T00:00:00Z";
}

/* rfc3339_seconds() for option `opt`, failures as usage errors. */
static int parse_time(const char *opt, const char *s, int round_up, time_t *out,
                      struct failure *f)
{
    int r = rfc3339_seconds(s, round_up, out);
    if (r != 0)
        return fail(f, EXIT_USAGE, "%s '%.64s': %s", opt, s, rfc3339_problem(r));
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
    case MAILROOM_EPENDING:
        return EXIT_TEMPFAIL;
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
 * With offline_ok, a handle whose only trouble is reaching Redis is kept (and EXIT_OK
 * returned): it can still validate, and reconnects on its next call.
 */
static int open_handle(const struct cli *c, int signs, int offline_ok, mailroom **out,
                       struct failure *f)
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
    if (offline_ok && *out && (rc == MAILROOM_EREDIS || rc == MAILROOM_ETIMEOUT))
        return EXIT_OK;
    int code = rc == MAILROOM_EINVAL ? EXIT_CONFIG : exit_code_for(rc);
    fail_lib(f, code == EXIT_CONFIG ? "configuration" : "connect", *out, rc, code);
    mailroom_close(*out);
    *out = NULL;
    return code;
}

/* Adds a string member of at most max bytes (status fields may fill their array). */
static int json_add_str(json_object *o, const char *key, const char *s, size_t max)
{
    return admin_json_set(o, key, json_object_new_string_len(s, (int)strnlen(s, max)));
}

/* Adds an integer member; null when null_if_zero and the value is 0. */
static int json_add_int(json_object *o, const char *key, int n, int null_if_zero)
{
    if (null_if_zero && n == 0)
        return json_object_object_add(o, key, NULL) == 0 ? 0 : -1;
    return admin_json_set(o, key, json_object_new_int(n));
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

/* The Redis URL by the same rule (option, MAILROOM_REDIS_URL, the default). */
static const char *effective_redis_url(const struct cli *c)
{
    if (c->value[O_REDIS])
        return c->value[O_REDIS];
    const char *env = getenv("MAILROOM_REDIS_URL");
    return env && *env ? env : RCONN_DEFAULT_URL;
}

/* Prints a status record as one line of JSON on stdout and flushes it. */
static int print_status(const mailroom_job_status *st, const char *queue, const char *what,
                        struct failure *f)
{
    json_object *o = status_json(st, queue);
    int rc;
    if (!o)
        rc = fail(f, EXIT_SOFTWARE, "%s: %s", what, strerror(ENOMEM));
    else if ((rc = admin_print_json_line(o, f->msg, sizeof f->msg)) == EXIT_OK)
        rc = admin_flush_stdout(what, f->msg, sizeof f->msg);
    json_object_put(o);
    return rc;
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
        return fail(f, EXIT_USAGE, "--wait '%.32s': expected a number of seconds (0 to %d)",
                    value, WAIT_MAX_S);
    *ms = (int)(s * 1000.0 + 0.5);
    return EXIT_OK;
}

/*
 * `send --wait`: waits for the job's outcome and prints its record. sent is success;
 * failed or rejected exit 2 naming the error; not final in time exits 75 (the record
 * read last is printed all the same).
 */
static int wait_outcome(const struct cli *c, mailroom *m, const char *id, int ms,
                        struct failure *f)
{
    mailroom_job_status st;
    int lrc = mailroom_wait(m, id, ms, &st);
    if (lrc != MAILROOM_OK && lrc != MAILROOM_EPENDING)
        return fail_lib(f, "wait (the job was enqueued)", m, lrc, exit_code_for(lrc));
    int rc = print_status(&st, effective_queue(c), "wait", f);
    if (rc != EXIT_OK)
        return rc;
    if (lrc == MAILROOM_EPENDING)
        return fail(f, EXIT_TEMPFAIL,
                    "%s not final after %.1f s (state %s); it stays queued: check later with"
                    " 'mailroom status %s'",
                    id, (double)ms / 1000.0, mailroom_state_name(st.state), id);
    if (st.state != MAILROOM_STATE_SENT)
        return fail(f, EXIT_FINAL_BAD, "%s %s: %s", id, mailroom_state_name(st.state),
                    st.error[0] ? st.error : "(no error recorded)");
    return EXIT_OK;
}

/* `send`: build the email, enqueue it, print the job id (and with --wait, the outcome). */
static int run_send(const struct cli *c, struct failure *f)
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
    if ((rc = open_handle(c, 1, 0, &m, f)) != EXIT_OK)
        goto out;
    int lrc = mailroom_send(m, &e, id);
    if (lrc != MAILROOM_OK) {
        rc = fail_lib(f, "send", m, lrc, exit_code_for(lrc));
        goto out;
    }
    printf("%s\n", id);
    rc = admin_flush_stdout("send (the job was enqueued)", f->msg, sizeof f->msg);
    if (rc != EXIT_OK)
        goto out;
    if (c->value[O_WAIT])
        rc = wait_outcome(c, m, id, ms, f);
out:
    mailroom_close(m);
    send_inputs_free(&in);
    return rc;
}

/* ------------------------------------------------------------------ send --jsonl */

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

/*
 * One parsed line: the json-c tree its email's strings borrow from, and the arrays
 * the email points to. The email is valid while this lives.
 */
struct jsonl_email {
    json_object *root;
    const char **to, **cc, **bcc;
    mailroom_header *headers;
};

static void jsonl_email_free(struct jsonl_email *j)
{
    json_object_put(j->root);
    free(j->to);
    free(j->cc);
    free(j->bcc);
    free(j->headers);
    memset(j, 0, sizeof *j);
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

/* The members a line may have; member_names spells them. */
enum member {
    M_TO,
    M_CC,
    M_BCC,
    M_FROM,
    M_FROM_NAME,
    M_REPLY_TO,
    M_SUBJECT,
    M_TEXT,
    M_HTML,
    M_HEADERS,
    M_ID,
    M_SEND_AT,
    M_EXPIRES_AT
};

static const char *const member_names[] = {
    [M_TO] = "to",           [M_CC] = "cc",
    [M_BCC] = "bcc",         [M_FROM] = "from",
    [M_FROM_NAME] = "from_name", [M_REPLY_TO] = "reply_to",
    [M_SUBJECT] = "subject", [M_TEXT] = "text",
    [M_HTML] = "html",       [M_HEADERS] = "headers",
    [M_ID] = "id",           [M_SEND_AT] = "send_at",
    [M_EXPIRES_AT] = "expires_at"};
#define N_MEMBERS (sizeof member_names / sizeof member_names[0])

/* Writes a line's problem into why (LINE_ERR_MAX bytes) and returns -1. */
static int line_err(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int line_err(char *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, LINE_ERR_MAX, fmt, ap);
    va_end(ap);
    return -1;
}

/* Copies an array of strings into a new const char* array (borrowing the strings). */
static int take_strings(json_object *v, const char *name, const char ***out, size_t *n,
                        char *why)
{
    if (!json_object_is_type(v, json_type_array))
        return line_err(why, "'%s' must be an array of strings", name);
    size_t len = json_object_array_length(v);
    *n = len;
    if (len == 0)
        return 0;
    if (!(*out = calloc(len, sizeof **out)))
        return line_err(why, "out of memory") - 1;
    for (size_t i = 0; i < len; i++) {
        json_object *item = json_object_array_get_idx(v, i);
        if (!json_object_is_type(item, json_type_string))
            return line_err(why, "'%s' must be an array of strings (item %zu)",
                            name, i + 1);
        (*out)[i] = json_object_get_string(item);
    }
    return 0;
}

/* Copies the "headers" object into a new mailroom_header array. */
static int take_headers(json_object *v, struct jsonl_email *j, mailroom_email *e, char *why)
{
    if (!json_object_is_type(v, json_type_object))
        return line_err(why, "'headers' must be an object of strings");
    size_t n = (size_t)json_object_object_length(v), i = 0;
    if (n == 0)
        return 0;
    if (!(j->headers = calloc(n, sizeof *j->headers)))
        return line_err(why, "out of memory") - 1;
    json_object_object_foreach(v, name, value)
    {
        if (!json_object_is_type(value, json_type_string))
            return line_err(why, "header '%.64s' must be a string", name);
        j->headers[i++] = (mailroom_header){name, json_object_get_string(value)};
    }
    e->headers = j->headers;
    e->n_headers = i;
    return 0;
}

/* Stores a string member's value (borrowed from the tree) into *dst. */
static int take_string(json_object *v, const char *name, const char **dst, char *why)
{
    if (!json_object_is_type(v, json_type_string))
        return line_err(why, "'%s' must be a string", name);
    *dst = json_object_get_string(v);
    return 0;
}

/* Stores an RFC 3339 member as whole seconds, rounded as rfc3339_seconds() says. */
static int take_time(json_object *v, const char *name, int round_up, time_t *dst, char *why)
{
    const char *s = NULL;
    if (take_string(v, name, &s, why) != 0)
        return -1;
    int r = rfc3339_seconds(s, round_up, dst);
    return r == 0 ? 0 : line_err(why, "'%s': %s", name, rfc3339_problem(r));
}

/* Stores member m of a line into the email; -1 wrong type or value, -2 out of memory. */
static int take_member(enum member m, json_object *v, struct jsonl_email *j,
                       mailroom_email *e, char *why)
{
    const char *name = member_names[m];
    const char **field = NULL;
    switch (m) {
    case M_TO:
        return take_strings(v, name, &j->to, &e->n_to, why);
    case M_CC:
        return take_strings(v, name, &j->cc, &e->n_cc, why);
    case M_BCC:
        return take_strings(v, name, &j->bcc, &e->n_bcc, why);
    case M_HEADERS:
        return take_headers(v, j, e, why);
    case M_SEND_AT:
        return take_time(v, name, 1, &e->send_at, why);
    case M_EXPIRES_AT:
        return take_time(v, name, 0, &e->expires_at, why);
    case M_FROM:
        field = &e->from;
        break;
    case M_FROM_NAME:
        field = &e->from_name;
        break;
    case M_REPLY_TO:
        field = &e->reply_to;
        break;
    case M_SUBJECT:
        field = &e->subject;
        break;
    case M_TEXT:
        field = &e->text;
        break;
    case M_HTML:
        field = &e->html;
        break;
    case M_ID:
        field = &e->id;
        break;
    }
    return take_string(v, name, field, why);
}

/* json-c takes a text's length as an int: the input cap keeps every line within it. */
_Static_assert(JSONL_INPUT_MAX <= (size_t)INT32_MAX, "a --jsonl line must fit in an int");

/* Parses one line as a strict JSON object (nothing but blanks after it); NULL with the
 * reason in why otherwise. */
static json_object *parse_line(const char *text, size_t len, char *why)
{
    json_tokener *tok = NULL;
    json_object *o = NULL;
    if (memchr(text, '\0', len)) {
        line_err(why, "contains a NUL byte");
        goto out;
    }
    if (!(tok = json_tokener_new())) {
        line_err(why, "out of memory");
        goto out;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    if (jerr == json_tokener_continue)
        line_err(why, "invalid JSON: unexpected end of line");
    else if (jerr != json_tokener_success)
        line_err(why, "invalid JSON: %s", json_tokener_error_desc(jerr));
    else if (end + strspn(text + end, " \t\r") < len)
        line_err(why, "invalid JSON: text after the object");
    else if (!json_object_is_type(o, json_type_object))
        line_err(why, "not a JSON object");
    else
        goto out; /* success: keep o */
    json_object_put(o);
    o = NULL;
out:
    json_tokener_free(tok);
    return o;
}

/*
 * Turns one line into an email: strict JSON, an object, only known members, each of
 * its type. Returns 0; -1 with the reason in why; -2 when memory ran out. On success j
 * owns what the email borrows; free it with jsonl_email_free() in every case.
 */
static int line_to_email(const char *text, size_t len, struct jsonl_email *j,
                         mailroom_email *e, char *why)
{
    memset(j, 0, sizeof *j);
    memset(e, 0, sizeof *e);
    if (!(j->root = parse_line(text, len, why)))
        return strcmp(why, "out of memory") == 0 ? -2 : -1;
    json_object_object_foreach(j->root, key, value)
    {
        size_t m = 0;
        while (m < N_MEMBERS && strcmp(key, member_names[m]) != 0)
            m++;
        if (m == N_MEMBERS)
            return line_err(why, "unknown member '%.64s'", key);
        int r = take_member((enum member)m, value, j, e, why);
        if (r != 0)
            return r;
    }
    e->to = j->to;
    e->cc = j->cc;
    e->bcc = j->bcc;
    return 0;
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
        const struct jsonl_line *l = &in->lines[i];
        struct jsonl_email j;
        mailroom_email e;
        int r = line_to_email(in->data + l->off, l->len, &j, &e, why);
        if (r == 0 && mailroom_validate(m, &e) != MAILROOM_OK) {
            snprintf(why, sizeof why, "%s", mailroom_errmsg(m));
            r = -1;
        }
        jsonl_email_free(&j);
        if (r == -2)
            return fail(f, EXIT_SOFTWARE, "--jsonl: %s", strerror(ENOMEM));
        if (r != 0) {
            snprintf(line, sizeof line, "line %zu: %s", l->lineno, why);
            print_error_line(line);
            bad++;
        }
    }
    if (bad > 0)
        return fail(f, EXIT_DATAERR, "--jsonl: %zu of %zu lines invalid; nothing was enqueued",
                    bad, in->n_lines);
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
    double secs = (double)(clock_now_ms() - p->start_ms) / 1000.0;
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
    print_error_line(msg);
}

/* A status code that means Redis (or the connection) failed, not this email. */
static int is_redis_failure(int rc)
{
    return rc == MAILROOM_EREDIS || rc == MAILROOM_ETIMEOUT || rc == MAILROOM_EPROTO;
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
            line_message(p, lines[i].lineno,
                         "a job with id '%s' is already recorded; not enqueued", ids[i]);
            p->duplicates++;
        } else if (is_redis_failure(r)) {
            if (redis_failed++ == 0) {
                first_failed = lines[i].lineno;
                first_rc = r;
            }
            if (redis_failed <= REDIS_FAILED_NAMED)
                line_message(p, lines[i].lineno,
                             "job '%s' not enqueued (or, if Redis broke before answering,"
                             " unknown: see 'mailroom status %s')",
                             ids[i], ids[i]);
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

/*
 * Sends lines[0..n) with one mailroom_send_batch() call (one pipelined round trip).
 * The emails borrow from the parsed lines, freed before returning.
 */
static int jsonl_send_batch(mailroom *m, const struct jsonl_input *in, size_t first, size_t n,
                            struct jsonl_progress *p, struct failure *f)
{
    struct jsonl_email *js = calloc(n, sizeof *js);
    mailroom_email *es = calloc(n, sizeof *es);
    char(*ids)[MAILROOM_ID_MAX] = calloc(n, sizeof *ids);
    int *results = calloc(n, sizeof *results);
    char why[LINE_ERR_MAX];
    int rc = EXIT_OK;
    size_t parsed = 0;

    if (!js || !es || !ids || !results) {
        rc = fail(f, EXIT_SOFTWARE, "--jsonl: %s", strerror(ENOMEM));
        goto out;
    }
    for (; parsed < n; parsed++) {
        const struct jsonl_line *l = &in->lines[first + parsed];
        if (line_to_email(in->data + l->off, l->len, &js[parsed], &es[parsed], why) != 0) {
            rc = fail(f, EXIT_SOFTWARE, "--jsonl: line %zu: %s", l->lineno, why);
            parsed++;
            goto out;
        }
    }
    int lrc = mailroom_send_batch(m, es, n, ids, results);
    if (lrc == MAILROOM_EKEY || lrc == MAILROOM_ENOMEM) {
        rc = fail_lib(f, "send", m, lrc, exit_code_for(lrc));
        goto out;
    }
    rc = jsonl_report_batch(&in->lines[first], n, ids, results, lrc, m, p, f);
out:
    for (size_t i = 0; js && i < parsed; i++)
        jsonl_email_free(&js[i]);
    free(js);
    free(es);
    free(ids);
    free(results);
    return rc;
}

/* Pass two: every line, in batches, with progress; the exit code by what happened. */
static int jsonl_send_all(mailroom *m, const struct jsonl_input *in, struct failure *f)
{
    struct jsonl_progress p = {0, in->n_lines, 0, 0, 0, isatty(STDERR_FILENO), 0,
                               clock_now_ms()};
    int rc = EXIT_OK;
    for (size_t first = 0; first < in->n_lines && rc == EXIT_OK; first += JSONL_BATCH) {
        size_t n = in->n_lines - first < JSONL_BATCH ? in->n_lines - first : JSONL_BATCH;
        rc = jsonl_send_batch(m, in, first, n, &p, f);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            progress_clear(&p);
            rc = fail(f, EXIT_IOERR, "--jsonl: stdout: %s (jobs were enqueued)",
                      strerror(errno));
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
        return fail(f, EXIT_DUP, "--jsonl: %zu lines not enqueued: their ids were already"
                                 " recorded", p.duplicates);
    return EXIT_OK;
}

/*
 * `send --jsonl FILE|-`: read everything, validate every line, then enqueue. The
 * handle is kept even when Redis cannot be reached at first, so that bad lines are
 * reported either way; the batch call then fails on Redis with nothing enqueued.
 */
static int run_send_jsonl(const struct cli *c, struct failure *f)
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
    if ((rc = open_handle(c, 1, 1, &m, f)) != EXIT_OK)
        goto out;
    if ((rc = jsonl_validate_all(m, &in, f)) != EXIT_OK)
        goto out;
    rc = jsonl_send_all(m, &in, f);
out:
    mailroom_close(m);
    jsonl_input_free(&in);
    return rc;
}

/* `status ID`: read the job's record and print it as one line of JSON. */
static int run_status(const struct cli *c, struct failure *f)
{
    const char *id = c->operands.v[1];
    mailroom *m = NULL;
    mailroom_job_status st;
    int rc;

    if ((rc = open_handle(c, 0, 0, &m, f)) != EXIT_OK)
        goto out;
    int lrc = mailroom_status(m, id, &st);
    if (lrc != MAILROOM_OK) {
        rc = fail_lib(f, "status", m, lrc, exit_code_for(lrc));
        goto out;
    }
    rc = print_status(&st, effective_queue(c), "status", f);
out:
    mailroom_close(m);
    return rc;
}

/* ------------------------------------------------------------------ operator commands */

/* Parses a whole decimal integer in [1, max] given to option `opt`. */
static int parse_positive(const char *opt, const char *s, long max, long *out,
                          struct failure *f)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > max)
        return fail(f, EXIT_USAGE, "--%s '%.32s': expected a whole number from 1 to %ld", opt,
                    s, max);
    *out = v;
    return EXIT_OK;
}

/* Parses a duration given to option `opt`; positive unless zero_ok. */
static int parse_duration_opt(const char *opt, const char *s, int zero_ok, int64_t *out,
                              struct failure *f)
{
    if (admin_parse_duration(s, out) != 0 || (!zero_ok && *out == 0))
        return fail(f, EXIT_USAGE,
                    "--%s '%.32s': expected a duration such as 30s, 15m, 12h or 7d", opt, s);
    return EXIT_OK;
}

/* Checks `dead SUBCOMMAND` and its options, which belong to one subcommand each. */
static int check_dead(const struct cli *c, const char **sub, struct failure *f)
{
    static const struct {
        enum opt_index opt;
        const char *sub;
    } only[] = {{O_LIMIT, "list"}, {O_ALL, "retry"}, {O_OLDER_THAN, "purge"}};
    if (c->operands.n < 2)
        return fail(f, EXIT_USAGE,
                    "dead: missing subcommand: list, retry or purge (try 'mailroom dead"
                    " --help')");
    *sub = c->operands.v[1];
    if (strcmp(*sub, "list") != 0 && strcmp(*sub, "retry") != 0 && strcmp(*sub, "purge") != 0)
        return fail(f, EXIT_USAGE, "dead: unknown subcommand '%.64s' (list, retry, purge)",
                    *sub);
    for (size_t i = 0; i < sizeof only / sizeof only[0]; i++)
        if (c->count[only[i].opt] > 0 && strcmp(*sub, only[i].sub) != 0)
            return fail(f, EXIT_USAGE, "--%s: not an option of 'dead %s'",
                        opt_table[only[i].opt].name, *sub);
    if (strcmp(*sub, "retry") == 0) {
        int has_id = c->operands.n > 2;
        if (has_id == (c->count[O_ALL] > 0))
            return fail(f, EXIT_USAGE, "dead retry: give a job ID or --all (not both)");
        if (has_id && !job_id_valid(c->operands.v[2]))
            return fail(f, EXIT_USAGE, "dead retry: '%.64s' is not a job id", c->operands.v[2]);
    }
    return EXIT_OK;
}

/* Fills the admin options from the command line (values checked here: exit 64). */
static int admin_options(const struct cli *c, admin_opts *o, struct failure *f)
{
    int rc = EXIT_OK;
    memset(o, 0, sizeof *o);
    o->redis_url = effective_redis_url(c);
    o->queue = effective_queue(c);
    o->json = c->count[O_JSON] > 0;
    o->dead_after_ms = ADMIN_DEFAULT_DEAD_AFTER_MS;
    o->limit = ADMIN_DEFAULT_DEAD_LIMIT;
    o->older_than_ms = -1;
    o->all = c->count[O_ALL] > 0;
    if (c->value[O_COUNT])
        rc = parse_positive("count", c->value[O_COUNT], 1000000000L, &o->count, f);
    if (rc == EXIT_OK && c->value[O_TIMEOUT])
        rc = parse_duration_opt("timeout", c->value[O_TIMEOUT], 0, &o->timeout_ms, f);
    if (rc == EXIT_OK && c->value[O_DEAD_AFTER])
        rc = parse_duration_opt("dead-after", c->value[O_DEAD_AFTER], 0, &o->dead_after_ms, f);
    if (rc == EXIT_OK && c->value[O_LIMIT])
        rc = parse_positive("limit", c->value[O_LIMIT], 1000000L, &o->limit, f);
    if (rc == EXIT_OK && c->value[O_OLDER_THAN])
        rc = parse_duration_opt("older-than", c->value[O_OLDER_THAN], 1, &o->older_than_ms, f);
    return rc;
}

/* The operator commands: options, then the admin.c runner. */
static int run_admin(const struct cli *c, struct failure *f)
{
    admin_opts o;
    const char *sub = NULL;
    int rc;
    if (c->cmd == CMD_DEAD && (rc = check_dead(c, &sub, f)) != EXIT_OK)
        return rc;
    if ((rc = admin_options(c, &o, f)) != EXIT_OK)
        return rc;
    if (sub && strcmp(sub, "retry") == 0 && !o.all)
        o.id = c->operands.v[2];

    f->msg[0] = '\0';
    switch (c->cmd) {
    case CMD_WATCH:
        rc = admin_watch(&o, f->msg, sizeof f->msg);
        break;
    case CMD_STATS:
        rc = admin_stats(&o, f->msg, sizeof f->msg);
        break;
    case CMD_CONSUMERS:
        rc = admin_consumers(&o, f->msg, sizeof f->msg);
        break;
    default:
        rc = strcmp(sub, "list") == 0    ? admin_dead_list(&o, f->msg, sizeof f->msg)
             : strcmp(sub, "retry") == 0 ? admin_dead_retry(&o, f->msg, sizeof f->msg)
                                         : admin_dead_purge(&o, f->msg, sizeof f->msg);
        break;
    }
    return rc;
}

/* ------------------------------------------------------------------ help and main */

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
    case CMD_WATCH:
        return usage_watch;
    case CMD_STATS:
        return usage_stats;
    case CMD_CONSUMERS:
        return usage_consumers;
    case CMD_DEAD:
        return usage_dead;
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

/* Runs the command the line named (options already checked against it). */
static int dispatch(const struct cli *c, struct failure *f)
{
    switch (c->cmd) {
    case CMD_SEND:
        return c->value[O_JSONL] ? run_send_jsonl(c, f) : run_send(c, f);
    case CMD_STATUS:
        return run_status(c, f);
    default:
        return run_admin(c, f);
    }
}

int main(int argc, char **argv)
{
    struct cli c;
    struct failure f = {""};
    int rc;

    if ((rc = cli_init(&c, argc, &f)) != EXIT_OK)
        goto out;
    if ((rc = parse_args(&c, argc, argv, &f)) != EXIT_OK)
        goto out;

    if (c.count[O_VERSION] > 0) {
        printf("%s\n", MAILROOM_VERSION_STRING);
        rc = admin_flush_stdout("--version", f.msg, sizeof f.msg);
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
            rc = admin_flush_stdout("help", f.msg, sizeof f.msg);
        }
        goto out;
    }
    if (c.cmd == CMD_NONE) {
        rc = fail(&f, EXIT_USAGE, "no command given (try 'mailroom --help')");
        goto out;
    }
    if ((rc = check_applicable(&c, &f)) != EXIT_OK)
        goto out;
    rc = dispatch(&c, &f);
out:
    if (rc != EXIT_OK && f.msg[0])
        print_error_line(f.msg);
    cli_free(&c);
    return rc;
}
