/*
 * auth.c — who may read and who may act.
 *
 * The token is read from a file (never argv, a URL or a query string) and kept only as
 * its SHA-256 digest; a request's token is hashed the same way and the two digests are
 * compared with CRYPTO_memcmp, so neither the comparison's time nor a length tells how
 * much of a guess was right.
 *
 * Every request must name an allowed Host (a name the operator gave, not an attacker's
 * DNS name pointing at loopback). An action (a POST) must also carry the token as
 * "Authorization: Bearer ...", the header X-Mailroom-Action (which a cross-site form
 * cannot send, and a cross-site fetch cannot send without a preflight that the
 * server never grants), a JSON Content-Type, and, when the browser names them, an
 * allowed Origin and a Sec-Fetch-Site of same-origin. web_guard() is the one place
 * these rules are written.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "web.h"

/* Formats err and returns -1. */
static int auth_fail(char err[WEB_ERR_MAX], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int auth_fail(char err[WEB_ERR_MAX], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, WEB_ERR_MAX, fmt, ap);
    va_end(ap);
    return -1;
}

/* SHA-256 of len bytes into out. 0, or -1. */
static int digest(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -1;
}

/* Reads the first line of an open file into buf (its line end dropped). The length, or
 * -1 when the line is longer than cap - 1. */
static long read_line(FILE *fp, char *buf, size_t cap)
{
    if (!fgets(buf, (int)cap, fp))
        return 0;
    size_t n = strcspn(buf, "\r\n");
    if (n == cap - 1 && !feof(fp))
        return -1;
    buf[n] = '\0';
    return (long)n;
}

/* web_token_load (web.h): the text lives on the stack only until it is hashed. */
int web_token_load(web_token *t, const char *path, char err[WEB_ERR_MAX])
{
    char line[WEB_TOKEN_MAX + 2];
    struct stat st;
    int r = -1;
    memset(t, 0, sizeof *t);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return auth_fail(err, "--token-file %.200s: %s", path, strerror(errno));
    long n = 0;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode))
        auth_fail(err, "--token-file %.200s: not a regular file", path);
    else if (st.st_mode & (S_IRWXG | S_IRWXO))
        auth_fail(err, "--token-file %.200s: readable by group or others (chmod 600 it)", path);
    else if ((n = read_line(fp, line, sizeof line)) < WEB_TOKEN_MIN)
        auth_fail(err, "--token-file %.200s: the token must be %d to %d bytes on the first line",
                  path, WEB_TOKEN_MIN, WEB_TOKEN_MAX);
    else if (digest(line, (size_t)n, t->digest) != 0)
        auth_fail(err, "--token-file: SHA-256 failed");
    else
        r = t->set = 1;
    OPENSSL_cleanse(line, sizeof line);
    fclose(fp);
    return r == 1 ? 0 : -1;
}

/* web_token_check (web.h). */
int web_token_check(const web_token *t, const char *authorization)
{
    unsigned char d[32];
    if (!t->set || !authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return 0;
    const char *given = authorization + 7;
    size_t n = strlen(given);
    if (n > WEB_TOKEN_MAX || digest(given, n, d) != 0)
        return 0;
    return CRYPTO_memcmp(d, t->digest, sizeof d) == 0;
}

/* Fills the refusal and returns -1. */
static int refuse(web_refusal *why, unsigned status, const char *text)
{
    why->status = status;
    why->text = text;
    return -1;
}

/* web_guard (web.h): the rules, in the order a refusal is most useful to read. */
int web_guard(const web_app *app, const web_headers *h, int action, web_refusal *why)
{
    if (!web_host_allowed(&app->listen, h->host))
        return refuse(why, 403,
                      "this Host is not one the dashboard answers to "
                      "(see --public-origin)");
    int need_token = action || app->opt.private_reads;
    if (action && !app->token.set)
        return refuse(why, 403, "actions are disabled: mailroom-web runs without --token-file");
    if (action && (!h->action_header || strcmp(h->action_header, "1") != 0))
        return refuse(why, 403, "an action needs the header X-Mailroom-Action: 1");
    if (action && h->origin && !web_origin_allowed(&app->listen, h->origin))
        return refuse(why, 403, "cross-origin request refused");
    if (action && h->sec_fetch_site && strcmp(h->sec_fetch_site, "same-origin") != 0 &&
        strcmp(h->sec_fetch_site, "none") != 0)
        return refuse(why, 403, "cross-site request refused");
    if (action && (!h->content_type || strncasecmp(h->content_type, "application/json", 16) != 0))
        return refuse(why, 415, "an action's body must be application/json");
    if (need_token && !web_token_check(&app->token, h->authorization))
        return refuse(why, 401, "missing or wrong token");
    return 0;
}
