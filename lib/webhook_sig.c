/*
 * webhook_sig.c — the signature of mailroom-webhook's deliveries (mailroom_admin.h,
 * docs/webhook.md): mailroom_webhook_sign() makes "v1=" and the hex HMAC-SHA256 of
 * timestamp "." body; mailroom_webhook_verify() is the receiving side, for C
 * applications, with the replay window. The HMAC is common/sig.c's (OpenSSL); both
 * calls keep no state and allocate only the signed string, freed before they return.
 */
#define _POSIX_C_SOURCE 200809L
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "mailroom_admin.h"
#include "sig.h"

#define SIG_PREFIX "v1="
#define SIG_HEX_LEN 64
#define TIMESTAMP_DIGITS_MAX 18

/* The hex HMAC-SHA256 of timestamp "." body under secret into hex. 0, or -1 when
 * memory ran out. */
static int mac_hex(const void *secret, size_t secret_len, const char *timestamp, const char *body,
                   size_t body_len, char hex[SIG_HEX_MAX])
{
    buf signed_text = BUF_INIT;
    int rc = -1;
    if (buf_puts(&signed_text, timestamp) != 0 || buf_putc(&signed_text, '.') != 0 ||
        buf_append(&signed_text, body, body_len) != 0)
        goto out;
    rc = sig_hmac_hex(SIG_HMAC_SHA256, secret, secret_len, signed_text.data, signed_text.len, hex);
out:
    buf_free(&signed_text);
    return rc;
}

/* mailroom_webhook_sign (mailroom_admin.h). */
int mailroom_webhook_sign(const void *secret, size_t secret_len, long long timestamp,
                          const char *body, size_t body_len, char out[MAILROOM_WEBHOOK_SIG_MAX])
{
    char ts[24], hex[SIG_HEX_MAX];
    if (!secret || secret_len == 0 || (!body && body_len) || !out)
        return MAILROOM_EINVAL;
    snprintf(ts, sizeof ts, "%lld", timestamp);
    if (mac_hex(secret, secret_len, ts, body ? body : "", body_len, hex) != 0)
        return MAILROOM_ENOMEM;
    snprintf(out, MAILROOM_WEBHOOK_SIG_MAX, SIG_PREFIX "%s", hex);
    return MAILROOM_OK;
}

/* The timestamp header: 1 to 18 decimal digits (no sign, no space). 0 and *out, or -1. */
static int parse_timestamp(const char *s, long long *out)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n > TIMESTAMP_DIGITS_MAX || s[n] != '\0')
        return -1;
    long long v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    *out = v;
    return 0;
}

/*
 * Whether one of the header's comma-separated "v1=<64 hex>" values (spaces around
 * them allowed, hex of either case; values of other versions skipped) equals
 * expected, compared in constant time. 1 matched, 0 not, -1 when the header holds no
 * well-formed v1 value at all.
 */
static int signature_matches(const char *header, const char expected[SIG_HEX_MAX])
{
    int seen = 0, matched = 0;
    for (const char *p = header; *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",");
        size_t trimmed = len;
        while (trimmed && (p[trimmed - 1] == ' ' || p[trimmed - 1] == '\t'))
            trimmed--;
        const char *hex = p + strlen(SIG_PREFIX);
        if (trimmed == strlen(SIG_PREFIX) + SIG_HEX_LEN && strncmp(p, SIG_PREFIX, 3) == 0 &&
            strspn(hex, "0123456789abcdefABCDEF") >= SIG_HEX_LEN) {
            char lower[SIG_HEX_LEN];
            for (size_t i = 0; i < SIG_HEX_LEN; i++)
                lower[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);
            seen = 1;
            matched |= CRYPTO_memcmp(lower, expected, SIG_HEX_LEN) == 0;
        }
        p += len;
    }
    return seen ? matched : -1;
}

/* mailroom_webhook_verify (mailroom_admin.h): the timestamp first (cheap), then the
 * HMAC. */
int mailroom_webhook_verify(const void *secret, size_t secret_len, const char *timestamp,
                            const char *signature, const char *body, size_t body_len, long long now,
                            long long tolerance_s, const char **why)
{
    const char *reason = NULL;
    long long ts = 0;
    char hex[SIG_HEX_MAX];
    int match = -1;
    if (tolerance_s <= 0)
        tolerance_s = MAILROOM_WEBHOOK_TOLERANCE_S;
    if (!secret || secret_len == 0 || (!body && body_len))
        reason = "invalid argument";
    else if (!timestamp || !signature)
        reason = "missing header";
    else if (parse_timestamp(timestamp, &ts) != 0)
        reason = "malformed timestamp";
    else if (ts < now - tolerance_s || ts > now + tolerance_s)
        reason = "stale timestamp";
    else if (mac_hex(secret, secret_len, timestamp, body ? body : "", body_len, hex) != 0)
        reason = "out of memory";
    else if ((match = signature_matches(signature, hex)) < 0)
        reason = "malformed signature";
    else if (!match)
        reason = "signature mismatch";
    if (why)
        *why = reason ? reason : "";
    return !reason                                ? MAILROOM_OK
           : strcmp(reason, "out of memory") == 0 ? MAILROOM_ENOMEM
                                                  : MAILROOM_EINVAL;
}
