/*
 * test_lib_batch: lib/batch.c, mailroom_send_batch's promise that every email gets an
 * answer: results[i] its code and ids[i] its id, or "" when it never reached Redis.
 *
 * Out of memory is injected, not simulated: this test links libmailroom's objects
 * itself (not the archive) with `-Wl,--wrap=realloc` (tests/unit/lib.cmake), so every
 * realloc the library's own code makes (the batch buffer grows through common/buf.c)
 * goes through __wrap_realloc below, which fails the growths at or above a size the
 * test arms. That size is reached by the batch buffer alone, a few emails in. The hook
 * exists only in this test program; the library is unchanged. No Redis: the handle
 * points at a closed port, so prepared emails never leave the process.
 *
 * Checked: out of memory at email i leaves "" and MAILROOM_ENOMEM for every email from
 * i on (before the fix, the ids after i stayed whatever the caller's array held); a
 * batch refused as a whole (no key) answers every email; without a connection every
 * email still gets its own verdict, and the valid ones no id.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailroom.h"

#define N 40
#define KEY "0123456789abcdef-unit-test-key"
#define FAIL_FROM_BYTES ((size_t)16 * 1024)

/* --------------------------------------------------------------- allocation hook */

void *__real_realloc(void *ptr, size_t size);
void *__wrap_realloc(void *ptr, size_t size);

static size_t fail_from; /* 0: off; else reallocs to this many bytes or more fail */
static size_t failed;    /* how many the hook refused */

void *__wrap_realloc(void *ptr, size_t size)
{
    if (fail_from && size >= fail_from) {
        failed++;
        return NULL;
    }
    return __real_realloc(ptr, size);
}

/* --------------------------------------------------------------- helpers */

static const char *const to[] = {"ming@example.com"};
static char body[1001];

/* A handle that never connects; with_key: it signs with KEY. */
static mailroom *open_offline(int with_key)
{
    mailroom_options o;
    mailroom_options_init(&o);
    o.redis_url = "redis://127.0.0.1:1/0";
    o.queue = "unit";
    o.connect_timeout_ms = 300;
    if (with_key) {
        o.key = KEY;
        o.key_len = strlen(KEY);
    }
    mailroom *m = NULL;
    int rc = mailroom_open(&m, &o);
    assert_non_null(m);
    assert_true(rc == MAILROOM_EREDIS || rc == MAILROOM_ETIMEOUT);
    return m;
}

/* n emails of about 1 KB; email `bad` (if < n) has an invalid recipient. */
static void make_emails(mailroom_email *e, size_t n, size_t bad)
{
    static const char *const bad_to[] = {"not-an-address"};
    memset(body, 'a', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    for (size_t i = 0; i < n; i++)
        e[i] = (mailroom_email){.to = i == bad ? bad_to : to,
                                .n_to = 1,
                                .from = "noreply@example.com",
                                .subject = "s",
                                .text = body};
}

/* Fills the caller's arrays with garbage, as uninitialised memory would be. */
static void poison(char (*ids)[MAILROOM_ID_MAX], int *results, size_t n)
{
    memset(ids, 'X', n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        results[i] = -12345;
}

/* --------------------------------------------------------------- tests */

static void test_out_of_memory_midway_leaves_no_stale_ids(void **state)
{
    (void)state;
    mailroom *m = open_offline(1);
    mailroom_email e[N];
    char ids[N][MAILROOM_ID_MAX];
    int results[N];
    make_emails(e, N, N);
    poison(ids, results, N);

    fail_from = FAIL_FROM_BYTES;
    failed = 0;
    int rc = mailroom_send_batch(m, e, N, ids, results);
    fail_from = 0;

    assert_true(failed > 0); /* the hook did fire: the test tests something */
    size_t f = 0;
    while (f < N && results[f] != MAILROOM_ENOMEM)
        f++;
    assert_true(f > 0 && f < N); /* some emails were stored before memory ran out */
    for (size_t k = f; k < N; k++) {
        if (results[k] != MAILROOM_ENOMEM || ids[k][0] != '\0')
            fail_msg("email %zu (memory ran out at %zu): result %d, id %.8s...", k, f, results[k],
                     ids[k]);
    }
    for (size_t k = 0; k < f; k++) { /* stored, never sent: Redis is unreachable */
        assert_true(results[k] == MAILROOM_EREDIS || results[k] == MAILROOM_ETIMEOUT);
        assert_int_equal(ids[k][0], '\0');
    }
    assert_int_equal(rc, results[0]);
    assert_non_null(strstr(mailroom_errmsg(m), "email 0 of 40"));
    mailroom_close(m);
}

static void test_batch_without_key_answers_every_email(void **state)
{
    (void)state;
    mailroom *m = open_offline(0);
    mailroom_email e[3];
    char ids[3][MAILROOM_ID_MAX];
    int results[3];
    make_emails(e, 3, 3);
    poison(ids, results, 3);
    assert_int_equal(mailroom_send_batch(m, e, 3, ids, results), MAILROOM_EKEY);
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(results[k], MAILROOM_EKEY);
        assert_int_equal(ids[k][0], '\0');
    }
    mailroom_close(m);
}

static void test_offline_batch_gives_each_email_its_verdict(void **state)
{
    (void)state;
    mailroom *m = open_offline(1);
    mailroom_email e[5];
    char ids[5][MAILROOM_ID_MAX];
    int results[5];
    make_emails(e, 5, 2);
    e[3].id = "caller-chosen:3";
    poison(ids, results, 5);
    int rc = mailroom_send_batch(m, e, 5, ids, results);
    assert_true(rc == MAILROOM_EREDIS || rc == MAILROOM_ETIMEOUT);
    assert_int_equal(results[2], MAILROOM_EINVAL);
    for (size_t k = 0; k < 5; k++) {
        if (k != 2)
            assert_int_equal(results[k], rc);
        assert_int_equal(ids[k][0], '\0');
    }
    assert_int_equal(mailroom_send_batch(m, NULL, 0, NULL, NULL), MAILROOM_OK);
    assert_int_equal(mailroom_send_batch(m, NULL, 1, ids, results), MAILROOM_EINVAL);
    mailroom_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_memory_midway_leaves_no_stale_ids),
        cmocka_unit_test(test_batch_without_key_answers_every_email),
        cmocka_unit_test(test_offline_batch_gives_each_email_its_verdict),
    };
    unsetenv("MAILROOM_KEYS_FILE");
    unsetenv("MAILROOM_SECRET");
    unsetenv("MAILROOM_REDIS_PASSWORD_FILE");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
