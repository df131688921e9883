/*
 * clock: millisecond wall clock and timestamp formatting/parsing (see clock.h).
 * Parsing is strict and does its own field checks rather than trusting strptime, whose
 * acceptance of out-of-range fields varies.
 */
#define _GNU_SOURCE
#include "clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void to_tm(int64_t ms, struct tm *tm)
{
    time_t secs = (time_t)(ms / 1000);
    gmtime_r(&secs, tm);
}

void clock_format_iso(int64_t ms, int with_ms, char out[CLOCK_ISO_MAX])
{
    struct tm tm;
    to_tm(ms, &tm);
    size_t n = strftime(out, CLOCK_ISO_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    if (with_ms)
        snprintf(out + n, CLOCK_ISO_MAX - n, ".%03dZ", (int)(ms % 1000));
    else
        snprintf(out + n, CLOCK_ISO_MAX - n, "Z");
}

void clock_format_rfc5322(int64_t ms, char out[CLOCK_ISO_MAX])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    to_tm(ms, &tm);
    /* Names from tables, not strftime's %a/%b, which follow the locale. */
    if (tm.tm_year + 1900 < 1970 || tm.tm_year + 1900 > 9999) {
        snprintf(out, CLOCK_ISO_MAX, "Thu, 01 Jan 1970 00:00:00 +0000");
        return; /* timestamps are parsed within 1970..9999; keep the header well formed */
    }
    char rest[24];
    strftime(rest, sizeof rest, " %Y %H:%M:%S +0000", &tm);
    snprintf(out, CLOCK_ISO_MAX, "%s, %02d %s%s", days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
             rest);
}

/* Reads exactly n decimal digits at *p, advancing it. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int expect(const char **p, char c)
{
    if (**p != c)
        return -1;
    (*p)++;
    return 0;
}

static int days_in_month(int year, int month)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : dim[month - 1];
}

int clock_parse_rfc3339(const char *s, int64_t *ms)
{
    const char *p = s;
    int year, mon, day, hour, min, sec, frac_ms = 0;
    if (digits(&p, 4, &year) || expect(&p, '-') || digits(&p, 2, &mon) || expect(&p, '-') ||
        digits(&p, 2, &day))
        return -1;
    if (*p != 'T' && *p != 't')
        return -1;
    p++;
    if (digits(&p, 2, &hour) || expect(&p, ':') || digits(&p, 2, &min) || expect(&p, ':') ||
        digits(&p, 2, &sec))
        return -1;
    if (year < 1970 || year > 9998 || mon < 1 || mon > 12 || day < 1 ||
        day > days_in_month(year, mon) || hour > 23 || min > 59 || sec > 60)
        return -1; /* 9998: an offset or a leap second must not carry past year 9999 */
    if (*p == '.') {
        p++;
        int n = 0, scale = 100;
        while (*p >= '0' && *p <= '9') {
            if (n < 3)
                frac_ms += (*p - '0') * scale;
            scale /= 10;
            n++;
            p++;
        }
        if (n == 0 || n > 9)
            return -1;
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (digits(&p, 2, &oh) || expect(&p, ':') || digits(&p, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset_min = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    struct tm tm = {0};
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - (int64_t)offset_min * 60) * 1000 + frac_ms;
    return 0;
}
