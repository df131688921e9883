/*
 * test_job: the v1 job decoder and validator (every refusal names its reason), the
 * mailbox parser (header injection refused), ids and the ULID randomness pool, Redis
 * URLs, the Redis password file, which Redis error replies count as transient, the
 * Redis key names of a queue, timestamps and the retry backoff bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "address.h"
#include "buf.h"
#include "clock.h"
#include "job.h"
#include "keys.h"
#include "rconn.h"
#include "ulid.h"
#include "worker.h"

#define SIG "\"kid\":\"default\",\"alg\":\"hmac-sha1\",\"sig\":\"0000000000000000000000000000000000000000\""
#define BASE                                                                              \
    "\"v\":\"1\",\"id\":\"01JDQ6Z3K8P4W7X2M5N9R0T1AB\",\"from\":\"noreply@example.com\"," \
    "\"created_at\":\"2026-11-24T13:00:00Z\"," SIG

static int decode(const char *raw, char err[JOB_ERR_MAX])
{
    job j;
    int rc = job_decode(raw, strlen(raw), &j, err);
    job_clear(&j);
    return rc;
}

static void test_decode_full_job(void **state)
{
    (void)state;
    const char *raw = "{" BASE ",\"to\":[\"王小明 <ming@example.com>\",\"b@example.org\"],"
                      "\"cc\":[\"\\\"Doe, Jane\\\" <jane@example.com>\"],\"bcc\":[\"x@example.com\"],"
                      "\"from_name\":\"滴水网\",\"reply_to\":\"help@example.com\","
                      "\"subject\":\"请激活您的账户\",\"text\":\"line1\\r\\nline2\",\"html\":\"<p>x</p>\","
                      "\"headers\":{\"List-Unsubscribe\":\"<https://example.com/u>\",\"X-Campaign\":\"激活\"},"
                      "\"send_at\":\"2026-11-24T14:00:00+08:00\",\"expires_at\":\"2026-11-25T13:00:00.5Z\"}";
    job j;
    char err[JOB_ERR_MAX] = "";
    assert_int_equal(job_decode(raw, strlen(raw), &j, err), 0);
    assert_int_equal(j.n_to, 2);
    assert_int_equal(j.n_cc, 1);
    assert_int_equal(j.n_bcc, 1);
    assert_int_equal(j.n_headers, 2);
    assert_string_equal(j.subject, "请激活您的账户");
    assert_string_equal(j.text, "line1\r\nline2");
    assert_int_equal(j.text_len, 12);
    assert_int_equal(j.created_ms, 1795525200000LL);
    assert_int_equal(j.send_at_ms, 1795525200000LL - 7 * 3600000LL);
    assert_int_equal(j.expires_ms, 1795525200000LL + 86400000LL + 500);
    job_clear(&j);
    job_clear(&j); /* cleared twice is fine */
    job_clear(NULL);
}

/* Each case: a raw job and a fragment its refusal must contain. */
static void test_decode_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *raw, *why;
    } cases[] = {
        {"not json", "not valid JSON"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\"", "truncated"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\"} x", "not valid JSON"},
        {"[1,2]", "must be a JSON object"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\"}", "missing member 'text'"},
        {"{" BASE ",\"subject\":\"s\",\"text\":\"t\"}", "'to' must hold at least one"},
        {"{" BASE ",\"to\":[],\"subject\":\"s\",\"text\":\"t\"}", "'to' must hold at least one"},
        {"{" BASE ",\"to\":\"a@example.com\",\"subject\":\"s\",\"text\":\"t\"}", "array of strings"},
        {"{" BASE ",\"to\":[1],\"subject\":\"s\",\"text\":\"t\"}", "array of strings"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":5,\"text\":\"t\"}", "'subject' must be a string"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":null,\"text\":\"t\"}", "'subject' must be a string"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"a\\r\\nBcc: x@evil.com\",\"text\":\"t\"}", "control character"},
        {"{" BASE ",\"to\":[\"a@example.com\\r\\nRCPT TO:<x@evil.com>\"],\"subject\":\"s\",\"text\":\"t\"}", "control character"},
        {"{" BASE ",\"to\":[\"Evil\\nBcc: x@evil.com <a@example.com>\"],\"subject\":\"s\",\"text\":\"t\"}", "control character"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\\u0000u\"}", "NUL"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"\xff\xfe\",\"text\":\"t\"}", "JSON"},
        {"{" BASE ",\"to\":[\"not-an-address\"],\"subject\":\"s\",\"text\":\"t\"}", "malformed address"},
        {"{" BASE ",\"to\":[\"a@localhost\"],\"subject\":\"s\",\"text\":\"t\"}", "malformed address"},
        {"{" BASE ",\"to\":[\"a..b@example.com\"],\"subject\":\"s\",\"text\":\"t\"}", "malformed address"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"extra\":\"x\"}", "unknown member 'extra'"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"headers\":{\"Bcc\":\"x@evil.com\"}}", "not allowed"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"headers\":{\"X-Mailroom-Id\":\"1\"}}", "not allowed"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"headers\":{\"X-A\":\"v\\r\\nBcc: x\"}}", "control character"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"headers\":{\"X-A\":{\"deep\":\"x\"}}}", "JSON"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"send_at\":\"tomorrow\"}", "RFC 3339"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"send_at\":\"2026-11-24T13:00:00Z\\u0000\"}", "NUL"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\\u0000x\":\"s\",\"text\":\"t\"}", "NUL"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"send_at\":\"0999-01-01T00:00:00Z\"}", "RFC 3339"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"expires_at\":\"9999-12-31T23:59:60Z\"}", "RFC 3339"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"a\\nb\\u001b[2J\":\"\"}", "unknown member 'a?b?[2J'"},
        {"{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\",\"expires_at\":\"2026-02-30T00:00:00Z\"}", "RFC 3339"},
        {"{\"v\":\"2\",\"id\":\"x\",\"from\":\"noreply@example.com\",\"created_at\":\"2026-11-24T13:00:00Z\"," SIG ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\"}", "unsupported version"},
        {"{\"v\":\"1\",\"id\":\"bad id\",\"from\":\"noreply@example.com\",\"created_at\":\"2026-11-24T13:00:00Z\"," SIG ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\"}", "'id' must match"},
        {"{\"v\":\"1\",\"id\":\"x\",\"from\":\"Name <noreply@example.com>\",\"created_at\":\"2026-11-24T13:00:00Z\"," SIG ",\"to\":[\"a@example.com\"],\"subject\":\"s\",\"text\":\"t\"}", "'from' is not"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[JOB_ERR_MAX] = "";
        if (decode(cases[i].raw, err) != -1)
            fail_msg("case %zu accepted: %s", i, cases[i].raw);
        if (!strstr(err, cases[i].why))
            fail_msg("case %zu: '%s' does not contain '%s'", i, err, cases[i].why);
    }
}

/* "\\u0000" in JSON is a backslash and the text u0000, not a NUL: accepted. */
static void test_escaped_backslash_is_not_nul(void **state)
{
    (void)state;
    const char *raw = "{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"\\\\u0000\",\"text\":\"t\"}";
    job j;
    char err[JOB_ERR_MAX] = "";
    if (job_decode(raw, strlen(raw), &j, err) != 0)
        fail_msg("refused: %s", err);
    assert_string_equal(j.subject, "\\u0000");
    job_clear(&j);
}

static void test_decode_limits(void **state)
{
    (void)state;
    char err[JOB_ERR_MAX];
    /* over 256 KiB is refused before parsing */
    size_t big = JOB_MAX_BYTES + 1;
    char *raw = malloc(big + 1);
    memset(raw, ' ', big);
    raw[big] = '\0';
    assert_int_equal(decode(raw, err), -1);
    assert_non_null(strstr(err, "over the limit"));
    free(raw);
    /* deep nesting */
    buf deep = BUF_INIT;
    for (int i = 0; i < 5000; i++)
        buf_puts(&deep, "[");
    assert_int_equal(decode(deep.data, err), -1);
    buf_free(&deep);
    /* 101 recipients */
    buf many = BUF_INIT;
    buf_puts(&many, "{" BASE ",\"subject\":\"s\",\"text\":\"t\",\"to\":[");
    for (int i = 0; i <= JOB_MAX_RCPT; i++)
        buf_printf(&many, "%s\"u%d@example.com\"", i ? "," : "", i);
    buf_puts(&many, "]}");
    assert_int_equal(decode(many.data, err), -1);
    assert_non_null(strstr(err, "recipients"));
    buf_free(&many);
}

static void test_job_tree_sig_rules(void **state)
{
    (void)state;
    char err[JOB_ERR_MAX];
    job j;
    json_object *signed_tree = json_tokener_parse(
        "{" BASE ",\"to\":[\"a@example.com\"],\"subject\":\"\",\"text\":\"\"}");
    assert_int_equal(job_from_tree(signed_tree, 0, &j, err), -1);
    assert_non_null(strstr(err, "before signing"));
    job_clear(&j);
    json_object *unsigned_tree = json_tokener_parse(
        "{\"v\":\"1\",\"id\":\"x\",\"from\":\"n@example.com\",\"created_at\":\"2026-11-24T13:00:00Z\","
        "\"kid\":\"default\",\"alg\":\"hmac-sha256\",\"to\":[\"a@example.com\"],\"subject\":\"\",\"text\":\"\"}");
    assert_int_equal(job_from_tree(unsigned_tree, 0, &j, err), 0);
    job_clear(&j);
}

static void test_peek_id(void **state)
{
    (void)state;
    char id[JOB_ID_MAX + 1];
    job_peek_id("{\"id\":\"abc:1\",\"x\":1}", 20, id);
    assert_string_equal(id, "abc:1");
    job_peek_id("{\"id\":\"bad id\"}", 15, id);
    assert_string_equal(id, "");
    job_peek_id("garbage", 7, id);
    assert_string_equal(id, "");
}

static void test_mailboxes(void **state)
{
    (void)state;
    addr_mailbox mb;
    const char *why;
    const char *s = "王小明 <ming@example.com>";
    assert_int_equal(addr_parse(s, strlen(s), &mb, &why), 0);
    assert_string_equal(mb.name, "王小明");
    assert_string_equal(mb.spec, "ming@example.com");
    s = "\"Doe, \\\"JD\\\" Jane\" <jane+tag@mail.example.co.uk>";
    assert_int_equal(addr_parse(s, strlen(s), &mb, &why), 0);
    assert_string_equal(mb.name, "Doe, \"JD\" Jane");
    assert_string_equal(mb.spec, "jane+tag@mail.example.co.uk");
    s = "  plain@example.com ";
    assert_int_equal(addr_parse(s, strlen(s), &mb, &why), 0);
    assert_string_equal(mb.name, "");
    static const char *bad[] = {
        "a@example.com\r\nRCPT TO:<b@example.com>", "a@example.com>", "<a@example.com",
        "x <y> <a@example.com>", "a@-example.com", "a@example-.com", ".a@example.com",
        "a@exa_mple.com", "\"a\"@example.com", "a@[127.0.0.1]", "ü@example.com",
        "a@example.com\0", "Na\"me <a@example.com>", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = strlen(bad[i]) + (strcmp(bad[i], "a@example.com") == 0);
        if (addr_parse(bad[i], len, &mb, &why) != -1)
            fail_msg("mailbox %zu accepted: %s", i, bad[i]);
    }
    char local[70];
    memset(local, 0, sizeof local);
    memset(local, 'a', 65);
    memcpy(local + 65, "@x.io", 4);
    assert_false(addr_spec_valid(local, strlen(local)));
    assert_true(addr_utf8_valid("滴水网", strlen("滴水网")));
    assert_false(addr_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    assert_false(addr_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(addr_utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(addr_utf8_valid("\xe6\xbb", 2));         /* truncated */
}

static void test_ids(void **state)
{
    (void)state;
    assert_true(job_id_valid("signup:42.a_b-c"));
    assert_false(job_id_valid(""));
    assert_false(job_id_valid("a b"));
    assert_false(job_id_valid("a{b}"));
    char longid[JOB_ID_MAX + 2];
    memset(longid, 'a', JOB_ID_MAX + 1);
    longid[JOB_ID_MAX + 1] = '\0';
    assert_false(job_id_valid(longid));
    longid[JOB_ID_MAX] = '\0';
    assert_true(job_id_valid(longid));

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

static void test_redis_urls(void **state)
{
    (void)state;
    rconn_url u;
    char err[256];
    assert_int_equal(rconn_url_parse("redis://127.0.0.1:6380/2", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_string_equal(u.password, "");
    assert_int_equal(rconn_url_parse("redis://prod:p%40ss%3Aw@localhost", &u, err, sizeof err), 0);
    assert_string_equal(u.user, "prod");
    assert_string_equal(u.password, "p@ss:w");
    assert_int_equal(u.port, 6379);
    assert_int_equal(rconn_url_parse("redis://producer@h", &u, err, sizeof err), 0);
    assert_string_equal(u.user, "producer");
    assert_string_equal(u.password, "");
    assert_false(rconn_url_has_password("redis://producer@h"));
    assert_true(rconn_url_has_password("redis://:pw@h"));
    assert_int_equal(rconn_url_parse("redis://:only@[::1]:7000/", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.password, "only");
    assert_int_equal(u.port, 7000);
    static const char *bad[] = {"http://x", "redis://", "redis://h:0", "redis://h:70000",
                                "redis://h:12a", "redis://h/db", "redis://u:%zz@h",
                                "redis://u:%00@h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (rconn_url_parse(bad[i], &u, err, sizeof err) != -1)
            fail_msg("URL accepted: %s", bad[i]);
    }
    assert_int_equal(rconn_url_parse("redis-sentinel://:pw@127.0.0.1:26379,[::1]:26380/mymaster/3",
                                     &u, err, sizeof err), 0);
    assert_int_equal(u.n_sentinels, 2);
    assert_string_equal(u.sentinels[0].host, "127.0.0.1");
    assert_int_equal(u.sentinels[1].port, 26380);
    assert_string_equal(u.sentinels[1].host, "::1");
    assert_string_equal(u.master_name, "mymaster");
    assert_int_equal(u.db, 3);
    assert_string_equal(u.password, "pw");
    assert_int_equal(rconn_url_parse("redis-sentinel://h1/m", &u, err, sizeof err), 0);
    assert_int_equal(u.sentinels[0].port, 26379);
    static const char *bad_sentinel[] = {"redis-sentinel://h1:1", "redis-sentinel://h1:1/",
                                         "redis-sentinel://h1:1,/m", "redis-sentinel:///m"};
    for (size_t i = 0; i < sizeof bad_sentinel / sizeof bad_sentinel[0]; i++) {
        if (rconn_url_parse(bad_sentinel[i], &u, err, sizeof err) != -1)
            fail_msg("Sentinel URL accepted: %s", bad_sentinel[i]);
    }
    assert_int_equal(rconn_url_parse("redis://u:secretpw@h:1:2", &u, err, sizeof err), -1);
    assert_null(strstr(err, "secretpw"));
}

/*
 * Writes text into a new mkstemp file and points MAILROOM_REDIS_PASSWORD_FILE at it;
 * path receives the file's name (the caller unlinks it).
 */
static void password_file(char path[32], const char *text)
{
    strcpy(path, "/tmp/mailroom-pw-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
    assert_int_equal(setenv("MAILROOM_REDIS_PASSWORD_FILE", path, 1), 0);
}

static void test_redis_password_file(void **state)
{
    (void)state;
    rconn_url u;
    char err[512], path[32];
    /* unset or empty variable: nothing to do, the URL's password stays */
    assert_int_equal(rconn_url_parse("redis://:fromurl@h", &u, err, sizeof err), 0);
    assert_int_equal(unsetenv("MAILROOM_REDIS_PASSWORD_FILE"), 0);
    assert_int_equal(rconn_password_from_env(&u, err, sizeof err), 0);
    assert_string_equal(u.password, "fromurl");
    assert_int_equal(setenv("MAILROOM_REDIS_PASSWORD_FILE", "", 1), 0);
    assert_int_equal(rconn_password_from_env(&u, err, sizeof err), 0);
    assert_string_equal(u.password, "fromurl");

    /* the first line, without its line end, replaces it */
    password_file(path, "Pw-from-file_42\r\nsecond line\n");
    assert_int_equal(rconn_password_from_env(&u, err, sizeof err), 0);
    assert_string_equal(u.password, "Pw-from-file_42");
    unlink(path);

    /* the longest that fits (255 bytes and the NUL), then one byte more: refused,
     * the URL's password untouched, and err names the file but not the password */
    char pw[sizeof u.password + 2];
    for (size_t i = 0; i < sizeof pw - 1; i++)
        pw[i] = "Zq7-"[i % 4];
    pw[sizeof u.password - 1] = '\0';
    password_file(path, pw);
    assert_int_equal(rconn_password_from_env(&u, err, sizeof err), 0);
    assert_string_equal(u.password, pw);
    unlink(path);
    assert_int_equal(rconn_url_parse("redis://:fromurl@h", &u, err, sizeof err), 0);
    pw[sizeof u.password - 1] = 'Z';
    pw[sizeof u.password] = '\0';
    password_file(path, pw);
    memset(err, 0, sizeof err);
    assert_int_equal(rconn_password_from_env(&u, err, sizeof err), -1);
    assert_string_equal(u.password, "fromurl");
    assert_non_null(strstr(err, "too long"));
    assert_non_null(strstr(err, path));
    assert_null(strstr(err, "Zq7-"));
    unlink(path);

    /* an empty first line, and a missing file: refused */
    password_file(path, "\nsecond line\n");
    err[0] = '\0';
    assert_int_equal(rconn_password_from_env(&u, err, sizeof err), -1);
    assert_non_null(strstr(err, "empty"));
    assert_null(strstr(err, "second"));
    unlink(path);
    err[0] = '\0';
    assert_int_equal(rconn_password_from_env(&u, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
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

static void test_keys(void **state)
{
    (void)state;
    keys_queue k;
    char out[KEYS_NAME_MAX];
    assert_int_equal(keys_init(&k, "signup"), 0);
    assert_string_equal(k.queue, "signup");
    assert_string_equal(k.pending, "mailroom:{signup}:pending");
    assert_string_equal(k.scheduled, "mailroom:{signup}:scheduled");
    assert_string_equal(k.dead, "mailroom:{signup}:dead");
    assert_string_equal(k.stats, "mailroom:{signup}:stats");
    assert_string_equal(k.status, "mailroom:{signup}:status");
    assert_string_equal(k.consumers, "mailroom:{signup}:consumers");
    assert_string_equal(k.job_prefix, "mailroom:{signup}:job:");
    keys_job(&k, "01JDQ6Z3K8P4W7X2M5N9R0T1AB", out);
    assert_string_equal(out, "mailroom:{signup}:job:01JDQ6Z3K8P4W7X2M5N9R0T1AB");
    keys_processing(&k, "host-1:4242:3", out);
    assert_string_equal(out, "mailroom:{signup}:processing:host-1:4242:3");
    keys_rate(&k, 29925420LL, out);
    assert_string_equal(out, "mailroom:{signup}:rate:29925420");

    /* names: [A-Za-z0-9._:-]{1,64}; a refused name leaves k as it was */
    assert_true(keys_queue_valid("a.B_9:x-y"));
    static const char *bad[] = {"", "a{b}", "a{b", "b}", "a b", "a\tb", "a/b", "ü", "a\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (keys_queue_valid(bad[i]) || keys_init(&k, bad[i]) != -1)
            fail_msg("queue name accepted: '%s'", bad[i]);
    }
    assert_string_equal(k.pending, "mailroom:{signup}:pending");
    char name[KEYS_QUEUE_MAX + 2];
    memset(name, 'q', KEYS_QUEUE_MAX + 1);
    name[KEYS_QUEUE_MAX + 1] = '\0'; /* 65 characters */
    assert_false(keys_queue_valid(name));
    assert_int_equal(keys_init(&k, name), -1);
    name[KEYS_QUEUE_MAX] = '\0'; /* 64 */
    assert_true(keys_queue_valid(name));
    assert_int_equal(keys_init(&k, name), 0);
    assert_string_equal(k.queue, name);
    /* the longest names still fit: nothing is cut off */
    const char *consumer = "consumer-with-a-rather-long-name:123456:99";
    keys_processing(&k, consumer, out);
    assert_int_equal(strlen(out), strlen("mailroom:{}:processing:") + 64 + strlen(consumer));
    assert_string_equal(out + strlen(out) - strlen(consumer), consumer);
    keys_job(&k, "x", out);
    assert_int_equal(strlen(out), strlen("mailroom:{}:job:x") + 64);
}

static void test_clock(void **state)
{
    (void)state;
    int64_t ms;
    char out[CLOCK_ISO_MAX];
    assert_int_equal(clock_parse_rfc3339("2026-11-24T13:00:00Z", &ms), 0);
    clock_format_iso(ms, 0, out);
    assert_string_equal(out, "2026-11-24T13:00:00Z");
    clock_format_iso(ms + 7, 1, out);
    assert_string_equal(out, "2026-11-24T13:00:00.007Z");
    clock_format_rfc5322(ms, out);
    assert_string_equal(out, "Tue, 24 Nov 2026 13:00:00 +0000");
    assert_int_equal(clock_parse_rfc3339("2024-02-29T23:59:59-01:30", &ms), 0);
    clock_format_iso(ms, 0, out);
    assert_string_equal(out, "2024-03-01T01:29:59Z");
    static const char *bad[] = {"2026-11-24", "2026-11-24T13:00:00", "2025-02-29T00:00:00Z",
                                "2026-13-01T00:00:00Z", "2026-11-24T24:00:00Z",
                                "2026-11-24T13:00:00Zjunk", "2026-11-24T13:00:00.Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(clock_parse_rfc3339(bad[i], &ms), -1);
}

static void test_backoff_bounds(void **state)
{
    (void)state;
    const int64_t base = 10000, max = 3600000;
    for (int attempt = 1; attempt <= 20; attempt++) {
        int64_t nominal = base;
        for (int i = 1; i < attempt; i++)
            nominal = nominal * 2 > max ? max : nominal * 2;
        int64_t lo = worker_backoff_ms(attempt, base, max, 0);
        int64_t hi = worker_backoff_ms(attempt, base, max, UINT32_MAX);
        int64_t mid = worker_backoff_ms(attempt, base, max, 1u << 31);
        assert_int_equal(lo, (int64_t)((double)nominal * 0.8));
        assert_true(hi <= nominal * 6 / 5 && hi >= nominal * 6 / 5 - 1);
        assert_true(mid >= nominal - 1 && mid <= nominal + 1);
    }
    assert_int_equal(worker_backoff_ms(1, base, max, 1u << 31), 10000);
    assert_int_equal(worker_backoff_ms(4, base, max, 1u << 31), 80000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_full_job), cmocka_unit_test(test_decode_refusals),
        cmocka_unit_test(test_decode_limits),   cmocka_unit_test(test_job_tree_sig_rules),
        cmocka_unit_test(test_escaped_backslash_is_not_nul),
        cmocka_unit_test(test_peek_id),         cmocka_unit_test(test_mailboxes),
        cmocka_unit_test(test_ids),             cmocka_unit_test(test_ulid_pool),
        cmocka_unit_test(test_redis_urls),      cmocka_unit_test(test_redis_password_file),
        cmocka_unit_test(test_redis_transient_errors),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_clock),           cmocka_unit_test(test_backoff_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
