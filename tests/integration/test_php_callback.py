#!/usr/bin/python3
"""Tests of the registration example's callback page (examples/registration/
callback.php) and of the PHP verification snippet of docs/webhook.md
(examples/registration/webhook_verify.php), end to end: register.php registers users,
a real mailroom-consumer sends their activation mails to an aiosmtpd receiver, a real
mailroom-webhook posts the outcomes to the page served by `php -S 127.0.0.1:PORT`, and
show_user.php shows what the application now knows.

  SnippetTest    the snippet printed in docs/webhook.md is the example's function, and
                 it agrees with every vector of tests/vectors/webhook.json
  CallbackTest   sent and failed outcomes marked on the users; unsigned, stale and
                 repeated deliveries; the page down for a while (stopped, outcomes
                 produced, started again): every outcome arrives, none is lost, none
                 is applied twice per delivery id

Run: /usr/bin/python3 tests/integration/test_php_callback.py [-v] [TestClass.test_name]
Skipped only when `php` or its redis extension is missing.
"""

import json
import os
import re
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import mailroom_env  # noqa: E402
from support.jobs import new_secret  # noqa: E402
from support.paths import REPO_ROOT, WEBHOOK  # noqa: E402
from support.php_server import PHP, PhpServer  # noqa: E402
from support.procs import run, wait_for  # noqa: E402
from support.webhook import Webhook, webhook_sign  # noqa: E402

EXAMPLE = REPO_ROOT / "examples" / "registration"
VECTORS = REPO_ROOT / "tests" / "vectors" / "webhook.json"
DOC = REPO_ROOT / "docs" / "webhook.md"
SECRET = new_secret()
HOOK_SECRET = "whsec-" + new_secret()
LOG_KEY = "example:webhook:log"


def php_missing(need_redis=True):
    if not PHP:
        return "php (php-cli) is not installed"
    if need_redis:
        rc, out, err = run([PHP, "-m"])
        if "redis" not in {line.strip().lower() for line in out.splitlines()}:
            return "the PHP redis extension (php-redis) is not loaded"
    return None


def doc_snippet() -> str:
    """The PHP block of docs/webhook.md that follows the marker comment."""
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"<!-- php-verify-snippet[^>]*-->\s*```php\n(.*?)```", text, re.S)
    assert m, "no php-verify-snippet block in docs/webhook.md"
    return m.group(1)


class SnippetTest(unittest.TestCase):

    def setUp(self):
        why = php_missing(need_redis=False)
        if why:
            self.skipTest(why)

    def test_doc_snippet_is_the_example_function(self):
        snippet = doc_snippet().strip()
        self.assertIn("function mailroom_webhook_verify(", snippet)
        source = (EXAMPLE / "webhook_verify.php").read_text(encoding="utf-8")
        self.assertIn(snippet, source, "docs/webhook.md and webhook_verify.php differ")

    def test_snippet_agrees_with_every_vector(self):
        """The doc's snippet itself, run by php, against each vector: accepted or
        refused, for the same reason as tests/tools/webhook_sign.py says."""
        code = ("declare(strict_types=1);\n" + doc_snippet() +
                "\n$d = json_decode(file_get_contents($argv[1]), true, 512, JSON_THROW_ON_ERROR);\n"
                "$out = [];\n"
                "foreach ($d['vectors'] as $v) {\n"
                "    $out[$v['name']] = mailroom_webhook_verify($v['secret'], $v['body'],\n"
                "        $v['timestamp'], $v['signature'], $v['now']);\n"
                "}\n"
                "echo json_encode($out), \"\\n\";\n")
        rc, out, err = run([PHP, "-r", code, str(VECTORS)])
        self.assertEqual(rc, 0, err)
        got = json.loads(out)
        vectors = json.loads(VECTORS.read_text(encoding="utf-8"))["vectors"]
        self.assertEqual(set(got), {v["name"] for v in vectors})
        for v in vectors:
            with self.subTest(vector=v["name"]):
                self.assertEqual(got[v["name"]], v["why"])
        self.assertTrue(any(v["valid"] for v in vectors) and not all(v["valid"] for v in vectors))


class CallbackTest(ServerTestCase):

    def setUp(self):
        why = php_missing()
        if why:
            self.skipTest(why)
        super().setUp()
        if not os.access(WEBHOOK, os.X_OK):
            self.fail(f"{WEBHOOK} not built")
        self.rs = self.redis()
        self.r = self.rs.client()
        self.smtp = self.receiver(rcpt_refusals={"nobody@example.com": ["550 5.1.1 No such user"]})
        self.env = mailroom_env(self.rs, secret=SECRET, smtp=self.smtp,
                                MAILROOM_WEBHOOK_SECRET=HOOK_SECRET)
        self.page = self.stack.enter_context(PhpServer(EXAMPLE / "callback.php", self.env))

    def start_webhook(self):
        w = self.stack.enter_context(Webhook(self.env, "--url", self.page.url, "--backoff-base",
                                             "200ms", "--backoff-max", "1s"))
        self.addCleanup(lambda: self._failed() and sys.stderr.write(w.log_tail(6000)))
        return w.wait_ready()

    def register(self, email, name):
        rc, out, err = run([PHP, EXAMPLE / "register.php", email, name], env=self.env)
        self.assertEqual(rc, 0, out + err)

    def show(self, email) -> str:
        rc, out, err = run([PHP, EXAMPLE / "show_user.php", email], env=self.env)
        self.assertEqual(rc, 0, err)
        return out

    def wait_marked(self, email, state, timeout=20):
        return wait_for(lambda: f"activation mail: {state} at " in (out := self.show(email))
                        and out, timeout, message=f"{email} marked {state}")

    def log(self) -> list:
        return [line.split() for line in self.r.lrange(LOG_KEY, 0, -1)]

    def post(self, body: bytes, ts: str, signature: str):
        req = urllib.request.Request(self.page.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "X-Mailroom-Timestamp": ts,
            "X-Mailroom-Signature": signature})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def test_sent_and_failed_outcomes_marked_on_the_users(self):
        self.start_consumer(self.env, "--id", "c1")
        self.start_webhook()
        self.register("ming@example.com", "王小明")
        self.register("nobody@example.com", "Nobody")
        out = self.wait_marked("ming@example.com", "sent")
        self.assertIn("name: 王小明", out)
        out = self.wait_marked("nobody@example.com", "failed")
        self.assertIn("550 5.1.1 No such user", out)
        applied = [entry for entry in self.log() if entry[2] == "applied"]
        self.assertEqual(sorted(e[1] for e in applied), ["failed", "sent"])

    def test_refuses_unsigned_stale_and_repeated_deliveries(self):
        self.register("li.lei@example.org", "Li Lei")   # no consumer: stays queued
        body = json.dumps({"id": "signup:li.lei_40example.org", "queue": "default",
                           "state": "sent", "attempts": 1, "smtp_code": 250,
                           "smtp_reply": "250 ok", "error": "", "consumer": "c1",
                           "at": "2026-12-01T00:00:00.000Z",
                           "delivery_id": "default/1-0"}).encode()
        now = str(int(time.time()))
        good = webhook_sign.sign(HOOK_SECRET.encode(), now, body)
        self.assertEqual(self.post(body, now, "v1=" + "0" * 64)[0], 401)
        stale = str(int(now) - 301)
        self.assertEqual(self.post(body, stale, webhook_sign.sign(HOOK_SECRET.encode(), stale,
                                                                  body)),
                         (401, {"error": "stale timestamp"}))
        self.assertEqual(self.post(body + b" ", now, good), (401, {"error": "signature mismatch"}))
        self.assertIn("no outcome reported yet", self.show("li.lei@example.org"))
        self.assertEqual(self.post(body, now, good), (200, {"ok": True, "result": "applied"}))
        self.assertEqual(self.post(body, now, good), (200, {"ok": True, "result": "duplicate"}))
        self.assertIn("activation mail: sent at 2026-12-01T00:00:00.000Z",
                      self.show("li.lei@example.org"))
        older = json.loads(body)
        older.update(state="failed", at="2026-11-30T00:00:00.000Z", delivery_id="default/0-1")
        older_body = json.dumps(older).encode()
        self.assertEqual(self.post(older_body, now, webhook_sign.sign(HOOK_SECRET.encode(), now,
                                                                      older_body))[0], 200)
        self.assertIn("activation mail: sent at", self.show("li.lei@example.org"))
        self.assertEqual([e[2] for e in self.log()], ["applied", "duplicate", "applied"])

    def test_page_down_for_a_while_loses_nothing_and_applies_once(self):
        self.start_consumer(self.env, "--id", "c1")
        webhook = self.start_webhook()
        self.register("before@example.com", "Before")
        self.wait_marked("before@example.com", "sent")
        self.page.stop()  # the application goes down
        users = [f"user{i}@example.com" for i in range(4)]
        for i, email in enumerate(users):
            self.register(email, f"User {i}")
        self.smtp.wait_for_count(1 + len(users))
        wait_for(lambda: webhook.log().count("failed: ") >= len(users), 20,
                 message="failed attempts while the page is down")
        time.sleep(1.5)   # down for a while: several retries each
        for email in users:
            self.assertIn("no outcome reported yet", self.show(email))
        self.page.start()  # back, on the same port
        for email in users:
            self.wait_marked(email, "sent")
        time.sleep(1.0)    # anything repeated would have arrived by now
        entries = self.log()
        ids = [e[0] for e in entries]
        self.assertEqual(len(ids), len(set(ids)), f"a delivery id came twice: {entries}")
        self.assertEqual([e[2] for e in entries], ["applied"] * (1 + len(users)))
        st = self.r.hgetall("mailroom:{default}:webhook")
        self.assertEqual(st["delivered"], str(1 + len(users)))
        self.assertEqual(self.r.xpending("mailroom:{default}:events", "webhook")["pending"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
