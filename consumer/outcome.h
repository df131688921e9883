/*
 * outcome: FINISH, the one step that records what became of a job a worker held: the
 * status record, the acknowledgement, the move to scheduled or the dead list, the
 * counter and the event, under the job's lease (finish.lua). Also the outcome's log
 * line, stamped with the time the outcome was known.
 */
#ifndef MAILROOM_OUTCOME_H
#define MAILROOM_OUTCOME_H

#include <stdint.h>

#include "mailroom.h"
#include "worker.h"

/* What FINISH records for the job in w->cur. */
typedef struct outcome {
    mailroom_state state; /* sent, retrying, failed, rejected; queued: deferred, uncounted */
    const char *id;       /* "" when the job had no readable id */
    int smtp_code;        /* 0: none */
    const char *reply;
    const char *error;
    int64_t due_ms; /* retrying and queued only */
    int64_t at_ms;  /* when the outcome was known */
} outcome;

/* Records o for the job in w->cur (its token "" before BEGIN) and logs it. */
void outcome_finish(worker *w, const outcome *o);

/* Records a rejection (invalid, forged or stale job) without a lease. */
void outcome_reject(worker *w, const char *id, const char *reason);

#endif
