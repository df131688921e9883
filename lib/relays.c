/*
 * relays.c — the relays of a deployment (mailroom_admin.h): mailroom_relays_read().
 *
 * The consumers keep each relay's shared state under its own hash tag
 * (mailroom:relay:{R}, docs/redis.md: the circuit breaker and the adaptive rate) and
 * name the relays they use in the set mailroom:relays. The reader drops the members
 * unused for a day (the set's documented reader's duty), then reads every relay's hash
 * and counts its unexpired session slots in one pipelined round trip: the keys live in
 * different Cluster slots, so no script could read them together.
 *
 * The result owns the replies its strings borrow from; mailroom_relays_free()
 * releases them.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handle.h"
#include "mailroom_admin.h"

#define RELAY_FORGET_MS (24LL * 3600 * 1000) /* a relay unused this long is dropped */

/* What mailroom_relays_read hands out: the public part first. */
typedef struct relays_impl {
    mailroom_relays pub;
    redisReply *names;   /* ZRANGE mailroom:relays WITHSCORES, owned */
    redisReply **hashes; /* HGETALL per relay, owned */
    mailroom_relay *items;
} relays_impl;

void mailroom_relays_free(mailroom_relays *l)
{
    relays_impl *x = (relays_impl *)l; /* pub is the first member */
    if (!x)
        return;
    for (size_t i = 0; x->hashes && i < x->pub.n; i++)
        freeReplyObject(x->hashes[i]);
    free(x->hashes);
    free(x->items);
    freeReplyObject(x->names);
    free(x);
}

/* Redis' clock in ms (TIME). 0, or -1 with m->err set. */
static int server_ms(mailroom *m, long long *now)
{
    redisReply *r = redisCommand(m->redis, "TIME");
    int rr = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        rr = handle_reply_failed(m, r, "TIME");
    else
        *now = strtoll(r->element[0]->str, NULL, 10) * 1000 +
               strtoll(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    return rr;
}

/* Drops the relays unused for a day, then reads the others with their last use:
 * x->names. 0, or -1 with m->err set. */
static int read_names(mailroom *m, relays_impl *x)
{
    char before[32];
    snprintf(before, sizeof before, "(%lld", x->pub.now_ms - RELAY_FORGET_MS);
    const char *drop[] = {"ZREMRANGEBYSCORE", KEYS_RELAYS, "-inf", before};
    redisReply *r = redisCommandArgv(m->redis, 4, drop, NULL);
    int bad = !r || r->type != REDIS_REPLY_INTEGER;
    if (bad)
        handle_reply_failed(m, r, "ZREMRANGEBYSCORE relays");
    freeReplyObject(r);
    if (bad)
        return -1;
    const char *list[] = {"ZRANGE", KEYS_RELAYS, "0", "-1", "WITHSCORES"};
    r = redisCommandArgv(m->redis, 5, list, NULL);
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements % 2 == 0;
    for (size_t i = 0; ok && i < r->elements; i++)
        ok = r->element[i]->type == REDIS_REPLY_STRING;
    if (!ok) {
        handle_reply_failed(m, r, "ZRANGE relays");
        freeReplyObject(r);
        return -1;
    }
    x->names = r;
    return 0;
}

/* Queues HGETALL and ZCOUNT (unexpired sessions) for every relay whose name is
 * usable in a key. 0, or -1 (memory). */
static int append_reads(mailroom *m, const relays_impl *x)
{
    char key[KEYS_NAME_MAX], sessions[KEYS_NAME_MAX], now[32];
    snprintf(now, sizeof now, "(%lld", x->pub.now_ms);
    int bad = 0;
    for (size_t i = 0; i < x->names->elements; i += 2) {
        const char *name = x->names->element[i]->str;
        keys_relay(name, key);
        keys_relay_sessions(name, sessions);
        const char *hget[] = {"HGETALL", key};
        const char *zcount[] = {"ZCOUNT", sessions, now, "+inf"};
        bad |= redisAppendCommandArgv(m->redis, 2, hget, NULL);
        bad |= redisAppendCommandArgv(m->redis, 4, zcount, NULL);
    }
    return bad ? -1 : 0;
}

/* A field of a relay's hash as text ("" when absent). */
static const char *field(const redisReply *h, const char *name)
{
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (h->element[i]->type == REDIS_REPLY_STRING &&
            h->element[i + 1]->type == REDIS_REPLY_STRING && strcmp(h->element[i]->str, name) == 0)
            return h->element[i + 1]->str;
    return "";
}

/* A relay from its name, last use, hash and session count. */
static mailroom_relay relay_of(const char *name, const char *used, const redisReply *h,
                               long long sessions)
{
    const char *circuit = field(h, "circuit");
    return (mailroom_relay){.name = name,
                            .last_used_ms = (long long)strtod(used, NULL),
                            .circuit = circuit[0] ? circuit : "closed",
                            .failures = strtoll(field(h, "failures"), NULL, 10),
                            .last_error = field(h, "last_error"),
                            .opened_at_ms = strtoll(field(h, "opened_at"), NULL, 10),
                            .probe_at_ms = strtoll(field(h, "probe_at"), NULL, 10),
                            .prober = field(h, "prober"),
                            .rate = strtod(field(h, "rate"), NULL),
                            .rate_max = strtod(field(h, "rate_max"), NULL),
                            .throttles = strtoll(field(h, "throttles"), NULL, 10),
                            .throttled_at_ms = strtoll(field(h, "throttled_at"), NULL, 10),
                            .sessions = sessions};
}

/* Reads the pipelined replies into the relays. 0, or -1 with m->err set. */
static int read_relays(mailroom *m, relays_impl *x)
{
    size_t n = x->names->elements / 2;
    for (size_t i = 0; i < n; i++) {
        void *h = NULL, *z = NULL;
        if (redisGetReply(m->redis, &h) != REDIS_OK || redisGetReply(m->redis, &z) != REDIS_OK) {
            freeReplyObject(h);
            return handle_connection_failed(m, "relays");
        }
        redisReply *hash = h, *count = z;
        x->hashes[i] = hash;
        x->pub.n = i + 1;
        int ok = hash->type == REDIS_REPLY_ARRAY && count->type == REDIS_REPLY_INTEGER;
        if (ok)
            x->items[i] = relay_of(x->names->element[2 * i]->str, x->names->element[2 * i + 1]->str,
                                   hash, count->integer);
        else
            handle_reply_failed(m, hash->type != REDIS_REPLY_ARRAY ? hash : count, "relays");
        freeReplyObject(count);
        if (!ok)
            return -1;
    }
    return 0;
}

/* Orders relays by name, so that a view refreshed every second keeps its rows. */
static int by_name(const void *a, const void *b)
{
    return strcmp(((const mailroom_relay *)a)->name, ((const mailroom_relay *)b)->name);
}

/* The whole read: clock, names, then the pipeline. 0, or -1 with m->err set; a
 * failure inside the pipeline drops the connection (replies may be left unread). */
static int relays_read(mailroom *m, relays_impl *x)
{
    if (handle_connect(m) != 0 || server_ms(m, &x->pub.now_ms) != 0 || read_names(m, x) != 0)
        return -1;
    size_t n = x->names->elements / 2;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    x->hashes = calloc(n ? n : 1, sizeof *x->hashes);
    x->items = calloc(n ? n : 1, sizeof *x->items);
    if (!x->hashes || !x->items)
        return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    if (append_reads(m, x) != 0) {
        handle_drop(m);
        return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    }
    if (read_relays(m, x) != 0) {
        handle_drop(m);
        return -1;
    }
    qsort(x->items, x->pub.n, sizeof *x->items, by_name);
    x->pub.items = x->items;
    return 0;
}

/* mailroom_relays_read (mailroom_admin.h). */
int mailroom_relays_read(mailroom *m, mailroom_relays **out)
{
    if (!m)
        return MAILROOM_EINVAL;
    if (!out)
        return handle_result(m, mr_fail(&m->err, MAILROOM_EINVAL, "relays: out is NULL"));
    *out = NULL;
    relays_impl *x = calloc(1, sizeof *x);
    if (!x)
        return handle_result(m, mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory"));
    int r = relays_read(m, x);
    if (r == 0) {
        *out = &x->pub;
        x = NULL;
    }
    mailroom_relays_free(x ? &x->pub : NULL);
    return handle_result(m, r);
}
