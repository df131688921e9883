/*
 * test_clock: common/clock.c, the two text forms of time mailroom writes and the one
 * it reads. RFC 3339 timestamps go on the wire and into status records (with and
 * without milliseconds), RFC 5322 dates into the Date header; the parser takes
 * offsets (converted to UTC, across a leap day) and refuses partial, impossible or
 * trailing-garbage timestamps, since a job's send_at and expires_at come from it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "clock.h"

static void test_clock(void **state)
{
    (void)state;
    int64_t ms;
    char out[CLOCK_ISO_MAX];
    assert_int_equal(clock_parse_rfc3339("2026-11-24T13:00:00Z", &ms), 0);
    clock_format_iso(ms, 0, out);
    assert_string_equal(out, "2026-11-24T13:00:00Z");
    clock_format_iso(ms + 7, 1, out);
    assert_string_equal(out, "2026-11-24T13:00:00.007Z");
    clock_format_rfc5322(ms, out);
    assert_string_equal(out, "Tue, 24 Nov 2026 13:00:00 +0000");
    assert_int_equal(clock_parse_rfc3339("2024-02-29T23:59:59-01:30", &ms), 0);
    clock_format_iso(ms, 0, out);
    assert_string_equal(out, "2024-03-01T01:29:59Z");
    static const char *bad[] = {"2026-11-24", "2026-11-24T13:00:00", "2025-02-29T00:00:00Z",
                                "2026-13-01T00:00:00Z", "2026-11-24T24:00:00Z",
                                "2026-11-24T13:00:00Zjunk", "2026-11-24T13:00:00.Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(clock_parse_rfc3339(bad[i], &ms), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
