/*
 * fuzz_job: libFuzzer target for the consumer's input path on arbitrary bytes, exactly
 * as a worker runs it on a raw job taken from Redis:
 *
 *   job_decode() -> on success sig_verify_job() against a fixed key ring -> job_clear()
 *                -> on failure job_peek_id() (what the worker reports the job under)
 *
 * Beyond "no crash, no leak, no UBSan report" it checks what the rest of the consumer
 * relies on and aborts when it does not hold:
 *   - an error (mr_error) carries a failure code, and its message is non-empty,
 *     NUL-terminated, never contains a secret of the key ring (unless the input itself
 *     does), and is one line of UTF-8 text without control characters (soft, see
 *     below);
 *   - no decoded string hides a NUL behind its C string, and a job whose text has a
 *     \u0000 escape (also in a member name, which json-c cuts at the NUL) does not
 *     decode (soft);
 *   - job_peek_id() gives "" or a valid job id, and for a decoded job exactly its id;
 *   - a decoded job satisfies the model's limits (recipients, headers, lengths, UTF-8,
 *     no control characters where they are forbidden), since mime.c and smtp.c trust
 *     them; every mailbox has an envelope form (ASCII domain, <= 254 octets, the same
 *     local part, stable when converted again) and a utf8 flag that is exactly "the
 *     local part is non-ASCII";
 *   - the canonical form is deterministic and a verification verdict is stable.
 *
 * Keys: kid "default" = "mailroom-example-secret" (the key of most test vectors) and
 * kid "k2" = "0123456789abcdef0123456789abcdef", so seeds signed with either verify and
 * the fuzzer reaches the accepted path too (tests/fuzz/corpus/make_corpus.py).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "address.h"
#include "buf.h"
#include "error.h"
#include "job.h"
#include "keyring.h"
#include "sig.h"

#define FUZZ_KEY_DEFAULT "mailroom-example-secret"
#define FUZZ_KEY_K2 "0123456789abcdef0123456789abcdef"

static keyring g_ring;
static buf g_scratch = BUF_INIT;
static buf g_scratch2 = BUF_INIT;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "fuzz_job: invariant violated: %s (%s:%d)\n", #cond, __FILE__, \
                    __LINE__);                                                            \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* Soft checks: the wording of error messages beyond "terminated, non-empty, no
 * secret" (one line, no control characters, valid UTF-8: a reason goes into logs, the
 * status record and JSON events) and the completeness of validation (no NUL hidden in a
 * decoded string). MAILROOM_FUZZ_LAX=1 turns them off, so a long run can get past a
 * known finding of that kind; memory errors, leaks, UB and the hard checks remain. */
static int g_lax;

#define SOFT_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!g_lax)                                                                       \
            CHECK(cond);                                                                  \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *lax = getenv("MAILROOM_FUZZ_LAX");
    g_lax = lax && *lax && strcmp(lax, "0") != 0;
    mr_error err = MR_ERROR_INIT;
    if (keyring_add(&g_ring, "default", FUZZ_KEY_DEFAULT, strlen(FUZZ_KEY_DEFAULT), &err) != 0 ||
        keyring_add(&g_ring, "k2", FUZZ_KEY_K2, strlen(FUZZ_KEY_K2), &err) != 0) {
        fprintf(stderr, "fuzz_job: keyring_add: %s\n", err.msg);
        abort();
    }
    return 0;
}

static int has_ctl(const char *s, size_t len);

/* An error: a failure code (not MAILROOM_OK), a message terminated within its
 * buffer, non-empty, no secret in it; one line of text (job.h: "a one-line reason"):
 * no CR or LF, and (soft) no other control character and valid UTF-8. */
static int g_input_has_secret; /* then the message may echo it: not a leak */

static void check_err(const mr_error *e)
{
    CHECK(e->rc != MAILROOM_OK);
    const char *err = e->msg;
    size_t cap = sizeof e->msg;
    size_t n = strnlen(err, cap);
    CHECK(n < cap);
    CHECK(n > 0);
    if (!g_input_has_secret) {
        CHECK(strstr(err, FUZZ_KEY_DEFAULT) == NULL);
        CHECK(strstr(err, FUZZ_KEY_K2) == NULL);
    }
    SOFT_CHECK(memchr(err, '\n', n) == NULL && memchr(err, '\r', n) == NULL);
    SOFT_CHECK(!has_ctl(err, n));
    SOFT_CHECK(addr_utf8_valid(err, n));
}

static int has_ctl(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return 1;
    }
    return 0;
}

/* A string member of a decoded job: valid UTF-8, and no control characters unless it
 * is a body. */
static void check_str(const char *s, size_t max, int allow_ctl)
{
    CHECK(s != NULL);
    size_t len = strlen(s);
    CHECK(len <= max);
    CHECK(addr_utf8_valid(s, len));
    if (!allow_ctl)
        CHECK(!has_ctl(s, len));
}

/*
 * The envelope form the worker sends: an address itself (converting it again changes
 * nothing), at most 254 octets, the same local part, a domain of ASCII only (A-labels
 * or host names) that has no byte of a control or space; utf8 set exactly when the
 * local part has a byte >= 0x80.
 */
static void check_envelope(const addr_mailbox *mb)
{
    const char *at = strchr(mb->spec, '@'), *eat = strchr(mb->envelope, '@');
    CHECK(at && eat);
    size_t local = (size_t)(at - mb->spec);
    CHECK((size_t)(eat - mb->envelope) == local && memcmp(mb->spec, mb->envelope, local) == 0);
    CHECK(strlen(mb->envelope) <= ADDR_SPEC_MAX);
    int high = 0;
    for (size_t i = 0; i < local; i++)
        high |= (unsigned char)mb->spec[i] >= 0x80;
    CHECK(mb->utf8 == high);
    for (const char *p = eat + 1; *p; p++)
        CHECK((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7F);
    char again[ADDR_SPEC_MAX + 1];
    int utf8 = -1;
    CHECK(addr_spec_parse(mb->envelope, strlen(mb->envelope), again, &utf8, NULL) == 0);
    CHECK(strcmp(again, mb->envelope) == 0 && utf8 == mb->utf8);
}

static void check_mailboxes(const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        addr_mailbox mb;
        check_str(list[i], ADDR_SPEC_MAX + ADDR_NAME_MAX + 8, 0);
        CHECK(addr_parse(list[i], strlen(list[i]), &mb, NULL) == 0);
        CHECK(addr_spec_valid(mb.spec, strlen(mb.spec)));
        CHECK(addr_name_valid(mb.name, strlen(mb.name)));
        check_envelope(&mb);
    }
}

/* A string value of the tree: no NUL hidden behind the C string the job model sees
 * (docs/protocol.md: "no NUL (raw or \u0000) in any string"). */
static void check_no_nul(struct json_object *v)
{
    if (json_object_is_type(v, json_type_string)) {
        SOFT_CHECK(strlen(json_object_get_string(v)) == (size_t)json_object_get_string_len(v));
    } else if (json_object_is_type(v, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(v); i++)
            check_no_nul(json_object_array_get_idx(v, i));
    } else if (json_object_is_type(v, json_type_object)) {
        json_object_object_foreach(v, key, val)
        {
            (void)key;
            check_no_nul(val);
        }
    }
}

/* 1 when JSON text (known to be valid) holds a \u0000 escape, in a value or in a member
 * name; json-c cuts member names at NUL, so only the text shows the latter. */
static int has_nul_escape(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0)
            return 1;
        i++; /* the escaped character */
    }
    return 0;
}

/* What mime.c, smtp.c and worker.c take for granted about a decoded job. */
static void check_decoded(const job *j)
{
    check_no_nul(j->root);
    CHECK(j->root != NULL);
    CHECK(j->v && strcmp(j->v, "1") == 0);
    CHECK(j->id && job_id_valid(j->id));
    CHECK(j->kid && strlen(j->kid) >= 1 && strlen(j->kid) <= JOB_KID_MAX);
    CHECK(j->alg && (strcmp(j->alg, "hmac-sha1") == 0 || strcmp(j->alg, "hmac-sha256") == 0));
    CHECK(j->sig != NULL);
    CHECK(j->from && addr_spec_valid(j->from, strlen(j->from)));
    if (j->from_name)
        CHECK(addr_name_valid(j->from_name, strlen(j->from_name)));
    if (j->reply_to)
        check_mailboxes(&j->reply_to, 1);
    check_str(j->subject, JOB_SUBJECT_MAX, 0);
    check_str(j->text, JOB_MAX_BYTES, 1);
    CHECK(j->text_len == strlen(j->text));
    if (j->html) {
        check_str(j->html, JOB_MAX_BYTES, 1);
        CHECK(j->html_len == strlen(j->html));
    }
    CHECK(j->n_to >= 1);
    CHECK(j->n_to + j->n_cc + j->n_bcc <= JOB_MAX_RCPT);
    check_mailboxes(j->to, j->n_to);
    check_mailboxes(j->cc, j->n_cc);
    check_mailboxes(j->bcc, j->n_bcc);
    CHECK(j->n_headers <= JOB_MAX_HEADERS);
    for (size_t i = 0; i < j->n_headers; i++) {
        CHECK(j->headers[i].name && job_header_allowed(j->headers[i].name));
        check_str(j->headers[i].value, JOB_HEADER_VALUE_MAX, 0);
    }
    CHECK(j->created_at != NULL);
    if (!j->send_at)
        CHECK(j->send_at_ms == 0);
    if (!j->expires_at)
        CHECK(j->expires_ms == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *raw = (const char *)data;
    mr_error err, err2;
    char id[JOB_ID_MAX + 1];
    job j;

    g_input_has_secret =
        memmem(raw, size, FUZZ_KEY_DEFAULT, strlen(FUZZ_KEY_DEFAULT)) != NULL ||
        memmem(raw, size, FUZZ_KEY_K2, strlen(FUZZ_KEY_K2)) != NULL;
    memset(&err, 0x5A, sizeof err); /* so an unterminated message shows */
    err.rc = MAILROOM_OK;           /* so a failure that sets no code shows */
    if (job_decode(raw, size, &j, &err) != 0) {
        check_err(&err);
        job_clear(&j);
        memset(id, 0x5A, sizeof id);
        job_peek_id(raw, size, id);
        CHECK(strnlen(id, sizeof id) < sizeof id);
        CHECK(id[0] == '\0' || job_id_valid(id));
        job_clear(&j); /* a cleared job may be cleared again */
        return 0;
    }

    check_decoded(&j);
    SOFT_CHECK(!has_nul_escape(raw, size)); /* "no NUL (raw or \u0000) in any string" */

    /* The worker reports a job under the id job_peek_id() finds only when decoding
     * failed, but both must agree on what "the id" of a raw job is. */
    job_peek_id(raw, size, id);
    CHECK(strcmp(id, j.id) == 0);

    /* The canonical form of a decoded job always exists and is deterministic. */
    buf_reset(&g_scratch2);
    CHECK(sig_canonical(j.root, &g_scratch2) == 0);
    size_t canon_len = g_scratch2.len;
    buf_reset(&g_scratch);
    CHECK(sig_canonical(j.root, &g_scratch) == 0);
    CHECK(g_scratch.len == canon_len && memcmp(g_scratch.data, g_scratch2.data, canon_len) == 0);

    memset(&err2, 0x5A, sizeof err2);
    err2.rc = MAILROOM_OK;
    int v1 = sig_verify_job(&j, &g_ring, 3u, &g_scratch, &err2);
    if (v1 != 0)
        check_err(&err2);
    /* Same verdict with the same inputs; accepting only the job's own algorithm does
     * not change it; refusing that algorithm always rejects. */
    int v2 = sig_verify_job(&j, &g_ring, 3u, &g_scratch, &err2);
    CHECK(v1 == v2);
    unsigned own = strcmp(j.alg, "hmac-sha256") == 0 ? 2u : 1u;
    CHECK(sig_verify_job(&j, &g_ring, own, &g_scratch, &err2) == v1);
    mr_error_clear(&err2);
    CHECK(sig_verify_job(&j, &g_ring, 3u & ~own, &g_scratch, &err2) != 0);
    check_err(&err2);

    job_clear(&j);
    CHECK(j.root == NULL && j.id == NULL);
    job_clear(&j);
    return 0;
}
