/*
 * test_webhook_config: mailroom-webhook's options (webhook/options.c, read by
 * common/opttable.c) and configuration checks (webhook/config.c): the command line
 * wins over the environment, which wins over the defaults; bad values and stray
 * operands are usage errors; a URL with credentials, a scheme other than http(s), or
 * plain http to a remote host without --allow-http is refused; the URL shown keeps no
 * query; the secret comes from its file (one per line) or its variable, is long
 * enough, and never appears in a message; --claim-after must exceed the longest wait
 * of a retry; a --redis URL with a password is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "options.h"
#include "support.h"

#define SECRET "whsec-unit-test-0123456789"

/* Parses argv (NULL-terminated, after the program name) with a clean environment
 * plus the secret variable. */
static opttable_result parse(webhook_options *o, mr_error *err, const char *const *args)
{
    char *argv[16] = {"mailroom-webhook"};
    int argc = 1;
    while (args && args[argc - 1] && argc < 15) {
        argv[argc] = (char *)args[argc - 1];
        argc++;
    }
    argv[argc] = NULL;
    return webhook_options_parse(argc, argv, o, err);
}

static int setup(void **state)
{
    (void)state;
    unsetenv("MAILROOM_WEBHOOK_URL");
    unsetenv("MAILROOM_WEBHOOK_TIMEOUT");
    unsetenv("MAILROOM_WEBHOOK_SECRET_FILE");
    unsetenv("MAILROOM_REDIS_URL");
    unsetenv("MAILROOM_REDIS_PASSWORD_FILE");
    setenv("MAILROOM_WEBHOOK_SECRET", SECRET, 1);
    return 0;
}

/* Loads the configuration of args; returns webhook_config_load's result. */
static int load(webhook_config *cfg, mr_error *err, const char *const *args)
{
    webhook_options o;
    assert_int_equal(parse(&o, err, args), OPTTABLE_RUN);
    return webhook_config_load(cfg, &o, err);
}

static void test_precedence_and_usage(void **state)
{
    (void)state;
    webhook_options o;
    mr_error err = MR_ERROR_INIT;
    setenv("MAILROOM_WEBHOOK_TIMEOUT", "3s", 1);
    assert_int_equal(parse(&o, &err, (const char *const[]){NULL}), OPTTABLE_RUN);
    assert_int_equal(o.timeout, 3000);
    assert_int_equal(o.backoff_max, 300000); /* the default */
    assert_int_equal(o.max_age, 3LL * 86400000);
    assert_string_equal(o.group, "webhook");
    assert_int_equal(parse(&o, &err, (const char *const[]){"--timeout", "4s", NULL}), OPTTABLE_RUN);
    assert_int_equal(o.timeout, 4000);
    assert_int_equal(parse(&o, &err, (const char *const[]){"--timeout", "soon", NULL}),
                     OPTTABLE_USAGE);
    assert_non_null(strstr(err.msg, "--timeout"));
    assert_int_equal(parse(&o, &err, (const char *const[]){"--secret", "x", NULL}), OPTTABLE_USAGE);
    assert_int_equal(parse(&o, &err, (const char *const[]){"stray", NULL}), OPTTABLE_USAGE);
    assert_int_equal(parse(&o, &err, (const char *const[]){"--max-retrying", "0", NULL}),
                     OPTTABLE_USAGE);
    setenv("MAILROOM_WEBHOOK_TIMEOUT", "-1s", 1);
    assert_int_equal(parse(&o, &err, (const char *const[]){NULL}), OPTTABLE_USAGE);
    assert_non_null(strstr(err.msg, "MAILROOM_WEBHOOK_TIMEOUT"));
    unsetenv("MAILROOM_WEBHOOK_TIMEOUT");
}

static void test_urls(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        int ok;
        const char *msg; /* a part of the message when refused */
    } cases[] = {
        {"https://app.example.com/hooks/mailroom?token=abc#x", 1, NULL},
        {"http://127.0.0.1:8080/cb", 1, NULL},
        {"http://localhost/cb", 1, NULL},
        {"http://[::1]:9/cb", 1, NULL},
        {"https://user:pw@app.example.com/cb", 0, "credentials"},
        {"https://user@app.example.com/cb", 0, "credentials"},
        {"http://app.example.com/cb", 0, "not loopback"},
        {"ftp://app.example.com/cb", 0, "http"},
        {"not a url", 0, "URL"},
        {"", 0, "required"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        webhook_config cfg;
        mr_error err = MR_ERROR_INIT;
        int rc = load(&cfg, &err, (const char *const[]){"--url", cases[i].url, NULL});
        if ((rc == 0) != cases[i].ok || (!cases[i].ok && !strstr(err.msg, cases[i].msg)))
            fail_msg("%s: rc %d, message '%s'", cases[i].url, rc, err.msg);
        if (!cases[i].ok)
            assert_null(strstr(err.msg, "pw"));
        webhook_config_free(&cfg);
    }
    webhook_config cfg;
    mr_error err = MR_ERROR_INIT;
    assert_int_equal(
        load(&cfg, &err,
             (const char *const[]){"--url", "https://app.example.com/h?token=abc#x", NULL}),
        0);
    assert_string_equal(cfg.url_shown, "https://app.example.com/h");
    assert_int_equal(cfg.http_remote, 0);
    webhook_config_free(&cfg);
    assert_int_equal(
        load(&cfg, &err, (const char *const[]){"--url", "http://10.0.0.5/h", "--allow-http", NULL}),
        0);
    assert_int_equal(cfg.http_remote, 1);
    webhook_config_free(&cfg);
}

static void test_secrets(void **state)
{
    (void)state;
    webhook_config cfg;
    mr_error err = MR_ERROR_INIT;
    const char *const args[] = {"--url", "https://app.example.com/h", NULL};
    assert_int_equal(load(&cfg, &err, args), 0);
    assert_int_equal(cfg.n_secrets, 1);
    assert_memory_equal(cfg.secrets[0], SECRET, strlen(SECRET));
    webhook_config_free(&cfg);

    char path[SUPPORT_PATH_MAX];
    support_temp_file(path, "# rotation: new first\nwhsec-new-0123456789abcdef\r\n\n"
                            "whsec-old-0123456789abcdef\n");
    setenv("MAILROOM_WEBHOOK_SECRET_FILE", path, 1); /* wins over the variable */
    assert_int_equal(load(&cfg, &err, args), 0);
    assert_int_equal(cfg.n_secrets, 2);
    assert_int_equal(cfg.secret_len[0], 26);
    assert_memory_equal(cfg.secrets[1], "whsec-old-0123456789abcdef", 26);
    webhook_config_free(&cfg);
    unlink(path);

    support_temp_file(path, "short-secret-15\n");
    setenv("MAILROOM_WEBHOOK_SECRET_FILE", path, 1);
    assert_int_equal(load(&cfg, &err, args), -1);
    assert_non_null(strstr(err.msg, "shorter than 16"));
    assert_null(strstr(err.msg, "short-secret"));
    webhook_config_free(&cfg);
    unlink(path);

    assert_int_equal(load(&cfg, &err, args), -1); /* the file is gone */
    assert_non_null(strstr(err.msg, "MAILROOM_WEBHOOK_SECRET_FILE"));
    webhook_config_free(&cfg);
    unsetenv("MAILROOM_WEBHOOK_SECRET_FILE");
    unsetenv("MAILROOM_WEBHOOK_SECRET");
    assert_int_equal(load(&cfg, &err, args), -1);
    assert_non_null(strstr(err.msg, "no signing secret"));
    webhook_config_free(&cfg);
    setenv("MAILROOM_WEBHOOK_SECRET", SECRET, 1);
}

static void test_checks(void **state)
{
    (void)state;
    webhook_config cfg;
    mr_error err = MR_ERROR_INIT;
    assert_int_equal(load(&cfg, &err,
                          (const char *const[]){"--url", "https://a.example/h", "--backoff-max",
                                                "10m", "--claim-after", "10m", NULL}),
                     -1);
    assert_non_null(strstr(err.msg, "--claim-after"));
    webhook_config_free(&cfg);
    assert_int_equal(load(&cfg, &err,
                          (const char *const[]){"--url", "https://a.example/h", "--redis",
                                                "redis://:pw@127.0.0.1:6379/0", NULL}),
                     -1);
    assert_non_null(strstr(err.msg, "password"));
    webhook_config_free(&cfg);
    assert_int_equal(
        load(&cfg, &err,
             (const char *const[]){"--url", "https://a.example/h", "--group", "bad group", NULL}),
        -1);
    webhook_config_free(&cfg);
    assert_int_equal(load(&cfg, &err,
                          (const char *const[]){"--url", "https://a.example/h", "--queue", "q1",
                                                "--id", "web-1", NULL}),
                     0);
    assert_string_equal(cfg.keys.webhook, "mailroom:{q1}:webhook");
    assert_string_equal(cfg.failed_key, "mailroom:{q1}:webhook:failed");
    assert_string_equal(cfg.id, "web-1");
    webhook_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_precedence_and_usage, setup),
        cmocka_unit_test_setup(test_urls, setup),
        cmocka_unit_test_setup(test_secrets, setup),
        cmocka_unit_test_setup(test_checks, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
