#!/usr/bin/python3
"""valgrind memcheck on one real mailroom-consumer: no memory errors, no leaks.

One consumer runs under `valgrind --tool=memcheck --leak-check=full` against a private
redis-server and an aiosmtpd receiver on free 127.0.0.1 ports, and is driven through
the interesting paths: valid jobs (one Chinese with an HTML part, one with several
recipients and extra headers), SMTP connection recycling, a forged signature and a
garbage string (rejected), a 550 at RCPT (failed), a 451 at RCPT followed by success
(retrying, then sent), and a redelivered job that was already sent (duplicate). When
every job is terminal it gets SIGTERM and must exit 0 (not valgrind's 99) with
"ERROR SUMMARY: 0 errors" and no definitely, indirectly or possibly lost bytes.
"Still reachable" blocks (one-time library state) do not count.

Run: MAILROOM_BIN_DIR=<build>/bin /usr/bin/python3 tests/integration/test_memcheck.py [-v]
valgrind slows the consumer 20-50x, so counts are small and deadlines generous.
"""

import contextlib
import glob
import os
import re
import shutil
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import Consumer, mailroom_env  # noqa: E402
from support.jobs import enqueue_raw, job_json, make_job, new_secret, sign_job  # noqa: E402
from support.messages import message_id_for, parse_message  # noqa: E402
from support.procs import wait_for  # noqa: E402
from support.smtp_receiver import SmtpServer  # noqa: E402
from support.state import dead_entries, Keys, processing_lengths, stats  # noqa: E402

SECRET = new_secret()
SENDER = "noreply@example.com"
Q = Keys("default")
BOUNCE = "bounce@example.com"   # every RCPT TO answered 550
FLAKY = "flaky@example.com"     # the first RCPT TO answered 451, then accepted
VALGRIND = shutil.which("valgrind")

JOB_DEADLINE = 60.0      # every job terminal within this (under valgrind)
STOP_TIMEOUT = 60.0      # SIGTERM to exit, leak check included


# --------------------------------------------------------------------------- SMTP receiver


class _Handler:
    def __init__(self, rx: "ScriptedReceiver"):
        self.rx = rx

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        rx = self.rx
        with rx.lock:
            rx.rcpts.append(address)
            n = rx.rcpts.count(address)
        if address == BOUNCE:
            return "550 5.1.1 no such user"
        if address == FLAKY and n == 1:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        rx = self.rx
        with rx.lock:
            rx.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                bytes(envelope.original_content or envelope.content or b"")))
            n = len(rx.messages)
        return f"250 2.0.0 Ok: queued as MC{n:06d}"


class ScriptedReceiver(SmtpServer):
    """aiosmtpd on 127.0.0.1:<free port>: refuses BOUNCE with 550 and the first RCPT of
    FLAKY with 451 (both at RCPT TO), accepts and records everything else."""

    def __init__(self):
        super().__init__(_Handler(self))
        self.lock = threading.Lock()
        self.rcpts = []
        self.messages = []

    def received(self) -> list:
        with self.lock:
            return list(self.messages)


# --------------------------------------------------------------------------- consumer


class ValgrindConsumer(Consumer):
    """support.consumer.Consumer started under valgrind memcheck (the valgrind process
    is the consumer process: signals reach it directly)."""

    def __init__(self, env: dict, log_dir: str, *args: str):
        self.vg_log_pattern = os.path.join(log_dir, "vg.%p.log")
        super().__init__(env, *args, wrap=[
            VALGRIND, "--tool=memcheck", "--leak-check=full",
            "--show-leak-kinds=definite,indirect,possible",
            "--errors-for-leak-kinds=definite,indirect,possible",
            "--error-exitcode=99", "--track-fds=no", "--num-callers=30",
            f"--log-file={self.vg_log_pattern}",
        ])

    def vg_logs(self) -> dict:
        """{path: text} of every valgrind log written (one per process; one expected)."""
        out = {}
        for p in sorted(glob.glob(self.vg_log_pattern.replace("%p", "*"))):
            with open(p, encoding="utf-8", errors="replace") as f:
                out[p] = f.read()
        return out


# --------------------------------------------------------------------------- the test


class MemcheckTest(ServerTestCase):

    def setUp(self):
        super().setUp()
        if not VALGRIND:
            self.fail("valgrind is not installed (apt-get install valgrind)")
        self.tmp = self.tmpdir(prefix="mailroom-memcheck-")
        self.consumer = None

    def _dump_logs_if_failed(self):
        """Stops the consumer first (valgrind writes its summary at exit), then shows its
        log and valgrind's."""
        if not self._failed() or self.consumer is None:
            return
        c = self.consumer
        if c.alive():  # let valgrind write its summary before the log is read
            with contextlib.suppress(Exception):
                c.stop(timeout=STOP_TIMEOUT)
        sys.stderr.write(f"\n----- consumer log (last 6000 chars) -----\n{c.log()[-6000:]}\n")
        for path, text in c.vg_logs().items():
            sys.stderr.write(f"\n----- valgrind log {os.path.basename(path)} -----\n{text}\n")

    # ---- helpers

    def wait_states(self, r, expected: dict, timeout: float) -> None:
        """Waits until every job id in expected has its state (terminal states only)."""
        def all_there():
            got = {j: r.hget(Q.job(j), "state") for j in expected}
            return got == expected or None
        try:
            wait_for(all_there, timeout, 0.1, "every job to reach its final state")
        except AssertionError as e:
            now = {j: r.hgetall(Q.job(j)) for j in expected}
            raise AssertionError(f"{e}\nexpected: {expected}\nrecords now: {now}") from None

    # ---- the test

    def test_one_consumer_has_no_memory_errors_or_leaks(self):
        t0 = time.monotonic()
        rs = self.redis()
        rx = self.stack.enter_context(ScriptedReceiver())
        r = rs.client()
        listener = self.listener(rs)
        env = mailroom_env(rs, secret=SECRET, smtp=rx)

        c = ValgrindConsumer(env, self.tmp, "--id", "memcheck-1", "--concurrency", "2",
                             "--block-timeout", "250ms", "--backoff-base", "200ms",
                             "--backoff-max", "1s", "--max-per-connection", "3",
                             "--shutdown-timeout", "30s")
        self.consumer = c
        self.stack.enter_context(c)

        # -- the jobs, enqueued while valgrind is still starting the consumer
        html_path = os.path.join(self.tmp, "body.html")
        with open(html_path, "w", encoding="utf-8") as f:
            f.write('<p>王小明，您好：</p>\n<p><a href="https://example.com/activate?t=abc">'
                    '激活账户</a></p>\n')
        zh_subject = "请激活您的账户"
        zh_text = "王小明，您好：\n\n点击链接激活您的账户：https://example.com/activate?t=abc\n" \
                  + "长" * 200 + "\n.以句点开头的一行\n"
        sent_ids = []
        zh_id = self.send(env, "--from-name", "滴水网", "--html-file", html_path,
                          to=["王小明 <ming@example.com>"], subject=zh_subject, text=zh_text)
        sent_ids.append(zh_id)
        multi_id = self.send(env, "--cc", "Copy <cc@example.com>", "--bcc", "bcc@example.com",
                             "--reply-to", "support@example.com",
                             "--header", "List-Id: <news.example.com>",
                             "--header", "X-Campaign: memcheck",
                             to=["one@example.com", "Two <two@example.com>"],
                             subject="several recipients", text="x" * 1500)
        sent_ids.append(multi_id)
        for i in range(7):
            sent_ids.append(self.send(env, to=[f"user{i}@example.com"], subject=f"plain {i}",
                                      text=f"message number {i}\n"))

        # the job that will be redelivered after it was sent: its raw bytes are needed
        dup_job = sign_job(make_job(to=["dup@example.com"], subject="redelivered"), SECRET)
        dup_raw = job_json(dup_job)
        enqueue_raw(r, dup_raw, job_id=dup_job["id"])
        sent_ids.append(dup_job["id"])  # 10 jobs to be sent: zh, multi, 7 plain, dup

        flaky_id = self.send(env, to=[FLAKY], subject="451 once, then fine")
        bounce_id = self.send(env, to=[BOUNCE], subject="550 at RCPT")

        genuine = sign_job(make_job(to=["victim@example.com"], subject="code 1234"), SECRET)
        forged = dict(genuine, subject="code 9999 — click http://evil.example")
        enqueue_raw(r, job_json(forged), record=False)
        garbage = 'this is not a job {"id": '
        enqueue_raw(r, garbage, record=False)

        expected = {j: "sent" for j in sent_ids}
        expected.update({flaky_id: "sent", bounce_id: "failed", forged["id"]: "rejected"})
        self.wait_states(r, expected, JOB_DEADLINE)
        self.assertTrue(c.alive(), "the consumer exited while jobs were processed")

        # -- redelivery of an already-sent job: acknowledged as a duplicate, not resent
        r.lpush(Q.pending, dup_raw)
        listener.wait_for_state(dup_job["id"], "duplicate", timeout=JOB_DEADLINE)
        wait_for(lambda: r.llen(Q.pending) == 0 and not any(processing_lengths(r).values()),
                 JOB_DEADLINE, 0.1, "pending and processing lists to drain")
        wait_for(lambda: r.llen(Q.dead) == 3, 10, 0.1, "3 entries on the dead list")

        # -- shut down and collect valgrind's verdict
        t_stop = time.monotonic()
        rc = c.stop(timeout=STOP_TIMEOUT)
        stop_s = time.monotonic() - t_stop
        self.assertFalse(c.timed_out, f"the consumer did not exit within {STOP_TIMEOUT:g}s "
                                      "of SIGTERM")
        logs = c.vg_logs()
        self.assertEqual(len(logs), 1, f"expected one valgrind log, got {list(logs)}")
        vg = next(iter(logs.values()))
        self.assertNotEqual(rc, 99, "valgrind reported errors or leaks (exit code 99)")
        self.assertEqual(rc, 0, f"consumer exit code {rc}")
        self.assertRegex(vg, r"ERROR SUMMARY: 0 errors from 0 contexts",
                         "valgrind reported errors")
        if "All heap blocks were freed" not in vg:
            self.assertIn("LEAK SUMMARY", vg, "no leak summary in the valgrind log")
            for kind in ("definitely lost", "indirectly lost", "possibly lost"):
                self.assertRegex(vg, rf"{kind}: 0 bytes in 0 blocks", f"{kind} is not zero")
        self.assertNotRegex(vg, r"Invalid (read|write|free)|uninitialised|"
                                r"Mismatched free|overlap", "memcheck error reports")

        # -- every job ended as expected
        for j in sent_ids:
            h = r.hgetall(Q.job(j))
            self.assertEqual((h.get("state"), h.get("attempts")), ("sent", "1"), (j, h))
        h = r.hgetall(Q.job(flaky_id))
        self.assertEqual((h.get("state"), h.get("attempts")), ("sent", "2"), h)
        self.assertEqual(listener.states(flaky_id), ["sending", "retrying", "sending", "sent"])
        h = r.hgetall(Q.job(bounce_id))
        self.assertEqual((h.get("state"), h.get("smtp_code")), ("failed", "550"), h)
        self.assertIn("no such user", h.get("smtp_reply", ""), h)
        h = r.hgetall(Q.job(forged["id"]))
        self.assertRegex(h.get("error", ""), "(?i)signature", h)
        self.assertEqual(listener.states(dup_job["id"]), ["sending", "sent", "duplicate"])

        dead = dead_entries(r)
        self.assertEqual(sorted(d.get("state", "?") for d in dead if d.get("id")),
                         ["failed", "rejected"], dead)
        self.assertEqual(len([d for d in dead if d.get("job") == garbage]), 1, dead)
        self.assertEqual({d.get("id") for d in dead if d.get("id")}, {bounce_id, forged["id"]})

        st = stats(r)
        self.assertEqual((st.get("sent"), st.get("failed"), st.get("rejected"),
                          st.get("retried")), (11, 1, 2, 1), st)

        # what the SMTP server received: every sent job once, nothing else
        got = rx.received()
        ids = [parse_message(raw)["Message-ID"] for _, _, raw in got]
        self.assertEqual(sorted(ids), sorted(message_id_for(j, SENDER)
                                             for j in sent_ids + [flaky_id]))
        for mail_from, rcpts, raw in got:
            self.assertEqual(mail_from, SENDER)
            self.assertNotIn(BOUNCE, rcpts)
        by_id = {parse_message(raw)["Message-ID"]: (rcpts, raw) for _, rcpts, raw in got}
        zh = parse_message(by_id[message_id_for(zh_id, SENDER)][1])
        self.assertEqual(str(zh["Subject"]), zh_subject)
        self.assertEqual([p.get_content_type() for p in zh.iter_parts()],
                         ["text/plain", "text/html"])
        self.assertEqual(zh.get_body(("plain",)).get_content().replace("\r\n", "\n"), zh_text)
        self.assertEqual(sorted(by_id[message_id_for(multi_id, SENDER)][0]),
                         ["bcc@example.com", "cc@example.com", "one@example.com",
                          "two@example.com"])
        self.assertEqual(rx.rcpts.count(FLAKY), 2)
        self.assertEqual(rx.rcpts.count(BOUNCE), 1)

        summary = [ln.split("== ", 1)[-1] for ln in vg.splitlines()
                   if re.search(r"(HEAP|LEAK|ERROR) SUMMARY|in use at exit|total heap usage|"
                                r"lost:|reachable:|suppressed:|heap blocks were freed", ln)]
        sys.stderr.write(f"\n[memcheck] jobs + shutdown in {time.monotonic() - t0:.1f}s "
                         f"(shutdown and leak check {stop_s:.1f}s)\n  "
                         + "\n  ".join(summary) + "\n")


if __name__ == "__main__":
    unittest.main()
