/* log: see log.h. */
#define _POSIX_C_SOURCE 200809L
#include "log.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "error.h"

static log_level threshold = LOG_INFO;
static int as_json;
static char consumer_id[128];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_setup(const char *level, const char *format, const char *consumer)
{
    int found = 0;
    for (int i = 0; i <= LOG_ERROR; i++) {
        if (level && strcmp(level, level_names[i]) == 0) {
            threshold = (log_level)i;
            found = 1;
        }
    }
    if (level && !found)
        return -1;
    if (format && strcmp(format, "json") != 0 && strcmp(format, "text") != 0)
        return -1;
    as_json = format && strcmp(format, "json") == 0;
    snprintf(consumer_id, sizeof consumer_id, "%s", consumer ? consumer : "");
    return 0;
}

/* Adds the outcome's fields to a JSON line. */
static void add_outcome(json_object *o, const log_outcome *f)
{
    json_object_object_add(o, "state", json_object_new_string(f->state));
    json_object_object_add(o, "smtp_code", f->smtp_code ? json_object_new_int(f->smtp_code) : NULL);
    json_object_object_add(o, "attempt", json_object_new_int64(f->attempt));
    json_object_object_add(o, "duration_ms",
                           f->duration_ms >= 0 ? json_object_new_int64(f->duration_ms) : NULL);
}

static void write_json(buf *line, const char *at, log_level level, const char *job, const char *msg,
                       const log_outcome *f)
{
    json_object *o = json_object_new_object();
    if (!o)
        return;
    json_object_object_add(o, "at", json_object_new_string(at));
    json_object_object_add(o, "level", json_object_new_string(level_names[level]));
    if (consumer_id[0])
        json_object_object_add(o, "consumer", json_object_new_string(consumer_id));
    if (job && *job)
        json_object_object_add(o, "job", json_object_new_string(job));
    json_object_object_add(o, "msg", json_object_new_string(msg));
    if (f)
        add_outcome(o, f);
    buf_puts(line, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

/* Writes one line stamped at_ms (the time of what it reports), with the outcome's
 * fields when f is given, in a single write(2). text is cut to one line on a UTF-8
 * boundary and cleaned of control characters. */
static void emit(log_level level, int64_t at_ms, const char *job, const char *text, size_t len,
                 const log_outcome *f)
{
    char msg[1024], at[CLOCK_ISO_MAX], id[160] = "";
    mr_text_copy(msg, sizeof msg, text, len);
    if (job)
        mr_text_copy(id, sizeof id, job, strlen(job)); /* ids are checked; still, one line */
    clock_format_iso(at_ms, 1, at);
    buf line = BUF_INIT;
    if (as_json) {
        write_json(&line, at, level, id, msg, f);
    } else {
        buf_printf(&line, "%s %-5s", at, level_names[level]);
        if (id[0])
            buf_printf(&line, " job=%s", id);
        buf_printf(&line, " %s", msg);
    }
    if (buf_putc(&line, '\n') == 0) {
        ssize_t ignored = write(STDERR_FILENO, line.data, line.len);
        (void)ignored;
    }
    buf_free(&line);
}

/* vsnprintf into text (2 KiB: longer than a line, so that emit() makes the cut);
 * returns the length kept. */
static size_t format(char *text, size_t cap, const char *fmt, va_list ap)
{
    int n = vsnprintf(text, cap, fmt, ap);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

void log_msg(log_level level, const char *job, const char *fmt, ...)
{
    if (level < threshold)
        return;
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    size_t len = format(text, sizeof text, fmt, ap);
    va_end(ap);
    emit(level, clock_now_ms(), job, text, len, NULL);
}

void log_outcome_line(log_level level, const log_outcome *o, const char *fmt, ...)
{
    if (level < threshold)
        return;
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    size_t len = format(text, sizeof text, fmt, ap);
    va_end(ap);
    emit(level, o->at_ms, o->job, text, len, o);
}

#define LIMITED_KINDS 32

/* What log_limited has said lately: per kind, when its last line went out and how
 * many were left out since. */
static struct {
    char kind[32];
    int64_t last_ms;
    long skipped;
} limited[LIMITED_KINDS];
static pthread_mutex_t limited_lock = PTHREAD_MUTEX_INITIALIZER;

/* Decides under the lock whether a line of this kind goes out now; returns -1 when
 * not, else how many were left out before it. */
static long limited_admit(const char *kind, int64_t interval_ms)
{
    int64_t now = clock_now_ms();
    long admitted = -1;
    pthread_mutex_lock(&limited_lock);
    int slot = LIMITED_KINDS - 1;
    for (int i = 0; i < LIMITED_KINDS; i++) {
        if (strncmp(limited[i].kind, kind, sizeof limited[i].kind - 1) == 0 ||
            !limited[i].kind[0]) {
            slot = i;
            break;
        }
    }
    if (!limited[slot].kind[0])
        snprintf(limited[slot].kind, sizeof limited[slot].kind, "%s", kind);
    if (limited[slot].last_ms == 0 || now - limited[slot].last_ms >= interval_ms) {
        admitted = limited[slot].skipped;
        limited[slot].last_ms = now;
        limited[slot].skipped = 0;
    } else {
        limited[slot].skipped++;
    }
    pthread_mutex_unlock(&limited_lock);
    return admitted;
}

void log_limited(log_level level, const char *kind, int64_t interval_ms, const char *fmt, ...)
{
    if (level < threshold)
        return;
    long skipped = limited_admit(kind, interval_ms);
    if (skipped < 0)
        return;
    char text[2048], cut[800];
    va_list ap;
    va_start(ap, fmt);
    size_t len = format(text, sizeof text, fmt, ap);
    va_end(ap);
    mr_text_copy(cut, sizeof cut, text, len); /* room for the count after it */
    if (skipped > 0)
        log_msg(level, NULL, "%s (%ld more like it since the last such line)", cut, skipped);
    else
        log_msg(level, NULL, "%s", cut);
}
