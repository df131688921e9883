/*
 * keys: the Redis key names of one queue (docs/redis.md). Every key of queue Q carries
 * the hash tag {Q}, so a queue lives in one Redis Cluster slot and scripts may touch
 * several of its keys. Names are built once per queue into a keys_queue; per-job and
 * per-consumer names are formatted into caller buffers.
 */
#ifndef MAILROOM_KEYS_H
#define MAILROOM_KEYS_H

#include <stddef.h>

#define KEYS_QUEUE_MAX 64
#define KEYS_NAME_MAX 320
#define KEYS_STATUS_TTL_DEFAULT_S (7L * 24 * 3600) /* a job record's life after its last change */

typedef struct keys_queue {
    char queue[KEYS_QUEUE_MAX + 1];
    char pending[KEYS_NAME_MAX];    /* list */
    char scheduled[KEYS_NAME_MAX];  /* zset: raw job -> due ms */
    char dead[KEYS_NAME_MAX];       /* list of dead-letter entries */
    char stats[KEYS_NAME_MAX];      /* hash of counters */
    char status[KEYS_NAME_MAX];     /* pub/sub channel */
    char consumers[KEYS_NAME_MAX];  /* zset: consumer id -> last heartbeat ms */
    char recovered[KEYS_NAME_MAX];  /* zset: recovered consumer id -> when, ms */
    char job_prefix[KEYS_NAME_MAX]; /* "mailroom:{Q}:job:" */
    char events[KEYS_NAME_MAX];     /* stream: every event, kept */
    char paused[KEYS_NAME_MAX];     /* string: present while the queue is paused */
    char exporter[KEYS_NAME_MAX];   /* string: the consumer exporting queue metrics */
    char webhook[KEYS_NAME_MAX];    /* hash: mailroom-webhook's delivery state */
} keys_queue;

/* The keys a deployment's queues share (docs/redis.md), each with its own hash tag. */
#define KEYS_RELAYS "mailroom:relays"                   /* zset: relay -> last use, ms */
#define KEYS_SUPPRESS_INDEX "mailroom:{suppress}:index" /* zset: address -> expiry, ms */
#define KEYS_SUPPRESS_PREFIX "mailroom:{suppress}:addr:"
#define KEYS_RELAY_MAX 128 /* a relay's name: host:port */

/* 1 when name matches [A-Za-z0-9._:-]{1,64} (no braces: they would break the tag). */
int keys_queue_valid(const char *name);
/* Fills k for queue name. Returns 0, or -1 when the name is not valid. */
int keys_init(keys_queue *k, const char *name);
/* "mailroom:{Q}:job:<id>" */
void keys_job(const keys_queue *k, const char *id, char out[KEYS_NAME_MAX]);
/* "mailroom:{Q}:processing:<consumer>" */
void keys_processing(const keys_queue *k, const char *consumer, char out[KEYS_NAME_MAX]);
/* "mailroom:{Q}:minute:<unix minute>": a hash of the outcomes recorded in that minute,
 * by state (sent, failed, ...); kept 48 h, the history `mailroom stats` and the
 * dashboard read */
void keys_minute(const keys_queue *k, long long minute, char out[KEYS_NAME_MAX]);
/* "mailroom:{Q}:info:<consumer>": what a consumer is (host, pid, lanes, relays, ...) */
void keys_info(const keys_queue *k, const char *consumer, char out[KEYS_NAME_MAX]);

/* 1 when name is a usable relay name: 1..KEYS_RELAY_MAX bytes of [A-Za-z0-9._:[]-]
 * (a host:port, brackets for IPv6), no braces. */
int keys_relay_valid(const char *name);
/* "mailroom:relay:{R}": the relay's circuit and shared rate */
void keys_relay(const char *relay, char out[KEYS_NAME_MAX]);
/* "mailroom:relay:{R}:sessions": the relay's connection slots */
void keys_relay_sessions(const char *relay, char out[KEYS_NAME_MAX]);
/* "mailroom:{suppress}:addr:<address>" for an address already in its suppression form
 * (suppress_address() of suppress.h) */
void keys_suppress(const char *address, char out[KEYS_NAME_MAX]);

#endif
