/*
 * test_webhook_retry: webhook/retry.c, the events waiting for another attempt and the
 * backoff between attempts: the delay doubles from the base, stops at the cap (without
 * overflow, however many attempts), and its jitter stays within the upper half of the
 * delay; the set updates an id in place, refuses a new id when full, finds the entry
 * due first, and wakes every entry at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "retry.h"

static void test_delay_doubles_to_the_cap(void **state)
{
    (void)state;
    /* random 0: the lower edge (half the delay); UINT32_MAX % (half + 1): some point in
     * the upper half */
    assert_int_equal(retry_delay_ms(1, 1000, 300000, 0), 500);
    assert_int_equal(retry_delay_ms(2, 1000, 300000, 0), 1000);
    assert_int_equal(retry_delay_ms(3, 1000, 300000, 0), 2000);
    assert_int_equal(retry_delay_ms(9, 1000, 300000, 0), 128000);
    assert_int_equal(retry_delay_ms(10, 1000, 300000, 0), 150000);
    assert_int_equal(retry_delay_ms(1000000, 1000, 300000, 0), 150000);
    assert_int_equal(retry_delay_ms(3, 1000, 300000, 1000), 3000); /* 2000 + 1000 */
    assert_int_equal(retry_delay_ms(1, 5000, 2000, 0), 1000);      /* base above the cap */
    for (uint32_t r = 0; r < 100000; r += 997) {
        int64_t d = retry_delay_ms(12, 1000, 300000, r * 2654435761u);
        assert_true(d >= 150000 && d <= 300000);
    }
}

static void test_set(void **state)
{
    (void)state;
    retry_set r;
    assert_int_equal(retry_init(&r, 2), 0);
    assert_null(retry_earliest(&r));
    assert_int_equal(retry_put(&r, "1-0", 1, 5000), 0);
    assert_int_equal(retry_put(&r, "2-0", 1, 3000), 0);
    assert_int_equal(retry_put(&r, "3-0", 1, 1000), -1); /* full */
    assert_int_equal(retry_put(&r, "1-0", 2, 2000), 0);  /* an update, not a new entry */
    assert_int_equal(r.n, 2);
    assert_string_equal(retry_earliest(&r)->id, "1-0");
    assert_int_equal(retry_find(&r, "1-0")->attempts, 2);
    retry_wake_all(&r, 100);
    assert_int_equal(retry_find(&r, "1-0")->due_ms, 100);
    assert_int_equal(retry_find(&r, "2-0")->due_ms, 100);
    retry_remove(&r, "1-0");
    retry_remove(&r, "nope");
    assert_null(retry_find(&r, "1-0"));
    assert_int_equal(r.n, 1);
    assert_int_equal(retry_put(&r, "3-0", 1, 1000), 0);
    assert_string_equal(retry_earliest(&r)->id, "2-0");
    retry_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delay_doubles_to_the_cap),
        cmocka_unit_test(test_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
