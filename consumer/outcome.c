/* outcome: see outcome.h. */
#include "outcome.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "state.h"
#include "worker_redis.h"

/* The dead-list entry {"reason","at","consumer","job","id","state"}, built with json-c
 * into w->dead_entry. */
static int build_dead_entry(worker *w, const task *t, const outcome *o, const char *now_iso)
{
    int rc = -1;
    json_object *e = json_object_new_object();
    if (!e)
        return -1;
    if (json_object_object_add(e, "reason", json_object_new_string(o->error)) ||
        json_object_object_add(e, "at", json_object_new_string(now_iso)) ||
        json_object_object_add(e, "consumer", json_object_new_string(w->cfg->id)) ||
        json_object_object_add(e, "job", json_object_new_string_len(t->raw, (int)t->len)) ||
        json_object_object_add(e, "id", o->id[0] ? json_object_new_string(o->id) : NULL) ||
        json_object_object_add(e, "state", json_object_new_string(mailroom_state_name(o->state))))
        goto out;
    buf_reset(&w->dead_entry);
    size_t len = 0;
    const char *s = json_object_to_json_string_length(
        e, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (!s || buf_append(&w->dead_entry, s, len) != 0)
        goto out;
    rc = 0;
out:
    json_object_put(e);
    return rc;
}

static void count_outcome(consumer_config *cfg, mailroom_state state)
{
    switch (state) {
    case MAILROOM_STATE_SENT: atomic_fetch_add(&cfg->n_sent, 1); break;
    case MAILROOM_STATE_RETRYING: atomic_fetch_add(&cfg->n_retried, 1); break;
    case MAILROOM_STATE_FAILED: atomic_fetch_add(&cfg->n_failed, 1); break;
    case MAILROOM_STATE_REJECTED: atomic_fetch_add(&cfg->n_rejected, 1); break;
    default: break;
    }
}

/* The put-backs (throttled, unreachable) counted apart. */
static void count_put_back(consumer_config *cfg, const char *uncounted)
{
    if (uncounted && strcmp(uncounted, "throttled") == 0)
        atomic_fetch_add(&cfg->n_throttled, 1);
    else if (uncounted)
        atomic_fetch_add(&cfg->n_unreachable, 1);
}

/* FINISH's target and tail: scheduled and the due ms (retrying, queued), nothing
 * (sent), or the dead list and its entry (failed, rejected). 0, or -1 out of memory. */
static int finish_tail(worker *w, const task *t, const outcome *o, const char *now_iso,
                       char due[32], finish_args *a)
{
    const lane *l = &w->cfg->lanes[t->lane];
    a->v[FINISH_KEY_target] = l->keys.dead;
    if (o->state == MAILROOM_STATE_RETRYING || o->state == MAILROOM_STATE_QUEUED) {
        a->v[FINISH_KEY_target] = l->keys.scheduled;
        snprintf(due, 32, "%lld", (long long)o->due_ms);
        a->v[FINISH_ARG_tail] = due;
    } else if (o->state == MAILROOM_STATE_SENT) {
        a->v[FINISH_ARG_tail] = "";
    } else {
        if (build_dead_entry(w, t, o, now_iso) != 0)
            return -1;
        a->v[FINISH_ARG_tail] = w->dead_entry.data;
        a->len[FINISH_ARG_tail] = w->dead_entry.len;
    }
    return 0;
}

/* The arguments of FINISH for o; keys and times formatted into the caller's buffers. */
static int finish_args_for(worker *w, const task *t, const outcome *o, finish_args *a,
                           char *job_key, char *rate_key, char *now_iso, char *code, char *due)
{
    const consumer_config *cfg = w->cfg;
    const lane *l = &cfg->lanes[t->lane];
    clock_format_iso(o->at_ms, 1, now_iso);
    keys_minute(&l->keys, o->at_ms / 60000, rate_key);
    keys_job(&l->keys, o->id, job_key);
    if (o->smtp_code)
        snprintf(code, 16, "%d", o->smtp_code);
    if (finish_tail(w, t, o, now_iso, due, a) != 0)
        return -1;
    a->v[FINISH_KEY_job] = job_key;
    a->v[FINISH_KEY_processing] = l->processing;
    a->v[FINISH_KEY_stats] = l->keys.stats;
    a->v[FINISH_KEY_minute] = rate_key;
    a->v[FINISH_ARG_raw] = t->raw;
    a->len[FINISH_ARG_raw] = t->len;
    a->v[FINISH_ARG_state] = mailroom_state_name(o->state);
    a->v[FINISH_ARG_code] = code;
    a->v[FINISH_ARG_reply] = o->reply;
    a->v[FINISH_ARG_why] = o->error;
    a->v[FINISH_ARG_now] = now_iso;
    a->v[FINISH_ARG_consumer] = cfg->id;
    a->v[FINISH_ARG_queue] = l->keys.queue;
    a->v[FINISH_ARG_channel] = l->keys.status;
    a->v[FINISH_ARG_ttl] = cfg->ttl_arg;
    a->v[FINISH_ARG_id] = o->id;
    a->v[FINISH_ARG_dead_max] = cfg->dead_max_arg;
    a->v[FINISH_ARG_token] = t->token;
    a->v[FINISH_ARG_relay_id] = o->relay_id ? o->relay_id : "";
    a->v[FINISH_ARG_recipients] = o->recipients ? o->recipients : "";
    a->v[FINISH_ARG_owed] = o->owed ? o->owed : "";
    a->v[FINISH_ARG_relay] = t->token[0] ? cfg->relays[t->relay].name : "";
    a->v[FINISH_ARG_uncounted] = o->uncounted ? o->uncounted : "";
    return 0;
}

/* The outcome's log line, stamped with its time and, in JSON, carrying its fields.
 * kind is what FINISH answered: "recorded", "lost", ... */
static void log_finished(const task *t, const outcome *o, const char *kind)
{
    log_outcome lo = {o->at_ms,     o->id,      mailroom_state_name(o->state),
                      o->smtp_code, t->attempt, t->begun_ms ? o->at_ms - t->begun_ms : -1};
    const char *note = strcmp(kind, "lost") == 0 ? " (not recorded: this consumer had lost "
                                                   "the job, which another one holds now)"
                       : strcmp(kind, "lost_sent") == 0
                           ? " (recorded although this consumer had lost the job: another "
                             "copy may be sent too)"
                       : strcmp(kind, "already_sent") == 0 ? " (not recorded: already sent)"
                       : strcmp(kind, "cancelled") == 0    ? " (not recorded: cancelled)"
                                                           : "";
    log_outcome_line(o->error[0] || note[0] ? LOG_WARN : LOG_INFO, &lo, "%s%s%s%s%s%s",
                     mailroom_state_name(o->state), o->reply[0] ? " " : "", o->reply,
                     o->error[0] ? ": " : "", o->error, note);
}

void outcome_finish_carrying(worker *w, task *t, const outcome *o, int carry)
{
    char now_iso[CLOCK_ISO_MAX], job_key[KEYS_NAME_MAX], rate_key[KEYS_NAME_MAX];
    char code[16] = "", due[32];
    finish_args a = {0};
    if (finish_args_for(w, t, o, &a, job_key, rate_key, now_iso, code, due) != 0) {
        log_msg(LOG_ERROR, o->id,
                "out of memory building the dead-list entry; the job stays in %s for recovery",
                w->cfg->lanes[t->lane].processing);
        return;
    }
    redisReply *r = wr_run(w, SCRIPT_FINISH, a.v, a.len, o->id, carry);
    if (!r) {
        log_msg(LOG_ERROR, o->id, "outcome %s not recorded; the job stays in %s for recovery",
                mailroom_state_name(o->state), w->cfg->lanes[t->lane].processing);
        return;
    }
    const char *kind = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                               r->element[0]->type == REDIS_REPLY_STRING
                           ? r->element[0]->str
                           : "recorded";
    if (strcmp(kind, "recorded") == 0 || strcmp(kind, "lost_sent") == 0) {
        count_outcome(w->cfg, o->state);
        count_put_back(w->cfg, o->uncounted);
        metrics_outcome(t->lane, o->state);
    }
    log_finished(t, o, kind);
    freeReplyObject(r);
}

void outcome_finish(worker *w, task *t, const outcome *o)
{
    outcome_finish_carrying(w, t, o, TAKE_BLOCK);
}
