/*
 * retry: the events of this instance waiting for another attempt, each with its
 * attempt count and when it is due, and the capped exponential backoff that spaces
 * the attempts. Only ids are kept: the event itself stays in Redis, pending for this
 * instance, and is claimed again (mailroom_stream_claim) when it is due, so the set
 * costs about 64 bytes an event and a restart loses nothing (the pending events come
 * back first). The set is bounded: when it is full, no new event is read.
 */
#ifndef MAILROOM_WEBHOOK_RETRY_H
#define MAILROOM_WEBHOOK_RETRY_H

#include <stddef.h>
#include <stdint.h>

#include "mailroom_admin.h"

typedef struct retry_entry {
    char id[MAILROOM_STREAM_ID_MAX]; /* the stream entry */
    int attempts;                    /* made so far */
    int64_t due_ms;                  /* wall clock, ms */
} retry_entry;

typedef struct retry_set {
    retry_entry *items; /* owned; n used of cap */
    size_t n, cap;
} retry_set;

/* An empty set for at most cap entries. 0, or -1 when memory ran out. */
int retry_init(retry_set *r, size_t cap);
void retry_free(retry_set *r);

/* The entry of id, or NULL. */
retry_entry *retry_find(retry_set *r, const char *id);

/* Sets id's attempts and due time, adding it when new. 0, or -1 when the set is full. */
int retry_put(retry_set *r, const char *id, int attempts, int64_t due_ms);

/* Forgets id (nothing when it is not there). */
void retry_remove(retry_set *r, const char *id);

/* The entry due first, or NULL when the set is empty. */
const retry_entry *retry_earliest(const retry_set *r);

/* Makes every entry due at now: the application answers again after an outage. */
void retry_wake_all(retry_set *r, int64_t now);

/*
 * The delay before attempt attempts + 1: base doubled attempts - 1 times, capped at
 * max, with "equal jitter" (half of it fixed, the other half random: from random, any
 * 32-bit value), so that the events of an outage do not all come back at once.
 */
int64_t retry_delay_ms(int attempts, int64_t base, int64_t max, uint32_t random);

#endif
