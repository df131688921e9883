/*
 * test_lib_webhook_sig: lib/webhook_sig.c through the public API (linked against the
 * static library, as an application receiving deliveries would be), checked against
 * every vector of tests/vectors/webhook.json, which tests/tools/webhook_sign.py makes
 * with Python's own HMAC: mailroom_webhook_sign() reproduces the signatures marked
 * "signs", and mailroom_webhook_verify() accepts exactly the vectors marked valid and
 * refuses the others for the reason given (altered body, stale or future timestamp,
 * wrong secret, malformed headers). The PHP snippet of docs/webhook.md is checked
 * against the same file (tests/integration/test_webhook.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "mailroom.h"
#include "mailroom_admin.h"

#define VECTORS MAILROOM_SOURCE_DIR "/tests/vectors/webhook.json"

static const char *member(json_object *o, const char *key)
{
    json_object *v = NULL;
    assert_true(json_object_object_get_ex(o, key, &v));
    return json_object_get_string(v);
}

static int flag(json_object *o, const char *key)
{
    json_object *v = NULL;
    assert_true(json_object_object_get_ex(o, key, &v));
    return json_object_get_boolean(v);
}

/* The vectors, checked for being there at all (an empty file would pass nothing). */
static json_object *load_vectors(json_object **doc)
{
    *doc = json_object_from_file(VECTORS);
    assert_non_null(*doc);
    json_object *list = NULL;
    assert_true(json_object_object_get_ex(*doc, "vectors", &list));
    assert_true(json_object_array_length(list) >= 10);
    return list;
}

static void test_verify_vectors(void **state)
{
    (void)state;
    json_object *doc;
    json_object *list = load_vectors(&doc);
    int valid = 0, refused = 0;
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *v = json_object_array_get_idx(list, i);
        const char *secret = member(v, "secret"), *body = member(v, "body");
        json_object *now = NULL;
        assert_true(json_object_object_get_ex(v, "now", &now));
        const char *why = "unset";
        int rc = mailroom_webhook_verify(secret, strlen(secret), member(v, "timestamp"),
                                         member(v, "signature"), body, strlen(body),
                                         json_object_get_int64(now), 0, &why);
        if ((rc == MAILROOM_OK) != flag(v, "valid") || strcmp(why, member(v, "why")) != 0)
            fail_msg("vector %s: rc %d why '%s', expected valid %d why '%s'", member(v, "name"), rc,
                     why, flag(v, "valid"), member(v, "why"));
        valid += rc == MAILROOM_OK;
        refused += rc == MAILROOM_EINVAL;
    }
    assert_true(valid >= 3 && refused >= 5);
    json_object_put(doc);
}

static void test_sign_vectors(void **state)
{
    (void)state;
    json_object *doc;
    json_object *list = load_vectors(&doc);
    int signed_ = 0;
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *v = json_object_array_get_idx(list, i);
        if (!flag(v, "signs"))
            continue;
        const char *secret = member(v, "secret"), *body = member(v, "body");
        char sig[MAILROOM_WEBHOOK_SIG_MAX];
        long long ts = strtoll(member(v, "timestamp"), NULL, 10);
        assert_int_equal(mailroom_webhook_sign(secret, strlen(secret), ts, body, strlen(body), sig),
                         MAILROOM_OK);
        assert_string_equal(sig, member(v, "signature"));
        signed_++;
    }
    assert_true(signed_ >= 2);
    json_object_put(doc);
}

/* The window is tolerance_s either way, and a caller's own tolerance replaces it. */
static void test_window_and_arguments(void **state)
{
    (void)state;
    const char secret[] = "whsec-example-0123456789abcdef", body[] = "{}";
    char sig[MAILROOM_WEBHOOK_SIG_MAX];
    assert_int_equal(mailroom_webhook_sign(secret, strlen(secret), 1000, body, 2, sig),
                     MAILROOM_OK);
    const char *why = NULL;
    assert_int_equal(
        mailroom_webhook_verify(secret, strlen(secret), "1000", sig, body, 2, 1060, 60, &why),
        MAILROOM_OK);
    assert_string_equal(why, "");
    assert_int_equal(
        mailroom_webhook_verify(secret, strlen(secret), "1000", sig, body, 2, 1061, 60, &why),
        MAILROOM_EINVAL);
    assert_string_equal(why, "stale timestamp");
    assert_int_equal(
        mailroom_webhook_verify(secret, strlen(secret), NULL, sig, body, 2, 1000, 0, &why),
        MAILROOM_EINVAL);
    assert_string_equal(why, "missing header");
    assert_int_equal(
        mailroom_webhook_verify(secret, strlen(secret), "-1000", sig, body, 2, -1000, 0, NULL),
        MAILROOM_EINVAL);
    assert_int_equal(mailroom_webhook_sign(secret, 0, 1000, body, 2, sig), MAILROOM_EINVAL);
    assert_int_equal(mailroom_webhook_sign(NULL, 4, 1000, body, 2, sig), MAILROOM_EINVAL);
    assert_int_equal(mailroom_webhook_verify("", 0, "1000", sig, body, 2, 1000, 0, &why),
                     MAILROOM_EINVAL);
    assert_string_equal(why, "invalid argument");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_vectors),
        cmocka_unit_test(test_sign_vectors),
        cmocka_unit_test(test_window_and_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
