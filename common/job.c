/*
 * job: decoding and validation of v1 jobs (see job.h and docs/protocol.md).
 *
 * Validation walks the json-c tree once: every top-level member must be known and of
 * its type, every string valid UTF-8 without NUL, every address well-formed, every
 * header allow-listed. The first problem found is reported in err as one line that
 * names the member; nothing from a secret ever goes into it.
 */
#include "job.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "error.h"
#include "clock.h"

#define JOB_MAX_DEPTH 3 /* object > array or headers object > string */

/* A name from the job as it may appear in an error message: at most 80 bytes of
 * printable ASCII, anything else as '?' (names reach logs, records and events). */
static const char *printable(const char *name, char out[81])
{
    size_t n = 0;
    for (; n < 80 && name[n]; n++)
        out[n] = (char)(name[n] >= 0x20 && name[n] < 0x7F ? name[n] : '?');
    out[n] = '\0';
    return out;
}

int job_id_valid(const char *id)
{
    size_t n = 0;
    for (const char *p = id; *p; p++, n++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok || n >= JOB_ID_MAX)
            return 0;
    }
    return n > 0;
}

int job_header_allowed(const char *name)
{
    if (strcasecmp(name, "List-Unsubscribe") == 0 ||
        strcasecmp(name, "List-Unsubscribe-Post") == 0 || strcasecmp(name, "List-Id") == 0)
        return 1;
    if (strncasecmp(name, "X-", 2) != 0 || strncasecmp(name, "X-Mailroom-", 11) == 0)
        return 0;
    size_t n = strlen(name);
    if (n < 3 || n > 76)
        return 0;
    for (size_t i = 2; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* Checks one string value: UTF-8, no NUL; no control characters unless allow_ctl
 * (bodies may carry tabs and line breaks). */
static int check_text(json_object *o, const char *what, int allow_ctl, size_t max, mr_error *err)
{
    const char *s = json_object_get_string(o);
    size_t len = (size_t)json_object_get_string_len(o);
    if (strlen(s) != len)
        return mr_fail(err, MAILROOM_EINVAL, "member '%s' contains a NUL character", what);
    if (len > max)
        return mr_fail(err, MAILROOM_EINVAL, "member '%s' is %zu bytes, over the limit of %zu",
                       what, len, max);
    if (!addr_utf8_valid(s, len))
        return mr_fail(err, MAILROOM_EINVAL, "member '%s' is not valid UTF-8", what);
    if (!allow_ctl) {
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x20 || c == 0x7F)
                return mr_fail(err, MAILROOM_EINVAL,
                               "member '%s' contains a control character (CR, LF, ...)", what);
        }
    }
    return 0;
}

static int want_string(json_object *o, const char *what, mr_error *err)
{
    if (!json_object_is_type(o, json_type_string))
        return mr_fail(err, MAILROOM_EINVAL, "member '%s' must be a string", what);
    return 0;
}

static int take_mailboxes(json_object *arr, const char *what, const char **dst, size_t *n,
                          size_t *total, mr_error *err)
{
    if (!json_object_is_type(arr, json_type_array))
        return mr_fail(err, MAILROOM_EINVAL, "member '%s' must be an array of strings", what);
    size_t len = json_object_array_length(arr);
    for (size_t i = 0; i < len; i++) {
        json_object *item = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(item, json_type_string))
            return mr_fail(err, MAILROOM_EINVAL, "member '%s' must be an array of strings", what);
        if (++*total > JOB_MAX_RCPT)
            return mr_fail(err, MAILROOM_EINVAL, "more than %d recipients", JOB_MAX_RCPT);
        if (check_text(item, what, 0, ADDR_SPEC_MAX + ADDR_NAME_MAX + 8, err) != 0)
            return -1;
        addr_mailbox mb;
        const char *s = json_object_get_string(item);
        if (addr_parse(s, strlen(s), &mb, err) != 0)
            return mr_prefix(err, "member '%s' item %zu", what, i);
        dst[(*n)++] = s;
    }
    return 0;
}

static int take_headers(json_object *obj, job *out, mr_error *err)
{
    if (!json_object_is_type(obj, json_type_object))
        return mr_fail(err, MAILROOM_EINVAL, "member 'headers' must be an object of strings");
    struct json_object_iterator it = json_object_iter_begin(obj);
    struct json_object_iterator end = json_object_iter_end(obj);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *name = json_object_iter_peek_name(&it);
        json_object *val = json_object_iter_peek_value(&it);
        char shown[81];
        if (!job_header_allowed(name))
            return mr_fail(err, MAILROOM_EINVAL,
                           "header '%s' is not allowed (List-Unsubscribe, "
                           "List-Unsubscribe-Post, List-Id, X-*)",
                           printable(name, shown));
        if (!json_object_is_type(val, json_type_string))
            return mr_fail(err, MAILROOM_EINVAL, "header '%s' must be a string", name);
        if (check_text(val, name, 0, JOB_HEADER_VALUE_MAX, err) != 0)
            return -1;
        if (out->n_headers == JOB_MAX_HEADERS)
            return mr_fail(err, MAILROOM_EINVAL, "more than %d headers", JOB_MAX_HEADERS);
        out->headers[out->n_headers].name = name;
        out->headers[out->n_headers].value = json_object_get_string(val);
        out->n_headers++;
    }
    return 0;
}

static int take_time(json_object *o, const char *what, const char **dst, int64_t *ms, mr_error *err)
{
    if (want_string(o, what, err) != 0 || check_text(o, what, 0, 64, err) != 0)
        return -1;
    const char *s = json_object_get_string(o);
    if (clock_parse_rfc3339(s, ms) != 0)
        return mr_fail(err, MAILROOM_EINVAL, "member '%s' is not an RFC 3339 timestamp", what);
    *dst = s;
    return 0;
}

static int take_kid(json_object *o, const char **dst, mr_error *err)
{
    if (want_string(o, "kid", err) != 0)
        return -1;
    const char *s = json_object_get_string(o);
    size_t n = strlen(s);
    if (n == 0 || n > JOB_KID_MAX || n != (size_t)json_object_get_string_len(o))
        return mr_fail(err, MAILROOM_EINVAL, "member 'kid' must be 1 to %d characters",
                       JOB_KID_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return mr_fail(err, MAILROOM_EINVAL,
                           "member 'kid' has a character outside [A-Za-z0-9._-]");
    }
    *dst = s;
    return 0;
}

/* Plain string members: where each goes, whether it may hold control characters, its
 * size limit. Mailbox, time and structured members are handled by their own code. */
static int take_member(job *out, const char *name, json_object *val, mr_error *err, size_t *rcpt)
{
    if (strcmp(name, "to") == 0)
        return take_mailboxes(val, name, out->to, &out->n_to, rcpt, err);
    if (strcmp(name, "cc") == 0)
        return take_mailboxes(val, name, out->cc, &out->n_cc, rcpt, err);
    if (strcmp(name, "bcc") == 0)
        return take_mailboxes(val, name, out->bcc, &out->n_bcc, rcpt, err);
    if (strcmp(name, "headers") == 0)
        return take_headers(val, out, err);
    if (strcmp(name, "created_at") == 0)
        return take_time(val, name, &out->created_at, &out->created_ms, err);
    if (strcmp(name, "send_at") == 0)
        return take_time(val, name, &out->send_at, &out->send_at_ms, err);
    if (strcmp(name, "expires_at") == 0)
        return take_time(val, name, &out->expires_at, &out->expires_ms, err);
    if (strcmp(name, "kid") == 0)
        return take_kid(val, &out->kid, err);

    static const struct {
        const char *name;
        size_t offset;
        int allow_ctl;
        size_t max;
    } plain[] = {
        {"v", offsetof(job, v), 0, 8},
        {"id", offsetof(job, id), 0, JOB_ID_MAX},
        {"alg", offsetof(job, alg), 0, 32},
        {"sig", offsetof(job, sig), 0, 128},
        {"from", offsetof(job, from), 0, ADDR_SPEC_MAX},
        {"from_name", offsetof(job, from_name), 0, ADDR_NAME_MAX},
        {"reply_to", offsetof(job, reply_to), 0, ADDR_SPEC_MAX + ADDR_NAME_MAX + 8},
        {"subject", offsetof(job, subject), 0, JOB_SUBJECT_MAX},
        {"text", offsetof(job, text), 1, JOB_MAX_BYTES},
        {"html", offsetof(job, html), 1, JOB_MAX_BYTES},
    };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        if (strcmp(name, plain[i].name) != 0)
            continue;
        if (want_string(val, name, err) != 0 ||
            check_text(val, name, plain[i].allow_ctl, plain[i].max, err) != 0)
            return -1;
        *(const char **)(void *)((char *)out + plain[i].offset) = json_object_get_string(val);
        return 0;
    }
    char shown[81];
    return mr_fail(err, MAILROOM_EINVAL, "unknown member '%s'", printable(name, shown));
}

/* Cross-member rules, checked once every member has been taken. */
static int check_required(job *out, int require_sig, mr_error *err)
{
    static const struct {
        const char *name;
        size_t offset;
    } required[] = {
        {"v", offsetof(job, v)},       {"id", offsetof(job, id)},
        {"from", offsetof(job, from)}, {"subject", offsetof(job, subject)},
        {"text", offsetof(job, text)}, {"created_at", offsetof(job, created_at)},
        {"kid", offsetof(job, kid)},   {"alg", offsetof(job, alg)},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if (*(const char *const *)(const void *)((const char *)out + required[i].offset) == NULL)
            return mr_fail(err, MAILROOM_EINVAL, "missing member '%s'", required[i].name);
    }
    if (strcmp(out->v, "1") != 0)
        return mr_fail(err, MAILROOM_EINVAL, "unsupported version '%.8s' (expected \"1\")", out->v);
    if (!job_id_valid(out->id))
        return mr_fail(err, MAILROOM_EINVAL, "member 'id' must match [A-Za-z0-9._:-]{1,128}");
    if (out->n_to == 0)
        return mr_fail(err, MAILROOM_EINVAL, "member 'to' must hold at least one address");
    if (addr_spec_parse(out->from, strlen(out->from), NULL, NULL, err) != 0)
        return mr_prefix(err, "member 'from' is not a well-formed address");
    if (out->from_name && !addr_name_valid(out->from_name, strlen(out->from_name)))
        return mr_fail(err, MAILROOM_EINVAL, "member 'from_name' is not a valid display name");
    if (out->reply_to) {
        addr_mailbox mb;
        if (addr_parse(out->reply_to, strlen(out->reply_to), &mb, err) != 0)
            return mr_prefix(err, "member 'reply_to'");
    }
    if (strcmp(out->alg, "hmac-sha1") != 0 && strcmp(out->alg, "hmac-sha256") != 0)
        return mr_fail(err, MAILROOM_EINVAL,
                       "member 'alg' must be \"hmac-sha1\" or \"hmac-sha256\"");
    if (require_sig && !out->sig)
        return mr_fail(err, MAILROOM_EINVAL, "missing member 'sig'");
    if (!require_sig && out->sig)
        return mr_fail(err, MAILROOM_EINVAL, "member 'sig' present before signing");
    out->text_len = strlen(out->text);
    out->html_len = out->html ? strlen(out->html) : 0;
    return 0;
}

int job_from_tree(json_object *root, int require_sig, job *out, mr_error *err)
{
    memset(out, 0, sizeof *out);
    out->root = root;
    if (!json_object_is_type(root, json_type_object))
        return mr_fail(err, MAILROOM_EINVAL, "a job must be a JSON object");
    size_t rcpt = 0;
    struct json_object_iterator it = json_object_iter_begin(root);
    struct json_object_iterator end = json_object_iter_end(root);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        if (take_member(out, json_object_iter_peek_name(&it), json_object_iter_peek_value(&it), err,
                        &rcpt) != 0)
            return -1;
    }
    return check_required(out, require_sig, err);
}

/*
 * What json-c's strict mode lets through and the strict parser must not: an escaped
 * NUL (json-c cuts a member name at it, so a name "subject\u0000x" would quietly become
 * "subject"; values are checked after parsing, names cannot be) and a single quote
 * outside a string (json-c 0.16 accepts {'name':1} even in strict mode). One pass,
 * tracking whether it is inside a string; escaped characters are skipped, so "\\u0000"
 * is plain text. Returns a static reason, or NULL when raw is clean.
 */
static const char *prescan(const char *raw, size_t len)
{
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = raw[i];
        if (in_string && c == '\\') {
            if (i + 5 < len && raw[i + 1] == 'u' && memcmp(raw + i + 2, "0000", 4) == 0)
                return "a string holds a NUL character (\\u0000)";
            i++; /* the escaped character */
        } else if (c == '"') {
            in_string = !in_string;
        } else if (!in_string && c == '\'') {
            return "not valid JSON: a single quote outside a string";
        }
    }
    return NULL;
}

json_object *job_parse_strict(const char *raw, size_t len, mr_error *err)
{
    json_object *root = NULL;
    if (len > INT_MAX) {
        mr_fail(err, MAILROOM_ETOOBIG, "%zu bytes of JSON is more than can be parsed", len);
        return NULL;
    }
    const char *bad = prescan(raw, len);
    if (!bad && !addr_utf8_valid(raw, len))
        bad = "not valid JSON: invalid UTF-8 (overlong forms, surrogates and code points "
              "above U+10FFFF are refused)";
    if (bad) {
        mr_fail(err, MAILROOM_EINVAL, "%s", bad);
        return NULL;
    }
    json_tokener *tok = json_tokener_new_ex(JOB_MAX_DEPTH);
    if (!tok) {
        mr_fail(err, MAILROOM_ENOMEM, "out of memory");
        goto out;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    root = json_tokener_parse_ex(tok, raw, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_continue) {
        mr_fail(err, MAILROOM_EINVAL, "not valid JSON: truncated");
    } else if (jerr != json_tokener_success || !root) {
        mr_fail(err, MAILROOM_EINVAL, "not valid JSON: %s at byte %zu",
                json_tokener_error_desc(jerr), json_tokener_get_parse_end(tok));
    } else {
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
            if (!strchr(" \t\r\n", raw[i]) || raw[i] == '\0') {
                mr_fail(err, MAILROOM_EINVAL, "not valid JSON: trailing data after the object");
                goto out;
            }
        }
        json_tokener_free(tok);
        return root;
    }
out:
    json_object_put(root);
    json_tokener_free(tok);
    return NULL;
}

int job_decode(const char *raw, size_t len, job *out, mr_error *err)
{
    memset(out, 0, sizeof *out);
    if (len > JOB_MAX_BYTES)
        return mr_fail(err, MAILROOM_ETOOBIG, "job is %zu bytes, over the limit of %d", len,
                       JOB_MAX_BYTES);
    json_object *root = job_parse_strict(raw, len, err);
    if (!root)
        return -1;
    return job_from_tree(root, 1, out, err);
}

void job_clear(job *j)
{
    if (!j)
        return;
    json_object_put(j->root);
    memset(j, 0, sizeof *j);
}

/*
 * The lenient half of job_peek_id: an "id" member after '{' or ',' (and white space)
 * in the first 4096 bytes, its value a valid id followed by the closing quote. Fooled
 * only by a job built to fool it, whose record it would then close as rejected.
 */
static void peek_id_lenient(const char *raw, size_t len, char id_out[JOB_ID_MAX + 1])
{
    size_t end = len < 4096 ? len : 4096;
    for (size_t i = 0; i + 4 < end; i++) {
        if (raw[i] != '{' && raw[i] != ',')
            continue;
        size_t p = i + 1;
        while (p < end && strchr(" \t\r\n", raw[p]) && raw[p])
            p++;
        if (end - p < 5 || memcmp(raw + p, "\"id\"", 4) != 0)
            continue;
        for (p += 4; p < end && (raw[p] == ' ' || raw[p] == ':' || raw[p] == '\t'); p++)
            ;
        if (p >= end || raw[p] != '"')
            continue;
        const char *start = raw + p + 1;
        const char *quote = memchr(start, '"', end - p - 1);
        size_t n = quote ? (size_t)(quote - start) : 0;
        if (n == 0 || n > JOB_ID_MAX)
            continue;
        memcpy(id_out, start, n);
        id_out[n] = '\0';
        if (job_id_valid(id_out))
            return;
        id_out[0] = '\0';
    }
}

void job_peek_id(const char *raw, size_t len, char id_out[JOB_ID_MAX + 1])
{
    id_out[0] = '\0';
    json_object *root = len <= JOB_MAX_BYTES ? job_parse_strict(raw, len, NULL) : NULL;
    json_object *id = NULL;
    if (root && json_object_object_get_ex(root, "id", &id) &&
        json_object_is_type(id, json_type_string) && job_id_valid(json_object_get_string(id)))
        snprintf(id_out, JOB_ID_MAX + 1, "%s", json_object_get_string(id));
    else if (!root)
        peek_id_lenient(raw, len, id_out);
    json_object_put(root);
}
