/*
 * event.h — private to lib/: a status event (docs/redis.md, "Status events") parsed
 * from its JSON payload into a mailroom_event. The one parser of events: the watch
 * (watch.c, payloads from the status channel) and the stream reader (stream.c,
 * payloads from the events stream) both use it, so an event reads the same whichever
 * way it came.
 */
#ifndef MAILROOM_LIB_EVENT_H
#define MAILROOM_LIB_EVENT_H

#include <stddef.h>

#include "mailroom_admin.h"

struct json_object;

/* An event and what its members borrow from: the json-c tree and the recipients
 * array are owned here; the payload is the caller's and must outlive the event. */
typedef struct event_parse {
    struct json_object *tree;       /* owned: the payload's parse, NULL when not JSON */
    mailroom_recipient *recipients; /* owned: borrows its strings from tree */
    mailroom_event ev;
} event_parse;

/*
 * Makes p's event of payload (len bytes, NUL-terminated at len, borrowed): the payload
 * is always set; the members only when it is a JSON object (is_object), each NULL or 0
 * when absent or of another type. Never fails: a payload that is not JSON, or memory
 * that ran out while parsing, gives an event with is_object 0. p must be clear.
 */
void event_parse_take(event_parse *p, const char *payload, size_t len);

/* Forgets the event and frees what it owned; p is clear afterwards. */
void event_parse_clear(event_parse *p);

#endif
