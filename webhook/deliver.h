/*
 * deliver: one POST of a signed delivery to the application, with libcurl (never a
 * hand-written HTTP client). One deliverer per process keeps one curl handle, so
 * connections to the application are reused between deliveries (keep-alive).
 *
 * A delivery is the event's JSON as the body, and the headers of docs/webhook.md:
 * Content-Type, X-Mailroom-Timestamp (Unix seconds), X-Mailroom-Signature ("v1=" and
 * the hex HMAC-SHA256 of timestamp "." body, one per secret), X-Mailroom-Delivery
 * (the delivery id, also in the body) and X-Mailroom-Attempt. Redirects are not
 * followed (a 3xx is a failure, like any answer that is not 2xx); only http and https
 * are spoken; certificates are verified.
 */
#ifndef MAILROOM_WEBHOOK_DELIVER_H
#define MAILROOM_WEBHOOK_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct deliverer deliverer; /* opaque: the curl handle and the configuration */

#define DELIVER_ERROR_MAX 256

/* What one attempt came to. */
typedef struct delivery_result {
    long status;                   /* the HTTP status; 0 when no answer came */
    char error[DELIVER_ERROR_MAX]; /* "" after a 2xx; else why, printable: "HTTP 500: <the
                                      start of the answer>", "timeout after 10000 ms", ... */
    int64_t duration_ms;
} delivery_result;

/* A new deliverer for cfg (borrowed: must outlive it), or NULL when memory ran out.
 * curl_global_init must have run. */
deliverer *deliverer_new(const webhook_config *cfg);

/* Frees the deliverer and its connections. Accepts NULL. */
void deliverer_free(deliverer *d);

/*
 * POSTs body (len bytes) as delivery delivery_id, attempt number attempt, signed now
 * with every secret of the configuration. Returns 1 when the application answered 2xx,
 * 0 otherwise (out says why), -1 when the request could not even be made (memory);
 * out is filled in every case.
 */
int deliver_post(deliverer *d, const char *body, size_t len, const char *delivery_id, int attempt,
                 delivery_result *out);

#endif
