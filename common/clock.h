/*
 * clock: wall-clock time in milliseconds and the two text forms mailroom uses: RFC 3339
 * UTC timestamps on the wire and in Redis ("2026-11-24T13:00:00Z", or with ".123"
 * milliseconds), and RFC 5322 dates for the Date header.
 */
#ifndef MAILROOM_CLOCK_H
#define MAILROOM_CLOCK_H

#include <stdint.h>

#define CLOCK_ISO_MAX 32

int64_t clock_now_ms(void);
/* ms of CLOCK_MONOTONIC: for intervals; it keeps counting while the process is
 * stopped (SIGSTOP), so a stall shows as a gap. */
int64_t clock_mono_ms(void);
/* "YYYY-MM-DDTHH:MM:SSZ" (with_ms = 0) or "YYYY-MM-DDTHH:MM:SS.mmmZ". */
void clock_format_iso(int64_t ms, int with_ms, char out[CLOCK_ISO_MAX]);
/* "Tue, 24 Nov 2026 13:00:00 +0000" */
void clock_format_rfc5322(int64_t ms, char out[CLOCK_ISO_MAX]);
/*
 * Parses an RFC 3339 timestamp: date, 'T', time, optional fraction, then 'Z' or an
 * offset "+hh:mm"/"-hh:mm". Returns 0 and the instant in ms, or -1 for anything else.
 */
int clock_parse_rfc3339(const char *s, int64_t *ms);

#endif
