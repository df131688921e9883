/*
 * exporter: the queue-level figures of the consumer's /metrics, read from Redis and
 * exported by ONE consumer per queue: pending, scheduled, processing and dead jobs,
 * whether the queue is paused, the consumers alive, the age of the oldest pending job
 * (the latency to alert on) and, like Postfix' qshape, the same age and a job count
 * per recipient domain for the top domains of a bounded sample of the oldest pending
 * jobs (500 jobs, about 1 MiB at most: common/lua/exporter.lua reads them, shape.c
 * decodes them here rather than in Redis).
 *
 * Which consumer exports a queue is decided in Redis: the one holding the lease
 * mailroom:{Q}:exporter (SET NX PX 15 s, renewed at every refresh; docs/redis.md).
 * A Prometheus that scrapes every consumer then sums nothing twice, and when the
 * exporter stops (it gives the lease up) or dies (the lease expires) another one takes
 * over within one refresh, or 15 s.
 *
 * The figures are refreshed every 5 s by a thread of their own, on a Redis connection
 * of their own, never on a scrape's path: a scrape copies the last figures under a
 * mutex. Figures that could not be refreshed for 12 s (less than the lease's life, so
 * another consumer may hold it by then) are no longer exported.
 */
#ifndef MAILROOM_EXPORTER_H
#define MAILROOM_EXPORTER_H

#include "buf.h"
#include "error.h"
#include "rconn.h"

typedef struct exporter exporter;

/*
 * Starts the refresh thread for the queues named (copied) on behalf of consumer
 * (copied). redis is borrowed and must outlive the exporter. Returns the exporter, or
 * NULL with err (a bad queue name, no memory, no thread). Redis need not be reachable:
 * the thread retries at every refresh.
 */
exporter *exporter_start(const rconn_url *redis, const char *consumer, const char *const *queues,
                         int n_queues, mr_error *err);

/* Stops the thread, gives up the leases it holds (when Redis answers) and frees the
 * exporter. Accepts NULL. */
void exporter_stop(exporter *e);

/* Appends the queue-level series to out: mailroom_queue_exporter for every queue, the
 * figures for the queues this consumer exports now. 0, or -1 when memory ran out.
 * Accepts NULL (appends nothing). */
int exporter_render(exporter *e, buf *out);

#endif
