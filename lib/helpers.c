/*
 * helpers.c — the public calls that need no handle: checks and parsers that a tool
 * (the mailroom CLI first) needs to read its command line the way the library reads
 * its input. Each wraps the one implementation in common/, so that there is one job-id
 * rule, one URL syntax, one RFC 3339 reader and one duration syntax in the project.
 * None keeps state: all are thread-safe.
 */
#include <stdint.h>

#include "clock.h"
#include "duration.h"
#include "job.h"
#include "mailroom_admin.h"
#include "rconn.h"

int mailroom_id_valid(const char *id)
{
    return id && job_id_valid(id);
}

int mailroom_url_has_password(const char *url)
{
    return url && rconn_url_has_password(url);
}

/*
 * RFC 3339 to whole seconds: send_at rounds up (never earlier than asked), expires_at
 * down (never later than asked). Division truncates toward zero, so the remainder of
 * a time before the epoch is negative: it rounds the other way round.
 */
int mailroom_parse_time(const char *s, int round_up, time_t *out)
{
    int64_t ms;
    if (!s || !out || clock_parse_rfc3339(s, &ms) != 0)
        return MAILROOM_EINVAL;
    int64_t secs = ms / 1000, rem = ms % 1000;
    if (rem != 0 && (round_up ? rem > 0 : rem < 0))
        secs += round_up ? 1 : -1;
    *out = (time_t)secs;
    return MAILROOM_OK;
}

int mailroom_parse_duration(const char *s, long long *ms)
{
    int64_t v;
    if (!s || !ms || mr_duration_parse(s, &v, NULL) != 0)
        return MAILROOM_EINVAL;
    *ms = (long long)v;
    return MAILROOM_OK;
}
