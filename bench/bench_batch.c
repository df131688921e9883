/*
 * bench_batch: enqueue throughput of mailroom_send_batch() against its physical limit,
 * redis-benchmark's pipelined LPUSH of a value of the same size on one connection to the
 * same Redis; and the fast queue filler the end-to-end benchmark uses.
 *
 *   bench_batch throughput [--redis URL] [--queue Q] [-n N] [--runs R] [--size BYTES]
 *                          [--batches 64,1000] [--pipeline 64] [--rb-clients 1]
 *                          [--redis-benchmark PATH] [--flush]
 *     Per run: `redis-benchmark -t lpush -P <pipeline> -c <rb-clients> -d <job bytes>
 *     -n N --csv` (the limit, requests/s); N pipelined EVALSHA of the ENQUEUE script with
 *     the raw bytes of a signed job (what Redis alone costs); N jobs with
 *     mailroom_send_batch in batches of each size; and, as an alternative design, the same
 *     writes as MULTI/HSET/EXPIRE/LPUSH/EXEC pipelined. For each: jobs/s, the client CPU per
 *     job and the Redis server's CPU per job (INFO cpu). Figures are medians over
 *     runs; ratios are medians of the per-run ratios. Prints a table and one JSON line.
 *
 *   bench_batch fill [--redis URL] [--queue Q] -n N [--size BYTES] [--batch 1000]
 *     Enqueues N jobs as fast as it can; prints one JSON line (jobs/s).
 *
 * --flush: FLUSHDB between measurements (only on a private Redis!); without it the
 * benchmark deletes its queue's pending list and redis-benchmark's list.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "bench_common.h"
#include "script.h"

#define MAX_BATCHES 8

typedef struct opts {
    const char *mode, *url, *queue, *rb_path;
    long n, runs, size, pipeline, rb_clients, batch;
    long batches[MAX_BATCHES];
    int n_batches, flush;
    keys_queue keys; /* of queue */
} opts;

static double self_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec;
}

typedef struct sender {
    mailroom *m;
    mailroom_email *emails;
    char (*ids)[MAILROOM_ID_MAX];
    int *results;
} sender;

/* Enqueues n jobs in batches of `batch`; returns the seconds it took. */
static double send_n(sender *s, long n, long batch)
{
    int64_t t0 = bench_now_ns();
    for (long done = 0; done < n;) {
        long k = n - done < batch ? n - done : batch;
        int rc = mailroom_send_batch(s->m, s->emails, (size_t)k, s->ids, s->results);
        if (rc != MAILROOM_OK)
            bench_die("mailroom_send_batch: %s", mailroom_errmsg(s->m));
        done += k;
    }
    return (double)(bench_now_ns() - t0) / 1e9;
}

static void cleanup(redisContext *c, const opts *o)
{
    if (o->flush) {
        const char *argv[] = {"FLUSHDB"};
        bench_cmd_free(c, 1, argv);
    } else {
        const char *argv[] = {"DEL", o->keys.pending, "mylist"};
        bench_cmd_free(c, 3, argv);
    }
}

/* Runs redis-benchmark and returns its requests per second for LPUSH. */
static double redis_benchmark(const opts *o, const rconn_url *u, long size)
{
    char port[16], n[32], d[32], p[32], c[32], db[16];
    snprintf(port, sizeof port, "%d", u->port);
    snprintf(n, sizeof n, "%ld", o->n);
    snprintf(d, sizeof d, "%ld", size);
    snprintf(p, sizeof p, "%ld", o->pipeline);
    snprintf(c, sizeof c, "%ld", o->rb_clients);
    snprintf(db, sizeof db, "%d", u->db);
    const char *argv[] = {o->rb_path, "-h", u->host, "-p", port, "--dbnum", db, "-t", "lpush",
                          "-P", p, "-c", c, "-d", d, "-n", n, "--csv", NULL};
    int fd[2];
    if (pipe(fd) != 0)
        bench_die("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    char out[8192];
    size_t len = 0;
    ssize_t got;
    while ((got = read(fd[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)got;
    close(fd[0]);
    out[len] = '\0';
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bench_die("redis-benchmark failed (status %d): %s", status, out);
    /* "LPUSH","123456.79",... */
    const char *line = strstr(out, "\"LPUSH\",\"");
    if (!line)
        bench_die("unexpected redis-benchmark output: %s", out);
    return strtod(line + strlen("\"LPUSH\",\""), NULL);
}

static void parse_batches(opts *o, const char *v)
{
    o->n_batches = 0;
    char *copy = strdup(v), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && o->n_batches < MAX_BATCHES;
         t = strtok_r(NULL, ",", &save))
        o->batches[o->n_batches++] = bench_parse_long("--batches", t, 1, 100000);
    free(copy);
    if (o->n_batches == 0)
        bench_die("--batches needs at least one size");
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_batch throughput [--redis URL] [--queue Q] [-n N] [--runs R]\n"
            "                              [--size BYTES] [--batches 64,1000] [--pipeline 64]\n"
            "                              [--rb-clients 1] [--redis-benchmark PATH] [--flush]\n"
            "       bench_batch fill [--redis URL] [--queue Q] -n N [--size BYTES] [--batch B]\n");
    exit(2);
}

static mailroom *open_handle(const opts *o)
{
    mailroom_options mo;
    mailroom_options_init(&mo);
    mo.redis_url = o->url;
    mo.queue = o->queue;
    mo.kid = "bench";
    mo.key = BENCH_SECRET;
    mo.key_len = strlen(BENCH_SECRET);
    mo.command_timeout_ms = 30000;
    mailroom *m = NULL;
    if (mailroom_open(&m, &mo) != MAILROOM_OK)
        bench_die("mailroom_open: %s", mailroom_errmsg(m));
    return m;
}

static sender make_sender(mailroom *m, const bench_email *email, long cap)
{
    sender s = {m, calloc((size_t)cap, sizeof(mailroom_email)),
                calloc((size_t)cap, MAILROOM_ID_MAX), calloc((size_t)cap, sizeof(int))};
    if (!s.emails || !s.ids || !s.results)
        bench_die("out of memory");
    for (long i = 0; i < cap; i++)
        s.emails[i] = email->e;
    return s;
}

static void free_sender(sender *s)
{
    free(s->emails);
    free(s->ids);
    free(s->results);
}

static int fill(const opts *o)
{
    mailroom *m = open_handle(o);
    redisContext *c = bench_connect(o->url);
    bench_email email = {0};
    char *raw;
    size_t raw_len;
    bench_email_calibrate(&email, m, c, &o->keys, (size_t)o->size, &raw, &raw_len);
    sender s = make_sender(m, &email, o->batch);
    double secs = send_n(&s, o->n, o->batch);
    bench_json_begin("fill");
    bench_json_int("n", o->n);
    bench_json_int("job_bytes", (long long)raw_len);
    bench_json_int("batch", o->batch);
    bench_json_num("seconds", secs);
    bench_json_num("jobs_per_s", (double)o->n / secs);
    bench_json_end();
    free_sender(&s);
    free(raw);
    bench_email_free(&email);
    redisFree(c);
    mailroom_close(m);
    return 0;
}

/* Pipelined EVALSHA of the ENQUEUE script with the raw bytes of a signed job, in
 * batches: what Redis alone costs per job, without the library's client work. */
static double script_n(redisContext *c, const opts *o, const char *raw, size_t raw_len,
                       long n, long batch, long *seq)
{
    int64_t t0 = bench_now_ns();
    for (long done = 0; done < n;) {
        long k = n - done < batch ? n - done : batch;
        for (long i = 0; i < k; i++) {
            char job_id[64], key[KEYS_NAME_MAX];
            snprintf(job_id, sizeof job_id, "bench-script-%ld", (*seq)++);
            keys_job(&o->keys, job_id, key);
            const char *argv[] = {"EVALSHA", script_sha(SCRIPT_ENQUEUE), "3", key,
                                  o->keys.pending, o->keys.scheduled, raw,
                                  "2026-11-25T10:00:00.000Z", "600", ""};
            size_t len[10];
            for (int a = 0; a < 10; a++)
                len[a] = strlen(argv[a]);
            len[6] = raw_len;
            if (redisAppendCommandArgv(c, 10, argv, len) != REDIS_OK)
                bench_die("out of memory");
        }
        for (long i = 0; i < k; i++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK || !r)
                bench_die("EVALSHA ENQUEUE: %s", c->errstr);
            if (r->type != REDIS_REPLY_INTEGER)
                bench_die("EVALSHA ENQUEUE: %s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
            freeReplyObject(r);
        }
        done += k;
    }
    return (double)(bench_now_ns() - t0) / 1e9;
}

/* Pipelined MULTI, HSET record, EXPIRE, LPUSH raw, EXEC per job, in batches: the same
 * writes as ENQUEUE without a script (and without its duplicate check). */
static double multi_n(redisContext *c, const opts *o, const char *raw, size_t raw_len, long n,
                      long batch, long *seq)
{
    const char *now = "2026-11-25T10:00:00.000Z";
    int64_t t0 = bench_now_ns();
    for (long done = 0; done < n;) {
        long k = n - done < batch ? n - done : batch;
        for (long i = 0; i < k; i++) {
            char job_id[64], key[KEYS_NAME_MAX];
            snprintf(job_id, sizeof job_id, "bench-multi-%ld", (*seq)++);
            keys_job(&o->keys, job_id, key);
            const char *multi[] = {"MULTI"};
            const char *hset[] = {"HSET", key, "state", "queued", "attempts", "0",
                                  "created_at", now, "updated_at", now};
            const char *expire[] = {"EXPIRE", key, "600"};
            const char *lpush[] = {"LPUSH", o->keys.pending, raw};
            size_t lpush_len[] = {5, strlen(o->keys.pending), raw_len};
            const char *exec[] = {"EXEC"};
            if (redisAppendCommandArgv(c, 1, multi, NULL) != REDIS_OK ||
                redisAppendCommandArgv(c, 10, hset, NULL) != REDIS_OK ||
                redisAppendCommandArgv(c, 3, expire, NULL) != REDIS_OK ||
                redisAppendCommandArgv(c, 3, lpush, lpush_len) != REDIS_OK ||
                redisAppendCommandArgv(c, 1, exec, NULL) != REDIS_OK)
                bench_die("out of memory");
        }
        for (long i = 0; i < 5 * k; i++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK || !r)
                bench_die("MULTI/EXEC: %s", c->errstr);
            if (r->type == REDIS_REPLY_ERROR)
                bench_die("MULTI/EXEC: %s", r->str);
            freeReplyObject(r);
        }
        done += k;
    }
    return (double)(bench_now_ns() - t0) / 1e9;
}

enum { ROW_LIMIT, ROW_SCRIPT, ROW_MULTI, ROW_SEND }; /* ROW_SEND + k: send_batch of batches[k] */

/* The median over runs of column `row` of a runs x n_rows matrix (tmp: room for runs). */
static double median_col(const double *cells, long runs, int n_rows, int row, double *tmp)
{
    for (long r = 0; r < runs; r++)
        tmp[r] = cells[r * n_rows + row];
    return bench_median(tmp, (size_t)runs);
}

static int throughput(const opts *o)
{
    mailroom *m = open_handle(o);
    redisContext *c = bench_connect(o->url), *c_script = bench_connect(o->url);
    rconn_url u;
    if (rconn_url_parse(o->url, &u, NULL) != 0 || u.n_sentinels)
        bench_die("--redis: a plain redis:// URL is needed for redis-benchmark");
    bench_email email = {0};
    char *raw, version[64];
    size_t raw_len;
    bench_email_calibrate(&email, m, c, &o->keys, (size_t)o->size, &raw, &raw_len);
    bench_redis_version(c, version, sizeof version);
    long cap = 1, seq = 0;
    for (int k = 0; k < o->n_batches; k++)
        cap = o->batches[k] > cap ? o->batches[k] : cap;
    sender s = make_sender(m, &email, cap);
    send_n(&s, cap < 1000 ? 1000 : cap, cap); /* warm-up */
    script_n(c_script, o, raw, raw_len, 1000, o->pipeline, &seq);
    multi_n(c_script, o, raw, raw_len, 1000, o->pipeline, &seq);
    cleanup(c, o);

    int n_rows = ROW_SEND + o->n_batches;
    size_t cells = (size_t)(o->runs * n_rows);
    /* runs x n_rows matrices; ratio: rate over the same run's limit */
    double *rate = calloc(cells, sizeof(double)), *cpu = calloc(cells, sizeof(double));
    double *server = calloc(cells, sizeof(double)), *ratio = calloc(cells, sizeof(double));
    double *tmp = calloc((size_t)o->runs, sizeof(double));
    if (!rate || !cpu || !server || !ratio || !tmp)
        bench_die("out of memory");
    for (long r = 0; r < o->runs; r++) {
        for (int row = 0; row < n_rows; row++) {
            long i = r * n_rows + row;
            double c0 = self_cpu_us(), r0 = bench_redis_cpu_s(c);
            if (row == ROW_LIMIT)
                rate[i] = redis_benchmark(o, &u, (long)raw_len);
            else if (row == ROW_SCRIPT)
                rate[i] = (double)o->n / script_n(c_script, o, raw, raw_len, o->n, o->pipeline,
                                                  &seq);
            else if (row == ROW_MULTI)
                rate[i] = (double)o->n / multi_n(c_script, o, raw, raw_len, o->n, o->pipeline,
                                                 &seq);
            else
                rate[i] = (double)o->n / send_n(&s, o->n, o->batches[row - ROW_SEND]);
            cpu[i] = row == ROW_LIMIT ? 0 : (self_cpu_us() - c0) / (double)o->n;
            server[i] = (bench_redis_cpu_s(c) - r0) * 1e6 / (double)o->n;
            ratio[i] = rate[i] / rate[r * n_rows + ROW_LIMIT];
            cleanup(c, o);
        }
        fprintf(stderr,
                "bench_batch: run %ld/%ld: redis-benchmark %.0f/s; EVALSHA %.0f/s; "
                "send_batch(%ld) %.0f/s\n",
                r + 1, o->runs, rate[r * n_rows + ROW_LIMIT], rate[r * n_rows + ROW_SCRIPT],
                o->batches[0], rate[r * n_rows + ROW_SEND]);
    }

    double rate_med[ROW_SEND + MAX_BATCHES] = {0}, cpu_med[ROW_SEND + MAX_BATCHES] = {0},
        server_med[ROW_SEND + MAX_BATCHES] = {0}, ratio_med[ROW_SEND + MAX_BATCHES] = {0};
    for (int row = 0; row < n_rows; row++) {
        rate_med[row] = median_col(rate, o->runs, n_rows, row, tmp);
        cpu_med[row] = median_col(cpu, o->runs, n_rows, row, tmp);
        server_med[row] = median_col(server, o->runs, n_rows, row, tmp);
        ratio_med[row] = median_col(ratio, o->runs, n_rows, row, tmp);
    }

    printf("enqueue throughput: %ld jobs per measurement, median of %ld runs; job %zu B;\n"
           "  one connection, Redis %s at %s; limit: redis-benchmark -t lpush -P %ld -c %ld "
           "-d %zu -n %ld\n",
           o->n, o->runs, raw_len, version, o->url, o->pipeline, o->rb_clients, raw_len, o->n);
    printf("  %-40s %10s %15s %15s %8s\n", "what", "jobs/s", "client CPU us/j",
           "Redis CPU us/j", "ratio");
    for (int row = 0; row < n_rows; row++) {
        char what[80], ccpu[32];
        if (row == ROW_LIMIT)
            snprintf(what, sizeof what, "redis-benchmark LPUSH -P %ld (limit)", o->pipeline);
        else if (row == ROW_SCRIPT)
            snprintf(what, sizeof what, "EVALSHA ENQUEUE raw, pipelined %ld", o->pipeline);
        else if (row == ROW_MULTI)
            snprintf(what, sizeof what, "MULTI..EXEC raw, pipelined %ld", o->pipeline);
        else
            snprintf(what, sizeof what, "mailroom_send_batch, batches of %ld",
                     o->batches[row - ROW_SEND]);
        snprintf(ccpu, sizeof ccpu, row == ROW_LIMIT ? "-" : "%.1f", cpu_med[row]);
        printf("  %-40s %10.0f %15s %15.2f %7.2fx%s\n", what, rate_med[row], ccpu,
               server_med[row], ratio_med[row],
               row >= ROW_SEND ? " (target >= 0.5x)" : "");
    }

    bench_json_begin("enqueue_throughput");
    bench_json_int("n", o->n);
    bench_json_int("runs", o->runs);
    bench_json_int("job_bytes", (long long)raw_len);
    bench_json_str("redis_version", version);
    bench_json_int("pipeline", o->pipeline);
    bench_json_int("rb_clients", o->rb_clients);
    bench_json_num("limit_per_s", rate_med[ROW_LIMIT]);
    bench_json_num("limit_redis_us", server_med[ROW_LIMIT]);
    bench_json_num("script_per_s", rate_med[ROW_SCRIPT]);
    bench_json_num("script_redis_us", server_med[ROW_SCRIPT]);
    bench_json_num("script_client_cpu_us", cpu_med[ROW_SCRIPT]);
    bench_json_num("script_ratio", ratio_med[ROW_SCRIPT]);
    bench_json_num("multi_per_s", rate_med[ROW_MULTI]);
    bench_json_num("multi_redis_us", server_med[ROW_MULTI]);
    bench_json_num("multi_client_cpu_us", cpu_med[ROW_MULTI]);
    bench_json_num("multi_ratio", ratio_med[ROW_MULTI]);
    bench_json_key("batches");
    printf("[");
    for (int k = 0; k < o->n_batches; k++) {
        int row = ROW_SEND + k;
        printf("%s{\"batch\":%ld,\"jobs_per_s\":%.6g,\"client_cpu_us\":%.6g,"
               "\"redis_us\":%.6g,\"ratio\":%.6g}",
               k ? "," : "", o->batches[k], rate_med[row], cpu_med[row], server_med[row],
               ratio_med[row]);
    }
    printf("]");
    bench_json_end();
    free(rate);
    free(cpu);
    free(server);
    free(ratio);
    free(tmp);
    free_sender(&s);
    free(raw);
    bench_email_free(&email);
    rconn_url_clear(&u);
    redisFree(c);
    redisFree(c_script);
    mailroom_close(m);
    return 0;
}

int main(int argc, char **argv)
{
    opts o;
    memset(&o, 0, sizeof o);
    o.url = "redis://127.0.0.1:6379/0";
    o.queue = "bench";
    o.rb_path = "redis-benchmark";
    o.n = 100000;
    o.runs = 3;
    o.size = 1024;
    o.pipeline = 64;
    o.rb_clients = 1;
    o.batch = 1000;
    parse_batches(&o, "64,1000");
    if (argc < 2)
        usage();
    o.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--flush") == 0) {
            o.flush = 1;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--redis") == 0)
            o.url = v;
        else if (strcmp(a, "--queue") == 0)
            o.queue = v;
        else if (strcmp(a, "-n") == 0)
            o.n = bench_parse_long(a, v, 1, 100000000);
        else if (strcmp(a, "--runs") == 0)
            o.runs = bench_parse_long(a, v, 1, 100);
        else if (strcmp(a, "--size") == 0)
            o.size = bench_parse_long(a, v, 300, 200000);
        else if (strcmp(a, "--batches") == 0)
            parse_batches(&o, v);
        else if (strcmp(a, "--batch") == 0)
            o.batch = bench_parse_long(a, v, 1, 100000);
        else if (strcmp(a, "--pipeline") == 0)
            o.pipeline = bench_parse_long(a, v, 1, 100000);
        else if (strcmp(a, "--rb-clients") == 0)
            o.rb_clients = bench_parse_long(a, v, 1, 1000);
        else if (strcmp(a, "--redis-benchmark") == 0)
            o.rb_path = v;
        else
            usage();
    }
    bench_keys(&o.keys, o.queue);
    if (strcmp(o.mode, "fill") == 0)
        return fill(&o);
    if (strcmp(o.mode, "throughput") == 0)
        return throughput(&o);
    usage();
}
