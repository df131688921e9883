/*
 * test_state: common/state.c and the promise that job states have one table. The
 * enum is mailroom_state in include/mailroom.h; state.c names its values; the build
 * writes the same names into the prelude of every Lua script (local S = {...}), and
 * the scripts store and compare states by those names. If any of the three drifts
 * (a state added to the enum but not to state.c, a renamed constant, a generator that
 * drops one), Redis records would carry names the C side cannot parse.
 *
 * So the expected names are read here from the header itself (each constant after
 * MAILROOM_STATE_, in lower case, as state.h documents), not copied: every value
 * must round-trip through mailroom_state_name and mr_state_parse; unknown names give
 * MAILROOM_STATE_UNKNOWN; the final states are sent, failed and rejected; and every
 * script in script_table that reads S.<state> carries the generated table naming
 * exactly these states, each with its own name (S.sent == 'sent'), while every
 * S.<name> a script reads is one of them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailroom.h"
#include "script.h"
#include "state.h"

#define HEADER MAILROOM_SOURCE_DIR "/include/mailroom.h"
#define MAX_STATES 32
#define NAME_MAX_LEN 32

/* The states of the header's enum, in order, by their expected names. */
static char g_names[MAX_STATES][NAME_MAX_LEN];
static int g_count;

/* Reads include/mailroom.h and fills g_names from "typedef enum mailroom_state {...}":
 * constants are taken in order; a constant with an explicit value other than its
 * position fails the test (the order is what the name table relies on). */
static int load_enum(void **state)
{
    (void)state;
    FILE *f = fopen(HEADER, "r");
    assert_non_null(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *p = strstr(text, "typedef enum mailroom_state {");
    assert_non_null(p);
    const char *end = strchr(p, '}');
    assert_non_null(end);
    static const char prefix[] = "MAILROOM_STATE_";
    g_count = 0;
    for (const char *q = strstr(p, prefix); q && q < end; q = strstr(q, prefix)) {
        q += sizeof prefix - 1;
        size_t len = strspn(q, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789");
        assert_true(len > 0 && len < NAME_MAX_LEN);
        assert_true(g_count < MAX_STATES);
        for (size_t i = 0; i < len; i++)
            g_names[g_count][i] = (char)tolower((unsigned char)q[i]);
        g_names[g_count][len] = '\0';
        /* "= N" after the constant, if any, must be its position */
        const char *after = q + len;
        after += strspn(after, " \t");
        if (*after == '=')
            assert_int_equal(strtol(after + 1, NULL, 0), g_count);
        g_count++;
        q += len;
    }
    assert_true(g_count >= 2);
    assert_string_equal(g_names[0], "unknown");
    return 0;
}

static void test_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < g_count; i++) {
        mailroom_state s = (mailroom_state)i;
        const char *name = mailroom_state_name(s);
        assert_non_null(name);
        if (strcmp(name, g_names[i]) != 0)
            fail_msg("state %d: named '%s', the header says '%s'", i, name, g_names[i]);
        if (i > 0 && mr_state_parse(name) != s)
            fail_msg("'%s' parses to %d, expected %d", name, (int)mr_state_parse(name), i);
    }
    /* every name different */
    for (int i = 0; i < g_count; i++)
        for (int k = 0; k < i; k++)
            assert_string_not_equal(mailroom_state_name((mailroom_state)i),
                                    mailroom_state_name((mailroom_state)k));
    /* out of range: "unknown", not a crash */
    assert_string_equal(mailroom_state_name((mailroom_state)g_count), "unknown");
    assert_string_equal(mailroom_state_name((mailroom_state)1000), "unknown");
    assert_string_equal(mailroom_state_name((mailroom_state)-1), "unknown");
}

static void test_unknown_names(void **state)
{
    (void)state;
    static const char *const names[] = {"", "SENT", "Sent", "sent ", " sent", "sen", "sentx",
                                        "unknown", "expired", "queued\n", "dead"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (mr_state_parse(names[i]) != MAILROOM_STATE_UNKNOWN)
            fail_msg("'%s' parsed as state %d", names[i], (int)mr_state_parse(names[i]));
    }
}

static void test_final_states(void **state)
{
    (void)state;
    for (int i = 0; i < g_count; i++) {
        const char *n = g_names[i];
        int want = strcmp(n, "sent") == 0 || strcmp(n, "failed") == 0 ||
                   strcmp(n, "rejected") == 0 || strcmp(n, "cancelled") == 0;
        if (mr_state_final((mailroom_state)i) != want)
            fail_msg("state '%s': final %d, expected %d", n, mr_state_final((mailroom_state)i),
                     want);
    }
}

/* Index of name in g_names, or -1. */
static int state_index(const char *name, size_t len)
{
    for (int i = 0; i < g_count; i++)
        if (strlen(g_names[i]) == len && memcmp(g_names[i], name, len) == 0)
            return i;
    return -1;
}

/* The next S.<name> of src from p on (not part of a longer identifier such as
 * KEYS.), or NULL. */
static const char *next_state_ref(const char *src, const char *p)
{
    for (const char *q = strstr(p, "S."); q; q = strstr(q + 1, "S."))
        if (q == src || !(isalnum((unsigned char)q[-1]) || q[-1] == '_'))
            return q;
    return NULL;
}

/*
 * The "one table" check, over the complete source of every script: a script that
 * reads S.<name> has exactly one "local S = {...}" table, whose entries (name = 'name',
 * separated by commas, on one line or several) name each state of the enum exactly
 * once with its own name and nothing else; and each S.<name> a script reads is a
 * state (a typo would be nil in Lua, silently).
 */
static void test_lua_preludes(void **state)
{
    (void)state;
    assert_true(SCRIPT_COUNT > 0);
    int with_table = 0;
    for (int id = 0; id < SCRIPT_COUNT; id++) {
        const script_info *s = &script_table[id];
        char *src = malloc(s->source_len + 1);
        assert_non_null(src);
        memcpy(src, s->source, s->source_len);
        src[s->source_len] = '\0';

        const char *line = strstr(src, "\nlocal S = {");
        const char *close = line ? strchr(line, '}') : NULL;
        if (line)
            assert_null(strstr(line + 1, "\nlocal S = {")); /* only one */
        if (!line) {
            if (next_state_ref(src, src))
                fail_msg("script %s reads S.<state> but has no 'local S = {' table", s->name);
            free(src);
            continue;
        }
        with_table++;
        assert_non_null(close);
        const char *p = line + strlen("\nlocal S = {");
        int seen[MAX_STATES] = {0};
        for (;;) {
            p += strspn(p, " \t\r\n");
            if (p == close)
                break;
            /* key = 'value' */
            const char *key = p;
            size_t klen = strspn(p, "abcdefghijklmnopqrstuvwxyz_0123456789");
            p += klen;
            p += strspn(p, " \t");
            if (klen == 0 || *p != '=')
                fail_msg("script %s: malformed S entry at '%.20s'", s->name, key);
            p++;
            p += strspn(p, " \t");
            if (*p != '\'')
                fail_msg("script %s: S.%.*s is not a quoted name", s->name, (int)klen, key);
            const char *val = ++p;
            size_t vlen = strcspn(p, "'\n");
            p += vlen;
            assert_int_equal(*p, '\'');
            p++;
            if (klen != vlen || memcmp(key, val, klen) != 0)
                fail_msg("script %s: S.%.*s = '%.*s'", s->name, (int)klen, key, (int)vlen, val);
            int idx = state_index(key, klen);
            if (idx < 0)
                fail_msg("script %s: S.%.*s is not a state of the enum", s->name, (int)klen, key);
            if (seen[idx]++)
                fail_msg("script %s: S.%.*s named twice", s->name, (int)klen, key);
            p += strspn(p, " \t\r\n");
            if (*p == ',')
                p++;
            else if (p != close)
                fail_msg("script %s: malformed S table at '%.20s'", s->name, p);
        }
        for (int i = 0; i < g_count; i++)
            if (!seen[i])
                fail_msg("script %s: the S table lacks '%s'", s->name, g_names[i]);

        for (const char *q = next_state_ref(src, src); q; q = next_state_ref(src, q + 1)) {
            const char *name = q + 2;
            size_t len = strspn(name, "abcdefghijklmnopqrstuvwxyz_0123456789");
            if (len > 0 && state_index(name, len) < 0)
                fail_msg("script %s: S.%.*s is not a state", s->name, (int)len, name);
        }
        free(src);
    }
    /* the scripts that record states carry the table: at least one does */
    assert_true(with_table > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_final_states),
        cmocka_unit_test(test_lua_preludes),
    };
    return cmocka_run_group_tests(tests, load_enum, NULL);
}
