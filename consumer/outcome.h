/*
 * outcome: FINISH, the one step that records what became of a job a worker held: the
 * status record (with each recipient's answer, the addresses still owed and the
 * relay's queue id), the acknowledgement, the move to scheduled or the dead list, the
 * counter and the event, under the job's lease (finish.lua). Also the outcome's log
 * line, stamped with the time the outcome was known.
 */
#ifndef MAILROOM_OUTCOME_H
#define MAILROOM_OUTCOME_H

#include <stdint.h>

#include "mailroom.h"
#include "take.h"
#include "worker.h"

/* What FINISH records for a task's job. */
typedef struct outcome {
    mailroom_state state; /* sent, retrying, failed, rejected; queued: deferred or put
                             back, uncounted */
    const char *id;       /* "" when the job had no readable id */
    int smtp_code;        /* 0: none */
    const char *reply;
    const char *error;
    int64_t due_ms;         /* retrying and queued only */
    int64_t at_ms;          /* when the outcome was known */
    const char *relay_id;   /* NULL: none */
    const char *recipients; /* this attempt's answers, a JSON object; NULL: none */
    const char *owed;       /* the addresses a retry must still reach, a JSON array */
    const char *uncounted;  /* queued only: "throttled" or "unreachable" for an attempt
                               put back without counting; NULL otherwise */
} outcome;

/* Records o for the job in t (its token "" before BEGIN) and logs it; the next take
 * goes out with it (carry: TAKE_BLOCK, TAKE_POLL, or 0 for none). */
void outcome_finish_carrying(worker *w, task *t, const outcome *o, int carry);
/* The same, carrying a blocking take. */
void outcome_finish(worker *w, task *t, const outcome *o);

/*
 * Records what the SMTP transaction of t (DONE) says, recipient by recipient: a 2xx
 * after the content delivers to the recipients accepted; a 5xx to RCPT refuses that
 * recipient for good; a 4xx to RCPT, or a temporary failure of the whole transaction,
 * leaves recipients owed for a retry (with backoff, within --max-attempts and
 * --max-lifetime). A job ends sent when any of its recipients got it, over all its
 * attempts; failed when none did. An ABORTED transaction records nothing (the job goes
 * back to pending at the shutdown). An attempt the relay throttled or that never
 * reached it is put back uncounted (queued, due in a second or two). A refusal that
 * matches --suppress-on puts the address on the suppression list. carry as for
 * outcome_finish_carrying.
 */
void outcome_of_txn(worker *w, task *t, int carry);

/* Records a job whose every recipient is on the suppression list (t->suppressed) as
 * failed, before any lease and without a connection; each recipient's answer says
 * suppressed and why. carry as for outcome_finish_carrying. */
void outcome_all_suppressed(worker *w, task *t, int carry);

#endif
