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
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "clock.h"

#define JOB_MAX_DEPTH 3 /* object > array or headers object > string */

static int fail(char err[JOB_ERR_MAX], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(char err[JOB_ERR_MAX], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, JOB_ERR_MAX, fmt, ap);
    va_end(ap);
    return -1;
}

/* A name from the job as it may appear in an error message: at most 80 bytes of
 * printable ASCII, anything else as '?' (names reach logs, records and events). */
static const char *printable(const char *name, char out[81])
{
    size_t n = 0;
    for (; name[n] && n < 80; n++)
        out[n] = name[n] >= 0x20 && name[n] < 0x7F ? name[n] : '?';
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
static int check_text(json_object *o, const char *what, int allow_ctl, size_t max,
                      char err[JOB_ERR_MAX])
{
    const char *s = json_object_get_string(o);
    size_t len = (size_t)json_object_get_string_len(o);
    if (strlen(s) != len)
        return fail(err, "member '%s' contains a NUL character", what);
    if (len > max)
        return fail(err, "member '%s' is %zu bytes, over the limit of %zu", what, len, max);
    if (!addr_utf8_valid(s, len))
        return fail(err, "member '%s' is not valid UTF-8", what);
    if (!allow_ctl) {
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x20 || c == 0x7F)
                return fail(err, "member '%s' contains a control character (CR, LF, ...)",
                            what);
        }
    }
    return 0;
}

static int want_string(json_object *o, const char *what, char err[JOB_ERR_MAX])
{
    if (!json_object_is_type(o, json_type_string))
        return fail(err, "member '%s' must be a string", what);
    return 0;
}

static int take_mailboxes(json_object *arr, const char *what, const char **dst, size_t *n,
                          size_t *total, char err[JOB_ERR_MAX])
{
    if (!json_object_is_type(arr, json_type_array))
        return fail(err, "member '%s' must be an array of strings", what);
    size_t len = json_object_array_length(arr);
    for (size_t i = 0; i < len; i++) {
        json_object *item = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(item, json_type_string))
            return fail(err, "member '%s' must be an array of strings", what);
        if (++*total > JOB_MAX_RCPT)
            return fail(err, "more than %d recipients", JOB_MAX_RCPT);
        if (check_text(item, what, 0, ADDR_SPEC_MAX + ADDR_NAME_MAX + 8, err) != 0)
            return -1;
        addr_mailbox mb;
        const char *why;
        const char *s = json_object_get_string(item);
        if (addr_parse(s, strlen(s), &mb, &why) != 0)
            return fail(err, "member '%s' item %zu: %s", what, i, why);
        dst[(*n)++] = s;
    }
    return 0;
}

static int take_headers(json_object *obj, job *out, char err[JOB_ERR_MAX])
{
    if (!json_object_is_type(obj, json_type_object))
        return fail(err, "member 'headers' must be an object of strings");
    struct json_object_iterator it = json_object_iter_begin(obj);
    struct json_object_iterator end = json_object_iter_end(obj);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *name = json_object_iter_peek_name(&it);
        json_object *val = json_object_iter_peek_value(&it);
        char shown[81];
        if (!job_header_allowed(name))
            return fail(err, "header '%s' is not allowed (List-Unsubscribe, "
                             "List-Unsubscribe-Post, List-Id, X-*)", printable(name, shown));
        if (!json_object_is_type(val, json_type_string))
            return fail(err, "header '%s' must be a string", name);
        if (check_text(val, name, 0, JOB_HEADER_VALUE_MAX, err) != 0)
            return -1;
        if (out->n_headers == JOB_MAX_HEADERS)
            return fail(err, "more than %d headers", JOB_MAX_HEADERS);
        out->headers[out->n_headers].name = name;
        out->headers[out->n_headers].value = json_object_get_string(val);
        out->n_headers++;
    }
    return 0;
}

static int take_time(json_object *o, const char *what, const char **dst, int64_t *ms,
                     char err[JOB_ERR_MAX])
{
    if (want_string(o, what, err) != 0 || check_text(o, what, 0, 64, err) != 0)
        return -1;
    const char *s = json_object_get_string(o);
    if (clock_parse_rfc3339(s, ms) != 0)
        return fail(err, "member '%s' is not an RFC 3339 timestamp", what);
    *dst = s;
    return 0;
}

static int take_kid(json_object *o, const char **dst, char err[JOB_ERR_MAX])
{
    if (want_string(o, "kid", err) != 0)
        return -1;
    const char *s = json_object_get_string(o);
    size_t n = strlen(s);
    if (n == 0 || n > JOB_KID_MAX || n != (size_t)json_object_get_string_len(o))
        return fail(err, "member 'kid' must be 1 to %d characters", JOB_KID_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return fail(err, "member 'kid' has a character outside [A-Za-z0-9._-]");
    }
    *dst = s;
    return 0;
}

/* Plain string members: where each goes, whether it may hold control characters, its
 * size limit. Mailbox, time and structured members are handled by their own code. */
static int take_member(job *out, const char *name, json_object *val, char err[JOB_ERR_MAX],
                       size_t *rcpt)
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
    return fail(err, "unknown member '%s'", printable(name, shown));
}

/* Cross-member rules, checked once every member has been taken. */
static int check_required(job *out, int require_sig, char err[JOB_ERR_MAX])
{
    static const struct {
        const char *name;
        size_t offset;
    } required[] = {
        {"v", offsetof(job, v)},         {"id", offsetof(job, id)},
        {"from", offsetof(job, from)},   {"subject", offsetof(job, subject)},
        {"text", offsetof(job, text)},   {"created_at", offsetof(job, created_at)},
        {"kid", offsetof(job, kid)},     {"alg", offsetof(job, alg)},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if (*(const char *const *)(const void *)((const char *)out + required[i].offset) ==
            NULL)
            return fail(err, "missing member '%s'", required[i].name);
    }
    if (strcmp(out->v, "1") != 0)
        return fail(err, "unsupported version '%.8s' (expected \"1\")", out->v);
    if (!job_id_valid(out->id))
        return fail(err, "member 'id' must match [A-Za-z0-9._:-]{1,128}");
    if (out->n_to == 0)
        return fail(err, "member 'to' must hold at least one address");
    if (!addr_spec_valid(out->from, strlen(out->from)))
        return fail(err, "member 'from' is not a well-formed address");
    if (out->from_name && !addr_name_valid(out->from_name, strlen(out->from_name)))
        return fail(err, "member 'from_name' is not a valid display name");
    if (out->reply_to) {
        addr_mailbox mb;
        const char *why;
        if (addr_parse(out->reply_to, strlen(out->reply_to), &mb, &why) != 0)
            return fail(err, "member 'reply_to': %s", why);
    }
    if (strcmp(out->alg, "hmac-sha1") != 0 && strcmp(out->alg, "hmac-sha256") != 0)
        return fail(err, "member 'alg' must be \"hmac-sha1\" or \"hmac-sha256\"");
    if (require_sig && !out->sig)
        return fail(err, "missing member 'sig'");
    if (!require_sig && out->sig)
        return fail(err, "member 'sig' present before signing");
    out->text_len = strlen(out->text);
    out->html_len = out->html ? strlen(out->html) : 0;
    return 0;
}

int job_from_tree(json_object *root, int require_sig, job *out, char err[JOB_ERR_MAX])
{
    memset(out, 0, sizeof *out);
    out->root = root;
    if (!json_object_is_type(root, json_type_object))
        return fail(err, "a job must be a JSON object");
    size_t rcpt = 0;
    struct json_object_iterator it = json_object_iter_begin(root);
    struct json_object_iterator end = json_object_iter_end(root);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        if (take_member(out, json_object_iter_peek_name(&it), json_object_iter_peek_value(&it),
                        err, &rcpt) != 0)
            return -1;
    }
    return check_required(out, require_sig, err);
}

/* 1 when raw holds a \u0000 escape. json-c cuts member names at NUL, so a name
 * "subject\u0000x" would quietly become "subject"; values are checked after parsing,
 * names cannot be. Escaped backslashes are skipped so "\\u0000" is plain text. */
static int has_nul_escape(const char *raw, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (raw[i] != '\\')
            continue;
        if (raw[i + 1] == 'u' && i + 5 < len && memcmp(raw + i + 2, "0000", 4) == 0)
            return 1;
        i++; /* the escaped character */
    }
    return 0;
}

/* Parses raw JSON strictly. Returns the tree (caller owns) or NULL with err set. */
static json_object *parse_strict(const char *raw, size_t len, char err[JOB_ERR_MAX])
{
    json_object *root = NULL;
    if (has_nul_escape(raw, len)) {
        fail(err, "a string holds a NUL character (\\u0000)");
        return NULL;
    }
    json_tokener *tok = json_tokener_new_ex(JOB_MAX_DEPTH);
    if (!tok) {
        fail(err, "out of memory");
        goto out;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    root = json_tokener_parse_ex(tok, raw, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_continue) {
        fail(err, "not valid JSON: truncated");
    } else if (jerr != json_tokener_success || !root) {
        fail(err, "not valid JSON: %s at byte %zu", json_tokener_error_desc(jerr),
             json_tokener_get_parse_end(tok));
    } else {
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
            if (!strchr(" \t\r\n", raw[i]) || raw[i] == '\0') {
                fail(err, "not valid JSON: trailing data after the object");
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

int job_decode(const char *raw, size_t len, job *out, char err[JOB_ERR_MAX])
{
    memset(out, 0, sizeof *out);
    if (len > JOB_MAX_BYTES)
        return fail(err, "job is %zu bytes, over the limit of %d", len, JOB_MAX_BYTES);
    json_object *root = parse_strict(raw, len, err);
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

void job_peek_id(const char *raw, size_t len, char id_out[JOB_ID_MAX + 1])
{
    char err[JOB_ERR_MAX];
    id_out[0] = '\0';
    if (len > JOB_MAX_BYTES)
        return;
    json_object *root = parse_strict(raw, len, err);
    json_object *id = NULL;
    if (root && json_object_object_get_ex(root, "id", &id) &&
        json_object_is_type(id, json_type_string) && job_id_valid(json_object_get_string(id)))
        snprintf(id_out, JOB_ID_MAX + 1, "%s", json_object_get_string(id));
    json_object_put(root);
}
