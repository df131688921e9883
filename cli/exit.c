/*
 * exit.c — how the `mailroom` command ends: the one table from the library's status
 * codes to exit statuses, and the failure every function hands back to main().
 *
 * The exit statuses are a promise to scripts (`mailroom --help` lists them; the
 * integration tests check them), so every library code maps to one here and nowhere
 * else. The only distinction is where the code came from: mailroom_open() reports a
 * bad Redis URL, queue name or alg as MAILROOM_EINVAL, which for the tool is
 * configuration (78), while MAILROOM_EINVAL from a call is a bad email (65).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* One row per mailroom_rc: the exit status of a call that failed with it, and of
 * mailroom_open() failing with it. */
static const struct {
    int call, open;
} exit_table[] = {
    [MAILROOM_OK] = {EXIT_OK, EXIT_OK},
    [MAILROOM_EINVAL] = {EXIT_DATAERR, EXIT_CONFIG},
    [MAILROOM_ENOMEM] = {EXIT_SOFTWARE, EXIT_SOFTWARE},
    [MAILROOM_EREDIS] = {EXIT_UNAVAIL, EXIT_UNAVAIL},
    [MAILROOM_ETIMEOUT] = {EXIT_UNAVAIL, EXIT_UNAVAIL},
    [MAILROOM_ENOTFOUND] = {EXIT_NOTFOUND, EXIT_NOTFOUND},
    [MAILROOM_EDUPLICATE] = {EXIT_DUP, EXIT_DUP},
    [MAILROOM_ETOOBIG] = {EXIT_DATAERR, EXIT_DATAERR},
    [MAILROOM_EKEY] = {EXIT_CONFIG, EXIT_CONFIG},
    [MAILROOM_EPROTO] = {EXIT_UNAVAIL, EXIT_UNAVAIL},
    [MAILROOM_EPENDING] = {EXIT_TEMPFAIL, EXIT_TEMPFAIL},
    [MAILROOM_ESTATE] = {EXIT_STATE, EXIT_STATE},
};

int exit_for_rc(int rc, int opening)
{
    if (rc < 0 || (size_t)rc >= sizeof exit_table / sizeof exit_table[0])
        return EXIT_SOFTWARE; /* a code newer than this table */
    return opening ? exit_table[rc].open : exit_table[rc].call;
}

int fail(struct failure *f, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
    return code;
}

/* The library's message for rc on handle m, or the generic text when it has none. */
static const char *lib_message(const mailroom *m, int rc)
{
    const char *msg = mailroom_errmsg(m);
    return msg && *msg ? msg : mailroom_strerror(rc);
}

int fail_lib(struct failure *f, const char *what, const mailroom *m, int rc)
{
    const char *msg = lib_message(m, rc);
    size_t wlen = strlen(what);
    if (strncmp(msg, what, wlen) == 0 && msg[wlen] == ':' && msg[wlen + 1] == ' ')
        msg += wlen + 2;
    return fail(f, exit_for_rc(rc, 0), "%s: %s", what, msg);
}

int fail_admin(struct failure *f, const mailroom *m, int rc)
{
    return fail(f, exit_for_rc(rc, 0), "%s", lib_message(m, rc));
}
