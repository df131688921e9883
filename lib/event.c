/*
 * event.c — the one parser of status events (event.h), shared by the watch and the
 * stream reader. An event is read leniently: members of the wrong type are left NULL
 * or 0 rather than refused, because a reader must still see (and be able to skip) an
 * event it cannot fully understand; is_object tells whether there was anything to read.
 */
#include "event.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "recipients.h"

/* The string member key of o, or NULL when absent or not a string. */
static const char *jstr(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* The integer member key of o, 0 when absent or null. */
static int jint(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) && v ? json_object_get_int(v) : 0;
}

/* The parse of len bytes as one JSON value, NULL when they are not exactly that. */
static json_object *parse_json(const char *text, size_t len)
{
    json_tokener *tok = len <= (size_t)INT_MAX ? json_tokener_new() : NULL;
    json_object *o = tok ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
    if (o && json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

void event_parse_take(event_parse *p, const char *payload, size_t len)
{
    mailroom_event *ev = &p->ev;
    ev->payload = payload;
    ev->payload_len = len;
    json_object *o = p->tree = parse_json(payload, len);
    if (!o || !json_object_is_type(o, json_type_object))
        return;
    ev->is_object = 1;
    ev->id = jstr(o, "id");
    ev->queue = jstr(o, "queue");
    ev->state = jstr(o, "state");
    ev->smtp_reply = jstr(o, "smtp_reply");
    ev->error = jstr(o, "error");
    ev->consumer = jstr(o, "consumer");
    ev->at = jstr(o, "at");
    ev->attempts = jint(o, "attempts");
    ev->smtp_code = jint(o, "smtp_code");
    ev->relay_id = jstr(o, "relay_id");
    json_object *map = NULL;
    size_t n = 0;
    if (json_object_object_get_ex(o, "recipients", &map) &&
        recipients_read(map, &p->recipients, &n) == 0) {
        ev->recipients = p->recipients;
        ev->n_recipients = n;
    }
}

void event_parse_clear(event_parse *p)
{
    free(p->recipients);
    json_object_put(p->tree);
    memset(p, 0, sizeof *p);
}
