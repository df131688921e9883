/* keys: Redis key names (see keys.h). */
#include "keys.h"

#include <stdio.h>
#include <string.h>

int keys_queue_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > KEYS_QUEUE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

int keys_init(keys_queue *k, const char *name)
{
    if (!keys_queue_valid(name))
        return -1;
    snprintf(k->queue, sizeof k->queue, "%s", name);
    snprintf(k->pending, sizeof k->pending, "mailroom:{%s}:pending", name);
    snprintf(k->scheduled, sizeof k->scheduled, "mailroom:{%s}:scheduled", name);
    snprintf(k->dead, sizeof k->dead, "mailroom:{%s}:dead", name);
    snprintf(k->stats, sizeof k->stats, "mailroom:{%s}:stats", name);
    snprintf(k->status, sizeof k->status, "mailroom:{%s}:status", name);
    snprintf(k->consumers, sizeof k->consumers, "mailroom:{%s}:consumers", name);
    snprintf(k->recovered, sizeof k->recovered, "mailroom:{%s}:recovered", name);
    snprintf(k->job_prefix, sizeof k->job_prefix, "mailroom:{%s}:job:", name);
    snprintf(k->events, sizeof k->events, "mailroom:{%s}:events", name);
    snprintf(k->paused, sizeof k->paused, "mailroom:{%s}:paused", name);
    snprintf(k->exporter, sizeof k->exporter, "mailroom:{%s}:exporter", name);
    snprintf(k->webhook, sizeof k->webhook, "mailroom:{%s}:webhook", name);
    return 0;
}

void keys_job(const keys_queue *k, const char *id, char out[KEYS_NAME_MAX])
{
    snprintf(out, KEYS_NAME_MAX, "%s%s", k->job_prefix, id);
}

void keys_processing(const keys_queue *k, const char *consumer, char out[KEYS_NAME_MAX])
{
    snprintf(out, KEYS_NAME_MAX, "mailroom:{%s}:processing:%s", k->queue, consumer);
}

void keys_minute(const keys_queue *k, long long minute, char out[KEYS_NAME_MAX])
{
    snprintf(out, KEYS_NAME_MAX, "mailroom:{%s}:minute:%lld", k->queue, minute);
}

void keys_info(const keys_queue *k, const char *consumer, char out[KEYS_NAME_MAX])
{
    snprintf(out, KEYS_NAME_MAX, "mailroom:{%s}:info:%s", k->queue, consumer);
}

int keys_relay_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > KEYS_RELAY_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("._:-[]", c)))
            return 0;
    }
    return 1;
}

void keys_relay(const char *relay, char out[KEYS_NAME_MAX])
{
    snprintf(out, KEYS_NAME_MAX, "mailroom:relay:{%s}", relay);
}

void keys_relay_sessions(const char *relay, char out[KEYS_NAME_MAX])
{
    snprintf(out, KEYS_NAME_MAX, "mailroom:relay:{%s}:sessions", relay);
}

void keys_suppress(const char *address, char out[KEYS_NAME_MAX])
{
    snprintf(out, KEYS_NAME_MAX, "%s%s", KEYS_SUPPRESS_PREFIX, address);
}
