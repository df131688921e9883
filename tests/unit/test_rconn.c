/*
 * test_rconn: common/rconn.c without a Redis server. Redis URLs (plain and Sentinel;
 * user and password percent-decoded; IPv6 hosts; every malformed form refused with
 * MAILROOM_EINVAL and a reason that never repeats the password, since reasons reach
 * logs), the Redis password file (first line only, the longest that fits, too long or
 * empty refused without showing the password) and which error replies count as
 * transient: those make the caller drop the connection and retry, so a wrong answer
 * either retries for ever on a real error or gives up a job on a failover.
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
#include "rconn.h"
#include "support.h"

static void test_redis_urls(void **state)
{
    (void)state;
    rconn_url u;
    mr_error err = MR_ERROR_INIT;
    assert_int_equal(rconn_url_parse("redis://127.0.0.1:6380/2", &u, &err), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_string_equal(u.password, "");
    assert_int_equal(rconn_url_parse("redis://prod:p%40ss%3Aw@localhost", &u, &err), 0);
    assert_string_equal(u.user, "prod");
    assert_string_equal(u.password, "p@ss:w");
    assert_int_equal(u.port, 6379);
    assert_int_equal(rconn_url_parse("redis://producer@h", &u, &err), 0);
    assert_string_equal(u.user, "producer");
    assert_string_equal(u.password, "");
    assert_false(rconn_url_has_password("redis://producer@h"));
    assert_true(rconn_url_has_password("redis://:pw@h"));
    assert_int_equal(rconn_url_parse("redis://:only@[::1]:7000/", &u, &err), 0);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.password, "only");
    assert_int_equal(u.port, 7000);
    static const char *bad[] = {"http://x", "redis://", "redis://h:0", "redis://h:70000",
                                "redis://h:12a", "redis://h/db", "redis://u:%zz@h",
                                "redis://u:%00@h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mr_error_clear(&err);
        if (rconn_url_parse(bad[i], &u, &err) != -1)
            fail_msg("URL accepted: %s", bad[i]);
        if (err.rc != MAILROOM_EINVAL || err.msg[0] == '\0')
            fail_msg("URL %s: code %d, reason '%s'", bad[i], (int)err.rc, err.msg);
    }
    assert_int_equal(rconn_url_parse("redis-sentinel://:pw@127.0.0.1:26379,[::1]:26380/mymaster/3",
                                     &u, &err), 0);
    assert_int_equal(u.n_sentinels, 2);
    assert_string_equal(u.sentinels[0].host, "127.0.0.1");
    assert_int_equal(u.sentinels[1].port, 26380);
    assert_string_equal(u.sentinels[1].host, "::1");
    assert_string_equal(u.master_name, "mymaster");
    assert_int_equal(u.db, 3);
    assert_string_equal(u.password, "pw");
    assert_int_equal(rconn_url_parse("redis-sentinel://h1/m", &u, &err), 0);
    assert_int_equal(u.sentinels[0].port, 26379);
    static const char *bad_sentinel[] = {"redis-sentinel://h1:1", "redis-sentinel://h1:1/",
                                         "redis-sentinel://h1:1,/m", "redis-sentinel:///m"};
    for (size_t i = 0; i < sizeof bad_sentinel / sizeof bad_sentinel[0]; i++) {
        if (rconn_url_parse(bad_sentinel[i], &u, &err) != -1)
            fail_msg("Sentinel URL accepted: %s", bad_sentinel[i]);
    }
    assert_int_equal(rconn_url_parse("redis://u:secretpw@h:1:2", &u, &err), -1);
    assert_int_equal(err.rc, MAILROOM_EINVAL);
    assert_non_null(strstr(err.msg, "host or port"));
    assert_null(strstr(err.msg, "secretpw"));
}

/* Writes text into a new temporary file and points MAILROOM_REDIS_PASSWORD_FILE at
 * it; path receives the file's name (the caller unlinks it). */
static void password_file(char path[SUPPORT_PATH_MAX], const char *text)
{
    support_temp_file(path, text);
    assert_int_equal(setenv("MAILROOM_REDIS_PASSWORD_FILE", path, 1), 0);
}

static void test_redis_password_file(void **state)
{
    (void)state;
    rconn_url u;
    mr_error err = MR_ERROR_INIT;
    char path[SUPPORT_PATH_MAX];
    /* unset or empty variable: nothing to do, the URL's password stays */
    assert_int_equal(rconn_url_parse("redis://:fromurl@h", &u, &err), 0);
    assert_int_equal(unsetenv("MAILROOM_REDIS_PASSWORD_FILE"), 0);
    assert_int_equal(rconn_password_from_env(&u, &err), 0);
    assert_string_equal(u.password, "fromurl");
    assert_int_equal(setenv("MAILROOM_REDIS_PASSWORD_FILE", "", 1), 0);
    assert_int_equal(rconn_password_from_env(&u, &err), 0);
    assert_string_equal(u.password, "fromurl");

    /* the first line, without its line end, replaces it */
    password_file(path, "Pw-from-file_42\r\nsecond line\n");
    assert_int_equal(rconn_password_from_env(&u, &err), 0);
    assert_string_equal(u.password, "Pw-from-file_42");
    unlink(path);

    /* the longest that fits (255 bytes and the NUL), then one byte more: refused,
     * the URL's password untouched, and err names the file but not the password */
    char pw[sizeof u.password + 2];
    for (size_t i = 0; i < sizeof pw - 1; i++)
        pw[i] = "Zq7-"[i % 4];
    pw[sizeof u.password - 1] = '\0';
    password_file(path, pw);
    assert_int_equal(rconn_password_from_env(&u, &err), 0);
    assert_string_equal(u.password, pw);
    unlink(path);
    assert_int_equal(rconn_url_parse("redis://:fromurl@h", &u, &err), 0);
    pw[sizeof u.password - 1] = 'Z';
    pw[sizeof u.password] = '\0';
    password_file(path, pw);
    mr_error_clear(&err);
    assert_int_equal(rconn_password_from_env(&u, &err), -1);
    assert_string_equal(u.password, "fromurl");
    assert_int_equal(err.rc, MAILROOM_EINVAL);
    assert_non_null(strstr(err.msg, "too long"));
    assert_non_null(strstr(err.msg, path));
    assert_null(strstr(err.msg, "Zq7-"));
    unlink(path);

    /* an empty first line, and a missing file: refused */
    password_file(path, "\nsecond line\n");
    mr_error_clear(&err);
    assert_int_equal(rconn_password_from_env(&u, &err), -1);
    assert_non_null(strstr(err.msg, "empty"));
    assert_null(strstr(err.msg, "second"));
    unlink(path);
    mr_error_clear(&err);
    assert_int_equal(rconn_password_from_env(&u, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_string_equal(u.password, "fromurl");
    assert_int_equal(unsetenv("MAILROOM_REDIS_PASSWORD_FILE"), 0);
    rconn_url_clear(&u);
}

/* Error replies that mean "retry on a fresh connection": the code is the reply's first
 * word, so BUSYKEY and BUSYGROUP (BUSY followed by more letters) are not BUSY. */
static void test_redis_transient_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int transient;
    } cases[] = {
        {"BUSY Redis is busy running a script.", 1},
        {"BUSYKEY Target key name already exists.", 0},
        {"BUSYGROUP Consumer Group name already exists", 0},
        {"LOADING Redis is loading the dataset in memory", 1},
        {"READONLY You can't write against a read only replica.", 1},
        {"MASTERDOWN Link with MASTER is down", 1},
        {"TRYAGAIN Multiple keys request during rehashing of slot", 1},
        {"ERR x", 0},
        {"NOSCRIPT No matching script", 0},
        {"loading lower case", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "%s", cases[i].text);
        redisReply r = {.type = REDIS_REPLY_ERROR, .str = text, .len = strlen(text)};
        if (rconn_transient_error(&r) != cases[i].transient)
            fail_msg("'%s': expected %d", cases[i].text, cases[i].transient);
        /* the same text in a reply that is not an error is no error at all */
        r.type = REDIS_REPLY_STATUS;
        assert_int_equal(rconn_transient_error(&r), 0);
    }
    redisReply integer = {.type = REDIS_REPLY_INTEGER, .integer = 1};
    assert_int_equal(rconn_transient_error(&integer), 0);
    assert_int_equal(rconn_transient_error(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_urls),
        cmocka_unit_test(test_redis_password_file),
        cmocka_unit_test(test_redis_transient_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
