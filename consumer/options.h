/*
 * options: mailroom-consumer's options, described once in one table (options.c) from
 * which getopt's long options, `--help`, the environment variable of every option and
 * the defaults all come, as curl describes its options once. Each value is taken from
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

/* The values, raw: strings point into argv, the environment or the table (borrowed;
 * they outlive the options). Durations are in ms. */
typedef struct consumer_options {
    const char *redis, *queue, *smtp, *smtp_tls, *smtp_ca_file, *smtp_user, *id;
    const char *accept_alg, *log_format, *log_level, *ehlo_name;
    const char *http; /* metrics: --http [ADDR:]PORT; NULL: off */
    int smtp_insecure;
    long concurrency, max_attempts, dead_max, max_per_connection;
    int64_t backoff_base, backoff_max, max_lifetime, dead_after, shutdown_timeout;
    int64_t status_ttl, smtp_timeout, smtp_connect_timeout, smtp_idle, block_timeout;
    int64_t max_clock_skew;
    int redis_on_command_line; /* --redis was given: it must not hold a password */
} consumer_options;

typedef enum options_result {
    OPTIONS_RUN = 0, /* parsed: run the consumer */
    OPTIONS_EXIT,    /* --help or --version was printed: exit 0 */
    OPTIONS_USAGE    /* bad usage: err says why, exit 64 */
} options_result;

/* The table: one row per option. */
typedef enum option_kind { K_STRING, K_FLAG, K_LONG, K_DURATION, K_HELP, K_VERSION } option_kind;

typedef struct option_spec {
    const char *name; /* --name */
    const char *env;  /* its environment variable; NULL for --help, --version */
    option_kind kind;
    const char *arg;     /* what --help calls the value */
    const char *def;     /* the default, as text (parsed like any value); NULL: none */
    const char *choices; /* K_STRING: the values allowed, "a|b"; NULL: any */
    int64_t min, max;    /* K_LONG, K_DURATION (ms): the bounds */
    size_t offset;       /* the field of consumer_options */
    const char *help;
} option_spec;

extern const option_spec options_table[];
extern const size_t options_count;

/* The value of row `spec` in o as text: a string as set ("" when unset), a flag 0 or
 * 1, a number in its base unit (durations in ms). For tests and diagnostics. */
void options_value_text(const consumer_options *o, const option_spec *spec, char *out, size_t cap);

/* Parses argv over the environment over the defaults into *out. */
options_result options_parse(int argc, char **argv, consumer_options *out, mr_error *err);

/* Prints --help, generated from the table. */
void options_usage(FILE *out);

#endif
