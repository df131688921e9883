/*
 * listen.c — where mailroom-web listens and what a request may call it.
 *
 * The address is a literal (IPv4, [IPv6]) or "localhost", never a name to resolve, so
 * that what is bound is what the operator wrote. The hosts and origins a request may
 * name are derived from it: a page fetched through any other name (DNS rebinding: an
 * attacker's name resolving to 127.0.0.1) is refused, and an action carrying any other
 * Origin (a cross-site request) too. Behind a reverse proxy, --public-origin adds the
 * name the browser uses.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "web.h"

/* Formats err and returns -1. */
static int listen_fail(char err[WEB_ERR_MAX], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int listen_fail(char err[WEB_ERR_MAX], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, WEB_ERR_MAX, fmt, ap);
    va_end(ap);
    return -1;
}

/* Parses a port, 0 (any free one) to 65535. 0, or -1. */
static int parse_port(const char *s, unsigned *port)
{
    char *end;
    if (!*s || strlen(s) > 5)
        return -1;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v > 65535)
        return -1;
    *port = (unsigned)v;
    return 0;
}

/* Fills the socket address from a literal host (IPv6 without its brackets). */
static int set_addr(web_listen *l, const char *host)
{
    memset(&l->addr, 0, sizeof l->addr);
    if (l->ipv6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&l->addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)l->port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return -1;
        l->loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
        l->addr_len = sizeof *a;
        return 0;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)&l->addr;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)l->port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return -1;
    l->loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    l->addr_len = sizeof *a;
    return 0;
}

/* web_listen_parse (web.h). */
int web_listen_parse(const char *text, web_listen *l, char err[WEB_ERR_MAX])
{
    char host[64];
    memset(l, 0, sizeof *l);
    const char *colon = strrchr(text, ':');
    size_t hlen = colon ? (size_t)(colon - text) : 0;
    if (!colon || hlen == 0 || hlen >= sizeof host || parse_port(colon + 1, &l->port) != 0)
        return listen_fail(err, "--listen '%.80s': expected HOST:PORT, e.g. 127.0.0.1:8025", text);
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (host[0] == '[' && host[hlen - 1] == ']') {
        l->ipv6 = 1;
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    if (set_addr(l, host) != 0)
        return listen_fail(err,
                           "--listen '%.80s': the host must be an IPv4 address, an IPv6 "
                           "address in brackets, or localhost",
                           text);
    return 0;
}

/* Adds an allowed Host value and its http:// origin. */
static void add_host(web_listen *l, const char *host)
{
    if (l->n_hosts < WEB_HOSTS_MAX)
        snprintf(l->hosts[l->n_hosts++], sizeof l->hosts[0], "%s", host);
    if (l->n_origins < WEB_HOSTS_MAX)
        snprintf(l->origins[l->n_origins++], sizeof l->origins[0], "http://%s", host);
}

/* Adds the public origin: scheme://host[:port] with no path; its host part (with the
 * port) becomes an allowed Host too. */
static int add_public(web_listen *l, const char *origin, char err[WEB_ERR_MAX])
{
    const char *rest = NULL;
    if (strncasecmp(origin, "https://", 8) == 0)
        rest = origin + 8;
    else if (strncasecmp(origin, "http://", 7) == 0)
        rest = origin + 7;
    size_t n = rest ? strlen(rest) : 0;
    if (!rest || n == 0 || n >= sizeof l->hosts[0] || strpbrk(rest, "/?#@ \t\\") ||
        l->n_hosts >= WEB_HOSTS_MAX)
        return listen_fail(err,
                           "--public-origin '%.80s': expected scheme://host[:port] with no path, "
                           "e.g. https://mail.example.com",
                           origin);
    for (const char *p = rest; *p; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            return listen_fail(err, "--public-origin: only printable ASCII");
    snprintf(l->hosts[l->n_hosts++], sizeof l->hosts[0], "%s", rest);
    snprintf(l->origins[l->n_origins++], sizeof l->origins[0], "%s", origin);
    return 0;
}

/* web_listen_names (web.h). */
int web_listen_names(web_listen *l, const char *public_origin, char err[WEB_ERR_MAX])
{
    char host[64], name[96];
    const void *a = l->ipv6 ? (const void *)&((struct sockaddr_in6 *)&l->addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)&l->addr)->sin_addr;
    inet_ntop(l->ipv6 ? AF_INET6 : AF_INET, a, host, sizeof host);
    snprintf(l->shown, sizeof l->shown, l->ipv6 ? "[%s]:%u" : "%s:%u", host, l->port);
    l->n_hosts = l->n_origins = 0;
    add_host(l, l->shown);
    if (l->loopback) {
        snprintf(name, sizeof name, "localhost:%u", l->port);
        add_host(l, name);
    }
    if (public_origin && *public_origin)
        return add_public(l, public_origin, err);
    return 0;
}

int web_host_allowed(const web_listen *l, const char *host)
{
    for (size_t i = 0; host && i < l->n_hosts; i++)
        if (strcasecmp(host, l->hosts[i]) == 0)
            return 1;
    return 0;
}

int web_origin_allowed(const web_listen *l, const char *origin)
{
    for (size_t i = 0; origin && i < l->n_origins; i++)
        if (strcasecmp(origin, l->origins[i]) == 0)
            return 1;
    return 0;
}
