/* options: see options.h. options_table below is the only description of an option;
 * common/opttable.c parses it. */
#include "options.h"

#include <stddef.h>
#include <string.h>

#define F(field) offsetof(consumer_options, field)
#define SEC 1000LL
#define DAY (86400 * SEC)
#define YEARS (100 * 365 * DAY)

const opttable_spec options_table[] = {
    {"redis", "MAILROOM_REDIS_URL", OPT_STRING, "URL", "redis://127.0.0.1:6379/0", NULL, 0, 0,
     F(redis),
     "redis://[user@]host:port/db or redis-sentinel://host:port[,...]/master[/db]; "
     "a password only in the environment's URL or MAILROOM_REDIS_PASSWORD_FILE"},
    {"queue", "MAILROOM_QUEUE", OPT_STRING, "LIST", "default", NULL, 0, 0, F(queue),
     "the queues served, most urgent first: a,b,c (strict order) or a:6,b:1 (by weight); "
     "names [A-Za-z0-9._:-]{1,64}, at most 8"},
    {"smtp", "MAILROOM_SMTP_URL", OPT_LIST, "URL", "smtp://127.0.0.1:25", NULL, 0, 0, F(smtp),
     "smtp://host:port (STARTTLS) or smtps://host:port (implicit TLS); repeat the option "
     "(or give a comma list) for fallback relays, in order, at most 4"},
    {"rate", "MAILROOM_RATE", OPT_STRING, "RATE", NULL, NULL, 0, 0, F(rate),
     "the most messages per relay, shared by every consumer of it: N/s, N/m or N/h "
     "(default none: adaptive only, once the relay throttles)"},
    {"rate-floor", "MAILROOM_RATE_FLOOR", OPT_STRING, "RATE", NULL, NULL, 0, 0, F(rate_floor),
     "the lowest a relay's throttling may cut its rate to (default --rate / 50, at least 1/m)"},
    {"relay-connections", "MAILROOM_RELAY_CONNECTIONS", OPT_LONG, "N", "0", NULL, 0, 100000,
     F(relay_connections), "the most SMTP connections to a relay, across consumers; 0: no cap"},
    {"circuit-failures", "MAILROOM_CIRCUIT_FAILURES", OPT_LONG, "N", "5", NULL, 1, 1000,
     F(circuit_failures),
     "consecutive connection, TLS or greeting failures of a relay that open its circuit"},
    {"circuit-probe-max", "MAILROOM_CIRCUIT_PROBE_MAX", OPT_DURATION, "DUR", "10s", NULL, SEC, DAY,
     F(circuit_probe_max), "the longest wait between two probes of a relay whose circuit is open"},
    {"suppress-on", "MAILROOM_SUPPRESS_ON", OPT_STRING, "LIST", "5.1.*", NULL, 0, 0, F(suppress_on),
     "RCPT refusals that put the address on the suppression list: enhanced codes (5.1.1, "
     "5.1.*) and reply codes (550), comma separated; none to turn it off"},
    {"suppress-for", "MAILROOM_SUPPRESS_FOR", OPT_DURATION, "DUR", "30d", NULL, SEC, YEARS,
     F(suppress_for), "how long an address stays suppressed"},
    {"smtp-tls", "MAILROOM_SMTP_TLS", OPT_STRING, "POLICY", NULL, "required|none", 0, 0,
     F(smtp_tls),
     "STARTTLS for smtp://: required, or none (the default for a loopback host "
     "only)"},
    {"smtp-ca-file", "MAILROOM_SMTP_CA_FILE", OPT_STRING, "PATH", NULL, NULL, 0, 0, F(smtp_ca_file),
     "private CA bundle for the SMTP server's certificate"},
    {"smtp-insecure", "MAILROOM_SMTP_INSECURE", OPT_FLAG, NULL, NULL, NULL, 0, 0, F(smtp_insecure),
     "do not verify the SMTP server's certificate (logged at every start)"},
    {"smtp-user", "MAILROOM_SMTP_USER", OPT_STRING, "USER", NULL, NULL, 0, 0, F(smtp_user),
     "AUTH user; the password from MAILROOM_SMTP_PASSWORD_FILE"},
    {"ehlo-name", "MAILROOM_EHLO_NAME", OPT_STRING, "NAME", NULL, NULL, 0, 0, F(ehlo_name),
     "the name this host gives in EHLO (default its FQDN)"},
    {"concurrency", "MAILROOM_CONCURRENCY", OPT_LONG, "N", "8", NULL, 1, 256, F(concurrency),
     "worker threads, each with its own pipelined SMTP session"},
    {"id", "MAILROOM_CONSUMER_ID", OPT_STRING, "ID", NULL, NULL, 0, 0, F(id),
     "consumer id, unique per process (default host-pid-random)"},
    {"accept-alg", "MAILROOM_ACCEPT_ALG", OPT_STRING, "LIST", "hmac-sha1,hmac-sha256", NULL, 0, 0,
     F(accept_alg), "signature algorithms accepted, comma separated"},
    {"max-attempts", "MAILROOM_MAX_ATTEMPTS", OPT_LONG, "N", "0", NULL, 0, 1000000, F(max_attempts),
     "attempts before a job fails; 0: no cap but --max-lifetime"},
    {"backoff-base", "MAILROOM_BACKOFF_BASE", OPT_DURATION, "DUR", "5m", NULL, 1, YEARS,
     F(backoff_base), "first retry delay, doubled at each retry"},
    {"backoff-max", "MAILROOM_BACKOFF_MAX", OPT_DURATION, "DUR", "4000s", NULL, 1, YEARS,
     F(backoff_max), "longest retry delay"},
    {"max-lifetime", "MAILROOM_MAX_LIFETIME", OPT_DURATION, "DUR", "5d", NULL, 0, YEARS,
     F(max_lifetime),
     "give a job up this long after its created_at (or its send_at when "
     "later); must stay below --status-ttl"},
    {"max-clock-skew", "MAILROOM_MAX_CLOCK_SKEW", OPT_DURATION, "DUR", "5m", NULL, 0, DAY,
     F(max_clock_skew), "refuse a job whose created_at is further in the future than this"},
    {"dead-after", "MAILROOM_DEAD_AFTER", OPT_DURATION, "DUR", "30s", NULL, 2 * SEC, YEARS,
     F(dead_after), "recover the jobs of consumers silent this long (at least 2s)"},
    {"shutdown-timeout", "MAILROOM_SHUTDOWN_TIMEOUT", OPT_DURATION, "DUR", "30s", NULL, 0, YEARS,
     F(shutdown_timeout), "how long jobs in hand may finish after SIGTERM"},
    {"status-ttl", "MAILROOM_STATUS_TTL", OPT_DURATION, "DUR", "7d", NULL, SEC, YEARS,
     F(status_ttl), "lifetime of a job's status record after its last change"},
    {"dead-max", "MAILROOM_DEAD_MAX", OPT_LONG, "N", "100000", NULL, 1, 100000000, F(dead_max),
     "dead-letter list cap, oldest trimmed"},
    {"smtp-timeout", "MAILROOM_SMTP_TIMEOUT", OPT_DURATION, "DUR", "60s", NULL, 1, DAY,
     F(smtp_timeout),
     "deadline of every SMTP read and write; a connection that misses it "
     "is closed, never reused"},
    {"smtp-connect-timeout", "MAILROOM_SMTP_CONNECT_TIMEOUT", OPT_DURATION, "DUR", "10s", NULL, 1,
     DAY, F(smtp_connect_timeout), "SMTP connect timeout"},
    {"max-per-connection", "MAILROOM_MAX_PER_CONNECTION", OPT_LONG, "N", "100", NULL, 1, 1000000,
     F(max_per_connection), "messages before an SMTP connection is recycled"},
    {"smtp-idle", "MAILROOM_SMTP_IDLE", OPT_DURATION, "DUR", "30s", NULL, 0, DAY, F(smtp_idle),
     "do not reuse an SMTP connection idle longer"},
    {"block-timeout", "MAILROOM_BLOCK_TIMEOUT", OPT_DURATION, "DUR", "1s", NULL, 10, 60 * SEC,
     F(block_timeout), "how long one take from Redis waits (10ms to 60s)"},
    {"log-format", "MAILROOM_LOG_FORMAT", OPT_STRING, "FORMAT", "text", "text|json", 0, 0,
     F(log_format), "log lines as text or JSON"},
    {"log-level", "MAILROOM_LOG_LEVEL", OPT_STRING, "LEVEL", "info", "debug|info|warn|error", 0, 0,
     F(log_level), "the least severe lines logged"},
    {"http", "MAILROOM_HTTP", OPT_STRING, "[ADDR:]PORT", NULL, NULL, 0, 0, F(http),
     "serve /metrics (Prometheus), /healthz and /readyz there; 127.0.0.1 unless ADDR is "
     "given (0.0.0.0 for every address); off by default (docs/operations.md)"},
    {"retry-table", "MAILROOM_RETRY_TABLE", OPT_FLAG, NULL, NULL, NULL, 0, 0, F(retry_table),
     "print the retry schedule the other options give, as a Markdown table, and exit"},
    {"help", NULL, OPT_HELP, NULL, NULL, NULL, 0, 0, 0, "this text"},
    {"version", NULL, OPT_VERSION, NULL, NULL, NULL, 0, 0, 0, "the version"},
};

#define N_OPTIONS (sizeof options_table / sizeof options_table[0])
const size_t options_count = N_OPTIONS;

static const opttable consumer_table = {
    options_table, N_OPTIONS, "mailroom-consumer",
    "usage: mailroom-consumer [options]\n"
    "Takes signed email jobs from Redis, sends them over SMTP, reports outcomes.\n"
    "Each option may also be set by its environment variable; the command line wins.\n\n",
    "\nDurations: a number with ms, s, m, h or d (a plain number is seconds).\n"
    "Secrets, from the environment only:\n"
    "  MAILROOM_KEYS_FILE           signing keys, lines \"kid secret\" (or MAILROOM_SECRET)\n"
    "  MAILROOM_SMTP_PASSWORD_FILE  the SMTP AUTH password\n"
    "  MAILROOM_REDIS_PASSWORD_FILE the Redis password\n"
    "SIGTERM/SIGINT: finish the jobs in hand, return the rest, exit 0; a second\n"
    "signal abandons sends in progress (their jobs go back to pending).\n"};

options_result options_parse(int argc, char **argv, consumer_options *out, mr_error *err)
{
    uint64_t given = 0;
    memset(out, 0, sizeof *out);
    opttable_result r = opttable_parse(&consumer_table, argc, argv, out, &given, err);
    if (r != OPTTABLE_RUN)
        return r == OPTTABLE_EXIT ? OPTIONS_EXIT : OPTIONS_USAGE;
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (options_table[i].offset == F(redis) && options_table[i].kind == OPT_STRING)
            out->redis_on_command_line = (int)((given >> i) & 1);
    return OPTIONS_RUN;
}

void options_usage(FILE *out)
{
    opttable_usage(&consumer_table, out);
}

void options_value_text(const consumer_options *o, const opttable_spec *spec, char *out, size_t cap)
{
    opttable_value_text(spec, o, out, cap);
}
