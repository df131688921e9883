/*
 * endpoint: see endpoint.h, and smtp_config_check() / smtp_url_is_loopback() of smtp.h.
 */
#include "endpoint.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "smtp.h"

/* 1 when the n bytes at p can be a host name (letters, digits, '-', '.', '_'). */
static int name_chars(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return 0;
    }
    return n > 0;
}

/* The port after the host: "" (default) or ":1".."65535". */
static int parse_port(const char *p, const char *end, smtp_url *u, mr_error *err)
{
    if (p == end)
        return 0;
    long v = 0;
    if (*p++ != ':' || p == end || end - p > 5)
        return mr_fail(err, MAILROOM_EINVAL, "bad port in the SMTP URL");
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return mr_fail(err, MAILROOM_EINVAL, "bad port in the SMTP URL");
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535)
        return mr_fail(err, MAILROOM_EINVAL, "SMTP URL port out of range");
    snprintf(u->port, sizeof u->port, "%ld", v);
    return 0;
}

/* host[:port] or [v6][:port], between p and end. */
static int parse_authority(const char *p, const char *end, smtp_url *u, mr_error *err)
{
    const char *host = p, *host_end;
    if (*p == '[') {
        host++;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (!host_end)
            return mr_fail(err, MAILROOM_EINVAL, "unterminated [address] in the SMTP URL");
        p = host_end + 1;
    } else {
        host_end = memchr(host, ':', (size_t)(end - host));
        host_end = host_end ? host_end : end;
        p = host_end;
    }
    size_t n = (size_t)(host_end - host);
    if (n == 0 || n >= sizeof u->host)
        return mr_fail(err, MAILROOM_EINVAL, "the SMTP URL has no usable host");
    memcpy(u->host, host, n);
    u->host[n] = '\0';
    unsigned char addr[16];
    if (*(host - 1) == '[') {
        if (inet_pton(AF_INET6, u->host, addr) != 1)
            return mr_fail(err, MAILROOM_EINVAL, "bad IPv6 address in the SMTP URL");
        u->host_is_ip = 1;
    } else if (!name_chars(host, n)) {
        return mr_fail(err, MAILROOM_EINVAL, "bad host name in the SMTP URL");
    } else {
        u->host_is_ip = inet_pton(AF_INET, u->host, addr) == 1;
    }
    return parse_port(p, end, u, err);
}

int smtp_url_parse(const char *url, smtp_url *u, mr_error *err)
{
    memset(u, 0, sizeof *u);
    if (!url)
        return mr_fail(err, MAILROOM_EINVAL, "no SMTP URL");
    u->implicit_tls = strncasecmp(url, "smtps://", 8) == 0;
    if (!u->implicit_tls && strncasecmp(url, "smtp://", 7) != 0)
        return mr_fail(err, MAILROOM_EINVAL, "the SMTP URL must start with smtp:// or smtps://");
    const char *p = url + (u->implicit_tls ? 8 : 7);
    const char *end = p + strcspn(p, "/?#");
    if (memchr(p, '@', (size_t)(end - p)))
        return mr_fail(err, MAILROOM_EINVAL, "the SMTP URL must not carry a user or password");
    if (*end && strcmp(end, "/") != 0)
        return mr_fail(err, MAILROOM_EINVAL, "the SMTP URL must have no path or query");
    snprintf(u->port, sizeof u->port, "%s", u->implicit_tls ? "465" : "25");
    return parse_authority(p, end, u, err);
}

int smtp_host_is_loopback(const smtp_url *u)
{
    unsigned char a[16];
    static const unsigned char v6_loop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (strcasecmp(u->host, "localhost") == 0 || strcasecmp(u->host, "localhost.") == 0)
        return 1;
    if (inet_pton(AF_INET, u->host, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, u->host, a) == 1)
        return memcmp(a, v6_loop, 16) == 0 || (memcmp(a, v4_mapped, 12) == 0 && a[12] == 127);
    return 0;
}

int smtp_url_is_loopback(const char *url)
{
    smtp_url u;
    return smtp_url_parse(url, &u, NULL) == 0 && smtp_host_is_loopback(&u);
}

int smtp_url_name(const char *url, char *out, size_t cap, mr_error *err)
{
    smtp_url u;
    if (smtp_url_parse(url, &u, err) != 0)
        return -1;
    int ipv6 = strchr(u.host, ':') != NULL;
    int n = snprintf(out, cap, "%s%s%s:%s", ipv6 ? "[" : "", u.host, ipv6 ? "]" : "", u.port);
    if (n < 0 || (size_t)n >= cap)
        return mr_fail(err, MAILROOM_EINVAL, "host name too long for a relay name");
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return 0;
}

/* An EHLO name: a domain or address literal, printable, no space. */
static int ehlo_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= SMTP_HOST_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7F)
            return 0;
    return 1;
}

int smtp_config_check(const smtp_config *cfg, mr_error *err)
{
    smtp_url u;
    if (!cfg)
        return mr_fail(err, MAILROOM_EINVAL, "no SMTP configuration");
    if (smtp_url_parse(cfg->url, &u, err) != 0)
        return -1;
    if (!cfg->user != !cfg->password)
        return mr_fail(err, MAILROOM_EINVAL, "an SMTP user needs a password and the reverse");
    if ((cfg->user && !cfg->user[0]) || (cfg->password && !cfg->password[0]))
        return mr_fail(err, MAILROOM_EINVAL, "empty SMTP user or password");
    if (cfg->user && !u.implicit_tls && !cfg->tls_required && !smtp_host_is_loopback(&u))
        return mr_fail(err, MAILROOM_EINVAL, "SMTP AUTH needs TLS unless the host is loopback: %s",
                       u.host);
    if (cfg->ehlo_name && !ehlo_name_ok(cfg->ehlo_name))
        return mr_fail(err, MAILROOM_EINVAL, "the EHLO name must be a printable word");
    if (cfg->connect_timeout_ms < 0 || cfg->command_timeout_ms < 0 || cfg->max_per_connection < 0 ||
        cfg->idle_max_ms < 0)
        return mr_fail(err, MAILROOM_EINVAL, "negative SMTP timeout or limit");
    return 0;
}

/* This host's name when it is fully qualified (has a dot), into dst. */
static int fqdn(char *dst, size_t cap)
{
    char name[SMTP_HOST_MAX];
    struct addrinfo hints, *res = NULL;
    if (gethostname(name, sizeof name) != 0)
        return -1;
    name[sizeof name - 1] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_CANONNAME;
    if (getaddrinfo(name, NULL, &hints, &res) == 0 && res && res->ai_canonname &&
        strchr(res->ai_canonname, '.') && ehlo_name_ok(res->ai_canonname))
        snprintf(name, sizeof name, "%s", res->ai_canonname);
    if (res)
        freeaddrinfo(res);
    if (!strchr(name, '.') || !ehlo_name_ok(name) || strlen(name) >= cap)
        return -1;
    memcpy(dst, name, strlen(name) + 1);
    return 0;
}

int smtp_default_ehlo_name(const smtp_transport *t, char *dst, size_t cap)
{
    if (fqdn(dst, cap) == 0)
        return 0;
    return smtp_transport_local_literal(t, dst, cap);
}
