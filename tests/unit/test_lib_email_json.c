/*
 * test_lib_email_json: lib/email_json.c, mailroom_email_from_json(), through the public
 * API (linked against the static library). It reads the lines of `mailroom send
 * --jsonl` with the project's one strict JSON parser, so it must refuse what json-c
 * alone would quietly cut: "hello\u0000SECRET-TAIL" would become "hello" and a member
 * "subject\u0000x" would become "subject" (the CLI's own reader, before it went, sent
 * both). Also checked: every member and its type, the times and their rounding,
 * unknown members, what is not an object or not RFC 8259, a raw NUL byte, the messages
 * (one line naming the member), a NULL handle, and that the email validates.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mailroom.h"

static mailroom *handle;

/* A handle that never connects (messages only; mailroom_validate works on it). */
static int open_handle(void **state)
{
    (void)state;
    mailroom_options o;
    mailroom_options_init(&o);
    o.redis_url = "redis://127.0.0.1:1/0";
    o.connect_timeout_ms = 300;
    unsetenv("MAILROOM_KEYS_FILE");
    unsetenv("MAILROOM_SECRET");
    mailroom_open(&handle, &o);
    return handle ? 0 : -1;
}

static int close_handle(void **state)
{
    (void)state;
    mailroom_close(handle);
    return 0;
}

/* Parses s; the rc, and the document in *doc (NULL on failure). */
static int parse(const char *s, mailroom_email_json **doc)
{
    return mailroom_email_from_json(handle, s, strlen(s), doc);
}

/* Asserts that s is refused with code rc and a message containing `why`. */
static void refused(const char *s, int rc, const char *why)
{
    mailroom_email_json *doc = (mailroom_email_json *)1;
    int got = parse(s, &doc);
    if (got != rc || doc != NULL || !strstr(mailroom_errmsg(handle), why))
        fail_msg("%s: rc %d (want %d), message '%s' (want '%s')", s, got, rc,
                 mailroom_errmsg(handle), why);
}

static void test_full_email(void **state)
{
    (void)state;
    mailroom_email_json *doc = NULL;
    const char *s =
        "{\"to\":[\"王小明 <ming@example.com>\",\"b@example.com\"],\"cc\":[\"c@example.com\"],"
        "\"bcc\":[],\"from\":\"noreply@example.com\",\"from_name\":\"滴水网\","
        "\"reply_to\":\"help@example.com\",\"subject\":\"请激活\",\"text\":\"hi\\n\","
        "\"html\":\"<p>hi</p>\",\"headers\":{\"X-Seq\":\"1\",\"List-Id\":\"l.example.com\"},"
        "\"id\":\"signup:42\",\"send_at\":\"2026-11-24T13:00:00.5Z\","
        "\"expires_at\":\"2026-11-24T21:00:00.5+08:00\"}  \r\n";
    assert_int_equal(parse(s, &doc), MAILROOM_OK);
    const mailroom_email *e = mailroom_email_json_email(doc);
    assert_int_equal(e->n_to, 2);
    assert_string_equal(e->to[0], "王小明 <ming@example.com>");
    assert_int_equal(e->n_cc, 1);
    assert_int_equal(e->n_bcc, 0);
    assert_string_equal(e->from_name, "滴水网");
    assert_string_equal(e->text, "hi\n");
    assert_int_equal(e->n_headers, 2);
    assert_string_equal(e->headers[0].name, "X-Seq");
    assert_string_equal(e->id, "signup:42");
    assert_int_equal((long long)e->send_at, 1795525201LL);    /* .5 s rounded up */
    assert_int_equal((long long)e->expires_at, 1795525200LL); /* .5 s rounded down */
    assert_int_equal(mailroom_validate(handle, e), MAILROOM_OK);
    mailroom_email_json_free(doc);
}

static void test_escaped_nul_is_refused(void **state)
{
    (void)state;
    refused("{\"to\":[\"a@example.com\"],\"from\":\"n@example.com\",\"subject\":\"s\","
            "\"text\":\"hello\\u0000SECRET-TAIL\"}",
            MAILROOM_EINVAL, "NUL");
    refused("{\"to\":[\"a@example.com\"],\"from\":\"n@example.com\",\"subject\\u0000x\":\"s\","
            "\"text\":\"t\"}",
            MAILROOM_EINVAL, "NUL");
    assert_null(strstr(mailroom_errmsg(handle), "SECRET-TAIL"));
    /* an escaped backslash before u0000 is text, not a NUL */
    mailroom_email_json *doc = NULL;
    assert_int_equal(parse("{\"text\":\"a\\\\u0000b\"}", &doc), MAILROOM_OK);
    assert_string_equal(mailroom_email_json_email(doc)->text, "a\\u0000b");
    mailroom_email_json_free(doc);
}

static void test_raw_nul_byte_is_refused(void **state)
{
    (void)state;
    static const char s[] = "{\"text\":\"a\0b\"}";
    mailroom_email_json *doc = NULL;
    assert_int_equal(mailroom_email_from_json(handle, s, sizeof s - 1, &doc), MAILROOM_EINVAL);
    assert_null(doc);
    assert_non_null(strstr(mailroom_errmsg(handle), "NUL byte"));
}

static void test_members_and_types(void **state)
{
    (void)state;
    refused("{\"too\":[\"x@example.com\"]}", MAILROOM_EINVAL, "unknown member 'too'");
    refused("{\"to\":\"a@example.com\"}", MAILROOM_EINVAL, "'to' must be an array of strings");
    refused("{\"cc\":[\"a@example.com\",1]}", MAILROOM_EINVAL, "(item 2)");
    refused("{\"headers\":[]}", MAILROOM_EINVAL, "'headers' must be an object of strings");
    refused("{\"headers\":{\"X-A\":1}}", MAILROOM_EINVAL, "header 'X-A' must be a string");
    refused("{\"subject\":null}", MAILROOM_EINVAL, "'subject' must be a string");
    refused("{\"send_at\":\"tomorrow\"}", MAILROOM_EINVAL, "'send_at': not an RFC 3339 time");
    refused("{\"expires_at\":\"1970-01-01T00:00:00Z\"}", MAILROOM_EINVAL,
            "'expires_at': must be after 1970-01-01T00:00:00Z");
}

static void test_only_strict_json_objects(void **state)
{
    (void)state;
    refused("[1, 2]", MAILROOM_EINVAL, "not a JSON object");
    refused("{\"to\": [\"a@example.com\"], ", MAILROOM_EINVAL, "not valid JSON");
    refused("{\"text\":\"a\"} x", MAILROOM_EINVAL, "not valid JSON");
    refused("{\"text\":'a'}", MAILROOM_EINVAL, "not valid JSON");
    refused("{\"text\":\"a\",}", MAILROOM_EINVAL, "not valid JSON");
    refused("{\"text\":\"\xff\"}", MAILROOM_EINVAL, "not valid"); /* JSON, or UTF-8 */
    refused("", MAILROOM_EINVAL, "not valid JSON");
}

static void test_null_handle_and_arguments(void **state)
{
    (void)state;
    mailroom_email_json *doc = NULL;
    const char *s = "{\"text\":\"t\"}";
    assert_int_equal(mailroom_email_from_json(NULL, s, strlen(s), &doc), MAILROOM_OK);
    mailroom_email_json_free(doc);
    assert_int_equal(mailroom_email_from_json(NULL, "[", 1, &doc), MAILROOM_EINVAL);
    assert_null(doc);
    assert_int_equal(mailroom_email_from_json(NULL, s, strlen(s), NULL), MAILROOM_EINVAL);
    assert_null(mailroom_email_json_email(NULL));
    mailroom_email_json_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_email),
        cmocka_unit_test(test_escaped_nul_is_refused),
        cmocka_unit_test(test_raw_nul_byte_is_refused),
        cmocka_unit_test(test_members_and_types),
        cmocka_unit_test(test_only_strict_json_objects),
        cmocka_unit_test(test_null_handle_and_arguments),
    };
    return cmocka_run_group_tests(tests, open_handle, close_handle);
}
