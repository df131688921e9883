/*
 * batch.c — mailroom_send_batch(): many emails, one pipelined round trip.
 *
 * Every email is prepared as mailroom_send() prepares one (send.h: build, validate,
 * sign), its signed job appended to one buffer of the batch, and its ENQUEUE appended
 * to the connection's output buffer (script_append); every BATCH_CHUNK emails that
 * buffer is written out, so Redis runs one chunk while the next is signed. The replies
 * are read at the end, in order. Emails Redis answers NOSCRIPT for (its script cache
 * was emptied) go again in one EVAL round. With Sentinel, a WAIT follows each round.
 *
 * The caller's ids[] and results[] get an answer for every email whatever happens:
 * ids[i] is "" until email i is prepared, and again "" when it never reached Redis
 * (no connection, or memory ran out before its command was buffered). The batch owns
 * its items and buffer; it borrows the caller's emails and arrays.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "send.h"

#define BATCH_CHUNK 16 /* emails signed between two writes of a batch */

/* One email of a batch: where its raw job sits in the batch buffer. */
typedef struct batch_item {
    size_t off, len;
    char due[24];
    int pending;  /* sent in the pipeline, reply not yet read */
    int answered; /* its reply was read in the current round */
} batch_item;

/* A batch on its way: the caller's arrays, the items and the raw jobs. */
typedef struct batch {
    mailroom *m;
    const mailroom_email *emails;
    size_t n;
    char (*ids)[MAILROOM_ID_MAX];
    int *results;
    batch_item *items; /* owned */
    buf raws;          /* owned: every prepared job, back to back */
    int64_t now;
    char now_iso[CLOCK_ISO_MAX], created[CLOCK_ISO_MAX];
    mr_error first;     /* the first email refused while preparing, with its reason */
    size_t first_index; /* its index; n while there is none */
} batch;

/* Gives emails [from, n) the code rc and no id: they never reached Redis. */
static void batch_fail_rest(batch *b, size_t from, int rc)
{
    for (size_t k = from; k < b->n; k++) {
        b->results[k] = rc;
        b->ids[k][0] = '\0';
        b->items[k].pending = 0;
    }
}

/* Gives every email of [0, upto) still waiting for Redis the code rc (keeping its id:
 * it may have been enqueued). */
static void batch_fail_pending(batch *b, size_t upto, int rc)
{
    for (size_t i = 0; i < upto; i++) {
        if (b->items[i].pending) {
            b->results[i] = rc;
            b->items[i].pending = 0;
        }
    }
}

/* Appends email i's ENQUEUE (EVALSHA, or EVAL with eval) to the connection's output
 * buffer. 0, or -1 (nothing appended: out of memory) with m->err set. */
static int batch_append(batch *b, size_t i, int eval)
{
    enqueue_args a;
    char job_key[KEYS_NAME_MAX];
    const batch_item *it = &b->items[i];
    send_enqueue_args(b->m, &b->m->keys, &a, job_key, b->ids[i], b->raws.data + it->off, it->len,
                      b->now_iso, it->due);
    return script_append(b->m->redis, SCRIPT_ENQUEUE, eval, a.v, a.len, &b->m->err);
}

/* Writes out everything buffered for the connection (blocking). 0, or -1 with the
 * connection dropped and m->err set. */
static int batch_flush(batch *b)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite(b->m->redis, &done) != REDIS_OK)
            return handle_connection_failed(b->m, "batch enqueue");
    return 0;
}

/*
 * Prepares email i into the batch: an invalid email gets its code (the first one's
 * reason is kept) and the batch goes on (0). A prepared one is stored, its id written
 * and, with a connection, its EVALSHA appended. -1 (m->err: out of memory) stops the
 * batch; email i then counts as never sent.
 */
static int batch_prepare_one(batch *b, size_t i)
{
    mailroom *m = b->m;
    prepared p;
    if (send_prepare(m, &b->emails[i], b->now, b->created, 1, &p) != 0) {
        b->results[i] = m->err.rc;
        if (b->first_index == b->n) {
            b->first = m->err;
            b->first_index = i;
        }
        return 0;
    }
    batch_item *it = &b->items[i];
    it->off = b->raws.len;
    it->len = p.raw_len;
    memcpy(it->due, p.due, sizeof p.due);
    memcpy(b->ids[i], p.id, strlen(p.id) + 1);
    int stored = buf_append(&b->raws, p.raw, p.raw_len);
    job_clear(&p.j);
    if (stored != 0)
        return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    if (m->redis && batch_append(b, i, 0) != 0)
        return -1;
    b->results[i] = MAILROOM_OK;
    it->pending = 1;
    return 0;
}

/*
 * Prepares every email, writing the buffered commands out every BATCH_CHUNK of them
 * while connected. 0, or -1 with m->err set: out of memory (the emails from the one
 * that could not be stored on never reached Redis) or the connection's failure (the
 * emails already written are failed with it, keeping their ids; the rest never went).
 */
static int batch_prepare(batch *b)
{
    size_t unflushed = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (batch_prepare_one(b, i) != 0) {
            batch_fail_rest(b, i, b->m->err.rc);
            return -1;
        }
        if (!b->items[i].pending || !b->m->redis || ++unflushed < BATCH_CHUNK)
            continue;
        unflushed = 0;
        if (batch_flush(b) != 0) {
            batch_fail_pending(b, i + 1, b->m->err.rc);
            batch_fail_rest(b, i + 1, b->m->err.rc);
            return -1;
        }
    }
    return 0;
}

/*
 * Reads the round's WAIT. When its reply is lost, or no replica acknowledged and the
 * sentinels do not confirm this master, the emails this round enqueued may be erased
 * by a failover: they get MAILROOM_EREDIS and keep their ids (their status record
 * tells whether they survived; sending them again with those ids is safe).
 */
static int batch_check_replicas(batch *b, int needed)
{
    mailroom *m = b->m;
    int r = 0;
    redisReply *w = NULL;
    if (redisGetReply(m->redis, (void **)&w) != REDIS_OK || !w) {
        r = handle_connection_failed(m, "batch enqueue");
    } else {
        long acked = w->type == REDIS_REPLY_INTEGER ? (long)w->integer : 0;
        if (!rconn_write_stands(&m->url, &m->guard, m->redis, acked, needed, m->connect_ms)) {
            handle_drop(m);
            r = mr_fail(&m->err, MAILROOM_EREDIS,
                        "batch enqueue: no replica acknowledged the writes and the sentinels "
                        "name another master (failover)");
        }
    }
    freeReplyObject(w);
    for (size_t i = 0; i < b->n; i++) {
        if (r != 0 && b->items[i].answered &&
            (b->results[i] == MAILROOM_OK || b->results[i] == MAILROOM_EDUPLICATE))
            b->results[i] = m->err.rc;
        b->items[i].answered = 0;
    }
    return r;
}

/* Appends the round's WAIT for `needed` replicas. 0, or -1: nothing is read, so the
 * buffered commands must not reach Redis alone; the connection is dropped. */
static int batch_append_wait(batch *b, int needed)
{
    char nrep[16], tmo[16];
    snprintf(nrep, sizeof nrep, "%d", needed);
    snprintf(tmo, sizeof tmo, "%d", HANDLE_WAIT_TIMEOUT_MS);
    const char *wait_argv[] = {"WAIT", nrep, tmo};
    if (redisAppendCommandArgv(b->m->redis, 3, wait_argv, NULL) == REDIS_OK)
        return 0;
    handle_drop(b->m);
    batch_fail_pending(b, b->n, MAILROOM_ENOMEM);
    return mr_fail(&b->m->err, MAILROOM_ENOMEM, "out of memory");
}

/* Takes email i's reply: NOSCRIPT keeps it pending for an EVAL round (*noscript), a
 * transient refusal (READONLY, LOADING, ...) fails it and is copied to *transient, any
 * other reply is its answer. */
static void batch_take_reply(batch *b, size_t i, const redisReply *r, int *noscript,
                             mr_error *transient)
{
    mailroom *m = b->m;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        *noscript = 1;
        return;
    }
    b->items[i].pending = 0;
    if (rconn_transient_error(r)) {
        mr_fail(transient, MAILROOM_EREDIS, "enqueue: Redis cannot serve now: %.200s", r->str);
        b->results[i] = MAILROOM_EREDIS;
        return;
    }
    b->results[i] = send_enqueue_reply(m, r, b->ids[i]) == 0 ? MAILROOM_OK : (int)m->err.rc;
    b->items[i].answered = 1;
}

/*
 * Reads the replies of every pending email's ENQUEUE, after appending the round's WAIT
 * when `needed` replicas must acknowledge (Sentinel). A transient refusal drops the
 * connection afterwards, so the next call finds the current master, as mailroom_send
 * does. 0, or -1 with m->err set.
 */
static int batch_read(batch *b, int needed, int *noscript)
{
    mailroom *m = b->m;
    mr_error transient = MR_ERROR_INIT;
    size_t pending = 0;
    *noscript = 0;
    for (size_t i = 0; i < b->n; i++)
        pending += b->items[i].pending ? 1 : 0;
    if (pending == 0)
        return 0;
    if (needed > 0 && batch_append_wait(b, needed) != 0)
        return -1;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->items[i].pending)
            continue;
        redisReply *r = NULL;
        if (redisGetReply(m->redis, (void **)&r) != REDIS_OK || !r) {
            handle_connection_failed(m, "batch enqueue");
            batch_fail_pending(b, b->n, m->err.rc);
            return -1;
        }
        batch_take_reply(b, i, r, noscript, &transient);
        freeReplyObject(r);
    }
    int rr = needed > 0 ? batch_check_replicas(b, needed) : 0;
    if (transient.rc != MAILROOM_OK) {
        handle_drop(m);
        if (rr == 0) {
            m->err = transient;
            rr = -1;
        }
    }
    return rr;
}

/* The round after NOSCRIPT: EVAL (which loads the script) for every email still
 * pending, in one pipeline. */
static int batch_eval_round(batch *b, int needed)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->items[i].pending && batch_append(b, i, 1) != 0) {
            /* commands already buffered must never reach Redis half-written: drop them
             * with the connection; nothing of this round was sent */
            handle_drop(b->m);
            batch_fail_pending(b, b->n, MAILROOM_ENOMEM);
            return mr_fail(&b->m->err, MAILROOM_ENOMEM, "out of memory");
        }
    }
    int noscript = 0;
    return batch_read(b, needed, &noscript);
}

/*
 * Prepares and sends the whole batch. Without a connection the emails are still
 * checked, so each gets its own verdict; those that were valid never reached Redis.
 * 0, or -1 with the batch's failure in m->err (emails may have failed either way).
 */
static int batch_run(batch *b)
{
    mailroom *m = b->m;
    int connected = handle_connect(m);
    mr_error unconnected = m->err;
    int r = batch_prepare(b);
    mr_error prepare_err = m->err;
    if (connected != 0) {
        m->err = unconnected;
        for (size_t i = 0; i < b->n; i++) {
            if (b->items[i].pending) { /* prepared, never sent: no id */
                b->results[i] = m->err.rc;
                b->ids[i][0] = '\0';
                b->items[i].pending = 0;
            }
        }
        return -1;
    }
    if (!m->redis)
        return r;
    int noscript = 0;
    int needed = rconn_replicas_needed(&m->url, &m->guard);
    int read = batch_read(b, needed, &noscript);
    if (read == 0 && noscript)
        read = batch_eval_round(b, needed);
    if (r != 0)
        m->err = prepare_err;
    return r != 0 ? r : read;
}

/*
 * The batch's outcome: the first failing email in input order names the error ("email
 * i of n: why"), with its own reason when it was refused while preparing, the batch's
 * failure when that is what befell it, else the code's description. When every email
 * went in, the batch's own failure (or success) stands.
 */
static int batch_outcome(batch *b, int r)
{
    mailroom *m = b->m;
    size_t i = 0;
    while (i < b->n && b->results[i] == MAILROOM_OK)
        i++;
    if (i == b->n)
        return handle_result(m, r);
    const char *why = mailroom_strerror(b->results[i]);
    if (i == b->first_index)
        why = b->first.msg;
    else if (r != 0 && b->results[i] == (int)m->err.rc)
        why = m->err.msg;
    char text[MR_ERROR_MAX];
    memcpy(text, why, strlen(why) + 1);
    mr_fail(&m->err, (mailroom_rc)b->results[i], "email %zu of %zu: %s", i, b->n, text);
    return b->results[i];
}

/* Sets the batch up; every email starts with no id. 0, or -1 with m->err set (then
 * every email has that code). */
static int batch_init(batch *b, mailroom *m, const mailroom_email *emails, size_t n,
                      char (*ids)[MAILROOM_ID_MAX], int *results)
{
    *b = (batch){.m = m,
                 .emails = emails,
                 .n = n,
                 .ids = ids,
                 .results = results,
                 .raws = BUF_INIT,
                 .first = MR_ERROR_INIT,
                 .first_index = n};
    for (size_t i = 0; i < n; i++)
        ids[i][0] = '\0';
    int r = handle_need_key(m);
    if (r == 0 && !(b->items = calloc(n ? n : 1, sizeof *b->items)))
        r = mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    for (size_t i = 0; r != 0 && i < n; i++)
        results[i] = m->err.rc;
    b->now = clock_now_ms();
    clock_format_iso(b->now, 1, b->now_iso);
    clock_format_iso(b->now, 0, b->created);
    return r;
}

/* mailroom_send_batch (mailroom.h): sets the batch up (every email answered even when
 * it cannot start), runs it, and names its outcome. */
int mailroom_send_batch(mailroom *m, const mailroom_email *emails, size_t n,
                        char (*ids)[MAILROOM_ID_MAX], int *results)
{
    if (!m)
        return MAILROOM_EINVAL;
    if ((!emails || !ids || !results) && n)
        return handle_result(
            m, mr_fail(&m->err, MAILROOM_EINVAL, "emails, ids and results are required"));
    batch b;
    if (batch_init(&b, m, emails, n, ids, results) != 0)
        return handle_result(m, -1);
    int rc = n == 0 ? handle_result(m, 0) : batch_outcome(&b, batch_run(&b));
    free(b.items);
    buf_free(&b.raws);
    return rc;
}
