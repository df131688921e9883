/*
 * test_address: common/address.c, the mailboxes a job carries. The parser stands
 * between job data and the SMTP envelope and headers, so it must take the display name
 * forms people write (UTF-8 names, quoted names with escapes, surrounding blanks) and
 * refuse everything that could inject a command or a header (CR/LF, NUL, stray '<' or
 * '>', quoted local parts, domain literals, bad host labels), each refusal with
 * MAILROOM_EINVAL and a reason. International addresses: internationalised domains go
 * to A-labels through libidn2 (what it refuses is refused, with its reason), UTF-8 local
 * parts are kept byte for byte and flagged as needing SMTPUTF8, and the limits are
 * measured in octets, the envelope's on its A-label form. Also the UTF-8 validator the
 * job checks rely on (overlongs, surrogates, code points above U+10FFFF, truncation).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
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
    assert_string_equal(mb.envelope, "ming@example.com");
    assert_int_equal(mb.utf8, 0);
    s = "\"Doe, \\\"JD\\\" Jane\" <jane+tag@mail.example.co.uk>";
    assert_int_equal(addr_parse(s, strlen(s), &mb, &err), 0);
    assert_string_equal(mb.name, "Doe, \"JD\" Jane");
    assert_string_equal(mb.spec, "jane+tag@mail.example.co.uk");
    s = "  plain@Example.COM ";
    assert_int_equal(addr_parse(s, strlen(s), &mb, &err), 0);
    assert_string_equal(mb.name, "");
    assert_string_equal(mb.spec, "plain@Example.COM"); /* host names kept as written */
    assert_string_equal(mb.envelope, "plain@Example.COM");
    static const char *bad[] = {
        "a@example.com\r\nRCPT TO:<b@example.com>",
        "a@example.com>",
        "<a@example.com",
        "x <y> <a@example.com>",
        "a@-example.com",
        "a@example-.com",
        ".a@example.com",
        "a@exa_mple.com",
        "\"a\"@example.com",
        "a@[127.0.0.1]",
        "a@example.com\0",
        "Na\"me <a@example.com>",
        "",
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
        {"not-an-address", "malformed address: no '@'"},
        {"a@b@example.com", "more than one '@'"},
        {"\"a b\"@example.com", "quoted local parts are not accepted"},
        {"a@[127.0.0.1]", "domain literals"},
        {"a@localhost", "two or more labels"},
        {"a@example..com", "empty label"},
        {"a b@example.com", "' ' in local part"},
        {"a..b@example.com", "'..' in local part"},
        {"a.@example.com", "starts or ends with '.'"},
        {"a@exa_mple.com", "domain label 'exa_mple' is not a host name label"},
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
    memmove(longname + ADDR_NAME_MAX, longname + ADDR_NAME_MAX + 1,
            strlen(longname + ADDR_NAME_MAX));
    assert_int_equal(addr_parse(longname, strlen(longname), &mb, &err), 0);
    assert_int_equal(strlen(mb.name), ADDR_NAME_MAX);
}

/* One accepted address: its envelope form and SMTPUTF8 flag; the spec kept as given. */
static void accepted(const char *input, const char *envelope, int utf8)
{
    addr_mailbox mb;
    mr_error err = MR_ERROR_INIT;
    if (addr_parse(input, strlen(input), &mb, &err) != 0)
        fail_msg("'%s' refused: %s", input, err.msg);
    if (strcmp(mb.envelope, envelope) != 0 || mb.utf8 != utf8)
        fail_msg("'%s': envelope '%s' utf8 %d, want '%s' %d", input, mb.envelope, mb.utf8, envelope,
                 utf8);
    const char *lt = strrchr(input, '<');
    const char *spec = lt ? lt + 1 : input;
    size_t spec_len = lt ? strlen(spec) - 1 : strlen(spec);
    if (strlen(mb.spec) != spec_len || memcmp(mb.spec, spec, spec_len) != 0)
        fail_msg("'%s': spec '%s' is not the address as given", input, mb.spec);
    /* the bare-address call gives the same answer */
    char env[ADDR_SPEC_MAX + 1];
    int flag = -1;
    assert_int_equal(addr_spec_parse(mb.spec, strlen(mb.spec), env, &flag, NULL), 0);
    assert_string_equal(env, envelope);
    assert_int_equal(flag, utf8);
    assert_true(addr_spec_valid(mb.spec, strlen(mb.spec)));
}

/* One refused address (len bytes): MAILROOM_EINVAL and a reason holding why. */
static void refused_len(const char *input, size_t len, const char *why)
{
    addr_mailbox mb;
    mr_error err = MR_ERROR_INIT;
    if (addr_parse(input, len, &mb, &err) != -1)
        fail_msg("'%s' accepted as '%s'", input, mb.envelope);
    if (err.rc != MAILROOM_EINVAL || !strstr(err.msg, why))
        fail_msg("'%s': code %d, reason '%s' does not contain '%s'", input, (int)err.rc, err.msg,
                 why);
    assert_false(addr_spec_valid(input, len));
}

static void refused(const char *input, const char *why)
{
    refused_len(input, strlen(input), why);
}

/* Internationalised domains to A-labels: U-labels, mapped forms (case, width, NFD),
 * non-transitional ß and ς, given A-labels checked and lower-cased, RTL labels. */
static void test_idn_domains(void **state)
{
    (void)state;
    accepted("ming@例子.测试", "ming@xn--fsqu00a.xn--0zwm56d", 0);
    accepted("王小明 <ming@例子.测试>", "ming@xn--fsqu00a.xn--0zwm56d", 0);
    accepted("info@Bücher.de", "info@xn--bcher-kva.de", 0);
    accepted("info@BÜCHER.DE", "info@xn--bcher-kva.DE", 0); /* ASCII labels as written */
    accepted("info@xn--bcher-kva.de", "info@xn--bcher-kva.de", 0);
    accepted("info@XN--BCHER-KVA.de", "info@xn--bcher-kva.de", 0);
    accepted("a@u\xcc\x88"
             "ber.de",
             "a@xn--ber-goa.de", 0);                      /* NFD input, NFC */
    accepted("a@ｅｘａｍｐｌｅ.com", "a@example.com", 0); /* fullwidth, mapped */
    accepted("a@faß.de", "a@xn--fa-hia.de", 0);           /* non-transitional: not "fass" */
    accepted("a@σς.gr", "a@xn--3xab.gr", 0);
    accepted("a@עברית.il", "a@xn--5dbqzzl.il", 0);
    accepted("a@пример.рф", "a@xn--e1afmkfd.xn--p1ai", 0);
    accepted("a@ab--cd.example", "a@ab--cd.example", 0); /* a host name, not an IDN */
    /* libidn2 does not check UTS #39 confusables: Latin and Cyrillic mixed pass */
    accepted("a@раураl.com", "a@xn--l-7sba6dbr.com", 0);
}

/* What IDNA2008 (libidn2) refuses, with its reason; and what maps out of a host name. */
static void test_idn_refused(void **state)
{
    (void)state;
    refused("a@aא.com", "bi-directional");           /* LTR and RTL mixed in a label */
    refused("a@\xe2\x98\x83.com", "disallowed");     /* U+2603 snowman: a symbol */
    refused("a@xn--vnk.com", "refused by IDNA2008"); /* decodes to U+3236, disallowed */
    refused("a@xn--bcher-kvb.de", "refused by IDNA2008");
    refused("a@xn--.de", "refused by IDNA2008");
    refused("a@a\xe2\x80\x8d"
            "b.com",
            "context-j"); /* ZERO WIDTH JOINER */
    refused("a@ü-.de", "hyphen");
    refused("a@\xcc\x88"
            "a.de",
            "combining");                         /* leading combining mark */
    refused("a@ü_b.de", "not a host name label"); /* maps to xn--_b-wka */
    refused("a@\xe2\x89\xa0.com", "STD3 rules");  /* U+2260 */
    refused("a@=\xcc\xb8.com", "STD3 rules");     /* the same, NFD */
    refused("a@a\xe3\x80\x82"
            "b.com",
            "not a host name label"); /* U+3002 maps to '.' */
    refused("a@ü..de", "empty label");
}

/* UTF-8 local parts: kept byte for byte, flagged; controls, C1 included, refused. */
static void test_utf8_local_parts(void **state)
{
    (void)state;
    accepted("用户@例子.测试", "用户@xn--fsqu00a.xn--0zwm56d", 1);
    accepted("pelé@example.com", "pelé@example.com", 1);
    accepted("José <josé.garcía@example.com>", "josé.garcía@example.com", 1);
    accepted("u\xcc\x88ser@example.com", "u\xcc\x88ser@example.com", 1); /* never normalised */
    accepted("пользователь@пример.рф", "пользователь@xn--e1afmkfd.xn--p1ai", 1);
    accepted("a\xc2\xa0z@example.com", "a\xc2\xa0z@example.com", 1); /* U+00A0: not C1 */
    refused("a\xc2\x85z@example.com", "C1 control");                 /* U+0085 */
    refused("a\xc2\x9fz@example.com", "C1 control");                 /* U+009F */
    refused("a\xc0\xafz@example.com", "not valid UTF-8");
    refused("a\xe6\xbb@example.com", "not valid UTF-8");
    refused("a\x7fz@example.com", "control character");
    refused("a\tz@example.com", "control character");
    refused_len("a\0z@example.com", 15, "control character");
    refused("\"用户\"@example.com", "quoted local parts");
    refused("用户.@example.com", "starts or ends with '.'");
    refused("用..户@example.com", "'..' in local part");
    refused("用户 <用户@example.com", "' ' in local part"); /* no '>': one bare address */
}

/* Appends n copies of s to out (of cap bytes, NUL-terminated). */
static void repeat(char *out, size_t cap, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_true(strlen(out) + strlen(s) < cap);
    for (size_t i = 0; i < n; i++)
        strcat(out, s);
}

/* The 64 and 254 limits in octets, the envelope's on the A-label form; 63 per label as
 * an A-label; 253 for the domain as A-labels. */
static void test_limits(void **state)
{
    (void)state;
    char a[1024] = "", env[1024] = "";
    /* local part: 64 octets fit, 65 do not; 21 CJK characters are 63 octets, 22 are 66 */
    repeat(a, sizeof a, "a", 64);
    strcat(a, "@example.com");
    accepted(a, a, 0);
    a[0] = '\0';
    repeat(a, sizeof a, "a", 65);
    strcat(a, "@example.com");
    refused(a, "local part is 65 octets, over the limit of 64");
    a[0] = '\0';
    repeat(a, sizeof a, "用", 21);
    strcat(a, "@example.com");
    accepted(a, a, 1);
    a[0] = '\0';
    repeat(a, sizeof a, "用", 22);
    strcat(a, "@example.com");
    refused(a, "local part is 66 octets");

    /* the address as given: 254 octets fit, 255 do not */
    a[0] = '\0';
    repeat(a, sizeof a, "a", 64);
    strcat(a, "@");
    repeat(a, sizeof a, "b", 63);
    strcat(a, ".");
    repeat(a, sizeof a, "c", 63);
    strcat(a, ".");
    repeat(a, sizeof a, "d", 57);
    strcat(a, ".com");
    assert_int_equal(strlen(a), 254);
    accepted(a, a, 0);
    strcat(a, "x");
    refused(a, "address is 255 octets, over the limit of 254");

    /* on the envelope: 58 + "@" + 16 x "例子." + "com" is 174 octets as given and exactly
     * 254 as A-labels (each "例子" is "xn--fsqu00a"); one more octet is refused */
    a[0] = '\0';
    repeat(a, sizeof a, "a", 58);
    strcat(a, "@");
    repeat(a, sizeof a, "例子.", 16);
    strcat(a, "com");
    assert_int_equal(strlen(a), 174);
    repeat(env, sizeof env, "a", 58);
    strcat(env, "@");
    repeat(env, sizeof env, "xn--fsqu00a.", 16);
    strcat(env, "com");
    assert_int_equal(strlen(env), 254);
    accepted(a, env, 0);
    memmove(a + 1, a, strlen(a) + 1);
    refused(a, "255 octets on the envelope");

    /* the domain: 21 x "例子." + "com" is 255 octets as A-labels */
    strcpy(a, "a@");
    repeat(a, sizeof a, "例子.", 21);
    strcat(a, "com");
    refused(a, "domain is over 253 octets as A-labels");

    /* a label: "ü" + 55 x "a" is 57 octets and a 63-octet A-label; one more "a" makes
     * a 58-octet label whose A-label would be 64 */
    strcpy(a, "x@ü");
    repeat(a, sizeof a, "a", 55);
    strcat(a, ".de");
    mr_error err = MR_ERROR_INIT;
    assert_int_equal(addr_spec_parse(a, strlen(a), env, NULL, &err), 0);
    assert_int_equal(strlen(env), strlen("x@.de") + 63);
    strcpy(a, "x@ü");
    repeat(a, sizeof a, "a", 56);
    strcat(a, ".de");
    refused(a, "refused by IDNA2008");
    /* an ASCII label of 64 */
    strcpy(a, "x@");
    repeat(a, sizeof a, "l", 64);
    strcat(a, ".de");
    refused(a, "at most 63");
}

/* addr_spec_parse with NULL outputs and a NULL err; the mailbox fields after a refusal. */
static void test_spec_parse_outputs(void **state)
{
    (void)state;
    const char *s = "用户@例子.测试";
    assert_int_equal(addr_spec_parse(s, strlen(s), NULL, NULL, NULL), 0);
    int utf8 = 0;
    assert_int_equal(addr_spec_parse(s, strlen(s), NULL, &utf8, NULL), 0);
    assert_int_equal(utf8, 1);
    addr_mailbox mb;
    memset(&mb, 'x', sizeof mb);
    s = "Name <a@aא.com>";
    assert_int_equal(addr_parse(s, strlen(s), &mb, NULL), -1);
    assert_string_equal(mb.spec, "");
    assert_string_equal(mb.envelope, "");
    assert_int_equal(mb.utf8, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mailboxes),          cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_idn_domains),        cmocka_unit_test(test_idn_refused),
        cmocka_unit_test(test_utf8_local_parts),   cmocka_unit_test(test_limits),
        cmocka_unit_test(test_spec_parse_outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
