#!/usr/bin/python3
"""Integration tests of the `mailroom` CLI's delivery and operator commands: send
--wait, send --jsonl, watch, stats, consumers and the dead-letter commands, against a
private redis-server, real mailroom-consumer processes and private SMTP servers (aiosmtpd,
or Postfix's smtp-sink for permanent SMTP errors), all on free 127.0.0.1 ports.

Run: /usr/bin/python3 tests/integration/test_cli.py [-v] [TestClass.test_name]
The binaries come from $MAILROOM_BIN_DIR (default <repo>/build/bin).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import Consumer, mailroom_env, run_cli  # noqa: E402
from support.jobs import job_json, make_job, new_secret, sign_job  # noqa: E402
from support.paths import CLI  # noqa: E402
from support.procs import wait_for  # noqa: E402
from support.smtp_sink import SmtpSink  # noqa: E402
from support.state import dead_entries, Keys, stats  # noqa: E402

SECRET = new_secret()
OTHER_SECRET = new_secret()  # a consumer holding this one rejects SECRET's signatures
SENDER = "noreply@example.com"
Q = Keys("default")
ID_RE = re.compile(r"\A[A-Za-z0-9._:-]{1,128}\Z")


class CliTestCase(ServerTestCase):
    """A Redis per test, the CLI's environment, and the suite's helpers on top of
    support.case.ServerTestCase."""

    LOG_TAIL = 3000

    def setUp(self):
        super().setUp()
        self.rs = self.redis()
        self.r = self.rs.client()
        self.env = mailroom_env(self.rs, secret=SECRET)

    def consumer(self, smtp, secret=SECRET, concurrency=2) -> Consumer:
        env = mailroom_env(self.rs, secret=secret, smtp=smtp)
        return self.start_consumer(env, "--concurrency", str(concurrency))

    def cli(self, *args, timeout=30.0, input=None):
        return run_cli(*args, env=self.env, timeout=timeout, input=input)

    def send_args(self, *extra, subject="Hello", to="rcpt@example.com"):
        return ["send", "--to", to, "--from", SENDER, "--subject", subject,
                "--text", "Hello there.", *extra]

    def tmpdir(self, prefix: str = "mailroom-cli-") -> str:
        return super().tmpdir(prefix)

    def stats_json(self) -> dict:
        rc, out, err = self.cli("stats", "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(out.splitlines()), 1, out)
        return json.loads(out)

    def assert_wait_output(self, out, state):
        """send --wait prints the id, then the status record as one JSON line."""
        lines = out.splitlines()
        self.assertEqual(len(lines), 2, f"stdout={out!r}")
        self.assertRegex(lines[0], ID_RE)
        st = json.loads(lines[1])
        self.assertEqual((st["id"], st["state"]), (lines[0], state), st)
        return lines[0], st


# --------------------------------------------------------------------------- help


class HelpTest(CliTestCase):

    def test_every_subcommand_has_help_on_stdout(self):
        for args in (["--help"], ["-h"], ["help"], ["send", "--help"], ["status", "--help"],
                     ["watch", "--help"], ["stats", "--help"], ["consumers", "--help"],
                     ["dead", "--help"], ["dead", "list", "--help"], ["dead", "retry", "--help"],
                     ["dead", "purge", "--help"], ["help", "dead"], ["help", "watch"]):
            with self.subTest(args=args):
                rc, out, err = self.cli(*args)
                self.assertEqual(rc, 0, err)
                self.assertIn("Usage: mailroom", out)
                self.assertEqual(err, "")

    def test_main_help_documents_the_exit_codes(self):
        rc, out, _ = self.cli("--help")
        self.assertEqual(rc, 0)
        for code in ("0", "1", "2", "64", "65", "69", "73", "75", "78"):
            self.assertRegex(out, rf"(?m)^\s+{code}\s+\S", f"exit code {code} undocumented")
        for command in ("send", "status", "watch", "stats", "consumers", "dead list",
                        "dead retry", "dead purge"):
            self.assertIn(command, out)

    def test_usage_errors_are_64_with_one_line(self):
        for args in (["dead"], ["dead", "bury"], ["dead", "retry"],
                     ["dead", "retry", "x1", "--all"], ["dead", "list", "--all"],
                     ["dead", "purge", "--older-than", "soon"], ["watch", "--limit", "3"],
                     ["watch", "--count", "0"], ["stats", "extra"],
                     ["send", "--jsonl", "-", "--to", "a@example.com"],
                     ["send", "--wait=abc", "--to", "a@example.com", "--from", SENDER,
                      "--subject", "s", "--text", "t"]):
            with self.subTest(args=args):
                rc, out, err = self.cli(*args)
                self.assertEqual(rc, 64, f"stdout={out!r} stderr={err!r}")
                self.assertEqual(len(err.splitlines()), 1, err)
                self.assertTrue(err.startswith("mailroom: "), err)
        self.assertEqual(self.r.dbsize(), 0)


# --------------------------------------------------------------------------- send --wait


class SendWaitTest(CliTestCase):

    def test_wait_alone_exits_0_when_delivered(self):
        rx = self.receiver()
        self.consumer(rx)
        # "--wait" with no value, followed by another option: the 30 s default
        rc, out, err = self.cli("send", "--wait", "--to", "ming@example.com", "--from", SENDER,
                                "--subject", "delivered", "--text", "Hello there.")
        self.assertEqual(rc, 0, f"stdout={out!r} stderr={err!r}")
        job_id, st = self.assert_wait_output(out, "sent")
        self.assertEqual(st["smtp_code"], 250)
        msgs = rx.wait_for_count(1, timeout=5)
        self.assertEqual(msgs[0].message["Subject"], "delivered")
        self.assertEqual(msgs[0].rcpt_tos, ["ming@example.com"])

    def test_wait_exits_2_with_the_reason_when_rejected(self):
        rx = self.receiver()
        self.consumer(rx, secret=OTHER_SECRET)  # cannot verify SECRET's signature
        rc, out, err = self.cli(*self.send_args("--wait", "20", subject="forged?"))
        self.assertEqual(rc, 2, f"stdout={out!r} stderr={err!r}")
        job_id, st = self.assert_wait_output(out, "rejected")
        self.assertRegex(err, rf"\Amailroom: {re.escape(job_id)} rejected: .*signature",
                         "the reason is not on stderr")
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertEqual(rx.count(), 0, "a rejected job was delivered")

    def test_wait_exits_75_when_not_final_in_time(self):
        t0 = time.monotonic()
        rc, out, err = self.cli(*self.send_args("--wait=0.5"))  # no consumer at all
        self.assertEqual(rc, 75, f"stdout={out!r} stderr={err!r}")
        self.assertLess(time.monotonic() - t0, 5)
        job_id, _ = self.assert_wait_output(out, "queued")
        self.assertIn(job_id, err)
        self.assertEqual(self.r.llen(Q.pending), 1, "the job must stay queued")

    def test_duplicate_id_is_refused_73_and_one_mail_arrives(self):
        rx = self.receiver()
        self.consumer(rx, concurrency=1)
        rc, out, err = self.cli(*self.send_args("--id", "signup:42", "--wait", "20",
                                                subject="first"))
        self.assertEqual(rc, 0, err)
        self.assert_wait_output(out, "sent")
        rc, out, err = self.cli(*self.send_args("--id", "signup:42", "--wait", "20",
                                                subject="second"))
        self.assertEqual(rc, 73, f"stdout={out!r} stderr={err!r}")
        self.assertEqual(out, "", "an id was printed for a refused duplicate")
        self.assertIn("signup:42", err)
        # a later mail through the same single worker proves nothing else was queued
        rc, out, err = self.cli(*self.send_args("--wait", "20", subject="marker"))
        self.assertEqual(rc, 0, err)
        subjects = [m.message["Subject"] for m in rx.messages()]
        self.assertEqual(subjects, ["first", "marker"])


# --------------------------------------------------------------------------- send --jsonl


def jsonl_line(i: int, **over) -> str:
    obj = {"to": [f"user{i}@example.com"], "from": SENDER, "from_name": "滴水网",
           "subject": f"Mail {i}", "text": f"Hello {i}\n", "headers": {"X-Seq": str(i)}}
    obj.update(over)
    return json.dumps(obj, ensure_ascii=False)


class SendJsonlTest(CliTestCase):
    N = 10000

    def write(self, lines) -> str:
        path = os.path.join(self.tmpdir(), "mails.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def test_10000_lines_one_bad_enqueues_nothing_then_all(self):
        lines = [jsonl_line(i) for i in range(self.N)]
        lines.insert(3, "")  # blank lines are skipped but still counted as lines
        good = list(lines)
        lines[5000] = jsonl_line(4999, to="user@example.com")  # a string, not an array
        path = self.write(lines)
        rc, out, err = self.cli("send", "--jsonl", path)
        self.assertEqual(rc, 65, f"stderr={err[-2000:]!r}")
        self.assertEqual(out, "", "ids printed although nothing may be enqueued")
        self.assertIn("mailroom: line 5001: ", err)
        self.assertEqual(len([l for l in err.splitlines() if " line " in l]), 1, err)
        self.assertEqual(self.r.dbsize(), 0, "something was enqueued")

        t0 = time.monotonic()
        rc, out, err = self.cli("send", "--jsonl", self.write(good))
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, err[-2000:])
        ids = out.splitlines()
        self.assertEqual(len(ids), self.N)
        self.assertEqual(len(set(ids)), self.N, "duplicate ids printed")
        self.assertEqual(self.r.llen(Q.pending), self.N)
        self.assertLess(elapsed, 10, "10 000 lines took too long")
        self.assertRegex(err, rf"enqueued {self.N}, duplicates 0, failed 0 in [\d.]+ s "
                              r"\(\d+ jobs/s\)")
        # ids in input order: the first line's job is the oldest (right end)
        first = json.loads(self.r.lindex(Q.pending, -1))
        last = json.loads(self.r.lindex(Q.pending, 0))
        self.assertEqual((first["id"], first["subject"]), (ids[0], "Mail 0"))
        self.assertEqual((last["id"], last["subject"]), (ids[-1], f"Mail {self.N - 1}"))
        self.assertEqual(first["headers"], {"X-Seq": "0"})
        self.assertEqual(first["from_name"], "滴水网")

    def test_every_bad_line_is_named(self):
        lines = [jsonl_line(i) for i in range(10)]
        lines[1] = jsonl_line(1, too=["x@example.com"])         # unknown member
        lines[3] = jsonl_line(3, to=["not-an-address"])        # invalid email
        lines[5] = '{"to": ["a@example.com"], '                # truncated JSON
        lines[6] = jsonl_line(6, send_at="tomorrow")           # not RFC 3339
        lines[7] = jsonl_line(7, headers={"X-A": 1})           # wrong type in headers
        lines[8] = "[1, 2]"                                    # not an object
        rc, out, err = self.cli("send", "--jsonl", "-", input="\n".join(lines).encode())
        self.assertEqual(rc, 65, err)
        named = re.findall(r"(?m)^mailroom: line (\d+): ", err)
        self.assertEqual(named, ["2", "4", "6", "7", "8", "9"], err)
        self.assertIn("too", err)
        self.assertEqual(self.r.dbsize(), 0)

    def test_size_limit_is_the_same_for_validation_and_sending(self):
        # every line is validated before any is sent; validation must count the signature
        # the job will get (40 hex digits with hmac-sha1), not a longer one: a job of
        # exactly JOB_MAX_BYTES (256 KiB) once signed is accepted, one byte more refused
        limit = 256 * 1024
        rc, _, err = self.cli("send", "--jsonl", "-",
                              input=jsonl_line(0, id="probe-1", text="a" * 1000).encode())
        self.assertEqual(rc, 0, err)
        def newest_job_bytes():
            return len(self.r.lindex(Q.pending, 0).encode())  # the client decodes UTF-8

        text_len = 1000 + limit - newest_job_bytes()
        rc, _, err = self.cli("send", "--jsonl", "-",
                              input=jsonl_line(0, id="probe-2", text="a" * text_len).encode())
        self.assertEqual(rc, 0, f"a job of exactly {limit} bytes refused: {err!r}")
        self.assertEqual(newest_job_bytes(), limit)
        rc, out, err = self.cli("send", "--jsonl", "-",
                                input=jsonl_line(0, id="probe-3",
                                                 text="a" * (text_len + 1)).encode())
        self.assertEqual((rc, out), (65, ""), err)
        self.assertRegex(err, r"(?m)^mailroom: line 1: .*over the limit of 262144")
        self.assertEqual(self.r.llen(Q.pending), 2)

    def test_c1_controls_in_a_member_name_are_masked_on_stderr(self):
        # U+009B is CSI in the C1 range: a terminal would take "\x9b2J" as "clear screen"
        line = jsonl_line(0).replace('"to":', '"to\u009b2J":', 1)
        rc, out, err = self.cli("send", "--jsonl", "-", input=line.encode())
        self.assertEqual((rc, out), (65, ""), err)
        self.assertRegex(err, r"(?m)^mailroom: line 1: unknown member 'to\?2J'$")
        self.assertNotIn("\x9b", err, "a raw C1 control reached stderr")
        self.assertEqual(self.r.dbsize(), 0)

    def test_duplicates_are_named_and_the_rest_sent_73(self):
        rc, _, err = self.cli(*self.send_args("--id", "taken"))
        self.assertEqual(rc, 0, err)
        lines = [jsonl_line(0, id="a"), jsonl_line(1, id="taken"), jsonl_line(2),
                 jsonl_line(3, id="a")]
        rc, out, err = self.cli("send", "--jsonl", "-", input="\n".join(lines).encode())
        self.assertEqual(rc, 73, f"stdout={out!r} stderr={err!r}")
        ids = out.splitlines()
        self.assertEqual(len(ids), 2, out)
        self.assertEqual(ids[0], "a")
        self.assertRegex(ids[1], ID_RE)
        self.assertRegex(err, r"(?m)^mailroom: line 2: .*'taken'")
        self.assertRegex(err, r"(?m)^mailroom: line 4: .*'a'")
        self.assertIn("enqueued 2, duplicates 2, failed 0", err)
        self.assertEqual(self.r.llen(Q.pending), 3)

    def test_redis_failure_midway_is_69_and_printed_ids_are_what_went_in(self):
        used = int(self.r.info("memory")["used_memory"])
        self.r.config_set("maxmemory", str(used + 2 * 1024 * 1024))
        self.addCleanup(lambda: self.r.config_set("maxmemory", "0"))
        body = "x" * 1000
        lines = [jsonl_line(i, text=body) for i in range(5000)]
        rc, out, err = self.cli("send", "--jsonl", "-", input="\n".join(lines).encode())
        self.r.config_set("maxmemory", "0")
        self.assertEqual(rc, 69, err[-2000:])
        ids = out.splitlines()
        self.assertGreater(len(ids), 0, "Redis failed before the first job")
        self.assertLess(len(ids), len(lines))
        self.assertEqual(self.r.llen(Q.pending), len(ids), "printed ids != jobs enqueued")
        pending_ids = {json.loads(j)["id"] for j in self.r.lrange(Q.pending, 0, -1)}
        self.assertEqual(pending_ids, set(ids))
        self.assertRegex(err, r"mailroom: --jsonl: Redis failed at line \d+")

    def test_redis_failure_after_a_duplicate_names_the_redis_error(self):
        rc, _, err = self.cli(*self.send_args("--id", "taken"))
        self.assertEqual(rc, 0, err)
        used = int(self.r.info("memory")["used_memory"])
        self.r.config_set("maxmemory", str(used + 2 * 1024 * 1024))
        self.addCleanup(lambda: self.r.config_set("maxmemory", "0"))
        # every batch of 500 starts with a duplicate, so the batch Redis fails in has
        # another failure before the Redis one
        lines = [jsonl_line(i, text="x" * 1000, **({"id": "taken"} if i % 500 == 0 else {}))
                 for i in range(5000)]
        rc, out, err = self.cli("send", "--jsonl", "-", input="\n".join(lines).encode())
        self.r.config_set("maxmemory", "0")
        self.assertEqual(rc, 69, err[-2000:])
        self.assertRegex(err, r"(?m)^mailroom: line 1: a job with id 'taken' is already")
        failure = re.search(r"(?m)^mailroom: --jsonl: Redis failed at line \d+: (.*)$", err)
        self.assertIsNotNone(failure, err[-2000:])
        self.assertNotIn("already recorded", failure.group(1),
                         "the Redis failure is described by a duplicate's message")


# --------------------------------------------------------------------------- watch


class WatchTest(CliTestCase):

    def start_watch(self, *args) -> subprocess.Popen:
        proc = subprocess.Popen([str(CLI), "watch", *args], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def stop():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        self.addCleanup(stop)
        wait_for(lambda: proc.poll() is not None or
                 self.r.pubsub_numsub(Q.status)[0][1] >= 1, 5,
                 message="watch to subscribe")
        self.assertIsNone(proc.poll(), "watch exited early")
        return proc

    def test_watch_json_count_prints_events_in_order(self):
        n = 3
        proc = self.start_watch("--json", "--count", str(2 * n))
        rx = self.receiver()
        self.consumer(rx)
        ids = []
        for i in range(n):
            rc, out, err = self.cli(*self.send_args(subject=f"watched {i}"))
            self.assertEqual(rc, 0, err)
            ids.append(out.strip())
        out, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 0, err)
        events = [json.loads(line) for line in out.decode().splitlines()]
        self.assertEqual(len(events), 2 * n, events)
        for job_id in ids:
            states = [e["state"] for e in events if e["id"] == job_id]
            self.assertEqual(states, ["sending", "sent"], f"events of {job_id}: {states}")
        self.assertEqual(list(events[0]), ["id", "queue", "state", "attempts", "smtp_code",
                                           "smtp_reply", "error", "consumer", "at"],
                         "the raw event was not printed as published")

    def test_watch_readable_lines_and_exit_on_timeout_and_sigterm(self):
        proc = self.start_watch("--timeout", "30")
        self.r.publish(Q.status, json.dumps({
            "id": "j1", "queue": "default", "state": "failed", "attempts": 3, "smtp_code": 550,
            "smtp_reply": "550 5.1.1 no such user", "error": "smtp: 550 no\x1b[31m user",
            "consumer": "c1", "at": "2026-11-25T10:00:00.123Z"}))
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5)
        self.assertEqual(proc.returncode, 0, err)
        line = out.decode()
        self.assertRegex(line, r"\A2026-11-25T10:00:00.123Z\s+failed\s+j1\s+#3\s+smtp: 550 no")
        self.assertNotIn("\x1b", line, "colour or a raw escape on a non-terminal")
        # --timeout: exits 0 after a quiet spell
        t0 = time.monotonic()
        rc, out, err = self.cli("watch", "--timeout", "0.5")
        self.assertEqual((rc, out), (0, ""), err)
        self.assertLess(time.monotonic() - t0, 5)


# --------------------------------------------------------------------------- dead letters


class DeadLetterTest(CliTestCase):

    def test_dead_retry_returns_a_failed_job_and_it_is_sent(self):
        sink = self.stack.enter_context(SmtpSink("-f", "data"))  # 5xx on DATA
        bad = self.consumer(sink)
        rc, out, err = self.cli(*self.send_args("--id", "retry-me", "--wait", "20",
                                                subject="second chance"))
        self.assertEqual(rc, 2, f"stdout={out!r} stderr={err!r}")
        self.assert_wait_output(out, "failed")
        self.assertIn("retry-me failed: ", err)
        self.assertEqual(bad.stop(), 0)

        rc, out, err = self.cli("dead", "list", "--json")
        self.assertEqual(rc, 0, err)
        entries = [json.loads(l) for l in out.splitlines()]
        self.assertEqual([(e["id"], e["state"]) for e in entries], [("retry-me", "failed")])
        rc, out, _ = self.cli("dead", "list")
        self.assertRegex(out, r"\A\S+Z\s+failed\s+retry-me\s+\S")

        rc, out, err = self.cli("dead", "retry", "retry-me")
        self.assertEqual((rc, out), (0, "1 returned to pending\n"), err)
        self.assertEqual(self.r.llen(Q.dead), 0)
        self.assertEqual(self.r.llen(Q.pending), 1)
        h = self.r.hgetall(Q.job("retry-me"))
        self.assertEqual((h["state"], h["attempts"], h["error"]), ("queued", "0", ""), h)
        self.assertGreater(self.r.ttl(Q.job("retry-me")), 6 * 86400)

        rx = self.receiver()
        self.consumer(rx)
        msgs = rx.wait_for_count(1, timeout=15)
        self.assertEqual(msgs[0].message["Subject"], "second chance")
        wait_for(lambda: self.r.hget(Q.job("retry-me"), "state") == "sent", 10)
        rc, out, err = self.cli("dead", "list", "--json")
        self.assertEqual((rc, out), (0, ""), err)
        rc, out, err = self.cli("dead", "retry", "retry-me")
        self.assertEqual(rc, 1, "retrying an id with no dead entry must exit 1")
        self.assertIn("retry-me", err)

    def push_dead(self, job_id, at, state="failed", record_state=None, raw=None):
        raw = raw or job_json(sign_job(make_job(job_id or "x"), SECRET))
        entry = {"reason": "smtp: 550 no", "at": at, "consumer": "c1", "job": raw,
                 "id": job_id, "state": state}
        self.r.lpush(Q.dead, json.dumps(entry, separators=(",", ":")))
        if record_state:
            self.r.hset(Q.job(job_id), mapping={"state": record_state, "attempts": "3"})
        return raw

    def test_retry_all_includes_entries_without_id_and_keeps_sent_records(self):
        old = self.push_dead("d1", "2026-01-01T00:00:00.000Z", record_state="failed")
        self.push_dead(None, "2026-01-01T00:00:01.000Z", state="rejected", raw='{"broken"')
        self.push_dead("d3", "2026-01-01T00:00:02.000Z", state="rejected", record_state="sent")
        self.r.lpush(Q.dead, "not json")
        rc, out, err = self.cli("dead", "retry", "--all", "--json")
        self.assertEqual((rc, json.loads(out)), (0, {"retried": 3}), err)
        self.assertEqual(self.r.lrange(Q.dead, 0, -1), ["not json"], "undecodable entry lost")
        # newest entry first onto the right end: the oldest (d1) is taken first
        self.assertEqual(self.r.lindex(Q.pending, -1), old)
        self.assertEqual(self.r.llen(Q.pending), 3)
        self.assertEqual(self.r.hget(Q.job("d1"), "state"), "queued")
        self.assertEqual(self.r.hget(Q.job("d3"), "state"), "sent", "a sent record was reset")

    def test_dead_list_limit_and_purge(self):
        now = time.time()
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".000Z"  # noqa
        self.push_dead("old1", iso(now - 3 * 86400))
        self.push_dead("old2", time.strftime("%Y-%m-%dT%H:%M:%S+08:00",
                                             time.gmtime(now - 2 * 86400 + 8 * 3600)))
        self.push_dead("fresh", iso(now - 60))
        self.push_dead("undated", "yesterday")
        rc, out, err = self.cli("dead", "list", "--limit", "2", "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual([json.loads(l)["id"] for l in out.splitlines()], ["undated", "fresh"])
        rc, out, err = self.cli("dead", "purge", "--older-than", "1d")
        self.assertEqual((rc, out), (0, "2 purged\n"), err)
        self.assertEqual([e["id"] for e in dead_entries(self.r)], ["fresh", "undated"])
        rc, out, err = self.cli("dead", "purge", "--older-than", "30s", "--json")
        self.assertEqual((rc, json.loads(out)), (0, {"purged": 1}), err)
        rc, out, err = self.cli("dead", "purge")
        self.assertEqual((rc, out), (0, "1 purged\n"), err)
        self.assertEqual(self.r.exists(Q.dead), 0)


# --------------------------------------------------------------------------- Redis password


class RedisPasswordTest(CliTestCase):

    def test_every_command_reads_the_password_file(self):
        rc, _, err = self.cli(*self.send_args("--id", "pw-job"))
        self.assertEqual(rc, 0, err)
        password = new_secret()
        path = os.path.join(self.tmpdir(), "redis-password")
        with open(path, "w", encoding="ascii") as f:
            f.write(password + "\n")
        self.r.config_set("requirepass", password)  # this connection stays authenticated
        with_file = dict(self.env, MAILROOM_REDIS_PASSWORD_FILE=path)
        for args in (["stats"], ["stats", "--json"], ["consumers"], ["dead", "list"],
                     ["status", "pw-job"]):
            with self.subTest(args=args):
                rc, out, err = run_cli(*args, env=with_file)
                self.assertEqual(rc, 0, f"stdout={out!r} stderr={err!r}")
                self.assertNotIn(password, out + err)
                rc, out, err = run_cli(*args, env=self.env)
                self.assertEqual(rc, 69, f"without the password: stdout={out!r} stderr={err!r}")
                self.assertIn("NOAUTH", err)


# --------------------------------------------------------------------------- stats


class StatsTest(CliTestCase):

    def test_stats_counts_match_a_run(self):
        rx = self.receiver()
        good = self.consumer(rx)
        for i in range(2):
            rc, _, err = self.cli(*self.send_args("--wait", "20", subject=f"ok {i}"))
            self.assertEqual(rc, 0, err)
        s = self.stats_json()
        self.assertEqual([c["id"] for c in s["consumers"]], [self.r.zrange(Q.consumers, 0, -1)[0]])
        self.assertLess(s["consumers"][0]["heartbeat_age_ms"], 5000)
        self.assertEqual(good.stop(), 0)

        wrong = self.consumer(rx, secret=OTHER_SECRET)
        rc, _, err = self.cli(*self.send_args("--wait", "20", subject="rejected"))
        self.assertEqual(rc, 2, err)
        self.assertEqual(wrong.stop(), 0)

        sink = self.stack.enter_context(SmtpSink("-f", "data"))
        failing = self.consumer(sink)
        rc, _, err = self.cli(*self.send_args("--wait", "20", subject="failed"))
        self.assertEqual(rc, 2, err)
        self.assertEqual(failing.stop(), 0)

        for i in range(3):
            rc, _, err = self.cli(*self.send_args(subject=f"waiting {i}"))
            self.assertEqual(rc, 0, err)
        rc, _, err = self.cli(*self.send_args("--send-at", "2099-01-01T00:00:00Z"))
        self.assertEqual(rc, 0, err)

        s = self.stats_json()
        self.assertEqual(s["counters"], {"sent": 2, "retried": 0, "failed": 1, "rejected": 1,
                                         "recovered": 0, "cancelled": 0}, s)
        self.assertEqual(s["failed_per_min"], 2.0, s)  # a failed job and a rejected one
        self.assertEqual((s["pending"], s["scheduled"], s["scheduled_due"], s["dead"]),
                         (3, 1, 0, 2), s)
        self.assertEqual((s["processing"], s["consumers"]), ({}, []), s)
        self.assertIsInstance(s["sent_per_min"], (int, float))
        self.assertEqual(stats(self.r), {k: v for k, v in s["counters"].items() if v})
        rc, out, err = self.cli("stats")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"(?m)^pending\s+3$")
        self.assertRegex(out, r"(?m)^dead\s+2$")

    def test_consumers_and_processing_from_redis_state(self):
        t = self.r.time()
        now_ms = t[0] * 1000 + t[1] // 1000
        self.r.zadd(Q.consumers, {"live": now_ms, "old": now_ms - 60000})
        self.r.rpush(Q.processing("old"), "job-a", "job-b")
        self.r.rpush(Q.processing("ghost"), "job-c")
        self.r.zadd(Q.scheduled, {"due-job": now_ms - 1000, "later-job": now_ms + 3600000})
        self.r.hset(Q.stats, mapping={"sent": "7", "failed": "1"})
        rc, out, err = self.cli("consumers", "--json")
        self.assertEqual(rc, 0, err)
        rows = {c["id"]: c for c in map(json.loads, out.splitlines())}
        self.assertEqual({k: (v["state"], v["alive"], v["processing"]) for k, v in rows.items()},
                         {"live": ("alive", True, 0), "old": ("silent", False, 2),
                          "ghost": ("unregistered", False, 1)})
        self.assertGreaterEqual(rows["old"]["heartbeat_age_ms"], 60000)
        self.assertIsNone(rows["ghost"]["heartbeat_age_ms"])
        rc, out, err = self.cli("consumers", "--json", "--dead-after", "2m")
        rows = {c["id"]: c for c in map(json.loads, out.splitlines())}
        self.assertEqual(rows["old"]["state"], "alive", out)

        s = self.stats_json()
        self.assertEqual(s["processing"], {"old": 2, "ghost": 1})
        self.assertEqual([(c["id"], c["processing"]) for c in s["consumers"]],
                         [("old", 2), ("live", 0)])
        self.assertEqual((s["scheduled"], s["scheduled_due"]), (2, 1))
        self.assertEqual(s["counters"], {"sent": 7, "retried": 0, "failed": 1, "rejected": 0,
                                         "recovered": 0, "cancelled": 0})
        rc, out, _ = self.cli("consumers")
        self.assertRegex(out, r"(?m)^old\s+silent\s+heartbeat 6\d\.\d s ago, processing 2$")

    def test_sent_per_min_slides_over_two_minutes(self):
        def redis_s():
            sec, usec = self.r.time()
            return sec + usec / 1e6

        before = redis_s()
        minute = int(before // 60)
        if before - minute * 60 > 58:  # too close to a minute boundary: wait it out
            time.sleep(60 - (before - minute * 60) + 0.1)
            before = redis_s()
            minute = int(before // 60)
        self.r.hset(f"{Q.prefix}:minute:{minute - 1}", "sent", 60)
        self.r.hset(f"{Q.prefix}:minute:{minute}", "sent", 6)
        self.r.hset(f"{Q.prefix}:minute:{minute - 2}", "sent", 1000)  # too old to count
        rate = self.stats_json()["sent_per_min"]
        after = redis_s()
        hi = 60 * (1 - (before - minute * 60) / 60) + 6
        lo = 60 * (1 - (after - minute * 60) / 60) + 6
        self.assertGreaterEqual(rate, round(lo, 1) - 0.1)
        self.assertLessEqual(rate, round(hi, 1) + 0.1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
