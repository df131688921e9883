/*
 * suppress: the one spelling of an address on the suppression list (docs/redis.md),
 * shared by the consumer (which adds and checks entries) and the library (which lists,
 * adds, removes and checks them), so that both find the same key.
 */
#ifndef MAILROOM_SUPPRESS_H
#define MAILROOM_SUPPRESS_H

#include <stddef.h>

#include "address.h"
#include "error.h"

#define SUPPRESS_FOR_DEFAULT_MS (30LL * 24 * 3600 * 1000) /* as Postal keeps them */

/*
 * The suppression form of a bare address (len bytes at s): its envelope form (the
 * domain as A-labels, as RCPT TO sends it) with every ASCII letter in lower case.
 * Returns 0, or -1 with err saying why the address is not valid.
 */
int suppress_address(const char *s, size_t len, char out[ADDR_SPEC_MAX + 1], mr_error *err);

#endif
