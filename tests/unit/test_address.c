/*
 * test_address: common/address.c, the mailboxes a job carries. The parser stands
 * between job data and the SMTP envelope and headers, so it must take the display name
 * forms people write (UTF-8 names, quoted names with escapes, surrounding blanks) and
 * refuse everything that could inject a command or a header (CR/LF, NUL, stray '<' or
 * '>', quoted local parts, domain literals, non-ASCII addresses, bad host labels),
 * each refusal with MAILROOM_EINVAL and a reason. Also the UTF-8 validator the job
 * checks rely on (overlongs, surrogates, code points above U+10FFFF, truncation).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "address.h"
#include "error.h"

static void test_mailboxes(void **state)
{
    (void)state;
    addr_mailbox mb;
    mr_error err = MR_ERROR_INIT;
    const char *s = "王小明 <ming@example.com>";
    assert_int_equal(addr_parse(s, strlen(s), &mb, &err), 0);
    assert_string_equal(mb.name, "王小明");
    assert_string_equal(mb.spec, "ming@example.com");
    s = "\"Doe, \\\"JD\\\" Jane\" <jane+tag@mail.example.co.uk>";
    assert_int_equal(addr_parse(s, strlen(s), &mb, &err), 0);
    assert_string_equal(mb.name, "Doe, \"JD\" Jane");
    assert_string_equal(mb.spec, "jane+tag@mail.example.co.uk");
    s = "  plain@example.com ";
    assert_int_equal(addr_parse(s, strlen(s), &mb, &err), 0);
    assert_string_equal(mb.name, "");
    static const char *bad[] = {
        "a@example.com\r\nRCPT TO:<b@example.com>", "a@example.com>", "<a@example.com",
        "x <y> <a@example.com>", "a@-example.com", "a@example-.com", ".a@example.com",
        "a@exa_mple.com", "\"a\"@example.com", "a@[127.0.0.1]", "ü@example.com",
        "a@example.com\0", "Na\"me <a@example.com>", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = strlen(bad[i]) + (strcmp(bad[i], "a@example.com") == 0);
        mr_error_clear(&err);
        if (addr_parse(bad[i], len, &mb, &err) != -1)
            fail_msg("mailbox %zu accepted: %s", i, bad[i]);
        if (err.rc != MAILROOM_EINVAL || err.msg[0] == '\0')
            fail_msg("mailbox %zu: code %d, reason '%s'", i, (int)err.rc, err.msg);
    }
    char local[70];
    memset(local, 0, sizeof local);
    memset(local, 'a', 65);
    memcpy(local + 65, "@x.io", 4);
    assert_false(addr_spec_valid(local, strlen(local)));
    assert_true(addr_utf8_valid("滴水网", strlen("滴水网")));
    assert_false(addr_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    assert_false(addr_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(addr_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(addr_utf8_valid("\xe6\xbb", 2));         /* truncated */
}

/* A failure reported in a reason, for the messages that say which part is wrong. */
static void test_reasons(void **state)
{
    (void)state;
    static const struct {
        const char *input, *why;
    } cases[] = {
        {"a@example.com\r\n", "control character"},
        {"a@example.com>", "'>' without '<'"},
        {"x <y> <a@example.com>", "'<' or '>' in display name"},
        {"Na\"me <a@example.com>", "quote inside unquoted display name"},
        {"\"Na\"me\" <a@example.com>", "unescaped quote"},
        {"not-an-address", "malformed address"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        addr_mailbox mb;
        mr_error err = MR_ERROR_INIT;
        assert_int_equal(addr_parse(cases[i].input, strlen(cases[i].input), &mb, &err), -1);
        if (!strstr(err.msg, cases[i].why))
            fail_msg("'%s': '%s' does not contain '%s'", cases[i].input, err.msg, cases[i].why);
        /* a caller without interest in the reason passes NULL */
        assert_int_equal(addr_parse(cases[i].input, strlen(cases[i].input), &mb, NULL), -1);
    }
    /* a display name longer than ADDR_NAME_MAX bytes */
    char longname[ADDR_NAME_MAX + 32];
    memset(longname, 'n', ADDR_NAME_MAX + 1);
    strcpy(longname + ADDR_NAME_MAX + 1, " <a@example.com>");
    addr_mailbox mb;
    mr_error err = MR_ERROR_INIT;
    assert_int_equal(addr_parse(longname, strlen(longname), &mb, &err), -1);
    assert_non_null(strstr(err.msg, "too long"));
    /* exactly ADDR_NAME_MAX bytes fits */
    memmove(longname + ADDR_NAME_MAX, longname + ADDR_NAME_MAX + 1, strlen(longname + ADDR_NAME_MAX));
    assert_int_equal(addr_parse(longname, strlen(longname), &mb, &err), 0);
    assert_int_equal(strlen(mb.name), ADDR_NAME_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mailboxes),
        cmocka_unit_test(test_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
