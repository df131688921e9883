/*
 * test_worker: consumer/worker.c's retry delay, worker_backoff_ms. For every attempt
 * the delay must be the base doubled per earlier retry, capped at the maximum, then
 * scaled by the jitter factor in [0.8, 1.2] that the 32-bit random value selects: the
 * low end at 0, the high end at UINT32_MAX, the nominal delay in the middle. A wrong
 * bound here retries a failing SMTP server too fast or leaves jobs waiting for hours.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>

#include "duration.h"
#include "worker.h"

static void test_backoff_bounds(void **state)
{
    (void)state;
    const int64_t base = 10000, max = 3600000;
    for (int attempt = 1; attempt <= 20; attempt++) {
        int64_t nominal = base;
        for (int i = 1; i < attempt; i++)
            nominal = nominal * 2 > max ? max : nominal * 2;
        int64_t lo = worker_backoff_ms(attempt, base, max, 0);
        int64_t hi = worker_backoff_ms(attempt, base, max, UINT32_MAX);
        int64_t mid = worker_backoff_ms(attempt, base, max, 1u << 31);
        assert_int_equal(lo, (int64_t)((double)nominal * 0.8));
        assert_true(hi <= nominal * 6 / 5 && hi >= nominal * 6 / 5 - 1);
        assert_true(mid >= nominal - 1 && mid <= nominal + 1);
    }
    assert_int_equal(worker_backoff_ms(1, base, max, 1u << 31), 10000);
    assert_int_equal(worker_backoff_ms(4, base, max, 1u << 31), 80000);
}

/* The extremes the options allow (durations up to DURATION_MAX_MS, up to 1000
 * attempts): the doubling stops at the cap, so nothing overflows (UBSan watches the
 * sanitizer build) and the delay stays within the jitter band around the cap. A base
 * above the cap is cut to the cap. */
static void test_backoff_extremes(void **state)
{
    (void)state;
    const int64_t max = DURATION_MAX_MS;
    static const int attempts[] = {1, 2, 42, 43, 63, 64, 65, 1000, INT_MAX};
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        int a = attempts[i];
        int64_t lo = worker_backoff_ms(a, 1, max, 0);
        int64_t hi = worker_backoff_ms(a, 1, max, UINT32_MAX);
        assert_true(lo >= 0 && lo <= hi);
        assert_true(hi <= max / 5 * 6 + 1);
        /* base and cap both at the limit: the cap, jittered */
        int64_t top = worker_backoff_ms(a, max, max, UINT32_MAX);
        assert_true(top >= max && top <= max / 5 * 6 + 1);
    }
    /* 2^42 ms is past 100 years: from attempt 43 on, the cap */
    assert_int_equal(worker_backoff_ms(1000, 1, max, 1u << 31), max);
    /* a base above the cap */
    assert_int_equal(worker_backoff_ms(1, 3600000, 10000, 1u << 31), 10000);
    assert_int_equal(worker_backoff_ms(5, 3600000, 10000, 0), 8000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_backoff_extremes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
