/*
 * rconn: Redis connections. Parses redis://[user:pass@]host[:port][/db] URLs (user
 * and password percent-decoded) and the Sentinel form
 * redis-sentinel://[user:pass@]host:port[,host:port...]/master-name[/db], connects with
 * a connect timeout, sets the command timeout, authenticates, selects the database.
 * With Sentinel, every connect asks the sentinels (in order) for the current master
 * and checks its ROLE, so a reconnect after a failover reaches the new master; a master
 * without connected replicas is refused when one of its replicas has been promoted
 * (see rconn_sentinels_confirm), which the sentinels report only later. Used by
 * the library, the CLI and every consumer thread; each owns its redisContext and frees
 * it with redisFree().
 */
#ifndef MAILROOM_RCONN_H
#define MAILROOM_RCONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define RCONN_DEFAULT_URL "redis://127.0.0.1:6379/0"

#define RCONN_MAX_SENTINELS 8

typedef struct rconn_endpoint {
    char host[256];
    int port;
} rconn_endpoint;

typedef struct rconn_url {
    char host[256]; /* plain URLs only: with Sentinel every connect asks for the master */
    int port;
    int n_sentinels; /* 0: a plain redis:// URL */
    rconn_endpoint sentinels[RCONN_MAX_SENTINELS];
    char master_name[128];
    int min_replicas; /* writes count only when this many replicas acknowledge them
                         (WAIT) or a majority of sentinels confirm the master: 1 with
                         Sentinel, where an old master may take writes that the
                         failover then erases; 0 for plain URLs */
    int db;
    char user[128];     /* "" for none */
    char password[256]; /* "" for none; wiped by rconn_url_clear */
} rconn_url;

/* Returns 0, or -1 with the reason in err (which never repeats the password). */
int rconn_url_parse(const char *url, rconn_url *out, mr_error *err);
void rconn_url_clear(rconn_url *u);
/* 1 when a URL carries a password ("user:pass@" or ":pass@"): refused on command
 * lines, where ps would show it. */
int rconn_url_has_password(const char *url);
/* When MAILROOM_REDIS_PASSWORD_FILE is set, its first line replaces the URL's password.
 * Returns 0, or -1 with the reason in err. */
int rconn_password_from_env(rconn_url *u, mr_error *err);

/* A program's --redis option: refused when it was given on the command line with a
 * password in it (ps would show it), then parsed, and the password of
 * MAILROOM_REDIS_PASSWORD_FILE applied. 0, or -1 with err. */
int rconn_url_from_option(const char *url, int on_command_line, rconn_url *out, mr_error *err);

/*
 * Connects, authenticates and selects the database. Returns a connected context
 * (caller frees with redisFree) or NULL with the reason in err: MAILROOM_ETIMEOUT when
 * the failure was a timeout, MAILROOM_EREDIS otherwise (ENOMEM when memory ran out).
 */
redisContext *rconn_connect(const rconn_url *u, int connect_timeout_ms, int command_timeout_ms,
                            mr_error *err);

/* Asks the sentinels, in order, for the current master. 0 and *out, or -1. */
int rconn_sentinel_master(const rconn_url *u, int timeout_ms, rconn_endpoint *out);

/*
 * 1 when a majority of the sentinels answer and every one that answers names the
 * server c is connected to as master (during a failover they disagree for a moment),
 * and that server is not being abandoned: it still says it is a master (INFO
 * replication) and no replica the sentinels list carries on its replication history
 * (a replica promoted by the failover keeps its old master's replication id as
 * master_replid2). Used when a write got no replica acknowledgement: a new master has
 * no replica yet (its writes are good), an old one after a failover has none either
 * (they are not), and for about a second the sentinels still name it. Replicas that
 * cannot be reached within timeout_ms (a killed old master) are skipped. Each sentinel,
 * the server and each replica costs a connection with timeout_ms for connect and
 * command; replicas get the URL's credentials and database.
 */
int rconn_sentinels_confirm(const rconn_url *u, int timeout_ms, const redisContext *c);

/*
 * The write check every Sentinel client runs, in one place. A write needs
 * rconn_replicas_needed() replicas to acknowledge it (WAIT); one they did not
 * acknowledge stands when rconn_sentinels_confirm() confirms the master, and such a
 * confirmation spares the writes of the next second their WAIT (a master without
 * replicas then costs one slow write a second, not every write). One guard per
 * connection user (worker, handle); zero it to start.
 */
typedef struct rconn_write_guard {
    int64_t confirmed_until_ms; /* no WAIT needed before then */
} rconn_write_guard;

/* How many replicas must acknowledge a write now: 0 for plain URLs and while a
 * confirmation holds, else u->min_replicas. */
int rconn_replicas_needed(const rconn_url *u, const rconn_write_guard *g);

/* 1 when a write that `acked` of the `needed` replicas acknowledged stands on the
 * master c is connected to (see rconn_sentinels_confirm; timeout_ms per connection). */
int rconn_write_stands(const rconn_url *u, rconn_write_guard *g, const redisContext *c, long acked,
                       int needed, int timeout_ms);

/*
 * Reads the next reply like redisGetReply (flushing what is buffered first), except
 * that a top-level bulk string announced longer than max_bulk bytes is not received:
 * it returns RCONN_READ_TOOBIG with the announced length in *announced, having read
 * at most one 16 KiB chunk of it, and the connection is then unusable (the caller
 * frees it). So a hostile entry of hundreds of MB never reaches this process's memory.
 * RCONN_READ_OK: *out holds the reply (caller frees). RCONN_READ_FAILED: the
 * connection failed (c->err says why).
 */
typedef enum rconn_read_result {
    RCONN_READ_FAILED = -1,
    RCONN_READ_OK = 0,
    RCONN_READ_TOOBIG = 1
} rconn_read_result;
rconn_read_result rconn_read_bounded(redisContext *c, size_t max_bulk, redisReply **out,
                                     long long *announced);

/* 1 when c is connected to endpoint e. */
int rconn_connected_to(const redisContext *c, const rconn_endpoint *e);

/* 1 when the context's last I/O error was a timeout. */
int rconn_timed_out(const redisContext *c);

/* 1 when an error reply means "this server cannot serve you right now" (LOADING after
 * a restart, READONLY from a demoted master, MASTERDOWN, BUSY, TRYAGAIN): the caller
 * should drop the connection and retry on a fresh one, as for a lost connection. */
int rconn_transient_error(const redisReply *r);

#endif
