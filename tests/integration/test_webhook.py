#!/usr/bin/python3
"""Integration tests of mailroom-webhook (webhook/, docs/webhook.md) against a private
redis-server, a real mailroom-consumer and SMTP receiver, and an HTTP receiver in the
test (tests/support/webhook.py: Python's http.server on 127.0.0.1) that verifies every
delivery's signature with the reference definition tests/tools/webhook_sign.py.

  DeliveryTest      a sent mail's outcome: the receiver fails the first two deliveries
                    (HTTP 500) and sees the third, signed, with the same delivery id;
                    the delivery state in mailroom:{Q}:webhook; only final outcomes are
                    posted; given up after --max-age and recorded
  ResumeTest        a restart while the application is down resumes from the group's
                    pending events; a second instance takes over the events of one
                    killed with -9
  AclTest           the webhook's Redis role of docs/security.md, applied verbatim
  ConfigTest        refused configurations (exit 78), no secret in logs or argv

Run: /usr/bin/python3 tests/integration/test_webhook.py [-v] [TestClass.test_name]
"""

import json
import os
import re
import shlex
import signal
import sys
import time
import unittest

import redis  # python3-redis

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import mailroom_env  # noqa: E402
from support.jobs import new_secret  # noqa: E402
from support.procs import free_port, proc_text, run, wait_for  # noqa: E402
from support.paths import REPO_ROOT, WEBHOOK  # noqa: E402
from support.state import Keys  # noqa: E402
from support.webhook import HookReceiver, Webhook  # noqa: E402

SECRET = new_secret()                      # the queue's signing key
HOOK_SECRET = "whsec-" + new_secret()      # the webhook's
Q = Keys("default")
FAST = ("--backoff-base", "200ms", "--backoff-max", "1s")


def event(job_id, state, at="2026-12-01T00:00:00.000Z", **extra):
    e = {"id": job_id, "queue": "default", "state": state, "attempts": 1, "smtp_code": None,
         "smtp_reply": "", "error": "", "consumer": "c1", "at": at}
    e.update(extra)
    return json.dumps(e, separators=(",", ":"))


class WebhookTestCase(ServerTestCase):

    def setUp(self):
        super().setUp()
        if not os.access(WEBHOOK, os.X_OK):
            self.fail(f"{WEBHOOK} not built")
        self.rs = self.redis()
        self.r = self.rs.client()

    def env(self, **extra):
        return mailroom_env(self.rs, secret=SECRET, MAILROOM_WEBHOOK_SECRET=HOOK_SECRET, **extra)

    def hook_receiver(self, **kw) -> HookReceiver:
        return self.stack.enter_context(HookReceiver(HOOK_SECRET, **kw))

    def webhook(self, url, *args, env=None, ready=True) -> Webhook:
        w = self.stack.enter_context(Webhook(env or self.env(), "--url", url, *args))
        self.addCleanup(self._dump_if_failed, w)
        return w.wait_ready() if ready else w

    def _dump_if_failed(self, w):
        if self._failed():
            sys.stderr.write(f"\n----- webhook {w.args} log -----\n{w.log_tail(6000)}\n")

    def xadd(self, payload) -> str:
        return self.r.xadd(Q.events, {"event": payload})

    def state(self) -> dict:
        return self.r.hgetall(Q.webhook)

    def pending(self, group="webhook") -> int:
        return self.r.xpending(Q.events, group)["pending"]


class DeliveryTest(WebhookTestCase):

    def test_fails_twice_then_delivered(self):
        """A real consumer sends a mail; the receiver answers 500 twice, then 204: three
        signed attempts of one delivery, acknowledged after the 2xx, and the state."""
        rx = self.hook_receiver(fail_first=2)
        smtp = self.receiver()
        env = self.env(MAILROOM_SMTP_URL=smtp.url)
        hook = self.webhook(rx.url + "?token=kept-out", *FAST, env=env)
        self.start_consumer(env, "--id", "c1")
        job_id = self.send(env, to="ming@example.com")
        smtp.wait_for_count(1)
        got = rx.wait_for(lambda d: any(x.status == 204 for x in d), what="a 2xx")
        self.assertEqual([d.status for d in got], [500, 500, 204])
        self.assertEqual([d.why for d in got], ["", "", ""], "a signature did not verify")
        self.assertEqual([d.headers["X-Mailroom-Attempt"] for d in got], ["1", "2", "3"])
        ids = {d.delivery_id for d in got}
        self.assertEqual(len(ids), 1, ids)
        delivery_id = ids.pop()
        self.assertRegex(delivery_id, r"^default/\d+-\d+$")
        stream_id = delivery_id.split("/", 1)[1]
        body = got[-1].event
        self.assertEqual((body["id"], body["state"], body["delivery_id"]),
                         (job_id, "sent", delivery_id))
        self.assertEqual(body["recipients"]["ming@example.com"]["state"], "sent")
        self.assertEqual(got[-1].headers["Content-Type"], "application/json")
        raw_event = self.r.xrange(Q.events, stream_id, stream_id)[0][1]["event"]
        self.assertEqual({k: v for k, v in body.items() if k != "delivery_id"},
                         json.loads(raw_event))
        # the attempts were spaced by the backoff, not sent back to back
        self.assertGreater(got[1].at - got[0].at, 0.05)

        st = wait_for(lambda: (s := self.state()).get("delivered") == "1" and s, 10,
                      message="delivered counter")
        self.assertEqual((st["last_status"], st["last_error"], st["stream_id"]),
                         ("204", "", stream_id))
        self.assertEqual(st["url"], rx.url)
        self.assertNotIn("kept-out", json.dumps(st) + hook.log())
        self.assertRegex(st["last_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        wait_for(lambda: self.state().get("lag") == "0", 10, message="lag 0")
        self.assertEqual(self.pending(), 0)
        self.assertEqual(self.state().get("failed", "0"), "0")
        # only the outcome went out: "sending" was acknowledged without a post
        self.assertEqual({d.event["state"] for d in rx.deliveries()}, {"sent"})
        self.assertRegex(hook.log(), r"attempt 1 failed: HTTP 500: not now")
        self.assertNotIn(HOOK_SECRET, hook.log())

    def test_only_final_outcomes_are_posted(self):
        """Every state an event can have goes into the stream; exactly the final ones
        (sent, failed, rejected, cancelled) are posted, in stream order, and every
        event is acknowledged."""
        rx = self.hook_receiver()
        self.webhook(rx.url, *FAST)
        states = ["queued", "sending", "retrying", "recovered", "duplicate", "sent", "failed",
                  "rejected", "cancelled"]
        ids = {s: self.xadd(event("j-" + s, s)) for s in states}
        self.xadd("not json")
        self.r.xadd(Q.events, {"other": "field"})
        got = rx.wait_for(lambda d: len(d) >= 4, what="4 outcomes")
        time.sleep(0.5)  # nothing more comes
        got = rx.deliveries()
        self.assertEqual([d.event["state"] for d in got], ["sent", "failed", "rejected",
                                                            "cancelled"])
        self.assertEqual([d.delivery_id for d in got],
                         ["default/" + ids[s] for s in ("sent", "failed", "rejected",
                                                        "cancelled")])
        wait_for(lambda: self.pending() == 0 and self.state().get("delivered") == "4", 10,
                 message="everything acknowledged")

    def test_gives_up_after_max_age_and_records_it(self):
        rx = self.hook_receiver(fail_first=10**6)
        hook = self.webhook(rx.url, *FAST, "--max-age", "2s")
        stream_id = self.xadd(event("j-old", "failed", error="550 no such user"))
        failed = wait_for(lambda: self.r.lrange(Q.webhook_failed, 0, -1), 30,
                          message="a given-up record")
        entry = json.loads(failed[0])
        self.assertEqual((entry["stream_id"], entry["delivery_id"], entry["id"], entry["state"]),
                         (stream_id, "default/" + stream_id, "j-old", "failed"))
        self.assertGreaterEqual(entry["attempts"], 2)
        self.assertIn("HTTP 500", entry["error"])
        st = self.state()
        self.assertEqual((st["failed"], st.get("delivered", "0"), st["last_status"]),
                         ("1", "0", "500"))
        self.assertEqual(self.pending(), 0, "a given-up event stays pending")
        n = len(rx.deliveries())
        time.sleep(1.5)
        self.assertEqual(len(rx.deliveries()), n, "attempts after giving up")
        self.assertRegex(hook.log(), r"gave up delivery default/\S+ \(failed\) after \d+ attempts")


class ResumeTest(WebhookTestCase):

    def test_restart_while_the_application_is_down(self):
        """The application refuses connections; the webhook is restarted meanwhile; when
        the application comes up, the second run delivers from its pending events,
        nothing lost, each delivery once."""
        port = free_port()
        url = f"http://127.0.0.1:{port}/hook"
        hook = self.webhook(url, *FAST, "--id", "w1")
        sids = [self.xadd(event(f"j{i}", "sent")) for i in range(3)]
        wait_for(lambda: self.pending() == 3, 10, message="3 events pending")
        wait_for(lambda: "Connection refused" in self.state().get("last_error", "") or
                 "connect" in self.state().get("last_error", "").lower(), 10,
                 message="a failed attempt in the state")
        self.assertEqual(hook.stop(), 0, "SIGTERM: exit 0")
        self.assertRegex(hook.log(), r"3 events waiting for a retry stay pending")
        sids.append(self.xadd(event("j3", "sent")))  # while no webhook runs
        rx = self.hook_receiver(port=port)
        self.webhook(url, *FAST, "--id", "w1")
        got = rx.wait_for(lambda d: len(d) >= 4, what="4 deliveries")
        time.sleep(0.5)
        got = rx.deliveries()
        self.assertEqual(sorted(d.delivery_id for d in got), sorted("default/" + s for s in sids))
        self.assertTrue(all(d.status == 204 and d.why == "" for d in got))
        wait_for(lambda: self.pending() == 0, 10, message="all acknowledged")

    def test_second_instance_takes_over_a_killed_one(self):
        port = free_port()
        url = f"http://127.0.0.1:{port}/hook"
        quick = ("--timeout", "500ms", "--backoff-base", "100ms", "--backoff-max", "500ms",
                 "--claim-after", "2s")
        a = self.webhook(url, *quick, "--id", "a")
        sids = [self.xadd(event(f"k{i}", "rejected")) for i in range(3)]
        wait_for(lambda: self.pending() == 3, 10, message="3 events held by a")
        a.kill()
        rx = self.hook_receiver(port=port)
        self.webhook(url, *quick, "--id", "b")
        got = rx.wait_for(lambda d: len(d) >= 3, 20, what="3 deliveries by b")
        self.assertEqual(sorted(d.delivery_id for d in got), sorted("default/" + s for s in sids))
        consumers = {c["name"]: c["pending"] for c in
                     self.r.xinfo_consumers(Q.events, "webhook")}
        wait_for(lambda: self.pending() == 0, 10, message="all acknowledged")
        self.assertIn("b", consumers)


def webhook_acl(password: str) -> list:
    """The ACL SETUSER lines of docs/security.md's webhook block, split as redis-cli
    splits them, with the password placeholder replaced."""
    text = (REPO_ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    at = text.find("<!-- acl-rules-webhook:")
    assert at >= 0, "docs/security.md: no webhook ACL block"
    block = re.search(r"```[^\n]*\n(.*?)```", text[at:], re.S).group(1)
    return [[a.replace("WEBHOOK_PASSWORD", password) for a in shlex.split(line)]
            for line in block.splitlines() if line.strip().upper().startswith("ACL SETUSER")]


class AclTest(WebhookTestCase):

    def test_runs_under_the_documented_acl(self):
        """The webhook role of docs/security.md, applied verbatim: the webhook delivers,
        retries, gives up and writes its state with it, and the role reads no job."""
        password = new_secret()
        for cmd in webhook_acl(password):
            self.r.execute_command(*cmd)
        pw_file = os.path.join(self.tmpdir(), "redis-password")
        with open(pw_file, "w") as f:
            f.write(password + "\n")
        env = mailroom_env(redis_url=f"redis://mailroom-webhook:@127.0.0.1:{self.rs.port}/0",
                           MAILROOM_REDIS_PASSWORD_FILE=pw_file,
                           MAILROOM_WEBHOOK_SECRET=HOOK_SECRET)
        rx = self.hook_receiver(fail_first=1)
        hook = self.webhook(rx.url, *FAST, "--max-age", "3s", env=env)
        self.xadd(event("j-sending", "sending"))
        sent = self.xadd(event("j-acl", "sent"))
        rx.wait_for(lambda d: [x.status for x in d] == [500, 204], what="a retry, then a 2xx")
        wait_for(lambda: self.state().get("stream_id") == sent and
                 self.state().get("lag") == "0", 10, message="state written")
        rx.fail_first = 10**6
        self.xadd(event("j-lost", "failed"))
        wait_for(lambda: self.r.llen(Q.webhook_failed) == 1, 30, message="a given-up record")
        self.assertNotIn("NOPERM", hook.log())
        self.assertNotIn("cannot write", hook.log())
        role = self.rs.client()
        role.execute_command("AUTH", "mailroom-webhook", password)
        self.r.hset(Q.job("x"), "state", "queued")
        with self.assertRaises(redis.exceptions.NoPermissionError):
            role.hgetall(Q.job("x"))
        with self.assertRaises(redis.exceptions.NoPermissionError):
            role.lrange(Q.pending, 0, -1)


class ConfigTest(WebhookTestCase):

    def run_webhook(self, *args, env=None):
        return run([WEBHOOK, *args], env=env or self.env(), timeout=10)

    def test_refused_configurations(self):
        cases = [
            (["--url", "https://user:pa55word@app.example.com/h"], "credentials"),
            (["--url", "http://app.example.com/h"], "not loopback"),
            (["--url", "ftp://127.0.0.1/h"], "http"),
            (["--url", "https://a.example/h", "--redis", "redis://:pa55word@127.0.0.1/0"],
             "password"),
        ]
        for args, want in cases:
            with self.subTest(args=args):
                rc, out, err = self.run_webhook(*args)
                self.assertEqual(rc, 78, err)
                self.assertIn(want, err)
                self.assertNotIn("pa55word", err)
        rc, out, err = self.run_webhook("--url", "https://a.example/h",
                                        env=mailroom_env(self.rs))
        self.assertEqual((rc, "no signing secret" in err), (78, True), err)
        rc, out, err = self.run_webhook(
            "--url", "https://a.example/h",
            env=mailroom_env(self.rs, MAILROOM_WEBHOOK_SECRET="too-short"))
        self.assertEqual(rc, 78, err)
        self.assertNotIn("too-short", err)
        rc, out, err = self.run_webhook("--url", "https://a.example/h", "--timeout", "soon")
        self.assertEqual(rc, 64, err)
        rc, out, err = self.run_webhook("--help")
        self.assertEqual(rc, 0)
        for var in ("MAILROOM_WEBHOOK_URL", "MAILROOM_WEBHOOK_SECRET_FILE", "--max-age"):
            self.assertIn(var, out)

    def test_secret_file_not_in_argv_or_logs(self):
        rx = self.hook_receiver()
        path = os.path.join(self.tmpdir(), "secret")
        with open(path, "w") as f:
            f.write("whsec-rotating-new-0123456789\n" + HOOK_SECRET + "\n")
        env = mailroom_env(self.rs, MAILROOM_WEBHOOK_SECRET_FILE=path)
        hook = self.webhook(rx.url, *FAST, env=env)
        self.xadd(event("j-file", "sent"))
        got = rx.wait_for(lambda d: len(d) >= 1)
        self.assertEqual(got[0].why, "")  # the second secret's value verifies
        self.assertEqual(got[0].headers["X-Mailroom-Signature"].count("v1="), 2)
        self.assertNotIn(HOOK_SECRET, proc_text(hook.pid, "cmdline"))
        hook.send_signal(signal.SIGTERM)
        self.assertEqual(hook.stop(), 0)
        self.assertNotIn(HOOK_SECRET, hook.log())
        self.assertNotIn("rotating-new", hook.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
