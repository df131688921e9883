/*
 * stats.c — `mailroom stats [--json]` and `mailroom consumers [--json]
 * [--dead-after DURATION]`: the figures mailroom_stats_read(), mailroom_relays_read()
 * and mailroom_consumers_read() return (mailroom_admin.h), printed as readable lines or
 * as JSON built with json-c. Every string from Redis (consumer ids, hosts, relay
 * errors) is masked when printed as text.
 */
#include <string.h>

#include <json-c/json.h>

#include "cli.h"

/* ------------------------------------------------------------------ stats */

/* {consumer: jobs held} for every processing list. NULL when memory ran out. */
static json_object *processing_json(const mailroom_stats *s)
{
    json_object *o = json_object_new_object();
    int ok = o != NULL;
    for (size_t i = 0; ok && i < s->n_processing; i++)
        ok = out_json_set(o, s->processing[i].consumer,
                          json_object_new_int64(s->processing[i].jobs)) == 0;
    if (!ok) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

/* [{id, heartbeat_age_ms, processing}] for the heartbeat set. NULL when memory ran
 * out. */
static json_object *consumers_array(const mailroom_stats *s)
{
    json_object *a = json_object_new_array();
    int ok = a != NULL;
    for (size_t i = 0; ok && i < s->n_consumers; i++) {
        const mailroom_consumer *c = &s->consumers[i];
        json_object *o = json_object_new_object();
        if (!o || json_object_array_add(a, o) != 0) {
            json_object_put(o);
            ok = 0;
            break;
        }
        ok = out_json_set(o, "id", json_object_new_string(c->id)) == 0 &&
             out_json_set(o, "heartbeat_age_ms", json_object_new_int64(c->heartbeat_age_ms)) == 0 &&
             out_json_set(o, "processing", json_object_new_int64(c->processing)) == 0;
    }
    if (!ok) {
        json_object_put(a);
        a = NULL;
    }
    return a;
}

/* {name: value} for every counter. NULL when memory ran out. */
static json_object *counters_json(const mailroom_stats *s)
{
    json_object *o = json_object_new_object();
    int ok = o != NULL;
    for (size_t i = 0; ok && i < s->n_counters; i++)
        ok = out_json_set(o, s->counters[i].name, json_object_new_int64(s->counters[i].value)) == 0;
    if (!ok) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

/* A time in ms as RFC 3339, or null for 0. 0, or -1 (memory). */
static int set_time(json_object *o, const char *key, long long ms)
{
    char t[32];
    out_time_ms(ms, t);
    return out_json_set_str(o, key, t);
}

/* One decimal rate with one digit after the point. NULL when memory ran out. */
static json_object *rate_json(double v)
{
    char text[32];
    snprintf(text, sizeof text, "%.1f", v);
    return json_object_new_double_s(v, text);
}

/* One relay as JSON (the members of `mailroom stats --help`). NULL when memory ran out. */
static json_object *relay_json(const mailroom_relay *r)
{
    json_object *o = json_object_new_object();
    if (!o || out_json_set(o, "name", json_object_new_string(r->name)) != 0 ||
        out_json_set(o, "circuit", json_object_new_string(r->circuit)) != 0 ||
        out_json_set(o, "failures", json_object_new_int64(r->failures)) != 0 ||
        out_json_set(o, "last_error", json_object_new_string(r->last_error)) != 0 ||
        set_time(o, "opened_at", r->opened_at_ms) != 0 ||
        set_time(o, "probe_at", r->probe_at_ms) != 0 ||
        out_json_set_str(o, "prober", r->prober) != 0 ||
        out_json_set(o, "rate", rate_json(r->rate)) != 0 ||
        out_json_set(o, "rate_max", rate_json(r->rate_max)) != 0 ||
        out_json_set(o, "throttles", json_object_new_int64(r->throttles)) != 0 ||
        set_time(o, "throttled_at", r->throttled_at_ms) != 0 ||
        out_json_set(o, "sessions", json_object_new_int64(r->sessions)) != 0 ||
        set_time(o, "last_used_at", r->last_used_ms) != 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* [relay...]. NULL when memory ran out. */
static json_object *relays_json(const mailroom_relays *r)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; a && i < r->n; i++) {
        json_object *o = relay_json(&r->items[i]);
        if (!o || json_object_array_add(a, o) != 0) {
            json_object_put(o);
            json_object_put(a);
            return NULL;
        }
    }
    return a;
}

/* The whole stats object, keys as `mailroom stats --help` lists them. NULL when memory
 * ran out. Every member goes through out_json_set, which owns it from then on. */
static json_object *stats_json(const mailroom_stats *s, const mailroom_relays *r)
{
    char rate[32];
    json_object *o = json_object_new_object();
    snprintf(rate, sizeof rate, "%.1f", s->sent_per_min);
    if (!o || out_json_set(o, "pending", json_object_new_int64(s->pending)) != 0 ||
        out_json_set(o, "scheduled", json_object_new_int64(s->scheduled)) != 0 ||
        out_json_set(o, "scheduled_due", json_object_new_int64(s->scheduled_due)) != 0 ||
        out_json_set(o, "dead", json_object_new_int64(s->dead)) != 0 ||
        out_json_set(o, "processing", processing_json(s)) != 0 ||
        out_json_set(o, "consumers", consumers_array(s)) != 0 ||
        out_json_set(o, "counters", counters_json(s)) != 0 ||
        out_json_set(o, "sent_per_min", json_object_new_double_s(s->sent_per_min, rate)) != 0 ||
        out_json_set(o, "failed_per_min", rate_json(s->failed_per_min)) != 0 ||
        out_json_set(o, "paused", json_object_new_boolean(s->paused)) != 0 ||
        out_json_set_str(o, "paused_at", s->paused_at) != 0 ||
        out_json_set(o, "oldest_pending_age_ms", json_object_new_int64(s->oldest_pending_age_ms)) !=
            0 ||
        out_json_set(o, "relays", relays_json(r)) != 0) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

/* The relays as readable lines: name, circuit, rate, sessions, throttles, failures
 * and the last error. */
static void print_relays_text(const mailroom_relays *r)
{
    printf("relays        %zu\n", r->n);
    for (size_t i = 0; i < r->n; i++) {
        const mailroom_relay *x = &r->items[i];
        printf("  ");
        out_clean(x->name, stdout);
        fputs("  circuit ", stdout);
        out_clean(x->circuit, stdout);
        if (x->rate_max > 0)
            printf(", rate %.1f/%.1f per s", x->rate, x->rate_max);
        printf(", sessions %lld, throttles %lld, failures %lld", x->sessions, x->throttles,
               x->failures);
        if (x->last_error[0]) {
            fputs(", last error: ", stdout);
            out_clean(x->last_error, stdout);
        }
        fputc('\n', stdout);
    }
}

/* The readable form of stats: one "name  value" line per figure. The first counters
 * are always sent, retried, failed, rejected, recovered and cancelled: those are
 * shown. */
static void print_stats_text(const mailroom_stats *s, const mailroom_relays *r, const char *queue)
{
    long long held = 0;
    for (size_t i = 0; i < s->n_processing; i++)
        held += s->processing[i].jobs;
    printf("queue         %s\n", queue);
    printf("paused        ");
    if (s->paused) {
        fputs("yes, since ", stdout);
        out_clean(s->paused_at, stdout);
        fputc('\n', stdout);
    } else {
        fputs("no\n", stdout);
    }
    printf("pending       %lld\n", s->pending);
    printf("oldest        %.1f s\n", (double)s->oldest_pending_age_ms / 1000.0);
    printf("scheduled     %lld (%lld due)\n", s->scheduled, s->scheduled_due);
    printf("processing    %lld\n", held);
    for (size_t i = 0; i < s->n_processing; i++) {
        printf("  ");
        out_clean(s->processing[i].consumer, stdout);
        printf("  %lld\n", s->processing[i].jobs);
    }
    printf("dead          %lld\n", s->dead);
    printf("consumers     %zu\n", s->n_consumers);
    for (size_t i = 0; i < s->n_consumers; i++) {
        printf("  ");
        out_clean(s->consumers[i].id, stdout);
        printf("  heartbeat %.1f s ago, processing %lld",
               (double)s->consumers[i].heartbeat_age_ms / 1000.0, s->consumers[i].processing);
        if (s->consumers[i].has_info)
            printf(", sessions %lld", s->consumers[i].sessions);
        fputc('\n', stdout);
    }
    print_relays_text(r);
    printf("counters     ");
    for (size_t k = 0; k < s->n_counters && k < 6; k++)
        printf(" %s %lld", s->counters[k].name, s->counters[k].value);
    printf("\nsent/min      %.1f\n", s->sent_per_min);
    printf("failed/min    %.1f\n", s->failed_per_min);
}

/* `stats [--json]`: one snapshot of the queue, printed readably or as one JSON object. */
int cmd_stats(const struct cli *c, struct failure *f)
{
    mailroom *m = NULL;
    mailroom_stats *s = NULL;
    mailroom_relays *r = NULL;
    json_object *j = NULL;
    int rc = open_handle(c, 0, 0, 1, &m, f);
    if (rc != EXIT_OK)
        goto out;
    int lrc = mailroom_stats_read(m, &s);
    if (lrc == MAILROOM_OK)
        lrc = mailroom_relays_read(m, &r);
    if (lrc != MAILROOM_OK) {
        rc = fail_admin(f, m, lrc);
        goto out;
    }
    if (c->count[O_JSON] == 0)
        print_stats_text(s, r, mailroom_queue_name(m));
    else if (!(j = stats_json(s, r)))
        rc = fail(f, EXIT_SOFTWARE, "stats: out of memory");
    else
        rc = out_json_line(j, f);
    if (rc == EXIT_OK)
        rc = out_flush("stats", f);
out:
    json_object_put(j);
    mailroom_relays_free(r);
    mailroom_stats_free(s);
    mailroom_close(m);
    return rc;
}

/* ------------------------------------------------------------------ consumers */

/* Adds what a consumer's info hash says: host, pid, version, started_at, queues,
 * relays, concurrency, sessions (each null without an info hash). 0, or -1. */
static int add_info(json_object *j, const mailroom_consumer *c)
{
    int info = c->has_info;
    return out_json_set_str(j, "host", c->host) != 0 ||
                   (info ? out_json_set(j, "pid", json_object_new_int64(c->pid))
                         : json_object_object_add(j, "pid", NULL)) != 0 ||
                   out_json_set_str(j, "version", c->version) != 0 ||
                   out_json_set_str(j, "started_at", c->started_at) != 0 ||
                   out_json_set_str(j, "queues", c->queues) != 0 ||
                   out_json_set_str(j, "relays", c->relays) != 0 ||
                   (info ? out_json_set(j, "concurrency", json_object_new_int64(c->concurrency))
                         : json_object_object_add(j, "concurrency", NULL)) != 0 ||
                   (info ? out_json_set(j, "sessions", json_object_new_int64(c->sessions))
                         : json_object_object_add(j, "sessions", NULL)) != 0
               ? -1
               : 0;
}

/* One consumer as JSON: {id, heartbeat_age_ms (null when unregistered), alive, state,
 * processing}, then its info. NULL when memory ran out. */
static json_object *consumer_json(const mailroom_consumer *c)
{
    json_object *j = json_object_new_object();
    int registered = c->state != MAILROOM_CONSUMER_UNREGISTERED;
    if (!j || out_json_set(j, "id", json_object_new_string(c->id)) != 0 ||
        (registered
             ? out_json_set(j, "heartbeat_age_ms", json_object_new_int64(c->heartbeat_age_ms))
             : json_object_object_add(j, "heartbeat_age_ms", NULL)) != 0 ||
        out_json_set(j, "alive", json_object_new_boolean(c->state == MAILROOM_CONSUMER_ALIVE)) !=
            0 ||
        out_json_set(j, "state", json_object_new_string(mailroom_consumer_state_name(c->state))) !=
            0 ||
        out_json_set(j, "processing", json_object_new_int64(c->processing)) != 0 ||
        add_info(j, c) != 0) {
        json_object_put(j);
        return NULL;
    }
    return j;
}

/* The info part of a consumer line: sessions of concurrency, host and pid, queues. */
static void print_info_text(const mailroom_consumer *c)
{
    if (!c->has_info)
        return;
    printf(", sessions %lld/%lld, host ", c->sessions, c->concurrency);
    out_clean(c->host, stdout);
    printf(" pid %lld, queues ", c->pid);
    out_clean(c->queues, stdout);
    fputs(", relays ", stdout);
    out_clean(c->relays, stdout);
    fputs(", version ", stdout);
    out_clean(c->version, stdout);
}

/* One consumer line: registered ones have an age; unregistered ones have none. */
static int print_consumer(const mailroom_consumer *c, int json, struct failure *f)
{
    const char *state = mailroom_consumer_state_name(c->state);
    if (!json) {
        out_clean(c->id, stdout);
        if (c->state != MAILROOM_CONSUMER_UNREGISTERED)
            printf("  %-8s heartbeat %.1f s ago, processing %lld", state,
                   (double)c->heartbeat_age_ms / 1000.0, c->processing);
        else
            printf("  %-8s no heartbeat, processing %lld", state, c->processing);
        print_info_text(c);
        fputc('\n', stdout);
        return EXIT_OK;
    }
    json_object *j = consumer_json(c);
    int rc = j ? out_json_line(j, f) : fail(f, EXIT_SOFTWARE, "consumers: out of memory");
    json_object_put(j);
    return rc;
}

/* `consumers [--json] [--dead-after D]`: registered consumers first, then those that
 * hold jobs without a heartbeat; one line (or JSON object) each. */
int cmd_consumers(const struct cli *c, struct failure *f)
{
    mailroom *m = NULL;
    mailroom_consumers *list = NULL;
    long long dead_after = MAILROOM_DEAD_AFTER_DEFAULT_MS;
    int rc = EXIT_OK;
    if (c->value[O_DEAD_AFTER] &&
        (rc = option_duration("dead-after", c->value[O_DEAD_AFTER], 0, &dead_after, f)) != EXIT_OK)
        goto out;
    if ((rc = open_handle(c, 0, 0, 1, &m, f)) != EXIT_OK)
        goto out;
    int lrc = mailroom_consumers_read(m, dead_after, &list);
    if (lrc != MAILROOM_OK) {
        rc = fail_admin(f, m, lrc);
        goto out;
    }
    for (size_t i = 0; rc == EXIT_OK && i < list->n; i++)
        rc = print_consumer(&list->items[i], c->count[O_JSON] > 0, f);
    if (rc == EXIT_OK)
        rc = out_flush("consumers", f);
out:
    mailroom_consumers_free(list);
    mailroom_close(m);
    return rc;
}
