/*
 * email_json.c — an email written as JSON (a line of `mailroom send --jsonl`) turned
 * into a mailroom_email: mailroom_email_from_json() and its document.
 *
 * The text is parsed by job_parse_strict(), the project's one strict JSON parser (the
 * one jobs are read with), so the same input is refused here as there: an escaped NUL
 * that json-c would cut a string or a member name at, invalid UTF-8, trailing text.
 * Each member is then checked for its type and stored in the email; the strings are
 * borrowed from the json-c tree, which the document owns together with the arrays it
 * allocates, so one mailroom_email_json_free() releases everything. Whether the email
 * is acceptable (addresses, sizes, headers) is mailroom_validate's to say.
 */
#define _POSIX_C_SOURCE 200809L
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "handle.h"
#include "job.h"

struct mailroom_email_json {
    json_object *root; /* owned; every string of email borrows from it */
    const char **to, **cc, **bcc;
    mailroom_header *headers;
    mailroom_email email;
};

/* The members an email may have; member_names spells them. */
enum member {
    M_TO,
    M_CC,
    M_BCC,
    M_FROM,
    M_FROM_NAME,
    M_REPLY_TO,
    M_SUBJECT,
    M_TEXT,
    M_HTML,
    M_HEADERS,
    M_ID,
    M_SEND_AT,
    M_EXPIRES_AT,
    M_COUNT
};

static const char *const member_names[M_COUNT] = {[M_TO] = "to",
                                                  [M_CC] = "cc",
                                                  [M_BCC] = "bcc",
                                                  [M_FROM] = "from",
                                                  [M_FROM_NAME] = "from_name",
                                                  [M_REPLY_TO] = "reply_to",
                                                  [M_SUBJECT] = "subject",
                                                  [M_TEXT] = "text",
                                                  [M_HTML] = "html",
                                                  [M_HEADERS] = "headers",
                                                  [M_ID] = "id",
                                                  [M_SEND_AT] = "send_at",
                                                  [M_EXPIRES_AT] = "expires_at"};

/* Stores an array of strings into a new array of pointers (*out, owned by the
 * document; the strings are borrowed). 0, or -1 with err set. */
static int take_strings(json_object *v, const char *name, const char ***out, size_t *n,
                        mr_error *err)
{
    if (!json_object_is_type(v, json_type_array))
        return mr_fail(err, MAILROOM_EINVAL, "'%s' must be an array of strings", name);
    size_t len = json_object_array_length(v);
    *n = len;
    if (len == 0)
        return 0;
    if (!(*out = calloc(len, sizeof **out)))
        return mr_fail(err, MAILROOM_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i++) {
        json_object *item = json_object_array_get_idx(v, i);
        if (!json_object_is_type(item, json_type_string))
            return mr_fail(err, MAILROOM_EINVAL, "'%s' must be an array of strings (item %zu)",
                           name, i + 1);
        (*out)[i] = json_object_get_string(item);
    }
    return 0;
}

/* Stores the "headers" object into a new mailroom_header array. 0, or -1. */
static int take_headers(json_object *v, mailroom_email_json *doc, mr_error *err)
{
    if (!json_object_is_type(v, json_type_object))
        return mr_fail(err, MAILROOM_EINVAL, "'headers' must be an object of strings");
    size_t n = (size_t)json_object_object_length(v), i = 0;
    if (n == 0)
        return 0;
    if (!(doc->headers = calloc(n, sizeof *doc->headers)))
        return mr_fail(err, MAILROOM_ENOMEM, "out of memory");
    json_object_object_foreach(v, name, value)
    {
        if (!json_object_is_type(value, json_type_string))
            return mr_fail(err, MAILROOM_EINVAL, "header '%.64s' must be a string", name);
        doc->headers[i++] = (mailroom_header){name, json_object_get_string(value)};
    }
    doc->email.headers = doc->headers;
    doc->email.n_headers = i;
    return 0;
}

/* Stores a string member's value (borrowed from the tree) into *dst. 0, or -1. */
static int take_string(json_object *v, const char *name, const char **dst, mr_error *err)
{
    if (!json_object_is_type(v, json_type_string))
        return mr_fail(err, MAILROOM_EINVAL, "'%s' must be a string", name);
    *dst = json_object_get_string(v);
    return 0;
}

/* Stores an RFC 3339 member as whole seconds (mailroom_parse_time's rounding), which
 * must be after the epoch: 0 would mean "unset". 0, or -1. */
static int take_time(json_object *v, const char *name, int round_up, time_t *dst, mr_error *err)
{
    const char *s = NULL;
    if (take_string(v, name, &s, err) != 0)
        return -1;
    if (mailroom_parse_time(s, round_up, dst) != MAILROOM_OK)
        return mr_fail(err, MAILROOM_EINVAL,
                       "'%s': not an RFC 3339 time (e.g. 2026-11-24T13:00:00Z)", name);
    if (*dst <= 0)
        return mr_fail(err, MAILROOM_EINVAL, "'%s': must be after 1970-01-01T00:00:00Z", name);
    return 0;
}

/* The plain string field of the email that member m fills; NULL for the others. */
static const char **string_field(mailroom_email *e, enum member m)
{
    switch (m) {
    case M_FROM: return &e->from;
    case M_FROM_NAME: return &e->from_name;
    case M_REPLY_TO: return &e->reply_to;
    case M_SUBJECT: return &e->subject;
    case M_TEXT: return &e->text;
    case M_HTML: return &e->html;
    case M_ID: return &e->id;
    default: return NULL;
    }
}

/* Stores member m of the object into the document's email. 0, or -1 with err set. */
static int take_member(enum member m, json_object *v, mailroom_email_json *doc, mr_error *err)
{
    const char *name = member_names[m];
    mailroom_email *e = &doc->email;
    switch (m) {
    case M_TO: return take_strings(v, name, &doc->to, &e->n_to, err);
    case M_CC: return take_strings(v, name, &doc->cc, &e->n_cc, err);
    case M_BCC: return take_strings(v, name, &doc->bcc, &e->n_bcc, err);
    case M_HEADERS: return take_headers(v, doc, err);
    case M_SEND_AT: return take_time(v, name, 1, &e->send_at, err);
    case M_EXPIRES_AT: return take_time(v, name, 0, &e->expires_at, err);
    default: return take_string(v, name, string_field(e, m), err);
    }
}

/* Walks the members of the parsed object into the document. 0, or -1 with err set. */
static int take_members(mailroom_email_json *doc, mr_error *err)
{
    if (!json_object_is_type(doc->root, json_type_object))
        return mr_fail(err, MAILROOM_EINVAL, "not a JSON object");
    json_object_object_foreach(doc->root, key, value)
    {
        size_t m = 0;
        while (m < M_COUNT && strcmp(key, member_names[m]) != 0)
            m++;
        if (m == M_COUNT)
            return mr_fail(err, MAILROOM_EINVAL, "unknown member '%.64s'", key);
        if (take_member((enum member)m, value, doc, err) != 0)
            return -1;
    }
    doc->email.to = doc->to;
    doc->email.cc = doc->cc;
    doc->email.bcc = doc->bcc;
    return 0;
}

/*
 * mailroom_email_from_json (mailroom.h): a raw NUL byte is named before parsing (json-c
 * would call it the end of the text), then the strict parse and the members. The
 * message goes to m's error when there is a handle, else nowhere; the code is returned
 * either way.
 */
int mailroom_email_from_json(mailroom *m, const char *json, size_t len, mailroom_email_json **out)
{
    mr_error scratch = MR_ERROR_INIT;
    mr_error *err = m ? &m->err : &scratch;
    mailroom_email_json *doc = NULL;
    int r = -1;
    if (!out || (!json && len))
        return m ? handle_result(m, mr_fail(err, MAILROOM_EINVAL, "json and out are required"))
                 : MAILROOM_EINVAL;
    *out = NULL;
    if (len > 0 && memchr(json, '\0', len)) {
        mr_fail(err, MAILROOM_EINVAL, "contains a NUL byte");
        goto out;
    }
    if (!(doc = calloc(1, sizeof *doc))) {
        mr_fail(err, MAILROOM_ENOMEM, "out of memory");
        goto out;
    }
    if (!(doc->root = job_parse_strict(json ? json : "", len, err)) || take_members(doc, err) != 0)
        goto out;
    *out = doc;
    doc = NULL;
    r = 0;
out:
    mailroom_email_json_free(doc);
    if (!m)
        return r == 0 ? MAILROOM_OK : (int)scratch.rc;
    return handle_result(m, r);
}

const mailroom_email *mailroom_email_json_email(const mailroom_email_json *doc)
{
    return doc ? &doc->email : NULL;
}

/* Frees the tree the email borrows from, the arrays it points to, and the document. */
void mailroom_email_json_free(mailroom_email_json *doc)
{
    if (!doc)
        return;
    json_object_put(doc->root);
    free(doc->to);
    free(doc->cc);
    free(doc->bcc);
    free(doc->headers);
    free(doc);
}
