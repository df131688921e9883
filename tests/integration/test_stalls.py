#!/usr/bin/python3
"""Integration tests of a consumer that stalls (SIGSTOP for longer than --dead-after,
then SIGCONT) and of a relay that hangs: the promises of issue 12 that must hold
without any crash.

- A consumer stopped while it holds a job whose DATA got no 354 yet (mid-transaction)
  and while another of its workers is blocked in its take: the other consumer
  recovers both and sends them; the stalled one, continued, finds at its next step
  that it lost them (a lapsed lease, a job gone from its list) and sends neither.
- A relay that never answers after the content, three times in a row, with
  --max-attempts 4: each hung attempt is one attempt on a connection of its own (a
  timed-out connection is never reused), and the fourth try sends the job.
- SIGTERM while the relay hangs: the consumer is gone within --shutdown-timeout.

Each case has its own redis-server and SMTP server on free 127.0.0.1 ports.
Run: MAILROOM_BIN_DIR=<build>/bin /usr/bin/python3 tests/integration/test_stalls.py [-v]
"""

import os
import signal
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import mailroom_env  # noqa: E402
from support.jobs import new_secret  # noqa: E402
from support.procs import wait_for  # noqa: E402
from support.smtp_script import ScriptedSmtp  # noqa: E402
from support.state import Keys, stats  # noqa: E402

SECRET = new_secret()
Q = Keys("default")


class StallTest(ServerTestCase):

    def test_stalled_consumer_sends_nothing_it_lost(self):
        rs = self.redis()
        r = rs.client()
        # connection 1 is the stalled consumer's: its first DATA waits 4 s for the 354
        srv = self.stack.enter_context(ScriptedSmtp(
            delay_354=lambda conn, n: 4.0 if conn == 1 and n == 1 else 0))
        env = mailroom_env(rs, secret=SECRET, smtp=srv.url)
        a = self.start_consumer(env, "--id", "A", "--concurrency", "2", "--dead-after", "2s",
                                "--block-timeout", "1s")
        wait_for(lambda: r.zscore(Q.consumers, "A"), 10, message="A's first heartbeat")
        held = self.send(env)
        wait_for(lambda: srv.connections >= 1 and r.hget(Q.job(held), "state") == "sending",
                 10, message="A mid-transaction")
        a.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        taken = self.send(env)  # lands in A's blocked take, while A is stopped
        wait_for(lambda: r.llen(Q.processing("A")) == 2, 5,
                 message="the second job in A's processing list")
        b = self.start_consumer(env, "--id", "B", "--concurrency", "2", "--dead-after", "2s")
        self.wait_state(r, held, "sent", timeout=20)
        self.wait_state(r, taken, "sent", timeout=20)
        a.send_signal(signal.SIGCONT)
        wait_for(lambda: a.log().count("lost") >= 2, 15, message="A to drop both jobs")
        time.sleep(2)  # A's first connection got its 354 meanwhile: nothing may follow
        self.assertEqual(sorted(srv.ids()), sorted([held, taken]))
        self.assertEqual(stats(r).get("sent"), 2)
        for job in (held, taken):
            rec = r.hgetall(Q.job(job))
            self.assertEqual(rec["state"], "sent", rec)
            self.assertEqual(rec["consumer"], "B", rec)
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)
        self.assert_queue_drained(r)


class HungRelayTest(ServerTestCase):

    def test_three_hangs_after_the_content_then_sent(self):
        rs = self.redis()
        r = rs.client()
        srv = self.stack.enter_context(ScriptedSmtp(
            delay_250=lambda conn, n: None if conn <= 3 else 0))
        env = mailroom_env(rs, secret=SECRET, smtp=srv.url)
        self.start_consumer(env, "--id", "c1", "--concurrency", "1", "--smtp-timeout", "1s",
                            "--max-attempts", "4", "--backoff-base", "100ms",
                            "--backoff-max", "200ms")
        job = self.send(env)
        rec = self.wait_state(r, job, "sent", timeout=30)
        self.assertEqual(rec["attempts"], "4", rec)
        self.assertEqual(srv.connections, 4, "each hung connection must be dropped")
        self.assertEqual(srv.ids(), [job])

    def test_sigterm_during_a_hang_exits_within_the_timeout(self):
        rs = self.redis()
        r = rs.client()
        srv = self.stack.enter_context(ScriptedSmtp(delay_250=lambda conn, n: None))
        env = mailroom_env(rs, secret=SECRET, smtp=srv.url)
        c = self.start_consumer(env, "--id", "c1", "--concurrency", "2", "--smtp-timeout",
                                "120s", "--shutdown-timeout", "2s")
        job = self.send(env)
        wait_for(lambda: srv.connections >= 1 and r.hget(Q.job(job), "state") == "sending",
                 10, message="the send under way")
        time.sleep(0.5)
        t0 = time.monotonic()
        rc = c.stop(timeout=20)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0)
        self.assertLess(took, 2.0 + 1.5, f"stopped after {took:.1f} s")
        rec = r.hgetall(Q.job(job))
        self.assertEqual(rec["state"], "queued", rec)
        self.assertEqual(r.llen(Q.pending), 1)

    def test_sigterm_with_a_relay_that_hangs_on_quit(self):
        """A warm connection to a relay that never answers QUIT: the consumer's exit
        does not wait on it (libcurl's cleanup waited 120 s for the 221)."""
        rs = self.redis()
        r = rs.client()
        srv = self.stack.enter_context(ScriptedSmtp(hang_quit=True))
        env = mailroom_env(rs, secret=SECRET, smtp=srv.url)
        c = self.start_consumer(env, "--id", "c1", "--concurrency", "1", "--smtp-timeout",
                                "120s", "--shutdown-timeout", "2s")
        job = self.send(env)
        self.wait_state(r, job, "sent")
        t0 = time.monotonic()
        self.assertEqual(c.stop(timeout=20), 0)
        took = time.monotonic() - t0
        self.assertLess(took, 2.0, f"stopped after {took:.1f} s")


if __name__ == "__main__":
    unittest.main()
