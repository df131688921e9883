/* retry: see retry.h. The set is a plain array: it holds at most --max-retrying
 * entries (1000 by default) and is searched once per event, which costs less than
 * the event's own round trip to Redis. */
#include "retry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int retry_init(retry_set *r, size_t cap)
{
    r->n = 0;
    r->cap = cap;
    r->items = calloc(cap ? cap : 1, sizeof *r->items);
    return r->items ? 0 : -1;
}

void retry_free(retry_set *r)
{
    free(r->items);
    r->items = NULL;
    r->n = r->cap = 0;
}

retry_entry *retry_find(retry_set *r, const char *id)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->items[i].id, id) == 0)
            return &r->items[i];
    return NULL;
}

int retry_put(retry_set *r, const char *id, int attempts, int64_t due_ms)
{
    retry_entry *e = retry_find(r, id);
    if (!e) {
        if (r->n == r->cap)
            return -1;
        e = &r->items[r->n++];
        snprintf(e->id, sizeof e->id, "%s", id);
    }
    e->attempts = attempts;
    e->due_ms = due_ms;
    return 0;
}

void retry_remove(retry_set *r, const char *id)
{
    retry_entry *e = retry_find(r, id);
    if (e)
        *e = r->items[--r->n];
}

const retry_entry *retry_earliest(const retry_set *r)
{
    const retry_entry *first = NULL;
    for (size_t i = 0; i < r->n; i++)
        if (!first || r->items[i].due_ms < first->due_ms)
            first = &r->items[i];
    return first;
}

void retry_wake_all(retry_set *r, int64_t now)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i].due_ms > now)
            r->items[i].due_ms = now;
}

int64_t retry_delay_ms(int attempts, int64_t base, int64_t max, uint32_t random)
{
    int64_t delay = base < max ? base : max;
    for (int i = 1; i < attempts && delay < max; i++)
        delay = delay > max / 2 ? max : delay * 2;
    int64_t half = delay / 2;
    return delay - half + (half > 0 ? (int64_t)(random % (uint64_t)(half + 1)) : 0);
}
