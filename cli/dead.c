/*
 * dead.c — `mailroom dead list [--limit N] [--json]`, `dead retry (ID | --all)
 * [--json]` and `dead purge [--older-than DURATION] [--json]`: the dead-letter calls
 * of mailroom_admin.h, their options checked here (each belongs to one subcommand) and
 * their results printed: entries as a table of time, state, id and reason (masked), or
 * as stored; counts as "<n> <what>" or {"<key>":n}.
 */
#include <string.h>

#include <json-c/json.h>

#include "cli.h"

/* Checks `dead SUBCOMMAND` and its options, which belong to one subcommand each. */
static int check_dead(const struct cli *c, const char **sub, struct failure *f)
{
    static const struct {
        enum opt_index opt;
        const char *sub;
    } only[] = {{O_LIMIT, "list"}, {O_ALL, "retry"}, {O_OLDER_THAN, "purge"}};
    *sub = c->operands.n >= 2 ? c->operands.v[1] : "";
    if (c->operands.n < 2)
        return fail(f, EXIT_USAGE,
                    "dead: missing subcommand: list, retry or purge (try 'mailroom dead"
                    " --help')");
    if (strcmp(*sub, "list") != 0 && strcmp(*sub, "retry") != 0 && strcmp(*sub, "purge") != 0)
        return fail(f, EXIT_USAGE, "dead: unknown subcommand '%.64s' (list, retry, purge)", *sub);
    for (size_t i = 0; i < sizeof only / sizeof only[0]; i++)
        if (c->count[only[i].opt] > 0 && strcmp(*sub, only[i].sub) != 0)
            return fail(f, EXIT_USAGE, "--%s: not an option of 'dead %s'", option_name(only[i].opt),
                        *sub);
    if (strcmp(*sub, "retry") == 0) {
        int has_id = c->operands.n > 2;
        if (has_id == (c->count[O_ALL] > 0))
            return fail(f, EXIT_USAGE, "dead retry: give a job ID or --all (not both)");
        if (has_id && !mailroom_id_valid(c->operands.v[2]))
            return fail(f, EXIT_USAGE, "dead retry: '%.64s' is not a job id", c->operands.v[2]);
    }
    return EXIT_OK;
}

/* One dead-letter entry as a readable table row: at, state, id, reason. */
static void print_dead_text(const mailroom_dead_letter *e)
{
    if (!e->is_object) {
        fputs("?  (not a JSON object)\n", stdout);
        return;
    }
    out_clean(e->at ? e->at : "-", stdout);
    fputs("  ", stdout);
    out_clean(e->state ? e->state : "-", stdout);
    size_t sl = e->state ? strlen(e->state) : 1;
    printf("%*s  ", sl < 8 ? (int)(8 - sl) : 0, "");
    out_clean(e->id ? e->id : "-", stdout);
    fputs("  ", stdout);
    out_clean(e->reason ? e->reason : "", stdout);
    fputc('\n', stdout);
}

/* The values of dead's options, read before anything is asked of Redis. */
struct dead_opts {
    long limit;           /* list: how many entries, newest first */
    long long older_than; /* purge: only entries older than this (ms); -1: all */
};

/* Reads --limit and --older-than (exit 64 when bad). */
static int dead_options(const struct cli *c, struct dead_opts *o, struct failure *f)
{
    int rc = EXIT_OK;
    o->limit = MAILROOM_DEAD_LIST_DEFAULT;
    o->older_than = -1;
    if (c->value[O_LIMIT])
        rc = option_positive("limit", c->value[O_LIMIT], 1000000L, &o->limit, f);
    if (rc == EXIT_OK && c->value[O_OLDER_THAN])
        rc = option_duration("older-than", c->value[O_OLDER_THAN], 1, &o->older_than, f);
    return rc;
}

/* `dead list`: the newest --limit entries, as a table or as stored. */
static int dead_list(const struct cli *c, mailroom *m, long limit, struct failure *f)
{
    mailroom_dead_letters *l = NULL;
    int lrc = mailroom_dead_list(m, limit, &l);
    if (lrc != MAILROOM_OK)
        return fail_admin(f, m, lrc);
    for (size_t i = 0; i < l->n; i++) {
        if (c->count[O_JSON] > 0) {
            fwrite(l->items[i].raw, 1, l->items[i].raw_len, stdout);
            fputc('\n', stdout);
        } else {
            print_dead_text(&l->items[i]);
        }
    }
    mailroom_dead_letters_free(l);
    return out_flush("dead list", f);
}

/* Prints a count as "<n> <what>" or {"<key>":n}. */
static int print_count(int json, const char *key, long long n, const char *what, struct failure *f)
{
    if (!json) {
        printf("%lld %s\n", n, what);
        return out_flush(key, f);
    }
    json_object *j = json_object_new_object();
    int rc;
    if (!j || out_json_set(j, key, json_object_new_int64(n)) != 0)
        rc = fail(f, EXIT_SOFTWARE, "out of memory");
    else if ((rc = out_json_line(j, f)) == EXIT_OK)
        rc = out_flush(key, f);
    json_object_put(j);
    return rc;
}

/* `dead retry`: how many went back; an ID that matched nothing exits 1 after that. */
static int dead_retry(const struct cli *c, mailroom *m, struct failure *f)
{
    long long n = 0;
    const char *id = c->count[O_ALL] > 0 ? NULL : c->operands.v[2];
    int lrc = mailroom_dead_retry(m, id, &n);
    if (lrc != MAILROOM_OK && lrc != MAILROOM_ENOTFOUND)
        return fail_admin(f, m, lrc);
    int rc = print_count(c->count[O_JSON] > 0, "retried", n, "returned to pending", f);
    return rc == EXIT_OK && lrc != MAILROOM_OK ? fail_admin(f, m, lrc) : rc;
}

/* `dead purge`: every entry, or those older than --older-than. */
static int dead_purge(const struct cli *c, mailroom *m, long long older_than, struct failure *f)
{
    long long n = 0;
    int lrc = mailroom_dead_purge(m, older_than, &n);
    if (lrc != MAILROOM_OK)
        return fail_admin(f, m, lrc);
    return print_count(c->count[O_JSON] > 0, "purged", n, "purged", f);
}

/* `dead SUBCOMMAND`: options first (a usage error never reaches Redis), then one call
 * on a handle with the operator commands' longer timeout. */
int cmd_dead(const struct cli *c, struct failure *f)
{
    const char *sub = "";
    mailroom *m = NULL;
    struct dead_opts o;
    int rc = check_dead(c, &sub, f);
    if (rc == EXIT_OK)
        rc = dead_options(c, &o, f);
    if (rc != EXIT_OK)
        return rc;
    if ((rc = open_handle(c, 0, 0, 1, &m, f)) != EXIT_OK)
        return rc;
    if (strcmp(sub, "list") == 0)
        rc = dead_list(c, m, o.limit, f);
    else if (strcmp(sub, "retry") == 0)
        rc = dead_retry(c, m, f);
    else
        rc = dead_purge(c, m, o.older_than, f);
    mailroom_close(m);
    return rc;
}
