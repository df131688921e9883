/* duration: see duration.h. */
#include "duration.h"

#include <string.h>

/* ms per unit, or 0 for an unknown unit ("" is seconds). */
static int64_t unit_ms(const char *unit)
{
    static const struct {
        const char *name;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(unit, units[i].name) == 0)
            return units[i].ms;
    return 0;
}

/*
 * Reads digits, then an optional '.' and digits, computing the value in ms with
 * integers only (so no floating-point rounding, and nothing strtod would accept
 * besides decimals: no "nan", "inf", "1e3" or "0x10").
 */
int mr_duration_parse(const char *s, int64_t *ms, mr_error *err)
{
    const char *p = s;
    int64_t whole = 0, frac_num = 0, frac_den = 1;
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (whole > DURATION_MAX_MS)
            goto bad;
        whole = whole * 10 + (*p - '0');
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
            if (frac_den < 1000000000LL) {
                frac_num = frac_num * 10 + (*p - '0');
                frac_den *= 10;
            }
        }
    }
    int64_t scale = unit_ms(p);
    if (digits == 0 || scale == 0 || whole > DURATION_MAX_MS / scale)
        goto bad;
    int64_t total = whole * scale + frac_num * scale / frac_den;
    if (total > DURATION_MAX_MS)
        goto bad;
    *ms = total;
    return 0;
bad:
    return mr_fail(err, MAILROOM_EINVAL,
                   "'%.40s' is not a duration (a number with ms, s, m, h or d, at most 100 "
                   "years)",
                   s);
}
