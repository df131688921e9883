/* error: see error.h. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Length of the longest prefix of s (len bytes, at most cap) that does not end inside
 * a UTF-8 sequence: a cut falls before the lead byte of a sequence that would not fit. */
static size_t utf8_cut(const char *s, size_t len, size_t cap)
{
    if (len <= cap)
        return len;
    size_t n = cap;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--; /* s[n] continues a sequence: cut before its lead byte */
    return n;
}

size_t mr_text_copy(char *dst, size_t cap, const char *src, size_t len)
{
    if (cap == 0)
        return 0;
    size_t n = utf8_cut(src, len, cap - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (char)((c < 0x20 || c == 0x7F) ? '?' : c);
    }
    dst[n] = '\0';
    return n;
}

/* vsnprintf into text; the length kept (what did not fit is dropped). */
static size_t vformat(char *text, size_t cap, const char *fmt, va_list ap)
{
    int n = vsnprintf(text, cap, fmt, ap);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

void mr_text_printf(char *dst, size_t cap, const char *fmt, ...)
{
    char text[MR_ERROR_MAX * 4];
    va_list ap;
    va_start(ap, fmt);
    size_t len = vformat(text, sizeof text, fmt, ap);
    va_end(ap);
    mr_text_copy(dst, cap, text, len);
}

int mr_fail(mr_error *err, mailroom_rc rc, const char *fmt, ...)
{
    if (!err)
        return -1;
    char text[MR_ERROR_MAX * 2];
    va_list ap;
    va_start(ap, fmt);
    size_t len = vformat(text, sizeof text, fmt, ap);
    va_end(ap);
    err->rc = rc;
    mr_text_copy(err->msg, sizeof err->msg, text, len);
    return -1;
}

int mr_prefix(mr_error *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char text[MR_ERROR_MAX * 2];
    va_list ap;
    va_start(ap, fmt);
    size_t len = vformat(text, sizeof text, fmt, ap);
    va_end(ap);
    if (len + 2 < sizeof text) {
        size_t rest = strlen(err->msg), room = sizeof text - 1 - len - 2;
        size_t take = rest < room ? rest : room;
        text[len] = ':';
        text[len + 1] = ' ';
        memcpy(text + len + 2, err->msg, take);
        len += 2 + take;
    }
    mr_text_copy(err->msg, sizeof err->msg, text, len);
    return -1;
}

void mr_error_clear(mr_error *err)
{
    if (!err)
        return;
    err->rc = MAILROOM_OK;
    err->msg[0] = '\0';
}
