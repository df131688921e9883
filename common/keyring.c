/*
 * keyring: signing keys from the environment or a keys file (see keyring.h).
 * Secrets are copied into memory the ring owns and wiped with OPENSSL_cleanse when the
 * ring is cleared; error messages name the kid or the line, never the secret.
 */
#define _POSIX_C_SOURCE 200809L
#include "keyring.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int keyring_kid_valid(const char *kid)
{
    size_t n = strlen(kid);
    if (n == 0 || n > 64)
        return 0;
    return strspn(kid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

int keyring_add(keyring *kr, const char *kid, const void *secret, size_t len, mr_error *err)
{
    if (!keyring_kid_valid(kid))
        return mr_fail(err, MAILROOM_EKEY, "key id '%.64s' must match [A-Za-z0-9._-]{1,64}", kid);
    if (kr->n == KEYRING_MAX_KEYS)
        return mr_fail(err, MAILROOM_EKEY, "more than %d keys", KEYRING_MAX_KEYS);
    if (len < KEYRING_MIN_SECRET)
        return mr_fail(err, MAILROOM_EKEY, "key '%s' is shorter than %d bytes", kid,
                       KEYRING_MIN_SECRET);
    if (keyring_find(kr, kid))
        return mr_fail(err, MAILROOM_EKEY, "key '%s' given twice", kid);
    keyring_key *k = &kr->keys[kr->n];
    k->kid = strdup(kid);
    k->secret = malloc(len);
    if (!k->kid || !k->secret) {
        free(k->kid);
        free(k->secret);
        k->kid = NULL;
        k->secret = NULL;
        return mr_fail(err, MAILROOM_ENOMEM, "out of memory");
    }
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    kr->n++;
    return 0;
}

/* One line of a keys file: "kid secret", the secret being the rest of the line with
 * surrounding blanks removed. Blank and '#' lines are skipped (returns 0). */
static int parse_line(keyring *kr, char *line, size_t lineno, mr_error *err)
{
    char *p = line + strspn(line, " \t");
    size_t end = strlen(p);
    while (end && strchr(" \t\r\n", p[end - 1]))
        p[--end] = '\0';
    if (*p == '\0' || *p == '#')
        return 0;
    char *kid = p;
    size_t kid_len = strcspn(p, " \t");
    if (p[kid_len] == '\0')
        return mr_fail(err, MAILROOM_EKEY, "keys file line %zu: expected \"kid secret\"", lineno);
    p[kid_len] = '\0';
    char *secret = p + kid_len + 1;
    secret += strspn(secret, " \t");
    if (keyring_add(kr, kid, secret, strlen(secret), err) != 0)
        return mr_prefix(err, "keys file line %zu", lineno);
    return 0;
}

int keyring_load_file(keyring *kr, const char *path, mr_error *err)
{
    int rc = -1;
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        mr_fail(err, MAILROOM_EKEY, "cannot open keys file %s: %s", path, strerror(errno));
        goto out;
    }
    while (getline(&line, &cap, f) != -1) {
        if (parse_line(kr, line, ++lineno, err) != 0)
            goto out;
    }
    if (kr->n == 0) {
        mr_fail(err, MAILROOM_EKEY, "keys file %s holds no key", path);
        goto out;
    }
    rc = 0;
out:
    if (line) {
        OPENSSL_cleanse(line, cap);
        free(line);
    }
    if (f)
        fclose(f);
    return rc;
}

int keyring_load_env(keyring *kr, mr_error *err)
{
    const char *file = getenv("MAILROOM_KEYS_FILE");
    if (file && *file)
        return keyring_load_file(kr, file, err);
    const char *secret = getenv("MAILROOM_SECRET");
    if (secret && *secret)
        return keyring_add(kr, "default", secret, strlen(secret), err);
    return mr_fail(err, MAILROOM_EKEY, "no signing key: set MAILROOM_SECRET or MAILROOM_KEYS_FILE");
}

const keyring_key *keyring_find(const keyring *kr, const char *kid)
{
    for (size_t i = 0; i < kr->n; i++)
        if (strcmp(kr->keys[i].kid, kid) == 0)
            return &kr->keys[i];
    return NULL;
}

void keyring_clear(keyring *kr)
{
    if (!kr)
        return;
    for (size_t i = 0; i < kr->n; i++) {
        OPENSSL_cleanse(kr->keys[i].secret, kr->keys[i].secret_len);
        free(kr->keys[i].secret);
        free(kr->keys[i].kid);
    }
    memset(kr, 0, sizeof *kr);
}
