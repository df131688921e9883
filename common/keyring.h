/*
 * keyring: the signing keys, each a kid and a secret. Loaded from the environment:
 * MAILROOM_KEYS_FILE (lines "kid secret"; blank lines and '#' comments ignored) or
 * else MAILROOM_SECRET (kid "default"). The producer signs with the first key; the
 * consumer accepts any. Secrets shorter than KEYRING_MIN_SECRET bytes are refused.
 * The ring owns its memory and wipes the secrets when freed.
 */
#ifndef MAILROOM_KEYRING_H
#define MAILROOM_KEYRING_H

#include <stddef.h>

#include "error.h"

#define KEYRING_MIN_SECRET 16
#define KEYRING_MAX_KEYS 64

typedef struct keyring_key {
    char *kid;
    unsigned char *secret;
    size_t secret_len;
} keyring_key;

typedef struct keyring {
    keyring_key keys[KEYRING_MAX_KEYS];
    size_t n;
} keyring;

/* 1 when kid is a key id a job may carry: [A-Za-z0-9._-]{1,64}, the rule of keys
 * files, of mailroom_open and of the consumer's validator. */
int keyring_kid_valid(const char *kid);

/* Adds a key (copied). Returns 0, or -1 with the reason in err (MAILROOM_EKEY for an
 * invalid kid, a short secret, a kid given twice, too many keys). */
int keyring_add(keyring *kr, const char *kid, const void *secret, size_t len, mr_error *err);
/* Loads a keys file. Returns 0 or -1 with a reason naming the line. */
int keyring_load_file(keyring *kr, const char *path, mr_error *err);
/* MAILROOM_KEYS_FILE, else MAILROOM_SECRET; -1 when neither is set or either is bad. */
int keyring_load_env(keyring *kr, mr_error *err);
const keyring_key *keyring_find(const keyring *kr, const char *kid);
/* Wipes and frees every key; the ring is empty afterwards. Accepts NULL. */
void keyring_clear(keyring *kr);

#endif
