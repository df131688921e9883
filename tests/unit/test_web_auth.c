/*
 * test_web_auth.c — mailroom-web's rules on who may read and act, without a server:
 * the listen address (loopback or not, literals only), the hosts and origins a request
 * may name, the token file and its comparison, and web_guard()'s order of refusals
 * (web/listen.c, web/auth.c).
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "web.h"

#define TOKEN "0123456789abcdef-the-token"

/* Writes text to a new temp file of the given mode; the path goes into path. */
static void temp_file(char path[64], const char *text, mode_t mode)
{
    snprintf(path, 64, "/tmp/test_web_auth.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_listen_addresses(void **state)
{
    (void)state;
    web_listen l;
    char err[WEB_ERR_MAX];
    assert_int_equal(web_listen_parse("127.0.0.1:8025", &l, err), 0);
    assert_true(l.loopback);
    assert_int_equal(l.port, 8025);
    assert_int_equal(web_listen_parse("127.8.9.10:1", &l, err), 0);
    assert_true(l.loopback);
    assert_int_equal(web_listen_parse("[::1]:8025", &l, err), 0);
    assert_true(l.loopback && l.ipv6);
    assert_int_equal(web_listen_parse("localhost:0", &l, err), 0);
    assert_true(l.loopback && !l.ipv6);
    assert_int_equal(web_listen_parse("0.0.0.0:8025", &l, err), 0);
    assert_false(l.loopback);
    assert_int_equal(web_listen_parse("[::]:8025", &l, err), 0);
    assert_false(l.loopback);
    assert_int_equal(web_listen_parse("192.168.1.2:80", &l, err), 0);
    assert_false(l.loopback);
    const char *bad[] = {"8025",         "127.0.0.1",       "127.0.0.1:",     "127.0.0.1:65536",
                         "127.0.0.1:-1", "127.0.0.1:80x",   "example.com:80", "::1:8025",
                         "[::1:8025",    "127.0.0.1 :8025", ":8025",          "[]:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(web_listen_parse(bad[i], &l, err), -1);
}

static void test_hosts_and_origins(void **state)
{
    (void)state;
    web_listen l;
    char err[WEB_ERR_MAX];
    assert_int_equal(web_listen_parse("127.0.0.1:8025", &l, err), 0);
    assert_int_equal(web_listen_names(&l, NULL, err), 0);
    assert_true(web_host_allowed(&l, "127.0.0.1:8025"));
    assert_true(web_host_allowed(&l, "LOCALHOST:8025"));
    assert_false(web_host_allowed(&l, "127.0.0.1:8026"));
    assert_false(web_host_allowed(&l, "evil.example:8025"));
    assert_false(web_host_allowed(&l, "127.0.0.1"));
    assert_false(web_host_allowed(&l, NULL));
    assert_true(web_origin_allowed(&l, "http://127.0.0.1:8025"));
    assert_true(web_origin_allowed(&l, "http://localhost:8025"));
    assert_false(web_origin_allowed(&l, "https://127.0.0.1:8025"));
    assert_false(web_origin_allowed(&l, "http://127.0.0.1:8025.evil.example"));
    assert_false(web_origin_allowed(&l, "null"));

    assert_int_equal(web_listen_names(&l, "https://mail.example.com", err), 0);
    assert_true(web_host_allowed(&l, "mail.example.com"));
    assert_true(web_origin_allowed(&l, "https://mail.example.com"));
    assert_false(web_origin_allowed(&l, "http://mail.example.com"));
    const char *bad[] = {
        "mail.example.com",       "https://mail.example.com/",     "https://",
        "ftp://mail.example.com", "https://user@mail.example.com", "https://mail.example.com/x?y"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(web_listen_names(&l, bad[i], err), -1);
}

static void test_token_file(void **state)
{
    (void)state;
    web_token t;
    char err[WEB_ERR_MAX], path[64];
    temp_file(path, TOKEN "\n", 0600);
    assert_int_equal(web_token_load(&t, path, err), 0);
    assert_true(t.set);
    unlink(path);
    temp_file(path, TOKEN "\n", 0640);
    assert_int_equal(web_token_load(&t, path, err), -1);
    assert_non_null(strstr(err, "chmod 600"));
    assert_null(strstr(err, TOKEN));
    unlink(path);
    temp_file(path, "too-short\n", 0600);
    assert_int_equal(web_token_load(&t, path, err), -1);
    assert_false(t.set);
    unlink(path);
    assert_int_equal(web_token_load(&t, "/nonexistent/token", err), -1);
}

static void test_token_check(void **state)
{
    (void)state;
    web_token t;
    char err[WEB_ERR_MAX], path[64];
    temp_file(path, TOKEN "\r\nsecond line ignored\n", 0600);
    assert_int_equal(web_token_load(&t, path, err), 0);
    unlink(path);
    assert_true(web_token_check(&t, "Bearer " TOKEN));
    assert_true(web_token_check(&t, "bearer " TOKEN));
    assert_false(web_token_check(&t, TOKEN));
    assert_false(web_token_check(&t, "Bearer " TOKEN "x"));
    assert_false(web_token_check(&t, "Bearer 0123456789abcdef-the-toke"));
    assert_false(web_token_check(&t, "Bearer  " TOKEN));
    assert_false(web_token_check(&t, "Basic " TOKEN));
    assert_false(web_token_check(&t, NULL));
    web_token none = {0};
    assert_false(web_token_check(&none, "Bearer " TOKEN));
}

/* An app on 127.0.0.1:8025 with the token TOKEN. */
static void app_with_token(web_app *app)
{
    char err[WEB_ERR_MAX], path[64];
    memset(app, 0, sizeof *app);
    assert_int_equal(web_listen_parse("127.0.0.1:8025", &app->listen, err), 0);
    assert_int_equal(web_listen_names(&app->listen, NULL, err), 0);
    temp_file(path, TOKEN "\n", 0600);
    assert_int_equal(web_token_load(&app->token, path, err), 0);
    unlink(path);
}

static void test_guard(void **state)
{
    (void)state;
    web_app app;
    web_refusal why;
    app_with_token(&app);
    const web_headers good = {
        "127.0.0.1:8025",  "http://127.0.0.1:8025", "same-origin", "Bearer " TOKEN, "1",
        "application/json"};
    assert_int_equal(web_guard(&app, &good, 1, &why), 0);
    web_headers scripted = good; /* curl: no Origin, no Sec-Fetch-Site */
    scripted.origin = scripted.sec_fetch_site = NULL;
    assert_int_equal(web_guard(&app, &scripted, 1, &why), 0);

    struct {
        web_headers h;
        unsigned status;
    } refused[] = {
        {{"evil.example:8025", good.origin, good.sec_fetch_site, good.authorization, "1",
          good.content_type},
         403},
        {{good.host, "http://evil.example", good.sec_fetch_site, good.authorization, "1",
          good.content_type},
         403},
        {{good.host, good.origin, "cross-site", good.authorization, "1", good.content_type}, 403},
        {{good.host, good.origin, "same-site", good.authorization, "1", good.content_type}, 403},
        {{good.host, good.origin, good.sec_fetch_site, good.authorization, NULL, good.content_type},
         403},
        {{good.host, good.origin, good.sec_fetch_site, good.authorization, "yes",
          good.content_type},
         403},
        {{good.host, good.origin, good.sec_fetch_site, good.authorization, "1", "text/plain"}, 415},
        {{good.host, good.origin, good.sec_fetch_site, good.authorization, "1", NULL}, 415},
        {{good.host, good.origin, good.sec_fetch_site, NULL, "1", good.content_type}, 401},
        {{good.host, good.origin, good.sec_fetch_site, "Bearer nope", "1", good.content_type}, 401},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        why.status = 0;
        assert_int_equal(web_guard(&app, &refused[i].h, 1, &why), -1);
        assert_int_equal(why.status, refused[i].status);
        assert_non_null(why.text);
    }

    /* reads: the Host only, unless reads are private */
    const web_headers read = {"localhost:8025", NULL, "cross-site", NULL, NULL, NULL};
    assert_int_equal(web_guard(&app, &read, 0, &why), 0);
    app.opt.private_reads = 1;
    assert_int_equal(web_guard(&app, &read, 0, &why), -1);
    assert_int_equal(why.status, 401);
    web_headers read_token = read;
    read_token.authorization = "Bearer " TOKEN;
    assert_int_equal(web_guard(&app, &read_token, 0, &why), 0);

    /* no token file: every action refused, whatever it carries */
    memset(&app.token, 0, sizeof app.token);
    assert_int_equal(web_guard(&app, &good, 1, &why), -1);
    assert_int_equal(why.status, 403);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_addresses),
        cmocka_unit_test(test_hosts_and_origins),
        cmocka_unit_test(test_token_file),
        cmocka_unit_test(test_token_check),
        cmocka_unit_test(test_guard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
