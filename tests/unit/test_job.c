/*
 * test_job: common/job.c, the v1 job format that the producer validates before
 * signing and the consumer after taking a job from Redis. Checked: a full job decodes
 * into the expected fields (times in ms, lengths); every kind of refusal names its
 * reason and reports MAILROOM_EINVAL (MAILROOM_ETOOBIG for size), because the consumer
 * puts that reason into the job's record and the library hands the code to the
 * application; the "sig" rules of job_from_tree; job_peek_id; job ids; and the one
 * strict JSON parser (job_parse_strict), which must refuse what json-c would quietly
 * cut (an escaped NUL in a value or a member name) and anything beyond RFC 8259; and
 * international addresses (IDN domains, UTF-8 local parts) in every address member.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "job.h"

#define SIG "\"kid\":\"default\",\"alg\":\"hmac-sha1\",\"sig\":\"0000000000000000000000000000000000000000\""
#define BASE                                                                              \
    "\"v\":\"1\",\"id\":\"01JDQ6Z3K8P4W7X2M5N9R0T1AB\",\"from\":\"noreply@example.com\"," \
    "\"created_at\":\"2026-11-24T13:00:00Z\"," SIG

static int decode(const char *raw, mr_error *err)
{
    job j;
    int rc = job_decode(raw, strlen(raw), &j, err);
    job_clear(&j);
    return rc;
}

static void test_decode_full_job(void **state)
{
    (void)state;
    const char *raw = "{" BASE ",\"to\":[\"王小明 <ming@example.com>\",\"b@example.org\"],"
                      "\"cc\":[\"\\\"Doe, Jane\\\" <jane@example.com>\"],\"bcc\":[\"x@example.com\"],"
                      "\"from_name\":\"滴水网\",\"reply_to\":\"help@example.com\","
                      "\"subject\":\"请激活您的账户\",\"text\":\"line1\\r\\nline2\",\"html\":\"<p>x</p>\","
                      "\"headers\":{\"List-Unsubscribe\":\"<https://example.com/u>\",\"X-Campaign\":\"激活\"},"
                      "\"send_at\":\"2026-11-24T14:00:00+08:00\",\"expires_at\":\"2026-11-25T13:00:00.5Z\"}";
    job j;
    mr_error err = MR_ERROR_INIT;
    if (job_decode(raw, strlen(raw), &j, &err) != 0)
        fail_msg("refused: %s", err.msg);
    assert_int_equal(err.rc, MAILROOM_OK); /* a success leaves err alone */
    assert_int_equal(j.n_to, 2);
    assert_int_equal(j.n_cc, 1);
    assert_int_equal(j.n_bcc, 1);
    assert_int_equal(j.n_headers, 2);
    assert_string_equal(j.subject, "请激活您的账户");
    assert_string_equal(j.text, "line1\r\nline2");
    assert_int_equal(j.text_len, 12);
    assert_int_equal(j.created_ms, 1795525200000LL);
    assert_int_equal(j.send_at_ms, 1795525200000LL - 7 * 3600000LL);
    assert_int_equal(j.expires_ms, 1795525200000LL + 86400000LL + 500);
    job_clear(&j);
    job_clear(&j); /* cleared twice is fine */
    job_clear(NULL);
}

/* Each case: a raw job and a fragment its refusal must contain. */
static void test_decode_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *raw, *why;
    } cases[] = {
        {"not json", "not valid JSON"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\"", "truncated"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\"} x", "not valid JSON"},
        {"[1,2]", "must be a JSON object"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\"}", "missing member 'text'"},
        {"{" BASE ",\"subject\":\"s\",\"text\":\"t\"}", "'to' must hold at least one"},
        {"{" BASE ",\"to\":[],\"subject\":\"s\",\"text\":\"t\"}", "'to' must hold at least one"},
        {"{" BASE ",\"to\":\"a@example.com\",\"subject\":\"s\",\"text\":\"t\"}", "array of strings"},
        {"{" BASE ",\"to\":[1],\"subject\":\"s\",\"text\":\"t\"}", "array of strings"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":5,\"text\":\"t\"}", "'subject' must be a string"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":null,\"text\":\"t\"}", "'subject' must be a string"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"a\\r\\nBcc: x@evil.com\",\"text\":\"t\"}", "control character"},
        {"{" BASE ",\"to\":[\"a@example.com\\r\\nRCPT TO:<x@evil.com>\"],\"subject\":\"s\",\"text\":\"t\"}", "control character"},
        {"{" BASE ",\"to\":[\"Evil\\nBcc: x@evil.com <a@example.com>\"],\"subject\":\"s\",\"text\":\"t\"}", "control character"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\\u0000u\"}", "NUL"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"\xff\xfe\",\"text\":\"t\"}", "JSON"},
        /* UTF-8 that json-c's own check lets through: refused by the job's */
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"\xc0\xaf\",\"text\":\"t\"}", "UTF-8"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"\xed\xa0\x80\"}", "UTF-8"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"\xf4\x90\x80\x80\",\"text\":\"t\"}", "UTF-8"},
        {"{" BASE ",\"to\":[\"not-an-address\"],\"subject\":\"s\",\"text\":\"t\"}", "malformed address"},
        {"{" BASE ",\"to\":[\"a@localhost\"],\"subject\":\"s\",\"text\":\"t\"}", "malformed address"},
        {"{" BASE ",\"to\":[\"a..b@example.com\"],\"subject\":\"s\",\"text\":\"t\"}", "malformed address"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"extra\":\"x\"}", "unknown member 'extra'"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"headers\":{\"Bcc\":\"x@evil.com\"}}", "not allowed"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"headers\":{\"X-Mailroom-Id\":\"1\"}}", "not allowed"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"headers\":{\"X-A\":\"v\\r\\nBcc: x\"}}", "control character"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"headers\":{\"X-A\":{\"deep\":\"x\"}}}", "JSON"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"send_at\":\"tomorrow\"}", "RFC 3339"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"send_at\":\"2026-11-24T13:00:00Z\\u0000\"}", "NUL"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\\u0000x\":\"s\",\"text\":\"t\"}", "NUL"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"send_at\":\"0999-01-01T00:00:00Z\"}", "RFC 3339"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"expires_at\":\"9999-12-31T23:59:60Z\"}", "RFC 3339"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"a\\nb\\u001b[2J\":\"\"}", "unknown member 'a?b?[2J'"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"expires_at\":\"2026-02-30T00:00:00Z\"}", "RFC 3339"},
        {"{\"v\":\"2\",\"id\":\"x\",\"from\":\"noreply@example.com\",\"created_at\":\"2026-11-24T13:00:00Z\"," SIG ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\"}", "unsupported version"},
        {"{\"v\":\"1\",\"id\":\"bad id\",\"from\":\"noreply@example.com\",\"created_at\":\"2026-11-24T13:00:00Z\"," SIG ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\"}", "'id' must match"},
        {"{\"v\":\"1\",\"id\":\"x\",\"from\":\"Name <noreply@example.com>\",\"created_at\":\"2026-11-24T13:00:00Z\"," SIG ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\"}", "'from' is not"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mr_error err = MR_ERROR_INIT;
        if (decode(cases[i].raw, &err) != -1)
            fail_msg("case %zu accepted: %s", i, cases[i].raw);
        if (!strstr(err.msg, cases[i].why))
            fail_msg("case %zu: '%s' does not contain '%s'", i, err.msg, cases[i].why);
        /* an invalid job is the caller's mistake, not Redis' or the memory's */
        if (err.rc != MAILROOM_EINVAL)
            fail_msg("case %zu: code %d, expected MAILROOM_EINVAL", i, (int)err.rc);
    }
}

/* International addresses in every address member: accepted as given (the job keeps
 * its strings); what IDNA2008 or the local part rules refuse is refused with the
 * member, the item and the reason. */
static void test_international_addresses(void **state)
{
    (void)state;
    const char *raw =
        "{\"v\":\"1\",\"id\":\"x\",\"from\":\"邮件@例子.测试\",\"created_at\":\"2026-11-24T13:00:"
        "00Z\"," SIG ",\"to\":[\"王小明 "
                     "<ming@例子.测试>\",\"用户@Bücher.de\"],\"cc\":[\"ops@xn--bcher-kva.de\"],"
        "\"bcc\":[\"пользователь@пример.рф\"],\"reply_to\":\"José <josé@example.com>\","
        "\"subject\":\"s\",\"text\":\"t\"}";
    job j;
    mr_error err = MR_ERROR_INIT;
    if (job_decode(raw, strlen(raw), &j, &err) != 0)
        fail_msg("refused: %s", err.msg);
    assert_string_equal(j.from, "邮件@例子.测试");
    assert_string_equal(j.to[1], "用户@Bücher.de");
    assert_string_equal(j.bcc[0], "пользователь@пример.рф");
    job_clear(&j);

    static const struct {
        const char *raw, *why;
    } cases[] = {
        {"{" BASE ",\"to\":[\"a@aא.com\"],\"subject\":\"s\",\"text\":\"t\"}",
         "member 'to' item 0: malformed address: domain label 'aא' refused by IDNA2008"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"cc\":[\"b@example.com\",\"c@☃.com\"],\"subject\":"
                  "\"s\",\"text\":\"t\"}",
         "member 'cc' item 1: malformed address: domain label '☃'"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"bcc\":[\"a\xc2\x85z@example.com\"],\"subject\":"
                  "\"s\",\"text\":\"t\"}",
         "member 'bcc' item 0: malformed address: C1 control"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"reply_to\":\"R "
                  "<r@ü_b.de>\",\"subject\":\"s\",\"text\":\"t\"}",
         "member 'reply_to': malformed address: domain label 'ü_b' maps to"},
        {"{\"v\":\"1\",\"id\":\"x\",\"from\":\"n@xn--vnk.com\",\"created_at\":\"2026-11-24T13:00:"
         "00Z\"," SIG ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\"}",
         "member 'from' is not a well-formed address: domain label 'xn--vnk' refused"},
        {"{" BASE ",\"to\":[\"\\\"a b\\\"@example.com\"],\"subject\":\"s\",\"text\":\"t\"}",
         "quoted local parts are not accepted"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mr_error_clear(&err);
        if (decode(cases[i].raw, &err) != -1)
            fail_msg("case %zu accepted: %s", i, cases[i].raw);
        if (!strstr(err.msg, cases[i].why) || err.rc != MAILROOM_EINVAL)
            fail_msg("case %zu: code %d, '%s' does not contain '%s'", i, (int)err.rc, err.msg,
                     cases[i].why);
    }
}

/* "\\u0000" in JSON is a backslash and the text u0000, not a NUL: accepted. */
static void test_escaped_backslash_is_not_nul(void **state)
{
    (void)state;
    const char *raw = "{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"\\\\u0000\",\"text\":\"t\"}";
    job j;
    mr_error err = MR_ERROR_INIT;
    if (job_decode(raw, strlen(raw), &j, &err) != 0)
        fail_msg("refused: %s", err.msg);
    assert_string_equal(j.subject, "\\u0000");
    job_clear(&j);
}

static void test_decode_limits(void **state)
{
    (void)state;
    mr_error err = MR_ERROR_INIT;
    /* over 256 KiB is refused before parsing, as too big rather than invalid */
    size_t big = JOB_MAX_BYTES + 1;
    char *raw = malloc(big + 1);
    assert_non_null(raw);
    memset(raw, ' ', big);
    raw[big] = '\0';
    assert_int_equal(decode(raw, &err), -1);
    assert_non_null(strstr(err.msg, "over the limit"));
    assert_int_equal(err.rc, MAILROOM_ETOOBIG);
    free(raw);
    /* deep nesting */
    buf deep = BUF_INIT;
    for (int i = 0; i < 5000; i++)
        buf_puts(&deep, "[");
    assert_int_equal(decode(deep.data, &err), -1);
    assert_int_equal(err.rc, MAILROOM_EINVAL);
    buf_free(&deep);
    /* 101 recipients */
    buf many = BUF_INIT;
    buf_puts(&many, "{" BASE ",\"subject\":\"s\",\"text\":\"t\",\"to\":[");
    for (int i = 0; i <= JOB_MAX_RCPT; i++)
        buf_printf(&many, "%s\"u%d@example.com\"", i ? "," : "", i);
    buf_puts(&many, "]}");
    assert_int_equal(decode(many.data, &err), -1);
    assert_non_null(strstr(err.msg, "recipients"));
    buf_free(&many);
}

static void test_job_tree_sig_rules(void **state)
{
    (void)state;
    mr_error err = MR_ERROR_INIT;
    job j;
    json_object *signed_tree = json_tokener_parse(
        "{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"\",\"text\":\"\"}");
    assert_int_equal(job_from_tree(signed_tree, 0, &j, &err), -1);
    assert_non_null(strstr(err.msg, "before signing"));
    job_clear(&j);
    json_object *unsigned_tree = json_tokener_parse(
        "{\"v\":\"1\",\"id\":\"x\",\"from\":\"n@example.com\",\"created_at\":\"2026-11-24T13:00:00Z\","
        "\"kid\":\"default\",\"alg\":\"hmac-sha256\",\"to\":[\"a@example.com\"],\"subject\":\"\",\"text\":\"\"}");
    assert_int_equal(job_from_tree(unsigned_tree, 0, &j, &err), 0);
    job_clear(&j);
    /* the consumer's side: a job without "sig" is refused */
    json_object *again = json_tokener_parse(
        "{\"v\":\"1\",\"id\":\"x\",\"from\":\"n@example.com\",\"created_at\":\"2026-11-24T13:00:00Z\","
        "\"kid\":\"default\",\"alg\":\"hmac-sha256\",\"to\":[\"a@example.com\"],\"subject\":\"\",\"text\":\"\"}");
    assert_int_equal(job_from_tree(again, 1, &j, &err), -1);
    assert_non_null(strstr(err.msg, "missing member 'sig'"));
    job_clear(&j);
}

static void test_peek_id(void **state)
{
    (void)state;
    char id[JOB_ID_MAX + 1];
    job_peek_id("{\"id\":\"abc:1\",\"x\":1}", 20, id);
    assert_string_equal(id, "abc:1");
    job_peek_id("{\"id\":\"bad id\"}", 15, id);
    assert_string_equal(id, "");
    job_peek_id("garbage", 7, id);
    assert_string_equal(id, "");
}

static void test_ids(void **state)
{
    (void)state;
    assert_true(job_id_valid("signup:42.a_b-c"));
    assert_false(job_id_valid(""));
    assert_false(job_id_valid("a b"));
    assert_false(job_id_valid("a{b}"));
    char longid[JOB_ID_MAX + 2];
    memset(longid, 'a', JOB_ID_MAX + 1);
    longid[JOB_ID_MAX + 1] = '\0';
    assert_false(job_id_valid(longid));
    longid[JOB_ID_MAX] = '\0';
    assert_true(job_id_valid(longid));
}

/* job_parse_strict on JSON that RFC 8259 allows, within the nesting limit: parsed. */
static void test_parse_strict_accepts(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
        json_type type;
    } cases[] = {
        {"{\"a\":\"b\"}", 0, json_type_object},
        {" \t\r\n{\"to\":[\"x\"],\"h\":{\"k\":\"v\"}} \n", 0, json_type_object},
        /* three levels, counting the innermost value: the limit (a job's deepest, its
         * recipients' and headers' strings) */
        {"{\"a\":[\"x\"]}", 0, json_type_object},
        {"{\"h\":{\"k\":\"v\"}}", 0, json_type_object},
        {"{\"s\":\"\\\\u0000\"}", 0, json_type_object}, /* an escaped backslash, then text */
        {"{\"s\":\"\\u00e9\\ud83d\\ude00\"}", 0, json_type_object},
        {"{\"a\":1}garbage", 7, json_type_object}, /* len, not the NUL, ends the text */
        {"[1,\"x\",true,null]", 0, json_type_array},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mr_error err = MR_ERROR_INIT;
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        json_object *root = job_parse_strict(cases[i].text, len, &err);
        if (!root)
            fail_msg("case %zu refused: %s (%s)", i, cases[i].text, err.msg);
        assert_int_equal(json_object_get_type(root), cases[i].type);
        assert_int_equal(err.rc, MAILROOM_OK);
        json_object_put(root);
    }
    /* the escapes became the characters they stand for */
    mr_error err = MR_ERROR_INIT;
    const char *text = "{\"s\":\"\\u00e9\\ud83d\\ude00\"}";
    json_object *root = job_parse_strict(text, strlen(text), &err), *s = NULL;
    assert_non_null(root);
    assert_true(json_object_object_get_ex(root, "s", &s));
    assert_string_equal(json_object_get_string(s), "\xc3\xa9\xf0\x9f\x98\x80");
    json_object_put(root);
}

/* Each refused with MAILROOM_EINVAL and a reason containing the fragment given. */
static void test_parse_strict_refuses(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
        const char *why;
    } cases[] = {
        /* json-c would cut these at the NUL: "hello" would be sent, or a member
         * "subject\u0000x" would become "subject" */
        {"{\"text\":\"hello\\u0000SECRET-TAIL\"}", 0, "NUL"},
        {"{\"subject\\u0000x\":\"s\"}", 0, "NUL"},
        {"[\"\\\\\\u0000\"]", 0, "NUL"}, /* an escaped backslash, then the escape */
        {"{\"a\":1,}", 0, "not valid JSON"},
        {"{\"a\":'x'}", 0, "not valid JSON"},
        {"/* c */{\"a\":1}", 0, "not valid JSON"},
        {"{\"a\":1} x", 0, "not valid JSON"},
        {"{\"a\":1}\0", 8, "trailing data"}, /* a NUL after the value is not white space */
        {"{\"a\":[[\"x\"]]}", 0, "nesting"}, /* four levels, counting the value */
        {"{\"a\":[{\"b\":1}]}", 0, "nesting"},
        {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"deep\"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", 0, "nesting"},
        {"{\"a\":\"\xff\"}", 0, "not valid JSON"},
        /* what json-c 0.16's strict mode lets through */
        {"{'a':1}", 0, "single quote"},
        {"{\"a\":\"\xc0\xaf\"}", 0, "UTF-8"},         /* overlong */
        {"{\"a\":\"\xed\xa0\x80\"}", 0, "UTF-8"},     /* a surrogate */
        {"{\"a\":\"\xf4\x90\x80\x80\"}", 0, "UTF-8"}, /* above U+10FFFF */
        {"{\"\xc0\xaf\":1}", 0, "UTF-8"},               /* in a member name */
        {"{\"a\":", 0, "truncated"},
        {"", 0, "truncated"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mr_error err = MR_ERROR_INIT;
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        json_object *root = job_parse_strict(cases[i].text, len, &err);
        if (root) {
            json_object_put(root);
            fail_msg("case %zu accepted: %s", i, cases[i].text);
        }
        if (err.rc != MAILROOM_EINVAL || !strstr(err.msg, cases[i].why))
            fail_msg("case %zu: code %d, '%s' (expected EINVAL and '%s')", i, (int)err.rc,
                     err.msg, cases[i].why);
        /* a caller that does not want the reason passes NULL */
        assert_null(job_parse_strict(cases[i].text, len, NULL));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_full_job),
        cmocka_unit_test(test_decode_refusals),
        cmocka_unit_test(test_international_addresses),
        cmocka_unit_test(test_decode_limits),
        cmocka_unit_test(test_job_tree_sig_rules),
        cmocka_unit_test(test_escaped_backslash_is_not_nul),
        cmocka_unit_test(test_peek_id),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_parse_strict_accepts),
        cmocka_unit_test(test_parse_strict_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
