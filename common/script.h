/*
 * script: the Lua scripts that make every job transition one atomic round trip
 * (docs/redis.md describes their keys and arguments). Each is run with EVALSHA and,
 * when Redis answers NOSCRIPT (first use, or after a restart), with EVAL, which also
 * loads it. The SHA-1 of each script is computed once, at first use.
 */
#ifndef MAILROOM_SCRIPT_H
#define MAILROOM_SCRIPT_H

#include <hiredis/hiredis.h>
#include <stddef.h>

typedef enum script_id {
    SCRIPT_ENQUEUE = 0, /* producer: refuse a known id, write status "queued", push */
    SCRIPT_BEGIN,       /* consumer: dedupe a "sent" job, else count the attempt */
    SCRIPT_FINISH,      /* consumer: record the outcome, ack, move, count, publish */
    SCRIPT_PROMOTE,     /* housekeeper: move due scheduled jobs to pending */
    SCRIPT_RECLAIM,     /* consumer: return its processing list to pending, leave */
    SCRIPT_HEARTBEAT,   /* housekeeper: heartbeat, recover consumers that stopped */
    SCRIPT_REQUEUE,     /* housekeeper: return an orphan of its own processing list */
    SCRIPT_DEAD_RETRY,  /* CLI: dead-list entries back to pending, records reset */
    SCRIPT_DEAD_PURGE,  /* CLI: drop dead-list entries, all or older than an age */
    SCRIPT_COUNT
} script_id;

#define SCRIPT_MAX_ARGS 24

/*
 * Runs script id with nkeys keys followed by the other args (argv/argvlen hold keys
 * then args, argc in total). Returns the reply (caller frees with freeReplyObject), or
 * NULL when the connection failed (see c->err). An error reply is returned as such.
 */
redisReply *script_run(redisContext *c, script_id id, int nkeys, int argc, const char **argv,
                       const size_t *argvlen);

/*
 * Like script_run, then WAIT for `replicas` replicas (up to timeout_ms) in the same
 * round trip; *acked gets how many acknowledged. With replicas == 0 no WAIT is sent
 * and *acked is 0.
 */
redisReply *script_run_acked(redisContext *c, script_id id, int nkeys, int argc,
                             const char **argv, const size_t *argvlen, int replicas,
                             int timeout_ms, long *acked);

/*
 * Like script_run, and in the same write one more command (then_argv, then_argvlen
 * NULL for C strings), whose reply is read right after the script's and goes to
 * *then_reply (caller frees; NULL when it could not be read: check c->err). Saves the
 * follow-up its own round trip; it runs even when the script fails. When the script
 * must be loaded (NOSCRIPT), it is run again alone with EVAL.
 */
redisReply *script_run_then(redisContext *c, script_id id, int nkeys, int argc,
                            const char **argv, const size_t *argvlen, int then_argc,
                            const char **then_argv, const size_t *then_argvlen,
                            redisReply **then_reply);

/* The script's source text and its SHA-1 (hex), for pipelining EVALSHA/EVAL. */
const char *script_source(script_id id);
const char *script_sha(script_id id);

#endif
