/*
 * libmailroom: the producer library (include/mailroom.h).
 *
 * mailroom_send() builds the job as a json-c tree, runs the same validator the
 * consumer runs (job_from_tree), signs the canonical form, serialises the tree once and
 * enqueues it with one EVALSHA of the ENQUEUE script, which also writes the status
 * record. The handle owns its Redis connection, a copy of the key (wiped on close) and
 * a reusable buffer for the canonical form.
 */
#define _POSIX_C_SOURCE 200809L
#include "mailroom.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "job.h"
#include "keyring.h"
#include "keys.h"
#include "rconn.h"
#include "script.h"
#include "sig.h"
#include "ulid.h"

#define DEFAULT_TIMEOUT_MS 1000
#define WAIT_TIMEOUT_MS 100 /* how long a write waits for a replica (Sentinel only) */
#define BATCH_CHUNK 16      /* emails signed between two writes of a batch */

struct mailroom {
    redisContext *redis; /* NULL while disconnected; reconnected on the next call */
    rconn_url url;
    keys_queue keys;
    keyring ring; /* the first key signs */
    sig_alg alg;
    int connect_ms, command_ms;
    long status_ttl_s;
    buf canon; /* canonical form, reused by every send */
    sig_mac mac; /* keyed with the signing key at the first send */
    ulid_source ids; /* randomness for generated ids, drawn in blocks */
    rconn_write_guard guard; /* Sentinel: the write check's state */
    char ttl_arg[24];        /* status_ttl_s, as ENQUEUE takes it */
    char err[512];
};

static const char *const rc_messages[] = {
    [MAILROOM_OK] = "success",
    [MAILROOM_EINVAL] = "invalid argument or email",
    [MAILROOM_ENOMEM] = "out of memory",
    [MAILROOM_EREDIS] = "Redis unreachable or returned an error",
    [MAILROOM_ETIMEOUT] = "Redis did not answer in time",
    [MAILROOM_ENOTFOUND] = "no such job",
    [MAILROOM_EDUPLICATE] = "a job with this id is already recorded",
    [MAILROOM_ETOOBIG] = "job too large",
    [MAILROOM_EKEY] = "no usable signing key",
    [MAILROOM_EPROTO] = "unexpected reply from Redis",
    [MAILROOM_EPENDING] = "the job was not final before the timeout",
};

const char *mailroom_strerror(int rc)
{
    if (rc < 0 || (size_t)rc >= sizeof rc_messages / sizeof rc_messages[0] || !rc_messages[rc])
        return "unknown error";
    return rc_messages[rc];
}

static int set_err(mailroom *m, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_err(mailroom *m, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->err, sizeof m->err, fmt, ap);
    va_end(ap);
    return rc;
}

const char *mailroom_errmsg(const mailroom *m)
{
    return m ? m->err : "out of memory";
}

void mailroom_options_init(mailroom_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->alg = "hmac-sha1";
    opts->connect_timeout_ms = DEFAULT_TIMEOUT_MS;
    opts->command_timeout_ms = DEFAULT_TIMEOUT_MS;
    opts->status_ttl_s = KEYS_STATUS_TTL_DEFAULT_S;
}

static const char *pick(const char *given, const char *env, const char *fallback)
{
    if (given)
        return given;
    const char *v = getenv(env);
    return v && *v ? v : fallback;
}

/* A new connection (caller frees with redisFree), or NULL with *rc and the handle's
 * message set. */
static redisContext *connect_new(mailroom *m, int *rc)
{
    char why[300];
    int timed_out;
    redisContext *c = rconn_connect(&m->url, m->connect_ms, m->command_ms, why, sizeof why,
                                    &timed_out);
    if (!c)
        *rc = set_err(m, timed_out ? MAILROOM_ETIMEOUT : MAILROOM_EREDIS, "%s", why);
    return c;
}

/* (Re)connects when there is no live connection. */
static int ensure_connected(mailroom *m)
{
    int rc = MAILROOM_OK;
    if (!m->redis)
        m->redis = connect_new(m, &rc);
    return rc;
}

/* Drops a connection that failed and reports why. */
static int connection_failed(mailroom *m, const char *what)
{
    int rc = rconn_timed_out(m->redis) ? MAILROOM_ETIMEOUT : MAILROOM_EREDIS;
    const char *why = rc == MAILROOM_ETIMEOUT ? "no answer in time" : m->redis->errstr;
    if (m->url.n_sentinels)
        set_err(m, rc, "%s: Redis master '%s': %s", what, m->url.master_name, why);
    else
        set_err(m, rc, "%s: Redis %s:%d: %s", what, m->url.host, m->url.port, why);
    redisFree(m->redis);
    m->redis = NULL;
    return rc;
}

static int env_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v;
}

/*
 * Loads the signing key. A handle without any key configured is legal (reading
 * status signs nothing); mailroom_send() then fails with MAILROOM_EKEY. A key that is
 * configured but unusable (too short, unreadable file) fails here, early.
 */
static int load_key(mailroom *m, const mailroom_options *opts)
{
    char why[256];
    int ok;
    if (!opts->key && !env_set("MAILROOM_KEYS_FILE") && !env_set("MAILROOM_SECRET"))
        ok = 1;
    else if (opts->key)
        ok = keyring_add(&m->ring, opts->kid ? opts->kid : "default", opts->key, opts->key_len,
                         why, sizeof why) == 0;
    else
        ok = keyring_load_env(&m->ring, why, sizeof why) == 0;
    if (!ok)
        return set_err(m, MAILROOM_EKEY, "%s", why);
    if (sig_alg_parse(opts->alg ? opts->alg : "hmac-sha1", &m->alg) != 0)
        return set_err(m, MAILROOM_EINVAL, "alg must be hmac-sha1 or hmac-sha256");
    return MAILROOM_OK;
}

int mailroom_open(mailroom **out, const mailroom_options *opts)
{
    mailroom_options defaults;
    if (!opts) {
        mailroom_options_init(&defaults);
        opts = &defaults;
    }
    mailroom *m = calloc(1, sizeof *m);
    *out = m;
    if (!m)
        return MAILROOM_ENOMEM;
    m->connect_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : DEFAULT_TIMEOUT_MS;
    m->command_ms = opts->command_timeout_ms > 0 ? opts->command_timeout_ms : DEFAULT_TIMEOUT_MS;
    m->status_ttl_s = opts->status_ttl_s > 0 ? opts->status_ttl_s : KEYS_STATUS_TTL_DEFAULT_S;
    snprintf(m->ttl_arg, sizeof m->ttl_arg, "%ld", m->status_ttl_s);
    const char *queue = pick(opts->queue, "MAILROOM_QUEUE", "default");
    if (keys_init(&m->keys, queue) != 0)
        return set_err(m, MAILROOM_EINVAL, "queue name must match [A-Za-z0-9._:-]{1,64}");
    char why[256];
    if (rconn_url_parse(pick(opts->redis_url, "MAILROOM_REDIS_URL", RCONN_DEFAULT_URL), &m->url,
                        why, sizeof why) != 0 ||
        rconn_password_from_env(&m->url, why, sizeof why) != 0)
        return set_err(m, MAILROOM_EINVAL, "%s", why);
    int rc = load_key(m, opts);
    if (rc != MAILROOM_OK)
        return rc;
    return ensure_connected(m);
}

void mailroom_close(mailroom *m)
{
    if (!m)
        return;
    if (m->redis)
        redisFree(m->redis);
    keyring_clear(&m->ring);
    rconn_url_clear(&m->url);
    buf_free(&m->canon);
    sig_mac_free(&m->mac);
    ulid_source_clear(&m->ids);
    free(m);
}

/* json-c helpers: each returns 0, or -1 when memory ran out. */
static int add_string(json_object *obj, const char *key, const char *value)
{
    json_object *s = json_object_new_string(value);
    if (!s)
        return -1;
    if (json_object_object_add(obj, key, s) != 0) {
        json_object_put(s);
        return -1;
    }
    return 0;
}

static int add_array(json_object *obj, const char *key, const char *const *items, size_t n)
{
    if (n == 0)
        return 0;
    json_object *arr = json_object_new_array_ext((int)n);
    if (!arr || json_object_object_add(obj, key, arr) != 0) {
        json_object_put(arr);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *s = items[i] ? json_object_new_string(items[i]) : NULL;
        if (!items[i])
            return -2;
        if (!s || json_object_array_add(arr, s) != 0) {
            json_object_put(s);
            return -1;
        }
    }
    return 0;
}

static int add_time(json_object *obj, const char *key, time_t t)
{
    if (t == 0)
        return 0;
    char iso[CLOCK_ISO_MAX];
    clock_format_iso((int64_t)t * 1000, 0, iso);
    return add_string(obj, key, iso);
}

static int add_headers(json_object *obj, const mailroom_header *h, size_t n)
{
    if (n == 0)
        return 0;
    json_object *hs = json_object_new_object();
    if (!hs || json_object_object_add(obj, "headers", hs) != 0) {
        json_object_put(hs);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!h[i].name || !h[i].value)
            return -2;
        if (add_string(hs, h[i].name, h[i].value) != 0)
            return -1;
    }
    return 0;
}

/* Builds the unsigned job tree. Returns 0, -1 (memory) or -2 (a NULL where a string
 * belongs). Validation proper is job_from_tree's. */
static int build_tree(json_object *root, const mailroom_email *e, const char *id,
                      const char *created, const char *kid, sig_alg alg)
{
    int rc;
    if ((rc = add_string(root, "v", "1")) || (rc = add_string(root, "id", id)) ||
        (rc = add_array(root, "to", e->to, e->n_to)) ||
        (rc = add_array(root, "cc", e->cc, e->n_cc)) ||
        (rc = add_array(root, "bcc", e->bcc, e->n_bcc)))
        return rc;
    const struct {
        const char *key, *value;
    } optional[] = {{"from", e->from},         {"from_name", e->from_name},
                    {"reply_to", e->reply_to}, {"subject", e->subject},
                    {"text", e->text},         {"html", e->html}};
    for (size_t i = 0; i < sizeof optional / sizeof optional[0]; i++)
        if (optional[i].value && (rc = add_string(root, optional[i].key, optional[i].value)))
            return rc;
    if ((rc = add_headers(root, e->headers, e->n_headers)) ||
        (rc = add_string(root, "created_at", created)) ||
        (rc = add_time(root, "send_at", e->send_at)) ||
        (rc = add_time(root, "expires_at", e->expires_at)) || (rc = add_string(root, "kid", kid)) ||
        (rc = add_string(root, "alg", sig_alg_name(alg))))
        return rc;
    return 0;
}

/* Signs a validated job in place: adds "sig". */
static int sign_tree(mailroom *m, job *j)
{
    const keyring_key *key = &m->ring.keys[0];
    char hex[SIG_HEX_MAX];
    buf_reset(&m->canon);
    if (sig_canonical(j->root, &m->canon) != 0 ||
        sig_mac_hex(&m->mac, m->alg, key->secret, key->secret_len, m->canon.data, m->canon.len,
                    hex) != 0)
        return set_err(m, MAILROOM_ENOMEM, "cannot compute the signature");
    if (add_string(j->root, "sig", hex) != 0)
        return set_err(m, MAILROOM_ENOMEM, "out of memory");
    return MAILROOM_OK;
}

/* The bytes the "sig" member adds to a job: ,"sig":"<40 or 64 hex digits>" */
static size_t sig_member_len(sig_alg alg)
{
    return sizeof ",\"sig\":\"\"" - 1 + sig_hex_len(alg);
}

/* A validated, signed job ready to enqueue. raw borrows from j's tree. */
typedef struct prepared {
    job j;
    char id[MAILROOM_ID_MAX];
    const char *raw;
    size_t raw_len;
    char due[24]; /* "" = now, else the send_at in ms */
} prepared;

/*
 * Builds, validates and (when sign) signs one email; created is now in RFC 3339
 * seconds (clock_format_iso(now, 0, ...)). On success p->j owns the tree:
 * release it with job_clear(&p->j). On failure nothing is left allocated.
 */
static int prepare(mailroom *m, const mailroom_email *e, int64_t now, const char *created,
                   int sign, prepared *p)
{
    int rc = MAILROOM_OK;
    char why[JOB_ERR_MAX];
    memset(p, 0, sizeof *p);
    if (!e)
        return set_err(m, MAILROOM_EINVAL, "email is NULL");
    if (e->id) {
        if (!job_id_valid(e->id))
            return set_err(m, MAILROOM_EINVAL, "id must match [A-Za-z0-9._:-]{1,128}");
        snprintf(p->id, sizeof p->id, "%s", e->id);
    } else if (ulid_next(&m->ids, now, p->id) != 0) {
        return set_err(m, MAILROOM_ENOMEM, "no randomness for a job id");
    }
    json_object *root = json_object_new_object();
    if (!root)
        return set_err(m, MAILROOM_ENOMEM, "out of memory");
    const char *kid = m->ring.n ? m->ring.keys[0].kid : "default";
    int built = build_tree(root, e, p->id, created, kid, m->alg);
    if (built != 0) {
        json_object_put(root);
        return built == -2 ? set_err(m, MAILROOM_EINVAL, "NULL string in a list or header")
                           : set_err(m, MAILROOM_ENOMEM, "out of memory");
    }
    if (job_from_tree(root, 0, &p->j, why) != 0) {
        rc = set_err(m, MAILROOM_EINVAL, "invalid email: %s", why);
        goto out;
    }
    if (sign && (rc = sign_tree(m, &p->j)) != MAILROOM_OK)
        goto out;
    p->raw = json_object_to_json_string_length(
        p->j.root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &p->raw_len);
    if (!p->raw) {
        rc = set_err(m, MAILROOM_ENOMEM, "out of memory");
        goto out;
    }
    if (!sign) /* room for the signature, so that validate and send agree on the size */
        p->raw_len += sig_member_len(m->alg);
    if (p->raw_len > JOB_MAX_BYTES) {
        rc = set_err(m, MAILROOM_ETOOBIG, "job is %zu bytes, over the limit of %d", p->raw_len,
                     JOB_MAX_BYTES);
        goto out;
    }
    if (e->send_at && (int64_t)e->send_at * 1000 > now)
        snprintf(p->due, sizeof p->due, "%lld", (long long)e->send_at * 1000);
out:
    if (rc != MAILROOM_OK || !sign)
        job_clear(&p->j);
    return rc;
}

/* The arguments of one ENQUEUE: keys, then raw job, now, ttl, due. job_key is a caller
 * buffer the arrays point into. */
typedef struct enqueue_args {
    char job_key[KEYS_NAME_MAX];
    const char *argv[7];
    size_t argvlen[7];
} enqueue_args;

static void fill_args(mailroom *m, enqueue_args *a, const char *id, const char *raw,
                      size_t raw_len, const char *now_iso, const char *due)
{
    keys_job(&m->keys, id, a->job_key);
    const char *argv[7] = {a->job_key, m->keys.pending, m->keys.scheduled, raw,
                           now_iso,    m->ttl_arg,      due};
    for (int i = 0; i < 7; i++) {
        a->argv[i] = argv[i];
        a->argvlen[i] = i == 3 ? raw_len : strlen(argv[i]);
    }
}

/* Maps an ENQUEUE reply to a status code (and the handle's message). */
static int enqueue_reply(mailroom *m, const redisReply *r, const char *id)
{
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "DUPLICATE", 9) == 0)
        return set_err(m, MAILROOM_EDUPLICATE, "a job with id '%s' is already recorded", id);
    if (r->type == REDIS_REPLY_ERROR)
        return set_err(m, MAILROOM_EREDIS, "enqueue refused by Redis: %.300s", r->str);
    if (r->type != REDIS_REPLY_INTEGER)
        return set_err(m, MAILROOM_EPROTO, "enqueue: unexpected reply type %d", r->type);
    return MAILROOM_OK;
}

/* Runs ENQUEUE once. Returns MAILROOM_OK, EDUPLICATE, or a Redis failure. */
static int enqueue_once(mailroom *m, const prepared *p, const char *now_iso)
{
    int rc = ensure_connected(m);
    if (rc != MAILROOM_OK)
        return rc;
    enqueue_args a;
    fill_args(m, &a, p->id, p->raw, p->raw_len, now_iso, p->due);
    long acked = 0;
    int replicas = rconn_replicas_needed(&m->url, &m->guard);
    redisReply *r = script_run_acked(m->redis, SCRIPT_ENQUEUE, 3, 7, a.argv, a.argvlen,
                                     replicas, WAIT_TIMEOUT_MS, &acked);
    if (!r)
        return connection_failed(m, "enqueue");
    if (rconn_transient_error(r)) {
        rc = set_err(m, MAILROOM_EREDIS, "enqueue: Redis cannot serve now: %.200s", r->str);
        freeReplyObject(r);
        redisFree(m->redis);
        m->redis = NULL;
        return rc;
    }
    rc = enqueue_reply(m, r, p->id);
    freeReplyObject(r);
    if ((rc == MAILROOM_OK || rc == MAILROOM_EDUPLICATE) &&
        !rconn_write_stands(&m->url, &m->guard, m->redis, acked, replicas, m->connect_ms)) {
        /* an old master after a failover takes writes the failover will erase, and a
         * record it shows (DUPLICATE) may be one of those */
        rc = set_err(m, MAILROOM_EREDIS, "enqueue: no replica acknowledged the write and "
                                         "the sentinels name another master (failover)");
        redisFree(m->redis);
        m->redis = NULL;
    }
    return rc;
}

/*
 * Enqueues, retrying once on a fresh connection when the old one was found broken
 * (Redis restarted since the last call). If that retry finds the id already recorded
 * and the id is one we generated, the first attempt reached Redis: that is success.
 */
static int enqueue(mailroom *m, const prepared *p, int generated_id, const char *now_iso)
{
    int had_connection = m->redis != NULL;
    int rc = enqueue_once(m, p, now_iso);
    if (rc == MAILROOM_EREDIS && had_connection && !m->redis) {
        rc = enqueue_once(m, p, now_iso);
        if (rc == MAILROOM_EDUPLICATE && generated_id)
            rc = MAILROOM_OK;
    }
    return rc;
}

static int need_key(mailroom *m)
{
    if (m->ring.n == 0)
        return set_err(m, MAILROOM_EKEY,
                       "no signing key: set MAILROOM_SECRET or MAILROOM_KEYS_FILE");
    return MAILROOM_OK;
}

int mailroom_send(mailroom *m, const mailroom_email *e, char id_out[MAILROOM_ID_MAX])
{
    if (!m)
        return MAILROOM_EINVAL;
    if (!e || !id_out)
        return set_err(m, MAILROOM_EINVAL, "email and id_out are required");
    int rc = need_key(m);
    if (rc != MAILROOM_OK)
        return rc;
    prepared p;
    char now_iso[CLOCK_ISO_MAX], created[CLOCK_ISO_MAX];
    int64_t now = clock_now_ms();
    clock_format_iso(now, 1, now_iso);
    clock_format_iso(now, 0, created);
    if ((rc = prepare(m, e, now, created, 1, &p)) != MAILROOM_OK)
        return rc;
    rc = enqueue(m, &p, e->id == NULL, now_iso);
    if (rc == MAILROOM_OK) {
        memcpy(id_out, p.id, strlen(p.id) + 1);
        m->err[0] = '\0';
    }
    job_clear(&p.j);
    return rc;
}

int mailroom_validate(mailroom *m, const mailroom_email *e)
{
    if (!m)
        return MAILROOM_EINVAL;
    prepared p;
    char created[CLOCK_ISO_MAX];
    int64_t now = clock_now_ms();
    clock_format_iso(now, 0, created);
    int rc = prepare(m, e, now, created, 0, &p);
    if (rc == MAILROOM_OK)
        m->err[0] = '\0';
    return rc;
}

/* One email of a batch: where its raw job sits in the batch buffer. */
typedef struct batch_item {
    size_t off, len;
    char due[24];
    int pending;  /* sent in the pipeline, reply not yet read */
    int answered; /* its reply was read in the current round */
} batch_item;

/*
 * Reads the round's WAIT. When its reply is lost, or no replica acknowledged and the
 * sentinels do not confirm this master, the emails this round enqueued may be erased
 * by a failover: they get MAILROOM_EREDIS and keep their ids (their status record
 * tells whether they survived; sending them again with those ids is safe).
 */
static int batch_check_replicas(mailroom *m, int *results, batch_item *items, size_t n,
                                int needed)
{
    int rc = MAILROOM_OK;
    redisReply *w = NULL;
    if (redisGetReply(m->redis, (void **)&w) != REDIS_OK || !w) {
        rc = connection_failed(m, "batch enqueue");
    } else {
        long acked = w->type == REDIS_REPLY_INTEGER ? (long)w->integer : 0;
        if (!rconn_write_stands(&m->url, &m->guard, m->redis, acked, needed, m->connect_ms)) {
            redisFree(m->redis);
            m->redis = NULL;
            rc = set_err(m, MAILROOM_EREDIS, "batch enqueue: no replica acknowledged the "
                                             "writes and the sentinels name another master "
                                             "(failover)");
        }
    }
    freeReplyObject(w);
    for (size_t i = 0; i < n; i++) {
        if (rc != MAILROOM_OK && items[i].answered &&
            (results[i] == MAILROOM_OK || results[i] == MAILROOM_EDUPLICATE))
            results[i] = rc;
        items[i].answered = 0;
    }
    return rc;
}

/* The first failure of a batch: its code and message, kept while later emails
 * overwrite the handle's message. */
typedef struct batch_first {
    int rc;
    size_t index;
    char msg[sizeof ((mailroom *)0)->err];
} batch_first;

static void note_failure(batch_first *f, const mailroom *m, size_t index, int rc)
{
    if (rc == MAILROOM_OK || f->rc != MAILROOM_OK)
        return;
    f->rc = rc;
    f->index = index;
    snprintf(f->msg, sizeof f->msg, "%s", m->err);
}

/* Appends one email's ENQUEUE (verb EVALSHA with the script's SHA-1 as body, or EVAL
 * with its source) to the connection's output buffer. Returns REDIS_OK, or REDIS_ERR
 * when out of memory (nothing was appended). */
static int batch_append(mailroom *m, const char *verb, const char *body, size_t body_len,
                        const char *id, const batch_item *it, const buf *raws,
                        const char *now_iso)
{
    enqueue_args a;
    fill_args(m, &a, id, raws->data + it->off, it->len, now_iso, it->due);
    const char *argv[10] = {verb, body, "3"};
    size_t argvlen[10] = {strlen(verb), body_len, 1};
    for (int k = 0; k < 7; k++) {
        argv[3 + k] = a.argv[k];
        argvlen[3 + k] = a.argvlen[k];
    }
    return redisAppendCommandArgv(m->redis, 10, argv, argvlen);
}

/* Writes out everything buffered for the connection (blocking). Returns MAILROOM_OK or
 * the connection failure (the connection is then dropped). */
static int batch_flush(mailroom *m)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite(m->redis, &done) != REDIS_OK)
            return connection_failed(m, "batch enqueue");
    return MAILROOM_OK;
}

/* Marks every email still waiting for Redis as failed with rc. */
static void batch_fail_pending(int *results, batch_item *items, size_t n, int rc)
{
    for (size_t i = 0; i < n; i++) {
        if (items[i].pending) {
            results[i] = rc;
            items[i].pending = 0;
        }
    }
}

/*
 * Prepares (builds, validates, signs) every email into raws; results[i] is set for the
 * ones that fail. With a connection, each prepared email's EVALSHA is appended at once
 * and every BATCH_CHUNK of them is written out, so that Redis runs one chunk while the
 * next is signed; the replies are read afterwards. Returns MAILROOM_OK, MAILROOM_ENOMEM
 * (the emails from the one that could not be stored on are failed), or the connection's
 * failure (the emails already written are failed with it).
 */
static int batch_prepare(mailroom *m, const mailroom_email *emails, size_t n,
                         char (*ids)[MAILROOM_ID_MAX], int *results, batch_item *items,
                         buf *raws, int64_t now, const char *now_iso, batch_first *first)
{
    size_t unflushed = 0;
    char created[CLOCK_ISO_MAX];
    clock_format_iso(now, 0, created);
    const char *sha = script_sha(SCRIPT_ENQUEUE);
    for (size_t i = 0; i < n; i++) {
        prepared p;
        results[i] = prepare(m, &emails[i], now, created, 1, &p);
        ids[i][0] = '\0';
        if (results[i] != MAILROOM_OK) {
            note_failure(first, m, i, results[i]);
            continue;
        }
        memcpy(ids[i], p.id, strlen(p.id) + 1);
        items[i].off = raws->len;
        items[i].len = p.raw_len;
        memcpy(items[i].due, p.due, sizeof p.due);
        int appended = buf_append(raws, p.raw, p.raw_len);
        job_clear(&p.j);
        if (appended != 0 ||
            (m->redis && batch_append(m, "EVALSHA", sha, 40, ids[i], &items[i], raws,
                                      now_iso) != REDIS_OK)) {
            for (size_t k = i; k < n; k++)
                results[k] = MAILROOM_ENOMEM;
            return set_err(m, MAILROOM_ENOMEM, "out of memory");
        }
        items[i].pending = 1;
        if (m->redis && ++unflushed == BATCH_CHUNK) {
            unflushed = 0;
            int rc = batch_flush(m);
            if (rc != MAILROOM_OK) {
                batch_fail_pending(results, items, i + 1, rc);
                for (size_t k = i + 1; k < n; k++) {
                    results[k] = rc;
                    ids[k][0] = '\0';
                }
                return rc;
            }
        }
    }
    return MAILROOM_OK;
}

/* 1 when some email still waits for its reply. */
static int batch_any_pending(const batch_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (items[i].pending)
            return 1;
    return 0;
}

/*
 * Reads the replies of every pending email's ENQUEUE, after appending the round's WAIT
 * when `needed` replicas must acknowledge (Sentinel). Items answered NOSCRIPT stay
 * pending for an EVAL round. A transient refusal (READONLY from a demoted master,
 * LOADING, ...) fails its email and drops the connection afterwards, so the next call
 * finds the current master, as mailroom_send does.
 */
static int batch_read(mailroom *m, char (*ids)[MAILROOM_ID_MAX], int *results,
                      batch_item *items, size_t n, int needed, int *noscript)
{
    *noscript = 0;
    if (!batch_any_pending(items, n))
        return MAILROOM_OK;
    char nrep[16], tmo[16];
    snprintf(nrep, sizeof nrep, "%d", needed);
    snprintf(tmo, sizeof tmo, "%d", WAIT_TIMEOUT_MS);
    const char *wait_argv[] = {"WAIT", nrep, tmo};
    if (needed > 0 && redisAppendCommandArgv(m->redis, 3, wait_argv, NULL) != REDIS_OK) {
        redisFree(m->redis); /* nothing is read: the commands must not reach Redis alone */
        m->redis = NULL;
        batch_fail_pending(results, items, n, MAILROOM_ENOMEM);
        return set_err(m, MAILROOM_ENOMEM, "out of memory");
    }
    int transient = 0;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].pending)
            continue;
        redisReply *r = NULL;
        if (redisGetReply(m->redis, (void **)&r) != REDIS_OK || !r) {
            int rc = connection_failed(m, "batch enqueue");
            batch_fail_pending(results, items, n, rc);
            return rc;
        }
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
            *noscript = 1;
        } else if (rconn_transient_error(r)) {
            transient = 1;
            results[i] = set_err(m, MAILROOM_EREDIS, "enqueue: Redis cannot serve now: %.200s",
                                 r->str);
            items[i].pending = 0;
        } else {
            results[i] = enqueue_reply(m, r, ids[i]);
            items[i].pending = 0;
            items[i].answered = 1;
        }
        freeReplyObject(r);
    }
    int rc = needed > 0 ? batch_check_replicas(m, results, items, n, needed) : MAILROOM_OK;
    if (transient && m->redis) {
        redisFree(m->redis);
        m->redis = NULL;
    }
    if (transient && rc == MAILROOM_OK)
        rc = MAILROOM_EREDIS;
    return rc;
}

/* The round after NOSCRIPT: EVAL (which loads the script) for every email still
 * pending, in one pipeline. */
static int batch_eval_round(mailroom *m, char (*ids)[MAILROOM_ID_MAX], int *results,
                            batch_item *items, size_t n, const buf *raws, const char *now_iso,
                            int needed)
{
    const char *src = script_source(SCRIPT_ENQUEUE);
    size_t src_len = strlen(src);
    for (size_t i = 0; i < n; i++) {
        if (items[i].pending && batch_append(m, "EVAL", src, src_len, ids[i], &items[i], raws,
                                             now_iso) != REDIS_OK) {
            /* commands already buffered must never reach Redis half-written: drop them
             * with the connection; nothing of this round was sent */
            redisFree(m->redis);
            m->redis = NULL;
            batch_fail_pending(results, items, n, MAILROOM_ENOMEM);
            return set_err(m, MAILROOM_ENOMEM, "out of memory");
        }
    }
    int noscript = 0;
    return batch_read(m, ids, results, items, n, needed, &noscript);
}

int mailroom_send_batch(mailroom *m, const mailroom_email *emails, size_t n,
                        char (*ids)[MAILROOM_ID_MAX], int *results)
{
    if (!m)
        return MAILROOM_EINVAL;
    if ((!emails || !ids || !results) && n)
        return set_err(m, MAILROOM_EINVAL, "emails, ids and results are required");
    int rc = need_key(m);
    if (rc != MAILROOM_OK || n == 0)
        return rc;
    buf raws = BUF_INIT;
    batch_first first = {MAILROOM_OK, 0, ""};
    batch_item *items = calloc(n, sizeof *items);
    if (!items)
        return set_err(m, MAILROOM_ENOMEM, "out of memory");
    char now_iso[CLOCK_ISO_MAX];
    int64_t now = clock_now_ms();
    clock_format_iso(now, 1, now_iso);
    char why_unconnected[sizeof m->err] = "";
    int connected = ensure_connected(m);
    if (connected != MAILROOM_OK)
        snprintf(why_unconnected, sizeof why_unconnected, "%s", m->err);
    /* without a connection the emails are still checked, so each gets its own verdict */
    rc = batch_prepare(m, emails, n, ids, results, items, &raws, now, now_iso, &first);
    if (connected != MAILROOM_OK) {
        rc = set_err(m, connected, "%s", why_unconnected);
        batch_fail_pending(results, items, n, rc);
    }
    if (m->redis) {
        int noscript = 0;
        int needed = rconn_replicas_needed(&m->url, &m->guard);
        int read = batch_read(m, ids, results, items, n, needed, &noscript);
        if (read == MAILROOM_OK && noscript)
            read = batch_eval_round(m, ids, results, items, n, &raws, now_iso, needed);
        if (rc == MAILROOM_OK)
            rc = read;
    }
    /* the first failing email, in input order, names the batch's error */
    for (size_t i = 0; i < n; i++) {
        if (results[i] != MAILROOM_OK && (first.rc == MAILROOM_OK || i < first.index)) {
            first.rc = results[i];
            first.index = i;
            snprintf(first.msg, sizeof first.msg, "%s",
                     results[i] == rc ? m->err : mailroom_strerror(results[i]));
        }
    }
    if (first.rc != MAILROOM_OK)
        set_err(m, first.rc, "email %zu of %zu: %s", first.index, n, first.msg);
    else if (rc == MAILROOM_OK)
        m->err[0] = '\0';
    /* else every email got its answer but the batch failed after (m->err says how) */
    free(items);
    buf_free(&raws);
    return first.rc != MAILROOM_OK ? first.rc : rc;
}

const char *mailroom_state_name(mailroom_state state)
{
    static const char *const names[] = {"unknown", "queued", "sending", "sent",
                                        "retrying", "failed", "rejected"};
    if ((size_t)state >= sizeof names / sizeof names[0])
        return "unknown";
    return names[state];
}

static mailroom_state state_from_name(const char *s)
{
    for (int i = MAILROOM_STATE_QUEUED; i <= MAILROOM_STATE_REJECTED; i++)
        if (strcmp(s, mailroom_state_name((mailroom_state)i)) == 0)
            return (mailroom_state)i;
    return MAILROOM_STATE_UNKNOWN;
}

/* Copies one HGETALL field into the status record. */
static void take_field(mailroom_job_status *st, const char *field, const char *value)
{
    struct {
        const char *name;
        char *dst;
        size_t size;
    } strings[] = {{"smtp_reply", st->smtp_reply, sizeof st->smtp_reply},
                   {"error", st->error, sizeof st->error},
                   {"consumer", st->consumer, sizeof st->consumer},
                   {"created_at", st->created_at, sizeof st->created_at},
                   {"updated_at", st->updated_at, sizeof st->updated_at}};
    if (strcmp(field, "state") == 0)
        st->state = state_from_name(value);
    else if (strcmp(field, "attempts") == 0)
        st->attempts = atoi(value);
    else if (strcmp(field, "smtp_code") == 0)
        st->smtp_code = atoi(value);
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if (strcmp(field, strings[i].name) == 0)
            snprintf(strings[i].dst, strings[i].size, "%s", value);
}

int mailroom_status(mailroom *m, const char *id, mailroom_job_status *out)
{
    if (!m)
        return MAILROOM_EINVAL;
    if (!id || !out || !job_id_valid(id))
        return set_err(m, MAILROOM_EINVAL, "id must match [A-Za-z0-9._:-]{1,128}");
    int rc = ensure_connected(m);
    if (rc != MAILROOM_OK)
        return rc;
    char job_key[KEYS_NAME_MAX];
    keys_job(&m->keys, id, job_key);
    const char *argv[] = {"HGETALL", job_key};
    redisReply *r = redisCommandArgv(m->redis, 2, argv, NULL);
    if (!r)
        return connection_failed(m, "status");
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", id);
    if (r->type == REDIS_REPLY_ERROR) {
        rc = set_err(m, MAILROOM_EREDIS, "status refused by Redis: %.300s", r->str);
    } else if (r->type != REDIS_REPLY_ARRAY) {
        rc = set_err(m, MAILROOM_EPROTO, "status: unexpected reply type %d", r->type);
    } else if (r->elements == 0) {
        rc = set_err(m, MAILROOM_ENOTFOUND, "no status record for job '%s'", id);
    } else {
        for (size_t i = 0; i + 1 < r->elements; i += 2)
            take_field(out, r->element[i]->str, r->element[i + 1]->str);
    }
    freeReplyObject(r);
    return rc;
}

static int is_final(mailroom_state st)
{
    return st == MAILROOM_STATE_SENT || st == MAILROOM_STATE_FAILED ||
           st == MAILROOM_STATE_REJECTED;
}

/* 1 when a status event (JSON) is about job id and says it is final. */
static int final_event_for(const char *payload, size_t len, const char *id)
{
    json_tokener *tok = json_tokener_new();
    json_object *ev = tok && len <= (size_t)INT_MAX
                          ? json_tokener_parse_ex(tok, payload, (int)len)
                          : NULL;
    json_object *jid = NULL, *jstate = NULL;
    int final = 0;
    json_tokener_free(tok);
    if (ev && json_object_object_get_ex(ev, "id", &jid) &&
        json_object_object_get_ex(ev, "state", &jstate) &&
        json_object_is_type(jid, json_type_string) &&
        strcmp(json_object_get_string(jid), id) == 0) {
        const char *st = json_object_get_string(jstate);
        final = strcmp(st, "sent") == 0 || strcmp(st, "failed") == 0 ||
                strcmp(st, "rejected") == 0 || strcmp(st, "duplicate") == 0;
    }
    json_object_put(ev);
    return final;
}

/* Opens the subscription connection and confirms SUBSCRIBE. */
static redisContext *subscribe(mailroom *m, int *rc)
{
    redisContext *sub = connect_new(m, rc);
    if (!sub)
        return NULL;
    const char *argv[] = {"SUBSCRIBE", m->keys.status};
    redisReply *r = redisCommandArgv(sub, 2, argv, NULL);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        *rc = set_err(m, !r && rconn_timed_out(sub) ? MAILROOM_ETIMEOUT : MAILROOM_EREDIS,
                      "wait: SUBSCRIBE failed: %s",
                      r && r->type == REDIS_REPLY_ERROR ? r->str : sub->errstr);
        freeReplyObject(r);
        redisFree(sub);
        return NULL;
    }
    freeReplyObject(r);
    return sub;
}

int mailroom_wait(mailroom *m, const char *id, int timeout_ms, mailroom_job_status *out)
{
    if (!m)
        return MAILROOM_EINVAL;
    if (!id || !out || !job_id_valid(id) || timeout_ms < 0)
        return set_err(m, MAILROOM_EINVAL, "wait: a valid id, out and timeout >= 0 are needed");
    int rc = MAILROOM_OK;
    int64_t deadline = clock_now_ms() + timeout_ms;
    redisContext *sub = subscribe(m, &rc);
    if (!sub)
        return rc;
    /* subscribed first: from here on no final event can be missed */
    if ((rc = mailroom_status(m, id, out)) != MAILROOM_OK || is_final(out->state))
        goto out;
    for (;;) {
        int64_t left = deadline - clock_now_ms();
        redisReply *r = NULL;
        if (left > 0) {
            struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
            redisSetTimeout(sub, tv);
        }
        if (left <= 0 || redisGetReply(sub, (void **)&r) != REDIS_OK || !r) {
            if (left <= 0 || rconn_timed_out(sub))
                rc = set_err(m, MAILROOM_EPENDING, "job '%s' not final after %d ms (state %s)",
                             id, timeout_ms, mailroom_state_name(out->state));
            else
                rc = set_err(m, MAILROOM_EREDIS, "wait: subscription lost: %s", sub->errstr);
            goto out;
        }
        int final = r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                    r->element[2]->type == REDIS_REPLY_STRING &&
                    final_event_for(r->element[2]->str, r->element[2]->len, id);
        freeReplyObject(r);
        if (final) {
            rc = mailroom_status(m, id, out);
            goto out;
        }
    }
out:
    redisFree(sub);
    return rc;
}
