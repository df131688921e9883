/*
 * mailroom-consumer: takes jobs from a mailroom queue, verifies, sends, reports.
 *
 * main() reads flags and environment into one consumer_config, starts --concurrency
 * worker threads, then becomes the housekeeper: once a second it heartbeats (and
 * recovers consumers that went silent) and moves due scheduled jobs back to pending,
 * between waits for SIGTERM/SIGINT. On the first signal it sets `stopping`: workers
 * take no more jobs and finish the one in hand. When --shutdown-timeout passes or a
 * second signal comes, it sets `hurry`: sends in progress are abandoned. Then anything
 * still in this consumer's processing list goes back to pending, the consumer leaves
 * the heartbeat set, and it exits 0.
 * Secrets (signing keys, Redis password) come from the environment or files only.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "secret.h"
#include "mailroom_version.h"
#include "sig.h"
#include "worker.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mailroom-consumer [options]\n"
            "Takes signed email jobs from Redis, sends them over SMTP, reports outcomes.\n\n"
            "  --redis URL              redis://[user@]host:port/db, or\n"
            "                           redis-sentinel://host:port[,host:port...]/master[/db]\n"
            "                           (MAILROOM_REDIS_URL, which may carry user:pass@)\n"
            "  --queue NAME             queue name (MAILROOM_QUEUE, default \"default\")\n"
            "  --smtp URL               smtp://host:port or smtps://host:port\n"
            "                           (MAILROOM_SMTP_URL, default smtp://127.0.0.1:25)\n"
            "  --smtp-tls required|none STARTTLS policy for smtp:// (MAILROOM_SMTP_TLS; default\n"
            "                           required, none for a loopback host); smtps:// is\n"
            "                           implicit TLS\n"
            "  --smtp-ca-file PATH      private CA bundle (MAILROOM_SMTP_CA_FILE)\n"
            "  --smtp-insecure          do not verify the server certificate (logs a warning)\n"
            "  --smtp-user USER         AUTH user (MAILROOM_SMTP_USER); the password is read\n"
            "                           from MAILROOM_SMTP_PASSWORD_FILE, never argv\n"
            "  --concurrency N          worker threads (MAILROOM_CONCURRENCY, default 8)\n"
            "  --id ID                  consumer id (MAILROOM_CONSUMER_ID, default host-pid-rand)\n"
            "  --accept-alg LIST        accepted algorithms, comma separated\n"
            "                           (default hmac-sha1,hmac-sha256)\n"
            "  --max-attempts N         attempts before a job fails (default 10)\n"
            "  --backoff-base DUR       first retry delay (default 10s)\n"
            "  --backoff-max DUR        longest retry delay (default 1h)\n"
            "  --max-lifetime DUR       give up this long after creation (default 24h)\n"
            "  --dead-after DUR         recover consumers silent this long (default 30s)\n"
            "  --shutdown-timeout DUR   time in-flight sends get after SIGTERM (default 30s)\n"
            "  --status-ttl DUR         lifetime of job status records (default 7d)\n"
            "  --dead-max N             dead-letter list cap, oldest trimmed (default 100000)\n"
            "  --smtp-timeout DUR       whole SMTP transaction (default 60s)\n"
            "  --smtp-connect-timeout DUR  (default 10s)\n"
            "  --max-per-connection N   recycle an SMTP connection after N messages (100)\n"
            "  --smtp-idle DUR          do not reuse an SMTP connection idle longer (30s)\n"
            "  --block-timeout DUR      how long one BLMOVE waits (default 1s)\n"
            "  --log-format text|json   (default text)\n"
            "  --log-level debug|info|warn|error  (default info)\n"
            "  --help, --version\n\n"
            "Signing keys: MAILROOM_KEYS_FILE (lines \"kid secret\") or MAILROOM_SECRET.\n"
            "Redis password: in the URL or MAILROOM_REDIS_PASSWORD_FILE.\n"
            "Durations: a number with ms, s, m, h or d (plain numbers are seconds).\n"
            "SIGTERM/SIGINT: finish the jobs in hand, return the rest, exit 0; a second\n"
            "signal abandons sends in progress (their jobs go back to pending).\n");
}

/* "250ms", "10s", "5m", "1h", "7d", "30" (seconds) -> ms. -1 when malformed. */
static int64_t parse_duration(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    double scale = 1000;
    if (strcmp(end, "ms") == 0)
        scale = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        scale = 1000;
    else if (strcmp(end, "m") == 0)
        scale = 60e3;
    else if (strcmp(end, "h") == 0)
        scale = 3600e3;
    else if (strcmp(end, "d") == 0)
        scale = 86400e3;
    else
        return -1;
    double ms = v * scale;
    if (ms > 9e15)
        return -1;
    return (int64_t)ms;
}

static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_algs(const char *list, unsigned *mask)
{
    char copy[128];
    snprintf(copy, sizeof copy, "%s", list);
    *mask = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        sig_alg alg;
        if (sig_alg_parse(tok, &alg) != 0)
            return -1;
        *mask |= 1u << alg;
    }
    return *mask ? 0 : -1;
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* A flag's value when it was given (NULL when given empty), else the environment's. */
static const char *flag_or_env(const char *flag, const char *name)
{
    if (flag)
        return *flag ? flag : NULL;
    return env_or(name, NULL);
}

/* Default consumer id: host name (letters, digits, '.', '-', '_' only), pid and a
 * random suffix, so that two processes never share a processing list. */
static void default_id(char *out, size_t cap)
{
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == '_'))
            *p = '-';
    unsigned char r[2] = {0, 0};
    RAND_bytes(r, sizeof r);
    snprintf(out, cap, "%s-%ld-%02x%02x", host, (long)getpid(), r[0], r[1]);
}

static int id_valid(const char *id)
{
    return keys_queue_valid(id);
}

typedef struct settings {
    const char *redis, *queue, *smtp, *id, *algs, *log_format, *log_level;
    const char *smtp_tls, *smtp_ca, *smtp_user;
    int smtp_insecure;
} settings;

enum {
    OPT_REDIS = 256, OPT_QUEUE, OPT_SMTP, OPT_CONCURRENCY, OPT_ID, OPT_ACCEPT, OPT_MAX_ATTEMPTS,
    OPT_BACKOFF_BASE, OPT_BACKOFF_MAX, OPT_LIFETIME, OPT_TTL, OPT_DEAD_MAX, OPT_SMTP_TIMEOUT,
    OPT_SMTP_CONNECT, OPT_PER_CONN, OPT_SMTP_IDLE, OPT_BLOCK, OPT_DEAD_AFTER, OPT_SHUTDOWN,
    OPT_LOG_FORMAT, OPT_LOG_LEVEL, OPT_HELP, OPT_VERSION, OPT_SMTP_TLS, OPT_SMTP_CA,
    OPT_SMTP_INSECURE, OPT_SMTP_USER
};

/* Applies one numeric option; returns 0 or -1 (message printed by the caller). */
static int numeric_option(consumer_config *cfg, int opt, const char *arg)
{
    long n;
    int64_t ms;
    switch (opt) {
    case OPT_CONCURRENCY:
        if (parse_long(arg, 1, WORKER_MAX, &n) != 0)
            return -1;
        cfg->concurrency = (int)n;
        return 0;
    case OPT_MAX_ATTEMPTS:
        if (parse_long(arg, 1, 1000, &n) != 0)
            return -1;
        cfg->max_attempts = (int)n;
        return 0;
    case OPT_DEAD_MAX:
        return parse_long(arg, 1, 100000000, &cfg->dead_max);
    case OPT_PER_CONN:
        return parse_long(arg, 1, 1000000, &cfg->smtp.max_per_connection);
    }
    if ((ms = parse_duration(arg)) < 0)
        return -1;
    switch (opt) {
    case OPT_BACKOFF_BASE: cfg->backoff_base_ms = ms > 0 ? ms : 1; break;
    case OPT_BACKOFF_MAX: cfg->backoff_max_ms = ms > 0 ? ms : 1; break;
    case OPT_LIFETIME: cfg->max_lifetime_ms = ms; break;
    case OPT_TTL: cfg->status_ttl_s = (long)(ms / 1000) > 0 ? (long)(ms / 1000) : 1; break;
    case OPT_SMTP_TIMEOUT: cfg->smtp.timeout_ms = (long)ms; break;
    case OPT_SMTP_CONNECT: cfg->smtp.connect_timeout_ms = (long)ms; break;
    case OPT_SMTP_IDLE: cfg->smtp.idle_max_s = (long)(ms / 1000); break;
    case OPT_BLOCK:
        if (ms < 10 || ms > 60000)
            return -1;
        cfg->block_timeout_ms = (int)ms;
        break;
    case OPT_DEAD_AFTER:
        if (ms < 2000)
            return -1; /* below two missed heartbeats every pause would look like death */
        cfg->dead_after_ms = ms;
        break;
    case OPT_SHUTDOWN: cfg->shutdown_timeout_ms = ms; break;
    default: return -1;
    }
    return 0;
}

/* Returns 0 to run, 1 to exit 0 (help/version), 2 for a usage error. */
static int parse_args(int argc, char **argv, consumer_config *cfg, settings *st)
{
    static const struct option longopts[] = {
        {"redis", required_argument, NULL, OPT_REDIS},
        {"queue", required_argument, NULL, OPT_QUEUE},
        {"smtp", required_argument, NULL, OPT_SMTP},
        {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
        {"id", required_argument, NULL, OPT_ID},
        {"accept-alg", required_argument, NULL, OPT_ACCEPT},
        {"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
        {"backoff-base", required_argument, NULL, OPT_BACKOFF_BASE},
        {"backoff-max", required_argument, NULL, OPT_BACKOFF_MAX},
        {"max-lifetime", required_argument, NULL, OPT_LIFETIME},
        {"status-ttl", required_argument, NULL, OPT_TTL},
        {"dead-max", required_argument, NULL, OPT_DEAD_MAX},
        {"smtp-timeout", required_argument, NULL, OPT_SMTP_TIMEOUT},
        {"smtp-connect-timeout", required_argument, NULL, OPT_SMTP_CONNECT},
        {"max-per-connection", required_argument, NULL, OPT_PER_CONN},
        {"smtp-idle", required_argument, NULL, OPT_SMTP_IDLE},
        {"block-timeout", required_argument, NULL, OPT_BLOCK},
        {"dead-after", required_argument, NULL, OPT_DEAD_AFTER},
        {"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN},
        {"smtp-tls", required_argument, NULL, OPT_SMTP_TLS},
        {"smtp-ca-file", required_argument, NULL, OPT_SMTP_CA},
        {"smtp-insecure", no_argument, NULL, OPT_SMTP_INSECURE},
        {"smtp-user", required_argument, NULL, OPT_SMTP_USER},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_REDIS: st->redis = optarg; break;
        case OPT_QUEUE: st->queue = optarg; break;
        case OPT_SMTP: st->smtp = optarg; break;
        case OPT_ID: st->id = optarg; break;
        case OPT_ACCEPT: st->algs = optarg; break;
        case OPT_LOG_FORMAT: st->log_format = optarg; break;
        case OPT_LOG_LEVEL: st->log_level = optarg; break;
        case OPT_SMTP_TLS: st->smtp_tls = optarg; break;
        case OPT_SMTP_CA: st->smtp_ca = optarg; break;
        case OPT_SMTP_INSECURE: st->smtp_insecure = 1; break;
        case OPT_SMTP_USER: st->smtp_user = optarg; break;
        case OPT_HELP: usage(stdout); return 1;
        case OPT_VERSION: printf("mailroom-consumer %s\n", MAILROOM_VERSION_STRING); return 1;
        case '?': usage(stderr); return 2;
        default:
            if (numeric_option(cfg, opt, optarg) != 0) {
                const struct option *o = longopts;
                while (o->name && o->val != opt)
                    o++;
                fprintf(stderr, "mailroom-consumer: bad value '%s' for --%s\n", optarg,
                        o->name ? o->name : "?");
                return 2;
            }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mailroom-consumer: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return 0;
}

static void defaults(consumer_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->concurrency = 8;
    cfg->block_timeout_ms = 1000;
    cfg->redis_timeout_ms = 5000;
    cfg->status_ttl_s = KEYS_STATUS_TTL_DEFAULT_S;
    cfg->dead_max = 100000;
    cfg->max_attempts = 10;
    cfg->backoff_base_ms = 10000;
    cfg->backoff_max_ms = 3600000;
    cfg->max_lifetime_ms = 24LL * 3600000;
    cfg->dead_after_ms = 30000;
    cfg->shutdown_timeout_ms = 30000;
    cfg->smtp.abort = &cfg->hurry;
    cfg->smtp.connect_timeout_ms = 10000;
    cfg->smtp.timeout_ms = 60000;
    cfg->smtp.max_per_connection = 100;
    cfg->smtp.idle_max_s = 30;
}

/*
 * TLS and AUTH for SMTP. TLS is required unless the host is a loopback address (a
 * local relay or test server); turning certificate checks off takes an explicit flag
 * and is logged at every start. The password comes from a file only.
 */
static int configure_smtp(consumer_config *cfg, const settings *st)
{
    if (smtp_url_has_credentials(cfg->smtp.url)) {
        fprintf(stderr, "mailroom-consumer: the SMTP URL must not carry a user or password; "
                        "use MAILROOM_SMTP_USER and MAILROOM_SMTP_PASSWORD_FILE\n");
        return -1;
    }
    const char *tls = flag_or_env(st->smtp_tls, "MAILROOM_SMTP_TLS");
    int implicit = strncmp(cfg->smtp.url, "smtps://", 8) == 0;
    if (tls && strcmp(tls, "required") != 0 && strcmp(tls, "none") != 0) {
        fprintf(stderr, "mailroom-consumer: SMTP TLS must be \"required\" or \"none\"\n");
        return -1;
    }
    cfg->smtp.tls_required = tls ? strcmp(tls, "required") == 0
                                 : !smtp_url_is_loopback(cfg->smtp.url);
    if (implicit && !cfg->smtp.tls_required) {
        fprintf(stderr, "mailroom-consumer: smtps:// is always TLS; drop --smtp-tls none\n");
        return -1;
    }
    cfg->smtp.ca_file = flag_or_env(st->smtp_ca, "MAILROOM_SMTP_CA_FILE");
    cfg->smtp.insecure = st->smtp_insecure;
    cfg->smtp.user = flag_or_env(st->smtp_user, "MAILROOM_SMTP_USER");
    const char *pw_file = env_or("MAILROOM_SMTP_PASSWORD_FILE", NULL);
    if (pw_file) {
        char why[300];
        char *pw = secret_read_file(pw_file, why, sizeof why);
        if (!pw) {
            fprintf(stderr, "mailroom-consumer: %s\n", why);
            return -1;
        }
        cfg->smtp_password = pw;
        cfg->smtp.password = pw;
    }
    if (cfg->smtp.password && !cfg->smtp.user) {
        fprintf(stderr, "mailroom-consumer: an SMTP password needs MAILROOM_SMTP_USER\n");
        return -1;
    }
    return 0;
}

/* Everything that comes from the environment or needs checking after the flags. */
static int configure(consumer_config *cfg, settings *st)
{
    char why[300];
    const char *conc = getenv("MAILROOM_CONCURRENCY");
    if (conc && *conc && cfg->concurrency == 8 && numeric_option(cfg, OPT_CONCURRENCY, conc)) {
        fprintf(stderr, "mailroom-consumer: MAILROOM_CONCURRENCY must be 1..%d\n",
                WORKER_MAX);
        return -1;
    }
    const char *queue = st->queue ? st->queue : env_or("MAILROOM_QUEUE", "default");
    if (keys_init(&cfg->keys, queue) != 0) {
        fprintf(stderr, "mailroom-consumer: queue name must match [A-Za-z0-9._:-]{1,64}\n");
        return -1;
    }
    const char *url = st->redis ? st->redis : env_or("MAILROOM_REDIS_URL", RCONN_DEFAULT_URL);
    if (st->redis && rconn_url_has_password(st->redis)) {
        fprintf(stderr, "mailroom-consumer: --redis must not carry a password (it would show "
                        "in ps); use MAILROOM_REDIS_URL or MAILROOM_REDIS_PASSWORD_FILE\n");
        return -1;
    }
    if (rconn_url_parse(url, &cfg->redis, why, sizeof why) != 0 ||
        rconn_password_from_env(&cfg->redis, why, sizeof why) != 0) {
        fprintf(stderr, "mailroom-consumer: %s\n", why);
        return -1;
    }
    cfg->smtp.url = st->smtp ? st->smtp : env_or("MAILROOM_SMTP_URL", "smtp://127.0.0.1:25");
    if (strncmp(cfg->smtp.url, "smtp://", 7) != 0 && strncmp(cfg->smtp.url, "smtps://", 8) != 0) {
        fprintf(stderr, "mailroom-consumer: SMTP URL must start with smtp:// or smtps://\n");
        return -1;
    }
    if (configure_smtp(cfg, st) != 0)
        return -1;
    if (parse_algs(st->algs ? st->algs : "hmac-sha1,hmac-sha256", &cfg->accept_mask) != 0) {
        fprintf(stderr, "mailroom-consumer: --accept-alg takes hmac-sha1 and/or hmac-sha256\n");
        return -1;
    }
    const char *id = st->id ? st->id : getenv("MAILROOM_CONSUMER_ID");
    if (id && *id)
        snprintf(cfg->id, sizeof cfg->id, "%s", id);
    else
        default_id(cfg->id, sizeof cfg->id);
    if (!id_valid(cfg->id)) {
        fprintf(stderr, "mailroom-consumer: consumer id must match [A-Za-z0-9._:-]{1,64}\n");
        return -1;
    }
    keys_processing(&cfg->keys, cfg->id, cfg->processing);
    if (keyring_load_env(&cfg->ring, why, sizeof why) != 0) {
        fprintf(stderr, "mailroom-consumer: %s\n", why);
        return -1;
    }
    if (log_setup(st->log_level ? st->log_level : "info",
                  st->log_format ? st->log_format : "text", cfg->id) != 0) {
        fprintf(stderr, "mailroom-consumer: bad --log-format or --log-level\n");
        return -1;
    }
    return 0;
}

/* Waits up to ms for SIGTERM/SIGINT; returns the signal or 0. */
static int wait_signal(const sigset_t *set, long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    int sig = sigtimedwait(set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

/* The once-a-second duties; a Redis outage is logged once, not every second. */
static void housekeeping_tick(housekeeper *h, int *redis_down)
{
    housekeeping_follow_master(h);
    long beat = housekeeping_heartbeat(h);
    long promoted = beat >= 0 ? housekeeping_promote(h) : -1;
    if (promoted >= 0)
        housekeeping_orphans(h);
    if ((beat < 0 || promoted < 0) && !*redis_down)
        log_msg(LOG_WARN, NULL, "housekeeping: Redis unavailable or refusing; retrying every second");
    else if (beat >= 0 && promoted >= 0 && *redis_down)
        log_msg(LOG_INFO, NULL, "housekeeping: Redis is back");
    *redis_down = beat < 0 || promoted < 0;
}

/* Every minute: what this process did in that minute and since it started. */
typedef struct summary {
    int64_t next_ms;
    long sent, retried, failed, rejected; /* totals at the previous line */
} summary;

static void summary_tick(consumer_config *cfg, summary *sm)
{
    int64_t now = clock_now_ms();
    if (now < sm->next_ms)
        return;
    if (sm->next_ms == 0) {
        sm->next_ms = now + 60000;
        return;
    }
    long sent = atomic_load(&cfg->n_sent), retried = atomic_load(&cfg->n_retried);
    long failed = atomic_load(&cfg->n_failed), rejected = atomic_load(&cfg->n_rejected);
    log_msg(LOG_INFO, NULL,
            "summary: last minute sent %ld (%.1f/s), retried %ld, failed %ld, rejected %ld; "
            "since start sent %ld, retried %ld, failed %ld, rejected %ld",
            sent - sm->sent, (double)(sent - sm->sent) / 60.0, retried - sm->retried,
            failed - sm->failed, rejected - sm->rejected, sent, retried, failed, rejected);
    *sm = (summary){now + 60000, sent, retried, failed, rejected};
}

/*
 * After the first signal: waits for the workers to finish their jobs, heart-beating
 * meanwhile so no one recovers jobs still in hand; hurries them at the timeout or on
 * a second signal.
 */
static void drain(consumer_config *cfg, housekeeper *h, const sigset_t *set, int *redis_down)
{
    int64_t deadline = clock_now_ms() + cfg->shutdown_timeout_ms, next_tick = 0;
    while (atomic_load(&cfg->running) > 0) {
        int sig = wait_signal(set, 100);
        if ((sig || clock_now_ms() >= deadline) && !atomic_load(&cfg->hurry)) {
            log_msg(LOG_WARN, NULL, "%s: abandoning sends in progress",
                    sig ? "second signal" : "shutdown timeout");
            atomic_store(&cfg->hurry, 1);
        }
        if (clock_now_ms() >= next_tick) {
            housekeeping_tick(h, redis_down);
            next_tick = clock_now_ms() + 1000;
        }
    }
}

static int run(consumer_config *cfg)
{
    int rc = 1, started = 0, redis_down = 0;
    housekeeper h = {.cfg = cfg};
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    worker *workers = calloc((size_t)cfg->concurrency, sizeof *workers);
    if (!workers) {
        log_msg(LOG_ERROR, NULL, "out of memory");
        goto out;
    }
    h.workers = workers;
    long back = housekeeping_reclaim(&h);
    if (back > 0)
        log_msg(LOG_INFO, NULL, "returned %ld jobs left by an earlier run to pending", back);
    housekeeping_tick(&h, &redis_down);
    for (; started < cfg->concurrency; started++) {
        h.n_workers = started + 1;
        atomic_fetch_add(&cfg->running, 1);
        if (worker_init(&workers[started], started, cfg) != 0 ||
            pthread_create(&workers[started].thread, NULL, worker_main, &workers[started]) != 0) {
            atomic_fetch_sub(&cfg->running, 1);
            log_msg(LOG_ERROR, NULL, "cannot start worker %d", started);
            worker_free(&workers[started]);
            atomic_store(&cfg->stopping, 1);
            goto join;
        }
    }
    if (cfg->smtp.insecure)
        log_msg(LOG_WARN, NULL, "SMTP server certificates are NOT verified (--smtp-insecure)");
    log_msg(LOG_INFO, NULL, "ready: queue %s, %d workers, smtp %s (tls %s%s), consumer %s",
            cfg->keys.queue, cfg->concurrency, cfg->smtp.url,
            strncmp(cfg->smtp.url, "smtps://", 8) == 0 ? "implicit"
            : cfg->smtp.tls_required                   ? "required"
                                                       : "none",
            cfg->smtp.user ? ", auth" : "", cfg->id);
    int sig = 0;
    summary sm = {0};
    while (!(sig = wait_signal(&set, 1000))) {
        housekeeping_tick(&h, &redis_down);
        summary_tick(cfg, &sm);
    }
    log_msg(LOG_INFO, NULL, "%s: finishing jobs in hand", sig == SIGINT ? "SIGINT" : "SIGTERM");
    atomic_store(&cfg->stopping, 1);
    rc = 0;
join:
    drain(cfg, &h, &set, &redis_down);
    for (int i = 0; i < started; i++) {
        pthread_join(workers[i].thread, NULL);
        worker_free(&workers[i]);
    }
    back = housekeeping_reclaim(&h);
    if (back > 0)
        log_msg(LOG_INFO, NULL, "returned %ld unfinished jobs to pending", back);
    else if (back < 0)
        log_msg(LOG_WARN, NULL, "could not return unfinished jobs: Redis unavailable; "
                                "another consumer will recover them");
    log_msg(LOG_INFO, NULL, "stopped");
out:
    housekeeping_close(&h);
    free(workers);
    return rc;
}

int main(int argc, char **argv)
{
    consumer_config *cfg = malloc(sizeof *cfg);
    settings st = {0};
    int rc = 1;
    if (!cfg) {
        fprintf(stderr, "mailroom-consumer: out of memory\n");
        return 1;
    }
    defaults(cfg);
    int parsed = parse_args(argc, argv, cfg, &st);
    if (parsed != 0) {
        rc = parsed == 1 ? 0 : 64;
        goto out;
    }
    if (configure(cfg, &st) != 0) {
        rc = 78;
        goto out;
    }
    worker_config_finish(cfg);
    /* Block the stop signals in every thread; main() takes them with sigtimedwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "mailroom-consumer: libcurl initialisation failed\n");
        goto out;
    }
    rc = run(cfg);
    curl_global_cleanup();
out:
    keyring_clear(&cfg->ring);
    rconn_url_clear(&cfg->redis);
    secret_free(cfg->smtp_password);
    free(cfg);
    return rc;
}
