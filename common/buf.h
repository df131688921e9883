/*
 * buf: a growable byte buffer, the one way mailroom builds strings (canonical forms,
 * MIME messages, JSON wrappers). A buffer owns its memory; buf_reset() empties it but
 * keeps the allocation so a worker can reuse one buffer for every job. The contents are
 * always NUL-terminated after a successful append, so data can be used as a C string
 * when nothing binary was appended.
 */
#ifndef MAILROOM_BUF_H
#define MAILROOM_BUF_H

#include <stddef.h>

typedef struct buf {
    char *data; /* owned; NULL until the first append */
    size_t len; /* bytes used, not counting the terminating NUL */
    size_t cap; /* bytes allocated */
} buf;

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* All appends return 0, or -1 when memory ran out (the buffer is left unchanged). */
int buf_reserve(buf *b, size_t extra);
int buf_append(buf *b, const void *data, size_t len);
int buf_puts(buf *b, const char *s);
int buf_putc(buf *b, char c);
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(buf *b);
/* Frees the memory; the buffer may be reused afterwards. Accepts NULL. */
void buf_free(buf *b);

#endif
