/*
 * shape: see shape.h. Every (domain, job) pair of the sample goes into one list, the
 * domain names packed in one buffer; the list sorted by domain then job gives each
 * domain's distinct jobs and its oldest (the lowest index: the sample is oldest first)
 * in one pass, and the domains sorted by jobs then age give the top ones. Everything
 * is allocated per call and freed before it returns.
 */
#include "shape.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"
#include "buf.h"
#include "job.h"

/* The pairs of a sample. */
typedef struct pairs {
    buf names;    /* the domains, each NUL-terminated */
    size_t *at;   /* where pair i's domain starts in names */
    int *job;     /* pair i's job: its index in the sample */
    int64_t *due; /* per job of the sample: its due time, -1 when not a valid job */
    size_t n;
} pairs;

/* One pair or one domain, for sorting. */
typedef struct domain_ref {
    const char *name;
    int job;   /* a pair's job; a domain's oldest job */
    long jobs; /* a domain's job count */
} domain_ref;

/* Adds the domain of address (a mailbox as the job gives it) for job i, unless this
 * job already has it among its pairs from first on. 0, or -1 out of memory. */
static int add_domain(pairs *p, size_t first, int i, const char *address)
{
    addr_mailbox mb;
    if (p->n >= SHAPE_PAIRS_MAX || addr_parse(address, strlen(address), &mb, NULL) != 0)
        return 0;
    const char *at = strrchr(mb.envelope, '@');
    if (!at || !at[1] || strlen(at + 1) > SHAPE_DOMAIN_MAX)
        return 0;
    char domain[SHAPE_DOMAIN_MAX + 1];
    size_t k = 0;
    for (const char *c = at + 1; *c; c++)
        domain[k++] = (char)tolower((unsigned char)*c);
    domain[k] = '\0';
    for (size_t j = first; j < p->n; j++)
        if (strcmp(p->names.data + p->at[j], domain) == 0)
            return 0;
    p->at[p->n] = p->names.len;
    p->job[p->n] = i;
    if (buf_append(&p->names, domain, k + 1) != 0)
        return -1;
    p->n++;
    return 0;
}

/* Job i of the sample: its due time and its domains. 0, or -1 out of memory. */
static int add_job(pairs *p, int i, const char *raw, size_t len)
{
    job j;
    p->due[i] = -1;
    if (len == 0)
        return 0; /* an entry over the size limit, not sent by Redis */
    if (job_decode(raw, len, &j, NULL) != 0) {
        job_clear(&j); /* a failed decode may keep the tree it parsed */
        return 0;
    }
    p->due[i] = j.send_at_ms > j.created_ms ? j.send_at_ms : j.created_ms;
    const char *const *lists[3] = {j.to, j.cc, j.bcc};
    size_t counts[3] = {j.n_to, j.n_cc, j.n_bcc}, first = p->n;
    int rc = 0;
    for (int l = 0; l < 3 && rc == 0; l++)
        for (size_t k = 0; k < counts[l] && rc == 0; k++)
            rc = add_domain(p, first, i, lists[l][k]);
    job_clear(&j);
    return rc;
}

static int by_name_then_job(const void *a, const void *b)
{
    const domain_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->job > y->job) - (x->job < y->job);
}

static int by_jobs_then_age(const void *a, const void *b)
{
    const domain_ref *x = a, *y = b;
    if (x->jobs != y->jobs)
        return x->jobs < y->jobs ? 1 : -1;
    if (x->job != y->job)
        return x->job > y->job ? 1 : -1;
    return strcmp(x->name, y->name); /* a total order: the same output every time */
}

/* The top domains of the pairs into s. 0, or -1 out of memory. */
static int top_domains(const pairs *p, shape *s)
{
    domain_ref *refs = calloc(p->n + 1, sizeof *refs);
    if (!refs)
        return -1;
    for (size_t i = 0; i < p->n; i++)
        refs[i] = (domain_ref){p->names.data + p->at[i], p->job[i], 0};
    qsort(refs, p->n, sizeof *refs, by_name_then_job);
    size_t n_domains = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (n_domains == 0 || strcmp(refs[n_domains - 1].name, refs[i].name) != 0)
            refs[n_domains++] = (domain_ref){refs[i].name, refs[i].job, 0};
        refs[n_domains - 1].jobs++; /* a job's domains are distinct: one pair per job */
    }
    qsort(refs, n_domains, sizeof *refs, by_jobs_then_age);
    for (size_t i = 0; i < n_domains && s->n_domains < SHAPE_TOP; i++) {
        shape_domain *d = &s->domains[s->n_domains++];
        snprintf(d->name, sizeof d->name, "%s", refs[i].name); /* fits: add_domain checked */
        d->jobs = refs[i].jobs;
        d->oldest_due_ms = p->due[refs[i].job];
    }
    free(refs);
    return 0;
}

int shape_read(const char *const *raw, const size_t *len, size_t n, shape *s)
{
    pairs p = {BUF_INIT, NULL, NULL, NULL, 0};
    int rc = -1;
    memset(s, 0, sizeof *s);
    s->sampled = (long)n;
    p.at = malloc(SHAPE_PAIRS_MAX * sizeof *p.at);
    p.job = malloc(SHAPE_PAIRS_MAX * sizeof *p.job);
    p.due = malloc((n + 1) * sizeof *p.due);
    if (!p.at || !p.job || !p.due)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (add_job(&p, (int)i, raw[i], len[i]) != 0)
            goto out;
    for (size_t i = 0; i < n && !s->oldest_due_ms; i++)
        if (p.due[i] > 0)
            s->oldest_due_ms = p.due[i];
    rc = top_domains(&p, s);
out:
    buf_free(&p.names);
    free(p.at);
    free(p.job);
    free(p.due);
    return rc;
}
