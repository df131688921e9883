/*
 * session: see smtp.h. Ties the transport (transport.c), the reply reader (reply.c)
 * and the state machine (proto.c) together. The session owns one connection at a time
 * and decides when it is used, replaced or closed; the state machine decides what is
 * written and what each reply means.
 *
 * The conversation loop (converse) writes what the state machine queued, then reads and
 * feeds replies until nothing is awaited. Before anything is written the receive buffer
 * must be empty: bytes the server sent before its command was written are a protocol
 * error. On a connection that waited between rounds, what arrived meanwhile is looked
 * at first (check_idle): a 421 or an EOF means the server dropped it, which is fine
 * before anything of the next message was written.
 */
#include "smtp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endpoint.h"
#include "proto.h"
#include "reply.h"
#include "transport.h"
#include "txn.h"

struct smtp_session {
    smtp_config cfg; /* the caller's, defaults filled in; strings borrowed */
    smtp_url url;
    smtp_tls_ctx *tls; /* shared; NULL when TLS is never used */
    smtp_transport io;
    smtp_reader reader;
    smtp_proto proto;
    int connected;
    int64_t idle_since_ms; /* when the last round on this connection ended */
    char ehlo_name[SMTP_HOST_MAX];
};

static int aborted(const smtp_session *s)
{
    return s->cfg.abort && atomic_load(s->cfg.abort);
}

/* The session's pieces from a checked config; -1 with err when TLS cannot be set up. */
static int session_setup(smtp_session *s, const smtp_config *cfg, mr_error *err)
{
    s->cfg = *cfg;
    if (!s->cfg.connect_timeout_ms)
        s->cfg.connect_timeout_ms = SMTP_DEFAULT_CONNECT_TIMEOUT_MS;
    if (!s->cfg.command_timeout_ms)
        s->cfg.command_timeout_ms = SMTP_DEFAULT_COMMAND_TIMEOUT_MS;
    if (smtp_url_parse(cfg->url, &s->url, err) != 0)
        return -1;
    if (s->url.implicit_tls || cfg->tls_required) {
        s->tls = smtp_tls_ctx_acquire(cfg->ca_file, cfg->insecure, err);
        if (!s->tls)
            return -1;
    }
    if (cfg->ehlo_name)
        snprintf(s->ehlo_name, sizeof s->ehlo_name, "%s", cfg->ehlo_name);
    smtp_proto_opts opts = {s->ehlo_name, cfg->user, cfg->password,
                            !s->url.implicit_tls && cfg->tls_required,
                            smtp_host_is_loopback(&s->url)};
    smtp_proto_init(&s->proto, &opts);
    return 0;
}

smtp_session *smtp_session_new(const smtp_config *cfg, mr_error *err)
{
    if (smtp_config_check(cfg, err) != 0)
        return NULL;
    smtp_session *s = calloc(1, sizeof *s);
    if (!s) {
        mr_fail(err, MAILROOM_ENOMEM, "out of memory for an SMTP session");
        return NULL;
    }
    smtp_transport_init(&s->io, cfg->abort);
    smtp_reader_init(&s->reader);
    if (session_setup(s, cfg, err) != 0) {
        smtp_tls_ctx_release(s->tls);
        free(s);
        return NULL;
    }
    return s;
}

/* Closes the connection at once. QUIT is written, without waiting, only when polite and
 * the connection is between transactions: inside DATA it would be message content. */
static void disconnect(smtp_session *s, int polite)
{
    if (!s->connected)
        return;
    int quit = polite && s->proto.phase == SMTP_PHASE_READY && !smtp_proto_busy(&s->proto) &&
               !smtp_proto_in_data(&s->proto);
    smtp_transport_close(&s->io, quit ? "QUIT\r\n" : NULL);
    s->connected = 0;
    if (s->cfg.open_count)
        atomic_fetch_sub(s->cfg.open_count, 1);
    s->proto.phase = SMTP_PHASE_CLOSED;
    smtp_reader_reset(&s->reader);
    smtp_reader_trim(&s->reader);
    smtp_proto_trim(&s->proto);
}

void smtp_session_free(smtp_session *s)
{
    if (!s)
        return;
    disconnect(s, 1);
    smtp_reader_free(&s->reader);
    smtp_proto_free(&s->proto);
    smtp_tls_ctx_release(s->tls);
    free(s);
}

/* Records a transport failure (what: what was being done); returns SMTP_STEP_FAILED. */
static smtp_step io_failed(smtp_session *s, smtp_io io, unsigned flags, const char *what,
                           const mr_error *e)
{
    if (io == SMTP_IO_TIMEOUT)
        flags |= SMTP_FLAG_TIMEOUT;
    if (io == SMTP_IO_ABORTED)
        flags = 0;
    return smtp_proto_fail(&s->proto, flags, io == SMTP_IO_CLOSED, "%s: %s", what, e->msg);
}

/* Reads until the next whole reply and feeds it to the state machine. */
static smtp_step next_reply(smtp_session *s, int64_t deadline)
{
    mr_error e = MR_ERROR_INIT;
    const smtp_reply *r = NULL;
    char what[64];
    for (;;) {
        int rc = smtp_reader_next(&s->reader, &r, &e);
        if (rc > 0)
            return smtp_proto_on_reply(&s->proto, r);
        if (rc < 0)
            return smtp_proto_fail(&s->proto, SMTP_FLAG_PROTOCOL, 0, "%s", e.msg);
        size_t room = 0, n = 0;
        char *at = smtp_reader_space(&s->reader, &room, &e);
        if (!at)
            return smtp_proto_fail(&s->proto, e.rc == MAILROOM_EPROTO ? SMTP_FLAG_PROTOCOL : 0, 0,
                                   "%s", e.msg);
        smtp_io io = smtp_transport_read(&s->io, at, room, deadline, &n, &e);
        if (io != SMTP_IO_OK) {
            snprintf(what, sizeof what, "waiting for the reply to %s",
                     smtp_proto_awaiting(&s->proto));
            return io_failed(s, io, 0, what, &e);
        }
        smtp_reader_commit(&s->reader, n);
    }
}

/* The server sent bytes nobody asked for (where: when it was noticed). A whole 421
 * means that it closes the connection (dead); anything else is a protocol error. */
static smtp_step unsolicited(smtp_session *s, const char *where)
{
    mr_error e = MR_ERROR_INIT;
    const smtp_reply *r = NULL;
    if (smtp_reader_next(&s->reader, &r, &e) == 1 && r->code == 421) {
        char line[SMTP_REPLY_MAX];
        smtp_reply_format(r, line, sizeof line);
        return smtp_proto_fail(&s->proto, SMTP_FLAG_GREETING, 1,
                               "the server closes the connection %s: %s", where, line);
    }
    return smtp_proto_fail(&s->proto, SMTP_FLAG_PROTOCOL, 0,
                           "the server sent data nobody asked for %s", where);
}

/* Writes what the state machine queued, once sure the server has not spoken out of
 * turn. */
static smtp_step flush(smtp_session *s)
{
    mr_error e = MR_ERROR_INIT;
    size_t written = 0;
    if (smtp_reader_pending(&s->reader))
        return unsolicited(s, "before its command was written");
    smtp_io io = smtp_transport_write(&s->io, s->proto.out.data, s->proto.out.len,
                                      smtp_now_ms() + s->cfg.command_timeout_ms, &written, &e);
    smtp_proto_written(&s->proto, written);
    return io == SMTP_IO_OK ? SMTP_STEP_CONTINUE : io_failed(s, io, 0, "sending", &e);
}

/* The TLS handshake after the server's 220 to STARTTLS. Bytes already received after
 * that 220 would have been sent in the clear as if they came over TLS: refused. */
static smtp_step starttls(smtp_session *s)
{
    mr_error e = MR_ERROR_INIT;
    if (smtp_reader_pending(&s->reader))
        return smtp_proto_fail(&s->proto, SMTP_FLAG_PROTOCOL | SMTP_FLAG_TLS, 0,
                               "data after the 220 to STARTTLS, before TLS began");
    smtp_io io = smtp_transport_tls(&s->io, s->tls, s->url.host, s->url.host_is_ip,
                                    smtp_now_ms() + s->cfg.connect_timeout_ms, &e);
    if (io != SMTP_IO_OK)
        return io_failed(s, io, SMTP_FLAG_TLS, "STARTTLS", &e);
    return smtp_proto_tls_started(&s->proto);
}

/* Runs the conversation until nothing is awaited: SMTP_STEP_IDLE, or SMTP_STEP_FAILED
 * (proto.fail says why). Bytes left over at the end are replies nobody asked for. */
static smtp_step converse(smtp_session *s, smtp_step step)
{
    while (step == SMTP_STEP_CONTINUE || step == SMTP_STEP_STARTTLS) {
        if (step == SMTP_STEP_STARTTLS)
            step = starttls(s);
        else if (s->proto.out.len)
            step = flush(s);
        else if (!smtp_proto_busy(&s->proto))
            step = SMTP_STEP_IDLE;
        else
            step = next_reply(s, smtp_now_ms() + s->cfg.command_timeout_ms);
    }
    if (step == SMTP_STEP_IDLE && smtp_reader_pending(&s->reader))
        step = unsolicited(s, "after the replies to every command");
    return step;
}

/* TCP, implicit TLS when smtps://, and the EHLO name when none is configured. */
static smtp_step connect_socket(smtp_session *s, int64_t deadline)
{
    mr_error e = MR_ERROR_INIT;
    char what[SMTP_HOST_MAX + 32];
    snprintf(what, sizeof what, "connecting to %s port %s", s->url.host, s->url.port);
    smtp_io io = smtp_transport_connect(&s->io, s->url.host, s->url.port, deadline, &e);
    if (io != SMTP_IO_OK)
        return io_failed(s, io, SMTP_FLAG_CONNECT, what, &e);
    s->connected = 1;
    if (s->cfg.open_count)
        atomic_fetch_add(s->cfg.open_count, 1);
    if (s->url.implicit_tls) {
        io = smtp_transport_tls(&s->io, s->tls, s->url.host, s->url.host_is_ip, deadline, &e);
        if (io != SMTP_IO_OK)
            return io_failed(s, io, SMTP_FLAG_TLS, "TLS", &e);
    }
    if (!s->ehlo_name[0] && smtp_default_ehlo_name(&s->io, s->ehlo_name, sizeof s->ehlo_name) != 0)
        return smtp_proto_fail(&s->proto, 0, 0, "no EHLO name could be found: configure one");
    return SMTP_STEP_CONTINUE;
}

/* A new connection up to READY: connect, greeting (both within the connect timeout),
 * EHLO, STARTTLS, AUTH. On failure the connection is closed; proto.fail says why. */
static smtp_step open_connection(smtp_session *s)
{
    int64_t deadline = smtp_now_ms() + s->cfg.connect_timeout_ms;
    smtp_reader_reset(&s->reader);
    smtp_step step = smtp_proto_start(&s->proto, s->url.implicit_tls);
    if (step != SMTP_STEP_FAILED)
        step = connect_socket(s, deadline);
    if (step != SMTP_STEP_FAILED)
        step = converse(s, next_reply(s, deadline));
    if (step == SMTP_STEP_FAILED)
        disconnect(s, 0);
    else
        s->idle_since_ms = smtp_now_ms();
    return step;
}

/* The connection failed: everything caught in it is settled (keep excepted, left NEW
 * for a new connection), and it is closed. A message still DATA_READY (prev whose
 * content was never queued, next whose round had completed) goes with it, not sent. */
static void close_failed(smtp_session *s, smtp_txn *keep, smtp_txn *prev, smtp_txn *next)
{
    smtp_proto_abandon(&s->proto, aborted(s), keep);
    if (prev && prev->state == SMTP_TXN_DATA_READY)
        smtp_txn_caught(prev, &s->proto.fail, aborted(s), 0);
    if (next && next != keep && next->state == SMTP_TXN_DATA_READY)
        smtp_txn_caught(next, &s->proto.fail, aborted(s), 0);
    disconnect(s, 0);
}

/*
 * One round on the open connection. On failure the connection is closed and what was
 * caught in it settled, except next when the connection was reused (may_replay), died
 * (EOF, reset, 421) and never answered one of next's commands: next stays NEW and
 * *replay is 1.
 */
static smtp_step run_round(smtp_session *s, smtp_txn *prev, smtp_txn *next, int may_replay,
                           int *replay)
{
    smtp_step step = converse(s, smtp_proto_round(&s->proto, prev, next));
    *replay = 0;
    if (step != SMTP_STEP_FAILED) {
        s->idle_since_ms = smtp_now_ms();
        smtp_reader_trim(&s->reader);
        smtp_proto_trim(&s->proto);
        return step;
    }
    *replay = may_replay && next && next->state == SMTP_TXN_NEW && s->proto.fail.dead &&
              !s->proto.next_heard;
    close_failed(s, *replay ? next : NULL, prev, next);
    return step;
}

/*
 * Before writing on a connection that waited between rounds: what the server said
 * meanwhile. Nothing: 0. Otherwise -1 with the failure recorded: an EOF, a reset or a
 * 421 (it closed an idle connection) make the connection dead, anything else is a
 * protocol error.
 */
static int check_idle(smtp_session *s)
{
    mr_error e = MR_ERROR_INIT;
    size_t room = 0, n = 0;
    char *at = smtp_reader_space(&s->reader, &room, &e);
    smtp_io io = at ? smtp_transport_try_read(&s->io, at, room, &n, &e) : SMTP_IO_ERROR;
    if (io != SMTP_IO_OK) {
        io_failed(s, io, 0, "on the idle connection", &e);
        return -1;
    }
    smtp_reader_commit(&s->reader, n);
    if (!smtp_reader_pending(&s->reader))
        return 0;
    unsolicited(s, "on the idle connection");
    return -1;
}

/* The connection has served max_per_connection messages or sat idle too long. */
static int must_recycle(const smtp_session *s)
{
    return (s->cfg.max_per_connection > 0 && s->proto.messages >= s->cfg.max_per_connection) ||
           (s->cfg.idle_max_ms > 0 && smtp_now_ms() - s->idle_since_ms > s->cfg.idle_max_ms);
}

/* Settles t as caught in a failure that is no connection's (why). */
static void settle(smtp_session *s, smtp_txn *t, const char *why)
{
    smtp_failure f;
    memset(&f, 0, sizeof f);
    snprintf(f.error, sizeof f.error, "%s", why);
    smtp_txn_caught(t, &f, aborted(s), 0);
}

/* prev's content on the connection that accepted its DATA, with next's envelope in the
 * same write unless the connection is due for recycling (then it is closed after
 * prev's reply, and next is left for a new connection). */
static void deliver_prev(smtp_session *s, smtp_txn *prev, smtp_txn *next)
{
    if (!s->connected) {
        settle(s, prev, "the connection was closed before the content was sent");
        return;
    }
    if (check_idle(s) != 0) {
        close_failed(s, NULL, prev, NULL);
        return;
    }
    int recycle = next && must_recycle(s), replay = 0;
    if (run_round(s, prev, recycle ? NULL : next, 1, &replay) != SMTP_STEP_FAILED && recycle)
        disconnect(s, 1);
}

/* next's envelope on the connection when it is still good, else on a new one; a
 * reused connection that dies before answering anything of next is replaced once. */
static void send_next(smtp_session *s, smtp_txn *next)
{
    for (;;) {
        int reused = s->connected;
        if (reused && must_recycle(s)) {
            disconnect(s, 1);
            reused = 0;
        }
        if (reused && check_idle(s) != 0) {
            close_failed(s, NULL, NULL, NULL);
            reused = 0;
        }
        if (!s->connected && open_connection(s) == SMTP_STEP_FAILED) {
            smtp_txn_caught(next, &s->proto.fail, aborted(s), 0);
            return;
        }
        int replay = 0;
        if (run_round(s, NULL, next, reused, &replay) != SMTP_STEP_FAILED || !replay)
            return;
    }
}

void smtp_exchange(smtp_session *s, smtp_txn *prev, smtp_txn *next)
{
    if (prev && prev->state != SMTP_TXN_DATA_READY)
        prev = NULL;
    if (next) {
        smtp_txn_reset(next);
        if (smtp_txn_check(next) != 0)
            next = NULL;
    }
    if (aborted(s)) {
        if (prev)
            settle(s, prev, "aborted by shutdown");
        if (next)
            settle(s, next, "aborted by shutdown");
        disconnect(s, 1);
        return;
    }
    if (prev)
        deliver_prev(s, prev, next);
    if (next && next->state == SMTP_TXN_NEW)
        send_next(s, next);
}

void smtp_txn_cancel(smtp_session *s, smtp_txn *t)
{
    if (!t || t->state != SMTP_TXN_DATA_READY)
        return;
    settle(s, t, "cancelled before its content was sent");
    disconnect(s, 0);
}

int smtp_session_connected(const smtp_session *s)
{
    return s && s->connected;
}

void smtp_session_close(smtp_session *s)
{
    if (s)
        disconnect(s, 1);
}

int smtp_session_open(smtp_session *s, unsigned *flags, char *why, size_t cap)
{
    *flags = 0;
    if (s->connected && !must_recycle(s) && check_idle(s) == 0)
        return 0;
    disconnect(s, 1);
    if (aborted(s)) {
        snprintf(why, cap, "aborted by shutdown");
        return -1;
    }
    if (open_connection(s) != SMTP_STEP_FAILED)
        return 0;
    *flags = s->proto.fail.flags;
    snprintf(why, cap, "%s", s->proto.fail.error);
    return -1;
}
