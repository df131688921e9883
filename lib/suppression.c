/*
 * suppression.c — the suppression list every queue of a deployment shares
 * (docs/redis.md): mailroom_suppressed() (mailroom.h) for applications, and the
 * operator calls mailroom_suppress_add(), _remove() and _list() (mailroom_admin.h).
 *
 * An address is always spelled as suppress_address() (common/suppress.h) spells it,
 * so the library finds the key a consumer wrote. An entry is one JSON string with an
 * expiry, mirrored by a member of the index zset scored with that expiry; both carry
 * the {suppress} hash tag, so one Lua script changes them together (suppress_add.lua,
 * suppress_remove.lua) and one reads a page of them, dropping lapsed members
 * (suppress_list.lua). Entries are read into the caller's fixed-size structures.
 */
#define _POSIX_C_SOURCE 200809L
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "handle.h"
#include "jobitem.h"
#include "script.h"
#include "suppress.h"

#define REASON_MAX 500   /* bytes of an operator's reason */
#define LIST_STRETCH 100 /* index members one script call looks at */
#define DEFAULT_REASON "added by an operator"

_Static_assert(MAILROOM_SUPPRESS_FOR_DEFAULT_MS == SUPPRESS_FOR_DEFAULT_MS,
               "the public default is common/suppress.h's");
_Static_assert(MAILROOM_ADDRESS_MAX == ADDR_SPEC_MAX + 1, "an address and its NUL");

/* The string member key of o copied into dst (cap bytes, cut on a UTF-8 boundary,
 * control characters masked); "" when absent or not a string. */
static void copy_member(json_object *o, const char *key, char *dst, size_t cap)
{
    json_object *v = NULL;
    dst[0] = '\0';
    if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        mr_text_copy(dst, cap, json_object_get_string(v), (size_t)json_object_get_string_len(v));
}

/* The entry's code: a number, or a string of digits; 0 for anything else. */
static int code_member(json_object *o)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, "code", &v))
        return 0;
    if (json_object_is_type(v, json_type_int))
        return json_object_get_int(v);
    if (json_object_is_type(v, json_type_string))
        return atoi(json_object_get_string(v));
    return 0;
}

/* Fills *out from an entry's JSON (len bytes), the address the list knows it by and
 * its expiry. An entry that is not a JSON object keeps only those two. */
static void read_entry(const char *json, size_t len, const char *address, long long expires_ms,
                       mailroom_suppression *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->address, sizeof out->address, "%s", address);
    out->expires_ms = expires_ms;
    json_tokener *tok = len <= INT_MAX ? json_tokener_new() : NULL;
    json_object *o = tok ? json_tokener_parse_ex(tok, json, (int)len) : NULL;
    if (o && json_object_is_type(o, json_type_object)) {
        copy_member(o, "reason", out->reason, sizeof out->reason);
        copy_member(o, "at", out->at, sizeof out->at);
        copy_member(o, "queue", out->queue, sizeof out->queue);
        copy_member(o, "id", out->id, sizeof out->id);
        copy_member(o, "source", out->source, sizeof out->source);
        out->code = code_member(o);
    }
    json_object_put(o);
    if (tok)
        json_tokener_free(tok);
}

/* The address in the list's spelling, and its entry's key. 0, or -1 with m->err. */
static int spell(mailroom *m, const char *what, const char *address,
                 char spelled[ADDR_SPEC_MAX + 1], char key[KEYS_NAME_MAX])
{
    if (!address)
        return mr_fail(&m->err, MAILROOM_EINVAL, "%s: address is NULL", what);
    if (suppress_address(address, strlen(address), spelled, &m->err) != 0)
        return mr_prefix(&m->err, "%s: '%.64s'", what, address);
    keys_suppress(spelled, key);
    return 0;
}

/* ------------------------------------------------------------------ check */

/* GET of the entry and ZSCORE of its index member (its expiry) in one round trip:
 * two commands the producer's ACL role grants on these keys alone. 0 with *out, or -1
 * with m->err set (MAILROOM_ENOTFOUND when there is no entry). */
static int read_one(mailroom *m, const char *address, const char *key, mailroom_suppression *out)
{
    redisReply *get = NULL, *score = NULL;
    const char *get_argv[] = {"GET", key};
    const char *score_argv[] = {"ZSCORE", KEYS_SUPPRESS_INDEX, address};
    int r = -1;
    if (redisAppendCommandArgv(m->redis, 2, get_argv, NULL) != REDIS_OK ||
        redisAppendCommandArgv(m->redis, 3, score_argv, NULL) != REDIS_OK) {
        handle_drop(m);
        return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    }
    if (redisGetReply(m->redis, (void **)&get) != REDIS_OK ||
        redisGetReply(m->redis, (void **)&score) != REDIS_OK) {
        handle_connection_failed(m, "suppressed");
        goto out;
    }
    if (get->type == REDIS_REPLY_NIL) {
        mr_fail(&m->err, MAILROOM_ENOTFOUND, "'%s' is not suppressed", address);
    } else if (get->type != REDIS_REPLY_STRING ||
               (score->type != REDIS_REPLY_STRING && score->type != REDIS_REPLY_NIL)) {
        handle_reply_failed(m, get->type != REDIS_REPLY_STRING ? get : score, "suppressed");
    } else {
        long long expires =
            score->type == REDIS_REPLY_STRING ? (long long)strtod(score->str, NULL) : 0;
        read_entry(get->str, get->len, address, expires, out);
        r = 0;
    }
out:
    freeReplyObject(get);
    freeReplyObject(score);
    return r;
}

/* mailroom_suppressed (mailroom.h). */
int mailroom_suppressed(mailroom *m, const char *address, mailroom_suppression *out)
{
    char spelled[ADDR_SPEC_MAX + 1], key[KEYS_NAME_MAX];
    mailroom_suppression scratch;
    if (!m)
        return MAILROOM_EINVAL;
    int r = spell(m, "suppressed", address, spelled, key);
    if (r == 0)
        r = handle_connect(m);
    if (r == 0)
        r = read_one(m, spelled, key, out ? out : &scratch);
    return handle_result(m, r);
}

/* ------------------------------------------------------------------ add, remove */

/* Checks an operator's reason and source. 0, or -1 with m->err set. */
static int check_words(mailroom *m, const char *reason, const char *source)
{
    size_t n = strlen(reason);
    int bad = n > REASON_MAX || !addr_utf8_valid(reason, n);
    for (size_t i = 0; !bad && i < n; i++)
        bad = (unsigned char)reason[i] < 0x20 || reason[i] == 0x7f;
    if (bad)
        return mr_fail(&m->err, MAILROOM_EINVAL,
                       "suppress add: the reason must be UTF-8 text of at most %d bytes without"
                       " control characters",
                       REASON_MAX);
    n = strlen(source);
    if (n == 0 || n > 31 || strspn(source, "abcdefghijklmnopqrstuvwxyz0123456789_-") != n)
        return mr_fail(&m->err, MAILROOM_EINVAL,
                       "suppress add: source must match [a-z0-9_-]{1,31}");
    return 0;
}

/* The entry's JSON (json-c), owned by *tree: {"address","reason","code","at","queue",
 * "id","source"}, code, queue and id null (no job refused it). NULL when memory ran
 * out. */
static const char *entry_json(const char *address, const char *reason, const char *at,
                              const char *source, json_object **tree)
{
    json_object *o = json_object_new_object();
    *tree = o;
    if (!o || json_object_object_add(o, "address", json_object_new_string(address)) != 0 ||
        json_object_object_add(o, "reason", json_object_new_string(reason)) != 0 ||
        json_object_object_add(o, "code", NULL) != 0 ||
        json_object_object_add(o, "at", json_object_new_string(at)) != 0 ||
        json_object_object_add(o, "queue", NULL) != 0 ||
        json_object_object_add(o, "id", NULL) != 0 ||
        json_object_object_add(o, "source", json_object_new_string(source)) != 0)
        return NULL;
    return json_object_to_json_string_ext(o,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Writes the entry with suppress_add.lua; *expires gets its expiry. 0, or -1. */
static int add_run(mailroom *m, const char *spelled, const char *key, const char *json,
                   long long for_ms, long long *expires)
{
    char ms[32];
    snprintf(ms, sizeof ms, "%lld", for_ms);
    suppress_add_args a = {0};
    a.v[SUPPRESS_ADD_KEY_index] = KEYS_SUPPRESS_INDEX;
    a.v[SUPPRESS_ADD_KEY_entry] = key;
    a.v[SUPPRESS_ADD_ARG_address] = spelled;
    a.v[SUPPRESS_ADD_ARG_json] = json;
    a.v[SUPPRESS_ADD_ARG_for_ms] = ms;
    redisReply *r = script_run(m->redis, SCRIPT_SUPPRESS_ADD, a.v, NULL, &m->err);
    if (!r)
        return m->err.rc == MAILROOM_EREDIS ? handle_connection_failed(m, "suppress add") : -1;
    int rr = 0;
    if (r->type == REDIS_REPLY_INTEGER)
        *expires = r->integer;
    else
        rr = handle_reply_failed(m, r, "suppress add");
    freeReplyObject(r);
    return rr;
}

/* The whole add: checks, the entry, the script, the entry handed back. */
static int suppress_add(mailroom *m, const char *address, const char *reason, long long for_ms,
                        const char *source, mailroom_suppression *out)
{
    char spelled[ADDR_SPEC_MAX + 1], key[KEYS_NAME_MAX], at[CLOCK_ISO_MAX];
    json_object *tree = NULL;
    long long expires = 0;
    int r = -1;
    if (spell(m, "suppress add", address, spelled, key) != 0 || check_words(m, reason, source) != 0)
        goto out;
    clock_format_iso(clock_now_ms(), 1, at);
    const char *json = entry_json(spelled, reason, at, source, &tree);
    if (!json) {
        mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
        goto out;
    }
    if (handle_connect(m) != 0 || add_run(m, spelled, key, json, for_ms, &expires) != 0)
        goto out;
    if (out)
        read_entry(json, strlen(json), spelled, expires, out);
    r = 0;
out:
    json_object_put(tree);
    return r;
}

/* mailroom_suppress_add (mailroom_admin.h). */
int mailroom_suppress_add(mailroom *m, const char *address, const char *reason, long long for_ms,
                          const char *source, mailroom_suppression *out)
{
    if (!m)
        return MAILROOM_EINVAL;
    return handle_result(m, suppress_add(m, address, reason && *reason ? reason : DEFAULT_REASON,
                                         for_ms > 0 ? for_ms : MAILROOM_SUPPRESS_FOR_DEFAULT_MS,
                                         source ? source : "cli", out));
}

/* mailroom_suppress_remove (mailroom_admin.h): suppress_remove.lua. */
int mailroom_suppress_remove(mailroom *m, const char *address)
{
    char spelled[ADDR_SPEC_MAX + 1], key[KEYS_NAME_MAX];
    if (!m)
        return MAILROOM_EINVAL;
    if (spell(m, "suppress remove", address, spelled, key) != 0 || handle_connect(m) != 0)
        return handle_result(m, -1);
    suppress_remove_args a = {0};
    a.v[SUPPRESS_REMOVE_KEY_index] = KEYS_SUPPRESS_INDEX;
    a.v[SUPPRESS_REMOVE_KEY_entry] = key;
    a.v[SUPPRESS_REMOVE_ARG_address] = spelled;
    redisReply *r = script_run(m->redis, SCRIPT_SUPPRESS_REMOVE, a.v, NULL, &m->err);
    int rr;
    if (!r)
        rr = m->err.rc == MAILROOM_EREDIS ? handle_connection_failed(m, "suppress remove") : -1;
    else if (r->type != REDIS_REPLY_INTEGER)
        rr = handle_reply_failed(m, r, "suppress remove");
    else if (r->integer == 0)
        rr = mr_fail(&m->err, MAILROOM_ENOTFOUND, "suppress remove: '%s' is not suppressed",
                     spelled);
    else
        rr = 0;
    freeReplyObject(r);
    return handle_result(m, rr);
}

/* ------------------------------------------------------------------ list */

/* What mailroom_suppress_list hands out: the public part first. */
typedef struct list_impl {
    mailroom_suppressions pub;
    mailroom_suppression *items; /* room for the limit */
    char cursor[JOBS_CURSOR_MAX];
} list_impl;

void mailroom_suppressions_free(mailroom_suppressions *l)
{
    list_impl *x = (list_impl *)l; /* pub is the first member */
    if (!x)
        return;
    free(x->items);
    free(x);
}

/* 1 when r is one entry of suppress_list.lua: {address, expiry, json}. */
static int is_entry(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
           r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
           r->element[2]->type == REDIS_REPLY_STRING;
}

/* Takes one page's reply: its live entries until the list is full (the cursor passes
 * each), the total, and whether the walk ended. 0, or -1 with m->err set. */
static int take_page(mailroom *m, list_impl *x, const redisReply *r, long limit, long count,
                     jobs_cursor *cur, int *ended)
{
    int ok = r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
             r->element[0]->type == REDIS_REPLY_INTEGER &&
             r->element[1]->type == REDIS_REPLY_INTEGER;
    for (size_t i = 2; ok && i < r->elements; i++)
        ok = is_entry(r->element[i]);
    if (!ok)
        return handle_reply_failed(m, r, "suppress list");
    x->pub.total = r->element[0]->integer;
    size_t i = 2;
    for (; i < r->elements && x->pub.n < (size_t)limit; i++) {
        const redisReply *const *e = (const redisReply *const *)r->element[i]->element;
        read_entry(e[2]->str, e[2]->len, e[0]->str, (long long)strtod(e[1]->str, NULL),
                   &x->items[x->pub.n++]);
        jobs_cursor_pass(cur, e[1]->str);
    }
    *ended = i == r->elements && r->element[1]->integer < count;
    return 0;
}

/* One script call: count members from the cursor. 0, or -1 with m->err set. */
static int list_page(mailroom *m, list_impl *x, long limit, jobs_cursor *cur, int *ended)
{
    char skip[32], count[32];
    long n = limit - (long)x->pub.n < LIST_STRETCH ? limit - (long)x->pub.n : LIST_STRETCH;
    snprintf(skip, sizeof skip, "%lld", cur->skip);
    snprintf(count, sizeof count, "%ld", n);
    suppress_list_args a = {0};
    a.v[SUPPRESS_LIST_KEY_index] = KEYS_SUPPRESS_INDEX;
    a.v[SUPPRESS_LIST_ARG_max] = cur->at;
    a.v[SUPPRESS_LIST_ARG_skip] = skip;
    a.v[SUPPRESS_LIST_ARG_count] = count;
    a.v[SUPPRESS_LIST_ARG_prefix] = KEYS_SUPPRESS_PREFIX;
    redisReply *r = script_run(m->redis, SCRIPT_SUPPRESS_LIST, a.v, NULL, &m->err);
    if (!r)
        return m->err.rc == MAILROOM_EREDIS ? handle_connection_failed(m, "suppress list") : -1;
    int rr = take_page(m, x, r, limit, n, cur, ended);
    freeReplyObject(r);
    return rr;
}

/* The walk: pages until the list is full or ended. 0, or -1 with m->err set. */
static int list_walk(mailroom *m, list_impl *x, const char *cursor, long limit)
{
    jobs_cursor cur;
    int ended = 0;
    if (jobs_cursor_parse(cursor, 'x', &cur, &m->err) != 0)
        return mr_prefix(&m->err, "suppress list");
    if (handle_connect(m) != 0)
        return -1;
    while (!ended && x->pub.n < (size_t)limit)
        if (list_page(m, x, limit, &cur, &ended) != 0)
            return -1;
    if (!ended)
        jobs_cursor_format(&cur, x->cursor);
    x->pub.items = x->items;
    x->pub.next_cursor = x->cursor;
    return 0;
}

/* mailroom_suppress_list (mailroom_admin.h). */
int mailroom_suppress_list(mailroom *m, const char *cursor, long limit, mailroom_suppressions **out)
{
    if (!m)
        return MAILROOM_EINVAL;
    if (!out)
        return handle_result(m, mr_fail(&m->err, MAILROOM_EINVAL, "suppress list: out is NULL"));
    *out = NULL;
    if (limit > MAILROOM_SUPPRESS_LIST_MAX)
        return handle_result(m, mr_fail(&m->err, MAILROOM_EINVAL,
                                        "suppress list: limit %ld is over %d", limit,
                                        MAILROOM_SUPPRESS_LIST_MAX));
    if (limit <= 0)
        limit = MAILROOM_SUPPRESS_LIST_DEFAULT;
    list_impl *x = calloc(1, sizeof *x);
    if (x)
        x->items = calloc((size_t)limit, sizeof *x->items);
    if (!x || !x->items) {
        mailroom_suppressions_free(x ? &x->pub : NULL);
        return handle_result(m, mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory"));
    }
    int r = list_walk(m, x, cursor, limit);
    if (r == 0) {
        *out = &x->pub;
        x = NULL;
    }
    mailroom_suppressions_free(x ? &x->pub : NULL);
    return handle_result(m, r);
}
