/*
 * mailroom.h — the producer library.
 *
 * An application opens one handle per thread (a handle is one Redis connection and is
 * not thread-safe), then enqueues signed email jobs with mailroom_send(): the email is
 * validated, signed with HMAC, and enqueued with one Redis round trip together with its
 * status record. mailroom_status() reads that record back.
 *
 *     mailroom *m;
 *     mailroom_options opts;
 *     mailroom_options_init(&opts);          // NULL fields: taken from the environment
 *     if (mailroom_open(&m, &opts) != MAILROOM_OK) { ... mailroom_errmsg(m) ... }
 *     const char *to[] = {"王小明 <ming@example.com>"};
 *     mailroom_email e = {.to = to, .n_to = 1, .from = "noreply@example.com",
 *                         .subject = "请激活您的账户", .text = "https://..."};
 *     char id[MAILROOM_ID_MAX];
 *     int rc = mailroom_send(m, &e, id);
 *     mailroom_close(m);
 *
 * Every function returns a mailroom_rc; none prints, exits or aborts. After a failure
 * mailroom_errmsg(m) describes it in one line (never containing a secret). A call given
 * a NULL handle returns MAILROOM_EINVAL (there is nowhere to put a message); pointers
 * the caller passes are only read during the call, never kept, unless a function says
 * otherwise.
 *
 * Thread safety: a handle, and everything made from it (an email document, a watch of
 * mailroom_admin.h), is used by one thread at a time; distinct handles may be used by
 * distinct threads at once. The functions that take no handle keep no state and may be
 * called from any thread. The operator calls (stats, consumers, relays, job listing and
 * control, pause, dead letters, the suppression list, watch) are in mailroom_admin.h;
 * mailroom_suppressed() below is the one check an application may want.
 */
#ifndef MAILROOM_H
#define MAILROOM_H

#include <stddef.h>
#include <time.h>

#include "mailroom_version.h"

#if defined(_WIN32)
#define MAILROOM_EXPORT
#elif defined(MAILROOM_BUILDING) && defined(__GNUC__)
#define MAILROOM_EXPORT __attribute__((visibility("default")))
#else
#define MAILROOM_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. Values are stable: new codes are only ever added at the end. */
typedef enum mailroom_rc {
    MAILROOM_OK = 0,
    MAILROOM_EINVAL = 1,     /* invalid argument or email (see mailroom_errmsg) */
    MAILROOM_ENOMEM = 2,     /* out of memory */
    MAILROOM_EREDIS = 3,     /* Redis unreachable, connection lost, or an error reply */
    MAILROOM_ETIMEOUT = 4,   /* Redis did not answer in time */
    MAILROOM_ENOTFOUND = 5,  /* no status record for that job id */
    MAILROOM_EDUPLICATE = 6, /* a job with that id is already recorded */
    MAILROOM_ETOOBIG = 7,    /* the encoded job exceeds MAILROOM_JOB_MAX_BYTES */
    MAILROOM_EKEY = 8,       /* no usable signing key */
    MAILROOM_EPROTO = 9,     /* Redis answered something unexpected */
    MAILROOM_EPENDING = 10,  /* mailroom_wait: the job was not final before the timeout */
    MAILROOM_ESTATE = 11     /* the job's state does not allow the operation (cancel,
                                retry now): mailroom_errmsg names the state */
} mailroom_rc;

#define MAILROOM_ID_MAX 129 /* job ids are at most 128 bytes, plus the NUL */
#define MAILROOM_JOB_MAX_BYTES (256 * 1024)

/* A static, human-readable description of a status code ("unknown error" for a code
 * this version does not know). Thread-safe. */
MAILROOM_EXPORT const char *mailroom_strerror(int rc);

typedef struct mailroom mailroom; /* opaque handle */

/*
 * Options for mailroom_open(). Call mailroom_options_init() first, then set what you
 * need. A NULL field is taken from the environment, then from the default:
 *   redis_url  MAILROOM_REDIS_URL, "redis://127.0.0.1:6379/0"
 *              (redis://[user:pass@]host:port/db); the first line of the file named
 *              by MAILROOM_REDIS_PASSWORD_FILE, when set, replaces the password
 *   queue      MAILROOM_QUEUE, "default"
 *   key        MAILROOM_KEYS_FILE (first "kid secret" line), else MAILROOM_SECRET
 *              with kid "default". A key must be at least 16 bytes, and its kid must
 *              match [A-Za-z0-9._-]{1,64}. With no key at all the handle can still
 *              read status; mailroom_send() returns MAILROOM_EKEY.
 * The strings are copied by mailroom_open(); the caller keeps ownership.
 */
typedef struct mailroom_options {
    const char *redis_url;
    const char *queue;
    const char *kid; /* with key: the key's id; NULL is "default" */
    const void *key; /* with kid: the secret, key_len bytes */
    size_t key_len;
    const char *alg;        /* "hmac-sha1" (default) or "hmac-sha256" */
    int connect_timeout_ms; /* default 1000 */
    int command_timeout_ms; /* default 1000 */
    long status_ttl_s;      /* lifetime of the status record; default 7 days */
} mailroom_options;

/* Sets every option to its default (NULL strings: from the environment). Reads no
 * environment itself. Thread-safe. */
MAILROOM_EXPORT void mailroom_options_init(mailroom_options *opts);

/*
 * Reads the options (opts NULL: all defaults), loads the signing key and connects to
 * Redis. On success *out is a new handle. On failure *out is still a handle (unless
 * memory ran out, then NULL) so that mailroom_errmsg(*out) can say why; close it with
 * mailroom_close(). out must not be NULL (MAILROOM_EINVAL). Failures: MAILROOM_EINVAL
 * (bad URL, queue name or alg),
 * MAILROOM_EKEY (a key is configured but unusable: too short, a kid outside
 * [A-Za-z0-9._-]{1,64}, an unreadable keys file), MAILROOM_EREDIS or MAILROOM_ETIMEOUT
 * (Redis cannot be reached: the handle is complete and reconnects on its next call).
 * Reads the environment (getenv): do not change it from another thread meanwhile.
 */
MAILROOM_EXPORT int mailroom_open(mailroom **out, const mailroom_options *opts);

/* Closes the connection and wipes the key. Accepts NULL. */
MAILROOM_EXPORT void mailroom_close(mailroom *m);

/* One line describing the last failure on this handle; "" when none. A NULL handle
 * (mailroom_open ran out of memory) gives "out of memory". The text belongs to the
 * handle and changes with its next call. */
MAILROOM_EXPORT const char *mailroom_errmsg(const mailroom *m);

/* The queue the handle works on, as mailroom_open() resolved it (the option,
 * MAILROOM_QUEUE, else "default"); NULL for a NULL handle. Owned by the handle. */
MAILROOM_EXPORT const char *mailroom_queue_name(const mailroom *m);

/* A header the application adds, from an allow-list: List-Unsubscribe,
 * List-Unsubscribe-Post, List-Id and X-*. */
typedef struct mailroom_header {
    const char *name;
    const char *value;
} mailroom_header;

/*
 * An email. Strings are UTF-8. Mailboxes are "addr@example.com" or
 * "Display Name <addr@example.com>"; from is a bare address and from_name its display
 * name. Required: at least one of to, from, subject (may be empty) and text.
 */
typedef struct mailroom_email {
    const char *const *to;
    size_t n_to;
    const char *const *cc;
    size_t n_cc;
    const char *const *bcc;
    size_t n_bcc;
    const char *from;
    const char *from_name; /* optional */
    const char *reply_to;  /* optional mailbox */
    const char *subject;
    const char *text;
    const char *html; /* optional: sent as multipart/alternative with text */
    const mailroom_header *headers;
    size_t n_headers;
    const char *id;    /* optional idempotency key, [A-Za-z0-9._:-]{1,128} */
    time_t send_at;    /* optional: not before this time (0: now) */
    time_t expires_at; /* optional: give up after this time (0: never) */
} mailroom_email;

/*
 * Validates, signs and enqueues an email, and records its status as "queued". The
 * job's id (e->id, or a new time-ordered ULID) is written to id_out. A caller-chosen
 * id whose record still exists is refused with MAILROOM_EDUPLICATE, so a double
 * submission sends one mail. The email is only read; the caller keeps it.
 */
MAILROOM_EXPORT int mailroom_send(mailroom *m, const mailroom_email *e,
                                  char id_out[MAILROOM_ID_MAX]);

/* Checks an email exactly as mailroom_send() would, without a key or Redis: it also
 * works on the handle of a mailroom_open() that could not connect. */
MAILROOM_EXPORT int mailroom_validate(mailroom *m, const mailroom_email *e);

/*
 * Enqueues n emails in one pipelined round trip. For each email i, results[i] gets
 * its status code and ids[i] its id ("" when the email was invalid or never sent to
 * Redis), whatever the batch's outcome: a batch refused as a whole (no key) or one that
 * ran out of memory at email i leaves "" and that code for the emails concerned.
 * Invalid emails are skipped, the others enqueued; returns MAILROOM_OK when all were,
 * else the first failure's code (mailroom_errmsg names the email). If the connection
 * breaks mid-batch, or (with Sentinel) a failover may erase the writes, the emails
 * concerned get MAILROOM_EREDIS/ETIMEOUT with their ids: they may or may not have been
 * enqueued (the status record tells; sending them again with those ids is safe).
 */
MAILROOM_EXPORT int mailroom_send_batch(mailroom *m, const mailroom_email *emails, size_t n,
                                        char (*ids)[MAILROOM_ID_MAX], int *results);

typedef enum mailroom_state {
    MAILROOM_STATE_UNKNOWN = 0,
    MAILROOM_STATE_QUEUED,
    MAILROOM_STATE_SENDING,
    MAILROOM_STATE_SENT,
    MAILROOM_STATE_RETRYING,
    MAILROOM_STATE_FAILED,
    MAILROOM_STATE_REJECTED,
    MAILROOM_STATE_CANCELLED /* by an operator (mailroom cancel): never sent */
} mailroom_state;

/* "queued", "sending", ... ; "unknown" for anything else. A static string. Thread-safe. */
MAILROOM_EXPORT const char *mailroom_state_name(mailroom_state state);

/* A job's status record. Strings are truncated to fit; "" when absent. */
typedef struct mailroom_job_status {
    char id[MAILROOM_ID_MAX];
    mailroom_state state;
    int attempts;
    int smtp_code; /* 0 when no SMTP reply was recorded */
    char smtp_reply[512];
    char error[512];
    char consumer[128];
    char created_at[32];
    char updated_at[32];
} mailroom_job_status;

/* Reads a job's status record. MAILROOM_ENOTFOUND when there is none. */
MAILROOM_EXPORT int mailroom_status(mailroom *m, const char *id, mailroom_job_status *out);

/* What became of one recipient of a job (docs/redis.md: the record's recipients). The
 * strings belong to the structure that holds the recipient. */
typedef struct mailroom_recipient {
    const char *address; /* the envelope address */
    const char *state;   /* "sent", "rejected" (refused for good), "retrying" (owed a
                            retry), "failed" (given up) */
    int code;            /* the SMTP reply code that decided it; 0 when none */
    const char *reply;   /* that reply, or why; "" when none */
} mailroom_recipient;

/* What a job's record says beyond mailroom_job_status: the relay's queue id and each
 * recipient's fate. Allocated by mailroom_status_detail, freed with
 * mailroom_job_detail_free. */
typedef struct mailroom_job_detail {
    const char *relay_id; /* the queue id in the relay's final 2xx ("" when none): the
                             mail's name in the relay's own logs */
    const mailroom_recipient *recipients;
    size_t n_recipients; /* 0 before the first attempt */
} mailroom_job_detail;

/* Reads a job's relay id and recipients into a new *out. MAILROOM_ENOTFOUND when
 * there is no record; *out is NULL on any failure. */
MAILROOM_EXPORT int mailroom_status_detail(mailroom *m, const char *id, mailroom_job_detail **out);

/* Frees what mailroom_status_detail made. Accepts NULL. */
MAILROOM_EXPORT void mailroom_job_detail_free(mailroom_job_detail *d);

/*
 * Waits up to timeout_ms for a job to reach a final state (sent, failed, rejected,
 * cancelled) and fills *out with its record; MAILROOM_OK means final (check out->state), not
 * sent. It subscribes to the status channel before it reads the record, so a final
 * event cannot slip between the two. Uses a second Redis connection for the duration
 * of the call. MAILROOM_EPENDING when the job was not final in time: out then holds
 * the record as it is at the timeout (read again then, so a retrying job shows its
 * last error), MAILROOM_ENOTFOUND when there is no record.
 */
MAILROOM_EXPORT int mailroom_wait(mailroom *m, const char *id, int timeout_ms,
                                  mailroom_job_status *out);

/* ------------------------------------------------------------------ the suppression list */

#define MAILROOM_ADDRESS_MAX 255 /* an address is at most 254 bytes, plus the NUL */

/*
 * An entry of the suppression list (docs/redis.md), which every queue of a deployment
 * shares: a recipient consumers skip (recorded as suppressed) because a relay refused
 * it for good (a 5xx to RCPT with a permanent address status) or an operator put it
 * there. Strings are truncated to fit; "" (and 0) when the entry lacks the member.
 */
typedef struct mailroom_suppression {
    char address[MAILROOM_ADDRESS_MAX]; /* as the list spells it: the domain in A-labels,
                                           every ASCII letter in lower case */
    char reason[512];                   /* the relay's reply, or the operator's words */
    int code;                           /* the SMTP reply code that suppressed it; 0 when none */
    char at[32];                        /* when it was added, RFC 3339 */
    char queue[65];                     /* the queue of the refused job; "" when added by hand */
    char id[MAILROOM_ID_MAX];           /* that job's id; "" when added by hand */
    char source[32];                    /* who added it: "consumer", "cli", ... */
    long long expires_ms;               /* when it lapses, ms since the epoch (Redis' clock) */
} mailroom_suppression;

/*
 * Whether address (a bare address such as "Ming@Example.COM"; its domain in U-labels
 * or A-labels, any case) is on the suppression list: MAILROOM_OK with its entry in
 * *out (out may be NULL), MAILROOM_ENOTFOUND when it is not (or its entry lapsed),
 * MAILROOM_EINVAL when address is not a valid address (mailroom_errmsg says why). One
 * round trip (GET of the entry, ZSCORE of its index member: the producer's ACL role
 * grants both, docs/security.md); needs no key. An application may call it before
 * sending, to tell its user that an address bounced; a consumer skips such a recipient
 * anyway. expires_ms is 0 when the index has no member for the entry.
 */
MAILROOM_EXPORT int mailroom_suppressed(mailroom *m, const char *address,
                                        mailroom_suppression *out);

/* ------------------------------------------------------------------ emails as JSON */

typedef struct mailroom_email_json mailroom_email_json; /* opaque: a parsed email */

/*
 * Reads one email written as a JSON object, as a line of `mailroom send --jsonl` is:
 * members to, cc, bcc (arrays of strings), from, from_name, reply_to, subject, text,
 * html, id (strings), headers (an object of strings), send_at and expires_at (RFC 3339
 * strings, converted as mailroom_parse_time() says and refused when not after 1970).
 * The text (len bytes, need not be NUL-terminated) goes through the parser that reads
 * jobs: RFC 8259 only, valid UTF-8, no NUL byte and no escaped NUL (\u0000) anywhere,
 * nothing but white space after the object. Unknown members and members of the wrong
 * type are refused. The email is not validated here: mailroom_validate() and
 * mailroom_send() do that.
 *
 * On success *out is a new document: mailroom_email_json_email() gives its email,
 * which borrows every string from it; free it with mailroom_email_json_free(). On
 * failure *out is NULL and the code is MAILROOM_EINVAL (MAILROOM_ETOOBIG,
 * MAILROOM_ENOMEM), with one line naming the member in mailroom_errmsg(m). m only
 * carries that message and may be NULL.
 */
MAILROOM_EXPORT int mailroom_email_from_json(mailroom *m, const char *json, size_t len,
                                             mailroom_email_json **out);

/* The email of a document (owned by it, valid until it is freed); NULL for NULL. */
MAILROOM_EXPORT const mailroom_email *mailroom_email_json_email(const mailroom_email_json *doc);

/* Frees a document and the email it holds. Accepts NULL. */
MAILROOM_EXPORT void mailroom_email_json_free(mailroom_email_json *doc);

/* ------------------------------------------------------------------ helpers (no handle) */

/* 1 when id is a valid job id, [A-Za-z0-9._:-]{1,128}; 0 otherwise and for NULL.
 * Thread-safe. */
MAILROOM_EXPORT int mailroom_id_valid(const char *id);

/* 1 when a Redis URL carries a password ("user:pass@" or ":pass@"), else 0 (also for
 * NULL): for tools that refuse secrets on their command line, where ps shows them.
 * The URL is only scanned, never kept. Thread-safe. */
MAILROOM_EXPORT int mailroom_url_has_password(const char *url);

/*
 * Parses an RFC 3339 time ("2026-11-24T13:00:00Z", "2026-11-24T21:00:00.5+08:00")
 * into whole seconds since the epoch, as mailroom_email's send_at and expires_at take
 * it: rounded up when round_up (send_at: never earlier than asked), else down
 * (expires_at: never later than asked). MAILROOM_OK, or MAILROOM_EINVAL when s is not
 * RFC 3339. *out may be 0 or negative for a time not after 1970-01-01T00:00:00Z, which
 * mailroom_email cannot carry (0 means unset): callers refuse it. Thread-safe.
 */
MAILROOM_EXPORT int mailroom_parse_time(const char *s, int round_up, time_t *out);

#ifdef __cplusplus
}
#endif

#endif
