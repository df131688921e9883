/*
 * Unit tests of consumer/smtp/proto.c and txn.c: the state machine driven with canned
 * server replies, checking the exact bytes written at each step. Handshake (EHLO, HELO
 * fallback, STARTTLS, AUTH PLAIN and LOGIN and their refusals), rounds with and without
 * PIPELINING (one write per message on a warm connection: prev's content and next's
 * MAIL/RCPT/DATA together), dot-stuffing and the terminator, partial and total
 * recipient refusal (RSET before the next transaction; RFC 2920's lone dot after a
 * 354), 421 anywhere, protocol errors (354 at the wrong time, replies nobody asked
 * for), SIZE and SMTPUTF8, settling what a dead connection caught, relay ids of
 * Postfix, Exim, Gmail and others, throttling replies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "proto.h"

#define EHLO_PIPE "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"
#define EHLO_PLAIN "250-mx.test\r\n250 8BITMIME\r\n"

/* Feeds every reply of wire; returns the last step. Nothing may be left over. */
static smtp_step feed(smtp_proto *p, const char *wire)
{
    smtp_reader r;
    smtp_reader_init(&r);
    mr_error err = MR_ERROR_INIT;
    const smtp_reply *rep = NULL;
    smtp_step step = SMTP_STEP_CONTINUE;
    assert_int_equal(smtp_reader_feed(&r, wire, strlen(wire), &err), 0);
    while (smtp_reader_next(&r, &rep, &err) == 1)
        step = smtp_proto_on_reply(p, rep);
    assert_false(smtp_reader_pending(&r));
    smtp_reader_free(&r);
    return step;
}

/* out must be exactly want; then it counts as written. */
static void expect_out(smtp_proto *p, const char *want)
{
    size_t n = strlen(want);
    if (p->out.len != n || (n && memcmp(p->out.data, want, n) != 0))
        fail_msg("out is \"%.*s\", want \"%s\"", (int)p->out.len, p->out.data ? p->out.data : "",
                 want);
    smtp_proto_written(p, n);
}

static const smtp_proto_opts plain_opts = {"client.test", NULL, NULL, 0, 1};

/* A connection through greeting and EHLO, READY. */
static void ready(smtp_proto *p, const smtp_proto_opts *o, const char *ehlo)
{
    smtp_proto_init(p, o);
    assert_int_equal(smtp_proto_start(p, 0), SMTP_STEP_CONTINUE);
    expect_out(p, "");
    assert_int_equal(feed(p, "220 mx.test ESMTP\r\n"), SMTP_STEP_CONTINUE);
    expect_out(p, "EHLO client.test\r\n");
    assert_int_equal(feed(p, ehlo), SMTP_STEP_IDLE);
    assert_int_equal(p->phase, SMTP_PHASE_READY);
}

typedef struct msg {
    smtp_txn t;
    const char *rcpt[4];
    smtp_rcpt_reply replies[4];
} msg;

static void msg_init(msg *m, const char *from, const char *data, size_t n_rcpt)
{
    static const char *const names[] = {"a@dest.test", "b@dest.test", "c@dest.test", "d@dest.test"};
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < n_rcpt; i++)
        m->rcpt[i] = names[i];
    m->t.from = from;
    m->t.rcpt = m->rcpt;
    m->t.n_rcpt = n_rcpt;
    m->t.data = data;
    m->t.len = strlen(data);
    m->t.rcpt_replies = m->replies;
}

static void test_handshake_plain(void **state)
{
    (void)state;
    smtp_proto p;
    ready(&p, &plain_opts, EHLO_PIPE);
    assert_true(p.caps.flags & SMTP_CAP_PIPELINING);
    assert_false(smtp_proto_busy(&p));
    smtp_proto_free(&p);
}

static void test_helo_fallback(void **state)
{
    (void)state;
    const char *refusals[] = {"502 5.5.1 command not implemented\r\n", "500 what?\r\n"};
    for (int i = 0; i < 2; i++) {
        smtp_proto p;
        smtp_proto_init(&p, &plain_opts);
        smtp_proto_start(&p, 0);
        feed(&p, "220 old.test\r\n");
        expect_out(&p, "EHLO client.test\r\n");
        assert_int_equal(feed(&p, refusals[i]), SMTP_STEP_CONTINUE);
        expect_out(&p, "HELO client.test\r\n");
        assert_int_equal(feed(&p, "250 old.test\r\n"), SMTP_STEP_IDLE);
        assert_int_equal(p.caps.flags, 0);
        smtp_proto_free(&p);
    }
}

static void test_greeting_and_ehlo_refused(void **state)
{
    (void)state;
    smtp_proto p;
    smtp_proto_init(&p, &plain_opts);
    smtp_proto_start(&p, 0);
    assert_int_equal(feed(&p, "421 4.7.0 mx.test too many connections\r\n"), SMTP_STEP_FAILED);
    assert_true(p.fail.flags & SMTP_FLAG_GREETING);
    assert_true(p.fail.flags & SMTP_FLAG_THROTTLED);
    assert_true(p.fail.dead);
    assert_int_equal(p.fail.code, 421);
    assert_string_equal(p.fail.reply, "421 4.7.0 mx.test too many connections");
    smtp_proto_start(&p, 0);
    assert_int_equal(feed(&p, "554 5.7.1 go away\r\n"), SMTP_STEP_FAILED);
    assert_int_equal(p.fail.flags, SMTP_FLAG_GREETING);
    assert_false(p.fail.dead);
    smtp_proto_start(&p, 0);
    feed(&p, "220 x\r\n");
    expect_out(&p, "EHLO client.test\r\n");
    assert_int_equal(feed(&p, "554 no\r\n"), SMTP_STEP_FAILED);
    assert_true(p.fail.flags & SMTP_FLAG_GREETING);
    smtp_proto_free(&p);
}

static void test_starttls_and_auth_plain(void **state)
{
    (void)state;
    smtp_proto_opts o = {"client.test", "user", "secret", 1, 0};
    smtp_proto p;
    smtp_proto_init(&p, &o);
    smtp_proto_start(&p, 0);
    feed(&p, "220 mx\r\n");
    expect_out(&p, "EHLO client.test\r\n");
    assert_int_equal(feed(&p, "250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"),
                     SMTP_STEP_CONTINUE);
    expect_out(&p, "STARTTLS\r\n");
    assert_int_equal(feed(&p, "220 2.0.0 go ahead\r\n"), SMTP_STEP_STARTTLS);
    assert_int_equal(smtp_proto_tls_started(&p), SMTP_STEP_CONTINUE);
    assert_int_equal(p.caps.flags, 0);
    expect_out(&p, "EHLO client.test\r\n");
    assert_int_equal(feed(&p, "250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n"),
                     SMTP_STEP_CONTINUE);
    assert_true(p.out_secret);
    expect_out(&p, "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n"); /* base64("\0user\0secret") */
    assert_false(p.out_secret);
    assert_int_equal(feed(&p, "235 2.7.0 Authentication successful\r\n"), SMTP_STEP_IDLE);
    assert_int_equal(p.phase, SMTP_PHASE_READY);
    smtp_proto_free(&p);
}

static void test_starttls_missing_or_refused(void **state)
{
    (void)state;
    smtp_proto_opts o = {"client.test", NULL, NULL, 1, 0};
    smtp_proto p;
    smtp_proto_init(&p, &o);
    smtp_proto_start(&p, 0);
    feed(&p, "220 mx\r\n");
    expect_out(&p, "EHLO client.test\r\n");
    assert_int_equal(feed(&p, EHLO_PIPE), SMTP_STEP_FAILED);
    assert_int_equal(p.fail.flags, SMTP_FLAG_TLS);
    assert_non_null(strstr(p.fail.error, "STARTTLS"));
    smtp_proto_start(&p, 0);
    feed(&p, "220 mx\r\n");
    expect_out(&p, "EHLO client.test\r\n");
    feed(&p, "250-mx\r\n250 STARTTLS\r\n");
    expect_out(&p, "STARTTLS\r\n");
    assert_int_equal(feed(&p, "454 4.7.0 TLS not available\r\n"), SMTP_STEP_FAILED);
    assert_true(p.fail.flags & SMTP_FLAG_TLS);
    assert_false(p.fail.flags & SMTP_FLAG_THROTTLED); /* 454 to STARTTLS: RFC 3207's */
    assert_int_equal(p.fail.code, 454);
    smtp_proto_free(&p);
}

static void test_auth_login_and_refusal(void **state)
{
    (void)state;
    smtp_proto_opts o = {"client.test", "user", "secret", 0, 1};
    smtp_proto p;
    smtp_proto_init(&p, &o);
    smtp_proto_start(&p, 0);
    feed(&p, "220 mx\r\n");
    expect_out(&p, "EHLO client.test\r\n");
    feed(&p, "250-mx\r\n250 AUTH=LOGIN\r\n");
    expect_out(&p, "AUTH LOGIN\r\n");
    assert_int_equal(feed(&p, "334 VXNlcm5hbWU6\r\n"), SMTP_STEP_CONTINUE);
    expect_out(&p, "dXNlcg==\r\n");
    assert_int_equal(feed(&p, "334 UGFzc3dvcmQ6\r\n"), SMTP_STEP_CONTINUE);
    expect_out(&p, "c2VjcmV0\r\n");
    assert_int_equal(feed(&p, "535 5.7.8 Authentication credentials invalid\r\n"),
                     SMTP_STEP_FAILED);
    assert_int_equal(p.fail.flags, SMTP_FLAG_AUTH);
    assert_int_equal(p.fail.code, 535);
    assert_null(strstr(p.fail.error, "secret"));
    assert_null(strstr(p.fail.error, "c2VjcmV0"));
    smtp_proto_free(&p);
}

static void test_auth_impossible(void **state)
{
    (void)state;
    smtp_proto_opts o = {"client.test", "user", "secret", 0, 0}; /* plain, not loopback */
    smtp_proto p;
    smtp_proto_init(&p, &o);
    smtp_proto_start(&p, 0);
    feed(&p, "220 mx\r\n");
    expect_out(&p, "EHLO client.test\r\n");
    assert_int_equal(feed(&p, "250-mx\r\n250 AUTH PLAIN\r\n"), SMTP_STEP_FAILED);
    assert_int_equal(p.fail.flags, SMTP_FLAG_AUTH);
    assert_int_equal(p.out.len, 0); /* the credentials were never written */
    p.opts.auth_in_clear = 1;
    smtp_proto_start(&p, 0);
    feed(&p, "220 mx\r\n");
    expect_out(&p, "EHLO client.test\r\n");
    assert_int_equal(feed(&p, "250-mx\r\n250 AUTH CRAM-MD5\r\n"), SMTP_STEP_FAILED);
    assert_non_null(strstr(p.fail.error, "neither AUTH PLAIN nor LOGIN"));
    smtp_proto_start(&p, 0);
    feed(&p, "220 mx\r\n");
    expect_out(&p, "EHLO client.test\r\n");
    assert_int_equal(feed(&p, EHLO_PLAIN), SMTP_STEP_FAILED);
    assert_non_null(strstr(p.fail.error, "no AUTH"));
    smtp_proto_free(&p);
}

/* Three messages over one warm pipelining connection: the first round writes the
 * envelope, every later round prev's content and next's envelope in one write. */
static void test_pipelined_rounds(void **state)
{
    (void)state;
    smtp_proto p;
    msg m1, m2;
    ready(&p, &plain_opts, EHLO_PIPE);
    msg_init(&m1, "from@src.test", "Subject: one\r\n\r\nbody\r\n", 2);
    msg_init(&m2, "from@src.test", "Subject: two\r\n\r\n.dot\r\n", 1);
    assert_int_equal(smtp_proto_round(&p, NULL, &m1.t), SMTP_STEP_CONTINUE);
    expect_out(&p, "MAIL FROM:<from@src.test> SIZE=22\r\nRCPT TO:<a@dest.test>\r\n"
                   "RCPT TO:<b@dest.test>\r\nDATA\r\n");
    assert_int_equal(feed(&p, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"),
                     SMTP_STEP_IDLE);
    assert_int_equal(m1.t.state, SMTP_TXN_DATA_READY);
    assert_int_equal(m1.t.n_accepted, 2);
    assert_int_equal(m1.replies[1].code, 250);
    assert_string_equal(m1.replies[1].enhanced, "2.1.5");
    assert_true(smtp_proto_in_data(&p));

    assert_int_equal(smtp_proto_round(&p, &m1.t, &m2.t), SMTP_STEP_CONTINUE);
    expect_out(&p, "Subject: one\r\n\r\nbody\r\n.\r\n"
                   "MAIL FROM:<from@src.test> SIZE=22\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
    assert_int_equal(feed(&p, "250 2.0.0 Ok: queued as 4XkQ1\r\n250 2.1.0 Ok\r\n"
                              "250 2.1.5 Ok\r\n354 go\r\n"),
                     SMTP_STEP_IDLE);
    assert_int_equal(m1.t.state, SMTP_TXN_DONE);
    assert_int_equal(m1.t.verdict, SMTP_SENT);
    assert_int_equal(m1.t.code, 250);
    assert_string_equal(m1.t.enhanced, "2.0.0");
    assert_string_equal(m1.t.reply, "250 2.0.0 Ok: queued as 4XkQ1");
    assert_string_equal(m1.t.relay_id, "4XkQ1");
    assert_string_equal(m1.t.error, "");
    assert_int_equal(m2.t.state, SMTP_TXN_DATA_READY);

    assert_int_equal(smtp_proto_round(&p, &m2.t, NULL), SMTP_STEP_CONTINUE);
    expect_out(&p, "Subject: two\r\n\r\n..dot\r\n.\r\n");
    assert_int_equal(feed(&p, "250 OK id=1abc-000123-AB\r\n"), SMTP_STEP_IDLE);
    assert_int_equal(m2.t.verdict, SMTP_SENT);
    assert_string_equal(m2.t.relay_id, "1abc-000123-AB");
    assert_false(smtp_proto_in_data(&p));
    assert_int_equal(p.messages, 2);
    smtp_proto_free(&p);
}

/* Without PIPELINING every command waits for the reply to the one before. */
static void test_one_command_at_a_time(void **state)
{
    (void)state;
    smtp_proto p;
    msg m1, m2;
    ready(&p, &plain_opts, EHLO_PLAIN);
    msg_init(&m1, "f@src.test", "x\r\n", 2);
    msg_init(&m2, "f@src.test", "y\r\n", 1);
    assert_int_equal(smtp_proto_round(&p, NULL, &m1.t), SMTP_STEP_CONTINUE);
    expect_out(&p, "MAIL FROM:<f@src.test>\r\n");
    assert_int_equal(feed(&p, "250 ok\r\n"), SMTP_STEP_CONTINUE);
    expect_out(&p, "RCPT TO:<a@dest.test>\r\n");
    feed(&p, "250 ok\r\n");
    expect_out(&p, "RCPT TO:<b@dest.test>\r\n");
    feed(&p, "550 5.1.1 no such user\r\n");
    expect_out(&p, "DATA\r\n");
    assert_int_equal(feed(&p, "354 go\r\n"), SMTP_STEP_IDLE);
    assert_int_equal(m1.t.state, SMTP_TXN_DATA_READY);
    assert_int_equal(m1.t.n_accepted, 1);
    assert_int_equal(smtp_proto_round(&p, &m1.t, &m2.t), SMTP_STEP_CONTINUE);
    expect_out(&p, "x\r\n.\r\n");
    assert_int_equal(feed(&p, "250 queued\r\n"), SMTP_STEP_CONTINUE);
    assert_int_equal(m1.t.verdict, SMTP_SENT);
    assert_string_equal(m1.t.relay_id, "");
    expect_out(&p, "MAIL FROM:<f@src.test>\r\n");
    feed(&p, "250 ok\r\n");
    expect_out(&p, "RCPT TO:<a@dest.test>\r\n");
    assert_int_equal(feed(&p, "550 no\r\n"), SMTP_STEP_IDLE);
    assert_int_equal(m2.t.state, SMTP_TXN_DONE);
    assert_int_equal(m2.t.verdict, SMTP_PERMANENT);
    assert_true(p.need_rset);
    smtp_proto_free(&p);
}

/* Line starts with '.', bare CR and LF, a missing last line end, empty content. */
static void test_dot_stuffing(void **state)
{
    (void)state;
    struct {
        const char *data, *wire;
    } cases[] = {
        {".\r\n", "..\r\n.\r\n"},
        {"a\r\n.\r\n..b\r\nc.\r\n", "a\r\n..\r\n...b\r\nc.\r\n.\r\n"},
        {"no end", "no end\r\n.\r\n"},
        {"", ".\r\n"},
        {"bare\nlf\rcr\r\n.x", "bare\r\nlf\r\ncr\r\n..x\r\n.\r\n"},
        {"a\r\n\r\n.", "a\r\n\r\n..\r\n.\r\n"},
        {"smuggle\n.\r\nMAIL", "smuggle\r\n..\r\nMAIL\r\n.\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        smtp_proto p;
        msg m;
        ready(&p, &plain_opts, EHLO_PLAIN);
        msg_init(&m, "f@src.test", cases[i].data, 1);
        m.t.state = SMTP_TXN_DATA_READY;
        assert_int_equal(smtp_proto_round(&p, &m.t, NULL), SMTP_STEP_CONTINUE);
        expect_out(&p, cases[i].wire);
        smtp_proto_free(&p);
    }
}

/* One recipient of three refused: DATA_READY for the two others, every reply kept. */
static void test_partial_refusal(void **state)
{
    (void)state;
    smtp_proto p;
    msg m;
    ready(&p, &plain_opts, EHLO_PIPE);
    msg_init(&m, "f@src.test", "x\r\n", 3);
    smtp_proto_round(&p, NULL, &m.t);
    expect_out(&p, "MAIL FROM:<f@src.test> SIZE=3\r\nRCPT TO:<a@dest.test>\r\n"
                   "RCPT TO:<b@dest.test>\r\nRCPT TO:<c@dest.test>\r\nDATA\r\n");
    assert_int_equal(feed(&p, "250 ok\r\n250 2.1.5 ok\r\n550 5.1.1 <b@dest.test>: Recipient "
                              "address rejected\r\n250 2.1.5 ok\r\n354 go\r\n"),
                     SMTP_STEP_IDLE);
    assert_int_equal(m.t.state, SMTP_TXN_DATA_READY);
    assert_int_equal(m.t.n_accepted, 2);
    assert_int_equal(m.replies[1].code, 550);
    assert_string_equal(m.replies[1].enhanced, "5.1.1");
    assert_string_equal(m.replies[1].text, "550 5.1.1 <b@dest.test>: Recipient address rejected");
    smtp_proto_round(&p, &m.t, NULL);
    expect_out(&p, "x\r\n.\r\n");
    feed(&p, "250 2.0.0 Ok: queued as ABC\r\n");
    assert_int_equal(m.t.verdict, SMTP_SENT);
    smtp_proto_free(&p);
}

/* Every recipient refused: PERMANENT when all 5xx, TEMPORARY with the 4xx otherwise;
 * the open transaction is reset before the next one (RSET opens its group). */
static void test_all_refused_then_rset(void **state)
{
    (void)state;
    smtp_proto p;
    msg m1, m2;
    ready(&p, &plain_opts, EHLO_PIPE);
    msg_init(&m1, "f@src.test", "x\r\n", 2);
    smtp_proto_round(&p, NULL, &m1.t);
    expect_out(&p, "MAIL FROM:<f@src.test> SIZE=3\r\nRCPT TO:<a@dest.test>\r\n"
                   "RCPT TO:<b@dest.test>\r\nDATA\r\n");
    assert_int_equal(feed(&p, "250 ok\r\n550 5.1.1 no a\r\n452 4.2.2 b is full\r\n"
                              "554 5.5.1 Error: no valid recipients\r\n"),
                     SMTP_STEP_IDLE);
    assert_int_equal(m1.t.state, SMTP_TXN_DONE);
    assert_int_equal(m1.t.verdict, SMTP_TEMPORARY);
    assert_int_equal(m1.t.code, 452);
    assert_string_equal(m1.t.reply, "452 4.2.2 b is full");
    assert_non_null(strstr(m1.t.error, "every recipient was refused"));
    assert_true(p.need_rset);

    msg_init(&m2, "f@src.test", "y\r\n", 1);
    smtp_proto_round(&p, NULL, &m2.t);
    expect_out(&p, "RSET\r\nMAIL FROM:<f@src.test> SIZE=3\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
    assert_int_equal(feed(&p, "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n554 no valid recipients\r\n"),
                     SMTP_STEP_IDLE);
    assert_int_equal(m2.t.verdict, SMTP_PERMANENT);
    assert_int_equal(m2.t.code, 550);
    assert_true(p.need_rset);
    smtp_proto_free(&p);
}

/* RFC 2920 section 3.1: DATA accepted although no recipient was: a lone dot, no RSET. */
static void test_354_without_recipients(void **state)
{
    (void)state;
    smtp_proto p;
    msg m1, m2;
    ready(&p, &plain_opts, EHLO_PIPE);
    msg_init(&m1, "f@src.test", "x\r\n", 1);
    smtp_proto_round(&p, NULL, &m1.t);
    expect_out(&p, "MAIL FROM:<f@src.test> SIZE=3\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
    assert_int_equal(feed(&p, "250 ok\r\n550 5.1.1 no\r\n354 go ahead anyway\r\n"),
                     SMTP_STEP_CONTINUE);
    assert_int_equal(m1.t.state, SMTP_TXN_DONE);
    assert_int_equal(m1.t.verdict, SMTP_PERMANENT);
    expect_out(&p, ".\r\n");
    assert_int_equal(feed(&p, "554 5.5.1 no valid recipients\r\n"), SMTP_STEP_IDLE);
    assert_false(p.need_rset);
    assert_false(smtp_proto_in_data(&p));
    msg_init(&m2, "f@src.test", "y\r\n", 1);
    smtp_proto_round(&p, NULL, &m2.t);
    expect_out(&p, "MAIL FROM:<f@src.test> SIZE=3\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
    smtp_proto_free(&p);
}

static void test_mail_refused(void **state)
{
    (void)state;
    smtp_proto p;
    msg m;
    ready(&p, &plain_opts, EHLO_PIPE);
    msg_init(&m, "f@src.test", "x\r\n", 2);
    smtp_proto_round(&p, NULL, &m.t);
    expect_out(&p, "MAIL FROM:<f@src.test> SIZE=3\r\nRCPT TO:<a@dest.test>\r\n"
                   "RCPT TO:<b@dest.test>\r\nDATA\r\n");
    assert_int_equal(feed(&p, "553 5.7.1 <f@src.test>: Sender address rejected\r\n"
                              "503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n503 need RCPT\r\n"),
                     SMTP_STEP_IDLE);
    assert_int_equal(m.t.verdict, SMTP_PERMANENT);
    assert_int_equal(m.t.code, 553);
    assert_non_null(strstr(m.t.error, "sender was refused"));
    assert_false(p.need_rset);
    assert_int_equal(m.replies[0].code, 503);
    smtp_proto_free(&p);

    ready(&p, &plain_opts, EHLO_PLAIN);
    smtp_proto_round(&p, NULL, &m.t);
    expect_out(&p, "MAIL FROM:<f@src.test>\r\n");
    assert_int_equal(feed(&p, "530 5.7.0 Authentication required\r\n"), SMTP_STEP_IDLE);
    assert_int_equal(m.t.verdict, SMTP_TEMPORARY);
    assert_true(m.t.flags & SMTP_FLAG_AUTH);
    assert_int_equal(m.replies[0].code, 0);
    smtp_proto_free(&p);
}

static void test_data_and_content_refused(void **state)
{
    (void)state;
    smtp_proto p;
    msg m;
    ready(&p, &plain_opts, EHLO_PIPE);
    msg_init(&m, "f@src.test", "x\r\n", 1);
    smtp_proto_round(&p, NULL, &m.t);
    expect_out(&p, "MAIL FROM:<f@src.test> SIZE=3\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
    feed(&p, "250 ok\r\n250 ok\r\n451 4.3.0 try later\r\n");
    assert_int_equal(m.t.verdict, SMTP_TEMPORARY);
    assert_int_equal(m.t.code, 451);
    assert_false(m.t.flags & SMTP_FLAG_THROTTLED); /* "try later" may be greylisting */
    assert_true(p.need_rset);
    msg_init(&m, "f@src.test", "x\r\n", 1);
    smtp_proto_round(&p, NULL, &m.t);
    expect_out(&p, "RSET\r\nMAIL FROM:<f@src.test> SIZE=3\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
    feed(&p, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    smtp_proto_round(&p, &m.t, NULL);
    expect_out(&p, "x\r\n.\r\n");
    assert_int_equal(feed(&p, "554 5.7.1 spam\r\n"), SMTP_STEP_IDLE);
    assert_int_equal(m.t.verdict, SMTP_PERMANENT);
    assert_string_equal(m.t.reply, "554 5.7.1 spam");
    assert_string_equal(m.t.relay_id, "");
    assert_false(p.need_rset);
    smtp_proto_free(&p);
}

/* A 421 in the middle of a transaction ends the connection; what it caught is settled. */
static void test_421_mid_transaction(void **state)
{
    (void)state;
    smtp_proto p;
    msg m;
    ready(&p, &plain_opts, EHLO_PIPE);
    msg_init(&m, "f@src.test", "x\r\n", 3);
    smtp_proto_round(&p, NULL, &m.t);
    expect_out(&p, "MAIL FROM:<f@src.test> SIZE=3\r\nRCPT TO:<a@dest.test>\r\n"
                   "RCPT TO:<b@dest.test>\r\nRCPT TO:<c@dest.test>\r\nDATA\r\n");
    assert_int_equal(feed(&p, "250 ok\r\n250 ok\r\n421 4.4.2 mx.test Error: timeout exceeded\r\n"),
                     SMTP_STEP_FAILED);
    assert_true(p.fail.dead);
    assert_true(p.next_heard);
    assert_int_equal(p.fail.flags, SMTP_FLAG_GREETING);
    smtp_proto_abandon(&p, 0, NULL);
    assert_int_equal(m.t.state, SMTP_TXN_DONE);
    assert_int_equal(m.t.verdict, SMTP_TEMPORARY);
    assert_true(m.t.flags & SMTP_FLAG_GREETING);
    assert_int_equal(m.t.code, 421);
    assert_int_equal(m.replies[1].code, 421);
    assert_int_equal(m.replies[2].code, 0);
    assert_int_equal(p.phase, SMTP_PHASE_CLOSED);
    smtp_proto_free(&p);
}

/* A 421 to prev's content: prev refused (TEMPORARY), next never heard: may be replayed. */
static void test_421_to_content(void **state)
{
    (void)state;
    smtp_proto p;
    msg m1, m2;
    ready(&p, &plain_opts, EHLO_PIPE);
    msg_init(&m1, "f@src.test", "x\r\n", 1);
    msg_init(&m2, "f@src.test", "y\r\n", 1);
    smtp_proto_round(&p, NULL, &m1.t);
    expect_out(&p, "MAIL FROM:<f@src.test> SIZE=3\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
    feed(&p, "250 ok\r\n250 ok\r\n354 go\r\n");
    smtp_proto_round(&p, &m1.t, &m2.t);
    smtp_proto_written(&p, p.out.len);
    assert_int_equal(feed(&p, "421 4.3.2 shutting down\r\n"), SMTP_STEP_FAILED);
    assert_int_equal(m1.t.verdict, SMTP_TEMPORARY);
    assert_int_equal(m1.t.code, 421);
    assert_true(m1.t.flags & SMTP_FLAG_GREETING);
    assert_true(p.fail.dead);
    assert_false(p.next_heard);
    smtp_proto_abandon(&p, 0, &m2.t);
    assert_int_equal(m2.t.state, SMTP_TXN_NEW);
    assert_int_equal(m2.t.code, 0);
    smtp_proto_free(&p);
}

/* The connection dies after prev's content went out: its outcome is unknown; a content
 * that did not go out whole is simply not sent. Aborted: ABORTED, except the unknown. */
static void test_abandon_rules(void **state)
{
    (void)state;
    for (int sent = 0; sent < 2; sent++) {
        for (int aborted = 0; aborted < 2; aborted++) {
            smtp_proto p;
            msg m1, m2;
            ready(&p, &plain_opts, EHLO_PIPE);
            msg_init(&m1, "f@src.test", "x\r\n", 1);
            msg_init(&m2, "f@src.test", "y\r\n", 1);
            smtp_proto_round(&p, NULL, &m1.t);
            smtp_proto_written(&p, p.out.len);
            feed(&p, "250 ok\r\n250 ok\r\n354 go\r\n");
            smtp_proto_round(&p, &m1.t, &m2.t);
            smtp_proto_written(&p, sent ? p.out.len : 3);
            smtp_proto_fail(&p, SMTP_FLAG_TIMEOUT, 0, "timed out");
            smtp_proto_abandon(&p, aborted, NULL);
            assert_int_equal(m1.t.state, SMTP_TXN_DONE);
            assert_int_equal(m2.t.state, SMTP_TXN_DONE);
            assert_int_equal(m1.t.verdict, aborted ? SMTP_ABORTED : SMTP_TEMPORARY);
            assert_int_equal(m2.t.verdict, aborted ? SMTP_ABORTED : SMTP_TEMPORARY);
            assert_int_equal(strstr(m1.t.error, "outcome unknown") != NULL, sent);
            assert_true(m1.t.flags & SMTP_FLAG_TIMEOUT);
            assert_int_equal(m1.t.code, 0);
            smtp_proto_free(&p);
        }
    }
}

static void test_protocol_errors(void **state)
{
    (void)state;
    const char *wrong[] = {
        "354 go\r\n",                     /* 354 to MAIL */
        "250 ok\r\n354 go\r\n",           /* 354 to RCPT */
        "250 ok\r\n250 ok\r\n250 ok\r\n", /* 250 to DATA */
        "334 what\r\n",                   /* 334 outside AUTH */
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        smtp_proto p;
        msg m;
        ready(&p, &plain_opts, EHLO_PIPE);
        msg_init(&m, "f@src.test", "x\r\n", 1);
        smtp_proto_round(&p, NULL, &m.t);
        smtp_proto_written(&p, p.out.len);
        assert_int_equal(feed(&p, wrong[i]), SMTP_STEP_FAILED);
        assert_int_equal(p.fail.flags, SMTP_FLAG_PROTOCOL);
        assert_false(p.fail.dead);
        smtp_proto_abandon(&p, 0, NULL);
        assert_int_equal(m.t.verdict, SMTP_TEMPORARY);
        assert_true(m.t.flags & SMTP_FLAG_PROTOCOL);
        smtp_proto_free(&p);
    }
    smtp_proto p;
    ready(&p, &plain_opts, EHLO_PIPE);
    assert_int_equal(feed(&p, "250 extra\r\n"), SMTP_STEP_FAILED); /* more replies */
    assert_int_equal(p.fail.flags, SMTP_FLAG_PROTOCOL);
    smtp_proto_free(&p);
    smtp_proto_init(&p, &plain_opts);
    smtp_proto_start(&p, 0);
    assert_int_equal(feed(&p, "354 hello\r\n"), SMTP_STEP_FAILED); /* 354 as greeting */
    assert_int_equal(p.fail.flags, SMTP_FLAG_PROTOCOL);
    smtp_proto_free(&p);
}

/* A reply to prev's content that no content can get (a 354): protocol error, and prev,
 * whose content went out, is settled with its outcome unknown. */
static void test_3xx_to_content(void **state)
{
    (void)state;
    smtp_proto p;
    msg m1, m2;
    ready(&p, &plain_opts, EHLO_PLAIN);
    msg_init(&m1, "f@src.test", "x\r\n", 1);
    msg_init(&m2, "f@src.test", "y\r\n", 1);
    smtp_proto_round(&p, NULL, &m1.t);
    expect_out(&p, "MAIL FROM:<f@src.test>\r\n");
    feed(&p, "250 ok\r\n");
    expect_out(&p, "RCPT TO:<a@dest.test>\r\n");
    feed(&p, "250 ok\r\n");
    expect_out(&p, "DATA\r\n");
    feed(&p, "354 go\r\n");
    smtp_proto_round(&p, &m1.t, &m2.t);
    expect_out(&p, "x\r\n.\r\n");
    assert_int_equal(feed(&p, "354 again\r\n"), SMTP_STEP_FAILED);
    assert_int_equal(p.fail.flags, SMTP_FLAG_PROTOCOL);
    smtp_proto_abandon(&p, 0, NULL);
    assert_int_equal(m1.t.state, SMTP_TXN_DONE);
    assert_non_null(strstr(m1.t.error, "outcome unknown"));
    assert_int_equal(m2.t.state, SMTP_TXN_DONE);
    assert_int_equal(m2.t.verdict, SMTP_TEMPORARY);
    assert_null(strstr(m2.t.error, "outcome unknown"));
    smtp_proto_free(&p);
}

static void test_size_and_smtputf8(void **state)
{
    (void)state;
    static char big[1001];
    memset(big, 'x', sizeof big - 1);
    smtp_proto p;
    msg m;
    ready(&p, &plain_opts, EHLO_PIPE);  /* SIZE 1000, no SMTPUTF8 */
    msg_init(&m, "f@src.test", big, 1); /* exactly the limit */
    assert_int_equal(smtp_proto_round(&p, NULL, &m.t), SMTP_STEP_CONTINUE);
    expect_out(&p, "MAIL FROM:<f@src.test> SIZE=1000\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
    feed(&p, "250 ok\r\n250 ok\r\n354 go\r\n");
    smtp_proto_free(&p);

    ready(&p, &plain_opts, EHLO_PIPE);
    msg_init(&m, "f@src.test", "x\r\n", 1);
    m.rcpt[0] = "\xe7\x8e\x8b@dest.test";
    assert_int_equal(smtp_proto_round(&p, NULL, &m.t), SMTP_STEP_IDLE);
    assert_int_equal(m.t.verdict, SMTP_PERMANENT);
    assert_non_null(strstr(m.t.error, "SMTPUTF8"));
    smtp_proto_free(&p);

    ready(&p, &plain_opts, "250-mx\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n");
    msg_init(&m, "f@src.test", "x\r\n", 1);
    m.t.smtputf8 = 1;
    smtp_proto_round(&p, NULL, &m.t);
    expect_out(&p, "MAIL FROM:<f@src.test> SMTPUTF8\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
    smtp_proto_free(&p);
}

static void test_size_message(void **state)
{
    (void)state;
    static char big[1201];
    memset(big, 'x', sizeof big - 1);
    smtp_proto p;
    msg m;
    ready(&p, &plain_opts, EHLO_PIPE);
    msg_init(&m, "f@src.test", big, 1);
    smtp_proto_round(&p, NULL, &m.t);
    assert_string_equal(m.t.error, "message size 1200 exceeds the server's limit 1000");
    assert_int_equal(m.t.code, 0);
    smtp_proto_free(&p);
}

/* CR, LF or any control character in an address: refused, nothing written. */
static void test_envelope_injection(void **state)
{
    (void)state;
    const char *bad[] = {"a@b.test\r\nRCPT TO:<evil@x>", "a@b.test\n", "a\r@b", "a\x01@b", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        smtp_proto p;
        msg m;
        ready(&p, &plain_opts, EHLO_PIPE);
        msg_init(&m, "f@src.test", "x\r\n", 2);
        m.rcpt[1] = bad[i];
        assert_int_equal(smtp_proto_round(&p, NULL, &m.t), SMTP_STEP_IDLE);
        expect_out(&p, "");
        assert_int_equal(m.t.verdict, SMTP_PERMANENT);
        msg_init(&m, bad[i][0] ? bad[i] : "f\r\n", "x\r\n", 1);
        assert_int_equal(smtp_proto_round(&p, NULL, &m.t), SMTP_STEP_IDLE);
        expect_out(&p, "");
        assert_int_equal(m.t.verdict, SMTP_PERMANENT);
        smtp_proto_free(&p);
    }
    smtp_proto p;
    msg m;
    ready(&p, &plain_opts, EHLO_PIPE);
    msg_init(&m, "", "x\r\n", 1); /* the null sender is fine */
    smtp_proto_round(&p, NULL, &m.t);
    expect_out(&p, "MAIL FROM:<> SIZE=3\r\nRCPT TO:<a@dest.test>\r\nDATA\r\n");
    smtp_proto_free(&p);
    ready(&p, &plain_opts, EHLO_PIPE);
    msg_init(&m, "f@src.test", "x\r\n", 0);
    assert_int_equal(smtp_proto_round(&p, NULL, &m.t), SMTP_STEP_IDLE);
    assert_string_equal(m.t.error, "no recipients (or no rcpt_replies for them)");
    smtp_proto_free(&p);
}

static void test_relay_id(void **state)
{
    (void)state;
    struct {
        const char *reply, *id;
    } cases[] = {
        {"250 2.0.0 Ok: queued as 4XkQ", "4XkQ"},
        {"250 2.0.0 Ok: queued as 4Y1bcd2Xy3zQ7", "4Y1bcd2Xy3zQ7"},
        {"250 OK id=1abc-000123-AB", "1abc-000123-AB"},
        {"250 2.0.0 OK  1712345678 d9443c01a7336-1e8f4e1c6a4si123456pla.123 - gsmtp",
         "d9443c01a7336-1e8f4e1c6a4si123456pla.123"},
        {"250 Ok 0100018c5d1a2b3c-12345678-aaaa-bbbb-cccc-1234567890ab-000000",
         "0100018c5d1a2b3c-12345678-aaaa-bbbb-cccc-1234567890ab-000000"},
        {"250 2.6.0 <abc@example.com> [InternalId=123] Queued mail for delivery", ""},
        {"250 Ok", ""},
        {"250 2.0.0 Ok", ""},
        {"250 2.0.0", ""},
        {"250 Message accepted <1234@mx.example>.", "1234@mx.example"},
        {"250 Queued as ABC123.", "ABC123"},
        {"250", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char id[SMTP_RELAY_ID_MAX];
        smtp_relay_id(cases[i].reply, id, sizeof id);
        assert_string_equal(id, cases[i].id);
    }
}

static void test_throttle(void **state)
{
    (void)state;
    assert_false(smtp_reply_is_throttle(421, NULL));
    assert_false(smtp_reply_is_throttle(451, "4.3.0 local error, try again later"));
    assert_true(smtp_reply_is_throttle(454, ""));
    assert_true(smtp_reply_is_throttle(454, "Throttling failure: Maximum sending rate exceeded"));
    assert_true(smtp_reply_is_throttle(421, "4.7.28 Our system has detected an unusual rate"));
    assert_true(smtp_reply_is_throttle(450, "4.7.1 Rate limit exceeded"));
    assert_true(smtp_reply_is_throttle(451, "4.7.1 Too many messages from you"));
    assert_true(smtp_reply_is_throttle(452, "throttled, slow down"));
    assert_true(smtp_reply_is_throttle(450, "ratelimited"));
    assert_true(smtp_reply_is_throttle(451, "4.5.0 daily quota reached"));
    assert_true(smtp_reply_is_throttle(421, "connection limit exceeded"));
    assert_false(smtp_reply_is_throttle(550, "5.7.1 Too many messages from you"));
    assert_false(smtp_reply_is_throttle(554, "5.4.5 sending rate exceeded"));
    assert_false(smtp_reply_is_throttle(550, "5.7.1 message generated by a bot"));
    assert_false(smtp_reply_is_throttle(250, "rate ok"));
    assert_false(smtp_reply_is_throttle(550, "5.1.1 no such user"));
    assert_false(smtp_reply_is_throttle(450, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_plain),
        cmocka_unit_test(test_helo_fallback),
        cmocka_unit_test(test_greeting_and_ehlo_refused),
        cmocka_unit_test(test_starttls_and_auth_plain),
        cmocka_unit_test(test_starttls_missing_or_refused),
        cmocka_unit_test(test_auth_login_and_refusal),
        cmocka_unit_test(test_auth_impossible),
        cmocka_unit_test(test_pipelined_rounds),
        cmocka_unit_test(test_one_command_at_a_time),
        cmocka_unit_test(test_dot_stuffing),
        cmocka_unit_test(test_partial_refusal),
        cmocka_unit_test(test_all_refused_then_rset),
        cmocka_unit_test(test_354_without_recipients),
        cmocka_unit_test(test_mail_refused),
        cmocka_unit_test(test_data_and_content_refused),
        cmocka_unit_test(test_421_mid_transaction),
        cmocka_unit_test(test_421_to_content),
        cmocka_unit_test(test_abandon_rules),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_3xx_to_content),
        cmocka_unit_test(test_size_and_smtputf8),
        cmocka_unit_test(test_size_message),
        cmocka_unit_test(test_envelope_injection),
        cmocka_unit_test(test_relay_id),
        cmocka_unit_test(test_throttle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
