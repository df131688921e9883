/*
 * test_http: the --http value of consumer/http.c. The endpoint must listen on loopback
 * unless an address is given, take numeric addresses only (IPv6 in brackets, so that
 * "::1:9780" is never guessed at), and refuse anything else with a message that says
 * what it takes, since a consumer started with a bad value exits at once. The server
 * itself runs in tests/integration/test_metrics.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "http.h"

/* Parses text and checks the address and port it gives. */
static void assert_listen(const char *text, int family, const char *address, int port)
{
    struct sockaddr_storage ss;
    mr_error err = MR_ERROR_INIT;
    char shown[INET6_ADDRSTRLEN] = "";
    if (http_listen_parse(text, &ss, &err) != 0)
        fail_msg("'%s' refused: %s", text, err.msg);
    assert_int_equal(ss.ss_family, family);
    if (family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)(const void *)&ss;
        inet_ntop(AF_INET, &v4->sin_addr, shown, sizeof shown);
        assert_int_equal(ntohs(v4->sin_port), port);
    } else {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)(const void *)&ss;
        inet_ntop(AF_INET6, &v6->sin6_addr, shown, sizeof shown);
        assert_int_equal(ntohs(v6->sin6_port), port);
    }
    assert_string_equal(shown, address);
}

static void loopback_unless_an_address_is_given(void **state)
{
    (void)state;
    assert_listen("9780", AF_INET, "127.0.0.1", 9780);
    assert_listen(":9780", AF_INET, "127.0.0.1", 9780);
    assert_listen("localhost:1", AF_INET, "127.0.0.1", 1);
    assert_listen("127.0.0.2:65535", AF_INET, "127.0.0.2", 65535);
    assert_listen("0.0.0.0:9780", AF_INET, "0.0.0.0", 9780);
    assert_listen("[::1]:9780", AF_INET6, "::1", 9780);
    assert_listen("[::]:80", AF_INET6, "::", 80);
}

static void anything_else_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"",
                                      ":",
                                      "0",
                                      "65536",
                                      "127.0.0.1:0",
                                      "127.0.0.1",
                                      "abc",
                                      "9780x",
                                      "-1",
                                      "+80",
                                      "::1:9780",
                                      "[::1]",
                                      "[::1]:",
                                      "[::1:9780",
                                      "host:9780",
                                      "1.2.3:9780",
                                      "1.2.3.4 :80",
                                      ":009780",
                                      "[]:9780",
                                      "1.2.3.4:80:",
                                      "999.1.1.1:80",
                                      "[fe80::1%lo]:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mr_error err = MR_ERROR_INIT;
        if (http_listen_parse(bad[i], NULL, &err) == 0)
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(err.rc, MAILROOM_EINVAL);
        assert_non_null(strstr(err.msg, "--http takes PORT"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loopback_unless_an_address_is_given),
        cmocka_unit_test(anything_else_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
