/*
 * bench_enqueue: latency of mailroom_send() against its physical limit, a bare LPUSH of
 * the same bytes to the same Redis.
 *
 * Each run calls every operation N times, in alternating blocks (--block calls of one
 * operation, then of the next, ...), so that whatever else the machine is doing hits
 * all of them alike. The operations, each on its own Redis connection:
 *
 *   lpush     LPUSH <list> <the exact bytes of a signed job>        (the limit)
 *   script    EVALSHA of the ENQUEUE script with those bytes        (Redis side of a send)
 *   multi     MULTI, HSET record, EXPIRE, LPUSH bytes, EXEC in one write: what the same
 *             writes cost without a script (no duplicate check)     (an alternative)
 *   send      mailroom_send() of the same email                     (the figure)
 *   validate  mailroom_validate(): build + validate, no signing, no Redis (client CPU)
 *
 * Per run: p50/p99/p99.9 of each, and the ratios send/lpush. Over --runs runs: the
 * median of each figure. Also the client CPU per call (CLOCK_THREAD_CPUTIME_ID, read
 * at block boundaries). Prints a table and one JSON line.
 *
 * usage: bench_enqueue [--redis URL] [--queue Q] [-n N] [--runs R] [--block B]
 *                      [--size BYTES] [--warmup W] [--flush] [--ops lpush,script,multi,send,validate]
 * --flush lets the benchmark FLUSHDB between blocks to keep Redis small (only on a
 * private Redis!); without it, it deletes its lists and lets the records expire.
 */
#define _GNU_SOURCE
#include "bench_common.h"
#include "script.h"

enum { OP_LPUSH, OP_SCRIPT, OP_MULTI, OP_SEND, OP_VALIDATE, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"lpush", "script", "multi", "send", "validate"};
static const char *const op_titles[OP_COUNT] = {
    "bare LPUSH, same bytes (limit)", "EVALSHA ENQUEUE, same bytes",
    "MULTI HSET EXPIRE LPUSH EXEC", "mailroom_send", "mailroom_validate (no Redis)"};

/* The figures of one operation in one run (us): the latency percentiles (the first
 * three, which the send/LPUSH ratios are taken of), the mean, the client CPU per call. */
enum { FIG_P50, FIG_P99, FIG_P999, FIG_MEAN, FIG_CPU, FIG_COUNT };
static const char *const fig_names[FIG_COUNT] = {"p50", "p99", "p999", "mean", "cpu"};

typedef struct run_result {
    double fig[FIG_COUNT][OP_COUNT];
} run_result;

typedef struct bench {
    const char *url, *queue;
    long n, runs, block, size, warmup, flush_every;
    int flush;
    int enabled[OP_COUNT];
    mailroom *m;
    redisContext *c_lpush, *c_script, *c_multi, *c_aux;
    bench_email email;
    char *raw;
    size_t raw_len;
    keys_queue keys;
    char bare[256];
    long script_seq;
} bench;

static double thread_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* One call of an operation; returns its duration in ns. */
static int64_t one(bench *b, int op)
{
    char id[MAILROOM_ID_MAX];
    int64_t t0, t1;
    redisReply *r = NULL;
    switch (op) {
    case OP_LPUSH: {
        const char *argv[] = {"LPUSH", b->bare, b->raw};
        size_t len[] = {5, strlen(b->bare), b->raw_len};
        t0 = bench_now_ns();
        r = redisCommandArgv(b->c_lpush, 3, argv, len);
        t1 = bench_now_ns();
        if (!r || r->type != REDIS_REPLY_INTEGER)
            bench_die("LPUSH failed: %s", r ? r->str : b->c_lpush->errstr);
        break;
    }
    case OP_SCRIPT: {
        /* the same arguments mailroom_send passes, with a fresh job key */
        char job_id[64], key[KEYS_NAME_MAX], now[32];
        t0 = bench_now_ns();
        snprintf(job_id, sizeof job_id, "bench-script-%ld", b->script_seq++);
        keys_job(&b->keys, job_id, key);
        snprintf(now, sizeof now, "2026-11-25T10:00:00.000Z");
        const char *argv[] = {"EVALSHA", script_sha(SCRIPT_ENQUEUE), "3", key, b->keys.pending,
                              b->keys.scheduled, b->raw, now, "600", ""};
        size_t len[10];
        for (int i = 0; i < 10; i++)
            len[i] = strlen(argv[i]);
        len[6] = b->raw_len;
        r = redisCommandArgv(b->c_script, 10, argv, len);
        t1 = bench_now_ns();
        if (!r || r->type != REDIS_REPLY_INTEGER)
            bench_die("EVALSHA ENQUEUE failed: %s", r ? r->str : b->c_script->errstr);
        break;
    }
    case OP_MULTI: {
        char job_id[64], key[KEYS_NAME_MAX];
        t0 = bench_now_ns();
        snprintf(job_id, sizeof job_id, "bench-multi-%ld", b->script_seq++);
        keys_job(&b->keys, job_id, key);
        const char *now = "2026-11-25T10:00:00.000Z";
        const char *multi[] = {"MULTI"};
        const char *hset[] = {"HSET", key, "state", "queued", "attempts", "0", "created_at", now,
                              "updated_at", now};
        const char *expire[] = {"EXPIRE", key, "600"};
        const char *lpush[] = {"LPUSH", b->keys.pending, b->raw};
        size_t lpush_len[] = {5, strlen(b->keys.pending), b->raw_len};
        const char *exec[] = {"EXEC"};
        redisAppendCommandArgv(b->c_multi, 1, multi, NULL);
        redisAppendCommandArgv(b->c_multi, 10, hset, NULL);
        redisAppendCommandArgv(b->c_multi, 3, expire, NULL);
        redisAppendCommandArgv(b->c_multi, 3, lpush, lpush_len);
        redisAppendCommandArgv(b->c_multi, 1, exec, NULL);
        for (int i = 0; i < 5; i++) {
            freeReplyObject(r);
            r = NULL;
            if (redisGetReply(b->c_multi, (void **)&r) != REDIS_OK || !r ||
                r->type == REDIS_REPLY_ERROR)
                bench_die("MULTI/EXEC failed: %s", r ? r->str : b->c_multi->errstr);
        }
        t1 = bench_now_ns();
        break;
    }
    case OP_SEND:
        t0 = bench_now_ns();
        if (mailroom_send(b->m, &b->email.e, id) != MAILROOM_OK)
            bench_die("mailroom_send: %s", mailroom_errmsg(b->m));
        t1 = bench_now_ns();
        break;
    default:
        t0 = bench_now_ns();
        if (mailroom_validate(b->m, &b->email.e) != MAILROOM_OK)
            bench_die("mailroom_validate: %s", mailroom_errmsg(b->m));
        t1 = bench_now_ns();
        break;
    }
    freeReplyObject(r);
    return t1 - t0;
}

/* Keeps Redis small between blocks (never timed). */
static void cleanup(bench *b)
{
    if (b->flush) {
        const char *argv[] = {"FLUSHDB"};
        bench_cmd_free(b->c_aux, 1, argv);
    } else {
        const char *argv[] = {"DEL", b->keys.pending, b->bare};
        bench_cmd_free(b->c_aux, 3, argv);
    }
}

static void run_once(bench *b, int64_t **samples, run_result *res)
{
    size_t filled[OP_COUNT] = {0};
    double cpu[OP_COUNT] = {0};
    int ops[OP_COUNT], nops = 0;
    for (int op = 0; op < OP_COUNT; op++)
        if (b->enabled[op])
            ops[nops++] = op;
    /* warm-up: every operation, not recorded */
    for (int k = 0; k < nops; k++)
        for (long i = 0; i < b->warmup; i++)
            one(b, ops[k]);
    cleanup(b);
    long since_cleanup = 0;
    for (long blk = 0;; blk++) {
        int done = 1;
        for (int k = 0; k < nops; k++)
            done &= filled[ops[k]] >= (size_t)b->n;
        if (done)
            break;
        int op = ops[blk % nops];
        long todo = b->n - (long)filled[op];
        if (todo <= 0)
            continue;
        if (todo > b->block)
            todo = b->block;
        double c0 = thread_cpu_us();
        for (long i = 0; i < todo; i++)
            samples[op][filled[op]++] = one(b, op);
        cpu[op] += thread_cpu_us() - c0;
        since_cleanup += todo;
        if (since_cleanup >= b->flush_every && blk % nops == (long)nops - 1) {
            cleanup(b);
            since_cleanup = 0;
        }
    }
    cleanup(b);
    for (int k = 0; k < nops; k++) {
        int op = ops[k];
        bench_sort(samples[op], (size_t)b->n);
        double sum = 0;
        for (long i = 0; i < b->n; i++)
            sum += (double)samples[op][i];
        res->fig[FIG_P50][op] = (double)bench_pct(samples[op], (size_t)b->n, 50) / 1000.0;
        res->fig[FIG_P99][op] = (double)bench_pct(samples[op], (size_t)b->n, 99) / 1000.0;
        res->fig[FIG_P999][op] = (double)bench_pct(samples[op], (size_t)b->n, 99.9) / 1000.0;
        res->fig[FIG_MEAN][op] = sum / (double)b->n / 1000.0;
        res->fig[FIG_CPU][op] = cpu[op] / (double)b->n;
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_enqueue [--redis URL] [--queue Q] [-n N] [--runs R] [--block B]\n"
            "                     [--size BYTES] [--warmup W] [--flush] [--flush-every N]\n"
            "                     [--ops lpush,script,multi,send,validate]\n"
            "Latency of mailroom_send() vs a bare LPUSH of the same bytes (see the source).\n");
    exit(2);
}

int main(int argc, char **argv)
{
    bench b;
    memset(&b, 0, sizeof b);
    b.url = "redis://127.0.0.1:6379/0";
    b.queue = "bench";
    b.n = 100000;
    b.runs = 3;
    b.block = 100;
    b.size = 1024;
    b.warmup = 1000;
    b.flush_every = 20000;
    for (int op = 0; op < OP_COUNT; op++)
        b.enabled[op] = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--flush") == 0) {
            b.flush = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || !v)
            usage();
        i++;
        if (strcmp(a, "--redis") == 0)
            b.url = v;
        else if (strcmp(a, "--queue") == 0)
            b.queue = v;
        else if (strcmp(a, "-n") == 0)
            b.n = bench_parse_long(a, v, 1, 100000000);
        else if (strcmp(a, "--runs") == 0)
            b.runs = bench_parse_long(a, v, 1, 100);
        else if (strcmp(a, "--block") == 0)
            b.block = bench_parse_long(a, v, 1, 1000000);
        else if (strcmp(a, "--size") == 0)
            b.size = bench_parse_long(a, v, 300, 200000);
        else if (strcmp(a, "--warmup") == 0)
            b.warmup = bench_parse_long(a, v, 0, 1000000);
        else if (strcmp(a, "--flush-every") == 0)
            b.flush_every = bench_parse_long(a, v, 1, 100000000);
        else if (strcmp(a, "--ops") == 0) {
            for (int op = 0; op < OP_COUNT; op++)
                b.enabled[op] = strstr(v, op_names[op]) != NULL;
        } else
            usage();
    }
    if (!b.enabled[OP_LPUSH] || !b.enabled[OP_SEND])
        bench_die("--ops must include lpush and send");

    mailroom_options opts;
    mailroom_options_init(&opts);
    opts.redis_url = b.url;
    opts.queue = b.queue;
    opts.kid = "bench";
    opts.key = BENCH_SECRET;
    opts.key_len = strlen(BENCH_SECRET);
    opts.status_ttl_s = 600;
    opts.command_timeout_ms = 10000;
    if (mailroom_open(&b.m, &opts) != MAILROOM_OK)
        bench_die("mailroom_open: %s", mailroom_errmsg(b.m));
    b.c_lpush = bench_connect(b.url);
    b.c_script = bench_connect(b.url);
    b.c_multi = bench_connect(b.url);
    b.c_aux = bench_connect(b.url);
    bench_keys(&b.keys, b.queue);
    snprintf(b.bare, sizeof b.bare, "bench:{%s}:bare-lpush", b.queue);
    bench_email_calibrate(&b.email, b.m, b.c_aux, &b.keys, (size_t)b.size, &b.raw, &b.raw_len);
    char version[64];
    bench_redis_version(b.c_aux, version, sizeof version);

    int64_t *samples[OP_COUNT];
    for (int op = 0; op < OP_COUNT; op++) {
        samples[op] = calloc((size_t)b.n, sizeof(int64_t));
        if (!samples[op])
            bench_die("out of memory for %ld samples", b.n);
    }
    run_result *runs = calloc((size_t)b.runs, sizeof *runs);
    if (!runs)
        bench_die("out of memory");
    for (long r = 0; r < b.runs; r++) {
        run_once(&b, samples, &runs[r]);
        fprintf(stderr, "bench_enqueue: run %ld/%ld: send p50 %.1f us, lpush p50 %.1f us\n",
                r + 1, b.runs, runs[r].fig[FIG_P50][OP_SEND], runs[r].fig[FIG_P50][OP_LPUSH]);
    }

    /* medians over runs, and the medians of the per-run ratios send/lpush */
    double med[FIG_COUNT][OP_COUNT], ratio[FIG_P999 + 1];
    double *tmp = calloc((size_t)b.runs, sizeof(double));
    if (!tmp)
        bench_die("out of memory");
    for (int f = 0; f < FIG_COUNT; f++) {
        for (int op = 0; op < OP_COUNT; op++) {
            for (long r = 0; r < b.runs; r++)
                tmp[r] = runs[r].fig[f][op];
            med[f][op] = bench_median(tmp, (size_t)b.runs);
        }
    }
    for (int f = FIG_P50; f <= FIG_P999; f++) {
        for (long r = 0; r < b.runs; r++)
            tmp[r] = runs[r].fig[f][OP_SEND] / runs[r].fig[f][OP_LPUSH];
        ratio[f] = bench_median(tmp, (size_t)b.runs);
    }

    printf("enqueue latency: %ld calls per operation per run, median of %ld runs; job %zu B;\n"
           "  one connection per operation to Redis %s at %s; blocks of %ld calls alternate\n",
           b.n, b.runs, b.raw_len, version, b.url, b.block);
    printf("  %-32s %9s %9s %9s %9s %12s\n", "operation", "p50 us", "p99 us", "p99.9 us",
           "mean us", "client CPU us");
    for (int op = 0; op < OP_COUNT; op++)
        if (b.enabled[op])
            printf("  %-32s %9.1f %9.1f %9.1f %9.1f %12.1f\n", op_titles[op], med[FIG_P50][op],
                   med[FIG_P99][op], med[FIG_P999][op], med[FIG_MEAN][op], med[FIG_CPU][op]);
    printf("  mailroom_send / LPUSH: p50 %.2fx (target <= 1.3x), p99 %.2fx (target <= 1.5x), "
           "p99.9 %.2fx\n",
           ratio[FIG_P50], ratio[FIG_P99], ratio[FIG_P999]);

    bench_json_begin("enqueue_latency");
    bench_json_int("n", b.n);
    bench_json_int("runs", b.runs);
    bench_json_int("block", b.block);
    bench_json_int("job_bytes", (long long)b.raw_len);
    bench_json_str("redis_version", version);
    bench_json_int("connections_per_op", 1);
    char key[64];
    for (int op = 0; op < OP_COUNT; op++) {
        if (!b.enabled[op])
            continue;
        for (int f = 0; f < FIG_COUNT; f++) {
            snprintf(key, sizeof key, "%s_%s_us", op_names[op], fig_names[f]);
            bench_json_num(key, med[f][op]);
        }
    }
    for (int f = FIG_P50; f <= FIG_P999; f++) {
        snprintf(key, sizeof key, "ratio_%s", fig_names[f]);
        bench_json_num(key, ratio[f]);
    }
    bench_json_key("runs_detail");
    printf("[");
    for (long r = 0; r < b.runs; r++) {
        const run_result *x = &runs[r];
        printf("%s{\"send_p50_us\":%.6g,\"send_p99_us\":%.6g,\"send_p999_us\":%.6g,"
               "\"lpush_p50_us\":%.6g,\"lpush_p99_us\":%.6g,\"lpush_p999_us\":%.6g}",
               r ? "," : "", x->fig[FIG_P50][OP_SEND], x->fig[FIG_P99][OP_SEND],
               x->fig[FIG_P999][OP_SEND], x->fig[FIG_P50][OP_LPUSH], x->fig[FIG_P99][OP_LPUSH],
               x->fig[FIG_P999][OP_LPUSH]);
    }
    printf("]");
    bench_json_end();

    for (int op = 0; op < OP_COUNT; op++)
        free(samples[op]);
    free(runs);
    free(tmp);
    free(b.raw);
    bench_email_free(&b.email);
    redisFree(b.c_lpush);
    redisFree(b.c_script);
    redisFree(b.c_multi);
    redisFree(b.c_aux);
    mailroom_close(b.m);
    return 0;
}
