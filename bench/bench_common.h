/*
 * bench_common.h: what the mailroom benchmarks share (header-only, static functions).
 *
 * - a monotonic clock in nanoseconds and percentiles of sorted samples;
 * - the benchmark email: a realistic activation mail (UTF-8 display names and subject,
 *   text and HTML bodies) padded so that its signed job is exactly --size bytes;
 * - small Redis helpers (one-shot commands, the server version, the raw bytes of the
 *   job at the head of a list, the queue's key names from common/keys.h);
 * - a tiny JSON writer for the one machine-readable line each benchmark prints.
 *
 * Benchmarks are not tests: they print a table and one JSON line that starts with
 * {"bench": and never decide pass or fail themselves (scripts/bench does).
 */
#ifndef MAILROOM_BENCH_COMMON_H
#define MAILROOM_BENCH_COMMON_H

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keys.h"
#include "mailroom.h"
#include "rconn.h"

#define BENCH_SECRET "bench-secret-not-for-production-0123456789"
#define BENCH_TEXT_MAX (300 * 1024)

static inline int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int bench_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static inline void bench_sort(int64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, bench_cmp_i64);
}

/* Nearest-rank percentile of sorted samples, p in [0, 100]. */
static inline int64_t bench_pct(const int64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    double rank = p / 100.0 * (double)n;
    size_t i = (size_t)rank;
    if ((double)i < rank)
        i++;
    if (i == 0)
        i = 1;
    if (i > n)
        i = n;
    return sorted[i - 1];
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double bench_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/* Exits with a message: benchmarks have no recovery path. */
static void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static inline long bench_parse_long(const char *flag, const char *s, long min, long max)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < min || v > max)
        bench_die("%s wants an integer in [%ld, %ld], got '%s'", flag, min, max, s);
    return v;
}

/* ----------------------------------------------------------------------------- Redis */

static inline redisContext *bench_connect(const char *url)
{
    rconn_url u;
    mr_error err = MR_ERROR_INIT;
    if (rconn_url_parse(url, &u, &err) != 0)
        bench_die("--redis: %s", err.msg);
    redisContext *c = rconn_connect(&u, 2000, 10000, &err);
    rconn_url_clear(&u);
    if (!c)
        bench_die("cannot connect to %s: %s", url, err.msg);
    return c;
}

/* The key names of queue `queue` (dies when the name is not a valid queue name). */
static inline void bench_keys(keys_queue *k, const char *queue)
{
    if (keys_init(k, queue) != 0)
        bench_die("--queue: '%s' is not a queue name ([A-Za-z0-9._:-]{1,64})", queue);
}

/* Runs one command (argv form); dies on a lost connection or an error reply. */
static inline redisReply *bench_cmd(redisContext *c, int argc, const char **argv,
                                    const size_t *argvlen)
{
    redisReply *r = redisCommandArgv(c, argc, argv, argvlen);
    if (!r)
        bench_die("Redis %s: %s", argv[0], c->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        bench_die("Redis %s: %s", argv[0], r->str);
    return r;
}

static inline void bench_cmd_free(redisContext *c, int argc, const char **argv)
{
    freeReplyObject(bench_cmd(c, argc, argv, NULL));
}

/* "7.0.15" from INFO server. */
static inline void bench_redis_version(redisContext *c, char *out, size_t cap)
{
    const char *argv[] = {"INFO", "server"};
    redisReply *r = bench_cmd(c, 2, argv, NULL);
    snprintf(out, cap, "unknown");
    const char *p = r->type == REDIS_REPLY_STRING ? strstr(r->str, "redis_version:") : NULL;
    if (p) {
        p += strlen("redis_version:");
        size_t n = strcspn(p, "\r\n");
        snprintf(out, cap, "%.*s", (int)n, p);
    }
    freeReplyObject(r);
}

/* calls and usec of one command from INFO commandstats (0 when never called). Redis 7
 * counts commands that scripts run under their own names as well. */
static inline void bench_cmdstat(redisContext *c, const char *cmd, double *calls, double *usec)
{
    const char *argv[] = {"INFO", "commandstats"};
    redisReply *r = bench_cmd(c, 2, argv, NULL);
    char needle[64];
    snprintf(needle, sizeof needle, "cmdstat_%s:", cmd);
    *calls = *usec = 0;
    const char *p = r->type == REDIS_REPLY_STRING ? strstr(r->str, needle) : NULL;
    if (p) {
        const char *q = strstr(p, "calls=");
        const char *u = strstr(p, "usec=");
        if (q)
            *calls = strtod(q + 6, NULL);
        if (u)
            *usec = strtod(u + 5, NULL);
    }
    freeReplyObject(r);
}

/* CPU seconds the Redis server process has used (INFO cpu: used_cpu_user + used_cpu_sys,
 * all its threads), for "Redis CPU per job" over a measurement. */
static inline double bench_redis_cpu_s(redisContext *c)
{
    const char *argv[] = {"INFO", "cpu"};
    redisReply *r = bench_cmd(c, 2, argv, NULL);
    double total = 0;
    const char *keys[] = {"used_cpu_user:", "used_cpu_sys:"};
    for (int i = 0; i < 2 && r->type == REDIS_REPLY_STRING; i++) {
        const char *p = strstr(r->str, keys[i]);
        if (p)
            total += strtod(p + strlen(keys[i]), NULL);
    }
    freeReplyObject(r);
    return total;
}

/* ----------------------------------------------------------------------------- email */

/* The benchmark email. text and html are padded with ASCII so that the signed job,
 * exactly as mailroom_send puts it into Redis, is `size` bytes. */
typedef struct bench_email {
    const char *to[1];
    char *text, *html;
    mailroom_email e;
} bench_email;

static const char bench_text_head[] =
    "您好，王小明！\n\nThanks for signing up. Please activate your account within 24 hours:\n"
    "https://example.com/activate?t=Zk3q9XbW1pLr7Hc2Vn8Ty5Ms4Gd6Ja0E\n\n";
static const char bench_html_head[] =
    "<!doctype html><html><body><p>您好，王小明！</p><p>Thanks for signing up. "
    "<a href=\"https://example.com/activate?t=Zk3q9XbW1pLr7Hc2Vn8Ty5Ms4Gd6Ja0E\">"
    "Activate your account</a> within 24 hours.</p><p>";
static const char bench_html_tail[] = "</p></body></html>";
static const char bench_filler[] =
    "If you did not create an account, ignore this message and nothing will happen. ";

/* Builds text/html with `pad` extra ASCII bytes in total (split roughly 40/60). */
static inline void bench_email_fill(bench_email *b, size_t pad)
{
    free(b->text);
    free(b->html);
    size_t pad_text = pad * 2 / 5, pad_html = pad - pad_text;
    size_t lt = strlen(bench_text_head), lh = strlen(bench_html_head);
    size_t lht = strlen(bench_html_tail), lf = strlen(bench_filler);
    b->text = malloc(lt + pad_text + 1);
    b->html = malloc(lh + pad_html + lht + 1);
    if (!b->text || !b->html)
        bench_die("out of memory");
    memcpy(b->text, bench_text_head, lt);
    for (size_t i = 0; i < pad_text; i++)
        b->text[lt + i] = bench_filler[i % lf];
    b->text[lt + pad_text] = '\0';
    memcpy(b->html, bench_html_head, lh);
    for (size_t i = 0; i < pad_html; i++)
        b->html[lh + i] = bench_filler[i % lf];
    memcpy(b->html + lh + pad_html, bench_html_tail, lht + 1);
    b->to[0] = "王小明 <ming@example.com>";
    memset(&b->e, 0, sizeof b->e);
    b->e.to = b->to;
    b->e.n_to = 1;
    b->e.from = "noreply@example.com";
    b->e.from_name = "滴水网";
    b->e.subject = "请激活您的账户 — activate your account";
    b->e.text = b->text;
    b->e.html = b->html;
}

static inline void bench_email_free(bench_email *b)
{
    free(b->text);
    free(b->html);
    b->text = b->html = NULL;
}

/* The raw job at the left (newest) end of a list; caller frees. */
static inline char *bench_lindex0(redisContext *c, const char *list, size_t *len)
{
    const char *argv[] = {"LINDEX", list, "0"};
    redisReply *r = bench_cmd(c, 3, argv, NULL);
    if (r->type != REDIS_REPLY_STRING)
        bench_die("LINDEX %s 0: no job there", list);
    char *s = malloc(r->len + 1);
    if (!s)
        bench_die("out of memory");
    memcpy(s, r->str, r->len + 1);
    *len = r->len;
    freeReplyObject(r);
    return s;
}

/*
 * Sizes the email so that its signed job is `size` bytes: sends one calibration job,
 * reads its bytes back from the queue's pending list (keys: the names of the queue m
 * sends to), pads, sends again and checks.
 * On return *raw holds the exact bytes of the last calibration job (the payload for a
 * bare LPUSH of "the same bytes"). The calibration jobs are removed again.
 */
static inline void bench_email_calibrate(bench_email *b, mailroom *m, redisContext *c,
                                         const keys_queue *keys, size_t size, char **raw,
                                         size_t *raw_len)
{
    char id[MAILROOM_ID_MAX], key[KEYS_NAME_MAX];
    size_t pad = 0;
    for (int round = 0; round < 3; round++) {
        bench_email_fill(b, pad);
        if (mailroom_send(m, &b->e, id) != MAILROOM_OK)
            bench_die("calibration send: %s", mailroom_errmsg(m));
        *raw = bench_lindex0(c, keys->pending, raw_len);
        const char *lpop[] = {"LPOP", keys->pending};
        bench_cmd_free(c, 2, lpop);
        keys_job(keys, id, key);
        const char *del[] = {"DEL", key};
        bench_cmd_free(c, 2, del);
        if (*raw_len == size)
            return;
        if (round == 2)
            break;
        if (*raw_len > size + pad)
            bench_die("--size %zu is below the smallest job (%zu bytes)", size,
                      *raw_len - pad);
        pad = size - (*raw_len - pad);
        free(*raw);
    }
    bench_die("could not size the job to %zu bytes (got %zu)", size, *raw_len);
}

/* ----------------------------------------------------------------------------- JSON */

/* A one-line JSON object written piece by piece to stdout: bench_json_begin, then
 * members (each after the "bench" member, so each starts with a comma), then
 * bench_json_end. */
static inline void bench_json_begin(const char *bench)
{
    printf("{\"bench\":\"%s\"", bench);
}

static inline void bench_json_key(const char *key)
{
    printf(",\"%s\":", key);
}

static inline void bench_json_str(const char *key, const char *v)
{
    bench_json_key(key);
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static inline void bench_json_num(const char *key, double v)
{
    bench_json_key(key);
    printf("%.6g", v);
}

static inline void bench_json_int(const char *key, long long v)
{
    bench_json_key(key);
    printf("%lld", v);
}

static inline void bench_json_end(void)
{
    printf("}\n");
    fflush(stdout);
}

#endif
