/*
 * fuzz_smtp: libFuzzer target for the SMTP engine's reply parser (consumer/smtp/reply.c),
 * EHLO capabilities (caps.c) and state machine (proto.c, txn.c), fed hostile server
 * byte streams without any socket.
 *
 * Input: byte 0 chooses the client (bit 0: STARTTLS required; bit 1: a user to AUTH;
 * bit 2: AUTH allowed in clear; bit 3: implicit TLS; bits 4-5: 1 to 3 recipients; bits
 * 6-7: the abort flag when a connection is abandoned, and whether the content has a
 * line starting with a dot). Byte 1 is the size of the pieces the rest is fed in (1 to
 * 64 bytes, so replies are cut everywhere). The rest is what "the server" says. The
 * driver plays the session: it feeds each complete reply to the state machine, does
 * the STARTTLS handshake when asked, starts a new round each time the last one is
 * complete (the DATA_READY message's content with the next message's envelope, up to
 * 6 messages), and on a protocol error or a failed connection abandons it and opens a
 * new one (up to 4), as the session would.
 *
 * Invariants, checked after every reply (a violation abort()s, which libFuzzer reports):
 * every text kept in a transaction (reply, enhanced code, relay id, error, each RCPT's
 * text) is NUL-terminated printable ASCII; a DATA_READY transaction has a recipient
 * accepted; a DONE one has a valid verdict; what the client writes has CRLF line ends
 * only and never a CR, LF or NUL inside a command; after abandoning a connection no
 * transaction is left waiting on it; the parser's formatted replies and relay ids are
 * printable too. Also every reply goes through smtp_caps_parse, smtp_relay_id and
 * smtp_reply_is_throttle.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caps.h"
#include "proto.h"
#include "reply.h"
#include "txn.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_smtp: invariant violated: %s (%s:%d)\n", #cond, __FILE__,        \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define N_MSG 6
#define MAX_CONNECTIONS 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const rcpt_names[] = {"a@dest.test", "b@dest.test", "c@dest.test"};
static const char content_plain[] = "Subject: x\r\n\r\nhello\r\n";
static const char content_dots[] = ".\r\n..a\r\nb\r\n.";

typedef struct driver {
    smtp_proto p;
    smtp_reader r;
    smtp_txn txn[N_MSG];
    smtp_rcpt_reply replies[N_MSG][3];
    int next_msg;    /* the next message to start */
    smtp_txn *ready; /* the DATA_READY message whose content goes next */
    int connections;
    int aborted;
    int implicit_tls;
} driver;

/* NUL-terminated within cap, every byte printable ASCII. */
static int printable(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7E)
            return 0;
    return 1;
}

static void check_txn(const smtp_txn *t)
{
    CHECK(printable(t->reply, sizeof t->reply));
    CHECK(printable(t->enhanced, sizeof t->enhanced));
    CHECK(printable(t->relay_id, sizeof t->relay_id));
    CHECK(printable(t->error, sizeof t->error));
    CHECK(t->n_accepted <= t->n_rcpt);
    for (size_t i = 0; i < t->n_rcpt; i++) {
        CHECK(printable(t->rcpt_replies[i].text, sizeof t->rcpt_replies[i].text));
        CHECK(printable(t->rcpt_replies[i].enhanced, sizeof t->rcpt_replies[i].enhanced));
    }
    if (t->state == SMTP_TXN_DATA_READY)
        CHECK(t->n_accepted > 0);
    if (t->state == SMTP_TXN_DONE) {
        CHECK(t->verdict >= SMTP_SENT && t->verdict <= SMTP_ABORTED);
        CHECK(t->verdict == SMTP_SENT ? t->error[0] == '\0' : t->error[0] != '\0');
        CHECK(t->verdict != SMTP_SENT || (t->code >= 200 && t->code < 300));
    }
}

/* What the client would write: CRLF line ends only, no NUL. Then it counts as written. */
static void take_out(driver *d)
{
    const buf *o = &d->p.out;
    for (size_t i = 0; i < o->len; i++) {
        CHECK(o->data[i] != '\0');
        if (o->data[i] == '\r')
            CHECK(i + 1 < o->len && o->data[i + 1] == '\n');
        if (o->data[i] == '\n')
            CHECK(i > 0 && o->data[i - 1] == '\r');
    }
    CHECK(o->len == 0 || (o->len >= 2 && memcmp(o->data + o->len - 2, "\r\n", 2) == 0));
    smtp_proto_written(&d->p, o->len);
}

static void new_connection(driver *d)
{
    d->connections++;
    d->ready = NULL;
    smtp_reader_reset(&d->r);
    CHECK(smtp_proto_start(&d->p, d->implicit_tls) == SMTP_STEP_CONTINUE);
}

/* The connection failed: settle what it caught, and open another while allowed. */
static void connection_failed(driver *d)
{
    smtp_proto_abandon(&d->p, d->aborted, NULL);
    if (d->ready && d->ready->state == SMTP_TXN_DATA_READY) {
        smtp_failure f;
        memset(&f, 0, sizeof f);
        snprintf(f.error, sizeof f.error, "connection lost");
        smtp_txn_caught(d->ready, &f, d->aborted, 0);
    }
    for (int i = 0; i < N_MSG; i++) {
        CHECK(d->txn[i].state != SMTP_TXN_DATA_READY);
        check_txn(&d->txn[i]);
    }
    CHECK(!smtp_proto_busy(&d->p));
    if (d->connections < MAX_CONNECTIONS)
        new_connection(d);
}

/* A round is complete (or the handshake): the ready message's content and the next
 * message's envelope. */
static smtp_step next_round(driver *d)
{
    smtp_txn *prev = d->ready && d->ready->state == SMTP_TXN_DATA_READY ? d->ready : NULL;
    smtp_txn *next = NULL;
    if (d->next_msg < N_MSG)
        next = &d->txn[d->next_msg++];
    smtp_step step = smtp_proto_round(&d->p, prev, next);
    if (prev)
        CHECK(step == SMTP_STEP_CONTINUE);
    d->ready = next;
    take_out(d);
    return step;
}

/* Every reply of the parsed stream so far, fed to the state machine. */
static void feed_replies(driver *d)
{
    mr_error err = MR_ERROR_INIT;
    const smtp_reply *rep = NULL;
    int rc;
    while (d->p.phase != SMTP_PHASE_CLOSED && (rc = smtp_reader_next(&d->r, &rep, &err)) != 0) {
        if (rc < 0) {
            CHECK(err.msg[0] != '\0');
            smtp_proto_fail(&d->p, SMTP_FLAG_PROTOCOL, 0, "%s", err.msg);
            connection_failed(d);
            continue;
        }
        char line[SMTP_REPLY_MAX], id[SMTP_RELAY_ID_MAX];
        smtp_caps caps;
        smtp_reply_format(rep, line, sizeof line);
        CHECK(printable(line, sizeof line));
        smtp_relay_id(line, id, sizeof id);
        CHECK(printable(id, sizeof id));
        smtp_caps_parse(rep, &caps);
        (void)smtp_reply_is_throttle(rep->code, line);
        smtp_step step = smtp_proto_on_reply(&d->p, rep);
        if (step == SMTP_STEP_STARTTLS)
            step = smtp_proto_tls_started(&d->p);
        while (step == SMTP_STEP_IDLE && d->p.phase == SMTP_PHASE_READY &&
               (d->next_msg < N_MSG || (d->ready && d->ready->state == SMTP_TXN_DATA_READY)))
            step = next_round(d);
        take_out(d);
        for (int i = 0; i < N_MSG; i++)
            check_txn(&d->txn[i]);
        if (step == SMTP_STEP_FAILED)
            connection_failed(d);
    }
}

static void driver_init(driver *d, uint8_t flags)
{
    smtp_proto_opts opts = {"client.test", flags & 2 ? "user" : NULL, flags & 2 ? "password" : NULL,
                            flags & 1, (flags >> 2) & 1};
    memset(d, 0, sizeof *d);
    smtp_proto_init(&d->p, &opts);
    smtp_reader_init(&d->r);
    d->implicit_tls = (flags >> 3) & 1;
    d->aborted = (flags >> 6) & 1;
    size_t n_rcpt = 1 + ((flags >> 4) & 3) % 3;
    for (int i = 0; i < N_MSG; i++) {
        smtp_txn *t = &d->txn[i];
        t->from = i == 1 ? "" : "from@src.test";
        t->rcpt = rcpt_names;
        t->n_rcpt = n_rcpt;
        t->smtputf8 = i == 2;
        t->data = flags & 0x80 ? content_dots : content_plain;
        t->len = strlen(t->data);
        t->rcpt_replies = d->replies[i];
    }
    new_connection(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    driver d;
    driver_init(&d, data[0]);
    size_t piece = 1 + data[1] % 64;
    mr_error err = MR_ERROR_INIT;
    for (size_t at = 2; at < size && d.p.phase != SMTP_PHASE_CLOSED; at += piece) {
        size_t n = size - at < piece ? size - at : piece;
        CHECK(smtp_reader_feed(&d.r, data + at, n, &err) == 0);
        feed_replies(&d);
    }
    smtp_proto_fail(&d.p, SMTP_FLAG_TIMEOUT, 0, "end of input");
    d.connections = MAX_CONNECTIONS;
    connection_failed(&d);
    smtp_proto_free(&d.p);
    smtp_reader_free(&d.r);
    return 0;
}
