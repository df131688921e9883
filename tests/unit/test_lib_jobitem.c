/*
 * test_lib_jobitem: lib/jobitem.c, the pure pieces of the job listing (linked from the
 * library's objects, as its functions are internal): a raw job read leniently into a
 * listing's item (whatever sits in a queue, even a job no consumer accepts), the
 * recipient filters compared in the suppression list's spelling (case, IDN), and the
 * cursors, which must read back what they wrote and refuse any other walk's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "jobitem.h"

/* An item read from raw; the tree and recipients go into the caller's pointers. */
static mailroom_job_item read_item(const char *raw, json_object **tree, const char ***rcpts)
{
    mailroom_job_item it;
    memset(&it, 0, sizeof it);
    assert_int_equal(jobitem_read(raw, strlen(raw), &it, tree, rcpts), 0);
    return it;
}

static void test_read_job(void **state)
{
    (void)state;
    json_object *tree;
    const char **rcpts;
    mailroom_job_item it = read_item(
        "{\"v\":\"1\",\"id\":\"j1\",\"to\":[\"A <a@x.org>\",7],\"cc\":[\"c@y.org\"],"
        "\"bcc\":[\"b@z.org\"],\"subject\":\"Hi\",\"created_at\":\"2026-01-01T00:00:00Z\","
        "\"send_at\":\"2026-01-02T00:00:00Z\"}",
        &tree, &rcpts);
    assert_int_equal(it.readable, 1);
    assert_string_equal(it.id, "j1");
    assert_int_equal(it.n_recipients, 3); /* the number 7 is skipped */
    assert_string_equal(it.recipients[0], "A <a@x.org>");
    assert_string_equal(it.recipients[1], "c@y.org");
    assert_string_equal(it.recipients[2], "b@z.org");
    assert_string_equal(it.subject, "Hi");
    assert_string_equal(it.created_at, "2026-01-01T00:00:00Z");
    assert_string_equal(it.send_at, "2026-01-02T00:00:00Z");
    json_object_put(tree);
    free((void *)rcpts);
}

static void test_read_unreadable(void **state)
{
    (void)state;
    static const char *const bad[] = {"not json", "[1,2]", "{\"id\":", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_object *tree;
        const char **rcpts;
        mailroom_job_item it = read_item(bad[i], &tree, &rcpts);
        assert_int_equal(it.readable, 0);
        assert_null(tree);
        assert_null(rcpts);
        assert_string_equal(it.id, "");
        assert_string_equal(it.subject, "");
        assert_int_equal(it.n_recipients, 0);
        assert_int_equal(it.raw_bytes, strlen(bad[i]));
    }
    /* the id the script found (leniently) is kept when the job cannot be read */
    mailroom_job_item it = {.id = "kept"};
    json_object *tree;
    const char **rcpts;
    assert_int_equal(jobitem_read("{", 1, &it, &tree, &rcpts), 0);
    assert_string_equal(it.id, "kept");
}

static void test_has_id(void **state)
{
    (void)state;
    const char *raw = "{\"subject\":\"\\\"j1\\\"\",\"id\":\"j2\"}";
    assert_int_equal(jobitem_has_id(raw, strlen(raw), "j2"), 1);
    assert_int_equal(jobitem_has_id(raw, strlen(raw), "j1"), 0); /* only in the subject */
    assert_int_equal(jobitem_has_id("{\"id\":5}", 8, "5"), 0);
    assert_int_equal(jobitem_has_id("garbage", 7, "garbage"), 0);
}

/* 1 when the filter (to, domain) matches a job with these recipients. */
static int matches(const char *to, const char *domain, const char *raw)
{
    jobitem_filter f;
    mr_error err = MR_ERROR_INIT;
    json_object *tree;
    const char **rcpts;
    assert_int_equal(jobitem_filter_init(&f, to, domain, &err), 0);
    mailroom_job_item it = read_item(raw, &tree, &rcpts);
    int yes = jobitem_matches(&f, &it);
    json_object_put(tree);
    free((void *)rcpts);
    return yes;
}

static void test_filters(void **state)
{
    (void)state;
    const char *raw = "{\"to\":[\"Ming <Ming@Example.COM>\"],\"bcc\":[\"x@例子.测试\"]}";
    assert_true(matches(NULL, NULL, raw));
    assert_true(matches("ming@example.com", NULL, raw));
    assert_true(matches("MING@EXAMPLE.com", NULL, raw));
    assert_false(matches("ming2@example.com", NULL, raw));
    assert_true(matches(NULL, "example.com", raw));
    assert_true(matches(NULL, "@EXAMPLE.COM", raw));
    assert_false(matches(NULL, "example.org", raw));
    assert_true(matches(NULL, "xn--fsqu00a.xn--0zwm56d", raw)); /* the bcc, by A-label */
    assert_true(matches(NULL, "例子.测试", raw));
    assert_true(matches("X@xn--fsqu00a.xn--0zwm56d", NULL, raw));
    /* both conditions hold for one recipient, not across two */
    assert_false(matches("ming@example.com", "例子.测试", raw));
    assert_false(matches("a@b.org", NULL, "not json"));
    assert_true(matches(NULL, NULL, "not json")); /* no filter: everything */

    jobitem_filter f;
    mr_error err = MR_ERROR_INIT;
    assert_int_equal(jobitem_filter_init(&f, "no-at-sign", NULL, &err), -1);
    assert_int_equal(err.rc, MAILROOM_EINVAL);
    assert_non_null(strstr(err.msg, "to"));
    assert_int_equal(jobitem_filter_init(&f, NULL, "bad domain", &err), -1);
    assert_non_null(strstr(err.msg, "domain"));
}

static void test_cursors(void **state)
{
    (void)state;
    jobs_cursor c;
    char text[JOBS_CURSOR_MAX];
    mr_error err = MR_ERROR_INIT;

    assert_int_equal(jobs_cursor_parse(NULL, 'p', &c, &err), 0);
    assert_int_equal(c.offset, 0);
    assert_string_equal(c.anchor, "");
    assert_int_equal(jobs_cursor_parse("", 's', &c, &err), 0);
    assert_string_equal(c.at, "-inf");
    assert_int_equal(jobs_cursor_parse(NULL, 'x', &c, &err), 0);
    assert_string_equal(c.at, "+inf");

    assert_int_equal(jobs_cursor_parse("p20:signup:42", 'p', &c, &err), 0);
    assert_int_equal(c.offset, 20);
    assert_string_equal(c.anchor, "signup:42"); /* ids may hold ':' */
    jobs_cursor_format(&c, text);
    assert_string_equal(text, "p20:signup:42");

    assert_int_equal(jobs_cursor_parse("s1790000000000:3", 's', &c, &err), 0);
    assert_string_equal(c.at, "1790000000000");
    assert_int_equal(c.skip, 3);
    jobs_cursor_pass(&c, "1790000000000");
    assert_int_equal(c.skip, 4);
    jobs_cursor_pass(&c, "1790000000001");
    assert_string_equal(c.at, "1790000000001");
    assert_int_equal(c.skip, 1);
    jobs_cursor_format(&c, text);
    assert_string_equal(text, "s1790000000001:1");

    static const struct {
        const char *s;
        char tag;
    } bad[] = {{"s1:0", 'p'},  {"p1:x", 's'},   {"r5:0", 's'},    {"p-1:x", 'p'},
               {"px:y", 'p'},  {"p3:a b", 'p'}, {"s1", 's'},      {"s1:-2", 's'},
               {"s(5:0", 's'}, {"snan:0", 's'}, {"x12:1:2", 'x'}, {"p1", 'p'}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mr_error e = MR_ERROR_INIT;
        if (jobs_cursor_parse(bad[i].s, bad[i].tag, &c, &e) != -1 || e.rc != MAILROOM_EINVAL)
            fail_msg("cursor '%s' taken for a '%c' cursor", bad[i].s, bad[i].tag);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_job), cmocka_unit_test(test_read_unreadable),
        cmocka_unit_test(test_has_id),   cmocka_unit_test(test_filters),
        cmocka_unit_test(test_cursors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
