#!/usr/bin/python3
"""Integration tests of libmailroom's API as an application calls it (through ctypes,
against a private redis-server on a free loopback port), and of the library bugs issue
11 lists, each with a case that fails on the code before the fix:

  - mailroom_open with a kid no job may carry succeeded, and every send then failed as
    an invalid email: now it fails at open with MAILROOM_EKEY and says why;
  - `mailroom send --jsonl` cut "hello\\u0000SECRET-TAIL" to "hello" and exited 0, and
    took a member name with an escaped NUL: now the line is refused (65) and named;
  - (mailroom_send_batch's ids after an out-of-memory failure: tests/unit/test_lib_batch.c,
    which can make the library's allocations fail.)

The operator calls of include/mailroom_admin.h (stats, consumers, dead letters, watch)
and mailroom_email_from_json are checked here through their C structures.

Run: /usr/bin/python3 tests/integration/test_lib_api.py [-v] [TestClass.test_name]
The binaries come from $MAILROOM_BIN_DIR (default <repo>/build/bin); the ctypes cases
skip themselves when libmailroom.so is built with AddressSanitizer.
"""

import ctypes
import json
import os
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import mailroom_env, run_cli  # noqa: E402
from support.jobs import new_secret  # noqa: E402
from support.libmailroom import _Email, _Options, libmailroom_path  # noqa: E402
from support.state import Keys, redis_ms  # noqa: E402

SECRET = new_secret()
SENDER = "noreply@example.com"
Q = Keys("default")
MAILROOM_ID_MAX = 129
OK, EINVAL, EREDIS, ENOTFOUND, EKEY = 0, 1, 3, 5, 8

P = ctypes.c_char_p
LL = ctypes.c_longlong


class _Processing(ctypes.Structure):  # mailroom_processing, include/mailroom_admin.h
    _fields_ = [("consumer", P), ("jobs", LL)]


class _Consumer(ctypes.Structure):  # mailroom_consumer
    _fields_ = [("id", P), ("state", ctypes.c_int), ("heartbeat_age_ms", LL),
                ("processing", LL), ("has_info", ctypes.c_int), ("host", P), ("pid", LL),
                ("version", P), ("started_at", P), ("queues", P), ("relays", P),
                ("concurrency", LL), ("sessions", LL)]


class _Counter(ctypes.Structure):  # mailroom_counter
    _fields_ = [("name", P), ("value", LL)]


class _Stats(ctypes.Structure):  # mailroom_stats
    _fields_ = [("now_ms", LL), ("pending", LL), ("scheduled", LL), ("scheduled_due", LL),
                ("dead", LL), ("sent_per_min", ctypes.c_double),
                ("processing", ctypes.POINTER(_Processing)), ("n_processing", ctypes.c_size_t),
                ("consumers", ctypes.POINTER(_Consumer)), ("n_consumers", ctypes.c_size_t),
                ("counters", ctypes.POINTER(_Counter)), ("n_counters", ctypes.c_size_t),
                ("paused", ctypes.c_int), ("paused_at", P), ("oldest_pending_age_ms", LL),
                ("failed_per_min", ctypes.c_double)]


class _Consumers(ctypes.Structure):  # mailroom_consumers
    _fields_ = [("now_ms", LL), ("items", ctypes.POINTER(_Consumer)), ("n", ctypes.c_size_t)]


class _DeadLetter(ctypes.Structure):  # mailroom_dead_letter
    _fields_ = [("raw", P), ("raw_len", ctypes.c_size_t), ("is_object", ctypes.c_int),
                ("at", P), ("state", P), ("id", P), ("reason", P), ("consumer", P),
                ("job", P)]


class _DeadLetters(ctypes.Structure):  # mailroom_dead_letters
    _fields_ = [("items", ctypes.POINTER(_DeadLetter)), ("n", ctypes.c_size_t)]


class _Event(ctypes.Structure):  # mailroom_event
    _fields_ = [("payload", P), ("payload_len", ctypes.c_size_t), ("is_object", ctypes.c_int),
                ("id", P), ("queue", P), ("state", P), ("smtp_reply", P), ("error", P),
                ("consumer", P), ("at", P), ("attempts", ctypes.c_int),
                ("smtp_code", ctypes.c_int)]


VP = ctypes.c_void_p
SIGNATURES = {  # name: (restype, argtypes)
    "mailroom_options_init": (None, [ctypes.POINTER(_Options)]),
    "mailroom_open": (ctypes.c_int, [ctypes.POINTER(VP), ctypes.POINTER(_Options)]),
    "mailroom_close": (None, [VP]),
    "mailroom_errmsg": (P, [VP]),
    "mailroom_send": (ctypes.c_int, [VP, ctypes.POINTER(_Email), P]),
    "mailroom_send_batch": (ctypes.c_int, [VP, ctypes.POINTER(_Email), ctypes.c_size_t, VP,
                                           ctypes.POINTER(ctypes.c_int)]),
    "mailroom_email_from_json": (ctypes.c_int, [VP, P, ctypes.c_size_t, ctypes.POINTER(VP)]),
    "mailroom_email_json_email": (ctypes.POINTER(_Email), [VP]),
    "mailroom_email_json_free": (None, [VP]),
    "mailroom_stats_read": (ctypes.c_int, [VP, ctypes.POINTER(ctypes.POINTER(_Stats))]),
    "mailroom_stats_free": (None, [ctypes.POINTER(_Stats)]),
    "mailroom_consumers_read": (ctypes.c_int, [VP, LL,
                                               ctypes.POINTER(ctypes.POINTER(_Consumers))]),
    "mailroom_consumers_free": (None, [ctypes.POINTER(_Consumers)]),
    "mailroom_consumer_state_name": (P, [ctypes.c_int]),
    "mailroom_dead_list": (ctypes.c_int, [VP, ctypes.c_long,
                                          ctypes.POINTER(ctypes.POINTER(_DeadLetters))]),
    "mailroom_dead_letters_free": (None, [ctypes.POINTER(_DeadLetters)]),
    "mailroom_dead_retry": (ctypes.c_int, [VP, P, ctypes.POINTER(LL)]),
    "mailroom_dead_purge": (ctypes.c_int, [VP, LL, ctypes.POINTER(LL)]),
    "mailroom_watch_open": (ctypes.c_int, [VP, ctypes.POINTER(VP)]),
    "mailroom_watch_next": (ctypes.c_int, [VP, ctypes.c_int,
                                           ctypes.POINTER(ctypes.POINTER(_Event))]),
    "mailroom_watch_close": (None, [VP]),
}


def load_library():
    """libmailroom.so with the signatures above, or None (not built, or built with ASan).
    A function the library lacks (an older build) is left out: only the cases calling it
    fail."""
    path = libmailroom_path()
    if path is None:
        return None
    lib = ctypes.CDLL(str(path))
    for name, (restype, argtypes) in SIGNATURES.items():
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype, fn.argtypes = restype, argtypes
    return lib


def s(b) -> str | None:
    return None if b is None else b.decode("utf-8", "replace")


class LibApiTestCase(ServerTestCase):
    """A Redis per test, and handles of libmailroom opened on it (cases that need only
    the CLI set NEEDS_LIB = False, so that they run in the sanitizer pass too)."""

    NEEDS_LIB = True

    def setUp(self):
        super().setUp()
        self.lib = load_library()
        if self.lib is None and self.NEEDS_LIB:
            self.skipTest("libmailroom.so not built, or built with AddressSanitizer")
        self.rs = self.redis()
        self.r = self.rs.client()
        self._keep = []

    def open(self, *, kid=None, key=SECRET.encode(), command_timeout_ms=2000):
        """(rc, handle) of mailroom_open on the test's Redis; the handle is closed at
        cleanup."""
        opts = _Options()
        self.lib.mailroom_options_init(ctypes.byref(opts))
        url, q = self.rs.url.encode(), b"default"
        keybuf = ctypes.create_string_buffer(key, len(key))
        self._keep += [url, q, keybuf]
        opts.redis_url, opts.queue = url, q
        if kid is not None:
            kid_b = kid.encode()
            self._keep.append(kid_b)
            opts.kid = kid_b
        opts.key, opts.key_len = ctypes.cast(keybuf, VP), len(key)
        opts.command_timeout_ms = command_timeout_ms
        h = VP()
        rc = self.lib.mailroom_open(ctypes.byref(h), ctypes.byref(opts))
        self.addCleanup(self.lib.mailroom_close, h)
        return rc, h

    def errmsg(self, h) -> str:
        return s(self.lib.mailroom_errmsg(h)) or ""

    def handle(self, **kw):
        rc, h = self.open(**kw)
        self.assertEqual(rc, OK, self.errmsg(h))
        return h

    def email(self, subject="Hello", to="rcpt@example.com"):
        to_arr = (ctypes.c_char_p * 1)(to.encode())
        self._keep.append(to_arr)
        e = _Email()
        e.to, e.n_to = to_arr, 1
        e.from_, e.subject, e.text = SENDER.encode(), subject.encode(), b"Hello there."
        return e


# --------------------------------------------------------------------------- bugs


class OpenKidTest(LibApiTestCase):

    def test_invalid_kid_fails_at_open_not_at_every_send(self):
        for kid in ("with space", "brace{x}", "", "k" * 65):
            with self.subTest(kid=kid):
                rc, h = self.open(kid=kid)
                self.assertEqual(rc, EKEY, f"mailroom_open with kid {kid!r}: "
                                           f"rc={rc}: {self.errmsg(h)}")
                self.assertIn("[A-Za-z0-9._-]{1,64}", self.errmsg(h))
                self.assertNotIn(SECRET, self.errmsg(h))
        self.assertEqual(self.r.dbsize(), 0)

    def test_valid_kid_signs_and_sends(self):
        h = self.handle(kid="app-2026.k_1")
        out = ctypes.create_string_buffer(MAILROOM_ID_MAX)
        e = self.email()
        self.assertEqual(self.lib.mailroom_send(h, ctypes.byref(e), out), OK, self.errmsg(h))
        job = json.loads(self.r.lindex(Q.pending, 0))
        self.assertEqual((job["id"], job["kid"]), (out.value.decode(), "app-2026.k_1"))


class JsonlNulTest(LibApiTestCase):
    """`mailroom send --jsonl` goes through mailroom_email_from_json, the one strict
    parser: an escaped NUL is refused wherever it is (json-c would cut at it)."""

    NEEDS_LIB = False

    def jsonl(self, *lines):
        env = mailroom_env(self.rs, secret=SECRET)
        return run_cli("send", "--jsonl", "-", env=env, input="\n".join(lines).encode())

    def test_escaped_nul_in_a_value_is_refused_not_cut(self):
        good = json.dumps({"to": ["a@example.com"], "from": SENDER, "subject": "ok",
                           "text": "fine"})
        bad = ('{"to":["a@example.com"],"from":"noreply@example.com","subject":"s",'
               '"text":"hello\\u0000SECRET-TAIL"}')
        rc, out, err = self.jsonl(good, bad)
        self.assertEqual((rc, out), (65, ""), f"stderr={err!r}")
        self.assertRegex(err, r"(?m)^mailroom: line 2: .*NUL")
        self.assertNotIn("SECRET-TAIL", err)
        self.assertEqual(self.r.dbsize(), 0, "something was enqueued")

    def test_escaped_nul_in_a_member_name_is_refused(self):
        bad = ('{"to":["a@example.com"],"from":"noreply@example.com",'
               '"subject\\u0000x":"s","text":"t"}')
        rc, out, err = self.jsonl(bad)
        self.assertEqual((rc, out), (65, ""), f"stderr={err!r}")
        self.assertRegex(err, r"(?m)^mailroom: line 1: .*NUL")
        self.assertEqual(self.r.dbsize(), 0)

    def test_escaped_backslash_u0000_is_text(self):
        line = json.dumps({"to": ["a@example.com"], "from": SENDER, "subject": "s",
                           "text": "a\\u0000b"})  # the six characters \u0000, escaped
        rc, out, err = self.jsonl(line)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(self.r.lindex(Q.pending, 0))["text"], "a\\u0000b")


# --------------------------------------------------------------------------- emails as JSON


class EmailJsonTest(LibApiTestCase):

    def test_from_json_then_batch_answers_every_email(self):
        h = self.handle()
        lines = [json.dumps({"to": [f"u{i}@example.com"], "from": SENDER,
                             "subject": f"m{i}", "text": "t", "headers": {"X-Seq": str(i)}})
                 for i in range(3)]
        lines[1] = json.dumps({"to": ["not-an-address"], "from": SENDER, "subject": "x",
                               "text": "t"})
        docs, emails = [], (_Email * 3)()
        for i, line in enumerate(lines):
            doc = VP()
            raw = line.encode()
            rc = self.lib.mailroom_email_from_json(h, raw, len(raw), ctypes.byref(doc))
            self.assertEqual(rc, OK, self.errmsg(h))
            self.addCleanup(self.lib.mailroom_email_json_free, doc)
            docs.append(doc)
            emails[i] = self.lib.mailroom_email_json_email(doc).contents
        ids = ctypes.create_string_buffer(MAILROOM_ID_MAX * 3)
        results = (ctypes.c_int * 3)()
        rc = self.lib.mailroom_send_batch(h, emails, 3, ids, results)
        self.assertEqual((rc, list(results)), (EINVAL, [OK, EINVAL, OK]), self.errmsg(h))
        self.assertIn("email 1 of 3", self.errmsg(h))
        got = [ids.raw[i * MAILROOM_ID_MAX:(i + 1) * MAILROOM_ID_MAX].split(b"\0")[0].decode()
               for i in range(3)]
        self.assertEqual(got[1], "", "an invalid email got an id")
        pending = [json.loads(j) for j in self.r.lrange(Q.pending, 0, -1)]
        self.assertEqual(sorted(j["id"] for j in pending), sorted([got[0], got[2]]))
        self.assertEqual({j["headers"]["X-Seq"] for j in pending}, {"0", "2"})

    def test_from_json_names_the_member(self):
        h = self.handle()
        doc = VP(1)
        raw = b'{"to":"a@example.com"}'
        rc = self.lib.mailroom_email_from_json(h, raw, len(raw), ctypes.byref(doc))
        self.assertEqual((rc, doc.value), (EINVAL, None))
        self.assertEqual(self.errmsg(h), "'to' must be an array of strings")


# --------------------------------------------------------------------------- operator calls


class AdminApiTest(LibApiTestCase):

    def seed(self):
        now = redis_ms(self.r)
        self.r.zadd(Q.consumers, {"live": now, "old": now - 60000})
        self.r.rpush(Q.processing("old"), "job-a", "job-b")
        self.r.rpush(Q.processing("ghost"), "job-c")
        self.r.zadd(Q.scheduled, {"due-job": now - 1000, "later-job": now + 3600000})
        self.r.hset(Q.stats, mapping={"sent": "7", "failed": "1", "custom": "3"})
        self.r.lpush(Q.pending, "p1", "p2")

    def test_stats_read(self):
        self.seed()
        h = self.handle()
        st = ctypes.POINTER(_Stats)()
        self.assertEqual(self.lib.mailroom_stats_read(h, ctypes.byref(st)), OK, self.errmsg(h))
        self.addCleanup(self.lib.mailroom_stats_free, st)
        v = st.contents
        self.assertEqual((v.pending, v.scheduled, v.scheduled_due, v.dead), (2, 2, 1, 0))
        self.assertAlmostEqual(v.now_ms, redis_ms(self.r), delta=5000)
        procs = {s(v.processing[i].consumer): v.processing[i].jobs for i in range(v.n_processing)}
        self.assertEqual(procs, {"old": 2, "ghost": 1})
        cons = [(s(v.consumers[i].id), v.consumers[i].processing, v.consumers[i].state)
                for i in range(v.n_consumers)]
        self.assertEqual(cons, [("old", 2, 1), ("live", 0, 0)])  # oldest heartbeat first
        self.assertGreaterEqual(v.consumers[0].heartbeat_age_ms, 60000)
        counters = [(s(v.counters[i].name), v.counters[i].value) for i in range(v.n_counters)]
        self.assertEqual(counters, [("sent", 7), ("retried", 0), ("failed", 1),
                                    ("rejected", 0), ("recovered", 0), ("cancelled", 0),
                                    ("custom", 3)])
        self.assertEqual((v.paused, s(v.paused_at), v.oldest_pending_age_ms), (0, "", 0))

    def test_consumers_read(self):
        self.seed()
        h = self.handle()
        for dead_after, old_state in ((0, "silent"), (120000, "alive")):
            with self.subTest(dead_after=dead_after):
                c = ctypes.POINTER(_Consumers)()
                rc = self.lib.mailroom_consumers_read(h, dead_after, ctypes.byref(c))
                self.assertEqual(rc, OK, self.errmsg(h))
                v = c.contents
                rows = {s(v.items[i].id): (s(self.lib.mailroom_consumer_state_name(
                    v.items[i].state)), v.items[i].heartbeat_age_ms >= 0, v.items[i].processing)
                    for i in range(v.n)}
                self.lib.mailroom_consumers_free(c)
                self.assertEqual(rows, {"live": ("alive", True, 0), "old": (old_state, True, 2),
                                        "ghost": ("unregistered", False, 1)})

    def test_dead_list_retry_purge(self):
        entry = {"reason": "smtp: 550 no", "at": "2020-01-01T00:00:00.000Z", "consumer": "c1",
                 "job": '{"v":"1"}', "id": "d1", "state": "failed"}
        self.r.lpush(Q.dead, json.dumps(entry), "not json",
                     json.dumps(dict(entry, id="d2", at="2999-01-01T00:00:00Z")))
        h = self.handle()
        dl = ctypes.POINTER(_DeadLetters)()
        self.assertEqual(self.lib.mailroom_dead_list(h, 2, ctypes.byref(dl)), OK, self.errmsg(h))
        v = dl.contents
        rows = [(v.items[i].is_object, s(v.items[i].id), s(v.items[i].raw)) for i in range(v.n)]
        self.lib.mailroom_dead_letters_free(dl)
        self.assertEqual([r[:2] for r in rows], [(1, "d2"), (0, None)])
        self.assertEqual(rows[1][2], "not json")

        n = LL(-1)
        self.assertEqual(self.lib.mailroom_dead_retry(h, b"nope", ctypes.byref(n)), ENOTFOUND)
        self.assertEqual(n.value, 0)
        self.assertIn("nope", self.errmsg(h))
        self.assertEqual(self.lib.mailroom_dead_retry(h, b"bad id", ctypes.byref(n)), EINVAL)
        self.assertEqual(self.lib.mailroom_dead_retry(h, b"d1", ctypes.byref(n)), OK)
        self.assertEqual((n.value, self.r.lrange(Q.pending, 0, -1)), (1, ['{"v":"1"}']))
        self.assertEqual(self.r.hget(Q.job("d1"), "state"), "queued")
        self.assertEqual(self.lib.mailroom_dead_purge(h, 86400000, ctypes.byref(n)), OK)
        self.assertEqual(n.value, 0)  # d2 is young, "not json" has no "at"
        self.assertEqual(self.lib.mailroom_dead_purge(h, -1, ctypes.byref(n)), OK)
        self.assertEqual((n.value, self.r.exists(Q.dead)), (2, 0))

    def test_watch_open_next_close(self):
        h = self.handle()
        w = VP()
        self.assertEqual(self.lib.mailroom_watch_open(h, ctypes.byref(w)), OK, self.errmsg(h))
        self.addCleanup(self.lib.mailroom_watch_close, w)
        self.assertGreaterEqual(self.r.pubsub_numsub(Q.status)[0][1], 1, "not subscribed")
        ev = ctypes.POINTER(_Event)()
        t0 = time.monotonic()
        self.assertEqual(self.lib.mailroom_watch_next(w, 200, ctypes.byref(ev)), OK)
        self.assertFalse(ev, "an event out of nowhere")
        self.assertGreaterEqual(time.monotonic() - t0, 0.15)
        published = {"id": "j1", "queue": "default", "state": "sent", "attempts": 2,
                     "smtp_code": 250, "smtp_reply": "250 ok", "error": "", "consumer": "c1",
                     "at": "2026-11-25T10:00:00.123Z"}
        self.r.publish(Q.status, json.dumps(published))
        self.r.publish(Q.status, "not json")
        self.assertEqual(self.lib.mailroom_watch_next(w, 5000, ctypes.byref(ev)), OK)
        e = ev.contents
        self.assertEqual((e.is_object, s(e.id), s(e.state), e.attempts, e.smtp_code,
                          s(e.smtp_reply), s(e.at)),
                         (1, "j1", "sent", 2, 250, "250 ok", "2026-11-25T10:00:00.123Z"))
        self.assertEqual(json.loads(s(e.payload)), published)
        self.assertEqual(self.lib.mailroom_watch_next(w, 5000, ctypes.byref(ev)), OK)
        self.assertEqual((ev.contents.is_object, s(ev.contents.payload)), (0, "not json"))
        self.rs.stop()  # the subscription is lost: an error, not a hang
        rc = self.lib.mailroom_watch_next(w, 5000, ctypes.byref(ev))
        self.assertEqual((rc, bool(ev)), (EREDIS, False), self.errmsg(h))
        self.assertIn("subscription lost", self.errmsg(h))


if __name__ == "__main__":
    unittest.main(verbosity=2)
