/*
 * output.c — what the `mailroom` command prints, and how: text with control
 * characters masked (text from a job, a reply or an input file must not drive the
 * terminal), JSON lines built with json-c (never by hand), the status record that
 * `status` and `send --wait` print, and stdout flushed with its errors reported
 * (a result that could not be written is a failure: exit 74).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cli.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Masks bytes below 0x20 and DEL, and the C1 range U+0080..U+009F, which UTF-8 spells
 * C2 80..C2 9F. */
void out_clean(const char *s, FILE *fp)
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

void out_error_line(const char *msg)
{
    fputs("mailroom: ", stderr);
    out_clean(msg, stderr);
    fputc('\n', stderr);
}

int out_json_set(json_object *o, const char *key, json_object *v)
{
    if (!v)
        return -1;
    if (json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        return -1;
    }
    return 0;
}

int out_json_line(json_object *o, struct failure *f)
{
    const char *s = json_object_to_json_string_ext(o, JSON_FLAGS);
    if (!s)
        return fail(f, EXIT_SOFTWARE, "out of memory");
    fputs(s, stdout);
    fputc('\n', stdout);
    return EXIT_OK;
}

int out_flush(const char *what, struct failure *f)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        return fail(f, EXIT_IOERR, "%s: stdout: %s", what, strerror(errno));
    return EXIT_OK;
}

/* Adds a string member of at most max bytes (status fields may fill their array). */
static int json_add_str(json_object *o, const char *key, const char *s, size_t max)
{
    return out_json_set(o, key, json_object_new_string_len(s, (int)strnlen(s, max)));
}

/* Adds an integer member; null when null_if_zero and the value is 0. */
static int json_add_int(json_object *o, const char *key, int n, int null_if_zero)
{
    if (null_if_zero && n == 0)
        return json_object_object_add(o, key, NULL) == 0 ? 0 : -1;
    return out_json_set(o, key, json_object_new_int(n));
}

/*
 * The JSON object of a status record, members in a fixed order. The queue is not part
 * of mailroom_job_status: the caller passes the handle's. NULL when memory ran out.
 */
static json_object *status_json(const mailroom_job_status *st, const char *queue)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    const char *state = mailroom_state_name(st->state);
    if (json_add_str(o, "id", st->id, sizeof st->id) != 0 ||
        json_add_str(o, "queue", queue, strlen(queue)) != 0 ||
        json_add_str(o, "state", state, strlen(state)) != 0 ||
        json_add_int(o, "attempts", st->attempts, 0) != 0 ||
        json_add_int(o, "smtp_code", st->smtp_code, 1) != 0 ||
        json_add_str(o, "smtp_reply", st->smtp_reply, sizeof st->smtp_reply) != 0 ||
        json_add_str(o, "error", st->error, sizeof st->error) != 0 ||
        json_add_str(o, "consumer", st->consumer, sizeof st->consumer) != 0 ||
        json_add_str(o, "created_at", st->created_at, sizeof st->created_at) != 0 ||
        json_add_str(o, "updated_at", st->updated_at, sizeof st->updated_at) != 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* Adds "relay_id" (when known) and "recipients" {address: {state, code, reply}} (when
 * any) of d to o. 0, or -1 out of memory. */
static int add_detail(json_object *o, const mailroom_job_detail *d)
{
    if (d->relay_id[0] && json_add_str(o, "relay_id", d->relay_id, strlen(d->relay_id)) != 0)
        return -1;
    if (d->n_recipients == 0)
        return 0;
    json_object *map = json_object_new_object();
    if (!map || json_object_object_add(o, "recipients", map) != 0) {
        json_object_put(map);
        return -1;
    }
    for (size_t i = 0; i < d->n_recipients; i++) {
        const mailroom_recipient *r = &d->recipients[i];
        json_object *a = json_object_new_object();
        if (!a || json_object_object_add(map, r->address, a) != 0 ||
            json_add_str(a, "state", r->state, strlen(r->state)) != 0 ||
            json_add_int(a, "code", r->code, 1) != 0 ||
            json_add_str(a, "reply", r->reply, strlen(r->reply)) != 0)
            return -1;
    }
    return 0;
}

int out_status(mailroom *m, const mailroom_job_status *st, const char *what, struct failure *f)
{
    mailroom_job_detail *d = NULL;
    int lrc = mailroom_status_detail(m, st->id, &d);
    if (lrc != MAILROOM_OK && lrc != MAILROOM_ENOTFOUND)
        return fail_lib(f, what, m, lrc);
    json_object *o = status_json(st, mailroom_queue_name(m));
    int rc;
    if (!o || (d && add_detail(o, d) != 0))
        rc = fail(f, EXIT_SOFTWARE, "%s: %s", what, strerror(ENOMEM));
    else if ((rc = out_json_line(o, f)) == EXIT_OK)
        rc = out_flush(what, f);
    json_object_put(o);
    mailroom_job_detail_free(d);
    return rc;
}

void out_time_ms(long long ms, char out[32])
{
    struct tm tm;
    time_t secs = (time_t)(ms / 1000);
    out[0] = '\0';
    if (ms <= 0 || !gmtime_r(&secs, &tm))
        return;
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03lldZ", ms % 1000);
}

int out_json_set_str(json_object *o, const char *key, const char *s)
{
    if (!s || !*s)
        return json_object_object_add(o, key, NULL) == 0 ? 0 : -1;
    return out_json_set(o, key, json_object_new_string(s));
}
