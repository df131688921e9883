/*
 * namespace_app.c: an application that happens to use names libmailroom uses inside
 * (buf_append, job_decode, keys_init, script_run, log_msg, ...), linked against the
 * static and against the shared library: libmailroom's private namespace test.
 *
 * Only mailroom_* may leave the library. With the shared library, hidden visibility
 * keeps the rest inside. With the static archive, its objects are linked into one
 * whose hidden symbols are made local (lib/CMakeLists.txt). On the old layout, where
 * libmailroom.a held common/'s objects as they were, this program either fails to link
 * ("multiple definition of `buf_append'") or, when the linker takes the application's
 * definition for the library's call, runs the library on the application's functions:
 * each definition below counts its calls, and the program fails when the library made
 * any. No Redis: the handle points at a closed port.
 *
 * Built in the build tree (tests/packaging/namespace.cmake) and against an installed
 * mailroom (tests/packaging/test_install.sh, tests/packaging/CMakeLists.txt). Prints
 * "namespace_app: ok" and exits 0, or names each failed check and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mailroom.h>
#include <mailroom_admin.h>

/* How often the library called into this program's definitions (must stay 0). */
static int calls;
static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "namespace_app: FAILED: %s\n", what);
        failures++;
    }
}

/*
 * The application's own functions, named as libmailroom's internals are (common/ and
 * lib/), with signatures of the application's choosing. Each returns its own marker.
 */
int buf_append(void *b, const void *data, size_t len);
int buf_reserve(void *b, size_t extra);
void buf_free(void *b);
int job_decode(const char *raw, size_t len, void *out, void *err);
int job_from_tree(void *root, int require_sig, void *out, void *err);
void *job_parse_strict(const char *raw, size_t len, void *err);
int keys_init(void *k, const char *name);
void keys_job(const void *k, const char *id, char *out);
void *script_run(void *c, int id, const char *const *v, const size_t *len, void *err);
const char *script_sha(int id);
void log_msg(int level, const char *job, const char *fmt, ...);
void *rconn_connect(const void *u, int connect_ms, int command_ms, void *err);
int rconn_url_parse(const char *url, void *out, void *err);
int sig_canonical(void *obj, void *out);
int ulid_new(long long now_ms, char *out);
long long clock_now_ms(void);
int addr_parse(const char *s, size_t len, void *out, void *err);
int keyring_add(void *kr, const char *kid, const void *secret, size_t len, void *err);
int mr_fail(void *err, int rc, const char *fmt, ...);
int mr_duration_parse(const char *s, long long *ms, void *err);
int handle_connect(void *m);
int send_prepare(void *m, const void *e, long long now, const char *created, int sign, void *p);

int buf_append(void *b, const void *data, size_t len)
{
    (void)b, (void)data, (void)len;
    calls++;
    return 1001;
}
int buf_reserve(void *b, size_t extra)
{
    (void)b, (void)extra;
    calls++;
    return 1002;
}
void buf_free(void *b)
{
    (void)b;
    calls++;
}
int job_decode(const char *raw, size_t len, void *out, void *err)
{
    (void)raw, (void)len, (void)out, (void)err;
    calls++;
    return 1003;
}
int job_from_tree(void *root, int require_sig, void *out, void *err)
{
    (void)root, (void)require_sig, (void)out, (void)err;
    calls++;
    return 1004;
}
void *job_parse_strict(const char *raw, size_t len, void *err)
{
    (void)raw, (void)len, (void)err;
    calls++;
    return NULL;
}
int keys_init(void *k, const char *name)
{
    (void)k, (void)name;
    calls++;
    return 1005;
}
void keys_job(const void *k, const char *id, char *out)
{
    (void)k, (void)id, (void)out;
    calls++;
}
void *script_run(void *c, int id, const char *const *v, const size_t *len, void *err)
{
    (void)c, (void)id, (void)v, (void)len, (void)err;
    calls++;
    return NULL;
}
const char *script_sha(int id)
{
    (void)id;
    calls++;
    return "application";
}
void log_msg(int level, const char *job, const char *fmt, ...)
{
    (void)level, (void)job, (void)fmt;
    calls++;
}
void *rconn_connect(const void *u, int connect_ms, int command_ms, void *err)
{
    (void)u, (void)connect_ms, (void)command_ms, (void)err;
    calls++;
    return NULL;
}
int rconn_url_parse(const char *url, void *out, void *err)
{
    (void)url, (void)out, (void)err;
    calls++;
    return 1006;
}
int sig_canonical(void *obj, void *out)
{
    (void)obj, (void)out;
    calls++;
    return 1007;
}
int ulid_new(long long now_ms, char *out)
{
    (void)now_ms, (void)out;
    calls++;
    return 1008;
}
long long clock_now_ms(void)
{
    calls++;
    return 1009;
}
int addr_parse(const char *s, size_t len, void *out, void *err)
{
    (void)s, (void)len, (void)out, (void)err;
    calls++;
    return 1010;
}
int keyring_add(void *kr, const char *kid, const void *secret, size_t len, void *err)
{
    (void)kr, (void)kid, (void)secret, (void)len, (void)err;
    calls++;
    return 1011;
}
int mr_fail(void *err, int rc, const char *fmt, ...)
{
    (void)err, (void)rc, (void)fmt;
    calls++;
    return 1012;
}
int mr_duration_parse(const char *s, long long *ms, void *err)
{
    (void)s, (void)ms, (void)err;
    calls++;
    return 1013;
}
int handle_connect(void *m)
{
    (void)m;
    calls++;
    return 1014;
}
int send_prepare(void *m, const void *e, long long now, const char *created, int sign, void *p)
{
    (void)m, (void)e, (void)now, (void)created, (void)sign, (void)p;
    calls++;
    return 1015;
}

/* The application's calls reach the application's definitions. */
static void own_functions_are_the_applications(void)
{
    check(buf_append(NULL, NULL, 0) == 1001 && job_decode(NULL, 0, NULL, NULL) == 1003 &&
              keys_init(NULL, NULL) == 1005 && script_run(NULL, 0, NULL, NULL, NULL) == NULL &&
              clock_now_ms() == 1009 && mr_fail(NULL, 0, "") == 1012,
          "the application's own buf_append, job_decode, ... answer its calls");
    log_msg(0, NULL, "x");
    check(calls == 7, "each of the application's functions ran once");
    calls = 0;
}

/* The library does its work with its own internals. */
static void library_uses_its_own(void)
{
    mailroom_options o;
    mailroom_options_init(&o);
    o.redis_url = "redis://127.0.0.1:1/0";
    o.kid = "app-key";
    o.key = "0123456789abcdef-namespace";
    o.key_len = strlen(o.key);
    o.connect_timeout_ms = 300;
    mailroom *m = NULL;
    int rc = mailroom_open(&m, &o);
    check(m && (rc == MAILROOM_EREDIS || rc == MAILROOM_ETIMEOUT),
          "mailroom_open gets as far as the (closed) Redis port");
    const char *to[] = {"王小明 <ming@example.com>"};
    mailroom_email e = {
        .to = to, .n_to = 1, .from = "noreply@example.com", .subject = "s", .text = "t"};
    check(mailroom_validate(m, &e) == MAILROOM_OK, "mailroom_validate accepts a good email");
    e.subject = "a\r\nBcc: x@example.org";
    check(mailroom_validate(m, &e) == MAILROOM_EINVAL && strstr(mailroom_errmsg(m), "subject"),
          "mailroom_validate refuses CR LF in the subject, naming it");
    mailroom_email es[2] = {e, e};
    es[0].subject = "ok";
    char ids[2][MAILROOM_ID_MAX];
    int results[2];
    mailroom_send_batch(m, es, 2, ids, results);
    check(results[1] == MAILROOM_EINVAL && results[0] != MAILROOM_EINVAL,
          "mailroom_send_batch prepares and signs the good email");
    mailroom_email_json *doc = NULL;
    const char *json = "{\"text\":\"hello\\u0000tail\"}";
    check(mailroom_email_from_json(m, json, strlen(json), &doc) == MAILROOM_EINVAL,
          "mailroom_email_from_json refuses an escaped NUL");
    long long ms = 0;
    check(mailroom_parse_duration("1.5s", &ms) == MAILROOM_OK && ms == 1500,
          "mailroom_parse_duration reads 1.5s");
    mailroom_close(m);
    check(calls == 0, "libmailroom never called the application's functions");
}

int main(void)
{
    own_functions_are_the_applications();
    library_uses_its_own();
    if (failures) {
        fprintf(stderr,
                "namespace_app: %d check(s) failed (library calls into the "
                "application: %d)\n",
                failures, calls);
        return 1;
    }
    printf("namespace_app: ok\n");
    return 0;
}
