/*
 * options: mailroom-webhook's options, one table (options.c, read by common/opttable.c)
 * from which getopt, `--help`, the environment variable of every option and the
 * defaults come. The secret that signs the deliveries is never an option: it comes
 * from MAILROOM_WEBHOOK_SECRET_FILE or MAILROOM_WEBHOOK_SECRET (config.c).
 */
#ifndef MAILROOM_WEBHOOK_OPTIONS_H
#define MAILROOM_WEBHOOK_OPTIONS_H

#include <stdint.h>

#include "error.h"
#include "opttable.h"

/* The values, raw: strings are borrowed (argv, the environment, the table); durations
 * in ms. */
typedef struct webhook_options {
    const char *url, *redis, *queue, *group, *id, *start, *ca_file, *log_format, *log_level;
    int allow_http;
    long max_retrying;
    int64_t timeout, connect_timeout, backoff_base, backoff_max, max_age, claim_after;
    int redis_on_command_line; /* --redis was given: it must not hold a password */
} webhook_options;

extern const opttable webhook_opttable;

/* Parses argv over the environment over the defaults into *out. */
opttable_result webhook_options_parse(int argc, char **argv, webhook_options *out, mr_error *err);

#endif
