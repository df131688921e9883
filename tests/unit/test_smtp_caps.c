/*
 * Unit tests of consumer/smtp/caps.c: EHLO replies of real servers (Postfix, Exim,
 * Gmail, an old one with AUTH=), keyword case, SIZE with and without a limit, and the
 * first line never taken for a keyword.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "caps.h"

/* Parses one EHLO reply from its wire form. */
static smtp_caps caps_of(const char *wire)
{
    smtp_reader r;
    smtp_reader_init(&r);
    mr_error err = MR_ERROR_INIT;
    const smtp_reply *rep = NULL;
    assert_int_equal(smtp_reader_feed(&r, wire, strlen(wire), &err), 0);
    assert_int_equal(smtp_reader_next(&r, &rep, &err), 1);
    smtp_caps caps;
    smtp_caps_parse(rep, &caps);
    smtp_reader_free(&r);
    return caps;
}

static void test_postfix(void **state)
{
    (void)state;
    smtp_caps c = caps_of("250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                          "250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n"
                          "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n"
                          "250-SMTPUTF8\r\n250 CHUNKING\r\n");
    unsigned want = SMTP_CAP_PIPELINING | SMTP_CAP_SIZE | SMTP_CAP_STARTTLS | SMTP_CAP_AUTH |
                    SMTP_CAP_AUTH_PLAIN | SMTP_CAP_AUTH_LOGIN | SMTP_CAP_ENHANCEDSTATUSCODES |
                    SMTP_CAP_8BITMIME | SMTP_CAP_SMTPUTF8 | SMTP_CAP_CHUNKING;
    assert_int_equal(c.flags, want);
    assert_int_equal(c.size_max, 10240000);
}

static void test_exim_and_gmail(void **state)
{
    (void)state;
    smtp_caps c = caps_of("250-exim.example.net Hello x [192.0.2.1]\r\n250-SIZE 52428800\r\n"
                          "250-8BITMIME\r\n250-PIPELINING\r\n250-AUTH CRAM-MD5 PLAIN\r\n"
                          "250-CHUNKING\r\n250-STARTTLS\r\n250 HELP\r\n");
    assert_true(c.flags & SMTP_CAP_AUTH_PLAIN);
    assert_false(c.flags & SMTP_CAP_AUTH_LOGIN);
    assert_int_equal(c.size_max, 52428800);
    c = caps_of("250-smtp.gmail.com at your service, [192.0.2.1]\r\n250-SIZE 35882577\r\n"
                "250-8BITMIME\r\n250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER "
                "XOAUTH\r\n250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-CHUNKING\r\n"
                "250 SMTPUTF8\r\n");
    assert_true(c.flags & SMTP_CAP_AUTH_PLAIN);
    assert_true(c.flags & SMTP_CAP_AUTH_LOGIN);
    assert_false(c.flags & SMTP_CAP_STARTTLS);
}

static void test_old_auth_form_and_case(void **state)
{
    (void)state;
    smtp_caps c = caps_of("250-old.example\r\n250-auth=login\r\n250-pipelining\r\n"
                          "250 StartTLS\r\n");
    assert_true(c.flags & SMTP_CAP_AUTH);
    assert_true(c.flags & SMTP_CAP_AUTH_LOGIN);
    assert_false(c.flags & SMTP_CAP_AUTH_PLAIN);
    assert_true(c.flags & SMTP_CAP_PIPELINING);
    assert_true(c.flags & SMTP_CAP_STARTTLS);
    c = caps_of("250-x\r\n250-AUTH\r\n250 AUTH=PLAIN\r\n");
    assert_true(c.flags & SMTP_CAP_AUTH_PLAIN);
}

static void test_size_forms(void **state)
{
    (void)state;
    smtp_caps c = caps_of("250-x\r\n250 SIZE\r\n");
    assert_true(c.flags & SMTP_CAP_SIZE);
    assert_int_equal(c.size_max, 0);
    c = caps_of("250-x\r\n250 SIZE 0\r\n");
    assert_int_equal(c.size_max, 0);
    c = caps_of("250-x\r\n250 SIZE 12ab\r\n");
    assert_int_equal(c.size_max, 0);
    c = caps_of("250-x\r\n250 SIZE 99999999999999999999999999\r\n");
    assert_int_equal(c.size_max, 0);
    c = caps_of("250-x\r\n250 SIZE 18446744073709551615\r\n");
    assert_true(c.flags & SMTP_CAP_SIZE);
}

static void test_first_line_and_unknown(void **state)
{
    (void)state;
    smtp_caps c = caps_of("250 PIPELINING\r\n"); /* the server's name, not a keyword */
    assert_int_equal(c.flags, 0);
    c = caps_of("250-x\r\n250-PIPELININGX\r\n250-XPIPELINING\r\n250 X-EXPS LOGIN\r\n");
    assert_int_equal(c.flags, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_postfix),
        cmocka_unit_test(test_exim_and_gmail),
        cmocka_unit_test(test_old_auth_form_and_case),
        cmocka_unit_test(test_size_forms),
        cmocka_unit_test(test_first_line_and_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
