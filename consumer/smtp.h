/*
 * smtp: one SMTP client session per worker thread, on one libcurl easy handle, so the
 * connection (EHLO, STARTTLS, AUTH) is reused from message to message. smtp_send()
 * delivers one prepared message and classifies the outcome the way RFC 5321 and
 * Postfix do: 2xx sent, 5xx permanent, 4xx and every connection problem temporary.
 */
#ifndef MAILROOM_SMTP_H
#define MAILROOM_SMTP_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stddef.h>

#include "buf.h"

typedef struct smtp_config {
    const char *url; /* smtp://host:port or smtps://host:port */
    long connect_timeout_ms;
    long timeout_ms;         /* whole transaction */
    long max_per_connection; /* recycle the connection after this many messages */
    long idle_max_s;         /* do not reuse a connection idle longer than this */
    const atomic_int *abort; /* when set, a transfer in progress is abandoned */
    int tls_required;        /* smtp://: STARTTLS or fail (CURLUSESSL_ALL) */
    int insecure;            /* do not verify the server certificate (logged loudly) */
    const char *ca_file;     /* private CA bundle, or NULL for the system's */
    const char *user;        /* AUTH user, or NULL */
    const char *password;    /* AUTH password (from a file), or NULL */
} smtp_config;

/* SMTP_ABORTED: the transfer was abandoned because cfg->abort was set (shutdown in a
 * hurry); whether the server accepted the message is unknown. */
typedef enum smtp_outcome {
    SMTP_SENT = 0,
    SMTP_TEMPORARY,
    SMTP_PERMANENT,
    SMTP_ABORTED
} smtp_outcome;

typedef struct smtp_result {
    smtp_outcome outcome;
    int code;        /* the deciding reply code; 0 when the server never answered */
    char reply[512]; /* that reply line, printable ASCII only; "" when none */
    char error[CURL_ERROR_SIZE + 64]; /* what went wrong, "" when sent */
} smtp_result;

typedef struct smtp_session {
    CURL *curl;             /* owned */
    const smtp_config *cfg; /* borrowed; outlives the session */
    long sent_on_connection;
    /* per message */
    const char *body;
    size_t body_len, body_off;
    char last_line[512];
    char failure_line[512]; /* first final reply >= 400 of this transaction */
    char curl_err[CURL_ERROR_SIZE];
} smtp_session;

/* 1 when the URL's host is a loopback address or "localhost" (where TLS defaults to
 * off); 0 otherwise or when the URL cannot be parsed. */
int smtp_url_is_loopback(const char *url);

/* 1 when the URL carries a user or password: refused, they would reach logs and ps. */
int smtp_url_has_credentials(const char *url);

/* Returns 0, or -1 when libcurl could not make a handle. */
int smtp_session_init(smtp_session *s, const smtp_config *cfg);
/* Closes the connection (QUIT) and frees the handle. Accepts NULL. */
void smtp_session_free(smtp_session *s);

/*
 * Sends one message: envelope sender, recipients (bare addresses), and the message
 * itself (CRLF line ends). A reused connection found dead is retried once at once on a
 * fresh connection.
 */
void smtp_send(smtp_session *s, const char *from, const char *const *rcpt, size_t n_rcpt,
               const char *msg, size_t msg_len, smtp_result *res);

#endif
