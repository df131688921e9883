/*
 * shape: what the oldest pending jobs of a queue are for, recipient domain by recipient
 * domain, as Postfix' qshape shows a mail queue: for the exporter's per-domain series
 * (exporter.c, docs/operations.md). Given a sample of raw pending jobs, oldest first,
 * it finds the due time of the oldest one and, for the domains with the most jobs, how
 * many jobs have a recipient there and when the oldest of them was due.
 *
 * Jobs are decoded with the consumer's own validator (job.c) and addresses read with
 * its own parser (address.c): a domain is its envelope form (A-labels) in lower case,
 * so Bücher.de and xn--bcher-kva.de are one domain. An entry that is not a valid job
 * is counted as sampled and otherwise ignored. A job counts once per distinct domain
 * among its to, cc and bcc. Bounded: at most SHAPE_PAIRS_MAX (domain, job) pairs are
 * read from one sample, which 100 recipients to each of 100 jobs already fill.
 */
#ifndef MAILROOM_SHAPE_H
#define MAILROOM_SHAPE_H

#include <stddef.h>
#include <stdint.h>

#define SHAPE_TOP 10          /* domains kept */
#define SHAPE_DOMAIN_MAX 253  /* the longest domain name */
#define SHAPE_PAIRS_MAX 10000 /* (domain, job) pairs read from one sample */

typedef struct shape_domain {
    char name[SHAPE_DOMAIN_MAX + 1];
    long jobs;             /* sampled jobs with a recipient at this domain */
    int64_t oldest_due_ms; /* the due time of the oldest of them */
} shape_domain;

typedef struct shape {
    long sampled;          /* entries looked at */
    int64_t oldest_due_ms; /* due time (created_at, or send_at when later) of the oldest
                               valid job; 0 when none was valid */
    int n_domains;
    shape_domain domains[SHAPE_TOP]; /* the most jobs first; ties: the older first */
} shape;

/* Reads n sampled entries (raw[i] of len[i] bytes, the oldest first) into *s. Returns
 * 0, or -1 when memory ran out. */
int shape_read(const char *const *raw, const size_t *len, size_t n, shape *s);

#endif
