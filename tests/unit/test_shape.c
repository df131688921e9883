/*
 * test_shape: consumer/shape.c, the per-domain shape of the oldest pending jobs that
 * the exporter publishes (mailroom_queue_domain_*). Checked: a job counts once per
 * distinct domain among its to, cc and bcc; domains are compared in their envelope
 * form, lower case (U-labels and A-labels of one IDN domain are one domain); a domain's
 * oldest job is the first of the sample that has it, and its due time is its send_at
 * when later than its created_at; entries that are not valid jobs (garbage, the ''
 * Redis gives for an oversized entry) are counted as sampled and otherwise ignored;
 * only the ten domains with the most jobs are kept, ties going to the older; and a
 * sample that would give more (domain, job) pairs than the bound is cut, not overrun.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "shape.h"

#define MAX_JOBS 200

/* A sample under construction: raw jobs, oldest first. */
typedef struct sample {
    char *raw[MAX_JOBS];
    size_t len[MAX_JOBS];
    size_t n;
} sample;

static json_object *strings(const char *const *v)
{
    json_object *a = json_object_new_array();
    for (; v && *v; v++)
        json_object_array_add(a, json_object_new_string(*v));
    return a;
}

/* Adds a valid job (to, cc, bcc: NULL-terminated lists; send_at may be NULL). */
static void add_job(sample *s, const char *created, const char *send_at, const char *const *to,
                    const char *const *cc, const char *const *bcc)
{
    char id[32];
    snprintf(id, sizeof id, "job-%zu", s->n);
    json_object *j = json_object_new_object();
    json_object_object_add(j, "v", json_object_new_string("1"));
    json_object_object_add(j, "id", json_object_new_string(id));
    json_object_object_add(j, "to", strings(to));
    if (cc)
        json_object_object_add(j, "cc", strings(cc));
    if (bcc)
        json_object_object_add(j, "bcc", strings(bcc));
    json_object_object_add(j, "from", json_object_new_string("noreply@example.com"));
    json_object_object_add(j, "subject", json_object_new_string("Hello"));
    json_object_object_add(j, "text", json_object_new_string("Hello there."));
    json_object_object_add(j, "created_at", json_object_new_string(created));
    if (send_at)
        json_object_object_add(j, "send_at", json_object_new_string(send_at));
    json_object_object_add(j, "kid", json_object_new_string("default"));
    json_object_object_add(j, "alg", json_object_new_string("hmac-sha1"));
    json_object_object_add(j, "sig",
                           json_object_new_string("0000000000000000000000000000000000000000"));
    s->raw[s->n] = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
    s->len[s->n] = strlen(s->raw[s->n]);
    s->n++;
    json_object_put(j);
}

/* Adds an entry that is not a valid job. */
static void add_raw(sample *s, const char *raw)
{
    s->raw[s->n] = strdup(raw);
    s->len[s->n] = strlen(raw);
    s->n++;
}

static void read_sample(sample *s, shape *out)
{
    assert_int_equal(shape_read((const char *const *)s->raw, s->len, s->n, out), 0);
    for (size_t i = 0; i < s->n; i++)
        free(s->raw[i]);
    s->n = 0;
}

static int64_t ms(const char *iso)
{
    int64_t v = 0;
    assert_int_equal(clock_parse_rfc3339(iso, &v), 0);
    return v;
}

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})

static void domains_count_jobs_once_in_envelope_form(void **state)
{
    (void)state;
    sample s = {0};
    add_raw(&s, "not a job at all");
    add_job(&s, "2026-01-01T00:00:00Z", NULL, LIST("a@Example.COM", "Ann <b@example.com>"),
            LIST("c@other.example"), NULL);
    add_raw(&s, ""); /* an entry over the size limit, as Redis gives it */
    add_job(&s, "2026-01-01T00:01:00Z", NULL, LIST("x@example.com"), NULL, LIST("y@bücher.de"));
    add_job(&s, "2026-01-01T00:02:00Z", "2026-01-01T00:00:30Z", LIST("z@xn--bcher-kva.de"), NULL,
            NULL);
    add_raw(&s, "{\"v\":\"1\"}");
    shape sh;
    read_sample(&s, &sh);
    assert_int_equal(sh.sampled, 6);
    assert_int_equal(sh.oldest_due_ms, ms("2026-01-01T00:00:00Z"));
    assert_int_equal(sh.n_domains, 3);
    assert_string_equal(sh.domains[0].name, "example.com");
    assert_int_equal(sh.domains[0].jobs, 2);
    assert_int_equal(sh.domains[0].oldest_due_ms, ms("2026-01-01T00:00:00Z"));
    assert_string_equal(sh.domains[1].name, "xn--bcher-kva.de");
    assert_int_equal(sh.domains[1].jobs, 2);
    assert_int_equal(sh.domains[1].oldest_due_ms, ms("2026-01-01T00:01:00Z"));
    assert_string_equal(sh.domains[2].name, "other.example");
    assert_int_equal(sh.domains[2].jobs, 1);
}

static void a_later_send_at_is_the_due_time(void **state)
{
    (void)state;
    sample s = {0};
    add_job(&s, "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", LIST("a@example.com"), NULL, NULL);
    add_job(&s, "2026-01-01T00:10:00Z", NULL, LIST("b@example.org"), NULL, NULL);
    shape sh;
    read_sample(&s, &sh);
    assert_int_equal(sh.oldest_due_ms, ms("2026-01-01T01:00:00Z")); /* the oldest job's */
    assert_int_equal(sh.n_domains, 2);
    assert_string_equal(sh.domains[0].name, "example.com"); /* a tie: the older first */
    assert_int_equal(sh.domains[0].oldest_due_ms, ms("2026-01-01T01:00:00Z"));
    assert_string_equal(sh.domains[1].name, "example.org");
}

static void only_the_top_ten(void **state)
{
    (void)state;
    sample s = {0};
    /* domain dN.example gets N jobs, d1 first (the oldest), d12 last */
    for (int n = 1; n <= 12; n++) {
        for (int k = 0; k < n; k++) {
            char to[64];
            snprintf(to, sizeof to, "u%d@d%d.example", k, n);
            add_job(&s, "2026-01-01T00:00:00Z", NULL, LIST(to), NULL, NULL);
        }
    }
    shape sh;
    read_sample(&s, &sh);
    assert_int_equal(sh.sampled, 78);
    assert_int_equal(sh.n_domains, SHAPE_TOP);
    for (int i = 0; i < SHAPE_TOP; i++) {
        char want[32];
        snprintf(want, sizeof want, "d%d.example", 12 - i);
        assert_string_equal(sh.domains[i].name, want);
        assert_int_equal(sh.domains[i].jobs, 12 - i);
    }
}

static void nothing_valid(void **state)
{
    (void)state;
    sample s = {0};
    add_raw(&s, "[]");
    add_raw(&s, "");
    shape sh;
    read_sample(&s, &sh);
    assert_int_equal(sh.sampled, 2);
    assert_int_equal(sh.oldest_due_ms, 0);
    assert_int_equal(sh.n_domains, 0);
    read_sample(&s, &sh); /* and an empty sample */
    assert_int_equal(sh.sampled, 0);
    assert_int_equal(sh.n_domains, 0);
}

static void the_pairs_are_bounded(void **state)
{
    (void)state;
    sample s = {0};
    /* 150 jobs of 100 recipients, each at a domain of its own: 15 000 pairs */
    for (int j = 0; j < 150; j++) {
        char addresses[100][48];
        const char *to[101];
        for (int k = 0; k < 100; k++) {
            snprintf(addresses[k], sizeof addresses[k], "u@j%d-k%d.example", j, k);
            to[k] = addresses[k];
        }
        to[100] = NULL;
        add_job(&s, "2026-01-01T00:00:00Z", NULL, to, NULL, NULL);
    }
    shape sh;
    read_sample(&s, &sh);
    assert_int_equal(sh.sampled, 150);
    assert_int_equal(sh.n_domains, SHAPE_TOP);
    assert_int_equal(sh.domains[0].jobs, 1);
    assert_string_equal(sh.domains[0].name, "j0-k0.example"); /* the oldest first */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(domains_count_jobs_once_in_envelope_form),
        cmocka_unit_test(a_later_send_at_is_the_due_time),
        cmocka_unit_test(only_the_top_ten),
        cmocka_unit_test(nothing_valid),
        cmocka_unit_test(the_pairs_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
