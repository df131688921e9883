#!/usr/bin/python3
"""Integration tests of the promises that must hold without any crash (issue 12): a job
held through a lease that every transition checks, a job's freshness checked at every
take, a consumer that backs off from a Redis that refuses, hostile entries bounded in
size, and records that tell the truth.

Each case has its own redis-server and SMTP receiver on free 127.0.0.1 ports.
Run: MAILROOM_BIN_DIR=<build>/bin /usr/bin/python3 tests/integration/test_leases.py [-v]
"""

import json
import os
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import mailroom_env, run_cli  # noqa: E402
from support.jobs import enqueue_raw, job_json, make_job, new_secret, sign_job  # noqa: E402
from support.procs import proc_cpu_s, proc_status_kb, wait_for  # noqa: E402
from support.state import Keys, dead_entries, stats  # noqa: E402

SECRET = new_secret()
Q = Keys("default")
JOB_MAX = 256 * 1024


def rfc3339(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def signed(job_id=None, **extra) -> tuple:
    """(id, raw) of a signed job."""
    job = sign_job(make_job(job_id, **extra), SECRET)
    return job["id"], job_json(job)


class LeaseTest(ServerTestCase):
    """Two copies of one job, and the records of jobs a shutdown returns."""

    def test_two_copies_in_flight_send_once(self):
        """Two queued copies of one signed job (a replay, or any path that yields a
        second copy) taken at once by two workers: one is sent, the other dropped as
        a copy of a job in flight; the counters count the job once."""
        rs, rx = self.redis(), self.receiver(data_delay=1.0)
        r = rs.client()
        job_id, raw = signed()
        enqueue_raw(r, raw, job_id=job_id)
        r.lpush(Q.pending, raw)
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        self.start_consumer(env, "--id", "c1", "--concurrency", "2", "--block-timeout", "250ms")
        self.wait_state(r, job_id, "sent")
        time.sleep(1.5)  # the second copy has been dropped by now, or sent: look
        self.assertEqual(len(rx.messages()), 1)
        self.assertEqual(stats(r).get("sent"), 1)
        self.assert_queue_drained(r)

    def test_shutdown_returns_jobs_as_queued(self):
        """A job in hand when the shutdown's time runs out goes back to pending, and
        its record says queued again, naming no consumer (not 'sending' by a consumer
        that has exited)."""
        rs, rx = self.redis(), self.receiver(data_delay=30.0)
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        c = self.start_consumer(env, "--id", "c1", "--concurrency", "1",
                                "--shutdown-timeout", "500ms")
        job_id = self.send(env)
        self.wait_state(r, job_id, "sending")
        wait_for(lambda: rx.rcpt_seen >= 1, 10, message="the send under way")
        self.assertEqual(c.stop(timeout=10), 0)
        rec = r.hgetall(Q.job(job_id))
        self.assertEqual(rec.get("state"), "queued", rec)
        self.assertNotIn("consumer", rec)
        self.assertIn("shutdown", rec.get("error", ""))
        self.assertEqual(r.llen(Q.pending), 1)


class FreshnessTest(ServerTestCase):
    """--max-lifetime and the clock skew, checked at the first take."""

    def test_old_and_future_jobs_rejected_without_a_send(self):
        rs, rx = self.redis(), self.receiver()
        r = rs.client()
        old_id, old = signed(created_at=rfc3339(time.time() - 30 * 86400))
        future_id, future = signed(created_at=rfc3339(time.time() + 365 * 86400))
        fresh_id, fresh = signed()
        for job_id, raw in ((old_id, old), (future_id, future), (fresh_id, fresh)):
            enqueue_raw(r, raw, job_id=job_id)
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        self.start_consumer(env, "--id", "c1")
        self.wait_state(r, fresh_id, "sent")
        old_rec = self.wait_state(r, old_id, "rejected")
        future_rec = self.wait_state(r, future_id, "rejected")
        self.assertIn("too old", old_rec["error"])
        self.assertIn("in the future", future_rec["error"])
        self.assertEqual(len(rx.messages()), 1)
        reasons = {e["id"]: e["reason"] for e in dead_entries(r)}
        self.assertEqual(set(reasons), {old_id, future_id})

    def test_status_ttl_must_outlive_the_lifetime(self):
        """The replay bound needs the status record to outlive the job's lifetime:
        a consumer configured otherwise refuses to start, saying why."""
        rs = self.redis()
        env = mailroom_env(rs, secret=SECRET, smtp="smtp://127.0.0.1:9")
        c = self.start_consumer(env, "--status-ttl", "1h", "--max-lifetime", "2h")
        wait_for(lambda: not c.alive(), 10, message="the consumer to refuse")
        self.assertEqual(c.stop(), 78)
        self.assertIn("--status-ttl", c.log())


class RefusalTest(ServerTestCase):
    """A Redis that refuses (OOM at maxmemory, WRONGTYPE): capped, jittered back-off,
    one log line per kind of error per minute, not a busy loop."""

    WATCH_S = 6.0

    def watch_consumer(self, c) -> tuple:
        """CPU seconds and log lines the consumer spends over WATCH_S."""
        cpu0, lines0 = proc_cpu_s(c.pid), len(c.log().splitlines())
        time.sleep(self.WATCH_S)
        return proc_cpu_s(c.pid) - cpu0, len(c.log().splitlines()) - lines0

    def check_bounded(self, c, what):
        cpu, lines = self.watch_consumer(c)
        self.assertLess(cpu, 0.5, f"{what}: {cpu:.2f} CPU-s in {self.WATCH_S} s")
        self.assertLess(lines, 12, f"{what}: {lines} log lines in {self.WATCH_S} s")

    def test_maxmemory_then_recovered(self):
        rs, rx = self.redis(), self.receiver()
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        job_id, raw = signed()
        enqueue_raw(r, raw, job_id=job_id)
        used = int(r.info("memory")["used_memory"])
        r.config_set("maxmemory", str(max(1, used // 2)))
        c = self.start_consumer(env, "--id", "c1", "--concurrency", "8",
                                "--block-timeout", "100ms")
        wait_for(lambda: "OOM" in c.log(), 10, message="the OOM refusal logged")
        self.check_bounded(c, "OOM")
        self.assertEqual(len(rx.messages()), 0)
        r.config_set("maxmemory", "0")
        self.wait_state(r, job_id, "sent", timeout=20)

    def test_pending_of_the_wrong_type(self):
        rs, rx = self.redis(), self.receiver()
        r = rs.client()
        r.set(Q.pending, "not a list")
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        c = self.start_consumer(env, "--id", "c1", "--concurrency", "8",
                                "--block-timeout", "100ms")
        wait_for(lambda: "WRONGTYPE" in c.log(), 10, message="the WRONGTYPE refusal logged")
        self.check_bounded(c, "WRONGTYPE")
        r.delete(Q.pending)
        job_id, raw = signed()
        enqueue_raw(r, raw, job_id=job_id)
        self.wait_state(r, job_id, "sent", timeout=20)

    def test_finish_refused_keeps_the_outcome(self):
        """FINISH refused by Redis (NOREPLICAS: min-replicas-to-write without a
        replica) after the mail went out: the consumer keeps its outcome and records it
        once Redis accepts writes again; the job is sent once, never requeued by the
        orphan check while its consumer holds it."""
        rs, rx = self.redis(), self.receiver(data_delay=1.5)
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        c = self.start_consumer(env, "--id", "c1", "--concurrency", "1",
                                "--block-timeout", "250ms")
        job_id = self.send(env)
        self.wait_state(r, job_id, "sending")
        r.config_set("min-replicas-to-write", "1")
        rx.wait_for_count(1, timeout=10)
        wait_for(lambda: "NOREPLICAS" in c.log(), 10, message="FINISH refused")
        time.sleep(10)  # past the orphan check's patience (block + command timeouts + 2 s)
        r.config_set("min-replicas-to-write", "0")
        self.wait_state(r, job_id, "sent", timeout=20)
        time.sleep(1)
        self.assertEqual(len(rx.messages()), 1)
        self.assertEqual(stats(r).get("sent"), 1)
        self.assertEqual(stats(r).get("recovered", 0), 0)


class BoundsTest(ServerTestCase):
    """Entries over the size limit are never read by a consumer."""

    def test_hostile_sizes(self):
        """Three 32 MiB entries with a valid id: each is rejected without being read
        (the consumer's memory stays small), dead-listed with its first 256 KiB and
        its true size, and its record closed as rejected."""
        rs, rx = self.redis(), self.receiver()
        r = rs.client(decode=False)
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        ids = []
        for _ in range(3):
            job_id, raw = signed(text="x" * (32 * 1024 * 1024))
            ids.append(job_id)
            enqueue_raw(r, raw.encode(), job_id=job_id)
        c = self.start_consumer(env, "--id", "c1", "--concurrency", "4")
        dec = rs.client()
        for job_id in ids:
            rec = self.wait_state(dec, job_id, "rejected", timeout=30)
            self.assertIn("over the limit", rec["error"])
        peak_kb = proc_status_kb(c.pid, "VmHWM")
        self.assertLess(peak_kb, 64 * 1024, f"peak RSS {peak_kb} kB")
        dead = [json.loads(e) for e in r.lrange(Q.dead, 0, -1)]
        self.assertEqual(len(dead), 3)
        for e in dead:
            self.assertTrue(e["truncated"])
            self.assertGreater(e["job_bytes"], 32 * 1024 * 1024)
            self.assertLessEqual(len(e["job"].encode("utf-8", "surrogateescape")), JOB_MAX)
            self.assertIn(e["id"], ids)
        self.assertEqual(len(rx.messages()), 0)
        self.assertEqual(stats(dec).get("rejected"), 3)
        self.assert_queue_drained(dec)

    def test_escaped_nul_closes_the_record(self):
        """A job with a valid id that does not decode (an escaped NUL) is rejected
        under its id: its record says rejected, and the dead entry names it."""
        rs, rx = self.redis(), self.receiver()
        r = rs.client()
        job_id, raw = signed()
        bad = raw.replace('"subject":"Hello"', '"subject":"He\\u0000llo"')
        self.assertNotEqual(bad, raw)
        enqueue_raw(r, bad, job_id=job_id)
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        self.start_consumer(env, "--id", "c1")
        rec = self.wait_state(r, job_id, "rejected")
        self.assertIn("NUL", rec["error"])
        self.assertEqual([e["id"] for e in dead_entries(r)], [job_id])


class RecordTruthTest(ServerTestCase):
    """What `send --wait` and the logs say."""

    def test_wait_timeout_prints_the_current_record(self):
        rs, rx = self.redis(), self.receiver(refuse_first=100,
                                              refuse_reply="451 4.7.0 STARTTLS not supported")
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        self.start_consumer(env, "--id", "c1", "--backoff-base", "30s")
        rc, out, err = run_cli("send", "--to", "a@example.com", "--from", "b@example.com",
                               "--subject", "s", "--text", "t", "--wait", "3", env=env,
                               timeout=20)
        self.assertEqual(rc, 75, err)
        self.assertIn("retrying", out + err)
        self.assertIn("STARTTLS not supported", out + err)

    def test_json_log_fields_and_outcome_time(self):
        """An outcome's log line carries its state, code, attempt and duration as
        fields, and the time of the outcome, not of a later write (the FINISH carries
        the next take, which blocks for --block-timeout)."""
        rs, rx = self.redis(), self.receiver()
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        c = self.start_consumer(env, "--id", "c1", "--concurrency", "1", "--log-format",
                                "json", "--block-timeout", "5s")
        job_id = self.send(env)
        rec = self.wait_state(r, job_id, "sent")
        wait_for(lambda: '"state":"sent"' in c.log(), 10, message="the outcome logged")
        line = next(json.loads(x) for x in c.log().splitlines() if '"state":"sent"' in x)
        self.assertEqual(line["job"], job_id)
        self.assertEqual(line["smtp_code"], 250)
        self.assertEqual(line["attempt"], 1)
        self.assertIsInstance(line["duration_ms"], int)
        self.assertEqual(line["at"], rec["updated_at"])


if __name__ == "__main__":
    unittest.main()
