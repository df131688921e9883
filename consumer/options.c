/* options: see options.h. options_table below is the only description of an option. */
#define _GNU_SOURCE
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "mailroom_version.h"

#define F(field) offsetof(consumer_options, field)
#define SEC 1000LL
#define DAY (86400 * SEC)
#define YEARS (100 * 365 * DAY)

const option_spec options_table[] = {
    {"redis", "MAILROOM_REDIS_URL", K_STRING, "URL", "redis://127.0.0.1:6379/0", NULL, 0, 0,
     F(redis),
     "redis://[user@]host:port/db or redis-sentinel://host:port[,...]/master[/db]; "
     "a password only in the environment's URL or MAILROOM_REDIS_PASSWORD_FILE"},
    {"queue", "MAILROOM_QUEUE", K_STRING, "NAME", "default", NULL, 0, 0, F(queue),
     "queue name, [A-Za-z0-9._:-]{1,64}"},
    {"smtp", "MAILROOM_SMTP_URL", K_STRING, "URL", "smtp://127.0.0.1:25", NULL, 0, 0, F(smtp),
     "smtp://host:port (STARTTLS) or smtps://host:port (implicit TLS)"},
    {"smtp-tls", "MAILROOM_SMTP_TLS", K_STRING, "POLICY", NULL, "required|none", 0, 0, F(smtp_tls),
     "STARTTLS for smtp://: required, or none (the default for a loopback host "
     "only)"},
    {"smtp-ca-file", "MAILROOM_SMTP_CA_FILE", K_STRING, "PATH", NULL, NULL, 0, 0, F(smtp_ca_file),
     "private CA bundle for the SMTP server's certificate"},
    {"smtp-insecure", "MAILROOM_SMTP_INSECURE", K_FLAG, NULL, NULL, NULL, 0, 0, F(smtp_insecure),
     "do not verify the SMTP server's certificate (logged at every start)"},
    {"smtp-user", "MAILROOM_SMTP_USER", K_STRING, "USER", NULL, NULL, 0, 0, F(smtp_user),
     "AUTH user; the password from MAILROOM_SMTP_PASSWORD_FILE"},
    {"ehlo-name", "MAILROOM_EHLO_NAME", K_STRING, "NAME", NULL, NULL, 0, 0, F(ehlo_name),
     "the name this host gives in EHLO (default its FQDN)"},
    {"concurrency", "MAILROOM_CONCURRENCY", K_LONG, "N", "8", NULL, 1, 256, F(concurrency),
     "worker threads, each with its own pipelined SMTP session"},
    {"id", "MAILROOM_CONSUMER_ID", K_STRING, "ID", NULL, NULL, 0, 0, F(id),
     "consumer id, unique per process (default host-pid-random)"},
    {"accept-alg", "MAILROOM_ACCEPT_ALG", K_STRING, "LIST", "hmac-sha1,hmac-sha256", NULL, 0, 0,
     F(accept_alg), "signature algorithms accepted, comma separated"},
    {"max-attempts", "MAILROOM_MAX_ATTEMPTS", K_LONG, "N", "10", NULL, 1, 1000, F(max_attempts),
     "attempts before a job fails"},
    {"backoff-base", "MAILROOM_BACKOFF_BASE", K_DURATION, "DUR", "10s", NULL, 1, YEARS,
     F(backoff_base), "first retry delay, doubled at each retry"},
    {"backoff-max", "MAILROOM_BACKOFF_MAX", K_DURATION, "DUR", "1h", NULL, 1, YEARS, F(backoff_max),
     "longest retry delay"},
    {"max-lifetime", "MAILROOM_MAX_LIFETIME", K_DURATION, "DUR", "24h", NULL, 0, YEARS,
     F(max_lifetime),
     "give a job up this long after its created_at (or its send_at when "
     "later); must stay below --status-ttl"},
    {"max-clock-skew", "MAILROOM_MAX_CLOCK_SKEW", K_DURATION, "DUR", "5m", NULL, 0, DAY,
     F(max_clock_skew), "refuse a job whose created_at is further in the future than this"},
    {"dead-after", "MAILROOM_DEAD_AFTER", K_DURATION, "DUR", "30s", NULL, 2 * SEC, YEARS,
     F(dead_after), "recover the jobs of consumers silent this long (at least 2s)"},
    {"shutdown-timeout", "MAILROOM_SHUTDOWN_TIMEOUT", K_DURATION, "DUR", "30s", NULL, 0, YEARS,
     F(shutdown_timeout), "how long jobs in hand may finish after SIGTERM"},
    {"status-ttl", "MAILROOM_STATUS_TTL", K_DURATION, "DUR", "7d", NULL, SEC, YEARS, F(status_ttl),
     "lifetime of a job's status record after its last change"},
    {"dead-max", "MAILROOM_DEAD_MAX", K_LONG, "N", "100000", NULL, 1, 100000000, F(dead_max),
     "dead-letter list cap, oldest trimmed"},
    {"smtp-timeout", "MAILROOM_SMTP_TIMEOUT", K_DURATION, "DUR", "60s", NULL, 1, DAY,
     F(smtp_timeout),
     "deadline of every SMTP read and write; a connection that misses it "
     "is closed, never reused"},
    {"smtp-connect-timeout", "MAILROOM_SMTP_CONNECT_TIMEOUT", K_DURATION, "DUR", "10s", NULL, 1,
     DAY, F(smtp_connect_timeout), "SMTP connect timeout"},
    {"max-per-connection", "MAILROOM_MAX_PER_CONNECTION", K_LONG, "N", "100", NULL, 1, 1000000,
     F(max_per_connection), "messages before an SMTP connection is recycled"},
    {"smtp-idle", "MAILROOM_SMTP_IDLE", K_DURATION, "DUR", "30s", NULL, 0, DAY, F(smtp_idle),
     "do not reuse an SMTP connection idle longer"},
    {"block-timeout", "MAILROOM_BLOCK_TIMEOUT", K_DURATION, "DUR", "1s", NULL, 10, 60 * SEC,
     F(block_timeout), "how long one take from Redis waits (10ms to 60s)"},
    {"log-format", "MAILROOM_LOG_FORMAT", K_STRING, "FORMAT", "text", "text|json", 0, 0,
     F(log_format), "log lines as text or JSON"},
    {"log-level", "MAILROOM_LOG_LEVEL", K_STRING, "LEVEL", "info", "debug|info|warn|error", 0, 0,
     F(log_level), "the least severe lines logged"},
    {"http", "MAILROOM_HTTP", K_STRING, "[ADDR:]PORT", NULL, NULL, 0, 0, F(http),
     "serve /metrics (Prometheus), /healthz and /readyz there; 127.0.0.1 unless ADDR is "
     "given (0.0.0.0 for every address); off by default (docs/operations.md)"},
    {"help", NULL, K_HELP, NULL, NULL, NULL, 0, 0, 0, "this text"},
    {"version", NULL, K_VERSION, NULL, NULL, NULL, 0, 0, 0, "the version"},
};

#define N_OPTIONS (sizeof options_table / sizeof options_table[0])
const size_t options_count = N_OPTIONS;

/* 1 when value is one of the '|'-separated choices. */
static int among(const char *value, const char *choices)
{
    size_t n = strlen(value);
    for (const char *p = choices; p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, value, n) == 0)
            return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

static int set_long(const option_spec *s, const char *text, long *dst, mr_error *err)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < s->min || v > s->max)
        return mr_fail(err, MAILROOM_EINVAL, "'%.40s' is not a whole number from %lld to %lld",
                       text, (long long)s->min, (long long)s->max);
    *dst = v;
    return 0;
}

static int set_duration(const option_spec *s, const char *text, int64_t *dst, mr_error *err)
{
    int64_t ms;
    if (mr_duration_parse(text, &ms, err) != 0)
        return -1;
    if (ms < s->min || ms > s->max)
        return mr_fail(err, MAILROOM_EINVAL, "'%.40s' is out of range (%lld ms to %lld ms)", text,
                       (long long)s->min, (long long)s->max);
    *dst = ms;
    return 0;
}

static int set_flag(const char *text, int *dst, mr_error *err)
{
    if (among(text, "1|true|yes|on"))
        *dst = 1;
    else if (among(text, "0|false|no|off"))
        *dst = 0;
    else
        return mr_fail(err, MAILROOM_EINVAL, "'%.40s' is not 1 or 0", text);
    return 0;
}

/* Stores one option's value, given as text (a flag's presence is "1"). */
static int set_value(const option_spec *s, const char *text, consumer_options *o, mr_error *err)
{
    void *dst = (char *)o + s->offset;
    switch (s->kind) {
    case K_STRING:
        if (s->choices && !among(text, s->choices))
            return mr_fail(err, MAILROOM_EINVAL, "'%.40s' is not one of %s", text, s->choices);
        *(const char **)dst = text;
        return 0;
    case K_FLAG: return set_flag(text, dst, err);
    case K_LONG: return set_long(s, text, dst, err);
    case K_DURATION: return set_duration(s, text, dst, err);
    default: return 0;
    }
}

/* Defaults, then the environment. */
static int apply_defaults_and_env(consumer_options *o, mr_error *err)
{
    memset(o, 0, sizeof *o);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const option_spec *s = &options_table[i];
        if (s->def && set_value(s, s->def, o, err) != 0)
            return mr_prefix(err, "default of --%s", s->name);
        const char *env = s->env ? getenv(s->env) : NULL;
        if (env && *env && set_value(s, env, o, err) != 0)
            return mr_prefix(err, "%s", s->env);
    }
    return 0;
}

static void build_longopts(struct option *longopts)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        int has_arg = options_table[i].kind == K_FLAG || options_table[i].kind >= K_HELP
                          ? no_argument
                          : required_argument;
        longopts[i] = (struct option){options_table[i].name, has_arg, NULL, 256 + (int)i};
    }
    longopts[N_OPTIONS] = (struct option){NULL, 0, NULL, 0};
}

options_result options_parse(int argc, char **argv, consumer_options *out, mr_error *err)
{
    struct option longopts[N_OPTIONS + 1];
    build_longopts(longopts);
    if (apply_defaults_and_env(out, err) != 0)
        return OPTIONS_USAGE;
    int opt;
    opterr = 0;
    optind = 0; /* 0, not 1: glibc's getopt then forgets a cluster left half read */
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt < 256 || opt >= 256 + (int)N_OPTIONS) {
            if (optopt > 0 && optopt < 256)
                mr_fail(err, MAILROOM_EINVAL, "unknown option -%c", optopt);
            else
                mr_fail(err, MAILROOM_EINVAL, "unknown option or missing value: %.80s",
                        argv[optind - 1]);
            return OPTIONS_USAGE;
        }
        const option_spec *s = &options_table[opt - 256];
        if (s->kind == K_HELP) {
            options_usage(stdout);
            return OPTIONS_EXIT;
        }
        if (s->kind == K_VERSION) {
            printf("mailroom-consumer %s\n", MAILROOM_VERSION_STRING);
            return OPTIONS_EXIT;
        }
        if (set_value(s, s->kind == K_FLAG ? "1" : optarg, out, err) != 0) {
            mr_prefix(err, "--%s", s->name);
            return OPTIONS_USAGE;
        }
        out->redis_on_command_line |= s->offset == F(redis);
    }
    if (optind < argc) {
        mr_fail(err, MAILROOM_EINVAL, "unexpected argument '%.80s'", argv[optind]);
        return OPTIONS_USAGE;
    }
    return OPTIONS_RUN;
}

/* Writes text from column `indent` (the cursor is there), wrapped at spaces before
 * column `width`, continuation lines indented; then a newline. */
static void put_wrapped(FILE *out, const char *text, int indent, int width)
{
    int col = indent;
    for (const char *p = text; *p;) {
        size_t word = strcspn(p, " ");
        if (col > indent && col + 1 + (int)word > width) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", (int)word, p);
        col += (int)word;
        p += word;
        p += strspn(p, " ");
    }
    fputc('\n', out);
}

void options_value_text(const consumer_options *o, const option_spec *spec, char *out, size_t cap)
{
    const void *field = (const char *)o + spec->offset;
    switch (spec->kind) {
    case K_STRING: {
        const char *v = *(const char *const *)field;
        snprintf(out, cap, "%s", v ? v : "");
        break;
    }
    case K_FLAG: snprintf(out, cap, "%d", *(const int *)field); break;
    case K_LONG: snprintf(out, cap, "%ld", *(const long *)field); break;
    case K_DURATION: snprintf(out, cap, "%lld", (long long)*(const int64_t *)field); break;
    default: snprintf(out, cap, "%s", ""); break;
    }
}

void options_usage(FILE *out)
{
    fprintf(out, "usage: mailroom-consumer [options]\n"
                 "Takes signed email jobs from Redis, sends them over SMTP, reports outcomes.\n"
                 "Each option may also be set by its environment variable; the command line "
                 "wins.\n\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const option_spec *s = &options_table[i];
        char left[64], right[512];
        snprintf(left, sizeof left, "--%s%s%s", s->name, s->arg ? " " : "", s->arg ? s->arg : "");
        snprintf(right, sizeof right, "%s%s%s%s%s%s", s->help, s->env ? " (" : "",
                 s->env ? s->env : "", s->def ? ", default " : "", s->def ? s->def : "",
                 s->env ? ")" : "");
        fprintf(out, "  %-28s ", left);
        put_wrapped(out, right, 31, 96);
    }
    fprintf(out, "\nDurations: a number with ms, s, m, h or d (a plain number is seconds).\n"
                 "Secrets, from the environment only:\n"
                 "  MAILROOM_KEYS_FILE           signing keys, lines \"kid secret\" (or "
                 "MAILROOM_SECRET)\n"
                 "  MAILROOM_SMTP_PASSWORD_FILE  the SMTP AUTH password\n"
                 "  MAILROOM_REDIS_PASSWORD_FILE the Redis password\n"
                 "SIGTERM/SIGINT: finish the jobs in hand, return the rest, exit 0; a second\n"
                 "signal abandons sends in progress (their jobs go back to pending).\n");
}
