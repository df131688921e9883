/* recipients: see recipients.h. */
#include "recipients.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

/* The string member key of o, "" when absent or not a string. */
static const char *member(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return "";
    return json_object_get_string(v);
}

static int by_address(const void *a, const void *b)
{
    return strcmp(((const mailroom_recipient *)a)->address,
                  ((const mailroom_recipient *)b)->address);
}

int recipients_read(json_object *map, mailroom_recipient **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!map || !json_object_is_type(map, json_type_object) || json_object_object_length(map) == 0)
        return 0;
    mailroom_recipient *r = calloc((size_t)json_object_object_length(map), sizeof *r);
    if (!r)
        return -1;
    json_object_object_foreach(map, address, answer)
    {
        if (!answer || !json_object_is_type(answer, json_type_object))
            continue;
        json_object *code = NULL;
        r[*n].address = address;
        r[*n].state = member(answer, "state");
        r[*n].reply = member(answer, "reply");
        r[*n].code = json_object_object_get_ex(answer, "code", &code) && code
                         ? json_object_get_int(code)
                         : 0;
        (*n)++;
    }
    qsort(r, *n, sizeof *r, by_address);
    *out = r;
    return 0;
}
