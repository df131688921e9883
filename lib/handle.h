/*
 * handle.h — private to lib/: the mailroom handle that every file of libmailroom
 * shares (handle.c opens and closes it, send.c and batch.c enqueue through it,
 * status.c reads records, stats.c, dead.c and watch.c serve the operator calls).
 *
 * Error convention inside lib/ (common/error.h): a function that can fail returns 0 (or
 * a pointer) on success and -1 (or NULL) on failure with the reason recorded in the
 * handle's mr_error, m->err; the public function then returns handle_result(), which
 * hands the recorded mailroom_rc to the caller and leaves the text for
 * mailroom_errmsg(). The handle owns its Redis connection: a function that finds it
 * broken drops it (handle_connection_failed) and the next call reconnects.
 */
#ifndef MAILROOM_LIB_HANDLE_H
#define MAILROOM_LIB_HANDLE_H

#include <hiredis/hiredis.h>

#include "mailroom.h"

#include "buf.h"
#include "error.h"
#include "keyring.h"
#include "keys.h"
#include "rconn.h"
#include "script.h"
#include "sig.h"
#include "ulid.h"

#define HANDLE_WAIT_TIMEOUT_MS 100 /* how long a write waits for a replica (Sentinel) */

struct mailroom {
    redisContext *redis; /* NULL while disconnected; reconnected on the next call */
    rconn_url url;       /* may hold a password: never in a message */
    keys_queue keys;
    keyring ring; /* the first key signs; empty: the handle signs nothing */
    sig_alg alg;
    int connect_ms, command_ms;
    long status_ttl_s;
    char ttl_arg[24];        /* status_ttl_s, as the scripts take it */
    buf canon;               /* canonical form, reused by every send */
    sig_mac mac;             /* keyed with the signing key at the first send */
    ulid_source ids;         /* randomness for generated ids, drawn in blocks */
    rconn_write_guard guard; /* Sentinel: the write check's state */
    mr_error err;            /* the last failure; mailroom_errmsg() shows its text */
};

/* The public outcome of a call that ended with r (0 or -1): MAILROOM_OK after clearing
 * the handle's error, or the code recorded in m->err. */
int handle_result(mailroom *m, int r);

/* A new connection to the handle's Redis (caller frees with redisFree), or NULL with
 * the reason in m->err (MAILROOM_EREDIS, MAILROOM_ETIMEOUT, MAILROOM_ENOMEM). */
redisContext *handle_connect_new(mailroom *m);

/* Connects when the handle has no live connection. 0, or -1 with m->err set. */
int handle_connect(mailroom *m);

/* Records why the handle's connection failed during `what` (timeout or the I/O error),
 * drops it, and returns -1. */
int handle_connection_failed(mailroom *m, const char *what);

/* Drops the handle's connection (after a reply that leaves it unusable, or unread
 * replies); the next call reconnects. */
void handle_drop(mailroom *m);

/*
 * Records a failed Redis call of the operator commands and returns -1: no reply (the
 * connection failed: dropped, as handle_connection_failed), an error reply
 * ("<what>: Redis error: ..."), or a reply of another type than expected.
 */
int handle_reply_failed(mailroom *m, const redisReply *r, const char *what);

/* Runs one operator script on the handle's connection (connected already) and takes
 * its integer reply into *n. 0, or -1 with m->err set (a lost connection is dropped). */
int handle_script_count(mailroom *m, script_id id, const char *const *v, const char *what,
                        long long *n);

/* 0 when a signing key is loaded, else -1 with MAILROOM_EKEY in m->err. */
int handle_need_key(mailroom *m);

#endif
