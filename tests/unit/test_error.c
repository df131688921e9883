/*
 * test_error: common/error.c, the one way internal code reports a failure. Every
 * reason ends up in a log line, a job's status record, a JSON event or an
 * application's mailroom_errmsg, so the text must stay one printable line of valid
 * UTF-8 whatever went into it. Checked: mr_fail formats, sets the code and returns -1;
 * a NULL err is accepted by every function; mr_prefix puts "what: " before the
 * message and keeps the code; mr_error_clear; a message longer than MR_ERROR_MAX is
 * cut without ending inside a UTF-8 sequence, for 2-, 3- and 4-byte sequences at
 * every offset across the cut (the expected length is derived from the offset: the
 * longest whole-character prefix that fits); control characters (C0, DEL, and a NUL
 * inside the given length) become '?'.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "support.h"

static void test_fail_formats(void **state)
{
    (void)state;
    mr_error err = MR_ERROR_INIT;
    assert_int_equal(err.rc, MAILROOM_OK);
    assert_string_equal(err.msg, "");
    assert_int_equal(mr_fail(&err, MAILROOM_EREDIS, "lost %s after %d tries", "Redis", 3), -1);
    assert_int_equal(err.rc, MAILROOM_EREDIS);
    assert_string_equal(err.msg, "lost Redis after 3 tries");
    /* a second failure replaces the first */
    assert_int_equal(mr_fail(&err, MAILROOM_ENOMEM, "out of memory"), -1);
    assert_int_equal(err.rc, MAILROOM_ENOMEM);
    assert_string_equal(err.msg, "out of memory");
    mr_error_clear(&err);
    assert_int_equal(err.rc, MAILROOM_OK);
    assert_string_equal(err.msg, "");
    /* plain data: copied by assignment */
    mr_fail(&err, MAILROOM_EKEY, "no key");
    mr_error copy = err;
    mr_error_clear(&err);
    assert_int_equal(copy.rc, MAILROOM_EKEY);
    assert_string_equal(copy.msg, "no key");
}

static void test_null_err(void **state)
{
    (void)state;
    assert_int_equal(mr_fail(NULL, MAILROOM_EINVAL, "ignored %d", 1), -1);
    assert_int_equal(mr_prefix(NULL, "ignored %d", 2), -1);
    mr_error_clear(NULL);
}

static void test_prefix(void **state)
{
    (void)state;
    mr_error err = MR_ERROR_INIT;
    mr_fail(&err, MAILROOM_ETIMEOUT, "read timed out");
    assert_int_equal(mr_prefix(&err, "job %s", "01J"), -1);
    assert_string_equal(err.msg, "job 01J: read timed out");
    assert_int_equal(err.rc, MAILROOM_ETIMEOUT);
    mr_prefix(&err, "worker %d", 3);
    assert_string_equal(err.msg, "worker 3: job 01J: read timed out");
    assert_int_equal(err.rc, MAILROOM_ETIMEOUT);
    /* a prefix on a full message: the prefix stays, the end is cut */
    char big[MR_ERROR_MAX + 100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    mr_fail(&err, MAILROOM_EINVAL, "%s", big);
    assert_int_equal(strlen(err.msg), MR_ERROR_MAX - 1);
    mr_prefix(&err, "outer");
    assert_int_equal(strlen(err.msg), MR_ERROR_MAX - 1);
    assert_memory_equal(err.msg, "outer: xxx", 10);
    /* the prefix is made printable too */
    mr_fail(&err, MAILROOM_EINVAL, "inner");
    mr_prefix(&err, "a\nb");
    assert_string_equal(err.msg, "a?b: inner");
}

/*
 * A message of `lead` ASCII bytes and then copies of the character ch (n_bytes long),
 * longer than MR_ERROR_MAX: kept is every whole character that fits in MR_ERROR_MAX - 1
 * bytes. Checked through mr_fail, mr_prefix and mr_text_copy.
 */
static void check_cut(const char *ch, size_t n_bytes, size_t lead)
{
    char text[3 * MR_ERROR_MAX];
    memset(text, 'a', lead);
    size_t len = lead;
    while (len + n_bytes < sizeof text - 1) {
        memcpy(text + len, ch, n_bytes);
        len += n_bytes;
    }
    text[len] = '\0';
    size_t room = MR_ERROR_MAX - 1;
    size_t want = lead + (room - lead) / n_bytes * n_bytes;

    mr_error err = MR_ERROR_INIT;
    mr_fail(&err, MAILROOM_EINVAL, "%s", text);
    size_t got = strlen(err.msg);
    if (got != want)
        fail_msg("%zu-byte characters after %zu ASCII: %zu bytes kept, expected %zu", n_bytes,
                 lead, got, want);
    assert_true(support_utf8_valid(err.msg, got));
    assert_memory_equal(err.msg, text, got);

    /* the same through mr_prefix: "p: " then the message */
    mr_fail(&err, MAILROOM_EINVAL, "%s", text + lead);
    mr_prefix(&err, "%.*s", (int)(lead > 2 ? lead - 2 : 0), text);
    got = strlen(err.msg);
    assert_true(support_utf8_valid(err.msg, got));
    assert_true(got <= room && got + n_bytes > room);

    /* mr_text_copy with a small buffer: cap - 1 bytes at most */
    for (size_t cap = 1; cap <= 2 * n_bytes + lead + 1; cap++) {
        char out[32];
        memset(out, 0x5A, sizeof out);
        size_t n = mr_text_copy(out, cap, text, len);
        size_t expect = cap - 1 <= lead ? cap - 1 : lead + (cap - 1 - lead) / n_bytes * n_bytes;
        assert_int_equal(n, expect);
        assert_int_equal(out[n], '\0');
        assert_true(support_utf8_valid(out, n));
        assert_int_equal((unsigned char)out[cap], 0x5A); /* nothing past cap */
    }
}

static void test_cut_on_utf8_boundary(void **state)
{
    (void)state;
    static const struct {
        const char *ch;
        size_t n;
    } chars[] = {
        {"\xc3\xa9", 2},         /* é */
        {"\xe6\xbb\xb4", 3},     /* 滴 */
        {"\xf0\x9f\x94\x91", 4}, /* 🔑 */
    };
    for (size_t i = 0; i < sizeof chars / sizeof chars[0]; i++) {
        assert_true(support_utf8_valid(chars[i].ch, chars[i].n));
        assert_int_equal(strlen(chars[i].ch), chars[i].n);
        for (size_t lead = 0; lead < 2 * chars[i].n; lead++)
            check_cut(chars[i].ch, chars[i].n, lead);
    }
}

static void test_control_characters(void **state)
{
    (void)state;
    mr_error err = MR_ERROR_INIT;
    mr_fail(&err, MAILROOM_EINVAL, "a\rb\nc\td\x1b[2Je\x7f" "f\x01g\x1fh");
    assert_string_equal(err.msg, "a?b?c?d?[2Je?f?g?h");
    /* everything else is kept: printable ASCII and UTF-8 */
    mr_fail(&err, MAILROOM_EINVAL, "~ \"x\" \xe6\xbb\xb4\xe6\xb0\xb4 \xc3\xa9");
    assert_string_equal(err.msg, "~ \"x\" \xe6\xbb\xb4\xe6\xb0\xb4 \xc3\xa9");
    /* mr_text_copy: a NUL within the given length is a control character too, and
     * the copy stops at the length given, not at a NUL */
    char out[16];
    assert_int_equal(mr_text_copy(out, sizeof out, "a\0b\0c", 5), 5);
    assert_memory_equal(out, "a?b?c", 6);
    assert_int_equal(mr_text_copy(out, sizeof out, "abcdef", 3), 3);
    assert_string_equal(out, "abc");
    /* every C0 byte and DEL, and nothing else below 0x80 */
    char all[128], copy[129];
    for (int c = 0; c < 128; c++)
        all[c] = (char)c;
    assert_int_equal(mr_text_copy(copy, sizeof copy, all, sizeof all), 128);
    for (int c = 0; c < 128; c++) {
        int control = c < 0x20 || c == 0x7F;
        if (copy[c] != (control ? '?' : (char)c))
            fail_msg("byte 0x%02x became 0x%02x", c, (unsigned char)copy[c]);
    }
    /* a zero-sized buffer is left alone */
    out[0] = 'z';
    assert_int_equal(mr_text_copy(out, 0, "abc", 3), 0);
    assert_int_equal(out[0], 'z');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_formats),
        cmocka_unit_test(test_null_err),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_cut_on_utf8_boundary),
        cmocka_unit_test(test_control_characters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
