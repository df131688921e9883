/*
 * consumer_app.c: a program that uses an *installed* libmailroom, built by
 * tests/packaging/test_install.sh once with pkg-config and once with CMake's
 * find_package(mailroom). It needs no Redis: it uses only the calls that work without
 * one, and checks what they return. Prints "consumer_app: ok" and exits 0, or names
 * the first failed check and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mailroom.h>
#include <mailroom_version.h>

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "consumer_app: FAILED: %s\n", what);
        failures++;
    }
}

int main(void)
{
    /* The version macros come from the generated, installed mailroom_version.h. */
    printf("mailroom %s (0x%06x)\n", MAILROOM_VERSION_STRING, (unsigned)MAILROOM_VERSION_NUMBER);
    check(MAILROOM_VERSION_NUMBER == ((MAILROOM_VERSION_MAJOR << 16) |
                                      (MAILROOM_VERSION_MINOR << 8) | MAILROOM_VERSION_PATCH),
          "MAILROOM_VERSION_NUMBER matches MAJOR.MINOR.PATCH");

    /* Options: defaults, no environment read yet. */
    mailroom_options opts;
    mailroom_options_init(&opts);
    check(opts.redis_url == NULL && opts.queue == NULL && opts.key == NULL,
          "mailroom_options_init leaves redis_url, queue and key NULL");
    check(opts.connect_timeout_ms > 0 && opts.command_timeout_ms > 0,
          "mailroom_options_init sets positive timeouts");

    /* Status codes and states. */
    const char *ok = mailroom_strerror(MAILROOM_OK);
    const char *dup = mailroom_strerror(MAILROOM_EDUPLICATE);
    check(ok && *ok && dup && *dup && strcmp(ok, dup) != 0, "mailroom_strerror describes codes");
    check(mailroom_strerror(12345) != NULL, "mailroom_strerror accepts an unknown code");
    printf("strerror(MAILROOM_EDUPLICATE) = %s\n", dup);
    check(strcmp(mailroom_state_name(MAILROOM_STATE_SENT), "sent") == 0,
          "mailroom_state_name(SENT) is \"sent\"");
    /* NULL is what mailroom_open() leaves when memory ran out: it has a message. */
    check(mailroom_errmsg(NULL) != NULL, "mailroom_errmsg(NULL) returns a string");

    /*
     * mailroom_validate() needs a handle, and only mailroom_open() makes one. Without
     * Redis the open fails, but (mailroom.h) still returns a handle for
     * mailroom_errmsg(); the options and the key are loaded before the connection is
     * tried, so that handle validates. Nothing listens on port 1 of the loopback.
     * No key: mailroom_validate() needs none.
     */
    unsetenv("MAILROOM_KEYS_FILE");
    unsetenv("MAILROOM_SECRET");
    unsetenv("MAILROOM_REDIS_PASSWORD_FILE");
    opts.redis_url = "redis://127.0.0.1:1/0";
    opts.connect_timeout_ms = 300;
    opts.command_timeout_ms = 300;
    mailroom *m = NULL;
    int rc = mailroom_open(&m, &opts);
    printf("mailroom_open without Redis: %s (%s)\n", mailroom_strerror(rc), mailroom_errmsg(m));
    check(m != NULL, "mailroom_open returns a handle even when Redis is unreachable");
    if (m) {
        const char *to[] = {"王小明 <ming@example.com>"};
        mailroom_email e = {.to = to, .n_to = 1, .from = "noreply@example.com",
                            .from_name = "滴水网", .subject = "请激活您的账户",
                            .text = "https://example.com/activate?t=abc"};
        rc = mailroom_validate(m, &e);
        printf("mailroom_validate(good email) = %s\n", mailroom_strerror(rc));
        check(rc == MAILROOM_OK, "mailroom_validate accepts a good email");

        e.subject = "Hi\r\nBcc: victim@example.org"; /* header injection */
        rc = mailroom_validate(m, &e);
        printf("mailroom_validate(CRLF in subject) = %s: %s\n", mailroom_strerror(rc),
               mailroom_errmsg(m));
        check(rc == MAILROOM_EINVAL, "mailroom_validate refuses CR/LF in the subject");
        check(*mailroom_errmsg(m) != '\0', "mailroom_errmsg explains the refusal");
        mailroom_close(m);
    }
    mailroom_close(NULL);

    if (failures) {
        fprintf(stderr, "consumer_app: %d check(s) failed\n", failures);
        return 1;
    }
    printf("consumer_app: ok\n");
    return 0;
}
