/*
 * duration: the one parser of durations in the project (consumer options, CLI options,
 * the public mailroom_parse_duration). A duration is a non-negative decimal number
 * with an optional fraction and an optional unit: ms, s, m, h or d ("250ms", "1.5s",
 * "15m", "12h", "7d"); a plain number is seconds. Nothing else is a duration: no sign,
 * no exponent, no "nan" or "inf", no space, and at most 100 years.
 */
#ifndef MAILROOM_DURATION_H
#define MAILROOM_DURATION_H

#include <stdint.h>

#include "error.h"

#define DURATION_MAX_MS (100LL * 365 * 86400000) /* 100 years */

/* Returns 0 and the duration in whole ms (a fraction of a ms is dropped), or -1 with
 * MAILROOM_EINVAL in err. */
int mr_duration_parse(const char *s, int64_t *ms, mr_error *err);

#endif
