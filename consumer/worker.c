/*
 * worker: one consumer thread's life (see worker.h).
 *
 * A job goes: BLMOVE pending -> processing; decode and verify (failure: rejected);
 * BEGIN script (dedupe a redelivered "sent" job, count the attempt, "sending");
 * build the MIME message into the worker's reused buffer; send over the worker's SMTP
 * session; FINISH script (status record, ack, scheduled or dead list, counter, event),
 * all in one round trip per step. When Redis is lost the worker reconnects with capped,
 * jittered backoff and retries the step it was in, so an outcome is never dropped while
 * the process lives; if it dies, the job is still in its processing list.
 */
#define _POSIX_C_SOURCE 200809L
#include "worker.h"

#include <json-c/json.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "mime.h"
#include "script.h"
#include "sig.h"

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000
#define PROMOTE_BATCH "500"
#define WAIT_TIMEOUT_MS 100    /* how long a write waits for a replica (Sentinel only) */
#define CONFIRM_TIMEOUT_MS 1000 /* per connection of a Sentinel confirmation */

/* What FINISH records. */
typedef struct outcome {
    const char *state; /* sent, retrying, failed, rejected */
    const char *id;    /* "" when the job had no readable id */
    int smtp_code;     /* 0: none */
    const char *reply;
    const char *error;
    int64_t due_ms;    /* retrying only */
} outcome;

static int stopping(const worker *w)
{
    return atomic_load(&w->cfg->stopping);
}

/* A worker holding a job keeps trying to record it until the shutdown turns into a
 * hurry; one holding nothing gives up as soon as the shutdown begins. */
static int giving_up(const worker *w, int holding_job)
{
    return holding_job ? atomic_load(&w->cfg->hurry) : atomic_load(&w->cfg->stopping);
}

static uint32_t next_random(worker *w)
{
    /* xorshift32: jitter needs spread, not secrecy */
    unsigned x = w->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    w->rng = x;
    return x;
}

int64_t worker_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, uint32_t random)
{
    int64_t delay = base_ms;
    for (int i = 1; i < attempt && delay < max_ms; i++)
        delay *= 2;
    if (delay > max_ms)
        delay = max_ms;
    /* factor in [0.8, 1.2]: 0.8 + 0.4 * random / 2^32 */
    double factor = 0.8 + 0.4 * ((double)random / 4294967296.0);
    return (int64_t)((double)delay * factor);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Connects, retrying with capped, jittered backoff until connected or giving up. */
static int connect_redis(worker *w, int holding_job)
{
    int64_t delay = RECONNECT_MIN_MS;
    int logged = 0;
    while (!w->redis) {
        char why[300];
        int timed_out;
        w->redis = rconn_connect(&w->cfg->redis, 2000,
                                 w->cfg->block_timeout_ms + w->cfg->redis_timeout_ms, why,
                                 sizeof why, &timed_out);
        if (w->redis) {
            w->epoch = atomic_load(&w->cfg->master_epoch);
            break;
        }
        if (!logged++)
            log_msg(LOG_WARN, NULL, "worker %d: %s; retrying", w->index, why);
        if (giving_up(w, holding_job))
            return -1;
        sleep_ms(delay / 2 + (int64_t)(next_random(w) % (uint32_t)(delay / 2 + 1)));
        delay = delay * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : delay * 2;
    }
    if (logged)
        log_msg(LOG_INFO, NULL, "worker %d: reconnected to Redis", w->index);
    return 0;
}

/* Drops the connection after a failure: an I/O error (what names the command) or a
 * transient error reply (what is its text). */
static void drop_redis(worker *w, const char *what)
{
    log_msg(LOG_WARN, NULL, "worker %d: Redis %.120s failed: %s", w->index, what,
            w->redis->err ? w->redis->errstr : "server busy; reconnecting");
    redisFree(w->redis);
    w->redis = NULL;
}

/*
 * Keeps the job a BLMOVE sent along with FINISH took (w->next, marked held at once) when
 * FINISH itself succeeded. Otherwise the FINISH is redone alone, and a job taken
 * meanwhile is left in the processing list, where the housekeeper finds it unheld and
 * returns it to pending (the path of any BLMOVE reply lost on the way).
 */
static void keep_next(worker *w, const redisReply *finished, redisReply *next)
{
    if (next && next->type == REDIS_REPLY_STRING && finished &&
        finished->type != REDIS_REPLY_ERROR) {
        w->next = next;
        atomic_store(&w->held, worker_job_hash(next->str, next->len));
        return;
    }
    if (next && next->type == REDIS_REPLY_STRING)
        log_msg(LOG_WARN, NULL, "worker %d: a job taken along with a failed FINISH is left "
                                "for the orphan check to return to pending", w->index);
    else if (next && next->type == REDIS_REPLY_ERROR)
        log_msg(LOG_ERROR, NULL, "worker %d: BLMOVE refused: %.300s", w->index, next->str);
    freeReplyObject(next);
}

/* Whether FINISH may carry the next BLMOVE: not when stopping (take no more jobs), and
 * not with Sentinel, where every write is followed by WAIT. */
static int may_take_next(const worker *w)
{
    return !stopping(w) && w->cfg->redis.n_sentinels == 0 && !w->next;
}

/* Drops the connection and waits a moment before the caller retries. Returns -1 when
 * a hurried shutdown means giving up instead. */
static int retry_later(worker *w)
{
    if (w->redis) {
        redisFree(w->redis);
        w->redis = NULL;
    }
    if (giving_up(w, 1))
        return -1;
    sleep_ms(RECONNECT_MIN_MS);
    return 0;
}

/*
 * Runs a script for the job in hand, reconnecting and retrying while the connection
 * fails. With take_next (FINISH), the next BLMOVE goes out in the same write when
 * may_take_next() allows, saving a round trip per job; the job it takes lands in
 * w->next. With Sentinel a write must stand (rconn_write_stands), else it is done
 * again on the new master. Returns the reply (caller frees), or NULL when a hurried
 * shutdown made us give up or Redis answered with an error (logged).
 */
static redisReply *run_script(worker *w, script_id id, int nkeys, int argc, const char **argv,
                              const size_t *argvlen, const char *job_id, int take_next)
{
    const consumer_config *cfg = w->cfg;
    for (;;) {
        if (!w->redis && connect_redis(w, 1) != 0)
            return NULL;
        long acked = 0;
        int replicas = rconn_replicas_needed(&cfg->redis, &w->guard);
        redisReply *r, *next = NULL;
        if (take_next && may_take_next(w)) /* never with Sentinel: replicas is 0 */
            r = script_run_then(w->redis, id, nkeys, argc, argv, argvlen, TAKE_ARGC,
                                w->cfg->take_argv, NULL, &next);
        else
            r = script_run_acked(w->redis, id, nkeys, argc, argv, argvlen, replicas,
                                 WAIT_TIMEOUT_MS, &acked);
        take_next = 0;
        keep_next(w, r, next);
        if (r && next == NULL && w->redis->err)
            log_msg(LOG_WARN, job_id, "worker %d: the reply after the script was lost: %s",
                    w->index, w->redis->errstr); /* the next command reconnects */
        if (!r || rconn_transient_error(r)) {
            drop_redis(w, r ? r->str : "script");
            freeReplyObject(r);
            if (retry_later(w) != 0)
                return NULL;
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            log_msg(LOG_ERROR, job_id, "Redis script error: %.300s", r->str);
            freeReplyObject(r);
            return NULL;
        }
        if (!rconn_write_stands(&cfg->redis, &w->guard, w->redis, acked, replicas,
                                CONFIRM_TIMEOUT_MS)) {
            /* written to a master that a failover is replacing: do it again there */
            freeReplyObject(r);
            log_msg(LOG_WARN, job_id, "no replica acknowledged the write and the sentinels "
                                      "name another master; reconnecting");
            if (retry_later(w) != 0)
                return NULL;
            continue;
        }
        return r;
    }
}

/* The dead-list entry {"reason","at","consumer","job","id","state"}, built with json-c
 * into w->dead_entry. */
static int build_dead_entry(worker *w, const outcome *o, const char *raw, size_t raw_len,
                            const char *now_iso)
{
    int rc = -1;
    json_object *e = json_object_new_object();
    if (!e)
        return -1;
    if (json_object_object_add(e, "reason", json_object_new_string(o->error)) ||
        json_object_object_add(e, "at", json_object_new_string(now_iso)) ||
        json_object_object_add(e, "consumer", json_object_new_string(w->cfg->id)) ||
        json_object_object_add(e, "job", json_object_new_string_len(raw, (int)raw_len)) ||
        json_object_object_add(e, "id", o->id[0] ? json_object_new_string(o->id) : NULL) ||
        json_object_object_add(e, "state", json_object_new_string(o->state)))
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

static void count_outcome(consumer_config *cfg, const char *state)
{
    if (strcmp(state, "sent") == 0)
        atomic_fetch_add(&cfg->n_sent, 1);
    else if (strcmp(state, "retrying") == 0)
        atomic_fetch_add(&cfg->n_retried, 1);
    else if (strcmp(state, "failed") == 0)
        atomic_fetch_add(&cfg->n_failed, 1);
    else if (strcmp(state, "rejected") == 0)
        atomic_fetch_add(&cfg->n_rejected, 1);
}

/* Records an outcome with FINISH. */
static void finish(worker *w, const char *raw, size_t raw_len, const outcome *o)
{
    const consumer_config *cfg = w->cfg;
    char now_iso[CLOCK_ISO_MAX], job_key[KEYS_NAME_MAX], code[16] = "", extra[32],
        rate_key[KEYS_NAME_MAX];
    int64_t now = clock_now_ms();
    clock_format_iso(now, 1, now_iso);
    keys_rate(&cfg->keys, now / 60000, rate_key);
    keys_job(&cfg->keys, o->id, job_key);
    if (o->smtp_code)
        snprintf(code, sizeof code, "%d", o->smtp_code);
    const char *target = cfg->keys.dead, *tail = extra;
    size_t tail_len;
    if (strcmp(o->state, "retrying") == 0 || strcmp(o->state, "queued") == 0) {
        target = cfg->keys.scheduled;
        snprintf(extra, sizeof extra, "%lld", (long long)o->due_ms);
        tail_len = strlen(extra);
    } else if (strcmp(o->state, "sent") == 0) {
        extra[0] = '\0';
        tail_len = 0;
    } else {
        if (build_dead_entry(w, o, raw, raw_len, now_iso) != 0) {
            log_msg(LOG_ERROR, o->id, "out of memory building the dead-list entry");
            return;
        }
        tail = w->dead_entry.data;
        tail_len = w->dead_entry.len;
    }
    enum { RAW = 5, TAIL = 16 }; /* positions of the binary arguments */
    const char *argv[] = {job_key,  cfg->processing, cfg->keys.stats, target,
                          rate_key, raw,             o->state,        code,
                          o->reply, o->error,        now_iso,         cfg->id,
                          cfg->keys.queue, cfg->keys.status, cfg->ttl_arg, o->id,
                          tail,     cfg->dead_max_arg};
    size_t argvlen[sizeof argv / sizeof argv[0]];
    for (size_t i = 0; i < sizeof argv / sizeof argv[0]; i++)
        argvlen[i] = strlen(argv[i]);
    argvlen[RAW] = raw_len;
    argvlen[TAIL] = tail_len;
    redisReply *r = run_script(w, SCRIPT_FINISH, 5, (int)(sizeof argv / sizeof argv[0]), argv,
                               argvlen, o->id, 1);
    if (!r) {
        log_msg(LOG_ERROR, o->id,
                "outcome %s not recorded; the job stays in %s for recovery", o->state,
                cfg->processing);
        return;
    }
    freeReplyObject(r);
    count_outcome(w->cfg, o->state);
    log_msg(o->error[0] ? LOG_WARN : LOG_INFO, o->id, "%s%s%s%s%s", o->state,
            o->reply[0] ? " " : "", o->reply, o->error[0] ? ": " : "", o->error);
}

static void reject(worker *w, const char *raw, size_t raw_len, const char *id,
                   const char *reason)
{
    outcome o = {"rejected", id, 0, "", reason, 0};
    finish(w, raw, raw_len, &o);
}

/*
 * BEGIN: returns the attempt number (>= 1), 0 when the job was already sent (it has
 * been acknowledged and a "duplicate" event published), or -1 when Redis could not be
 * reached before stopping.
 */
static long begin(worker *w, const char *raw, size_t raw_len)
{
    const consumer_config *cfg = w->cfg;
    char now_iso[CLOCK_ISO_MAX], job_key[KEYS_NAME_MAX];
    clock_format_iso(clock_now_ms(), 1, now_iso);
    keys_job(&cfg->keys, w->job.id, job_key);
    const char *argv[] = {job_key, cfg->processing, raw,  now_iso,   cfg->id,
                          cfg->keys.queue, cfg->keys.status, cfg->ttl_arg, w->job.id};
    size_t argvlen[sizeof argv / sizeof argv[0]];
    for (size_t i = 0; i < sizeof argv / sizeof argv[0]; i++)
        argvlen[i] = strlen(argv[i]);
    argvlen[2] = raw_len;
    redisReply *r = run_script(w, SCRIPT_BEGIN, 2, (int)(sizeof argv / sizeof argv[0]), argv,
                               argvlen, w->job.id, 0);
    if (!r)
        return -1;
    long attempt = -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_INTEGER)
        attempt = strcmp(r->element[0]->str, "duplicate") == 0 ? 0 : r->element[1]->integer;
    freeReplyObject(r);
    return attempt;
}

/* Fills the envelope recipients (bare addresses) from to, cc and bcc. */
static size_t envelope(worker *w)
{
    size_t n = 0;
    const char *const *lists[3] = {w->job.to, w->job.cc, w->job.bcc};
    size_t counts[3] = {w->job.n_to, w->job.n_cc, w->job.n_bcc};
    for (int l = 0; l < 3; l++) {
        for (size_t i = 0; i < counts[l] && n < JOB_MAX_RCPT; i++) {
            addr_mailbox mb;
            const char *why;
            if (addr_parse(lists[l][i], strlen(lists[l][i]), &mb, &why) != 0)
                continue; /* cannot happen: validated by job_decode */
            memcpy(w->rcpt[n], mb.spec, strlen(mb.spec) + 1);
            w->rcpt_ptrs[n] = w->rcpt[n];
            n++;
        }
    }
    return n;
}

/* Decides what a temporary failure becomes: retrying with a due time, or failed when
 * attempts, lifetime or expires_at are spent. */
static void temporary_failure(worker *w, long attempt, outcome *o, char *error, size_t cap)
{
    const consumer_config *cfg = w->cfg;
    int64_t now = clock_now_ms();
    char last[256];
    snprintf(last, sizeof last, "%s", error);
    if (attempt >= cfg->max_attempts) {
        o->state = "failed";
        snprintf(error, cap, "attempts exhausted (%ld): %s", attempt, last);
    } else if (now - w->job.created_ms >= cfg->max_lifetime_ms) {
        o->state = "failed";
        snprintf(error, cap, "lifetime exceeded: %s", last);
    } else {
        o->state = "retrying";
        o->due_ms = now + worker_backoff_ms((int)attempt, cfg->backoff_base_ms,
                                            cfg->backoff_max_ms, next_random(w));
    }
}

/* Sends a verified job whose attempt has begun, and records the outcome. */
static void deliver(worker *w, const char *raw, size_t raw_len, long attempt)
{
    const char *why = NULL;
    char error[512] = "";
    smtp_result res;
    outcome o = {"failed", w->job.id, 0, "", error, 0};
    if (mime_build(&w->job, &w->message, &why) != 0) {
        snprintf(error, sizeof error, "cannot build the message: %s", why ? why : "");
        finish(w, raw, raw_len, &o);
        return;
    }
    size_t n_rcpt = envelope(w);
    smtp_send(&w->smtp, w->job.from, w->rcpt_ptrs, n_rcpt, w->message.data, w->message.len,
              &res);
    o.smtp_code = res.code;
    o.reply = res.reply;
    snprintf(error, sizeof error, "%s", res.error);
    if (res.outcome == SMTP_ABORTED) {
        log_msg(LOG_WARN, w->job.id, "send abandoned by shutdown; the job goes back to pending");
        return;
    }
    if (res.outcome == SMTP_SENT)
        o.state = "sent";
    else if (res.outcome == SMTP_TEMPORARY)
        temporary_failure(w, attempt, &o, error, sizeof error);
    finish(w, raw, raw_len, &o);
}

/* Handles one raw job taken from pending. */
static void handle(worker *w, const char *raw, size_t raw_len)
{
    char err[JOB_ERR_MAX + 32], reason[JOB_ERR_MAX + 64], id[JOB_ID_MAX + 1];
    if (job_decode(raw, raw_len, &w->job, err) != 0) {
        job_peek_id(raw, raw_len, id);
        snprintf(reason, sizeof reason, "invalid job: %s", err);
        reject(w, raw, raw_len, id, reason);
        goto out;
    }
    if (sig_verify_job_with(&w->job, &w->cfg->ring, w->cfg->accept_mask, &w->scratch, &w->mac,
                            err, sizeof err) != 0) {
        reject(w, raw, raw_len, w->job.id, err);
        goto out;
    }
    int64_t now = clock_now_ms();
    if (w->job.expires_ms && now >= w->job.expires_ms) {
        outcome o = {"failed", w->job.id, 0, "", "expired", 0};
        finish(w, raw, raw_len, &o);
        goto out;
    }
    if (w->job.send_at_ms > now + 1000) {
        /* pushed onto pending before its time by a producer that did not schedule it */
        outcome o = {"queued", w->job.id, 0, "", "", w->job.send_at_ms};
        finish(w, raw, raw_len, &o);
        goto out;
    }
    long attempt = begin(w, raw, raw_len);
    if (attempt == 0)
        log_msg(LOG_INFO, w->job.id, "duplicate: already sent, acknowledged");
    else if (attempt > 0)
        deliver(w, raw, raw_len, attempt);
out:
    job_clear(&w->job);
}

uint64_t worker_job_hash(const char *raw, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)raw[i];
        h *= 0x100000001b3ULL;
    }
    return h ? h : 1;
}

void worker_config_finish(consumer_config *cfg)
{
    snprintf(cfg->ttl_arg, sizeof cfg->ttl_arg, "%ld", cfg->status_ttl_s);
    snprintf(cfg->dead_max_arg, sizeof cfg->dead_max_arg, "%ld", cfg->dead_max);
    snprintf(cfg->take_timeout, sizeof cfg->take_timeout, "%.3f",
             cfg->block_timeout_ms / 1000.0);
    const char *take[TAKE_ARGC] = {"BLMOVE", cfg->keys.pending, cfg->processing, "RIGHT",
                                   "LEFT", cfg->take_timeout};
    memcpy(cfg->take_argv, take, sizeof take);
}

int worker_init(worker *w, int index, consumer_config *cfg)
{
    memset(w, 0, sizeof *w);
    w->index = index;
    w->cfg = cfg;
    if (RAND_bytes((unsigned char *)&w->rng, sizeof w->rng) != 1 || w->rng == 0)
        w->rng = 0x9E3779B9u ^ (unsigned)index;
    if (smtp_session_init(&w->smtp, &cfg->smtp) != 0)
        return -1;
    return 0;
}

/*
 * Takes a job: the one a FINISH brought along (w->next) or a fresh BLMOVE. Returns the
 * reply holding a job (caller frees), or NULL when none came (timeout, error, lost
 * connection: handled and logged here).
 */
static redisReply *take(worker *w)
{
    redisReply *r = w->next;
    w->next = NULL;
    if (r)
        return r;
    const consumer_config *cfg = w->cfg;
    if (w->redis && w->epoch != atomic_load(&cfg->master_epoch)) {
        redisFree(w->redis); /* Sentinel named a new master: go there */
        w->redis = NULL;
    }
    if (!w->redis && connect_redis(w, 0) != 0)
        return NULL;
    r = redisCommandArgv(w->redis, TAKE_ARGC, w->cfg->take_argv, NULL);
    if (!r || rconn_transient_error(r)) {
        drop_redis(w, r ? r->str : "BLMOVE");
        if (r)
            sleep_ms(RECONNECT_MIN_MS);
        freeReplyObject(r);
        return NULL;
    }
    if (r->type == REDIS_REPLY_STRING) {
        atomic_store(&w->held, worker_job_hash(r->str, r->len));
        return r;
    }
    if (r->type == REDIS_REPLY_ERROR)
        log_msg(LOG_ERROR, NULL, "worker %d: BLMOVE refused: %.300s", w->index, r->str);
    freeReplyObject(r);
    return NULL;
}

void *worker_main(void *arg)
{
    worker *w = arg;
    /* a job already taken along with the last FINISH is handled even when stopping */
    while (!stopping(w) || w->next) {
        redisReply *r = take(w);
        if (!r)
            continue;
        handle(w, r->str, r->len);
        if (!w->next)
            atomic_store(&w->held, 0);
        freeReplyObject(r);
    }
    atomic_fetch_sub(&w->cfg->running, 1);
    return NULL;
}

void worker_free(worker *w)
{
    if (!w)
        return;
    if (w->redis)
        redisFree(w->redis);
    w->redis = NULL;
    freeReplyObject(w->next);
    w->next = NULL;
    smtp_session_free(&w->smtp);
    job_clear(&w->job);
    buf_free(&w->message);
    buf_free(&w->scratch);
    buf_free(&w->dead_entry);
    sig_mac_free(&w->mac);
}

/* Heartbeats after an outage: how long the housekeeper's own connection must have
 * been up before it may judge other consumers silent. Live consumers heartbeat every
 * second and reconnect within this. */
#define RECOVERY_GRACE_MS 3000

/* 1 when a reply means the housekeeper's connection failed (none, or a transient
 * error such as LOADING): the reply is freed and the connection dropped, so the next
 * duty reconnects. */
static int housekeeping_failed(housekeeper *h, redisReply *r)
{
    if (r && !rconn_transient_error(r))
        return 0;
    freeReplyObject(r);
    redisFree(h->redis);
    h->redis = NULL;
    return 1;
}

/* Runs a housekeeping script on the housekeeper's connection (argvlen NULL: C
 * strings); its integer reply, or -1 on failure. */
static long housekeeping_run(housekeeper *h, script_id id, int nkeys, int argc,
                             const char **argv, const size_t *argvlen)
{
    if (!h->redis) {
        char why[300];
        int timed_out;
        h->redis = rconn_connect(&h->cfg->redis, 2000, 5000, why, sizeof why, &timed_out);
        if (!h->redis)
            return -1;
        h->up_since_ms = clock_now_ms();
    }
    redisReply *r = script_run(h->redis, id, nkeys, argc, argv, argvlen);
    if (housekeeping_failed(h, r))
        return -1;
    long n = r->type == REDIS_REPLY_INTEGER ? (long)r->integer : -1;
    if (r->type == REDIS_REPLY_ERROR)
        log_msg(LOG_ERROR, NULL, "housekeeping script error: %.300s", r->str);
    freeReplyObject(r);
    return n;
}

int housekeeping_follow_master(housekeeper *h)
{
    consumer_config *cfg = h->cfg;
    rconn_endpoint master;
    if (cfg->redis.n_sentinels == 0 || !h->redis ||
        rconn_sentinel_master(&cfg->redis, 1000, &master) != 0 ||
        rconn_connected_to(h->redis, &master))
        return 0;
    log_msg(LOG_WARN, NULL, "Sentinel names a new Redis master %s:%d; moving there",
            master.host, master.port);
    atomic_fetch_add(&cfg->master_epoch, 1);
    redisFree(h->redis);
    h->redis = NULL;
    return 1;
}

long housekeeping_promote(housekeeper *h)
{
    const consumer_config *cfg = h->cfg;
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)clock_now_ms());
    const char *argv[] = {cfg->keys.scheduled, cfg->keys.pending, now, PROMOTE_BATCH};
    return housekeeping_run(h, SCRIPT_PROMOTE, 2, 4, argv, NULL);
}

long housekeeping_heartbeat(housekeeper *h)
{
    const consumer_config *cfg = h->cfg;
    char dead_after[24], now_iso[CLOCK_ISO_MAX], processing_prefix[KEYS_NAME_MAX];
    snprintf(dead_after, sizeof dead_after, "%lld", (long long)cfg->dead_after_ms);
    clock_format_iso(clock_now_ms(), 1, now_iso);
    keys_processing(&cfg->keys, "", processing_prefix);
    int recover = h->redis && clock_now_ms() - h->up_since_ms >= RECOVERY_GRACE_MS;
    const char *argv[] = {cfg->keys.consumers, cfg->keys.pending, cfg->keys.stats,
                          cfg->id, dead_after, recover ? "1" : "0", cfg->keys.queue,
                          cfg->keys.status, processing_prefix, cfg->keys.job_prefix,
                          now_iso, cfg->ttl_arg};
    long n = housekeeping_run(h, SCRIPT_HEARTBEAT, 3, 12, argv, NULL);
    if (n > 0)
        log_msg(LOG_WARN, NULL, "recovered %ld jobs from consumers silent for over %lld ms", n,
                (long long)cfg->dead_after_ms);
    return n;
}

long housekeeping_reclaim(housekeeper *h)
{
    const consumer_config *cfg = h->cfg;
    const char *argv[] = {cfg->processing, cfg->keys.pending, cfg->keys.consumers, cfg->id};
    return housekeeping_run(h, SCRIPT_RECLAIM, 3, 4, argv, NULL);
}

void housekeeping_close(housekeeper *h)
{
    if (!h)
        return;
    if (h->redis)
        redisFree(h->redis);
    h->redis = NULL;
}

/* Takes one held hash out of the multiset of what the workers hold; 1 when found. */
static int take_held(uint64_t *held, int n, uint64_t hash)
{
    for (int i = 0; i < n; i++) {
        if (held[i] == hash) {
            held[i] = 0;
            return 1;
        }
    }
    return 0;
}

static int64_t suspect_since(const housekeeper *h, uint64_t hash, int64_t now)
{
    for (int i = 0; i < h->n_suspects; i++)
        if (h->suspects[i].hash == hash)
            return h->suspects[i].first_seen_ms;
    return now;
}

/* Returns one orphan to pending (REQUEUE): 1, 0 when it was gone already, -1 when
 * Redis failed. */
static long requeue_orphan(housekeeper *h, const redisReply *entry)
{
    const consumer_config *cfg = h->cfg;
    char now_iso[CLOCK_ISO_MAX];
    clock_format_iso(clock_now_ms(), 1, now_iso);
    const char *argv[] = {cfg->processing, cfg->keys.pending, cfg->keys.stats, entry->str,
                          cfg->id, cfg->keys.queue, cfg->keys.status, cfg->keys.job_prefix,
                          now_iso, cfg->ttl_arg};
    size_t argvlen[10];
    for (int i = 0; i < 10; i++)
        argvlen[i] = strlen(argv[i]);
    argvlen[3] = entry->len;
    long n = housekeeping_run(h, SCRIPT_REQUEUE, 3, 10, argv, argvlen);
    if (n > 0)
        log_msg(LOG_WARN, NULL, "returned an orphaned job of %s to pending", cfg->processing);
    return n;
}

long housekeeping_orphans(housekeeper *h)
{
    const consumer_config *cfg = h->cfg;
    if (!h->redis)
        return -1;
    const char *argv[] = {"LRANGE", cfg->processing, "0", "-1"};
    redisReply *r = redisCommandArgv(h->redis, 4, argv, NULL);
    if (housekeeping_failed(h, r))
        return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -1;
    }
    uint64_t held[WORKER_MAX];
    int n_held = h->n_workers < WORKER_MAX ? h->n_workers : WORKER_MAX;
    for (int i = 0; i < n_held; i++)
        held[i] = atomic_load(&h->workers[i].held);
    int64_t now = clock_now_ms();
    int64_t patience = cfg->block_timeout_ms + cfg->redis_timeout_ms + 2000;
    orphan_suspect next[HOUSEKEEPING_MAX_SUSPECTS];
    int n_next = 0;
    long requeued = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        uint64_t hash = worker_job_hash(e->str, e->len);
        if (take_held(held, n_held, hash))
            continue;
        int64_t since = suspect_since(h, hash, now);
        if (now - since > patience) {
            long n = requeue_orphan(h, e);
            if (n < 0)
                break; /* Redis failed: the connection is dropped; next tick again */
            requeued += n;
        } else if (n_next < HOUSEKEEPING_MAX_SUSPECTS)
            next[n_next++] = (orphan_suspect){hash, since};
    }
    memcpy(h->suspects, next, sizeof next[0] * (size_t)n_next);
    h->n_suspects = n_next;
    freeReplyObject(r);
    return requeued;
}
