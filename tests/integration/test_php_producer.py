#!/usr/bin/python3
"""Tests of the registration example (examples/registration): the PHP producer
library mailroom.php, the PHP handler register.php and the C handler
mailroom-register-example, end to end against a private redis-server, a real
mailroom-consumer and an aiosmtpd receiver (tests/support).

  VectorsTest       mailroom.php reproduces every vector of tests/vectors/signing.json
                    and carries the C producer's ENQUEUE script byte for byte
  PhpProducerTest   register.php jobs are accepted by the consumer and delivered; a
                    second registration of an address is refused as a duplicate
  CExampleTest      the same for mailroom-register-example, which prints its send time

Run: /usr/bin/python3 tests/integration/test_php_producer.py [-v] [TestClass.test_name]
Binaries come from $MAILROOM_BIN_DIR (default <repo>/build/bin), the C example from
$MAILROOM_EXAMPLES_DIR (default <repo>/build/examples). The PHP tests are skipped only
when `php` or its redis extension (php-redis) is missing.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import Consumer, mailroom_env  # noqa: E402
from support.jobs import new_secret, signer  # noqa: E402
from support.messages import parse_message, text_of  # noqa: E402
from support.paths import BIN_DIR, EXAMPLES_DIR, REPO_ROOT  # noqa: E402
from support.procs import run  # noqa: E402
from support.state import Keys, stats  # noqa: E402

EXAMPLE_SRC = REPO_ROOT / "examples" / "registration"
MAILROOM_PHP = EXAMPLE_SRC / "mailroom.php"
REGISTER_PHP = EXAMPLE_SRC / "register.php"
VECTORS = REPO_ROOT / "tests" / "vectors" / "signing.json"
REGISTER_C = EXAMPLES_DIR / "mailroom-register-example"
PHP = shutil.which("php")

SECRET = new_secret()
SUBJECT = "请激活您的账户 / Activate your account"
SENDER = "noreply@example.com"
LINK_RE = re.compile(r"https://example\.com/activate\?token=([0-9a-f]{64})")
ULID_RE = re.compile(r"\A[0-7][0-9A-HJKMNP-TV-Z]{25}\Z")
Q = Keys("default")


def php_missing(need_redis: bool = True) -> str | None:
    """Why the PHP tests cannot run here, or None."""
    if not PHP:
        return "php (php-cli) is not installed"
    if need_redis:
        cp = subprocess.run([PHP, "-m"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if "redis" not in {line.strip().lower() for line in cp.stdout.decode().splitlines()}:
            return "the PHP redis extension (php-redis) is not loaded"
    return None


def c_enqueue_script() -> str:
    """The complete ENQUEUE script the build generates from common/lua/enqueue.lua
    (<build>/lua/enqueue.lua, next to <build>/bin), which the C producer embeds."""
    return (BIN_DIR.parent / "lua" / "enqueue.lua").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- vectors


class VectorsTest(unittest.TestCase):

    def setUp(self):
        why = php_missing(need_redis=False)
        if why:
            self.skipTest(why)

    def test_php_reproduces_every_vector(self):
        """canonical() and sign() of mailroom.php against every signing vector,
        compared here byte for byte (not only by the PHP script's own verdict)."""
        rc, out, err = run([PHP, MAILROOM_PHP, "check-vectors", VECTORS, "--json"])
        self.assertEqual(rc, 0, f"stdout={out[-2000:]!r} stderr={err!r}")
        got = json.loads(out)
        doc = json.loads(VECTORS.read_text(encoding="utf-8"))
        self.assertEqual([v["name"] for v in got["vectors"]], [v["name"] for v in doc["vectors"]])
        self.assertEqual([v["name"] for v in got["canonical_only"]],
                         [v["name"] for v in doc["canonical_only"]])
        for mine, ref in zip(got["vectors"], doc["vectors"]):
            with self.subTest(vector=ref["name"]):
                self.assertEqual(bytes.fromhex(mine["canonical_hex"]), ref["canonical"].encode("utf-8"))
                self.assertEqual(mine["sig"], ref["sig"])
        for mine, ref in zip(got["canonical_only"], doc["canonical_only"]):
            with self.subTest(vector=ref["name"]):
                self.assertEqual(bytes.fromhex(mine["canonical_hex"]), ref["canonical"].encode("utf-8"))
        names = {v["name"] for v in doc["canonical_only"]}
        self.assertIn("key_order_utf8_not_utf16", names)

        rc, out, err = run([PHP, MAILROOM_PHP, "check-vectors", VECTORS])
        self.assertEqual(rc, 0, out + err)
        self.assertNotIn("FAIL", out)
        self.assertIn("vectors reproduced", out)

    def test_enqueue_script_is_the_c_one(self):
        """Byte for byte the C producer's script: same SHA1, one script cache entry."""
        rc, out, err = run([PHP, "-r", f"require {json.dumps(str(MAILROOM_PHP))}; echo Mailroom::ENQUEUE;"])
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, c_enqueue_script())


# --------------------------------------------------------------------------- fixtures


class ExampleTestCase(ServerTestCase):
    """Servers, a consumer and checks of the registration examples."""

    def servers(self, **env_extra):
        """A private Redis and SMTP receiver, a status listener and the environment."""
        rs = self.redis()
        rx = self.receiver()
        listener = self.listener(rs)
        env = mailroom_env(rs, smtp=rx, **env_extra)
        return rs, rx, listener, rs.client(), env

    def consumer(self, env) -> Consumer:
        return self.start_consumer(env, "--id", "c1", "--concurrency", "2")

    def tmpdir(self, prefix: str = "mailroom-example-") -> str:
        return super().tmpdir(prefix)

    def assert_registered(self, rc, out, err, email, *, new=True):
        """Checks the handler's report of a queued activation mail; returns (id, us)."""
        self.assertEqual(rc, 0, f"stdout={out!r} stderr={err!r}")
        self.assertIn(f"new user {email}" if new else f"{email} is already registered", out)
        m = re.search(r"activation mail queued: job (\S+)", out)
        self.assertIsNotNone(m, out)
        t = re.search(r"took (\d+) us", out)
        self.assertIsNotNone(t, f"no send time in {out!r}")
        us = int(t.group(1))
        self.assertLess(us, 5_000_000, "one enqueue took seconds")
        return m.group(1), us

    def assert_duplicate(self, rc, out, err, email, job_id, state="sent"):
        self.assertEqual(rc, 3, f"stdout={out!r} stderr={err!r}")
        self.assertIn(f"{email} is already registered", out)
        self.assertIn(f"not sent again: job {job_id} is already recorded (state {state})", out)
        self.assertRegex(out, r"took \d+ us")

    def assert_activation_mail(self, m, email, name):
        """One received activation mail: envelope, headers, both bodies; returns the
        token of its link."""
        self.assertEqual(m.mail_from, SENDER)
        self.assertEqual(m.rcpt_tos, [email])
        msg = parse_message(m.raw)
        self.assertEqual(msg.defects, [])
        self.assertEqual(str(msg["Subject"]), SUBJECT)
        frm = msg["From"].addresses[0]
        self.assertEqual((frm.display_name, frm.addr_spec), ("滴水网", SENDER))
        to = msg["To"].addresses
        self.assertEqual([(a.display_name, a.addr_spec) for a in to], [(name, email)])
        parts = list(msg.iter_parts())
        self.assertEqual([p.get_content_type() for p in parts], ["text/plain", "text/html"])
        text, html = text_of(parts[0]), text_of(parts[1])
        self.assertTrue(text.startswith(f"{name}，您好："), text[:80])
        tokens = set(LINK_RE.findall(text)) | set(LINK_RE.findall(html))
        self.assertEqual(len(tokens), 1, f"expected one activation link, got {tokens}")
        return tokens.pop()


# --------------------------------------------------------------------------- PHP


class PhpProducerTest(ExampleTestCase):

    def setUp(self):
        why = php_missing()
        if why:
            self.skipTest(why)
        super().setUp()

    def register(self, env, email, name):
        return run([PHP, REGISTER_PHP, email, name], env=env)

    def user_record(self, r, email):
        raw = r.get(f"example:user:{email}")
        self.assertIsNotNone(raw, f"no user record for {email}")
        return json.loads(raw)

    def test_register_php_delivers_once(self):
        """register.php → Redis → consumer → SMTP, a Chinese name included; the second
        registration of an address is refused as a duplicate and sends nothing."""
        rs, rx, listener, r, env = self.servers(secret=SECRET)
        self.consumer(env)
        users = [("ming@example.com", "王小明"), ("li.lei@example.org", "Li Lei")]
        ids = {}
        for email, name in users:
            ids[email], _ = self.assert_registered(*self.register(env, email, name), email)
        self.assertEqual(ids["ming@example.com"], "signup:ming_40example.com")
        self.assertEqual(ids["li.lei@example.org"], "signup:li.lei_40example.org")

        got = rx.wait_for_count(2, timeout=20)
        by_rcpt = {m.rcpt_tos[0]: m for m in got}
        for email, name in users:
            token = self.assert_activation_mail(by_rcpt[email], email, name)
            self.assertEqual(token, self.user_record(r, email)["token"])
            h = self.wait_state(r, ids[email], "sent")
            self.assertEqual(h.get("attempts"), "1")
            self.assertEqual(h.get("smtp_code"), "250")

        # a double submission (the address in other case): refused, nothing sent
        before = self.user_record(r, "ming@example.com")
        self.assert_duplicate(*self.register(env, "Ming@Example.COM", "王小明"),
                              "ming@example.com", ids["ming@example.com"])
        time.sleep(1.0)  # time enough for a wrongly queued job to arrive
        self.assertEqual(rx.count(), 2)
        self.assertEqual(self.user_record(r, "ming@example.com"), before, "user record changed")
        self.assertEqual(listener.states(ids["ming@example.com"]), ["sending", "sent"])
        self.assertEqual(r.llen(Q.pending), 0)
        self.assertEqual(stats(r).get("sent"), 2)
        self.assertEqual(stats(r).get("rejected", 0), 0)

    def test_keys_file_first_key_signs(self):
        """MAILROOM_KEYS_FILE: the first key (and its kid) signs; a consumer with the
        same file accepts the job."""
        tmp = self.tmpdir()
        keys = os.path.join(tmp, "keys")
        with open(keys, "w") as f:
            f.write(f"# producers sign with the first key\n\nweb-2026\t {new_secret()} \nold {SECRET}\n")
        rs, rx, listener, r, env = self.servers(keys_file=keys)
        job_id, _ = self.assert_registered(*self.register(env, "han@example.com", "韩梅梅"),
                                           "han@example.com")
        raw = r.lrange(Q.pending, 0, -1)
        self.assertEqual(len(raw), 1)
        job = json.loads(raw[0])
        self.assertEqual((job["id"], job["kid"], job["alg"]), (job_id, "web-2026", "hmac-sha1"))
        self.assertEqual(self.wait_state(r, job_id, "queued", timeout=1)["attempts"], "0")

        self.consumer(env)
        self.assert_activation_mail(rx.wait_for_count(1, timeout=20)[0], "han@example.com", "韩梅梅")
        self.wait_state(r, job_id, "sent")

    def test_invalid_input_and_missing_key(self):
        rs, rx, listener, r, env = self.servers(secret=SECRET)
        for email, name in [("not-an-address", "X"), ("a@example.com", ""),
                            ("a@example.com", "A <evil>"), ("a@example.com", "A\r\nBcc: x@y.z")]:
            with self.subTest(email=email, name=name):
                rc, out, err = self.register(env, email, name)
                self.assertEqual(rc, 2, f"stdout={out!r} stderr={err!r}")
                self.assertIn("register:", err)
        self.assertEqual(r.keys("*"), [], "invalid input left something in Redis")
        rc, out, err = run([PHP, REGISTER_PHP], env=env)
        self.assertEqual(rc, 2)
        self.assertIn("usage:", err)

        no_key = {k: v for k, v in env.items() if k != "MAILROOM_SECRET"}
        rc, out, err = self.register(no_key, "a@example.com", "A")
        self.assertEqual(rc, 1, f"stdout={out!r} stderr={err!r}")
        self.assertIn("no signing key", err)
        self.assertNotIn(SECRET, out + err)

    def test_library_send_shapes_sha256_and_duplicate(self):
        """Mailroom::send(): a generated ULID; lists encoded as JSON arrays whatever
        their PHP keys, headers as an object, empty cc left out; hmac-sha256; a
        caller id sent twice throws MailroomDuplicateException; the consumer delivers."""
        rs, rx, listener, r, env = self.servers(secret=SECRET)
        snippet = r"""
require getenv('MAILROOM_PHP');
$m = new Mailroom(Mailroom::connect(), 'default', 'default', getenv('MAILROOM_SECRET'), 'hmac-sha256');
$email = ['to' => [3 => '王小明 <ming@example.com>', 7 => 'li@example.org'], 'cc' => [],
          'from' => 'noreply@example.com', 'from_name' => '滴水网', 'subject' => '收据 #1042',
          'text' => "谢谢惠顾。\n", 'html' => '<p>谢谢惠顾。</p>',
          'headers' => ['X-Campaign' => '双十一', 'List-Id' => '<news.example.com>']];
echo $m->send($email), "\n";
echo $m->send($email, 'order-1042:receipt'), "\n";
try { $m->send($email, 'order-1042:receipt'); echo "no exception\n"; }
catch (MailroomDuplicateException $e) { echo get_class($e), ': ', $e->getMessage(), "\n"; }
try { $m->send(['to' => 'x'] + $email); echo "no exception\n"; }
catch (MailroomInvalidException $e) { echo get_class($e), ': ', $e->getMessage(), "\n"; }
echo json_encode($m->status('order-1042:receipt')), "\n";
"""
        rc, out, err = run([PHP, "-r", snippet], env={**env, "MAILROOM_PHP": str(MAILROOM_PHP)})
        self.assertEqual(rc, 0, f"stdout={out!r} stderr={err!r}")
        lines = out.splitlines()
        self.assertRegex(lines[0], ULID_RE)
        self.assertEqual(lines[1], "order-1042:receipt")
        self.assertEqual(lines[2], "MailroomDuplicateException: a job with id "
                                   "'order-1042:receipt' is already recorded")
        self.assertTrue(lines[3].startswith("MailroomInvalidException: member 'to' item 0:"), lines[3])
        self.assertEqual(json.loads(lines[4])["state"], "queued")

        raws = r.lrange(Q.pending, 0, -1)
        self.assertEqual(len(raws), 2)
        for raw in raws:
            job = json.loads(raw)
            self.assertEqual(job["to"], ["王小明 <ming@example.com>", "li@example.org"])
            self.assertNotIn("cc", job)
            self.assertEqual(job["headers"], {"X-Campaign": "双十一", "List-Id": "<news.example.com>"})
            self.assertEqual(job["alg"], "hmac-sha256")
            self.assertNotIn("\\u", raw, "non-ASCII escaped in the JSON")
            self.assertNotIn("\\/", raw, "slashes escaped in the JSON")
            self.assertEqual(signer.sign(job, SECRET.encode(), "hmac-sha256"), job["sig"])
            signer.validate_job(job, require_sig=True)

        self.consumer(env)
        got = rx.wait_for_count(2, timeout=20)  # one message per job, both recipients
        self.assertEqual([sorted(m.rcpt_tos) for m in got],
                         [["li@example.org", "ming@example.com"]] * 2)
        for m in got:
            msg = parse_message(m.raw)
            self.assertEqual(str(msg["Subject"]), "收据 #1042")
            self.assertEqual(str(msg["X-Campaign"]), "双十一")
        self.wait_state(r, "order-1042:receipt", "sent")
        self.assertEqual(stats(r).get("rejected", 0), 0)


# --------------------------------------------------------------------------- C


class CExampleTest(ExampleTestCase):

    def setUp(self):
        if not os.access(REGISTER_C, os.X_OK):
            self.fail(f"example not built: {REGISTER_C}")
        super().setUp()

    def register(self, env, email, name):
        return run([REGISTER_C, email, name], env=env)

    def read_user(self, users_dir, job_id):
        path = Path(users_dir) / (job_id.removeprefix("signup:") + ".user")
        fields = dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines())
        return fields

    def test_c_register_delivers_once(self):
        users_dir = self.tmpdir()
        rs, rx, listener, r, env = self.servers(secret=SECRET, EXAMPLE_USERS_DIR=users_dir)
        self.consumer(env)
        email, name = "wang@example.com", "王小明"
        job_id, us = self.assert_registered(*self.register(env, email, name), email)
        self.assertEqual(job_id, "signup:wang_40example.com")
        sys.stderr.write(f"[mailroom_send of the C example took {us} us] ")

        token = self.assert_activation_mail(rx.wait_for_count(1, timeout=20)[0], email, name)
        user = self.read_user(users_dir, job_id)
        self.assertEqual((user["email"], user["name"], user["token"]), (email, name, token))
        self.assertEqual(self.wait_state(r, job_id, "sent")["attempts"], "1")

        self.assert_duplicate(*self.register(env, " WANG@example.com ", "王小明"), email, job_id)
        time.sleep(1.0)
        self.assertEqual(rx.count(), 1)
        self.assertEqual(self.read_user(users_dir, job_id), user, "user record changed")
        self.assertEqual(listener.states(job_id), ["sending", "sent"])
        self.assertEqual(stats(r).get("sent"), 1)

        for bad in [("wang@", "X"), ("x@example.com", "A\nB"), ("x@example.com", "")]:
            with self.subTest(bad=bad):
                rc, out, err = self.register(env, *bad)
                self.assertEqual(rc, 2, f"stdout={out!r} stderr={err!r}")
        self.assertEqual(sorted(os.listdir(users_dir)), ["wang_40example.com.user"])
        rc, out, err = run([REGISTER_C], env=env)
        self.assertEqual(rc, 2)
        self.assertIn("usage:", err)

    def test_c_and_php_derive_the_same_ids(self):
        """Both handlers turn an address into the same job id (the long form too): the
        second one to register it is refused as a duplicate."""
        why = php_missing()
        if why:
            self.skipTest(why)
        users_dir = self.tmpdir()
        rs, rx, listener, r, env = self.servers(secret=SECRET, EXAMPLE_USERS_DIR=users_dir)
        long_addr = "a" * 60 + "@" + "b" * 60 + ".example.com"
        for email in ["o'brien+signup_1@example.co.uk", long_addr]:
            with self.subTest(email=email):
                job_id, _ = self.assert_registered(*self.register(env, email, "Ann"), email)
                rc, out, err = run([PHP, REGISTER_PHP, email, "Ann"], env=env)
                self.assertEqual(rc, 3, f"stdout={out!r} stderr={err!r}")
                self.assertIn(f"job {job_id} is already recorded (state queued)", out)
        self.assertTrue(job_id.startswith("signup:sha256."), job_id)
        self.assertEqual(r.llen(Q.pending), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
