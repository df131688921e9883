/*
 * error: the one way mailroom's internal code reports a failure.
 *
 * A function that can fail returns 0 (or a pointer) on success and -1 (or NULL) on
 * failure, and describes the failure in the mr_error passed as its last argument: a
 * mailroom_rc saying what kind of failure it is (the public codes of mailroom.h, so
 * the library hands it on unchanged and the CLI maps it to an exit status in one
 * table) and one line of text saying why. The text never holds a secret, is printable
 * (no control characters), and is cut on a UTF-8 boundary when it does not fit.
 *
 * err may be NULL where the caller does not want the reason. mr_fail() returns -1 so
 * that a failure is one line:  return mr_fail(err, MAILROOM_EINVAL, "bad %s", what);
 * mr_error is plain data: no destructor, copy it by assignment.
 */
#ifndef MAILROOM_ERROR_H
#define MAILROOM_ERROR_H

#include <stddef.h>

#include "mailroom.h"

#define MR_ERROR_MAX 512 /* bytes of text, the NUL included */

typedef struct mr_error {
    mailroom_rc rc;         /* MAILROOM_OK while nothing failed */
    char msg[MR_ERROR_MAX]; /* "" while nothing failed */
} mr_error;

#define MR_ERROR_INIT                                                                              \
    {                                                                                              \
        MAILROOM_OK, ""                                                                            \
    }

/* Records a failure (the message formatted, made printable and cut on a UTF-8
 * boundary) and returns -1. Accepts a NULL err. */
int mr_fail(mr_error *err, mailroom_rc rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Puts "<prefix>: " before the message already in err, keeping its code (for a caller
 * that adds what it was doing). Returns -1. Accepts a NULL err. */
int mr_prefix(mr_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Back to "no error". Accepts NULL. */
void mr_error_clear(mr_error *err);

/*
 * Copies at most cap - 1 bytes of src into dst, NUL-terminated, never cutting a UTF-8
 * sequence in two and replacing control characters (C0, DEL) by '?'. Used for every
 * text that crosses into a log line, a record or an error. Returns the bytes written.
 */
size_t mr_text_copy(char *dst, size_t cap, const char *src, size_t len);

/* Formats into dst like snprintf, then makes it printable and cuts it on a UTF-8
 * boundary, as mr_text_copy does. */
void mr_text_printf(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
