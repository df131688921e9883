/*
 * endpoint: where and how a session connects, checked and taken apart once: the SMTP
 * URL (scheme, host, port), the config check, the loopback test, the EHLO name by
 * default.
 */
#ifndef MAILROOM_SMTP_ENDPOINT_H
#define MAILROOM_SMTP_ENDPOINT_H

#include <stddef.h>

#include "error.h"
#include "transport.h"

#define SMTP_HOST_MAX 256
#define SMTP_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define SMTP_DEFAULT_COMMAND_TIMEOUT_MS 60000

typedef struct smtp_url {
    int implicit_tls;         /* smtps:// */
    int host_is_ip;           /* an IPv4 or IPv6 literal */
    char host[SMTP_HOST_MAX]; /* without the brackets of an IPv6 literal */
    char port[6];
} smtp_url;

/* smtp://host[:port][/] or smtps://host[:port][/], the scheme in any case; host a name,
 * an IPv4 address or [IPv6]; no user information, path, query or fragment. */
int smtp_url_parse(const char *url, smtp_url *u, mr_error *err);

/* 1 for 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) and "localhost". */
int smtp_host_is_loopback(const smtp_url *u);

/*
 * The EHLO name when none is configured: this host's fully qualified name
 * (gethostname, then getaddrinfo's canonical name) when it has a dot, else the address
 * literal of the connection's local end. -1 when neither is known.
 */
int smtp_default_ehlo_name(const smtp_transport *t, char *dst, size_t cap);

#endif
