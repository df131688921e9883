/*
 * smtp: mailroom's own SMTP client engine (RFC 5321 with PIPELINING 2920, STARTTLS
 * 3207, AUTH 4954, enhanced status codes 3463, SMTPUTF8 6531 and SIZE 1870).
 *
 * One session per worker thread, used with blocking-style calls. Inside, the socket is
 * non-blocking and every read and write waits with poll() against a deadline in slices
 * of at most 100 ms, so that the abort flag is seen within 100 ms. A session holds at
 * most one connection, kept warm from message to message; with PIPELINING a warm
 * connection costs one round trip per message: smtp_exchange() writes the content of
 * the message whose DATA was accepted (prev) and, in the same write, the next message's
 * MAIL FROM, every RCPT TO and DATA.
 *
 * Ownership: the session borrows the config (and every string in it) for its whole
 * life; a transaction borrows the caller's envelope, data and rcpt_replies array for the
 * duration of each call that is given it. Nothing here prints, exits or logs; reply
 * texts kept in a transaction are printable ASCII (anything else becomes '?'), so they
 * can go into logs, JSON events and Redis hashes as they are. The password is never put
 * into any text this engine returns.
 *
 * TLS writes go through OpenSSL's socket BIO, which uses write(2): the process must
 * ignore SIGPIPE (mailroom-consumer does). Plain writes use MSG_NOSIGNAL.
 * The full state machine and the classification rules are in docs/smtp.md.
 */
#ifndef MAILROOM_SMTP_ENGINE_H
#define MAILROOM_SMTP_ENGINE_H

#include <stdatomic.h>
#include <stddef.h>

#include "error.h"

typedef struct smtp_config {
    const char *url;         /* smtp://host[:port] (STARTTLS when tls_required) or
                                smtps://host[:port] (implicit TLS); ports 25 / 465 */
    int tls_required;        /* smtp://: STARTTLS or fail; 0: plain, STARTTLS not tried */
    int insecure;            /* no certificate nor host name verification */
    const char *ca_file;     /* PEM bundle of trusted CAs; NULL: the system store */
    const char *user;        /* AUTH PLAIN or LOGIN (PLAIN when both are offered) */
    const char *password;    /* NULL with user NULL: no AUTH */
    const char *ehlo_name;   /* NULL: this host's FQDN, else [address] of the local end */
    long connect_timeout_ms; /* TCP connect, TLS handshake, greeting; 0: 10 000 */
    long command_timeout_ms; /* every later read and write; 0: 60 000 */
    long max_per_connection; /* messages before the connection is recycled; 0: no limit */
    long idle_max_ms;        /* idle longer: closed, not reused; 0: no limit */
    const atomic_int *abort; /* set: I/O stops within 100 ms, connection cut; may be NULL */
    atomic_int *open_count;  /* +1 when a session's connection opens, -1 when it closes
                                (the metrics' open sessions); may be NULL */
} smtp_config;

/*
 * Checks a config once at start: the URL's form (scheme, host, port; no user or
 * password in it: they would reach logs and ps), user and password given together,
 * AUTH never over a plain connection unless the host is loopback, an EHLO name
 * without spaces or control characters, no negative limits. 0 or -1 (err says why).
 */
int smtp_config_check(const smtp_config *cfg, mr_error *err);

/* 1 when the URL parses and its host is 127.0.0.0/8, ::1 or "localhost". */
int smtp_url_is_loopback(const char *url);

/* A relay's name from its URL: "host:port" in lower case, the port the URL's or the
 * scheme's default, an IPv6 address in brackets. 0, or -1 with err. */
int smtp_url_name(const char *url, char *out, size_t cap, mr_error *err);

typedef struct smtp_session smtp_session;

/* A session without a connection (no network I/O: the TLS context and CA file are
 * loaded here when TLS is configured). NULL with err on a bad config or no memory. */
smtp_session *smtp_session_new(const smtp_config *cfg, mr_error *err);

/* Closes the connection at once, never waiting on the peer (a QUIT is written only
 * when it cannot block and the server is not reading message content). Accepts NULL. */
void smtp_session_free(smtp_session *s);

typedef enum smtp_verdict {
    SMTP_SENT = 0,  /* the final reply after the content was 2xx */
    SMTP_TEMPORARY, /* 4xx, connection, TLS, AUTH, timeout or protocol trouble: retry */
    SMTP_PERMANENT, /* 5xx, or refused before sending (size, SMTPUTF8, bad address) */
    SMTP_ABORTED    /* the abort flag stopped it; its error says when the content went
                       out and the server may have accepted it */
} smtp_verdict;

typedef enum smtp_txn_state {
    SMTP_TXN_NEW = 0,    /* not started (the caller zeroes a txn, or sets it) */
    SMTP_TXN_DATA_READY, /* 354 seen, at least one recipient accepted, content not sent */
    SMTP_TXN_DONE        /* verdict set */
} smtp_txn_state;

/* Why a transaction is not sent (several may be set). */
enum {
    SMTP_FLAG_CONNECT = 1u << 0,   /* could not connect */
    SMTP_FLAG_TLS = 1u << 1,       /* no STARTTLS, handshake or verification failure */
    SMTP_FLAG_GREETING = 1u << 2,  /* 421 or non-220 greeting, EHLO/HELO refused, or a
                                      421 at any point (the server closes) */
    SMTP_FLAG_AUTH = 1u << 3,      /* AUTH refused or impossible, or 530 (auth needed) */
    SMTP_FLAG_THROTTLED = 1u << 4, /* see smtp_reply_is_throttle() */
    SMTP_FLAG_TIMEOUT = 1u << 5,   /* a deadline passed */
    SMTP_FLAG_PROTOCOL = 1u << 6   /* the server broke the protocol */
};

#define SMTP_ENHANCED_MAX 12
#define SMTP_RCPT_TEXT_MAX 256
#define SMTP_REPLY_MAX 512
#define SMTP_RELAY_ID_MAX 128
#define SMTP_ERROR_MAX 256

/* One RCPT's reply: code 0 when none came. text is the whole reply as in txn->reply. */
typedef struct smtp_rcpt_reply {
    int code;
    char enhanced[SMTP_ENHANCED_MAX];
    char text[SMTP_RCPT_TEXT_MAX];
} smtp_rcpt_reply;

typedef struct smtp_txn {
    /* the caller's, borrowed for each call */
    const char *from;        /* reverse path without <>; "" for the null sender */
    const char *const *rcpt; /* n_rcpt forward paths without <> */
    size_t n_rcpt;
    int smtputf8;     /* needs SMTPUTF8 (assumed too when an address has a byte >= 0x80) */
    const char *data; /* the message with CRLF line ends, not dot-stuffed */
    size_t len;
    smtp_rcpt_reply *rcpt_replies; /* the caller's array of n_rcpt */
    /* results, set by the engine */
    smtp_txn_state state;
    smtp_verdict verdict; /* when DONE */
    int code;             /* the deciding reply; 0: the server never answered */
    char enhanced[SMTP_ENHANCED_MAX];
    char reply[SMTP_REPLY_MAX];       /* "250 2.0.0 Ok: queued as 4XkQ", lines joined by ' ' */
    char relay_id[SMTP_RELAY_ID_MAX]; /* from the final 2xx; "" otherwise */
    char error[SMTP_ERROR_MAX];       /* why it is not sent; "" when sent */
    unsigned flags;                   /* SMTP_FLAG_* */
    size_t n_accepted;                /* RCPTs answered 2xx */
} smtp_txn;

/*
 * One round trip on a warm pipelining connection: writes prev's content (prev must be
 * DATA_READY, else it is ignored) followed, in the same write, by next's MAIL FROM,
 * every RCPT TO and DATA, then reads prev's final reply and next's envelope replies.
 * Either may be NULL. Without PIPELINING the same happens one command at a time.
 *
 * When next is given and there is no usable connection (none, recycled after
 * max_per_connection, idle too long) one is opened first: connect, greeting, EHLO
 * (HELO when EHLO is refused with 500/502), STARTTLS and EHLO again, AUTH. A reused
 * connection found dead (EOF, reset or 421 before any other reply for next) is
 * replaced once, at once, and next's envelope sent again (nothing was accepted).
 *
 * Afterwards prev is DONE, and next is DATA_READY or DONE. After a timeout, a drop or a
 * protocol error the connection is closed at once and never reused; the transactions
 * caught in it get TEMPORARY (ABORTED when the abort flag caused it); when prev's
 * content was sent and no final reply came, its error says that the outcome is unknown
 * (the server may have accepted it).
 */
void smtp_exchange(smtp_session *s, smtp_txn *prev, smtp_txn *next);

/* Gives up a DATA_READY transaction without sending its content (e.g. shutdown): the
 * connection is closed, never left inside a transaction. t becomes DONE, TEMPORARY
 * (ABORTED when the abort flag is set). Ignores a t that is not DATA_READY. */
void smtp_txn_cancel(smtp_session *s, smtp_txn *t);

/*
 * Opens a connection when the session has no usable one, exactly as smtp_exchange()
 * would before a message (connect, greeting, EHLO, STARTTLS, AUTH), and keeps it warm
 * for the next message: how a relay whose circuit is open is probed. 0, or -1 with
 * the SMTP_FLAG_* of the failure in *flags and its reason in why.
 */
int smtp_session_open(smtp_session *s, unsigned *flags, char *why, size_t cap);

/* 1 while the session holds a connection (0 for NULL). */
int smtp_session_connected(const smtp_session *s);

/* Closes the connection, with a QUIT when between transactions. Accepts NULL. */
void smtp_session_close(smtp_session *s);

/*
 * 1 when a reply means the relay throttles us, not the message: a 4xx whose text says
 * "rate" (as a word's start), "too many", "throttl", "quota" or "limit exceeded" (any
 * case: SES' "454 Throttling failure: Maximum sending rate exceeded", Gmail's "421
 * 4.7.28 ... unusual rate", "451 4.7.1 Too many messages"), or a 454 outside STARTTLS
 * (where RFC 3207 gives it its own meaning; the caller leaves those out). A 5xx never
 * throttles (it is permanent), nor does a bare 421/451 ("try again later" is also
 * what greylisting says). text may be NULL.
 */
int smtp_reply_is_throttle(int code, const char *text);

#endif
