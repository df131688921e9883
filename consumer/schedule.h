/*
 * schedule: the retry schedule the options give, as the Markdown table of
 * docs/reliability.md (`mailroom-consumer --retry-table` prints it, and a test checks
 * that the documented table is what the defaults print): each failed attempt, the
 * delay before the next (without and with the jitter of worker_backoff_ms), the time
 * since the first attempt, and how the job ends, by --max-attempts or --max-lifetime.
 */
#ifndef MAILROOM_SCHEDULE_H
#define MAILROOM_SCHEDULE_H

#include <stdio.h>

#include "options.h"

/* Prints the table for the options' backoff, attempts and lifetime. */
void schedule_print(FILE *out, const consumer_options *o);

#endif
