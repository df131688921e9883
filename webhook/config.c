/* config: see config.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECRET_FILE_MAX 65536
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"

/* 1 when s matches [A-Za-z0-9._:-]{1,64}. */
static int name_valid(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= WEBHOOK_NAME_MAX && strspn(s, NAME_CHARS) == n;
}

/* The default instance name: the host name, every byte outside the name characters
 * made '-'. */
static void default_id(char out[WEBHOOK_NAME_MAX + 1])
{
    char host[WEBHOOK_NAME_MAX + 1] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "webhook");
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if (!strchr(NAME_CHARS, *p))
            *p = '-';
    snprintf(out, WEBHOOK_NAME_MAX + 1, "%s", host);
}

/* 1 for a loopback host as curl spells it: localhost, 127.x.x.x, [::1]. */
static int host_is_loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
           strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
}

/* A part of a parsed URL (NULL when absent), freed with curl_free. */
static char *url_part(CURLU *u, CURLUPart part)
{
    char *v = NULL;
    return curl_url_get(u, part, &v, 0) == CURLUE_OK ? v : NULL;
}

/* The checks of the URL on a parsed handle, and the form that may be shown. */
static int check_url_parts(webhook_config *cfg, CURLU *u, mr_error *err)
{
    char *scheme = url_part(u, CURLUPART_SCHEME), *host = url_part(u, CURLUPART_HOST);
    char *user = url_part(u, CURLUPART_USER), *pass = url_part(u, CURLUPART_PASSWORD);
    char *shown = NULL;
    int rc = -1;
    if (user || pass) {
        mr_fail(err, MAILROOM_EINVAL,
                "--url must not carry credentials (user:password@): the application "
                "authenticates the deliveries by their signature");
        goto out;
    }
    if (!scheme || !host || (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)) {
        mr_fail(err, MAILROOM_EINVAL, "--url must be an http:// or https:// URL with a host");
        goto out;
    }
    cfg->http_remote = strcmp(scheme, "http") == 0 && !host_is_loopback(host);
    if (cfg->http_remote && !cfg->o.allow_http) {
        mr_fail(err, MAILROOM_EINVAL,
                "--url: plain http:// to %.200s, which is not loopback: use https://, or "
                "--allow-http on a private network",
                host);
        goto out;
    }
    if (curl_url_set(u, CURLUPART_QUERY, NULL, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK ||
        !(shown = url_part(u, CURLUPART_URL))) {
        mr_fail(err, MAILROOM_ENOMEM, "--url: out of memory");
        goto out;
    }
    snprintf(cfg->url_shown, sizeof cfg->url_shown, "%s", shown);
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(pass);
    curl_free(shown);
    return rc;
}

/* The application's URL, parsed with libcurl's URL API (never by hand). */
static int check_url(webhook_config *cfg, mr_error *err)
{
    const char *url = cfg->o.url;
    if (!url || !*url)
        return mr_fail(err, MAILROOM_EINVAL, "--url (or MAILROOM_WEBHOOK_URL) is required");
    if (strlen(url) >= WEBHOOK_URL_MAX)
        return mr_fail(err, MAILROOM_EINVAL, "--url is longer than %d bytes", WEBHOOK_URL_MAX - 1);
    CURLU *u = curl_url();
    if (!u)
        return mr_fail(err, MAILROOM_ENOMEM, "out of memory");
    int rc = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK
                 ? check_url_parts(cfg, u, err)
                 : mr_fail(err, MAILROOM_EINVAL, "--url is not a URL");
    curl_url_cleanup(u);
    return rc;
}

/* Adds one secret (a copy of len bytes). */
static int add_secret(webhook_config *cfg, const char *s, size_t len, const char *from,
                      mr_error *err)
{
    if (cfg->n_secrets == WEBHOOK_SECRETS_MAX)
        return mr_fail(err, MAILROOM_EINVAL, "%s: more than %d secrets", from, WEBHOOK_SECRETS_MAX);
    if (len < WEBHOOK_SECRET_MIN)
        return mr_fail(err, MAILROOM_EINVAL, "%s: secret %d is shorter than %d bytes", from,
                       cfg->n_secrets + 1, WEBHOOK_SECRET_MIN);
    char *copy = malloc(len + 1);
    if (!copy)
        return mr_fail(err, MAILROOM_ENOMEM, "out of memory");
    memcpy(copy, s, len);
    copy[len] = '\0';
    cfg->secrets[cfg->n_secrets] = copy;
    cfg->secret_len[cfg->n_secrets++] = len;
    return 0;
}

/* Every line of text (line ends LF or CRLF) is a secret, but empty lines and comments
 * (lines that start with '#'). */
static int secrets_from_text(webhook_config *cfg, const char *text, size_t len, const char *from,
                             mr_error *err)
{
    for (size_t i = 0; i < len;) {
        size_t end = i;
        while (end < len && text[end] != '\n')
            end++;
        size_t line = end - i;
        if (line && text[i + line - 1] == '\r')
            line--;
        if (line && text[i] != '#' && add_secret(cfg, text + i, line, from, err) != 0)
            return -1;
        i = end + 1;
    }
    return cfg->n_secrets ? 0 : mr_fail(err, MAILROOM_EINVAL, "%s holds no secret", from);
}

/* The secrets of MAILROOM_WEBHOOK_SECRET_FILE (read whole, at most 64 KiB, wiped). */
static int secrets_from_file(webhook_config *cfg, const char *path, mr_error *err)
{
    char *text = malloc(SECRET_FILE_MAX + 1);
    FILE *fp = text ? fopen(path, "r") : NULL;
    int rc = -1;
    size_t n = 0;
    if (!text) {
        mr_fail(err, MAILROOM_ENOMEM, "out of memory");
        goto out;
    }
    if (!fp) {
        mr_fail(err, MAILROOM_EINVAL, "MAILROOM_WEBHOOK_SECRET_FILE %.200s: %s", path,
                strerror(errno));
        goto out;
    }
    n = fread(text, 1, SECRET_FILE_MAX + 1, fp);
    if (ferror(fp) || n > SECRET_FILE_MAX)
        mr_fail(err, MAILROOM_EINVAL, "MAILROOM_WEBHOOK_SECRET_FILE %.200s: %s", path,
                ferror(fp) ? "read error" : "larger than 64 KiB");
    else
        rc = secrets_from_text(cfg, text, n, "MAILROOM_WEBHOOK_SECRET_FILE", err);
out:
    if (fp)
        fclose(fp);
    if (text)
        OPENSSL_cleanse(text, SECRET_FILE_MAX + 1);
    free(text);
    return rc;
}

/* The secrets: the file when named, else the variable. */
static int load_secrets(webhook_config *cfg, mr_error *err)
{
    const char *file = getenv("MAILROOM_WEBHOOK_SECRET_FILE");
    const char *secret = getenv("MAILROOM_WEBHOOK_SECRET");
    if (file && *file)
        return secrets_from_file(cfg, file, err);
    if (secret && *secret)
        return add_secret(cfg, secret, strlen(secret), "MAILROOM_WEBHOOK_SECRET", err);
    return mr_fail(err, MAILROOM_EINVAL,
                   "no signing secret: set MAILROOM_WEBHOOK_SECRET_FILE (or "
                   "MAILROOM_WEBHOOK_SECRET)");
}

/* The queue, the names and the Redis URL of the delivery state's connection. */
static int check_redis_and_names(webhook_config *cfg, mr_error *err)
{
    const webhook_options *o = &cfg->o;
    if (!keys_queue_valid(o->queue) || keys_init(&cfg->keys, o->queue) != 0)
        return mr_fail(err, MAILROOM_EINVAL, "queue name must match [A-Za-z0-9._:-]{1,64}");
    snprintf(cfg->failed_key, sizeof cfg->failed_key, "%s:failed", cfg->keys.webhook);
    if (o->id)
        snprintf(cfg->id, sizeof cfg->id, "%s", o->id);
    else
        default_id(cfg->id);
    if (!name_valid(o->group) || !name_valid(cfg->id) || (o->id && strlen(o->id) > 64))
        return mr_fail(err, MAILROOM_EINVAL, "--group and --id must match [A-Za-z0-9._:-]{1,64}");
    if (o->redis_on_command_line && rconn_url_has_password(o->redis))
        return mr_fail(err, MAILROOM_EINVAL,
                       "--redis must not carry a password (it would show in ps); use "
                       "MAILROOM_REDIS_URL or MAILROOM_REDIS_PASSWORD_FILE");
    if (rconn_url_parse(o->redis, &cfg->redis, err) != 0 ||
        rconn_password_from_env(&cfg->redis, err) != 0)
        return -1;
    return 0;
}

int webhook_config_load(webhook_config *cfg, const webhook_options *o, mr_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->o = *o;
    if (check_url(cfg, err) != 0 || check_redis_and_names(cfg, err) != 0)
        return -1;
    if (o->backoff_base > o->backoff_max)
        return mr_fail(err, MAILROOM_EINVAL, "--backoff-base must not exceed --backoff-max");
    if (o->claim_after <= o->backoff_max + o->timeout)
        return mr_fail(err, MAILROOM_EINVAL,
                       "--claim-after must exceed --backoff-max plus --timeout, or another "
                       "instance would take over events this one is still retrying");
    if (o->ca_file && access(o->ca_file, R_OK) != 0)
        return mr_fail(err, MAILROOM_EINVAL, "--ca-file %.200s: %s", o->ca_file, strerror(errno));
    return load_secrets(cfg, err);
}

void webhook_config_free(webhook_config *cfg)
{
    if (!cfg)
        return;
    for (int i = 0; i < cfg->n_secrets; i++) {
        OPENSSL_cleanse(cfg->secrets[i], cfg->secret_len[i]);
        free(cfg->secrets[i]);
        cfg->secrets[i] = NULL;
    }
    cfg->n_secrets = 0;
    rconn_url_clear(&cfg->redis);
}
