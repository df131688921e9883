/*
 * jobs.c — job control: `mailroom list [pending|scheduled|retrying] [--to ADDR |
 * --domain DOMAIN] [--limit N] [--cursor C] [--json]`, `cancel ID`, `retry-now ID`,
 * `pause` and `resume`, each one call of mailroom_admin.h with its result printed:
 * jobs as readable lines (every string from Redis masked) or one JSON object; the
 * others as one line, or one JSON object with --json.
 *
 * A listing asks the library page by page until it has --limit jobs or the walk
 * ended (one call looks at MAILROOM_JOBS_SCAN_MAX entries at most, so a rare
 * recipient may need several), then prints them with the cursor of what is left.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"

/* The kinds of `list`, by name, in the order of mailroom_jobs_kind. */
static const char *const kind_names[] = {"pending", "scheduled", "retrying"};

/* ------------------------------------------------------------------ list */

/* A listing: the pages asked for, and what is printed from them. */
struct listing {
    mailroom_jobs **pages;
    size_t n_pages;
    size_t n_jobs;
    long long total;
    const char *next; /* the last page's next_cursor */
};

static void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->n_pages; i++)
        mailroom_jobs_free(l->pages[i]);
    free(l->pages);
}

/* Reads list's operand and options into q. EXIT_OK or EXIT_USAGE. */
static int list_query(const struct cli *c, mailroom_jobs_query *q, struct failure *f)
{
    long limit = MAILROOM_JOBS_LIST_DEFAULT;
    mailroom_jobs_query_init(q);
    if (c->operands.n > 1) {
        size_t k = 0;
        while (k < 3 && strcmp(c->operands.v[1], kind_names[k]) != 0)
            k++;
        if (k == 3)
            return fail(f, EXIT_USAGE, "list: '%.64s' is not pending, scheduled or retrying",
                        c->operands.v[1]);
        q->kind = (mailroom_jobs_kind)k;
    }
    if (c->to.n > 1)
        return fail(f, EXIT_USAGE, "list: --to given more than once");
    if (c->to.n == 1 && c->value[O_DOMAIN])
        return fail(f, EXIT_USAGE, "list: give --to or --domain, not both");
    if (c->value[O_LIMIT] &&
        option_positive("limit", c->value[O_LIMIT], 1000000L, &limit, f) != EXIT_OK)
        return EXIT_USAGE;
    q->to = c->to.n == 1 ? c->to.v[0] : NULL;
    q->domain = c->value[O_DOMAIN];
    q->cursor = c->value[O_CURSOR];
    q->limit = limit;
    return EXIT_OK;
}

/* Asks for pages until limit jobs or the end. EXIT_OK, or the call's failure. */
static int list_fetch(mailroom *m, mailroom_jobs_query q, struct listing *l, struct failure *f)
{
    long want = q.limit;
    while (want > 0) {
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        mailroom_jobs **v = realloc(l->pages, (l->n_pages + 1) * sizeof *v);
        if (!v)
            return fail(f, EXIT_SOFTWARE, "list: out of memory");
        l->pages = v;
        q.limit = want < MAILROOM_JOBS_LIST_MAX ? want : MAILROOM_JOBS_LIST_MAX;
        int rc = mailroom_jobs_list(m, &q, &l->pages[l->n_pages]);
        if (rc != MAILROOM_OK)
            return fail_admin(f, m, rc);
        const mailroom_jobs *p = l->pages[l->n_pages++];
        l->n_jobs += p->n;
        l->total = p->total;
        l->next = p->next_cursor;
        want -= (long)p->n;
        if (!*p->next_cursor)
            break;
        q.cursor = p->next_cursor;
    }
    return EXIT_OK;
}

/* One job as a readable line: id, state, attempts, created (or due) time, the first
 * recipient (+ how many more), the subject; the last error on a second line. */
static void print_job_text(const mailroom_job_item *j, mailroom_jobs_kind kind)
{
    char due[32];
    out_clean(j->id[0] ? j->id : "-", stdout);
    printf("  %-9s %2d  ", mailroom_state_name(j->state), j->attempts);
    if (kind == MAILROOM_JOBS_PENDING) {
        out_clean(j->created_at[0] ? j->created_at : "-", stdout);
    } else {
        out_time_ms(j->due_ms, due);
        printf("due %s", due[0] ? due : "-");
    }
    fputs("  ", stdout);
    if (!j->readable) {
        printf("(unreadable entry, %zu bytes)\n", j->raw_bytes);
    } else {
        out_clean(j->n_recipients ? j->recipients[0] : "-", stdout);
        if (j->n_recipients > 1)
            printf(" +%zu", j->n_recipients - 1);
        fputs("  ", stdout);
        out_clean(j->subject, stdout);
        fputc('\n', stdout);
    }
    if (j->error[0]) {
        fputs("    error: ", stdout);
        out_clean(j->error, stdout);
        fputc('\n', stdout);
    }
}

/* One job as JSON (the members of `mailroom list --help`). NULL when memory ran out. */
static json_object *job_json(const mailroom_job_item *j)
{
    char due[32];
    json_object *o = json_object_new_object(), *to = json_object_new_array();
    int ok = o && to && json_object_object_add(o, "id", json_object_new_string(j->id)) == 0;
    if (!ok) {
        json_object_put(o);
        json_object_put(to);
        return NULL;
    }
    ok = out_json_set(o, "recipients", to) == 0;
    for (size_t i = 0; ok && i < j->n_recipients; i++)
        ok = json_object_array_add(to, json_object_new_string(j->recipients[i])) == 0;
    out_time_ms(j->due_ms, due);
    ok = ok &&
         out_json_set(o, "state", json_object_new_string(mailroom_state_name(j->state))) == 0 &&
         out_json_set(o, "attempts", json_object_new_int(j->attempts)) == 0 &&
         out_json_set(o, "error", json_object_new_string(j->error)) == 0 &&
         out_json_set_str(o, "subject", j->readable ? j->subject : NULL) == 0 &&
         out_json_set_str(o, "created_at", j->created_at) == 0 &&
         out_json_set_str(o, "send_at", j->send_at) == 0 &&
         out_json_set_str(o, "due_at", due) == 0 &&
         out_json_set(o, "bytes", json_object_new_int64((int64_t)j->raw_bytes)) == 0 &&
         out_json_set(o, "readable", json_object_new_boolean(j->readable)) == 0;
    if (!ok) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

/* The whole listing as one JSON object: {queue, kind, total, jobs, next_cursor}. */
static int print_listing_json(const struct listing *l, mailroom_jobs_kind kind, const char *queue,
                              struct failure *f)
{
    json_object *o = json_object_new_object(), *jobs = json_object_new_array();
    int ok = o && jobs && out_json_set(o, "queue", json_object_new_string(queue)) == 0 &&
             out_json_set(o, "kind", json_object_new_string(kind_names[kind])) == 0 &&
             out_json_set(o, "total", json_object_new_int64(l->total)) == 0;
    if (ok)
        ok = out_json_set(o, "jobs", jobs) == 0;
    else
        json_object_put(jobs);
    for (size_t p = 0; ok && p < l->n_pages; p++)
        for (size_t i = 0; ok && i < l->pages[p]->n; i++) {
            json_object *j = job_json(&l->pages[p]->items[i]);
            ok = j && json_object_array_add(jobs, j) == 0;
            if (!ok)
                json_object_put(j);
        }
    ok = ok && out_json_set_str(o, "next_cursor", l->next) == 0;
    int rc = ok ? out_json_line(o, f) : fail(f, EXIT_SOFTWARE, "list: out of memory");
    json_object_put(o);
    return rc;
}

/* The listing as lines, then a footer with the count and the cursor of the rest. */
static void print_listing_text(const struct listing *l, mailroom_jobs_kind kind)
{
    for (size_t p = 0; p < l->n_pages; p++)
        for (size_t i = 0; i < l->pages[p]->n; i++)
            print_job_text(&l->pages[p]->items[i], kind);
    printf("(%zu shown of %lld %s", l->n_jobs, l->total,
           kind == MAILROOM_JOBS_PENDING ? "pending" : "scheduled");
    if (l->next && *l->next)
        printf("; more: --cursor %s", l->next);
    printf(")\n");
}

/* `list`: options, the pages, the output. */
int cmd_list(const struct cli *c, struct failure *f)
{
    mailroom_jobs_query q;
    struct listing l = {NULL, 0, 0, 0, ""};
    mailroom *m = NULL;
    int rc = list_query(c, &q, f);
    if (rc == EXIT_OK)
        rc = open_handle(c, 0, 0, 1, &m, f);
    if (rc == EXIT_OK)
        rc = list_fetch(m, q, &l, f);
    if (rc == EXIT_OK) {
        if (c->count[O_JSON] > 0)
            rc = print_listing_json(&l, q.kind, mailroom_queue_name(m), f);
        else
            print_listing_text(&l, q.kind);
    }
    if (rc == EXIT_OK)
        rc = out_flush("list", f);
    listing_free(&l);
    mailroom_close(m);
    return rc;
}

/* ------------------------------------------------------------------ one job, one queue */

/* Prints a one-line result: text, or {"key": value...} built by the caller. */
static int print_result(int json, json_object *o, const char *text, const char *what,
                        struct failure *f)
{
    int rc = EXIT_OK;
    if (json)
        rc = o ? out_json_line(o, f) : fail(f, EXIT_SOFTWARE, "%s: out of memory", what);
    else
        fputs(text, stdout);
    return rc == EXIT_OK ? out_flush(what, f) : rc;
}

/* The job ID operand of cancel and retry-now. EXIT_OK or EXIT_USAGE. */
static int job_operand(const struct cli *c, const char **id, struct failure *f)
{
    if (c->operands.n < 2)
        return fail(f, EXIT_USAGE, "%s: missing job ID (try 'mailroom %s --help')", c->cmd_name,
                    c->cmd_name);
    *id = c->operands.v[1];
    if (!mailroom_id_valid(*id))
        return fail(f, EXIT_USAGE, "%s: '%.64s' is not a job id", c->cmd_name, *id);
    return EXIT_OK;
}

/* `cancel ID`: "cancelled ID (where)" or {"id","cancelled":true,"removed_from"}. */
int cmd_cancel(const struct cli *c, struct failure *f)
{
    static const char *const places[] = {"", "pending", "scheduled"};
    static const char *const told[] = {"held by a consumer: dropped before sending",
                                       "removed from pending", "removed from scheduled"};
    const char *id = NULL;
    mailroom *m = NULL;
    mailroom_job_place where = MAILROOM_PLACE_NONE;
    json_object *o = NULL;
    char line[512];
    int rc = job_operand(c, &id, f);
    if (rc == EXIT_OK)
        rc = open_handle(c, 0, 0, 1, &m, f);
    if (rc == EXIT_OK) {
        int lrc = mailroom_cancel(m, id, &where);
        rc = lrc == MAILROOM_OK ? EXIT_OK : fail_admin(f, m, lrc);
    }
    if (rc == EXIT_OK) {
        o = json_object_new_object();
        if (o && (out_json_set(o, "id", json_object_new_string(id)) != 0 ||
                  out_json_set(o, "cancelled", json_object_new_boolean(1)) != 0 ||
                  out_json_set_str(o, "removed_from", places[where]) != 0)) {
            json_object_put(o);
            o = NULL;
        }
        snprintf(line, sizeof line, "cancelled %s (%s)\n", id, told[where]);
        rc = print_result(c->count[O_JSON] > 0, o, line, "cancel", f);
    }
    json_object_put(o);
    mailroom_close(m);
    return rc;
}

/* `retry-now ID`: "moved ID to the head of pending" or {"id","moved":true}. */
int cmd_retry_now(const struct cli *c, struct failure *f)
{
    const char *id = NULL;
    mailroom *m = NULL;
    json_object *o = NULL;
    char line[256];
    int rc = job_operand(c, &id, f);
    if (rc == EXIT_OK)
        rc = open_handle(c, 0, 0, 1, &m, f);
    if (rc == EXIT_OK) {
        int lrc = mailroom_retry_now(m, id);
        rc = lrc == MAILROOM_OK ? EXIT_OK : fail_admin(f, m, lrc);
    }
    if (rc == EXIT_OK) {
        o = json_object_new_object();
        if (o && (out_json_set(o, "id", json_object_new_string(id)) != 0 ||
                  out_json_set(o, "moved", json_object_new_boolean(1)) != 0)) {
            json_object_put(o);
            o = NULL;
        }
        snprintf(line, sizeof line, "moved %s to the head of pending\n", id);
        rc = print_result(c->count[O_JSON] > 0, o, line, "retry-now", f);
    }
    json_object_put(o);
    mailroom_close(m);
    return rc;
}

/* `pause` and `resume`: "paused QUEUE" (or "QUEUE was already paused") or
 * {"queue","paused":bool,"changed":bool}. */
int cmd_pause(const struct cli *c, struct failure *f)
{
    int pause = c->cmd == CMD_PAUSE, changed = 0;
    mailroom *m = NULL;
    json_object *o = NULL;
    char line[256];
    int rc = open_handle(c, 0, 0, 1, &m, f);
    if (rc == EXIT_OK) {
        int lrc = pause ? mailroom_pause(m, &changed) : mailroom_resume(m, &changed);
        rc = lrc == MAILROOM_OK ? EXIT_OK : fail_admin(f, m, lrc);
    }
    if (rc == EXIT_OK) {
        const char *q = mailroom_queue_name(m);
        o = json_object_new_object();
        if (o && (out_json_set(o, "queue", json_object_new_string(q)) != 0 ||
                  out_json_set(o, "paused", json_object_new_boolean(pause)) != 0 ||
                  out_json_set(o, "changed", json_object_new_boolean(changed)) != 0)) {
            json_object_put(o);
            o = NULL;
        }
        if (changed)
            snprintf(line, sizeof line, "%s %s\n", pause ? "paused" : "resumed", q);
        else
            snprintf(line, sizeof line, "%s was %s\n", q, pause ? "already paused" : "not paused");
        rc = print_result(c->count[O_JSON] > 0, o, line, c->cmd_name, f);
    }
    json_object_put(o);
    mailroom_close(m);
    return rc;
}
