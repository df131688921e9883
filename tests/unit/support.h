/*
 * support.h: the few helpers more than one unit test needs, kept here once instead of
 * copied: a temporary file with given contents (key files, password files), capturing
 * what code writes to a file descriptor (log lines on stderr, --help on stdout), and
 * an independent UTF-8 validator (to check that text cut by the code under test was
 * cut on a character boundary without trusting the project's own validator).
 *
 * Header-only: every function is static inline, so a test that uses some of them does
 * not warn about the others. Include after <cmocka.h>.
 */
#ifndef MAILROOM_TEST_SUPPORT_H
#define MAILROOM_TEST_SUPPORT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUPPORT_PATH_MAX 64

/* Writes text into a new file /tmp/mailroom-test-XXXXXX; path gets its name (the
 * caller unlinks it). */
static inline void support_temp_file(char path[SUPPORT_PATH_MAX], const char *text)
{
    snprintf(path, SUPPORT_PATH_MAX, "%s", "/tmp/mailroom-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/*
 * Capture of a file descriptor (1 or 2): between support_capture_begin and
 * support_capture_end everything written to fd goes into a pipe instead. The pipe
 * holds 64 KiB: enough for what the tests write, which is read only at the end.
 */
typedef struct support_capture {
    int fd;    /* the descriptor captured */
    int saved; /* a copy of what it was */
    int pipe_r;
} support_capture;

static inline void support_capture_begin(support_capture *c, int fd)
{
    int p[2];
    fflush(NULL);
    assert_int_equal(pipe(p), 0);
    c->fd = fd;
    c->saved = dup(fd);
    assert_true(c->saved >= 0);
    assert_true(dup2(p[1], fd) == fd);
    assert_int_equal(close(p[1]), 0);
    c->pipe_r = p[0];
}

/* Restores the descriptor and returns what was written to it, NUL-terminated (the
 * caller frees it); *len gets its length (it may hold NULs). */
static inline char *support_capture_end(support_capture *c, size_t *len)
{
    fflush(NULL);
    assert_true(dup2(c->saved, c->fd) == c->fd);
    assert_int_equal(close(c->saved), 0); /* now the pipe has no writer left */
    size_t cap = 4096, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (;;) {
        if (cap - n < 1024) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        ssize_t got = read(c->pipe_r, out + n, cap - n - 1);
        assert_true(got >= 0);
        if (got == 0)
            break;
        n += (size_t)got;
    }
    assert_int_equal(close(c->pipe_r), 0);
    out[n] = '\0';
    if (len)
        *len = n;
    return out;
}

/* 1 when s[0..len) is valid UTF-8 (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF, no sequence cut short). */
static inline int support_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t n;
        unsigned cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (len - i < n)
            return 0;
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n;
    }
    return 1;
}

#endif
