/*
 * script: the Lua scripts that make every job transition one atomic round trip, and
 * their runner. The scripts live in common/lua/, one file each; the build embeds them
 * (cmake/lua_scripts.cmake) and generates, from each file's Input block, the positions
 * of its keys and arguments (FINISH_KEY_job, FINISH_ARG_due, FINISH_ARGC) and a
 * fixed-size argument struct (finish_args), so C code fills arguments by name:
 *
 *     finish_args a = {0};
 *     a.v[FINISH_KEY_job] = job_key;
 *     a.v[FINISH_ARG_raw] = raw;  a.len[FINISH_ARG_raw] = raw_len;
 *     redisReply *r = script_run(c, SCRIPT_FINISH, a.v, a.len, &err);
 *
 * Each script is run with EVALSHA and, when Redis answers NOSCRIPT (first use, or
 * after a restart), with EVAL, which also loads it. The SHA-1 of each script is
 * computed once, at first use. docs/redis.md describes the keys and scripts.
 */
#ifndef MAILROOM_SCRIPT_H
#define MAILROOM_SCRIPT_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "error.h"

#define SCRIPT_MAX_ARGS 24

#include "lua_scripts.h"

/* One embedded script: its complete text (prelude and includes expanded), how many
 * of its arguments are keys, how many there are, and their names (keys first). */
typedef struct script_info {
    const char *name;
    const unsigned char *source;
    size_t source_len;
    int nkeys;
    int argc;
    const char *const *arg_names;
} script_info;

extern const script_info script_table[SCRIPT_COUNT];

/*
 * Runs script id with its arguments v (keys first, as the generated <name>_args
 * struct holds them; len[i] 0 means v[i] is a C string). Returns the reply (caller
 * frees with freeReplyObject); an error reply is returned as such. Returns NULL with
 * err->rc MAILROOM_EREDIS when the connection failed (c->err says how: drop it), or
 * MAILROOM_EINVAL when an argument was not set (a bug: retrying cannot help).
 */
redisReply *script_run(redisContext *c, script_id id, const char *const *v, const size_t *len,
                       mr_error *err);

/*
 * Like script_run, then WAIT for `replicas` replicas (up to timeout_ms) in the same
 * round trip; *acked gets how many acknowledged. With replicas == 0 no WAIT is sent
 * and *acked is 0. A WAIT reply lost with the connection fails the call (NULL), so
 * the caller redoes the write.
 */
redisReply *script_run_acked(redisContext *c, script_id id, const char *const *v, const size_t *len,
                             int replicas, int timeout_ms, long *acked, mr_error *err);

/*
 * How the reply of the command sent after a script (script_run_then) is read: 0 with
 * *reply (caller of script_run_then frees it), or -1 when it could not be (the
 * connection is then unusable). NULL: redisGetReply.
 */
typedef int (*script_reader)(redisContext *c, void *ctx, redisReply **reply);

/*
 * Like script_run, and in the same write one more command (then_argv, then_argvlen
 * NULL for C strings), whose reply is read right after the script's with read (NULL:
 * redisGetReply; ctx is passed on) and goes to *then_reply (NULL when it could not be
 * read: check c->err). Saves the follow-up its own round trip; it runs even when the
 * script fails. When the script must be loaded (NOSCRIPT), it is run again alone with
 * EVAL.
 */
redisReply *script_run_then(redisContext *c, script_id id, const char *const *v, const size_t *len,
                            int then_argc, const char **then_argv, const size_t *then_argvlen,
                            script_reader read, void *ctx, redisReply **then_reply, mr_error *err);

/*
 * Appends script id (EVALSHA, or EVAL with its source when eval is 1) to the
 * connection's output buffer without writing it, for callers that pipeline many
 * (mailroom_send_batch). Returns 0, or -1 (nothing appended: out of memory, or an
 * argument not set).
 */
int script_append(redisContext *c, script_id id, int eval, const char *const *v, const size_t *len,
                  mr_error *err);

/* The script's SHA-1 (hex), for callers that build EVALSHA themselves (benchmarks). */
const char *script_sha(script_id id);

#endif
