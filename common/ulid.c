/*
 * ulid: see ulid.h. The 128 bits are written 5 bits at a time from the most
 * significant end (the first character carries only 3 bits).
 */
#include "ulid.h"

#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

/* Encodes 6 bytes of time and 10 random bytes as 26 base32 characters. */
static void encode(int64_t now_ms, const unsigned char random[ULID_RANDOM_BYTES],
                   char out[ULID_LEN + 1])
{
    static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    unsigned char bytes[16];
    uint64_t t = (uint64_t)now_ms;
    for (int i = 5; i >= 0; i--) {
        bytes[i] = (unsigned char)(t & 0xFF);
        t >>= 8;
    }
    memcpy(bytes + 6, random, ULID_RANDOM_BYTES);
    for (int c = 0; c < ULID_LEN; c++) {
        /* 26 characters hold 130 bits: the value is read as if two zero bits stood
         * above it, so character c starts at bit 5c - 2 counted from the top. */
        int bit = 5 * c - 2;
        unsigned v = 0;
        for (int k = 0; k < 5; k++) {
            int b = bit + k;
            v <<= 1;
            if (b >= 0)
                v |= (unsigned)(bytes[b / 8] >> (7 - b % 8)) & 1u;
        }
        out[c] = alphabet[v];
    }
    out[ULID_LEN] = '\0';
}

int ulid_new(int64_t now_ms, char out[ULID_LEN + 1])
{
    unsigned char random[ULID_RANDOM_BYTES];
    if (RAND_bytes(random, ULID_RANDOM_BYTES) != 1)
        return -1;
    encode(now_ms, random, out);
    return 0;
}

int ulid_next(ulid_source *src, int64_t now_ms, char out[ULID_LEN + 1])
{
    pid_t pid = getpid();
    if (src->pid != pid || src->used + ULID_RANDOM_BYTES > sizeof src->pool) {
        src->pid = 0;
        if (RAND_bytes(src->pool, (int)sizeof src->pool) != 1)
            return -1;
        src->used = 0;
        src->pid = pid;
    }
    encode(now_ms, src->pool + src->used, out);
    memset(src->pool + src->used, 0, ULID_RANDOM_BYTES); /* each byte serves one id */
    src->used += ULID_RANDOM_BYTES;
    return 0;
}

void ulid_source_clear(ulid_source *src)
{
    if (!src)
        return;
    memset(src->pool, 0, sizeof src->pool);
    src->used = 0;
    src->pid = 0;
}
