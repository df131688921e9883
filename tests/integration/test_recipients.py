#!/usr/bin/python3
"""Integration tests of every recipient's answer (issue 13, items 3 and 4): a relay
that refuses one recipient of three for good delivers to the other two and the job
ends sent with that recipient marked rejected; a relay that answers 4xx to one
recipient leaves only that one owed, and the retry sends to it alone; every refusal
makes the job failed; the relay's queue id is kept as relay_id. The record, the events,
`mailroom status` and `mailroom watch` all say it.

Each case has its own redis-server and aiosmtpd receiver on free 127.0.0.1 ports.
Run: MAILROOM_BIN_DIR=<build>/bin /usr/bin/python3 tests/integration/test_recipients.py [-v]
"""

import json
import os
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import mailroom_env, run_cli  # noqa: E402
from support.jobs import new_secret  # noqa: E402
from support.paths import CLI  # noqa: E402
from support.state import Keys, stats  # noqa: E402

SECRET = new_secret()
Q = Keys("default")
THREE = ("a@example.com", "b@example.com", "c@example.com")


class RecipientsTest(ServerTestCase):

    def setUp(self):
        super().setUp()
        self.rs = self.redis()
        self.r = self.rs.client()

    def start(self, rx, *args):
        env = mailroom_env(self.rs, secret=SECRET, smtp=rx)
        self.start_consumer(env, "--id", "c1", "--backoff-base", "200ms",
                            "--backoff-max", "500ms", *args)
        return env

    def test_one_of_three_refused(self):
        listener = self.listener(self.rs)
        rx = self.receiver(rcpt_refusals={"c@example.com": ["550 5.1.1 <c@example.com>: "
                                                            "Recipient address rejected"]})
        env = self.start(rx)
        job = self.send(env, to=THREE)
        rec = self.wait_state(self.r, job, "sent")
        msgs = rx.wait_for_count(1)
        self.assertEqual(sorted(msgs[0].rcpt_tos), ["a@example.com", "b@example.com"])
        got = json.loads(rec["recipients"])
        self.assertEqual({a: got[a]["state"] for a in got},
                         {"a@example.com": "sent", "b@example.com": "sent",
                          "c@example.com": "rejected"})
        self.assertEqual(got["c@example.com"]["code"], 550)
        self.assertIn("Recipient address rejected", got["c@example.com"]["reply"])
        self.assertIn("1 of 3 recipients refused", rec["error"])
        self.assertTrue(rec["relay_id"].startswith("MR"), rec)
        ev = listener.wait_for_state(job, "sent")
        self.assertEqual(ev["recipients"], got)
        self.assertEqual(ev["relay_id"], rec["relay_id"])
        rc, out, err = run_cli("status", job, env=env)
        self.assertEqual(rc, 0, err)
        status = json.loads(out)
        self.assertEqual(status["recipients"]["c@example.com"]["state"], "rejected")
        self.assertEqual(status["relay_id"], rec["relay_id"])

    def test_4xx_on_one_recipient_is_retried_alone(self):
        rx = self.receiver(rcpt_refusals={"b@example.com": ["451 4.2.1 Mailbox busy"]})
        env = self.start(rx)
        job = self.send(env, to=THREE)
        rec = self.wait_state(self.r, job, "sent", timeout=20)
        msgs = rx.wait_for_count(2)
        self.assertEqual([sorted(m.rcpt_tos) for m in msgs],
                         [["a@example.com", "c@example.com"], ["b@example.com"]])
        self.assertEqual(rec["attempts"], "2", rec)
        got = json.loads(rec["recipients"])
        self.assertEqual({a: got[a]["state"] for a in got}, dict.fromkeys(THREE, "sent"))
        self.assertNotIn("owed", rec)
        self.assertEqual(stats(self.r).get("sent"), 1)

    def test_every_recipient_refused(self):
        no = ["550 5.1.1 user unknown"]
        rx = self.receiver(rcpt_refusals={a: list(no) for a in THREE})
        env = self.start(rx)
        job = self.send(env, to=THREE)
        rec = self.wait_state(self.r, job, "failed")
        got = json.loads(rec["recipients"])
        self.assertEqual({got[a]["state"] for a in got}, {"rejected"})
        self.assertEqual(rx.messages(), [])

    def test_watch_shows_recipients_and_relay_id(self):
        rx = self.receiver(rcpt_refusals={"c@example.com": ["550 5.1.1 user unknown"]})
        env = self.start(rx)
        watch = subprocess.Popen([str(CLI), "watch", "--count", "2"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(watch.kill)
        time.sleep(0.5)  # subscribed
        job = self.send(env, to=THREE)
        out, err = watch.communicate(timeout=15)
        self.assertEqual(watch.returncode, 0, err)
        sent = [line for line in out.splitlines() if job in line and " sent " in line]
        self.assertEqual(len(sent), 1, out)
        self.assertRegex(sent[0], r"relay id MR\d+")
        self.assertIn("c@example.com rejected 550", sent[0])
        self.assertIn("a@example.com sent 250", sent[0])


if __name__ == "__main__":
    unittest.main()
