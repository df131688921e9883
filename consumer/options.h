/*
 * options: mailroom-consumer's options, described once in one table (options.c, read by
 * common/opttable.c) from which getopt's long options, `--help`, the environment
 * variable of every option and the defaults all come, as curl describes its options
 * once. Each value is taken from
 * the command line, else from its environment variable, else from its default, and
 * checked against the table's bounds with the project's one duration parser.
 * Secrets are never options: they come from the files named by the environment
 * variables listed in the help's last section.
 *
 * Adding an option is one table row (and its field below, and whatever reads it).
 */
#ifndef MAILROOM_OPTIONS_H
#define MAILROOM_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "opttable.h"

/* The values, raw: strings point into argv, the environment or the table (borrowed;
 * they outlive the options), smtp is a copy. Durations are in ms. */
typedef struct consumer_options {
    const char *redis, *queue, *smtp_tls, *smtp_ca_file, *smtp_user, *id;
    const char *accept_alg, *log_format, *log_level, *ehlo_name;
    const char *rate, *rate_floor, *suppress_on;
    const char *http; /* --http [ADDR:]PORT; NULL: off */
    int smtp_insecure, retry_table;
    long concurrency, max_attempts, dead_max, max_per_connection;
    long relay_connections, circuit_failures;
    int64_t backoff_base, backoff_max, max_lifetime, dead_after, shutdown_timeout;
    int64_t status_ttl, smtp_timeout, smtp_connect_timeout, smtp_idle, block_timeout;
    int64_t max_clock_skew, circuit_probe_max, suppress_for;
    int redis_on_command_line;    /* --redis was given: it must not hold a password */
    char smtp[OPTTABLE_LIST_MAX]; /* the relays' URLs, comma separated (--smtp repeated) */
} consumer_options;

typedef enum options_result {
    OPTIONS_RUN = 0, /* parsed: run the consumer */
    OPTIONS_EXIT,    /* --help or --version was printed: exit 0 */
    OPTIONS_USAGE    /* bad usage: err says why, exit 64 */
} options_result;

extern const opttable_spec options_table[];
extern const size_t options_count;

/* The value of row `spec` in o as text: a string as set ("" when unset), a flag 0 or
 * 1, a number in its base unit (durations in ms). For tests and diagnostics. */
void options_value_text(const consumer_options *o, const opttable_spec *spec, char *out,
                        size_t cap);

/* Parses argv over the environment over the defaults into *out. */
options_result options_parse(int argc, char **argv, consumer_options *out, mr_error *err);

/* Prints --help, generated from the table. */
void options_usage(FILE *out);

#endif
