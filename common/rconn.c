/*
 * rconn: Redis URL parsing and connection setup (see rconn.h). hiredis 0.14's
 * synchronous API only: a timeout on connect or on a command leaves the context
 * unusable, so callers free it and reconnect.
 */
#define _POSIX_C_SOURCE 200809L
#include "rconn.h"

#include "clock.h"
#include "secret.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into out (size cap). Returns 0, or -1 when it does not
 * fit or holds a bad escape or a NUL. */
static int pct_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (n + 1 >= cap)
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

static int parse_int(const char *s, size_t len, int min, int max, int *out)
{
    if (len == 0 || len > 9)
        return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* The "user:pass" part before '@': "user", "user:pass" or ":pass" (RFC 3986). */
static int parse_userinfo(const char *s, size_t len, rconn_url *out)
{
    const char *colon = memchr(s, ':', len);
    if (!colon)
        return pct_decode(s, len, out->user, sizeof out->user);
    size_t ulen = (size_t)(colon - s);
    if (pct_decode(s, ulen, out->user, sizeof out->user) != 0)
        return -1;
    return pct_decode(colon + 1, len - ulen - 1, out->password, sizeof out->password);
}

/* "host[:port]" or "[v6]:port". */
static int parse_hostport(const char *s, size_t len, rconn_url *out)
{
    const char *host = s, *port = NULL;
    size_t hlen = len;
    if (len && s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (!rb)
            return -1;
        host = s + 1;
        hlen = (size_t)(rb - s) - 1;
        if ((size_t)(rb - s) + 1 < len) {
            if (rb[1] != ':')
                return -1;
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(s, ':', len);
        if (colon) {
            hlen = (size_t)(colon - s);
            port = colon + 1;
        }
    }
    if (hlen == 0 || hlen >= sizeof out->host)
        return -1;
    memcpy(out->host, host, hlen);
    out->host[hlen] = '\0';
    if (port && parse_int(port, len - (size_t)(port - s), 1, 65535, &out->port) != 0)
        return -1;
    return 0;
}

/* "host:port,host:port,..." into out->sentinels. */
static int parse_sentinels(const char *s, size_t len, rconn_url *out)
{
    while (len) {
        const char *comma = memchr(s, ',', len);
        size_t n = comma ? (size_t)(comma - s) : len;
        if (out->n_sentinels == RCONN_MAX_SENTINELS)
            return -1;
        rconn_url one = {.port = 26379};
        if (parse_hostport(s, n, &one) != 0)
            return -1;
        rconn_endpoint *e = &out->sentinels[out->n_sentinels++];
        memcpy(e->host, one.host, sizeof e->host);
        e->port = one.port;
        s += n;
        len -= n;
        if (comma) {
            s++;
            len--;
            if (!len)
                return -1;
        }
    }
    return out->n_sentinels ? 0 : -1;
}

/* The path of a Sentinel URL: "/master-name[/db]". */
static int parse_master_path(const char *path, rconn_url *out)
{
    if (!path || path[0] != '/' || path[1] == '\0')
        return -1;
    const char *name = path + 1, *slash = strchr(name, '/');
    size_t n = slash ? (size_t)(slash - name) : strlen(name);
    if (n == 0 || n >= sizeof out->master_name)
        return -1;
    memcpy(out->master_name, name, n);
    out->master_name[n] = '\0';
    if (slash && slash[1] && parse_int(slash + 1, strlen(slash + 1), 0, 1000000, &out->db) != 0)
        return -1;
    return 0;
}

int rconn_url_parse(const char *url, rconn_url *out, mr_error *err)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    static const char scheme[] = "redis://", sentinel_scheme[] = "redis-sentinel://";
    int sentinel = strncmp(url, sentinel_scheme, sizeof sentinel_scheme - 1) == 0;
    if (!sentinel && strncmp(url, scheme, sizeof scheme - 1) != 0) {
        return mr_fail(err, MAILROOM_EINVAL,
                       "Redis URL must start with redis:// or redis-sentinel://");
    }
    const char *p = url + (sentinel ? sizeof sentinel_scheme : sizeof scheme) - 1;
    const char *slash = strchr(p, '/');
    size_t auth_len = slash ? (size_t)(slash - p) : strlen(p);
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++)
        if (p[i] == '@')
            at = p + i;
    if (at) {
        if (parse_userinfo(p, (size_t)(at - p), out) != 0) {
            rconn_url_clear(out);
            return mr_fail(err, MAILROOM_EINVAL, "Redis URL: bad user or password part");
        }
        auth_len -= (size_t)(at - p) + 1;
        p = at + 1;
    }
    if (sentinel) {
        out->min_replicas = 1;
        if (parse_sentinels(p, auth_len, out) != 0 || parse_master_path(slash, out) != 0) {
            rconn_url_clear(out);
            return mr_fail(err, MAILROOM_EINVAL,
                           "Sentinel URL: expected "
                           "redis-sentinel://host:port[,host:port...]/master[/db]");
        }
        return 0;
    }
    if (parse_hostport(p, auth_len, out) != 0) {
        rconn_url_clear(out);
        return mr_fail(err, MAILROOM_EINVAL, "Redis URL: bad host or port");
    }
    if (slash && slash[1] != '\0' &&
        parse_int(slash + 1, strlen(slash + 1), 0, 1000000, &out->db) != 0) {
        rconn_url_clear(out);
        return mr_fail(err, MAILROOM_EINVAL, "Redis URL: database must be a number");
    }
    return 0;
}

int rconn_password_from_env(rconn_url *u, mr_error *err)
{
    const char *path = getenv("MAILROOM_REDIS_PASSWORD_FILE");
    if (!path || !*path)
        return 0;
    char *pw = secret_read_file(path, err);
    if (!pw)
        return -1;
    int fits = strlen(pw) < sizeof u->password;
    if (fits)
        memcpy(u->password, pw, strlen(pw) + 1);
    else
        mr_fail(err, MAILROOM_EINVAL, "Redis password in %s is too long", path);
    secret_free(pw);
    return fits ? 0 : -1;
}

int rconn_url_has_password(const char *url)
{
    rconn_url u;
    if (rconn_url_parse(url, &u, NULL) != 0)
        return 0;
    int has = u.password[0] != '\0';
    rconn_url_clear(&u);
    return has;
}

void rconn_url_clear(rconn_url *u)
{
    OPENSSL_cleanse(u->password, sizeof u->password);
}

int rconn_timed_out(const redisContext *c)
{
    return c && c->err == REDIS_ERR_IO &&
           (strstr(c->errstr, "temporarily unavailable") || strstr(c->errstr, "timed out"));
}

int rconn_transient_error(const redisReply *r)
{
    static const char *const codes[] = {"LOADING", "READONLY", "MASTERDOWN", "BUSY ", "TRYAGAIN"};
    if (!r || r->type != REDIS_REPLY_ERROR)
        return 0;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strncmp(r->str, codes[i], strlen(codes[i])) == 0)
            return 1;
    return 0;
}

static struct timeval to_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* Runs one setup command (AUTH, SELECT); 0 on an OK status reply. */
static int setup_command(redisContext *c, int argc, const char **argv, const char *what,
                         mr_error *err)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    int rc = 0;
    if (!r)
        rc = mr_fail(err, rconn_timed_out(c) ? MAILROOM_ETIMEOUT : MAILROOM_EREDIS,
                     "Redis %s failed: %s", what, c->errstr);
    else if (r->type == REDIS_REPLY_ERROR)
        rc = mr_fail(err, MAILROOM_EREDIS, "Redis %s refused: %.200s", what, r->str);
    freeReplyObject(r);
    return rc;
}

#define CONFIRMED_FOR_MS 1000 /* a confirmed master writes without WAIT this long */
#define MAX_REPLICAS 16       /* replicas looked at per master; the sentinels list more rarely */
#define REPLID_LEN 40         /* a replication id: 40 hex digits */

/* The replicas the sentinels list for the master name, each address once, as the
 * sentinels see it. */
typedef struct replica_list {
    int n;
    rconn_endpoint e[MAX_REPLICAS];
} replica_list;

/* Where a server stands in the replication history (INFO replication). */
typedef struct repl_state {
    int master;                   /* role:master */
    char replid[REPLID_LEN + 1];  /* master_replid: the history it serves or follows */
    char replid2[REPLID_LEN + 1]; /* master_replid2: the history it continued from
                                     (its old master's, once promoted); zeros for none */
} repl_state;

/* The value of `name` in a flat [name, value, name, value, ...] reply, or NULL. */
static const char *row_field(const redisReply *row, const char *name)
{
    if (!row || row->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < row->elements; i += 2) {
        const redisReply *k = row->element[i], *v = row->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(k->str, name) == 0)
            return v->str;
    }
    return NULL;
}

/*
 * Adds the replicas of a SENTINEL REPLICAS reply to list, skipping those already in
 * it. A replica the sentinel holds down (s_down) is left out: the sentinels never
 * promote one, and trying a dead host would cost a whole connect timeout.
 */
static void add_replicas(const redisReply *r, replica_list *list)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < r->elements && list->n < MAX_REPLICAS; i++) {
        const char *ip = row_field(r->element[i], "ip");
        const char *port = row_field(r->element[i], "port");
        const char *flags = row_field(r->element[i], "flags");
        rconn_endpoint e;
        if (!ip || !port || strlen(ip) >= sizeof e.host || (flags && strstr(flags, "s_down")) ||
            parse_int(port, strlen(port), 1, 65535, &e.port) != 0)
            continue;
        memcpy(e.host, ip, strlen(ip) + 1);
        int known = 0;
        for (int k = 0; k < list->n && !known; k++)
            known = list->e[k].port == e.port && strcmp(list->e[k].host, e.host) == 0;
        if (!known)
            list->e[list->n++] = e;
    }
}

/*
 * Asks one sentinel where the master is and, when replicas is not NULL, which replicas
 * it lists for it (SENTINEL REPLICAS, pipelined: still one round trip), added to
 * *replicas. Returns 0 with *master filled, or -1. A sentinel that names the master but
 * does not list its replicas still counts: they are only a further check.
 */
static int ask_sentinel(const rconn_endpoint *s, const char *name, int timeout_ms,
                        rconn_endpoint *master, replica_list *replicas)
{
    int rc = -1;
    redisContext *c = redisConnectWithTimeout(s->host, s->port, to_tv(timeout_ms));
    redisReply *r = NULL, *listed = NULL;
    if (!c || c->err || redisSetTimeout(c, to_tv(timeout_ms)) != REDIS_OK)
        goto out;
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", name};
    const char *replicas_argv[] = {"SENTINEL", "replicas", name};
    if (redisAppendCommandArgv(c, 3, argv, NULL) != REDIS_OK ||
        (replicas && redisAppendCommandArgv(c, 3, replicas_argv, NULL) != REDIS_OK) ||
        redisGetReply(c, (void **)&r) != REDIS_OK)
        goto out;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        goto out;
    if (r->element[0]->len >= sizeof master->host ||
        parse_int(r->element[1]->str, r->element[1]->len, 1, 65535, &master->port) != 0)
        goto out;
    memcpy(master->host, r->element[0]->str, r->element[0]->len + 1);
    rc = 0;
    if (replicas && redisGetReply(c, (void **)&listed) == REDIS_OK)
        add_replicas(listed, replicas);
out:
    freeReplyObject(listed);
    freeReplyObject(r);
    if (c)
        redisFree(c);
    return rc;
}

/*
 * 1 when the server on c says it is a master (ROLE), so a sentinel's stale answer
 * during a failover does not send writes to a replica. *n_replicas gets how many
 * replicas ROLE lists as connected to it.
 */
static int is_master(redisContext *c, size_t *n_replicas)
{
    const char *argv[] = {"ROLE"};
    redisReply *r = redisCommandArgv(c, 1, argv, NULL);
    int master = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                 r->element[0]->type == REDIS_REPLY_STRING &&
                 strcmp(r->element[0]->str, "master") == 0;
    *n_replicas = master && r->elements > 2 && r->element[2]->type == REDIS_REPLY_ARRAY
                      ? r->element[2]->elements
                      : 0;
    freeReplyObject(r);
    return master;
}

/* Copies the value of the "name:value" line of an INFO text into out (cap bytes).
 * Returns 0, or -1 when there is no such line or the value does not fit. */
static int info_field(const char *info, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    for (const char *p = info; *p; p += strspn(p, "\r\n")) {
        size_t len = strcspn(p, "\r\n");
        if (len > n && strncmp(p, name, n) == 0 && p[n] == ':') {
            size_t vlen = len - n - 1;
            if (vlen >= cap)
                return -1;
            memcpy(out, p + n + 1, vlen);
            out[vlen] = '\0';
            return 0;
        }
        p += len;
    }
    return -1;
}

/* INFO replication on c into *st. Returns 0, or -1 when the server did not answer or
 * refused (an ACL without +info); on a lost connection c->err says so. */
static int repl_info(redisContext *c, repl_state *st)
{
    const char *argv[] = {"INFO", "replication"};
    redisReply *r = redisCommandArgv(c, 2, argv, NULL);
    char role[16];
    int rc = -1;
    if (!r || r->type != REDIS_REPLY_STRING || info_field(r->str, "role", role, sizeof role) != 0 ||
        info_field(r->str, "master_replid", st->replid, sizeof st->replid) != 0 ||
        info_field(r->str, "master_replid2", st->replid2, sizeof st->replid2) != 0)
        goto out;
    st->master = strcmp(role, "master") == 0;
    rc = 0;
out:
    freeReplyObject(r);
    return rc;
}

static redisContext *connect_one(const char *host, int port, const rconn_url *u,
                                 int connect_timeout_ms, int command_timeout_ms, mr_error *err);

/*
 * 1 when one of the replicas carries on the replication history whose id is replid,
 * that of the master at host:port. A replica promoted by REPLICAOF NO ONE (what a
 * failover does first) starts a history of its own and keeps its old master's id as
 * master_replid2, and a replica that continued onto such a server inherits it: the
 * master is then being left behind even while the sentinels still name it, and what
 * it takes from now on is erased when they demote it. The other way round does not
 * match: right after a failover the old master still says ROLE master (the sentinels
 * convert it some 10 s later), but its master_replid2 is not the new master's id.
 * Replicas are data servers: they get the master's credentials and database. One
 * that cannot be reached, refuses them or does not answer INFO in time tells nothing
 * and is skipped.
 */
static int successor_exists(const rconn_url *u, const char *host, int port, const char *replid,
                            const replica_list *replicas, int timeout_ms)
{
    if (replid[strspn(replid, "0")] == '\0') /* no history: nothing can continue it */
        return 0;
    for (int i = 0; i < replicas->n; i++) {
        const rconn_endpoint *e = &replicas->e[i];
        if (e->port == port && strcmp(e->host, host) == 0)
            continue;
        redisContext *c = connect_one(e->host, e->port, u, timeout_ms, timeout_ms, NULL);
        if (!c)
            continue;
        repl_state st;
        int found = repl_info(c, &st) == 0 && strcmp(st.replid2, replid) == 0;
        redisFree(c);
        if (found)
            return 1;
    }
    return 0;
}

/*
 * 1 when the master at host:port, which the sentinels name, is being abandoned by a
 * failover: it no longer says it is a master, or one of the replicas the sentinels list
 * for it carries on its history (successor_exists). c is a connection to it, or NULL to
 * open one (with the URL's credentials). What cannot be asked (the master unreachable
 * now, INFO refused by an ACL) gives 0: this check only adds refusals to what the
 * sentinels' answers already decided.
 */
static int abandoned(const rconn_url *u, const char *host, int port, redisContext *c,
                     const replica_list *replicas, int timeout_ms)
{
    int result = 0;
    redisContext *own = NULL;
    repl_state st;
    if (!c) {
        own = c = connect_one(host, port, u, timeout_ms, timeout_ms, NULL);
        if (!c)
            goto out;
    }
    if (repl_info(c, &st) != 0)
        goto out;
    result = !st.master || successor_exists(u, host, port, st.replid, replicas, timeout_ms);
out:
    if (own)
        redisFree(own);
    return result;
}

int rconn_sentinel_master(const rconn_url *u, int timeout_ms, rconn_endpoint *out)
{
    for (int i = 0; i < u->n_sentinels; i++)
        if (ask_sentinel(&u->sentinels[i], u->master_name, timeout_ms, out, NULL) == 0)
            return 0;
    return -1;
}

int rconn_sentinels_confirm(const rconn_url *u, int timeout_ms, const redisContext *c)
{
    replica_list replicas = {0};
    int answered = 0, agree = 0;
    for (int i = 0; i < u->n_sentinels; i++) {
        rconn_endpoint m;
        if (ask_sentinel(&u->sentinels[i], u->master_name, timeout_ms, &m, &replicas) != 0)
            continue;
        answered++;
        agree += rconn_connected_to(c, &m);
    }
    if (answered * 2 <= u->n_sentinels || agree != answered)
        return 0;
    return !abandoned(u, c->tcp.host, c->tcp.port, NULL, &replicas, timeout_ms);
}

int rconn_replicas_needed(const rconn_url *u, const rconn_write_guard *g)
{
    return clock_now_ms() < g->confirmed_until_ms ? 0 : u->min_replicas;
}

int rconn_write_stands(const rconn_url *u, rconn_write_guard *g, const redisContext *c, long acked,
                       int needed, int timeout_ms)
{
    if (acked >= needed)
        return 1;
    if (!rconn_sentinels_confirm(u, timeout_ms, c))
        return 0;
    g->confirmed_until_ms = clock_now_ms() + CONFIRMED_FOR_MS;
    return 1;
}

int rconn_connected_to(const redisContext *c, const rconn_endpoint *e)
{
    return c && c->tcp.host && strcmp(c->tcp.host, e->host) == 0 && c->tcp.port == e->port;
}

static int master_usable(const rconn_url *u, const rconn_endpoint *master, redisContext *c,
                         const replica_list *replicas, int timeout_ms, mr_error *err);

/*
 * With Sentinel: asks the sentinels in order for the master and takes the first one
 * that says ROLE master. A master that lists no connected replica is also checked for
 * abandonment (abandoned()): during a graceful failover the sentinels keep naming the
 * old master for about a second after its replica was promoted, and a connection made
 * then would put writes where the failover erases them.
 */
redisContext *rconn_connect(const rconn_url *u, int connect_timeout_ms, int command_timeout_ms,
                            mr_error *err)
{
    if (u->n_sentinels == 0)
        return connect_one(u->host, u->port, u, connect_timeout_ms, command_timeout_ms, err);
    mr_fail(err, MAILROOM_EREDIS, "no sentinel answered with a master named '%s'", u->master_name);
    for (int i = 0; i < u->n_sentinels; i++) {
        rconn_endpoint master;
        replica_list replicas = {0};
        if (ask_sentinel(&u->sentinels[i], u->master_name, connect_timeout_ms, &master,
                         &replicas) != 0)
            continue;
        redisContext *c =
            connect_one(master.host, master.port, u, connect_timeout_ms, command_timeout_ms, err);
        if (c && master_usable(u, &master, c, &replicas, connect_timeout_ms, err))
            return c;
        if (c)
            redisFree(c);
    }
    return NULL;
}

/*
 * 1 when the server c (which a sentinel names master) says ROLE master and, when it
 * lists no connected replica, is not being abandoned (abandoned()): during a graceful
 * failover the sentinels keep naming the old master for about a second after its
 * replica was promoted, and a connection made then would put writes where the
 * failover erases them. Otherwise 0 with the reason in err.
 */
static int master_usable(const rconn_url *u, const rconn_endpoint *master, redisContext *c,
                         const replica_list *replicas, int timeout_ms, mr_error *err)
{
    size_t n_replicas = 0;
    int master_role = is_master(c, &n_replicas);
    if (!c->err && !master_role)
        mr_fail(err, MAILROOM_EREDIS, "Redis at %s:%d is not (yet) the master of '%s'",
                master->host, master->port, u->master_name);
    else if (!c->err && n_replicas == 0 &&
             abandoned(u, master->host, master->port, c, replicas, timeout_ms))
        mr_fail(err, MAILROOM_EREDIS,
                "Redis at %s:%d is being replaced as master of '%s' by a failover (one of "
                "its replicas took over)",
                master->host, master->port, u->master_name);
    else if (!c->err)
        return 1;
    if (c->err)
        mr_fail(err, rconn_timed_out(c) ? MAILROOM_ETIMEOUT : MAILROOM_EREDIS, "Redis at %s:%d: %s",
                master->host, master->port, c->errstr);
    return 0;
}

/* Connects to one server, authenticates, selects the database. */
static redisContext *connect_one(const char *host, int port, const rconn_url *u,
                                 int connect_timeout_ms, int command_timeout_ms, mr_error *err)
{
    redisContext *c = redisConnectWithTimeout(host, port, to_tv(connect_timeout_ms));
    if (!c) {
        mr_fail(err, MAILROOM_ENOMEM, "out of memory");
        return NULL;
    }
    if (c->err) {
        int timed_out = rconn_timed_out(c) || strstr(c->errstr, "timeout") != NULL;
        mr_fail(err, timed_out ? MAILROOM_ETIMEOUT : MAILROOM_EREDIS,
                "cannot connect to Redis at %s:%d: %s", host, port, c->errstr);
        goto fail;
    }
    if (redisSetTimeout(c, to_tv(command_timeout_ms)) != REDIS_OK) {
        mr_fail(err, MAILROOM_EREDIS, "cannot set the Redis command timeout");
        goto fail;
    }
    redisEnableKeepAlive(c);
    if (u->password[0]) {
        const char *argv[3] = {"AUTH", u->user[0] ? u->user : u->password, u->password};
        if (setup_command(c, u->user[0] ? 3 : 2, argv, "AUTH", err) != 0)
            goto fail;
    }
    if (u->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", u->db);
        const char *argv[2] = {"SELECT", db};
        if (setup_command(c, 2, argv, "SELECT", err) != 0)
            goto fail;
    }
    return c;
fail:
    redisFree(c);
    return NULL;
}

/*
 * The length a bulk string reply being read announces, from the reader's buffer: its
 * "$<len>\r\n" header, whose '$' hiredis may already have consumed (a reply read in
 * part: task 0 is then a string). -1 while unknown: not a bulk string, or the header
 * not complete yet.
 */
static long long announced_bulk(const redisReader *r)
{
    const char *p = r->buf + r->pos, *end = r->buf + r->len;
    if (r->ridx == 0 && r->rstack[0].type == REDIS_REPLY_STRING)
        ; /* the '$' was read with an earlier chunk */
    else if (r->ridx == -1 && p < end && *p == '$')
        p++;
    else
        return -1;
    long long n = 0;
    for (; p < end && *p >= '0' && *p <= '9' && n < (1LL << 40); p++)
        n = n * 10 + (*p - '0');
    return p < end && *p == '\r' ? n : -1;
}

rconn_read_result rconn_read_bounded(redisContext *c, size_t max_bulk, redisReply **out,
                                     long long *announced)
{
    void *reply = NULL;
    int done = 0;
    *out = NULL;
    if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
        return RCONN_READ_FAILED;
    while (!reply && !done)
        if (redisBufferWrite(c, &done) != REDIS_OK)
            return RCONN_READ_FAILED;
    while (!reply) {
        if (redisBufferRead(c) != REDIS_OK)
            return RCONN_READ_FAILED;
        long long n = announced_bulk(c->reader);
        if (n >= 0 && (unsigned long long)n > max_bulk) {
            *announced = n;
            return RCONN_READ_TOOBIG;
        }
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
            return RCONN_READ_FAILED;
    }
    *out = reply;
    return RCONN_READ_OK;
}

int rconn_url_from_option(const char *url, int on_command_line, rconn_url *out, mr_error *err)
{
    if (on_command_line && rconn_url_has_password(url))
        return mr_fail(err, MAILROOM_EINVAL,
                       "--redis must not carry a password (it would show in ps); use "
                       "MAILROOM_REDIS_URL or MAILROOM_REDIS_PASSWORD_FILE");
    if (rconn_url_parse(url, out, err) != 0 || rconn_password_from_env(out, err) != 0)
        return -1;
    return 0;
}
