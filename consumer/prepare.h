/*
 * prepare: a taken job made ready to send, or settled without sending. Verification
 * (decode, signature), freshness (lifetime, clock skew, expires_at, send_at), BEGIN
 * (the lease), then the message and the envelope of this attempt (every recipient the
 * first time, the ones still owed on a retry) and the SMTP transaction.
 */
#ifndef MAILROOM_PREPARE_H
#define MAILROOM_PREPARE_H

#include "worker.h"

/* Prepares the job in t. 1: t->txn is ready for the SMTP session. 0: the job was
 * settled here (rejected, failed, deferred, a duplicate, lost): nothing to send, and
 * the caller releases t; the FINISH that settled it carried the next take (carry:
 * TAKE_BLOCK, TAKE_POLL or 0, as for outcome_finish_carrying). */
int prepare_task(worker *w, task *t, int carry);

#endif
