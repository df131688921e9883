/*
 * test_duration: common/duration.c, the project's one duration parser (every consumer
 * and CLI duration option, and mailroom_parse_duration). Two parsers used to disagree
 * and one took "nan", which then became undefined behaviour in the consumer, so this
 * pins the grammar from both sides: the accepted forms and their values in ms
 * (computed here from the units: s = 1000 ms, m = 60 s, h = 60 m, d = 24 h; a plain
 * number is seconds; a fraction of a ms is dropped), and the refused ones, which
 * strtod or a lax loop would take (nan, inf, exponents, hex, signs, blanks, trailing
 * junk, a second '.'), plus values past 100 years and digit strings long enough to
 * overflow a 64-bit integer (the sanitizer build turns such an overflow into a
 * failure). Every refusal is MAILROOM_EINVAL and quotes the text refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "duration.h"
#include "error.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static void test_accepted(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t ms;
    } cases[] = {
        {"250ms", 250},
        {"1.5s", 1500},
        {"15m", 15 * MIN},
        {"12h", 12 * HOUR},
        {"7d", 7 * DAY},
        {"30", 30 * SEC}, /* a plain number is seconds */
        {"0", 0},
        {"0ms", 0},
        {"0.0s", 0},
        {"1.5", 1500},
        {"0.001s", 1},
        {"0.0005s", 0},    /* half a ms: dropped */
        {"2.9999ms", 2},   /* fractions of a ms are dropped, not rounded */
        {"1.25m", 75 * SEC},
        {"0.5d", 12 * HOUR},
        {"007s", 7 * SEC}, /* leading zeros are digits like any other */
        {"1.0000000001s", SEC},
        {"36500d", DURATION_MAX_MS}, /* 100 years exactly: the limit */
        {"3153600000000ms", DURATION_MAX_MS},
    };
    assert_int_equal(DURATION_MAX_MS, 36500 * DAY);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = -1;
        mr_error err = MR_ERROR_INIT;
        if (mr_duration_parse(cases[i].text, &ms, &err) != 0)
            fail_msg("'%s' refused: %s", cases[i].text, err.msg);
        if (ms != cases[i].ms)
            fail_msg("'%s': %lld ms, expected %lld", cases[i].text, (long long)ms,
                     (long long)cases[i].ms);
        assert_int_equal(err.rc, MAILROOM_OK);
    }
}

static void refused(const char *text)
{
    int64_t ms = -12345;
    mr_error err = MR_ERROR_INIT;
    if (mr_duration_parse(text, &ms, &err) != -1)
        fail_msg("'%s' accepted as %lld ms", text, (long long)ms);
    if (err.rc != MAILROOM_EINVAL)
        fail_msg("'%s': code %d, expected MAILROOM_EINVAL", text, (int)err.rc);
    /* the reason quotes the text (its first 40 bytes) so the user sees which value */
    char quoted[48];
    snprintf(quoted, sizeof quoted, "'%.20s", text);
    for (char *p = quoted; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = '?';
    if (!strstr(err.msg, quoted))
        fail_msg("'%s': reason '%s' does not quote it", text, err.msg);
    /* and a NULL err is allowed */
    assert_int_equal(mr_duration_parse(text, &ms, NULL), -1);
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "nan", "NaN", "inf", "infinity", "1e3", "1e3s", "0x10", "0x10s", "-1", "-1s", "+1s",
        "", " 1s", "1s ", "\t1s", "1s\n", "1ss", "1.5.5s", "1,5s", ".", "s", "ms", "1 s",
        "1S", "1sec", "1w", "1y", "1h30m", "1..5s", "1-s", "nans", "1\xc2\xa0s",
        /* past 100 years */
        "36501d", "36500.5d", "3153600000001ms", "876001h", "52560001m", "3153600001s",
        "3153600001", /* seconds */
        /* digit strings that overflow 64 bits, whatever the unit */
        "99999999999999999999999999999999999999", "9223372036854775807ms",
        "9223372036854775808ms", "18446744073709551617s", "9223372036854775807d",
        "100000000000000000000000000000000000000000000000000000000000000000000000000000d",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refused(cases[i]);
}

/* A digit string of any length, in any unit, with or without a long fraction, is
 * refused or accepted without overflowing (UBSan in the sanitizer build), and
 * accepted only within 100 years. */
static void test_long_digit_strings(void **state)
{
    (void)state;
    static const char *const units[] = {"", "ms", "s", "m", "h", "d"};
    char text[400];
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        for (size_t digits = 1; digits <= 300; digits += digits < 30 ? 1 : 37) {
            memset(text, '9', digits);
            snprintf(text + digits, sizeof text - digits, "%s", units[u]);
            int64_t ms = -1;
            int rc = mr_duration_parse(text, &ms, NULL);
            if (rc == 0 && (ms < 0 || ms > DURATION_MAX_MS))
                fail_msg("'%s': %lld ms", text, (long long)ms);
            /* 10^13 ms is past the limit in every unit: at most 13 nines can pass */
            if (digits > 13)
                assert_int_equal(rc, -1);
            /* the same with a long fraction */
            snprintf(text, sizeof text, "1.%.*s%s", (int)digits,
                     "99999999999999999999999999999999999999999999999999999999999999999999"
                     "99999999999999999999999999999999999999999999999999999999999999999999"
                     "99999999999999999999999999999999999999999999999999999999999999999999"
                     "99999999999999999999999999999999999999999999999999999999999999999999"
                     "99999999999999999999999999999999999999999999999999999999999999999999",
                     units[u]);
            assert_int_equal(mr_duration_parse(text, &ms, NULL), 0);
            assert_true(ms >= 1 && ms < 3 * DAY);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_long_digit_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
