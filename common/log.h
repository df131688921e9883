/*
 * log: one line per event on stderr, as text ("2026-11-25T10:00:00.123Z INFO
 * job=01J… sent 250 …") or JSON ({"at","level","consumer","job","msg"}), built with
 * json-c. Lines are written with a single write(2) so threads never interleave them.
 * Callers never pass secrets: nothing here could tell one from other text.
 */
#ifndef MAILROOM_LOG_H
#define MAILROOM_LOG_H

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Sets the threshold, the format (json != 0) and the consumer id put on every line.
 * Call before starting threads. Returns 0, or -1 for an unknown level/format name. */
int log_setup(const char *level, const char *format, const char *consumer);

/* job may be NULL or "" for lines that are not about one job. */
void log_msg(log_level level, const char *job, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
