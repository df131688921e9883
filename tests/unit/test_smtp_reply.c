/*
 * Unit tests of consumer/smtp/reply.c: the incremental reply parser (single and
 * multi-line replies, replies split anywhere, several in one read, bare LF), enhanced
 * status codes, every malformed form it refuses, the cleaning of kept text, the
 * receive buffer's growth bound, and the one-line format used in records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "reply.h"

/* Feeds s whole and parses one reply: the parser's return value. */
static int parse(smtp_reader *r, const char *s, const smtp_reply **out, mr_error *err)
{
    assert_int_equal(smtp_reader_feed(r, s, strlen(s), err), 0);
    return smtp_reader_next(r, out, err);
}

static void test_single_line(void **state)
{
    (void)state;
    smtp_reader r;
    smtp_reader_init(&r);
    const smtp_reply *rep = NULL;
    mr_error err = MR_ERROR_INIT;
    assert_int_equal(parse(&r, "220 mail.example.com ESMTP Postfix\r\n", &rep, &err), 1);
    assert_int_equal(rep->code, 220);
    assert_int_equal(rep->n_lines, 1);
    assert_string_equal(rep->text.data, "mail.example.com ESMTP Postfix");
    assert_string_equal(rep->enhanced, "");
    assert_false(smtp_reader_pending(&r));
    assert_int_equal(smtp_reader_next(&r, &rep, &err), 0);
    smtp_reader_free(&r);
}

static void test_multi_line(void **state)
{
    (void)state;
    smtp_reader r;
    smtp_reader_init(&r);
    const smtp_reply *rep = NULL;
    mr_error err = MR_ERROR_INIT;
    assert_int_equal(parse(&r,
                           "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                           "250 8BITMIME\r\n",
                           &rep, &err),
                     1);
    assert_int_equal(rep->code, 250);
    assert_int_equal(rep->n_lines, 4);
    assert_string_equal(rep->text.data, "mx.example.com\nPIPELINING\nSIZE 10240000\n8BITMIME");
    smtp_reader_free(&r);
}

static void test_code_only_and_empty_text(void **state)
{
    (void)state;
    smtp_reader r;
    smtp_reader_init(&r);
    const smtp_reply *rep = NULL;
    mr_error err = MR_ERROR_INIT;
    assert_int_equal(parse(&r, "250\r\n", &rep, &err), 1);
    assert_int_equal(rep->code, 250);
    assert_string_equal(rep->text.data, "");
    assert_int_equal(parse(&r, "354 \r\n", &rep, &err), 1);
    assert_int_equal(rep->code, 354);
    assert_int_equal(parse(&r, "250-\r\n250 x\r\n", &rep, &err), 1);
    assert_string_equal(rep->text.data, "\nx");
    smtp_reader_free(&r);
}

/* Every split of a stream of three replies gives the same three replies. */
static void test_split_anywhere(void **state)
{
    (void)state;
    const char *stream = "250-first\r\n250 2.1.0 second\r\n550 5.1.1 <x@y>: no\r\n354 go\n";
    size_t len = strlen(stream);
    for (size_t cut = 0; cut <= len; cut++) {
        smtp_reader r;
        smtp_reader_init(&r);
        mr_error err = MR_ERROR_INIT;
        const smtp_reply *rep = NULL;
        int codes[3], n = 0;
        assert_int_equal(smtp_reader_feed(&r, stream, cut, &err), 0);
        while (smtp_reader_next(&r, &rep, &err) == 1)
            codes[n++] = rep->code;
        assert_int_equal(smtp_reader_feed(&r, stream + cut, len - cut, &err), 0);
        while (smtp_reader_next(&r, &rep, &err) == 1)
            codes[n++] = rep->code;
        assert_int_equal(n, 3);
        assert_int_equal(codes[0], 250);
        assert_int_equal(codes[1], 550);
        assert_int_equal(codes[2], 354);
        assert_false(smtp_reader_pending(&r));
        smtp_reader_free(&r);
    }
}

static void test_bare_lf_and_byte_by_byte(void **state)
{
    (void)state;
    const char *s = "250-a\n250-b\r\n250 c\n";
    smtp_reader r;
    smtp_reader_init(&r);
    mr_error err = MR_ERROR_INIT;
    const smtp_reply *rep = NULL;
    int got = 0;
    for (size_t i = 0; s[i]; i++) {
        assert_int_equal(smtp_reader_feed(&r, s + i, 1, &err), 0);
        int rc = smtp_reader_next(&r, &rep, &err);
        assert_true(rc >= 0);
        if (rc == 1) {
            got++;
            assert_string_equal(rep->text.data, "a\nb\nc");
        } else {
            assert_true(smtp_reader_pending(&r));
        }
    }
    assert_int_equal(got, 1);
    smtp_reader_free(&r);
}

static void test_enhanced_codes(void **state)
{
    (void)state;
    struct {
        const char *line, *enhanced;
    } cases[] = {
        {"250 2.1.0 Ok\r\n", "2.1.0"},
        {"550 5.1.1 <a@b>: Recipient address rejected\r\n", "5.1.1"},
        {"250 2.0.0\r\n", "2.0.0"},
        {"452 4.5.3 Too many recipients\r\n", "4.5.3"},
        {"250 5.1.1 class differs\r\n", ""},
        {"250 2.0 short\r\n", ""},
        {"250 2.1000.0 long subject\r\n", ""},
        {"250 2.0.0Ok no space\r\n", ""},
        {"250 2..0 empty\r\n", ""},
        {"550 5.999.999 widest\r\n", "5.999.999"},
        {"250 Ok 2.0.0\r\n", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        smtp_reader r;
        smtp_reader_init(&r);
        mr_error err = MR_ERROR_INIT;
        const smtp_reply *rep = NULL;
        assert_int_equal(parse(&r, cases[i].line, &rep, &err), 1);
        assert_string_equal(rep->enhanced, cases[i].enhanced);
        smtp_reader_free(&r);
    }
}

/* Each malformed stream is a protocol error, and the reader stays failed. */
static void test_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "25\r\n",    /* shorter than 3 */
        "\r\n",      /* empty line */
        "2a0 x\r\n", /* not digits */
        "150 x\r\n", /* first digit below 2 */
        "650 x\r\n", /* above 5 */
        "050 x\r\n",
        "250x\r\n", /* no separator */
        "250_x\r\n",
        "250-a\r\n251 b\r\n", /* continuation with another code */
        "250-a\r\n550 b\r\n",
        "abc\r\n",
        " 250 x\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        smtp_reader r;
        smtp_reader_init(&r);
        mr_error err = MR_ERROR_INIT;
        const smtp_reply *rep = NULL;
        assert_int_equal(parse(&r, bad[i], &rep, &err), -1);
        assert_int_equal(err.rc, MAILROOM_EPROTO);
        assert_true(err.msg[0] != '\0');
        assert_int_equal(smtp_reader_next(&r, &rep, &err), -1);
        smtp_reader_reset(&r);
        assert_int_equal(parse(&r, "250 ok again\r\n", &rep, &err), 1);
        smtp_reader_free(&r);
    }
}

/* A line of 4096 bytes with its CRLF passes; one byte more fails, also before its LF
 * arrives. */
static void test_line_bound(void **state)
{
    (void)state;
    char *line = malloc(SMTP_LINE_MAX + 2);
    assert_non_null(line);
    memcpy(line, "250 ", 4);
    memset(line + 4, 'x', SMTP_LINE_MAX - 6);
    memcpy(line + SMTP_LINE_MAX - 2, "\r\n", 3);
    smtp_reader r;
    smtp_reader_init(&r);
    mr_error err = MR_ERROR_INIT;
    const smtp_reply *rep = NULL;
    assert_int_equal(strlen(line), SMTP_LINE_MAX);
    assert_int_equal(parse(&r, line, &rep, &err), 1);
    assert_int_equal(rep->text.len, SMTP_LINE_MAX - 6);
    memcpy(line + SMTP_LINE_MAX - 2, "x\r\n", 4);
    assert_int_equal(parse(&r, line, &rep, &err), -1);
    smtp_reader_reset(&r);
    line[SMTP_LINE_MAX] = '\0'; /* no line end yet: 4096 bytes that cannot be a line */
    assert_int_equal(parse(&r, line, &rep, &err), -1);
    smtp_reader_free(&r);
    free(line);
}

static void test_line_count_bound(void **state)
{
    (void)state;
    smtp_reader r;
    smtp_reader_init(&r);
    mr_error err = MR_ERROR_INIT;
    const smtp_reply *rep = NULL;
    for (int i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
        assert_int_equal(smtp_reader_feed(&r, "250-x\r\n", 7, &err), 0);
    assert_int_equal(parse(&r, "250 last\r\n", &rep, &err), 1);
    assert_int_equal(rep->n_lines, SMTP_REPLY_LINES_MAX);
    for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
        assert_int_equal(smtp_reader_feed(&r, "250-x\r\n", 7, &err), 0);
    assert_int_equal(parse(&r, "250 one too many\r\n", &rep, &err), -1);
    smtp_reader_free(&r);
}

/* NUL, control characters, a CR inside the line and bytes >= 0x80 become '?'. */
static void test_text_cleaned(void **state)
{
    (void)state;
    static const char raw[] = "250 a\0b\tc\rd\x7f"
                              "e\xc3\xa9"
                              "f\x1b[31m\r\n";
    smtp_reader r;
    smtp_reader_init(&r);
    mr_error err = MR_ERROR_INIT;
    const smtp_reply *rep = NULL;
    assert_int_equal(smtp_reader_feed(&r, raw, sizeof raw - 1, &err), 0);
    assert_int_equal(smtp_reader_next(&r, &rep, &err), 1);
    assert_string_equal(rep->text.data, "a?b?c?d?e??f?[31m");
    smtp_reader_free(&r);
}

/* The receive buffer grows from its initial size only while a line does not fit, and
 * never beyond one line's bound. */
static void test_receive_buffer(void **state)
{
    (void)state;
    smtp_reader r;
    smtp_reader_init(&r);
    mr_error err = MR_ERROR_INIT;
    size_t room = 0;
    char *at = smtp_reader_space(&r, &room, &err);
    assert_non_null(at);
    assert_int_equal(room, SMTP_READER_INITIAL);
    memcpy(at, "250 ok\r\n", 8);
    smtp_reader_commit(&r, 8);
    const smtp_reply *rep = NULL;
    assert_int_equal(smtp_reader_next(&r, &rep, &err), 1);
    at = smtp_reader_space(&r, &room, &err);
    assert_int_equal(room, SMTP_READER_INITIAL);
    size_t total = 0;
    while ((at = smtp_reader_space(&r, &room, &err)) != NULL) {
        memset(at, 'y', room);
        smtp_reader_commit(&r, room);
        total += room;
        assert_true(total <= SMTP_LINE_MAX);
    }
    assert_int_equal(total, SMTP_LINE_MAX);
    assert_int_equal(err.rc, MAILROOM_EPROTO);
    assert_true(r.cap <= SMTP_LINE_MAX);
    smtp_reader_reset(&r);
    smtp_reader_trim(&r);
    assert_null(r.data);
    smtp_reader_free(&r);
}

static void test_pending(void **state)
{
    (void)state;
    smtp_reader r;
    smtp_reader_init(&r);
    mr_error err = MR_ERROR_INIT;
    const smtp_reply *rep = NULL;
    assert_false(smtp_reader_pending(&r));
    assert_int_equal(parse(&r, "250-one\r\n", &rep, &err), 0);
    assert_true(smtp_reader_pending(&r)); /* inside a multi-line reply */
    assert_int_equal(parse(&r, "250 two\r\n25", &rep, &err), 1);
    assert_true(smtp_reader_pending(&r)); /* a partial line */
    assert_int_equal(parse(&r, "0 three\r\n", &rep, &err), 1);
    assert_false(smtp_reader_pending(&r));
    smtp_reader_free(&r);
}

static void test_format(void **state)
{
    (void)state;
    smtp_reader r;
    smtp_reader_init(&r);
    mr_error err = MR_ERROR_INIT;
    const smtp_reply *rep = NULL;
    char line[64];
    assert_int_equal(parse(&r,
                           "550-5.1.1 The email account that you tried\r\n"
                           "550-5.1.1 to reach does not exist.\r\n550 5.1.1 x\r\n",
                           &rep, &err),
                     1);
    smtp_reply_format(rep, line, sizeof line);
    assert_string_equal(line, "550 5.1.1 The email account that you tried to reach does not ex");
    assert_int_equal(parse(&r, "250-a\r\n250 b\r\n", &rep, &err), 1);
    smtp_reply_format(rep, line, sizeof line);
    assert_string_equal(line, "250 a b");
    assert_int_equal(parse(&r, "354 \r\n", &rep, &err), 1);
    smtp_reply_format(rep, line, sizeof line);
    assert_string_equal(line, "354");
    smtp_reply_format(rep, line, 3);
    assert_string_equal(line, "35");
    smtp_reader_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_line),
        cmocka_unit_test(test_multi_line),
        cmocka_unit_test(test_code_only_and_empty_text),
        cmocka_unit_test(test_split_anywhere),
        cmocka_unit_test(test_bare_lf_and_byte_by_byte),
        cmocka_unit_test(test_enhanced_codes),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_line_bound),
        cmocka_unit_test(test_line_count_bound),
        cmocka_unit_test(test_text_cleaned),
        cmocka_unit_test(test_receive_buffer),
        cmocka_unit_test(test_pending),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
