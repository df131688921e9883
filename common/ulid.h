/*
 * ulid: time-ordered job ids. 48 bits of milliseconds since the epoch and 80 random
 * bits from OpenSSL's RAND_bytes, in Crockford base32: 26 characters that sort in
 * creation order (to the millisecond) and never repeat in practice.
 */
#ifndef MAILROOM_ULID_H
#define MAILROOM_ULID_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ULID_LEN 26
#define ULID_RANDOM_BYTES 10
#define ULID_POOL_IDS 32 /* ids' worth of randomness drawn per RAND_bytes call */

/* Writes a new ULID and its NUL into out. Returns 0, or -1 when RAND_bytes failed. */
int ulid_new(int64_t now_ms, char out[ULID_LEN + 1]);

/*
 * Randomness for many ULIDs, drawn from RAND_bytes in blocks (one call per
 * ULID_POOL_IDS ids instead of one per id). A pool filled before a fork() is never
 * used by the child: it is refilled when the process id changes. Zero it to start;
 * ulid_source_clear wipes it. Not thread-safe: one per handle.
 */
typedef struct ulid_source {
    unsigned char pool[ULID_POOL_IDS * ULID_RANDOM_BYTES];
    size_t used; /* bytes of pool consumed */
    pid_t pid;   /* the process that filled it; 0 while empty (no process has pid 0) */
} ulid_source;

/* Like ulid_new, taking the random part from src. Returns 0, or -1. */
int ulid_next(ulid_source *src, int64_t now_ms, char out[ULID_LEN + 1]);
void ulid_source_clear(ulid_source *src);

#endif
