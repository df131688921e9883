/*
 * handle.c — the life of a mailroom handle (include/mailroom.h): options, open, close,
 * the last error, and the Redis connection every call of the library shares
 * (lib/handle.h).
 *
 * mailroom_open() resolves every option (argument, then environment, then default),
 * loads the signing key into the handle's own key ring (wiped on close) and connects.
 * Everything that can be checked without Redis is checked first, so a handle whose
 * only trouble is reaching Redis is complete: it validates emails and reconnects on
 * its next call.
 */
#define _POSIX_C_SOURCE 200809L
#include "handle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TIMEOUT_MS 1000

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

const char *mailroom_errmsg(const mailroom *m)
{
    return m ? m->err.msg : "out of memory";
}

const char *mailroom_queue_name(const mailroom *m)
{
    return m ? m->keys.queue : NULL;
}

int handle_result(mailroom *m, int r)
{
    if (r == 0) {
        mr_error_clear(&m->err);
        return MAILROOM_OK;
    }
    return m->err.rc != MAILROOM_OK ? (int)m->err.rc : MAILROOM_EREDIS;
}

/* The defaults of mailroom.h; a NULL opts is ignored. */
void mailroom_options_init(mailroom_options *opts)
{
    if (!opts)
        return;
    memset(opts, 0, sizeof *opts);
    opts->alg = "hmac-sha1";
    opts->connect_timeout_ms = DEFAULT_TIMEOUT_MS;
    opts->command_timeout_ms = DEFAULT_TIMEOUT_MS;
    opts->status_ttl_s = KEYS_STATUS_TTL_DEFAULT_S;
}

/* The option as given, else the environment variable when set and not empty, else the
 * default. */
static const char *pick(const char *given, const char *env, const char *fallback)
{
    if (given)
        return given;
    const char *v = getenv(env);
    return v && *v ? v : fallback;
}

static int env_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v;
}

/*
 * Loads the signing key. A handle without any key configured is legal (reading status
 * signs nothing); mailroom_send() then fails with MAILROOM_EKEY. A key that is
 * configured but unusable (too short, a kid no job may carry, an unreadable file)
 * fails here, early, rather than making every send fail as an invalid email.
 */
static int load_key(mailroom *m, const mailroom_options *opts)
{
    if (opts->key) {
        const char *kid = opts->kid ? opts->kid : "default";
        if (keyring_add(&m->ring, kid, opts->key, opts->key_len, &m->err) != 0)
            return -1;
    } else if (env_set("MAILROOM_KEYS_FILE") || env_set("MAILROOM_SECRET")) {
        if (keyring_load_env(&m->ring, &m->err) != 0)
            return -1;
    }
    if (sig_alg_parse(opts->alg ? opts->alg : "hmac-sha1", &m->alg) != 0)
        return mr_fail(&m->err, MAILROOM_EINVAL, "alg must be hmac-sha1 or hmac-sha256");
    return 0;
}

/* Timeouts, the queue's key names and the Redis URL (with the password file). */
static int configure(mailroom *m, const mailroom_options *opts)
{
    m->connect_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : DEFAULT_TIMEOUT_MS;
    m->command_ms = opts->command_timeout_ms > 0 ? opts->command_timeout_ms : DEFAULT_TIMEOUT_MS;
    m->status_ttl_s = opts->status_ttl_s > 0 ? opts->status_ttl_s : KEYS_STATUS_TTL_DEFAULT_S;
    snprintf(m->ttl_arg, sizeof m->ttl_arg, "%ld", m->status_ttl_s);
    if (keys_init(&m->keys, pick(opts->queue, "MAILROOM_QUEUE", "default")) != 0)
        return mr_fail(&m->err, MAILROOM_EINVAL, "queue name must match [A-Za-z0-9._:-]{1,64}");
    const char *url = pick(opts->redis_url, "MAILROOM_REDIS_URL", RCONN_DEFAULT_URL);
    if (rconn_url_parse(url, &m->url, &m->err) != 0 ||
        rconn_password_from_env(&m->url, &m->err) != 0) {
        m->err.rc = MAILROOM_EINVAL; /* a bad URL or password file is a bad option */
        return -1;
    }
    return 0;
}

/* mailroom_open (mailroom.h): options, key, connection, in that order, so that a
 * handle whose only trouble is Redis is complete. */
int mailroom_open(mailroom **out, const mailroom_options *opts)
{
    mailroom_options defaults;
    if (!out)
        return MAILROOM_EINVAL;
    if (!opts) {
        mailroom_options_init(&defaults);
        opts = &defaults;
    }
    mailroom *m = calloc(1, sizeof *m);
    *out = m;
    if (!m)
        return MAILROOM_ENOMEM;
    int r = configure(m, opts);
    if (r == 0)
        r = load_key(m, opts);
    if (r == 0)
        r = handle_connect(m);
    return handle_result(m, r);
}

/* Frees what the handle owns; the key ring and the URL's password are wiped. */
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

redisContext *handle_connect_new(mailroom *m)
{
    return rconn_connect(&m->url, m->connect_ms, m->command_ms, &m->err);
}

int handle_connect(mailroom *m)
{
    if (!m->redis)
        m->redis = handle_connect_new(m);
    return m->redis ? 0 : -1;
}

void handle_drop(mailroom *m)
{
    if (m->redis)
        redisFree(m->redis);
    m->redis = NULL;
}

int handle_connection_failed(mailroom *m, const char *what)
{
    int timed_out = m->redis && rconn_timed_out(m->redis);
    mailroom_rc rc = timed_out ? MAILROOM_ETIMEOUT : MAILROOM_EREDIS;
    const char *why = timed_out  ? "no answer in time"
                      : m->redis ? m->redis->errstr
                                 : "not connected";
    if (m->url.n_sentinels)
        mr_fail(&m->err, rc, "%s: Redis master '%s': %s", what, m->url.master_name, why);
    else
        mr_fail(&m->err, rc, "%s: Redis %s:%d: %s", what, m->url.host, m->url.port, why);
    handle_drop(m);
    return -1;
}

int handle_reply_failed(mailroom *m, const redisReply *r, const char *what)
{
    if (!r)
        return handle_connection_failed(m, what);
    if (r->type == REDIS_REPLY_ERROR)
        return mr_fail(&m->err, MAILROOM_EREDIS, "%s: Redis error: %.300s", what, r->str);
    return mr_fail(&m->err, MAILROOM_EPROTO, "%s: unexpected reply type %d from Redis", what,
                   r->type);
}

int handle_need_key(mailroom *m)
{
    if (m->ring.n == 0)
        return mr_fail(&m->err, MAILROOM_EKEY,
                       "no signing key: set MAILROOM_SECRET or MAILROOM_KEYS_FILE");
    return 0;
}

int handle_script_count(mailroom *m, script_id id, const char *const *v, const char *what,
                        long long *n)
{
    redisReply *r = script_run(m->redis, id, v, NULL, &m->err);
    if (!r)
        return m->err.rc == MAILROOM_EREDIS ? handle_connection_failed(m, what) : -1;
    int rr = 0;
    if (r->type == REDIS_REPLY_INTEGER)
        *n = r->integer;
    else
        rr = handle_reply_failed(m, r, what);
    freeReplyObject(r);
    return rr;
}
