/*
 * recipients: outcome_of_txn (outcome.h), what an SMTP transaction says, recipient by
 * recipient, made into one outcome. Kept apart from outcome.c, which records any
 * outcome, because this is the one place that decides per recipient: who got the
 * mail, who was refused for good, who is still owed a retry, and what the job's state
 * is then. The answers travel as JSON built with json-c: an object from each recipient
 * (its address as the job gives it) to {"state","code","reply"} (merged into the record
 * by finish.lua), and the array of addresses still owed.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "outcome.h"
#include "relay.h"
#include "suppression.h"
#include "worker_redis.h"

/* One recipient's fate in this attempt. */
typedef enum rcpt_fate { FATE_SENT, FATE_REFUSED, FATE_OWED, FATE_FAILED } rcpt_fate;

static const char *const fate_state[] = {"sent", "rejected", "retrying", "failed"};

/* What became of recipient i: its RCPT answer, then the transaction's verdict. */
static rcpt_fate fate_of(const smtp_txn *x, size_t i)
{
    int code = x->rcpt_replies[i].code;
    if (code >= 500)
        return FATE_REFUSED;
    if (code >= 200 && code < 300 && x->verdict == SMTP_SENT)
        return FATE_SENT;
    if (x->verdict == SMTP_PERMANENT)
        return FATE_FAILED; /* accepted, then the content was refused; or refused before
                               any RCPT (size, SMTPUTF8 not offered) */
    return FATE_OWED;       /* a 4xx, no answer, or the transaction failed for now */
}

/* The tally of one transaction, and its answers as JSON. */
typedef struct tally {
    size_t sent, refused, owed, failed;
    json_object *answers;   /* owned: address -> {"state","code","reply"} */
    json_object *owed_list; /* owned: the addresses owed */
} tally;

/* {"state":..., "code":..., "reply":...} of one recipient; code null when none. */
static json_object *answer(const char *state, int code, const char *reply)
{
    json_object *a = json_object_new_object();
    if (a && (json_object_object_add(a, "state", json_object_new_string(state)) ||
              json_object_object_add(a, "code", code ? json_object_new_int(code) : NULL) ||
              json_object_object_add(a, "reply", json_object_new_string(reply)))) {
        json_object_put(a);
        a = NULL;
    }
    return a;
}

/* The answers of the recipients skipped as suppressed: {"state":"suppressed",...}. */
static int add_suppressed(const task *t, json_object *answers)
{
    const char *p = t->suppressed.data;
    for (size_t i = 0; i < t->n_suppressed; i++) {
        const char *shown = p + strlen(p) + 1, *why = shown + strlen(shown) + 1;
        json_object *a = answer("suppressed", 0, why);
        if (!a || json_object_object_add(answers, shown, a))
            return -1;
        p = why + strlen(why) + 1;
    }
    return 0;
}

/* Sorts every recipient of t's transaction into the tally. 0, or -1 out of memory. */
static int count(const task *t, tally *y)
{
    const smtp_txn *x = &t->txn;
    y->answers = json_object_new_object();
    y->owed_list = json_object_new_array();
    if (!y->answers || !y->owed_list || add_suppressed(t, y->answers) != 0)
        return -1;
    for (size_t i = 0; i < x->n_rcpt; i++) {
        rcpt_fate f = fate_of(x, i);
        const smtp_rcpt_reply *r = &x->rcpt_replies[i];
        int code = r->code ? r->code : f == FATE_SENT ? x->code : 0;
        const char *text = r->code ? r->text : x->reply;
        if (f == FATE_FAILED || (f == FATE_OWED && r->code < 300))
            code = x->code, text = x->reply[0] ? x->reply : x->error;
        json_object *a = answer(fate_state[f], code, text);
        if (!a || json_object_object_add(y->answers, t->shown_ptrs[i], a))
            return -1;
        if (f == FATE_OWED &&
            json_object_array_add(y->owed_list, json_object_new_string(t->shown_ptrs[i])))
            return -1;
        *(f == FATE_SENT      ? &y->sent
          : f == FATE_REFUSED ? &y->refused
          : f == FATE_OWED    ? &y->owed
                              : &y->failed) += 1;
    }
    return 0;
}

/* The owed recipients given up (attempts or lifetime spent): failed, with why. */
static void give_up_owed(tally *y, const char *why)
{
    json_object_object_foreach(y->answers, address, a)
    {
        (void)address;
        json_object *state = NULL;
        if (json_object_object_get_ex(a, "state", &state) &&
            strcmp(json_object_get_string(state), "retrying") == 0) {
            json_object_object_add(a, "state", json_object_new_string("failed"));
            json_object_object_add(a, "reply", json_object_new_string(why));
        }
    }
    y->failed += y->owed;
    y->owed = 0;
}

/*
 * The job's state from the tally: sent when nothing is owed and someone got it (now
 * or before); retrying while recipients are owed and attempts and lifetime remain;
 * else sent when someone got it, failed when nobody did. error says why, o->due_ms
 * when to retry.
 */
static void decide(worker *w, task *t, tally *y, outcome *o, char *error, size_t cap)
{
    const consumer_config *cfg = w->cfg;
    const job *j = &t->job;
    int delivered = y->sent > 0 || t->delivered_before > 0;
    int64_t due = j->send_at_ms > j->created_ms ? j->send_at_ms : j->created_ms;
    if (y->owed > 0) {
        int64_t delay = worker_backoff_ms((int)t->attempt, cfg->backoff_base_ms,
                                          cfg->backoff_max_ms, wr_random(w));
        const char *why = t->txn.error[0] ? t->txn.error : t->txn.reply;
        if (cfg->max_attempts > 0 && t->attempt >= cfg->max_attempts)
            mr_text_printf(error, cap, "attempts exhausted (%ld): %s", t->attempt, why);
        else if (o->at_ms + delay - due > cfg->max_lifetime_ms)
            mr_text_printf(error, cap,
                           "lifetime exceeded (the next retry would come after "
                           "--max-lifetime): %s",
                           why);
        else {
            o->state = MAILROOM_STATE_RETRYING;
            o->due_ms = o->at_ms + delay;
            mr_text_printf(error, cap, "%s", why);
            return;
        }
        give_up_owed(y, error);
    } else if (y->refused || y->failed) {
        mr_text_printf(error, cap, "%zu of %zu recipients refused or failed: %s",
                       y->refused + y->failed, t->txn.n_rcpt,
                       t->txn.error[0] ? t->txn.error : t->txn.reply);
    }
    o->state = delivered ? MAILROOM_STATE_SENT : MAILROOM_STATE_FAILED;
}

/* Appends the JSON text of v and a NUL to w's results buffer; returns the offset of
 * the text there, or -1 out of memory. */
static long append_json(worker *w, json_object *v)
{
    size_t len = 0, at = w->results.len;
    const char *s = json_object_to_json_string_length(
        v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (!s || buf_append(&w->results, s, len + 1) != 0)
        return -1;
    return (long)at;
}

/*
 * An attempt the relay throttled, or that never reached it (no connection, TLS or
 * greeting failure), is put back without counting: state queued, due in a second or
 * two (jittered), the recipients still owed unchanged, the relay's name in the record.
 * It costs the job time, not an attempt.
 */
static void put_back(worker *w, task *t, relay_verdict v, int carry)
{
    const smtp_txn *x = &t->txn;
    const char *relay_name = w->cfg->relays[t->relay].name;
    char error[MR_ERROR_MAX];
    mr_text_printf(error, sizeof error, "%s %s: %s; put back, the attempt not counted",
                   v == RELAY_THROTTLED ? "throttled by relay" : "could not reach relay",
                   relay_name, x->reply[0] ? x->reply : x->error);
    int64_t now = clock_now_ms();
    outcome o = {MAILROOM_STATE_QUEUED,
                 t->job.id,
                 x->code,
                 x->reply,
                 error,
                 now + 1000 + (int64_t)(wr_random(w) % 1000),
                 now,
                 NULL,
                 NULL,
                 t->owed.len ? t->owed.data : NULL,
                 v == RELAY_THROTTLED ? "throttled" : "unreachable"};
    outcome_finish_carrying(w, t, &o, carry);
}

void outcome_all_suppressed(worker *w, task *t, int carry)
{
    char error[MR_ERROR_MAX];
    const char *shown = t->suppressed.data + strlen(t->suppressed.data) + 1;
    const char *why = shown + strlen(shown) + 1;
    mr_text_printf(error, sizeof error, "every recipient is on the suppression list (%s)", why);
    outcome o = {MAILROOM_STATE_FAILED, t->job.id, 0,    "",   error, 0,
                 clock_now_ms(),        NULL,      NULL, NULL, NULL};
    buf_reset(&w->results);
    json_object *answers = json_object_new_object();
    long at = answers && add_suppressed(t, answers) == 0 ? append_json(w, answers) : -1;
    if (at >= 0)
        o.recipients = w->results.data + at;
    outcome_finish_carrying(w, t, &o, carry);
    json_object_put(answers);
}

void outcome_of_txn(worker *w, task *t, int carry)
{
    const smtp_txn *x = &t->txn;
    if (x->verdict == SMTP_ABORTED) {
        log_msg(LOG_WARN, t->job.id, "send abandoned by shutdown; the job goes back to pending");
        return;
    }
    metrics_smtp_reply(t->relay, x->code);
    metrics_send_duration(t->relay, clock_now_ms() - t->begun_ms);
    relay_verdict v = relay_verdict_of(x);
    if (x->verdict == SMTP_TEMPORARY && (v == RELAY_THROTTLED || v == RELAY_UNREACHABLE)) {
        if (v == RELAY_THROTTLED)
            metrics_throttled(t->relay);
        put_back(w, t, v, carry);
        return;
    }
    suppression_add_refused(w, t);
    tally y = {0};
    char error[MR_ERROR_MAX] = "";
    outcome o = {MAILROOM_STATE_FAILED,
                 t->job.id,
                 x->code,
                 x->reply,
                 error,
                 0,
                 clock_now_ms(),
                 x->relay_id[0] ? x->relay_id : NULL,
                 NULL,
                 NULL,
                 NULL};
    buf_reset(&w->results);
    if (count(t, &y) != 0) {
        log_msg(LOG_ERROR, t->job.id,
                "out of memory recording the outcome; the job stays "
                "held for recovery");
        goto out;
    }
    decide(w, t, &y, &o, error, sizeof error);
    long answers = append_json(w, y.answers);
    long owed = o.state == MAILROOM_STATE_RETRYING ? append_json(w, y.owed_list) : 0;
    if (answers < 0 || owed < 0) {
        log_msg(LOG_ERROR, t->job.id,
                "out of memory recording the outcome; the job stays "
                "held for recovery");
        goto out;
    }
    o.recipients = w->results.data + answers;
    o.owed = o.state == MAILROOM_STATE_RETRYING ? w->results.data + owed : NULL;
    outcome_finish_carrying(w, t, &o, carry);
out:
    json_object_put(y.answers);
    json_object_put(y.owed_list);
}
