/*
 * stats.c — the queue at a glance (mailroom_admin.h): mailroom_stats_read() and
 * mailroom_consumers_read(), both built from one snapshot of the queue's keys.
 *
 * A snapshot is read on the handle's connection at (nearly) one instant: Redis' TIME
 * (heartbeats are written with the server's clock, so ages are measured with it too),
 * a SCAN for the processing lists, then every other read in one pipelined round trip;
 * then, in a second, the info hash of every consumer found, and the times of the job
 * taken next (common/lua/oldest.lua, which keeps a hostile entry in Redis).
 * The result a caller gets owns the snapshot: its strings borrow from the replies it
 * keeps, and its _free() releases both.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "handle.h"
#include "mailroom_admin.h"
#include "script.h"

/* The counters stats always shows, in this order (0 when Redis has none yet). */
static const char *const known_counters[] = {"sent",     "retried",   "failed",
                                             "rejected", "recovered", "cancelled"};
#define N_KNOWN (sizeof known_counters / sizeof known_counters[0])

/* The outcomes of one minute (mailroom:{Q}:minute:<m>) that stats shows. */
typedef struct minute_counts {
    long long sent, failed;
} minute_counts;

/* Everything stats and consumers show. procs[i].consumer is owned (strdup). */
typedef struct snapshot {
    long long now_ms; /* Redis TIME */
    long long pending, scheduled, scheduled_due, dead, oldest_age_ms;
    minute_counts cur, prev; /* this minute's outcomes and the last one's */
    mailroom_processing *procs;
    size_t n_procs, cap_procs;
    redisReply *consumers; /* ZRANGE consumers 0 -1 WITHSCORES, owned */
    redisReply *counters;  /* HGETALL stats, owned */
    redisReply *paused;    /* GET paused, owned: a string while paused */
    redisReply **infos;    /* HGETALL info:<consumer> per info_ids entry, owned */
    const char **info_ids; /* the consumers whose info was read (borrowed) */
    size_t n_infos;
} snapshot;

static void snapshot_free(snapshot *s)
{
    for (size_t i = 0; i < s->n_procs; i++)
        free((char *)s->procs[i].consumer);
    free(s->procs);
    for (size_t i = 0; s->infos && i < s->n_infos; i++)
        freeReplyObject(s->infos[i]);
    free(s->infos);
    free((void *)s->info_ids);
    freeReplyObject(s->consumers);
    freeReplyObject(s->counters);
    freeReplyObject(s->paused);
    memset(s, 0, sizeof *s);
}

/* Redis' clock (TIME) in ms. 0, or -1 with m->err set. */
static int redis_now_ms(mailroom *m, long long *now)
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

/* Appends a consumer id (copied) to the processing table. 0, or -1 (memory). */
static int proc_add(snapshot *s, const char *consumer)
{
    if (s->n_procs == s->cap_procs) {
        size_t cap = s->cap_procs ? 2 * s->cap_procs : 16;
        mailroom_processing *v = realloc(s->procs, cap * sizeof *v);
        if (!v)
            return -1;
        s->procs = v;
        s->cap_procs = cap;
    }
    char *copy = strdup(consumer);
    if (!copy)
        return -1;
    s->procs[s->n_procs].consumer = copy; /* owned by the snapshot from here on */
    s->procs[s->n_procs].jobs = 0;
    s->n_procs++;
    return 0;
}

/* Takes the processing lists of one SCAN reply's keys (those under prefix). */
static int take_scan_keys(mailroom *m, snapshot *s, const redisReply *keys, const char *prefix)
{
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *key = keys->element[i];
        if (key->type != REDIS_REPLY_STRING || key->len <= plen ||
            strncmp(key->str, prefix, plen) != 0)
            continue;
        if (proc_add(s, key->str + plen) != 0)
            return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    }
    return 0;
}

/*
 * Finds every processing list of the queue with SCAN (the braces of the hash tag are
 * escaped: they are literal in the key, and a glob must not see them as anything
 * else). 0, or -1 with m->err set.
 */
static int scan_processing(mailroom *m, snapshot *s)
{
    char prefix[KEYS_NAME_MAX], pattern[KEYS_NAME_MAX + 8], cursor[32] = "0";
    keys_processing(&m->keys, "", prefix);
    snprintf(pattern, sizeof pattern, "mailroom:\\{%s\\}:processing:*", m->keys.queue);
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        redisReply *r = redisCommandArgv(m->redis, 6, argv, NULL);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            handle_reply_failed(m, r, "SCAN");
            freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        int rr = take_scan_keys(m, s, r->element[1], prefix);
        freeReplyObject(r);
        if (rr != 0)
            return -1;
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* Queues the pipelined reads of a snapshot (replies are read by read_snapshot). 0, or
 * -1 when memory ran out. */
static int append_reads(mailroom *m, const snapshot *s)
{
    const keys_queue *k = &m->keys;
    char due[32], key_cur[KEYS_NAME_MAX], key_prev[KEYS_NAME_MAX], proc_key[KEYS_NAME_MAX];
    long long minute = s->now_ms / 60000;
    snprintf(due, sizeof due, "%lld", s->now_ms);
    keys_minute(k, minute, key_cur);
    keys_minute(k, minute - 1, key_prev);
    int bad = 0;
    bad |= redisAppendCommand(m->redis, "LLEN %s", k->pending);
    bad |= redisAppendCommand(m->redis, "ZCARD %s", k->scheduled);
    bad |= redisAppendCommand(m->redis, "ZCOUNT %s -inf %s", k->scheduled, due);
    bad |= redisAppendCommand(m->redis, "LLEN %s", k->dead);
    bad |= redisAppendCommand(m->redis, "ZRANGE %s 0 -1 WITHSCORES", k->consumers);
    bad |= redisAppendCommand(m->redis, "HGETALL %s", k->stats);
    bad |= redisAppendCommand(m->redis, "HMGET %s sent failed rejected", key_cur);
    bad |= redisAppendCommand(m->redis, "HMGET %s sent failed rejected", key_prev);
    bad |= redisAppendCommand(m->redis, "GET %s", k->paused);
    for (size_t i = 0; i < s->n_procs; i++) {
        keys_processing(k, s->procs[i].consumer, proc_key);
        bad |= redisAppendCommand(m->redis, "LLEN %s", proc_key);
    }
    return bad ? -1 : 0;
}

/* The next pipelined reply; NULL with m->err set when the connection failed. */
static redisReply *next_reply(mailroom *m)
{
    void *r = NULL;
    if (redisGetReply(m->redis, &r) != REDIS_OK || !r) {
        handle_connection_failed(m, "read");
        return NULL;
    }
    return r;
}

/* Reads one integer reply (LLEN, ZCARD, ZCOUNT) into *out. 0, or -1 with m->err. */
static int read_int(mailroom *m, const char *what, long long *out)
{
    redisReply *r = next_reply(m);
    if (!r)
        return -1;
    int rr = r->type == REDIS_REPLY_INTEGER ? 0 : handle_reply_failed(m, r, what);
    if (rr == 0)
        *out = r->integer;
    freeReplyObject(r);
    return rr;
}

/* An HMGET field as a count: a decimal string, or nil for 0. */
static long long count_of(const redisReply *f)
{
    return f->type == REDIS_REPLY_STRING ? strtoll(f->str, NULL, 10) : 0;
}

/* Reads one minute's outcomes (HMGET sent failed rejected): failed counts both jobs
 * that failed and rejected ones. 0, or -1 with m->err. */
static int read_minute(mailroom *m, minute_counts *out)
{
    redisReply *r = next_reply(m);
    if (!r)
        return -1;
    int rr = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3)
        *out = (minute_counts){count_of(r->element[0]),
                               count_of(r->element[1]) + count_of(r->element[2])};
    else
        rr = handle_reply_failed(m, r, "HMGET minute");
    freeReplyObject(r);
    return rr;
}

/* Reads GET paused and keeps it (a string while paused, else nil). 0, or -1. */
static int read_paused(mailroom *m, snapshot *s)
{
    redisReply *r = next_reply(m);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL) {
        handle_reply_failed(m, r, "GET paused");
        freeReplyObject(r);
        return -1;
    }
    s->paused = r;
    return 0;
}

/* Reads an array of strings in pairs (ZRANGE WITHSCORES, HGETALL) and keeps it. */
static int read_pairs(mailroom *m, const char *what, redisReply **out)
{
    redisReply *r = next_reply(m);
    if (!r)
        return -1;
    int ok = r->type == REDIS_REPLY_ARRAY && r->elements % 2 == 0;
    for (size_t i = 0; ok && i < r->elements; i++)
        ok = r->element[i]->type == REDIS_REPLY_STRING;
    if (!ok) {
        handle_reply_failed(m, r, what);
        freeReplyObject(r);
        return -1;
    }
    *out = r;
    return 0;
}

/* Reads the replies of append_reads, in its order, into the snapshot. 0, or -1. */
static int read_snapshot(mailroom *m, snapshot *s)
{
    if (read_int(m, "LLEN pending", &s->pending) != 0 ||
        read_int(m, "ZCARD scheduled", &s->scheduled) != 0 ||
        read_int(m, "ZCOUNT scheduled", &s->scheduled_due) != 0 ||
        read_int(m, "LLEN dead", &s->dead) != 0 ||
        read_pairs(m, "ZRANGE consumers", &s->consumers) != 0 ||
        read_pairs(m, "HGETALL stats", &s->counters) != 0 || read_minute(m, &s->cur) != 0 ||
        read_minute(m, &s->prev) != 0 || read_paused(m, s) != 0)
        return -1;
    for (size_t i = 0; i < s->n_procs; i++)
        if (read_int(m, "LLEN processing", &s->procs[i].jobs) != 0)
            return -1;
    return 0;
}

/* 1 when a consumer holding a processing list is in the heartbeat set. */
static int is_registered(const snapshot *s, const char *consumer)
{
    for (size_t i = 0; i + 1 < s->consumers->elements; i += 2)
        if (strcmp(s->consumers->element[i]->str, consumer) == 0)
            return 1;
    return 0;
}

/* The consumers whose info hash is read: the heartbeat set's, then the holders of a
 * processing list outside it. 0, or -1 (memory). */
static int collect_info_ids(snapshot *s)
{
    size_t n_reg = s->consumers->elements / 2;
    s->info_ids = calloc(n_reg + s->n_procs + 1, sizeof *s->info_ids);
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    s->infos = calloc(n_reg + s->n_procs + 1, sizeof *s->infos);
    if (!s->info_ids || !s->infos)
        return -1;
    for (size_t i = 0; i < n_reg; i++)
        s->info_ids[s->n_infos++] = s->consumers->element[2 * i]->str;
    for (size_t i = 0; i < s->n_procs; i++)
        if (!is_registered(s, s->procs[i].consumer))
            s->info_ids[s->n_infos++] = s->procs[i].consumer;
    return 0;
}

/* Reads every info hash of collect_info_ids in one pipelined round trip. 0, or -1
 * with m->err set (the connection dropped when replies are left unread). */
static int read_infos(mailroom *m, snapshot *s)
{
    char key[KEYS_NAME_MAX];
    if (collect_info_ids(s) != 0)
        return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->n_infos; i++) {
        keys_info(&m->keys, s->info_ids[i], key);
        const char *argv[] = {"HGETALL", key};
        if (redisAppendCommandArgv(m->redis, 2, argv, NULL) != REDIS_OK) {
            handle_drop(m);
            return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < s->n_infos; i++)
        if (read_pairs(m, "HGETALL info", &s->infos[i]) != 0) {
            handle_drop(m);
            return -1;
        }
    return 0;
}

/* ms of an RFC 3339 time, 0 when it is not one. */
static long long time_ms(const redisReply *t)
{
    int64_t ms = 0;
    if (t->type != REDIS_REPLY_STRING || clock_parse_rfc3339(t->str, &ms) != 0)
        return 0;
    return (long long)ms;
}

/* The oldest pending job's age (oldest.lua): now minus its created_at, or its send_at
 * when later; 0 when pending is empty or the times cannot be read. 0, or -1. */
static int read_oldest(mailroom *m, snapshot *s)
{
    char bytes[32];
    snprintf(bytes, sizeof bytes, "%d", MAILROOM_JOB_MAX_BYTES);
    oldest_args a = {0};
    a.v[OLDEST_KEY_pending] = m->keys.pending;
    a.v[OLDEST_ARG_max_bytes] = bytes;
    redisReply *r = script_run(m->redis, SCRIPT_OLDEST, a.v, NULL, &m->err);
    if (!r)
        return m->err.rc == MAILROOM_EREDIS ? handle_connection_failed(m, "oldest") : -1;
    int rr = 0;
    if (r->type != REDIS_REPLY_ARRAY || (r->elements != 0 && r->elements != 2)) {
        rr = handle_reply_failed(m, r, "oldest");
    } else if (r->elements == 2) {
        long long created = time_ms(r->element[0]), send_at = time_ms(r->element[1]);
        long long since = send_at > created ? send_at : created;
        s->oldest_age_ms = since > 0 && s->now_ms > since ? s->now_ms - since : 0;
    }
    freeReplyObject(r);
    return rr;
}

/* Connects and reads a whole snapshot. 0, or -1 with m->err set (and *s empty). A
 * failure inside the pipeline leaves replies unread: the connection is dropped. */
static int take_snapshot(mailroom *m, snapshot *s)
{
    int r = -1;
    memset(s, 0, sizeof *s);
    if (handle_connect(m) != 0 || redis_now_ms(m, &s->now_ms) != 0 || scan_processing(m, s) != 0)
        goto out;
    if (append_reads(m, s) != 0) {
        mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
        handle_drop(m);
        goto out;
    }
    if (read_snapshot(m, s) != 0) {
        handle_drop(m);
        goto out;
    }
    if (read_infos(m, s) != 0 || read_oldest(m, s) != 0)
        goto out;
    r = 0;
out:
    if (r != 0)
        snapshot_free(s);
    return r;
}

/* The jobs a consumer holds (0 when it has no processing list). */
static long long processing_of(const snapshot *s, const char *consumer)
{
    for (size_t i = 0; i < s->n_procs; i++)
        if (strcmp(s->procs[i].consumer, consumer) == 0)
            return s->procs[i].jobs;
    return 0;
}

/* A field of an info hash ("" when absent). */
static const char *info_field(const redisReply *h, const char *name)
{
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (strcmp(h->element[i]->str, name) == 0)
            return h->element[i + 1]->str;
    return "";
}

/* A consumer with what its info hash says (has_info 0, "" and 0 without one). */
static mailroom_consumer with_info(const snapshot *s, mailroom_consumer c)
{
    const redisReply *h = NULL;
    for (size_t i = 0; i < s->n_infos && !h; i++)
        if (strcmp(s->info_ids[i], c.id) == 0 && s->infos[i]->elements > 0)
            h = s->infos[i];
    if (!h) {
        c.host = c.version = c.started_at = c.queues = c.relays = "";
        return c;
    }
    c.has_info = 1;
    c.host = info_field(h, "host");
    c.pid = strtoll(info_field(h, "pid"), NULL, 10);
    c.version = info_field(h, "version");
    c.started_at = info_field(h, "started_at");
    c.queues = info_field(h, "queues");
    c.relays = info_field(h, "relays");
    c.concurrency = strtoll(info_field(h, "concurrency"), NULL, 10);
    c.sessions = strtoll(info_field(h, "sessions"), NULL, 10);
    return c;
}

/* The registered consumer at pair index i of the heartbeat set, its state by
 * dead_after_ms. */
static mailroom_consumer registered(const snapshot *s, size_t i, long long dead_after_ms)
{
    const char *id = s->consumers->element[i]->str;
    long long age = s->now_ms - strtoll(s->consumers->element[i + 1]->str, NULL, 10);
    if (age < 0)
        age = 0;
    mailroom_consumer c = {.id = id,
                           .state = age > dead_after_ms ? MAILROOM_CONSUMER_SILENT
                                                        : MAILROOM_CONSUMER_ALIVE,
                           .heartbeat_age_ms = age,
                           .processing = processing_of(s, id)};
    return with_info(s, c);
}

/* prev × (1 − s/60) + current: a sliding one-minute window over two counters. */
static double per_min(const snapshot *s, long long prev, long long cur)
{
    double into = (double)(s->now_ms % 60000) / 60000.0;
    return (double)prev * (1.0 - into) + (double)cur;
}

const char *mailroom_consumer_state_name(mailroom_consumer_state state)
{
    switch (state) {
    case MAILROOM_CONSUMER_ALIVE: return "alive";
    case MAILROOM_CONSUMER_SILENT: return "silent";
    case MAILROOM_CONSUMER_UNREGISTERED: return "unregistered";
    }
    return "unknown";
}

/* ------------------------------------------------------------------ stats */

/* What mailroom_stats_read hands out: the public part first, so that the pointer the
 * caller frees is the allocation's. */
typedef struct stats_impl {
    mailroom_stats pub;
    snapshot snap;
    mailroom_consumer *consumers;
    mailroom_counter *counters;
} stats_impl;

/* The counters: the known ones always, then any other field of the hash. */
static int fill_counters(stats_impl *st)
{
    const redisReply *h = st->snap.counters;
    size_t n = N_KNOWN;
    if (!(st->counters = calloc(N_KNOWN + h->elements / 2, sizeof *st->counters)))
        return -1;
    for (size_t k = 0; k < N_KNOWN; k++)
        st->counters[k] = (mailroom_counter){known_counters[k], 0};
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        long long v = strtoll(h->element[i + 1]->str, NULL, 10);
        size_t k = 0;
        while (k < N_KNOWN && strcmp(h->element[i]->str, known_counters[k]) != 0)
            k++;
        if (k == N_KNOWN)
            st->counters[n++] = (mailroom_counter){h->element[i]->str, v};
        else
            st->counters[k].value = v;
    }
    st->pub.counters = st->counters;
    st->pub.n_counters = n;
    return 0;
}

/* The public figures of the snapshot. 0, or -1 when memory ran out. */
static int fill_stats(stats_impl *st)
{
    const snapshot *s = &st->snap;
    size_t n = s->consumers->elements / 2;
    if (!(st->consumers = calloc(n ? n : 1, sizeof *st->consumers)) || fill_counters(st) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        st->consumers[i] = registered(s, 2 * i, MAILROOM_DEAD_AFTER_DEFAULT_MS);
    int paused = s->paused->type == REDIS_REPLY_STRING;
    st->pub = (mailroom_stats){.now_ms = s->now_ms,
                               .pending = s->pending,
                               .scheduled = s->scheduled,
                               .scheduled_due = s->scheduled_due,
                               .dead = s->dead,
                               .sent_per_min = per_min(s, s->prev.sent, s->cur.sent),
                               .processing = s->procs,
                               .n_processing = s->n_procs,
                               .consumers = st->consumers,
                               .n_consumers = n,
                               .counters = st->counters,
                               .n_counters = st->pub.n_counters,
                               .paused = paused,
                               .paused_at = paused ? s->paused->str : "",
                               .oldest_pending_age_ms = s->oldest_age_ms,
                               .failed_per_min = per_min(s, s->prev.failed, s->cur.failed)};
    return 0;
}

/* mailroom_stats_read (mailroom_admin.h): a snapshot, then the public figures. */
int mailroom_stats_read(mailroom *m, mailroom_stats **out)
{
    if (!m)
        return MAILROOM_EINVAL;
    if (!out)
        return handle_result(m, mr_fail(&m->err, MAILROOM_EINVAL, "stats: out is NULL"));
    *out = NULL;
    stats_impl *st = calloc(1, sizeof *st);
    if (!st)
        return handle_result(m, mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory"));
    int r = take_snapshot(m, &st->snap);
    if (r == 0 && fill_stats(st) != 0)
        r = mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    if (r == 0) {
        *out = &st->pub;
        st = NULL;
    }
    mailroom_stats_free(st ? &st->pub : NULL);
    return handle_result(m, r);
}

/* Releases the snapshot (its replies) and the arrays built from it. */
void mailroom_stats_free(mailroom_stats *s)
{
    stats_impl *st = (stats_impl *)s; /* pub is the first member */
    if (!st)
        return;
    snapshot_free(&st->snap);
    free(st->consumers);
    free(st->counters);
    free(st);
}

/* ------------------------------------------------------------------ consumers */

typedef struct consumers_impl {
    mailroom_consumers pub;
    snapshot snap;
    mailroom_consumer *items;
} consumers_impl;

/* Registered consumers (heartbeat order), then unregistered holders (SCAN order). */
static int fill_consumers(consumers_impl *c, long long dead_after_ms)
{
    const snapshot *s = &c->snap;
    size_t n = 0, n_reg = s->consumers->elements / 2;
    if (!(c->items = calloc(n_reg + s->n_procs + 1, sizeof *c->items)))
        return -1;
    for (size_t i = 0; i < n_reg; i++)
        c->items[n++] = registered(s, 2 * i, dead_after_ms);
    for (size_t i = 0; i < s->n_procs; i++)
        if (!is_registered(s, s->procs[i].consumer))
            c->items[n++] =
                with_info(s, (mailroom_consumer){.id = s->procs[i].consumer,
                                                 .state = MAILROOM_CONSUMER_UNREGISTERED,
                                                 .heartbeat_age_ms = -1,
                                                 .processing = s->procs[i].jobs});
    c->pub = (mailroom_consumers){s->now_ms, c->items, n};
    return 0;
}

/* mailroom_consumers_read (mailroom_admin.h): a snapshot, then the consumers. */
int mailroom_consumers_read(mailroom *m, long long dead_after_ms, mailroom_consumers **out)
{
    if (!m)
        return MAILROOM_EINVAL;
    if (!out)
        return handle_result(m, mr_fail(&m->err, MAILROOM_EINVAL, "consumers: out is NULL"));
    *out = NULL;
    consumers_impl *c = calloc(1, sizeof *c);
    if (!c)
        return handle_result(m, mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory"));
    int r = take_snapshot(m, &c->snap);
    if (r == 0 &&
        fill_consumers(c, dead_after_ms > 0 ? dead_after_ms : MAILROOM_DEAD_AFTER_DEFAULT_MS) != 0)
        r = mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    if (r == 0) {
        *out = &c->pub;
        c = NULL;
    }
    mailroom_consumers_free(c ? &c->pub : NULL);
    return handle_result(m, r);
}

/* Releases the snapshot and the consumer array. */
void mailroom_consumers_free(mailroom_consumers *l)
{
    consumers_impl *c = (consumers_impl *)l; /* pub is the first member */
    if (!c)
        return;
    snapshot_free(&c->snap);
    free(c->items);
    free(c);
}
