/*
 * stream.c — readers of the queue's events stream mailroom:{Q}:events
 * (mailroom_admin.h): mailroom_stream_open(), _next(), _ack(), _claim(), _close().
 *
 * A plain reader keeps its own position, the id of the last entry it handed out, and
 * reads after it with XREAD. A group reader lets Redis keep the position: it first
 * re-reads its own pending entries (XREADGROUP with an id, from 0), then, when asked
 * to, takes over entries other readers left idle (XAUTOCLAIM), then reads new ones
 * (XREADGROUP with ">"). Entries are fetched `batch` at a time and handed out one by
 * one; the reader owns the reply they come from and the current event's parse
 * (event.c, the watch's parser).
 *
 * The blocking read goes out with the gap check in one write: XINFO STREAM (its
 * oldest entry, and max-deleted-entry-id on Redis >= 7.0) and, for a group, XINFO
 * GROUPS (the group's last-delivered-id); a position older than the oldest entry kept
 * (or than an entry deleted) means events trimmed before the reader got to them,
 * reported on the next event it hands out. Like the watch, the blocking
 * read is waited for with poll() rather than hiredis' blocking call, so that a signal
 * ends the wait at once and a long BLOCK needs no long socket timeout; a read a signal
 * interrupted stays in flight and its replies are collected by the next call.
 *
 * A connection failure drops the connection and the entries fetched but not handed
 * out; the next call reconnects and resumes from the position (a group reader from its
 * own pending entries, so nothing delivered and unacknowledged is lost). The reader
 * borrows the handle, where its errors are recorded.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "event.h"
#include "handle.h"
#include "mailroom_admin.h"

#define STREAM_NAME_MAX 64
#define STREAM_BATCH_MAX 10000
#define STREAM_CLAIM_PERIOD_MIN_MS 1000
#define STREAM_READS 3 /* replies of a blocking read: XINFO STREAM, [XINFO GROUPS,] read */

/* An entry id, "ms-seq". */
typedef struct xid {
    uint64_t ms, seq;
} xid;

/* How entry_take makes an entry current. */
enum {
    TAKE_MOVE = 1,        /* the reader's position moves to it */
    TAKE_REDELIVERED = 2, /* it was delivered before */
    TAKE_GAP = 4          /* it carries the gap flag, if one is waiting */
};

struct mailroom_stream {
    mailroom *m;     /* borrowed: errors go to m->err */
    redisContext *c; /* owned; NULL after a failure, until the next call reconnects */
    char group[STREAM_NAME_MAX + 1], consumer[STREAM_NAME_MAX + 1];
    int is_group;
    char start[MAILROOM_STREAM_ID_MAX]; /* group: where a missing group is created */
    xid pos;         /* plain: the last entry handed out; group: the last own pending one */
    int reading_new; /* group: own pending entries done; taking over and reading ">" */
    char batch_arg[16];
    long long claim_after_ms;
    int64_t next_claim_ms;
    char claim_cursor[MAILROOM_STREAM_ID_MAX];
    /* the blocking read in flight: how many replies it has, those that came, and
     * when Redis must have answered (its BLOCK and the handle's command timeout) */
    int expect, got;
    redisReply *replies[STREAM_READS];
    int64_t inflight_deadline_ms;
    /* the reply of the last fetch (owned): the current event may borrow from it, and
     * entries->element[next ...] are the entries not handed out yet (entries NULL:
     * none left) */
    redisReply *batch_reply;
    const redisReply *entries;
    size_t next;
    int batch_flags;
    int trimmed; /* a gap was seen: the next event handed out says so */
    /* the current event: its parse, its id, and the XCLAIM reply it borrows from when
     * it came from mailroom_stream_claim (owned) */
    event_parse current;
    char current_id[MAILROOM_STREAM_ID_MAX];
    redisReply *claim_reply;
    mailroom_stream_event sev;
};

/* ------------------------------------------------------------------ ids and names */

/* Parses "ms-seq" or "ms" (seq 0) of len bytes: decimal numbers that fit 64 bits. 0,
 * or -1 for anything else. */
static int id_parse(const char *s, size_t len, xid *out)
{
    uint64_t part[2] = {0, 0};
    int k = 0;
    size_t digits = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '-' && k == 0 && digits > 0) {
            k = 1;
            digits = 0;
            continue;
        }
        if (ch < '0' || ch > '9' || part[k] > (UINT64_MAX - (uint64_t)(ch - '0')) / 10)
            return -1;
        part[k] = part[k] * 10 + (uint64_t)(ch - '0');
        digits++;
    }
    if (digits == 0)
        return -1;
    *out = (xid){part[0], part[1]};
    return 0;
}

static void id_format(xid id, char out[MAILROOM_STREAM_ID_MAX])
{
    snprintf(out, MAILROOM_STREAM_ID_MAX, "%" PRIu64 "-%" PRIu64, id.ms, id.seq);
}

static int id_less(xid a, xid b)
{
    return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq);
}

/* 1 when s matches [A-Za-z0-9._:-]{1,64}: group and reader names. */
static int name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= STREAM_NAME_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == n;
}

void mailroom_stream_options_init(mailroom_stream_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->start = "$";
    o->batch = MAILROOM_STREAM_BATCH_DEFAULT;
}

/* ------------------------------------------------------------------ state */

/* Forgets the current event. */
static void current_clear(mailroom_stream *s)
{
    event_parse_clear(&s->current);
    freeReplyObject(s->claim_reply);
    s->claim_reply = NULL;
    memset(&s->sev, 0, sizeof s->sev);
    s->current_id[0] = '\0';
}

/* Makes reply r (owned from now) the batch whose entries array is entries, releasing
 * the previous batch and the current event, which may borrow from it. */
static void batch_keep(mailroom_stream *s, redisReply *r, const redisReply *entries, int flags)
{
    current_clear(s);
    freeReplyObject(s->batch_reply);
    s->batch_reply = r;
    s->entries = entries;
    s->next = 0;
    s->batch_flags = flags;
}

/* Drops the connection and the replies of a read in flight on it. */
static void connection_drop(mailroom_stream *s)
{
    for (int i = 0; i < s->got; i++)
        freeReplyObject(s->replies[i]);
    s->expect = s->got = 0;
    if (s->c)
        redisFree(s->c);
    s->c = NULL;
}

/*
 * Records a failure of an exchange with Redis ("<what>: ..."; r the reply, or NULL
 * when none came) and returns -1. The connection is dropped (the next call reconnects,
 * and a group reader starts over from its pending entries) and so are the entries not
 * handed out; the current event stays valid.
 */
static int stream_failed(mailroom_stream *s, const redisReply *r, const char *what)
{
    mailroom *m = s->m;
    if (!r) {
        int timed_out = s->c && rconn_timed_out(s->c);
        mr_fail(&m->err, timed_out ? MAILROOM_ETIMEOUT : MAILROOM_EREDIS, "%s: Redis %s", what,
                timed_out ? "did not answer in time"
                : s->c    ? s->c->errstr
                          : "not connected");
    } else if (r->type == REDIS_REPLY_ERROR) {
        mr_fail(&m->err, MAILROOM_EREDIS, "%s: Redis error: %.300s", what, r->str);
    } else {
        mr_fail(&m->err, MAILROOM_EPROTO, "%s: unexpected reply type %d from Redis", what, r->type);
    }
    s->entries = NULL;
    connection_drop(s);
    return -1;
}

/*
 * Makes entry e ([id, [field, value, ...]]) the current event, its payload the
 * "event" field ("" when it has none); flags say how (TAKE_*). 0; 1 for an entry
 * deleted from the stream (its fields nil, as a group's pending re-read shows it),
 * which is not made current; -1 for a malformed entry (nothing changed).
 */
static int entry_take(mailroom_stream *s, const redisReply *e, int flags)
{
    xid id;
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING ||
        id_parse(e->element[0]->str, e->element[0]->len, &id) != 0)
        return -1;
    const redisReply *fields = e->element[1];
    if (fields->type != REDIS_REPLY_ARRAY)
        return 1;
    const char *payload = "";
    size_t len = 0;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(k->str, "event") == 0) {
            payload = v->str;
            len = v->len;
        }
    }
    current_clear(s);
    id_format(id, s->current_id);
    event_parse_take(&s->current, payload, len);
    s->sev.stream_id = s->current_id;
    s->sev.stream_ms = id.ms > (uint64_t)LLONG_MAX ? LLONG_MAX : (long long)id.ms;
    s->sev.redelivered = (flags & TAKE_REDELIVERED) != 0;
    s->sev.event = &s->current.ev;
    if (flags & TAKE_GAP) {
        s->sev.trimmed = s->trimmed;
        s->trimmed = 0;
    }
    if (flags & TAKE_MOVE)
        s->pos = id;
    return 0;
}

/* ------------------------------------------------------------------ opening */

/* A synchronous command on the reader's connection; NULL (connection dropped, m->err
 * set) when no reply came. */
static redisReply *command(mailroom_stream *s, int argc, const char **argv, const char *what)
{
    redisReply *r = redisCommandArgv(s->c, argc, argv, NULL);
    if (!r)
        stream_failed(s, NULL, what);
    return r;
}

/* A command whose reply must be of type `want`: 0, or -1 (recorded; connection
 * dropped). */
static int command_expect(mailroom_stream *s, int argc, const char **argv, int want,
                          const char *what)
{
    redisReply *r = command(s, argc, argv, what);
    int rc = !r ? -1 : r->type == want ? 0 : stream_failed(s, r, what);
    freeReplyObject(r);
    return rc;
}

/* "$" for a plain reader: its position becomes the stream's newest entry (0-0 when
 * the stream has none). */
static int resolve_newest(mailroom_stream *s)
{
    const char *argv[] = {"XREVRANGE", s->m->keys.events, "+", "-", "COUNT", "1"};
    redisReply *r = command(s, 6, argv, "XREVRANGE");
    int rc = 0;
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY ||
        (r->elements == 1 && entry_take(s, r->element[0], TAKE_MOVE) < 0))
        rc = stream_failed(s, r, "XREVRANGE");
    current_clear(s);
    freeReplyObject(r);
    return rc;
}

/* Creates the group at its start, and the stream when missing; an existing group
 * (BUSYGROUP) is kept as it is. */
static int group_create(mailroom_stream *s)
{
    const char *argv[] = {"XGROUP", "CREATE", s->m->keys.events, s->group, s->start, "MKSTREAM"};
    redisReply *r = command(s, 6, argv, "XGROUP CREATE");
    int rc = 0;
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_ERROR ? strncmp(r->str, "BUSYGROUP", 9) != 0
                                     : r->type != REDIS_REPLY_STATUS)
        rc = stream_failed(s, r, "XGROUP CREATE");
    freeReplyObject(r);
    return rc;
}

/* Connects when there is no connection; a group reader then starts over with its own
 * pending entries, and creates its group again (a Redis that lost its data needs it).
 * 0, or -1 with m->err set. */
static int ensure_connected(mailroom_stream *s)
{
    if (s->c)
        return 0;
    if (!(s->c = handle_connect_new(s->m)))
        return -1;
    if (!s->is_group)
        return 0;
    s->reading_new = 0;
    s->pos = (xid){0, 0};
    snprintf(s->claim_cursor, sizeof s->claim_cursor, "0-0");
    s->next_claim_ms = 0;
    return group_create(s);
}

/* Checks the options and copies them into s. 0, or -1 with MAILROOM_EINVAL in m->err. */
static int configure(mailroom_stream *s, const mailroom_stream_options *o)
{
    mailroom *m = s->m;
    const char *start = o->start ? o->start : "$";
    xid id = {0, 0};
    int special = strcmp(start, "$") == 0 || strcmp(start, "0") == 0;
    if (!special && id_parse(start, strlen(start), &id) != 0)
        return mr_fail(&m->err, MAILROOM_EINVAL,
                       "stream: start must be \"$\", \"0\" or an entry id such as "
                       "1732528800123-0");
    if (o->batch < 0 || o->batch > STREAM_BATCH_MAX || o->claim_after_ms < 0)
        return mr_fail(&m->err, MAILROOM_EINVAL,
                       "stream: batch must be 0 to %d and claim_after_ms not negative",
                       STREAM_BATCH_MAX);
    if (o->group && (!name_valid(o->group) || !name_valid(o->consumer)))
        return mr_fail(&m->err, MAILROOM_EINVAL,
                       "stream: group and consumer names must match [A-Za-z0-9._:-]{1,64}");
    if (!o->group && (o->consumer || o->claim_after_ms))
        return mr_fail(&m->err, MAILROOM_EINVAL,
                       "stream: consumer and claim_after_ms need a group");
    s->is_group = o->group != NULL;
    if (s->is_group) {
        snprintf(s->group, sizeof s->group, "%s", o->group);
        snprintf(s->consumer, sizeof s->consumer, "%s", o->consumer);
        s->claim_after_ms = o->claim_after_ms;
    }
    if (special)
        snprintf(s->start, sizeof s->start, "%s", start);
    else
        id_format(id, s->start);
    s->pos = id;
    snprintf(s->batch_arg, sizeof s->batch_arg, "%d",
             o->batch ? o->batch : MAILROOM_STREAM_BATCH_DEFAULT);
    return 0;
}

/* mailroom_stream_open (mailroom_admin.h). */
int mailroom_stream_open(mailroom *m, const mailroom_stream_options *o, mailroom_stream **out)
{
    if (!m)
        return MAILROOM_EINVAL;
    if (!out || !o)
        return handle_result(m, mr_fail(&m->err, MAILROOM_EINVAL, "stream: out or o is NULL"));
    *out = NULL;
    mailroom_stream *s = calloc(1, sizeof *s);
    if (!s)
        return handle_result(m, mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory"));
    s->m = m;
    int r = configure(s, o);
    if (r == 0)
        r = ensure_connected(s);
    if (r == 0 && !s->is_group && strcmp(s->start, "$") == 0)
        r = resolve_newest(s);
    if (r == 0) {
        *out = s;
        s = NULL;
    }
    mailroom_stream_close(s);
    return handle_result(m, r);
}

void mailroom_stream_close(mailroom_stream *s)
{
    if (!s)
        return;
    current_clear(s);
    freeReplyObject(s->batch_reply);
    connection_drop(s);
    free(s);
}

/* ------------------------------------------------------------------ fetching */

/* The entries array of an XREAD/XREADGROUP reply ([[key, entries]]): 0 with *out set
 * (NULL for a nil reply: none came), -1 for a malformed reply. */
static int read_entries(const redisReply *r, const redisReply **out)
{
    *out = NULL;
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2 ||
        r->element[0]->element[1]->type != REDIS_REPLY_ARRAY)
        return -1;
    *out = r->element[0]->element[1];
    return 0;
}

/* A group reader's own pending entries after its position (XREADGROUP with an id). 1
 * when some came (kept), 0 when none are left (reading_new from now), -1 on failure. */
static int fetch_own_pending(mailroom_stream *s)
{
    char from[MAILROOM_STREAM_ID_MAX];
    id_format(s->pos, from);
    const char *argv[] = {"XREADGROUP", "GROUP",   s->group,          s->consumer, "COUNT",
                          s->batch_arg, "STREAMS", s->m->keys.events, from};
    redisReply *r = command(s, 9, argv, "XREADGROUP");
    const redisReply *entries = NULL;
    if (!r)
        return -1;
    if (read_entries(r, &entries) != 0) {
        stream_failed(s, r, "XREADGROUP");
        freeReplyObject(r);
        return -1;
    }
    if (!entries || entries->elements == 0) {
        freeReplyObject(r);
        s->reading_new = 1;
        return 0;
    }
    batch_keep(s, r, entries, TAKE_MOVE | TAKE_REDELIVERED);
    return 1;
}

/* Whether the XAUTOCLAIM reply r is well-formed: [cursor, entries, (deleted ids)]. */
static int claim_reply_ok(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
           r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_ARRAY;
}

/* Takes over entries idle longer than claim_after_ms (XAUTOCLAIM), when due: a walk
 * over the group's pending entries, a batch per call, then a pause of half that time.
 * 1 when some came (kept), 0 when none (or not due), -1 on failure. Entries deleted
 * while pending (Redis 7 lists them, and drops them) are a gap. */
static int fetch_claimed(mailroom_stream *s)
{
    if (!s->claim_after_ms || clock_mono_ms() < s->next_claim_ms)
        return 0;
    char idle[24];
    snprintf(idle, sizeof idle, "%lld", s->claim_after_ms);
    const char *argv[] = {"XAUTOCLAIM", s->m->keys.events, s->group, s->consumer,
                          idle,         s->claim_cursor,   "COUNT",  s->batch_arg};
    redisReply *r = command(s, 8, argv, "XAUTOCLAIM");
    if (!r)
        return -1;
    if (!claim_reply_ok(r)) {
        stream_failed(s, r, "XAUTOCLAIM");
        freeReplyObject(r);
        return -1;
    }
    snprintf(s->claim_cursor, sizeof s->claim_cursor, "%s", r->element[0]->str);
    if (strcmp(s->claim_cursor, "0-0") == 0) {
        long long pause = s->claim_after_ms / 2;
        s->next_claim_ms =
            clock_mono_ms() +
            (pause < STREAM_CLAIM_PERIOD_MIN_MS ? STREAM_CLAIM_PERIOD_MIN_MS : pause);
    }
    if (r->elements >= 3 && r->element[2]->type == REDIS_REPLY_ARRAY && r->element[2]->elements)
        s->trimmed = 1;
    if (r->element[1]->elements == 0) {
        freeReplyObject(r);
        return 0;
    }
    batch_keep(s, r, r->element[1], TAKE_REDELIVERED);
    return 1;
}

/* Appends argv without the two words at `skip` (when skip >= 0). */
static int append_without(redisContext *c, int argc, const char **argv, int skip)
{
    const char *v[16];
    int n = 0;
    for (int i = 0; i < argc && n < 16; i++)
        if (skip < 0 || (i != skip && i != skip + 1))
            v[n++] = argv[i];
    return redisAppendCommandArgv(c, n, v, NULL);
}

/* Writes the read of new entries, after its gap check, in one go; block_ms 0: no
 * BLOCK (an answer at once). */
static int read_send(mailroom_stream *s, long long block_ms)
{
    char block[24], from[MAILROOM_STREAM_ID_MAX];
    snprintf(block, sizeof block, "%lld", block_ms);
    id_format(s->pos, from);
    const char *key = s->m->keys.events;
    const char *info[] = {"XINFO", "STREAM", key};
    const char *groups[] = {"XINFO", "GROUPS", key};
    const char *plain[] = {"XREAD", "COUNT", s->batch_arg, "BLOCK", block, "STREAMS", key, from};
    const char *grp[] = {"XREADGROUP", "GROUP", s->group,  s->consumer, "COUNT", s->batch_arg,
                         "BLOCK",      block,   "STREAMS", key,         ">"};
    int ok = redisAppendCommandArgv(s->c, 3, info, NULL) == REDIS_OK;
    if (s->is_group)
        ok = ok && redisAppendCommandArgv(s->c, 3, groups, NULL) == REDIS_OK &&
             append_without(s->c, 11, grp, block_ms > 0 ? -1 : 6) == REDIS_OK;
    else
        ok = ok && append_without(s->c, 8, plain, block_ms > 0 ? -1 : 3) == REDIS_OK;
    int done = 0;
    while (ok && !done)
        ok = redisBufferWrite(s->c, &done) == REDIS_OK;
    if (!ok)
        return stream_failed(s, NULL, s->is_group ? "XREADGROUP" : "XREAD");
    s->expect = s->is_group ? 3 : 2;
    s->got = 0;
    s->inflight_deadline_ms = clock_mono_ms() + block_ms + s->m->command_ms;
    return 0;
}

/* A failure while waiting for the read in flight (no reply to show). -1. */
static int collect_failed(mailroom_stream *s, mailroom_rc rc, const char *why)
{
    mr_fail(&s->m->err, rc, "%s: %s", s->is_group ? "XREADGROUP" : "XREAD", why);
    s->entries = NULL;
    connection_drop(s);
    return -1;
}

/*
 * Collects the replies of the read in flight: 1 when all came, 0 when a signal
 * interrupted the wait (only with stop_on_signal) with some still to come, -1 on
 * failure (also when Redis stays silent past the read's deadline).
 */
static int read_collect(mailroom_stream *s, int stop_on_signal)
{
    while (s->got < s->expect) {
        void *reply = NULL;
        if (redisReaderGetReply(s->c->reader, &reply) != REDIS_OK)
            return collect_failed(s, MAILROOM_EPROTO, "protocol error from Redis");
        if (reply) {
            s->replies[s->got++] = reply;
            continue;
        }
        int64_t left = s->inflight_deadline_ms - clock_mono_ms();
        if (left <= 0)
            return collect_failed(s, MAILROOM_ETIMEOUT, "Redis did not answer in time");
        struct pollfd pfd = {.fd = s->c->fd, .events = POLLIN};
        int n = poll(&pfd, 1, (int)(left > INT_MAX ? INT_MAX : left));
        if (n < 0 && errno == EINTR && stop_on_signal)
            return 0;
        if (n < 0 && errno != EINTR)
            return collect_failed(s, MAILROOM_EREDIS, strerror(errno));
        if (n > 0 && redisBufferRead(s->c) != REDIS_OK)
            return stream_failed(s, NULL, s->is_group ? "XREADGROUP" : "XREAD");
    }
    return 1;
}

/* The value of field name in a flat [field, value, ...] reply, or NULL. */
static const redisReply *field(const redisReply *r, const char *name)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1];
    return NULL;
}

/* An id-valued field of a flat reply: 0 with *out set, -1 when absent. */
static int field_id(const redisReply *r, const char *name, xid *out)
{
    const redisReply *v = field(r, name);
    return v && v->type == REDIS_REPLY_STRING ? id_parse(v->str, v->len, out) : -1;
}

/* The position the gap check compares: the plain reader's own, or its group's
 * last-delivered-id (XINFO GROUPS, the read's second reply). -1 when unknown. */
static int gap_position(const mailroom_stream *s, xid *out)
{
    if (!s->is_group) {
        *out = s->pos;
        return 0;
    }
    const redisReply *groups = s->replies[1];
    for (size_t i = 0; groups->type == REDIS_REPLY_ARRAY && i < groups->elements; i++) {
        const redisReply *name = field(groups->element[i], "name");
        if (name && name->type == REDIS_REPLY_STRING && strcmp(name->str, s->group) == 0)
            return field_id(groups->element[i], "last-delivered-id", out);
    }
    return -1;
}

/* The id of the stream's oldest entry (XINFO STREAM's first-entry): 0, or -1 when the
 * stream has none. */
static int first_entry_id(const redisReply *info, xid *out)
{
    const redisReply *e = field(info, "first-entry");
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return -1;
    return id_parse(e->element[0]->str, e->element[0]->len, out);
}

/*
 * The gap check, on XINFO STREAM (the read's first reply): a position older than the
 * stream's oldest entry means the events after it may have been trimmed before this
 * reader got to them, and one older than max-deleted-entry-id (Redis >= 7.0) that
 * some were deleted: flag the next event. A position of 0-0 (reading from the start)
 * misses nothing: the stream keeps what it keeps.
 */
static void gap_check(mailroom_stream *s)
{
    xid pos, first, deleted;
    if (gap_position(s, &pos) != 0 || (!pos.ms && !pos.seq))
        return;
    if ((first_entry_id(s->replies[0], &first) == 0 && id_less(pos, first)) ||
        (field_id(s->replies[0], "max-deleted-entry-id", &deleted) == 0 && id_less(pos, deleted)))
        s->trimmed = 1;
}

/* Uses the replies of a read that all came: the gap check, then its entries become
 * the batch. 1 when it brought entries, 0 when none, -1 for a malformed reply. */
static int read_finish(mailroom_stream *s)
{
    redisReply *last = s->replies[s->expect - 1];
    const redisReply *entries = NULL;
    if (read_entries(last, &entries) != 0)
        return stream_failed(s, last, s->is_group ? "XREADGROUP" : "XREAD");
    gap_check(s);
    for (int i = 0; i < s->expect - 1; i++)
        freeReplyObject(s->replies[i]);
    s->expect = s->got = 0;
    if (!entries || entries->elements == 0) {
        freeReplyObject(last);
        return 0;
    }
    batch_keep(s, last, entries, s->is_group ? TAKE_GAP : TAKE_MOVE | TAKE_GAP);
    return 1;
}

/* Reads new entries, waiting up to block_ms, or collects the read already in flight.
 * 1 when some came (kept), 0 when none did in time or a signal interrupted the wait,
 * -1 on failure. */
static int fetch_new(mailroom_stream *s, long long block_ms)
{
    if (s->expect == 0 && read_send(s, block_ms) != 0)
        return -1;
    int r = read_collect(s, 1);
    return r <= 0 ? r : read_finish(s);
}

/* XACK of one id (already checked). 0 or -1. */
static int ack_id(mailroom_stream *s, const char *id)
{
    const char *argv[] = {"XACK", s->m->keys.events, s->group, id};
    return command_expect(s, 4, argv, REDIS_REPLY_INTEGER, "XACK");
}

/* Hands out the next fetched entry: 1 with the current event set, 0 when none is
 * left, -1 on failure. Entries deleted from the stream while pending (a group's
 * re-read shows them without fields) are a gap, and acknowledged away. */
static int take_fetched(mailroom_stream *s)
{
    while (s->entries && s->next < s->entries->elements) {
        const redisReply *e = s->entries->element[s->next++];
        int r = entry_take(s, e, s->batch_flags);
        if (r < 0)
            return stream_failed(s, e, "stream entry");
        if (r == 0)
            return 1;
        s->trimmed = 1;
        if (s->is_group && ack_id(s, e->element[0]->str) != 0)
            return -1;
    }
    return 0;
}

/* How long the read of new entries may block: until the deadline, or until the next
 * take-over walk is due when that comes first. */
static long long block_for(const mailroom_stream *s, int64_t deadline_ms)
{
    int64_t now = clock_mono_ms(), left = deadline_ms - now;
    if (s->claim_after_ms && s->next_claim_ms - now < left)
        left = s->next_claim_ms - now;
    return left > 0 ? left : 0;
}

/* The body of next: what was fetched, else own pending entries, entries taken over,
 * then new ones. 1 with an event, 0 with none in time, -1 on failure. */
static int next_step(mailroom_stream *s, int64_t deadline_ms)
{
    for (;;) {
        int r = take_fetched(s);
        if (r != 0)
            return r;
        if (s->is_group && !s->reading_new) {
            r = fetch_own_pending(s);
        } else if ((r = fetch_claimed(s)) == 0) {
            r = fetch_new(s, block_for(s, deadline_ms));
            if (r == 0 && (s->expect > 0 || clock_mono_ms() >= deadline_ms))
                return 0;
        }
        if (r < 0)
            return -1;
    }
}

/* mailroom_stream_next (mailroom_admin.h). */
int mailroom_stream_next(mailroom_stream *s, int timeout_ms, const mailroom_stream_event **ev)
{
    if (ev)
        *ev = NULL;
    if (!s)
        return MAILROOM_EINVAL;
    if (!ev)
        return handle_result(s->m, mr_fail(&s->m->err, MAILROOM_EINVAL, "stream: ev is NULL"));
    current_clear(s);
    int64_t deadline = clock_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int r = ensure_connected(s) == 0 ? next_step(s, deadline) : -1;
    if (r == 1)
        *ev = &s->sev;
    return handle_result(s->m, r < 0 ? -1 : 0);
}

/* ------------------------------------------------------------------ ack and claim */

/*
 * Before a command of its own: a connection, and no read in flight on it. The replies
 * of a read a signal interrupted are collected first (whatever signals come), and the
 * entries they bring kept for the next call; there is no current event then (the
 * call that left the read in flight returned none).
 */
static int settle(mailroom_stream *s)
{
    if (ensure_connected(s) != 0)
        return -1;
    if (s->expect == 0)
        return 0;
    return read_collect(s, 0) < 0 || read_finish(s) < 0 ? -1 : 0;
}

/* Checks a group reader's id argument: 0 with the id, normalised, in out; or -1. */
static int check_id_arg(mailroom_stream *s, const char *stream_id, const char *what,
                        char out[MAILROOM_STREAM_ID_MAX])
{
    xid id;
    if (!s->is_group)
        return mr_fail(&s->m->err, MAILROOM_EINVAL, "%s: the reader has no group", what);
    if (!stream_id || id_parse(stream_id, strlen(stream_id), &id) != 0)
        return mr_fail(&s->m->err, MAILROOM_EINVAL, "%s: not an entry id", what);
    id_format(id, out);
    return 0;
}

/* mailroom_stream_ack (mailroom_admin.h). */
int mailroom_stream_ack(mailroom_stream *s, const char *stream_id)
{
    if (!s)
        return MAILROOM_EINVAL;
    char id[MAILROOM_STREAM_ID_MAX];
    int r = check_id_arg(s, stream_id, "XACK", id);
    if (r == 0)
        r = settle(s);
    if (r == 0)
        r = ack_id(s, id);
    return handle_result(s->m, r);
}

/* XCLAIM of one id (checked) to this reader, made the current event. 0; -1 with
 * MAILROOM_ENOTFOUND when Redis gave nothing back, or on failure. */
static int claim_id(mailroom_stream *s, const char *id)
{
    const char *argv[] = {"XCLAIM", s->m->keys.events, s->group, s->consumer, "0", id};
    redisReply *r = command(s, 6, argv, "XCLAIM");
    if (!r)
        return -1;
    int rc = 0;
    if (r->type != REDIS_REPLY_ARRAY)
        rc = stream_failed(s, r, "XCLAIM");
    else if (r->elements == 0 || entry_take(s, r->element[0], TAKE_REDELIVERED) != 0)
        rc = mr_fail(&s->m->err, MAILROOM_ENOTFOUND,
                     "XCLAIM: entry %s is not pending or no longer in the stream", id);
    if (rc == 0)
        s->claim_reply = r; /* after entry_take, which released the previous one */
    else
        freeReplyObject(r);
    return rc;
}

/* mailroom_stream_claim (mailroom_admin.h). */
int mailroom_stream_claim(mailroom_stream *s, const char *stream_id,
                          const mailroom_stream_event **ev)
{
    if (ev)
        *ev = NULL;
    if (!s)
        return MAILROOM_EINVAL;
    if (!ev)
        return handle_result(s->m, mr_fail(&s->m->err, MAILROOM_EINVAL, "XCLAIM: ev is NULL"));
    char id[MAILROOM_STREAM_ID_MAX];
    int r = check_id_arg(s, stream_id, "XCLAIM", id);
    if (r == 0)
        r = settle(s);
    if (r == 0)
        r = claim_id(s, id);
    if (r == 0)
        *ev = &s->sev;
    return handle_result(s->m, r);
}
