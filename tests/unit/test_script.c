/*
 * test_script: the script runner's round trips, without Redis. The client is a hiredis
 * context on one end of a socketpair (redisConnectFd); a fake server thread on the
 * other end reads the commands and answers each batch only once that batch has
 * arrived, as Redis does. (Replies written in advance would be returned from hiredis'
 * buffer, and a missing command would go unnoticed.) Checked: EVALSHA followed in
 * the same write by the follow-up command, NOSCRIPT answered by EVAL sent alone, WAIT's
 * acknowledgement count, and a WAIT reply lost with the connection.
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

/* The script's own arguments, as the tests pass them: 2 keys and one argument, one of
 * them binary with a NUL. */
static const char *script_argv[] = {"mailroom:{q}:job:1", "mailroom:{q}:pending",
                                    "a\0b"};
static const size_t script_argvlen[] = {18, 20, 3};

/* Command i is `verb` script with the arguments above: body, "2", then the three. */
static void expect_script_args(const fake_redis *f, int i, const char *body)
{
    const fake_cmd *cmd = &f->server.cmds[i];
    assert_int_equal(cmd->argc, 6);
    assert_string_equal(cmd->argv[1], body);
    assert_string_equal(cmd->argv[2], "2");
    for (int k = 0; k < 3; k++) {
        assert_int_equal(cmd->argvlen[3 + k], script_argvlen[k]);
        assert_memory_equal(cmd->argv[3 + k], script_argv[k], script_argvlen[k]);
    }
}

/* EVALSHA answered: one write, one reply. */
static void test_run_evalsha(void **state)
{
    (void)state;
    static const fake_step steps[] = {{1, ":5\r\n", 0}};
    fake_redis f;
    fake_start(&f, steps, 1);
    redisReply *r = script_run(f.c, SCRIPT_PROMOTE, 2, 3, script_argv,
                               script_argvlen);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 5);
    freeReplyObject(r);
    fake_finish(&f);
    assert_int_equal(f.server.ncmds, 1);
    expect_cmd(&f, 0, "EVALSHA", 0, 6);
    expect_script_args(&f, 0, script_sha(SCRIPT_PROMOTE));
    assert_int_equal(strlen(script_sha(SCRIPT_PROMOTE)), 40);
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
    const char *then_argv[] = {"PING"};
    redisReply *then = NULL;
    redisReply *r = script_run_then(f.c, SCRIPT_BEGIN, 2, 3, script_argv,
                                    script_argvlen, 1, then_argv, NULL, &then);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 1);
    assert_non_null(then);
    assert_int_equal(then->type, REDIS_REPLY_INTEGER);
    assert_int_equal(then->integer, 7);
    freeReplyObject(r);
    freeReplyObject(then);
    fake_finish(&f);
    assert_int_equal(f.server.ncmds, 3);
    expect_cmd(&f, 0, "EVALSHA", 0, 6);
    expect_script_args(&f, 0, script_sha(SCRIPT_BEGIN));
    expect_cmd(&f, 1, "PING", 0, 1);
    expect_cmd(&f, 2, "EVAL", 1, 6);
    expect_script_args(&f, 2, script_source(SCRIPT_BEGIN));
    fake_free(&f);
}

/* script_run_then when the script is known: one write, both replies. */
static void test_run_then_known(void **state)
{
    (void)state;
    static const fake_step steps[] = {{2, "$2\r\nok\r\n+PONG\r\n", 0}};
    fake_redis f;
    fake_start(&f, steps, 1);
    const char *then_argv[] = {"PING", "x"};
    const size_t then_argvlen[] = {4, 1};
    redisReply *then = NULL;
    redisReply *r = script_run_then(f.c, SCRIPT_FINISH, 2, 3, script_argv,
                                    script_argvlen, 2, then_argv, then_argvlen, &then);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "ok");
    assert_non_null(then);
    assert_int_equal(then->type, REDIS_REPLY_STATUS);
    assert_string_equal(then->str, "PONG");
    freeReplyObject(r);
    freeReplyObject(then);
    fake_finish(&f);
    assert_int_equal(f.server.ncmds, 2);
    expect_cmd(&f, 0, "EVALSHA", 0, 6);
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
    long acked = -1;
    redisReply *r = script_run_acked(f.c, SCRIPT_ENQUEUE, 2, 3, script_argv,
                                     script_argvlen, 2, 250, &acked);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 1);
    assert_int_equal(acked, 2);
    freeReplyObject(r);
    fake_finish(&f);
    assert_int_equal(f.server.ncmds, 4);
    expect_cmd(&f, 0, "EVALSHA", 0, 6);
    expect_cmd(&f, 1, "WAIT", 0, 3);
    assert_string_equal(f.server.cmds[1].argv[1], "2");
    assert_string_equal(f.server.cmds[1].argv[2], "250");
    expect_cmd(&f, 2, "EVAL", 1, 6);
    expect_script_args(&f, 2, script_source(SCRIPT_ENQUEUE));
    expect_cmd(&f, 3, "WAIT", 1, 3);
    fake_free(&f);
}

/*
 * script_run_acked when the connection drops after the script's reply, before WAIT's:
 * the script ran but whether it was replicated is unknown, so the runner returns NULL
 * (the caller drops the connection and redoes the write) with acked 0.
 */
static void test_run_acked_wait_lost(void **state)
{
    (void)state;
    static const fake_step steps[] = {{2, ":1\r\n", 1}};
    fake_redis f;
    fake_start(&f, steps, 1);
    long acked = -1;
    redisReply *r = script_run_acked(f.c, SCRIPT_ENQUEUE, 2, 3, script_argv,
                                     script_argvlen, 1, 100, &acked);
    assert_null(r);
    assert_int_equal(acked, 0);
    assert_int_not_equal(f.c->err, 0);
    fake_finish(&f);
    assert_int_equal(f.server.ncmds, 2);
    expect_cmd(&f, 0, "EVALSHA", 0, 6);
    expect_cmd(&f, 1, "WAIT", 0, 3);
    fake_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_evalsha),        cmocka_unit_test(test_run_then_noscript),
        cmocka_unit_test(test_run_then_known),     cmocka_unit_test(test_run_acked_noscript),
        cmocka_unit_test(test_run_acked_wait_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
