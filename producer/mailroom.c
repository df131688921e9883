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
#define DEFAULT_STATUS_TTL_S (7L * 24 * 3600)

struct mailroom {
    redisContext *redis; /* NULL while disconnected; reconnected on the next call */
    rconn_url url;
    keys_queue keys;
    keyring ring; /* the first key signs */
    sig_alg alg;
    int connect_ms, command_ms;
    long status_ttl_s;
    buf canon; /* canonical form, reused by every send */
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
    opts->status_ttl_s = DEFAULT_STATUS_TTL_S;
}

static const char *pick(const char *given, const char *env, const char *fallback)
{
    if (given)
        return given;
    const char *v = getenv(env);
    return v && *v ? v : fallback;
}

/* (Re)connects when there is no live connection. */
static int ensure_connected(mailroom *m)
{
    if (m->redis)
        return MAILROOM_OK;
    char why[300];
    int timed_out;
    m->redis = rconn_connect(&m->url, m->connect_ms, m->command_ms, why, sizeof why, &timed_out);
    if (!m->redis)
        return set_err(m, timed_out ? MAILROOM_ETIMEOUT : MAILROOM_EREDIS, "%s", why);
    return MAILROOM_OK;
}

/* Drops a connection that failed and reports why. */
static int connection_failed(mailroom *m, const char *what)
{
    int rc = rconn_timed_out(m->redis) ? MAILROOM_ETIMEOUT : MAILROOM_EREDIS;
    set_err(m, rc, "%s: Redis %s:%d: %s", what, m->url.host, m->url.port,
            rc == MAILROOM_ETIMEOUT ? "no answer in time" : m->redis->errstr);
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
    m->status_ttl_s = opts->status_ttl_s > 0 ? opts->status_ttl_s : DEFAULT_STATUS_TTL_S;
    const char *queue = pick(opts->queue, "MAILROOM_QUEUE", "default");
    if (keys_init(&m->keys, queue) != 0)
        return set_err(m, MAILROOM_EINVAL, "queue name must match [A-Za-z0-9._:-]{1,64}");
    char why[256];
    if (rconn_url_parse(pick(opts->redis_url, "MAILROOM_REDIS_URL", RCONN_DEFAULT_URL), &m->url,
                        why, sizeof why) != 0)
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
        sig_hmac_hex(m->alg, key->secret, key->secret_len, m->canon.data, m->canon.len, hex) != 0)
        return set_err(m, MAILROOM_ENOMEM, "cannot compute the signature");
    if (add_string(j->root, "sig", hex) != 0)
        return set_err(m, MAILROOM_ENOMEM, "out of memory");
    return MAILROOM_OK;
}

/* Runs ENQUEUE once. Returns MAILROOM_OK, EDUPLICATE, or a Redis failure. */
static int enqueue_once(mailroom *m, const char *id, const char *raw, size_t raw_len,
                        const char *now_iso, const char *due)
{
    int rc = ensure_connected(m);
    if (rc != MAILROOM_OK)
        return rc;
    char job_key[KEYS_NAME_MAX], ttl[24];
    keys_job(&m->keys, id, job_key);
    snprintf(ttl, sizeof ttl, "%ld", m->status_ttl_s);
    const char *argv[] = {job_key, m->keys.pending, m->keys.scheduled, raw, now_iso, ttl, due};
    size_t argvlen[] = {strlen(job_key), strlen(m->keys.pending), strlen(m->keys.scheduled),
                        raw_len, strlen(now_iso), strlen(ttl), strlen(due)};
    redisReply *r = script_run(m->redis, SCRIPT_ENQUEUE, 3, 7, argv, argvlen);
    if (!r)
        return connection_failed(m, "enqueue");
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "DUPLICATE", 9) == 0)
        rc = set_err(m, MAILROOM_EDUPLICATE, "a job with id '%s' is already recorded", id);
    else if (r->type == REDIS_REPLY_ERROR)
        rc = set_err(m, MAILROOM_EREDIS, "enqueue refused by Redis: %.300s", r->str);
    else if (r->type != REDIS_REPLY_INTEGER)
        rc = set_err(m, MAILROOM_EPROTO, "enqueue: unexpected reply type %d", r->type);
    freeReplyObject(r);
    return rc;
}

/*
 * Enqueues, retrying once on a fresh connection when the old one was found broken
 * (Redis restarted since the last call). If that retry finds the id already recorded
 * and the id is one we generated, the first attempt reached Redis: that is success.
 */
static int enqueue(mailroom *m, const char *id, int generated_id, const char *raw,
                   size_t raw_len, const char *now_iso, const char *due)
{
    int had_connection = m->redis != NULL;
    int rc = enqueue_once(m, id, raw, raw_len, now_iso, due);
    if (rc == MAILROOM_EREDIS && had_connection && !m->redis) {
        rc = enqueue_once(m, id, raw, raw_len, now_iso, due);
        if (rc == MAILROOM_EDUPLICATE && generated_id)
            rc = MAILROOM_OK;
    }
    return rc;
}

int mailroom_send(mailroom *m, const mailroom_email *e, char id_out[MAILROOM_ID_MAX])
{
    if (!m)
        return MAILROOM_EINVAL;
    if (!e || !id_out)
        return set_err(m, MAILROOM_EINVAL, "email and id_out are required");
    if (m->ring.n == 0)
        return set_err(m, MAILROOM_EKEY,
                       "no signing key: set MAILROOM_SECRET or MAILROOM_KEYS_FILE");
    int rc;
    job j = {0};
    char id[MAILROOM_ID_MAX], created[CLOCK_ISO_MAX], now_iso[CLOCK_ISO_MAX], due[24] = "";
    char why[JOB_ERR_MAX];
    int64_t now = clock_now_ms();
    if (e->id) {
        if (!job_id_valid(e->id))
            return set_err(m, MAILROOM_EINVAL, "id must match [A-Za-z0-9._:-]{1,128}");
        snprintf(id, sizeof id, "%s", e->id);
    } else if (ulid_new(now, id) != 0) {
        return set_err(m, MAILROOM_ENOMEM, "no randomness for a job id");
    }
    clock_format_iso(now, 0, created);
    clock_format_iso(now, 1, now_iso);
    json_object *root = json_object_new_object();
    if (!root)
        return set_err(m, MAILROOM_ENOMEM, "out of memory");
    int built = build_tree(root, e, id, created, m->ring.keys[0].kid, m->alg);
    if (built != 0) {
        json_object_put(root);
        return built == -2 ? set_err(m, MAILROOM_EINVAL, "NULL string in a list or header")
                           : set_err(m, MAILROOM_ENOMEM, "out of memory");
    }
    if (job_from_tree(root, 0, &j, why) != 0) {
        rc = set_err(m, MAILROOM_EINVAL, "invalid email: %s", why);
        goto out;
    }
    if ((rc = sign_tree(m, &j)) != MAILROOM_OK)
        goto out;
    size_t raw_len = 0;
    const char *raw = json_object_to_json_string_length(
        j.root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &raw_len);
    if (!raw) {
        rc = set_err(m, MAILROOM_ENOMEM, "out of memory");
        goto out;
    }
    if (raw_len > JOB_MAX_BYTES) {
        rc = set_err(m, MAILROOM_ETOOBIG, "job is %zu bytes, over the limit of %d", raw_len,
                     JOB_MAX_BYTES);
        goto out;
    }
    if (e->send_at && (int64_t)e->send_at * 1000 > now)
        snprintf(due, sizeof due, "%lld", (long long)e->send_at * 1000);
    rc = enqueue(m, id, e->id == NULL, raw, raw_len, now_iso, due);
    if (rc == MAILROOM_OK) {
        memcpy(id_out, id, strlen(id) + 1);
        m->err[0] = '\0';
    }
out:
    job_clear(&j);
    return rc;
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
    if (r->type != REDIS_REPLY_ARRAY) {
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
