/*
 * main.c — the `mailroom` command-line tool, a front end to libmailroom:
 *
 *     mailroom [GLOBAL] COMMAND [ARGS]      (global options may also follow COMMAND)
 *
 * main() parses the command line (options.c), answers --version and --help (help.c),
 * checks the options against the command and runs it: send and send --jsonl (send.c,
 * send_jsonl.c), status (status.c), and the operator commands watch, stats, consumers,
 * dead (watch.c, stats.c, dead.c), list, cancel, retry-now, pause, resume (jobs.c),
 * top (top.c) and suppress (suppress.c), which call mailroom_admin.h. Each command opens
 * its library handle through open_handle() below and returns an exit status with a
 * one-line failure, which main() prints (exit.c maps library codes to statuses).
 *
 * Secrets never come from argv. The signing key comes from MAILROOM_KEYS_FILE or
 * MAILROOM_SECRET, read by the library; --keys-file PATH only sets MAILROOM_KEYS_FILE.
 * Commands that sign nothing load no key at all. Nothing here prints a secret, the
 * Redis URL (which may hold a password) or the contents of a keys file.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define ADMIN_COMMAND_TIMEOUT_MS 10000 /* dead retry and purge walk the whole list */

/*
 * Hands --keys-file to the library through MAILROOM_KEYS_FILE, which it prefers to
 * MAILROOM_SECRET, so the secret never passes through this program; the file is checked
 * for readability first so that a wrong path gets a plain strerror message. A command
 * that does not sign leaves the key alone: `status` works for whoever may read the
 * queue without holding the secret.
 */
static int setup_key(const struct cli *c, int signs, struct failure *f)
{
    const char *keys = c->value[O_KEYS_FILE];
    if (!signs) {
        unsetenv("MAILROOM_KEYS_FILE");
        unsetenv("MAILROOM_SECRET");
        return EXIT_OK;
    }
    if (!keys)
        return EXIT_OK;
    if (*keys == '\0')
        return fail(f, EXIT_USAGE, "--keys-file: empty path");
    FILE *fp = fopen(keys, "r");
    if (!fp)
        return fail(f, EXIT_CONFIG, "--keys-file %s: %s", keys, strerror(errno));
    fclose(fp);
    if (setenv("MAILROOM_KEYS_FILE", keys, 1) != 0)
        return fail(f, EXIT_SOFTWARE, "setenv: %s", strerror(errno));
    return EXIT_OK;
}

/* Opens the command's handle (cli.h): the options, the key when it signs, then
 * mailroom_open; a failure is "configuration: ..." (78) or "connect: ..." (69). */
int open_handle(const struct cli *c, int signs, int offline_ok, int admin, mailroom **out,
                struct failure *f)
{
    mailroom_options opts;
    mailroom_options_init(&opts);
    opts.redis_url = c->value[O_REDIS];
    opts.queue = c->value[O_QUEUE];
    if (admin)
        opts.command_timeout_ms = ADMIN_COMMAND_TIMEOUT_MS;
    *out = NULL;
    int code = setup_key(c, signs, f);
    if (code != EXIT_OK)
        return code;
    int rc = mailroom_open(out, &opts);
    if (rc == MAILROOM_OK)
        return EXIT_OK;
    if (offline_ok && *out && (rc == MAILROOM_EREDIS || rc == MAILROOM_ETIMEOUT))
        return EXIT_OK;
    code = exit_for_rc(rc, 1);
    fail_lib(f, code == EXIT_CONFIG ? "configuration" : "connect", *out, rc);
    mailroom_close(*out);
    *out = NULL;
    return code;
}

/* Runs the command the line named (options already checked against it). */
static int dispatch(const struct cli *c, struct failure *f)
{
    switch (c->cmd) {
    case CMD_SEND: return c->value[O_JSONL] ? cmd_send_jsonl(c, f) : cmd_send(c, f);
    case CMD_STATUS: return cmd_status(c, f);
    case CMD_WATCH: return cmd_watch(c, f);
    case CMD_STATS: return cmd_stats(c, f);
    case CMD_CONSUMERS: return cmd_consumers(c, f);
    case CMD_DEAD: return cmd_dead(c, f);
    case CMD_LIST: return cmd_list(c, f);
    case CMD_CANCEL: return cmd_cancel(c, f);
    case CMD_RETRY_NOW: return cmd_retry_now(c, f);
    case CMD_PAUSE:
    case CMD_RESUME: return cmd_pause(c, f);
    case CMD_TOP: return cmd_top(c, f);
    case CMD_SUPPRESS: return cmd_suppress(c, f);
    default: return fail(f, EXIT_SOFTWARE, "no runner for '%s'", c->cmd_name);
    }
}

/* --version, --help and `help`, or the checks a command must pass before it runs. -1
 * when the command is to run; otherwise the exit status. */
static int before_command(const struct cli *c, struct failure *f)
{
    int rc;
    if (c->count[O_VERSION] > 0) {
        printf("%s\n", MAILROOM_VERSION_STRING);
        return out_flush("--version", f);
    }
    if (c->cmd_name && c->cmd == CMD_NONE)
        return fail(f, EXIT_USAGE, "%.64s: unknown command (try 'mailroom --help')", c->cmd_name);
    if (c->count[O_HELP] > 0 || c->cmd == CMD_HELP) {
        const char *text = help_text(c, f, &rc);
        if (!text)
            return rc;
        fputs(text, stdout);
        return out_flush("help", f);
    }
    if (c->cmd == CMD_NONE)
        return fail(f, EXIT_USAGE, "no command given (try 'mailroom --help')");
    rc = options_check(c, f);
    return rc == EXIT_OK ? -1 : rc;
}

/* Parses, answers --version and help, checks the options against the command, runs
 * it, and prints its failure as one line on stderr. The exit status is the command's. */
int main(int argc, char **argv)
{
    struct cli c;
    struct failure f = {""};
    int rc;

    if ((rc = options_init(&c, argc, &f)) != EXIT_OK)
        goto out;
    if ((rc = options_parse(&c, argc, argv, &f)) != EXIT_OK)
        goto out;
    if ((rc = before_command(&c, &f)) < 0)
        rc = dispatch(&c, &f);
out:
    if (rc != EXIT_OK && f.msg[0])
        out_error_line(f.msg);
    options_free(&c);
    return rc;
}
