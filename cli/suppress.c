/*
 * suppress.c — `mailroom suppress list [--limit N] [--cursor C] [--json]`,
 * `suppress add ADDR [--for DURATION] [--reason TEXT] [--json]`, `suppress remove
 * ADDR [--json]` and `suppress check ADDR [--json]`: the suppression list every queue
 * shares, through mailroom_suppress_*() (mailroom_admin.h) and mailroom_suppressed()
 * (mailroom.h). Entries print as one readable line each (strings masked) or as JSON;
 * check exits 1 for an address that is not suppressed, as status does for an unknown
 * job.
 */
#include <string.h>

#include <json-c/json.h>

#include "cli.h"

/* Checks `suppress SUBCOMMAND [ADDR]` and which options go with it. */
static int check_suppress(const struct cli *c, const char **sub, struct failure *f)
{
    static const struct {
        enum opt_index opt;
        const char *sub;
    } only[] = {{O_LIMIT, "list"}, {O_CURSOR, "list"}, {O_FOR, "add"}, {O_REASON, "add"}};
    *sub = c->operands.n >= 2 ? c->operands.v[1] : "";
    if (strcmp(*sub, "list") != 0 && strcmp(*sub, "add") != 0 && strcmp(*sub, "remove") != 0 &&
        strcmp(*sub, "check") != 0)
        return fail(f, EXIT_USAGE,
                    "suppress: %s%.64s%s (list, add, remove or check; try 'mailroom suppress"
                    " --help')",
                    **sub ? "unknown subcommand '" : "missing subcommand", *sub, **sub ? "'" : "");
    for (size_t i = 0; i < sizeof only / sizeof only[0]; i++)
        if (c->count[only[i].opt] > 0 && strcmp(*sub, only[i].sub) != 0)
            return fail(f, EXIT_USAGE, "--%s: not an option of 'suppress %s'",
                        option_name(only[i].opt), *sub);
    if (strcmp(*sub, "list") != 0 && c->operands.n < 3)
        return fail(f, EXIT_USAGE, "suppress %s: missing ADDR", *sub);
    return EXIT_OK;
}

/* An entry as JSON: {address, reason, code, at, queue, id, source, expires_at}. NULL
 * when memory ran out. */
static json_object *entry_json(const mailroom_suppression *e)
{
    char expires[32];
    out_time_ms(e->expires_ms, expires);
    json_object *o = json_object_new_object();
    if (!o || out_json_set(o, "address", json_object_new_string(e->address)) != 0 ||
        out_json_set(o, "reason", json_object_new_string(e->reason)) != 0 ||
        (e->code ? out_json_set(o, "code", json_object_new_int(e->code))
                 : json_object_object_add(o, "code", NULL)) != 0 ||
        out_json_set_str(o, "at", e->at) != 0 || out_json_set_str(o, "queue", e->queue) != 0 ||
        out_json_set_str(o, "id", e->id) != 0 || out_json_set_str(o, "source", e->source) != 0 ||
        out_json_set_str(o, "expires_at", expires) != 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* An entry as one line: address, until when, who added it, the code, the reason. */
static void print_entry_text(const mailroom_suppression *e)
{
    char expires[32];
    out_time_ms(e->expires_ms, expires);
    out_clean(e->address, stdout);
    printf("  until %s  ", expires[0] ? expires : "-");
    out_clean(e->source[0] ? e->source : "-", stdout);
    if (e->code)
        printf("  %d", e->code);
    fputs("  ", stdout);
    out_clean(e->reason, stdout);
    if (e->queue[0] || e->id[0]) {
        fputs("  (", stdout);
        out_clean(e->queue, stdout);
        fputc(' ', stdout);
        out_clean(e->id, stdout);
        fputc(')', stdout);
    }
    fputc('\n', stdout);
}

/* Prints one entry (add, check). */
static int print_entry(const struct cli *c, const mailroom_suppression *e, struct failure *f)
{
    if (c->count[O_JSON] == 0) {
        print_entry_text(e);
        return EXIT_OK;
    }
    json_object *o = entry_json(e);
    int rc = o ? out_json_line(o, f) : fail(f, EXIT_SOFTWARE, "suppress: out of memory");
    json_object_put(o);
    return rc;
}

/* A page as one JSON object: {total, entries, next_cursor}. */
static int print_list_json(const mailroom_suppressions *l, struct failure *f)
{
    json_object *o = json_object_new_object(), *a = json_object_new_array();
    int ok = o && a && out_json_set(o, "total", json_object_new_int64(l->total)) == 0;
    if (ok)
        ok = out_json_set(o, "entries", a) == 0;
    else
        json_object_put(a);
    for (size_t i = 0; ok && i < l->n; i++) {
        json_object *e = entry_json(&l->items[i]);
        ok = e && json_object_array_add(a, e) == 0;
        if (!ok)
            json_object_put(e);
    }
    ok = ok && out_json_set_str(o, "next_cursor", l->next_cursor) == 0;
    int rc = ok ? out_json_line(o, f) : fail(f, EXIT_SOFTWARE, "suppress list: out of memory");
    json_object_put(o);
    return rc;
}

/* The values of suppress's options, read before anything is asked of Redis. */
struct suppress_opts {
    long limit;       /* list: entries per page */
    long long for_ms; /* add: how long the entry lasts */
};

/* Reads --limit and --for (exit 64 when bad). */
static int suppress_options(const struct cli *c, struct suppress_opts *o, struct failure *f)
{
    int rc = EXIT_OK;
    o->limit = MAILROOM_SUPPRESS_LIST_DEFAULT;
    o->for_ms = MAILROOM_SUPPRESS_FOR_DEFAULT_MS;
    if (c->value[O_LIMIT])
        rc = option_positive("limit", c->value[O_LIMIT], MAILROOM_SUPPRESS_LIST_MAX, &o->limit, f);
    if (rc == EXIT_OK && c->value[O_FOR])
        rc = option_duration("for", c->value[O_FOR], 0, &o->for_ms, f);
    return rc;
}

/* `suppress list`: one page, as lines with a footer, or as JSON. */
static int suppress_list(const struct cli *c, mailroom *m, long limit, struct failure *f)
{
    mailroom_suppressions *l = NULL;
    int lrc = mailroom_suppress_list(m, c->value[O_CURSOR], limit, &l);
    if (lrc != MAILROOM_OK)
        return fail_admin(f, m, lrc);
    int rc = EXIT_OK;
    if (c->count[O_JSON] > 0) {
        rc = print_list_json(l, f);
    } else {
        for (size_t i = 0; i < l->n; i++)
            print_entry_text(&l->items[i]);
        printf("(%zu shown of %lld suppressed", l->n, l->total);
        if (*l->next_cursor)
            printf("; more: --cursor %s", l->next_cursor);
        printf(")\n");
    }
    mailroom_suppressions_free(l);
    return rc;
}

/* `suppress add ADDR`: for for_ms (--for, default 30 days), with --reason. */
static int suppress_add(const struct cli *c, mailroom *m, const char *addr, long long for_ms,
                        struct failure *f)
{
    mailroom_suppression e;
    int lrc = mailroom_suppress_add(m, addr, c->value[O_REASON], for_ms, "cli", &e);
    return lrc == MAILROOM_OK ? print_entry(c, &e, f) : fail_admin(f, m, lrc);
}

/* `suppress remove ADDR`: "removed ADDR" or {"address","removed":true}; exit 1 when
 * it was not suppressed. */
static int suppress_remove(const struct cli *c, mailroom *m, const char *addr, struct failure *f)
{
    int lrc = mailroom_suppress_remove(m, addr);
    if (lrc != MAILROOM_OK)
        return fail_admin(f, m, lrc);
    if (c->count[O_JSON] == 0) {
        fputs("removed ", stdout);
        out_clean(addr, stdout);
        fputc('\n', stdout);
        return EXIT_OK;
    }
    json_object *o = json_object_new_object();
    int rc = o && out_json_set(o, "address", json_object_new_string(addr)) == 0 &&
                     out_json_set(o, "removed", json_object_new_boolean(1)) == 0
                 ? out_json_line(o, f)
                 : fail(f, EXIT_SOFTWARE, "suppress remove: out of memory");
    json_object_put(o);
    return rc;
}

/* `suppress check ADDR`: the entry, or exit 1 ("not suppressed") without output. */
static int suppress_check(const struct cli *c, mailroom *m, const char *addr, struct failure *f)
{
    mailroom_suppression e;
    int lrc = mailroom_suppressed(m, addr, &e);
    return lrc == MAILROOM_OK ? print_entry(c, &e, f) : fail_admin(f, m, lrc);
}

/* `suppress SUBCOMMAND`: checks first (a usage error never reaches Redis). */
int cmd_suppress(const struct cli *c, struct failure *f)
{
    const char *sub = "";
    mailroom *m = NULL;
    struct suppress_opts o;
    int rc = check_suppress(c, &sub, f);
    if (rc == EXIT_OK)
        rc = suppress_options(c, &o, f);
    if (rc != EXIT_OK)
        return rc;
    if ((rc = open_handle(c, 0, 0, 1, &m, f)) != EXIT_OK)
        return rc;
    const char *addr = c->operands.n > 2 ? c->operands.v[2] : "";
    if (strcmp(sub, "list") == 0)
        rc = suppress_list(c, m, o.limit, f);
    else if (strcmp(sub, "add") == 0)
        rc = suppress_add(c, m, addr, o.for_ms, f);
    else if (strcmp(sub, "remove") == 0)
        rc = suppress_remove(c, m, addr, f);
    else
        rc = suppress_check(c, m, addr, f);
    if (rc == EXIT_OK)
        rc = out_flush("suppress", f);
    mailroom_close(m);
    return rc;
}
