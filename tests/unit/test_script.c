/*
 * test_script: common/script.c, the runner of the embedded Lua scripts, without Redis.
 * The client is a hiredis context on one end of a socketpair (redisConnectFd); a fake
 * server thread on the other end reads the commands and answers each batch only once
 * that batch has arrived, as Redis does. (Replies written in advance would be returned
 * from hiredis' buffer, and a missing command would go unnoticed.) Checked: EVALSHA
 * followed in the same write by the follow-up command, NOSCRIPT answered by EVAL sent
 * alone, WAIT's acknowledgement count, a WAIT reply lost with the connection; every
 * argument sent as given (binary ones with their length, C strings by strlen) after
 * the script's generated key count; an argument left unset fails the call with
 * MAILROOM_EINVAL naming it and sends nothing at all (a NULL the caller would take
 * for a lost connection made it retry for ever); script_append queues EVALSHA or EVAL
 * without writing; and the generated table agrees with itself: the SHA-1 EVALSHA
 * sends is that of the text EVAL sends, and each script's prelude binds its argument
 * names to KEYS[i] and ARGV[i] in the order of the C positions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "error.h"
#include "script.h"

#define MAX_STEPS 4
#define MAX_CMDS 8
#define MAX_ARGS (SCRIPT_MAX_ARGS + 4)
#define IO_TIMEOUT_MS 5000

/* One command as the server received it: its arguments, and the step it came in. */
typedef struct fake_cmd {
    int argc;
    char *argv[MAX_ARGS];
    size_t argvlen[MAX_ARGS];
    int step;
} fake_cmd;

/*
 * What the fake server does: for each step, read until `ncmds` complete commands have
 * arrived, then write `reply` (its bytes, as Redis would send them) or, with
 * `close_after` set, write it and close the connection. After the last step it reads
 * until the client closes, so that anything sent after the script counts as extra.
 */
typedef struct fake_step {
    int ncmds;
    const char *reply;
    int close_after;
} fake_step;

typedef struct fake_server {
    int fd;
    int nsteps;
    fake_step steps[MAX_STEPS];
    /* results, read by the test after pthread_join */
    fake_cmd cmds[MAX_CMDS];
    int ncmds;
    size_t early[MAX_STEPS]; /* bytes already waiting when step i's reply was written */
    size_t extra;            /* bytes received after the last step */
    const char *error;       /* the server's own failure, or NULL */
} fake_server;

/* Reads "<digits>\r\n" at *p (within end) into *out. Returns 1, 0 when incomplete, -1
 * when malformed. */
static int parse_number(const char **p, const char *end, long *out)
{
    const char *q = *p;
    long v = 0;
    if (q >= end)
        return 0;
    if (*q < '0' || *q > '9')
        return -1;
    while (q < end && *q >= '0' && *q <= '9')
        v = v * 10 + (*q++ - '0');
    if (end - q < 2)
        return 0;
    if (q[0] != '\r' || q[1] != '\n')
        return -1;
    *p = q + 2;
    *out = v;
    return 1;
}

/*
 * Parses one RESP command ("*<n>\r\n" then n times "$<len>\r\n<bytes>\r\n", the form
 * hiredis writes) from data[0..len). Returns the bytes it takes, 0 when the command is
 * not complete yet, -1 when malformed (or out of memory). With cmd NULL it only
 * measures; otherwise a complete command must be given, and cmd gets copies of its
 * arguments (freed with free_command). Runs in the server thread: no cmocka asserts.
 */
static long parse_command(const char *data, size_t len, fake_cmd *cmd)
{
    const char *p = data, *end = data + len;
    long n = 0;
    if (p >= end)
        return 0;
    if (*p++ != '*')
        return -1;
    int rc = parse_number(&p, end, &n);
    if (rc <= 0)
        return rc;
    if (n < 1 || n > MAX_ARGS)
        return -1;
    if (cmd)
        memset(cmd, 0, sizeof *cmd);
    for (long i = 0; i < n; i++) {
        long alen = 0;
        if (p >= end)
            return 0;
        if (*p++ != '$')
            return -1;
        rc = parse_number(&p, end, &alen);
        if (rc <= 0)
            return rc;
        if (end - p < alen + 2)
            return 0;
        if (p[alen] != '\r' || p[alen + 1] != '\n')
            return -1;
        if (cmd) {
            cmd->argv[i] = malloc((size_t)alen + 1);
            if (!cmd->argv[i])
                return -1;
            cmd->argc = (int)i + 1;
            memcpy(cmd->argv[i], p, (size_t)alen);
            cmd->argv[i][alen] = '\0';
            cmd->argvlen[i] = (size_t)alen;
        }
        p += alen + 2;
    }
    return (long)(p - data);
}

static void free_command(fake_cmd *cmd)
{
    for (int i = 0; i < cmd->argc; i++)
        free(cmd->argv[i]);
    cmd->argc = 0;
}

/* Waits up to IO_TIMEOUT_MS for fd to be readable, then reads. Returns read's result,
 * or -1 on timeout. */
static ssize_t read_some(int fd, char *into, size_t cap)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int ready = poll(&pfd, 1, IO_TIMEOUT_MS);
    if (ready <= 0)
        return -1;
    return read(fd, into, cap);
}

/* Writes all len bytes (retrying short writes). Returns 0, or -1. */
static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The server thread: steps as fake_server describes, recording every command. */
static void *fake_server_run(void *arg)
{
    fake_server *s = arg;
    size_t cap = 1 << 16, have = 0;
    char *in = malloc(cap);
    if (!in) {
        s->error = "out of memory";
        return NULL;
    }
    for (int step = 0; step < s->nsteps; step++) {
        int got = 0;
        while (got < s->steps[step].ncmds) {
            long used = parse_command(in, have, NULL);
            if (used > 0 && s->ncmds == MAX_CMDS)
                used = -1;
            if (used > 0) {
                fake_cmd *cmd = &s->cmds[s->ncmds++];
                used = parse_command(in, have, cmd);
                cmd->step = step;
            }
            if (used < 0) {
                s->error = "malformed command, too many commands, or out of memory";
                goto out;
            }
            if (used > 0) {
                memmove(in, in + used, have - (size_t)used);
                have -= (size_t)used;
                got++;
                continue;
            }
            if (have == cap) {
                s->error = "command larger than the server's buffer";
                goto out;
            }
            ssize_t n = read_some(s->fd, in + have, cap - have);
            if (n <= 0) {
                s->error = "connection closed or silent before the expected commands";
                goto out;
            }
            have += (size_t)n;
        }
        /* nothing more may have been sent before the client saw this step's reply */
        struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
        while (poll(&pfd, 1, 50) == 1) {
            ssize_t n = have < cap ? read(s->fd, in + have, cap - have) : 0;
            if (n <= 0)
                break;
            have += (size_t)n;
        }
        s->early[step] = have;
        if (write_all(s->fd, s->steps[step].reply, strlen(s->steps[step].reply)) != 0) {
            s->error = "cannot write the reply";
            goto out;
        }
        if (s->steps[step].close_after) {
            shutdown(s->fd, SHUT_RDWR);
            goto out;
        }
    }
    /* until the client closes: anything arriving now is extra */
    for (;;) {
        ssize_t n = read_some(s->fd, in, cap);
        if (n == 0)
            break;
        if (n < 0) {
            s->error = "the client kept the connection open, silent, after the last step";
            break;
        }
        s->extra += (size_t)n;
    }
    s->extra += have;
out:
    free(in);
    return NULL;
}

/* A fake Redis for one test: the client context and the server thread. */
typedef struct fake_redis {
    redisContext *c;
    fake_server server;
    pthread_t thread;
    int server_fd;
} fake_redis;

/*
 * Connects a hiredis context to a new fake server that will play `steps` (n of them),
 * with send and receive timeouts on the client so that a broken runner fails the test
 * instead of hanging it.
 */
static void fake_start(fake_redis *f, const fake_step *steps, int n)
{
    int sv[2];
    memset(f, 0, sizeof *f);
    assert_true(n <= MAX_STEPS);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    f->server_fd = sv[1];
    f->server.fd = sv[1];
    f->server.nsteps = n;
    if (n > 0) /* steps may be NULL when there are none */
        memcpy(f->server.steps, steps, (size_t)n * sizeof *steps);
    f->c = redisConnectFd(sv[0]);
    assert_non_null(f->c);
    assert_int_equal(f->c->err, 0);
    struct timeval tv = {IO_TIMEOUT_MS / 1000, 0};
    assert_int_equal(redisSetTimeout(f->c, tv), REDIS_OK);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_server_run, &f->server), 0);
}

/* Closes the client (the server sees EOF), joins the server and checks it had no
 * trouble of its own, sent no reply early and received nothing beyond its steps. */
static void fake_finish(fake_redis *f)
{
    redisFree(f->c);
    f->c = NULL;
    assert_int_equal(pthread_join(f->thread, NULL), 0);
    close(f->server_fd);
    for (int i = 0; i < f->server.nsteps; i++)
        if (f->server.early[i] != 0)
            fail_msg("step %d: %zu bytes sent before its reply was read", i, f->server.early[i]);
    if (f->server.error)
        fail_msg("fake server: %s", f->server.error);
    if (f->server.extra != 0)
        fail_msg("%zu bytes sent after the last step", f->server.extra);
}

/* Frees the commands the server recorded. */
static void fake_free(fake_redis *f)
{
    for (int i = 0; i < f->server.ncmds; i++)
        free_command(&f->server.cmds[i]);
}

/* Asserts that command i was verb (case as sent), arrived in step `step`, and has argc
 * arguments. */
static void expect_cmd(const fake_redis *f, int i, const char *verb, int step, int argc)
{
    if (i >= f->server.ncmds)
        fail_msg("command %d (%s) never arrived: %d in all", i, verb, f->server.ncmds);
    const fake_cmd *cmd = &f->server.cmds[i];
    if (strcmp(cmd->argv[0], verb) != 0)
        fail_msg("command %d: %s, expected %s", i, cmd->argv[0], verb);
    if (cmd->step != step)
        fail_msg("command %d (%s): in step %d, expected %d", i, verb, cmd->step, step);
    assert_int_equal(cmd->argc, argc);
}

/*
 * Arguments for one script, as a caller fills its generated struct: one value per
 * key and argument, in order. Even positions are C strings (len 0), odd ones binary
 * with a NUL inside (their length given), so both ways of passing a value are sent.
 */
typedef struct test_args {
    script_id id;
    const char *v[SCRIPT_MAX_ARGS];
    size_t len[SCRIPT_MAX_ARGS];
    char text[SCRIPT_MAX_ARGS][48];
    size_t text_len[SCRIPT_MAX_ARGS]; /* what is sent */
} test_args;

static void fill_args(test_args *a, script_id id)
{
    const script_info *s = &script_table[id];
    memset(a, 0, sizeof *a);
    a->id = id;
    assert_true(s->argc <= SCRIPT_MAX_ARGS);
    for (int i = 0; i < s->argc; i++) {
        int n = snprintf(a->text[i], sizeof a->text[i], "%s=%d", s->arg_names[i], i);
        assert_true(n > 0 && (size_t)n + 3 < sizeof a->text[i]);
        a->text_len[i] = (size_t)n;
        if (i % 2) {
            memcpy(a->text[i] + n, "\0b", 3); /* "name=i\0b" */
            a->text_len[i] += 2;
            a->len[i] = a->text_len[i];
        }
        a->v[i] = a->text[i];
    }
}

/* Command i is `verb` script: body (body_len bytes), the key count, the arguments. */
static void expect_script_args(const fake_redis *f, int i, const test_args *a,
                               const char *body, size_t body_len)
{
    const script_info *s = &script_table[a->id];
    const fake_cmd *cmd = &f->server.cmds[i];
    char nkeys[16];
    snprintf(nkeys, sizeof nkeys, "%d", s->nkeys);
    assert_int_equal(cmd->argc, s->argc + 3);
    assert_int_equal(cmd->argvlen[1], body_len);
    assert_memory_equal(cmd->argv[1], body, body_len);
    assert_string_equal(cmd->argv[2], nkeys);
    for (int k = 0; k < s->argc; k++) {
        assert_int_equal(cmd->argvlen[3 + k], a->text_len[k]);
        assert_memory_equal(cmd->argv[3 + k], a->text[k], a->text_len[k]);
    }
}

/* The EVALSHA and EVAL bodies of a script. */
static void expect_evalsha(const fake_redis *f, int i, const test_args *a)
{
    expect_script_args(f, i, a, script_sha(a->id), 40);
}

static void expect_eval(const fake_redis *f, int i, const test_args *a)
{
    const script_info *s = &script_table[a->id];
    expect_script_args(f, i, a, (const char *)s->source, s->source_len);
}

/* EVALSHA answered: one write, one reply. */
static void test_run_evalsha(void **state)
{
    (void)state;
    static const fake_step steps[] = {{1, ":5\r\n", 0}};
    fake_redis f;
    fake_start(&f, steps, 1);
    test_args a;
    fill_args(&a, SCRIPT_PROMOTE);
    mr_error err = MR_ERROR_INIT;
    redisReply *r = script_run(f.c, SCRIPT_PROMOTE, a.v, a.len, &err);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 5);
    assert_int_equal(err.rc, MAILROOM_OK);
    freeReplyObject(r);
    fake_finish(&f);
    assert_int_equal(f.server.ncmds, 1);
    expect_cmd(&f, 0, "EVALSHA", 0, script_table[SCRIPT_PROMOTE].argc + 3);
    expect_evalsha(&f, 0, &a);
    assert_int_equal(strlen(script_sha(SCRIPT_PROMOTE)), 40);
    fake_free(&f);
}

/*
 * The widest script through the generated struct, filled by name as worker.c fills
 * it: the values land at 3 + their position, keys first, after the key count.
 */
static void test_run_named_arguments(void **state)
{
    (void)state;
    static const fake_step steps[] = {{1, "+OK\r\n", 0}};
    fake_redis f;
    fake_start(&f, steps, 1);
    test_args t;
    fill_args(&t, SCRIPT_FINISH);
    finish_args a = {0};
    assert_int_equal(sizeof a.v / sizeof a.v[0], FINISH_ARGC);
    assert_int_equal(script_table[SCRIPT_FINISH].argc, FINISH_ARGC);
    assert_int_equal(script_table[SCRIPT_FINISH].nkeys, FINISH_NKEYS);
    for (int i = 0; i < FINISH_ARGC; i++) {
        a.v[i] = t.v[i];
        a.len[i] = t.len[i];
    }
    mr_error err = MR_ERROR_INIT;
    redisReply *r = script_run(f.c, SCRIPT_FINISH, a.v, a.len, &err);
    assert_non_null(r);
    freeReplyObject(r);
    fake_finish(&f);
    expect_cmd(&f, 0, "EVALSHA", 0, FINISH_ARGC + 3);
    expect_evalsha(&f, 0, &t);
    /* the named positions: the first key, the first ARGV, the last */
    const fake_cmd *cmd = &f.server.cmds[0];
    assert_string_equal(cmd->argv[3 + FINISH_KEY_job], "job=0");
    assert_int_equal(FINISH_ARG_raw, FINISH_NKEYS);
    assert_memory_equal(cmd->argv[3 + FINISH_ARG_raw], t.text[FINISH_ARG_raw],
                        t.text_len[FINISH_ARG_raw]);
    assert_int_equal(cmd->argc, 3 + FINISH_ARGC);
    fake_free(&f);
}

/*
 * script_run_then on a server without the script: EVALSHA and the follow-up (PING)
 * arrive together; the server answers NOSCRIPT and the follow-up's reply; the runner
 * then sends EVAL alone (the follow-up already ran) and returns EVAL's reply, the
 * follow-up's in *then_reply.
 */
static void test_run_then_noscript(void **state)
{
    (void)state;
    static const fake_step steps[] = {
        {2, "-NOSCRIPT No matching script. Please use EVAL.\r\n:7\r\n", 0},
        {1, ":1\r\n", 0},
    };
    fake_redis f;
    fake_start(&f, steps, 2);
    test_args a;
    fill_args(&a, SCRIPT_BEGIN);
    const char *then_argv[] = {"PING"};
    redisReply *then = NULL;
    mr_error err = MR_ERROR_INIT;
    redisReply *r = script_run_then(f.c, SCRIPT_BEGIN, a.v, a.len, 1, then_argv, NULL, NULL, NULL,
                                    &then, &err);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 1);
    assert_non_null(then);
    assert_int_equal(then->type, REDIS_REPLY_INTEGER);
    assert_int_equal(then->integer, 7);
    freeReplyObject(r);
    freeReplyObject(then);
    fake_finish(&f);
    int argc = script_table[SCRIPT_BEGIN].argc + 3;
    assert_int_equal(f.server.ncmds, 3);
    expect_cmd(&f, 0, "EVALSHA", 0, argc);
    expect_evalsha(&f, 0, &a);
    expect_cmd(&f, 1, "PING", 0, 1);
    expect_cmd(&f, 2, "EVAL", 1, argc);
    expect_eval(&f, 2, &a);
    fake_free(&f);
}

/* A script_reader that counts its calls (ctx) and reads as redisGetReply does. */
static int counting_reader(redisContext *c, void *ctx, redisReply **reply)
{
    ++*(int *)ctx;
    void *r = NULL;
    int rc = redisGetReply(c, &r);
    *reply = r;
    return rc == REDIS_OK ? 0 : -1;
}

/* script_run_then when the script is known: one write, both replies, the follow-up's
 * read with the caller's reader. */
static void test_run_then_known(void **state)
{
    (void)state;
    static const fake_step steps[] = {{2, "$2\r\nok\r\n+PONG\r\n", 0}};
    fake_redis f;
    fake_start(&f, steps, 1);
    test_args a;
    fill_args(&a, SCRIPT_FINISH);
    const char *then_argv[] = {"PING", "x"};
    const size_t then_argvlen[] = {4, 1};
    redisReply *then = NULL;
    mr_error err = MR_ERROR_INIT;
    int reads = 0;
    redisReply *r = script_run_then(f.c, SCRIPT_FINISH, a.v, a.len, 2, then_argv, then_argvlen,
                                    counting_reader, &reads, &then, &err);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "ok");
    assert_non_null(then);
    assert_int_equal(then->type, REDIS_REPLY_STATUS);
    assert_string_equal(then->str, "PONG");
    assert_int_equal(reads, 1); /* the follow-up's reply came through the caller's reader */
    freeReplyObject(r);
    freeReplyObject(then);
    fake_finish(&f);
    assert_int_equal(f.server.ncmds, 2);
    expect_cmd(&f, 0, "EVALSHA", 0, script_table[SCRIPT_FINISH].argc + 3);
    expect_evalsha(&f, 0, &a);
    expect_cmd(&f, 1, "PING", 0, 2);
    assert_string_equal(f.server.cmds[1].argv[1], "x");
    fake_free(&f);
}

/* script_run_acked: NOSCRIPT, then EVAL with WAIT again; *acked from the second WAIT. */
static void test_run_acked_noscript(void **state)
{
    (void)state;
    static const fake_step steps[] = {
        {2, "-NOSCRIPT No matching script. Please use EVAL.\r\n:0\r\n", 0},
        {2, ":1\r\n:2\r\n", 0},
    };
    fake_redis f;
    fake_start(&f, steps, 2);
    test_args a;
    fill_args(&a, SCRIPT_ENQUEUE);
    long acked = -1;
    mr_error err = MR_ERROR_INIT;
    redisReply *r = script_run_acked(f.c, SCRIPT_ENQUEUE, a.v, a.len, 2, 250, &acked, &err);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 1);
    assert_int_equal(acked, 2);
    freeReplyObject(r);
    fake_finish(&f);
    int argc = script_table[SCRIPT_ENQUEUE].argc + 3;
    assert_int_equal(f.server.ncmds, 4);
    expect_cmd(&f, 0, "EVALSHA", 0, argc);
    expect_evalsha(&f, 0, &a);
    expect_cmd(&f, 1, "WAIT", 0, 3);
    assert_string_equal(f.server.cmds[1].argv[1], "2");
    assert_string_equal(f.server.cmds[1].argv[2], "250");
    expect_cmd(&f, 2, "EVAL", 1, argc);
    expect_eval(&f, 2, &a);
    expect_cmd(&f, 3, "WAIT", 1, 3);
    fake_free(&f);
}

/*
 * script_run_acked when the connection drops after the script's reply, before WAIT's:
 * the script ran but whether it was replicated is unknown, so the runner returns NULL
 * (the caller drops the connection and redoes the write) with acked 0 and
 * MAILROOM_EREDIS.
 */
static void test_run_acked_wait_lost(void **state)
{
    (void)state;
    static const fake_step steps[] = {{2, ":1\r\n", 1}};
    fake_redis f;
    fake_start(&f, steps, 1);
    test_args a;
    fill_args(&a, SCRIPT_ENQUEUE);
    long acked = -1;
    mr_error err = MR_ERROR_INIT;
    redisReply *r = script_run_acked(f.c, SCRIPT_ENQUEUE, a.v, a.len, 1, 100, &acked, &err);
    assert_null(r);
    assert_int_equal(acked, 0);
    assert_int_not_equal(f.c->err, 0);
    assert_int_equal(err.rc, MAILROOM_EREDIS);
    assert_non_null(strstr(err.msg, "enqueue"));
    fake_finish(&f);
    assert_int_equal(f.server.ncmds, 2);
    expect_cmd(&f, 0, "EVALSHA", 0, script_table[SCRIPT_ENQUEUE].argc + 3);
    expect_cmd(&f, 1, "WAIT", 0, 3);
    fake_free(&f);
}

/* A call with argument k of script id unset: NULL/-1, MAILROOM_EINVAL naming it. */
static void expect_unset_refused(redisContext *c, script_id id, int k)
{
    const script_info *s = &script_table[id];
    test_args a;
    fill_args(&a, id);
    a.v[k] = NULL;
    for (int call = 0; call < 4; call++) {
        mr_error err = MR_ERROR_INIT;
        long acked = -1;
        redisReply *then = (redisReply *)&acked; /* must be reset to NULL */
        const char *then_argv[] = {"PING"};
        redisReply *r = NULL;
        int rc = 0;
        switch (call) {
        case 0: r = script_run(c, id, a.v, a.len, &err); break;
        case 1: r = script_run_acked(c, id, a.v, a.len, 1, 100, &acked, &err); break;
        case 2:
            r = script_run_then(c, id, a.v, a.len, 1, then_argv, NULL, NULL, NULL, &then, &err);
            break;
        default: rc = script_append(c, id, call % 2, a.v, a.len, &err); break;
        }
        assert_null(r);
        if (call == 3)
            assert_int_equal(rc, -1);
        if (call == 1)
            assert_int_equal(acked, 0);
        if (call == 2)
            assert_null(then);
        if (err.rc != MAILROOM_EINVAL)
            fail_msg("script %s, argument %s unset, call %d: code %d (%s)", s->name,
                     s->arg_names[k], call, (int)err.rc, err.msg);
        if (!strstr(err.msg, s->arg_names[k]) || !strstr(err.msg, s->name))
            fail_msg("script %s, argument %s unset: '%s' does not name both", s->name,
                     s->arg_names[k], err.msg);
        assert_int_equal(c->err, 0); /* the connection is fine: nothing to drop */
    }
}

/*
 * Every argument of every script left unset in turn, through each entry point: refused
 * before anything is written. The fake server has no step: it only counts what
 * arrives until the client closes, and fake_finish requires nothing to have arrived.
 */
static void test_unset_argument(void **state)
{
    (void)state;
    fake_redis f;
    fake_start(&f, NULL, 0);
    for (int id = 0; id < SCRIPT_COUNT; id++)
        for (int k = 0; k < script_table[id].argc; k++)
            expect_unset_refused(f.c, (script_id)id, k);
    fake_finish(&f);
    assert_int_equal(f.server.ncmds, 0);
    fake_free(&f);
}

/*
 * script_append: EVALSHA (eval 0) and EVAL (eval 1) queued in the context's output
 * buffer, nothing written until the caller flushes; then both arrive, in order, with
 * the script's generated key count.
 */
static void test_append(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    redisContext *c = redisConnectFd(sv[0]);
    assert_non_null(c);
    test_args a, b;
    fill_args(&a, SCRIPT_ENQUEUE);
    fill_args(&b, SCRIPT_DEAD_PURGE);
    mr_error err = MR_ERROR_INIT;
    assert_int_equal(script_append(c, SCRIPT_ENQUEUE, 0, a.v, a.len, &err), 0);
    assert_int_equal(script_append(c, SCRIPT_DEAD_PURGE, 1, b.v, b.len, &err), 0);
    assert_int_equal(err.rc, MAILROOM_OK);
    struct pollfd pfd = {.fd = sv[1], .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 0), 0); /* nothing written yet */
    int done = 0;
    while (!done)
        assert_int_equal(redisBufferWrite(c, &done), REDIS_OK);

    /* read both commands from the other end, as the fake server does */
    fake_redis f; /* only its command list, for expect_cmd and expect_script_args */
    memset(&f, 0, sizeof f);
    size_t cap = 1 << 17, have = 0;
    char *in = malloc(cap);
    assert_non_null(in);
    while (f.server.ncmds < 2) {
        long used = parse_command(in, have, NULL);
        assert_true(used >= 0);
        if (used > 0) {
            assert_int_equal(parse_command(in, have, &f.server.cmds[f.server.ncmds]), used);
            f.server.ncmds++;
            memmove(in, in + used, have - (size_t)used);
            have -= (size_t)used;
            continue;
        }
        assert_true(have < cap);
        ssize_t n = read_some(sv[1], in + have, cap - have);
        assert_true(n > 0);
        have += (size_t)n;
    }
    assert_int_equal(have, 0); /* nothing more */
    assert_int_equal(poll(&pfd, 1, 0), 0);
    free(in);
    redisFree(c);
    close(sv[1]);
    expect_cmd(&f, 0, "EVALSHA", 0, script_table[SCRIPT_ENQUEUE].argc + 3);
    expect_evalsha(&f, 0, &a);
    expect_cmd(&f, 1, "EVAL", 0, script_table[SCRIPT_DEAD_PURGE].argc + 3);
    expect_eval(&f, 1, &b);
    fake_free(&f);
}

/* EVALSHA names a script by the SHA-1 of the very text EVAL sends (Redis hashes what
 * EVAL loads): otherwise every EVALSHA would answer NOSCRIPT, for ever. */
static void test_sha_of_source(void **state)
{
    (void)state;
    static const char hex[] = "0123456789abcdef";
    for (int id = 0; id < SCRIPT_COUNT; id++) {
        const script_info *s = &script_table[id];
        assert_non_null(s->name);
        assert_true(s->source_len > 0);
        assert_int_equal(s->source[s->source_len], '\0');
        assert_int_equal(strlen((const char *)s->source), s->source_len);
        unsigned char md[SHA_DIGEST_LENGTH];
        char want[41];
        SHA1(s->source, s->source_len, md);
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++) {
            want[2 * i] = hex[md[i] >> 4];
            want[2 * i + 1] = hex[md[i] & 15];
        }
        want[40] = '\0';
        assert_string_equal(script_sha((script_id)id), want);
    }
}

/* One "name = KEYS[n]" or "name = ARGV[n]" binding of a script's source. */
typedef struct binding {
    char name[64];
    char table[5];
    int index;
} binding;

/* Trims blanks around [*p, *end). */
static void trim(const char **p, const char **end)
{
    while (*p < *end && (**p == ' ' || **p == '\t'))
        (*p)++;
    while (*end > *p && ((*end)[-1] == ' ' || (*end)[-1] == '\t' || (*end)[-1] == '\r'))
        (*end)--;
}

/*
 * The bindings of src: every line "local a, b = T[1], T[2]" (or one name per line)
 * whose right side is only KEYS[n] and ARGV[n] items. Returns how many (at most max).
 */
static int find_bindings(const char *src, binding *out, int max)
{
    int n = 0;
    for (const char *line = src; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *eol = strchr(line, '\n');
        if (!eol)
            eol = line + strlen(line);
        if (strncmp(line, "local ", 6) != 0)
            continue;
        const char *eq = memchr(line, '=', (size_t)(eol - line));
        if (!eq)
            continue;
        const char *names[SCRIPT_MAX_ARGS + 1], *name_ends[SCRIPT_MAX_ARGS + 1];
        int nn = 0, nr = 0, plain = 1;
        char tables[SCRIPT_MAX_ARGS + 1][5];
        int idx[SCRIPT_MAX_ARGS + 1];
        for (const char *p = line + 6; p < eq && nn <= SCRIPT_MAX_ARGS;) {
            const char *comma = memchr(p, ',', (size_t)(eq - p));
            const char *e = comma ? comma : eq;
            const char *b = p;
            trim(&b, &e);
            names[nn] = b;
            name_ends[nn++] = e;
            p = comma ? comma + 1 : eq;
        }
        for (const char *p = eq + 1; p < eol && plain && nr <= SCRIPT_MAX_ARGS;) {
            const char *comma = memchr(p, ',', (size_t)(eol - p));
            const char *e = comma ? comma : eol;
            const char *b = p;
            trim(&b, &e);
            int used = 0;
            char t[5] = "";
            if (sscanf(b, "%4[KEYSARGV][%d]%n", t, &idx[nr], &used) != 2 || b + used != e ||
                (strcmp(t, "KEYS") != 0 && strcmp(t, "ARGV") != 0))
                plain = 0;
            else
                memcpy(tables[nr++], t, 5);
            p = comma ? comma + 1 : eol;
        }
        if (!plain || nn != nr || nn == 0)
            continue;
        for (int i = 0; i < nn && n < max; i++, n++) {
            snprintf(out[n].name, sizeof out[n].name, "%.*s", (int)(name_ends[i] - names[i]),
                     names[i]);
            memcpy(out[n].table, tables[i], 5);
            out[n].index = idx[i];
        }
    }
    return n;
}

/*
 * In each script's complete source, the generated prelude binds the names of
 * script_table (the C side's order, which the positions FINISH_KEY_job ... follow) to
 * the same positions: the i-th key to KEYS[i], the i-th other argument to ARGV[i].
 * Each name is bound once; nothing else is bound to KEYS[n] or ARGV[n].
 */
static void test_prelude_binds_names_in_order(void **state)
{
    (void)state;
    for (int id = 0; id < SCRIPT_COUNT; id++) {
        const script_info *s = &script_table[id];
        assert_true(s->nkeys >= 0 && s->nkeys <= s->argc && s->argc <= SCRIPT_MAX_ARGS);
        binding b[2 * SCRIPT_MAX_ARGS];
        int n = find_bindings((const char *)s->source, b, 2 * SCRIPT_MAX_ARGS);
        if (n != s->argc)
            fail_msg("script %s: %d names bound to KEYS/ARGV, %d arguments", s->name, n,
                     s->argc);
        for (int i = 0; i < s->argc; i++) {
            const char *want_table = i < s->nkeys ? "KEYS" : "ARGV";
            int want_index = i < s->nkeys ? i + 1 : i - s->nkeys + 1;
            int found = 0;
            for (int k = 0; k < n; k++) {
                if (strcmp(b[k].name, s->arg_names[i]) != 0)
                    continue;
                found++;
                if (strcmp(b[k].table, want_table) != 0 || b[k].index != want_index)
                    fail_msg("script %s: %s = %s[%d], expected %s[%d]", s->name, b[k].name,
                             b[k].table, b[k].index, want_table, want_index);
            }
            if (found != 1)
                fail_msg("script %s: %s bound %d times", s->name, s->arg_names[i], found);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_evalsha),
        cmocka_unit_test(test_run_named_arguments),
        cmocka_unit_test(test_run_then_noscript),
        cmocka_unit_test(test_run_then_known),
        cmocka_unit_test(test_run_acked_noscript),
        cmocka_unit_test(test_run_acked_wait_lost),
        cmocka_unit_test(test_unset_argument),
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_sha_of_source),
        cmocka_unit_test(test_prelude_binds_names_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
