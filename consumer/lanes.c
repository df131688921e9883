/* lanes: see lanes.h. */
#define _POSIX_C_SOURCE 200809L
#include "lanes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One "name" or "name:weight" of the list into the next lane. */
static int add_lane(consumer_config *cfg, char *item, mr_error *err)
{
    char *colon = strrchr(item, ':');
    char *weight = colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)
                       ? colon + 1
                       : NULL;
    if (weight)
        *colon = '\0';
    lane *l = &cfg->lanes[cfg->n_lanes];
    if (cfg->n_lanes == LANE_MAX)
        return mr_fail(err, MAILROOM_EINVAL, "--queue: at most %d queues", LANE_MAX);
    if (keys_init(&l->keys, item) != 0)
        return mr_fail(err, MAILROOM_EINVAL,
                       "--queue: queue name '%.70s' must match [A-Za-z0-9._:-]{1,64}", item);
    for (int i = 0; i < cfg->n_lanes; i++)
        if (strcmp(cfg->lanes[i].keys.queue, item) == 0)
            return mr_fail(err, MAILROOM_EINVAL, "--queue: '%s' is given twice", item);
    l->weight = weight ? atoi(weight) : 0;
    if (weight && (strlen(weight) > 4 || l->weight < 1 || l->weight > 1000))
        return mr_fail(err, MAILROOM_EINVAL, "--queue: weight of '%s' must be 1 to 1000", item);
    cfg->n_lanes++;
    return 0;
}

int lanes_configure(consumer_config *cfg, const char *spec, mr_error *err)
{
    char copy[LANE_MAX * (KEYS_QUEUE_MAX + 8)];
    if (strlen(spec) >= sizeof copy)
        return mr_fail(err, MAILROOM_EINVAL, "--queue: list too long");
    snprintf(copy, sizeof copy, "%s", spec);
    char *save = NULL;
    int weighted = 0;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (add_lane(cfg, item, err) != 0)
            return -1;
        weighted += cfg->lanes[cfg->n_lanes - 1].weight > 0;
    }
    if (cfg->n_lanes == 0)
        return mr_fail(err, MAILROOM_EINVAL, "--queue: no queue given");
    if (weighted && weighted != cfg->n_lanes)
        return mr_fail(err, MAILROOM_EINVAL,
                       "--queue: give a weight to every queue (a:6,b:1) or to none (strict order)");
    cfg->weighted = weighted > 0;
    return 0;
}

int lanes_order(consumer_config *cfg, uint32_t random, int order[LANE_MAX])
{
    int n = 0, total = 0;
    for (int i = 0; i < cfg->n_lanes; i++)
        if (!atomic_load(&cfg->lanes[i].paused)) {
            order[n++] = i;
            total += cfg->lanes[i].weight;
        }
    if (!cfg->weighted)
        return n;
    /* a permutation drawn by weight: each pick among the lanes left, in proportion */
    for (int k = 0; k < n - 1; k++) {
        uint32_t draw = random % (uint32_t)total;
        random = random * 1664525u + 1013904223u;
        int pick = k;
        for (int acc = 0; pick < n; pick++) {
            acc += cfg->lanes[order[pick]].weight;
            if ((int)draw < acc)
                break;
        }
        if (pick == n)
            pick = n - 1;
        int chosen = order[pick];
        order[pick] = order[k];
        order[k] = chosen;
        total -= cfg->lanes[chosen].weight;
    }
    return n;
}

int lanes_watch(consumer_config *cfg, int worker, unsigned turn)
{
    int order[LANE_MAX], n = 0;
    for (int i = 0; i < cfg->n_lanes; i++)
        if (!atomic_load(&cfg->lanes[i].paused))
            order[n++] = i;
    return n ? order[((unsigned)worker + turn) % (unsigned)n] : -1;
}

void lanes_describe(const consumer_config *cfg, char *out, size_t cap)
{
    size_t at = 0;
    out[0] = '\0';
    for (int i = 0; i < cfg->n_lanes && at < cap; i++) {
        const lane *l = &cfg->lanes[i];
        int n = l->weight ? snprintf(out + at, cap - at, "%s%s:%d", i ? "," : "", l->keys.queue,
                                     l->weight)
                          : snprintf(out + at, cap - at, "%s%s", i ? "," : "", l->keys.queue);
        if (n < 0)
            return;
        at += (size_t)n;
    }
}
