/*
 * options.c — mailroom-web's options, described once in one table from which
 * getopt's long options, `--help`, each option's environment variable and the
 * defaults all come (as the consumer describes its own). A value comes from the
 * command line, else from its environment variable, else from its default.
 *
 * The token is never an option's value: --token-file names the file that holds it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "web.h"

typedef enum kind { K_STRING, K_FLAG, K_LONG, K_DURATION, K_HELP, K_VERSION } kind;

typedef struct spec {
    const char *name, *env;
    kind kind;
    const char *arg, *def;
    long long min, max; /* K_LONG; K_DURATION in ms */
    size_t offset;      /* the field of web_options */
    const char *help;
} spec;

#define F(field) offsetof(web_options, field)
#define HOUR (3600LL * 1000)

static const spec table[] = {
    {"listen", "MAILROOM_WEB_LISTEN", K_STRING, "HOST:PORT", "127.0.0.1:8025", 0, 0, F(listen),
     "where to listen: an IPv4 or [IPv6] address, or localhost; a loopback address "
     "unless --allow-remote"},
    {"queue", "MAILROOM_QUEUE", K_STRING, "LIST", "default", 0, 0, F(queues),
     "the queues shown, comma separated (at most 32)"},
    {"redis", "MAILROOM_REDIS_URL", K_STRING, "URL", NULL, 0, 0, F(redis),
     "redis://host:port/db or redis-sentinel://...; a password only in the "
     "environment's URL or MAILROOM_REDIS_PASSWORD_FILE"},
    {"token-file", "MAILROOM_WEB_TOKEN_FILE", K_STRING, "PATH", NULL, 0, 0, F(token_file),
     "the action token (first line, 16 bytes or more, a file only its owner reads); "
     "without it the dashboard is read-only"},
    {"public-origin", "MAILROOM_WEB_PUBLIC_ORIGIN", K_STRING, "URL", NULL, 0, 0, F(public_origin),
     "scheme://host[:port] the browser uses behind a reverse proxy: requests naming it "
     "are accepted too"},
    {"allow-remote", "MAILROOM_WEB_ALLOW_REMOTE", K_FLAG, NULL, NULL, 0, 0, F(allow_remote),
     "allow a non-loopback --listen address (needs --token-file and --public-origin; "
     "implies --private)"},
    {"private", "MAILROOM_WEB_PRIVATE", K_FLAG, NULL, NULL, 0, 0, F(private_reads),
     "the token is needed to read too, not only to act"},
    {"max-streams", "MAILROOM_WEB_MAX_STREAMS", K_LONG, "N", "32", 1, 1000, F(max_streams),
     "live-feed connections served at once"},
    {"history", "MAILROOM_WEB_HISTORY", K_DURATION, "DUR", "3h", 60000, 48 * HOUR, F(history_ms),
     "the span of the charts by default (1m to 48h)"},
    {"help", NULL, K_HELP, NULL, NULL, 0, 0, 0, "this text"},
    {"version", NULL, K_VERSION, NULL, NULL, 0, 0, 0, "the version"},
};

#define N_SPECS (sizeof table / sizeof table[0])

/* Formats err and returns -1. */
static int opt_fail(char err[WEB_ERR_MAX], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int opt_fail(char err[WEB_ERR_MAX], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, WEB_ERR_MAX, fmt, ap);
    va_end(ap);
    return -1;
}

/* Stores one value given as text into its field, checked against the row. */
static int set_value(const spec *s, const char *text, web_options *o, char err[WEB_ERR_MAX])
{
    void *dst = (char *)o + s->offset;
    char *end;
    long long ms;
    switch (s->kind) {
    case K_STRING: *(const char **)dst = text; return 0;
    case K_FLAG:
        if (strcmp(text, "1") == 0 || strcmp(text, "true") == 0 || strcmp(text, "yes") == 0)
            *(int *)dst = 1;
        else if (strcmp(text, "0") == 0 || strcmp(text, "false") == 0 || strcmp(text, "no") == 0)
            *(int *)dst = 0;
        else
            return opt_fail(err, "'%.40s' is not 1 or 0", text);
        return 0;
    case K_LONG:
        errno = 0;
        long v = strtol(text, &end, 10);
        if (errno || end == text || *end || v < s->min || v > s->max)
            return opt_fail(err, "'%.40s' is not a whole number from %lld to %lld", text, s->min,
                            s->max);
        *(long *)dst = v;
        return 0;
    case K_DURATION:
        if (mailroom_parse_duration(text, &ms) != MAILROOM_OK || ms < s->min || ms > s->max)
            return opt_fail(err, "'%.40s' is not a duration from %lld ms to %lld ms", text, s->min,
                            s->max);
        *(int64_t *)dst = ms;
        return 0;
    default: return 0;
    }
}

/* Defaults, then the environment. */
static int defaults_and_env(web_options *o, char err[WEB_ERR_MAX])
{
    char why[WEB_ERR_MAX];
    memset(o, 0, sizeof *o);
    for (size_t i = 0; i < N_SPECS; i++) {
        const spec *s = &table[i];
        const char *env = s->env ? getenv(s->env) : NULL;
        if (s->def && set_value(s, s->def, o, why) != 0)
            return opt_fail(err, "default of --%s: %s", s->name, why);
        if (env && *env && set_value(s, env, o, why) != 0)
            return opt_fail(err, "%s: %s", s->env, why);
    }
    return 0;
}

/* Prints --help, generated from the table. */
static void usage(FILE *out)
{
    fputs("usage: mailroom-web [OPTION]...\n"
          "The mailroom dashboard: the queues, their history, consumers, relays, a live\n"
          "feed, jobs and the dead and suppression lists, served on one page\n"
          "(docs/dashboard.md).\n\nOptions (environment variable, default):\n",
          out);
    for (size_t i = 0; i < N_SPECS; i++) {
        const spec *s = &table[i];
        fprintf(out, "  --%s%s%s", s->name, s->arg ? " " : "", s->arg ? s->arg : "");
        if (s->env)
            fprintf(out, "  (%s%s%s)", s->env, s->def ? ", default " : "", s->def ? s->def : "");
        fprintf(out, "\n      %s\n", s->help);
    }
    fputs("\nSecrets never come from the command line: the token from --token-file, the\n"
          "Redis password from MAILROOM_REDIS_URL or MAILROOM_REDIS_PASSWORD_FILE.\n"
          "Exit status: 0 after a clean stop (SIGTERM, SIGINT), 64 bad usage, 69 the\n"
          "address cannot be bound, 70 internal error, 78 bad configuration.\n",
          out);
}

/* web_options_parse (web.h). */
web_parse web_options_parse(int argc, char **argv, web_options *out, char err[WEB_ERR_MAX])
{
    struct option longopts[N_SPECS + 1];
    char why[WEB_ERR_MAX];
    for (size_t i = 0; i < N_SPECS; i++) {
        int no_arg = table[i].kind == K_FLAG || table[i].kind >= K_HELP;
        longopts[i] = (struct option){table[i].name, no_arg ? no_argument : required_argument, NULL,
                                      256 + (int)i};
    }
    longopts[N_SPECS] = (struct option){NULL, 0, NULL, 0};
    if (defaults_and_env(out, err) != 0)
        return WEB_PARSE_USAGE;
    opterr = 0;
    optind = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt < 256 || opt >= 256 + (int)N_SPECS) {
            opt_fail(err, "unknown option or missing value: %.80s", argv[optind - 1]);
            return WEB_PARSE_USAGE;
        }
        const spec *s = &table[opt - 256];
        if (s->kind == K_HELP || s->kind == K_VERSION) {
            if (s->kind == K_HELP)
                usage(stdout);
            else
                printf("mailroom-web %s\n", MAILROOM_VERSION_STRING);
            return WEB_PARSE_EXIT;
        }
        if (set_value(s, s->kind == K_FLAG ? "1" : optarg, out, why) != 0) {
            opt_fail(err, "--%s: %s", s->name, why);
            return WEB_PARSE_USAGE;
        }
        if (strcmp(s->name, "redis") == 0)
            out->redis_on_command_line = 1;
    }
    if (optind < argc) {
        opt_fail(err, "unexpected argument: %.80s", argv[optind]);
        return WEB_PARSE_USAGE;
    }
    return WEB_PARSE_RUN;
}
