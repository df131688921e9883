#!/usr/bin/python3
"""Integration tests of job control (issue 15, item 4) and of what stats, consumers and
top show of relays and consumers (issue 14, item 3): `mailroom list`, `cancel`,
`retry-now`, `pause`, `resume`, `stats`, `consumers`, `top`, against a private
redis-server, real mailroom-consumer processes where the outcome depends on one, and
aiosmtpd receivers, all on free 127.0.0.1 ports. The relays' and consumers' shared
state is written into Redis by the test exactly as docs/redis.md describes it: that is
the interface the consumers write.

Run: /usr/bin/python3 tests/integration/test_job_control.py [-v] [TestClass.test_name]
The binaries come from $MAILROOM_BIN_DIR (default <repo>/build/bin).
"""

import fcntl
import json
import os
import pty
import re
import select
import shlex
import subprocess
import sys
import termios
import time
import unittest

import redis  # python3-redis

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import mailroom_env, run_cli  # noqa: E402
from support.jobs import job_json, make_job, new_secret, push_jobs, sign_job  # noqa: E402
from support.paths import CLI, REPO_ROOT  # noqa: E402
from support.procs import wait_for  # noqa: E402
from support.state import Keys, redis_ms  # noqa: E402

SECRET = new_secret()
SENDER = "noreply@example.com"
Q = Keys("default")
ACL_MARKER = "<!-- acl-rules-operator: applied verbatim by tests/integration/test_job_control.py -->"


def rfc3339_ms(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


class JobControlCase(ServerTestCase):
    """A Redis per test, the CLI's environment, and helpers to make jobs in every
    state a queue holds."""

    def setUp(self):
        super().setUp()
        self.rs = self.redis()
        self.r = self.rs.client()
        self.env = mailroom_env(self.rs, secret=SECRET)

    def cli(self, *args, env=None, timeout=30.0):
        return run_cli(*args, env=env or self.env, timeout=timeout)

    def cli_json(self, *args):
        rc, out, err = self.cli(*args, "--json")
        self.assertEqual(rc, 0, f"mailroom {args}: {err}")
        return json.loads(out)

    def enqueue(self, to="rcpt@example.com", subject="Hello") -> str:
        return self.send(self.env, to=to, subject=subject)

    def raw_of(self, job_id: str, key=None) -> str:
        """The raw job of job_id in pending (or the scheduled set)."""
        entries = self.r.lrange(Q.pending, 0, -1) if key is None else self.r.zrange(key, 0, -1)
        found = [e for e in entries if json.loads(e)["id"] == job_id]
        self.assertEqual(len(found), 1, f"{job_id} in {entries}")
        return found[0]

    def make_retrying(self, job_id: str, due_ms: int, error="451 4.3.0 Try again later"):
        """Turns a pending job into one waiting for its retry, as FINISH leaves it."""
        raw = self.raw_of(job_id)
        self.r.lrem(Q.pending, 1, raw)
        self.r.zadd(Q.scheduled, {raw: due_ms})
        self.r.hset(Q.job(job_id), mapping={"state": "retrying", "attempts": "1", "error": error})
        return raw

    def ids(self, listing) -> list:
        return [j["id"] for j in listing["jobs"]]


# --------------------------------------------------------------------------- help


class HelpTest(JobControlCase):

    def test_every_new_command_has_help(self):
        for args in (["list", "--help"], ["cancel", "--help"], ["retry-now", "--help"],
                     ["pause", "--help"], ["resume", "--help"], ["top", "--help"],
                     ["suppress", "--help"], ["help", "suppress"], ["help", "retry-now"]):
            with self.subTest(args=args):
                rc, out, err = self.cli(*args)
                self.assertEqual((rc, err), (0, ""))
                command = args[1] if args[0] == "help" else args[0]
                self.assertTrue(out.startswith("Usage: mailroom "), out)
                self.assertIn(f"mailroom {command} ", out)
        rc, out, _ = self.cli("--help")
        self.assertRegex(out, r"(?m)^\s+3\s+cancel, retry-now: the job's state")
        for command in ("top", "list [KIND]", "cancel ID", "retry-now ID", "pause", "resume",
                        "suppress"):
            self.assertRegex(out, rf"(?m)^  {re.escape(command)}\s")


# --------------------------------------------------------------------------- list


class ListTest(JobControlCase):

    def test_pending_in_take_order_with_records(self):
        ids = [self.enqueue(to=f"User {i} <u{i}@example.com>", subject=f"S{i}") for i in range(5)]
        self.r.hset(Q.job(ids[1]), mapping={"error": "returned by a recovery"})
        got = self.cli_json("list")
        self.assertEqual((got["queue"], got["kind"], got["total"]), ("default", "pending", 5))
        self.assertEqual(self.ids(got), ids)  # the oldest (taken next) first
        first = got["jobs"][0]
        self.assertEqual(first["recipients"], ["User 0 <u0@example.com>"])
        self.assertEqual((first["state"], first["attempts"], first["subject"]), ("queued", 0, "S0"))
        self.assertRegex(first["created_at"], r"^\d{4}-\d\d-\d\dT")
        self.assertIsNone(first["send_at"])
        self.assertIsNone(first["due_at"])
        self.assertTrue(first["readable"])
        self.assertEqual(first["bytes"], len(self.raw_of(ids[0]).encode()))
        self.assertEqual(got["jobs"][1]["error"], "returned by a recovery")
        self.assertIsNone(got["next_cursor"])
        rc, out, err = self.cli("list")
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith(ids[0] + "  queued"), lines[0])
        self.assertIn("User 0 <u0@example.com>  S0", lines[0])
        self.assertIn("    error: returned by a recovery", lines)
        self.assertEqual(lines[-1], "(5 shown of 5 pending)")

    def test_filters_by_recipient_and_domain(self):
        a = self.enqueue(to="Ming <Ming@Example.COM>")
        b = self.send(self.env, "--cc", "x@例子.测试", to="other@example.org")
        c = self.send(self.env, "--bcc", "ming@example.com", to="z@example.net")
        self.assertEqual(self.ids(self.cli_json("list", "--to", "MING@example.com")), [a, c])
        self.assertEqual(self.ids(self.cli_json("list", "--domain", "EXAMPLE.org")), [b])
        self.assertEqual(self.ids(self.cli_json("list", "--domain", "xn--fsqu00a.xn--0zwm56d")), [b])
        self.assertEqual(self.ids(self.cli_json("list", "--to", "x@例子.测试")), [b])
        self.assertEqual(self.ids(self.cli_json("list", "--domain", "example.com")), [a, c])
        none = self.cli_json("list", "--to", "nobody@example.com")
        self.assertEqual((none["jobs"], none["total"], none["next_cursor"]), ([], 3, None))

    def test_pages_go_on_after_the_last_job_while_consumers_take(self):
        ids = [self.enqueue(subject=f"S{i}") for i in range(25)]
        first = self.cli_json("list", "--limit", "10")
        self.assertEqual(self.ids(first), ids[:10])
        cursor = first["next_cursor"]
        self.assertTrue(cursor)
        # consumers take the 4 oldest meanwhile and a producer adds 2: the next page
        # starts right after the last job shown, wherever it moved
        for _ in range(4):
            self.r.rpop(Q.pending)
        late = [self.enqueue(subject="late"), self.enqueue(subject="late")]
        second = self.cli_json("list", "--limit", "10", "--cursor", cursor)
        self.assertEqual(self.ids(second), ids[10:20])
        third = self.cli_json("list", "--limit", "10", "--cursor", second["next_cursor"])
        self.assertEqual(self.ids(third), ids[20:] + late)
        self.assertIsNone(third["next_cursor"])
        # when the last job shown is gone (taken), the walk starts again from the job
        # taken next: it may repeat, it never skips
        again = self.cli_json("list", "--limit", "3")
        for _ in range(10):
            self.r.rpop(Q.pending)
        after = self.cli_json("list", "--limit", "3", "--cursor", again["next_cursor"])
        self.assertEqual(self.ids(after), ids[14:17])
        rc, out, err = self.cli("list", "--limit", "2")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out.splitlines()[-1], r"^\(2 shown of 13 pending; more: --cursor p2:\S+\)$")

    def test_scheduled_and_retrying(self):
        now = redis_ms(self.r)
        later = self.send(self.env, "--send-at", rfc3339_ms(now + 7200_000), to="l@example.com")
        r1 = self.enqueue(subject="retry one")
        r2 = self.enqueue(subject="retry two")
        self.make_retrying(r1, now + 600_000, error="451 4.7.1 greylisted")
        self.make_retrying(r2, now + 60_000)
        sched = self.cli_json("list", "scheduled")
        self.assertEqual(self.ids(sched), [r2, r1, later])  # soonest due first
        self.assertEqual(sched["total"], 3)
        self.assertEqual(sched["jobs"][0]["due_at"], rfc3339_ms(now + 60_000))
        self.assertEqual(sched["jobs"][2]["state"], "queued")
        self.assertTrue(sched["jobs"][2]["send_at"])
        retrying = self.cli_json("list", "retrying")
        self.assertEqual(self.ids(retrying), [r2, r1])
        self.assertEqual((retrying["jobs"][1]["attempts"], retrying["jobs"][1]["error"]),
                         (1, "451 4.7.1 greylisted"))
        page = self.cli_json("list", "scheduled", "--limit", "1")
        self.assertEqual(self.ids(page), [r2])
        rest = self.cli_json("list", "scheduled", "--cursor", page["next_cursor"])
        self.assertEqual(self.ids(rest), [r1, later])
        # a cursor of one walk is refused by another
        rc, _, err = self.cli("list", "--cursor", page["next_cursor"])
        self.assertEqual(rc, 65, err)
        self.assertIn("cursor", err)

    def test_hostile_entries_are_listed_not_read(self):
        ok = self.enqueue()
        self.r.lpush(Q.pending, "\x1b[31mnot json")
        self.r.lpush(Q.pending, "{" + "x" * 300_000)
        got = self.cli_json("list")
        self.assertEqual(self.ids(got), [ok, "", ""])
        self.assertEqual([j["readable"] for j in got["jobs"]], [True, False, False])
        self.assertEqual(got["jobs"][2]["bytes"], 300_001)
        self.assertEqual(got["jobs"][2]["state"], "unknown")
        rc, out, err = self.cli("list")
        self.assertEqual(rc, 0, err)
        self.assertNotIn("\x1b", out)
        self.assertIn("(unreadable entry, 300001 bytes)", out)
        self.assertEqual(self.ids(self.cli_json("list", "--to", "rcpt@example.com")), [ok])

    def test_usage_and_input_errors(self):
        for args, code, text in [
                (("list", "waiting"), 64, "not pending, scheduled or retrying"),
                (("list", "--to", "a@example.com", "--domain", "example.com"), 64, "not both"),
                (("list", "--limit", "0"), 64, "--limit"),
                (("list", "--to", "not-an-address"), 65, "to"),
                (("list", "--cursor", "garbage"), 65, "cursor"),
                (("list", "pending", "extra"), 64, "unexpected argument"),
                (("cancel",), 64, "missing job ID"),
                (("cancel", "bad id"), 64, "not a job id"),
                (("retry-now", "a", "b"), 64, "unexpected argument"),
                (("pause", "now"), 64, "unexpected argument"),
                (("stats", "--once"), 64, "not an option")]:
            with self.subTest(args=args):
                rc, out, err = self.cli(*args)
                self.assertEqual(rc, code, err)
                self.assertIn(text, err)
                self.assertEqual(out, "")


# --------------------------------------------------------------------------- cancel


class CancelTest(JobControlCase):

    def test_cancelled_queued_job_is_never_sent(self):
        events = self.listener(self.rs)
        doomed = self.enqueue(to="doomed@example.com", subject="doomed")
        rc, out, err = self.cli("cancel", doomed)
        self.assertEqual((rc, out), (0, f"cancelled {doomed} (removed from pending)\n"), err)
        self.assertEqual(self.r.llen(Q.pending), 0)
        rec = self.r.hgetall(Q.job(doomed))
        self.assertEqual((rec["state"], rec["error"]), ("cancelled", "cancelled by an operator"))
        self.assertGreater(self.r.ttl(Q.job(doomed)), 6 * 86400)
        ev = events.wait_for_state(doomed, "cancelled")
        self.assertEqual((ev["queue"], ev["error"], ev["consumer"]),
                         ("default", "cancelled by an operator", ""))
        self.assertEqual(self.r.hget(Q.stats, "cancelled"), "1")
        minutes = list(self.r.scan_iter(match="mailroom:\\{default\\}:minute:*"))
        self.assertEqual(len(minutes), 1, minutes)
        self.assertEqual(self.r.hget(minutes[0], "cancelled"), "1")
        self.assertGreater(self.r.ttl(minutes[0]), 172000)
        # a consumer started afterwards sends the next job, never the cancelled one
        rx = self.receiver()
        self.start_consumer(mailroom_env(self.rs, secret=SECRET, smtp=rx), "--concurrency", "2")
        kept = self.enqueue(to="kept@example.com", subject="kept")
        self.wait_state(self.r, kept, "sent")
        time.sleep(0.5)
        self.assertEqual([m.rcpt_tos for m in rx.messages()], [["kept@example.com"]])
        self.assertEqual(self.r.hget(Q.job(doomed), "state"), "cancelled")
        self.assertEqual(json.loads(self.cli("stats", "--json")[1])["counters"]["cancelled"], 1)

    def test_copy_held_by_a_consumer_is_dropped_before_sending(self):
        # the job was taken by a consumer that went silent before BEGIN: its copy is
        # in that consumer's processing list, not in pending or scheduled
        job_id = self.enqueue(to="held@example.com")
        raw = self.r.rpop(Q.pending)
        self.r.lpush(Q.processing("ghost"), raw)
        self.r.zadd(Q.consumers, {"ghost": redis_ms(self.r) - 120_000})
        events = self.listener(self.rs)
        rc, out, err = self.cli("cancel", job_id, "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out),
                         {"id": job_id, "cancelled": True, "removed_from": None})
        self.assertEqual(self.r.lrange(Q.processing("ghost"), 0, -1), [raw])
        # a live consumer recovers the silent one's list; BEGIN drops the copy
        rx = self.receiver()
        self.start_consumer(mailroom_env(self.rs, secret=SECRET, smtp=rx), "--concurrency", "2")
        dup = wait_for(lambda: [e for e in events.events(job_id) if e["state"] == "duplicate"],
                       15, message="the held copy dropped at BEGIN")
        self.assertIn("cancelled", dup[0]["error"])
        marker = self.enqueue(to="after@example.com")
        self.wait_state(self.r, marker, "sent")
        self.assertEqual([m.rcpt_tos for m in rx.messages()], [["after@example.com"]])
        self.assertEqual(self.r.hget(Q.job(job_id), "state"), "cancelled")
        self.assertEqual(self.r.hget(Q.job(job_id), "attempts"), "0")
        self.assert_queue_drained(self.r)

    def test_cancel_a_retrying_job_in_scheduled(self):
        job_id = self.enqueue()
        self.make_retrying(job_id, redis_ms(self.r) + 3600_000)
        rc, out, err = self.cli("cancel", job_id)
        self.assertEqual((rc, out), (0, f"cancelled {job_id} (removed from scheduled)\n"), err)
        self.assertEqual(self.r.zcard(Q.scheduled), 0)
        self.assertEqual(self.r.hgetall(Q.job(job_id))["attempts"], "1")  # kept
        self.assertEqual(self.r.hget(Q.job(job_id), "state"), "cancelled")

    def test_sending_and_final_jobs_are_refused(self):
        for state in ("sending", "sent", "failed", "rejected", "cancelled"):
            with self.subTest(state=state):
                job_id = self.enqueue()
                self.r.hset(Q.job(job_id), "state", state)
                before = self.r.hgetall(Q.job(job_id))
                rc, out, err = self.cli("cancel", job_id)
                self.assertEqual((rc, out), (3, ""), err)
                self.assertIn(f"job '{job_id}' is {state}", err)
                self.assertEqual(self.r.hgetall(Q.job(job_id)), before)
                self.raw_of(job_id)  # still pending: fails otherwise
        rc, _, err = self.cli("cancel", "no-such-job")
        self.assertEqual(rc, 1, err)
        self.assertIn("no status record", err)
        self.assertIsNone(self.r.hget(Q.stats, "cancelled"))

    def test_cancel_finds_a_job_deep_in_a_long_queue(self):
        jobs = []
        for i in range(3000):
            job = sign_job(make_job(subject=f"bulk {i}"), SECRET)
            jobs.append((job["id"], job_json(job)))
        push_jobs(self.r, jobs)
        target = jobs[1234][0]
        rc, out, err = self.cli("cancel", target)
        self.assertEqual((rc, out), (0, f"cancelled {target} (removed from pending)\n"), err)
        self.assertEqual(self.r.llen(Q.pending), 2999)
        self.assertNotIn(jobs[1234][1], self.r.lrange(Q.pending, 0, -1))


# --------------------------------------------------------------------------- retry now


class RetryNowTest(JobControlCase):

    def test_retrying_job_is_sent_within_seconds(self):
        rx = self.receiver(refuse_first=1)
        self.start_consumer(mailroom_env(self.rs, secret=SECRET, smtp=rx), "--concurrency", "2",
                            "--backoff-base", "1h", "--backoff-max", "2h")
        job_id = self.enqueue(to="retry@example.com")
        rec = self.wait_state(self.r, job_id, "retrying")
        self.assertEqual(rec["attempts"], "1")
        self.assertEqual(self.ids(self.cli_json("list", "retrying")), [job_id])
        due = self.r.zrange(Q.scheduled, 0, -1, withscores=True)[0][1]
        self.assertGreater(due, redis_ms(self.r) + 2000_000)  # an hour away, jitter aside
        events = self.listener(self.rs)
        started = time.monotonic()
        rc, out, err = self.cli("retry-now", job_id)
        self.assertEqual((rc, out), (0, f"moved {job_id} to the head of pending\n"), err)
        self.wait_state(self.r, job_id, "sent", timeout=10)
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(len(rx.messages()), 1)
        self.assertEqual(self.r.hget(Q.job(job_id), "attempts"), "2")
        moved = [e for e in events.events(job_id) if e["state"] == "queued"]
        self.assertEqual(len(moved), 1, events.events(job_id))
        self.assertIn("retry-now", moved[0]["error"])
        self.assertEqual(self.r.zcard(Q.scheduled), 0)

    def test_moves_to_the_head_of_pending(self):
        waiting = [self.enqueue(subject=f"backlog {i}") for i in range(3)]
        job_id = self.enqueue(subject="retry")
        self.make_retrying(job_id, redis_ms(self.r) + 3600_000)
        rc, _, err = self.cli("retry-now", job_id, "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.ids(self.cli_json("list")), [job_id] + waiting)
        self.assertEqual(self.r.hget(Q.job(job_id), "state"), "retrying")  # as a promotion

    def test_refusals(self):
        now = redis_ms(self.r)
        future = self.send(self.env, "--send-at", rfc3339_ms(now + 3600_000), to="f@example.com")
        pending = self.enqueue()
        sent = self.enqueue()
        self.r.hset(Q.job(sent), "state", "sent")
        for job_id, code, text in [(future, 3, "waits for its send_at"),
                                   (pending, 3, "is not scheduled"),
                                   (sent, 3, "is sent"),
                                   ("nope", 1, "no status record")]:
            with self.subTest(job=job_id):
                rc, out, err = self.cli("retry-now", job_id)
                self.assertEqual((rc, out), (code, ""), err)
                self.assertIn(text, err)
        self.assertEqual(self.r.zcard(Q.scheduled), 1)
        self.assertEqual(self.r.llen(Q.pending), 2)


# --------------------------------------------------------------------------- pause


class PauseTest(JobControlCase):

    def test_pause_and_resume(self):
        events = self.listener(self.rs)
        key = "mailroom:{default}:paused"
        self.assertEqual(self.cli("pause"), (0, "paused default\n", ""))
        since = self.r.get(key)
        self.assertRegex(since, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        st = self.cli_json("stats")
        self.assertEqual((st["paused"], st["paused_at"]), (True, since))
        self.assertIn(f"paused        yes, since {since}", self.cli("stats")[1])
        self.assertEqual(self.cli_json("pause"),
                         {"queue": "default", "paused": True, "changed": False})
        self.assertEqual(self.r.get(key), since)  # the first time is kept
        self.assertEqual(self.cli("resume"), (0, "resumed default\n", ""))
        self.assertIsNone(self.r.get(key))
        self.assertEqual(self.cli("resume"), (0, "default was not paused\n", ""))
        st = self.cli_json("stats")
        self.assertEqual((st["paused"], st["paused_at"]), (False, None))
        wait_for(lambda: len(events.events()) >= 2, 5)
        self.assertEqual([(e["id"], e["state"]) for e in events.events()],
                         [(None, "paused"), (None, "resumed")])
        stream = [json.loads(f["event"]) for _, f in self.r.xrange("mailroom:{default}:events")]
        self.assertEqual([e["state"] for e in stream], ["paused", "resumed"])

    def test_pause_one_queue_of_several(self):
        self.assertEqual(self.cli("pause", "--queue", "bulk")[0], 0)
        self.assertTrue(self.r.exists("mailroom:{bulk}:paused"))
        self.assertFalse(self.r.exists("mailroom:{default}:paused"))


# --------------------------------------------------------------------------- stats, consumers, relays


class StatsTest(JobControlCase):

    def push_job_created(self, created_ms: int, send_at_ms: int | None = None):
        extra = {"send_at": rfc3339_ms(send_at_ms)} if send_at_ms else {}
        job = sign_job(make_job(created_at=rfc3339_ms(created_ms), **extra), SECRET)
        push_jobs(self.r, [(job["id"], job_json(job))])

    def test_oldest_pending_age(self):
        self.assertEqual(self.cli_json("stats")["oldest_pending_age_ms"], 0)
        now = redis_ms(self.r)
        self.push_job_created(now - 600_000)  # taken next: 10 minutes old
        self.push_job_created(now - 5_000)
        age = self.cli_json("stats")["oldest_pending_age_ms"]
        self.assertGreaterEqual(age, 600_000)
        self.assertLess(age, 660_000)
        self.r.delete(Q.pending)
        self.push_job_created(now - 3600_000, send_at_ms=now - 120_000)  # from its send_at
        age = self.cli_json("stats")["oldest_pending_age_ms"]
        self.assertGreaterEqual(age, 120_000)
        self.assertLess(age, 180_000)
        self.assertRegex(self.cli("stats")[1], r"(?m)^pending       1\noldest        1\d\d\.\d s$")

    def test_failed_per_minute(self):
        minute = redis_ms(self.r) // 60000
        self.r.hset(f"mailroom:{{default}}:minute:{minute}",
                    mapping={"sent": "5", "failed": "2", "rejected": "1"})
        st = self.cli_json("stats")
        self.assertGreaterEqual(st["failed_per_min"], 3.0)
        self.assertLess(st["failed_per_min"], 3.1)
        self.assertGreaterEqual(st["sent_per_min"], 5.0)

    def write_relay(self, name, now, **fields):
        self.r.zadd("mailroom:relays", {name: now})
        if fields:
            self.r.hset(f"mailroom:relay:{{{name}}}", mapping=fields)

    def test_relays_in_stats(self):
        now = redis_ms(self.r)
        self.write_relay("smtp.example.com:587", now, circuit="open", failures="4",
                         last_error="connect: Connection refused", opened_at=str(now - 5000),
                         probe_at=str(now + 10_000), prober="c1", rate="7.5", rate_max="10",
                         tat=str(now), throttled_at=str(now - 1000), throttles="3")
        self.r.zadd("mailroom:relay:{smtp.example.com:587}:sessions",
                    {"c1:0": now + 60_000, "c1:1": now + 60_000, "c2:0": now - 1000})
        self.write_relay("backup.example.net:25", now - 3000)
        self.write_relay("forgotten:25", now - 2 * 86400_000, circuit="open")
        relays = {x["name"]: x for x in self.cli_json("stats")["relays"]}
        self.assertEqual(sorted(relays), ["backup.example.net:25", "smtp.example.com:587"])
        self.assertIsNone(self.r.zscore("mailroom:relays", "forgotten:25"))  # dropped
        main = relays["smtp.example.com:587"]
        self.assertEqual((main["circuit"], main["failures"], main["last_error"], main["prober"]),
                         ("open", 4, "connect: Connection refused", "c1"))
        self.assertEqual((main["rate"], main["rate_max"], main["throttles"], main["sessions"]),
                         (7.5, 10.0, 3, 2))  # the expired session slot is not counted
        self.assertEqual(main["opened_at"], rfc3339_ms(now - 5000))
        self.assertEqual(main["last_used_at"], rfc3339_ms(now))
        spare = relays["backup.example.net:25"]
        self.assertEqual((spare["circuit"], spare["rate_max"], spare["sessions"], spare["opened_at"]),
                         ("closed", 0.0, 0, None))
        rc, out, err = self.cli("stats")
        self.assertEqual(rc, 0, err)
        self.assertIn("relays        2\n", out)
        self.assertIn("  smtp.example.com:587  circuit open, rate 7.5/10.0 per s, sessions 2, "
                      "throttles 3, failures 4, last error: connect: Connection refused", out)

    def test_consumer_info(self):
        now = redis_ms(self.r)
        self.r.zadd(Q.consumers, {"web1-4242-ab": now, "old-1-cd": now - 1000})
        self.r.hset("mailroom:{default}:info:web1-4242-ab", mapping={
            "host": "web1", "pid": "4242", "version": "0.1.0",
            "started_at": "2026-11-25T10:00:00.000Z", "queues": "reset,receipts:1",
            "relays": "smtp.example.com:587,backup.example.net:25", "concurrency": "8",
            "sessions": "3"})
        self.r.rpush(Q.processing("web1-4242-ab"), "job")
        rows = {}
        rc, out, err = self.cli("consumers", "--json")
        self.assertEqual(rc, 0, err)
        for line in out.splitlines():
            row = json.loads(line)
            rows[row["id"]] = row
        self.assertEqual({k: rows["web1-4242-ab"][k] for k in (
            "host", "pid", "version", "started_at", "queues", "relays", "concurrency",
            "sessions", "processing")},
            {"host": "web1", "pid": 4242, "version": "0.1.0",
             "started_at": "2026-11-25T10:00:00.000Z", "queues": "reset,receipts:1",
             "relays": "smtp.example.com:587,backup.example.net:25", "concurrency": 8,
             "sessions": 3, "processing": 1})
        self.assertEqual([rows["old-1-cd"][k] for k in ("host", "pid", "sessions")],
                         [None, None, None])
        rc, out, err = self.cli("consumers")
        self.assertIn("web1-4242-ab  alive    heartbeat ", out)
        self.assertIn(", processing 1, sessions 3/8, host web1 pid 4242, queues "
                      "reset,receipts:1, relays smtp.example.com:587,backup.example.net:25, "
                      "version 0.1.0", out)
        self.assertIn(", sessions 3\n", self.cli("stats")[1])

    def test_a_real_consumer_is_listed(self):
        rx = self.receiver()
        c = self.start_consumer(mailroom_env(self.rs, secret=SECRET, smtp=rx), "--id", "real-1")
        wait_for(lambda: self.r.zscore(Q.consumers, "real-1"), 10)
        rc, out, err = self.cli("consumers", "--json")
        self.assertEqual(rc, 0, err)
        row = json.loads(out.splitlines()[0])
        self.assertEqual((row["id"], row["state"]), ("real-1", "alive"))
        self.assertEqual(c.stop(), 0)


# --------------------------------------------------------------------------- top


class TopTest(JobControlCase):

    def seed(self):
        now = redis_ms(self.r)
        a = self.send(self.env, "--queue", "alpha", to="a@example.com")
        self.send(self.env, "--queue", "alpha", to="b@example.com")
        self.assertEqual(self.cli("pause", "--queue", "beta")[0], 0)
        for q in ("alpha", "beta"):
            self.r.zadd(f"mailroom:{{{q}}}:consumers", {"web1-1-x": now, "\x1b[2Jevil": now})
            self.r.rpush(f"mailroom:{{{q}}}:processing:web1-1-x", "j1", "j2")
        self.r.hset("mailroom:{alpha}:info:web1-1-x",
                    mapping={"host": "web1", "queues": "alpha,beta", "concurrency": "8",
                             "sessions": "2", "pid": "1"})
        self.r.zadd("mailroom:relays", {"smtp.example.com:587": now})
        self.r.hset("mailroom:relay:{smtp.example.com:587}",
                    mapping={"circuit": "half-open", "rate": "4", "rate_max": "10",
                             "throttles": "2", "failures": "1", "last_error": "421 busy"})
        return a

    def test_once_prints_every_queue_consumer_and_relay(self):
        self.seed()
        rc, out, err = self.cli("top", "--once", "--queue", "alpha,beta")
        self.assertEqual(rc, 0, err)
        self.assertNotIn("\x1b", out)
        rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
        self.assertEqual(rows["alpha"][1:6], ["running", "2", "0", "2", "0"])
        self.assertRegex(rows["alpha"][6], r"^\d+\.\ds$")
        self.assertEqual(rows["beta"][1:7], ["PAUSED", "0", "0", "2", "0", "-"])
        consumers = [line for line in out.splitlines() if line.startswith("web1-1-x")]
        self.assertEqual(len(consumers), 1, out)  # once, whatever queues it serves
        self.assertEqual(consumers[0].split()[1:7],
                         ["alive", consumers[0].split()[2], "4", "2/8", "web1", "alpha,beta"])
        self.assertIn("?[2Jevil", out)  # masked
        relay = rows["smtp.example.com:587"]
        self.assertEqual(relay[1:6], ["half-open", "4.0/10.0", "0", "2", "1"])
        self.assertIn("421 busy", out)

    def test_refuses_to_loop_without_a_terminal(self):
        rc, out, err = self.cli("top")
        self.assertEqual((rc, out), (64, ""))
        self.assertIn("not a terminal", err)

    def test_once_fails_when_redis_is_down(self):
        env = mailroom_env(redis_url="redis://127.0.0.1:1/0")
        rc, out, err = self.cli("top", "--once", env=env)
        self.assertEqual((rc, out), (69, ""), err)

    def run_in_pty(self, key: bytes):
        """Runs `mailroom top` on a pseudo-terminal, waits for its first frame, types key,
        and returns (exit status, everything it wrote, the terminal's mode before and
        after)."""
        master, slave = pty.openpty()
        self.addCleanup(os.close, master)
        before = termios.tcgetattr(slave)
        def own_terminal():  # a session whose controlling terminal is the pty: ^C signals
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        proc = subprocess.Popen([str(CLI), "top", "--queue", "alpha,beta"], env=self.env,
                                stdin=slave, stdout=slave, stderr=slave, preexec_fn=own_terminal)
        out = b""
        deadline = time.monotonic() + 15
        while b"RELAY" not in out and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                out += os.read(master, 65536)
        during = termios.tcgetattr(slave)
        os.write(master, key)
        try:
            rc = proc.wait(10)
        finally:
            proc.kill()
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        after = termios.tcgetattr(slave)
        os.close(slave)
        return rc, out, before, during, after

    def test_loop_on_a_terminal_quits_on_q_and_restores_it(self):
        self.seed()
        for key in (b"q", b"\x03"):  # q, and Ctrl-C (SIGINT from the terminal)
            with self.subTest(key=key):
                rc, out, before, during, after = self.run_in_pty(key)
                self.assertEqual(rc, 0, out[-2000:])
                self.assertIn(b"\x1b[?1049h", out)  # the alternate screen
                self.assertIn(b"alpha", out)
                self.assertIn(b"PAUSED", out)
                self.assertNotIn(b"\x1b[2Jevil", out)
                self.assertTrue(out.rstrip(b"\r\n").endswith(b"\x1b[?25h\x1b[?1049l"), out[-200:])
                lflag = 3
                self.assertFalse(during[lflag] & termios.ECHO)
                self.assertEqual(after[lflag], before[lflag])


# --------------------------------------------------------------------------- the operator role


def operator_acl(password: str) -> list:
    """The operator's `ACL SETUSER` lines of docs/security.md, split as redis-cli would."""
    text = (REPO_ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    at = text.find(ACL_MARKER)
    assert at >= 0, "docs/security.md: the operator ACL block is missing"
    block = re.search(r"```[^\n]*\n(.*?)```", text[at:], re.S).group(1)
    return [[a.replace("OPERATOR_PASSWORD", password) for a in shlex.split(line)]
            for line in block.splitlines() if line.strip()]


class OperatorAclTest(JobControlCase):

    def test_every_operator_command_runs_with_the_documented_role(self):
        password = new_secret()
        for args in operator_acl(password):
            self.r.execute_command(*args)
        now = redis_ms(self.r)
        a = self.enqueue(to="a@example.com")
        b = self.enqueue(to="b@example.com")
        self.make_retrying(b, now + 3600_000)
        self.r.zadd("mailroom:relays", {"old:25": now - 3 * 86400_000, "smtp:25": now})
        self.r.lpush(Q.dead, json.dumps({"reason": "x", "at": "2020-01-01T00:00:00Z",
                                         "job": "{}", "id": "d1", "state": "failed"}))
        self.r.zadd("mailroom:{suppress}:index", {"lapsed@example.com": now - 1000})
        op = mailroom_env(redis_url=f"redis://mailroom-operator:{password}@{self.rs.host}:"
                                    f"{self.rs.port}/0")
        for args in (("stats",), ("consumers",), ("top", "--once"), ("list",),
                     ("list", "scheduled", "--to", "b@example.com"), ("list", "retrying"),
                     ("retry-now", b), ("cancel", a), ("cancel", b), ("pause",), ("resume",),
                     ("suppress", "add", "x@example.com"), ("suppress", "list"),
                     ("suppress", "check", "x@example.com"), ("suppress", "remove", "x@example.com"),
                     ("dead", "list"), ("dead", "retry", "--all"), ("dead", "purge"),
                     ("watch", "--timeout", "100ms")):
            with self.subTest(args=args):
                rc, out, err = self.cli(*args, env=op)
                self.assertEqual(rc, 0, err)
        self.assertEqual([self.r.hget(Q.job(x), "state") for x in (a, b)], ["cancelled"] * 2)
        # the role is no wider than written: no FLUSHALL, no key outside mailroom:
        c = redis.Redis(host=self.rs.host, port=self.rs.port, username="mailroom-operator",
                        password=password, decode_responses=True)
        self.addCleanup(c.close)
        for cmd in (("FLUSHALL",), ("SET", "other", "1"), ("CONFIG", "GET", "*"), ("KEYS", "*")):
            with self.subTest(cmd=cmd), self.assertRaises(redis.exceptions.NoPermissionError):
                c.execute_command(*cmd)


if __name__ == "__main__":
    unittest.main()
