/*
 * watch.c — a subscription to the queue's status channel (mailroom_admin.h):
 * mailroom_watch_open(), mailroom_watch_next(), mailroom_watch_close().
 *
 * The watch reads its connection without hiredis' blocking loop: it polls the socket
 * for at most what is left of the caller's timeout and feeds hiredis' reader itself.
 * So a signal ends the wait at once (hiredis retries reads that a signal interrupts),
 * and a timeout needs no socket timeout (after which a hiredis context is unusable).
 * The watch owns its connection and the last event with the json-c tree its members
 * borrow from; it borrows the handle, where its errors are recorded.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "event.h"
#include "handle.h"
#include "mailroom_admin.h"

struct mailroom_watch {
    mailroom *m;         /* borrowed: errors go to m->err */
    redisContext *c;     /* owned: the subscribed connection */
    redisReply *reply;   /* owned: the message the current event comes from */
    event_parse current; /* the current event, borrowing its payload from reply */
};

/* Subscribes c to the status channel and waits for the server's confirmation. */
static int watch_subscribe(mailroom *m, redisContext *c)
{
    const char *argv[] = {"SUBSCRIBE", m->keys.status};
    redisReply *r = redisCommandArgv(c, 2, argv, NULL);
    int rr = 0;
    if (!r)
        rr = mr_fail(&m->err, rconn_timed_out(c) ? MAILROOM_ETIMEOUT : MAILROOM_EREDIS,
                     "SUBSCRIBE: Redis %s",
                     rconn_timed_out(c) ? "did not answer in time" : c->errstr);
    else if (r->type == REDIS_REPLY_ERROR)
        rr = mr_fail(&m->err, MAILROOM_EREDIS, "SUBSCRIBE: Redis error: %.300s", r->str);
    else if (r->type != REDIS_REPLY_ARRAY)
        rr = mr_fail(&m->err, MAILROOM_EPROTO, "SUBSCRIBE: unexpected reply type %d from Redis",
                     r->type);
    freeReplyObject(r);
    return rr;
}

/* mailroom_watch_open (mailroom_admin.h): a connection of its own, subscribed. */
int mailroom_watch_open(mailroom *m, mailroom_watch **out)
{
    if (!m)
        return MAILROOM_EINVAL;
    if (!out)
        return handle_result(m, mr_fail(&m->err, MAILROOM_EINVAL, "watch: out is NULL"));
    *out = NULL;
    mailroom_watch *w = calloc(1, sizeof *w);
    if (!w)
        return handle_result(m, mr_fail(&m->err, MAILROOM_ENOMEM, "out of memory"));
    w->m = m;
    int r = (w->c = handle_connect_new(m)) ? watch_subscribe(m, w->c) : -1;
    if (r == 0) {
        *out = w;
        w = NULL;
    }
    mailroom_watch_close(w);
    return handle_result(m, r);
}

/* Forgets the current event. */
static void event_clear(mailroom_watch *w)
{
    event_parse_clear(&w->current);
    freeReplyObject(w->reply);
    w->reply = NULL;
}

/* 1 when a reply is a "message" on the subscription (not a (un)subscribe answer). */
static int is_message(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
           r->element[0]->type == REDIS_REPLY_STRING &&
           strcmp(r->element[0]->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING;
}

/*
 * Takes the next complete message hiredis' reader already holds, skipping other
 * replies. 1 with the event set, 0 when the reader holds none, -1 on a protocol error.
 */
static int take_buffered(mailroom_watch *w)
{
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(w->c->reader, &reply) != REDIS_OK)
            return mr_fail(&w->m->err, MAILROOM_EPROTO, "watch: protocol error from Redis");
        if (!reply)
            return 0;
        if (is_message(reply)) {
            w->reply = reply;
            event_parse_take(&w->current, w->reply->element[2]->str, w->reply->element[2]->len);
            return 1;
        }
        freeReplyObject(reply);
    }
}

/* Waits up to ms for the socket and feeds the reader what came. 1 when data came, 0
 * when none (timeout or a signal), -1 with m->err set when the subscription was lost. */
static int wait_readable(mailroom_watch *w, int64_t ms)
{
    struct pollfd pfd = {.fd = w->c->fd, .events = POLLIN};
    int n = poll(&pfd, 1, (int)(ms > INT_MAX ? INT_MAX : ms));
    if (n < 0 && errno != EINTR)
        return mr_fail(&w->m->err, MAILROOM_EREDIS, "watch: poll: %s", strerror(errno));
    if (n <= 0)
        return 0;
    if (redisBufferRead(w->c) != REDIS_OK)
        return mr_fail(&w->m->err, MAILROOM_EREDIS, "watch: subscription lost: %s", w->c->errstr);
    return 1;
}

/* mailroom_watch_next (mailroom_admin.h): what the reader holds first, then the
 * socket until the deadline; a failure closes the connection for good. */
int mailroom_watch_next(mailroom_watch *w, int timeout_ms, const mailroom_event **ev)
{
    if (ev)
        *ev = NULL;
    if (!w)
        return MAILROOM_EINVAL;
    if (!ev || !w->c)
        return handle_result(
            w->m, mr_fail(&w->m->err, MAILROOM_EINVAL, "watch: ev is NULL or the watch failed"));
    event_clear(w);
    int64_t deadline = clock_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int r;
    while ((r = take_buffered(w)) == 0) {
        int64_t left = deadline - clock_now_ms();
        if (left <= 0 || (r = wait_readable(w, left)) <= 0)
            break;
    }
    if (r < 0) {
        redisFree(w->c); /* unusable now: the watch only awaits its close */
        w->c = NULL;
        return handle_result(w->m, -1);
    }
    if (r == 1)
        *ev = &w->current.ev;
    return handle_result(w->m, 0);
}

/* Frees the current event, the connection (which ends the subscription) and the watch. */
void mailroom_watch_close(mailroom_watch *w)
{
    if (!w)
        return;
    event_clear(w);
    if (w->c)
        redisFree(w->c);
    free(w);
}
