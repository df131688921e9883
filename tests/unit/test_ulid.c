/*
 * test_ulid: common/ulid.c, the time-ordered ids mailroom gives jobs that have none.
 * Checked: 26 Crockford base32 characters that are valid job ids; ids of one
 * millisecond share their time prefix yet differ; later ids sort after earlier ones;
 * the time prefix is the 48-bit millisecond count (expected digits computed
 * from the ms value); and the pooled source never repeats an id across
 * refills, nor in a child process after fork() (which must not reuse the parent's
 * randomness: two processes would hand out the same ids).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "job.h"
#include "ulid.h"

static void test_ulid_new(void **state)
{
    (void)state;
    char a[ULID_LEN + 1], b[ULID_LEN + 1], c[ULID_LEN + 1];
    assert_int_equal(ulid_new(1795525200000LL, a), 0);
    assert_int_equal(ulid_new(1795525200000LL, b), 0);
    assert_int_equal(ulid_new(1795957200001LL, c), 0);
    assert_int_equal(strlen(a), ULID_LEN);
    assert_true(job_id_valid(a));
    assert_memory_equal(a, b, 10); /* same millisecond: same time prefix */
    assert_string_not_equal(a, b);
    assert_true(strcmp(a, c) < 0 && strcmp(b, c) < 0);
    assert_int_equal(strspn(a, "0123456789ABCDEFGHJKMNPQRSTVWXYZ"), ULID_LEN);
    /* The 48-bit millisecond time in 10 Crockford base32 digits (5 bits each, most
     * significant first; computed independently in Python):
     * 1795525200000 = 0x1A20DA44880 (2026-11-24T13:00:00Z) and 1795957200001. */
    assert_memory_equal(a, "01M86T8J40", 10);
    assert_memory_equal(c, "01M8KP8541", 10);
}

/* ULIDs from a pool of randomness: all distinct across refills, and a child process
 * after fork() never reuses the parent's pool. */
static void test_ulid_pool(void **state)
{
    (void)state;
    enum { N = 3 * ULID_POOL_IDS + 1 };
    static char ids[N][ULID_LEN + 1];
    ulid_source src = {0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(ulid_next(&src, 1795525200000LL, ids[i]), 0);
        assert_true(job_id_valid(ids[i]));
        assert_memory_equal(ids[i], ids[0], 10);
        for (int k = 0; k < i; k++)
            assert_string_not_equal(ids[i], ids[k]);
    }
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    char mine[ULID_LEN + 1], theirs[ULID_LEN + 1] = "";
    if (child == 0) {
        char id[ULID_LEN + 1];
        int ok = ulid_next(&src, 1795525200000LL, id) == 0 &&
                 write(fds[1], id, ULID_LEN) == ULID_LEN;
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(ulid_next(&src, 1795525200000LL, mine), 0);
    assert_int_equal(read(fds[0], theirs, ULID_LEN), ULID_LEN);
    theirs[ULID_LEN] = '\0';
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_string_not_equal(mine, theirs);
    close(fds[0]);
    close(fds[1]);
    ulid_source_clear(&src);
    ulid_source_clear(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ulid_new),
        cmocka_unit_test(test_ulid_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
