/*
 * log.c — mailroom-web's log lines, on stderr: "<UTC time> mailroom-web <level>: <text>",
 * one line each, control characters masked (a job id or an error from Redis cannot
 * forge a line). Callers never put a token, a header's value or the Redis URL in one.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "web.h"

void web_log(const char *level, const char *fmt, ...)
{
    char text[1024], when[32];
    time_t now = time(NULL);
    struct tm tm;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s mailroom-web %s: %s\n", when, level, text);
}
