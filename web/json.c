/*
 * json.c — the dashboard's JSON, built with json-c: checked setters (a member that
 * could not be made makes the whole object fail, never a half object), and the
 * library's results as the page reads them. Strings from Redis go in as JSON strings;
 * the page shows them with textContent, never as markup. A string the library left
 * NULL (absent) is "".
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <string.h>

#include "web.h"

int wj_set(json_object *o, const char *key, json_object *v)
{
    if (!v)
        return -1;
    if (json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        return -1;
    }
    return 0;
}

int wj_add(json_object *a, json_object *v)
{
    if (!v)
        return -1;
    if (json_object_array_add(a, v) != 0) {
        json_object_put(v);
        return -1;
    }
    return 0;
}

json_object *wj_str(const char *s)
{
    return json_object_new_string(s ? s : "");
}

json_object *wj_parse(const char *s, size_t len)
{
    json_tokener *tok = len <= (size_t)INT_MAX ? json_tokener_new() : NULL;
    json_object *o = tok ? json_tokener_parse_ex(tok, s, (int)len) : NULL;
    if (o && json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o ? o : json_object_new_string_len(s, len > (size_t)INT_MAX ? INT_MAX : (int)len);
}

const char *wj_get_str(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* Frees o and returns NULL when ok is 0; o otherwise. */
static json_object *keep_if(json_object *o, int ok)
{
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* {name: value} of the counters. */
static json_object *counters(const mailroom_stats *s)
{
    json_object *o = json_object_new_object();
    int ok = o != NULL;
    for (size_t i = 0; ok && i < s->n_counters; i++)
        ok = wj_set(o, s->counters[i].name, json_object_new_int64(s->counters[i].value)) == 0;
    return keep_if(o, ok);
}

/* The jobs held by all processing lists. */
static long long processing_total(const mailroom_stats *s)
{
    long long n = 0;
    for (size_t i = 0; i < s->n_processing; i++)
        n += s->processing[i].jobs;
    return n;
}

json_object *wj_stats(const mailroom_stats *s)
{
    json_object *o = json_object_new_object();
    int ok =
        o && wj_set(o, "now_ms", json_object_new_int64(s->now_ms)) == 0 &&
        wj_set(o, "pending", json_object_new_int64(s->pending)) == 0 &&
        wj_set(o, "scheduled", json_object_new_int64(s->scheduled)) == 0 &&
        wj_set(o, "scheduled_due", json_object_new_int64(s->scheduled_due)) == 0 &&
        wj_set(o, "processing", json_object_new_int64(processing_total(s))) == 0 &&
        wj_set(o, "dead", json_object_new_int64(s->dead)) == 0 &&
        wj_set(o, "sent_per_min", json_object_new_double(s->sent_per_min)) == 0 &&
        wj_set(o, "failed_per_min", json_object_new_double(s->failed_per_min)) == 0 &&
        wj_set(o, "paused", json_object_new_boolean(s->paused)) == 0 &&
        wj_set(o, "paused_at", wj_str(s->paused_at)) == 0 &&
        wj_set(o, "oldest_pending_age_ms", json_object_new_int64(s->oldest_pending_age_ms)) == 0 &&
        wj_set(o, "counters", counters(s)) == 0;
    return keep_if(o, ok);
}

/* What a consumer says of itself (its info hash), into o. */
static int consumer_info(json_object *o, const mailroom_consumer *c)
{
    return wj_set(o, "has_info", json_object_new_boolean(c->has_info)) == 0 &&
                   wj_set(o, "host", wj_str(c->host)) == 0 &&
                   wj_set(o, "pid", json_object_new_int64(c->pid)) == 0 &&
                   wj_set(o, "version", wj_str(c->version)) == 0 &&
                   wj_set(o, "started_at", wj_str(c->started_at)) == 0 &&
                   wj_set(o, "queues", wj_str(c->queues)) == 0 &&
                   wj_set(o, "relays", wj_str(c->relays)) == 0 &&
                   wj_set(o, "concurrency", json_object_new_int64(c->concurrency)) == 0 &&
                   wj_set(o, "sessions", json_object_new_int64(c->sessions)) == 0
               ? 0
               : -1;
}

/* One consumer. */
static json_object *consumer(const mailroom_consumer *c)
{
    json_object *o = json_object_new_object();
    int ok = o && wj_set(o, "id", wj_str(c->id)) == 0 &&
             wj_set(o, "state", wj_str(mailroom_consumer_state_name(c->state))) == 0 &&
             wj_set(o, "heartbeat_age_ms", json_object_new_int64(c->heartbeat_age_ms)) == 0 &&
             wj_set(o, "processing", json_object_new_int64(c->processing)) == 0 &&
             consumer_info(o, c) == 0;
    return keep_if(o, ok);
}

json_object *wj_consumers(const mailroom_consumers *c)
{
    json_object *a = json_object_new_array();
    int ok = a != NULL;
    for (size_t i = 0; ok && i < c->n; i++)
        ok = wj_add(a, consumer(&c->items[i])) == 0;
    return keep_if(a, ok);
}

/* The recipients and subject of a dead letter's raw job, when it is readable JSON. */
static int dead_job_summary(json_object *o, const char *job)
{
    json_object *j = job ? wj_parse(job, strlen(job)) : NULL, *to = NULL;
    int ok = 1;
    if (j && json_object_is_type(j, json_type_object)) {
        if (json_object_object_get_ex(j, "to", &to) && json_object_is_type(to, json_type_array))
            ok = wj_set(o, "to", json_object_get(to)) == 0;
        ok = ok && wj_set(o, "subject", wj_str(wj_get_str(j, "subject"))) == 0;
    }
    json_object_put(j);
    return ok ? 0 : -1;
}

json_object *wj_dead_letter(const mailroom_dead_letter *d)
{
    json_object *o = json_object_new_object();
    int ok = o && wj_set(o, "id", wj_str(d->id)) == 0 && wj_set(o, "at", wj_str(d->at)) == 0 &&
             wj_set(o, "state", wj_str(d->state)) == 0 &&
             wj_set(o, "reason", wj_str(d->reason)) == 0 &&
             wj_set(o, "consumer", wj_str(d->consumer)) == 0 && dead_job_summary(o, d->job) == 0;
    return keep_if(o, ok);
}

json_object *wj_recipients(const mailroom_recipient *r, size_t n)
{
    json_object *a = json_object_new_array();
    int ok = a != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        json_object *o = json_object_new_object();
        ok = o && wj_set(o, "address", wj_str(r[i].address)) == 0 &&
             wj_set(o, "state", wj_str(r[i].state)) == 0 &&
             wj_set(o, "code", json_object_new_int(r[i].code)) == 0 &&
             wj_set(o, "reply", wj_str(r[i].reply)) == 0;
        ok = ok ? wj_add(a, o) == 0 : (json_object_put(o), 0);
    }
    return keep_if(a, ok);
}

json_object *wj_status(const mailroom_job_status *st)
{
    json_object *o = json_object_new_object();
    int ok = o && wj_set(o, "id", wj_str(st->id)) == 0 &&
             wj_set(o, "state", wj_str(mailroom_state_name(st->state))) == 0 &&
             wj_set(o, "attempts", json_object_new_int(st->attempts)) == 0 &&
             wj_set(o, "smtp_code", json_object_new_int(st->smtp_code)) == 0 &&
             wj_set(o, "smtp_reply", wj_str(st->smtp_reply)) == 0 &&
             wj_set(o, "error", wj_str(st->error)) == 0 &&
             wj_set(o, "consumer", wj_str(st->consumer)) == 0 &&
             wj_set(o, "created_at", wj_str(st->created_at)) == 0 &&
             wj_set(o, "updated_at", wj_str(st->updated_at)) == 0;
    return keep_if(o, ok);
}

json_object *wj_event_log(const mailroom_event_log *log, const char *queue)
{
    json_object *a = json_object_new_array();
    int ok = a != NULL;
    for (size_t i = 0; ok && i < log->n; i++) {
        const mailroom_event_log_entry *e = &log->items[i];
        json_object *o = json_object_new_object();
        ok = o && wj_set(o, "queue", wj_str(queue)) == 0 &&
             wj_set(o, "stream_id", wj_str(e->stream_id)) == 0 &&
             wj_set(o, "event", wj_parse(e->payload, e->payload_len)) == 0;
        ok = ok ? wj_add(a, o) == 0 : (json_object_put(o), 0);
    }
    return keep_if(a, ok);
}

json_object *wj_webhook(const mailroom_webhook_state *w)
{
    json_object *o = json_object_new_object();
    int ok = o && wj_set(o, "present", json_object_new_boolean(w->present)) == 0 &&
             wj_set(o, "url", wj_str(w->url)) == 0 &&
             wj_set(o, "delivered", json_object_new_int64(w->delivered)) == 0 &&
             wj_set(o, "failed", json_object_new_int64(w->failed)) == 0 &&
             wj_set(o, "lag", json_object_new_int64(w->lag)) == 0 &&
             wj_set(o, "last_status", json_object_new_int(w->last_status)) == 0 &&
             wj_set(o, "last_error", wj_str(w->last_error)) == 0 &&
             wj_set(o, "last_at", wj_str(w->last_at)) == 0 &&
             wj_set(o, "stream_id", wj_str(w->stream_id)) == 0;
    return keep_if(o, ok);
}

json_object *wj_relays(const mailroom_relays *r)
{
    json_object *a = json_object_new_array();
    int ok = a != NULL;
    for (size_t i = 0; ok && i < r->n; i++) {
        const mailroom_relay *x = &r->items[i];
        json_object *o = json_object_new_object();
        ok = o && wj_set(o, "name", wj_str(x->name)) == 0 &&
             wj_set(o, "circuit", wj_str(x->circuit)) == 0 &&
             wj_set(o, "failures", json_object_new_int64(x->failures)) == 0 &&
             wj_set(o, "last_error", wj_str(x->last_error)) == 0 &&
             wj_set(o, "opened_at_ms", json_object_new_int64(x->opened_at_ms)) == 0 &&
             wj_set(o, "probe_at_ms", json_object_new_int64(x->probe_at_ms)) == 0 &&
             wj_set(o, "prober", wj_str(x->prober)) == 0 &&
             wj_set(o, "rate", json_object_new_double(x->rate)) == 0 &&
             wj_set(o, "rate_max", json_object_new_double(x->rate_max)) == 0 &&
             wj_set(o, "throttles", json_object_new_int64(x->throttles)) == 0 &&
             wj_set(o, "throttled_at_ms", json_object_new_int64(x->throttled_at_ms)) == 0 &&
             wj_set(o, "sessions", json_object_new_int64(x->sessions)) == 0 &&
             wj_set(o, "last_used_ms", json_object_new_int64(x->last_used_ms)) == 0;
        ok = ok ? wj_add(a, o) == 0 : (json_object_put(o), 0);
    }
    return keep_if(a, ok);
}

json_object *wj_job_item(const mailroom_job_item *j)
{
    json_object *o = json_object_new_object(), *to = json_object_new_array();
    int ok = o && to;
    for (size_t i = 0; ok && i < j->n_recipients; i++)
        ok = wj_add(to, wj_str(j->recipients[i])) == 0;
    ok = ok ? wj_set(o, "to", to) == 0 : (json_object_put(to), 0);
    ok = ok && wj_set(o, "id", wj_str(j->id)) == 0 &&
         wj_set(o, "state", wj_str(mailroom_state_name(j->state))) == 0 &&
         wj_set(o, "attempts", json_object_new_int(j->attempts)) == 0 &&
         wj_set(o, "error", wj_str(j->error)) == 0 &&
         wj_set(o, "subject", wj_str(j->subject)) == 0 &&
         wj_set(o, "created_at", wj_str(j->created_at)) == 0 &&
         wj_set(o, "send_at", wj_str(j->send_at)) == 0 &&
         wj_set(o, "due_ms", json_object_new_int64(j->due_ms)) == 0 &&
         wj_set(o, "readable", json_object_new_boolean(j->readable)) == 0;
    return keep_if(o, ok);
}

json_object *wj_suppression(const mailroom_suppression *s)
{
    json_object *o = json_object_new_object();
    int ok = o && wj_set(o, "address", wj_str(s->address)) == 0 &&
             wj_set(o, "reason", wj_str(s->reason)) == 0 &&
             wj_set(o, "code", json_object_new_int(s->code)) == 0 &&
             wj_set(o, "at", wj_str(s->at)) == 0 && wj_set(o, "queue", wj_str(s->queue)) == 0 &&
             wj_set(o, "id", wj_str(s->id)) == 0 && wj_set(o, "source", wj_str(s->source)) == 0 &&
             wj_set(o, "expires_ms", json_object_new_int64(s->expires_ms)) == 0;
    return keep_if(o, ok);
}
