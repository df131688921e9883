#!/usr/bin/python3
"""Integration tests of the consumer's HTTP endpoint (--http): /metrics, /healthz and
/readyz, against a real redis-server, real SMTP receivers and a real Prometheus
(Debian's `prometheus`, on a free loopback port with a temp dir, scraping every
second).

- a scrape counts what happened (outcomes, reply classes, attempts, waits, sessions)
  and passes `promtool check metrics`; the endpoint answers GET and HEAD only;
- the queue-level figures (pending, processing, dead, the age of the oldest pending
  job, the per-domain shape of the oldest pending jobs) are exported by exactly one
  consumer per queue, the holder of mailroom:{Q}:exporter, and another takes over when
  it stops or dies;
- /readyz is 503 while Redis is down and 200 once it is back, and the consumer logs
  "ready" only once Redis has answered;
- Prometheus scraping two consumers of one queue reads the sent count and a non-zero
  latency while a backlog exists, the queue's series from one consumer only, and
  evaluates deploy/prometheus/mailroom-rules.yml without error;
- the consumer role of docs/security.md's Redis ACLs is enough for the exporter.

Run: MAILROOM_BIN_DIR=<build>/bin /usr/bin/python3 tests/integration/test_metrics.py [-v]
"""

import os
import re
import secrets
import shlex
import socket
import sys
import time
import unittest

import redis

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import mailroom_env  # noqa: E402
from support.jobs import job_json, make_job, new_secret, new_ulid, push_jobs, sign_job  # noqa: E402
from support.paths import LOOPBACK, REPO_ROOT  # noqa: E402
from support.procs import free_port, wait_for  # noqa: E402
from support.prometheus import Prometheus, prometheus_missing, promtool, samples, scrape  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402
from support.state import Keys  # noqa: E402

SECRET = new_secret()
Q = Keys("default")
RULES = REPO_ROOT / "deploy" / "prometheus" / "mailroom-rules.yml"
QUEUE = 'queue="default"'


def iso_ago(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds))


def signed(created_ago: float, to, **extra) -> tuple:
    """(id, raw) of a signed job made created_ago seconds ago."""
    job = sign_job(make_job(new_ulid(), to=to, created_at=iso_ago(created_ago), **extra), SECRET)
    return job["id"], job_json(job)


class HttpCase(ServerTestCase):
    """Consumers with --http on free ports, and their scrapes."""

    def http_consumer(self, env, consumer_id, *args):
        port = free_port()
        c = self.start_consumer(env, "--http", f"{LOOPBACK}:{port}", "--id", consumer_id,
                                "--shutdown-timeout", "2s", *args)
        c.port = port
        c.consumer_id = consumer_id
        return c

    def get(self, c, path, **kw):
        return scrape(f"http://{LOOPBACK}:{c.port}{path}", **kw)

    def metrics(self, c) -> str:
        status, headers, body = self.get(c, "/metrics")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        return body

    def value(self, c, name, labels=QUEUE):
        """The sample of name{labels} in a scrape of c, or None."""
        return samples(self.metrics(c), name).get(labels)

    def wait_value(self, c, name, predicate, labels=QUEUE, timeout=15.0):
        last = []

        def holds():
            if not c.alive():
                raise AssertionError(f"the consumer exited:\n{c.log_tail()}")
            try:
                last[:] = [self.value(c, name, labels)]
            except OSError:  # not listening yet
                return False
            return last[0] is not None and predicate(last[0])

        wait_for(holds, timeout, 0.2, f"{name}{{{labels}}} (last {last})")
        return last[0]

    def wait_ready(self, c, timeout=15.0):
        def ready():
            if not c.alive():
                raise AssertionError(f"the consumer exited:\n{c.log_tail()}")
            try:
                return self.get(c, "/readyz", timeout=1.0)[0] == 200
            except OSError:
                return False
        wait_for(ready, timeout, 0.1, f"/readyz of {c.consumer_id}")


class MetricsEndpointTest(HttpCase):

    def test_scrape_counts_what_happened_and_passes_promtool(self):
        rs = self.redis()
        rx = self.receiver(rcpt_refusals={"nobody@example.com": ["550 5.1.1 No such user"]})
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        c = self.http_consumer(env, "metrics-1", "--concurrency", "2")
        self.wait_ready(c)
        sent = [self.send(env, to=f"user{i}@example.com") for i in range(3)]
        refused = self.send(env, to="nobody@example.com")
        r = rs.client()
        for job_id in sent:
            self.wait_state(r, job_id, "sent")
        self.wait_state(r, refused, "failed")
        self.wait_value(c, "mailroom_jobs_total", lambda v: v == 3, f'{QUEUE},state="sent"')
        self.wait_value(c, "mailroom_queue_dead", lambda v: v == 1)
        text = self.metrics(c)

        rc, out, err = promtool("check", "metrics", input=text)
        self.assertEqual((rc, out, err), (0, "", ""), "promtool check metrics")

        relay = f'relay="127.0.0.1:{rx.port}"'
        jobs = samples(text, "mailroom_jobs_total")
        self.assertEqual(jobs[f'{QUEUE},state="failed"'], 1)
        self.assertEqual(jobs[f'{QUEUE},state="rejected"'], 0)
        self.assertEqual(jobs[f'{QUEUE},state="retrying"'], 0)
        replies = samples(text, "mailroom_smtp_replies_total")
        self.assertEqual(replies[f'{relay},class="2xx"'], 3)
        self.assertEqual(replies[f'{relay},class="5xx"'], 1)
        self.assertEqual(replies[f'{relay},class="4xx"'], 0)
        self.assertEqual(samples(text, "mailroom_send_duration_seconds_count")[relay], 4)
        self.assertEqual(samples(text, "mailroom_queue_wait_seconds_count")[QUEUE], 4)
        # warm connections stay open between messages: one or two workers hold one each
        self.assertIn(samples(text, "mailroom_smtp_sessions")[relay], (1, 2))
        self.assertEqual(samples(text, "mailroom_relay_circuit_state")[f'{relay},state="closed"'], 1)
        self.assertEqual(samples(text, "mailroom_consumer_info"), {'consumer="metrics-1"': 1})
        self.assertEqual(samples(text, "mailroom_ready"), {"": 1})
        # the queue, read from Redis by its exporter (this consumer, the only one)
        self.assertEqual(samples(text, "mailroom_queue_exporter"), {QUEUE: 1})
        self.assertEqual(samples(text, "mailroom_queue_pending"), {QUEUE: 0})
        self.assertEqual(samples(text, "mailroom_queue_processing"), {QUEUE: 0})
        self.assertEqual(samples(text, "mailroom_queue_consumers"), {QUEUE: 1})
        self.assertEqual(samples(text, "mailroom_queue_oldest_pending_age_seconds"), {QUEUE: 0})

    def test_endpoints_answer_get_and_head_only(self):
        rs = self.redis()
        env = mailroom_env(rs, secret=SECRET, smtp="smtp://127.0.0.1:9")
        c = self.http_consumer(env, "methods-1")
        self.wait_ready(c)
        self.assertEqual(self.get(c, "/healthz")[::2], (200, "ok\n"))
        self.assertEqual(self.get(c, "/readyz")[::2], (200, "ready\n"))
        status, headers, body = self.get(c, "/metrics", method="HEAD")
        self.assertEqual((status, body), (200, ""))
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        status, headers, body = self.get(c, "/metrics", method="POST")
        self.assertEqual(status, 405)
        self.assertEqual(headers.get("allow"), "GET, HEAD")
        self.assertEqual(self.get(c, "/nothing-here")[0], 404)
        self.assertEqual(self.get(c, "/metrics/")[0], 404)
        self.assertTrue(c.alive())

    def test_a_bad_or_taken_address_stops_the_consumer_with_a_reason(self):
        env = mailroom_env(secret=SECRET, redis_url=f"redis://127.0.0.1:{free_port()}/0",
                           smtp="smtp://127.0.0.1:9")
        for bad in ("nonsense", "::1:9780", "127.0.0.1:0", "example.com:9780"):
            c = self.start_consumer(env, "--http", bad)
            wait_for(lambda: not c.alive(), 10, message=f"--http {bad} refused")
            self.assertEqual(c.stop(), 78, c.log())
            self.assertIn("--http takes PORT", c.log())
        with socket.socket() as taken:
            taken.bind((LOOPBACK, 0))
            taken.listen(1)
            c = self.start_consumer(env, "--http", f"{LOOPBACK}:{taken.getsockname()[1]}")
            wait_for(lambda: not c.alive(), 10, message="--http on a port in use refused")
            self.assertEqual(c.stop(), 1, c.log())
            self.assertIn("cannot listen there", c.log())
        c = self.start_consumer(mailroom_env(secret=SECRET, smtp="smtp://127.0.0.1:9",
                                             redis_url="redis://127.0.0.1:1/0",
                                             MAILROOM_HTTP="not a port"))
        wait_for(lambda: not c.alive(), 10, message="MAILROOM_HTTP refused")
        self.assertEqual(c.stop(), 78, c.log())


class QueueFiguresTest(HttpCase):

    def test_oldest_pending_age_and_the_shape_by_domain(self):
        """Five jobs made 400, 300, 200, 100 and 50 s ago; the consumer holds the first
        at RCPT (the receiver sits on it), so the other four are pending: the latency is
        the second job's age, and the shape counts each job once per domain."""
        rs = self.redis()
        r = rs.client()
        rx = self.receiver(rcpt_delay=60)
        jobs = [signed(400, ["z@z.example"]),
                signed(300, ["x@a.example"]),
                signed(200, ["y@a.example", "w@B.Example", "w2@b.example"]),
                signed(100, ["Ann <v@A.EXAMPLE>"], cc=["q@c.example"]),
                signed(50, ["u@b.example"])]
        push_jobs(r, jobs)
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        c = self.http_consumer(env, "shape-1", "--concurrency", "1")
        rx.wait_for_rcpt(1, timeout=15)
        self.wait_value(c, "mailroom_queue_sampled_jobs", lambda v: v == 4)
        text = self.metrics(c)
        self.assertEqual(samples(text, "mailroom_queue_pending"), {QUEUE: 4})
        self.assertEqual(samples(text, "mailroom_queue_processing"), {QUEUE: 1})
        age = samples(text, "mailroom_queue_oldest_pending_age_seconds")[QUEUE]
        self.assertTrue(300 <= age < 340, age)
        counts = samples(text, "mailroom_queue_domain_pending")
        self.assertEqual(counts, {f'{QUEUE},domain="a.example"': 3,
                                  f'{QUEUE},domain="b.example"': 2,
                                  f'{QUEUE},domain="c.example"': 1})
        ages = samples(text, "mailroom_queue_domain_oldest_age_seconds")
        for domain, made in (("a.example", 300), ("b.example", 200), ("c.example", 100)):
            got = ages[f'{QUEUE},domain="{domain}"']
            self.assertTrue(made <= got < made + 40, (domain, got))
        rc, out, err = promtool("check", "metrics", input=text)
        self.assertEqual((rc, out, err), (0, "", ""), "promtool check metrics")

    def test_the_shape_keeps_the_top_ten_domains(self):
        rs = self.redis()
        r = rs.client()
        rx = self.receiver(rcpt_delay=60)
        jobs = [signed(60, ["z@blocker.example"])]
        # domain dN gets N jobs (d1 .. d12): the top ten are d3 .. d12
        for n in range(1, 13):
            jobs += [signed(30, [f"u{k}@d{n}.example"]) for k in range(n)]
        push_jobs(r, jobs)
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        c = self.http_consumer(env, "shape-2", "--concurrency", "1")
        rx.wait_for_rcpt(1, timeout=15)
        self.wait_value(c, "mailroom_queue_sampled_jobs", lambda v: v == 78)
        counts = samples(self.metrics(c), "mailroom_queue_domain_pending")
        self.assertEqual(counts, {f'{QUEUE},domain="d{n}.example"': n for n in range(3, 13)})


class ExporterTest(HttpCase):

    def exporters(self, consumers):
        """The consumers whose scrape shows them exporting the queue; checks that the
        others show no queue figure at all."""
        out = []
        for c in consumers:
            text = self.metrics(c)
            if samples(text, "mailroom_queue_exporter").get(QUEUE) == 1:
                out.append(c)
            else:
                self.assertEqual(samples(text, "mailroom_queue_pending"), {}, c.consumer_id)
                self.assertNotIn("mailroom_queue_oldest_pending_age_seconds", text)
        return out

    def two_consumers(self):
        rs = self.redis()
        env = mailroom_env(rs, secret=SECRET, smtp="smtp://127.0.0.1:9")
        consumers = [self.http_consumer(env, f"exp-{i}") for i in (1, 2)]
        for c in consumers:
            self.wait_ready(c)
        wait_for(lambda: len(self.exporters(consumers)) == 1, 15, 0.2, "one exporter")
        for _ in range(5):  # and it stays one
            time.sleep(0.5)
            self.assertEqual(len(self.exporters(consumers)), 1)
        return rs.client(), consumers

    def test_one_exporter_and_a_takeover_when_it_stops(self):
        r, consumers = self.two_consumers()
        first = self.exporters(consumers)[0]
        other = consumers[1] if first is consumers[0] else consumers[0]
        self.assertEqual(r.get(Q.exporter), first.consumer_id)
        self.assertEqual(first.stop(), 0)
        # it gave the lease up: the other one takes it at its next refresh (5 s)
        wait_for(lambda: self.exporters([other]) == [other], 10, 0.2, "the takeover")
        self.assertEqual(r.get(Q.exporter), other.consumer_id)

    def test_a_takeover_when_the_exporter_dies(self):
        r, consumers = self.two_consumers()
        first = self.exporters(consumers)[0]
        other = consumers[1] if first is consumers[0] else consumers[0]
        ttl = r.pttl(Q.exporter)
        self.assertTrue(0 < ttl <= 15000, ttl)
        first.kill()
        # the lease runs out (15 s at most) and the other takes it at a refresh (5 s)
        wait_for(lambda: self.exporters([other]) == [other], 25, 0.5, "the takeover")
        self.assertEqual(r.get(Q.exporter), other.consumer_id)


class ReadinessTest(HttpCase):

    def test_readyz_follows_redis(self):
        rs = self.redis()
        env = mailroom_env(rs, secret=SECRET, smtp="smtp://127.0.0.1:9")
        c = self.http_consumer(env, "ready-1", "--concurrency", "2")
        self.wait_ready(c)
        self.assertEqual(self.value(c, "mailroom_redis_reconnects_total", ""), 0)
        rs.shutdown()

        def not_ready():
            status, _, body = self.get(c, "/readyz")
            return status == 503 and body
        body = wait_for(not_ready, 15, 0.2, "/readyz 503 without Redis")
        self.assertRegex(body, r"^not ready: Redis unreachable: the last heartbeat succeeded \d+ s ago\n$")
        self.assertEqual(self.get(c, "/healthz")[0], 200)  # alive all the same
        self.assertEqual(self.value(c, "mailroom_ready", ""), 0)
        # figures that can no longer be refreshed are not exported (another consumer may
        # export the queue by then)
        self.wait_value(c, "mailroom_queue_exporter", lambda v: v == 0, timeout=20)
        self.assertNotIn("mailroom_queue_pending", self.metrics(c))

        rs.start()
        self.wait_ready(c, timeout=15)
        self.assertEqual(self.value(c, "mailroom_ready", ""), 1)
        self.wait_value(c, "mailroom_queue_exporter", lambda v: v == 1, timeout=15)
        self.assertGreaterEqual(self.value(c, "mailroom_redis_reconnects_total", ""), 2)

    def test_ready_is_logged_only_once_redis_answers(self):
        rs = RedisServer()  # its port, not started yet
        self.stack.callback(rs.cleanup)
        env = mailroom_env(rs, secret=SECRET, smtp="smtp://127.0.0.1:9")
        c = self.http_consumer(env, "ready-2")
        wait_for(lambda: "http: serving" in c.log(), 10, message="the endpoint to start")
        time.sleep(3)
        self.assertTrue(c.alive(), c.log())
        self.assertNotIn("ready:", c.log())
        status, _, body = self.get(c, "/readyz")
        self.assertEqual((status, body),
                         (503, "not ready: Redis not reached yet: no heartbeat has succeeded\n"))
        rs.start()
        wait_for(lambda: "ready:" in c.log(), 15, message="the ready line")
        self.assertEqual(c.log().count("ready:"), 1)
        self.wait_ready(c)


class AclTest(HttpCase):

    @staticmethod
    def documented_acl(passwords: dict) -> list:
        """The ACL SETUSER lines of docs/security.md's ACL block, placeholders replaced
        (tests/integration/test_security.py applies the same block)."""
        text = (REPO_ROOT / "docs" / "security.md").read_text(encoding="utf-8")
        block = re.search(r"<!-- acl-rules:[^>]*-->\s*```[^\n]*\n(.*?)```", text, re.S).group(1)
        out = []
        for line in filter(None, (x.strip() for x in block.splitlines())):
            for name, pw in passwords.items():
                line = line.replace(name, pw)
            out.append(shlex.split(line))
        return out

    def test_the_documented_consumer_role_is_enough_to_export(self):
        rs = self.redis()
        admin = rs.client()
        pw = secrets.token_hex(16)
        for cmd in self.documented_acl({"PRODUCER_PASSWORD": secrets.token_hex(16),
                                        "CONSUMER_PASSWORD": pw}):
            admin.execute_command(*cmd)
        pw_file = os.path.join(self.tmpdir(), "redis-password")
        with open(pw_file, "w", encoding="utf-8") as f:
            f.write(pw + "\n")
        push_jobs(admin, [signed(30, ["a@example.com"]), signed(20, ["b@example.com"])])
        rx = self.receiver(refuse_first=100)  # 451 to every message: retried in an hour
        env = mailroom_env(redis_url=f"redis://mailroom-consumer:@127.0.0.1:{rs.port}/0",
                           secret=SECRET, smtp=rx, MAILROOM_REDIS_PASSWORD_FILE=pw_file)
        c = self.http_consumer(env, "acl-1", "--concurrency", "1", "--backoff-base", "1h")
        self.wait_value(c, "mailroom_queue_exporter", lambda v: v == 1)
        self.wait_value(c, "mailroom_queue_scheduled", lambda v: v == 2)  # relay refused both
        self.assertEqual(admin.get(Q.exporter), "acl-1")
        self.assertEqual(c.stop(), 0)
        self.assertEqual(admin.exists(Q.exporter), 0, "the lease was not given up")
        self.assertNotRegex(c.log(), r"(?i)noperm|no permissions|unexpected reply")
        cons = redis.Redis(host=LOOPBACK, port=rs.port, username="mailroom-consumer",
                           password=pw, decode_responses=True)
        self.addCleanup(cons.close)
        for key in (Q.pending, Q.stats, "app:secret"):  # SET on the lease only
            with self.assertRaises(redis.exceptions.NoPermissionError):
                cons.set(key, "x")


class PrometheusTest(HttpCase):

    def setUp(self):
        super().setUp()
        missing = prometheus_missing()
        if missing:
            self.fail("not installed (Debian package prometheus): " + ", ".join(missing))

    def test_prometheus_scrapes_two_consumers_of_one_queue(self):
        rs = self.redis()
        r = rs.client()
        rx = self.receiver(data_delay=2.0)  # slow: a backlog builds
        jobs = [signed(120, [f"user{i}@example.com"]) for i in range(30)]
        push_jobs(r, jobs)
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        ports = [free_port(), free_port()]
        prom = self.stack.enter_context(
            Prometheus([f"{LOOPBACK}:{p}" for p in ports], rule_files=[RULES]))
        consumers = []
        for i, port in enumerate(ports):
            c = self.start_consumer(env, "--http", f"{LOOPBACK}:{port}", "--id", f"prom-{i}",
                                    "--concurrency", "1", "--shutdown-timeout", "2s")
            consumers.append(c)
        prom.wait_value('sum(up{job="mailroom"})', lambda v: v == 2, timeout=30)

        # the latency, while the backlog lasts: the jobs were made 120 s ago
        age = prom.wait_value('max(mailroom_queue_oldest_pending_age_seconds{queue="default"})',
                              lambda v: v > 0, timeout=30)
        self.assertTrue(110 < age < 300, age)
        self.assertGreater(prom.value('sum(mailroom_queue_pending{queue="default"})'), 0)
        exported = prom.query('mailroom_queue_pending{queue="default"}')
        self.assertEqual(len(exported), 1, exported)
        instance = exported[0][0]["instance"]
        holder = prom.query(f'mailroom_consumer_info{{instance="{instance}"}}')[0][0]["consumer"]
        self.assertEqual(r.get(Q.exporter), holder)

        # the backlog drains; the count sums both consumers
        rx.data_delay = 0
        rx.wait_for_count(30, timeout=60)
        prom.wait_value('sum(mailroom_jobs_total{queue="default",state="sent"})',
                        lambda v: v == 30, timeout=30)
        by_consumer = prom.query('sum by (instance) (mailroom_jobs_total{queue="default",state="sent"})')
        self.assertEqual(len(by_consumer), 2)
        self.assertEqual(sum(v for _, v in by_consumer), 30)
        prom.wait_value('max(mailroom_queue_oldest_pending_age_seconds{queue="default"})',
                        lambda v: v == 0, timeout=30)
        # over the whole run, the queue's series came from one consumer only
        self.assertEqual(prom.value(
            'count(count by (instance) (count_over_time(mailroom_queue_pending[10m])))'), 1)

        # the alert rules, evaluated by this Prometheus without an error
        def evaluated():
            rules = prom.rules()
            return rules if rules and all(x["health"] == "ok" for x in rules) else None
        rules = wait_for(evaluated, 15, 0.5, "the rules evaluated")
        self.assertIn("MailroomQueueLatencyHigh", {x["name"] for x in rules})
        self.assertEqual({x["name"] for x in rules if x["state"] == "firing"}, set())


if __name__ == "__main__":
    unittest.main(verbosity=2)
