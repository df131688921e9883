/*
 * reply: the incremental SMTP reply parser. Bytes from the server go in (into the
 * reader's own receive buffer: the transport reads straight into it), complete replies
 * come out: the code, the RFC 3463 enhanced status code of the first line when there is
 * one, and every line's text.
 *
 * Rules (docs/smtp.md, "Replies"): a line ends with CRLF or a bare LF (accepted; the CR
 * before the LF is dropped); it starts with three digits, the first 2 to 5, then a space
 * (last line), a hyphen (more lines follow) or the line end (last line, no text). A line
 * may be up to SMTP_LINE_MAX bytes with its line end (RFC 5321 says 512; the rest is
 * leniency), a reply up to SMTP_REPLY_LINES_MAX lines, and every line of a reply has the
 * code of its first. Anything else is a protocol error, after which the reader is done
 * until smtp_reader_reset(). Kept text is printable ASCII: control characters (NUL and
 * stray CR included) and bytes >= 0x80 become '?'.
 *
 * The receive buffer starts at SMTP_READER_INITIAL bytes when first needed and grows
 * only while a line does not fit; smtp_reader_trim() gives back what a hostile server
 * made it grow.
 */
#ifndef MAILROOM_SMTP_REPLY_H
#define MAILROOM_SMTP_REPLY_H

#include <stddef.h>

#include "buf.h"
#include "error.h"

#define SMTP_LINE_MAX 4096       /* bytes of a reply line, its CRLF included */
#define SMTP_REPLY_LINES_MAX 256 /* lines of one reply */
#define SMTP_READER_INITIAL 1024 /* the receive buffer's first size */

typedef struct smtp_reply {
    int code;          /* 200..599 */
    char enhanced[12]; /* "x.y.z" when the first line's text starts with one, else "" */
    size_t n_lines;
    buf text; /* each line's text (after "NNN-" / "NNN "), lines joined by '\n' */
} smtp_reply;

typedef struct smtp_reader {
    char *data; /* receive buffer, owned; NULL until first needed */
    size_t cap;
    size_t start; /* data[start, end) is received and not yet parsed */
    size_t end;
    int in_reply;   /* lines of an unfinished multi-line reply are in cur */
    int failed;     /* a protocol error was found: nothing more is parsed */
    smtp_reply cur; /* the reply being assembled, or the one just completed */
} smtp_reader;

void smtp_reader_init(smtp_reader *r);
/* Forgets every byte and reply state (new connection); keeps the allocations. */
void smtp_reader_reset(smtp_reader *r);
/* Frees the buffers when they grew beyond their usual size (after a round). */
void smtp_reader_trim(smtp_reader *r);
void smtp_reader_free(smtp_reader *r);

/*
 * Room to receive into: a pointer to at least one free byte, *room set to how many.
 * Compacts the buffer first and grows it when the unparsed bytes fill it (never beyond
 * what one over-long line needs to be recognised). NULL with err when out of memory.
 */
char *smtp_reader_space(smtp_reader *r, size_t *room, mr_error *err);
/* Records that n bytes were written at the pointer smtp_reader_space() returned. */
void smtp_reader_commit(smtp_reader *r, size_t n);
/* Copies len bytes in (tests and the fuzzer; the buffer grows as needed). */
int smtp_reader_feed(smtp_reader *r, const void *data, size_t len, mr_error *err);

/*
 * Parses the next complete reply: 1 with *out pointing to it (valid until the next call
 * on this reader), 0 when more bytes are needed, -1 on a protocol error (err says what;
 * every later call returns -1 too).
 */
int smtp_reader_next(smtp_reader *r, const smtp_reply **out, mr_error *err);

/* 1 when bytes or part of a reply wait unparsed: data the client has not asked for. */
int smtp_reader_pending(const smtp_reader *r);

/* The enhanced status code at the start of text when its class is the reply's first
 * digit: its length (5 to 9), or 0 when there is none. */
size_t smtp_enhanced_len(const char *text, size_t len, int code);

/*
 * The reply as one line for logs and records, at most cap - 1 bytes: "550 5.1.1 text
 * of line 1 text of line 2", the enhanced code once, each line's copy of it dropped.
 */
void smtp_reply_format(const smtp_reply *reply, char *dst, size_t cap);

#endif
