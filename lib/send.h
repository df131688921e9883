/*
 * send.h — private to lib/: turning one mailroom_email into a signed job ready for the
 * ENQUEUE script (common/lua/enqueue.lua), shared by mailroom_send (send.c) and
 * mailroom_send_batch (batch.c), so that both build, validate and sign exactly alike.
 */
#ifndef MAILROOM_LIB_SEND_H
#define MAILROOM_LIB_SEND_H

#include <stdint.h>

#include "handle.h"
#include "job.h"
#include "script.h"

/* A validated, signed job ready to enqueue. raw borrows from j's tree. */
typedef struct prepared {
    job j; /* owns the tree */
    char id[MAILROOM_ID_MAX];
    const char *raw;
    size_t raw_len;
    char due[24]; /* "" = now, else the send_at in ms */
} prepared;

/*
 * Builds, validates and (when sign) signs one email; now is the time of the call in
 * ms and created the same in RFC 3339 seconds (clock_format_iso(now, 0, ...)). Returns
 * 0 with p->j owning the tree (release it with job_clear(&p->j); a validation without
 * sign releases it at once and leaves only p->id and p->raw_len), or -1 with m->err
 * set and nothing left allocated.
 */
int send_prepare(mailroom *m, const mailroom_email *e, int64_t now, const char *created, int sign,
                 prepared *p);

/* Fills the ENQUEUE arguments of a job for queue k: job_key is the caller's buffer for
 * the record's key name, which a->v points into, as it points into raw, now_iso, due
 * and k. */
void send_enqueue_args(const mailroom *m, const keys_queue *k, enqueue_args *a,
                       char job_key[KEYS_NAME_MAX], const char *id, const char *raw, size_t raw_len,
                       const char *now_iso, const char *due);

/* Maps a non-transient ENQUEUE reply for job id to 0 (enqueued) or -1 with m->err set
 * (MAILROOM_EDUPLICATE, MAILROOM_EREDIS, MAILROOM_EPROTO). */
int send_enqueue_reply(mailroom *m, const redisReply *r, const char *id);

#endif
