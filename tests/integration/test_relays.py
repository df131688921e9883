#!/usr/bin/python3
"""Integration tests of the relays' policy and the lanes (issue 14): an urgent lane
that never waits on a backlog behind a rate limit; one shared rate across three
consumers; a relay that throttles above its quota, which settles the shared rate and
costs no job an attempt; a relay down for a while, which costs no attempt and whose
jobs go out within seconds of its return; a fallback relay that takes over and gives
back; an address refused with 550 5.1.1 that is suppressed and never tried again; the
documented retry schedule, which is the code's.

Each case has its own redis-server and aiosmtpd receivers on free 127.0.0.1 ports.
Timing checks are bounds with room for a loaded machine; scripts/bench measures the
rate's precision.
Run: MAILROOM_BIN_DIR=<build>/bin /usr/bin/python3 tests/integration/test_relays.py [-v]
"""

import json
import os
import statistics
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import mailroom_env, run_cli  # noqa: E402
from support.jobs import job_json, make_job, new_secret, push_jobs, sign_job  # noqa: E402
from support.paths import BIN_DIR, CONSUMER, REPO_ROOT  # noqa: E402
from support.procs import free_port, wait_for  # noqa: E402
from support.smtp_receiver import Receiver  # noqa: E402
from support.state import Keys, stats  # noqa: E402

SECRET = new_secret()
Q = Keys("default")


def relay_key(url: str) -> str:
    return "mailroom:relay:{" + url.split("://", 1)[1] + "}"


class RelayTestCase(ServerTestCase):

    def setUp(self):
        super().setUp()
        self.rs = self.redis()
        self.r = self.rs.client()

    def push(self, n: int, queue: str = "default", subject: str = "job", to=("rcpt@example.com",)):
        """n signed jobs onto queue's pending list (records queued); returns their ids
        in the order they will be taken."""
        jobs = [sign_job(make_job(subject=f"{subject} {i}", to=to), SECRET) for i in range(n)]
        push_jobs(self.r, [(j["id"], job_json(j)) for j in jobs], queue)
        return [j["id"] for j in jobs]

    def records(self, ids, queue: str = "default") -> list:
        k = Keys(queue)
        p = self.r.pipeline(transaction=False)
        for i in ids:
            p.hgetall(k.job(i))
        return p.execute()

    def wait_all_sent(self, ids, timeout: float, queue: str = "default"):
        def done():
            return all(h.get("state") == "sent" for h in self.records(ids, queue))
        wait_for(done, timeout, message=f"{len(ids)} jobs sent")


# --------------------------------------------------------------------------- lanes


class LaneTest(RelayTestCase):

    def test_urgent_lane_never_waits_on_the_backlog(self):
        """--queue high,low with --rate 5/s and 2 000 jobs on low: each of 20 jobs
        arriving on high is sent within 5 s of its enqueue."""
        rx = self.receiver()
        self.push(2000, "low", "receipt")
        env = mailroom_env(self.rs, secret=SECRET, smtp=rx)
        self.start_consumer(env, "--id", "c1", "--queue", "high,low", "--rate", "5/s",
                            "--concurrency", "4")
        rx.wait_for_count(3, timeout=15)  # the backlog is being worked through
        enqueued = {}
        for i in range(20):
            job = sign_job(make_job(subject=f"reset {i}"), SECRET)
            enqueued[f"reset {i}"] = time.monotonic()
            push_jobs(self.r, [(job["id"], job_json(job))], "high")
            time.sleep(0.25)
        wait_for(lambda: sum(1 for m in rx.messages() if m.message["Subject"].startswith("reset"))
                 == 20, 30, message="the 20 urgent jobs")
        waits = {m.message["Subject"]: m.at - enqueued[m.message["Subject"]]
                 for m in rx.messages() if m.message["Subject"].startswith("reset")}
        self.assertLessEqual(max(waits.values()), 5.0, waits)
        low_sent = sum(1 for m in rx.messages() if m.message["Subject"].startswith("receipt"))
        self.assertGreater(low_sent, 0, "the low lane got no share at all")
        self.assertGreater(self.r.llen(Keys("low").pending), 1500, "the rate was not held")

    def test_weighted_lanes_share_by_weight(self):
        """--queue a:3,b:1: while both have jobs, a gets about three quarters."""
        rx = self.receiver()
        self.push(300, "a", "a")
        self.push(300, "b", "b")
        env = mailroom_env(self.rs, secret=SECRET, smtp=rx)
        self.start_consumer(env, "--id", "c1", "--queue", "a:3,b:1", "--concurrency", "2")
        rx.wait_for_count(200, timeout=30)
        first = rx.messages()[:200]
        share = sum(1 for m in first if m.message["Subject"].startswith("a ")) / len(first)
        self.assertTrue(0.6 <= share <= 0.9, f"lane a got {share:.2f} of the first 200")

    def test_paused_lane_is_skipped(self):
        rx = self.receiver()
        self.r.set(Keys("a").paused, "2026-12-01T00:00:00Z")
        a_ids = self.push(5, "a", "a")
        b_ids = self.push(5, "b", "b")
        env = mailroom_env(self.rs, secret=SECRET, smtp=rx)
        c = self.start_consumer(env, "--id", "c1", "--queue", "a,b")
        self.wait_all_sent(b_ids, 15, "b")
        time.sleep(1.5)
        self.assertEqual(self.r.llen(Keys("a").pending), 5, "a paused queue was taken from")
        self.assertEqual({h["state"] for h in self.records(a_ids, "a")}, {"queued"})
        self.r.delete(Keys("a").paused)
        self.wait_all_sent(a_ids, 15, "a")
        self.assertTrue(any("is paused" in line for line in c.log().splitlines()), c.log()[-2000:])


# --------------------------------------------------------------------------- the shared rate


class RateTest(RelayTestCase):

    def test_three_consumers_share_one_rate(self):
        """Three consumers with --rate 20/s send 200 jobs in 9.45 s or more (199
        intervals of 50 ms, by the receiver's clock), and never more than 24 within a
        second (20 permits a second; what the receiver sees also carries each
        message's own latency, which bunches some arrivals)."""
        rx = self.receiver()
        ids = self.push(200)
        env = mailroom_env(self.rs, secret=SECRET, smtp=rx)
        for n in range(3):
            self.start_consumer(env, "--id", f"c{n}", "--rate", "20/s", "--concurrency", "4")
        self.wait_all_sent(ids, 60)
        at = sorted(m.at for m in rx.messages())
        self.assertEqual(len(at), 200)
        span = at[-1] - at[0]
        self.assertGreaterEqual(span, 9.45, f"200 jobs in {span:.2f} s: faster than 20/s")
        self.assertLessEqual(span, 9.95 * 1.5, f"200 jobs in {span:.2f} s: far below 20/s")
        busiest = max(sum(1 for t in at if a <= t < a + 1.0) for a in at)
        self.assertLessEqual(busiest, 24, f"{busiest} messages within one second")
        h = self.r.hgetall(relay_key(rx.url))
        self.assertEqual(float(h["rate_max"]), 20.0, h)

    def test_throttling_relay_settles_the_rate_and_costs_no_attempt(self):
        """A relay that answers 454 above 10 messages a second, and consumers allowed
        50/s: the shared rate comes down to 10/s or below, every job is sent, each with
        one attempt, and the throttled attempts are counted apart."""
        rx = self.receiver(throttle_above=10)
        ids = self.push(150)
        env = mailroom_env(self.rs, secret=SECRET, smtp=rx)
        for n in range(2):
            self.start_consumer(env, "--id", f"c{n}", "--rate", "50/s", "--concurrency", "4")
        samples = []

        def done():
            rate = self.r.hget(relay_key(rx.url), "rate")
            if rate:
                samples.append(float(rate))
            return all(h.get("state") == "sent" for h in self.records(ids))
        wait_for(done, 90, interval=0.2, message="150 jobs sent")
        self.assertGreater(rx.throttled, 0, "the relay never throttled: the test proves nothing")
        recs = self.records(ids)
        self.assertEqual({h["attempts"] for h in recs}, {"1"}, "a throttled attempt was counted")
        st = stats(self.r)
        self.assertFalse(st.get("failed") or st.get("retried"), st)
        self.assertEqual(st.get("throttled"), rx.throttled, st)
        later = samples[len(samples) // 2:]
        self.assertTrue(later and statistics.median(later) <= 10.0,
                        f"the shared rate did not settle at or below 10/s: {later}")
        self.assertGreaterEqual(int(self.r.hget(relay_key(rx.url), "throttles")), 1)


    def test_a_limiter_started_at_the_floor_lets_go(self):
        """Without --rate, a throttle reported by a consumer too new to know its own
        rate (seen 0) starts the relay's limiter at the floor, where a cut cannot lower
        it: it holds the relay at one message a minute while the throttling goes on,
        and after 2 quiet seconds it turns itself off instead of holding it there for
        good (the chaos test found 17 000 jobs waiting on such a limiter)."""
        script = (BIN_DIR.parent / "lua" / "relay_rate.lua").read_text(encoding="utf-8")
        key = "mailroom:relay:{127.0.0.1:1}"
        floor = str(1 / 60)

        def call(op: str) -> int:
            return self.r.eval(script, 1, key, op, "", floor, "0")
        self.assertEqual(call("throttle"), 1000 // 60)  # messages per 1000 s
        self.assertGreater(call("take"), 50_000, "the floor's interval is a minute")
        time.sleep(2.2)
        self.assertEqual(call("take"), 0, "the limiter still holds the relay after 2 quiet s")
        self.assertIsNone(self.r.hget(key, "rate"), self.r.hgetall(key))


    def test_a_limiter_starts_from_what_the_relay_was_offered(self):
        """Without --rate, the first throttle starts the limiter at half what the relay
        was offered by every consumer over the last three whole seconds (the
        housekeepers' per-second buckets), not at the throttled consumer's own rate:
        a consumer started a moment ago, or one whose mails just failed, knows next to
        nothing (the chaos test held jobs 10 s on a limiter started from such a rate)."""
        script = (BIN_DIR.parent / "lua" / "relay_rate.lua").read_text(encoding="utf-8")
        key = "mailroom:relay:{127.0.0.1:1}"
        s, _ = self.r.time()
        self.r.hset(key, mapping={f"offered:{(s - k) % 8}": 100 for k in (1, 2, 3)})
        rate = self.r.eval(script, 1, key, "throttle", "", str(1 / 60), "0.5")
        if int(self.r.time()[0]) != s:  # the second turned over meanwhile: one bucket less
            self.assertEqual(rate, 100_000 // 3, self.r.hgetall(key))
        else:
            self.assertEqual(rate, 50_000, "not half of the 100/s the relay was offered")
        self.assertLess(self.r.eval(script, 1, key, "take", "", str(1 / 60), "0"), 100,
                        "a permit at 50/s should come within 20 ms")

    def test_consumers_count_what_they_offer_a_relay(self):
        """Each consumer's housekeeper adds what it offered the relay to the bucket of
        the second; refused mails count too (the relay answered them)."""
        rx = self.receiver(rcpt_refusals={"no@example.com": ["550 5.1.1 User unknown"] * 50})
        self.push(30, to=("no@example.com",))
        env = mailroom_env(self.rs, secret=SECRET, smtp=rx)
        self.start_consumer(env, "--id", "c1", "--suppress-on", "none")
        key = relay_key(rx.url)

        def counted():
            h = self.r.hgetall(key)
            return sum(int(v) for k, v in h.items() if k.startswith("offered:")) >= 30
        wait_for(counted, 15, message="30 offered messages counted in the relay's buckets")


# --------------------------------------------------------------------------- circuit, fallback


class CircuitTest(RelayTestCase):

    def test_relay_down_costs_no_attempt(self):
        """100 jobs, a relay whose port is closed for 12 s: the circuit opens, no
        attempt is counted, and every job is sent within 15 s of the relay's return."""
        port = free_port()
        url = f"smtp://127.0.0.1:{port}"
        ids = self.push(100)
        env = mailroom_env(self.rs, secret=SECRET, smtp=url)
        c = self.start_consumer(env, "--id", "c1", "--concurrency", "4",
                                "--circuit-probe-max", "3s")
        wait_for(lambda: self.r.hget(relay_key(url), "circuit") == "open", 15,
                 message="the circuit to open")
        time.sleep(10)
        recs = self.records(ids)
        self.assertEqual({h.get("attempts") for h in recs}, {"0"}, "an outage cost attempts")
        self.assertEqual({h.get("state") for h in recs}, {"queued"})
        self.assertGreater(self.r.llen(Q.pending), 80, "jobs left pending while the circuit is open")
        rx = self.stack.enter_context(Receiver(port=port))
        back = time.monotonic()
        self.wait_all_sent(ids, 30)
        self.assertLessEqual(max(m.at for m in rx.messages()) - back, 15.0)
        self.assertEqual({h["attempts"] for h in self.records(ids)}, {"1"})
        self.assertEqual(self.r.hget(relay_key(url), "circuit"), "closed")
        log = c.log()
        self.assertIn("circuit open", log)
        self.assertIn("circuit closed", log)

    def test_fallback_relay_takes_over_and_gives_back(self):
        """The primary down and a fallback up: every job goes to the fallback, the
        record naming it; once the primary is back, jobs go to it again."""
        port = free_port()
        primary = f"smtp://127.0.0.1:{port}"
        fallback = self.receiver()
        env = mailroom_env(self.rs, secret=SECRET)
        self.start_consumer(env, "--id", "c1", "--smtp", primary, "--smtp", fallback.url,
                            "--circuit-probe-max", "2s", "--concurrency", "2")
        first = self.push(20, subject="first")
        self.wait_all_sent(first, 30)
        self.assertEqual({h["relay"] for h in self.records(first)}, {fallback.url[7:]})
        self.assertEqual({h["attempts"] for h in self.records(first)}, {"1"})
        rc, out, err = run_cli("status", first[0], env=env)
        self.assertEqual((rc, json.loads(out)["relay"]), (0, fallback.url[7:]), err)
        self.assertEqual(fallback.count(), 20)
        rx = self.stack.enter_context(Receiver(port=port))
        wait_for(lambda: self.r.hget(relay_key(primary), "circuit") == "closed", 20,
                 message="the primary's circuit to close")
        second = self.push(20, subject="second")
        self.wait_all_sent(second, 30)
        self.assertEqual({h["relay"] for h in self.records(second)}, {primary[7:]})
        self.assertEqual(rx.count(), 20)
        self.assertEqual(fallback.count(), 20)


# --------------------------------------------------------------------------- suppression


class SuppressionTest(RelayTestCase):

    GHOST = "ghost@example.com"

    def test_unknown_user_is_suppressed_and_never_tried_again(self):
        rx = self.receiver(rcpt_refusals={self.GHOST: [
            "550 5.1.1 <ghost@example.com>: Recipient address rejected: User unknown"]})
        env = mailroom_env(self.rs, secret=SECRET, smtp=rx)
        c1 = self.start_consumer(env, "--id", "c1")
        first = self.push(1, to=(self.GHOST,))[0]
        self.wait_state(self.r, first, "failed")
        key = "mailroom:{suppress}:addr:" + self.GHOST
        entry = json.loads(self.r.get(key))
        self.assertEqual((entry["address"], entry["code"], entry["source"], entry["id"]),
                         (self.GHOST, 550, "consumer", first))
        self.assertIn("5.1.1", entry["reason"])
        self.assertGreater(self.r.pttl(key), 29 * 86400 * 1000)
        self.assertIsNotNone(self.r.zscore("mailroom:{suppress}:index", self.GHOST))
        c1.stop()
        sessions, rcpts = rx.sessions, rx.rcpt_seen
        self.start_consumer(env, "--id", "c2")
        second = self.push(1, to=("Ghost@Example.COM",))[0]
        h = self.wait_state(self.r, second, "failed")
        self.assertIn("suppression list", h["error"])
        self.assertEqual(json.loads(h["recipients"])["Ghost@Example.COM"]["state"], "suppressed")
        self.assertEqual(h["attempts"], "1")  # its lease, taken with the lookup
        mixed = self.push(1, to=(self.GHOST, "alive@example.com"))[0]
        h = self.wait_state(self.r, mixed, "sent")
        answers = json.loads(h["recipients"])
        self.assertEqual((answers[self.GHOST]["state"], answers["alive@example.com"]["state"]),
                         ("suppressed", "sent"))
        self.assertEqual(rx.messages()[-1].rcpt_tos, ["alive@example.com"])
        self.assertEqual(rx.rcpt_seen, rcpts + 1, "a suppressed address was tried again")
        self.assertEqual(rx.sessions, sessions + 1, "the suppressed job opened a connection")

    def test_every_consumer_skips_an_address_at_once(self):
        """Two consumers; the second job to the address follows the first's failure at
        once, whichever consumer takes it: no second RCPT for the address."""
        rx = self.receiver(rcpt_refusals={self.GHOST: ["550 5.1.1 User unknown"]})
        env = mailroom_env(self.rs, secret=SECRET, smtp=rx)
        for n in range(2):
            self.start_consumer(env, "--id", f"c{n}", "--concurrency", "2")
        for round_ in range(3):
            first = self.push(1, to=(self.GHOST,))[0]
            self.wait_state(self.r, first, "failed")
            again = self.push(4, to=(self.GHOST,))
            for job in again:
                h = self.wait_state(self.r, job, "failed")
                self.assertIn("suppression list", h["error"], h)
            self.r.delete("mailroom:{suppress}:addr:" + self.GHOST, "mailroom:{suppress}:index")
            rx.rcpt_refusals[self.GHOST] = ["550 5.1.1 User unknown"]
        self.assertEqual(rx.rcpt_seen, 3, "an address on the list was tried again")

    def test_suppress_on_none_keeps_the_list_empty(self):
        rx = self.receiver(rcpt_refusals={self.GHOST: ["550 5.1.1 User unknown"]})
        env = mailroom_env(self.rs, secret=SECRET, smtp=rx)
        self.start_consumer(env, "--id", "c1", "--suppress-on", "none")
        job = self.push(1, to=(self.GHOST,))[0]
        self.wait_state(self.r, job, "failed")
        self.assertEqual(self.r.zcard("mailroom:{suppress}:index"), 0)


# --------------------------------------------------------------------------- the horizon


class HorizonTest(unittest.TestCase):

    def test_documented_retry_table_is_the_codes(self):
        out = subprocess.run([CONSUMER, "--retry-table"], capture_output=True, text=True,
                             check=True, env={"PATH": os.environ.get("PATH", "")}).stdout
        with open(REPO_ROOT / "docs" / "reliability.md", encoding="utf-8") as f:
            doc = f.read()
        marker = "<!-- retry-table: mailroom-consumer --retry-table (defaults) -->\n"
        self.assertIn(marker, doc)
        self.assertTrue(doc.split(marker, 1)[1].startswith(out), "docs/reliability.md's "
                        "retry table is not what mailroom-consumer --retry-table prints")
        self.assertIn("| 1 | 300 s |", out)
        self.assertIn("5.0 d", out)

    def test_lifetime_must_stay_below_the_status_ttl(self):
        p = subprocess.run([CONSUMER, "--max-lifetime", "8d"], capture_output=True, text=True,
                           env={"PATH": os.environ.get("PATH", ""), "MAILROOM_SECRET": SECRET})
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn("--status-ttl", p.stderr)


if __name__ == "__main__":
    unittest.main()
