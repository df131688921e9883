/*
 * test_keyring: common/keyring.c, the signing keys. A key ring decides which jobs a
 * consumer accepts and which key a producer signs with, so its loading rules are
 * checked one by one: secrets shorter than KEYRING_MIN_SECRET and kids given twice
 * are refused; a keys file keeps its order (the first key signs), skips blank and '#'
 * lines and trims blanks around the secret; a bad line is named by number without the
 * secret it holds; a file without keys, a missing file and a malformed kid are
 * refused; MAILROOM_KEYS_FILE wins over MAILROOM_SECRET, which gives the kid
 * "default"; neither set is an error. Every refusal is MAILROOM_EKEY (the CLI and the
 * library report it as "no usable signing key").
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
#include "keyring.h"
#include "support.h"

static void test_keyring_add(void **state)
{
    (void)state;
    keyring kr = {0};
    mr_error err = MR_ERROR_INIT;
    assert_int_equal(keyring_add(&kr, "k", "short", 5, &err), -1);
    assert_non_null(strstr(err.msg, "shorter than 16"));
    assert_int_equal(err.rc, MAILROOM_EKEY);
    assert_int_equal(kr.n, 0);
    /* exactly KEYRING_MIN_SECRET bytes is enough */
    assert_int_equal(keyring_add(&kr, "k", "0123456789abcdef", 16, &err), 0);
    mr_error_clear(&err);
    assert_int_equal(keyring_add(&kr, "k", "0123456789abcdef", 16, &err), -1);
    assert_non_null(strstr(err.msg, "twice"));
    assert_int_equal(err.rc, MAILROOM_EKEY);
    assert_int_equal(kr.n, 1);
    /* the secret is copied: the caller's buffer may change */
    char secret[] = "fedcba9876543210";
    assert_int_equal(keyring_add(&kr, "k2", secret, 16, &err), 0);
    memset(secret, 'x', 16);
    const keyring_key *k = keyring_find(&kr, "k2");
    assert_non_null(k);
    assert_int_equal(k->secret_len, 16);
    assert_memory_equal(k->secret, "fedcba9876543210", 16);
    /* the ring is full at KEYRING_MAX_KEYS */
    for (int i = (int)kr.n; i < KEYRING_MAX_KEYS; i++) {
        char kid[16];
        snprintf(kid, sizeof kid, "kid%d", i);
        assert_int_equal(keyring_add(&kr, kid, "0123456789abcdef", 16, &err), 0);
    }
    assert_int_equal(keyring_add(&kr, "one-more", "0123456789abcdef", 16, &err), -1);
    assert_int_equal(err.rc, MAILROOM_EKEY);
    assert_int_equal(kr.n, KEYRING_MAX_KEYS);
    keyring_clear(&kr);
    assert_int_equal(kr.n, 0);
    assert_null(keyring_find(&kr, "k"));
    keyring_clear(&kr); /* a cleared ring may be cleared again */
    keyring_clear(NULL);
}

static void test_keyring_file(void **state)
{
    (void)state;
    keyring kr = {0};
    mr_error err = MR_ERROR_INIT;
    char path[SUPPORT_PATH_MAX];
    support_temp_file(path,
                      "# rotation\n\nnew  secret-number-two-2026\nold secret-number-one-2025  \n");
    if (keyring_load_file(&kr, path, &err) != 0)
        fail_msg("keyring_load_file: %s", err.msg);
    assert_int_equal(kr.n, 2);
    assert_string_equal(kr.keys[0].kid, "new");
    assert_int_equal(kr.keys[1].secret_len, strlen("secret-number-one-2025"));
    assert_memory_equal(kr.keys[1].secret, "secret-number-one-2025", kr.keys[1].secret_len);
    assert_non_null(keyring_find(&kr, "old"));
    assert_null(keyring_find(&kr, "missing"));
    keyring_clear(&kr);
    unlink(path);

    /* a bad line is named by number, its secret is not repeated */
    support_temp_file(path, "good secret-number-one-2025\nbad tooshort\n");
    assert_int_equal(keyring_load_file(&kr, path, &err), -1);
    assert_int_equal(err.rc, MAILROOM_EKEY);
    assert_non_null(strstr(err.msg, "line 2"));
    assert_null(strstr(err.msg, "tooshort"));
    keyring_clear(&kr);
    unlink(path);

    static const struct {
        const char *text, *why;
    } bad[] = {
        {"lonely-kid\n", "line 1: expected \"kid secret\""},
        {"# only a comment\n\n", "holds no key"},
        {"ok secret-number-one-2025\nbad{kid} secret-number-two-2026\n", "line 2: key id 'bad{kid}' must"},
        {"same secret-number-one-2025\nsame secret-number-two-2026\n", "twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        support_temp_file(path, bad[i].text);
        mr_error_clear(&err);
        assert_int_equal(keyring_load_file(&kr, path, &err), -1);
        if (err.rc != MAILROOM_EKEY || !strstr(err.msg, bad[i].why))
            fail_msg("case %zu: code %d, '%s' (expected '%s')", i, (int)err.rc, err.msg,
                     bad[i].why);
        assert_null(strstr(err.msg, "secret-number"));
        keyring_clear(&kr);
        unlink(path);
    }

    /* a missing file is named */
    mr_error_clear(&err);
    assert_int_equal(keyring_load_file(&kr, path, &err), -1);
    assert_int_equal(err.rc, MAILROOM_EKEY);
    assert_non_null(strstr(err.msg, path));
}

static void test_keyring_env(void **state)
{
    (void)state;
    keyring kr = {0};
    mr_error err = MR_ERROR_INIT;
    char path[SUPPORT_PATH_MAX];
    assert_int_equal(unsetenv("MAILROOM_KEYS_FILE"), 0);
    assert_int_equal(unsetenv("MAILROOM_SECRET"), 0);

    /* neither: refused */
    assert_int_equal(keyring_load_env(&kr, &err), -1);
    assert_int_equal(err.rc, MAILROOM_EKEY);
    assert_int_equal(kr.n, 0);

    /* MAILROOM_SECRET alone: kid "default" */
    assert_int_equal(setenv("MAILROOM_SECRET", "env-secret-of-20-bytes", 1), 0);
    if (keyring_load_env(&kr, &err) != 0)
        fail_msg("keyring_load_env: %s", err.msg);
    assert_int_equal(kr.n, 1);
    assert_string_equal(kr.keys[0].kid, "default");
    assert_memory_equal(kr.keys[0].secret, "env-secret-of-20-bytes", kr.keys[0].secret_len);
    keyring_clear(&kr);

    /* a short MAILROOM_SECRET: refused, not shown */
    assert_int_equal(setenv("MAILROOM_SECRET", "tiny-secret", 1), 0);
    mr_error_clear(&err);
    assert_int_equal(keyring_load_env(&kr, &err), -1);
    assert_int_equal(err.rc, MAILROOM_EKEY);
    assert_null(strstr(err.msg, "tiny-secret"));
    keyring_clear(&kr);

    /* both: the file wins (an empty MAILROOM_KEYS_FILE counts as unset) */
    assert_int_equal(setenv("MAILROOM_SECRET", "env-secret-of-20-bytes", 1), 0);
    support_temp_file(path, "filekid secret-number-one-2025\n");
    assert_int_equal(setenv("MAILROOM_KEYS_FILE", path, 1), 0);
    assert_int_equal(keyring_load_env(&kr, &err), 0);
    assert_int_equal(kr.n, 1);
    assert_string_equal(kr.keys[0].kid, "filekid");
    keyring_clear(&kr);
    assert_int_equal(setenv("MAILROOM_KEYS_FILE", "", 1), 0);
    assert_int_equal(keyring_load_env(&kr, &err), 0);
    assert_string_equal(kr.keys[0].kid, "default");
    keyring_clear(&kr);

    /* a keys file that cannot be read does not fall back to MAILROOM_SECRET */
    unlink(path);
    assert_int_equal(setenv("MAILROOM_KEYS_FILE", path, 1), 0);
    mr_error_clear(&err);
    assert_int_equal(keyring_load_env(&kr, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(kr.n, 0);

    assert_int_equal(unsetenv("MAILROOM_KEYS_FILE"), 0);
    assert_int_equal(unsetenv("MAILROOM_SECRET"), 0);
    keyring_clear(&kr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyring_add),
        cmocka_unit_test(test_keyring_file),
        cmocka_unit_test(test_keyring_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
