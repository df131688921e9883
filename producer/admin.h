/*
 * admin.h — the operator commands of the `mailroom` CLI: watch, stats, consumers and
 * the dead-letter commands (dead list / retry / purge).
 *
 * Unlike `send` and `status`, which go through libmailroom, these read and change the
 * queue's Redis keys directly (common/keys.h names them, common/rconn.h connects), and
 * the two that change several keys at once do it in one Lua script each, so an
 * operator never races a consumer.
 *
 * Each admin_* command prints its result on stdout and returns an exit code from the
 * list below; on failure it writes one line (no "mailroom: " prefix, no newline) into
 * err for the caller to print. Nothing here reads a signing key or prints the Redis
 * URL (which may hold a password).
 */
#ifndef MAILROOM_ADMIN_H
#define MAILROOM_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct json_object;

/* Adds member key = v to object o, taking ownership of v: on failure (or when v is
 * NULL, as when its constructor ran out of memory) v is released. 0 or -1. */
int admin_json_set(struct json_object *o, const char *key, struct json_object *v);

/* Writes s to fp with every control character (C0, DEL and C1) replaced by '?', so
 * that a line stays one line and no text from a job or an input file can send escape
 * sequences to the terminal. */
void admin_put_clean(const char *s, FILE *fp);

/* Prints a json-c value as one line of JSON on stdout (not flushed). EXIT_OK, or
 * EXIT_SOFTWARE with err filled when memory ran out. */
int admin_print_json_line(struct json_object *o, char *err, size_t err_len);

/* Flushes stdout: EXIT_OK, or EXIT_IOERR with "<what>: stdout: <why>" in err. */
int admin_flush_stdout(const char *what, char *err, size_t err_len);

/* Exit codes of the `mailroom` tool (sysexits.h values where one fits), shared by
 * cli.c and admin.c; `mailroom --help` documents them. */
enum {
    EXIT_OK = 0,
    EXIT_NOTFOUND = 1,  /* status: no such job; dead retry: no entry with that id */
    EXIT_FINAL_BAD = 2, /* send --wait: the job ended failed or rejected */
    EXIT_USAGE = 64,    /* EX_USAGE */
    EXIT_DATAERR = 65,  /* EX_DATAERR: invalid email or input data */
    EXIT_NOINPUT = 66,  /* EX_NOINPUT: an input file cannot be read */
    EXIT_UNAVAIL = 69,  /* EX_UNAVAILABLE: Redis unreachable, timeout, error */
    EXIT_SOFTWARE = 70, /* EX_SOFTWARE: internal error, out of memory */
    EXIT_DUP = 73,      /* EX_CANTCREAT: a job with that id already exists */
    EXIT_IOERR = 74,    /* EX_IOERR: cannot write the result to stdout */
    EXIT_TEMPFAIL = 75, /* EX_TEMPFAIL: send --wait: not final before the timeout */
    EXIT_CONFIG = 78    /* EX_CONFIG: no usable key, bad Redis URL or queue name */
};

#define ADMIN_DEFAULT_DEAD_AFTER_MS 30000 /* consumers: silent after 30 s */
#define ADMIN_DEFAULT_DEAD_LIMIT 20       /* dead list: newest 20 entries */

/* What the command line said, already resolved (URL and queue never NULL). */
typedef struct admin_opts {
    const char *redis_url; /* may hold a password: never printed */
    const char *queue;
    int json;              /* print JSON (lines) instead of readable text */
    long count;            /* watch: stop after this many events; 0 = no limit */
    int64_t timeout_ms;    /* watch: stop after this long without an event; 0 = never */
    int64_t dead_after_ms; /* consumers: silent when the heartbeat is older */
    long limit;            /* dead list: how many entries, newest first */
    const char *id;        /* dead retry: the job id (NULL with all) */
    int all;               /* dead retry: every entry */
    int64_t older_than_ms; /* dead purge: only entries older than this; < 0 = all */
} admin_opts;

/*
 * Parses a duration: a non-negative number with an optional unit ms, s, m, h or d
 * ("30s", "15m", "12h", "7d", "1.5s"; a plain number is seconds). Returns 0 and the
 * duration in ms, or -1.
 */
int admin_parse_duration(const char *s, int64_t *ms);

/* watch: prints every status event as it arrives until the count, the idle timeout,
 * SIGINT or SIGTERM (all exit 0). */
int admin_watch(const admin_opts *o, char *err, size_t err_len);

/* stats: queue lengths, processing per consumer, consumers, counters, sent/min. */
int admin_stats(const admin_opts *o, char *err, size_t err_len);

/* consumers: the heartbeat set with ages, alive/silent and processing counts. */
int admin_consumers(const admin_opts *o, char *err, size_t err_len);

/* dead list: the newest o->limit dead-letter entries. */
int admin_dead_list(const admin_opts *o, char *err, size_t err_len);

/* dead retry: puts the entries of job o->id (or all of them) back into pending. */
int admin_dead_retry(const admin_opts *o, char *err, size_t err_len);

/* dead purge: removes every entry, or those older than o->older_than_ms. */
int admin_dead_purge(const admin_opts *o, char *err, size_t err_len);

#endif
