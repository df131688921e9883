/*
 * test_keys: common/keys.c, the Redis key names of a queue. Every name must carry the
 * hash tag {Q} (so a queue's keys share a Redis Cluster slot and one script may touch
 * them), follow docs/redis.md exactly (other producers, the CLI and operators use the
 * same names), refuse queue names that would break the tag or the key space (braces,
 * blanks, separators, non-ASCII, over 64 characters) without changing the keys, and
 * fit the longest queue and consumer names without cutting them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "keys.h"
#include "suppress.h"

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
    keys_minute(&k, 29925420LL, out);
    assert_string_equal(out, "mailroom:{signup}:minute:29925420");

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

/* The keys a deployment shares: relays and the suppression list, each its own slot. */
static void test_shared_keys(void **state)
{
    (void)state;
    keys_queue k;
    char out[KEYS_NAME_MAX];
    assert_int_equal(keys_init(&k, "reset"), 0);
    assert_string_equal(k.events, "mailroom:{reset}:events");
    assert_string_equal(k.paused, "mailroom:{reset}:paused");
    keys_info(&k, "web1-42", out);
    assert_string_equal(out, "mailroom:{reset}:info:web1-42");
    assert_true(keys_relay_valid("smtp.example.com:587"));
    assert_true(keys_relay_valid("[::1]:2525"));
    static const char *bad[] = {"", "a{b}:25", "a b:25", "a/b", "a\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (keys_relay_valid(bad[i]))
            fail_msg("relay name accepted: '%s'", bad[i]);
    keys_relay("127.0.0.1:2525", out);
    assert_string_equal(out, "mailroom:relay:{127.0.0.1:2525}");
    keys_relay_sessions("127.0.0.1:2525", out);
    assert_string_equal(out, "mailroom:relay:{127.0.0.1:2525}:sessions");

    /* one spelling per address: lower case, the domain as A-labels */
    char addr[ADDR_SPEC_MAX + 1];
    mr_error err = MR_ERROR_INIT;
    const char *given = "Ming.Wang@Bücher.Example";
    assert_int_equal(suppress_address(given, strlen(given), addr, &err), 0);
    assert_string_equal(addr, "ming.wang@xn--bcher-kva.example");
    keys_suppress(addr, out);
    assert_string_equal(out, "mailroom:{suppress}:addr:ming.wang@xn--bcher-kva.example");
    const char *utf8 = "用户@例子.广告";
    assert_int_equal(suppress_address(utf8, strlen(utf8), addr, &err), 0);
    assert_true(strncmp(addr, "用户@xn--", strlen("用户@xn--")) == 0);
    assert_int_equal(suppress_address("no-at-sign", 10, addr, &err), -1);
    assert_true(err.msg[0] != '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_shared_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
