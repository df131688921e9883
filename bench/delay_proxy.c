/*
 * delay_proxy: a TCP proxy that puts a far network between two programs on one machine,
 * for the far-relay benchmarks (scripts/bench, docs/performance.md, section 7 "A far relay").
 *
 *   delay_proxy --listen 127.0.0.1:2626 --upstream 127.0.0.1:2525 --rtt-ms 50
 *
 * Every byte that arrives from either side is held back half the round trip (25 ms
 * each way for --rtt-ms 50) before it is written on, so a client that waits for every
 * reply waits one RTT per exchange, as with a relay 50 ms away. The upstream connection
 * is opened --connect-delay-ms after the client's (default 1.5 RTT), so that the
 * server's greeting reaches the client 2 RTT after it connected, as a TCP handshake and
 * a greeting over a real path would.
 *
 * Loopback only: it refuses to listen on, or connect to, anything but 127.0.0.0/8 or
 * ::1, and takes numeric addresses only (no name lookup).
 *
 * Design (it must stay cheap: the bench drives 256+ sessions at ~4 000 messages/s
 * through it on a 2-core machine): one thread, level-triggered epoll, non-blocking
 * sockets with TCP_NODELAY. Each connection has one buffer per direction (4 KB at
 * first, grown to at most 4 MB, then the source is not read until it drains); bytes
 * are read once into it and written once out of it, never looked at. Each read is a
 * chunk with a due time, read time + the one-way delay. Since the delay is the same
 * for every chunk of a direction, chunks become due in the order they were read: one
 * FIFO per direction (and one for the delayed upstream connects) is a sorted queue
 * with O(1) push and pop, and the loop sleeps (epoll_pwait2, nanoseconds) until the
 * earliest head. When a chunk is due, the bytes up to its end may be written; chunks
 * due at the same moment go out in one write, a chunk is never written before its due
 * time, and order within a direction is kept because each direction is one stream of
 * bytes. An EOF travels as a chunk too (shutdown(SHUT_WR) on the other side once the
 * bytes before it are written); an error on either side closes both at once.
 *
 * Round trips. Per connection, a client burst is client data read after the proxy
 * delivered server data to the client (or the client's first data): the number of
 * times the client had to wait for the server, however its writes were cut or
 * merged. Server bursts are the same the other way. For SMTP, client bursts / messages
 * is "round trips per message on the wire": about 4 for a client without PIPELINING
 * (MAIL, RCPT, DATA, the content) plus the EHLO and QUIT of each connection, about 1
 * for one that pipelines the content with the next envelope (RFC 2920). Data the
 * client sent without waiting but that reached the proxy just after a delivery would
 * count as one burst more: the client would have to write exactly while the proxy
 * writes to it, which a client that waits for replies does not do.
 *
 * Output, on stdout, one JSON object a line: {"event":"listening",...} once listening
 * (with the port, useful with port 0), then {"event":"stats",...} on SIGUSR1 and
 * {"event":"exit",...} on SIGTERM or SIGINT, after which it exits 0. The counters are
 * totals since the start: connections, open, max_open, upstream_failed, client_bursts,
 * server_bursts, bytes_up (client to server), bytes_down, reads_*, writes_*, chunks
 * (released), late_us_mean and late_us_max (how long after its due time a chunk was
 * released: the delay added beyond the one asked for), cpu_user_s and cpu_sys_s (its
 * own CPU). --stats-file PATH also writes each report there (replaced atomically).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_MIN 4096u
#define BUF_MAX (4u << 20)
#define READ_MIN 1024u /* grow or compact a buffer with less free space than this */
#define MAX_EVENTS 256
#define ACCEPT_BATCH 64
#define TAG_LISTEN UINT64_MAX
#define TAG_SIGNAL (UINT64_MAX - 1)

enum { CLIENT = 0, SERVER = 1 };
enum { UP = 0, DOWN = 1 }; /* UP: client to server, read from CLIENT, written to SERVER */

/* One direction of a connection. The buffer holds the bytes read and not yet written,
 * buf[head..tail); the totals count bytes since the start of the connection. */
struct dir {
    char *buf;
    size_t cap, head, tail;
    uint64_t read_total, due_total, sent_total; /* sent <= due <= read */
    bool src_eof;                               /* the source sent EOF */
    bool eof_due;                               /* ... and its delay has passed */
    bool dst_shut;                              /* shutdown(dst, SHUT_WR) done */
    bool blocked; /* the last write to dst was short: waiting for EPOLLOUT */
    bool dirty;   /* on the list of directions to write after this round of releases */
};

struct conn {
    int fd[2];             /* CLIENT, SERVER (-1 before the upstream connect) */
    uint32_t events[2];    /* epoll interest registered for each fd */
    bool registered[2];    /* whether the fd is in the epoll set */
    uint32_t gen;          /* bumped when the slot is freed: stale chunks are skipped */
    bool used, connecting; /* connecting: the upstream connect is in progress */
    bool waited[2];        /* side has been written to since it last sent (a new burst) */
    struct dir d[2];       /* UP, DOWN */
};

/* A delayed event: bytes up to `upto` (or the EOF after them) of a connection's
 * direction may go out at `due`; or, in the connect queue, the upstream connect. */
struct pending {
    int64_t due;
    uint64_t upto;
    uint32_t conn, gen;
    bool eof;
};

struct fifo {
    struct pending *v;
    size_t cap, head, n;
};

struct stats {
    uint64_t connections, open, max_open, upstream_failed, refused;
    uint64_t bursts[2], bytes[2], reads[2], writes[2]; /* bursts by side; the rest by dir */
    uint64_t chunks, late_sum_ns, late_max_ns, seq;
};

static struct {
    struct sockaddr_storage listen_addr, upstream_addr;
    socklen_t listen_len, upstream_len;
    int64_t one_way_ns[2]; /* UP, DOWN */
    int64_t connect_delay_ns;
    double rtt_ms;
    const char *stats_file;
    uint32_t max_conns;
} opt;

static int ep = -1, lfd = -1, sfd = -1;
static struct conn *conns;
static uint32_t *free_slots, n_free;
static uint32_t *limbo, n_limbo; /* freed during this round of events: reusable after it */
static struct fifo q[2], connect_q;
static struct {
    uint32_t conn;
    int dir;
} * dirty;
static size_t n_dirty;
static struct stats st;
static int64_t started_ns;
static bool have_pwait2 = true;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "delay_proxy: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    void *q2 = realloc(p, n);
    if (!q2) {
        fprintf(stderr, "delay_proxy: out of memory\n");
        exit(1);
    }
    return q2;
}

/* ------------------------------------------------------------------ the queues */

static void fifo_push(struct fifo *f, struct pending p)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 1024;
        struct pending *v = xrealloc(NULL, cap * sizeof *v);
        for (size_t i = 0; i < f->n; i++)
            v[i] = f->v[(f->head + i) % f->cap];
        free(f->v);
        f->v = v;
        f->cap = cap;
        f->head = 0;
    }
    f->v[(f->head + f->n) % f->cap] = p;
    f->n++;
}

static const struct pending *fifo_head(const struct fifo *f)
{
    return f->n ? &f->v[f->head] : NULL;
}

static void fifo_pop(struct fifo *f)
{
    f->head = (f->head + 1) % f->cap;
    f->n--;
}

/* ------------------------------------------------------------------ addresses */

static bool is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

/* "127.0.0.1:2525" or "[::1]:2525", numeric only, into *out; exits 2 on anything else
 * and on any address outside loopback. */
static void parse_addr(const char *what, const char *s, struct sockaddr_storage *out,
                       socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(s, ':');
    size_t hl = colon ? (size_t)(colon - s) : 0;
    if (!colon || hl == 0 || hl >= sizeof host || colon[1] == '\0') {
        fprintf(stderr, "delay_proxy: %s: %s is not ADDRESS:PORT\n", what, s);
        exit(2);
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    char *h = host;
    if (h[0] == '[' && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        h++;
    }
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(h, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "delay_proxy: %s: %s: %s (numeric addresses only)\n", what, s,
                gai_strerror(rc));
        exit(2);
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    if (!is_loopback(out)) {
        fprintf(stderr,
                "delay_proxy: %s: %s is not a loopback address (127.0.0.0/8 or ::1): "
                "refused\n",
                what, s);
        exit(2);
    }
}

static int addr_port(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)a)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
}

static void addr_text(const struct sockaddr_storage *a, char *out, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";
    getnameinfo((const struct sockaddr *)a, sizeof *a, host, sizeof host, NULL, 0, NI_NUMERICHOST);
    snprintf(out, n, a->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, addr_port(a));
}

/* ------------------------------------------------------------------ sockets */

static void set_socket_options(int fd)
{
    int one = 1;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        die("fcntl");
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* The epoll interest each side of c needs now; the fd is added, changed or removed so
 * that the kernel's set matches (a side with nothing to wait for is removed, so that a
 * hung-up socket does not wake the loop until the connection closes). */
static void update_interest(struct conn *c, uint32_t idx)
{
    for (int side = CLIENT; side <= SERVER; side++) {
        int fd = c->fd[side];
        if (fd < 0)
            continue;
        const struct dir *in = &c->d[side == CLIENT ? UP : DOWN];  /* read from fd */
        const struct dir *out = &c->d[side == CLIENT ? DOWN : UP]; /* written to fd */
        uint32_t want = 0;
        if (side == SERVER && c->connecting) {
            want = EPOLLOUT;
        } else {
            if (!in->src_eof && in->tail - in->head < BUF_MAX)
                want |= EPOLLIN;
            if (out->blocked)
                want |= EPOLLOUT;
        }
        if (c->registered[side] ? want == c->events[side] : want == 0)
            continue;
        int op = !c->registered[side] ? EPOLL_CTL_ADD : want ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
        struct epoll_event ev = {.events = want, .data.u64 = ((uint64_t)idx << 1) | (uint64_t)side};
        if (epoll_ctl(ep, op, fd, &ev) < 0)
            die("epoll_ctl");
        c->registered[side] = want != 0;
        c->events[side] = want;
    }
}

static void conn_close(uint32_t idx)
{
    struct conn *c = &conns[idx];
    if (!c->used)
        return;
    for (int side = CLIENT; side <= SERVER; side++) {
        if (c->fd[side] >= 0)
            close(c->fd[side]); /* also leaves the epoll set */
        free(c->d[side].buf);
    }
    uint32_t gen = c->gen + 1;
    memset(c, 0, sizeof *c);
    c->gen = gen;
    c->fd[CLIENT] = c->fd[SERVER] = -1;
    limbo[n_limbo++] = idx;
    st.open--;
}

static void start_connect(uint32_t idx)
{
    struct conn *c = &conns[idx];
    int fd = socket(opt.upstream_addr.ss_family, SOCK_STREAM, 0);
    if (fd < 0) {
        st.upstream_failed++;
        conn_close(idx);
        return;
    }
    set_socket_options(fd);
    c->fd[SERVER] = fd;
    if (connect(fd, (const struct sockaddr *)&opt.upstream_addr, opt.upstream_len) < 0) {
        if (errno != EINPROGRESS) {
            st.upstream_failed++;
            conn_close(idx);
            return;
        }
        c->connecting = true;
    }
    update_interest(c, idx);
}

static void on_accept(int64_t now)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "delay_proxy: accept: %s\n", strerror(errno));
            return;
        }
        if (n_free == 0) {
            st.refused++;
            close(fd);
            continue;
        }
        set_socket_options(fd);
        uint32_t idx = free_slots[--n_free];
        struct conn *c = &conns[idx];
        c->used = true;
        c->fd[CLIENT] = fd;
        c->fd[SERVER] = -1;
        c->waited[CLIENT] = c->waited[SERVER] = true; /* each side's first data is a burst */
        st.connections++;
        if (++st.open > st.max_open)
            st.max_open = st.open;
        update_interest(c, idx);
        if (opt.connect_delay_ns > 0)
            fifo_push(
                &connect_q,
                (struct pending){.due = now + opt.connect_delay_ns, .conn = idx, .gen = c->gen});
        else
            start_connect(idx);
    }
}

/* ------------------------------------------------------------------ moving bytes */

/* Room for a read at the tail of d: compact (only when bytes are left over after the
 * last write) or grow; false when the buffer is full at its largest. */
static bool make_room(struct dir *d)
{
    if (d->head == d->tail)
        d->head = d->tail = 0;
    if (d->cap - d->tail >= READ_MIN)
        return true;
    if (d->head > 0) {
        memmove(d->buf, d->buf + d->head, d->tail - d->head);
        d->tail -= d->head;
        d->head = 0;
        if (d->cap - d->tail >= READ_MIN)
            return true;
    }
    if (d->cap < BUF_MAX) {
        size_t cap = d->cap ? d->cap * 2 : BUF_MIN;
        d->buf = xrealloc(d->buf, cap > BUF_MAX ? BUF_MAX : cap);
        d->cap = cap > BUF_MAX ? BUF_MAX : cap;
    }
    return d->tail < d->cap;
}

static void on_readable(uint32_t idx, int side, int64_t now)
{
    struct conn *c = &conns[idx];
    int dirn = side == CLIENT ? UP : DOWN;
    struct dir *d = &c->d[dirn];
    if (d->src_eof || !make_room(d)) {
        update_interest(c, idx);
        return;
    }
    ssize_t r = read(c->fd[side], d->buf + d->tail, d->cap - d->tail);
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_close(idx);
        return;
    }
    if (r == 0) {
        d->src_eof = true;
    } else {
        if (c->waited[side]) {
            st.bursts[side]++;
            c->waited[side] = false;
        }
        d->tail += (size_t)r;
        d->read_total += (uint64_t)r;
        st.bytes[dirn] += (uint64_t)r;
        st.reads[dirn]++;
    }
    fifo_push(&q[dirn], (struct pending){.due = now + opt.one_way_ns[dirn],
                                         .upto = d->read_total,
                                         .conn = idx,
                                         .gen = c->gen,
                                         .eof = r == 0});
    if (r == 0 || d->tail - d->head >= BUF_MAX)
        update_interest(c, idx);
}

/* Writes what is due of direction dirn; shuts the destination's write side once an EOF
 * is due and everything before it is out; closes the connection when both are shut. */
static void flush(uint32_t idx, int dirn)
{
    struct conn *c = &conns[idx];
    struct dir *d = &c->d[dirn];
    int dst = dirn == UP ? SERVER : CLIENT;
    if (!c->used || c->fd[dst] < 0 || (dst == SERVER && c->connecting) || d->blocked)
        return;
    bool was_full = d->tail - d->head >= BUF_MAX;
    uint64_t n = d->due_total - d->sent_total;
    if (n > 0) {
        ssize_t w = write(c->fd[dst], d->buf + d->head, (size_t)n);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_close(idx);
            return;
        }
        if (w > 0) {
            d->head += (size_t)w;
            d->sent_total += (uint64_t)w;
            st.writes[dirn]++;
            c->waited[dst] = true; /* dst heard from its peer: its next data is a new burst */
        }
        if (d->sent_total < d->due_total) {
            d->blocked = true;
            update_interest(c, idx);
            return;
        }
        if (d->head == d->tail && d->cap > 64 * 1024) { /* a bulk transfer is over */
            free(d->buf);
            d->buf = NULL;
            d->cap = d->head = d->tail = 0;
        }
    }
    if (d->eof_due && !d->dst_shut && d->sent_total == d->read_total) {
        shutdown(c->fd[dst], SHUT_WR);
        d->dst_shut = true;
        if (c->d[UP].dst_shut && c->d[DOWN].dst_shut) {
            conn_close(idx);
            return;
        }
    }
    if (was_full && d->tail - d->head < BUF_MAX)
        update_interest(c, idx);
}

static void on_writable(uint32_t idx, int side)
{
    struct conn *c = &conns[idx];
    if (side == SERVER && c->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd[SERVER], SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
            st.upstream_failed++;
            conn_close(idx);
            return;
        }
        c->connecting = false;
        update_interest(c, idx);
        flush(idx, UP);
        return;
    }
    int dirn = side == SERVER ? UP : DOWN;
    c->d[dirn].blocked = false;
    update_interest(c, idx);
    flush(idx, dirn);
}

/* Releases every chunk and connect that is due at `now`, then writes each direction
 * that got due bytes once. */
static void release_due(int64_t now)
{
    const struct pending *p;
    while ((p = fifo_head(&connect_q)) && p->due <= now) {
        struct pending e = *p;
        fifo_pop(&connect_q);
        if (conns[e.conn].used && conns[e.conn].gen == e.gen)
            start_connect(e.conn);
    }
    for (int dirn = UP; dirn <= DOWN; dirn++) {
        while ((p = fifo_head(&q[dirn])) && p->due <= now) {
            struct pending e = *p;
            fifo_pop(&q[dirn]);
            uint64_t late = (uint64_t)(now - e.due);
            st.chunks++;
            st.late_sum_ns += late;
            if (late > st.late_max_ns)
                st.late_max_ns = late;
            struct conn *c = &conns[e.conn];
            if (!c->used || c->gen != e.gen)
                continue;
            struct dir *d = &c->d[dirn];
            if (e.upto > d->due_total)
                d->due_total = e.upto;
            if (e.eof)
                d->eof_due = true;
            if (!d->dirty) {
                d->dirty = true;
                dirty[n_dirty].conn = e.conn;
                dirty[n_dirty].dir = dirn;
                n_dirty++;
            }
        }
    }
    for (size_t i = 0; i < n_dirty; i++) {
        conns[dirty[i].conn].d[dirty[i].dir].dirty = false;
        flush(dirty[i].conn, dirty[i].dir);
    }
    n_dirty = 0;
}

/* ------------------------------------------------------------------ reports */

static void report(const char *event)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char buf[1536];
    int n = snprintf(
        buf, sizeof buf,
        "{\"event\":\"%s\",\"seq\":%" PRIu64 ",\"uptime_s\":%.3f,\"rtt_ms\":%g,"
        "\"connect_delay_ms\":%g,\"connections\":%" PRIu64 ",\"open\":%" PRIu64
        ",\"max_open\":%" PRIu64 ",\"upstream_failed\":%" PRIu64 ",\"refused\":%" PRIu64
        ",\"client_bursts\":%" PRIu64 ",\"server_bursts\":%" PRIu64 ",\"bytes_up\":%" PRIu64
        ",\"bytes_down\":%" PRIu64 ",\"reads_up\":%" PRIu64 ",\"reads_down\":%" PRIu64
        ",\"writes_up\":%" PRIu64 ",\"writes_down\":%" PRIu64 ",\"chunks\":%" PRIu64
        ",\"late_us_mean\":%.1f,\"late_us_max\":%.1f,\"cpu_user_s\":%.6f,\"cpu_sys_s\":%.6f}\n",
        event, ++st.seq, (double)(now_ns() - started_ns) / 1e9, opt.rtt_ms,
        (double)opt.connect_delay_ns / 1e6, st.connections, st.open, st.max_open,
        st.upstream_failed, st.refused, st.bursts[CLIENT], st.bursts[SERVER], st.bytes[UP],
        st.bytes[DOWN], st.reads[UP], st.reads[DOWN], st.writes[UP], st.writes[DOWN], st.chunks,
        st.chunks ? (double)st.late_sum_ns / (double)st.chunks / 1e3 : 0.0,
        (double)st.late_max_ns / 1e3,
        (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
        (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    if (n <= 0 || (size_t)n >= sizeof buf)
        return;
    fputs(buf, stdout);
    fflush(stdout);
    if (opt.stats_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", opt.stats_file);
        FILE *f = fopen(tmp, "w");
        if (f) {
            bool ok = fputs(buf, f) >= 0;
            ok = fclose(f) == 0 && ok;
            if (ok)
                rename(tmp, opt.stats_file);
        }
    }
}

/* ------------------------------------------------------------------ setup and loop */

static void usage(FILE *out)
{
    fputs("usage: delay_proxy --listen ADDR:PORT --upstream ADDR:PORT [options]\n"
          "A TCP proxy that adds a round trip between a client and a server, loopback only,\n"
          "and counts how often each side had to wait for the other (bench/delay_proxy.c).\n"
          "\n"
          "  --listen ADDR:PORT        where clients connect: 127.0.0.0/8 or [::1]; port 0\n"
          "                            picks a free one (printed in the first JSON line)\n"
          "  --upstream ADDR:PORT      the server: 127.0.0.0/8 or [::1]\n"
          "  --rtt-ms MS               round trip to add, half each way (default 50; 0 allowed)\n"
          "  --up-ms MS, --down-ms MS  the one-way delays separately (client to server, back)\n"
          "  --connect-delay-ms MS     open the upstream connection this long after the\n"
          "                            client's (default 1.5 x RTT: the greeting then arrives\n"
          "                            2 RTT after the connect, as over a real path)\n"
          "  --stats-file PATH         also write every report to PATH (atomically)\n"
          "  --max-conns N             client connections at once (default 16384)\n"
          "  --help                    this text\n"
          "\n"
          "stdout: {\"event\":\"listening\",...}, then {\"event\":\"stats\",...} on SIGUSR1 and\n"
          "{\"event\":\"exit\",...} on SIGTERM/SIGINT. client_bursts: client data sent after\n"
          "the client last received server data (its round trips); server_bursts: the same\n"
          "the other way. Addresses outside loopback are refused (exit 2).\n",
          out);
}

static double parse_ms(const char *name, const char *s)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < 0 || v > 600000) {
        fprintf(stderr, "delay_proxy: %s: %s is not a number of milliseconds (0..600000)\n", name,
                s);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {{"listen", required_argument, NULL, 'l'},
                                             {"upstream", required_argument, NULL, 'u'},
                                             {"rtt-ms", required_argument, NULL, 'r'},
                                             {"up-ms", required_argument, NULL, 'U'},
                                             {"down-ms", required_argument, NULL, 'D'},
                                             {"connect-delay-ms", required_argument, NULL, 'c'},
                                             {"stats-file", required_argument, NULL, 's'},
                                             {"max-conns", required_argument, NULL, 'm'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *listen_s = NULL, *upstream_s = NULL;
    double rtt = 50, up = -1, down = -1, cdelay = -1;
    long max_conns = 16384;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'l': listen_s = optarg; break;
        case 'u': upstream_s = optarg; break;
        case 'r': rtt = parse_ms("--rtt-ms", optarg); break;
        case 'U': up = parse_ms("--up-ms", optarg); break;
        case 'D': down = parse_ms("--down-ms", optarg); break;
        case 'c': cdelay = parse_ms("--connect-delay-ms", optarg); break;
        case 's': opt.stats_file = optarg; break;
        case 'm':
            max_conns = strtol(optarg, NULL, 10);
            if (max_conns < 1 || max_conns > 1000000) {
                fprintf(stderr, "delay_proxy: --max-conns: 1..1000000\n");
                exit(2);
            }
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc || !listen_s || !upstream_s) {
        usage(stderr);
        exit(2);
    }
    parse_addr("--listen", listen_s, &opt.listen_addr, &opt.listen_len);
    parse_addr("--upstream", upstream_s, &opt.upstream_addr, &opt.upstream_len);
    if (up < 0)
        up = rtt / 2;
    if (down < 0)
        down = rtt / 2;
    opt.rtt_ms = up + down;
    opt.one_way_ns[UP] = (int64_t)(up * 1e6);
    opt.one_way_ns[DOWN] = (int64_t)(down * 1e6);
    opt.connect_delay_ns = (int64_t)((cdelay < 0 ? 1.5 * opt.rtt_ms : cdelay) * 1e6);
    opt.max_conns = (uint32_t)max_conns;
}

static void setup(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
        die("sigprocmask");
    if ((sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
        die("signalfd");
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1");
    lfd = socket(opt.listen_addr.ss_family, SOCK_STREAM, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    (void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (const struct sockaddr *)&opt.listen_addr, opt.listen_len) < 0)
        die("bind");
    if (listen(lfd, 4096) < 0)
        die("listen");
    if (fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK) < 0)
        die("fcntl");
    socklen_t len = sizeof opt.listen_addr;
    getsockname(lfd, (struct sockaddr *)&opt.listen_addr, &len);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LISTEN};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
        die("epoll_ctl");
    ev.data.u64 = TAG_SIGNAL;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) < 0)
        die("epoll_ctl");
    conns = calloc(opt.max_conns, sizeof *conns);
    free_slots = calloc(opt.max_conns, sizeof *free_slots);
    limbo = calloc(opt.max_conns, sizeof *limbo);
    dirty = calloc(2 * (size_t)opt.max_conns, sizeof *dirty);
    if (!conns || !free_slots || !limbo || !dirty) {
        fprintf(stderr, "delay_proxy: out of memory\n");
        exit(1);
    }
    for (uint32_t i = 0; i < opt.max_conns; i++) {
        conns[i].fd[CLIENT] = conns[i].fd[SERVER] = -1;
        free_slots[n_free++] = opt.max_conns - 1 - i; /* slot 0 first */
    }
    char l[80], u[80];
    addr_text(&opt.listen_addr, l, sizeof l);
    addr_text(&opt.upstream_addr, u, sizeof u);
    printf("{\"event\":\"listening\",\"listen\":\"%s\",\"port\":%d,\"upstream\":\"%s\","
           "\"rtt_ms\":%g,\"up_ms\":%g,\"down_ms\":%g,\"connect_delay_ms\":%g,\"pid\":%ld}\n",
           l, addr_port(&opt.listen_addr), u, opt.rtt_ms, (double)opt.one_way_ns[UP] / 1e6,
           (double)opt.one_way_ns[DOWN] / 1e6, (double)opt.connect_delay_ns / 1e6, (long)getpid());
    fflush(stdout);
}

/* The earliest due time of the three queues, or -1 when nothing is pending. */
static int64_t next_due(void)
{
    int64_t due = -1;
    const struct fifo *fs[] = {&q[UP], &q[DOWN], &connect_q};
    for (size_t i = 0; i < 3; i++) {
        const struct pending *p = fifo_head(fs[i]);
        if (p && (due < 0 || p->due < due))
            due = p->due;
    }
    return due;
}

static int wait_events(struct epoll_event *evs, int64_t now)
{
    int64_t due = next_due();
    int64_t wait = due < 0 ? -1 : (due > now ? due - now : 0);
    if (have_pwait2) {
        struct timespec ts = {.tv_sec = wait / 1000000000LL, .tv_nsec = wait % 1000000000LL};
        int n = epoll_pwait2(ep, evs, MAX_EVENTS, wait < 0 ? NULL : &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        have_pwait2 = false; /* kernels before 5.11: milliseconds, rounded up */
    }
    int ms = wait < 0 ? -1 : (int)((wait + 999999) / 1000000);
    return epoll_wait(ep, evs, MAX_EVENTS, ms);
}

/* Returns false when a signal asked it to stop. */
static bool on_signal(void)
{
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGUSR1)
            report("stats");
        else
            return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    setup();
    started_ns = now_ns();
    struct epoll_event evs[MAX_EVENTS];
    bool running = true;
    while (running) {
        int n = wait_events(evs, now_ns());
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        int64_t now = now_ns();
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG_LISTEN) {
                on_accept(now);
                continue;
            }
            if (tag == TAG_SIGNAL) {
                running = on_signal() && running;
                continue;
            }
            uint32_t idx = (uint32_t)(tag >> 1);
            int side = (int)(tag & 1);
            uint32_t e = evs[i].events;
            if ((e & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conns[idx].used &&
                !(side == SERVER && conns[idx].connecting))
                on_readable(idx, side, now);
            if ((e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && conns[idx].used &&
                (conns[idx].events[side] & EPOLLOUT))
                on_writable(idx, side);
        }
        release_due(now_ns());
        while (n_limbo)
            free_slots[n_free++] = limbo[--n_limbo];
    }
    report("exit");
    return 0;
}
