/* relay: see relay.h. */
#include "relay.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "worker_redis.h"

relay_verdict relay_verdict_of(const smtp_txn *x)
{
    if (x->verdict == SMTP_SENT)
        return RELAY_FINE;
    if (x->flags & SMTP_FLAG_THROTTLED)
        return RELAY_THROTTLED;
    if (x->flags & (SMTP_FLAG_CONNECT | SMTP_FLAG_TLS | SMTP_FLAG_GREETING))
        return RELAY_UNREACHABLE;
    return x->code ? RELAY_FINE : RELAY_NEUTRAL;
}

static const char *const circuit_names[] = {"closed", "half-open", "open"};

/* The mirror of a relay's circuit from relay_circuit.lua's answer; 1 when the script
 * said it changed the circuit. */
static int mirror_circuit(relay *rl, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    for (int c = 0; c < 3; c++)
        if (strcmp(r->element[0]->str, circuit_names[c]) == 0)
            atomic_store(&rl->circuit, c);
    atomic_store(&rl->failures, (int)r->element[1]->integer);
    atomic_store(&rl->probe_at_ms, (int64_t)r->element[2]->integer);
    return r->element[3]->integer == 1;
}

/* Runs relay_circuit.lua: op failure, success or probe. NULL when Redis failed. */
static redisReply *circuit_call(worker *w, int r, const char *op, const char *error)
{
    const consumer_config *cfg = w->cfg;
    char threshold[16], probe_max[24], hold[24];
    snprintf(threshold, sizeof threshold, "%d", cfg->circuit_failures);
    snprintf(probe_max, sizeof probe_max, "%lld", (long long)cfg->probe_max_ms);
    snprintf(hold, sizeof hold, "%ld", cfg->relays[r].smtp.connect_timeout_ms + 5000);
    relay_circuit_args a = {0};
    a.v[RELAY_CIRCUIT_KEY_relay] = cfg->relays[r].key;
    a.v[RELAY_CIRCUIT_ARG_op] = op;
    a.v[RELAY_CIRCUIT_ARG_who] = w->who;
    a.v[RELAY_CIRCUIT_ARG_threshold] = threshold;
    a.v[RELAY_CIRCUIT_ARG_probe_max] = probe_max;
    a.v[RELAY_CIRCUIT_ARG_hold_ms] = hold;
    a.v[RELAY_CIRCUIT_ARG_error] = error;
    return wr_try(w, SCRIPT_RELAY_CIRCUIT, a.v, a.len);
}

/* A failure to reach relay r: counted; the log says when it opened the circuit. */
static void note_failure(worker *w, int r, const char *why)
{
    relay *rl = &w->cfg->relays[r];
    redisReply *reply = circuit_call(w, r, "failure", why);
    if (reply && mirror_circuit(rl, reply))
        log_msg(LOG_WARN, NULL,
                "relay %s: circuit open after %d consecutive failures (last: %s); its jobs "
                "wait in pending, no attempt counted; next probe in %lld ms",
                rl->name, atomic_load(&rl->failures), why,
                (long long)(atomic_load(&rl->probe_at_ms) - clock_now_ms()));
    freeReplyObject(reply);
}

/* A session was had with relay r: the circuit closes (when it was not closed, or
 * failures had been counted). */
static void note_success(worker *w, int r)
{
    relay *rl = &w->cfg->relays[r];
    if (atomic_load(&rl->circuit) == CIRCUIT_CLOSED && atomic_load(&rl->failures) == 0)
        return;
    redisReply *reply = circuit_call(w, r, "success", "");
    if (reply && mirror_circuit(rl, reply))
        log_msg(LOG_INFO, NULL, "relay %s: circuit closed, a session succeeded; sending resumes",
                rl->name);
    freeReplyObject(reply);
}

/* Runs relay_rate.lua (op take, refund or throttle); its integer answer, or -1. */
static long long rate_call(worker *w, int r, const char *op)
{
    relay *rl = &w->cfg->relays[r];
    char seen[32];
    snprintf(seen, sizeof seen, "%.3f", (double)atomic_load(&rl->seen_milli) / 1000.0);
    relay_rate_args a = {0};
    a.v[RELAY_RATE_KEY_relay] = rl->key;
    a.v[RELAY_RATE_ARG_op] = op;
    a.v[RELAY_RATE_ARG_rate_max] = w->cfg->rate_max_arg;
    a.v[RELAY_RATE_ARG_floor] = w->cfg->rate_floor_arg;
    a.v[RELAY_RATE_ARG_seen] = seen;
    redisReply *reply = wr_try(w, SCRIPT_RELAY_RATE, a.v, a.len);
    long long n = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    freeReplyObject(reply);
    return n;
}

static void note_throttle(worker *w, int r, const char *why)
{
    relay *rl = &w->cfg->relays[r];
    int64_t before = atomic_load(&rl->rate_milli);
    long long now = rate_call(w, r, "throttle");
    if (now <= 0)
        return;
    atomic_store(&rl->rate_milli, (int64_t)now);
    if (now != before)
        log_limited(LOG_WARN, rl->key, 5000,
                    "relay %s throttles (%s): shared rate now %.3g messages/s", rl->name, why,
                    (double)now / 1000.0);
}

void relay_observe(worker *w, int r, relay_verdict v, const char *why)
{
    if (v == RELAY_FINE)
        note_success(w, r);
    else if (v == RELAY_UNREACHABLE)
        note_failure(w, r, why);
    else if (v == RELAY_THROTTLED)
        note_throttle(w, r, why);
}

/* Probes relay r when its turn has come and no one else probes it: 1 when the probe
 * opened a session (the circuit is closed then). */
static int try_probe(worker *w, int r)
{
    relay *rl = &w->cfg->relays[r];
    if (clock_now_ms() < atomic_load(&rl->probe_at_ms) || !relay_slot_acquire(w, r))
        return 0;
    redisReply *reply = circuit_call(w, r, "probe", "");
    int mine = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 4 &&
               reply->element[0]->type == REDIS_REPLY_STRING &&
               strcmp(reply->element[0]->str, "probe") == 0;
    if (reply && !mine)
        mirror_circuit(rl, reply);
    freeReplyObject(reply);
    if (!mine)
        return 0;
    unsigned flags = 0;
    char why[SMTP_ERROR_MAX];
    if (smtp_session_open(w->sessions[r], &flags, why, sizeof why) != 0) {
        log_msg(LOG_INFO, NULL, "relay %s: probe failed: %s", rl->name, why);
        note_failure(w, r, why);
        return 0;
    }
    note_success(w, r);
    return atomic_load(&rl->circuit) == CIRCUIT_CLOSED;
}

int relay_choose(worker *w)
{
    consumer_config *cfg = w->cfg;
    for (int r = 0; r < cfg->n_relays; r++) {
        if (atomic_load(&cfg->relays[r].circuit) == CIRCUIT_CLOSED || try_probe(w, r))
            return r;
    }
    return -1;
}

int relay_slot_acquire(worker *w, int r)
{
    const consumer_config *cfg = w->cfg;
    if (cfg->relay_connections <= 0 || atomic_load(&w->slot[r]))
        return 1;
    char max[24], hold[24];
    snprintf(max, sizeof max, "%ld", cfg->relay_connections);
    snprintf(hold, sizeof hold, "%lld", (long long)cfg->dead_after_ms);
    relay_slot_args a = {0};
    a.v[RELAY_SLOT_KEY_sessions] = cfg->relays[r].sessions_key;
    a.v[RELAY_SLOT_ARG_op] = "acquire";
    a.v[RELAY_SLOT_ARG_who] = w->who;
    a.v[RELAY_SLOT_ARG_max] = max;
    a.v[RELAY_SLOT_ARG_hold_ms] = hold;
    redisReply *reply = wr_try(w, SCRIPT_RELAY_SLOT, a.v, a.len);
    int held = reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    freeReplyObject(reply);
    atomic_store(&w->slot[r], held);
    return held;
}

void relay_slot_release(worker *w, int r)
{
    const consumer_config *cfg = w->cfg;
    smtp_session_close(w->sessions[r]);
    if (!atomic_load(&w->slot[r]))
        return;
    atomic_store(&w->slot[r], 0);
    relay_slot_args a = {0};
    a.v[RELAY_SLOT_KEY_sessions] = cfg->relays[r].sessions_key;
    a.v[RELAY_SLOT_ARG_op] = "release";
    a.v[RELAY_SLOT_ARG_who] = w->who;
    a.v[RELAY_SLOT_ARG_max] = "0";
    a.v[RELAY_SLOT_ARG_hold_ms] = "0";
    freeReplyObject(wr_try(w, SCRIPT_RELAY_SLOT, a.v, a.len));
}

int relay_permit(worker *w, int r, int64_t *wait_ms)
{
    if (w->cfg->rate_max <= 0 && atomic_load(&w->cfg->relays[r].rate_milli) == 0)
        return 1;
    long long n = rate_call(w, r, "take");
    if (n <= 0)
        return 1; /* granted, or Redis could not say: go on */
    *wait_ms = n;
    return 0;
}

void relay_refund(worker *w, int r)
{
    if (w->cfg->rate_max > 0 || atomic_load(&w->cfg->relays[r].rate_milli) != 0)
        rate_call(w, r, "refund");
}
