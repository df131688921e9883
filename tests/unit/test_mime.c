/*
 * test_mime: consumer/mime.c, the message the consumer hands to its SMTP session, which
 * sends it as given without BODY=8BITMIME, so everything that keeps the message valid
 * and readable is checked here: header encoding (raw, folded, RFC 2047 words that never
 * split UTF-8), display names, Message-ID, body encodings (checked by decoding them
 * again with the small decoders below), the shape of whole messages (CRLF only, no line
 * over 998 bytes, Bcc never present), buffer reuse, and bad input refused with
 * MAILROOM_EINVAL and a reason rather than a broken message. International addresses:
 * A-labels in the headers for IDN domains (7-bit headers), the raw address only for a
 * non-ASCII local part (RFC 6532), and mime_needs_smtputf8() for each place one can be.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "address.h"
#include "buf.h"
#include "error.h"
#include "job.h"
#include "mime.h"

/* 60 Chinese characters (180 bytes of UTF-8). */
#define ZH60 "请激活您的账户这是一封来自滴水网的邮件感谢您的注册我们非常高兴您加入了我们的社区请点击下面的链接完成激活如果不是您本人操"

/* ---- small decoders and checks --------------------------------------------------- */

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes base64, skipping CRLF; fails on anything else that is not base64. */
static int b64_decode(const char *s, size_t len, buf *out)
{
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r' || s[i] == '\n')
            continue;
        if (s[i] == '=')
            break;
        int v = b64_val(s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (buf_putc(out, (char)((acc >> bits) & 0xFF)) != 0)
                return -1;
        }
    }
    return 0;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Strict quoted-printable decoder: "=\r\n" soft break, "=XX" uppercase hex, else literal. */
static int qp_decode(const char *s, size_t len, buf *out)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '=') {
            if (buf_putc(out, s[i]) != 0)
                return -1;
            continue;
        }
        if (i + 2 < len && s[i + 1] == '\r' && s[i + 2] == '\n') {
            i += 2;
            continue;
        }
        if (i + 2 >= len || hex_val(s[i + 1]) < 0 || hex_val(s[i + 2]) < 0)
            return -1;
        if (buf_putc(out, (char)(hex_val(s[i + 1]) * 16 + hex_val(s[i + 2]))) != 0)
            return -1;
        i += 2;
    }
    return 0;
}

/* Every CR is followed by LF and every LF preceded by CR, no line is longer than max,
 * and the text ends with CRLF. */
static void assert_crlf_lines(const char *s, size_t len, size_t max)
{
    size_t col = 0;
    assert_true(len >= 2);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r') {
            assert_true(i + 1 < len && s[i + 1] == '\n');
            assert_true(col <= max);
            col = 0;
            i++;
        } else {
            assert_true(s[i] != '\n');
            col++;
        }
    }
    assert_memory_equal(s + len - 2, "\r\n", 2);
}

/* Copies the value of header name in msg (up to the blank line) into out, unfolded
 * (CRLF removed) when unfold, else as written. Returns 0 when found. */
static int header_value(const char *msg, const char *name, int unfold, buf *out)
{
    size_t nlen = strlen(name);
    const char *end = strstr(msg, "\r\n\r\n");
    const char *p = msg;
    if (!end)
        end = msg + strlen(msg);
    buf_reset(out);
    while (p && p < end) {
        if (strncmp(p, name, nlen) == 0 && p[nlen] == ':') {
            p += nlen + 1;
            if (*p == ' ')
                p++;
            for (;;) {
                if (p[0] == '\r' && p[1] == '\n') {
                    if (p[2] != ' ' && p[2] != '\t')
                        return 0;
                    if (!unfold)
                        buf_append(out, "\r\n", 2);
                    p += 2;
                    continue;
                }
                buf_putc(out, *p++);
            }
        }
        p = strstr(p, "\r\n");
        if (p)
            p += 2;
    }
    return -1;
}

/*
 * Decodes a header value written as RFC 2047 B-words separated by CRLF SP: each word
 * must be at most 75 characters and decode on its own to valid UTF-8. The concatenation
 * goes into out. Returns the number of words.
 */
static size_t decode_words(const char *v, buf *out)
{
    size_t words = 0;
    buf one = BUF_INIT;
    buf_reset(out);
    while (*v) {
        assert_memory_equal(v, "=?UTF-8?B?", 10);
        const char *end = strstr(v + 10, "?=");
        assert_non_null(end);
        size_t wlen = (size_t)(end + 2 - v);
        assert_true(wlen <= 75);
        buf_reset(&one);
        assert_int_equal(b64_decode(v + 10, (size_t)(end - v - 10), &one), 0);
        assert_true(addr_utf8_valid(one.data ? one.data : "", one.len));
        buf_append(out, one.data ? one.data : "", one.len);
        words++;
        v = end + 2;
        if (*v) {
            assert_memory_equal(v, "\r\n ", 3);
            v += 3;
        }
    }
    buf_free(&one);
    return words;
}

/* The part of msg after the first blank line that follows pos. */
static const char *body_after(const char *pos)
{
    const char *p = strstr(pos, "\r\n\r\n");
    assert_non_null(p);
    return p + 4;
}

/* Replaces every bare LF and bare CR of s with CRLF. */
static void crlf_normalise(const char *s, buf *out)
{
    buf_reset(out);
    for (; *s; s++) {
        if (*s == '\r' || *s == '\n') {
            buf_puts(out, "\r\n");
            if (s[0] == '\r' && s[1] == '\n')
                s++;
        } else {
            buf_putc(out, *s);
        }
    }
}

static void base_job(job *j)
{
    static const char *to[] = {"ming@example.com"};
    memset(j, 0, sizeof *j);
    j->v = "1";
    j->id = "01JDQ6Z3K8P4W7X2M5N9R0T1AB";
    j->from = "noreply@example.com";
    j->subject = "Hello";
    j->text = "Hello there\n";
    j->text_len = strlen(j->text);
    j->to[0] = to[0];
    j->n_to = 1;
    j->created_ms = 1795525200000; /* 2026-11-24T13:00:00Z */
}

static void build(const job *j, buf *out)
{
    mr_error err = MR_ERROR_INIT;
    int rc = mime_build(j, out, &err);
    if (rc != 0)
        fprintf(stderr, "mime_build: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_crlf_lines(out->data, out->len, 998);
}

/* ---- headers ---------------------------------------------------------------------- */

static void test_subject_ascii_raw(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    assert_int_equal(mime_header_unstructured(&b, "Subject", "Activate your account"), 0);
    assert_string_equal(b.data, "Subject: Activate your account\r\n");
    buf_free(&b);
}

static void test_subject_ascii_long_folded(void **state)
{
    (void)state;
    buf b = BUF_INIT, v = BUF_INIT;
    char subject[400] = "";
    for (int i = 0; i < 30; i++)
        strcat(subject, i % 3 ? "word " : "longerword  ");
    strcat(subject, "end");
    assert_int_equal(mime_header_unstructured(&b, "Subject", subject), 0);
    assert_crlf_lines(b.data, b.len, 78);
    assert_null(strstr(b.data, "=?"));
    assert_int_equal(header_value(b.data, "Subject", 1, &v), 0);
    assert_string_equal(v.data, subject);
    buf_free(&b);
    buf_free(&v);
}

static void test_subject_long_word_encoded(void **state)
{
    (void)state;
    buf b = BUF_INIT, v = BUF_INIT, d = BUF_INIT;
    char subject[1501];
    memset(subject, 'x', 1500);
    subject[1500] = '\0';
    assert_int_equal(mime_header_unstructured(&b, "Subject", subject), 0);
    assert_crlf_lines(b.data, b.len, 76);
    assert_int_equal(header_value(b.data, "Subject", 0, &v), 0);
    decode_words(v.data, &d);
    assert_int_equal(d.len, 1500);
    assert_memory_equal(d.data, subject, 1500);
    buf_free(&b);
    buf_free(&v);
    buf_free(&d);
}

static void test_subject_chinese_words(void **state)
{
    (void)state;
    buf b = BUF_INIT, v = BUF_INIT, d = BUF_INIT;
    assert_int_equal(strlen(ZH60), 180);
    assert_int_equal(mime_header_unstructured(&b, "Subject", ZH60), 0);
    assert_crlf_lines(b.data, b.len, 76);
    assert_int_equal(header_value(b.data, "Subject", 0, &v), 0);
    size_t words = decode_words(v.data, &d);
    assert_true(words >= 4);
    assert_int_equal(d.len, strlen(ZH60));
    assert_memory_equal(d.data, ZH60, d.len);
    buf_free(&b);
    buf_free(&v);
    buf_free(&d);
}

static void test_subject_with_encoded_word_marker(void **state)
{
    (void)state;
    buf b = BUF_INIT, v = BUF_INIT, d = BUF_INIT;
    const char *s = "Your code =?UTF-8?B?ZXZpbA==?= inside";
    assert_int_equal(mime_header_unstructured(&b, "Subject", s), 0);
    assert_memory_equal(b.data, "Subject: =?UTF-8?B?", 19);
    assert_int_equal(header_value(b.data, "Subject", 0, &v), 0);
    decode_words(v.data, &d);
    assert_string_equal(d.data, s);
    buf_free(&b);
    buf_free(&v);
    buf_free(&d);
}

static void test_header_name_refused(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    assert_int_equal(mime_header_unstructured(&b, "X-Bad:Name", "v"), -1);
    assert_int_equal(mime_header_unstructured(&b, "X-Bad\r\nBcc", "v"), -1);
    assert_int_equal(mime_header_unstructured(&b, "", "v"), -1);
    buf_free(&b);
}

static void mailbox_is(const char *input, const char *expected)
{
    addr_mailbox mb;
    mr_error err = MR_ERROR_INIT;
    buf b = BUF_INIT;
    if (addr_parse(input, strlen(input), &mb, &err) != 0)
        fail_msg("addr_parse(%s): %s", input, err.msg);
    assert_int_equal(mime_append_mailbox(&b, &mb), 0);
    assert_string_equal(b.data, expected);
    buf_free(&b);
}

static void test_mailbox_forms(void **state)
{
    (void)state;
    mailbox_is("jane@example.com", "jane@example.com");
    mailbox_is("Jane Doe <jane@example.com>", "Jane Doe <jane@example.com>");
    mailbox_is("\"Doe, Jane\" <jane@example.com>", "\"Doe, Jane\" <jane@example.com>");
    mailbox_is("J. Doe <jane@example.com>", "\"J. Doe\" <jane@example.com>");
    mailbox_is("\"Say \\\"hi\\\" \\\\ bye\" <jane@example.com>",
               "\"Say \\\"hi\\\" \\\\ bye\" <jane@example.com>");
    mailbox_is("\"=?x?=\" <jane@example.com>", "=?UTF-8?B?PT94Pz0=?= <jane@example.com>");
    mailbox_is("王小明 <ming@example.com>", "=?UTF-8?B?546L5bCP5piO?= <ming@example.com>");
}

static void test_mailbox_long_chinese_name(void **state)
{
    (void)state;
    addr_mailbox mb;
    buf b = BUF_INIT, d = BUF_INIT;
    strcpy(mb.name, ZH60);
    strcpy(mb.spec, "ming@example.com");
    assert_int_equal(buf_puts(&b, "To: "), 0);
    assert_int_equal(mime_append_mailbox(&b, &mb), 0);
    assert_int_equal(buf_puts(&b, "\r\n"), 0);
    assert_crlf_lines(b.data, b.len, 78);
    char *lt = strstr(b.data, "<ming@example.com>\r\n");
    assert_non_null(lt);
    lt -= lt[-2] == '\n' ? 3 : 1; /* " <" or "\r\n <" */
    *lt = '\0';
    decode_words(b.data + 4, &d);
    assert_string_equal(d.data, ZH60);
    buf_free(&b);
    buf_free(&d);
}

static void test_msgid_local(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    assert_int_equal(mime_msgid_local(&b, "a:b.c=d_e-f"), 0);
    assert_string_equal(b.data, "a=3Ab=2Ec=3Dd_e-f");
    buf_reset(&b);
    assert_int_equal(mime_msgid_local(&b, ""), -1);
    buf_free(&b);
}

/* ---- international addresses ---------------------------------------------------- */

/* 1 when s has a byte >= 0x80. */
static int has_8bit(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] >= 0x80)
            return 1;
    }
    return 0;
}

/* An address with only an internationalised domain goes in its A-label form; one with a
 * non-ASCII local part raw, as given (RFC 6532); display names encoded as ever. */
static void test_mailbox_international_forms(void **state)
{
    (void)state;
    mailbox_is("ming@例子.测试", "ming@xn--fsqu00a.xn--0zwm56d");
    mailbox_is("王小明 <ming@例子.测试>",
               "=?UTF-8?B?546L5bCP5piO?= <ming@xn--fsqu00a.xn--0zwm56d>");
    mailbox_is("Jane <jane@Bücher.de>", "Jane <jane@xn--bcher-kva.de>");
    mailbox_is("ops@XN--BCHER-KVA.de", "ops@xn--bcher-kva.de");
    mailbox_is("用户@例子.测试", "用户@例子.测试");
    mailbox_is("José <josé@example.com>", "=?UTF-8?B?Sm9zw6k=?= <josé@example.com>");
    mailbox_is("\"Doe, J\" <jöe@xn--bcher-kva.de>", "\"Doe, J\" <jöe@xn--bcher-kva.de>");
}

/* A job whose recipients have IDN domains only: every header stays 7-bit ASCII, From and
 * Message-ID carry the A-label domain, and no SMTPUTF8 is needed. */
static void test_idn_message_is_7bit(void **state)
{
    (void)state;
    job j;
    buf b = BUF_INIT, v = BUF_INIT;
    base_job(&j);
    j.from = "noreply@例子.测试";
    j.from_name = "例子";
    j.to[0] = "王小明 <ming@例子.测试>";
    j.to[1] = "info@Bücher.de";
    j.n_to = 2;
    j.cc[0] = "ops@xn--bcher-kva.de";
    j.n_cc = 1;
    j.reply_to = "Help <help@пример.рф>";
    j.bcc[0] = "audit@bücher.de";
    j.n_bcc = 1;
    build(&j, &b);
    assert_false(has_8bit(b.data, b.len));
    assert_int_equal(mime_needs_smtputf8(&j), 0);
    assert_int_equal(header_value(b.data, "From", 1, &v), 0);
    assert_string_equal(v.data, "=?UTF-8?B?5L6L5a2Q?= <noreply@xn--fsqu00a.xn--0zwm56d>");
    assert_int_equal(header_value(b.data, "To", 1, &v), 0);
    assert_string_equal(v.data, "=?UTF-8?B?546L5bCP5piO?= <ming@xn--fsqu00a.xn--0zwm56d>, "
                                "info@xn--bcher-kva.de");
    assert_int_equal(header_value(b.data, "Cc", 1, &v), 0);
    assert_string_equal(v.data, "ops@xn--bcher-kva.de");
    assert_int_equal(header_value(b.data, "Reply-To", 1, &v), 0);
    assert_string_equal(v.data, "Help <help@xn--e1afmkfd.xn--p1ai>");
    assert_int_equal(header_value(b.data, "Message-ID", 1, &v), 0);
    assert_string_equal(v.data, "<01JDQ6Z3K8P4W7X2M5N9R0T1AB@xn--fsqu00a.xn--0zwm56d>");
    assert_null(strstr(b.data, "audit"));
    buf_free(&b);
    buf_free(&v);
}

/* A non-ASCII local part: that address goes raw in its header (RFC 6532), the others
 * stay as they would be (A-labels, encoded names), the body stays 7-bit, and the job
 * needs SMTPUTF8. */
static void test_utf8_local_part_message(void **state)
{
    (void)state;
    job j;
    buf b = BUF_INIT, v = BUF_INIT;
    base_job(&j);
    j.to[0] = "用户 <用户@例子.测试>";
    j.to[1] = "ming@例子.测试";
    j.n_to = 2;
    j.text = "正文 body\n";
    j.text_len = strlen(j.text);
    build(&j, &b);
    assert_int_equal(mime_needs_smtputf8(&j), 1);
    assert_int_equal(header_value(b.data, "To", 1, &v), 0);
    assert_string_equal(v.data, "=?UTF-8?B?55So5oi3?= <用户@例子.测试>, "
                                "ming@xn--fsqu00a.xn--0zwm56d");
    const char *blank = strstr(b.data, "\r\n\r\n");
    assert_non_null(blank);
    /* the only 8-bit bytes of the message are that address's */
    const char *raw = strstr(b.data, "<用户@例子.测试>");
    assert_non_null(raw);
    assert_false(has_8bit(b.data, (size_t)(raw - b.data)));
    const char *after = raw + strlen("<用户@例子.测试>");
    assert_false(has_8bit(after, b.len - (size_t)(after - b.data)));
    assert_int_equal(header_value(b.data, "Subject", 1, &v), 0);
    assert_string_equal(v.data, "Hello");
    buf_free(&b);
    buf_free(&v);
}

/* Where a non-ASCII local part sits decides nothing but that SMTPUTF8 is needed: in
 * from, reply_to (headers only) or bcc (envelope only) as much as in to or cc. */
static void test_needs_smtputf8(void **state)
{
    (void)state;
    job j;
    buf b = BUF_INIT, v = BUF_INIT;
    base_job(&j);
    assert_int_equal(mime_needs_smtputf8(&j), 0);
    j.bcc[0] = "josé@example.com";
    j.n_bcc = 1;
    assert_int_equal(mime_needs_smtputf8(&j), 1);
    build(&j, &b);
    assert_false(has_8bit(b.data, b.len)); /* bcc is not in the message */
    base_job(&j);
    j.reply_to = "Soporte <atención@example.com>";
    assert_int_equal(mime_needs_smtputf8(&j), 1);
    build(&j, &b);
    assert_int_equal(header_value(b.data, "Reply-To", 1, &v), 0);
    assert_string_equal(v.data, "Soporte <atención@example.com>");
    base_job(&j);
    j.from = "邮件@例子.测试";
    assert_int_equal(mime_needs_smtputf8(&j), 1);
    build(&j, &b);
    assert_int_equal(header_value(b.data, "From", 1, &v), 0);
    assert_string_equal(v.data, "邮件@例子.测试");
    assert_int_equal(header_value(b.data, "Message-ID", 1, &v), 0);
    assert_string_equal(v.data, "<01JDQ6Z3K8P4W7X2M5N9R0T1AB@xn--fsqu00a.xn--0zwm56d>");
    base_job(&j);
    j.cc[0] = "пользователь@пример.рф";
    j.n_cc = 1;
    assert_int_equal(mime_needs_smtputf8(&j), 1);
    base_job(&j);
    j.to[0] = "a@Bücher.de"; /* an IDN domain alone is not enough */
    assert_int_equal(mime_needs_smtputf8(&j), 0);
    buf_free(&b);
    buf_free(&v);
}

/* A long UTF-8 address (254 octets) after a long encoded name: the line folds before
 * the angle address and no line passes 998 octets. */
static void test_long_utf8_address_folds(void **state)
{
    (void)state;
    char addr[300] = "";
    for (int i = 0; i < 21; i++)
        strcat(addr, "用"); /* 63 octets */
    strcat(addr, "@例子.测试");
    char mbox[600];
    snprintf(mbox, sizeof mbox, "%s <%s>", ZH60, addr);
    job j;
    buf b = BUF_INIT, v = BUF_INIT;
    base_job(&j);
    j.to[0] = mbox;
    j.to[1] = mbox;
    j.n_to = 2;
    build(&j, &b);
    assert_int_equal(header_value(b.data, "To", 0, &v), 0);
    assert_non_null(strstr(v.data, "\r\n <用"));
    buf_free(&b);
    buf_free(&v);
}

/* ---- whole messages --------------------------------------------------------------- */

static void test_message_id(void **state)
{
    (void)state;
    job j;
    buf b = BUF_INIT, v = BUF_INIT;
    base_job(&j);
    build(&j, &b);
    assert_int_equal(header_value(b.data, "Message-ID", 1, &v), 0);
    assert_string_equal(v.data, "<01JDQ6Z3K8P4W7X2M5N9R0T1AB@example.com>");
    j.id = "a:b.c";
    build(&j, &b);
    assert_int_equal(header_value(b.data, "Message-ID", 1, &v), 0);
    assert_string_equal(v.data, "<a=3Ab=2Ec@example.com>");
    buf_free(&b);
    buf_free(&v);
}

static void test_text_only_message(void **state)
{
    (void)state;
    job j;
    buf b = BUF_INIT;
    base_job(&j);
    build(&j, &b);
    const char *expect_head = "Date: Tue, 24 Nov 2026 13:00:00 +0000\r\n"
                              "From: noreply@example.com\r\n"
                              "To: ming@example.com\r\n"
                              "Subject: Hello\r\n"
                              "Message-ID: <01JDQ6Z3K8P4W7X2M5N9R0T1AB@example.com>\r\n"
                              "MIME-Version: 1.0\r\n"
                              "Content-Type: text/plain; charset=UTF-8\r\n"
                              "Content-Transfer-Encoding: quoted-printable\r\n"
                              "\r\n"
                              "Hello there\r\n";
    assert_string_equal(b.data, expect_head);
    buf_free(&b);
}

static void test_chinese_names_encoded(void **state)
{
    (void)state;
    job j;
    buf b = BUF_INIT, v = BUF_INIT, d = BUF_INIT;
    base_job(&j);
    j.from_name = "滴水网";
    j.to[0] = "王小明 <ming@example.com>";
    j.to[1] = "\"Doe, Jane\" <jane@example.com>";
    j.n_to = 2;
    j.cc[0] = "李雷 <lilei@example.org>";
    j.n_cc = 1;
    j.reply_to = "Support Team <help@example.com>";
    build(&j, &b);
    assert_int_equal(header_value(b.data, "From", 1, &v), 0);
    assert_string_equal(v.data, "=?UTF-8?B?5ru05rC0572R?= <noreply@example.com>");
    assert_int_equal(header_value(b.data, "To", 1, &v), 0);
    assert_string_equal(v.data,
                        "=?UTF-8?B?546L5bCP5piO?= <ming@example.com>, "
                        "\"Doe, Jane\" <jane@example.com>");
    assert_int_equal(header_value(b.data, "Cc", 1, &v), 0);
    char *lt = strstr(v.data, " <lilei@example.org>");
    assert_non_null(lt);
    *lt = '\0';
    decode_words(v.data, &d);
    assert_string_equal(d.data, "李雷");
    assert_int_equal(header_value(b.data, "Reply-To", 1, &v), 0);
    assert_string_equal(v.data, "Support Team <help@example.com>");
    assert_null(strstr(b.data, "滴"));
    buf_free(&b);
    buf_free(&v);
    buf_free(&d);
}

static void test_long_recipient_list_folded(void **state)
{
    (void)state;
    static const char *to[] = {
        "Alice Anderson <alice.anderson@example.com>", "bob.builder@example.com",
        "王小明 <ming@example.com>", "\"Doe, Jane\" <jane.doe@example.org>",
        "Carol <carol@example.net>", "张三李四王五赵六孙七周八吴九郑十 <zs@example.cn>",
        "dave@example.com", "Eve Evans <eve@example.com>"};
    job j;
    buf b = BUF_INIT, v = BUF_INIT;
    base_job(&j);
    for (size_t i = 0; i < sizeof to / sizeof to[0]; i++)
        j.to[i] = to[i];
    j.n_to = sizeof to / sizeof to[0];
    build(&j, &b);
    assert_int_equal(header_value(b.data, "To", 0, &v), 0);
    assert_crlf_lines(b.data, (size_t)(strstr(b.data, "\r\n\r\n") + 2 - b.data), 78);
    assert_non_null(strstr(v.data, ",\r\n "));
    assert_non_null(strstr(v.data, "bob.builder@example.com"));
    assert_non_null(strstr(v.data, "<eve@example.com>"));
    buf_free(&b);
    buf_free(&v);
}

static void test_bcc_never_in_message(void **state)
{
    (void)state;
    job j;
    buf b = BUF_INIT;
    base_job(&j);
    j.bcc[0] = "Secret Boss <boss@hidden.example>";
    j.bcc[1] = "audit@hidden.example";
    j.n_bcc = 2;
    build(&j, &b);
    assert_null(strstr(b.data, "hidden.example"));
    assert_null(strstr(b.data, "Secret"));
    assert_null(strstr(b.data, "Bcc"));
    buf_free(&b);
}

static void test_extra_headers(void **state)
{
    (void)state;
    job j;
    buf b = BUF_INIT, v = BUF_INIT, d = BUF_INIT;
    base_job(&j);
    j.headers[0].name = "List-Unsubscribe";
    j.headers[0].value = "<mailto:unsub@example.com>, <https://example.com/u?t=1>";
    j.headers[1].name = "X-Campaign";
    j.headers[1].value = "春季促销";
    j.n_headers = 2;
    build(&j, &b);
    assert_int_equal(header_value(b.data, "List-Unsubscribe", 1, &v), 0);
    assert_string_equal(v.data, j.headers[0].value);
    assert_int_equal(header_value(b.data, "X-Campaign", 0, &v), 0);
    decode_words(v.data, &d);
    assert_string_equal(d.data, "春季促销");
    /* extra headers come after MIME-Version */
    assert_true(strstr(b.data, "MIME-Version") < strstr(b.data, "X-Campaign"));
    buf_free(&b);
    buf_free(&v);
    buf_free(&d);
}

static void test_multipart_order(void **state)
{
    (void)state;
    job j;
    buf b = BUF_INIT, v = BUF_INIT, d = BUF_INIT;
    char delim[100], close[100];
    base_job(&j);
    j.html = "<p>Hello there</p>\n";
    j.html_len = strlen(j.html);
    build(&j, &b);
    assert_int_equal(header_value(b.data, "Content-Type", 1, &v), 0);
    const char *q = strstr(v.data, "boundary=\"");
    assert_non_null(q);
    q += 10;
    const char *qe = strchr(q, '"');
    assert_non_null(qe);
    size_t blen = (size_t)(qe - q);
    assert_true(blen <= 70);
    assert_memory_equal(q, "=_", 2);
    snprintf(delim, sizeof delim, "\r\n--%.*s\r\n", (int)blen, q);
    snprintf(close, sizeof close, "\r\n--%.*s--\r\n", (int)blen, q);
    const char *first = strstr(b.data, delim);
    assert_non_null(first);
    const char *second = strstr(first + 1, delim);
    assert_non_null(second);
    const char *end = strstr(b.data, close);
    assert_non_null(end);
    assert_int_equal((size_t)(end - b.data) + strlen(close), b.len);
    const char *plain = strstr(b.data, "text/plain");
    const char *html = strstr(b.data, "text/html");
    assert_true(first < plain && plain < second && second < html && html < end);
    /* each part decodes to its text */
    const char *pb = body_after(first + 2);
    assert_int_equal(qp_decode(pb, (size_t)(second - pb), &d), 0);
    assert_string_equal(d.data, "Hello there\r\n");
    buf_reset(&d);
    pb = body_after(second + 2);
    assert_int_equal(qp_decode(pb, (size_t)(end - pb), &d), 0);
    assert_string_equal(d.data, "<p>Hello there</p>\r\n");
    /* the same id gives the same boundary */
    buf c = BUF_INIT;
    build(&j, &c);
    assert_string_equal(b.data, c.data);
    buf_free(&c);
    buf_free(&b);
    buf_free(&v);
    buf_free(&d);
}

static void test_qp_round_trip(void **state)
{
    (void)state;
    job j;
    buf b = BUF_INIT, d = BUF_INIT, want = BUF_INIT;
    char text[2048] = "";
    strcat(text, "a=b and 1+1=2   \n");
    strcat(text, "trailing tab\t\n");
    for (int i = 0; i < 30; i++)
        strcat(text, "0123456789=");  /* a long line full of '=' */
    strcat(text, "\nCRLF line\r\nold Mac line\rcaf\xc3\xa9 na\xc3\xafve\n\n");
    for (int i = 0; i < 200; i++)
        strcat(text, "x");
    strcat(text, "\nends without newline  ");
    base_job(&j);
    j.text = text;
    j.text_len = strlen(text);
    build(&j, &b);
    assert_non_null(strstr(b.data, "Content-Transfer-Encoding: quoted-printable\r\n"));
    const char *body = body_after(b.data);
    size_t blen = b.len - (size_t)(body - b.data);
    /* encoded lines: at most 76 characters, no trailing white space */
    assert_crlf_lines(body, blen, 76);
    for (const char *p = strstr(body, "\r\n"); p; p = strstr(p + 2, "\r\n"))
        assert_true(p[-1] != ' ' && p[-1] != '\t');
    for (size_t i = 0; i < blen; i++)
        assert_true((unsigned char)body[i] < 0x80);
    assert_int_equal(qp_decode(body, blen, &d), 0);
    crlf_normalise(text, &want);
    assert_int_equal(d.len, want.len);
    assert_memory_equal(d.data, want.data, want.len);
    buf_free(&b);
    buf_free(&d);
    buf_free(&want);
}

static void test_base64_chinese_body(void **state)
{
    (void)state;
    job j;
    buf b = BUF_INIT, d = BUF_INIT, want = BUF_INIT;
    const char *text = "您好，王小明：\n\n" ZH60 "\n" ZH60 ZH60 "\r\n点击链接激活: "
                       "https://example.com/activate?t=abc\n";
    base_job(&j);
    j.text = text;
    j.text_len = strlen(text);
    build(&j, &b);
    assert_non_null(strstr(b.data, "Content-Transfer-Encoding: base64\r\n"));
    const char *body = body_after(b.data);
    size_t blen = b.len - (size_t)(body - b.data);
    assert_crlf_lines(body, blen, 76);
    assert_int_equal(b64_decode(body, blen, &d), 0);
    crlf_normalise(text, &want);
    assert_int_equal(d.len, want.len);
    assert_memory_equal(d.data, want.data, want.len);
    buf_free(&b);
    buf_free(&d);
    buf_free(&want);
}

static void test_whole_chinese_message_lines(void **state)
{
    (void)state;
    job j;
    buf b = BUF_INIT;
    char subject[1200] = "";
    base_job(&j);
    for (int i = 0; i < 6; i++)
        strcat(subject, ZH60);
    j.subject = subject;
    j.from_name = "滴水网 客服中心";
    j.to[0] = "王小明 <ming@example.com>";
    j.text = "第一行\n第二行\r最后一行";
    j.text_len = strlen(j.text);
    j.html = "<p>第一行<br>\n第二行</p>";
    j.html_len = strlen(j.html);
    build(&j, &b); /* asserts CRLF only, lines <= 998, ends with CRLF */
    for (size_t i = 0; i < b.len; i++)
        assert_true((unsigned char)b.data[i] < 0x80);
    buf_free(&b);
}

static void test_buffer_reuse(void **state)
{
    (void)state;
    job j;
    buf b = BUF_INIT, fresh = BUF_INIT;
    base_job(&j);
    j.subject = ZH60;
    j.html = "<p>x</p>";
    j.html_len = 8;
    build(&j, &b);
    base_job(&j);
    build(&j, &b);
    build(&j, &fresh);
    assert_int_equal(b.len, fresh.len);
    assert_string_equal(b.data, fresh.data);
    buf_free(&b);
    buf_free(&fresh);
}

static void test_bad_input_refused(void **state)
{
    (void)state;
    job j;
    buf b = BUF_INIT;
    mr_error err = MR_ERROR_INIT;
    base_job(&j);
    j.to[0] = "not an address";
    assert_int_equal(mime_build(&j, &b, &err), -1);
    assert_int_equal(err.rc, MAILROOM_EINVAL);
    assert_non_null(strstr(err.msg, "malformed address"));
    base_job(&j);
    j.headers[0].name = "X-Evil\r\nBcc";
    j.headers[0].value = "x";
    j.n_headers = 1;
    mr_error_clear(&err);
    assert_int_equal(mime_build(&j, &b, &err), -1);
    assert_int_equal(err.rc, MAILROOM_EINVAL);
    assert_non_null(strstr(err.msg, "malformed extra header"));
    /* a NULL err is allowed: the caller does not want the reason */
    assert_int_equal(mime_build(&j, &b, NULL), -1);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subject_ascii_raw),
        cmocka_unit_test(test_subject_ascii_long_folded),
        cmocka_unit_test(test_subject_long_word_encoded),
        cmocka_unit_test(test_subject_chinese_words),
        cmocka_unit_test(test_subject_with_encoded_word_marker),
        cmocka_unit_test(test_header_name_refused),
        cmocka_unit_test(test_mailbox_forms),
        cmocka_unit_test(test_mailbox_long_chinese_name),
        cmocka_unit_test(test_msgid_local),
        cmocka_unit_test(test_message_id),
        cmocka_unit_test(test_text_only_message),
        cmocka_unit_test(test_chinese_names_encoded),
        cmocka_unit_test(test_long_recipient_list_folded),
        cmocka_unit_test(test_bcc_never_in_message),
        cmocka_unit_test(test_extra_headers),
        cmocka_unit_test(test_multipart_order),
        cmocka_unit_test(test_qp_round_trip),
        cmocka_unit_test(test_base64_chinese_body),
        cmocka_unit_test(test_whole_chinese_message_lines),
        cmocka_unit_test(test_buffer_reuse),
        cmocka_unit_test(test_bad_input_refused),
        cmocka_unit_test(test_mailbox_international_forms),
        cmocka_unit_test(test_idn_message_is_7bit),
        cmocka_unit_test(test_utf8_local_part_message),
        cmocka_unit_test(test_needs_smtputf8),
        cmocka_unit_test(test_long_utf8_address_folds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
