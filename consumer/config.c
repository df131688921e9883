/* config: see config.h. */
#define _GNU_SOURCE
#include "config.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "lanes.h"
#include "log.h"
#include "secret.h"
#include "sig.h"
#include "suppression.h"

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
 * One relay's SMTP settings, the same for every relay but its URL. TLS is required
 * unless the host is a loopback address (a local relay or test server); turning
 * certificate checks off takes an explicit flag and is logged at every start. The
 * engine's own check (smtp_config_check) refuses a URL with credentials and AUTH in
 * clear to a remote host.
 */
static int configure_relay(consumer_config *cfg, relay *r, const char *url,
                           const consumer_options *o, mr_error *err)
{
    smtp_config *s = &r->smtp;
    s->url = url;
    int implicit = strncmp(url, "smtps://", 8) == 0;
    s->tls_required =
        o->smtp_tls ? strcmp(o->smtp_tls, "required") == 0 : !smtp_url_is_loopback(url);
    if (implicit && !s->tls_required)
        return mr_fail(err, MAILROOM_EINVAL, "smtps:// is always TLS; drop --smtp-tls none");
    s->ca_file = o->smtp_ca_file;
    s->insecure = o->smtp_insecure;
    s->user = o->smtp_user;
    s->password = cfg->smtp_password;
    s->ehlo_name = o->ehlo_name;
    s->abort = &cfg->hurry;
    s->connect_timeout_ms = (long)o->smtp_connect_timeout;
    s->command_timeout_ms = (long)o->smtp_timeout;
    s->max_per_connection = o->max_per_connection;
    s->idle_max_ms = (long)o->smtp_idle;
    /* the URL itself stays out of the message: it may carry a password */
    int n = cfg->n_relays + 1;
    if (smtp_config_check(s, err) != 0 || smtp_url_name(url, r->name, sizeof r->name, err) != 0)
        return mr_prefix(err, "--smtp, relay %d", n);
    if (!keys_relay_valid(r->name))
        return mr_fail(err, MAILROOM_EINVAL, "--smtp, relay %d: not a usable relay name", n);
    keys_relay(r->name, r->key);
    keys_relay_sessions(r->name, r->sessions_key);
    return 0;
}

/* The relays of --smtp (a comma list, in order of preference), sharing one AUTH user
 * and password (from a file only). The URLs stay in o's strings (borrowed). */
static int configure_relays(consumer_config *cfg, const consumer_options *o, mr_error *err)
{
    const char *pw_file = getenv("MAILROOM_SMTP_PASSWORD_FILE");
    if (pw_file && *pw_file) {
        cfg->smtp_password = secret_read_file(pw_file, err);
        if (!cfg->smtp_password)
            return -1;
    }
    if (cfg->smtp_password && !o->smtp_user)
        return mr_fail(err, MAILROOM_EINVAL, "an SMTP password needs MAILROOM_SMTP_USER");
    if (o->smtp_user && !cfg->smtp_password)
        return mr_fail(err, MAILROOM_EINVAL,
                       "an SMTP user needs its password in MAILROOM_SMTP_PASSWORD_FILE");
    snprintf(cfg->smtp_urls, sizeof cfg->smtp_urls, "%s", o->smtp);
    char *save = NULL;
    for (char *url = strtok_r(cfg->smtp_urls, ",", &save); url; url = strtok_r(NULL, ",", &save)) {
        if (cfg->n_relays == RELAY_MAX)
            return mr_fail(err, MAILROOM_EINVAL, "--smtp: at most %d relays", RELAY_MAX);
        relay *r = &cfg->relays[cfg->n_relays];
        if (configure_relay(cfg, r, url, o, err) != 0)
            return -1;
        for (int i = 0; i < cfg->n_relays; i++)
            if (strcmp(cfg->relays[i].name, r->name) == 0)
                return mr_fail(err, MAILROOM_EINVAL, "--smtp: relay %s is given twice", r->name);
        cfg->n_relays++;
    }
    if (cfg->n_relays == 0)
        return mr_fail(err, MAILROOM_EINVAL, "--smtp: no relay given");
    return 0;
}

/* --rate and --rate-floor: "N/s", "N/m" or "N/h", N a decimal number. */
static int parse_rate(const char *text, const char *option, double *per_s, mr_error *err)
{
    size_t digits = strspn(text, "0123456789.");
    const char *slash = digits && text[digits] == '/' ? text + digits : NULL;
    const char *unit = slash && slash[1] && !slash[2] ? slash + 1 : "";
    double div = *unit == 's' ? 1 : *unit == 'm' ? 60 : *unit == 'h' ? 3600 : 0;
    char *end = NULL;
    double n = div > 0 ? strtod(text, &end) : 0;
    if (div == 0 || end != text + digits || !(n > 0) || n / div > 1e6)
        return mr_fail(err, MAILROOM_EINVAL,
                       "%s: '%.40s' is not a rate such as 10/s, 600/m or 5000/h", option, text);
    *per_s = n / div;
    return 0;
}

/* The shared rate, the circuit breaker and the suppression list's settings. */
static int configure_policy(consumer_config *cfg, const consumer_options *o, mr_error *err)
{
    if (o->rate && parse_rate(o->rate, "--rate", &cfg->rate_max, err) != 0)
        return -1;
    cfg->rate_floor = cfg->rate_max / 50 > 1.0 / 60 ? cfg->rate_max / 50 : 1.0 / 60;
    if (o->rate_floor && parse_rate(o->rate_floor, "--rate-floor", &cfg->rate_floor, err) != 0)
        return -1;
    if (cfg->rate_max > 0 && cfg->rate_floor > cfg->rate_max)
        return mr_fail(err, MAILROOM_EINVAL, "--rate-floor is above --rate");
    if (cfg->rate_max > 0)
        snprintf(cfg->rate_max_arg, sizeof cfg->rate_max_arg, "%.6f", cfg->rate_max);
    snprintf(cfg->rate_floor_arg, sizeof cfg->rate_floor_arg, "%.6f", cfg->rate_floor);
    cfg->relay_connections = o->relay_connections;
    cfg->circuit_failures = (int)o->circuit_failures;
    cfg->probe_max_ms = o->circuit_probe_max;
    cfg->suppress_for_ms = o->suppress_for;
    if (strcmp(o->suppress_on, "none") != 0 && !suppress_codes_valid(o->suppress_on))
        return mr_fail(err, MAILROOM_EINVAL,
                       "--suppress-on: '%.60s' is not a comma list of codes such as "
                       "5.1.1, 5.1.* or 550 (or none)",
                       o->suppress_on);
    snprintf(cfg->suppress_on, sizeof cfg->suppress_on, "%s",
             strcmp(o->suppress_on, "none") == 0 ? "" : o->suppress_on);
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
    for (int i = 0; i < cfg->n_lanes; i++) {
        lane *l = &cfg->lanes[i];
        keys_processing(&l->keys, cfg->id, l->processing);
        const char *take[TAKE_ARGC] = {"BLMOVE", l->keys.pending, l->processing,
                                       "RIGHT",  "LEFT",          cfg->take_timeout};
        memcpy(l->take_argv, take, sizeof take);
        const char *poll[POLL_ARGC] = {"LMOVE", l->keys.pending, l->processing, "RIGHT", "LEFT"};
        memcpy(l->poll_argv, poll, sizeof poll);
    }
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
    if (rconn_url_from_option(o->redis, o->redis_on_command_line, &cfg->redis, err) != 0 ||
        lanes_configure(cfg, o->queue, err) != 0 || configure_relays(cfg, o, err) != 0 ||
        configure_policy(cfg, o, err) != 0 ||
        parse_algs(o->accept_alg, &cfg->accept_mask, err) != 0)
        return -1;
    if (o->id)
        snprintf(cfg->id, sizeof cfg->id, "%s", o->id);
    else
        default_id(cfg->id, sizeof cfg->id);
    if (!keys_queue_valid(cfg->id))
        return mr_fail(err, MAILROOM_EINVAL, "consumer id must match [A-Za-z0-9._:-]{1,64}");
    if (keyring_load_env(&cfg->ring, err) != 0)
        return -1;
    if (log_setup(o->log_level, o->log_format, cfg->id) != 0)
        return mr_fail(err, MAILROOM_EINVAL, "bad --log-format or --log-level");
    configure_numbers(cfg, o);
    if (o->http && http_listen_parse(o->http, NULL, err) != 0)
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
