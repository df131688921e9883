/*
 * proto: the SMTP client state machine, without sockets. It appends the bytes to write
 * to `out` and consumes parsed replies, one at a time, in the order of the commands it
 * wrote (a queue of awaited replies). The session (session.c) writes `out`, reads,
 * parses and feeds the replies back; tests and the fuzzer drive it with canned replies.
 *
 * A connection: smtp_proto_start() awaits the greeting; then EHLO (HELO after 500/502),
 * STARTTLS and EHLO again when TLS is required (smtp_proto_on_reply() returns
 * SMTP_STEP_STARTTLS when the handshake is due; smtp_proto_tls_started() after it),
 * AUTH PLAIN or LOGIN when a user is configured; then READY. A round:
 * smtp_proto_round(prev, next) queues prev's content (dot-stuffed, terminated) and
 * next's envelope: with PIPELINING all of RSET (when a failed transaction is still open
 * on the server), MAIL, every RCPT and DATA at once, without it one command per reply.
 * The table of states is in docs/smtp.md.
 *
 * When the connection becomes unusable (a 421, a protocol error, a refused handshake
 * step, or a transport failure the session reports with smtp_proto_fail()),
 * smtp_proto_on_reply() returns SMTP_STEP_FAILED and `fail` says why; the session then
 * settles the transactions still waiting with smtp_proto_abandon().
 */
#ifndef MAILROOM_SMTP_PROTO_H
#define MAILROOM_SMTP_PROTO_H

#include <stddef.h>

#include "buf.h"
#include "caps.h"
#include "reply.h"
#include "smtp.h"
#include "txn.h"

typedef enum smtp_phase {
    SMTP_PHASE_CLOSED = 0, /* no connection, or it failed */
    SMTP_PHASE_GREETING,   /* awaiting 220 */
    SMTP_PHASE_EHLO,       /* EHLO or HELO sent */
    SMTP_PHASE_STARTTLS,   /* STARTTLS sent, or the handshake is due */
    SMTP_PHASE_AUTH,       /* AUTH under way */
    SMTP_PHASE_READY       /* transactions may run */
} smtp_phase;

typedef enum smtp_step {
    SMTP_STEP_CONTINUE = 0, /* write `out` when it is not empty, then read replies */
    SMTP_STEP_IDLE,         /* nothing awaited: the handshake or the round is complete */
    SMTP_STEP_STARTTLS,     /* do the TLS handshake, then smtp_proto_tls_started() */
    SMTP_STEP_FAILED        /* the connection is unusable; see fail */
} smtp_step;

/* What the reply at the head of the queue answers. */
typedef enum smtp_await {
    SMTP_AWAIT_GREETING = 0,
    SMTP_AWAIT_EHLO,
    SMTP_AWAIT_HELO,
    SMTP_AWAIT_STARTTLS,
    SMTP_AWAIT_AUTH_USER, /* 334 after AUTH LOGIN */
    SMTP_AWAIT_AUTH_PASS, /* 334 after the user name */
    SMTP_AWAIT_AUTH,      /* 235 */
    SMTP_AWAIT_RSET,
    SMTP_AWAIT_MAIL,
    SMTP_AWAIT_RCPT,
    SMTP_AWAIT_DATA,
    SMTP_AWAIT_CONTENT, /* the final reply after prev's content */
    SMTP_AWAIT_DOT      /* after a lone "." (354 with no recipient accepted) */
} smtp_await;

typedef struct smtp_awaited {
    smtp_await what;
    smtp_txn *txn; /* NULL for the handshake */
    size_t rcpt;   /* RCPT: which recipient */
} smtp_awaited;

typedef struct smtp_proto_opts {
    const char *ehlo_name; /* borrowed; must be set before smtp_proto_start() */
    const char *user;      /* NULL: no AUTH */
    const char *password;
    int starttls;      /* STARTTLS is required on a plain connection */
    int auth_in_clear; /* AUTH may go over a plain connection (loopback host) */
} smtp_proto_opts;

/* Where the envelope of the transaction in progress stands (without PIPELINING the
 * commands go one by one). */
typedef enum smtp_stage {
    SMTP_STAGE_RSET = 0,
    SMTP_STAGE_MAIL,
    SMTP_STAGE_RCPT,
    SMTP_STAGE_DATA,
    SMTP_STAGE_END
} smtp_stage;

typedef struct smtp_proto {
    smtp_proto_opts opts;
    smtp_phase phase;
    int tls; /* the connection runs TLS now */
    smtp_caps caps;
    buf out;             /* to write before reading again */
    int out_secret;      /* out holds credentials: wiped once written */
    smtp_awaited *queue; /* replies awaited, oldest first: queue[head, head + count) */
    size_t head, count, cap;
    smtp_awaited answering; /* the command whose reply is being handled */
    int has_answering;      /* ... and still is when that reply failed the connection */
    int need_rset;          /* the server holds an open transaction (MAIL accepted) */
    /* the round in progress */
    smtp_txn *next;      /* the transaction whose envelope is being sent */
    smtp_stage stage;    /* without PIPELINING: next command of next */
    size_t rcpt_written; /* RCPTs of next written */
    int mail_ok;         /* next's MAIL FROM was accepted */
    int next_heard;      /* a reply other than 421 answered one of next's commands */
    size_t content_end;  /* bytes of out up to prev's terminator (0: no content) */
    int content_sent;    /* prev's content went out whole */
    int in_data;         /* a transaction is DATA_READY: the server reads content */
    long messages;       /* transactions that reached DATA_READY on this connection */
    /* why the connection failed */
    int failed;
    smtp_failure fail;
} smtp_proto;

void smtp_proto_init(smtp_proto *p, const smtp_proto_opts *opts);
void smtp_proto_free(smtp_proto *p);

/* A new connection (tls: TLS from the first byte): awaits the greeting.
 * SMTP_STEP_CONTINUE, or SMTP_STEP_FAILED when out of memory. */
smtp_step smtp_proto_start(smtp_proto *p, int tls);

/* The handshake that STARTTLS announced is done: EHLO again. */
smtp_step smtp_proto_tls_started(smtp_proto *p);

/*
 * Queues a round: prev's content when prev is DATA_READY, and next's envelope once
 * next passes the checks that need the server's capabilities (SIZE, SMTPUTF8) and the
 * envelope check (refused: next is DONE and PERMANENT, nothing of it written). Needs
 * phase READY and nothing awaited. Returns SMTP_STEP_CONTINUE, or SMTP_STEP_IDLE when
 * nothing was queued, or SMTP_STEP_FAILED when out of memory.
 */
smtp_step smtp_proto_round(smtp_proto *p, smtp_txn *prev, smtp_txn *next);

/* Feeds the next reply; may append to out. */
smtp_step smtp_proto_on_reply(smtp_proto *p, const smtp_reply *reply);

/* 1 while replies are awaited. */
int smtp_proto_busy(const smtp_proto *p);

/* What the reply awaited next answers ("DATA", "RCPT TO", ...), for error texts. */
const char *smtp_proto_awaiting(const smtp_proto *p);

/* Frees out when a large message made it grow (between rounds). */
void smtp_proto_trim(smtp_proto *p);

/* out was written: its first `written` bytes went out (all of them on success). Wipes
 * and empties out. */
void smtp_proto_written(smtp_proto *p, size_t written);

/* Records a failure the session found (timeout, EOF, TLS...); error is formatted. The
 * first failure recorded is kept. Returns SMTP_STEP_FAILED. */
smtp_step smtp_proto_fail(smtp_proto *p, unsigned flags, int dead, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * The connection is gone: every transaction still awaiting a reply is DONE through
 * smtp_txn_caught() with fail (prev whose content went out: outcome unknown), except
 * keep (may be NULL), which is reset to NEW for a new connection. Phase CLOSED.
 */
void smtp_proto_abandon(smtp_proto *p, int aborted, smtp_txn *keep);

/* 1 when the server is reading message content (a transaction is DATA_READY): a QUIT
 * now would be taken as content. */
int smtp_proto_in_data(const smtp_proto *p);

#endif
