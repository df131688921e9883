/*
 * recipients: the recipients map of a record or an event (an object from each envelope
 * address to {"state","code","reply"}, docs/redis.md) read into mailroom_recipient
 * structures, for mailroom_status_detail and the watch's events.
 */
#ifndef MAILROOM_LIB_RECIPIENTS_H
#define MAILROOM_LIB_RECIPIENTS_H

#include <stddef.h>

#include "mailroom.h"

struct json_object;

/* Reads map (a json-c object; NULL or anything else: none) into a new array *out of
 * *n entries, sorted by address, whose strings borrow from map: free the array
 * (free()) before releasing map. 0, or -1 when memory ran out (*out NULL, *n 0). */
int recipients_read(struct json_object *map, mailroom_recipient **out, size_t *n);

#endif
