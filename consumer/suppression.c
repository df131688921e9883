/* suppression: see suppression.h. */
#define _DEFAULT_SOURCE
#include "suppression.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "log.h"
#include "suppress.h"
#include "worker_redis.h"

/* Digits only, 1 to max of them. */
static int digits(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

/* One code of the list: "550", "5.1.1" or "5.1.*". */
static int code_valid(const char *s, size_t len)
{
    if (len == 3)
        return s[0] == '5' && digits(s, 3, 3);
    if (len < 5 || s[0] != '5' || s[1] != '.')
        return 0;
    const char *dot = memchr(s + 2, '.', len - 2);
    if (!dot || !digits(s + 2, (size_t)(dot - s - 2), 3))
        return 0;
    size_t rest = len - (size_t)(dot + 1 - s);
    return (rest == 1 && dot[1] == '*') || digits(dot + 1, rest, 3);
}

int suppress_codes_valid(const char *list)
{
    if (!*list)
        return 0;
    for (const char *p = list;;) {
        size_t len = strcspn(p, ",");
        if (!code_valid(p, len))
            return 0;
        if (!p[len])
            return 1;
        p += len + 1;
    }
}

int suppress_codes_match(const char *list, int code, const char *enhanced)
{
    char reply[8];
    snprintf(reply, sizeof reply, "%d", code);
    size_t elen = strlen(enhanced);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 3 && strncmp(p, reply, 3) == 0)
            return 1;
        if (len > 3 && p[len - 1] == '*' && elen > len - 1 && strncmp(p, enhanced, len - 1) == 0)
            return 1;
        if (len > 3 && len == elen && strncmp(p, enhanced, len) == 0)
            return 1;
        p += len + (p[len] ? 1 : 0);
    }
    return 0;
}

/* Every distinct recipient of the job in its suppression form and as given: forms[]
 * and shown[] point into t->rcpt (reused as scratch here); returns how many, -1 when
 * memory ran out. */
static long recipients_of(task *t, const char **forms, const char **shown)
{
    const job *j = &t->job;
    const char *const *lists[3] = {j->to, j->cc, j->bcc};
    size_t counts[3] = {j->n_to, j->n_cc, j->n_bcc}, at[JOB_MAX_RCPT] = {0}, n = 0;
    buf_reset(&t->rcpt);
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; i < counts[l] && n < JOB_MAX_RCPT; i++) {
            addr_mailbox mb;
            char form[ADDR_SPEC_MAX + 1];
            if (addr_parse(lists[l][i], strlen(lists[l][i]), &mb, NULL) != 0 ||
                suppress_address(mb.spec, strlen(mb.spec), form, NULL) != 0)
                continue; /* cannot happen: validated by job_decode */
            at[n++] = t->rcpt.len;
            if (buf_append(&t->rcpt, form, strlen(form) + 1) != 0 ||
                buf_append(&t->rcpt, mb.spec, strlen(mb.spec) + 1) != 0)
                return -1;
        }
    long distinct = 0;
    for (size_t i = 0; i < n; i++) {
        const char *form = t->rcpt.data + at[i];
        int seen = 0;
        for (long k = 0; k < distinct && !seen; k++)
            seen = strcmp(forms[k], form) == 0;
        if (!seen) {
            forms[distinct] = form;
            shown[distinct++] = form + strlen(form) + 1;
        }
    }
    return distinct;
}

/* Adds one listed recipient to t->suppressed, its reason from the entry's JSON. */
static int note_listed(task *t, const char *form, const char *shown, const redisReply *entry)
{
    json_object *e = json_tokener_parse(entry->str);
    json_object *reason = NULL, *at = NULL;
    int has_at = e && json_object_object_get_ex(e, "at", &at) && json_object_get_string_len(at);
    int has_reason = e && json_object_object_get_ex(e, "reason", &reason);
    char why[512];
    snprintf(why, sizeof why, "suppressed%s%s: %s", has_at ? " since " : "",
             has_at ? json_object_get_string(at) : "",
             has_reason ? json_object_get_string(reason) : "on the suppression list");
    json_object_put(e);
    char shown_why[512];
    mr_text_copy(shown_why, sizeof shown_why, why, strlen(why));
    if (buf_append(&t->suppressed, form, strlen(form) + 1) != 0 ||
        buf_append(&t->suppressed, shown, strlen(shown) + 1) != 0 ||
        buf_append(&t->suppressed, shown_why, strlen(shown_why) + 1) != 0)
        return -1;
    t->n_suppressed++;
    return 0;
}

int suppression_query_of(task *t, suppression_query *q)
{
    buf_reset(&t->suppressed);
    t->n_suppressed = 0;
    t->n_distinct = 0;
    long n = recipients_of(t, q->forms, q->shown);
    if (n < 0)
        return -1;
    q->argv[0] = "MGET";
    for (long i = 0; i < n; i++) {
        keys_suppress(q->forms[i], q->keys[i]);
        q->argv[i + 1] = q->keys[i];
    }
    q->n = (int)n;
    return 0;
}

int suppression_read(task *t, const suppression_query *q, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR)
        wr_log_refusal("the suppression lookup (MGET)", t->job.id, r->str);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)q->n)
        return -1;
    int found = 0;
    for (int i = 0; i < q->n; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING) {
            if (note_listed(t, q->forms[i], q->shown[i], r->element[i]) != 0)
                return -1;
            found++;
        }
    t->n_distinct = (size_t)q->n;
    return found;
}

int suppression_lookup(worker *w, task *t, suppression_query *q)
{
    if (q->n <= 0 || (!w->redis && wr_connect(w, 0) != 0))
        return 0;
    redisReply *r = redisCommandArgv(w->redis, q->n + 1, q->argv, NULL);
    int found = r ? suppression_read(t, q, r) : -1;
    if (!r || rconn_transient_error(r))
        wr_drop(w, r ? r->str : "MGET of the suppression list");
    freeReplyObject(r);
    return found;
}

int suppression_listed(const task *t, const char *envelope)
{
    const char *p = t->suppressed.data;
    for (size_t i = 0; i < t->n_suppressed; i++) {
        if (strcasecmp(p, envelope) == 0)
            return 1;
        for (int k = 0; k < 3; k++)
            p += strlen(p) + 1;
    }
    return 0;
}

/* The entry of a refused address, as docs/redis.md gives it, built with json-c. */
static const char *entry_json(json_object *e, const char *form, const task *t,
                              const smtp_rcpt_reply *r, const char *queue, const char *now)
{
    if (json_object_object_add(e, "address", json_object_new_string(form)) ||
        json_object_object_add(e, "reason", json_object_new_string(r->text)) ||
        json_object_object_add(e, "code", json_object_new_int(r->code)) ||
        json_object_object_add(e, "at", json_object_new_string(now)) ||
        json_object_object_add(e, "queue", json_object_new_string(queue)) ||
        json_object_object_add(e, "id", json_object_new_string(t->job.id)) ||
        json_object_object_add(e, "source", json_object_new_string("consumer")))
        return NULL;
    return json_object_to_json_string_ext(e,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Puts one refused recipient on the list. */
static void add_one(worker *w, const task *t, size_t i, const char *now)
{
    consumer_config *cfg = w->cfg;
    char form[ADDR_SPEC_MAX + 1], key[KEYS_NAME_MAX], ttl[24];
    const char *envelope = t->rcpt_ptrs[i];
    if (suppress_address(envelope, strlen(envelope), form, NULL) != 0)
        return;
    json_object *e = json_object_new_object();
    const char *entry =
        e ? entry_json(e, form, t, &t->txn.rcpt_replies[i], cfg->lanes[t->lane].keys.queue, now)
          : NULL;
    keys_suppress(form, key);
    snprintf(ttl, sizeof ttl, "%lld", (long long)cfg->suppress_for_ms);
    suppress_add_args a = {0};
    a.v[SUPPRESS_ADD_KEY_entry] = key;
    a.v[SUPPRESS_ADD_KEY_index] = KEYS_SUPPRESS_INDEX;
    a.v[SUPPRESS_ADD_ARG_address] = form;
    a.v[SUPPRESS_ADD_ARG_json] = entry;
    a.v[SUPPRESS_ADD_ARG_for_ms] = ttl;
    redisReply *r = entry ? wr_try(w, SCRIPT_SUPPRESS_ADD, a.v, a.len) : NULL;
    if (r)
        log_msg(LOG_WARN, t->job.id, "%s suppressed for %lld s: %s", t->shown_ptrs[i],
                (long long)(cfg->suppress_for_ms / 1000), t->txn.rcpt_replies[i].text);
    freeReplyObject(r);
    json_object_put(e);
}

void suppression_add_refused(worker *w, const task *t)
{
    const char *list = w->cfg->suppress_on;
    char now[CLOCK_ISO_MAX] = "";
    for (size_t i = 0; i < t->txn.n_rcpt && list[0]; i++) {
        const smtp_rcpt_reply *r = &t->txn.rcpt_replies[i];
        if (r->code < 500 || !suppress_codes_match(list, r->code, r->enhanced))
            continue;
        if (!now[0])
            clock_format_iso(clock_now_ms(), 1, now);
        add_one(w, t, i, now);
    }
}
