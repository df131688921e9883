/*
 * script: the runner of the embedded Lua scripts (see script.h). The scripts
 * themselves are the files of common/lua/; script_table (generated) holds their text and the
 * shape of their arguments.
 */
#include "script.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static char shas[SCRIPT_COUNT][41];
static pthread_once_t shas_once = PTHREAD_ONCE_INIT;

static void compute_shas(void)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1(script_table[i].source, script_table[i].source_len, md);
        for (int j = 0; j < SHA_DIGEST_LENGTH; j++) {
            shas[i][2 * j] = hex[md[j] >> 4];
            shas[i][2 * j + 1] = hex[md[j] & 0x0F];
        }
        shas[i][40] = '\0';
    }
}

const char *script_sha(script_id id)
{
    pthread_once(&shas_once, compute_shas);
    return shas[id];
}

/* A script call as hiredis takes it: verb, body, key count, then the arguments. */
typedef struct command {
    int argc;
    const char *argv[SCRIPT_MAX_ARGS + 3];
    size_t argvlen[SCRIPT_MAX_ARGS + 3];
    char nkeys[16];
} command;

/* Builds the EVALSHA (eval 0) or EVAL (eval 1) command of script id. Returns 0, or -1
 * with MAILROOM_EINVAL when an argument was left unset. */
static int build(command *cmd, script_id id, int eval, const char *const *v, const size_t *len,
                 mr_error *err)
{
    const script_info *s = &script_table[id];
    pthread_once(&shas_once, compute_shas);
    snprintf(cmd->nkeys, sizeof cmd->nkeys, "%d", s->nkeys);
    cmd->argc = s->argc + 3;
    cmd->argv[0] = eval ? "EVAL" : "EVALSHA";
    cmd->argvlen[0] = strlen(cmd->argv[0]);
    cmd->argv[1] = eval ? (const char *)s->source : shas[id];
    cmd->argvlen[1] = eval ? s->source_len : 40;
    cmd->argv[2] = cmd->nkeys;
    cmd->argvlen[2] = strlen(cmd->nkeys);
    for (int i = 0; i < s->argc; i++) {
        if (!v[i])
            return mr_fail(err, MAILROOM_EINVAL, "script %s: argument %s not set", s->name,
                           s->arg_names[i]);
        cmd->argv[3 + i] = v[i];
        cmd->argvlen[3 + i] = len && len[i] ? len[i] : strlen(v[i]);
    }
    return 0;
}

/* A command sent in the same write as a script, its reply read right after. */
typedef struct follow_cmd {
    int argc;
    const char **argv;
    const size_t *argvlen; /* NULL: C strings */
    script_reader read;    /* NULL: redisGetReply */
    void *ctx;
} follow_cmd;

static int read_follow(redisContext *c, const follow_cmd *f, redisReply **reply)
{
    if (f->read)
        return f->read(c, f->ctx, reply);
    return redisGetReply(c, (void **)reply) == REDIS_OK ? 0 : -1;
}

/*
 * Sends cmd followed in the same write by up to two commands (NULL: none), first then
 * second, whose replies are read in turn into replies[0] and replies[1] (caller frees;
 * NULL when not read). Returns the script's reply, or NULL when the connection failed
 * before it came (c->err says why; the caller drops it).
 */
static redisReply *send_once(redisContext *c, command *cmd, const follow_cmd *follow[2],
                             redisReply *replies[2])
{
    replies[0] = replies[1] = NULL;
    if (!follow[0] && !follow[1])
        return redisCommandArgv(c, cmd->argc, cmd->argv, cmd->argvlen);
    if (redisAppendCommandArgv(c, cmd->argc, cmd->argv, cmd->argvlen) != REDIS_OK)
        return NULL;
    for (int i = 0; i < 2; i++)
        if (follow[i] && redisAppendCommandArgv(c, follow[i]->argc, follow[i]->argv,
                                                follow[i]->argvlen) != REDIS_OK)
            return NULL;
    redisReply *r = NULL;
    if (redisGetReply(c, (void **)&r) != REDIS_OK)
        return NULL;
    for (int i = 0; i < 2; i++)
        if (follow[i] && read_follow(c, follow[i], &replies[i]) != 0)
            break;
    return r;
}

static int is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/*
 * The one runner behind script_run, script_run_acked and script_run_then: EVALSHA,
 * and EVAL (which loads the script) when Redis answers NOSCRIPT. With replicas > 0,
 * WAIT follows the script (also the EVAL) and *acked gets how many replicas
 * acknowledged; a WAIT reply lost with the connection makes the call fail (NULL), so
 * the caller redoes the write. `then`, when given, follows once, after the first
 * script run: it is never sent twice.
 */
static redisReply *run(redisContext *c, script_id id, const char *const *v, const size_t *len,
                       int replicas, int timeout_ms, long *acked, const follow_cmd *then,
                       redisReply **then_reply, mr_error *err)
{
    *acked = 0;
    if (then_reply)
        *then_reply = NULL;
    command cmd = {0};
    if (build(&cmd, id, 0, v, len, err) != 0)
        return NULL;
    char nrep[16], tmo[16];
    const char *wait_argv[] = {"WAIT", nrep, tmo};
    const follow_cmd wait = {3, wait_argv, NULL, NULL, NULL};
    snprintf(nrep, sizeof nrep, "%d", replicas);
    snprintf(tmo, sizeof tmo, "%d", timeout_ms);
    const follow_cmd *follow[2] = {replicas > 0 ? &wait : NULL, then};
    redisReply *replies[2];
    redisReply *r = send_once(c, &cmd, follow, replies);
    if (then_reply)
        *then_reply = replies[1];
    if (is_noscript(r)) {
        freeReplyObject(r);
        freeReplyObject(replies[0]);
        follow[1] = NULL;
        build(&cmd, id, 1, v, len, err);
        r = send_once(c, &cmd, follow, replies);
    }
    if (r && follow[0] && !replies[0]) {
        freeReplyObject(r); /* WAIT's reply lost with the connection: the caller redoes */
        r = NULL;
    }
    if (r && replies[0] && replies[0]->type == REDIS_REPLY_INTEGER)
        *acked = (long)replies[0]->integer;
    freeReplyObject(replies[0]);
    if (!r)
        mr_fail(err, MAILROOM_EREDIS, "script %s: %s", script_table[id].name,
                c->err ? c->errstr : "connection lost");
    return r;
}

redisReply *script_run_then(redisContext *c, script_id id, const char *const *v, const size_t *len,
                            int then_argc, const char **then_argv, const size_t *then_argvlen,
                            script_reader read, void *ctx, redisReply **then_reply, mr_error *err)
{
    long acked;
    const follow_cmd then = {then_argc, then_argv, then_argvlen, read, ctx};
    return run(c, id, v, len, 0, 0, &acked, &then, then_reply, err);
}

redisReply *script_run_acked(redisContext *c, script_id id, const char *const *v, const size_t *len,
                             int replicas, int timeout_ms, long *acked, mr_error *err)
{
    return run(c, id, v, len, replicas, timeout_ms, acked, NULL, NULL, err);
}

redisReply *script_run(redisContext *c, script_id id, const char *const *v, const size_t *len,
                       mr_error *err)
{
    long acked;
    return run(c, id, v, len, 0, 0, &acked, NULL, NULL, err);
}

int script_append(redisContext *c, script_id id, int eval, const char *const *v, const size_t *len,
                  mr_error *err)
{
    command cmd = {0};
    if (build(&cmd, id, eval, v, len, err) != 0)
        return -1;
    if (redisAppendCommandArgv(c, cmd.argc, cmd.argv, cmd.argvlen) != REDIS_OK)
        return mr_fail(err, MAILROOM_ENOMEM, "out of memory");
    return 0;
}
