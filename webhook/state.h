/*
 * state: mailroom-webhook's delivery state in Redis, for the dashboard and operators
 * (docs/redis.md): the hash mailroom:{Q}:webhook, with url (as it may be shown),
 * delivered and failed (counters), last_status, last_error, last_at (the last attempt),
 * lag (events of the stream not handled yet) and stream_id (the last event delivered);
 * and the list mailroom:{Q}:webhook:failed of the events given up, newest first,
 * capped at WEBHOOK_FAILED_MAX.
 *
 * The state has a connection of its own (not the stream reader's, which blocks). It is
 * advisory: a failure to write it is logged (at most one line per 10 s) and never
 * stops a delivery; the connection is made again at the next write.
 */
#ifndef MAILROOM_WEBHOOK_STATE_H
#define MAILROOM_WEBHOOK_STATE_H

#include <hiredis/hiredis.h>

#include "config.h"
#include "deliver.h"
#include "mailroom_admin.h"

#define WEBHOOK_FAILED_MAX 1000

typedef struct webhook_state {
    const webhook_config *cfg; /* borrowed */
    redisContext *c;           /* owned; NULL while disconnected */
} webhook_state;

/* One attempt's outcome: r as deliver_post gave it, delivered when it was a 2xx (then
 * the counter and stream_id move too). */
void state_attempt(webhook_state *st, const char *stream_id, const delivery_result *r,
                   int delivered);

/* An event given up after `attempts` attempts: the failed counter and the failed
 * list, with the event's id and state and why. */
void state_gave_up(webhook_state *st, const mailroom_stream_event *sev, const char *delivery_id,
                   int attempts, const char *why);

/* The periodic write: the URL and the lag (XINFO of the stream and its groups). */
void state_tick(webhook_state *st);

/* Closes the connection. Accepts NULL. */
void state_close(webhook_state *st);

#endif
