/*
 * test_sig: the canonical form and HMAC against tests/vectors/signing.json (generated
 * by an independent Python implementation), then verification: genuine jobs pass;
 * altered, wrongly keyed, unknown-kid, malformed-sig and refused-algorithm jobs fail.
 * Also the reusable HMAC context across keys and algorithms, and the key ring's
 * loading rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "job.h"
#include "keyring.h"
#include "sig.h"

#define VECTORS MAILROOM_SOURCE_DIR "/tests/vectors/signing.json"

static json_object *load_vectors(void)
{
    json_object *root = json_object_from_file(VECTORS);
    assert_non_null(root);
    return root;
}

static const char *str_of(json_object *o, const char *key)
{
    json_object *v = NULL;
    assert_true(json_object_object_get_ex(o, key, &v));
    return json_object_get_string(v);
}

static void test_vectors_canonical_and_hmac(void **state)
{
    (void)state;
    json_object *root = load_vectors();
    json_object *vectors = NULL;
    assert_true(json_object_object_get_ex(root, "vectors", &vectors));
    size_t n = json_object_array_length(vectors);
    assert_true(n >= 8);
    size_t sha256 = 0;
    sig_mac mac = {0};
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(vectors, i), *jobj = NULL;
        assert_true(json_object_object_get_ex(v, "job", &jobj));
        buf canon = BUF_INIT;
        assert_int_equal(sig_canonical(jobj, &canon), 0);
        const char *want = str_of(v, "canonical");
        if (strcmp(canon.data, want) != 0)
            fail_msg("vector %s: canonical\n got %s\nwant %s", str_of(v, "name"), canon.data, want);
        sig_alg alg;
        assert_int_equal(sig_alg_parse(str_of(v, "alg"), &alg), 0);
        sha256 += alg == SIG_HMAC_SHA256;
        const char *key = str_of(v, "key");
        char hex[SIG_HEX_MAX];
        assert_int_equal(sig_hmac_hex(alg, key, strlen(key), canon.data, canon.len, hex), 0);
        assert_string_equal(hex, str_of(v, "sig"));
        /* the reusable context: keyed afresh for each vector's key and algorithm, then
         * re-initialised for the same key */
        for (int again = 0; again < 2; again++) {
            memset(hex, 0, sizeof hex);
            assert_int_equal(sig_mac_hex(&mac, alg, key, strlen(key), canon.data, canon.len, hex), 0);
            assert_string_equal(hex, str_of(v, "sig"));
        }
        buf_free(&canon);
    }
    assert_true(sha256 >= 2);
    sig_mac_free(&mac);
    sig_mac_free(&mac); /* a freed context can be freed again */
    sig_mac_free(NULL);
    json_object_put(root);
}

static void test_vectors_canonical_only(void **state)
{
    (void)state;
    json_object *root = load_vectors();
    json_object *list = NULL;
    assert_true(json_object_object_get_ex(root, "canonical_only", &list));
    size_t n = json_object_array_length(list);
    assert_true(n >= 2);
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(list, i), *obj = NULL;
        assert_true(json_object_object_get_ex(v, "object", &obj));
        buf canon = BUF_INIT;
        assert_int_equal(sig_canonical(obj, &canon), 0);
        assert_string_equal(canon.data, str_of(v, "canonical"));
        buf_free(&canon);
    }
    json_object_put(root);
}

/* The DESIGN example of the ambiguity the length prefixes remove. */
static void test_canonical_is_unambiguous(void **state)
{
    (void)state;
    json_object *a = json_tokener_parse("{\"b\":\"\",\"a\":\"bc\"}");
    json_object *b = json_tokener_parse("{\"a\":\"b\",\"b\":\"c\"}");
    buf ca = BUF_INIT, cb = BUF_INIT;
    assert_int_equal(sig_canonical(a, &ca), 0);
    assert_int_equal(sig_canonical(b, &cb), 0);
    assert_string_equal(ca.data, "1:as2:bc1:bs0:");
    assert_string_equal(cb.data, "1:as1:b1:bs1:c");
    json_object *num = json_tokener_parse("{\"a\":1}");
    buf cn = BUF_INIT;
    assert_int_equal(sig_canonical(num, &cn), -1);
    buf_free(&ca);
    buf_free(&cb);
    buf_free(&cn);
    json_object_put(a);
    json_object_put(b);
    json_object_put(num);
}

/*
 * The raw job of one vector as a producer would have sent it: the vector's job with
 * its expected "sig" added (nothing is signed here). kr is emptied and then holds
 * only the vector's key, under the kid the job names ("default", or a rotated one).
 * The caller frees the string.
 */
static char *signed_raw(json_object *vec, keyring *kr)
{
    json_object *jobj = NULL;
    assert_true(json_object_object_get_ex(vec, "job", &jobj));
    json_object *copy = NULL;
    assert_int_equal(json_object_deep_copy(jobj, &copy, NULL), 0);
    json_object_object_add(copy, "sig", json_object_new_string(str_of(vec, "sig")));
    const char *key = str_of(vec, "key");
    json_object *kid = NULL;
    json_object_object_get_ex(copy, "kid", &kid);
    char err[128];
    keyring_clear(kr);
    assert_int_equal(keyring_add(kr, json_object_get_string(kid), key, strlen(key), err,
                                 sizeof err), 0);
    char *raw = strdup(json_object_to_json_string_ext(copy, JSON_C_TO_STRING_PLAIN));
    json_object_put(copy);
    return raw;
}

static int verify_raw(const char *raw, const keyring *kr, unsigned mask, char *err, size_t cap)
{
    job j;
    char jerr[JOB_ERR_MAX];
    buf scratch = BUF_INIT;
    int rc = job_decode(raw, strlen(raw), &j, jerr);
    if (rc != 0)
        snprintf(err, cap, "decode: %.200s", jerr);
    else
        rc = sig_verify_job(&j, kr, mask, &scratch, err, cap);
    job_clear(&j);
    buf_free(&scratch);
    return rc;
}

/*
 * A copy of raw (which holds exactly one "sig" member) whose signature is replaced by
 * the first n characters of the old one followed by pad repeated while the result is
 * shorter than n (pad NULL: no padding). The caller frees it.
 */
static char *sig_replaced(const char *raw, size_t n, const char *pad)
{
    const char *start = strstr(raw, "\"sig\":\"");
    assert_non_null(start);
    start += 7;
    const char *end = strchr(start, '"');
    assert_non_null(end);
    buf out = BUF_INIT;
    size_t old_len = (size_t)(end - start);
    buf_append(&out, raw, (size_t)(start - raw));
    buf_append(&out, start, n < old_len ? n : old_len);
    for (size_t i = old_len; pad && i < n; i++)
        buf_append(&out, pad, 1);
    buf_puts(&out, end);
    return out.data;
}

static void test_verify_genuine_and_forged(void **state)
{
    (void)state;
    json_object *root = load_vectors(), *vectors = NULL;
    json_object_object_get_ex(root, "vectors", &vectors);
    keyring kr = {0};
    char err[256];
    const unsigned both = 3u;
    for (size_t i = 0; i < json_object_array_length(vectors); i++) {
        json_object *v = json_object_array_get_idx(vectors, i);
        char *raw = signed_raw(v, &kr);
        if (verify_raw(raw, &kr, both, err, sizeof err) != 0)
            fail_msg("vector %s should verify: %s", str_of(v, "name"), err);
        /* one flipped hex digit of the signature */
        char *p = strstr(raw, "\"sig\":\"") + 7;
        *p = *p == '0' ? '1' : '0';
        assert_int_equal(verify_raw(raw, &kr, both, err, sizeof err), -1);
        assert_non_null(strstr(err, "HMAC mismatch"));
        free(raw);
    }
    keyring_clear(&kr);
    json_object_put(root);
}

static void test_verify_refusals(void **state)
{
    (void)state;
    json_object *root = load_vectors(), *vectors = NULL;
    json_object_object_get_ex(root, "vectors", &vectors);
    json_object *v = json_object_array_get_idx(vectors, 0);
    keyring kr = {0};
    char err[256];
    char *raw = signed_raw(v, &kr);
    sig_alg alg;
    sig_alg_parse(str_of(v, "alg"), &alg);
    /* algorithm not accepted */
    unsigned other = 1u << (alg == SIG_HMAC_SHA1 ? SIG_HMAC_SHA256 : SIG_HMAC_SHA1);
    assert_int_equal(verify_raw(raw, &kr, other, err, sizeof err), -1);
    assert_non_null(strstr(err, "not accepted"));
    /* right kid, wrong secret */
    keyring wrong = {0};
    assert_int_equal(keyring_add(&wrong, kr.keys[0].kid, "another-secret-of-20b", 21, err,
                                 sizeof err), 0);
    assert_int_equal(verify_raw(raw, &wrong, 3u, err, sizeof err), -1);
    assert_non_null(strstr(err, "HMAC mismatch"));
    keyring_clear(&wrong);
    /* unknown kid */
    assert_int_equal(keyring_add(&wrong, "other", "another-secret-of-20b", 21, err, sizeof err), 0);
    assert_int_equal(verify_raw(raw, &wrong, 3u, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown kid"));
    keyring_clear(&wrong);
    /* upper-case hex is malformed; the job stays good otherwise */
    char *p = strstr(raw, "\"sig\":\"") + 7;
    char saved = *p;
    *p = 'A';
    assert_int_equal(verify_raw(raw, &kr, 3u, err, sizeof err), -1);
    assert_non_null(strstr(err, "malformed sig"));
    *p = saved;
    assert_int_equal(verify_raw(raw, &kr, 3u, err, sizeof err), 0);
    /* a signature one hex digit short is malformed */
    char *shorter = sig_replaced(raw, strlen(str_of(v, "sig")) - 1, NULL);
    assert_int_equal(verify_raw(shorter, &kr, 3u, err, sizeof err), -1);
    assert_non_null(strstr(err, "malformed sig"));
    free(shorter);
    /* an altered subject */
    char *subj = strstr(raw, "\"subject\":\"") + 11;
    *subj = *subj == 'x' ? 'y' : 'x';
    assert_int_equal(verify_raw(raw, &kr, 3u, err, sizeof err), -1);
    assert_non_null(strstr(err, "HMAC mismatch"));
    free(raw);
    keyring_clear(&kr);
    json_object_put(root);
}

/* A SHA-256 job carrying a signature of SHA-1's length (40 hex digits, the true
 * signature's start) is malformed, not checked against a shorter HMAC. */
static void test_verify_sha1_length_on_sha256_job(void **state)
{
    (void)state;
    json_object *root = load_vectors(), *vectors = NULL;
    json_object_object_get_ex(root, "vectors", &vectors);
    json_object *v = NULL;
    for (size_t i = 0; !v && i < json_object_array_length(vectors); i++) {
        json_object *c = json_object_array_get_idx(vectors, i);
        if (strcmp(str_of(c, "alg"), "hmac-sha256") == 0)
            v = c;
    }
    assert_non_null(v);
    keyring kr = {0};
    char err[256];
    char *raw = signed_raw(v, &kr);
    assert_int_equal(verify_raw(raw, &kr, 3u, err, sizeof err), 0);
    assert_int_equal(strlen(str_of(v, "sig")), 64);
    char *sha1_len = sig_replaced(raw, 40, NULL);
    assert_non_null(strstr(sha1_len, "\"sig\":\""));
    assert_int_equal(verify_raw(sha1_len, &kr, 3u, err, sizeof err), -1);
    assert_non_null(strstr(err, "malformed sig"));
    free(sha1_len);
    /* and one hex digit too many */
    char *longer = sig_replaced(raw, 65, "0");
    assert_int_equal(verify_raw(longer, &kr, 3u, err, sizeof err), -1);
    assert_non_null(strstr(err, "malformed sig"));
    free(longer);
    free(raw);
    keyring_clear(&kr);
    json_object_put(root);
}

/*
 * One sig_mac context through a series of (algorithm, key length) pairs over the same
 * key buffer: the context compares the key by address, so it must also notice a new
 * algorithm or length at that address and key itself afresh. Each result is compared
 * with the one-shot sig_hmac_hex; then once more after sig_mac_free.
 */
static void test_sig_mac_rekeying(void **state)
{
    (void)state;
    static const char key[] = "0123456789abcdef-second-half-of-";
    static const struct {
        sig_alg alg;
        size_t key_len;
    } steps[] = {
        {SIG_HMAC_SHA1, 32}, {SIG_HMAC_SHA256, 32}, {SIG_HMAC_SHA256, 16},
        {SIG_HMAC_SHA1, 16}, {SIG_HMAC_SHA1, 32},
    };
    static const char data[] = "1:as2:bc1:bs0:";
    assert_int_equal(sizeof key - 1, 32);
    sig_mac mac = {0};
    char got[SIG_HEX_MAX], want[SIG_HEX_MAX], prev[SIG_HEX_MAX] = "";
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        assert_int_equal(sig_hmac_hex(steps[i].alg, key, steps[i].key_len, data,
                                      sizeof data - 1, want), 0);
        memset(got, 0, sizeof got);
        assert_int_equal(sig_mac_hex(&mac, steps[i].alg, key, steps[i].key_len, data,
                                     sizeof data - 1, got), 0);
        if (strcmp(got, want) != 0)
            fail_msg("step %zu: got %s, want %s", i, got, want);
        assert_int_equal(strlen(got), steps[i].alg == SIG_HMAC_SHA256 ? 64 : 40);
        assert_string_not_equal(got, prev); /* every step really changes the MAC */
        memcpy(prev, got, sizeof prev);
    }
    /* freed, the context is keyed again on its next use */
    sig_mac_free(&mac);
    assert_null(mac.ctx);
    assert_int_equal(sig_hmac_hex(SIG_HMAC_SHA256, key, 32, data, sizeof data - 1, want), 0);
    memset(got, 0, sizeof got);
    assert_int_equal(sig_mac_hex(&mac, SIG_HMAC_SHA256, key, 32, data, sizeof data - 1, got), 0);
    assert_string_equal(got, want);
    sig_mac_free(&mac);
}

static void test_keyring_rules(void **state)
{
    (void)state;
    keyring kr = {0};
    char err[256];
    assert_int_equal(keyring_add(&kr, "k", "short", 5, err, sizeof err), -1);
    assert_non_null(strstr(err, "shorter than 16"));
    assert_int_equal(keyring_add(&kr, "k", "0123456789abcdef", 16, err, sizeof err), 0);
    assert_int_equal(keyring_add(&kr, "k", "0123456789abcdef", 16, err, sizeof err), -1);
    keyring_clear(&kr);

    char path[] = "/tmp/mailroom-keys-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# rotation\n\nnew  secret-number-two-2026\nold secret-number-one-2025  \n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(keyring_load_file(&kr, path, err, sizeof err), 0);
    assert_int_equal(kr.n, 2);
    assert_string_equal(kr.keys[0].kid, "new");
    assert_int_equal(kr.keys[1].secret_len, strlen("secret-number-one-2025"));
    assert_non_null(keyring_find(&kr, "old"));
    assert_null(keyring_find(&kr, "missing"));
    keyring_clear(&kr);

    FILE *f = fopen(path, "w");
    fputs("good secret-number-one-2025\nbad tooshort\n", f);
    fclose(f);
    assert_int_equal(keyring_load_file(&kr, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "line 2"));
    assert_null(strstr(err, "tooshort"));
    keyring_clear(&kr);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_canonical_and_hmac),
        cmocka_unit_test(test_vectors_canonical_only),
        cmocka_unit_test(test_canonical_is_unambiguous),
        cmocka_unit_test(test_verify_genuine_and_forged),
        cmocka_unit_test(test_verify_refusals),
        cmocka_unit_test(test_verify_sha1_length_on_sha256_job),
        cmocka_unit_test(test_sig_mac_rekeying),
        cmocka_unit_test(test_keyring_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
