/*
 * test_metrics: consumer/metrics.c, the counters behind /metrics and their exposition
 * in the Prometheus text format 0.0.4. Checked here: the hooks count nothing before
 * metrics_init (and ignore indexes out of range); each hook's effect on its exact
 * sample line (outcomes by state, reply classes, throttles, sessions, circuit and
 * rate, reconnects); histograms whose buckets are inclusive upper bounds, cumulative,
 * with _count equal to the +Inf bucket and _sum in seconds; label values and HELP
 * texts escaped as the format says; numbers written so that they read back the same;
 * and the shape of the whole text: every family's HELP then TYPE before its samples,
 * every sample inside its family, no family twice. (promtool checks a real scrape in
 * tests/integration/test_metrics.py.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "mailroom_version.h"
#include "metrics.h"

static const char *const QUEUES[] = {"default"};
static const char *const RELAYS[] = {"127.0.0.1:25", "[::1]:2525"};

static int setup(void **state)
{
    (void)state;
    return metrics_init("host-1-ab", QUEUES, 1, RELAYS, 2);
}

static int teardown(void **state)
{
    (void)state;
    metrics_free();
    return 0;
}

/* The exposition now (the caller frees it). */
static char *render(void)
{
    buf b = BUF_INIT;
    assert_int_equal(metrics_render(&b), 0);
    if (!b.data)
        return strdup("");
    return b.data;
}

/* Asserts that the text has this exact line. */
static void assert_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return;
    }
    fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void hooks_count_nothing_before_init(void **state)
{
    (void)state;
    metrics_free();
    metrics_outcome(0, MAILROOM_STATE_SENT);
    metrics_smtp_reply(0, 250);
    metrics_send_duration(0, 10);
    metrics_queue_time(0, 0, 0, 10);
    metrics_throttled(0);
    metrics_relay_state(0, METRICS_CIRCUIT_OPEN, 1);
    metrics_redis_connected(0);
    assert_null(metrics_sessions_counter(0));
    char why[128];
    assert_int_equal(metrics_relays_usable(why, sizeof why), 1);
    char *text = render();
    assert_string_equal(text, "");
    free(text);
    /* counting starts from zero at init, whatever was called before */
    assert_int_equal(setup(NULL), 0);
    text = render();
    assert_line(text, "mailroom_jobs_total{queue=\"default\",state=\"sent\"} 0");
    assert_line(text, "mailroom_redis_reconnects_total 0");
    free(text);
}

static void init_refuses_missing_names(void **state)
{
    (void)state;
    const char *const holes[] = {"default", NULL};
    assert_int_equal(metrics_init(NULL, QUEUES, 1, RELAYS, 1), -1);
    assert_int_equal(metrics_init("c", holes, 2, RELAYS, 1), -1);
    assert_int_equal(metrics_init("c", QUEUES, -1, RELAYS, 1), -1);
    char *text = render();
    assert_string_equal(text, ""); /* nothing half made is left counting */
    free(text);
}

static void outcomes_by_queue_and_state(void **state)
{
    (void)state;
    metrics_outcome(0, MAILROOM_STATE_SENT);
    metrics_outcome(0, MAILROOM_STATE_SENT);
    metrics_outcome(0, MAILROOM_STATE_FAILED);
    metrics_outcome(0, MAILROOM_STATE_REJECTED);
    metrics_outcome(0, MAILROOM_STATE_QUEUED);  /* a deferral: not an outcome counted */
    metrics_outcome(0, MAILROOM_STATE_SENDING); /* not an outcome */
    metrics_outcome(1, MAILROOM_STATE_SENT);    /* no such queue */
    metrics_outcome(-1, MAILROOM_STATE_SENT);
    char *text = render();
    assert_line(text, "mailroom_jobs_total{queue=\"default\",state=\"sent\"} 2");
    assert_line(text, "mailroom_jobs_total{queue=\"default\",state=\"retrying\"} 0");
    assert_line(text, "mailroom_jobs_total{queue=\"default\",state=\"failed\"} 1");
    assert_line(text, "mailroom_jobs_total{queue=\"default\",state=\"rejected\"} 1");
    assert_null(strstr(text, "state=\"queued\""));
    assert_null(strstr(text, "state=\"sending\""));
    free(text);
}

static void send_duration_buckets_are_inclusive_and_cumulative(void **state)
{
    (void)state;
    metrics_send_duration(0, 5);      /* exactly the first bound, 0.005 s: in it */
    metrics_send_duration(0, 6);      /* just above: the next */
    metrics_send_duration(0, 400000); /* 400 s: beyond every bound */
    metrics_send_duration(1, 1000);   /* the other relay */
    metrics_send_duration(2, 1000);   /* no such relay */
    char *text = render();
    const char *p = "mailroom_send_duration_seconds";
    char line[160];
    snprintf(line, sizeof line, "%s_bucket{relay=\"127.0.0.1:25\",le=\"0.005\"} 1", p);
    assert_line(text, line);
    snprintf(line, sizeof line, "%s_bucket{relay=\"127.0.0.1:25\",le=\"0.01\"} 2", p);
    assert_line(text, line);
    snprintf(line, sizeof line, "%s_bucket{relay=\"127.0.0.1:25\",le=\"300\"} 2", p);
    assert_line(text, line);
    snprintf(line, sizeof line, "%s_bucket{relay=\"127.0.0.1:25\",le=\"+Inf\"} 3", p);
    assert_line(text, line);
    snprintf(line, sizeof line, "%s_count{relay=\"127.0.0.1:25\"} 3", p);
    assert_line(text, line);
    snprintf(line, sizeof line, "%s_sum{relay=\"127.0.0.1:25\"} 400.011", p);
    assert_line(text, line);
    snprintf(line, sizeof line, "%s_bucket{relay=\"[::1]:2525\",le=\"0.5\"} 0", p);
    assert_line(text, line);
    snprintf(line, sizeof line, "%s_bucket{relay=\"[::1]:2525\",le=\"1\"} 1", p);
    assert_line(text, line);
    free(text);
}

static void queue_wait_from_when_due_never_below_zero(void **state)
{
    (void)state;
    metrics_queue_time(0, 1000, 0, 1250);   /* 0.25 s: on a bound */
    metrics_queue_time(0, 500, 1000, 1400); /* send_at later than created_at: from it */
    metrics_queue_time(0, 5000, 0, 1000);   /* created after it began (clocks apart): 0 */
    char *text = render();
    assert_line(text, "mailroom_queue_wait_seconds_bucket{queue=\"default\",le=\"0.01\"} 1");
    assert_line(text, "mailroom_queue_wait_seconds_bucket{queue=\"default\",le=\"0.1\"} 1");
    assert_line(text, "mailroom_queue_wait_seconds_bucket{queue=\"default\",le=\"0.25\"} 2");
    assert_line(text, "mailroom_queue_wait_seconds_bucket{queue=\"default\",le=\"0.5\"} 3");
    assert_line(text, "mailroom_queue_wait_seconds_sum{queue=\"default\"} 0.65");
    assert_line(text, "mailroom_queue_wait_seconds_count{queue=\"default\"} 3");
    free(text);
}

static void replies_by_class(void **state)
{
    (void)state;
    static const int codes[] = {250, 251, 354, 421, 451, 550, 0, 0, 0};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        metrics_smtp_reply(0, codes[i]);
    metrics_throttled(0);
    metrics_throttled(0);
    metrics_throttled(1);
    char *text = render();
    const char *r = "mailroom_smtp_replies_total{relay=\"127.0.0.1:25\",class=";
    char line[160];
    static const char *const want[] = {"\"2xx\"} 2", "\"3xx\"} 1", "\"4xx\"} 2", "\"5xx\"} 1",
                                       "\"none\"} 3"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(line, sizeof line, "%s%s", r, want[i]);
        assert_line(text, line);
    }
    assert_line(text, "mailroom_smtp_throttled_total{relay=\"127.0.0.1:25\"} 2");
    assert_line(text, "mailroom_smtp_throttled_total{relay=\"[::1]:2525\"} 1");
    free(text);
}

static void sessions_circuit_and_rate(void **state)
{
    (void)state;
    atomic_int *open = metrics_sessions_counter(1);
    assert_non_null(open);
    assert_null(metrics_sessions_counter(2));
    atomic_fetch_add(open, 3);
    atomic_fetch_sub(open, 1);
    metrics_relay_state(0, METRICS_CIRCUIT_OPEN, 2.5);
    metrics_relay_state(1, METRICS_CIRCUIT_HALF_OPEN, 0);
    char *text = render();
    assert_line(text, "mailroom_smtp_sessions{relay=\"[::1]:2525\"} 2");
    assert_line(text, "mailroom_smtp_sessions{relay=\"127.0.0.1:25\"} 0");
    assert_line(text, "mailroom_relay_circuit_state{relay=\"127.0.0.1:25\",state=\"open\"} 1");
    assert_line(text, "mailroom_relay_circuit_state{relay=\"127.0.0.1:25\",state=\"closed\"} 0");
    assert_line(text, "mailroom_relay_circuit_state{relay=\"[::1]:2525\",state=\"half-open\"} 1");
    assert_line(text, "mailroom_relay_rate_limit_messages_per_second{relay=\"127.0.0.1:25\"} 2.5");
    assert_line(text, "mailroom_relay_rate_limit_messages_per_second{relay=\"[::1]:2525\"} 0");
    free(text);
}

static void ready_while_some_circuit_is_not_open(void **state)
{
    (void)state;
    char why[128];
    assert_int_equal(metrics_relays_usable(why, sizeof why), 1);
    metrics_relay_state(0, METRICS_CIRCUIT_OPEN, 0);
    assert_int_equal(metrics_relays_usable(why, sizeof why), 1); /* the fallback is closed */
    metrics_relay_state(1, METRICS_CIRCUIT_OPEN, 0);
    assert_int_equal(metrics_relays_usable(why, sizeof why), 0);
    assert_string_equal(why, "every relay's circuit is open: 127.0.0.1:25 [::1]:2525");
    char small[8];
    assert_int_equal(metrics_relays_usable(small, sizeof small), 0);
    assert_int_equal(strlen(small), sizeof small - 1);    /* cut, terminated */
    metrics_relay_state(1, METRICS_CIRCUIT_HALF_OPEN, 0); /* a probe may go */
    assert_int_equal(metrics_relays_usable(why, sizeof why), 1);
}

static void reconnects_are_connections_after_the_first(void **state)
{
    (void)state;
    metrics_redis_connected(0);
    metrics_redis_connected(0);
    metrics_redis_connected(0); /* worker 0: two reconnects */
    metrics_redis_connected(1); /* worker 1: its first */
    metrics_redis_connected(METRICS_HOUSEKEEPER);
    metrics_redis_connected(METRICS_HOUSEKEEPER); /* one */
    metrics_redis_connected(METRICS_EXPORTER);    /* its first */
    metrics_redis_connected(-3);                  /* nobody's: ignored */
    metrics_redis_connected(-3);
    metrics_redis_connected(1 << 20);
    metrics_redis_connected(1 << 20);
    char *text = render();
    assert_line(text, "mailroom_redis_reconnects_total 3");
    free(text);
}

static void info_and_start_time(void **state)
{
    (void)state;
    char *text = render();
    char line[160];
    snprintf(line, sizeof line, "mailroom_build_info{version=\"%s\"} 1", MAILROOM_VERSION_STRING);
    assert_line(text, line);
    assert_line(text, "mailroom_consumer_info{consumer=\"host-1-ab\"} 1");
    const char *p = strstr(text, "\nprocess_start_time_seconds ");
    assert_non_null(p);
    double started = strtod(p + strlen("\nprocess_start_time_seconds "), NULL);
    double now = (double)clock_now_ms() / 1000.0;
    assert_true(started <= now && started > now - 60);
    free(text);
}

static void label_values_and_help_are_escaped(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    metrics_label l[2] = {{"a", "x\"y\\z\nw"}, {"b", "中文 é"}};
    assert_int_equal(metrics_family(&b, "m", "gauge", "says \"hi\" \\ then\nmore"), 0);
    assert_int_equal(metrics_sample(&b, "m", l, 2, 1.5), 0);
    assert_int_equal(metrics_sample(&b, "n", NULL, 0, 7), 0);
    assert_string_equal(b.data, "# HELP m says \"hi\" \\\\ then\\nmore\n"
                                "# TYPE m gauge\n"
                                "m{a=\"x\\\"y\\\\z\\nw\",b=\"中文 é\"} 1.5\n"
                                "n 7\n");
    buf_free(&b);
}

static void numbers_read_back_the_same(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } cases[] = {{0, "0"},
                 {1, "1"},
                 {-3, "-3"},
                 {0.1, "0.1"},
                 {2.5, "2.5"},
                 {400.011, "400.011"},
                 {1e20, "1e+20"},
                 {1.5e-7, "1.5e-07"},
                 {123456789012, "123456789012"}};
    char out[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        metrics_number(cases[i].v, out);
        assert_string_equal(out, cases[i].text);
    }
    metrics_number(NAN, out);
    assert_string_equal(out, "NaN");
    metrics_number(INFINITY, out);
    assert_string_equal(out, "+Inf");
    metrics_number(-INFINITY, out);
    assert_string_equal(out, "-Inf");
    double awkward[] = {0.1 + 0.2, 1.0 / 3.0, 1e300, 5e-324, 9007199254740993.0};
    for (size_t i = 0; i < sizeof awkward / sizeof awkward[0]; i++) {
        metrics_number(awkward[i], out);
        assert_true(strtod(out, NULL) == awkward[i]);
    }
}

/* The family a sample line belongs to: its name, less a histogram's suffix when the
 * family is a histogram. */
static void family_of(const char *sample, const char *family, const char *type, char *out,
                      size_t cap)
{
    size_t n = strcspn(sample, "{ ");
    snprintf(out, cap, "%.*s", (int)n, sample);
    if (strcmp(type, "histogram") != 0)
        return;
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        size_t s = strlen(suffixes[i]);
        if (n > s && strcmp(out + n - s, suffixes[i]) == 0 && strlen(family) == n - s &&
            strncmp(out, family, n - s) == 0)
            out[n - s] = '\0';
    }
}

static void every_sample_sits_in_its_family(void **state)
{
    (void)state;
    metrics_outcome(0, MAILROOM_STATE_SENT);
    metrics_send_duration(0, 12);
    char *text = render();
    char family[96] = "", type[16] = "", help_of[96] = "", seen[4096] = " ";
    int samples = 0, families = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char name[96];
        if (sscanf(line, "# HELP %95s", name) == 1) {
            snprintf(help_of, sizeof help_of, "%s", name);
        } else if (sscanf(line, "# TYPE %95s %15s", name, type) == 2) {
            assert_string_equal(name, help_of); /* HELP right before TYPE */
            char key[100];
            snprintf(key, sizeof key, " %s ", name);
            assert_null(strstr(seen, key)); /* no family twice */
            strncat(seen, key + 1, sizeof seen - strlen(seen) - 1);
            snprintf(family, sizeof family, "%s", name);
            families++;
        } else {
            assert_true(line[0] != '#');
            char of[96];
            family_of(line, family, type, of, sizeof of);
            assert_string_equal(of, family);
            samples++;
        }
    }
    assert_true(families >= 12);
    assert_true(samples > families);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(hooks_count_nothing_before_init, setup, teardown),
        cmocka_unit_test_setup_teardown(init_refuses_missing_names, setup, teardown),
        cmocka_unit_test_setup_teardown(outcomes_by_queue_and_state, setup, teardown),
        cmocka_unit_test_setup_teardown(send_duration_buckets_are_inclusive_and_cumulative, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(queue_wait_from_when_due_never_below_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(replies_by_class, setup, teardown),
        cmocka_unit_test_setup_teardown(sessions_circuit_and_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(ready_while_some_circuit_is_not_open, setup, teardown),
        cmocka_unit_test_setup_teardown(reconnects_are_connections_after_the_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(info_and_start_time, setup, teardown),
        cmocka_unit_test(label_values_and_help_are_escaped),
        cmocka_unit_test(numbers_read_back_the_same),
        cmocka_unit_test_setup_teardown(every_sample_sits_in_its_family, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
