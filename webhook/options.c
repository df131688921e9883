/* options: see options.h. The table below is the only description of an option. */
#include "options.h"

#include <stddef.h>
#include <string.h>

#define F(field) offsetof(webhook_options, field)
#define SEC 1000LL
#define DAY (86400 * SEC)
#define YEARS (100 * 365 * DAY)
#define ROW_REDIS 1 /* the row of --redis below */

static const opttable_spec rows[] = {
    {"url", "MAILROOM_WEBHOOK_URL", OPT_STRING, "URL", NULL, NULL, 0, 0, F(url),
     "the application's endpoint, https://host[:port]/path (http:// only to a loopback "
     "host, or with --allow-http); never with user:password@"},
    {"redis", "MAILROOM_REDIS_URL", OPT_STRING, "URL", "redis://127.0.0.1:6379/0", NULL, 0, 0,
     F(redis),
     "redis://[user@]host:port/db or redis-sentinel://host:port[,...]/master[/db]; a "
     "password only in the environment's URL or MAILROOM_REDIS_PASSWORD_FILE"},
    {"queue", "MAILROOM_QUEUE", OPT_STRING, "NAME", "default", NULL, 0, 0, F(queue),
     "the queue whose outcomes are posted"},
    {"group", "MAILROOM_WEBHOOK_GROUP", OPT_STRING, "NAME", "webhook", NULL, 0, 0, F(group),
     "the consumer group of the events stream; instances with the same group share the "
     "events, [A-Za-z0-9._:-]{1,64}"},
    {"id", "MAILROOM_WEBHOOK_ID", OPT_STRING, "NAME", NULL, NULL, 0, 0, F(id),
     "this instance's name in the group (default the host name); unique per instance and "
     "stable across restarts: the events it held are delivered again under that name"},
    {"start", "MAILROOM_WEBHOOK_START", OPT_STRING, "ID", "$", NULL, 0, 0, F(start),
     "where a new group starts: $ (outcomes from now on), 0 (every event the stream keeps) "
     "or an entry id; an existing group goes on from its own position"},
    {"timeout", "MAILROOM_WEBHOOK_TIMEOUT", OPT_DURATION, "DUR", "10s", NULL, 100, 10 * 60 * SEC,
     F(timeout), "the whole of one delivery: connect, send, answer"},
    {"connect-timeout", "MAILROOM_WEBHOOK_CONNECT_TIMEOUT", OPT_DURATION, "DUR", "5s", NULL, 100,
     10 * 60 * SEC, F(connect_timeout), "connecting to the application"},
    {"backoff-base", "MAILROOM_WEBHOOK_BACKOFF_BASE", OPT_DURATION, "DUR", "1s", NULL, 10, DAY,
     F(backoff_base), "the first retry's delay, doubled at each retry (with jitter)"},
    {"backoff-max", "MAILROOM_WEBHOOK_BACKOFF_MAX", OPT_DURATION, "DUR", "5m", NULL, 10, DAY,
     F(backoff_max), "the longest delay between two attempts of one event"},
    {"max-age", "MAILROOM_WEBHOOK_MAX_AGE", OPT_DURATION, "DUR", "3d", NULL, SEC, YEARS, F(max_age),
     "give an event up (recorded in the webhook hash and its failed list) when it is still "
     "not delivered this long after it happened"},
    {"claim-after", "MAILROOM_WEBHOOK_CLAIM_AFTER", OPT_DURATION, "DUR", "15m", NULL, SEC, YEARS,
     F(claim_after),
     "take over the events another instance held this long without delivering them (it "
     "died); must exceed --backoff-max plus --timeout"},
    {"max-retrying", "MAILROOM_WEBHOOK_MAX_RETRYING", OPT_LONG, "N", "1000", NULL, 1, 1000000,
     F(max_retrying),
     "events waiting for a retry at most; when that many are, no new event is read"},
    {"ca-file", "MAILROOM_WEBHOOK_CA_FILE", OPT_STRING, "PATH", NULL, NULL, 0, 0, F(ca_file),
     "private CA bundle for the application's certificate"},
    {"allow-http", "MAILROOM_WEBHOOK_ALLOW_HTTP", OPT_FLAG, NULL, NULL, NULL, 0, 0, F(allow_http),
     "allow http:// to a host that is not loopback (events carry addresses: use it on a "
     "private network only; logged at every start)"},
    {"log-format", "MAILROOM_LOG_FORMAT", OPT_STRING, "FORMAT", "text", "text|json", 0, 0,
     F(log_format), "log lines as text or JSON"},
    {"log-level", "MAILROOM_LOG_LEVEL", OPT_STRING, "LEVEL", "info", "debug|info|warn|error", 0, 0,
     F(log_level), "the least severe lines logged"},
    {"help", NULL, OPT_HELP, NULL, NULL, NULL, 0, 0, 0, "this text"},
    {"version", NULL, OPT_VERSION, NULL, NULL, NULL, 0, 0, 0, "the version"},
};

const opttable webhook_opttable = {
    rows,
    sizeof rows / sizeof rows[0],
    "mailroom-webhook",
    "usage: mailroom-webhook --url URL [options]\n"
    "Posts every final outcome of a queue (sent, failed, rejected, cancelled) to the\n"
    "application's URL, signed, retried with backoff until a 2xx; reads the queue's\n"
    "events stream as a consumer group, so it resumes after a restart and several\n"
    "instances share the work (docs/webhook.md).\n"
    "Each option may also be set by its environment variable; the command line wins.\n\n",
    "\nDurations: a number with ms, s, m, h or d (a plain number is seconds).\n"
    "Secrets, from the environment only:\n"
    "  MAILROOM_WEBHOOK_SECRET_FILE  the signing secret(s), one per line (at least 16\n"
    "                                bytes each; every line signs: two during a rotation;\n"
    "                                lines starting with # are comments)\n"
    "  MAILROOM_WEBHOOK_SECRET       one secret, when there is no file\n"
    "  MAILROOM_REDIS_PASSWORD_FILE  the Redis password\n"
    "Delivery state: the Redis hash mailroom:{QUEUE}:webhook (docs/redis.md).\n"
    "SIGTERM/SIGINT: finish the delivery in progress, exit 0; events not delivered yet\n"
    "stay in the stream for the next run. Exit 64: bad usage; 78: bad configuration.\n",
};

opttable_result webhook_options_parse(int argc, char **argv, webhook_options *out, mr_error *err)
{
    uint64_t given = 0;
    memset(out, 0, sizeof *out);
    opttable_result r = opttable_parse(&webhook_opttable, argc, argv, out, &given, err);
    out->redis_on_command_line = (int)((given >> ROW_REDIS) & 1u);
    return r;
}
