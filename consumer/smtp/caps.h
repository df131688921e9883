/*
 * caps: what a server announces in its EHLO reply (RFC 5321 section 4.1.1.1). Each
 * line after the first is a keyword and its parameters; keywords are compared without
 * regard to case. Known: PIPELINING, STARTTLS, AUTH with its mechanisms (also the
 * pre-standard "AUTH=" form), SIZE with its limit, 8BITMIME, SMTPUTF8,
 * ENHANCEDSTATUSCODES and CHUNKING (noted; the engine does not use BDAT). Unknown
 * keywords are ignored.
 */
#ifndef MAILROOM_SMTP_CAPS_H
#define MAILROOM_SMTP_CAPS_H

#include "reply.h"

enum {
    SMTP_CAP_PIPELINING = 1u << 0,
    SMTP_CAP_STARTTLS = 1u << 1,
    SMTP_CAP_AUTH = 1u << 2, /* an AUTH line, whatever its mechanisms */
    SMTP_CAP_AUTH_PLAIN = 1u << 3,
    SMTP_CAP_AUTH_LOGIN = 1u << 4,
    SMTP_CAP_SIZE = 1u << 5,
    SMTP_CAP_8BITMIME = 1u << 6,
    SMTP_CAP_SMTPUTF8 = 1u << 7,
    SMTP_CAP_ENHANCEDSTATUSCODES = 1u << 8,
    SMTP_CAP_CHUNKING = 1u << 9
};

typedef struct smtp_caps {
    unsigned flags;              /* SMTP_CAP_* */
    unsigned long long size_max; /* SIZE's limit in bytes; 0: none announced */
} smtp_caps;

/* Reads the capabilities from a 250 reply to EHLO. */
void smtp_caps_parse(const smtp_reply *ehlo, smtp_caps *caps);

#endif
