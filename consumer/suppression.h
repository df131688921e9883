/*
 * suppression: the consumer's side of the suppression list (docs/redis.md): a
 * recipient whose address a relay refused for good (a 5xx to RCPT with a permanent
 * address status, --suppress-on) is put on the list for --suppress-for; a later job
 * skips a listed recipient (its answer says suppressed), and a job whose every
 * recipient is listed fails without a connection. The list is looked up for every
 * job with one MGET of its recipients' entries, sent in the same write as the job's
 * BEGIN (no round trip of its own): an address listed by one consumer is skipped by
 * every other from the next job on.
 */
#ifndef MAILROOM_SUPPRESSION_H
#define MAILROOM_SUPPRESSION_H

#include "keys.h"
#include "worker.h"

/* 1 when list is a comma list of codes: enhanced ones (5.1.1, or 5.1.* for a class)
 * or reply codes (550); every code a permanent (5) one. */
int suppress_codes_valid(const char *list);

/* 1 when a RCPT refusal (its code and enhanced code, "" when none) matches list. */
int suppress_codes_match(const char *list, int code, const char *enhanced);

/* The lookup of a job's distinct recipients: MGET of their entries (argv, n + 1
 * words, the keys in keys[]); forms[] and shown[] point into t->rcpt. */
typedef struct suppression_query {
    int n;
    const char *argv[JOB_MAX_RCPT + 1];
    const char *forms[JOB_MAX_RCPT], *shown[JOB_MAX_RCPT];
    char keys[JOB_MAX_RCPT][KEYS_NAME_MAX];
} suppression_query;

/* Builds q for t (and empties t->suppressed). 0, or -1 when memory ran out. */
int suppression_query_of(task *t, suppression_query *q);

/* Reads the MGET's reply into t->suppressed: how many recipients are listed, or -1
 * when the reply is not its answer (an error reply is logged; then none is treated as
 * listed: the relay will refuse them again). */
int suppression_read(task *t, const suppression_query *q, const redisReply *r);

/* Sends q's MGET on its own (when it could not go along with BEGIN) and reads it as
 * suppression_read does; -1 also when Redis failed. */
int suppression_lookup(worker *w, task *t, suppression_query *q);

/* 1 when the envelope address (as RCPT TO would send it) is listed in t->suppressed. */
int suppression_listed(const task *t, const char *envelope);

/* Puts on the list the recipients of t's finished transaction whose refusal matches
 * --suppress-on, each with its reply as the reason. */
void suppression_add_refused(worker *w, const task *t);

#endif
