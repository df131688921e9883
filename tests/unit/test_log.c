/*
 * test_log: common/log.c, the consumer's log lines on stderr. Log lines carry job
 * data (subjects, addresses, SMTP replies), so whatever goes in, a line must stay one
 * line of valid UTF-8 without terminal escapes; and a sick Redis makes every worker
 * report the same error many times a second, which log_limited must reduce to one
 * line per kind per interval while counting what it left out.
 *
 * stderr is captured around the calls (a pipe dup2'ed onto fd 2, see support.h) and
 * the lines are checked: log_limited from many threads at once writes one line per
 * kind and, on its next line, the exact number of calls it left out (the number of
 * calls made, minus the one written); kinds are told apart by their first 31 bytes;
 * lines below the threshold are neither written nor counted; a long message of 2-,
 * 3- or 4-byte characters is cut where a character starts, at every offset; control
 * characters never reach the line; JSON lines parse as JSON with valid UTF-8.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "support.h"

#define HOUR_MS 3600000

static int setup(void **state)
{
    (void)state;
    return log_setup("debug", "text", "test-consumer");
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* How many times needle occurs in hay. */
static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Every line of out (len bytes): ends with '\n', holds no other control character,
 * is valid UTF-8. Returns the number of lines. */
static size_t check_lines(const char *out, size_t len)
{
    size_t lines = 0;
    assert_true(len == 0 || out[len - 1] == '\n');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c == '\n')
            lines++;
        else if (c < 0x20 || c == 0x7F)
            fail_msg("control character 0x%02x at byte %zu of the log", c, i);
    }
    assert_true(support_utf8_valid(out, len));
    return lines;
}

static void test_setup_refuses(void **state)
{
    (void)state;
    assert_int_equal(log_setup("verbose", "text", "c"), -1);
    assert_int_equal(log_setup("debug", "xml", "c"), -1);
    assert_int_equal(log_setup("debug", "text", "test-consumer"), 0);
}

#define THREADS 8
#define CALLS 500

typedef struct flood {
    int index;
} flood;

/* Each thread: CALLS lines, alternating the kinds flood-a and flood-b. */
static void *flood_run(void *arg)
{
    const flood *f = arg;
    for (int i = 0; i < CALLS; i++) {
        if ((i + f->index) % 2)
            log_limited(LOG_ERROR, "flood-a", HOUR_MS, "flood-a message %d", i);
        else
            log_limited(LOG_ERROR, "flood-b", HOUR_MS, "flood-b message %d", i);
    }
    return NULL;
}

static void test_limited_across_threads(void **state)
{
    (void)state;
    pthread_t threads[THREADS];
    flood floods[THREADS];
    support_capture cap;
    support_capture_begin(&cap, 2);
    for (int t = 0; t < THREADS; t++) {
        floods[t].index = t;
        if (pthread_create(&threads[t], NULL, flood_run, &floods[t]) != 0)
            abort();
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    size_t len;
    char *out = support_capture_end(&cap, &len);
    assert_int_equal(check_lines(out, len), 2);
    assert_int_equal(count(out, "flood-a message"), 1);
    assert_int_equal(count(out, "flood-b message"), 1);
    assert_null(strstr(out, "more like it")); /* the first line of a kind has none */
    free(out);

    /* Later, a line of kind a goes out (the interval has passed: 1 ms here) and says
     * how many of its kind were left out: all calls but the one written. Kind b, still
     * within its interval, stays quiet. */
    const long per_kind = THREADS * CALLS / 2;
    char want[96];
    snprintf(want, sizeof want, "flood-a later (%ld more like it since the last such line)",
             per_kind - 1);
    sleep_ms(5);
    support_capture_begin(&cap, 2);
    log_limited(LOG_ERROR, "flood-a", 1, "flood-a later");
    log_limited(LOG_ERROR, "flood-a", HOUR_MS, "flood-a again"); /* within the hour */
    log_limited(LOG_ERROR, "flood-b", HOUR_MS, "flood-b later");
    out = support_capture_end(&cap, &len);
    assert_int_equal(check_lines(out, len), 1);
    if (!strstr(out, want))
        fail_msg("expected '%s' in: %s", want, out);
    free(out);

    /* the count starts again after each line: one left out since */
    sleep_ms(5);
    support_capture_begin(&cap, 2);
    log_limited(LOG_ERROR, "flood-a", 1, "flood-a third");
    out = support_capture_end(&cap, &len);
    assert_int_equal(check_lines(out, len), 1);
    assert_non_null(strstr(out, "flood-a third (1 more like it since the last such line)"));
    free(out);
}

/* Kinds are told apart by their first 31 bytes; below the threshold nothing is
 * written and nothing counted. */
static void test_limited_kinds_and_threshold(void **state)
{
    (void)state;
    char k1[40], k2[40];
    memset(k1, 'k', 31);
    memcpy(k2, k1, 31);
    strcpy(k1 + 31, "-one");
    strcpy(k2 + 31, "-two");
    support_capture cap;
    support_capture_begin(&cap, 2);
    log_limited(LOG_WARN, k1, HOUR_MS, "long kind one");
    log_limited(LOG_WARN, k2, HOUR_MS, "long kind two"); /* same first 31 bytes */
    log_limited(LOG_WARN, "short-kind", HOUR_MS, "short kind");
    size_t len;
    char *out = support_capture_end(&cap, &len);
    assert_int_equal(check_lines(out, len), 2);
    assert_non_null(strstr(out, "long kind one"));
    assert_null(strstr(out, "long kind two"));
    assert_non_null(strstr(out, "short kind"));
    free(out);

    assert_int_equal(log_setup("error", "text", "test-consumer"), 0);
    support_capture_begin(&cap, 2);
    for (int i = 0; i < 10; i++)
        log_limited(LOG_WARN, "below", 1, "below the threshold");
    log_msg(LOG_INFO, NULL, "below the threshold too");
    out = support_capture_end(&cap, &len);
    assert_int_equal(len, 0);
    free(out);
    assert_int_equal(log_setup("debug", "text", "test-consumer"), 0);
    support_capture_begin(&cap, 2);
    log_limited(LOG_WARN, "below", 1, "now written");
    out = support_capture_end(&cap, &len);
    assert_int_equal(check_lines(out, len), 1);
    assert_non_null(strstr(out, "now written"));
    assert_null(strstr(out, "more like it")); /* the ten below the threshold don't count */
    free(out);
}

/*
 * log_msg and log_limited on a message of "MSG:", `lead` ASCII bytes, then far more
 * than a line holds of a character of n bytes: the line's text is a prefix of the
 * message that ends where a character of the message starts.
 */
static void check_long_message(const char *ch, size_t n, size_t lead, int limited)
{
    char text[5000];
    size_t len = (size_t)snprintf(text, sizeof text, "MSG:%.*s", (int)lead, "aaaaaaaa");
    while (len + n < 3000) {
        memcpy(text + len, ch, n);
        len += n;
    }
    text[len] = '\0';
    support_capture cap;
    support_capture_begin(&cap, 2);
    if (limited)
        log_limited(LOG_INFO, "long-utf8", 0, "%s", text);
    else
        log_msg(LOG_INFO, NULL, "%s", text);
    size_t out_len;
    char *out = support_capture_end(&cap, &out_len);
    assert_int_equal(check_lines(out, out_len), 1);
    const char *msg = strstr(out, "MSG:");
    assert_non_null(msg);
    size_t kept = (size_t)(out + out_len - 1 - msg); /* up to the '\n' */
    assert_true(kept > 4 + lead && kept < len);       /* cut, but not to nothing */
    assert_memory_equal(msg, text, kept);
    if (((unsigned char)text[kept] & 0xC0) == 0x80)
        fail_msg("%zu-byte characters after %zu ASCII: cut at byte %zu, inside a character",
                 n, lead, kept);
    free(out);
}

static void test_long_message_cut_on_character(void **state)
{
    (void)state;
    static const struct {
        const char *ch;
        size_t n;
    } chars[] = {{"\xc3\xa9", 2}, {"\xe6\xbb\xb4", 3}, {"\xf0\x9f\x94\x91", 4}};
    for (size_t i = 0; i < sizeof chars / sizeof chars[0]; i++) {
        for (size_t lead = 0; lead < chars[i].n; lead++) {
            check_long_message(chars[i].ch, chars[i].n, lead, 0);
            check_long_message(chars[i].ch, chars[i].n, lead, 1);
        }
    }
}

static void test_control_characters(void **state)
{
    (void)state;
    support_capture cap;
    support_capture_begin(&cap, 2);
    log_msg(LOG_WARN, "01JOB", "a\rb\nc\x1b[31md\x7f" "e\tf\x01g");
    log_limited(LOG_WARN, "ctl", HOUR_MS, "h\ni\x1b]0;title\x07j");
    size_t len;
    char *out = support_capture_end(&cap, &len);
    assert_int_equal(check_lines(out, len), 2);
    assert_non_null(strstr(out, " job=01JOB a?b?c?[31md?e?f?g\n"));
    assert_non_null(strstr(out, "h?i?]0;title?j\n"));
    free(out);
}

/* JSON lines: one JSON object per line, valid UTF-8 even when the message was cut,
 * with the consumer id and the job. */
static void test_json_lines(void **state)
{
    (void)state;
    char text[3000];
    size_t len = 0;
    memcpy(text, "x", 1);
    len = 1;
    while (len + 3 < sizeof text - 1) {
        memcpy(text + len, "\xe6\xbb\xb4", 3);
        len += 3;
    }
    text[len] = '\0';
    assert_int_equal(log_setup("info", "json", "consumer-7"), 0);
    support_capture cap;
    support_capture_begin(&cap, 2);
    log_msg(LOG_ERROR, "01JOB", "%s", text);
    log_msg(LOG_INFO, NULL, "tab\there \"quoted\" \x1b[0m");
    size_t out_len;
    char *out = support_capture_end(&cap, &out_len);
    assert_int_equal(log_setup("debug", "text", "test-consumer"), 0);
    assert_int_equal(check_lines(out, out_len), 2);
    char *line = out;
    for (int i = 0; i < 2; i++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        json_tokener *tok = json_tokener_new();
        assert_non_null(tok);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        json_object *o = json_tokener_parse_ex(tok, line, (int)(nl - line));
        if (!o)
            fail_msg("line %d is not JSON: %.*s", i, (int)(nl - line), line);
        json_tokener_free(tok);
        json_object *v = NULL;
        assert_true(json_object_object_get_ex(o, "consumer", &v));
        assert_string_equal(json_object_get_string(v), "consumer-7");
        assert_true(json_object_object_get_ex(o, "level", &v));
        assert_string_equal(json_object_get_string(v), i == 0 ? "error" : "info");
        assert_true(json_object_object_get_ex(o, "msg", &v));
        const char *msg = json_object_get_string(v);
        if (i == 0) {
            assert_true(strlen(msg) < len && strncmp(msg, text, strlen(msg)) == 0);
            assert_true(json_object_object_get_ex(o, "job", &v));
            assert_string_equal(json_object_get_string(v), "01JOB");
        } else {
            assert_string_equal(msg, "tab?here \"quoted\" ?[0m");
            assert_false(json_object_object_get_ex(o, "job", &v));
        }
        json_object_put(o);
        line = nl + 1;
    }
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_setup_refuses),
        cmocka_unit_test(test_limited_across_threads),
        cmocka_unit_test(test_limited_kinds_and_threshold),
        cmocka_unit_test(test_long_message_cut_on_character),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_json_lines),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
