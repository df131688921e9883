/*
 * log: one line per event on stderr, as text ("2026-11-25T10:00:00.123Z INFO
 * job=01J… sent 250 …") or JSON ({"at","level","consumer","job","msg"}, and for an
 * outcome "state","smtp_code","attempt","duration_ms"), built with json-c. Lines are written with a single write(2) so threads never interleave them.
 * Callers never pass secrets: nothing here could tell one from other text.
 */
#ifndef MAILROOM_LOG_H
#define MAILROOM_LOG_H

#include <stdint.h>

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Sets the threshold, the format (json != 0) and the consumer id put on every line.
 * Call before starting threads. Returns 0, or -1 for an unknown level/format name. */
int log_setup(const char *level, const char *format, const char *consumer);

/* job may be NULL or "" for lines that are not about one job. */
void log_msg(log_level level, const char *job, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * An outcome's line: stamped with the time of the outcome (not of the write, which
 * can come a Redis round trip or a blocked take later), and in JSON carrying the
 * fields state, smtp_code (null when none), attempt and duration_ms (null when < 0).
 */
typedef struct log_outcome {
    int64_t at_ms;     /* when the outcome was known */
    const char *job;   /* the job id, or NULL */
    const char *state; /* "sent", "retrying", ... */
    int smtp_code;     /* 0: none */
    long attempt;
    int64_t duration_ms; /* the attempt's SMTP time; -1: none */
} log_outcome;

void log_outcome_line(log_level level, const log_outcome *o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Like log_msg for a condition that may repeat many times a second (an error reply
 * from a sick Redis, seen by every worker): logs at most one line per `kind` (its
 * first 31 bytes) per interval_ms across all threads, saying how many were left out
 * since the last line. Up to 32 kinds are tracked; further kinds share one slot.
 */
void log_limited(log_level level, const char *kind, int64_t interval_ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
