/*
 * jobitem.c — the pure pieces of the job listing (see jobitem.h): lenient reading of
 * a raw job, the recipient filters, the cursors. Nothing here talks to Redis.
 */
#define _POSIX_C_SOURCE 200809L
#include "jobitem.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suppress.h"

/* Parses len bytes of JSON leniently; NULL unless it is a JSON object. */
static json_object *parse_object(const char *s, size_t len)
{
    if (len > MAILROOM_JOB_MAX_BYTES)
        return NULL;
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return NULL;
    json_object *o = json_tokener_parse_ex(tok, s, (int)len);
    if (json_tokener_get_error(tok) != json_tokener_success ||
        !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

/* The string member key of o; "" when absent or not a string. */
static const char *member(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return "";
    return json_object_get_string(v);
}

/* The array member key of o; NULL when absent or not an array. */
static json_object *array_member(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array))
        return NULL;
    return v;
}

/* The string elements of to, cc and bcc, in that order, into a new array (NULL when
 * there are none). 0, or -1 when memory ran out. */
static int read_recipients(json_object *o, const char ***out, size_t *n)
{
    static const char *const lists[] = {"to", "cc", "bcc"};
    size_t total = 0;
    *out = NULL;
    *n = 0;
    for (size_t k = 0; k < 3; k++) {
        json_object *a = array_member(o, lists[k]);
        total += a ? json_object_array_length(a) : 0;
    }
    if (total == 0)
        return 0;
    const char **v = calloc(total, sizeof *v);
    if (!v)
        return -1;
    for (size_t k = 0; k < 3; k++) {
        json_object *a = array_member(o, lists[k]);
        for (size_t i = 0; a && i < json_object_array_length(a); i++) {
            json_object *e = json_object_array_get_idx(a, i);
            if (json_object_is_type(e, json_type_string))
                v[(*n)++] = json_object_get_string(e);
        }
    }
    *out = v;
    return 0;
}

int jobitem_read(const char *raw, size_t len, mailroom_job_item *item, json_object **tree,
                 const char ***rcpts)
{
    *tree = NULL;
    *rcpts = NULL;
    item->readable = 0;
    item->recipients = NULL;
    item->n_recipients = 0;
    item->subject = item->created_at = item->send_at = "";
    item->raw_bytes = len;
    if (!item->id)
        item->id = "";
    json_object *o = parse_object(raw, len);
    if (!o)
        return 0;
    if (read_recipients(o, rcpts, &item->n_recipients) != 0) {
        json_object_put(o);
        return -1;
    }
    *tree = o;
    item->readable = 1;
    item->recipients = *rcpts;
    item->subject = member(o, "subject");
    item->created_at = member(o, "created_at");
    item->send_at = member(o, "send_at");
    if (!item->id[0])
        item->id = member(o, "id");
    return 0;
}

int jobitem_has_id(const char *raw, size_t len, const char *id)
{
    json_object *o = parse_object(raw, len);
    int yes = o && strcmp(member(o, "id"), id) == 0;
    json_object_put(o);
    return yes;
}

/* The domain of an address in suppression spelling (after its last '@'). */
static const char *domain_of(const char *address)
{
    const char *at = strrchr(address, '@');
    return at ? at + 1 : "";
}

int jobitem_filter_init(jobitem_filter *f, const char *to, const char *domain, mr_error *err)
{
    char probe[ADDR_SPEC_MAX + 8];
    memset(f, 0, sizeof *f);
    if (to && *to && suppress_address(to, strlen(to), f->to, err) != 0)
        return mr_prefix(err, "to");
    if (!domain || !*domain)
        return 0;
    if (*domain == '@')
        domain++;
    int n = snprintf(probe, sizeof probe, "x@%s", domain);
    char spelled[ADDR_SPEC_MAX + 1];
    if (n < 0 || (size_t)n >= sizeof probe ||
        suppress_address(probe, (size_t)n, spelled, NULL) != 0)
        return mr_fail(err, MAILROOM_EINVAL, "domain: '%.64s' is not a domain name", domain);
    snprintf(f->domain, sizeof f->domain, "%s", domain_of(spelled));
    return 0;
}

/* 1 when one recipient (a mailbox as the job writes it) passes every condition. */
static int recipient_matches(const jobitem_filter *f, const char *mailbox)
{
    addr_mailbox mb;
    if (addr_parse(mailbox, strlen(mailbox), &mb, NULL) != 0)
        return 0;
    for (char *p = mb.envelope; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (f->to[0] && strcmp(mb.envelope, f->to) != 0)
        return 0;
    return !f->domain[0] || strcmp(domain_of(mb.envelope), f->domain) == 0;
}

int jobitem_matches(const jobitem_filter *f, const mailroom_job_item *item)
{
    if (!f->to[0] && !f->domain[0])
        return 1;
    for (size_t i = 0; item->readable && i < item->n_recipients; i++)
        if (recipient_matches(f, item->recipients[i]))
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ cursors */

void jobs_cursor_start(jobs_cursor *c, char tag)
{
    memset(c, 0, sizeof *c);
    c->tag = tag;
    snprintf(c->at, sizeof c->at, "%s", tag == 'x' ? "+inf" : "-inf");
}

/* A whole decimal number >= 0 of the digits at s, up to end; -1 when it is not one. */
static long long whole(const char *s, const char *end)
{
    if (s == end || end - s > 18)
        return -1;
    long long v = 0;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* 1 when the n bytes at s are a score as Redis writes one (a number, or -inf/+inf):
 * what ZRANGEBYSCORE takes back. */
static int is_score(const char *s, size_t n)
{
    char buf[32], *end = NULL;
    if (n == 0 || n >= sizeof buf || strspn(s, "0123456789.eE+-infINF") < n)
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    (void)strtod(buf, &end);
    return end == buf + n;
}

/* "<score>:<skip>" after the tag. */
static int parse_scored(const char *body, jobs_cursor *c)
{
    const char *colon = strchr(body, ':');
    if (!colon || !is_score(body, (size_t)(colon - body)))
        return -1;
    c->skip = whole(colon + 1, colon + 1 + strlen(colon + 1));
    if (c->skip < 0)
        return -1;
    memcpy(c->at, body, (size_t)(colon - body));
    c->at[colon - body] = '\0';
    return 0;
}

/* "<offset>:<anchor>" after the tag; the anchor is a job id or "". */
static int parse_pending(const char *body, jobs_cursor *c)
{
    const char *colon = strchr(body, ':');
    if (!colon || (c->offset = whole(body, colon)) < 0)
        return -1;
    if (colon[1] && !job_id_valid(colon + 1))
        return -1;
    snprintf(c->anchor, sizeof c->anchor, "%s", colon + 1);
    return 0;
}

int jobs_cursor_parse(const char *s, char tag, jobs_cursor *c, mr_error *err)
{
    jobs_cursor_start(c, tag);
    if (!s || !*s)
        return 0;
    int bad = s[0] != tag || strlen(s) >= JOBS_CURSOR_MAX;
    if (!bad)
        bad = (tag == 'p' ? parse_pending(s + 1, c) : parse_scored(s + 1, c)) != 0;
    if (bad) {
        jobs_cursor_start(c, tag);
        return mr_fail(err, MAILROOM_EINVAL,
                       "cursor '%.48s' is not one of this listing (give a next_cursor it"
                       " returned)",
                       s);
    }
    return 0;
}

void jobs_cursor_format(const jobs_cursor *c, char out[JOBS_CURSOR_MAX])
{
    if (c->tag == 'p')
        snprintf(out, JOBS_CURSOR_MAX, "p%lld:%s", c->offset, c->anchor);
    else
        snprintf(out, JOBS_CURSOR_MAX, "%c%s:%lld", c->tag, c->at, c->skip);
}

void jobs_cursor_pass(jobs_cursor *c, const char *at)
{
    if (strcmp(c->at, at) == 0) {
        c->skip++;
        return;
    }
    snprintf(c->at, sizeof c->at, "%s", at);
    c->skip = 1;
}
