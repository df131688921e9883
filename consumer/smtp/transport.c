/*
 * transport: see transport.h. Plain I/O uses recv/send on the non-blocking socket
 * (MSG_NOSIGNAL on send); TLS uses SSL_read_ex/SSL_write_ex, and their WANT_READ /
 * WANT_WRITE turn into a poll for that direction. OpenSSL keeps its errors in a
 * per-thread queue: it is cleared before each call so that SSL_get_error() and the
 * message reported describe this call only.
 */
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SLICE_MS 100 /* longest wait between two looks at the abort flag */

struct smtp_tls_ctx {
    SSL_CTX *ctx;
    char *ca_file; /* NULL: the system store */
    int insecure;
    int refs;
    struct smtp_tls_ctx *next;
};

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static smtp_tls_ctx *ctx_list; /* every context in use, guarded by ctx_lock */

int64_t smtp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The last OpenSSL error as text, or fallback when there is none. */
static const char *ssl_error_text(char *dst, size_t cap, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    if (!e)
        return fallback;
    ERR_error_string_n(e, dst, cap);
    return dst;
}

/* A new client context: TLS 1.2 or later, verification per insecure, trust from ca_file
 * or the system store. */
static SSL_CTX *ctx_create(const char *ca_file, int insecure, mr_error *err)
{
    char why[256];
    int ok = 0;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        mr_fail(err, MAILROOM_ENOMEM, "cannot create a TLS context: %s",
                ssl_error_text(why, sizeof why, "unknown error"));
        goto out;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx, insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    if (ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1
                : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        mr_fail(err, MAILROOM_EINVAL, "cannot load the CA certificates %s%s: %s",
                ca_file ? "of " : "from the system store", ca_file ? ca_file : "",
                ssl_error_text(why, sizeof why, "unknown error"));
        goto out;
    }
    ok = 1;
out:
    if (!ok) {
        SSL_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

/* The context in use with these settings; call with ctx_lock held. */
static smtp_tls_ctx *ctx_find(const char *ca_file, int insecure)
{
    for (smtp_tls_ctx *c = ctx_list; c; c = c->next)
        if (c->insecure == insecure &&
            (c->ca_file ? ca_file && strcmp(c->ca_file, ca_file) == 0 : !ca_file))
            return c;
    return NULL;
}

smtp_tls_ctx *smtp_tls_ctx_acquire(const char *ca_file, int insecure, mr_error *err)
{
    pthread_mutex_lock(&ctx_lock);
    smtp_tls_ctx *c = ctx_find(ca_file, insecure);
    if (c) {
        c->refs++;
        goto out;
    }
    c = calloc(1, sizeof *c);
    if (!c || (ca_file && !(c->ca_file = strdup(ca_file))))
        mr_fail(err, MAILROOM_ENOMEM, "out of memory for a TLS context");
    else
        c->ctx = ctx_create(ca_file, insecure, err);
    if (!c || !c->ctx) {
        if (c)
            free(c->ca_file);
        free(c);
        c = NULL;
        goto out;
    }
    c->insecure = insecure;
    c->refs = 1;
    c->next = ctx_list;
    ctx_list = c;
out:
    pthread_mutex_unlock(&ctx_lock);
    return c;
}

void smtp_tls_ctx_release(smtp_tls_ctx *ctx)
{
    if (!ctx)
        return;
    pthread_mutex_lock(&ctx_lock);
    if (--ctx->refs == 0) {
        smtp_tls_ctx **p = &ctx_list;
        while (*p != ctx)
            p = &(*p)->next;
        *p = ctx->next;
        SSL_CTX_free(ctx->ctx);
        free(ctx->ca_file);
        free(ctx);
    }
    pthread_mutex_unlock(&ctx_lock);
}

void smtp_transport_init(smtp_transport *t, const atomic_int *abort)
{
    t->fd = -1;
    t->ssl = NULL;
    t->abort = abort;
}

/* Records why an operation stopped; returns io. */
static smtp_io stopped(smtp_io io, mr_error *err, const char *why)
{
    mr_fail(err, io == SMTP_IO_TIMEOUT ? MAILROOM_ETIMEOUT : MAILROOM_EINVAL, "%s", why);
    return io;
}

/* Waits until fd is ready for events, the deadline passes or the abort flag is set. */
static smtp_io wait_fd(const smtp_transport *t, int fd, short events, int64_t deadline,
                       mr_error *err)
{
    for (;;) {
        if (t->abort && atomic_load(t->abort))
            return stopped(SMTP_IO_ABORTED, err, "aborted by shutdown");
        int64_t left = deadline - smtp_now_ms();
        if (left <= 0)
            return stopped(SMTP_IO_TIMEOUT, err, "timed out");
        struct pollfd pfd = {fd, events, 0};
        int rc = poll(&pfd, 1, (int)(left < SLICE_MS ? left : SLICE_MS));
        if (rc > 0)
            return SMTP_IO_OK;
        if (rc < 0 && errno != EINTR)
            return stopped(SMTP_IO_ERROR, err, strerror(errno));
    }
}

/* A non-blocking, close-on-exec TCP socket connecting to ai: 0 when connected or
 * in progress, -1 (errno set) otherwise. */
static int start_connect(const struct addrinfo *ai, int *fd_out)
{
    int one = 1, saved = 0;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
        goto out;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS)
        goto out;
    *fd_out = fd;
    return 0;
out:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* Connects to one address before the deadline: 0, or -1 with *io and err set. */
static int connect_one(smtp_transport *t, const struct addrinfo *ai, int64_t deadline, smtp_io *io,
                       mr_error *err)
{
    int fd = -1, soerr = 0;
    socklen_t len = sizeof soerr;
    if (start_connect(ai, &fd) != 0) {
        *io = stopped(SMTP_IO_ERROR, err, strerror(errno));
        return -1;
    }
    *io = wait_fd(t, fd, POLLOUT, deadline, err);
    if (*io == SMTP_IO_OK &&
        (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0))
        *io = stopped(SMTP_IO_ERROR, err, strerror(soerr ? soerr : errno));
    if (*io != SMTP_IO_OK) {
        close(fd);
        return -1;
    }
    t->fd = fd;
    return 0;
}

smtp_io smtp_transport_connect(smtp_transport *t, const char *host, const char *port,
                               int64_t deadline, mr_error *err)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        mr_fail(err, MAILROOM_EINVAL, "cannot resolve %s: %s", host, gai_strerror(rc));
        return SMTP_IO_ERROR;
    }
    smtp_io io = SMTP_IO_ERROR;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (connect_one(t, ai, deadline, &io, err) == 0 || io == SMTP_IO_TIMEOUT ||
            io == SMTP_IO_ABORTED)
            break;
    freeaddrinfo(res);
    return t->fd >= 0 ? SMTP_IO_OK : io;
}

/*
 * What a failed SSL call means. WANT_READ/WANT_WRITE: *events to poll for, SMTP_IO_OK.
 * A close_notify, an EOF or a reset: SMTP_IO_CLOSED. Anything else: SMTP_IO_ERROR, with
 * OpenSSL's reason.
 */
static smtp_io ssl_failure(SSL *ssl, int rc, short *events, mr_error *err)
{
    int e = SSL_get_error(ssl, rc);
    char why[256];
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        return SMTP_IO_OK;
    }
    if (e == SSL_ERROR_ZERO_RETURN ||
        (e == SSL_ERROR_SYSCALL && (errno == 0 || errno == ECONNRESET || errno == EPIPE)) ||
        (e == SSL_ERROR_SSL &&
         ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
        mr_fail(err, MAILROOM_EINVAL, "connection closed by the server");
        return SMTP_IO_CLOSED;
    }
    mr_fail(err, MAILROOM_EINVAL, "TLS: %s",
            e == SSL_ERROR_SYSCALL ? strerror(errno)
                                   : ssl_error_text(why, sizeof why, "unknown error"));
    return SMTP_IO_ERROR;
}

/* Points the handshake's checks at host: its name (and SNI) or its IP address. */
static int ssl_set_peer(SSL *ssl, const char *host, int host_is_ip)
{
    if (host_is_ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 ? 0 : -1;
    if (SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1)
        return -1;
    return 0;
}

/* Why a handshake failed: the certificate check's reason when that is what failed. */
static smtp_io handshake_failed(SSL *ssl, smtp_io io, mr_error *err)
{
    long v = SSL_get_verify_result(ssl);
    if (io == SMTP_IO_ERROR && v != X509_V_OK)
        mr_fail(err, MAILROOM_EINVAL, "TLS certificate verification failed: %s",
                X509_verify_cert_error_string(v));
    else
        mr_prefix(err, "TLS handshake");
    return io == SMTP_IO_CLOSED ? SMTP_IO_ERROR : io;
}

smtp_io smtp_transport_tls(smtp_transport *t, smtp_tls_ctx *ctx, const char *host, int host_is_ip,
                           int64_t deadline, mr_error *err)
{
    ERR_clear_error();
    SSL *ssl = SSL_new(ctx->ctx);
    if (!ssl || SSL_set_fd(ssl, t->fd) != 1 || ssl_set_peer(ssl, host, host_is_ip) != 0) {
        SSL_free(ssl);
        mr_fail(err, MAILROOM_ENOMEM, "cannot set up TLS for %s", host);
        return SMTP_IO_ERROR;
    }
    t->ssl = ssl;
    SSL_set_connect_state(ssl);
    for (;;) {
        ERR_clear_error();
        int rc = SSL_connect(ssl);
        if (rc == 1)
            return SMTP_IO_OK;
        short events = 0;
        smtp_io io = ssl_failure(ssl, rc, &events, err);
        if (io == SMTP_IO_OK)
            io = wait_fd(t, t->fd, events, deadline, err);
        if (io != SMTP_IO_OK)
            return handshake_failed(ssl, io, err);
    }
}

/* One read attempt: SMTP_IO_OK with *n > 0, or with *n == 0 and *events to wait for. */
static smtp_io read_once(smtp_transport *t, char *dst, size_t cap, size_t *n, short *events,
                         mr_error *err)
{
    *n = 0;
    if (t->ssl) {
        ERR_clear_error();
        int rc = SSL_read_ex(t->ssl, dst, cap, n);
        return rc == 1 ? SMTP_IO_OK : ssl_failure(t->ssl, rc, events, err);
    }
    ssize_t got = recv(t->fd, dst, cap, 0);
    if (got > 0) {
        *n = (size_t)got;
        return SMTP_IO_OK;
    }
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        *events = POLLIN;
        return SMTP_IO_OK;
    }
    if (got == 0 || errno == ECONNRESET) {
        mr_fail(err, MAILROOM_EINVAL, "connection %s by the server", got ? "reset" : "closed");
        return SMTP_IO_CLOSED;
    }
    mr_fail(err, MAILROOM_EINVAL, "recv: %s", strerror(errno));
    return SMTP_IO_ERROR;
}

smtp_io smtp_transport_read(smtp_transport *t, char *dst, size_t cap, int64_t deadline, size_t *n,
                            mr_error *err)
{
    for (;;) {
        short events = 0;
        smtp_io io = read_once(t, dst, cap, n, &events, err);
        if (io != SMTP_IO_OK || *n > 0)
            return io;
        io = wait_fd(t, t->fd, events, deadline, err);
        if (io != SMTP_IO_OK)
            return io;
    }
}

smtp_io smtp_transport_try_read(smtp_transport *t, char *dst, size_t cap, size_t *n, mr_error *err)
{
    short events = 0;
    return read_once(t, dst, cap, n, &events, err);
}

/* One write attempt: SMTP_IO_OK with *n > 0, or with *n == 0 and *events to wait for. */
static smtp_io write_once(smtp_transport *t, const char *data, size_t len, size_t *n, short *events,
                          mr_error *err)
{
    *n = 0;
    if (t->ssl) {
        ERR_clear_error();
        int rc = SSL_write_ex(t->ssl, data, len, n);
        return rc == 1 ? SMTP_IO_OK : ssl_failure(t->ssl, rc, events, err);
    }
    ssize_t put = send(t->fd, data, len, MSG_NOSIGNAL);
    if (put >= 0) {
        *n = (size_t)put;
        *events = POLLOUT;
        return SMTP_IO_OK;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        *events = POLLOUT;
        return SMTP_IO_OK;
    }
    if (errno == EPIPE || errno == ECONNRESET) {
        mr_fail(err, MAILROOM_EINVAL, "connection %s by the server",
                errno == EPIPE ? "closed" : "reset");
        return SMTP_IO_CLOSED;
    }
    mr_fail(err, MAILROOM_EINVAL, "send: %s", strerror(errno));
    return SMTP_IO_ERROR;
}

smtp_io smtp_transport_write(smtp_transport *t, const char *data, size_t len, int64_t deadline,
                             size_t *written, mr_error *err)
{
    *written = 0;
    while (*written < len) {
        size_t n = 0;
        short events = 0;
        smtp_io io = write_once(t, data + *written, len - *written, &n, &events, err);
        if (io == SMTP_IO_OK && n == 0)
            io = wait_fd(t, t->fd, events, deadline, err);
        if (io != SMTP_IO_OK)
            return io;
        *written += n;
    }
    return SMTP_IO_OK;
}

void smtp_transport_close(smtp_transport *t, const char *bye)
{
    if (t->fd < 0)
        return;
    if (bye) {
        size_t n = 0;
        short events = 0;
        mr_error ignored = MR_ERROR_INIT;
        write_once(t, bye, strlen(bye), &n, &events, &ignored);
    }
    if (t->ssl)
        SSL_free(t->ssl);
    t->ssl = NULL;
    close(t->fd);
    t->fd = -1;
}

int smtp_transport_local_literal(const smtp_transport *t, char *dst, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char text[INET6_ADDRSTRLEN];
    if (t->fd < 0 || getsockname(t->fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET &&
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text, sizeof text))
        return snprintf(dst, cap, "[%s]", text) < (int)cap ? 0 : -1;
    if (ss.ss_family == AF_INET6 &&
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, text, sizeof text))
        return snprintf(dst, cap, "[IPv6:%s]", text) < (int)cap ? 0 : -1;
    return -1;
}
