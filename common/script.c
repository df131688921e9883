/*
 * script: the Lua scripts (job transitions, housekeeping, the CLI's dead-list commands)
 * and their runner (see script.h).
 *
 * Status events are built inside the scripts, where the authoritative attempt count
 * lives, by concatenating cjson-encoded strings in a fixed member order, so that a
 * subscriber always sees {"id","queue","state","attempts","smtp_code","smtp_reply",
 * "error","consumer","at"} in that order.
 */
#include "script.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define LUA_EVENT                                                                        \
    "local function event(id, state, attempts, code, reply, err, consumer, at, queue)\n" \
    "  return '{\"id\":' .. (id == '' and 'null' or cjson.encode(id)) ..\n"            \
    "    ',\"queue\":' .. cjson.encode(queue) .. ',\"state\":\"' .. state ..\n"        \
    "    '\",\"attempts\":' .. tostring(attempts) ..\n"                                 \
    "    ',\"smtp_code\":' .. (code == '' and 'null' or tostring(tonumber(code))) ..\n" \
    "    ',\"smtp_reply\":' .. cjson.encode(reply) .. ',\"error\":' .. cjson.encode(err) ..\n" \
    "    ',\"consumer\":' .. cjson.encode(consumer) .. ',\"at\":' .. cjson.encode(at) .. '}'\n" \
    "end\n"

/*
 * ENQUEUE  KEYS: job hash, pending, scheduled
 *          ARGV: raw job, now (RFC 3339), status ttl s, due ms ('' = now)
 */
static const char lua_enqueue[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
    "  return redis.error_reply('DUPLICATE a job with this id is already recorded')\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'state', 'queued', 'attempts', '0',\n"
    "  'created_at', ARGV[2], 'updated_at', ARGV[2])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
    "if ARGV[4] == '' then redis.call('LPUSH', KEYS[2], ARGV[1])\n"
    "else redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1]) end\n"
    "return 1\n";

/*
 * BEGIN    KEYS: job hash, processing list
 *          ARGV: raw job, now, consumer, queue, channel, status ttl s, id
 * Returns {"duplicate"|"sending", attempts}.
 */
static const char lua_begin[] = LUA_EVENT
    "if redis.call('HGET', KEYS[1], 'state') == 'sent' then\n"
    "  redis.call('LREM', KEYS[2], 1, ARGV[1])\n"
    "  local n = tonumber(redis.call('HGET', KEYS[1], 'attempts')) or 0\n"
    "  redis.call('PUBLISH', ARGV[5], event(ARGV[7], 'duplicate', n, '', '',\n"
    "    'already sent: acknowledged without sending again', ARGV[3], ARGV[2], ARGV[4]))\n"
    "  return {'duplicate', n}\n"
    "end\n"
    "local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)\n"
    "redis.call('HSET', KEYS[1], 'state', 'sending', 'updated_at', ARGV[2],\n"
    "  'consumer', ARGV[3])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[6])\n"
    "redis.call('PUBLISH', ARGV[5], event(ARGV[7], 'sending', n, '', '', '', ARGV[3],\n"
    "  ARGV[2], ARGV[4]))\n"
    "return {'sending', n}\n";

/*
 * FINISH   KEYS: job hash, processing list, stats, target (dead list or scheduled),
 *                this minute's sent counter (mailroom:{Q}:rate:<unix minute>)
 *          ARGV: raw job, state, smtp code ('' = none), smtp reply, error, now,
 *                consumer, queue, channel, status ttl s, id ('' = unknown),
 *                dead entry (failed/rejected) or due ms (retrying; queued = a job
 *                taken before its send_at, deferred uncounted), dead max
 * A rejected job never overwrites a record that says "sent": its id may be forged.
 * A FINISH run again because its reply was lost (Redis restarted in between) finds
 * the job gone and the record already in that state: it does nothing, so counters and
 * events are not doubled. (A job gone because another consumer recovered it still has
 * its outcome recorded: the record is then "queued" or "sending".)
 */
static const char lua_finish[] = LUA_EVENT
    "local state = ARGV[2]\n"
    "local removed = redis.call('LREM', KEYS[2], 1, ARGV[1])\n"
    "if removed == 0 and (ARGV[11] == '' or redis.call('HGET', KEYS[1], 'state') == state) then\n"
    "  return 0\n"
    "end\n"
    "local n = 0\n"
    "local write = ARGV[11] ~= ''\n"
    "if write and state == 'rejected' and redis.call('HGET', KEYS[1], 'state') == 'sent' then\n"
    "  write = false\n"
    "end\n"
    "if write then\n"
    "  redis.call('HSET', KEYS[1], 'state', state, 'smtp_code', ARGV[3], 'smtp_reply', ARGV[4],\n"
    "    'error', ARGV[5], 'updated_at', ARGV[6], 'consumer', ARGV[7])\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[10])\n"
    "  n = tonumber(redis.call('HGET', KEYS[1], 'attempts')) or 0\n"
    "end\n"
    "local counter = ({sent = 'sent', retrying = 'retried', failed = 'failed',\n"
    "  rejected = 'rejected'})[state]\n"
    "if counter then redis.call('HINCRBY', KEYS[3], counter, 1) end\n"
    "if state == 'sent' then\n"
    "  if redis.call('INCR', KEYS[5]) == 1 then redis.call('EXPIRE', KEYS[5], 180) end\n"
    "end\n"
    "if state == 'retrying' or state == 'queued' then\n"
    "  redis.call('ZADD', KEYS[4], ARGV[12], ARGV[1])\n"
    "elseif state ~= 'sent' then\n"
    "  redis.call('LPUSH', KEYS[4], ARGV[12])\n"
    "  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[13]) - 1)\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[9], event(ARGV[11], state, n, ARGV[3], ARGV[4], ARGV[5],\n"
    "  ARGV[7], ARGV[6], ARGV[8]))\n"
    "return n\n";

/*
 * PROMOTE  KEYS: scheduled, pending    ARGV: now ms, batch size
 * Due jobs go to the right end of pending: they are taken next.
 */
static const char lua_promote[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
    "for _, job in ipairs(due) do\n"
    "  redis.call('ZREM', KEYS[1], job)\n"
    "  redis.call('RPUSH', KEYS[2], job)\n"
    "end\n"
    "return #due\n";

/*
 * RECLAIM  KEYS: processing list, pending, consumers    ARGV: consumer id
 * Moves every held job back, newest first to the right end, so the oldest is taken
 * first, and removes the consumer from the heartbeat set. Returns the number moved.
 */
static const char lua_reclaim[] =
    "local n = 0\n"
    "while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do n = n + 1 end\n"
    "redis.call('ZREM', KEYS[3], ARGV[1])\n"
    "return n\n";

/*
 * HEARTBEAT  KEYS: consumers, pending, stats
 *            ARGV: consumer id, dead after ms, recover ('1' or '0'), queue, channel,
 *                  processing key prefix, job key prefix, now (RFC 3339), status ttl s
 * Records this consumer's heartbeat with the Redis server's clock (so clocks of
 * consumer hosts do not matter). With recover = '1', returns the processing lists of
 * up to 10 consumers silent for longer than dead-after to the right end of pending,
 * sets their records back to "queued" (never a "sent" one), publishes a "recovered"
 * event per job, bumps "recovered" and removes those consumers. The processing lists
 * and job hashes are derived from the queue's prefixes: they share its hash tag.
 * Returns the number of jobs recovered.
 */
static const char lua_heartbeat[] = LUA_EVENT
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZADD', KEYS[1], now, ARGV[1])\n"
    "if ARGV[3] ~= '1' then return 0 end\n"
    "local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]),\n"
    "  'LIMIT', 0, 10)\n"
    "local moved = 0\n"
    "for _, c in ipairs(dead) do\n"
    "  local why = 'recovered from consumer ' .. c .. ', silent for over ' .. ARGV[2] .. ' ms'\n"
    "  while true do\n"
    "    local job = redis.call('LMOVE', ARGV[6] .. c, KEYS[2], 'LEFT', 'RIGHT')\n"
    "    if not job then break end\n"
    "    moved = moved + 1\n"
    "    local ok, decoded = pcall(cjson.decode, job)\n"
    "    local id = ''\n"
    "    if ok and type(decoded) == 'table' and type(decoded.id) == 'string' then\n"
    "      id = decoded.id\n"
    "    end\n"
    "    local n = 0\n"
    "    if id ~= '' then\n"
    "      local key = ARGV[7] .. id\n"
    "      n = tonumber(redis.call('HGET', key, 'attempts')) or 0\n"
    "      if redis.call('HGET', key, 'state') ~= 'sent' then\n"
    "        redis.call('HSET', key, 'state', 'queued', 'error', why, 'updated_at', ARGV[8])\n"
    "        redis.call('EXPIRE', key, ARGV[9])\n"
    "      end\n"
    "    end\n"
    "    redis.call('PUBLISH', ARGV[5], event(id, 'recovered', n, '', '', why, ARGV[1],\n"
    "      ARGV[8], ARGV[4]))\n"
    "  end\n"
    "  redis.call('ZREM', KEYS[1], c)\n"
    "end\n"
    "if moved > 0 then redis.call('HINCRBY', KEYS[3], 'recovered', moved) end\n"
    "return moved\n";

/*
 * REQUEUE  KEYS: processing list, pending, stats
 *          ARGV: raw job, consumer, queue, channel, job key prefix, now, status ttl s
 * Returns one orphaned entry of this consumer's own processing list (a job no worker
 * holds: the BLMOVE reply was lost to a Redis restart) to the right end of pending,
 * record back to "queued", "recovered" event and counter. 1 when it was still there.
 */
static const char lua_requeue[] = LUA_EVENT
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end\n"
    "redis.call('RPUSH', KEYS[2], ARGV[1])\n"
    "redis.call('HINCRBY', KEYS[3], 'recovered', 1)\n"
    "local ok, decoded = pcall(cjson.decode, ARGV[1])\n"
    "local id, n = '', 0\n"
    "if ok and type(decoded) == 'table' and type(decoded.id) == 'string' then\n"
    "  id = decoded.id\n"
    "  local key = ARGV[5] .. id\n"
    "  n = tonumber(redis.call('HGET', key, 'attempts')) or 0\n"
    "  if redis.call('HGET', key, 'state') ~= 'sent' then\n"
    "    redis.call('HSET', key, 'state', 'queued', 'updated_at', ARGV[6])\n"
    "    redis.call('EXPIRE', key, ARGV[7])\n"
    "  end\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[4], event(id, 'recovered', n, '', '',\n"
    "  'orphaned in ' .. KEYS[1] .. ' (reply lost to a Redis restart)', ARGV[2], ARGV[6],\n"
    "  ARGV[3]))\n"
    "return 1\n";

/* The operator scripts of the mailroom CLI (producer/admin.c). */

/*
 * DEAD_RETRY  KEYS: dead list, pending
 *             ARGV: job id ('' = every entry), job key prefix, now (RFC 3339),
 *                   status ttl s
 * Every matching entry (decoded with cjson; an entry is compared only when its text
 * holds the quoted id, to spare decoding large jobs) has its raw job RPUSHed onto
 * pending, newest entry first, so the oldest is taken first and all before the
 * backlog. Its status record is reset to "queued" with no attempts, unless it says
 * "sent": a rejected entry may carry a forged id, and a sent job's record must keep
 * saying so. The dead list is then rebuilt from the entries left, in their order
 * (rebuilding is linear; removing entries one by one would be quadratic). Entries that
 * cannot be decoded or hold no job string stay. Returns the number retried.
 */
static const char lua_dead_retry[] =
    "local all = ARGV[1] == ''\n"
    "local needle = '\"' .. ARGV[1] .. '\"'\n"
    "local entries = redis.call('LRANGE', KEYS[1], 0, -1)\n"
    "local kept, moved = {}, 0\n"
    "for _, raw in ipairs(entries) do\n"
    "  local e = nil\n"
    "  if all or string.find(raw, needle, 1, true) then\n"
    "    local ok, d = pcall(cjson.decode, raw)\n"
    "    if ok and type(d) == 'table' and type(d.job) == 'string' and\n"
    "       (all or d.id == ARGV[1]) then e = d end\n"
    "  end\n"
    "  if e then\n"
    "    redis.call('RPUSH', KEYS[2], e.job)\n"
    "    if type(e.id) == 'string' and e.id ~= '' then\n"
    "      local key = ARGV[2] .. e.id\n"
    "      if redis.call('HGET', key, 'state') ~= 'sent' then\n"
    "        redis.call('HSET', key, 'state', 'queued', 'attempts', '0', 'error', '',\n"
    "          'smtp_code', '', 'smtp_reply', '', 'updated_at', ARGV[3])\n"
    "        redis.call('EXPIRE', key, ARGV[4])\n"
    "      end\n"
    "    end\n"
    "    moved = moved + 1\n"
    "  else\n"
    "    kept[#kept + 1] = raw\n"
    "  end\n"
    "end\n"
    "if moved > 0 then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  for i = 1, #kept, 1000 do\n"
    "    redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 999, #kept)))\n"
    "  end\n"
    "end\n"
    "return moved\n";

/*
 * DEAD_PURGE  KEYS: dead list    ARGV: older than ms ('' = every entry)
 * Without an age, deletes the list. With one, removes the entries whose "at" (RFC 3339,
 * parsed here: UTC "Z" or an offset) is before Redis' TIME minus that age, and rebuilds
 * the list from the others in their order; an entry without a readable "at" stays.
 * Returns the number removed.
 */
static const char lua_dead_purge[] =
    "if ARGV[1] == '' then\n"
    "  local n = redis.call('LLEN', KEYS[1])\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  return n\n"
    "end\n"
    "local function epoch_ms(s)\n"
    "  local y, mo, d, h, mi, se, frac, tz = string.match(s,\n"
    "    '^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt](%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$')\n"
    "  if not y then return nil end\n"
    "  y, mo = tonumber(y), tonumber(mo)\n"
    "  if mo <= 2 then y = y - 1 end\n"
    "  local era = math.floor(y / 400)\n"
    "  local yoe = y - era * 400\n"
    "  local doy = math.floor((153 * ((mo + 9) % 12) + 2) / 5) + tonumber(d) - 1\n"
    "  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy\n"
    "  local days = era * 146097 + doe - 719468\n"
    "  local ms = ((days * 24 + tonumber(h)) * 60 + tonumber(mi)) * 60000 +\n"
    "    tonumber(se) * 1000\n"
    "  if #frac > 1 then ms = ms + math.floor(tonumber('0' .. frac) * 1000) end\n"
    "  if tz == 'Z' or tz == 'z' then return ms end\n"
    "  local sign, oh, om = string.match(tz, '^([+-])(%d%d):(%d%d)$')\n"
    "  if not sign then return nil end\n"
    "  local off = (tonumber(oh) * 60 + tonumber(om)) * 60000\n"
    "  if sign == '+' then return ms - off end\n"
    "  return ms + off\n"
    "end\n"
    "local t = redis.call('TIME')\n"
    "local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) -\n"
    "  tonumber(ARGV[1])\n"
    "local entries = redis.call('LRANGE', KEYS[1], 0, -1)\n"
    "local kept, n = {}, 0\n"
    "for _, raw in ipairs(entries) do\n"
    "  local ok, e = pcall(cjson.decode, raw)\n"
    "  local at = ok and type(e) == 'table' and type(e.at) == 'string' and epoch_ms(e.at)\n"
    "  if at and at < cutoff then n = n + 1 else kept[#kept + 1] = raw end\n"
    "end\n"
    "if n > 0 then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  for i = 1, #kept, 1000 do\n"
    "    redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 999, #kept)))\n"
    "  end\n"
    "end\n"
    "return n\n";

static const char *const sources[SCRIPT_COUNT] = {
    lua_enqueue,   lua_begin,   lua_finish,     lua_promote,   lua_reclaim,
    lua_heartbeat, lua_requeue, lua_dead_retry, lua_dead_purge};
static char shas[SCRIPT_COUNT][41];
static pthread_once_t shas_once = PTHREAD_ONCE_INIT;

static void compute_shas(void)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)sources[i], strlen(sources[i]), md);
        for (int j = 0; j < SHA_DIGEST_LENGTH; j++) {
            shas[i][2 * j] = hex[md[j] >> 4];
            shas[i][2 * j + 1] = hex[md[j] & 0x0F];
        }
        shas[i][40] = '\0';
    }
}

const char *script_source(script_id id)
{
    return sources[id];
}

const char *script_sha(script_id id)
{
    pthread_once(&shas_once, compute_shas);
    return shas[id];
}

/* A command sent in the same write as a script, its reply read right after. */
typedef struct follow_cmd {
    int argc;
    const char **argv;
    const size_t *argvlen; /* NULL: C strings */
} follow_cmd;

/*
 * One EVALSHA or EVAL, followed in the same write by up to two commands (NULL: none),
 * first then second, whose replies are read in turn into *replies[0] and *replies[1]
 * (caller frees; NULL when not read). Returns the script's reply, or NULL when the
 * connection failed before it came (c->err says why; the caller drops it).
 */
static redisReply *run_once(redisContext *c, const char *verb, const char *body, int nkeys,
                            int argc, const char **argv, const size_t *argvlen,
                            const follow_cmd *follow[2], redisReply *replies[2])
{
    const char *av[SCRIPT_MAX_ARGS + 3];
    size_t avlen[SCRIPT_MAX_ARGS + 3];
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    av[0] = verb;
    av[1] = body;
    av[2] = nk;
    for (int i = 0; i < 3; i++)
        avlen[i] = strlen(av[i]);
    for (int i = 0; i < argc; i++) {
        av[3 + i] = argv[i];
        avlen[3 + i] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    replies[0] = replies[1] = NULL;
    if (!follow[0] && !follow[1])
        return redisCommandArgv(c, argc + 3, av, avlen);
    if (redisAppendCommandArgv(c, argc + 3, av, avlen) != REDIS_OK)
        return NULL;
    for (int i = 0; i < 2; i++)
        if (follow[i] && redisAppendCommandArgv(c, follow[i]->argc, follow[i]->argv,
                                                follow[i]->argvlen) != REDIS_OK)
            return NULL;
    redisReply *r = NULL;
    if (redisGetReply(c, (void **)&r) != REDIS_OK)
        return NULL;
    for (int i = 0; i < 2; i++)
        if (follow[i] && redisGetReply(c, (void **)&replies[i]) != REDIS_OK)
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
static redisReply *run(redisContext *c, script_id id, int nkeys, int argc, const char **argv,
                       const size_t *argvlen, int replicas, int timeout_ms, long *acked,
                       const follow_cmd *then, redisReply **then_reply)
{
    *acked = 0;
    if (then_reply)
        *then_reply = NULL;
    if (argc > SCRIPT_MAX_ARGS)
        return NULL;
    pthread_once(&shas_once, compute_shas);
    char nrep[16], tmo[16];
    const char *wait_argv[] = {"WAIT", nrep, tmo};
    const follow_cmd wait = {3, wait_argv, NULL};
    if (replicas > 0) {
        snprintf(nrep, sizeof nrep, "%d", replicas);
        snprintf(tmo, sizeof tmo, "%d", timeout_ms);
    }
    const follow_cmd *follow[2] = {replicas > 0 ? &wait : NULL, then};
    redisReply *replies[2];
    redisReply *r = run_once(c, "EVALSHA", shas[id], nkeys, argc, argv, argvlen, follow,
                             replies);
    if (then_reply)
        *then_reply = replies[1];
    if (is_noscript(r)) {
        freeReplyObject(r);
        freeReplyObject(replies[0]);
        follow[1] = NULL;
        r = run_once(c, "EVAL", sources[id], nkeys, argc, argv, argvlen, follow, replies);
    }
    if (r && follow[0] && !replies[0]) {
        freeReplyObject(r); /* WAIT's reply lost with the connection: the caller redoes */
        r = NULL;
    }
    if (r && replies[0] && replies[0]->type == REDIS_REPLY_INTEGER)
        *acked = (long)replies[0]->integer;
    freeReplyObject(replies[0]);
    return r;
}

redisReply *script_run_then(redisContext *c, script_id id, int nkeys, int argc,
                            const char **argv, const size_t *argvlen, int then_argc,
                            const char **then_argv, const size_t *then_argvlen,
                            redisReply **then_reply)
{
    long acked;
    const follow_cmd then = {then_argc, then_argv, then_argvlen};
    return run(c, id, nkeys, argc, argv, argvlen, 0, 0, &acked, &then, then_reply);
}

redisReply *script_run_acked(redisContext *c, script_id id, int nkeys, int argc,
                             const char **argv, const size_t *argvlen, int replicas,
                             int timeout_ms, long *acked)
{
    return run(c, id, nkeys, argc, argv, argvlen, replicas, timeout_ms, acked, NULL, NULL);
}

redisReply *script_run(redisContext *c, script_id id, int nkeys, int argc, const char **argv,
                       const size_t *argvlen)
{
    long acked;
    return run(c, id, nkeys, argc, argv, argvlen, 0, 0, &acked, NULL, NULL);
}
