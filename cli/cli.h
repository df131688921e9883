/*
 * cli.h — what the files of the `mailroom` command share: the exit statuses, the
 * parsed command line, the failure a command reports, and each file's entry points.
 *
 *     main.c        main(): parse, help, dispatch; opening the library handle
 *     options.c     the option table, getopt_long, per-command checks, option values
 *     help.c        the help texts
 *     exit.c        the one table from mailroom_rc to exit status; failures
 *     output.c      printing: masked text, JSON lines, the status record, stdout
 *     send.c        send (one email from flags and files, --wait)
 *     send_jsonl.c  send --jsonl (many emails from JSON lines, in batches)
 *     status.c      status ID
 *     watch.c       watch (the status channel, or the events stream: --from, --group)
 *     stats.c       stats, consumers
 *     dead.c        dead list | retry | purge
 *     jobs.c        list, cancel, retry-now, pause, resume
 *     top.c         top
 *     suppress.c    suppress list | add | remove | check
 *
 * The CLI uses the public API only (mailroom.h, mailroom_admin.h), as curl's tool uses
 * only libcurl's. Only the command runners and main() print; every other function
 * reports a failure by returning its exit status and filling a `failure` with one line
 * of text, which main() prints to stderr as "mailroom: <text>" with control
 * characters masked.
 */
#ifndef MAILROOM_CLI_H
#define MAILROOM_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <mailroom.h>
#include <mailroom_admin.h>

struct json_object;

/* Exit statuses of the `mailroom` tool (sysexits.h values where one fits); `mailroom
 * --help` documents them. */
enum {
    EXIT_OK = 0,
    EXIT_NOTFOUND = 1,  /* status: no such job; dead retry: no entry with that id */
    EXIT_FINAL_BAD = 2, /* send --wait: the job ended failed or rejected */
    EXIT_STATE = 3,     /* cancel, retry-now: the job's state does not allow it */
    EXIT_USAGE = 64,    /* EX_USAGE */
    EXIT_DATAERR = 65,  /* EX_DATAERR: invalid email or input data */
    EXIT_NOINPUT = 66,  /* EX_NOINPUT: an input file cannot be read */
    EXIT_UNAVAIL = 69,  /* EX_UNAVAILABLE: Redis unreachable, timeout, error */
    EXIT_SOFTWARE = 70, /* EX_SOFTWARE: internal error, out of memory */
    EXIT_DUP = 73,      /* EX_CANTCREAT: a job with that id already exists */
    EXIT_IOERR = 74,    /* EX_IOERR: cannot write the result to stdout */
    EXIT_TEMPFAIL = 75, /* EX_TEMPFAIL: send --wait: not final before the timeout */
    EXIT_CONFIG = 78    /* EX_CONFIG: no usable key, bad Redis URL or queue name */
};

/* Commands, as bits so that each option can list the commands it belongs to. */
enum command {
    CMD_NONE = 0,
    CMD_SEND = 1,
    CMD_STATUS = 2,
    CMD_HELP = 4,
    CMD_WATCH = 8,
    CMD_STATS = 16,
    CMD_CONSUMERS = 32,
    CMD_DEAD = 64,
    CMD_LIST = 128,
    CMD_CANCEL = 256,
    CMD_RETRY_NOW = 512,
    CMD_PAUSE = 1024,
    CMD_RESUME = 2048,
    CMD_TOP = 4096,
    CMD_SUPPRESS = 8192
};
#define CMD_ALL (~0u)
#define CMD_JSON_OUT                                                                               \
    (CMD_STATUS | CMD_WATCH | CMD_STATS | CMD_CONSUMERS | CMD_DEAD | CMD_LIST | CMD_CANCEL |       \
     CMD_RETRY_NOW | CMD_PAUSE | CMD_RESUME | CMD_SUPPRESS)

/* The options, in the order of the option table (options.c). The email options of
 * send are O_TO .. O_WAIT, contiguous. */
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
    O_GROUP,
    O_CONSUMER,
    O_DOMAIN,
    O_CURSOR,
    O_ONCE,
    O_FOR,
    O_REASON,
    O_NOPTS
};

/* A list of argv strings; its storage is sized for all of argv up front. */
struct strlist {
    const char **v;
    size_t n;
};

/* Everything the command line said. Strings point into argv. */
struct cli {
    enum command cmd;
    const char *cmd_name;       /* as typed, for messages */
    int count[O_NOPTS];         /* how often each option was given */
    const char *value[O_NOPTS]; /* the argument of single-valued options */
    struct strlist to, cc, bcc, headers, operands;
};

/* A failure on its way to main(): one line of explanation (the exit status travels
 * as the return value). */
struct failure {
    char msg[1024];
};

/* ---------------------------------------------------------------- exit.c */

/* Records a failure and returns its exit status, so callers can `return fail(...)`. */
int fail(struct failure *f, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The exit status for a library status code: of a call (opening = 0), or of
 * mailroom_open() (opening = 1), where a bad option is configuration. */
int exit_for_rc(int rc, int opening);

/* Records a library failure as "<what>: <mailroom_errmsg>" (the generic text when
 * there is none; a message that already starts with "<what>: " is not prefixed twice)
 * and returns exit_for_rc(rc, 0). */
int fail_lib(struct failure *f, const char *what, const mailroom *m, int rc);

/* Records an operator call's failure: its message as the library wrote it. */
int fail_admin(struct failure *f, const mailroom *m, int rc);

/* ---------------------------------------------------------------- options.c */

/* Sizes every list of c for the whole of argv. EXIT_OK or EXIT_SOFTWARE. */
int options_init(struct cli *c, int argc, struct failure *f);
void options_free(struct cli *c);

/* Parses argv (every command's options, in any order); the first operand names the
 * command. EXIT_OK or EXIT_USAGE. */
int options_parse(struct cli *c, int argc, char **argv, struct failure *f);

/* Checks that every option given belongs to the command, and the operand count. */
int options_check(const struct cli *c, struct failure *f);

/* The command called name; CMD_NONE when unknown. */
enum command command_from_name(const char *name);

/* The long name of an option ("to" for O_TO). */
const char *option_name(enum opt_index idx);

/* 1 when s is a plain non-negative decimal number ("30", "2.5"): --wait's value. */
int is_number(const char *s);

/* A whole number in [1, max] given to option opt. EXIT_OK or EXIT_USAGE. */
int option_positive(const char *opt, const char *s, long max, long *out, struct failure *f);

/* A duration given to option opt (mailroom_parse_duration), positive unless zero_ok.
 * EXIT_OK or EXIT_USAGE. */
int option_duration(const char *opt, const char *s, int zero_ok, long long *out, struct failure *f);

/* ---------------------------------------------------------------- help.c */

/* `help [CMD]` and `--help`: the text to print, or NULL with *rc set (unknown CMD). */
const char *help_text(const struct cli *c, struct failure *f, int *rc);

/* ---------------------------------------------------------------- main.c */

/*
 * Opens the library handle for a command: --redis and --queue as options, the key
 * only when the command signs (signs), a longer command timeout for the operator
 * commands (admin). With offline_ok, a handle whose only trouble is reaching Redis is
 * kept (it validates, and reconnects on its next call). EXIT_OK with *out, or the exit
 * status with *out NULL.
 */
int open_handle(const struct cli *c, int signs, int offline_ok, int admin, mailroom **out,
                struct failure *f);

/* ---------------------------------------------------------------- output.c */

/* Writes s to fp with every control character (C0, DEL and C1) replaced by '?', so
 * that a line stays one line and no text from a job or an input file can send escape
 * sequences to the terminal. */
void out_clean(const char *s, FILE *fp);

/* Prints "mailroom: <msg>" on stderr as one line, control characters masked. */
void out_error_line(const char *msg);

/* Adds member key = v to object o, taking ownership of v: on failure (or when v is
 * NULL, as when its constructor ran out of memory) v is released. 0 or -1. */
int out_json_set(struct json_object *o, const char *key, struct json_object *v);

/* Prints a json-c value as one line of JSON on stdout (not flushed). EXIT_OK, or
 * EXIT_SOFTWARE when memory ran out. */
int out_json_line(struct json_object *o, struct failure *f);

/* Flushes stdout: EXIT_OK, or EXIT_IOERR with "<what>: stdout: <why>". */
int out_flush(const char *what, struct failure *f);

/* Prints a status record as one line of JSON on stdout and flushes it, with the job's
 * relay id and recipients (mailroom_status_detail) when it has them. */
int out_status(mailroom *m, const mailroom_job_status *st, const char *what, struct failure *f);

/* ms since the epoch as RFC 3339 UTC with milliseconds ("" for 0 or less). */
void out_time_ms(long long ms, char out[32]);

/* Adds member key = s to o, or null for NULL and "" (a member the data lacks).
 * 0, or -1 when memory ran out. */
int out_json_set_str(struct json_object *o, const char *key, const char *s);

/* ---------------------------------------------------------------- the commands */

int cmd_send(const struct cli *c, struct failure *f);
int cmd_send_jsonl(const struct cli *c, struct failure *f);
int cmd_status(const struct cli *c, struct failure *f);
int cmd_watch(const struct cli *c, struct failure *f);
int cmd_stats(const struct cli *c, struct failure *f);
int cmd_consumers(const struct cli *c, struct failure *f);
int cmd_dead(const struct cli *c, struct failure *f);
int cmd_list(const struct cli *c, struct failure *f);
int cmd_cancel(const struct cli *c, struct failure *f);
int cmd_retry_now(const struct cli *c, struct failure *f);
int cmd_pause(const struct cli *c, struct failure *f);
int cmd_top(const struct cli *c, struct failure *f);
int cmd_suppress(const struct cli *c, struct failure *f);

/* ---------------------------------------------------------------- send.c */

/* Reads a whole file (or stdin for "-"), the argument of option opt, into a new
 * NUL-terminated buffer (*out, owned by the caller) of *len bytes, refusing more than
 * max bytes (exit 65). */
int read_all(const char *opt, const char *path, size_t max, char **out, size_t *len,
             struct failure *f);

#endif
