/*
 * job: the v1 wire format (docs/protocol.md). A job is one JSON object whose values
 * are strings, arrays of strings or one object of string to string (headers).
 *
 * A decoded job borrows every string from the json-c tree it was decoded from: the job
 * owns that tree (root) and job_clear() releases it, so one json_object_put frees all.
 * The same validator runs on the producer, before signing, and on the consumer, after
 * parsing, so both ends refuse exactly the same jobs.
 */
#ifndef MAILROOM_JOB_H
#define MAILROOM_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct json_object;

#define JOB_MAX_BYTES (256 * 1024) /* a raw job larger than this is refused */
#define JOB_ID_MAX 128             /* caller-chosen ids: [A-Za-z0-9._:-]{1,128} */
#define JOB_MAX_RCPT 100           /* to + cc + bcc */
#define JOB_MAX_HEADERS 32
#define JOB_SUBJECT_MAX 2000 /* bytes */
#define JOB_HEADER_VALUE_MAX 998
#define JOB_KID_MAX 64

typedef struct job_header {
    const char *name;
    const char *value;
} job_header;

typedef struct job {
    struct json_object *root; /* owned; all pointers below borrow from it */
    const char *v, *id, *kid, *alg, *sig;
    const char *from, *from_name, *reply_to; /* from_name, reply_to may be NULL */
    const char *subject, *text, *html;       /* html may be NULL */
    size_t text_len, html_len;
    const char *to[JOB_MAX_RCPT], *cc[JOB_MAX_RCPT], *bcc[JOB_MAX_RCPT];
    size_t n_to, n_cc, n_bcc;
    job_header headers[JOB_MAX_HEADERS];
    size_t n_headers;
    const char *created_at, *send_at, *expires_at; /* send_at, expires_at may be NULL */
    int64_t created_ms, send_at_ms, expires_ms;    /* 0 when absent */
} job;

/* 1 when id matches [A-Za-z0-9._:-]{1,128}. */
int job_id_valid(const char *id);

/* 1 when name may be set through "headers": List-Unsubscribe, List-Unsubscribe-Post,
 * List-Id, or X-<letters, digits, hyphens>. Case-insensitive. */
int job_header_allowed(const char *name);

/*
 * Validates a json-c tree as a v1 job and fills *out, which takes ownership of root
 * (also on failure: job_clear() releases it). require_sig: the "sig" member must be
 * present (consumer) or absent (producer, before signing). On failure returns -1 with
 * a one-line reason naming the member in err (MAILROOM_EINVAL).
 */
int job_from_tree(struct json_object *root, int require_sig, job *out, mr_error *err);

/*
 * The project's one strict JSON parser (jobs, and the emails of `mailroom send
 * --jsonl`): RFC 8259 only (no comments, no trailing commas, no single quotes), valid
 * UTF-8, at most 3 levels of nesting, nothing but white space after the value, and no
 * escaped NUL anywhere (json-c would cut a member name or a value at it). Returns the
 * tree (caller owns: json_object_put) or NULL with err set.
 */
struct json_object *job_parse_strict(const char *raw, size_t len, mr_error *err);

/*
 * Parses and validates a raw job (len bytes, need not be NUL-terminated): size limit,
 * strict JSON, valid UTF-8, nesting, then job_from_tree(require_sig = 1). The
 * signature itself is checked by sig_verify_job(), not here.
 */
int job_decode(const char *raw, size_t len, job *out, mr_error *err);

/* Releases the tree and zeroes the job. Accepts NULL and cleared jobs. */
void job_clear(job *j);

/*
 * Best effort for reporting on a job that failed to decode, so that its record can
 * still be closed: the "id" member of raw when raw is a JSON object whose id is a
 * valid job id; when raw is not valid JSON (an escaped NUL, a cut job, one over the
 * size limit), an "id" member found leniently in its first 4096 bytes; else "".
 */
void job_peek_id(const char *raw, size_t len, char id_out[JOB_ID_MAX + 1]);

#endif
