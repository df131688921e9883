/*
 * test_options: consumer/options.c, mailroom-consumer's option table. Deployments set
 * options through environment variables (docker-compose, systemd) and operators
 * override them on the command line, so the order must hold for every option: the
 * flag beats its environment variable, which beats the default. Until this table an
 * explicit --concurrency 8 lost to MAILROOM_CONCURRENCY, and only that option had a
 * variable at all; so each option is driven here through all three sources.
 *
 * Every row of the option table is driven through the three sources with two values
 * derived from the row itself (its bounds, its choices), so an option added to the
 * table is covered without a change here; the names deployments already use are
 * checked to stay. --help is parsed to check that it shows a variable for every
 * option but --help and --version, and lists exactly the table. Bad values, from a flag or from the environment, give
 * OPTIONS_USAGE and MAILROOM_EINVAL with a message naming the option or the variable
 * (nan and 5ms are the cases that used to slip through); --help and --version give
 * OPTIONS_EXIT. options_parse resets getopt's state itself (optind), which is checked
 * by parsing several argument lists in a row without resetting anything here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "mailroom_version.h"
#include "options.h"
#include "rconn.h"
#include "support.h"

/* The variables deployments already use (docker-compose, systemd units, docs): they
 * must not change name. */
static const struct {
    const char *name, *env;
} kept_names[] = {
    {"redis", "MAILROOM_REDIS_URL"},
    {"queue", "MAILROOM_QUEUE"},
    {"smtp", "MAILROOM_SMTP_URL"},
    {"smtp-tls", "MAILROOM_SMTP_TLS"},
    {"smtp-ca-file", "MAILROOM_SMTP_CA_FILE"},
    {"smtp-user", "MAILROOM_SMTP_USER"},
    {"concurrency", "MAILROOM_CONCURRENCY"},
    {"id", "MAILROOM_CONSUMER_ID"},
};

/* No option variable of the test's own environment may leak into the parses. */
static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < options_count; i++)
        if (options_table[i].env)
            unsetenv(options_table[i].env);
    return 0;
}

/*
 * Two values of an option, different from each other and from its default, derived
 * from its row alone (so that an option added to the table is covered here without a
 * line of this file): a and b as given on the command line or in the environment, and
 * a_text and b_text as options_value_text() shows them. Flags have only b (the flag
 * itself, "1"), a being "0".
 */
typedef struct two_values {
    char a[64], b[64], a_text[64], b_text[64];
} two_values;

static void number_pair(const opttable_spec *s, const char *def_text, two_values *v)
{
    const char *unit = s->kind == OPT_DURATION ? "ms" : "";
    long long cands[3] = {(long long)s->max, (long long)s->min, (long long)s->min + 1};
    int n = 0;
    for (int i = 0; i < 3 && n < 2; i++) {
        char text[64];
        snprintf(text, sizeof text, "%lld", cands[i]);
        if (strcmp(text, def_text) == 0 || (n == 1 && strcmp(text, v->a_text) == 0))
            continue;
        snprintf(n ? v->b : v->a, 64, "%lld%s", cands[i], unit);
        snprintf(n ? v->b_text : v->a_text, 64, "%s", text);
        n++;
    }
    assert_int_equal(n, 2);
}

static void string_pair(const opttable_spec *s, two_values *v)
{
    if (s->choices) { /* the first and the last choice: one of them is not the default */
        size_t first = strcspn(s->choices, "|");
        const char *last = strrchr(s->choices, '|');
        assert_non_null(last);
        snprintf(v->a, sizeof v->a, "%.*s", (int)first, s->choices);
        snprintf(v->b, sizeof v->b, "%s", last + 1);
        if (s->def && strcmp(v->a, s->def) == 0) {
            char t[64];
            memcpy(t, v->a, sizeof t);
            memcpy(v->a, v->b, sizeof t);
            memcpy(v->b, t, sizeof t);
        }
    } else {
        snprintf(v->a, sizeof v->a, "env-%s", s->name);
        snprintf(v->b, sizeof v->b, "flag-%s", s->name);
    }
    memcpy(v->a_text, v->a, sizeof v->a);
    memcpy(v->b_text, v->b, sizeof v->b);
}

/* argv from a NULL-terminated list (argv[0] added); parses it into o. */
static options_result parse(consumer_options *o, mr_error *err, const char *const *args)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)"mailroom-consumer";
    for (; *args; args++) {
        assert_true(argc < 15);
        argv[argc++] = (char *)*args;
    }
    argv[argc] = NULL;
    mr_error_clear(err);
    return options_parse(argc, argv, o, err);
}

/* Parses and expects OPTIONS_RUN. */
static void parse_ok(consumer_options *o, const char *const *args)
{
    mr_error err = MR_ERROR_INIT;
    options_result r = parse(o, &err, args);
    if (r != OPTIONS_RUN)
        fail_msg("parse of '%s ...': %d (%s)", args[0] ? args[0] : "", (int)r, err.msg);
}

static void check_text(const consumer_options *o, const opttable_spec *s, const char *want,
                       const char *when)
{
    char got[128];
    options_value_text(o, s, got, sizeof got);
    if (strcmp(got, want) != 0)
        fail_msg("--%s %s: '%s', expected '%s'", s->name, when, got, want);
}

/* For every row of the table: its variable beats its default, its flag (also as
 * --name=value) beats its variable, and an empty variable counts as unset. */
static void test_flag_beats_env_beats_default(void **state)
{
    (void)state;
    consumer_options o, d;
    const char *none[] = {NULL};
    size_t covered = 0;
    parse_ok(&d, none);
    for (size_t i = 0; i < options_count; i++) {
        const opttable_spec *s = &options_table[i];
        if (s->kind == OPT_HELP || s->kind == OPT_VERSION)
            continue;
        assert_non_null(s->env);
        char def_text[128], flag[96], joined[192];
        options_value_text(&d, s, def_text, sizeof def_text);
        two_values v;
        memset(&v, 0, sizeof v);
        if (s->kind == OPT_FLAG) {
            snprintf(v.a, sizeof v.a, "0");
            snprintf(v.b, sizeof v.b, "1");
            memcpy(v.a_text, v.a, 2);
            memcpy(v.b_text, v.b, 2);
        } else if (s->kind == OPT_STRING || s->kind == OPT_LIST) {
            string_pair(s, &v);
        } else {
            number_pair(s, def_text, &v);
        }
        /* the environment over the default */
        const char *env_value = s->kind == OPT_FLAG ? v.b : v.a;
        assert_int_equal(setenv(s->env, env_value, 1), 0);
        parse_ok(&o, none);
        check_text(&o, s, s->kind == OPT_FLAG ? v.b_text : v.a_text, "from the environment");
        /* the flag over the environment */
        snprintf(flag, sizeof flag, "--%s", s->name);
        if (s->kind == OPT_FLAG) {
            assert_int_equal(setenv(s->env, "0", 1), 0);
            const char *with_flag[] = {flag, NULL};
            parse_ok(&o, with_flag);
        } else {
            const char *with_flag[] = {flag, v.b, NULL};
            parse_ok(&o, with_flag);
            check_text(&o, s, v.b_text, "from the flag");
            snprintf(joined, sizeof joined, "--%s=%s", s->name, v.b);
            const char *one[] = {joined, NULL};
            parse_ok(&o, one);
        }
        check_text(&o, s, v.b_text, "from the flag");
        /* an empty variable counts as unset: the default again */
        assert_int_equal(setenv(s->env, "", 1), 0);
        parse_ok(&o, none);
        check_text(&o, s, def_text, "from an empty variable");
        assert_int_equal(unsetenv(s->env), 0);
        covered++;
    }
    assert_true(covered + 2 == options_count);
    for (size_t k = 0; k < sizeof kept_names / sizeof kept_names[0]; k++) {
        size_t i = 0;
        while (i < options_count && strcmp(options_table[i].name, kept_names[k].name) != 0)
            i++;
        if (i == options_count || strcmp(options_table[i].env, kept_names[k].env) != 0)
            fail_msg("--%s must keep its variable %s", kept_names[k].name, kept_names[k].env);
    }
}

/* The example of the issue, spelled out: MAILROOM_CONCURRENCY=4, with and without
 * --concurrency 8 (the default's value), and the default alone. */
static void test_concurrency_example(void **state)
{
    (void)state;
    consumer_options o;
    const char *none[] = {NULL};
    const char *eight[] = {"--concurrency", "8", NULL};
    parse_ok(&o, none);
    assert_int_equal(o.concurrency, 8);
    assert_int_equal(setenv("MAILROOM_CONCURRENCY", "4", 1), 0);
    parse_ok(&o, none);
    assert_int_equal(o.concurrency, 4);
    parse_ok(&o, eight);
    assert_int_equal(o.concurrency, 8);
    assert_int_equal(unsetenv("MAILROOM_CONCURRENCY"), 0);
}

/* --redis on the command line is flagged (it must not carry a password: ps shows
 * it); the same URL from the environment is not. The default is the documented
 * redis://127.0.0.1:6379/0. */
static void test_redis_source(void **state)
{
    (void)state;
    consumer_options o;
    const char *none[] = {NULL};
    parse_ok(&o, none);
    assert_string_equal(o.redis, RCONN_DEFAULT_URL);
    assert_int_equal(o.redis_on_command_line, 0);
    assert_int_equal(setenv("MAILROOM_REDIS_URL", "redis://h:1/0", 1), 0);
    parse_ok(&o, none);
    assert_int_equal(o.redis_on_command_line, 0);
    const char *flag[] = {"--redis", "redis://h:2/0", NULL};
    parse_ok(&o, flag);
    assert_int_equal(o.redis_on_command_line, 1);
    assert_string_equal(o.redis, "redis://h:2/0");
    assert_int_equal(unsetenv("MAILROOM_REDIS_URL"), 0);
    parse_ok(&o, none);
    assert_int_equal(o.redis_on_command_line, 0); /* not left over from the last parse */
}

/* Parses args and expects OPTIONS_USAGE, MAILROOM_EINVAL and every fragment given
 * (up to two) in the message. */
static void expect_usage(const char *const *args, const char *frag1, const char *frag2)
{
    consumer_options o;
    mr_error err = MR_ERROR_INIT;
    options_result r = parse(&o, &err, args);
    if (r != OPTIONS_USAGE)
        fail_msg("'%s %s': result %d, expected OPTIONS_USAGE", args[0] ? args[0] : "",
                 args[0] && args[1] ? args[1] : "", (int)r);
    assert_int_equal(err.rc, MAILROOM_EINVAL);
    if (!strstr(err.msg, frag1) || (frag2 && !strstr(err.msg, frag2)))
        fail_msg("'%s %s': '%s' lacks '%s' or '%s'", args[0] ? args[0] : "",
                 args[0] && args[1] ? args[1] : "", err.msg, frag1, frag2 ? frag2 : "");
}

static void test_bad_flags(void **state)
{
    (void)state;
    static const struct {
        const char *args[4];
        const char *frag1, *frag2;
    } bad[] = {
        {{"--backoff-base", "nan", NULL}, "--backoff-base", "nan"},
        {{"--backoff-base", "inf", NULL}, "--backoff-base", "inf"},
        {{"--backoff-max", "-1s", NULL}, "--backoff-max", "-1s"},
        {{"--smtp-timeout", "1e3", NULL}, "--smtp-timeout", "1e3"},
        {{"--max-attempts", "-1", NULL}, "--max-attempts", "'-1'"},
        {{"--max-attempts", "1000001", NULL}, "--max-attempts", NULL},
        {{"--concurrency", "257", NULL}, "--concurrency", NULL},
        {{"--concurrency", "8x", NULL}, "--concurrency", "8x"},
        {{"--concurrency", "", NULL}, "--concurrency", NULL},
        {{"--block-timeout", "5ms", NULL}, "--block-timeout", "5ms"},
        {{"--block-timeout", "61s", NULL}, "--block-timeout", NULL},
        {{"--dead-after", "1s", NULL}, "--dead-after", NULL},
        {{"--smtp-tls", "maybe", NULL}, "--smtp-tls", "maybe"},
        {{"--log-level", "verbose", NULL}, "--log-level", NULL},
        {{"--log-format", "xml", NULL}, "--log-format", NULL},
        {{"--frobnicate", NULL}, "--frobnicate", NULL},
        {{"--frobnicate=3", NULL}, "--frobnicate", NULL},
        {{"-x", NULL}, "-x", NULL},
        {{"--smtp-insecure=yes", NULL}, "--smtp-insecure", NULL}, /* a flag takes no value */
        {{"--queue", NULL}, "--queue", NULL},                     /* missing value */
        {{"--concurrency", "4", "--block-timeout", NULL}, "--block-timeout", NULL},
        {{"stray", NULL}, "stray", NULL},
        {{"--concurrency", "4", "stray", NULL}, "stray", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_usage(bad[i].args, bad[i].frag1, bad[i].frag2);
}

/* A bad value in the environment is named by its variable, even when a flag would
 * set the same option (the environment is read first). */
static void test_bad_env(void **state)
{
    (void)state;
    static const struct {
        const char *env, *value;
    } bad[] = {
        {"MAILROOM_BACKOFF_BASE", "nan"},    {"MAILROOM_CONCURRENCY", "0"},
        {"MAILROOM_BLOCK_TIMEOUT", "5ms"},   {"MAILROOM_SMTP_TLS", "sometimes"},
        {"MAILROOM_SMTP_INSECURE", "maybe"}, {"MAILROOM_MAX_LIFETIME", "1e3s"},
    };
    const char *none[] = {NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(setenv(bad[i].env, bad[i].value, 1), 0);
        expect_usage(none, bad[i].env, bad[i].value);
        assert_int_equal(unsetenv(bad[i].env), 0);
    }
    /* flags given as words in the environment */
    static const struct {
        const char *value;
        int want;
    } flags[] = {{"1", 1}, {"true", 1},  {"yes", 1}, {"on", 1},
                 {"0", 0}, {"false", 0}, {"no", 0},  {"off", 0}};
    consumer_options o;
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        assert_int_equal(setenv("MAILROOM_SMTP_INSECURE", flags[i].value, 1), 0);
        parse_ok(&o, none);
        if (o.smtp_insecure != flags[i].want)
            fail_msg("MAILROOM_SMTP_INSECURE=%s: %d", flags[i].value, o.smtp_insecure);
    }
    assert_int_equal(unsetenv("MAILROOM_SMTP_INSECURE"), 0);
}

/* Runs options_parse on args with stdout captured; returns what it printed. */
static char *parse_captured(const char *const *args, options_result *r)
{
    consumer_options o;
    mr_error err = MR_ERROR_INIT;
    support_capture cap;
    support_capture_begin(&cap, 1);
    *r = parse(&o, &err, args);
    return support_capture_end(&cap, NULL);
}

static void test_help_and_version(void **state)
{
    (void)state;
    options_result r;
    const char *help[] = {"--help", NULL};
    char *out = parse_captured(help, &r);
    assert_int_equal(r, OPTIONS_EXIT);
    assert_non_null(strstr(out, "usage: mailroom-consumer"));
    free(out);
    /* --help wins over a bad option after it: nothing after it is looked at */
    const char *help_first[] = {"--help", "--frobnicate", NULL};
    out = parse_captured(help_first, &r);
    assert_int_equal(r, OPTIONS_EXIT);
    free(out);
    const char *version[] = {"--version", NULL};
    out = parse_captured(version, &r);
    assert_int_equal(r, OPTIONS_EXIT);
    assert_non_null(strstr(out, MAILROOM_VERSION_STRING));
    free(out);
}

/* The --help text: one entry per option ("  --name ..." and its continuation lines).
 * Every option but --help and --version names its variable in "(VAR" or "(VAR, default
 * ...)"; the options listed are exactly the cases above. */
static void test_help_lists_every_variable(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    options_usage(f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(text);

    int seen[64] = {0};
    assert_true(options_count <= 64);
    int help = 0, version = 0;
    for (const char *p = strstr(text, "\n  --"); p; p = strstr(p + 1, "\n  --")) {
        const char *name = p + 5;
        size_t nlen = strcspn(name, " \n");
        /* the entry runs to the next line that does not start with a blank */
        const char *end = name;
        for (;;) {
            end = strchr(end, '\n');
            assert_non_null(end);
            if (end[1] != ' ' || strncmp(end + 1, "  --", 4) == 0)
                break;
            end++;
        }
        char entry[1024];
        snprintf(entry, sizeof entry, "%.*s", (int)(end - p - 1), p + 1);
        if (nlen == 4 && strncmp(name, "help", 4) == 0) {
            help++;
            continue;
        }
        if (nlen == 7 && strncmp(name, "version", 7) == 0) {
            version++;
            continue;
        }
        size_t i = 0;
        while (i < options_count && !(strlen(options_table[i].name) == nlen &&
                                      strncmp(options_table[i].name, name, nlen) == 0))
            i++;
        if (i == options_count)
            fail_msg("--help lists --%.*s, which is not in the table", (int)nlen, name);
        seen[i]++;
        /* the variable, after "(" and before ")" or ", default" (maybe on a
         * continuation line: compare with the blanks of wrapping squeezed out) */
        char squeezed[1024];
        size_t k = 0;
        for (const char *q = entry; *q && k < sizeof squeezed - 1; q++) {
            if (*q == '\n') {
                while (q[1] == ' ')
                    q++;
                squeezed[k++] = ' ';
                continue;
            }
            squeezed[k++] = *q;
        }
        squeezed[k] = '\0';
        char want1[96], want2[96];
        snprintf(want1, sizeof want1, "(%s)", options_table[i].env);
        snprintf(want2, sizeof want2, "(%s, default ", options_table[i].env);
        if (!strstr(squeezed, want1) && !strstr(squeezed, want2))
            fail_msg("--help entry of --%s does not name %s: %s", options_table[i].name,
                     options_table[i].env, squeezed);
    }
    assert_int_equal(help, 1);
    assert_int_equal(version, 1);
    for (size_t i = 0; i < options_count; i++)
        if (options_table[i].env && seen[i] != 1)
            fail_msg("--%s: listed %d times by --help", options_table[i].name, seen[i]);
    free(text);
}

/* getopt keeps state between calls; options_parse must start afresh each time, also
 * after a parse that stopped at an error in the middle of its arguments. */
static void test_parses_in_a_row(void **state)
{
    (void)state;
    consumer_options o;
    mr_error err = MR_ERROR_INIT;
    const char *a[] = {"--concurrency", "3", "--queue", "first", NULL};
    const char *b[] = {"--queue", NULL};
    const char *c[] = {"--frobnicate", "--concurrency", "5", NULL};
    const char *d[] = {"--concurrency", "7", NULL};
    parse_ok(&o, a);
    assert_int_equal(o.concurrency, 3);
    assert_string_equal(o.queue, "first");
    assert_int_equal(parse(&o, &err, b), OPTIONS_USAGE);
    assert_int_equal(parse(&o, &err, c), OPTIONS_USAGE);
    parse_ok(&o, d);
    assert_int_equal(o.concurrency, 7);
    assert_string_equal(o.queue, "default"); /* nothing left from the first parse */
    parse_ok(&o, a);
    assert_int_equal(o.concurrency, 3);
}

/* --smtp is a list: given again on the command line, it extends the list; given once,
 * it replaces the environment's (a comma list too). */
static void test_repeated_list(void **state)
{
    (void)state;
    static consumer_options o;
    assert_int_equal(setenv("MAILROOM_SMTP_URL", "smtp://env.test:25,smtp://env2.test:25", 1), 0);
    parse_ok(&o, (const char *const[]){NULL});
    assert_string_equal(o.smtp, "smtp://env.test:25,smtp://env2.test:25");
    parse_ok(&o, (const char *const[]){"--smtp", "smtp://a.test:25", NULL});
    assert_string_equal(o.smtp, "smtp://a.test:25");
    parse_ok(&o,
             (const char *const[]){"--smtp", "smtp://a.test:25", "--smtp", "smtps://b.test", NULL});
    assert_string_equal(o.smtp, "smtp://a.test:25,smtps://b.test");
    assert_int_equal(unsetenv("MAILROOM_SMTP_URL"), 0);
    static char long_url[OPTTABLE_LIST_MAX + 1]; /* one byte more than the list holds */
    memset(long_url, 'x', OPTTABLE_LIST_MAX);
    mr_error err = MR_ERROR_INIT;
    assert_int_equal(parse(&o, &err, (const char *const[]){"--smtp", long_url, NULL}),
                     OPTIONS_USAGE);
    assert_non_null(strstr(err.msg, "--smtp"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_repeated_list, clear_env),
        cmocka_unit_test_setup(test_flag_beats_env_beats_default, clear_env),
        cmocka_unit_test_setup(test_concurrency_example, clear_env),
        cmocka_unit_test_setup(test_redis_source, clear_env),
        cmocka_unit_test_setup(test_bad_flags, clear_env),
        cmocka_unit_test_setup(test_bad_env, clear_env),
        cmocka_unit_test_setup(test_help_and_version, clear_env),
        cmocka_unit_test_setup(test_help_lists_every_variable, clear_env),
        cmocka_unit_test_setup(test_parses_in_a_row, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
