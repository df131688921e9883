/*
 * config: mailroom-webhook's options, secrets and checks made into one webhook_config
 * (the shape of consumer/config.c). Everything that can be wrong with the
 * configuration is found here, before anything runs: a URL that carries credentials,
 * is not http(s), or is plain http to a host that is not loopback (without
 * --allow-http); a missing or short secret; names the stream refuses; a --claim-after
 * that would let another instance take over events this one is still retrying.
 */
#ifndef MAILROOM_WEBHOOK_CONFIG_H
#define MAILROOM_WEBHOOK_CONFIG_H

#include <stddef.h>

#include "error.h"
#include "keys.h"
#include "options.h"
#include "rconn.h"

#define WEBHOOK_SECRETS_MAX 4
#define WEBHOOK_SECRET_MIN 16
#define WEBHOOK_NAME_MAX 64
#define WEBHOOK_URL_MAX 2048

typedef struct webhook_config {
    webhook_options o;
    char id[WEBHOOK_NAME_MAX + 1];
    /* the URL as it may be shown (logs, the webhook hash): scheme, host, port and path,
     * without the query and fragment, which may carry tokens */
    char url_shown[WEBHOOK_URL_MAX];
    int http_remote; /* plain http to a host that is not loopback (--allow-http) */
    /* the signing secrets (owned, wiped when freed); every one signs each delivery */
    char *secrets[WEBHOOK_SECRETS_MAX];
    size_t secret_len[WEBHOOK_SECRETS_MAX];
    int n_secrets;
    rconn_url redis; /* for the delivery state's connection; may hold a password */
    keys_queue keys;
    char failed_key[KEYS_NAME_MAX + 8]; /* mailroom:{Q}:webhook:failed */
} webhook_config;

/* Checks o (copied into cfg) and loads the secrets. 0, or -1 with the reason in err
 * (never a secret): the caller exits 78. */
int webhook_config_load(webhook_config *cfg, const webhook_options *o, mr_error *err);

/* Wipes and frees the secrets and the Redis password. Accepts NULL. */
void webhook_config_free(webhook_config *cfg);

#endif
