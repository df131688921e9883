/*
 * Unit tests of consumer/smtp/endpoint.c, session.c and transport.c: URL parsing and the
 * loopback test, smtp_config_check()'s refusals, sessions that are made and freed
 * without I/O, and short conversations with a scripted server thread on a loopback
 * port: a message sent with one write per round, a refused port, a server that never
 * greets (timeout), the abort flag seen within its 100 ms slice, an EOF on a reused
 * connection replaced at once, unsolicited data on an idle connection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "endpoint.h"
#include "smtp.h"
#include "transport.h"

static void test_url_parse(void **state)
{
    (void)state;
    smtp_url u;
    assert_int_equal(smtp_url_parse("smtp://mail.example.com", &u, NULL), 0);
    assert_string_equal(u.host, "mail.example.com");
    assert_string_equal(u.port, "25");
    assert_false(u.implicit_tls);
    assert_false(u.host_is_ip);
    assert_int_equal(smtp_url_parse("SMTPS://10.0.0.1:4650/", &u, NULL), 0);
    assert_true(u.implicit_tls);
    assert_true(u.host_is_ip);
    assert_string_equal(u.port, "4650");
    assert_int_equal(smtp_url_parse("smtps://[2001:db8::1]", &u, NULL), 0);
    assert_string_equal(u.host, "2001:db8::1");
    assert_string_equal(u.port, "465");
    assert_true(u.host_is_ip);
    assert_int_equal(smtp_url_parse("smtp://[::1]:2525", &u, NULL), 0);
    assert_string_equal(u.port, "2525");
    const char *bad[] = {"http://x",          "smtp://",          "smtp://:25",
                         "smtp://u:p@host",   "smtp://u@host:25", "smtp://host:0",
                         "smtp://host:65536", "smtp://host:2x",   "smtp://host/path",
                         "smtp://host?q",     "smtp://[::1",      "smtp://[zz]:25",
                         "smtp://ho st",      "smtp://host:",     NULL};
    for (size_t i = 0; bad[i]; i++) {
        mr_error err = MR_ERROR_INIT;
        assert_int_equal(smtp_url_parse(bad[i], &u, &err), -1);
        assert_int_equal(err.rc, MAILROOM_EINVAL);
    }
    mr_error err = MR_ERROR_INIT;
    smtp_url_parse("smtp://user:hunter2@relay.example.com", &u, &err);
    assert_null(strstr(err.msg, "hunter2"));
}

static void test_loopback(void **state)
{
    (void)state;
    assert_true(smtp_url_is_loopback("smtp://127.0.0.1:25"));
    assert_true(smtp_url_is_loopback("smtp://127.9.8.7"));
    assert_true(smtp_url_is_loopback("smtp://[::1]:2525"));
    assert_true(smtp_url_is_loopback("smtp://[::ffff:127.0.0.1]"));
    assert_true(smtp_url_is_loopback("smtp://LOCALHOST:25"));
    assert_false(smtp_url_is_loopback("smtp://128.0.0.1"));
    assert_false(smtp_url_is_loopback("smtp://localhost.example.com"));
    assert_false(smtp_url_is_loopback("smtp://[::2]"));
    assert_false(smtp_url_is_loopback("smtp://user@127.0.0.1"));
    assert_false(smtp_url_is_loopback("nonsense"));
}

static void test_config_check(void **state)
{
    (void)state;
    smtp_config ok = {
        .url = "smtp://relay.example.com:587", .tls_required = 1, .user = "u", .password = "p"};
    assert_int_equal(smtp_config_check(&ok, NULL), 0);
    smtp_config c = ok;
    c.tls_required = 0; /* AUTH in clear to a remote host */
    mr_error err = MR_ERROR_INIT;
    assert_int_equal(smtp_config_check(&c, &err), -1);
    assert_non_null(strstr(err.msg, "TLS"));
    c.url = "smtp://127.0.0.1:2525"; /* loopback: allowed */
    assert_int_equal(smtp_config_check(&c, NULL), 0);
    c.url = "smtps://relay.example.com"; /* implicit TLS */
    assert_int_equal(smtp_config_check(&c, NULL), 0);
    c = ok;
    c.password = NULL;
    assert_int_equal(smtp_config_check(&c, NULL), -1);
    c = ok;
    c.user = NULL;
    assert_int_equal(smtp_config_check(&c, NULL), -1);
    c = ok;
    c.ehlo_name = "bad name";
    assert_int_equal(smtp_config_check(&c, NULL), -1);
    c.ehlo_name = "[192.0.2.1]";
    assert_int_equal(smtp_config_check(&c, NULL), 0);
    c = ok;
    c.command_timeout_ms = -1;
    assert_int_equal(smtp_config_check(&c, NULL), -1);
    c = ok;
    c.url = "smtp://u:secret@relay.example.com";
    err = (mr_error)MR_ERROR_INIT;
    assert_int_equal(smtp_config_check(&c, &err), -1);
    assert_null(strstr(err.msg, "secret"));
    assert_int_equal(smtp_config_check(NULL, NULL), -1);
}

static void test_session_without_io(void **state)
{
    (void)state;
    smtp_config cfg = {.url = "smtp://127.0.0.1:1"};
    mr_error err = MR_ERROR_INIT;
    smtp_session *s = smtp_session_new(&cfg, &err);
    assert_non_null(s);
    smtp_session_free(s);
    smtp_session_free(NULL);
    cfg.url = "smtps://127.0.0.1:1";
    cfg.ca_file = "/nonexistent/ca.pem";
    assert_null(smtp_session_new(&cfg, &err));
    assert_non_null(strstr(err.msg, "/nonexistent/ca.pem"));
    cfg.ca_file = NULL; /* the system store, shared by two sessions */
    smtp_session *a = smtp_session_new(&cfg, NULL), *b = smtp_session_new(&cfg, NULL);
    assert_non_null(a);
    assert_non_null(b);
    smtp_session_free(a);
    smtp_session_free(b);
    cfg.url = "ftp://x";
    assert_null(smtp_session_new(&cfg, &err));
}

/* ---- a scripted server on a loopback port -------------------------------------- */

/* One connection's script: at each step, read until the text received so far ends with
 * until[i] (NULL: read nothing), then write reply[i] (NULL: nothing). After the last
 * step the connection is closed at once (hang_up) or read until the client closes. */
typedef struct conn_script {
    const char *const *until;
    const char *const *reply;
    size_t steps;
    int hang_up;
    long pause_ms; /* before the last step's reply */
} conn_script;

typedef struct server {
    int listener;
    int port;
    const conn_script *conns; /* served one after the other */
    int n_conns;
    char seen[8192]; /* everything the clients wrote */
    size_t seen_len;
    int reads; /* read calls that returned data */
    pthread_t thread;
} server;

/* Reads until the text received in this step ends with until (NULL: nothing to read);
 * -1 on EOF. */
static int read_until(server *sv, int fd, const char *until)
{
    size_t n = until ? strlen(until) : 0, mark = sv->seen_len;
    while (until &&
           (sv->seen_len - mark < n || memcmp(sv->seen + sv->seen_len - n, until, n) != 0)) {
        ssize_t got = read(fd, sv->seen + sv->seen_len, sizeof sv->seen - 1 - sv->seen_len);
        if (got <= 0)
            return -1;
        sv->seen_len += (size_t)got;
        sv->reads++;
    }
    return 0;
}

static void serve(server *sv, int fd, const conn_script *c)
{
    for (size_t i = 0; i < c->steps; i++) {
        if (read_until(sv, fd, c->until[i]) != 0)
            return;
        if (i + 1 == c->steps && c->pause_ms) {
            struct timespec ts = {0, c->pause_ms * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (c->reply[i] && write(fd, c->reply[i], strlen(c->reply[i])) < 0)
            return;
    }
    if (c->hang_up)
        return;
    ssize_t got;
    while ((got = read(fd, sv->seen + sv->seen_len, sizeof sv->seen - 1 - sv->seen_len)) > 0)
        sv->seen_len += (size_t)got;
}

static void *server_main(void *arg)
{
    server *sv = arg;
    for (int c = 0; c < sv->n_conns; c++) {
        int fd = accept(sv->listener, NULL, NULL);
        if (fd < 0)
            break;
        serve(sv, fd, &sv->conns[c]);
        close(fd);
    }
    return NULL;
}

/* Listens on a free loopback port; serves conns from server_run() on. */
static void server_start(server *sv, const conn_script *conns, int n_conns)
{
    memset(sv, 0, sizeof *sv);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    sv->listener = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(sv->listener >= 0);
    assert_int_equal(bind(sv->listener, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(sv->listener, 4), 0);
    assert_int_equal(getsockname(sv->listener, (struct sockaddr *)&a, &len), 0);
    sv->port = ntohs(a.sin_port);
    sv->conns = conns;
    sv->n_conns = n_conns;
    assert_int_equal(pthread_create(&sv->thread, NULL, server_main, sv), 0);
}

static void server_stop(server *sv)
{
    pthread_join(sv->thread, NULL);
    close(sv->listener);
    sv->seen[sv->seen_len] = '\0';
}

typedef struct msg {
    smtp_txn t;
    const char *rcpt[2];
    smtp_rcpt_reply replies[2];
} msg;

static void msg_init(msg *m, const char *data)
{
    memset(m, 0, sizeof *m);
    m->rcpt[0] = "to@dest.test";
    m->t.from = "from@src.test";
    m->t.rcpt = m->rcpt;
    m->t.n_rcpt = 1;
    m->t.data = data;
    m->t.len = strlen(data);
    m->t.rcpt_replies = m->replies;
}

static char url_buf[64];

static const char *url_of(const server *sv)
{
    snprintf(url_buf, sizeof url_buf, "smtp://127.0.0.1:%d", sv->port);
    return url_buf;
}

#define EHLO_REPLY "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
#define ENVELOPE "MAIL FROM:<from@src.test>\r\nRCPT TO:<to@dest.test>\r\nDATA\r\n"
#define ACCEPT_ENVELOPE "250 ok\r\n250 ok\r\n354 go\r\n"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Two messages, one write per round, QUIT at the end (not waited for). */
static void test_send_two_pipelined(void **state)
{
    (void)state;
    static const char *const until[] = {NULL, "\r\n", "DATA\r\n", "DATA\r\n", ".\r\n"};
    static const char *const reply[] = {"220 mx.test ESMTP\r\n", EHLO_REPLY, ACCEPT_ENVELOPE,
                                        ("250 2.0.0 Ok: queued as AAA\r\n" ACCEPT_ENVELOPE),
                                        "250 2.0.0 Ok: queued as BBB\r\n"};
    static const conn_script conns[] = {{until, reply, 5, 0, 0}};
    server sv;
    server_start(&sv, conns, 1);
    smtp_config cfg = {.url = url_of(&sv), .ehlo_name = "client.test"};
    smtp_session *s = smtp_session_new(&cfg, NULL);
    msg m1, m2;
    msg_init(&m1, "one\r\n");
    msg_init(&m2, ".two\r\n");
    smtp_exchange(s, NULL, &m1.t);
    assert_int_equal(m1.t.state, SMTP_TXN_DATA_READY);
    smtp_exchange(s, &m1.t, &m2.t);
    assert_int_equal(m1.t.verdict, SMTP_SENT);
    assert_string_equal(m1.t.relay_id, "AAA");
    assert_int_equal(m2.t.state, SMTP_TXN_DATA_READY);
    smtp_exchange(s, &m2.t, NULL);
    assert_int_equal(m2.t.verdict, SMTP_SENT);
    assert_string_equal(m2.t.relay_id, "BBB");
    smtp_session_free(s);
    server_stop(&sv);
    assert_string_equal(sv.seen, "EHLO client.test\r\n" ENVELOPE "one\r\n.\r\n" ENVELOPE
                                 "..two\r\n.\r\nQUIT\r\n");
    assert_int_equal(sv.reads, 4); /* EHLO, envelope, content + envelope, content */
}

static void test_refused_port(void **state)
{
    (void)state;
    server sv;
    server_start(&sv, NULL, 0);
    server_stop(&sv); /* nobody listens there now */
    smtp_config cfg = {.url = url_of(&sv), .ehlo_name = "client.test"};
    smtp_session *s = smtp_session_new(&cfg, NULL);
    msg m;
    msg_init(&m, "x\r\n");
    smtp_exchange(s, NULL, &m.t);
    assert_int_equal(m.t.state, SMTP_TXN_DONE);
    assert_int_equal(m.t.verdict, SMTP_TEMPORARY);
    assert_int_equal(m.t.flags, SMTP_FLAG_CONNECT);
    assert_int_equal(m.t.code, 0);
    assert_non_null(strstr(m.t.error, "refused"));
    smtp_session_free(s);
}

static void test_greeting_timeout(void **state)
{
    (void)state;
    static const conn_script conns[] = {{NULL, NULL, 0, 0, 0}};
    server sv;
    server_start(&sv, conns, 1);
    smtp_config cfg = {.url = url_of(&sv), .ehlo_name = "c.test", .connect_timeout_ms = 300};
    smtp_session *s = smtp_session_new(&cfg, NULL);
    msg m;
    msg_init(&m, "x\r\n");
    int64_t t0 = smtp_now_ms();
    smtp_exchange(s, NULL, &m.t);
    int64_t took = smtp_now_ms() - t0;
    assert_true(took >= 290 && took < 1500);
    assert_int_equal(m.t.verdict, SMTP_TEMPORARY);
    assert_int_equal(m.t.flags, SMTP_FLAG_TIMEOUT);
    assert_non_null(strstr(m.t.error, "greeting"));
    smtp_session_free(s);
    server_stop(&sv);
}

static atomic_int abort_flag;

static void *set_abort_later(void *arg)
{
    (void)arg;
    sleep_ms(150);
    atomic_store(&abort_flag, 1);
    return NULL;
}

/* The abort flag is seen within one 100 ms slice; the txn is ABORTED. */
static void test_abort(void **state)
{
    (void)state;
    static const char *const until[] = {NULL, "\r\n"};
    static const char *const reply[] = {"220 mx.test\r\n", EHLO_REPLY};
    static const conn_script conns[] = {{until, reply, 2, 0, 0}};
    server sv;
    server_start(&sv, conns, 1);
    atomic_store(&abort_flag, 0);
    smtp_config cfg = {.url = url_of(&sv), .ehlo_name = "c.test", .abort = &abort_flag};
    smtp_session *s = smtp_session_new(&cfg, NULL);
    msg m;
    msg_init(&m, "x\r\n");
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, set_abort_later, NULL), 0);
    int64_t t0 = smtp_now_ms();
    smtp_exchange(s, NULL, &m.t); /* the server never answers the envelope */
    int64_t took = smtp_now_ms() - t0;
    pthread_join(t, NULL);
    assert_true(took >= 140 && took < 400);
    assert_int_equal(m.t.verdict, SMTP_ABORTED);
    msg_init(&m, "x\r\n");
    smtp_exchange(s, NULL, &m.t); /* still set: no I/O at all */
    assert_int_equal(m.t.verdict, SMTP_ABORTED);
    assert_string_equal(m.t.error, "aborted by shutdown");
    smtp_session_free(s);
    server_stop(&sv);
}

/* A while after a message the server closes the connection, or says 421, or sends
 * something nobody asked for: the next message goes out on a new connection. */
static void test_idle_connection_replaced(void **state)
{
    (void)state;
    static const char *const until1[] = {NULL, "\r\n", "DATA\r\n", ".\r\n", NULL};
    static const char *const until2[] = {NULL, "\r\n", "DATA\r\n"};
    static const char *const reply2[] = {"220 mx.test\r\n", EHLO_REPLY, ACCEPT_ENVELOPE};
    static const char *const tails[] = {NULL, "421 4.4.2 mx.test Error: timeout exceeded\r\n",
                                        "250 surprise\r\n"};
    for (int i = 0; i < 3; i++) {
        const char *reply1[] = {"220 mx.test\r\n", EHLO_REPLY, ACCEPT_ENVELOPE,
                                "250 2.0.0 Ok: queued as A\r\n", tails[i]};
        conn_script conns[] = {{until1, reply1, 5, i < 2, 50}, {until2, reply2, 3, 0, 0}};
        server sv;
        server_start(&sv, conns, 2);
        smtp_config cfg = {.url = url_of(&sv), .ehlo_name = "c.test"};
        smtp_session *s = smtp_session_new(&cfg, NULL);
        msg m1, m2;
        msg_init(&m1, "one\r\n");
        msg_init(&m2, "two\r\n");
        smtp_exchange(s, NULL, &m1.t);
        smtp_exchange(s, &m1.t, NULL);
        assert_int_equal(m1.t.verdict, SMTP_SENT);
        sleep_ms(150); /* the server has spoken or closed by now */
        smtp_exchange(s, NULL, &m2.t);
        assert_int_equal(m2.t.state, SMTP_TXN_DATA_READY);
        smtp_txn_cancel(s, &m2.t); /* closes: the server reads EOF inside DATA */
        assert_int_equal(m2.t.state, SMTP_TXN_DONE);
        assert_int_equal(m2.t.verdict, SMTP_TEMPORARY);
        smtp_session_free(s);
        server_stop(&sv);
        assert_null(strstr(sv.seen, "QUIT"));
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_session_without_io),
        cmocka_unit_test(test_send_two_pipelined),
        cmocka_unit_test(test_refused_port),
        cmocka_unit_test(test_greeting_timeout),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_idle_connection_replaced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
