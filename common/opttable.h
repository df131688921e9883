/*
 * opttable: a program's options described once, in one table, from which getopt's
 * long options, `--help`, the environment variable of every option and the defaults
 * all come (the shape of consumer/options.c, for any program: mailroom-webhook uses
 * it). Each value is taken from the command line, else from its environment variable,
 * else from its default, checked against the row's bounds or choices, and stored at
 * the row's offset in the program's own options structure. Durations go through the
 * project's one duration parser and are stored in ms (int64_t); numbers are long;
 * flags int; strings are borrowed pointers into argv, the environment or the table.
 * Secrets are never options.
 */
#ifndef MAILROOM_OPTTABLE_H
#define MAILROOM_OPTTABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

typedef enum opttable_kind {
    OPT_STRING,
    OPT_FLAG,
    OPT_LONG,
    OPT_DURATION,
    OPT_HELP,
    OPT_VERSION
} opttable_kind;

/* One row: one option. */
typedef struct opttable_spec {
    const char *name; /* --name */
    const char *env;  /* its environment variable; NULL for --help, --version */
    opttable_kind kind;
    const char *arg;     /* what --help calls the value */
    const char *def;     /* the default, as text (parsed like any value); NULL: none */
    const char *choices; /* OPT_STRING: the values allowed, "a|b"; NULL: any */
    int64_t min, max;    /* OPT_LONG, OPT_DURATION (ms): the bounds */
    size_t offset;       /* where the value goes in the options structure */
    const char *help;
} opttable_spec;

/* A program's table and what its --help and --version say around it. */
typedef struct opttable {
    const opttable_spec *specs;
    size_t n;
    const char *program; /* "mailroom-webhook": --version prints it with the version */
    const char *usage;   /* the text before the options (ends with a newline) */
    const char *footer;  /* the text after them (ends with a newline) */
} opttable;

typedef enum opttable_result {
    OPTTABLE_RUN = 0, /* parsed: run the program */
    OPTTABLE_EXIT,    /* --help or --version was printed: exit 0 */
    OPTTABLE_USAGE    /* bad usage: err says why (the option and the value), exit 64 */
} opttable_result;

/*
 * Parses argv over the environment over the defaults into the structure at base
 * (which the caller zeroes first: an option without a default stays 0 or NULL).
 * *given (may be NULL) gets a bit per row (1 << index, rows 0 to 63)
 * for the options given on the command line, for checks such as "no password in a
 * --redis URL". Operands are refused.
 */
opttable_result opttable_parse(const opttable *t, int argc, char **argv, void *base,
                               uint64_t *given, mr_error *err);

/* Prints --help, generated from the table: each option, its value, its variable and
 * its default. */
void opttable_usage(const opttable *t, FILE *out);

#endif
