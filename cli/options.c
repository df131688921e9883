/*
 * options.c — the `mailroom` command line: one table describes every option once
 * (its name, whether it takes an argument, the commands it belongs to, whether it may
 * repeat), as curl's tool describes its options in one list; getopt_long's table is
 * made from it, and so is every check that an option was given to a command it
 * belongs to.
 *
 * The command line is parsed once, by one getopt_long() loop that knows the options of
 * every command; the first non-option argument names the command and the others are its
 * operands. After parsing, each option given is checked against the command it was
 * given to, so `mailroom status ID --to x` is a usage error rather than silently
 * ignored. Secrets never come from argv: there is no --secret flag, and a --redis URL
 * with a password is refused (ps would show it).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define OPT_BASE 256

/* One option: its long name, getopt's has_arg, the CMD_* bits of the commands it may
 * be given to, and whether it may be given more than once. */
struct opt_spec {
    const char *name;
    int has_arg;
    unsigned commands;
    int repeatable;
};

static const struct opt_spec opt_table[O_NOPTS] = {
    [O_REDIS] = {"redis", required_argument, CMD_ALL, 0},
    [O_QUEUE] = {"queue", required_argument, CMD_ALL, 0},
    [O_KEYS_FILE] = {"keys-file", required_argument, CMD_ALL, 0},
    [O_HELP] = {"help", no_argument, CMD_ALL, 1},
    [O_VERSION] = {"version", no_argument, CMD_ALL, 1},
    [O_TO] = {"to", required_argument, CMD_SEND | CMD_LIST, 1},
    [O_CC] = {"cc", required_argument, CMD_SEND, 1},
    [O_BCC] = {"bcc", required_argument, CMD_SEND, 1},
    [O_FROM] = {"from", required_argument, CMD_SEND | CMD_WATCH, 0}, /* watch: a stream id */
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
    [O_LIMIT] = {"limit", required_argument, CMD_DEAD | CMD_LIST | CMD_SUPPRESS, 0},
    [O_ALL] = {"all", no_argument, CMD_DEAD, 1},
    [O_OLDER_THAN] = {"older-than", required_argument, CMD_DEAD, 0},
    [O_GROUP] = {"group", required_argument, CMD_WATCH, 0},
    [O_CONSUMER] = {"consumer", required_argument, CMD_WATCH, 0},
    [O_DOMAIN] = {"domain", required_argument, CMD_LIST, 0},
    [O_CURSOR] = {"cursor", required_argument, CMD_LIST | CMD_SUPPRESS, 0},
    [O_ONCE] = {"once", no_argument, CMD_TOP, 1},
    [O_FOR] = {"for", required_argument, CMD_SUPPRESS, 0},
    [O_REASON] = {"reason", required_argument, CMD_SUPPRESS, 0},
};

const char *option_name(enum opt_index idx)
{
    return opt_table[idx].name;
}

void options_free(struct cli *c)
{
    free(c->to.v);
    free(c->cc.v);
    free(c->bcc.v);
    free(c->headers.v);
    free(c->operands.v);
}

/* Sizes every list for the whole of argv, so appending never needs to grow. */
int options_init(struct cli *c, int argc, struct failure *f)
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
enum command command_from_name(const char *name)
{
    static const struct {
        const char *name;
        enum command cmd;
    } names[] = {{"send", CMD_SEND},
                 {"status", CMD_STATUS},
                 {"help", CMD_HELP},
                 {"watch", CMD_WATCH},
                 {"stats", CMD_STATS},
                 {"dead", CMD_DEAD},
                 {"consumers", CMD_CONSUMERS},
                 {"list", CMD_LIST},
                 {"cancel", CMD_CANCEL},
                 {"retry-now", CMD_RETRY_NOW},
                 {"pause", CMD_PAUSE},
                 {"resume", CMD_RESUME},
                 {"top", CMD_TOP},
                 {"suppress", CMD_SUPPRESS}};
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
    return fail(f, EXIT_USAGE, "%.*s: unknown or ambiguous option (try 'mailroom --help')", shown,
                word);
}

/* Stores the argument of one recognised option. */
static int take_option(struct cli *c, enum opt_index idx, const char *arg, struct failure *f)
{
    const struct opt_spec *spec = &opt_table[idx];
    c->count[idx]++;
    if (!spec->repeatable && c->count[idx] > 1)
        return fail(f, EXIT_USAGE, "--%s: given more than once", spec->name);
    switch (idx) {
    case O_TO: c->to.v[c->to.n++] = arg; break;
    case O_CC: c->cc.v[c->cc.n++] = arg; break;
    case O_BCC: c->bcc.v[c->bcc.n++] = arg; break;
    case O_HEADER: c->headers.v[c->headers.n++] = arg; break;
    default: c->value[idx] = arg; break;
    }
    return EXIT_OK;
}

/* 1 when s is a plain non-negative decimal number ("30", "2.5"): --wait's value. */
int is_number(const char *s)
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
int options_parse(struct cli *c, int argc, char **argv, struct failure *f)
{
    struct option longopts[O_NOPTS + 1];
    for (int i = 0; i < O_NOPTS; i++)
        longopts[i] = (struct option){opt_table[i].name, opt_table[i].has_arg, NULL, OPT_BASE + i};
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
    case CMD_STATUS: return 2;
    case CMD_DEAD: return c->operands.n > 1 && strcmp(c->operands.v[1], "retry") == 0 ? 3 : 2;
    case CMD_LIST:
    case CMD_CANCEL:
    case CMD_RETRY_NOW: return 2;
    case CMD_SUPPRESS: return c->operands.n > 1 && strcmp(c->operands.v[1], "list") == 0 ? 2 : 3;
    default: return 1;
    }
}

/* Checks that every option given belongs to the command, and the operand count. */
int options_check(const struct cli *c, struct failure *f)
{
    for (int i = 0; i < O_NOPTS; i++)
        if (c->count[i] > 0 && !(opt_table[i].commands & (unsigned)c->cmd))
            return fail(f, EXIT_USAGE, "--%s: not an option of '%s' (try 'mailroom %s --help')",
                        opt_table[i].name, c->cmd_name, c->cmd_name);
    size_t want_max = max_operands(c);
    if (c->operands.n > want_max)
        return fail(f, EXIT_USAGE, "%s: unexpected argument '%.64s'", c->cmd_name,
                    c->operands.v[want_max]);
    if (c->cmd == CMD_STATUS && c->operands.n < 2)
        return fail(f, EXIT_USAGE, "status: missing job ID (try 'mailroom status --help')");
    if (c->value[O_REDIS] && mailroom_url_has_password(c->value[O_REDIS]))
        return fail(f, EXIT_USAGE,
                    "--redis must not carry a password (ps would show it); "
                    "use MAILROOM_REDIS_URL or MAILROOM_REDIS_PASSWORD_FILE");
    return EXIT_OK;
}

/* Parses a whole decimal integer in [1, max] given to option `opt`. */
int option_positive(const char *opt, const char *s, long max, long *out, struct failure *f)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > max)
        return fail(f, EXIT_USAGE, "--%s '%.32s': expected a whole number from 1 to %ld", opt, s,
                    max);
    *out = v;
    return EXIT_OK;
}

/* Parses a duration given to option `opt`; positive unless zero_ok. */
int option_duration(const char *opt, const char *s, int zero_ok, long long *out, struct failure *f)
{
    if (mailroom_parse_duration(s, out) != MAILROOM_OK || (!zero_ok && *out == 0))
        return fail(f, EXIT_USAGE, "--%s '%.32s': expected a duration such as 30s, 15m, 12h or 7d",
                    opt, s);
    return EXIT_OK;
}
