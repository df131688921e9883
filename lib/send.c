/*
 * send.c — mailroom_send() and mailroom_validate(): one email, from the caller's
 * struct to a job in Redis.
 *
 * The email becomes a json-c tree, the same validator the consumer runs checks it
 * (job_from_tree), the canonical form is signed with the handle's key, the tree is
 * serialised once, and one EVALSHA of the ENQUEUE script (common/lua/enqueue.lua)
 * writes the status record and queues the job in the same round trip. The tree and
 * the serialised job are owned by a `prepared` (send.h) from build to enqueue; the
 * caller's email is only read.
 */
#define _POSIX_C_SOURCE 200809L
#include "send.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"

/* json-c helpers: each returns 0, -1 when memory ran out, or -2 for a NULL where a
 * string belongs. The value is owned by obj once added. */
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
    if (!items)
        return -2;
    json_object *arr = json_object_new_array_ext((int)n);
    if (!arr || json_object_object_add(obj, key, arr) != 0) {
        json_object_put(arr);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!items[i])
            return -2;
        json_object *s = json_object_new_string(items[i]);
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
    if (!h)
        return -2;
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
    } optional[] = {{"from", e->from},       {"from_name", e->from_name}, {"reply_to", e->reply_to},
                    {"subject", e->subject}, {"text", e->text},           {"html", e->html}};
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

/* Signs a validated job in place: adds "sig". 0, or -1 with m->err set. */
static int sign_tree(mailroom *m, job *j)
{
    const keyring_key *key = &m->ring.keys[0];
    char hex[SIG_HEX_MAX];
    buf_reset(&m->canon);
    if (sig_canonical(j->root, &m->canon) != 0 ||
        sig_mac_hex(&m->mac, m->alg, key->secret, key->secret_len, m->canon.data, m->canon.len,
                    hex) != 0)
        return mr_fail(&m->err, MAILROOM_ENOMEM, "cannot compute the signature");
    if (add_string(j->root, "sig", hex) != 0)
        return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    return 0;
}

/* The bytes the "sig" member adds to a job: ,"sig":"<40 or 64 hex digits>" */
static size_t sig_member_len(sig_alg alg)
{
    return sizeof ",\"sig\":\"\"" - 1 + sig_hex_len(alg);
}

/* The job's id: the caller's (checked), or a new ULID. 0, or -1 with m->err set. */
static int choose_id(mailroom *m, const mailroom_email *e, int64_t now, prepared *p)
{
    if (!e->id)
        return ulid_next(&m->ids, now, p->id) == 0
                   ? 0
                   : mr_fail(&m->err, MAILROOM_ENOMEM, "no randomness for a job id");
    if (!job_id_valid(e->id))
        return mr_fail(&m->err, MAILROOM_EINVAL, "id must match [A-Za-z0-9._:-]{1,128}");
    memcpy(p->id, e->id, strlen(e->id) + 1);
    return 0;
}

/* The tree of the email, validated into p->j (which owns it from then on, also on
 * failure). 0, or -1 with m->err set. */
static int build_job(mailroom *m, const mailroom_email *e, const char *created, prepared *p)
{
    json_object *root = json_object_new_object();
    if (!root)
        return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    const char *kid = m->ring.n ? m->ring.keys[0].kid : "default";
    int built = build_tree(root, e, p->id, created, kid, m->alg);
    if (built != 0) {
        json_object_put(root);
        return built == -2 ? mr_fail(&m->err, MAILROOM_EINVAL, "NULL string in a list or header")
                           : mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    }
    if (job_from_tree(root, 0, &p->j, &m->err) != 0)
        return mr_prefix(&m->err, "invalid email");
    return 0;
}

int send_prepare(mailroom *m, const mailroom_email *e, int64_t now, const char *created, int sign,
                 prepared *p)
{
    int r = -1;
    memset(p, 0, sizeof *p);
    if (!e)
        return mr_fail(&m->err, MAILROOM_EINVAL, "email is NULL");
    if (choose_id(m, e, now, p) != 0 || build_job(m, e, created, p) != 0)
        goto out;
    if (sign && sign_tree(m, &p->j) != 0)
        goto out;
    p->raw = json_object_to_json_string_length(
        p->j.root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &p->raw_len);
    if (!p->raw) {
        mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
        goto out;
    }
    if (!sign) /* room for the signature, so that validate and send agree on the size */
        p->raw_len += sig_member_len(m->alg);
    if (p->raw_len > (size_t)JOB_MAX_BYTES) {
        mr_fail(&m->err, MAILROOM_ETOOBIG, "job is %zu bytes, over the limit of %d", p->raw_len,
                JOB_MAX_BYTES);
        goto out;
    }
    if (e->send_at && (int64_t)e->send_at * 1000 > now)
        snprintf(p->due, sizeof p->due, "%lld", (long long)e->send_at * 1000);
    r = 0;
out:
    if (r != 0 || !sign) {
        job_clear(&p->j);
        p->raw = NULL;
    }
    return r;
}

void send_enqueue_args(const mailroom *m, const keys_queue *k, enqueue_args *a,
                       char job_key[KEYS_NAME_MAX], const char *id, const char *raw, size_t raw_len,
                       const char *now_iso, const char *due)
{
    keys_job(k, id, job_key);
    memset(a, 0, sizeof *a);
    a->v[ENQUEUE_KEY_job] = job_key;
    a->v[ENQUEUE_KEY_pending] = k->pending;
    a->v[ENQUEUE_KEY_scheduled] = k->scheduled;
    a->v[ENQUEUE_ARG_raw] = raw;
    a->len[ENQUEUE_ARG_raw] = raw_len;
    a->v[ENQUEUE_ARG_now] = now_iso;
    a->v[ENQUEUE_ARG_ttl] = m->ttl_arg;
    a->v[ENQUEUE_ARG_due] = due;
}

int send_enqueue_reply(mailroom *m, const redisReply *r, const char *id)
{
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "DUPLICATE", 9) == 0)
        return mr_fail(&m->err, MAILROOM_EDUPLICATE, "a job with id '%s' is already recorded", id);
    if (r->type == REDIS_REPLY_ERROR)
        return mr_fail(&m->err, MAILROOM_EREDIS, "enqueue refused by Redis: %.300s", r->str);
    if (r->type != REDIS_REPLY_INTEGER)
        return mr_fail(&m->err, MAILROOM_EPROTO, "enqueue: unexpected reply type %d", r->type);
    return 0;
}

/*
 * Runs ENQUEUE once (with WAIT when Sentinel needs a replica's acknowledgement).
 * Returns 0, or -1 with m->err set: MAILROOM_EDUPLICATE, or a Redis failure (the
 * connection is then dropped when it cannot be trusted further).
 */
static int enqueue_once(mailroom *m, const keys_queue *k, const prepared *p, const char *now_iso)
{
    if (handle_connect(m) != 0)
        return -1;
    enqueue_args a;
    char job_key[KEYS_NAME_MAX];
    send_enqueue_args(m, k, &a, job_key, p->id, p->raw, p->raw_len, now_iso, p->due);
    long acked = 0;
    int replicas = rconn_replicas_needed(&m->url, &m->guard);
    redisReply *r = script_run_acked(m->redis, SCRIPT_ENQUEUE, a.v, a.len, replicas,
                                     HANDLE_WAIT_TIMEOUT_MS, &acked, &m->err);
    if (!r)
        return m->err.rc == MAILROOM_EREDIS ? handle_connection_failed(m, "enqueue") : -1;
    int rc = -1;
    if (rconn_transient_error(r)) {
        mr_fail(&m->err, MAILROOM_EREDIS, "enqueue: Redis cannot serve now: %.200s", r->str);
        handle_drop(m);
    } else if ((rc = send_enqueue_reply(m, r, p->id)) == 0 || m->err.rc == MAILROOM_EDUPLICATE) {
        if (!rconn_write_stands(&m->url, &m->guard, m->redis, acked, replicas, m->connect_ms)) {
            /* an old master after a failover takes writes the failover will erase, and a
             * record it shows (DUPLICATE) may be one of those */
            rc = mr_fail(&m->err, MAILROOM_EREDIS,
                         "enqueue: no replica acknowledged the write and the sentinels name "
                         "another master (failover)");
            handle_drop(m);
        }
    }
    freeReplyObject(r);
    return rc;
}

/*
 * Enqueues, retrying once on a fresh connection when the old one was found broken
 * (Redis restarted since the last call). If that retry finds the id already recorded
 * and the id is one we generated, the first attempt reached Redis: that is success.
 */
static int enqueue(mailroom *m, const keys_queue *k, const prepared *p, int generated_id,
                   const char *now_iso)
{
    int had_connection = m->redis != NULL;
    int r = enqueue_once(m, k, p, now_iso);
    if (r != 0 && m->err.rc == MAILROOM_EREDIS && had_connection && !m->redis) {
        r = enqueue_once(m, k, p, now_iso);
        if (r != 0 && m->err.rc == MAILROOM_EDUPLICATE && generated_id)
            r = 0;
    }
    return r;
}

/* mailroom_send_to (mailroom.h): key, prepare (sign), enqueue into the queue named (or
 * the handle's); the id is written only on success. */
int mailroom_send_to(mailroom *m, const char *queue, const mailroom_email *e,
                     char id_out[MAILROOM_ID_MAX])
{
    keys_queue named;
    if (!m)
        return MAILROOM_EINVAL;
    if (!e || !id_out)
        return handle_result(m, mr_fail(&m->err, MAILROOM_EINVAL, "email and id_out are required"));
    if (queue && keys_init(&named, queue) != 0)
        return handle_result(
            m, mr_fail(&m->err, MAILROOM_EINVAL, "queue name must match [A-Za-z0-9._:-]{1,64}"));
    if (handle_need_key(m) != 0)
        return handle_result(m, -1);
    prepared p;
    char now_iso[CLOCK_ISO_MAX], created[CLOCK_ISO_MAX];
    int64_t now = clock_now_ms();
    clock_format_iso(now, 1, now_iso);
    clock_format_iso(now, 0, created);
    int r = send_prepare(m, e, now, created, 1, &p);
    if (r == 0)
        r = enqueue(m, queue ? &named : &m->keys, &p, e->id == NULL, now_iso);
    if (r == 0)
        memcpy(id_out, p.id, strlen(p.id) + 1);
    job_clear(&p.j);
    return handle_result(m, r);
}

int mailroom_send(mailroom *m, const mailroom_email *e, char id_out[MAILROOM_ID_MAX])
{
    return mailroom_send_to(m, NULL, e, id_out);
}

/* mailroom_validate (mailroom.h): prepare without signing, which counts the bytes the
 * signature will add. */
int mailroom_validate(mailroom *m, const mailroom_email *e)
{
    if (!m)
        return MAILROOM_EINVAL;
    prepared p;
    char created[CLOCK_ISO_MAX];
    int64_t now = clock_now_ms();
    clock_format_iso(now, 0, created);
    return handle_result(m, send_prepare(m, e, now, created, 0, &p));
}
