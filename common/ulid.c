/*
 * ulid: see ulid.h. The 128 bits are written 5 bits at a time from the most
 * significant end (the first character carries only 3 bits).
 */
#include "ulid.h"

#include <openssl/rand.h>

int ulid_new(int64_t now_ms, char out[ULID_LEN + 1])
{
    static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    unsigned char bytes[16];
    uint64_t t = (uint64_t)now_ms;
    for (int i = 5; i >= 0; i--) {
        bytes[i] = (unsigned char)(t & 0xFF);
        t >>= 8;
    }
    if (RAND_bytes(bytes + 6, 10) != 1)
        return -1;
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
    return 0;
}
