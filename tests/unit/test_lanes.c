/*
 * test_lanes: consumer/lanes.c and the code lists of consumer/suppression.c. The lanes
 * of --queue (strict or weighted, refused when malformed), the order a take visits them
 * (strict: as given; weighted: drawn in proportion to the weights, checked over many
 * draws), paused lanes left out, and the lane a blocking take waits on; then which
 * RCPT refusals put an address on the suppression list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lanes.h"
#include "suppression.h"

static void test_strict_lanes(void **state)
{
    (void)state;
    static consumer_config cfg;
    mr_error err = MR_ERROR_INIT;
    memset(&cfg, 0, sizeof cfg);
    assert_int_equal(lanes_configure(&cfg, "reset,signup,receipts", &err), 0);
    assert_int_equal(cfg.n_lanes, 3);
    assert_false(cfg.weighted);
    assert_string_equal(cfg.lanes[2].keys.pending, "mailroom:{receipts}:pending");
    int order[LANE_MAX];
    assert_int_equal(lanes_order(&cfg, 12345, order), 3);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], 2);
    atomic_store(&cfg.lanes[0].paused, 1);
    assert_int_equal(lanes_order(&cfg, 1, order), 2);
    assert_int_equal(order[0], 1);
    /* blocking takes: the lanes not paused, shared by worker index and turn */
    assert_int_equal(lanes_watch(&cfg, 0, 0), 1);
    assert_int_equal(lanes_watch(&cfg, 1, 0), 2);
    assert_int_equal(lanes_watch(&cfg, 0, 1), 2);
    atomic_store(&cfg.lanes[1].paused, 1);
    atomic_store(&cfg.lanes[2].paused, 1);
    assert_int_equal(lanes_order(&cfg, 1, order), 0);
    assert_int_equal(lanes_watch(&cfg, 0, 0), -1);
    char text[128];
    lanes_describe(&cfg, text, sizeof text);
    assert_string_equal(text, "reset,signup,receipts");
}

/* Over 40 000 draws with weights 6, 3 and 1, the lane visited first comes up in
 * proportion (within 2 points), and every order is a permutation. */
static void test_weighted_lanes(void **state)
{
    (void)state;
    static consumer_config cfg;
    mr_error err = MR_ERROR_INIT;
    memset(&cfg, 0, sizeof cfg);
    assert_int_equal(lanes_configure(&cfg, "a:6,b:3,c:1", &err), 0);
    assert_true(cfg.weighted);
    int first[3] = {0, 0, 0};
    uint32_t x = 2463534242u;
    for (int i = 0; i < 40000; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        int order[LANE_MAX];
        assert_int_equal(lanes_order(&cfg, x, order), 3);
        assert_int_equal(order[0] + order[1] + order[2], 3);
        assert_true(order[0] != order[1] && order[1] != order[2] && order[0] != order[2]);
        first[order[0]]++;
    }
    double share[3] = {first[0] / 40000.0, first[1] / 40000.0, first[2] / 40000.0};
    assert_true(share[0] > 0.58 && share[0] < 0.62);
    assert_true(share[1] > 0.28 && share[1] < 0.32);
    assert_true(share[2] > 0.08 && share[2] < 0.12);
    char text[128];
    lanes_describe(&cfg, text, sizeof text);
    assert_string_equal(text, "a:6,b:3,c:1");
}

static void test_bad_lanes(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", ",", "a,a", "a{b}", "a:6,b", "a:0,b:1", "a:1001", "a b", "q1,q2,q3,q4,q5,q6,q7,q8,q9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        static consumer_config cfg;
        mr_error err = MR_ERROR_INIT;
        memset(&cfg, 0, sizeof cfg);
        if (lanes_configure(&cfg, bad[i], &err) == 0)
            fail_msg("--queue '%s' accepted", bad[i]);
        assert_non_null(strstr(err.msg, "--queue"));
    }
}

static void test_suppress_codes(void **state)
{
    (void)state;
    assert_true(suppress_codes_valid("5.1.*"));
    assert_true(suppress_codes_valid("5.1.1,5.1.10,550"));
    static const char *const bad[] = {"",     "4.1.1", "5.1",    "5.*",  "5.1.1,",
                                      "550x", "450",   "5.1.**", "5..1", "5.1.1 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (suppress_codes_valid(bad[i]))
            fail_msg("--suppress-on '%s' accepted", bad[i]);
    assert_true(suppress_codes_match("5.1.*", 550, "5.1.1"));
    assert_true(suppress_codes_match("5.1.*", 550, "5.1.10"));
    assert_false(suppress_codes_match("5.1.*", 550, "5.7.1"));
    assert_false(suppress_codes_match("5.1.*", 550, ""));
    assert_true(suppress_codes_match("5.7.1,550", 550, ""));
    assert_true(suppress_codes_match("5.2.1", 552, "5.2.1"));
    assert_false(suppress_codes_match("5.2.1", 552, "5.2.10"));
    assert_false(suppress_codes_match("550", 551, "5.1.1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strict_lanes),
        cmocka_unit_test(test_weighted_lanes),
        cmocka_unit_test(test_bad_lanes),
        cmocka_unit_test(test_suppress_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
