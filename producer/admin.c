/*
 * admin.c — the operator commands of the `mailroom` CLI (see admin.h).
 *
 * Each command opens its own Redis connection with rconn_connect() and names the
 * queue's keys with keys_init(); none goes through libmailroom, which has no calls for
 * this. Reads are pipelined (stats, consumers: one SCAN loop for the processing lists,
 * then every other read in one round trip). The two commands that change several keys,
 * `dead retry` and `dead purge`, are one Lua script each, run with EVALSHA and, when
 * Redis does not know the script yet, EVAL, as common/script.c does; so a consumer
 * pushing a dead letter meanwhile can neither lose one nor see half a retry.
 *
 * `watch` reads its subscription without hiredis' blocking loop: it polls the socket
 * with a short timeout and feeds hiredis' reader itself, so SIGINT and SIGTERM end it
 * promptly (hiredis retries reads interrupted by signals) and --timeout needs no
 * socket timeout (after which a hiredis context is unusable).
 *
 * All JSON, read or written, goes through json-c. Readable output masks control
 * characters, so text taken from a job (an error, a reply) cannot drive the terminal.
 */
#define _POSIX_C_SOURCE 200809L
#include "admin.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "clock.h"
#include "keys.h"
#include "rconn.h"
#include "script.h"

#define CONNECT_TIMEOUT_MS 1000
#define COMMAND_TIMEOUT_MS 10000 /* the dead-list scripts walk the whole list */
#define WATCH_POLL_MS 250        /* how often watch looks at the signal flag */
#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* The counters stats always shows, in this order (0 when Redis has none yet). */
static const char *const known_counters[] = {"sent", "retried", "failed", "rejected",
                                             "recovered"};

/* ------------------------------------------------------------------ small helpers */

/* Writes a failure into err and returns its exit code, so callers can return fail(). */
static int fail(char *err, size_t err_len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t err_len, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return code;
}

/*
 * Reports a failed Redis call: no reply (the connection broke or timed out), an error
 * reply, or a reply of the wrong type. Always EXIT_UNAVAIL: Redis did not do it.
 */
static int redis_fail(const redisContext *c, const redisReply *r, const char *what, char *err,
                      size_t err_len)
{
    if (!r)
        return fail(err, err_len, EXIT_UNAVAIL, "%s: Redis %s", what,
                    rconn_timed_out(c) ? "did not answer in time" : c->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        return fail(err, err_len, EXIT_UNAVAIL, "%s: Redis error: %.300s", what, r->str);
    return fail(err, err_len, EXIT_UNAVAIL, "%s: unexpected reply type %d from Redis", what,
                r->type);
}

/*
 * Resolves the queue's key names and connects to Redis, with the password from
 * MAILROOM_REDIS_PASSWORD_FILE when it is set (as mailroom_open does for send and
 * status).
 */
static redisContext *admin_connect(const admin_opts *o, keys_queue *k, int *code, char *err,
                                   size_t err_len)
{
    rconn_url url;
    char why[300];
    int timed_out = 0;
    redisContext *c = NULL;

    memset(&url, 0, sizeof url);
    if (keys_init(k, o->queue) != 0) {
        *code = fail(err, err_len, EXIT_CONFIG,
                     "configuration: queue name must match [A-Za-z0-9._:-]{1,64}");
        goto out;
    }
    if (rconn_url_parse(o->redis_url, &url, why, sizeof why) != 0 ||
        rconn_password_from_env(&url, why, sizeof why) != 0) {
        *code = fail(err, err_len, EXIT_CONFIG, "configuration: %s", why);
        goto out;
    }
    c = rconn_connect(&url, CONNECT_TIMEOUT_MS, COMMAND_TIMEOUT_MS, why, sizeof why,
                      &timed_out);
    if (!c)
        *code = fail(err, err_len, EXIT_UNAVAIL, "connect: %s", why);
out:
    rconn_url_clear(&url);
    return c;
}

/* 1 when the reply is an integer; stores it. */
static int reply_int(const redisReply *r, long long *out)
{
    if (!r || r->type != REDIS_REPLY_INTEGER)
        return 0;
    *out = r->integer;
    return 1;
}

/* A string or nil reply holding a decimal counter (nil and junk count as 0). */
static int reply_counter(const redisReply *r, long long *out)
{
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL))
        return 0;
    *out = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    return 1;
}

/* Redis' clock (TIME) in ms: heartbeats are written with it, so ages use it too. */
static int redis_now_ms(redisContext *c, int64_t *now, char *err, size_t err_len)
{
    redisReply *r = redisCommand(c, "TIME");
    int rc = EXIT_OK;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        rc = redis_fail(c, r, "TIME", err, err_len);
    else
        *now = (int64_t)strtoll(r->element[0]->str, NULL, 10) * 1000 +
               (int64_t)strtoll(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    return rc;
}

/* Masks control characters as admin.h says: bytes below 0x20 and DEL, and the C1
 * range U+0080..U+009F, which UTF-8 spells C2 80..C2 9F. */
void admin_put_clean(const char *s, FILE *fp)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            fputc('?', fp);
        } else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            fputc('?', fp);
            p++;
        } else {
            fputc(*p, fp);
        }
    }
}

int admin_print_json_line(json_object *o, char *err, size_t err_len)
{
    const char *s = json_object_to_json_string_ext(o, JSON_FLAGS);
    if (!s)
        return fail(err, err_len, EXIT_SOFTWARE, "out of memory");
    fputs(s, stdout);
    fputc('\n', stdout);
    return EXIT_OK;
}

int admin_flush_stdout(const char *what, char *err, size_t err_len)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        return fail(err, err_len, EXIT_IOERR, "%s: stdout: %s", what, strerror(errno));
    return EXIT_OK;
}

/* Adds a member; a NULL value (allocation failed) or a failed add is -1. */
int admin_json_set(json_object *o, const char *key, json_object *v)
{
    if (!v)
        return -1;
    if (json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        return -1;
    }
    return 0;
}

/* The string member key of a decoded object, or NULL when absent or not a string. */
static const char *jstr(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* Parses one JSON text of len bytes; NULL when it is not valid JSON. */
static json_object *parse_json(const char *s, size_t len)
{
    if (len > (size_t)INT32_MAX)
        return NULL;
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return NULL;
    json_object *o = json_tokener_parse_ex(tok, s, (int)len);
    if (json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

/* ------------------------------------------------------------------ durations */

int admin_parse_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
                 {"d", 86400000}};
    if (!s || !((*s >= '0' && *s <= '9') || *s == '.'))
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || !isfinite(v) || v < 0)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit) != 0)
            continue;
        double total = v * units[i].ms;
        if (total > 9.0e15) /* far beyond any useful duration, well inside int64 */
            return -1;
        *ms = (int64_t)(total + 0.5);
        return 0;
    }
    return -1;
}

/* ------------------------------------------------------------------ queue snapshot */

/* One processing list found by SCAN: the consumer id (key suffix) and its length. */
struct proc_entry {
    char *consumer;
    long long count;
};

/* Everything stats and consumers show, read at (nearly) one instant. */
struct snapshot {
    int64_t now_ms; /* Redis TIME */
    long long pending, scheduled, scheduled_due, dead, rate_cur, rate_prev;
    struct proc_entry *procs;
    size_t n_procs, cap_procs;
    redisReply *consumers; /* ZRANGE consumers 0 -1 WITHSCORES, owned */
    redisReply *counters;  /* HGETALL stats, owned */
};

static void snapshot_free(struct snapshot *s)
{
    for (size_t i = 0; i < s->n_procs; i++)
        free(s->procs[i].consumer);
    free(s->procs);
    freeReplyObject(s->consumers);
    freeReplyObject(s->counters);
    memset(s, 0, sizeof *s);
}

/* Appends a consumer id to the processing table. */
static int proc_add(struct snapshot *s, const char *consumer)
{
    if (s->n_procs == s->cap_procs) {
        size_t cap = s->cap_procs ? 2 * s->cap_procs : 16;
        struct proc_entry *v = realloc(s->procs, cap * sizeof *v);
        if (!v)
            return -1;
        s->procs = v;
        s->cap_procs = cap;
    }
    char *copy = strdup(consumer);
    if (!copy)
        return -1;
    s->procs[s->n_procs++] = (struct proc_entry){copy, 0};
    return 0;
}

/*
 * Finds every processing list of the queue with SCAN (the braces of the hash tag are
 * escaped: they are literal in the key, and a glob must not see them as anything else).
 */
static int scan_processing(redisContext *c, const keys_queue *k, struct snapshot *s,
                           char *err, size_t err_len)
{
    char prefix[KEYS_NAME_MAX], pattern[KEYS_NAME_MAX + 8], cursor[32] = "0";
    keys_processing(k, "", prefix);
    snprintf(pattern, sizeof pattern, "mailroom:\\{%s\\}:processing:*", k->queue);
    size_t plen = strlen(prefix);
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
        redisReply *r = redisCommandArgv(c, 6, argv, NULL);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            int rc = redis_fail(c, r, "SCAN", err, err_len);
            freeReplyObject(r);
            return rc;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const redisReply *key = r->element[1]->element[i];
            if (key->type != REDIS_REPLY_STRING || key->len <= plen ||
                strncmp(key->str, prefix, plen) != 0)
                continue;
            if (proc_add(s, key->str + plen) != 0) {
                freeReplyObject(r);
                return fail(err, err_len, EXIT_SOFTWARE, "out of memory");
            }
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return EXIT_OK;
}

/* Queues the pipelined reads of a snapshot (replies are read by read_snapshot). */
static int append_reads(redisContext *c, const keys_queue *k, const struct snapshot *s)
{
    char due[32], key_cur[KEYS_NAME_MAX], key_prev[KEYS_NAME_MAX], proc_key[KEYS_NAME_MAX];
    long long minute = (long long)(s->now_ms / 60000);
    snprintf(due, sizeof due, "%lld", (long long)s->now_ms);
    keys_rate(k, minute, key_cur);
    keys_rate(k, minute - 1, key_prev);
    int bad = 0;
    bad |= redisAppendCommand(c, "LLEN %s", k->pending);
    bad |= redisAppendCommand(c, "ZCARD %s", k->scheduled);
    bad |= redisAppendCommand(c, "ZCOUNT %s -inf %s", k->scheduled, due);
    bad |= redisAppendCommand(c, "LLEN %s", k->dead);
    bad |= redisAppendCommand(c, "ZRANGE %s 0 -1 WITHSCORES", k->consumers);
    bad |= redisAppendCommand(c, "HGETALL %s", k->stats);
    bad |= redisAppendCommand(c, "GET %s", key_cur);
    bad |= redisAppendCommand(c, "GET %s", key_prev);
    for (size_t i = 0; i < s->n_procs; i++) {
        keys_processing(k, s->procs[i].consumer, proc_key);
        bad |= redisAppendCommand(c, "LLEN %s", proc_key);
    }
    return bad ? -1 : 0;
}

/* Reads the next pipelined reply; NULL (with err filled) when the connection failed. */
static redisReply *next_reply(redisContext *c, int *rc, char *err, size_t err_len)
{
    void *r = NULL;
    if (redisGetReply(c, &r) != REDIS_OK || !r) {
        *rc = redis_fail(c, NULL, "read", err, err_len);
        return NULL;
    }
    return r;
}

/* Reads the replies of append_reads, in its order, into the snapshot. */
static int read_snapshot(redisContext *c, struct snapshot *s, char *err, size_t err_len)
{
    long long *ints[] = {&s->pending, &s->scheduled, &s->scheduled_due, &s->dead};
    static const char *const what[] = {"LLEN pending", "ZCARD scheduled", "ZCOUNT scheduled",
                                       "LLEN dead"};
    int rc = EXIT_OK;
    redisReply *r;
    for (size_t i = 0; i < 4; i++) {
        if (!(r = next_reply(c, &rc, err, err_len)))
            return rc;
        if (!reply_int(r, ints[i]))
            rc = redis_fail(c, r, what[i], err, err_len);
        freeReplyObject(r);
        if (rc != EXIT_OK)
            return rc;
    }
    for (int i = 0; i < 2; i++) {
        if (!(r = next_reply(c, &rc, err, err_len)))
            return rc;
        if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
            rc = redis_fail(c, r, i == 0 ? "ZRANGE consumers" : "HGETALL stats", err, err_len);
            freeReplyObject(r);
            return rc;
        }
        *(i == 0 ? &s->consumers : &s->counters) = r;
    }
    for (int i = 0; i < 2; i++) {
        if (!(r = next_reply(c, &rc, err, err_len)))
            return rc;
        if (!reply_counter(r, i == 0 ? &s->rate_cur : &s->rate_prev))
            rc = redis_fail(c, r, "GET rate", err, err_len);
        freeReplyObject(r);
        if (rc != EXIT_OK)
            return rc;
    }
    for (size_t i = 0; i < s->n_procs; i++) {
        if (!(r = next_reply(c, &rc, err, err_len)))
            return rc;
        if (!reply_int(r, &s->procs[i].count))
            rc = redis_fail(c, r, "LLEN processing", err, err_len);
        freeReplyObject(r);
        if (rc != EXIT_OK)
            return rc;
    }
    return EXIT_OK;
}

/* Connects and reads a whole snapshot: TIME, the SCAN loop, then one pipeline. */
static int take_snapshot(const admin_opts *o, struct snapshot *s, char *err, size_t err_len)
{
    keys_queue k;
    int rc = EXIT_OK;
    memset(s, 0, sizeof *s);
    redisContext *c = admin_connect(o, &k, &rc, err, err_len);
    if (!c)
        return rc;
    if ((rc = redis_now_ms(c, &s->now_ms, err, err_len)) != EXIT_OK)
        goto out;
    if ((rc = scan_processing(c, &k, s, err, err_len)) != EXIT_OK)
        goto out;
    if (append_reads(c, &k, s) != 0) {
        rc = fail(err, err_len, EXIT_SOFTWARE, "out of memory");
        goto out;
    }
    rc = read_snapshot(c, s, err, err_len);
out:
    redisFree(c);
    return rc;
}

/* The processing count of a consumer (0 when it holds nothing). */
static long long processing_of(const struct snapshot *s, const char *consumer)
{
    for (size_t i = 0; i < s->n_procs; i++)
        if (strcmp(s->procs[i].consumer, consumer) == 0)
            return s->procs[i].count;
    return 0;
}

/* 1 when a consumer holding a processing list is in the heartbeat set. */
static int is_registered(const struct snapshot *s, const char *consumer)
{
    for (size_t i = 0; i + 1 < s->consumers->elements; i += 2)
        if (strcmp(s->consumers->element[i]->str, consumer) == 0)
            return 1;
    return 0;
}

/* Heartbeat age of the consumer at index i (a pair index) of the heartbeat set. */
static int64_t heartbeat_age(const struct snapshot *s, size_t i)
{
    int64_t beat = (int64_t)strtoll(s->consumers->element[i + 1]->str, NULL, 10);
    int64_t age = s->now_ms - beat;
    return age < 0 ? 0 : age;
}

/* prev × (1 − s/60) + current: a sliding one-minute window over two counters. */
static double sent_per_min(const struct snapshot *s)
{
    double into = (double)(s->now_ms % 60000) / 60000.0;
    return (double)s->rate_prev * (1.0 - into) + (double)s->rate_cur;
}

/* ------------------------------------------------------------------ stats */

/* The counters object: the known counters always, then any other field. NULL when
 * memory ran out. */
static json_object *counters_json(const struct snapshot *s)
{
    json_object *o = json_object_new_object();
    int ok = o != NULL;
    for (size_t i = 0; ok && i < sizeof known_counters / sizeof known_counters[0]; i++)
        ok = admin_json_set(o, known_counters[i], json_object_new_int64(0)) == 0;
    for (size_t i = 0; ok && i + 1 < s->counters->elements; i += 2) {
        const char *name = s->counters->element[i]->str;
        int64_t v = (int64_t)strtoll(s->counters->element[i + 1]->str, NULL, 10);
        ok = admin_json_set(o, name, json_object_new_int64(v)) == 0;
    }
    if (!ok) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

/* The processing object, {consumer: jobs held}. NULL when memory ran out. */
static json_object *processing_json(const struct snapshot *s)
{
    json_object *o = json_object_new_object();
    int ok = o != NULL;
    for (size_t i = 0; ok && i < s->n_procs; i++)
        ok = admin_json_set(o, s->procs[i].consumer,
                            json_object_new_int64(s->procs[i].count)) == 0;
    if (!ok) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

/* {id, heartbeat_age_ms, processing} for each consumer of the heartbeat set. NULL when
 * memory ran out. */
static json_object *consumers_array(const struct snapshot *s)
{
    json_object *a = json_object_new_array();
    int ok = a != NULL;
    for (size_t i = 0; ok && i + 1 < s->consumers->elements; i += 2) {
        const char *id = s->consumers->element[i]->str;
        json_object *o = json_object_new_object();
        if (!o || json_object_array_add(a, o) != 0) {
            json_object_put(o);
            ok = 0;
        } else {
            ok = admin_json_set(o, "id", json_object_new_string(id)) == 0 &&
                 admin_json_set(o, "heartbeat_age_ms",
                                json_object_new_int64(heartbeat_age(s, i))) == 0 &&
                 admin_json_set(o, "processing",
                                json_object_new_int64(processing_of(s, id))) == 0;
        }
    }
    if (!ok) {
        json_object_put(a);
        a = NULL;
    }
    return a;
}

/* The whole stats object, keys as `mailroom stats --help` lists them. NULL when memory
 * ran out. Every member goes through admin_json_set, which owns it from then on. */
static json_object *stats_json(const struct snapshot *s)
{
    char rate[32];
    json_object *o = json_object_new_object();
    snprintf(rate, sizeof rate, "%.1f", sent_per_min(s));
    if (!o || admin_json_set(o, "pending", json_object_new_int64(s->pending)) != 0 ||
        admin_json_set(o, "scheduled", json_object_new_int64(s->scheduled)) != 0 ||
        admin_json_set(o, "scheduled_due", json_object_new_int64(s->scheduled_due)) != 0 ||
        admin_json_set(o, "dead", json_object_new_int64(s->dead)) != 0 ||
        admin_json_set(o, "processing", processing_json(s)) != 0 ||
        admin_json_set(o, "consumers", consumers_array(s)) != 0 ||
        admin_json_set(o, "counters", counters_json(s)) != 0 ||
        admin_json_set(o, "sent_per_min",
                       json_object_new_double_s(strtod(rate, NULL), rate)) != 0) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

/* The readable form of stats: one "name  value" line per figure. */
static void print_stats_text(const struct snapshot *s, const char *queue)
{
    long long held = 0;
    for (size_t i = 0; i < s->n_procs; i++)
        held += s->procs[i].count;
    printf("queue         %s\n", queue);
    printf("pending       %lld\n", s->pending);
    printf("scheduled     %lld (%lld due)\n", s->scheduled, s->scheduled_due);
    printf("processing    %lld\n", held);
    for (size_t i = 0; i < s->n_procs; i++) {
        printf("  ");
        admin_put_clean(s->procs[i].consumer, stdout);
        printf("  %lld\n", s->procs[i].count);
    }
    printf("dead          %lld\n", s->dead);
    printf("consumers     %zu\n", s->consumers->elements / 2);
    for (size_t i = 0; i + 1 < s->consumers->elements; i += 2) {
        printf("  ");
        admin_put_clean(s->consumers->element[i]->str, stdout);
        printf("  heartbeat %.1f s ago, processing %lld\n",
               (double)heartbeat_age(s, i) / 1000.0,
               processing_of(s, s->consumers->element[i]->str));
    }
    printf("counters     ");
    for (size_t k = 0; k < sizeof known_counters / sizeof known_counters[0]; k++) {
        long long v = 0;
        for (size_t i = 0; i + 1 < s->counters->elements; i += 2)
            if (strcmp(s->counters->element[i]->str, known_counters[k]) == 0)
                v = strtoll(s->counters->element[i + 1]->str, NULL, 10);
        printf(" %s %lld", known_counters[k], v);
    }
    printf("\nsent/min      %.1f\n", sent_per_min(s));
}

int admin_stats(const admin_opts *o, char *err, size_t err_len)
{
    struct snapshot s;
    json_object *j = NULL;
    int rc = take_snapshot(o, &s, err, err_len);
    if (rc != EXIT_OK)
        goto out;
    if (o->json) {
        if (!(j = stats_json(&s))) {
            rc = fail(err, err_len, EXIT_SOFTWARE, "stats: out of memory");
            goto out;
        }
        if ((rc = admin_print_json_line(j, err, err_len)) != EXIT_OK)
            goto out;
    } else {
        print_stats_text(&s, o->queue);
    }
    rc = admin_flush_stdout("stats", err, err_len);
out:
    json_object_put(j);
    snapshot_free(&s);
    return rc;
}

/* ------------------------------------------------------------------ consumers */

/* One consumer line: registered ones have an age; holders of a processing list that
 * never heart-beat (or were dropped from the set) are "unregistered". */
static int print_consumer(const char *id, int64_t age_ms, int registered, long long held,
                          const admin_opts *o, char *err, size_t err_len)
{
    const char *state = !registered                  ? "unregistered"
                        : age_ms > o->dead_after_ms ? "silent"
                                                     : "alive";
    if (!o->json) {
        admin_put_clean(id, stdout);
        if (registered)
            printf("  %-8s heartbeat %.1f s ago, processing %lld\n", state,
                   (double)age_ms / 1000.0, held);
        else
            printf("  %-8s no heartbeat, processing %lld\n", state, held);
        return EXIT_OK;
    }
    json_object *j = json_object_new_object();
    int rc = EXIT_OK;
    if (!j || admin_json_set(j, "id", json_object_new_string(id)) != 0 ||
        (registered ? admin_json_set(j, "heartbeat_age_ms", json_object_new_int64(age_ms))
                    : json_object_object_add(j, "heartbeat_age_ms", NULL)) != 0 ||
        admin_json_set(j, "alive", json_object_new_boolean(strcmp(state, "alive") == 0)) != 0 ||
        admin_json_set(j, "state", json_object_new_string(state)) != 0 ||
        admin_json_set(j, "processing", json_object_new_int64(held)) != 0)
        rc = fail(err, err_len, EXIT_SOFTWARE, "consumers: out of memory");
    else
        rc = admin_print_json_line(j, err, err_len);
    json_object_put(j);
    return rc;
}

int admin_consumers(const admin_opts *o, char *err, size_t err_len)
{
    struct snapshot s;
    int rc = take_snapshot(o, &s, err, err_len);
    if (rc != EXIT_OK)
        goto out;
    for (size_t i = 0; rc == EXIT_OK && i + 1 < s.consumers->elements; i += 2) {
        const char *id = s.consumers->element[i]->str;
        rc = print_consumer(id, heartbeat_age(&s, i), 1, processing_of(&s, id), o, err,
                            err_len);
    }
    for (size_t i = 0; rc == EXIT_OK && i < s.n_procs; i++)
        if (!is_registered(&s, s.procs[i].consumer))
            rc = print_consumer(s.procs[i].consumer, 0, 0, s.procs[i].count, o, err, err_len);
    if (rc == EXIT_OK)
        rc = admin_flush_stdout("consumers", err, err_len);
out:
    snapshot_free(&s);
    return rc;
}

/* ------------------------------------------------------------------ watch */

static volatile sig_atomic_t watch_stop;

static void on_stop_signal(int sig)
{
    watch_stop = sig;
}

/* SIGINT and SIGTERM set watch_stop; no SA_RESTART, so poll() returns at once. */
static int install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return -1;
    return 0;
}

/* The ANSI colour of a state: sent green, retrying yellow, failed/rejected red. */
static const char *state_colour(const char *state)
{
    if (strcmp(state, "sent") == 0)
        return "\033[32m";
    if (strcmp(state, "retrying") == 0)
        return "\033[33m";
    if (strcmp(state, "failed") == 0 || strcmp(state, "rejected") == 0)
        return "\033[31m";
    return NULL;
}

/*
 * Prints one event readably: time, state (coloured when asked), id, attempt number,
 * then the error when there is one, else the SMTP reply. A payload that is not a JSON
 * object is shown masked after a "?".
 */
static void print_event_text(const char *payload, size_t len, int colour)
{
    json_object *ev = parse_json(payload, len);
    if (!ev || !json_object_is_type(ev, json_type_object)) {
        fputs("? ", stdout);
        admin_put_clean(payload, stdout);
        fputc('\n', stdout);
        json_object_put(ev);
        return;
    }
    const char *at = jstr(ev, "at"), *state = jstr(ev, "state"), *id = jstr(ev, "id");
    const char *reply = jstr(ev, "smtp_reply"), *error = jstr(ev, "error");
    json_object *attempts = NULL;
    json_object_object_get_ex(ev, "attempts", &attempts);
    const char *on = colour && state ? state_colour(state) : NULL;
    size_t state_len = state ? strlen(state) : 1;

    admin_put_clean(at ? at : "-", stdout);
    fputs("  ", stdout);
    if (on)
        fputs(on, stdout);
    admin_put_clean(state ? state : "?", stdout);
    if (on)
        fputs("\033[0m", stdout);
    printf("%*s  ", state_len < 9 ? (int)(9 - state_len) : 0, "");
    admin_put_clean(id ? id : "-", stdout);
    printf("  #%d", attempts ? json_object_get_int(attempts) : 0);
    const char *detail = error && *error ? error : reply;
    if (detail && *detail) {
        fputs("  ", stdout);
        admin_put_clean(detail, stdout);
    }
    fputc('\n', stdout);
    json_object_put(ev);
}

/* Prints one pub/sub message if it is a "message" on our channel; returns 1 if so. */
static int print_message(const redisReply *r, const admin_opts *o, int colour)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") != 0 ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return 0;
    const redisReply *p = r->element[2];
    if (o->json) {
        fwrite(p->str, 1, p->len, stdout);
        fputc('\n', stdout);
    } else {
        print_event_text(p->str, p->len, colour);
    }
    return 1;
}

/* Subscribes to the status channel and waits for the server's confirmation. */
static int watch_subscribe(redisContext *c, const keys_queue *k, char *err, size_t err_len)
{
    const char *argv[] = {"SUBSCRIBE", k->status};
    redisReply *r = redisCommandArgv(c, 2, argv, NULL);
    int rc = EXIT_OK;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        rc = redis_fail(c, r, "SUBSCRIBE", err, err_len);
    freeReplyObject(r);
    return rc;
}

/*
 * The event loop: take every complete reply hiredis' reader already holds, then poll
 * the socket for at most WATCH_POLL_MS (or what is left of the idle timeout) and feed
 * the reader what arrived. Ends on a signal, the count, the idle timeout (all EXIT_OK)
 * or a lost connection (EXIT_UNAVAIL).
 */
static int watch_loop(redisContext *c, const admin_opts *o, char *err, size_t err_len)
{
    int colour = !o->json && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
    long seen = 0;
    int64_t last = clock_now_ms();
    for (;;) {
        if (watch_stop)
            return EXIT_OK;
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK)
            return fail(err, err_len, EXIT_UNAVAIL, "watch: protocol error from Redis");
        if (reply) {
            int printed = print_message(reply, o, colour);
            freeReplyObject(reply);
            if (!printed)
                continue;
            int rc = admin_flush_stdout("watch", err, err_len);
            if (rc != EXIT_OK)
                return rc;
            last = clock_now_ms();
            if (o->count > 0 && ++seen >= o->count)
                return EXIT_OK;
            continue;
        }
        int64_t wait = WATCH_POLL_MS;
        if (o->timeout_ms > 0) {
            int64_t left = last + o->timeout_ms - clock_now_ms();
            if (left <= 0)
                return EXIT_OK;
            if (left < wait)
                wait = left;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int n = poll(&pfd, 1, (int)wait);
        if (n < 0 && errno != EINTR)
            return fail(err, err_len, EXIT_UNAVAIL, "watch: poll: %s", strerror(errno));
        if (n > 0 && redisBufferRead(c) != REDIS_OK)
            return fail(err, err_len, EXIT_UNAVAIL, "watch: subscription lost: %s",
                        c->errstr);
    }
}

int admin_watch(const admin_opts *o, char *err, size_t err_len)
{
    keys_queue k;
    int rc = EXIT_OK;
    if (install_stop_handlers() != 0)
        return fail(err, err_len, EXIT_SOFTWARE, "watch: sigaction: %s", strerror(errno));
    redisContext *c = admin_connect(o, &k, &rc, err, err_len);
    if (!c)
        return rc;
    if ((rc = watch_subscribe(c, &k, err, err_len)) == EXIT_OK)
        rc = watch_loop(c, o, err, err_len);
    redisFree(c);
    return rc;
}

/* ------------------------------------------------------------------ dead letters */

/* One dead-letter entry as a readable table row: at, state, id, reason. */
static void print_dead_text(const char *raw, size_t len)
{
    json_object *e = parse_json(raw, len);
    if (!e || !json_object_is_type(e, json_type_object)) {
        fputs("?  (not a JSON object)\n", stdout);
        json_object_put(e);
        return;
    }
    const char *at = jstr(e, "at"), *state = jstr(e, "state"), *id = jstr(e, "id");
    const char *reason = jstr(e, "reason");
    admin_put_clean(at ? at : "-", stdout);
    fputs("  ", stdout);
    admin_put_clean(state ? state : "-", stdout);
    size_t sl = state ? strlen(state) : 1;
    printf("%*s  ", sl < 8 ? (int)(8 - sl) : 0, "");
    admin_put_clean(id ? id : "-", stdout);
    fputs("  ", stdout);
    admin_put_clean(reason ? reason : "", stdout);
    fputc('\n', stdout);
    json_object_put(e);
}

int admin_dead_list(const admin_opts *o, char *err, size_t err_len)
{
    keys_queue k;
    int rc = EXIT_OK;
    char stop[32];
    redisReply *r = NULL;
    redisContext *c = admin_connect(o, &k, &rc, err, err_len);
    if (!c)
        return rc;
    snprintf(stop, sizeof stop, "%ld", o->limit - 1);
    const char *argv[] = {"LRANGE", k.dead, "0", stop};
    r = redisCommandArgv(c, 4, argv, NULL);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        rc = redis_fail(c, r, "dead list", err, err_len);
        goto out;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        if (o->json) {
            fwrite(e->str, 1, e->len, stdout);
            fputc('\n', stdout);
        } else {
            print_dead_text(e->str, e->len);
        }
    }
    rc = admin_flush_stdout("dead list", err, err_len);
out:
    freeReplyObject(r);
    redisFree(c);
    return rc;
}

/* Prints a count as "<n> <what>" or {"<key>":n}. */
static int print_count(const admin_opts *o, const char *key, long long n, const char *what,
                       char *err, size_t err_len)
{
    if (!o->json) {
        printf("%lld %s\n", n, what);
        return admin_flush_stdout(key, err, err_len);
    }
    json_object *j = json_object_new_object();
    int rc;
    if (!j || admin_json_set(j, key, json_object_new_int64(n)) != 0)
        rc = fail(err, err_len, EXIT_SOFTWARE, "out of memory");
    else if ((rc = admin_print_json_line(j, err, err_len)) == EXIT_OK)
        rc = admin_flush_stdout(key, err, err_len);
    json_object_put(j);
    return rc;
}

int admin_dead_retry(const admin_opts *o, char *err, size_t err_len)
{
    keys_queue k;
    int rc = EXIT_OK;
    long long n = 0;
    char now[CLOCK_ISO_MAX], ttl[32];
    redisReply *r = NULL;
    redisContext *c = admin_connect(o, &k, &rc, err, err_len);
    if (!c)
        return rc;
    clock_format_iso(clock_now_ms(), 1, now);
    /* a retried job's record lives as long again as a new job's */
    snprintf(ttl, sizeof ttl, "%ld", KEYS_STATUS_TTL_DEFAULT_S);
    const char *args[] = {k.dead, k.pending, o->all ? "" : o->id, k.job_prefix, now, ttl};
    r = script_run(c, SCRIPT_DEAD_RETRY, 2, 6, args, NULL);
    if (!reply_int(r, &n)) {
        rc = redis_fail(c, r, "dead retry", err, err_len);
        goto out;
    }
    if ((rc = print_count(o, "retried", n, "returned to pending", err, err_len)) != EXIT_OK)
        goto out;
    if (n == 0 && !o->all)
        rc = fail(err, err_len, EXIT_NOTFOUND, "dead retry: no dead-letter entry for job '%s'",
                  o->id);
out:
    freeReplyObject(r);
    redisFree(c);
    return rc;
}

int admin_dead_purge(const admin_opts *o, char *err, size_t err_len)
{
    keys_queue k;
    int rc = EXIT_OK;
    long long n = 0;
    char age[32] = "";
    redisReply *r = NULL;
    redisContext *c = admin_connect(o, &k, &rc, err, err_len);
    if (!c)
        return rc;
    if (o->older_than_ms >= 0)
        snprintf(age, sizeof age, "%lld", (long long)o->older_than_ms);
    const char *args[] = {k.dead, age};
    r = script_run(c, SCRIPT_DEAD_PURGE, 1, 2, args, NULL);
    if (!reply_int(r, &n)) {
        rc = redis_fail(c, r, "dead purge", err, err_len);
        goto out;
    }
    rc = print_count(o, "purged", n, "purged", err, err_len);
out:
    freeReplyObject(r);
    redisFree(c);
    return rc;
}
