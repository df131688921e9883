/*
 * history.c — what already happened, read back (mailroom_admin.h): the queue's outcomes
 * minute by minute (mailroom_history_read, from the mailroom:{Q}:minute:<unix minute>
 * hashes FINISH writes and keeps 48 h), and the events kept in the queue's events
 * stream that concern one job (mailroom_job_events_read) or one recipient
 * (mailroom_recipient_events_read); and what mailroom-webhook delivered so far
 * (mailroom_webhook_state_read, its hash mailroom:{Q}:webhook). The dashboard draws
 * its charts, a job's life and the webhook's state from these.
 *
 * The history is one pipelined round trip of HGETALLs. The event logs page through the
 * stream with XRANGE / XREVRANGE, COUNT at a time, within a caller's budget of entries
 * read, so that a search never makes Redis (or the caller) handle the whole stream at
 * once. Results are allocated here and own copies of what they show; their _free()
 * releases everything.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "handle.h"
#include "job.h"
#include "mailroom_admin.h"

#define PAGE 500                  /* stream entries per XRANGE */
#define EVENT_LOG_LIMIT_MAX 10000 /* entries one log holds at most */

/* ------------------------------------------------------------------ per minute */

/* What mailroom_history_read hands out: the public part first. */
typedef struct history_impl {
    mailroom_history pub;
    mailroom_minute *minutes;
} history_impl;

/* Adds one field of a minute's hash to its figures (unknown fields are ignored). */
static void minute_field(mailroom_minute *mm, const char *name, const char *value)
{
    long long v = strtoll(value, NULL, 10);
    if (strcmp(name, "sent") == 0)
        mm->sent = v;
    else if (strcmp(name, "retrying") == 0)
        mm->retrying = v;
    else if (strcmp(name, "failed") == 0)
        mm->failed = v;
    else if (strcmp(name, "rejected") == 0)
        mm->rejected = v;
    else if (strcmp(name, "cancelled") == 0)
        mm->cancelled = v;
}

/* Reads one HGETALL reply of the pipeline into mm. 0, or -1 with m->err set. */
static int read_minute(mailroom *m, mailroom_minute *mm)
{
    void *v = NULL;
    if (redisGetReply(m->redis, &v) != REDIS_OK || !v)
        return handle_connection_failed(m, "history");
    redisReply *r = v;
    int rr = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
        rr = handle_reply_failed(m, r, "history");
    for (size_t i = 0; rr == 0 && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            minute_field(mm, r->element[i]->str, r->element[i + 1]->str);
    freeReplyObject(r);
    return rr;
}

/* Sends one HGETALL per minute of h (pipelined), then reads them in order. 0, or -1
 * with m->err set; a failure leaves replies unread, so the connection is dropped. */
static int read_minutes(mailroom *m, history_impl *h)
{
    char key[KEYS_NAME_MAX];
    if (handle_connect(m) != 0)
        return -1;
    for (size_t i = 0; i < h->pub.n; i++) {
        keys_minute(&m->keys, h->minutes[i].minute, key);
        if (redisAppendCommand(m->redis, "HGETALL %s", key) != REDIS_OK) {
            handle_drop(m);
            return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < h->pub.n; i++)
        if (read_minute(m, &h->minutes[i]) != 0) {
            handle_drop(m);
            return -1;
        }
    return 0;
}

/* mailroom_history_read (mailroom_admin.h): the minutes are chosen by this host's
 * clock, as consumers stamp outcomes with theirs. */
int mailroom_history_read(mailroom *m, int minutes, mailroom_history **out)
{
    if (!m)
        return MAILROOM_EINVAL;
    if (!out || minutes < 1 || minutes > MAILROOM_HISTORY_MAX_MINUTES)
        return handle_result(m, mr_fail(&m->err, MAILROOM_EINVAL,
                                        "history: minutes must be 1 to %d (out not NULL)",
                                        MAILROOM_HISTORY_MAX_MINUTES));
    *out = NULL;
    history_impl *h = calloc(1, sizeof *h);
    if (!h || !(h->minutes = calloc((size_t)minutes, sizeof *h->minutes))) {
        free(h);
        return handle_result(m, mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory"));
    }
    long long now = clock_now_ms(), last = now / 60000;
    h->pub = (mailroom_history){now, h->minutes, (size_t)minutes};
    for (int i = 0; i < minutes; i++)
        h->minutes[i].minute = last - (minutes - 1) + i;
    int r = read_minutes(m, h);
    if (r == 0) {
        *out = &h->pub;
        h = NULL;
    }
    mailroom_history_free(h ? &h->pub : NULL);
    return handle_result(m, r);
}

/* Releases what mailroom_history_read returned. */
void mailroom_history_free(mailroom_history *h)
{
    history_impl *hi = (history_impl *)h; /* pub is the first member */
    if (!hi)
        return;
    free(hi->minutes);
    free(hi);
}

/* ------------------------------------------------------------------ event logs */

/* What the event-log calls hand out: the public part first; every string owned. */
typedef struct log_impl {
    mailroom_event_log pub;
    mailroom_event_log_entry *items;
    size_t cap;
} log_impl;

/* How one scan goes: which entries match, where it stands, what it may still read. */
typedef struct scan {
    const char *needle; /* the job id, or the recipient text (lower case) */
    int by_recipient;   /* 0: the event's id equals needle; 1: a recipient contains it */
    int reverse;        /* XREVRANGE, newest first */
    char from[48], to[48];
    long long budget; /* entries still to read */
    size_t limit;     /* matches to keep at most */
} scan;

/* Parses one event (len bytes); NULL when it is not a JSON object. */
static json_object *parse_event(const char *s, size_t len)
{
    json_tokener *tok = len <= (size_t)INT_MAX ? json_tokener_new() : NULL;
    json_object *o = tok ? json_tokener_parse_ex(tok, s, (int)len) : NULL;
    if (o && (json_tokener_get_error(tok) != json_tokener_success ||
              !json_object_is_type(o, json_type_object))) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

/* 1 when hay (lower-cased as it is read) contains needle, already lower case. */
static int contains_lower(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n <= len && i <= len - n; i++) {
        size_t k = 0;
        while (k < n && (char)tolower((unsigned char)hay[i + k]) == needle[k])
            k++;
        if (k == n)
            return 1;
    }
    return 0;
}

/* 1 when a recipient of the event (a key of its recipients member) contains needle. */
static int names_recipient(json_object *o, const char *needle)
{
    json_object *map = NULL;
    if (!json_object_object_get_ex(o, "recipients", &map) ||
        !json_object_is_type(map, json_type_object))
        return 0;
    json_object_object_foreach(map, address, unused)
    {
        (void)unused;
        if (contains_lower(address, strlen(address), needle))
            return 1;
    }
    return 0;
}

/* 1 when the event text matches the scan: a cheap look at the text first, then the
 * parsed event's id or recipients. */
static int event_matches(const scan *sc, const char *s, size_t len)
{
    if (sc->by_recipient ? !contains_lower(s, len, sc->needle) : !strstr(s, sc->needle))
        return 0;
    json_object *o = parse_event(s, len);
    json_object *id = NULL;
    int yes = 0;
    if (o && sc->by_recipient)
        yes = names_recipient(o, sc->needle);
    else if (o && json_object_object_get_ex(o, "id", &id) &&
             json_object_is_type(id, json_type_string))
        yes = strcmp(json_object_get_string(id), sc->needle) == 0;
    json_object_put(o);
    return yes;
}

/* Appends a copy of one matching entry. 0, or -1 when memory ran out. */
static int log_add(log_impl *l, const char *id, const char *s, size_t len)
{
    if (l->pub.n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        mailroom_event_log_entry *v = realloc(l->items, cap * sizeof *v);
        if (!v)
            return -1;
        l->items = v;
        l->cap = cap;
    }
    char *sid = strdup(id);
    char *payload = malloc(len + 1);
    if (!sid || !payload) {
        free(sid);
        free(payload);
        return -1;
    }
    memcpy(payload, s, len);
    payload[len] = '\0';
    mailroom_event_log_entry *e = &l->items[l->pub.n++]; /* the log owns both from here */
    e->stream_id = sid;
    e->payload = payload;
    e->payload_len = len;
    l->pub.items = l->items;
    return 0;
}

/* The "event" field of one stream entry ([id, [field, value, ...]]); NULL when it has
 * none or is not shaped so. */
static const redisReply *entry_event(const redisReply *e)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    const redisReply *f = e->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (f->element[i]->type == REDIS_REPLY_STRING && strcmp(f->element[i]->str, "event") == 0 &&
            f->element[i + 1]->type == REDIS_REPLY_STRING)
            return f->element[i + 1];
    return NULL;
}

/* Takes the matches of one page and moves the scan past it: the next page starts
 * after the page's last id (an exclusive bound, "(id"). 0, or -1 when memory ran
 * out. */
static int take_page(log_impl *l, scan *sc, const redisReply *page)
{
    for (size_t i = 0; i < page->elements && l->pub.n < sc->limit; i++) {
        const redisReply *e = page->element[i], *ev = entry_event(e);
        sc->budget--;
        l->pub.scanned++;
        if (ev && event_matches(sc, ev->str, ev->len) &&
            log_add(l, e->element[0]->str, ev->str, ev->len) != 0)
            return -1;
        if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
            e->element[0]->type == REDIS_REPLY_STRING)
            snprintf(sc->reverse ? sc->to : sc->from, sizeof sc->from, "(%.40s",
                     e->element[0]->str);
    }
    return 0;
}

/* Reads pages until the stream's end, the budget or the limit. 0, or -1 with m->err. */
static int run_scan(mailroom *m, log_impl *l, scan *sc)
{
    if (handle_connect(m) != 0)
        return -1;
    for (;;) {
        long long want = sc->budget < PAGE ? sc->budget : PAGE;
        if (want <= 0 || l->pub.n >= sc->limit)
            return 0; /* stopped early: complete stays 0 */
        char count[24];
        snprintf(count, sizeof count, "%lld", want);
        const char *argv[] = {
            sc->reverse ? "XREVRANGE" : "XRANGE", m->keys.events, sc->reverse ? sc->to : sc->from,
            sc->reverse ? sc->from : sc->to,      "COUNT",        count};
        redisReply *r = redisCommandArgv(m->redis, 6, argv, NULL);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            handle_reply_failed(m, r, "events stream");
            freeReplyObject(r);
            return -1;
        }
        size_t got = r->elements;
        int rr = take_page(l, sc, r);
        freeReplyObject(r);
        if (rr != 0)
            return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
        if (l->pub.n >= sc->limit)
            return 0;
        if ((long long)got < want) {
            l->pub.complete = 1;
            return 0;
        }
    }
}

/* Runs a scan into a new log: *out on success, NULL on failure. */
static int event_log(mailroom *m, scan *sc, mailroom_event_log **out)
{
    *out = NULL;
    log_impl *l = calloc(1, sizeof *l);
    if (!l)
        return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    int r = run_scan(m, l, sc);
    if (r == 0) {
        *out = &l->pub;
        l = NULL;
    }
    mailroom_event_log_free(l ? &l->pub : NULL);
    return r;
}

/* A stream bound for a time in ms: "-" / "+" when unset (<= 0). */
static void bound(char *dst, size_t cap, long long ms, const char *open)
{
    if (ms > 0)
        snprintf(dst, cap, "%lld", ms);
    else
        snprintf(dst, cap, "%s", open);
}

/* mailroom_job_events_read (mailroom_admin.h): forward from from_ms to to_ms. */
int mailroom_job_events_read(mailroom *m, const char *id, long long from_ms, long long to_ms,
                             long long max_scan, mailroom_event_log **out)
{
    if (!m)
        return MAILROOM_EINVAL;
    if (!out || !id || !job_id_valid(id))
        return handle_result(m, mr_fail(&m->err, MAILROOM_EINVAL,
                                        "job events: a job id is needed (and out not NULL)"));
    scan sc = {.needle = id,
               .budget = max_scan > 0 ? max_scan : MAILROOM_EVENT_LOG_SCAN_DEFAULT,
               .limit = EVENT_LOG_LIMIT_MAX};
    bound(sc.from, sizeof sc.from, from_ms, "-");
    bound(sc.to, sizeof sc.to, to_ms, "+");
    return handle_result(m, event_log(m, &sc, out));
}

/* mailroom_recipient_events_read (mailroom_admin.h): backward from the newest entry. */
int mailroom_recipient_events_read(mailroom *m, const char *text, long limit, long long max_scan,
                                   mailroom_event_log **out)
{
    char needle[256];
    if (!m)
        return MAILROOM_EINVAL;
    size_t n = text ? strlen(text) : 0;
    if (!out || n == 0 || n >= sizeof needle)
        return handle_result(m, mr_fail(&m->err, MAILROOM_EINVAL,
                                        "recipient events: the text must be 1 to %zu bytes",
                                        sizeof needle - 1));
    for (size_t i = 0; i <= n; i++)
        needle[i] = (char)tolower((unsigned char)text[i]);
    scan sc = {.needle = needle,
               .by_recipient = 1,
               .reverse = 1,
               .budget = max_scan > 0 ? max_scan : MAILROOM_EVENT_LOG_SCAN_DEFAULT,
               .limit =
                   limit > 0 && limit < EVENT_LOG_LIMIT_MAX ? (size_t)limit : EVENT_LOG_LIMIT_MAX};
    snprintf(sc.from, sizeof sc.from, "-");
    snprintf(sc.to, sizeof sc.to, "+");
    return handle_result(m, event_log(m, &sc, out));
}

/* Releases every copied entry, the array and the log. */
void mailroom_event_log_free(mailroom_event_log *l)
{
    log_impl *li = (log_impl *)l; /* pub is the first member */
    if (!li)
        return;
    for (size_t i = 0; i < li->pub.n; i++) {
        free((char *)li->items[i].stream_id);
        free((char *)li->items[i].payload);
    }
    free(li->items);
    free(li);
}

/* ------------------------------------------------------------------ webhook deliveries */

/* What mailroom_webhook_state_read hands out: the public part first; the strings
 * borrow from the kept reply. */
typedef struct webhook_impl {
    mailroom_webhook_state pub;
    redisReply *reply; /* HGETALL, owned */
} webhook_impl;

/* Takes one field of the webhook hash (unknown fields are ignored). */
static void webhook_field(mailroom_webhook_state *w, const char *name, const char *value)
{
    if (strcmp(name, "url") == 0)
        w->url = value;
    else if (strcmp(name, "last_error") == 0)
        w->last_error = value;
    else if (strcmp(name, "last_at") == 0)
        w->last_at = value;
    else if (strcmp(name, "stream_id") == 0)
        w->stream_id = value;
    else if (strcmp(name, "delivered") == 0)
        w->delivered = strtoll(value, NULL, 10);
    else if (strcmp(name, "failed") == 0)
        w->failed = strtoll(value, NULL, 10);
    else if (strcmp(name, "lag") == 0)
        w->lag = strtoll(value, NULL, 10);
    else if (strcmp(name, "last_status") == 0)
        w->last_status = (int)strtol(value, NULL, 10);
}

/* HGETALL of the webhook hash into w. 0, or -1 with m->err set. */
static int read_webhook(mailroom *m, webhook_impl *w)
{
    if (handle_connect(m) != 0)
        return -1;
    const char *argv[] = {"HGETALL", m->keys.webhook};
    redisReply *r = redisCommandArgv(m->redis, 2, argv, NULL);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
        handle_reply_failed(m, r, "webhook state");
        freeReplyObject(r);
        return -1;
    }
    w->reply = r;
    w->pub = (mailroom_webhook_state){
        .present = r->elements > 0, .url = "", .last_error = "", .last_at = "", .stream_id = ""};
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            webhook_field(&w->pub, r->element[i]->str, r->element[i + 1]->str);
    return 0;
}

/* mailroom_webhook_state_read (mailroom_admin.h). */
int mailroom_webhook_state_read(mailroom *m, mailroom_webhook_state **out)
{
    if (!m)
        return MAILROOM_EINVAL;
    if (!out)
        return handle_result(m, mr_fail(&m->err, MAILROOM_EINVAL, "webhook state: out is NULL"));
    *out = NULL;
    webhook_impl *w = calloc(1, sizeof *w);
    if (!w)
        return handle_result(m, mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory"));
    int r = read_webhook(m, w);
    if (r == 0) {
        *out = &w->pub;
        w = NULL;
    }
    mailroom_webhook_state_free(w ? &w->pub : NULL);
    return handle_result(m, r);
}

/* Releases the reply the strings borrow from. */
void mailroom_webhook_state_free(mailroom_webhook_state *s)
{
    webhook_impl *w = (webhook_impl *)s; /* pub is the first member */
    if (!w)
        return;
    freeReplyObject(w->reply);
    free(w);
}
