/*
 * test_lib_helpers: lib/helpers.c, the public calls that need no handle, through the
 * public API (linked against the static library). Each wraps the one implementation in
 * common/, and the CLI reads its command line with them, so they are checked for what
 * the CLI relies on: the duration syntax (the same as the consumer's: no sign, no
 * exponent, no "nan"), RFC 3339 times and their rounding toward the safe side, job
 * ids, Redis URLs with a password, and the consumer state names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mailroom.h"
#include "mailroom_admin.h"

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        long long ms;
    } good[] = {{"0", 0},        {"30", 30000},     {"250ms", 250},    {"1.5s", 1500},
                {"15m", 900000}, {"12h", 43200000}, {"7d", 604800000}, {".5s", 500}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        long long ms = -1;
        assert_int_equal(mailroom_parse_duration(good[i].s, &ms), MAILROOM_OK);
        assert_int_equal(ms, good[i].ms);
    }
    static const char *const bad[] = {"",    "soon", "-1s", "+1s", "1e3",    "nan",
                                      "inf", "1 s",  "1w",  "s",   "1.5.5s", "36501d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long long ms = 42;
        if (mailroom_parse_duration(bad[i], &ms) != MAILROOM_EINVAL || ms != 42)
            fail_msg("'%s' was taken for a duration", bad[i]);
    }
    long long ms;
    assert_int_equal(mailroom_parse_duration(NULL, &ms), MAILROOM_EINVAL);
    assert_int_equal(mailroom_parse_duration("1s", NULL), MAILROOM_EINVAL);
}

static void test_times(void **state)
{
    (void)state;
    time_t t = 0;
    assert_int_equal(mailroom_parse_time("2026-11-24T13:00:00Z", 1, &t), MAILROOM_OK);
    assert_int_equal((long long)t, 1795525200LL);
    assert_int_equal(mailroom_parse_time("2026-11-24T13:00:00.001Z", 1, &t), MAILROOM_OK);
    assert_int_equal((long long)t, 1795525201LL); /* send_at: never earlier */
    assert_int_equal(mailroom_parse_time("2026-11-24T13:00:00.999Z", 0, &t), MAILROOM_OK);
    assert_int_equal((long long)t, 1795525200LL); /* expires_at: never later */
    assert_int_equal(mailroom_parse_time("2026-11-24T21:00:00+08:00", 0, &t), MAILROOM_OK);
    assert_int_equal((long long)t, 1795525200LL);
    assert_int_equal(mailroom_parse_time("1970-01-01T00:00:00Z", 1, &t), MAILROOM_OK);
    assert_int_equal((long long)t, 0); /* parsed; mailroom_email cannot carry it */
    assert_int_equal(mailroom_parse_time("tomorrow", 1, &t), MAILROOM_EINVAL);
    assert_int_equal(mailroom_parse_time("2026-11-24 13:00:00", 1, &t), MAILROOM_EINVAL);
    assert_int_equal(mailroom_parse_time(NULL, 1, &t), MAILROOM_EINVAL);
}

static void test_ids_and_urls(void **state)
{
    (void)state;
    assert_true(mailroom_id_valid("signup:42"));
    assert_true(mailroom_id_valid("01JDQ6Z3K8P4W7X2M5N9R0T1AB"));
    assert_false(mailroom_id_valid(""));
    assert_false(mailroom_id_valid("a b"));
    assert_false(mailroom_id_valid("a{b}"));
    assert_false(mailroom_id_valid(NULL));
    char long_id[130];
    memset(long_id, 'a', 129);
    long_id[129] = '\0';
    assert_false(mailroom_id_valid(long_id));
    long_id[128] = '\0';
    assert_true(mailroom_id_valid(long_id));

    assert_true(mailroom_url_has_password("redis://user:pw@127.0.0.1:6379/0"));
    assert_true(mailroom_url_has_password("redis://:pw@127.0.0.1/0"));
    assert_false(mailroom_url_has_password("redis://user@127.0.0.1:6379/0"));
    assert_false(mailroom_url_has_password("redis://127.0.0.1:6379/0"));
    assert_false(mailroom_url_has_password(NULL));
}

static void test_consumer_state_names(void **state)
{
    (void)state;
    assert_string_equal(mailroom_consumer_state_name(MAILROOM_CONSUMER_ALIVE), "alive");
    assert_string_equal(mailroom_consumer_state_name(MAILROOM_CONSUMER_SILENT), "silent");
    assert_string_equal(mailroom_consumer_state_name(MAILROOM_CONSUMER_UNREGISTERED),
                        "unregistered");
    assert_string_equal(mailroom_consumer_state_name((mailroom_consumer_state)9), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_ids_and_urls),
        cmocka_unit_test(test_consumer_state_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
