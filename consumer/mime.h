/*
 * mime: turns a validated job into the RFC 5322 / MIME message the consumer hands to
 * its SMTP session: RFC 2047 encoding of non-ASCII subjects, extra headers and display
 * names, header folding, CRLF line ends only, 7-bit bodies (quoted-printable or base64:
 * BODY=8BITMIME is never declared) and lines of at most 998 bytes. All output goes into
 * a caller-owned buf, so a worker can reuse one buffer for every job.
 *
 * The message is 7-bit except for one case: an address whose local part is non-ASCII
 * (RFC 6531) is written raw, as given, in the header that carries it (RFC 6532 UTF-8
 * headers). Such a message can travel only with SMTPUTF8, and so can its envelope:
 * mime_needs_smtputf8() says when, for the worker to set the transaction's smtputf8.
 * Every other address goes in the headers in its envelope form, the domain as A-labels
 * (xn--...), which every reader and relay accepts.
 */
#ifndef MAILROOM_MIME_H
#define MAILROOM_MIME_H

#include "address.h"
#include "buf.h"
#include "error.h"
#include "job.h"

/*
 * Builds the message of a validated job into out (buf_reset first): Date, From, To, Cc,
 * Reply-To, Subject, Message-ID, MIME-Version, the job's extra headers, then a
 * text/plain part, a text/html part, or multipart/alternative with text first. Bcc
 * never appears. Returns 0, or -1 with the reason in err.
 */
int mime_build(const job *j, buf *out, mr_error *err);

/*
 * Appends "Name: value\r\n" for an unstructured header (Subject, X-*). The value goes
 * raw if it is printable ASCII without "=?", folded at spaces so that lines stay within
 * 78 characters when possible and never pass 998; otherwise as RFC 2047 =?UTF-8?B?...?=
 * words of at most 75 characters, never splitting a UTF-8 sequence, separated by CRLF SP.
 * Returns 0, or -1 when out of memory or when name is not a plausible field name.
 */
int mime_header_unstructured(buf *out, const char *name, const char *value);

/*
 * Appends a mailbox as it goes into an address header: the bare address, or the display
 * name and " <address>". The name goes raw when it is a phrase of RFC 5322 atoms, as a
 * quoted-string (with \" and \\ escapes) when it is other printable ASCII, and as RFC 2047
 * B-words when it has non-ASCII bytes or "=?". The address is mb->spec's envelope form
 * (domain as A-labels), or mb->spec itself when its local part is non-ASCII (RFC 6532);
 * both are derived from mb->spec here, so a hand-built mailbox needs only name and spec.
 * Folds with CRLF SP when a line would pass 78 characters. Returns 0, or -1 when out of
 * memory or mb->spec is not a valid address.
 */
int mime_append_mailbox(buf *out, const addr_mailbox *mb);

/*
 * 1 when the job's message and envelope need SMTPUTF8: an address of from, to, cc, bcc
 * or reply_to has a non-ASCII local part (bcc reaches only the envelope, reply_to only
 * the headers; either is enough). 0 otherwise, also for a job whose addresses do not
 * parse (mime_build() refuses it).
 */
int mime_needs_smtputf8(const job *j);

/*
 * Appends the Message-ID local part for a job id: A-Z a-z 0-9 '_' '-' are kept, every
 * other byte becomes "=XX" (uppercase hex). The result is a dot-atom, and reversible
 * because '=' itself is escaped. Returns 0, or -1 when out of memory or job_id is empty.
 */
int mime_msgid_local(buf *out, const char *job_id);

#endif
