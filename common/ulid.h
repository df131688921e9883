/*
 * ulid: time-ordered job ids. 48 bits of milliseconds since the epoch and 80 random
 * bits from OpenSSL's RAND_bytes, in Crockford base32: 26 characters that sort in
 * creation order (to the millisecond) and never repeat in practice.
 */
#ifndef MAILROOM_ULID_H
#define MAILROOM_ULID_H

#include <stdint.h>

#define ULID_LEN 26

/* Writes a new ULID and its NUL into out. Returns 0, or -1 when RAND_bytes failed. */
int ulid_new(int64_t now_ms, char out[ULID_LEN + 1]);

#endif
