/* config: see config.h. */
#define _GNU_SOURCE
#include "config.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "secret.h"
#include "sig.h"

static int parse_algs(const char *list, unsigned *mask, mr_error *err)
{
    char copy[128];
    snprintf(copy, sizeof copy, "%s", list);
    *mask = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        sig_alg alg;
        if (sig_alg_parse(tok, &alg) != 0)
            goto bad;
        *mask |= 1u << alg;
    }
    if (*mask != 0 && strlen(list) < sizeof copy)
        return 0;
bad:
    return mr_fail(err, MAILROOM_EINVAL,
                   "--accept-alg takes hmac-sha1 and/or hmac-sha256, comma separated");
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

/*
 * TLS and AUTH for SMTP. TLS is required unless the host is a loopback address (a
 * local relay or test server); turning certificate checks off takes an explicit flag
 * and is logged at every start. The password comes from a file only. The engine's own
 * check (smtp_config_check) refuses a URL with credentials and AUTH in clear to a
 * remote host.
 */
static int configure_smtp(consumer_config *cfg, const consumer_options *o, mr_error *err)
{
    smtp_config *s = &cfg->smtp;
    s->url = o->smtp;
    int implicit = strncmp(s->url, "smtps://", 8) == 0;
    s->tls_required =
        o->smtp_tls ? strcmp(o->smtp_tls, "required") == 0 : !smtp_url_is_loopback(s->url);
    if (implicit && !s->tls_required)
        return mr_fail(err, MAILROOM_EINVAL, "smtps:// is always TLS; drop --smtp-tls none");
    s->ca_file = o->smtp_ca_file;
    s->insecure = o->smtp_insecure;
    s->user = o->smtp_user;
    s->ehlo_name = o->ehlo_name;
    s->abort = &cfg->hurry;
    s->connect_timeout_ms = (long)o->smtp_connect_timeout;
    s->command_timeout_ms = (long)o->smtp_timeout;
    s->max_per_connection = o->max_per_connection;
    s->idle_max_ms = (long)o->smtp_idle;
    const char *pw_file = getenv("MAILROOM_SMTP_PASSWORD_FILE");
    if (pw_file && *pw_file) {
        cfg->smtp_password = secret_read_file(pw_file, err);
        if (!cfg->smtp_password)
            return -1;
        s->password = cfg->smtp_password;
    }
    if (s->password && !s->user)
        return mr_fail(err, MAILROOM_EINVAL, "an SMTP password needs MAILROOM_SMTP_USER");
    if (s->user && !s->password)
        return mr_fail(err, MAILROOM_EINVAL,
                       "an SMTP user needs its password in MAILROOM_SMTP_PASSWORD_FILE");
    return smtp_config_check(s, err);
}

static int configure_redis(consumer_config *cfg, const consumer_options *o, mr_error *err)
{
    if (!keys_queue_valid(o->queue) || keys_init(&cfg->keys, o->queue) != 0)
        return mr_fail(err, MAILROOM_EINVAL, "queue name must match [A-Za-z0-9._:-]{1,64}");
    if (o->redis_on_command_line && rconn_url_has_password(o->redis))
        return mr_fail(err, MAILROOM_EINVAL,
                       "--redis must not carry a password (it would show in ps); use "
                       "MAILROOM_REDIS_URL or MAILROOM_REDIS_PASSWORD_FILE");
    if (rconn_url_parse(o->redis, &cfg->redis, err) != 0 ||
        rconn_password_from_env(&cfg->redis, err) != 0)
        return -1;
    return 0;
}

/* The numbers, and the script arguments that never change, formatted once. */
static void configure_numbers(consumer_config *cfg, const consumer_options *o)
{
    cfg->concurrency = (int)o->concurrency;
    cfg->block_timeout_ms = (int)o->block_timeout;
    cfg->redis_timeout_ms = 5000;
    cfg->status_ttl_s = (long)(o->status_ttl / 1000);
    cfg->dead_max = o->dead_max;
    cfg->max_attempts = (int)o->max_attempts;
    cfg->backoff_base_ms = o->backoff_base;
    cfg->backoff_max_ms = o->backoff_max;
    cfg->max_lifetime_ms = o->max_lifetime;
    cfg->max_clock_skew_ms = o->max_clock_skew;
    cfg->dead_after_ms = o->dead_after;
    cfg->lease_safe_ms = o->dead_after - 500; /* --dead-after is at least 2 s */
    cfg->shutdown_timeout_ms = o->shutdown_timeout;
    snprintf(cfg->ttl_arg, sizeof cfg->ttl_arg, "%ld", cfg->status_ttl_s);
    snprintf(cfg->dead_max_arg, sizeof cfg->dead_max_arg, "%ld", cfg->dead_max);
    snprintf(cfg->dead_after_arg, sizeof cfg->dead_after_arg, "%lld",
             (long long)cfg->dead_after_ms);
    snprintf(cfg->take_timeout, sizeof cfg->take_timeout, "%.3f", cfg->block_timeout_ms / 1000.0);
    const char *take[TAKE_ARGC] = {"BLMOVE", cfg->keys.pending, cfg->processing, "RIGHT",
                                   "LEFT",   cfg->take_timeout};
    memcpy(cfg->take_argv, take, sizeof take);
    const char *poll[POLL_ARGC] = {"LMOVE", cfg->keys.pending, cfg->processing, "RIGHT", "LEFT"};
    memcpy(cfg->poll_argv, poll, sizeof poll);
}

/*
 * The replay bound holds only while a job's status record outlives its lifetime: a
 * captured job sent again while its record exists is deduplicated by the record, and
 * once the record has expired the job is older than its lifetime and refused.
 */
static int check_replay_bound(const consumer_options *o, mr_error *err)
{
    if (o->status_ttl <= o->max_lifetime + o->max_clock_skew)
        return mr_fail(err, MAILROOM_EINVAL,
                       "--status-ttl (%lld s) must be longer than --max-lifetime plus "
                       "--max-clock-skew (%lld s): a job whose record expired could "
                       "otherwise be sent again",
                       (long long)(o->status_ttl / 1000),
                       (long long)((o->max_lifetime + o->max_clock_skew) / 1000));
    return 0;
}

int config_load(consumer_config *cfg, const consumer_options *o, mr_error *err)
{
    if (check_replay_bound(o, err) != 0)
        return -1;
    if (configure_redis(cfg, o, err) != 0 || configure_smtp(cfg, o, err) != 0 ||
        parse_algs(o->accept_alg, &cfg->accept_mask, err) != 0)
        return -1;
    if (o->id)
        snprintf(cfg->id, sizeof cfg->id, "%s", o->id);
    else
        default_id(cfg->id, sizeof cfg->id);
    if (!keys_queue_valid(cfg->id))
        return mr_fail(err, MAILROOM_EINVAL, "consumer id must match [A-Za-z0-9._:-]{1,64}");
    keys_processing(&cfg->keys, cfg->id, cfg->processing);
    if (keyring_load_env(&cfg->ring, err) != 0)
        return -1;
    if (log_setup(o->log_level, o->log_format, cfg->id) != 0)
        return mr_fail(err, MAILROOM_EINVAL, "bad --log-format or --log-level");
    configure_numbers(cfg, o);
    if (o->http && http_listen_parse(o->http, NULL, err) != 0) /* metrics */
        return -1;
    cfg->http = o->http;
    return 0;
}

void config_clear(consumer_config *cfg)
{
    if (!cfg)
        return;
    keyring_clear(&cfg->ring);
    rconn_url_clear(&cfg->redis);
    secret_free(cfg->smtp_password);
    cfg->smtp_password = NULL;
}
