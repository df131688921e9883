/*
 * jobitem.h — private to lib/: the pure pieces of the job listing and the job finder
 * (jobs.c, control.c), kept apart so that unit tests reach them without Redis:
 *
 *   - a raw job read leniently into the members a listing shows (jobitem_read): the
 *     listing shows whatever sits in the queue, even a job no consumer would accept;
 *   - the recipient filters (--to, --domain), which compare addresses in the one
 *     spelling of suppress.h (the domain as A-labels, all in lower case);
 *   - the cursors, opaque strings to callers: "p<offset>:<anchor id>" for pending,
 *     "s<due ms>:<skip>" for scheduled, "r<due ms>:<skip>" for retrying and
 *     "x<expiry ms>:<skip>" for the suppression list.
 */
#ifndef MAILROOM_LIB_JOBITEM_H
#define MAILROOM_LIB_JOBITEM_H

#include <stddef.h>

#include "address.h"
#include "error.h"
#include "job.h"
#include "mailroom_admin.h"

struct json_object;

#define JOBS_CURSOR_MAX (JOB_ID_MAX + 48)

/* The filters of a listing, in suppression spelling; "" for none. */
typedef struct jobitem_filter {
    char to[ADDR_SPEC_MAX + 1];
    char domain[ADDR_SPEC_MAX + 1];
} jobitem_filter;

/*
 * Reads the filters: to, a bare address, and domain, a domain name (an optional
 * leading '@' is dropped); NULL or "" for none. 0, or -1 with err (MAILROOM_EINVAL)
 * naming the bad one.
 */
int jobitem_filter_init(jobitem_filter *f, const char *to, const char *domain, mr_error *err);

/* 1 when the filter has no condition, or a recipient of item satisfies every one of
 * them; an unreadable item matches no condition. */
int jobitem_matches(const jobitem_filter *f, const mailroom_job_item *item);

/*
 * Reads a raw job (len bytes) into item's job members (readable, recipients, subject,
 * created_at, send_at, raw_bytes; the id when item->id is NULL or ""), leniently: any
 * JSON object of at most MAILROOM_JOB_MAX_BYTES, members of the wrong type ignored.
 * *tree gets the parse and *rcpts the recipients array (both owned by the caller:
 * json_object_put, free), which item's strings borrow; NULL when there are none. A raw
 * job that cannot be read leaves readable 0 and the strings "". 0, or -1 when memory
 * ran out.
 */
int jobitem_read(const char *raw, size_t len, mailroom_job_item *item, struct json_object **tree,
                 const char ***rcpts);

/* 1 when raw (len bytes) is a JSON object whose "id" member is the string id. */
int jobitem_has_id(const char *raw, size_t len, const char *id);

/* A cursor, parsed: tag 'p' with offset and anchor, or 's', 'r', 'x' with at (the
 * score as Redis writes it, or "-inf"/"+inf" at the start) and skip. */
typedef struct jobs_cursor {
    char tag;
    long long offset;            /* p: jobs before the page, from the right end */
    char anchor[JOB_ID_MAX + 1]; /* p: the id the previous page ended with, or "" */
    char at[32];                 /* s, r, x: the score the page starts at */
    long long skip;              /* s, r, x: entries with exactly that score to skip */
} jobs_cursor;

/* The cursor at the start of a walk of tag (for 's' and 'r' at "-inf", for 'x' at
 * "+inf"). */
void jobs_cursor_start(jobs_cursor *c, char tag);

/* Parses s (NULL or "": the start) as a cursor of tag. 0, or -1 with err
 * (MAILROOM_EINVAL) for anything else, a cursor of another walk included. */
int jobs_cursor_parse(const char *s, char tag, jobs_cursor *c, mr_error *err);

/* The text of a cursor, for next_cursor. */
void jobs_cursor_format(const jobs_cursor *c, char out[JOBS_CURSOR_MAX]);

/* Moves a score cursor past an entry with score at (as Redis wrote it): skip grows
 * when at is the cursor's score, else the cursor moves there with skip 1. */
void jobs_cursor_pass(jobs_cursor *c, const char *at);

#endif
