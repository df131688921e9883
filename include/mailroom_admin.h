/*
 * mailroom_admin.h — the operator calls of libmailroom: what `mailroom stats`,
 * `consumers`, `watch`, `dead list|retry|purge`, `list`, `cancel`, `retry-now`,
 * `pause`, `resume`, `top` and `suppress` show and do, as calls that return plain C
 * data (the way asynq's Inspector serves its CLI). The library reads and changes the
 * queue's Redis keys (docs/redis.md); the caller decides how to print.
 *
 *     mailroom *m;
 *     mailroom_options opts;
 *     mailroom_options_init(&opts);
 *     opts.command_timeout_ms = 10000;        // dead retry/purge walk the whole list
 *     if (mailroom_open(&m, &opts) != MAILROOM_OK) { ... mailroom_errmsg(m) ... }
 *     mailroom_stats *st;
 *     if (mailroom_stats_read(m, &st) == MAILROOM_OK) {
 *         printf("pending %lld\n", st->pending);
 *         mailroom_stats_free(st);
 *     }
 *     mailroom_close(m);
 *
 * Every call takes a handle of mailroom.h (no signing key needed: nothing here signs)
 * and returns a mailroom_rc, with the reason in mailroom_errmsg(m) after a failure;
 * Redis failures are MAILROOM_EREDIS, MAILROOM_ETIMEOUT or MAILROOM_EPROTO. Results
 * are allocated by the library, are read-only for the caller and are freed with their
 * own _free() function, which accepts NULL; the library may add members at the end of
 * these structures, so never allocate or copy one yourself. Strings in results come
 * from Redis as written there (by consumers, or by anyone who may write the keys):
 * mask control characters before showing them on a terminal.
 *
 * Thread safety: as for mailroom.h, one thread at a time per handle; a watch and the
 * results of a call belong to the handle's thread too (they hold no connection but the
 * watch's own, and are independent of the handle once returned, except that a watch
 * reports its errors on the handle it was opened from, which must outlive it).
 */
#ifndef MAILROOM_ADMIN_H
#define MAILROOM_ADMIN_H

#include <stddef.h>

#include "mailroom.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MAILROOM_DEAD_AFTER_DEFAULT_MS 30000 /* a consumer is silent after 30 s */
#define MAILROOM_DEAD_LIST_DEFAULT 20        /* dead list: newest 20 entries */

/*
 * Parses a duration: a non-negative decimal number with an optional fraction and an
 * optional unit ms, s, m, h or d ("250ms", "1.5s", "15m", "12h", "7d"; a plain number
 * is seconds), at most 100 years; no sign, exponent, "nan" or spaces. MAILROOM_OK and
 * *ms (whole milliseconds), or MAILROOM_EINVAL (then *ms is unchanged). The project's
 * one duration syntax: the consumer's options read the same. Thread-safe.
 */
MAILROOM_EXPORT int mailroom_parse_duration(const char *s, long long *ms);

/* ------------------------------------------------------------------ stats, consumers */

/* Whether a consumer is alive: its last heartbeat at most dead_after ms old (alive) or
 * older (silent); or it holds jobs but is not in the heartbeat set (unregistered: it
 * never beat, or was recovered as dead). */
typedef enum mailroom_consumer_state {
    MAILROOM_CONSUMER_ALIVE = 0,
    MAILROOM_CONSUMER_SILENT = 1,
    MAILROOM_CONSUMER_UNREGISTERED = 2
} mailroom_consumer_state;

/* "alive", "silent", "unregistered"; "unknown" for anything else. Thread-safe. */
MAILROOM_EXPORT const char *mailroom_consumer_state_name(mailroom_consumer_state state);

/* One consumer. */
typedef struct mailroom_consumer {
    const char *id; /* the consumer id */
    mailroom_consumer_state state;
    long long heartbeat_age_ms; /* by the Redis server's clock; -1 when unregistered */
    long long processing;       /* jobs it holds right now */
    /* What it says of itself in its info hash mailroom:{Q}:info:<id> (docs/redis.md),
     * rewritten every second. has_info is 0 when there is none (a consumer of an older
     * version, or one silent for 3 heartbeats): the strings are "" and the numbers 0. */
    int has_info;
    const char *host;       /* its host name */
    long long pid;          /* its process id there */
    const char *version;    /* mailroom's version it runs */
    const char *started_at; /* RFC 3339 */
    const char *queues;     /* the queues it serves, in order, comma-separated, each with
                               ":weight" when weighted ("reset,receipts:1") */
    const char *relays;     /* its relays' names, in order, comma-separated */
    long long concurrency;  /* its worker threads */
    long long sessions;     /* SMTP connections it has open now */
} mailroom_consumer;

/* One processing list: the jobs a consumer holds. */
typedef struct mailroom_processing {
    const char *consumer;
    long long jobs;
} mailroom_processing;

/* One counter of the queue's stats hash. */
typedef struct mailroom_counter {
    const char *name;
    long long value;
} mailroom_counter;

/* The queue at (nearly) one instant. */
typedef struct mailroom_stats {
    long long now_ms;        /* the Redis server's clock (TIME) when read */
    long long pending;       /* jobs waiting */
    long long scheduled;     /* retries and send_at jobs */
    long long scheduled_due; /* of which due now */
    long long dead;          /* dead-letter entries */
    double sent_per_min;     /* a sliding estimate over the last minute */
    /* every processing list, in the order Redis' SCAN found them */
    const mailroom_processing *processing;
    size_t n_processing;
    /* the heartbeat set, oldest heartbeat first (state by
     * MAILROOM_DEAD_AFTER_DEFAULT_MS; never unregistered) */
    const mailroom_consumer *consumers;
    size_t n_consumers;
    /* sent, retried, failed, rejected, recovered, cancelled always, in this order (0
     * when Redis has none yet), then any other counter of the hash */
    const mailroom_counter *counters;
    size_t n_counters;
    int paused;            /* 1 while the queue is paused (mailroom_pause) */
    const char *paused_at; /* when it was paused, RFC 3339 as stored; "" when running */
    /* The latency: how long the job taken next (the right end of pending) has waited,
     * from its created_at or, when later, its send_at, to now_ms; 0 when pending is
     * empty (or that job's times cannot be read). */
    long long oldest_pending_age_ms;
    double failed_per_min; /* jobs that ended failed or rejected, estimated over the
                              last minute as sent_per_min is */
} mailroom_stats;

/*
 * Reads the queue's figures: Redis' TIME, a SCAN for the processing lists, then every
 * other read in one pipelined round trip, then the consumers' info hashes in another
 * and the oldest pending job's times (a Lua script). On success *out is new (free
 * with mailroom_stats_free); on failure *out is NULL.
 */
MAILROOM_EXPORT int mailroom_stats_read(mailroom *m, mailroom_stats **out);

/* Frees what mailroom_stats_read returned. Accepts NULL. */
MAILROOM_EXPORT void mailroom_stats_free(mailroom_stats *s);

/* Every consumer the queue knows of. */
typedef struct mailroom_consumers {
    long long now_ms; /* the Redis server's clock when read */
    /* the heartbeat set, oldest heartbeat first, then the holders of a processing list
     * that are not in it (unregistered), in SCAN order */
    const mailroom_consumer *items;
    size_t n;
} mailroom_consumers;

/*
 * Reads the consumers (the same snapshot as mailroom_stats_read): a consumer whose
 * heartbeat is more than dead_after_ms old is silent (dead_after_ms <= 0:
 * MAILROOM_DEAD_AFTER_DEFAULT_MS). On success *out is new (free with
 * mailroom_consumers_free); on failure *out is NULL.
 */
MAILROOM_EXPORT int mailroom_consumers_read(mailroom *m, long long dead_after_ms,
                                            mailroom_consumers **out);

/* Frees what mailroom_consumers_read returned. Accepts NULL. */
MAILROOM_EXPORT void mailroom_consumers_free(mailroom_consumers *c);

/* ------------------------------------------------------------------ dead letters */

/* One entry of the dead list (docs/redis.md). */
typedef struct mailroom_dead_letter {
    const char *raw; /* the entry as stored: one JSON object, NUL-terminated */
    size_t raw_len;
    int is_object; /* 1 when raw is a JSON object; the members below come from it */
    const char *at, *state, *id, *reason, *consumer; /* NULL when absent or not strings */
    const char *job; /* the raw job as the consumer took it; NULL when absent */
} mailroom_dead_letter;

/* Dead-list entries, newest first. */
typedef struct mailroom_dead_letters {
    const mailroom_dead_letter *items;
    size_t n;
} mailroom_dead_letters;

/*
 * Reads the newest `limit` dead-list entries (limit <= 0: MAILROOM_DEAD_LIST_DEFAULT),
 * newest first. On success *out is new (free with mailroom_dead_letters_free); on
 * failure *out is NULL.
 */
MAILROOM_EXPORT int mailroom_dead_list(mailroom *m, long limit, mailroom_dead_letters **out);

/* Frees what mailroom_dead_list returned. Accepts NULL. */
MAILROOM_EXPORT void mailroom_dead_letters_free(mailroom_dead_letters *l);

/*
 * Puts the dead-list entries of job id (id NULL: every entry, including those with no
 * readable id) back into the queue, atomically (one Lua script): each entry's job goes
 * to the head of pending (taken next, oldest first), its status record back to queued
 * with no attempts (a record that says sent is left alone), and the entry leaves the
 * dead list. *retried gets how many went back (0 on failure; retried may be NULL).
 * MAILROOM_ENOTFOUND when id matched no entry; MAILROOM_EINVAL when id is not a job id.
 */
MAILROOM_EXPORT int mailroom_dead_retry(mailroom *m, const char *id, long long *retried);

/*
 * Deletes dead-list entries: all of them (older_than_ms < 0), or those whose "at" is
 * more than older_than_ms before the Redis server's clock (an entry without a readable
 * "at" stays). One Lua script. *purged gets how many went (0 on failure; purged may be
 * NULL).
 */
MAILROOM_EXPORT int mailroom_dead_purge(mailroom *m, long long older_than_ms, long long *purged);

/* ------------------------------------------------------------------ jobs: list, control */

/* What mailroom_jobs_list walks. */
typedef enum mailroom_jobs_kind {
    MAILROOM_JOBS_PENDING = 0,   /* the pending list, in the order consumers take it:
                                    the job taken next first */
    MAILROOM_JOBS_SCHEDULED = 1, /* the scheduled set (retries, and jobs waiting for
                                    their send_at), soonest due first */
    MAILROOM_JOBS_RETRYING = 2   /* the jobs of the scheduled set whose record says
                                    retrying, soonest due first */
} mailroom_jobs_kind;

#define MAILROOM_JOBS_LIST_DEFAULT 20 /* jobs per page when the query says none */
#define MAILROOM_JOBS_LIST_MAX 1000   /* the most jobs one page holds */
#define MAILROOM_JOBS_SCAN_MAX 10000  /* the most entries one call looks at */

/* A listing's question. Call mailroom_jobs_query_init() first (the library may add
 * members), then set what you need; the strings are only read during the call. */
typedef struct mailroom_jobs_query {
    mailroom_jobs_kind kind; /* default MAILROOM_JOBS_PENDING */
    const char *to;          /* only jobs with this recipient (to, cc or bcc), compared
                                as the suppression list spells addresses: any case, the
                                domain in U-labels or A-labels; NULL: any */
    const char *domain;      /* only jobs with a recipient at this domain (any case,
                                U-labels or A-labels); NULL: any */
    const char *cursor;      /* go on from a previous page: its next_cursor (opaque,
                                for the same kind); NULL or "": from the start */
    long limit;              /* jobs per page (<= 0: MAILROOM_JOBS_LIST_DEFAULT; at most
                   MAILROOM_JOBS_LIST_MAX) */
} mailroom_jobs_query;

/* Sets every member to its default (pending, no filter, from the start, 20 jobs).
 * Thread-safe. */
MAILROOM_EXPORT void mailroom_jobs_query_init(mailroom_jobs_query *q);

/* One job of a listing: its raw job's members and its status record's. */
typedef struct mailroom_job_item {
    const char *id;                /* "" when the raw job has no readable id */
    mailroom_state state;          /* as its record says; MAILROOM_STATE_UNKNOWN without one */
    int attempts;                  /* from the record */
    const char *error;             /* the record's last error; "" when none */
    const char *const *recipients; /* to, then cc, then bcc, as the job writes them */
    size_t n_recipients;
    const char *subject;    /* "" when unreadable */
    const char *created_at; /* the job's, RFC 3339; "" when unreadable */
    const char *send_at;    /* the job's, RFC 3339; "" when it has none */
    long long due_ms;       /* scheduled: when it is due, ms since the epoch; 0 in pending */
    size_t raw_bytes;       /* the raw job's size */
    int readable;           /* 1 when the raw job was read: a JSON object of at most
                     MAILROOM_JOB_MAX_BYTES. 0 for anything else (a hostile entry):
                     only id (looked for leniently), the record's members, due_ms and
                     raw_bytes are set, and no filter matches it */
} mailroom_job_item;

/* A page of a listing. */
typedef struct mailroom_jobs {
    const mailroom_job_item *items;
    size_t n;
    const char *next_cursor; /* "" when the walk reached the end; otherwise the cursor of
                                the next page, which may exist even when this one holds
                                fewer than limit jobs (a filter that matched few of the
                                MAILROOM_JOBS_SCAN_MAX entries looked at) */
    long long total;         /* entries in the walked list or set when read (LLEN or
                                ZCARD), whatever the filter */
    long long examined;      /* entries this call looked at */
} mailroom_jobs;

/*
 * Lists jobs waiting in the queue (q NULL: the defaults): up to q->limit items that
 * pass the filters, looking at no more than MAILROOM_JOBS_SCAN_MAX entries. Each
 * stretch of entries is read with one Lua script (list_pending, list_scheduled) that
 * returns them with their records' state, attempts and error; an entry larger than
 * MAILROOM_JOB_MAX_BYTES never leaves Redis. A walk of pending goes on after the
 * last job of the previous page, found again near where it was (consumers take from
 * its end meanwhile), or from the job taken next when it is gone: it may show a job
 * twice, never skips one. A walk of scheduled goes on from the previous page's last
 * due time. On success *out is new (free with mailroom_jobs_free); on failure *out is
 * NULL: MAILROOM_EINVAL for a bad filter or a cursor of another kind.
 */
MAILROOM_EXPORT int mailroom_jobs_list(mailroom *m, const mailroom_jobs_query *q,
                                       mailroom_jobs **out);

/* Frees what mailroom_jobs_list returned. Accepts NULL. */
MAILROOM_EXPORT void mailroom_jobs_free(mailroom_jobs *l);

/* Where mailroom_cancel found the job's copy. */
typedef enum mailroom_job_place {
    MAILROOM_PLACE_NONE = 0,     /* in neither: a consumer holds it (taken, not begun;
                                     it drops it at BEGIN), or the copy is lost */
    MAILROOM_PLACE_PENDING = 1,  /* removed from pending */
    MAILROOM_PLACE_SCHEDULED = 2 /* removed from scheduled */
} mailroom_job_place;

/*
 * Cancels job id: a job whose record says queued or retrying becomes cancelled and is
 * never sent. The library looks for its raw job in scheduled (ZSCAN), then in pending
 * (a Lua script searching stretches of it inside Redis); one Lua script (cancel) then
 * removes that copy, checks the state and writes the record, the counters (stats
 * "cancelled", the minute's "cancelled") and the event, atomically. A copy a consumer
 * holds stays there and is acknowledged without sending at BEGIN. *where (may be
 * NULL) says where the copy was removed from. MAILROOM_ENOTFOUND when there is no
 * record; MAILROOM_ESTATE when the job is sending or final (sent, failed, rejected,
 * cancelled), mailroom_errmsg naming the state; MAILROOM_EINVAL when id is not a job
 * id. The search of pending costs one short script call per 1000 entries (a backlog of
 * 100 000 jobs of 1.7 KB: about 0.5 s in all, no call blocking Redis over 20 ms).
 */
MAILROOM_EXPORT int mailroom_cancel(mailroom *m, const char *id, mailroom_job_place *where);

/*
 * Moves job id from scheduled to the right end of pending, where it is taken next:
 * a retrying job waiting for its next attempt, or a queued one whose send_at has come
 * (and that the housekeeper has not promoted yet). Atomic (the retry_now Lua script),
 * with an event (state queued); the record keeps its state and attempts.
 * MAILROOM_ESTATE when the job is not waiting in scheduled (it is pending, sending or
 * final; mailroom_errmsg names its state) and for a job whose send_at is still to come:
 * its producer signed that time, and consumers never send before it.
 * MAILROOM_ENOTFOUND when there is no record; MAILROOM_EINVAL for a bad id.
 */
MAILROOM_EXPORT int mailroom_retry_now(mailroom *m, const char *id);

/* ------------------------------------------------------------------ pause */

/*
 * Pauses the queue: sets mailroom:{Q}:paused to the time (RFC 3339), after which
 * consumers take nothing from it (jobs wait in pending and scheduled; a job a
 * consumer already holds is finished). *changed (may be NULL) is 1, or 0 when it was
 * already paused (its time is kept). An event (state paused) when it changed.
 */
MAILROOM_EXPORT int mailroom_pause(mailroom *m, int *changed);

/* Resumes a paused queue (deletes the key); *changed (may be NULL) is 0 when it was
 * not paused. An event (state resumed) when it changed. */
MAILROOM_EXPORT int mailroom_resume(mailroom *m, int *changed);

/* ------------------------------------------------------------------ relays */

/* One relay as its shared state says (docs/redis.md: mailroom:relay:{R}). A relay that
 * has not recorded a member gives "" or 0 for it. */
typedef struct mailroom_relay {
    const char *name;          /* host:port */
    long long last_used_ms;    /* when a consumer last used it, ms since the epoch */
    const char *circuit;       /* "closed", "open" or "half-open"; "closed" when unset */
    long long failures;        /* consecutive connection, TLS or greeting failures */
    const char *last_error;    /* the last of those */
    long long opened_at_ms;    /* when the circuit opened; 0 when it never did */
    long long probe_at_ms;     /* when the next probe may go; 0 when none is planned */
    const char *prober;        /* the consumer probing now; "" when none */
    double rate;               /* the shared rate now, messages per second; 0: no limit */
    double rate_max;           /* the configured rate; 0: no limit */
    long long throttles;       /* cuts of the rate after throttling replies, so far */
    long long throttled_at_ms; /* when the last cut was; 0 when none */
    long long sessions;        /* connection slots held now (unexpired members of its
                                sessions set) */
} mailroom_relay;

/* The relays of a deployment. */
typedef struct mailroom_relays {
    long long now_ms;            /* the Redis server's clock when read */
    const mailroom_relay *items; /* sorted by name */
    size_t n;
} mailroom_relays;

/*
 * Reads every relay of mailroom:relays used in the last day (older members are
 * dropped from the set on the way: the documented reader's duty), with their state
 * and the sessions they hold now, in one pipelined round trip after the set. Relays
 * serve every queue: the handle's queue does not matter. On success *out is new (free
 * with mailroom_relays_free); on failure *out is NULL.
 */
MAILROOM_EXPORT int mailroom_relays_read(mailroom *m, mailroom_relays **out);

/* Frees what mailroom_relays_read returned. Accepts NULL. */
MAILROOM_EXPORT void mailroom_relays_free(mailroom_relays *r);

/* ------------------------------------------------------------------ the suppression list */

#define MAILROOM_SUPPRESS_FOR_DEFAULT_MS (30LL * 24 * 3600 * 1000) /* 30 days, as Postal */
#define MAILROOM_SUPPRESS_LIST_DEFAULT 20 /* entries per page when the call says none */
#define MAILROOM_SUPPRESS_LIST_MAX 1000   /* the most entries one page holds */

/*
 * Puts address on the suppression list every queue shares (replacing any entry it
 * had), for for_ms ms (<= 0: MAILROOM_SUPPRESS_FOR_DEFAULT_MS), with reason (NULL or
 * "": "added by an operator") and source, who added it (NULL: "cli"; the dashboard
 * says "web"; [a-z0-9_-]{1,31}). One Lua script writes the entry and its index member.
 * On success *out (may be NULL) holds the entry as written. MAILROOM_EINVAL for an
 * address that is not valid (mailroom_errmsg says why), a reason over 500 bytes or
 * with control characters, or a bad source.
 */
MAILROOM_EXPORT int mailroom_suppress_add(mailroom *m, const char *address, const char *reason,
                                          long long for_ms, const char *source,
                                          mailroom_suppression *out);

/* Takes address off the suppression list (entry and index member, one Lua script).
 * MAILROOM_ENOTFOUND when it had no entry; MAILROOM_EINVAL for an invalid address. */
MAILROOM_EXPORT int mailroom_suppress_remove(mailroom *m, const char *address);

/* A page of the suppression list. */
typedef struct mailroom_suppressions {
    const mailroom_suppression *items; /* the entry lasting longest first */
    size_t n;
    const char *next_cursor; /* "" when the list ended; otherwise the next page's cursor */
    long long total;         /* live entries on the list when read */
} mailroom_suppressions;

/*
 * Lists the suppression list, the entry lasting longest first (with one duration for
 * all, the newest first): up to limit entries (<= 0: MAILROOM_SUPPRESS_LIST_DEFAULT;
 * at most MAILROOM_SUPPRESS_LIST_MAX) from cursor (NULL or "": the start; else a
 * previous page's next_cursor). Lapsed index members, and members whose entry is gone,
 * are removed on the way (a Lua script per stretch), so only live entries are listed.
 * On success *out is new (free with mailroom_suppressions_free); on failure *out is
 * NULL (MAILROOM_EINVAL for a bad cursor).
 */
MAILROOM_EXPORT int mailroom_suppress_list(mailroom *m, const char *cursor, long limit,
                                           mailroom_suppressions **out);

/* Frees what mailroom_suppress_list returned. Accepts NULL. */
MAILROOM_EXPORT void mailroom_suppressions_free(mailroom_suppressions *l);

/* ------------------------------------------------------------------ history */

#define MAILROOM_HISTORY_MAX_MINUTES 2880       /* the per-minute hashes live 48 h */
#define MAILROOM_EVENT_LOG_SCAN_DEFAULT 20000LL /* stream entries one search reads */

/* The outcomes recorded in one minute (docs/redis.md: mailroom:{Q}:minute:<minute>). */
typedef struct mailroom_minute {
    long long minute; /* Unix minute: it starts at minute * 60 s since the epoch */
    long long sent, retrying, failed, rejected, cancelled;
} mailroom_minute;

/* The last minutes of a queue, oldest first; the last one is the current minute. */
typedef struct mailroom_history {
    long long now_ms; /* the clock the minutes were chosen by: this host's */
    const mailroom_minute *minutes;
    size_t n;
} mailroom_history;

/*
 * Reads the outcomes of the last `minutes` minutes (1 to MAILROOM_HISTORY_MAX_MINUTES),
 * the current one included, in one pipelined round trip; a minute Redis has nothing
 * for counts 0. On success *out is new (free with mailroom_history_free); on failure
 * *out is NULL (MAILROOM_EINVAL for minutes out of range).
 */
MAILROOM_EXPORT int mailroom_history_read(mailroom *m, int minutes, mailroom_history **out);

/* Frees what mailroom_history_read returned. Accepts NULL. */
MAILROOM_EXPORT void mailroom_history_free(mailroom_history *h);

/* One entry of the queue's events stream mailroom:{Q}:events (docs/redis.md). */
typedef struct mailroom_event_log_entry {
    const char *stream_id; /* the entry's id, "<ms>-<seq>" by the Redis server's clock */
    const char *payload;   /* the event, JSON exactly as published, NUL-terminated */
    size_t payload_len;
} mailroom_event_log_entry;

/* Entries found by a search of the events stream. */
typedef struct mailroom_event_log {
    const mailroom_event_log_entry *items;
    size_t n;
    long long scanned; /* stream entries read */
    int complete;      /* 1: the search reached the end of its range; 0: it stopped at its
                     budget of entries or at its limit of matches */
} mailroom_event_log;

/*
 * The events of job id still kept in the stream, oldest first: entries from from_ms to
 * to_ms (ms of the Redis server's clock, the entry ids'; <= 0: the stream's start, its
 * end) whose "id" is id, reading at most max_scan entries (<= 0:
 * MAILROOM_EVENT_LOG_SCAN_DEFAULT) in pages. The stream is capped (about 100 000
 * entries), so the oldest events of an old job may be gone. On success *out is new
 * (free with mailroom_event_log_free); on failure *out is NULL (MAILROOM_EINVAL when
 * id is not a job id).
 */
MAILROOM_EXPORT int mailroom_job_events_read(mailroom *m, const char *id, long long from_ms,
                                             long long to_ms, long long max_scan,
                                             mailroom_event_log **out);

/*
 * The newest outcome events (those that carry recipients) one of whose recipients
 * contains text (compared without regard to ASCII case: an address, or "@domain"),
 * newest first: at most limit of them (<= 0: all found), reading at most max_scan
 * entries back from the newest (<= 0: MAILROOM_EVENT_LOG_SCAN_DEFAULT). text is 1 to
 * 255 bytes. On success *out is new (free with mailroom_event_log_free); on failure
 * *out is NULL.
 */
MAILROOM_EXPORT int mailroom_recipient_events_read(mailroom *m, const char *text, long limit,
                                                   long long max_scan, mailroom_event_log **out);

/* Frees what the two calls above returned. Accepts NULL. */
MAILROOM_EXPORT void mailroom_event_log_free(mailroom_event_log *l);

/* The delivery state mailroom-webhook keeps for the queue (docs/redis.md:
 * mailroom:{Q}:webhook). The strings are "" when absent. */
typedef struct mailroom_webhook_state {
    int present;                 /* 0: no webhook has written the hash (none runs for this queue) */
    const char *url;             /* where it posts (without credentials) */
    long long delivered, failed; /* deliveries acknowledged; given up */
    int last_status;             /* the HTTP status of the last attempt; 0 when none */
    const char *last_error, *last_at; /* the last failure's text; the last attempt's time */
    long long lag;                    /* events not yet delivered */
    const char *stream_id;            /* the last event delivered */
} mailroom_webhook_state;

/* Reads the webhook's delivery state. On success *out is new (free with
 * mailroom_webhook_state_free); on failure *out is NULL. */
MAILROOM_EXPORT int mailroom_webhook_state_read(mailroom *m, mailroom_webhook_state **out);

/* Frees what mailroom_webhook_state_read returned. Accepts NULL. */
MAILROOM_EXPORT void mailroom_webhook_state_free(mailroom_webhook_state *s);

/* ------------------------------------------------------------------ watch */

typedef struct mailroom_watch mailroom_watch; /* opaque: a subscription */

/* One status event as a consumer published it (docs/redis.md). The strings are NULL
 * when the member is absent or not a string; state may also be "duplicate" or
 * "recovered", which are events, not states of mailroom_state. */
typedef struct mailroom_event {
    const char *payload; /* the event exactly as published (JSON), NUL-terminated */
    size_t payload_len;
    int is_object; /* 1 when payload is a JSON object; the members below come from it */
    const char *id, *queue, *state, *smtp_reply, *error, *consumer, *at;
    int attempts;  /* 0 when absent */
    int smtp_code; /* 0 when absent or null */
    /* from an outcome's event (FINISH): the relay's queue id (NULL when absent) and
     * each recipient's fate (none when absent) */
    const char *relay_id;
    const mailroom_recipient *recipients;
    size_t n_recipients;
    const char *relay; /* from an outcome's event: the relay that took or refused the
                          mail, host:port (docs/relays.md); NULL when absent */
} mailroom_event;

/*
 * Subscribes to the queue's status channel on a connection of its own (the handle's
 * own connection stays free for other calls) and returns once Redis has confirmed the
 * subscription: no event published after this returns is missed. On success *out is a
 * new watch (close with mailroom_watch_close); on failure *out is NULL. The handle must
 * outlive the watch: the watch reports its errors there.
 */
MAILROOM_EXPORT int mailroom_watch_open(mailroom *m, mailroom_watch **out);

/*
 * Waits up to timeout_ms (0: only what already arrived) for the next event. MAILROOM_OK
 * with *ev set to the event (owned by the watch, valid until the next call or close),
 * or MAILROOM_OK with *ev NULL when none came in time or a signal interrupted the wait
 * (the call returns early then, so a caller's signal handler gets its say). Otherwise
 * MAILROOM_EREDIS (the subscription was lost) or MAILROOM_EPROTO, with *ev NULL; the
 * watch cannot be used further but must still be closed. Installs no signal handler.
 */
MAILROOM_EXPORT int mailroom_watch_next(mailroom_watch *w, int timeout_ms,
                                        const mailroom_event **ev);

/* Unsubscribes, closes the watch's connection and frees it. Accepts NULL. */
MAILROOM_EXPORT void mailroom_watch_close(mailroom_watch *w);

/* ------------------------------------------------------------------ events stream */

/*
 * The events stream mailroom:{Q}:events keeps every status event (capped near 100 000
 * entries, docs/redis.md), so a reader can resume where it left off, unlike the watch,
 * which sees only what is published while it listens. A reader is either on its own,
 * from a starting point it gives (and keeps its position itself: the id of the last
 * event it handled), or one reader of a consumer group, whose position Redis keeps:
 * every event goes to one reader of the group, stays pending until that reader
 * acknowledges it, and is delivered to it again after a restart (docs/webhook.md).
 */
typedef struct mailroom_stream mailroom_stream; /* opaque: a reader of the events stream */

#define MAILROOM_STREAM_ID_MAX 48 /* an entry id "ms-seq" and its NUL fit in this */
#define MAILROOM_STREAM_BATCH_DEFAULT 100

/* How to read. Call mailroom_stream_options_init() first. The strings are copied by
 * mailroom_stream_open(). */
typedef struct mailroom_stream_options {
    /* Where to start: NULL or "$", only events added after the open; "0", every event
     * the stream still keeps; an entry id "ms-seq" (or "ms", meaning "ms-0"), the
     * events after that entry: resume after the last one handled. With a group: where
     * the group starts when it does not exist yet (an existing group keeps its own
     * position and this is ignored). */
    const char *start;
    /* NULL: a reader on its own. Else the consumer group, [A-Za-z0-9._:-]{1,64},
     * created (at start) when missing. */
    const char *group;
    /* With group (required): this reader's name in the group, [A-Za-z0-9._:-]{1,64}.
     * Keep it stable across restarts: the events delivered to a name and not yet
     * acknowledged are delivered to that name again. */
    const char *consumer;
    /* With group: also take over the events another reader of the group (or this one)
     * left unacknowledged for longer than this (XAUTOCLAIM), so that the events of a
     * reader that died are not stuck; 0: never. A reader that keeps an event longer
     * before acknowledging it renews its hold with mailroom_stream_claim(). */
    long long claim_after_ms;
    int batch; /* entries fetched per round trip (1 to 10 000); 0: the default, 100 */
} mailroom_stream_options;

/* Sets the defaults: start "$", no group, no take-over, batch 100. Thread-safe. */
MAILROOM_EXPORT void mailroom_stream_options_init(mailroom_stream_options *o);

/* One event read from the stream. */
typedef struct mailroom_stream_event {
    const char *stream_id; /* the entry's id, "ms-seq": where to resume after it */
    long long stream_ms;   /* its ms part: when the event was added (Redis' clock) */
    /* 1 when the reader's position (a plain reader's last event, or the group's) was
     * older than the stream's oldest entry when this event was read: the events after
     * it were trimmed (the stream keeps about 100 000) before the reader got to them
     * and are lost to it; this event is the first one after the gap. Also set when an
     * entry after the position was deleted (XDEL; Redis >= 7.0). A reader starting
     * from "0" is never told about what was trimmed before it started. */
    int trimmed;
    /* group: 1 when this event was delivered before and not acknowledged (this
     * reader's pending events after a restart or reconnect, or taken over from
     * another reader); handle it idempotently */
    int redelivered;
    /* the event, parsed exactly as mailroom_watch_next() parses it; payload is the
     * stream entry's "event" field ("" when the entry has none) */
    const mailroom_event *event;
} mailroom_stream_event;

/*
 * Opens a reader on a connection of its own (like the watch), resolves start ("$"
 * becomes the id of the stream's newest entry) and, with a group, creates the group
 * when it is missing (MKSTREAM: the stream may not exist yet). On success *out is a
 * new reader (close with mailroom_stream_close); on failure *out is NULL:
 * MAILROOM_EINVAL for a bad option (the message names it), or a Redis failure. The
 * handle must outlive the reader: the reader reports its errors there.
 */
MAILROOM_EXPORT int mailroom_stream_open(mailroom *m, const mailroom_stream_options *o,
                                         mailroom_stream **out);

/*
 * Waits up to timeout_ms (0: only what is there now) for the next event: with a group,
 * this reader's pending events first (redelivered), then events taken over from
 * silent readers (claim_after_ms), then new ones. MAILROOM_OK with *ev set (owned by
 * the reader, valid until its next call or close), or MAILROOM_OK with *ev NULL when
 * none came in time or a signal interrupted the wait. A Redis failure is returned with
 * *ev NULL; the reader is not broken by it: its next call reconnects and goes on from
 * its position (a plain reader from the last event it returned; a group reader with
 * its pending events, so nothing handed out and unacknowledged is lost). Events are
 * fetched `batch` at a time (with a group, a fetched event is pending for this reader
 * from then on, handed out or not: a reader that stops after N events should fetch
 * no more than N). Installs no signal handler.
 */
MAILROOM_EXPORT int mailroom_stream_next(mailroom_stream *s, int timeout_ms,
                                         const mailroom_stream_event **ev);

/*
 * Group readers: acknowledges the event with entry id stream_id (XACK): it is done
 * and will not be delivered again. Acknowledging one that is not pending (already
 * acknowledged) is not an error. The current event stays valid. MAILROOM_EINVAL for a
 * reader without a group or an id that is not an entry id.
 */
MAILROOM_EXPORT int mailroom_stream_ack(mailroom_stream *s, const char *stream_id);

/*
 * Group readers: takes the pending event stream_id (again) for this reader (XCLAIM),
 * which restarts its idle time, and returns it as the new current event (with
 * redelivered set; the previous current event is released). For a reader that retries
 * an event later: claiming it before each attempt keeps other readers' take-over
 * (claim_after_ms) away from it and gives its payload without keeping it in memory.
 * MAILROOM_ENOTFOUND when the entry is no longer pending (acknowledged) or was trimmed
 * from the stream meanwhile, with *ev NULL.
 */
MAILROOM_EXPORT int mailroom_stream_claim(mailroom_stream *s, const char *stream_id,
                                          const mailroom_stream_event **ev);

/* Closes the reader's connection and frees it (nothing is acknowledged by closing).
 * Accepts NULL. */
MAILROOM_EXPORT void mailroom_stream_close(mailroom_stream *s);

/* ------------------------------------------------------------------ webhook signatures */

/*
 * mailroom-webhook signs every delivery (docs/webhook.md): the header
 * X-Mailroom-Timestamp carries the Unix time in seconds, and X-Mailroom-Signature
 * "v1=" and the lowercase hex HMAC-SHA256, keyed with the shared secret, of
 * timestamp "." body; with several secrets (rotation) one "v1=" per secret, separated
 * by commas. These two calls are that definition, for C applications that receive the
 * deliveries (tests/vectors/webhook.json are its test vectors). Both are thread-safe
 * and need no handle.
 */
#define MAILROOM_WEBHOOK_SIG_MAX 68      /* "v1=", 64 hex digits and the NUL */
#define MAILROOM_WEBHOOK_TOLERANCE_S 300 /* the replay window: 5 minutes */

/*
 * Writes "v1=<hex>" for secret (secret_len bytes, at least 1) over timestamp "." body
 * (body_len bytes) into out. MAILROOM_OK, or MAILROOM_EINVAL for a NULL argument or an
 * empty secret, MAILROOM_ENOMEM.
 */
MAILROOM_EXPORT int mailroom_webhook_sign(const void *secret, size_t secret_len,
                                          long long timestamp, const char *body, size_t body_len,
                                          char out[MAILROOM_WEBHOOK_SIG_MAX]);

/*
 * Checks a delivery: timestamp and signature are the two header values as received
 * (NULL when missing), body the raw request body. Genuine when the timestamp is a
 * decimal number of seconds within tolerance_s of now (either way; tolerance_s <= 0:
 * MAILROOM_WEBHOOK_TOLERANCE_S) and one of the signature's "v1=" values equals the
 * HMAC under secret (compared in constant time). MAILROOM_OK when genuine (*why ""),
 * else MAILROOM_EINVAL with *why (why may be NULL) a static reason: "missing header",
 * "malformed timestamp", "stale timestamp", "malformed signature", "signature
 * mismatch", "invalid argument" (no secret); MAILROOM_ENOMEM ("out of memory"). Verify
 * before parsing the body, and remember the delivery id (the body's "delivery_id") to
 * answer a repeated delivery without acting twice.
 */
MAILROOM_EXPORT int mailroom_webhook_verify(const void *secret, size_t secret_len,
                                            const char *timestamp, const char *signature,
                                            const char *body, size_t body_len, long long now,
                                            long long tolerance_s, const char **why);

#ifdef __cplusplus
}
#endif

#endif
