/*
 * smtp_send: a small driver of the SMTP engine (consumer/smtp/) for tests and by-hand
 * checks. It sends --count messages through one session, chained the way the consumer
 * will: exchange(NULL, m0), exchange(m0, m1), ..., exchange(last, NULL), so that a warm
 * pipelining connection spends one round trip per message. With --gap-ms each message
 * is sent alone (exchange(NULL, m); exchange(m, NULL)) and the driver sleeps between
 * them, to test idle connections. It prints one JSON line per message (json-c) as soon
 * as it is done:
 *
 *   {"i":0,"verdict":"sent","code":250,"enhanced":"2.0.0","reply":"250 2.0.0 Ok: ...",
 *    "relay_id":"4XkQ","error":"","flags":[],"accepted":2,
 *    "rcpt":[{"to":"a@x","code":250,"enhanced":"2.1.5","text":"250 2.1.5 Ok"}, ...]}
 *
 * Settings: --url (or SMTP_URL), --tls-required, --insecure, --ca-file, --user (the
 * password comes from the file named by SMTP_PASSWORD_FILE, never from argv), --ehlo,
 * --from, --rcpt (repeatable), --count, --body-size, --smtputf8, --connect-timeout-ms,
 * --timeout-ms, --max-per-connection, --idle-max-ms, --gap-ms. SIGTERM sets the abort
 * flag (what a hurried shutdown does). Exit status: 0 when every message was handled
 * (whatever its verdict), 1 when the session could not be made, 2 for a usage error.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "secret.h"
#include "smtp.h"

#define MAX_RCPT 100

typedef struct options {
    smtp_config cfg;
    const char *from;
    const char *rcpt[MAX_RCPT];
    size_t n_rcpt;
    long count;
    long body_size;
    long gap_ms;
    int smtputf8;
} options;

static atomic_int abort_flag;

static void on_sigterm(int sig)
{
    (void)sig;
    atomic_store(&abort_flag, 1);
}

static const char *verdict_name(smtp_verdict v)
{
    static const char *const names[] = {"sent", "temporary", "permanent", "aborted"};
    return names[v];
}

/* The flags as an array of names. */
static json_object *flag_names(unsigned flags)
{
    static const char *const names[] = {"connect",   "tls",     "greeting", "auth",
                                        "throttled", "timeout", "protocol"};
    json_object *a = json_object_new_array();
    for (unsigned i = 0; a && i < sizeof names / sizeof names[0]; i++)
        if (flags & (1u << i))
            json_object_array_add(a, json_object_new_string(names[i]));
    return a;
}

static json_object *rcpt_array(const smtp_txn *t)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; a && i < t->n_rcpt; i++) {
        const smtp_rcpt_reply *r = &t->rcpt_replies[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "to", json_object_new_string(t->rcpt[i]));
        json_object_object_add(o, "code", json_object_new_int(r->code));
        json_object_object_add(o, "enhanced", json_object_new_string(r->enhanced));
        json_object_object_add(o, "text", json_object_new_string(r->text));
        json_object_array_add(a, o);
    }
    return a;
}

/* One JSON line for a finished transaction. */
static void print_txn(long i, const smtp_txn *t)
{
    json_object *o = json_object_new_object();
    if (!o)
        return;
    json_object_object_add(o, "i", json_object_new_int64(i));
    json_object_object_add(o, "verdict", json_object_new_string(verdict_name(t->verdict)));
    json_object_object_add(o, "code", json_object_new_int(t->code));
    json_object_object_add(o, "enhanced", json_object_new_string(t->enhanced));
    json_object_object_add(o, "reply", json_object_new_string(t->reply));
    json_object_object_add(o, "relay_id", json_object_new_string(t->relay_id));
    json_object_object_add(o, "error", json_object_new_string(t->error));
    json_object_object_add(o, "flags", flag_names(t->flags));
    json_object_object_add(o, "accepted", json_object_new_int64((int64_t)t->n_accepted));
    json_object_object_add(o, "rcpt", rcpt_array(t));
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    fflush(stdout);
    json_object_put(o);
}

/* Message i: a few headers and body_size bytes of lines, some starting with a dot. */
static int build_message(const options *o, long i, buf *b)
{
    buf_reset(b);
    if (buf_printf(b,
                   "From: <%s>\r\nTo: <%s>\r\nSubject: smtp_send %ld\r\n"
                   "Message-ID: <%ld.smtp-send@test>\r\n\r\n",
                   o->from, o->rcpt[0], i, i) != 0)
        return -1;
    for (long n = 0; (long)b->len < o->body_size; n++) {
        const char *line = n % 7 == 3 ? ".a line that starts with a dot" : n % 11 == 5 ? "." : "";
        if (buf_printf(b, "%s line %ld of message %ld\r\n", line, n, i) != 0)
            return -1;
    }
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Message i's transaction, ready for an exchange. */
static int txn_init(const options *o, long i, smtp_txn *t, buf *data)
{
    memset(t, 0, sizeof *t);
    if (build_message(o, i, data) != 0)
        return -1;
    t->rcpt_replies = calloc(o->n_rcpt, sizeof t->rcpt_replies[0]);
    if (!t->rcpt_replies)
        return -1;
    t->from = o->from;
    t->rcpt = o->rcpt;
    t->n_rcpt = o->n_rcpt;
    t->smtputf8 = o->smtputf8;
    t->data = data->data;
    t->len = data->len;
    return 0;
}

/* Sends every message; each slot of two alternates between prev and next. */
static int run(smtp_session *s, const options *o)
{
    smtp_txn t[2];
    buf data[2] = {BUF_INIT, BUF_INIT};
    smtp_txn *prev = NULL;
    int rc = 0;
    for (long i = 0; i <= o->count; i++) {
        smtp_txn *next = NULL;
        if (i < o->count) {
            next = &t[i % 2];
            if (txn_init(o, i, next, &data[i % 2]) != 0) {
                rc = -1;
                break;
            }
        }
        if (o->gap_ms && next) {
            smtp_exchange(s, NULL, next);
            smtp_exchange(s, next, NULL);
            print_txn(i, next);
            free(next->rcpt_replies);
            if (i + 1 < o->count)
                sleep_ms(o->gap_ms);
            continue;
        }
        smtp_exchange(s, prev, next);
        if (prev) {
            print_txn(i - 1, prev);
            free(prev->rcpt_replies);
        }
        prev = next && next->state == SMTP_TXN_DATA_READY ? next : NULL;
        if (next && !prev) {
            print_txn(i, next);
            free(next->rcpt_replies);
        }
    }
    buf_free(&data[0]);
    buf_free(&data[1]);
    return rc;
}

enum { OPT_CONNECT = 256, OPT_TIMEOUT, OPT_MAXPER, OPT_IDLE, OPT_GAP, OPT_SIZE, OPT_UTF8 };

static const struct option long_options[] = {
    {"url", required_argument, NULL, 'u'},
    {"tls-required", no_argument, NULL, 't'},
    {"insecure", no_argument, NULL, 'k'},
    {"ca-file", required_argument, NULL, 'c'},
    {"user", required_argument, NULL, 'U'},
    {"ehlo", required_argument, NULL, 'e'},
    {"from", required_argument, NULL, 'f'},
    {"rcpt", required_argument, NULL, 'r'},
    {"count", required_argument, NULL, 'n'},
    {"body-size", required_argument, NULL, OPT_SIZE},
    {"smtputf8", no_argument, NULL, OPT_UTF8},
    {"connect-timeout-ms", required_argument, NULL, OPT_CONNECT},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {"max-per-connection", required_argument, NULL, OPT_MAXPER},
    {"idle-max-ms", required_argument, NULL, OPT_IDLE},
    {"gap-ms", required_argument, NULL, OPT_GAP},
    {NULL, 0, NULL, 0}};

/* A number option's value; -1 when it is not a non-negative number. */
static long number(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v >= 0 ? v : -1;
}

/* The long-valued options; -1 when the value is bad. */
static int number_option(options *o, int opt, const char *arg)
{
    long v = number(arg);
    long *slot[] = {&o->cfg.connect_timeout_ms,
                    &o->cfg.command_timeout_ms,
                    &o->cfg.max_per_connection,
                    &o->cfg.idle_max_ms,
                    &o->gap_ms,
                    &o->body_size};
    if (v < 0)
        return -1;
    *slot[opt - OPT_CONNECT] = v;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    int opt;
    while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (opt) {
        case 'u': o->cfg.url = optarg; break;
        case 't': o->cfg.tls_required = 1; break;
        case 'k': o->cfg.insecure = 1; break;
        case 'c': o->cfg.ca_file = optarg; break;
        case 'U': o->cfg.user = optarg; break;
        case 'e': o->cfg.ehlo_name = optarg; break;
        case 'f': o->from = optarg; break;
        case 'r':
            if (o->n_rcpt == MAX_RCPT)
                return -1;
            o->rcpt[o->n_rcpt++] = optarg;
            break;
        case 'n': o->count = number(optarg); break;
        case OPT_UTF8: o->smtputf8 = 1; break;
        default:
            if (opt < OPT_CONNECT || opt > OPT_SIZE || number_option(o, opt, optarg) != 0)
                return -1;
        }
    }
    if (!o->n_rcpt)
        o->rcpt[o->n_rcpt++] = "rcpt@example.com";
    return optind == argc && o->cfg.url && o->count >= 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    options o = {.cfg = {.url = getenv("SMTP_URL")},
                 .from = "sender@example.com",
                 .count = 1,
                 .body_size = 200};
    o.cfg.abort = &abort_flag;
    if (parse_args(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: smtp_send --url smtp://host:port [options]; see the source\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_sigterm);
    mr_error err = MR_ERROR_INIT;
    char *password = NULL;
    const char *pw_file = getenv("SMTP_PASSWORD_FILE");
    if (pw_file && !(password = secret_read_file(pw_file, &err))) {
        fprintf(stderr, "smtp_send: %s\n", err.msg);
        return 1;
    }
    o.cfg.password = password;
    smtp_session *s = smtp_session_new(&o.cfg, &err);
    if (!s) {
        fprintf(stderr, "smtp_send: %s\n", err.msg);
        secret_free(password);
        return 1;
    }
    int rc = run(s, &o);
    smtp_session_free(s);
    secret_free(password);
    return rc == 0 ? 0 : 1;
}
