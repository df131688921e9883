/* schedule: see schedule.h. */
#include "schedule.h"

#include <stdint.h>

#include "worker.h"

/* A duration for a reader: "300 s", "66.7 min", "4.2 h", "5.0 d". */
static void human(int64_t ms, char *out, size_t cap)
{
    double s = (double)ms / 1000.0;
    if (s < 600)
        snprintf(out, cap, "%.0f s", s);
    else if (s < 3 * 3600)
        snprintf(out, cap, "%.1f min", s / 60);
    else if (s < 2 * 86400)
        snprintf(out, cap, "%.1f h", s / 3600);
    else
        snprintf(out, cap, "%.1f d", s / 86400);
}

/* One row: attempt n failed, the next comes after delay (jittered 0.8x..1.2x), t since
 * the first attempt when it comes. */
static void row(FILE *out, const char *attempts, int64_t delay, int64_t t)
{
    char d[32], lo[32], hi[32], at[32];
    human(delay, d, sizeof d);
    human(worker_backoff_ms(1, delay, delay, 0), lo, sizeof lo);
    human(worker_backoff_ms(1, delay, delay, UINT32_MAX), hi, sizeof hi);
    human(t, at, sizeof at);
    fprintf(out, "| %s | %s | %s – %s | %s |\n", attempts, d, lo, hi, at);
}

void schedule_print(FILE *out, const consumer_options *o)
{
    int64_t t = 0, prev = -1;
    long n = 1, same_from = 0;
    fprintf(out, "| attempt that failed | delay before the next | with jitter | next attempt, "
                 "after the first |\n| --- | --- | --- | --- |\n");
    for (;; n++) {
        int64_t delay = worker_backoff_ms((int)(n < 64 ? n : 64), o->backoff_base, o->backoff_max,
                                          UINT32_MAX / 2);
        int last = (o->max_attempts > 0 && n >= o->max_attempts) || t + delay > o->max_lifetime;
        if ((delay != prev || last) && same_from) {
            char span[48];
            snprintf(span, sizeof span, "%ld – %ld", same_from, n - 1);
            row(out, span, prev, t);
            same_from = 0;
        }
        if (last)
            break;
        t += delay;
        if (delay == prev && !same_from)
            same_from = n;
        else if (delay != prev) {
            char one[24];
            snprintf(one, sizeof one, "%ld", n);
            row(out, one, delay, t);
        }
        prev = delay;
    }
    char life[32];
    human(o->max_lifetime, life, sizeof life);
    if (o->max_attempts > 0 && n >= o->max_attempts)
        fprintf(out, "| %ld | — | — | `failed`: `attempts exhausted (%ld): <last error>` |\n", n,
                n);
    else
        fprintf(out,
                "| %ld | — | — | `failed` (or `sent`, if a recipient got it): `lifetime "
                "exceeded: <last error>`, the next retry would come after %s |\n",
                n, life);
}
