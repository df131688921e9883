/*
 * proto: see proto.h. Each command written pushes what its reply answers onto the
 * queue; each reply pops the head and goes to that command's handler. A reply with
 * nothing awaited, a 3xx where none is allowed (a 354 anywhere but after DATA, a 334
 * anywhere but inside AUTH) and a 2xx to DATA are protocol errors. A 421 is handled as
 * the reply it answers, then ends the connection. Secrets (AUTH) only ever live in
 * out, which is wiped once written.
 */
#include "proto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_FIELD_MAX 1024 /* bytes of an AUTH user name or password */
#define OUT_KEEP_MAX 65536  /* a larger output buffer is freed between rounds */

void smtp_proto_init(smtp_proto *p, const smtp_proto_opts *opts)
{
    memset(p, 0, sizeof *p);
    p->opts = *opts;
    p->out = (buf)BUF_INIT;
}

/* Empties out, wiping it first when it held credentials. */
static void out_clear(smtp_proto *p)
{
    if (p->out_secret && p->out.data)
        OPENSSL_cleanse(p->out.data, p->out.cap);
    p->out_secret = 0;
    buf_reset(&p->out);
}

void smtp_proto_free(smtp_proto *p)
{
    if (!p)
        return;
    out_clear(p);
    buf_free(&p->out);
    free(p->queue);
    p->queue = NULL;
    p->head = p->count = p->cap = 0;
}

static void clear_round(smtp_proto *p)
{
    p->next = NULL;
    p->stage = SMTP_STAGE_END;
    p->rcpt_written = 0;
    p->mail_ok = p->next_heard = 0;
    p->content_end = 0;
    p->content_sent = 0;
}

/* Records a failure unless one is recorded already; returns SMTP_STEP_FAILED. */
static smtp_step fail_v(smtp_proto *p, unsigned flags, int dead, const char *fmt, va_list ap)
{
    if (p->failed)
        return SMTP_STEP_FAILED;
    char text[SMTP_ERROR_MAX * 2];
    int n = vsnprintf(text, sizeof text, fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    p->failed = 1;
    p->fail.flags |= flags;
    p->fail.dead = dead;
    mr_text_copy(p->fail.error, sizeof p->fail.error, text, len);
    p->phase = SMTP_PHASE_CLOSED;
    return SMTP_STEP_FAILED;
}

smtp_step smtp_proto_fail(smtp_proto *p, unsigned flags, int dead, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    smtp_step step = fail_v(p, flags, dead, fmt, ap);
    va_end(ap);
    return step;
}

static smtp_step no_memory(smtp_proto *p)
{
    return smtp_proto_fail(p, 0, 0, "out of memory");
}

/* A refusal that ends the connection: the reply is kept in fail. A 421 is dead. */
static smtp_step refuse(smtp_proto *p, unsigned flags, const smtp_reply *r, const char *what)
{
    if (p->failed)
        return SMTP_STEP_FAILED;
    char line[SMTP_REPLY_MAX];
    smtp_reply_format(r, line, sizeof line);
    if (!(flags & SMTP_FLAG_TLS) && smtp_reply_is_throttle(r->code, line))
        flags |= SMTP_FLAG_THROTTLED;
    if (r->code == 421)
        flags |= SMTP_FLAG_GREETING;
    smtp_proto_fail(p, flags, r->code == 421, "%s: %s", what, line);
    p->fail.code = r->code;
    snprintf(p->fail.enhanced, sizeof p->fail.enhanced, "%s", r->enhanced);
    memcpy(p->fail.reply, line, sizeof line);
    return SMTP_STEP_FAILED;
}

/* Adds what the next reply answers to the tail of the queue. */
static int await(smtp_proto *p, smtp_await what, smtp_txn *t, size_t rcpt)
{
    if (p->head + p->count == p->cap && p->head > 0) {
        memmove(p->queue, p->queue + p->head, p->count * sizeof p->queue[0]);
        p->head = 0;
    }
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        smtp_awaited *q = realloc(p->queue, cap * sizeof q[0]);
        if (!q)
            return -1;
        p->queue = q;
        p->cap = cap;
    }
    p->queue[p->head + p->count++] = (smtp_awaited){what, t, rcpt};
    return 0;
}

/* Writes a fixed command line and awaits its reply. */
static smtp_step command(smtp_proto *p, smtp_await what, smtp_txn *t, const char *line)
{
    if (buf_puts(&p->out, line) != 0 || await(p, what, t, 0) != 0)
        return no_memory(p);
    return SMTP_STEP_CONTINUE;
}

static smtp_step write_hello(smtp_proto *p, smtp_await what)
{
    if (buf_printf(&p->out, "%s %s\r\n", what == SMTP_AWAIT_HELO ? "HELO" : "EHLO",
                   p->opts.ehlo_name) != 0 ||
        await(p, what, NULL, 0) != 0)
        return no_memory(p);
    p->phase = SMTP_PHASE_EHLO;
    return SMTP_STEP_CONTINUE;
}

smtp_step smtp_proto_start(smtp_proto *p, int tls)
{
    out_clear(p);
    p->phase = SMTP_PHASE_GREETING;
    p->tls = tls;
    memset(&p->caps, 0, sizeof p->caps);
    p->head = p->count = 0;
    p->need_rset = p->in_data = 0;
    p->messages = 0;
    p->failed = 0;
    p->has_answering = 0;
    memset(&p->fail, 0, sizeof p->fail);
    clear_round(p);
    return await(p, SMTP_AWAIT_GREETING, NULL, 0) == 0 ? SMTP_STEP_CONTINUE : no_memory(p);
}

smtp_step smtp_proto_tls_started(smtp_proto *p)
{
    p->tls = 1;
    memset(&p->caps, 0, sizeof p->caps);
    return write_hello(p, SMTP_AWAIT_EHLO);
}

/* Appends base64 of n bytes, then CRLF. */
static int put_base64_line(buf *out, const unsigned char *in, size_t n)
{
    size_t need = 4 * ((n + 2) / 3) + 1;
    if (buf_reserve(out, need + 2) != 0)
        return -1;
    int len = EVP_EncodeBlock((unsigned char *)out->data + out->len, in, (int)n);
    if (len < 0)
        return -1;
    out->len += (size_t)len;
    return buf_append(out, "\r\n", 2);
}

/* "AUTH PLAIN " + base64("\0user\0password"), the PLAIN initial response (RFC 4616). */
static smtp_step auth_plain(smtp_proto *p)
{
    size_t ul = strlen(p->opts.user), pl = strlen(p->opts.password), n = ul + pl + 2;
    unsigned char *token = malloc(n);
    if (!token)
        return no_memory(p);
    token[0] = '\0';
    memcpy(token + 1, p->opts.user, ul);
    token[ul + 1] = '\0';
    memcpy(token + ul + 2, p->opts.password, pl);
    p->out_secret = 1;
    int rc = buf_puts(&p->out, "AUTH PLAIN ") == 0 && put_base64_line(&p->out, token, n) == 0 &&
             await(p, SMTP_AWAIT_AUTH, NULL, 0) == 0;
    OPENSSL_cleanse(token, n);
    free(token);
    return rc ? SMTP_STEP_CONTINUE : no_memory(p);
}

/* AUTH PLAIN when offered, else LOGIN; never over a plain connection to a host that
 * is not loopback. */
static smtp_step start_auth(smtp_proto *p)
{
    if (!p->tls && !p->opts.auth_in_clear)
        return smtp_proto_fail(p, SMTP_FLAG_AUTH, 0,
                               "AUTH refused: the connection is not encrypted");
    if (!p->opts.password || strlen(p->opts.user) > AUTH_FIELD_MAX ||
        strlen(p->opts.password) > AUTH_FIELD_MAX)
        return smtp_proto_fail(p, SMTP_FLAG_AUTH, 0, "AUTH user name or password unusable");
    p->phase = SMTP_PHASE_AUTH;
    if (p->caps.flags & SMTP_CAP_AUTH_PLAIN)
        return auth_plain(p);
    if (p->caps.flags & SMTP_CAP_AUTH_LOGIN)
        return command(p, SMTP_AWAIT_AUTH_USER, NULL, "AUTH LOGIN\r\n");
    return smtp_proto_fail(p, SMTP_FLAG_AUTH, 0, "the server offers %s",
                           p->caps.flags & SMTP_CAP_AUTH ? "neither AUTH PLAIN nor LOGIN"
                                                         : "no AUTH");
}

/* After a 250 to EHLO or HELO: STARTTLS when required and not done, AUTH, or ready. */
static smtp_step after_hello(smtp_proto *p)
{
    if (p->opts.starttls && !p->tls) {
        if (!(p->caps.flags & SMTP_CAP_STARTTLS))
            return smtp_proto_fail(p, SMTP_FLAG_TLS, 0,
                                   "TLS is required and the server does not offer STARTTLS");
        p->phase = SMTP_PHASE_STARTTLS;
        return command(p, SMTP_AWAIT_STARTTLS, NULL, "STARTTLS\r\n");
    }
    if (p->opts.user)
        return start_auth(p);
    p->phase = SMTP_PHASE_READY;
    return SMTP_STEP_CONTINUE;
}

/* The handshake's replies: greeting, EHLO, HELO, STARTTLS. */
static smtp_step on_hello(smtp_proto *p, smtp_await what, const smtp_reply *r)
{
    int ok = r->code / 100 == 2;
    switch (what) {
    case SMTP_AWAIT_GREETING:
        return r->code == 220 ? write_hello(p, SMTP_AWAIT_EHLO)
                              : refuse(p, SMTP_FLAG_GREETING, r, "greeting");
    case SMTP_AWAIT_EHLO:
        if (ok) {
            smtp_caps_parse(r, &p->caps);
            return after_hello(p);
        }
        if (r->code == 500 || r->code == 502)
            return write_hello(p, SMTP_AWAIT_HELO);
        return refuse(p, SMTP_FLAG_GREETING, r, "EHLO refused");
    case SMTP_AWAIT_HELO:
        memset(&p->caps, 0, sizeof p->caps);
        return ok ? after_hello(p) : refuse(p, SMTP_FLAG_GREETING, r, "HELO refused");
    default: /* SMTP_AWAIT_STARTTLS */
        if (r->code != 220)
            return refuse(p, SMTP_FLAG_TLS, r, "STARTTLS refused");
        return SMTP_STEP_STARTTLS;
    }
}

/* AUTH's replies: 334 prompts of LOGIN, then the final 235. */
static smtp_step on_auth(smtp_proto *p, smtp_await what, const smtp_reply *r)
{
    if (what == SMTP_AWAIT_AUTH) {
        if (r->code / 100 != 2)
            return refuse(p, SMTP_FLAG_AUTH, r, "AUTH refused");
        p->phase = SMTP_PHASE_READY;
        return SMTP_STEP_CONTINUE;
    }
    if (r->code != 334)
        return refuse(p, SMTP_FLAG_AUTH, r, "AUTH refused");
    const char *field = what == SMTP_AWAIT_AUTH_USER ? p->opts.user : p->opts.password;
    p->out_secret = 1;
    if (put_base64_line(&p->out, (const unsigned char *)field, strlen(field)) != 0 ||
        await(p, what == SMTP_AWAIT_AUTH_USER ? SMTP_AWAIT_AUTH_PASS : SMTP_AWAIT_AUTH, NULL, 0) !=
            0)
        return no_memory(p);
    return SMTP_STEP_CONTINUE;
}

/*
 * The content as it goes on the wire: every line end (CRLF, or a bare CR or LF, which
 * are made CRLF so that no server can read a different end of data than we mean) is
 * CRLF, a line starting with '.' gets another '.', the last line is ended when it was
 * not, and ".\r\n" terminates.
 */
static int put_content(buf *out, const char *data, size_t len)
{
    if (buf_reserve(out, len + 5) != 0)
        return -1;
    size_t i = 0;
    while (i < len) {
        if (data[i] == '.' && buf_putc(out, '.') != 0)
            return -1;
        size_t j = i;
        while (j < len && data[j] != '\r' && data[j] != '\n')
            j++;
        if (buf_append(out, data + i, j - i) != 0 || buf_append(out, "\r\n", 2) != 0)
            return -1;
        if (j + 1 < len && data[j] == '\r' && data[j + 1] == '\n')
            j++;
        i = j + 1;
    }
    return buf_append(out, ".\r\n", 3);
}

static int put_mail(smtp_proto *p, const smtp_txn *t)
{
    if (buf_printf(&p->out, "MAIL FROM:<%s>", t->from) != 0)
        return -1;
    if ((p->caps.flags & SMTP_CAP_SIZE) && buf_printf(&p->out, " SIZE=%zu", t->len) != 0)
        return -1;
    if (smtp_txn_needs_utf8(t) && buf_puts(&p->out, " SMTPUTF8") != 0)
        return -1;
    return buf_puts(&p->out, "\r\n");
}

/* Writes the command of next's current stage and moves to the following stage. */
static smtp_step emit(smtp_proto *p)
{
    smtp_txn *t = p->next;
    switch (p->stage) {
    case SMTP_STAGE_RSET:
        p->need_rset = 0;
        p->stage = SMTP_STAGE_MAIL;
        return command(p, SMTP_AWAIT_RSET, NULL, "RSET\r\n");
    case SMTP_STAGE_MAIL:
        p->stage = SMTP_STAGE_RCPT;
        if (put_mail(p, t) != 0 || await(p, SMTP_AWAIT_MAIL, t, 0) != 0)
            return no_memory(p);
        return SMTP_STEP_CONTINUE;
    case SMTP_STAGE_RCPT:
        if (buf_printf(&p->out, "RCPT TO:<%s>\r\n", t->rcpt[p->rcpt_written]) != 0 ||
            await(p, SMTP_AWAIT_RCPT, t, p->rcpt_written) != 0)
            return no_memory(p);
        if (++p->rcpt_written == t->n_rcpt)
            p->stage = SMTP_STAGE_DATA;
        return SMTP_STEP_CONTINUE;
    case SMTP_STAGE_DATA:
        p->stage = SMTP_STAGE_END;
        return command(p, SMTP_AWAIT_DATA, t, "DATA\r\n");
    default: return SMTP_STEP_CONTINUE;
    }
}

/* Every recipient refused: TEMPORARY when one refusal was 4xx (that one decides), else
 * as the first refusal says. */
static void all_refused(smtp_txn *t)
{
    size_t pick = 0;
    int temporary = 0;
    for (size_t i = 0; i < t->n_rcpt; i++) {
        if (t->rcpt_replies[i].code / 100 == 4) {
            pick = i;
            temporary = 1;
            break;
        }
    }
    const smtp_rcpt_reply *r = &t->rcpt_replies[pick];
    t->code = r->code;
    snprintf(t->enhanced, sizeof t->enhanced, "%s", r->enhanced);
    snprintf(t->reply, sizeof t->reply, "%s", r->text);
    smtp_txn_finish(t, temporary ? SMTP_TEMPORARY : smtp_refusal_verdict(t->code),
                    t->code == 530 ? SMTP_FLAG_AUTH : 0, "every recipient was refused: %s",
                    t->reply);
}

/* next's envelope failed: the sender refused, every recipient refused, or DATA
 * refused. The server keeps a transaction open when MAIL was accepted. */
static void envelope_failed(smtp_proto *p, smtp_txn *t)
{
    if (!p->mail_ok) {
        smtp_txn_refused(t, "the sender was refused");
        return;
    }
    p->need_rset = 1;
    if (t->n_accepted == 0)
        all_refused(t);
    else
        smtp_txn_refused(t, "DATA was refused");
}

/* Without PIPELINING: the next command of next once nothing is awaited, or its end. */
static smtp_step next_progress(smtp_proto *p)
{
    smtp_txn *t = p->next;
    if (!t || t->state != SMTP_TXN_NEW || p->count > 0 || p->stage == SMTP_STAGE_END)
        return SMTP_STEP_CONTINUE;
    if (p->stage == SMTP_STAGE_RSET || p->stage == SMTP_STAGE_MAIL)
        return emit(p);
    if (!p->mail_ok || (p->stage == SMTP_STAGE_DATA && t->n_accepted == 0)) {
        p->stage = SMTP_STAGE_END;
        envelope_failed(p, t);
        return SMTP_STEP_CONTINUE;
    }
    return emit(p);
}

/* DATA's reply. 354 with a recipient accepted: DATA_READY. 354 without one (RFC 2920
 * section 3.1): a lone "." ends the transaction the server should have refused. */
static smtp_step on_data(smtp_proto *p, smtp_txn *t, const smtp_reply *r)
{
    if (r->code == 354) {
        if (p->mail_ok && t->n_accepted > 0) {
            t->state = SMTP_TXN_DATA_READY;
            p->in_data = 1;
            p->messages++;
            return SMTP_STEP_CONTINUE;
        }
        envelope_failed(p, t);
        p->need_rset = 0;
        return command(p, SMTP_AWAIT_DOT, t, ".\r\n");
    }
    if (r->code / 100 == 2)
        return smtp_proto_fail(p, SMTP_FLAG_PROTOCOL, 0, "DATA answered %d instead of 354",
                               r->code);
    if (p->mail_ok && t->n_accepted > 0)
        smtp_txn_take_reply(t, r);
    envelope_failed(p, t);
    return SMTP_STEP_CONTINUE;
}

/* One RCPT's reply goes into the caller's rcpt_replies. */
static void on_rcpt(smtp_txn *t, size_t i, const smtp_reply *r)
{
    smtp_rcpt_reply *rr = &t->rcpt_replies[i];
    rr->code = r->code;
    snprintf(rr->enhanced, sizeof rr->enhanced, "%s", r->enhanced);
    smtp_reply_format(r, rr->text, sizeof rr->text);
    if (r->code / 100 == 2)
        t->n_accepted++;
}

/* The transaction's replies. */
static smtp_step on_txn(smtp_proto *p, const smtp_awaited *a, const smtp_reply *r)
{
    int ok = r->code / 100 == 2;
    switch (a->what) {
    case SMTP_AWAIT_RSET: return ok ? SMTP_STEP_CONTINUE : refuse(p, 0, r, "RSET refused");
    case SMTP_AWAIT_MAIL:
        p->mail_ok = ok;
        if (!ok)
            smtp_txn_take_reply(a->txn, r);
        return SMTP_STEP_CONTINUE;
    case SMTP_AWAIT_RCPT: on_rcpt(a->txn, a->rcpt, r); return SMTP_STEP_CONTINUE;
    case SMTP_AWAIT_DATA: return on_data(p, a->txn, r);
    case SMTP_AWAIT_CONTENT:
        p->content_end = 0;
        p->content_sent = 0;
        smtp_txn_final(a->txn, r);
        return SMTP_STEP_CONTINUE;
    default: /* SMTP_AWAIT_DOT: whatever it says, the transaction is over */
        return SMTP_STEP_CONTINUE;
    }
}

static const char *await_name(smtp_await what)
{
    static const char *const names[] = {
        "the greeting", "EHLO",      "HELO",    "STARTTLS", "AUTH LOGIN",  "the user name", "AUTH",
        "RSET",         "MAIL FROM", "RCPT TO", "DATA",     "the content", "the lone dot"};
    return names[what];
}

/* 1 when a 3xx reply is allowed here: 354 after DATA, 334 inside AUTH LOGIN. */
static int intermediate_allowed(smtp_await what, int code)
{
    if (what == SMTP_AWAIT_DATA)
        return code == 354;
    return (what == SMTP_AWAIT_AUTH_USER || what == SMTP_AWAIT_AUTH_PASS) && code == 334;
}

static smtp_step dispatch(smtp_proto *p, const smtp_awaited *a, const smtp_reply *r)
{
    if (r->code / 100 == 3 && !intermediate_allowed(a->what, r->code))
        return smtp_proto_fail(p, SMTP_FLAG_PROTOCOL, 0, "%d in reply to %s", r->code,
                               await_name(a->what));
    if (a->what <= SMTP_AWAIT_STARTTLS)
        return on_hello(p, a->what, r);
    if (a->what <= SMTP_AWAIT_AUTH)
        return on_auth(p, a->what, r);
    smtp_step step = on_txn(p, a, r);
    return step == SMTP_STEP_FAILED ? step : next_progress(p);
}

smtp_step smtp_proto_on_reply(smtp_proto *p, const smtp_reply *r)
{
    if (p->failed)
        return SMTP_STEP_FAILED;
    if (p->count == 0)
        return smtp_proto_fail(p, SMTP_FLAG_PROTOCOL, 0, "a reply (%d) came to no command",
                               r->code);
    smtp_awaited a = p->queue[p->head++];
    if (--p->count == 0)
        p->head = 0;
    if (p->next && a.txn == p->next && r->code != 421)
        p->next_heard = 1;
    p->answering = a;
    p->has_answering = 1;
    smtp_step step = dispatch(p, &a, r);
    p->has_answering = step == SMTP_STEP_FAILED;
    if (r->code == 421) {
        if (a.txn)
            a.txn->flags |= SMTP_FLAG_GREETING;
        return refuse(p, SMTP_FLAG_GREETING, r, "the server closes the connection");
    }
    if (step != SMTP_STEP_CONTINUE)
        return step;
    if (p->count > 0)
        return SMTP_STEP_CONTINUE;
    p->next = NULL; /* the round is complete */
    return SMTP_STEP_IDLE;
}

int smtp_proto_busy(const smtp_proto *p)
{
    return p->count > 0;
}

const char *smtp_proto_awaiting(const smtp_proto *p)
{
    return p->count ? await_name(p->queue[p->head].what) : "nothing";
}

void smtp_proto_trim(smtp_proto *p)
{
    if (p->out.len == 0 && p->out.cap > OUT_KEEP_MAX)
        buf_free(&p->out);
}

int smtp_proto_in_data(const smtp_proto *p)
{
    return p->in_data || (p->content_end > 0 && !p->content_sent);
}

void smtp_proto_written(smtp_proto *p, size_t written)
{
    if (p->content_end > 0 && written >= p->content_end)
        p->content_sent = 1;
    out_clear(p);
}

/* Checks that need the server's capabilities; a refused next is DONE, PERMANENT. */
static int next_acceptable(const smtp_proto *p, smtp_txn *t)
{
    if (smtp_txn_check(t) != 0)
        return 0;
    if ((p->caps.flags & SMTP_CAP_SIZE) && p->caps.size_max && t->len > p->caps.size_max) {
        smtp_txn_finish(t, SMTP_PERMANENT, 0, "message size %zu exceeds the server's limit %llu",
                        t->len, p->caps.size_max);
        return 0;
    }
    if (smtp_txn_needs_utf8(t) && !(p->caps.flags & SMTP_CAP_SMTPUTF8)) {
        smtp_txn_finish(t, SMTP_PERMANENT, 0,
                        "the envelope needs SMTPUTF8, which the server does not offer");
        return 0;
    }
    return 1;
}

smtp_step smtp_proto_round(smtp_proto *p, smtp_txn *prev, smtp_txn *next)
{
    if (p->failed || p->phase != SMTP_PHASE_READY || p->count > 0)
        return smtp_proto_fail(p, 0, 0, "internal error: round on a busy connection");
    clear_round(p);
    if (prev && prev->state == SMTP_TXN_DATA_READY) {
        p->in_data = 0;
        if (put_content(&p->out, prev->data, prev->len) != 0 ||
            await(p, SMTP_AWAIT_CONTENT, prev, 0) != 0)
            return no_memory(p);
        p->content_end = p->out.len;
    }
    if (next) {
        smtp_txn_reset(next);
        if (next_acceptable(p, next)) {
            p->next = next;
            p->stage = p->need_rset ? SMTP_STAGE_RSET : SMTP_STAGE_MAIL;
            while (p->stage != SMTP_STAGE_END && (p->caps.flags & SMTP_CAP_PIPELINING))
                if (emit(p) == SMTP_STEP_FAILED)
                    return SMTP_STEP_FAILED;
            if (next_progress(p) == SMTP_STEP_FAILED)
                return SMTP_STEP_FAILED;
        }
    }
    return p->count > 0 ? SMTP_STEP_CONTINUE : SMTP_STEP_IDLE;
}

/* Settles the transaction an awaited reply belonged to. */
static void abandon_one(smtp_proto *p, const smtp_awaited *a, int aborted, smtp_txn *keep)
{
    if (a->txn && a->txn != keep)
        smtp_txn_caught(a->txn, &p->fail, aborted,
                        a->what == SMTP_AWAIT_CONTENT && p->content_sent);
}

void smtp_proto_abandon(smtp_proto *p, int aborted, smtp_txn *keep)
{
    if (p->has_answering)
        abandon_one(p, &p->answering, aborted, keep);
    p->has_answering = 0;
    for (size_t i = p->head; i < p->head + p->count; i++)
        abandon_one(p, &p->queue[i], aborted, keep);
    if (p->next && p->next != keep)
        smtp_txn_caught(p->next, &p->fail, aborted, 0);
    if (keep)
        smtp_txn_reset(keep);
    p->head = p->count = 0;
    p->phase = SMTP_PHASE_CLOSED;
    p->in_data = 0;
    p->need_rset = 0;
    clear_round(p);
    out_clear(p);
}
