/*
 * sig: canonical form and HMAC signatures (see sig.h, docs/protocol.md).
 *
 * The canonical form is computed from the decoded json-c tree, never from JSON text,
 * so that whitespace, escaping and member order chosen by a producer in another
 * language do not matter. Keys are sorted with strcmp, which compares as unsigned
 * char: bytewise order of their UTF-8 encodings.
 */
#include "sig.h"

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "keyring.h"

#define SIG_MAX_MEMBERS 64 /* more members than any valid job or headers object holds */

int sig_alg_parse(const char *name, sig_alg *out)
{
    if (strcmp(name, "hmac-sha1") == 0)
        *out = SIG_HMAC_SHA1;
    else if (strcmp(name, "hmac-sha256") == 0)
        *out = SIG_HMAC_SHA256;
    else
        return -1;
    return 0;
}

const char *sig_alg_name(sig_alg alg)
{
    return alg == SIG_HMAC_SHA256 ? "hmac-sha256" : "hmac-sha1";
}

/* Appends tag (or nothing when 0), n in decimal and ':'. Written by hand: this runs
 * for every member of every job and printf dominated the signing cost. */
static int put_count(buf *out, char tag, size_t n)
{
    char tmp[24];
    size_t i = sizeof tmp;
    tmp[--i] = ':';
    do {
        tmp[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    if (tag)
        tmp[--i] = tag;
    return buf_append(out, tmp + i, sizeof tmp - i);
}

static int put_str(buf *out, const char *s, size_t len)
{
    if (put_count(out, 0, len) != 0)
        return -1;
    return buf_append(out, s, len);
}

static int put_object(buf *out, json_object *obj, int skip_sig);

static int put_value(buf *out, json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_string:
        if (buf_putc(out, 's') != 0)
            return -1;
        return put_str(out, json_object_get_string(v), (size_t)json_object_get_string_len(v));
    case json_type_array: {
        size_t n = json_object_array_length(v);
        if (put_count(out, 'a', n) != 0)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (put_value(out, json_object_array_get_idx(v, i)) != 0)
                return -1;
        return 0;
    }
    case json_type_object:
        if (put_count(out, 'o', (size_t)json_object_object_length(v)) != 0)
            return -1;
        return put_object(out, v, 0);
    default: return -1; /* numbers, booleans and null have no canonical form */
    }
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Members in bytewise key order: str(key) value(v). skip_sig leaves out "sig"
 * (top level only). */
static int put_object(buf *out, json_object *obj, int skip_sig)
{
    const char *keys[SIG_MAX_MEMBERS] = {0};
    size_t n = 0;
    struct json_object_iterator it = json_object_iter_begin(obj);
    struct json_object_iterator end = json_object_iter_end(obj);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *k = json_object_iter_peek_name(&it);
        if (skip_sig && strcmp(k, "sig") == 0)
            continue;
        if (n == SIG_MAX_MEMBERS)
            return -1;
        keys[n++] = k;
    }
    qsort(keys, n, sizeof keys[0], cmp_keys);
    for (size_t i = 0; i < n; i++) {
        json_object *v = NULL;
        json_object_object_get_ex(obj, keys[i], &v);
        if (put_str(out, keys[i], strlen(keys[i])) != 0 || put_value(out, v) != 0)
            return -1;
    }
    return 0;
}

int sig_canonical(json_object *obj, buf *out)
{
    if (!json_object_is_type(obj, json_type_object) || buf_append(out, "", 0) != 0)
        return -1; /* the empty append leaves data a valid C string even for {} */
    return put_object(out, obj, 1);
}

size_t sig_hex_len(sig_alg alg)
{
    return alg == SIG_HMAC_SHA256 ? 2 * SHA256_DIGEST_LENGTH : 2 * SHA_DIGEST_LENGTH;
}

static void to_hex(const unsigned char *mac, size_t mac_len, char out[SIG_HEX_MAX])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < mac_len; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 0x0F];
    }
    out[2 * mac_len] = '\0';
}

/*
 * Keys the context for (alg, key) unless it already is: a new key costs OpenSSL's
 * lookups and the key schedule once; the same key again is a cheap re-initialisation.
 */
static int mac_key(sig_mac *m, sig_alg alg, const void *key, size_t key_len)
{
    if (m->ctx && m->alg == alg && m->key == key && m->key_len == key_len)
        return EVP_MAC_init(m->ctx, NULL, 0, NULL) == 1 ? 0 : -1;
    if (!m->ctx) {
        EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        if (!hmac)
            return -1;
        m->ctx = EVP_MAC_CTX_new(hmac); /* holds its own reference */
        EVP_MAC_free(hmac);
        if (!m->ctx)
            return -1;
    }
    m->key = NULL;
    char *digest = alg == SIG_HMAC_SHA256 ? "SHA256" : "SHA1"; /* OpenSSL only reads it */
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(m->ctx, key, key_len, params) != 1)
        return -1;
    m->alg = alg;
    m->key = key;
    m->key_len = key_len;
    return 0;
}

/* The raw HMAC of data through m into out (EVP_MAX_MD_SIZE bytes), its length in
 * *out_len. Returns 0 or -1. */
static int mac_raw(sig_mac *m, sig_alg alg, const void *key, size_t key_len, const void *data,
                   size_t len, unsigned char *out, size_t *out_len)
{
    if (mac_key(m, alg, key, key_len) != 0 || EVP_MAC_update(m->ctx, data, len) != 1 ||
        EVP_MAC_final(m->ctx, out, out_len, EVP_MAX_MD_SIZE) != 1) {
        m->key = NULL; /* state unknown: key afresh next time */
        return -1;
    }
    return 0;
}

int sig_mac_hex(sig_mac *m, sig_alg alg, const void *key, size_t key_len, const void *data,
                size_t len, char out[SIG_HEX_MAX])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    int rc = mac_raw(m, alg, key, key_len, data, len, mac, &mac_len);
    if (rc == 0)
        to_hex(mac, mac_len, out);
    OPENSSL_cleanse(mac, sizeof mac);
    return rc;
}

int sig_hmac_hex(sig_alg alg, const void *key, size_t key_len, const void *data, size_t len,
                 char out[SIG_HEX_MAX])
{
    sig_mac once = {0};
    int rc = sig_mac_hex(&once, alg, key, key_len, data, len, out);
    sig_mac_free(&once);
    return rc;
}

void sig_mac_free(sig_mac *m)
{
    if (!m)
        return;
    EVP_MAC_CTX_free(m->ctx);
    m->ctx = NULL;
    m->key = NULL;
}

/* Decodes exactly n bytes of lowercase hex. Returns 0, or -1 for anything else. */
static int unhex(const char *s, unsigned char *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        out[i / 2] = (unsigned char)(i % 2 ? (out[i / 2] << 4) | v : v);
    }
    return 0;
}

int sig_verify_job(const job *j, const keyring *keys, unsigned accept_mask, buf *scratch,
                   mr_error *err)
{
    sig_mac once = {0};
    int rc = sig_verify_job_with(j, keys, accept_mask, scratch, &once, err);
    sig_mac_free(&once);
    return rc;
}

int sig_verify_job_with(const job *j, const keyring *keys, unsigned accept_mask, buf *scratch,
                        sig_mac *mac, mr_error *err)
{
    int rc = -1;
    sig_alg alg;
    unsigned char want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
    size_t got_len = 0;
    const keyring_key *key = keyring_find(keys, j->kid);
    if (!key) {
        mr_fail(err, MAILROOM_EINVAL, "signature: unknown kid '%s'", j->kid);
        goto out;
    }
    if (sig_alg_parse(j->alg, &alg) != 0 || !(accept_mask & (1u << alg))) {
        mr_fail(err, MAILROOM_EINVAL, "signature: algorithm '%s' not accepted", j->alg);
        goto out;
    }
    size_t md_len = sig_hex_len(alg) / 2;
    if (unhex(j->sig, want, md_len) != 0) {
        mr_fail(err, MAILROOM_EINVAL,
                "signature: malformed sig (expected %zu lowercase hex digits)", 2 * md_len);
        goto out;
    }
    buf_reset(scratch);
    if (sig_canonical(j->root, scratch) != 0 ||
        mac_raw(mac, alg, key->secret, key->secret_len, scratch->data, scratch->len, got,
                &got_len) != 0) {
        mr_fail(err, MAILROOM_EINVAL, "signature: cannot compute HMAC");
        goto out;
    }
    if (got_len != md_len || CRYPTO_memcmp(want, got, md_len) != 0) {
        mr_fail(err, MAILROOM_EINVAL,
                "signature: HMAC mismatch (forged or altered job, or wrong key)");
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(got, sizeof got);
    return rc;
}
