/* opttable: see opttable.h. A table is the only description of its options. */
#define _GNU_SOURCE
#include "opttable.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "mailroom_version.h"

#define OPT_BASE 256
#define OPT_MAX_ROWS 64

/* 1 when value is one of the '|'-separated choices. */
static int among(const char *value, const char *choices)
{
    size_t n = strlen(value);
    for (const char *p = choices; p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, value, n) == 0)
            return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

static int set_long(const opttable_spec *s, const char *text, long *dst, mr_error *err)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < s->min || v > s->max)
        return mr_fail(err, MAILROOM_EINVAL, "'%.40s' is not a whole number from %lld to %lld",
                       text, (long long)s->min, (long long)s->max);
    *dst = v;
    return 0;
}

static int set_duration(const opttable_spec *s, const char *text, int64_t *dst, mr_error *err)
{
    int64_t ms;
    if (mr_duration_parse(text, &ms, err) != 0)
        return -1;
    if (ms < s->min || ms > s->max)
        return mr_fail(err, MAILROOM_EINVAL, "'%.40s' is out of range (%lld ms to %lld ms)", text,
                       (long long)s->min, (long long)s->max);
    *dst = ms;
    return 0;
}

static int set_flag(const char *text, int *dst, mr_error *err)
{
    if (among(text, "1|true|yes|on"))
        *dst = 1;
    else if (among(text, "0|false|no|off"))
        *dst = 0;
    else
        return mr_fail(err, MAILROOM_EINVAL, "'%.40s' is not 1 or 0", text);
    return 0;
}

/* Stores one option's value, given as text (a flag's presence is "1"). */
static int set_value(const opttable_spec *s, const char *text, void *base, mr_error *err)
{
    void *dst = (char *)base + s->offset;
    switch (s->kind) {
    case OPT_STRING:
        if (s->choices && !among(text, s->choices))
            return mr_fail(err, MAILROOM_EINVAL, "'%.40s' is not one of %s", text, s->choices);
        *(const char **)dst = text;
        return 0;
    case OPT_FLAG: return set_flag(text, dst, err);
    case OPT_LONG: return set_long(s, text, dst, err);
    case OPT_DURATION: return set_duration(s, text, dst, err);
    default: return 0;
    }
}

/* Defaults, then the environment. */
static int apply_defaults_and_env(const opttable *t, void *base, mr_error *err)
{
    for (size_t i = 0; i < t->n; i++) {
        const opttable_spec *s = &t->specs[i];
        if (s->def && set_value(s, s->def, base, err) != 0)
            return mr_prefix(err, "default of --%s", s->name);
        const char *env = s->env ? getenv(s->env) : NULL;
        if (env && *env && set_value(s, env, base, err) != 0)
            return mr_prefix(err, "%s", s->env);
    }
    return 0;
}

static void build_longopts(const opttable *t, struct option *longopts)
{
    for (size_t i = 0; i < t->n; i++) {
        int has_arg = t->specs[i].kind == OPT_FLAG || t->specs[i].kind >= OPT_HELP
                          ? no_argument
                          : required_argument;
        longopts[i] = (struct option){t->specs[i].name, has_arg, NULL, OPT_BASE + (int)i};
    }
    longopts[t->n] = (struct option){NULL, 0, NULL, 0};
}

/* Why getopt refused the word before optind. OPTTABLE_USAGE. */
static opttable_result refused(char **argv, mr_error *err)
{
    if (optopt > 0 && optopt < OPT_BASE)
        mr_fail(err, MAILROOM_EINVAL, "unknown option -%c", optopt);
    else
        mr_fail(err, MAILROOM_EINVAL, "unknown option or missing value: %.80s", argv[optind - 1]);
    return OPTTABLE_USAGE;
}

opttable_result opttable_parse(const opttable *t, int argc, char **argv, void *base,
                               uint64_t *given, mr_error *err)
{
    struct option longopts[OPT_MAX_ROWS + 1];
    if (t->n > OPT_MAX_ROWS) {
        mr_fail(err, MAILROOM_EINVAL, "option table too large");
        return OPTTABLE_USAGE;
    }
    build_longopts(t, longopts);
    if (given)
        *given = 0;
    if (apply_defaults_and_env(t, base, err) != 0)
        return OPTTABLE_USAGE;
    int opt;
    opterr = 0;
    optind = 0; /* 0, not 1: glibc's getopt then forgets a cluster left half read */
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt < OPT_BASE || opt >= OPT_BASE + (int)t->n)
            return refused(argv, err);
        size_t row = (size_t)(opt - OPT_BASE);
        const opttable_spec *s = &t->specs[row];
        if (s->kind == OPT_HELP) {
            opttable_usage(t, stdout);
            return OPTTABLE_EXIT;
        }
        if (s->kind == OPT_VERSION) {
            printf("%s %s\n", t->program, MAILROOM_VERSION_STRING);
            return OPTTABLE_EXIT;
        }
        if (set_value(s, s->kind == OPT_FLAG ? "1" : optarg, base, err) != 0) {
            mr_prefix(err, "--%s", s->name);
            return OPTTABLE_USAGE;
        }
        if (given)
            *given |= (uint64_t)1 << row;
    }
    if (optind < argc) {
        mr_fail(err, MAILROOM_EINVAL, "unexpected argument '%.80s'", argv[optind]);
        return OPTTABLE_USAGE;
    }
    return OPTTABLE_RUN;
}

/* Writes text from column `indent` (the cursor is there), wrapped at spaces before
 * column `width`, continuation lines indented; then a newline. */
static void put_wrapped(FILE *out, const char *text, int indent, int width)
{
    int col = indent;
    for (const char *p = text; *p;) {
        size_t word = strcspn(p, " ");
        if (col > indent && col + 1 + (int)word > width) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", (int)word, p);
        col += (int)word;
        p += word;
        p += strspn(p, " ");
    }
    fputc('\n', out);
}

void opttable_usage(const opttable *t, FILE *out)
{
    fputs(t->usage, out);
    for (size_t i = 0; i < t->n; i++) {
        const opttable_spec *s = &t->specs[i];
        char left[64], right[640];
        snprintf(left, sizeof left, "--%s%s%s", s->name, s->arg ? " " : "", s->arg ? s->arg : "");
        snprintf(right, sizeof right, "%s%s%s%s%s%s", s->help, s->env ? " (" : "",
                 s->env ? s->env : "", s->def ? ", default " : "", s->def ? s->def : "",
                 s->env ? ")" : "");
        fprintf(out, "  %-28s ", left);
        put_wrapped(out, right, 31, 96);
    }
    fputs(t->footer, out);
}
