/*
 * test_lib_handle: lib/handle.c, the life of a mailroom handle, through the public API
 * only (linked against the static library, as an application is). No Redis: every
 * handle points at a closed loopback port, so an open that gets past its checks fails
 * on the connection (MAILROOM_EREDIS or MAILROOM_ETIMEOUT) and still returns a handle.
 *
 * Checked: a key whose kid no job may carry fails at open with MAILROOM_EKEY and a
 * message naming the rule (before the fix, open succeeded as far as the key went and
 * every send then failed as an invalid email); a good kid gets as far as the
 * connection and the handle validates; a short key, a bad alg and a bad queue name are
 * refused at open; the queue name the handle resolved; NULL handles; status codes.
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

#define KEY "0123456789abcdef-unit-test-key"
#define CLOSED_PORT_URL "redis://127.0.0.1:1/0"

/* Options for a handle that can never connect, with key KEY under kid. */
static mailroom_options options_with_kid(const char *kid)
{
    mailroom_options o;
    mailroom_options_init(&o);
    o.redis_url = CLOSED_PORT_URL;
    o.queue = "unit";
    o.kid = kid;
    o.key = KEY;
    o.key_len = strlen(KEY);
    o.connect_timeout_ms = 300;
    o.command_timeout_ms = 300;
    return o;
}

static int setup_env(void **state)
{
    (void)state;
    unsetenv("MAILROOM_KEYS_FILE");
    unsetenv("MAILROOM_SECRET");
    unsetenv("MAILROOM_REDIS_PASSWORD_FILE");
    unsetenv("MAILROOM_QUEUE");
    unsetenv("MAILROOM_REDIS_URL");
    return 0;
}

static void test_invalid_kid_fails_at_open(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "with space",
        "brace{x}",
        "colon:x",
        "slash/x",
        "ü",
        "0123456789012345678901234567890123456789012345678901234567890123x" /* 65 */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mailroom_options o = options_with_kid(bad[i]);
        mailroom *m = NULL;
        int rc = mailroom_open(&m, &o);
        assert_non_null(m);
        if (rc != MAILROOM_EKEY)
            fail_msg("kid '%s': mailroom_open returned %d (%s), not MAILROOM_EKEY", bad[i], rc,
                     mailroom_errmsg(m));
        assert_non_null(strstr(mailroom_errmsg(m), "[A-Za-z0-9._-]{1,64}"));
        assert_null(strstr(mailroom_errmsg(m), KEY)); /* never the secret */
        mailroom_close(m);
    }
}

static void test_good_kid_gets_to_the_connection(void **state)
{
    (void)state;
    mailroom_options o = options_with_kid("k-1.b_2");
    mailroom *m = NULL;
    int rc = mailroom_open(&m, &o);
    assert_non_null(m);
    assert_true(rc == MAILROOM_EREDIS || rc == MAILROOM_ETIMEOUT);
    const char *to[] = {"ming@example.com"};
    mailroom_email e = {
        .to = to, .n_to = 1, .from = "noreply@example.com", .subject = "s", .text = "t"};
    assert_int_equal(mailroom_validate(m, &e), MAILROOM_OK);
    assert_string_equal(mailroom_errmsg(m), "");
    mailroom_close(m);

    o = options_with_kid(NULL); /* kid "default" */
    rc = mailroom_open(&m, &o);
    assert_true(rc == MAILROOM_EREDIS || rc == MAILROOM_ETIMEOUT);
    mailroom_close(m);
}

static void test_other_refusals_at_open(void **state)
{
    (void)state;
    mailroom *m = NULL;
    mailroom_options o = options_with_kid("default");
    o.key_len = 15; /* one byte short */
    assert_int_equal(mailroom_open(&m, &o), MAILROOM_EKEY);
    assert_non_null(strstr(mailroom_errmsg(m), "16 bytes"));
    mailroom_close(m);

    o = options_with_kid("default");
    o.alg = "hmac-md5";
    assert_int_equal(mailroom_open(&m, &o), MAILROOM_EINVAL);
    assert_non_null(strstr(mailroom_errmsg(m), "alg"));
    mailroom_close(m);

    o = options_with_kid("default");
    o.queue = "a{b}";
    assert_int_equal(mailroom_open(&m, &o), MAILROOM_EINVAL);
    assert_non_null(strstr(mailroom_errmsg(m), "queue"));
    mailroom_close(m);

    o = options_with_kid("default");
    o.redis_url = "http://example.com/";
    assert_int_equal(mailroom_open(&m, &o), MAILROOM_EINVAL);
    mailroom_close(m);
}

static void test_queue_name_and_null_handles(void **state)
{
    (void)state;
    mailroom *m = NULL;
    mailroom_options o = options_with_kid("default");
    o.queue = NULL;
    setenv("MAILROOM_QUEUE", "from-env", 1);
    mailroom_open(&m, &o);
    unsetenv("MAILROOM_QUEUE");
    assert_string_equal(mailroom_queue_name(m), "from-env");
    mailroom_close(m);

    assert_null(mailroom_queue_name(NULL));
    assert_string_equal(mailroom_errmsg(NULL), "out of memory");
    mailroom_close(NULL);
    assert_int_equal(mailroom_open(NULL, &o), MAILROOM_EINVAL);
    assert_int_equal(mailroom_send(NULL, NULL, NULL), MAILROOM_EINVAL);
    assert_int_equal(mailroom_status(NULL, "x", NULL), MAILROOM_EINVAL);
}

static void test_send_without_key_is_ekey(void **state)
{
    (void)state;
    mailroom *m = NULL;
    mailroom_options o = options_with_kid(NULL);
    o.key = NULL;
    o.key_len = 0;
    int rc = mailroom_open(&m, &o);
    assert_true(rc == MAILROOM_EREDIS || rc == MAILROOM_ETIMEOUT);
    const char *to[] = {"ming@example.com"};
    mailroom_email e = {
        .to = to, .n_to = 1, .from = "noreply@example.com", .subject = "s", .text = "t"};
    char id[MAILROOM_ID_MAX];
    assert_int_equal(mailroom_send(m, &e, id), MAILROOM_EKEY);
    assert_non_null(strstr(mailroom_errmsg(m), "no signing key"));
    mailroom_close(m);
}

static void test_strerror_and_state_names(void **state)
{
    (void)state;
    assert_string_equal(mailroom_strerror(MAILROOM_OK), "success");
    assert_string_equal(mailroom_strerror(MAILROOM_EKEY), "no usable signing key");
    assert_string_equal(mailroom_strerror(-1), "unknown error");
    assert_string_equal(mailroom_strerror(12345), "unknown error");
    assert_string_equal(mailroom_state_name(MAILROOM_STATE_REJECTED), "rejected");
    assert_string_equal(mailroom_state_name((mailroom_state)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_kid_fails_at_open),
        cmocka_unit_test(test_good_kid_gets_to_the_connection),
        cmocka_unit_test(test_other_refusals_at_open),
        cmocka_unit_test(test_queue_name_and_null_handles),
        cmocka_unit_test(test_send_without_key_is_ekey),
        cmocka_unit_test(test_strerror_and_state_names),
    };
    return cmocka_run_group_tests(tests, setup_env, NULL);
}
