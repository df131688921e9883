/*
 * sig: the canonical form of a job and its HMAC signature (docs/protocol.md).
 *
 *   canonical(object) = for each member, keys in bytewise ascending order: str(key) value(v)
 *   value(string s)   = "s" str(s)
 *   value(array a)    = "a" len(a) ":" value(a[0]) value(a[1]) ...
 *   value(object o)   = "o" len(o) ":" canonical(o)
 *   str(x)            = bytelen(x) ":" x
 *
 * The top-level "sig" member is left out. sig = lowercase hex of HMAC(alg, key, canonical).
 */
#ifndef MAILROOM_SIG_H
#define MAILROOM_SIG_H

#include <stddef.h>

#include "error.h"

#include "buf.h"

struct json_object;
struct keyring;
struct job;

typedef enum sig_alg { SIG_HMAC_SHA1 = 0, SIG_HMAC_SHA256 = 1 } sig_alg;

#define SIG_HEX_MAX 65 /* 64 hex digits for SHA-256 and the NUL */

/* "hmac-sha1" / "hmac-sha256" <-> sig_alg. parse returns 0, or -1 for any other name. */
int sig_alg_parse(const char *name, sig_alg *out);
const char *sig_alg_name(sig_alg alg);

/* Appends the canonical form of an object (top-level "sig" skipped) to out.
 * Returns 0, or -1 when out of memory or the tree holds a value the format forbids. */
int sig_canonical(struct json_object *obj, buf *out);

/* How many hex digits a signature with alg has: 40 (SHA-1) or 64 (SHA-256). */
size_t sig_hex_len(sig_alg alg);

/* Lowercase hex HMAC of data. Returns 0 or -1. */
int sig_hmac_hex(sig_alg alg, const void *key, size_t key_len, const void *data, size_t len,
                 char out[SIG_HEX_MAX]);

/*
 * A reusable HMAC context, for signing many jobs with one key: OpenSSL's one-shot
 * HMAC() looks the MAC and digest up and schedules the key on every call. Zero it to
 * start; free with sig_mac_free (accepts a zeroed one). Not thread-safe: one per
 * thread or handle.
 */
typedef struct sig_mac {
    struct evp_mac_ctx_st *ctx; /* owned */
    sig_alg alg;
    const void *key; /* borrowed: the key the context is keyed with, compared
                                   by address (a key ring's keys do not move or change) */
    size_t key_len;
} sig_mac;

/* Like sig_hmac_hex, through the context m. Returns 0 or -1. */
int sig_mac_hex(sig_mac *m, sig_alg alg, const void *key, size_t key_len, const void *data,
                size_t len, char out[SIG_HEX_MAX]);
void sig_mac_free(sig_mac *m);

/*
 * Verifies a decoded job against a key ring: known kid, alg allowed by accept_mask
 * (bit 1 << sig_alg), well-formed sig, HMAC equal under CRYPTO_memcmp. scratch is a
 * caller-owned buffer reused for the canonical form. Returns 0 when genuine, else -1
 * with the reason in err (never the key or the expected signature).
 */
int sig_verify_job(const struct job *j, const struct keyring *keys, unsigned accept_mask,
                   buf *scratch, mr_error *err);
/* Like sig_verify_job, computing the HMAC through the caller's reusable context mac
 * (a consumer worker keeps one: the job's key is usually the same every time). */
int sig_verify_job_with(const struct job *j, const struct keyring *keys, unsigned accept_mask,
                        buf *scratch, sig_mac *mac, mr_error *err);

#endif
