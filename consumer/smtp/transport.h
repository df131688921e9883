/*
 * transport: the byte stream under an SMTP session. TCP with a connect deadline (every
 * address getaddrinfo gives, in order), then plain or TLS (OpenSSL; implicit, or on the
 * same socket after STARTTLS). The socket is non-blocking; every operation that has to
 * wait polls against an absolute deadline (CLOCK_MONOTONIC milliseconds) in slices of
 * at most 100 ms and gives up within one slice once the abort flag is set.
 *
 * TLS contexts are shared by every session of the process with the same CA file and
 * verification setting (the system trust store is large; one copy serves them all):
 * smtp_tls_ctx_acquire() and _release() count references under a mutex. Certificates
 * and host names (or IP addresses) are verified unless insecure; TLS 1.2 is the
 * minimum; SNI is sent when the host is a name; OpenSSL's buffers are released while a
 * connection is idle.
 */
#ifndef MAILROOM_SMTP_TRANSPORT_H
#define MAILROOM_SMTP_TRANSPORT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum smtp_io {
    SMTP_IO_OK = 0,
    SMTP_IO_TIMEOUT, /* the deadline passed */
    SMTP_IO_ABORTED, /* the abort flag was set */
    SMTP_IO_CLOSED,  /* the peer closed or reset the connection */
    SMTP_IO_ERROR    /* anything else (resolution, refused, TLS, verification) */
} smtp_io;

typedef struct smtp_tls_ctx smtp_tls_ctx;

typedef struct smtp_transport {
    int fd;                  /* -1 when closed */
    void *ssl;               /* SSL *, NULL while plain */
    const atomic_int *abort; /* borrowed; may be NULL */
} smtp_transport;

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t smtp_now_ms(void);

/* A shared TLS client context (ca_file NULL: the system store). NULL with err when the
 * CA file cannot be loaded or OpenSSL fails. */
smtp_tls_ctx *smtp_tls_ctx_acquire(const char *ca_file, int insecure, mr_error *err);
/* Accepts NULL. */
void smtp_tls_ctx_release(smtp_tls_ctx *ctx);

void smtp_transport_init(smtp_transport *t, const atomic_int *abort);

/* Resolves host (a name or an address literal without brackets) and connects to the
 * first address that answers before the deadline. */
smtp_io smtp_transport_connect(smtp_transport *t, const char *host, const char *port,
                               int64_t deadline, mr_error *err);

/* TLS handshake on the connected socket; host is checked against the certificate (as
 * an IP address when host_is_ip) and sent as SNI when it is a name. */
smtp_io smtp_transport_tls(smtp_transport *t, smtp_tls_ctx *ctx, const char *host, int host_is_ip,
                           int64_t deadline, mr_error *err);

/* Reads what is there, waiting for at least one byte: SMTP_IO_OK with *n > 0. */
smtp_io smtp_transport_read(smtp_transport *t, char *dst, size_t cap, int64_t deadline, size_t *n,
                            mr_error *err);

/* Reads without waiting: SMTP_IO_OK with *n == 0 when nothing is there. */
smtp_io smtp_transport_try_read(smtp_transport *t, char *dst, size_t cap, size_t *n, mr_error *err);

/* Writes all len bytes; *written says how many went out, also on failure. */
smtp_io smtp_transport_write(smtp_transport *t, const char *data, size_t len, int64_t deadline,
                             size_t *written, mr_error *err);

/* Closes at once. bye (e.g. "QUIT\r\n"), when not NULL, is written first only as far
 * as it goes without waiting; nothing is ever read. */
void smtp_transport_close(smtp_transport *t, const char *bye);

/* The local address as an EHLO address literal: "[192.0.2.1]" or "[IPv6:2001:db8::1]".
 * -1 when it cannot be known. */
int smtp_transport_local_literal(const smtp_transport *t, char *dst, size_t cap);

#endif
