/*
 * suppression: the consumer's side of the suppression list (docs/redis.md): a
 * recipient whose address a relay refused for good (a 5xx to RCPT with a permanent
 * address status, --suppress-on) is put on the list for --suppress-for; a later job
 * skips a listed recipient (its answer says suppressed), and a job whose every
 * recipient is listed fails without a connection. The list is looked up for every
 * job, before its lease, in one MGET of its recipients' entries: an address listed by
 * one consumer is skipped by every other from the next job on.
 */
#ifndef MAILROOM_SUPPRESSION_H
#define MAILROOM_SUPPRESSION_H

#include "worker.h"

/* 1 when list is a comma list of codes: enhanced ones (5.1.1, or 5.1.* for a class)
 * or reply codes (550); every code a permanent (5) one. */
int suppress_codes_valid(const char *list);

/* 1 when a RCPT refusal (its code and enhanced code, "" when none) matches list. */
int suppress_codes_match(const char *list, int code, const char *enhanced);

/* Looks the job's recipients up (one MGET), filling t->suppressed. Returns how many
 * are listed, or -1 when Redis failed (then none is treated as listed: the relay
 * will refuse them again). */
int suppression_lookup(worker *w, task *t);

/* 1 when the envelope address (as RCPT TO would send it) is listed in t->suppressed. */
int suppression_listed(const task *t, const char *envelope);

/* Puts on the list the recipients of t's finished transaction whose refusal matches
 * --suppress-on, each with its reply as the reason. */
void suppression_add_refused(worker *w, const task *t);

#endif
