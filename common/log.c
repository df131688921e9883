/* log: see log.h. */
#define _POSIX_C_SOURCE 200809L
#include "log.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"

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

static void write_json(buf *line, const char *at, log_level level, const char *job,
                       const char *msg)
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
    buf_puts(line, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

void log_msg(log_level level, const char *job, const char *fmt, ...)
{
    if (level < threshold)
        return;
    char msg[1024], at[CLOCK_ISO_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) /* one line, and no terminal escapes from job data */
        if ((unsigned char)*p < 0x20 || *p == 0x7F)
            *p = ' ';
    clock_format_iso(clock_now_ms(), 1, at);
    buf line = BUF_INIT;
    if (as_json) {
        write_json(&line, at, level, job, msg);
    } else {
        buf_printf(&line, "%s %-5s", at, level_names[level]);
        if (job && *job)
            buf_printf(&line, " job=%s", job);
        buf_printf(&line, " %s", msg);
    }
    if (buf_putc(&line, '\n') == 0) {
        ssize_t ignored = write(STDERR_FILENO, line.data, line.len);
        (void)ignored;
    }
    buf_free(&line);
}
