/* state: see state.h. Every write is one pipelined round trip. */
#define _POSIX_C_SOURCE 200809L
#include "state.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "log.h"

#define STATE_TIMEOUT_MS 2000
#define STATE_LOG_EVERY_MS 10000
#define STATE_COMMANDS_MAX 4

/* A pipeline of up to STATE_COMMANDS_MAX commands. */
typedef struct pipeline {
    int n;
    int argc[STATE_COMMANDS_MAX];
    const char **argv[STATE_COMMANDS_MAX];
} pipeline;

static void add(pipeline *p, int argc, const char **argv)
{
    p->argc[p->n] = argc;
    p->argv[p->n++] = argv;
}

/* Logs a failure (rate-limited) and drops the connection. -1. */
static int state_failed(webhook_state *st, const char *why)
{
    log_limited(LOG_WARN, "webhook state", STATE_LOG_EVERY_MS,
                "delivery state: cannot write mailroom:{%s}:webhook: %s", st->cfg->keys.queue, why);
    if (st->c)
        redisFree(st->c);
    st->c = NULL;
    return -1;
}

/* Connects when needed. 0 or -1. */
static int connect_state(webhook_state *st)
{
    mr_error err = MR_ERROR_INIT;
    if (st->c)
        return 0;
    st->c = rconn_connect(&st->cfg->redis, STATE_TIMEOUT_MS, STATE_TIMEOUT_MS, &err);
    return st->c ? 0 : state_failed(st, err.msg);
}

/* Sends the pipeline and reads its replies: into out (the caller frees them) when out
 * is not NULL, else they are freed here. 0, or -1 when a command failed or answered an
 * error (logged; every reply freed). */
static int run(webhook_state *st, const pipeline *p, redisReply **out)
{
    redisReply *replies[STATE_COMMANDS_MAX] = {NULL};
    const char *why = NULL;
    if (connect_state(st) != 0)
        return -1;
    for (int i = 0; i < p->n && !why; i++)
        if (redisAppendCommandArgv(st->c, p->argc[i], p->argv[i], NULL) != REDIS_OK)
            why = "out of memory";
    for (int i = 0; i < p->n && !why; i++) {
        void *r = NULL;
        if (redisGetReply(st->c, &r) != REDIS_OK)
            why = st->c->errstr;
        else if ((replies[i] = r)->type == REDIS_REPLY_ERROR)
            why = replies[i]->str;
    }
    if (why)
        state_failed(st, why); /* before the replies go: why may be one of them */
    for (int i = 0; i < p->n; i++) {
        if (out && !why)
            out[i] = replies[i];
        else
            freeReplyObject(replies[i]);
    }
    return why ? -1 : 0;
}

void state_attempt(webhook_state *st, const char *stream_id, const delivery_result *r,
                   int delivered)
{
    char status[24], at[CLOCK_ISO_MAX];
    snprintf(status, sizeof status, "%ld", r->status);
    clock_format_iso(clock_now_ms(), 1, at);
    const char *key = st->cfg->keys.webhook;
    const char *incr[] = {"HINCRBY", key, "delivered", "1"};
    const char *hset[] = {"HSET",    key, "last_status", status,   "last_error", r->error,
                          "last_at", at,  "stream_id",   stream_id};
    pipeline p = {0};
    add(&p, 8 + (delivered ? 2 : 0), hset);
    if (delivered)
        add(&p, 4, incr);
    run(st, &p, NULL);
}

/* The failed list's entry for an event given up, as JSON (json-c); NULL when memory
 * ran out. The caller frees it with json_object_put. */
static json_object *gave_up_entry(const mailroom_stream_event *sev, const char *delivery_id,
                                  int attempts, const char *why, const char *now)
{
    const mailroom_event *ev = sev->event;
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "stream_id", json_object_new_string(sev->stream_id));
    json_object_object_add(o, "delivery_id", json_object_new_string(delivery_id));
    json_object_object_add(o, "id", ev->id ? json_object_new_string(ev->id) : NULL);
    json_object_object_add(o, "state", ev->state ? json_object_new_string(ev->state) : NULL);
    json_object_object_add(o, "at", ev->at ? json_object_new_string(ev->at) : NULL);
    json_object_object_add(o, "attempts", json_object_new_int(attempts));
    json_object_object_add(o, "error", json_object_new_string(why));
    json_object_object_add(o, "gave_up_at", json_object_new_string(now));
    return o;
}

void state_gave_up(webhook_state *st, const mailroom_stream_event *sev, const char *delivery_id,
                   int attempts, const char *why)
{
    char at[CLOCK_ISO_MAX], cap[24];
    clock_format_iso(clock_now_ms(), 1, at);
    snprintf(cap, sizeof cap, "%d", WEBHOOK_FAILED_MAX - 1);
    json_object *o = gave_up_entry(sev, delivery_id, attempts, why, at);
    const char *entry = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                  JSON_C_TO_STRING_NOSLASHESCAPE)
                          : NULL;
    const char *key = st->cfg->keys.webhook, *list = st->cfg->failed_key;
    const char *incr[] = {"HINCRBY", key, "failed", "1"};
    const char *push[] = {"LPUSH", list, entry};
    const char *trim[] = {"LTRIM", list, "0", cap};
    pipeline p = {0};
    add(&p, 4, incr);
    if (entry) {
        add(&p, 3, push);
        add(&p, 4, trim);
    }
    run(st, &p, NULL);
    json_object_put(o);
}

/* The integer value of a field of a flat [field, value, ...] reply; -1 when absent or
 * not an integer (nil). */
static long long int_field(const redisReply *r, const char *name)
{
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1]->type == REDIS_REPLY_INTEGER ? r->element[i + 1]->integer : -1;
    return -1;
}

/* This group's entry of an XINFO GROUPS reply, or NULL. */
static const redisReply *our_group(const redisReply *groups, const char *name)
{
    for (size_t i = 0; groups->type == REDIS_REPLY_ARRAY && i < groups->elements; i++) {
        const redisReply *g = groups->element[i];
        for (size_t j = 0; g->type == REDIS_REPLY_ARRAY && j + 1 < g->elements; j += 2)
            if (g->element[j]->type == REDIS_REPLY_STRING &&
                strcmp(g->element[j]->str, "name") == 0 &&
                g->element[j + 1]->type == REDIS_REPLY_STRING &&
                strcmp(g->element[j + 1]->str, name) == 0)
                return g;
    }
    return NULL;
}

/* The events not handled yet: pending (delivered to an instance, not acknowledged)
 * plus the group's lag (not delivered to any; when Redis cannot tell it, entries-added
 * minus entries-read). -1 when unknown. */
static long long lag_of(const redisReply *stream_info, const redisReply *groups, const char *group)
{
    const redisReply *g = our_group(groups, group);
    long long pending = int_field(g, "pending"), lag = int_field(g, "lag");
    if (!g || pending < 0)
        return -1;
    if (lag < 0) {
        long long added = int_field(stream_info, "entries-added"),
                  read = int_field(g, "entries-read");
        lag = added >= 0 && read >= 0 && added >= read ? added - read : 0;
    }
    return pending + lag;
}

void state_tick(webhook_state *st)
{
    const char *events = st->cfg->keys.events;
    const char *info[] = {"XINFO", "STREAM", events};
    const char *groups[] = {"XINFO", "GROUPS", events};
    redisReply *r[2] = {NULL, NULL};
    pipeline p = {0};
    add(&p, 3, info);
    add(&p, 3, groups);
    if (run(st, &p, r) != 0)
        return;
    long long lag = lag_of(r[0], r[1], st->cfg->o.group);
    freeReplyObject(r[0]);
    freeReplyObject(r[1]);
    char lag_text[24];
    snprintf(lag_text, sizeof lag_text, "%lld", lag);
    const char *hset[] = {"HSET",  st->cfg->keys.webhook, "url", st->cfg->url_shown, "lag",
                          lag_text};
    pipeline w = {0};
    add(&w, lag >= 0 ? 6 : 4, hset);
    run(st, &w, NULL);
}

void state_close(webhook_state *st)
{
    if (st && st->c)
        redisFree(st->c);
    if (st)
        st->c = NULL;
}
