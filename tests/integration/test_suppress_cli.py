#!/usr/bin/python3
"""Integration tests of the suppression list's library calls and CLI (issue 14, item 6):
`mailroom suppress list|add|remove|check`, and mailroom_suppressed() of mailroom.h
through ctypes, against a private redis-server. The keys are checked as docs/redis.md
writes them (mailroom:{suppress}:addr:<address> and mailroom:{suppress}:index), and an
entry is written by the test as a consumer writes one, to check that the library reads
what the consumers write.

Run: /usr/bin/python3 tests/integration/test_suppress_cli.py [-v] [TestClass.test_name]
The binaries come from $MAILROOM_BIN_DIR (default <repo>/build/bin).
"""

import ctypes
import json
import os
import re
import shlex
import sys
import time
import unittest

import redis  # python3-redis

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import mailroom_env, run_cli  # noqa: E402
from support.jobs import new_secret  # noqa: E402
from support.libmailroom import libmailroom_path  # noqa: E402
from support.paths import REPO_ROOT  # noqa: E402
from support.state import redis_ms  # noqa: E402

INDEX = "mailroom:{suppress}:index"
DAY_MS = 86400_000


def entry_key(address: str) -> str:
    return f"mailroom:{{suppress}}:addr:{address}"


class SuppressCase(ServerTestCase):

    def setUp(self):
        super().setUp()
        self.rs = self.redis()
        self.r = self.rs.client()
        self.env = mailroom_env(self.rs)

    def cli(self, *args):
        return run_cli(*args, env=self.env)

    def cli_json(self, *args):
        rc, out, err = self.cli(*args, "--json")
        self.assertEqual(rc, 0, f"mailroom {args}: {err}")
        return json.loads(out)

    def write_as_consumer(self, address, code=550, reason="550 5.1.1 <x>: user unknown",
                          for_ms=30 * DAY_MS, job_id="01JDQ6Z3K8P4W7X2M5N9R0T1AB"):
        """An entry as a consumer writes it after a 5xx to RCPT (docs/redis.md)."""
        entry = {"address": address, "reason": reason, "code": code,
                 "at": "2026-11-25T10:00:00.123Z", "queue": "signup", "id": job_id,
                 "source": "consumer"}
        self.r.set(entry_key(address), json.dumps(entry), px=for_ms)
        self.r.zadd(INDEX, {address: redis_ms(self.r) + for_ms})


class SuppressCliTest(SuppressCase):

    def test_add_check_remove(self):
        before = redis_ms(self.r)
        added = self.cli_json("suppress", "add", "Ming@Example.COM", "--for", "2h",
                              "--reason", "complained")
        self.assertEqual({k: added[k] for k in ("address", "reason", "code", "queue", "id",
                                                "source")},
                         {"address": "ming@example.com", "reason": "complained", "code": None,
                          "queue": None, "id": None, "source": "cli"})
        stored = json.loads(self.r.get(entry_key("ming@example.com")))
        self.assertEqual(list(stored), ["address", "reason", "code", "at", "queue", "id",
                                        "source"])
        self.assertEqual((stored["address"], stored["source"], stored["at"]),
                         ("ming@example.com", "cli", added["at"]))
        pttl = self.r.pttl(entry_key("ming@example.com"))
        self.assertGreater(pttl, 2 * 3600_000 - 60_000)
        self.assertLessEqual(pttl, 2 * 3600_000)
        expiry = self.r.zscore(INDEX, "ming@example.com")
        self.assertGreaterEqual(expiry, before + 2 * 3600_000)
        self.assertLess(expiry, before + 2 * 3600_000 + 60_000)
        # any spelling of the address finds the one entry
        for spelling in ("ming@example.com", "MING@EXAMPLE.COM", "Ming@Example.Com"):
            with self.subTest(spelling=spelling):
                got = self.cli_json("suppress", "check", spelling)
                self.assertEqual((got["address"], got["reason"]), ("ming@example.com", "complained"))
                self.assertEqual(got["expires_at"], added["expires_at"])
        rc, out, err = self.cli("suppress", "check", "ming@example.com")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"^ming@example\.com  until \d{4}-\S+Z  cli  complained\n$")
        self.assertEqual(self.cli("suppress", "remove", "MING@example.com"),
                         (0, "removed MING@example.com\n", ""))
        self.assertFalse(self.r.exists(entry_key("ming@example.com")))
        self.assertIsNone(self.r.zscore(INDEX, "ming@example.com"))
        for args in (("suppress", "check", "ming@example.com"),
                     ("suppress", "remove", "ming@example.com")):
            with self.subTest(args=args):
                rc, out, err = self.cli(*args)
                self.assertEqual((rc, out), (1, ""))
                self.assertIn("not suppressed", err)

    def test_default_is_thirty_days_and_international_domains(self):
        added = self.cli_json("suppress", "add", "用户@例子.测试")
        self.assertEqual(added["address"], "用户@xn--fsqu00a.xn--0zwm56d")
        self.assertEqual(added["reason"], "added by an operator")
        pttl = self.r.pttl(entry_key("用户@xn--fsqu00a.xn--0zwm56d"))
        self.assertGreater(pttl, 30 * DAY_MS - 60_000)
        self.assertLessEqual(pttl, 30 * DAY_MS)
        self.assertEqual(self.cli_json("suppress", "check", "用户@xn--fsqu00a.xn--0zwm56d")["address"],
                         added["address"])
        again = self.cli_json("suppress", "add", "用户@例子.测试", "--for", "1d", "--reason", "x")
        self.assertEqual(again["reason"], "x")  # replaced
        self.assertLessEqual(self.r.pttl(entry_key(added["address"])), DAY_MS)
        self.assertEqual(self.r.zcard(INDEX), 1)

    def test_an_entry_a_consumer_wrote(self):
        self.write_as_consumer("bounce@example.com")
        got = self.cli_json("suppress", "check", "Bounce@example.com")
        self.assertEqual({k: got[k] for k in ("address", "reason", "code", "queue", "id",
                                              "source", "at")},
                         {"address": "bounce@example.com",
                          "reason": "550 5.1.1 <x>: user unknown", "code": 550,
                          "queue": "signup", "id": "01JDQ6Z3K8P4W7X2M5N9R0T1AB",
                          "source": "consumer", "at": "2026-11-25T10:00:00.123Z"})
        rc, out, err = self.cli("suppress", "list")
        self.assertEqual(rc, 0, err)
        self.assertIn("bounce@example.com  until ", out)
        self.assertIn("  consumer  550  550 5.1.1 <x>: user unknown  (signup "
                      "01JDQ6Z3K8P4W7X2M5N9R0T1AB)\n", out)

    def test_list_pages_and_drops_lapsed_members(self):
        now = redis_ms(self.r)
        live = []
        for i in range(25):  # each a minute longer than the one before: newest first
            address = f"user{i:02d}@example.com"
            self.write_as_consumer(address, for_ms=DAY_MS + i * 60_000)
            live.append(address)
        self.r.zadd(INDEX, {"lapsed@example.com": now - 1000})
        self.r.zadd(INDEX, {"gone@example.com": now + DAY_MS})  # its entry was deleted
        seen, cursor, pages = [], None, 0
        while True:
            args = ["suppress", "list", "--limit", "10"] + (["--cursor", cursor] if cursor else [])
            page = self.cli_json(*args)
            pages += 1
            seen += [e["address"] for e in page["entries"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        self.assertEqual(seen, list(reversed(live)))  # each once, the longest lasting first
        self.assertEqual(pages, 3)
        self.assertEqual(page["total"], 25)
        self.assertIsNone(self.r.zscore(INDEX, "lapsed@example.com"))
        self.assertIsNone(self.r.zscore(INDEX, "gone@example.com"))
        rc, out, err = self.cli("suppress", "list", "--limit", "3")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out.splitlines()[-1], r"^\(3 shown of 25 suppressed; more: --cursor x\d+:1\)$")

    def test_bad_input(self):
        for args, code, text in [
                (("suppress",), 64, "missing subcommand"),
                (("suppress", "drop", "a@example.com"), 64, "unknown subcommand"),
                (("suppress", "add"), 64, "missing ADDR"),
                (("suppress", "add", "a@example.com", "--for", "soon"), 64, "--for"),
                (("suppress", "add", "a@example.com", "--for", "0"), 64, "--for"),
                (("suppress", "check", "a@example.com", "--reason", "x"), 64, "not an option"),
                (("suppress", "list", "--for", "1d"), 64, "not an option"),
                (("suppress", "list", "--cursor", "p1:x"), 65, "cursor"),
                (("suppress", "add", "not-an-address"), 65, "no '@'"),
                (("suppress", "add", "a@example.com", "--reason", "two\nlines"), 65, "reason"),
                (("suppress", "add", "a@example.com", "--reason", "x" * 501), 65, "reason"),
                (("suppress", "check", "a b@example.com"), 65, "suppressed: 'a b@example.com'"),
                (("suppress", "add", "a@b@example.com", "x"), 64, "unexpected argument")]:
            with self.subTest(args=args):
                rc, out, err = self.cli(*args)
                self.assertEqual((rc, out), (code, ""), err)
                self.assertIn(text, err)
        self.assertEqual(self.r.dbsize(), 0)


# --------------------------------------------------------------------------- the library


class _Suppression(ctypes.Structure):  # mailroom_suppression, include/mailroom.h
    _fields_ = [("address", ctypes.c_char * 255), ("reason", ctypes.c_char * 512),
                ("code", ctypes.c_int), ("at", ctypes.c_char * 32),
                ("queue", ctypes.c_char * 65), ("id", ctypes.c_char * 129),
                ("source", ctypes.c_char * 32), ("expires_ms", ctypes.c_longlong)]


class SuppressedLibTest(SuppressCase):
    """mailroom_suppressed(), the call an application makes (mailroom.h)."""

    OK, EINVAL, ENOTFOUND = 0, 1, 5

    def setUp(self):
        super().setUp()
        path = libmailroom_path()
        if path is None:
            self.skipTest("libmailroom.so not built, or built with AddressSanitizer")
        self.lib = ctypes.CDLL(str(path))
        self.lib.mailroom_open.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
        self.lib.mailroom_suppressed.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                 ctypes.POINTER(_Suppression)]
        self.lib.mailroom_errmsg.restype = ctypes.c_char_p
        self.lib.mailroom_errmsg.argtypes = [ctypes.c_void_p]
        self.lib.mailroom_close.argtypes = [ctypes.c_void_p]
        os.environ["MAILROOM_REDIS_URL"] = self.rs.url  # mailroom_open(NULL options)
        self.addCleanup(os.environ.pop, "MAILROOM_REDIS_URL", None)
        self.h = self.open_handle()

    def open_handle(self):
        """A handle of mailroom_open(NULL options): Redis from MAILROOM_REDIS_URL."""
        h = ctypes.c_void_p()
        rc = self.lib.mailroom_open(ctypes.byref(h), None)
        self.addCleanup(self.lib.mailroom_close, h)
        self.assertEqual(rc, self.OK, self.lib.mailroom_errmsg(h))
        return h

    def test_suppressed(self):
        self.write_as_consumer("bounce@例子.测试".replace("例子.测试", "xn--fsqu00a.xn--0zwm56d"),
                               for_ms=3600_000)
        out = _Suppression()
        rc = self.lib.mailroom_suppressed(self.h, "Bounce@例子.测试".encode(), ctypes.byref(out))
        self.assertEqual(rc, self.OK, self.lib.mailroom_errmsg(self.h))
        self.assertEqual((out.address, out.code, out.queue, out.source),
                         (b"bounce@xn--fsqu00a.xn--0zwm56d", 550, b"signup", b"consumer"))
        self.assertEqual(out.reason, b"550 5.1.1 <x>: user unknown")
        self.assertAlmostEqual(out.expires_ms, redis_ms(self.r) + 3600_000, delta=60_000)
        self.assertEqual(self.lib.mailroom_suppressed(self.h, b"bounce@xn--fsqu00a.xn--0zwm56d",
                                                      None), self.OK)
        rc = self.lib.mailroom_suppressed(self.h, b"other@example.com", ctypes.byref(out))
        self.assertEqual(rc, self.ENOTFOUND)
        self.assertIn(b"not suppressed", self.lib.mailroom_errmsg(self.h))
        rc = self.lib.mailroom_suppressed(self.h, b"no address", ctypes.byref(out))
        self.assertEqual(rc, self.EINVAL)
        # a lapsed entry is not suppressed any more
        self.r.pexpire(entry_key("bounce@xn--fsqu00a.xn--0zwm56d"), 1)
        time.sleep(0.05)
        rc = self.lib.mailroom_suppressed(self.h, "bounce@例子.测试".encode(), None)
        self.assertEqual(rc, self.ENOTFOUND)

    def test_an_application_with_the_producer_role_may_ask(self):
        """The producer's ACL lines of docs/security.md, applied verbatim, let an
        application check an address, and nothing more of the list."""
        text = (REPO_ROOT / "docs" / "security.md").read_text(encoding="utf-8")
        at = text.find("<!-- acl-rules: applied verbatim")
        block = re.search(r"```[^\n]*\n(.*?)```", text[at:], re.S).group(1)
        password = new_secret()
        for line in block.splitlines():
            if line.strip():
                self.r.execute_command(*[a.replace("PRODUCER_PASSWORD", password)
                                         .replace("CONSUMER_PASSWORD", new_secret())
                                         for a in shlex.split(line)])
        self.write_as_consumer("bounce@example.com", for_ms=3600_000)
        os.environ["MAILROOM_REDIS_URL"] = (f"redis://mailroom-producer:{password}@"
                                            f"{self.rs.host}:{self.rs.port}/0")
        h = self.open_handle()
        out = _Suppression()
        rc = self.lib.mailroom_suppressed(h, b"Bounce@Example.com", ctypes.byref(out))
        self.assertEqual(rc, self.OK, self.lib.mailroom_errmsg(h))
        self.assertEqual((out.address, out.code), (b"bounce@example.com", 550))
        self.assertAlmostEqual(out.expires_ms, redis_ms(self.r) + 3600_000, delta=60_000)
        self.assertEqual(self.lib.mailroom_suppressed(h, b"x@example.com", None), self.ENOTFOUND)
        prod = redis.Redis(host=self.rs.host, port=self.rs.port, username="mailroom-producer",
                           password=password, decode_responses=True)
        self.addCleanup(prod.close)
        for cmd in (("ZRANGE", INDEX, 0, -1), ("SCAN", 0), ("DEL", entry_key("bounce@example.com")),
                    ("SET", entry_key("a@example.com"), "{}"), ("ZADD", INDEX, 1, "a@example.com")):
            with self.subTest(cmd=cmd), self.assertRaises(redis.exceptions.NoPermissionError):
                prod.execute_command(*cmd)


if __name__ == "__main__":
    unittest.main()
