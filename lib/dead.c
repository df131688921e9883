/*
 * dead.c — the dead list (mailroom_admin.h): mailroom_dead_list() reads the newest
 * entries, mailroom_dead_retry() and mailroom_dead_purge() change the list with one
 * Lua script each (common/lua/dead_retry.lua, dead_purge.lua), so that a consumer
 * pushing a dead letter meanwhile can neither lose one nor see half a retry.
 *
 * A list the caller gets owns the LRANGE reply and the json-c trees its entries were
 * read from; every string of it borrows from those, and mailroom_dead_letters_free()
 * releases all.
 */
#define _POSIX_C_SOURCE 200809L
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "handle.h"
#include "job.h"
#include "mailroom_admin.h"
#include "script.h"

/* What mailroom_dead_list hands out: the public part first. */
typedef struct dead_impl {
    mailroom_dead_letters pub;
    redisReply *reply;   /* LRANGE, owned */
    json_object **trees; /* one per entry (NULL when not JSON), owned */
    mailroom_dead_letter *items;
} dead_impl;

/* Parses one JSON text of len bytes leniently (an entry is shown whatever it holds);
 * NULL when it is not JSON or memory ran out. */
static json_object *parse_json(const char *s, size_t len)
{
    if (len > (size_t)INT_MAX)
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

/* The string member key of o, or NULL when absent or not a string. */
static const char *jstr(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* Fills one entry from its raw text; *tree gets the parsed object (owned by the list). */
static void read_entry(const redisReply *e, mailroom_dead_letter *d, json_object **tree)
{
    *d = (mailroom_dead_letter){.raw = e->str, .raw_len = e->len};
    json_object *o = parse_json(e->str, e->len);
    *tree = o;
    if (!o || !json_object_is_type(o, json_type_object))
        return;
    d->is_object = 1;
    d->at = jstr(o, "at");
    d->state = jstr(o, "state");
    d->id = jstr(o, "id");
    d->reason = jstr(o, "reason");
    d->consumer = jstr(o, "consumer");
    d->job = jstr(o, "job");
}

/* The entries of an LRANGE reply (only its string elements). 0, or -1 (memory). */
static int fill_entries(dead_impl *d)
{
    const redisReply *r = d->reply;
    size_t n = 0;
    d->items = calloc(r->elements ? r->elements : 1, sizeof *d->items);
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    d->trees = calloc(r->elements ? r->elements : 1, sizeof *d->trees);
    if (!d->items || !d->trees)
        return -1;
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        read_entry(r->element[i], &d->items[n], &d->trees[n]);
        n++;
    }
    d->pub = (mailroom_dead_letters){d->items, n};
    return 0;
}

/* LRANGE dead 0 limit-1 into d->reply. 0, or -1 with m->err set. */
static int read_dead(mailroom *m, long limit, dead_impl *d)
{
    char stop[32];
    if (handle_connect(m) != 0)
        return -1;
    snprintf(stop, sizeof stop, "%ld", (limit > 0 ? limit : MAILROOM_DEAD_LIST_DEFAULT) - 1);
    const char *argv[] = {"LRANGE", m->keys.dead, "0", stop};
    redisReply *r = redisCommandArgv(m->redis, 4, argv, NULL);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        handle_reply_failed(m, r, "dead list");
        freeReplyObject(r);
        return -1;
    }
    d->reply = r;
    if (fill_entries(d) != 0)
        return mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory");
    return 0;
}

/* mailroom_dead_list (mailroom_admin.h): the result owns the reply and the parses. */
int mailroom_dead_list(mailroom *m, long limit, mailroom_dead_letters **out)
{
    if (!m)
        return MAILROOM_EINVAL;
    if (!out)
        return handle_result(m, mr_fail(&m->err, MAILROOM_EINVAL, "dead list: out is NULL"));
    *out = NULL;
    dead_impl *d = calloc(1, sizeof *d);
    if (!d)
        return handle_result(m, mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory"));
    int r = read_dead(m, limit, d);
    if (r == 0) {
        *out = &d->pub;
        d = NULL;
    }
    mailroom_dead_letters_free(d ? &d->pub : NULL);
    return handle_result(m, r);
}

/* Releases the parses, the arrays and the reply the entries borrow from. */
void mailroom_dead_letters_free(mailroom_dead_letters *l)
{
    dead_impl *d = (dead_impl *)l; /* pub is the first member */
    if (!d)
        return;
    for (size_t i = 0; d->trees && i < d->pub.n; i++)
        json_object_put(d->trees[i]);
    free(d->trees);
    free(d->items);
    freeReplyObject(d->reply);
    free(d);
}

/* Retries the entries of id (NULL: all). 0 with *n, or -1 with m->err set. */
static int dead_retry(mailroom *m, const char *id, long long *n)
{
    char now[CLOCK_ISO_MAX];
    if (id && !job_id_valid(id))
        return mr_fail(&m->err, MAILROOM_EINVAL, "dead retry: '%.64s' is not a job id", id);
    if (handle_connect(m) != 0)
        return -1;
    clock_format_iso(clock_now_ms(), 1, now);
    dead_retry_args a = {0};
    a.v[DEAD_RETRY_KEY_dead] = m->keys.dead;
    a.v[DEAD_RETRY_KEY_pending] = m->keys.pending;
    a.v[DEAD_RETRY_ARG_id] = id ? id : "";
    a.v[DEAD_RETRY_ARG_job_prefix] = m->keys.job_prefix;
    a.v[DEAD_RETRY_ARG_now] = now;
    a.v[DEAD_RETRY_ARG_ttl] = m->ttl_arg; /* a retried record lives as long as a new one */
    if (handle_script_count(m, SCRIPT_DEAD_RETRY, a.v, "dead retry", n) != 0)
        return -1;
    if (*n == 0 && id)
        return mr_fail(&m->err, MAILROOM_ENOTFOUND, "dead retry: no dead-letter entry for job '%s'",
                       id);
    return 0;
}

/* mailroom_dead_retry (mailroom_admin.h). */
int mailroom_dead_retry(mailroom *m, const char *id, long long *retried)
{
    long long n = 0;
    if (!m)
        return MAILROOM_EINVAL;
    int r = dead_retry(m, id, &n);
    if (retried)
        *retried = r == 0 ? n : 0;
    return handle_result(m, r);
}

/* mailroom_dead_purge (mailroom_admin.h): "" as the script's age means every entry. */
int mailroom_dead_purge(mailroom *m, long long older_than_ms, long long *purged)
{
    char age[32] = "";
    long long n = 0;
    if (!m)
        return MAILROOM_EINVAL;
    int r = handle_connect(m);
    if (r == 0) {
        if (older_than_ms >= 0)
            snprintf(age, sizeof age, "%lld", older_than_ms);
        dead_purge_args a = {0};
        a.v[DEAD_PURGE_KEY_dead] = m->keys.dead;
        a.v[DEAD_PURGE_ARG_older_than] = age;
        r = handle_script_count(m, SCRIPT_DEAD_PURGE, a.v, "dead purge", &n);
    }
    if (purged)
        *purged = r == 0 ? n : 0;
    return handle_result(m, r);
}
