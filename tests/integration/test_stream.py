#!/usr/bin/python3
"""Integration tests of the events stream's readers against a private redis-server:
`mailroom watch --from ID|0|$` and `--group NAME [--consumer NAME]` (cli/watch.c), and
the library calls behind them (mailroom_stream_* of include/mailroom_admin.h, through
ctypes), with entries added the way the consumer's scripts add them (XADD of one field
"event"), plus one case where a real consumer's events are read.

  WatchFromTest     resume after an id, only new events, the trimmed start reported
  WatchGroupTest    a group acknowledges what it printed and resumes after a restart,
                    unacknowledged events first
  LibStreamTest     the library calls: parse, timeouts, reconnect, groups, ack, claim,
                    take-over, bad options

Run: /usr/bin/python3 tests/integration/test_stream.py [-v] [TestClass.test_name]
"""

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import mailroom_env, run_cli  # noqa: E402
from support.jobs import new_secret  # noqa: E402
from support.libmailroom import _Options, libmailroom_path  # noqa: E402
from support.paths import CLI  # noqa: E402
from support.procs import reap, spawn, wait_for  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402
from support.state import Keys  # noqa: E402

SECRET = new_secret()
Q = Keys("default")
OK, EINVAL, EREDIS, ENOTFOUND = 0, 1, 3, 5


def event(job_id, state="sent", **extra):
    e = {"id": job_id, "queue": "default", "state": state, "attempts": 1, "smtp_code": 250,
         "smtp_reply": "250 ok", "error": "", "consumer": "c1",
         "at": "2026-12-01T00:00:00.000Z"}
    e.update(extra)
    return json.dumps(e, separators=(",", ":"))


class StreamTestCase(ServerTestCase):

    def setUp(self):
        super().setUp()
        self.rs = self.redis()
        self.r = self.rs.client()
        self.env = mailroom_env(self.rs)

    def xadd(self, payload, **kw) -> str:
        return self.r.xadd(Q.events, {"event": payload}, **kw)

    def watch(self, *args, timeout=15):
        return run_cli("watch", *args, env=self.env, timeout=timeout)

    def json_lines(self, out):
        return [json.loads(line) for line in out.splitlines()]


class WatchFromTest(StreamTestCase):

    def test_from_zero_then_resume_after_an_id(self):
        ids = [self.xadd(event(f"j{i}")) for i in range(5)]
        rc, out, err = self.watch("--from", "0", "--json", "--count", "5")
        self.assertEqual(rc, 0, err)
        lines = self.json_lines(out)
        self.assertEqual([x["stream_id"] for x in lines], ids)
        self.assertEqual([x["id"] for x in lines], [f"j{i}" for i in range(5)])
        self.assertEqual(list(lines[0])[-1], "stream_id")  # after the event's own members
        self.assertNotIn("trimmed", lines[0])
        rc, out, err = self.watch("--from", ids[2], "--timeout", "1")
        self.assertEqual(rc, 0, err)
        rows = out.splitlines()
        self.assertEqual([r.split()[0] for r in rows], ids[3:])
        self.assertRegex(rows[0], r"^\d+-\d+  2026-12-01T00:00:00.000Z  sent\s+j3  #1  250 ok$")

    def test_from_dollar_prints_only_new_events(self):
        self.xadd(event("old"))
        p = spawn([CLI, "watch", "--from", "$", "--json", "--count", "1"], env=self.env,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: any(c.get("cmd") == "xread" for c in self.r.client_list()), 10,
                     message="watch blocked in XREAD")
            new = self.xadd(event("new"))
            out, err = p.communicate(timeout=10)
        finally:
            reap(p)
        self.assertEqual(p.returncode, 0, err)
        lines = self.json_lines(out.decode())
        self.assertEqual([(x["id"], x["stream_id"]) for x in lines], [("new", new)])

    def test_trimmed_start_is_reported(self):
        first = self.xadd(event("lost-0"))
        for i in range(1, 300):
            self.xadd(event(f"e{i}"), maxlen=50, approximate=False)
        oldest = self.r.xrange(Q.events, count=1)[0][0]
        rc, out, err = self.watch("--from", first, "--json", "--count", "2")
        self.assertEqual(rc, 0, err)
        lines = self.json_lines(out)
        self.assertEqual(lines[0]["stream_id"], oldest)
        self.assertIs(lines[0]["trimmed"], True)
        self.assertNotIn("trimmed", lines[1])
        self.assertIn(f"warning: events before {oldest} were trimmed", err)
        # reading everything kept ("0") is not a gap
        rc, out, err = self.watch("--from", "0", "--json", "--count", "1")
        self.assertEqual((rc, err), (0, ""))
        self.assertNotIn("trimmed", self.json_lines(out)[0])

    def test_bad_options(self):
        for args, want in ((["--from", "soon"], "start must be"),
                           (["--consumer", "x"], "--consumer needs --group"),
                           (["--group", "bad name"], "[A-Za-z0-9._:-]{1,64}"),
                           (["--from", "0", "--dead-after", "1s"], "not an option")):
            with self.subTest(args=args):
                rc, out, err = self.watch(*args, "--timeout", "1")
                self.assertEqual(rc, 64, err)
                self.assertIn(want, err)


class WatchGroupTest(StreamTestCase):

    def group_pending(self, group="g"):
        return self.r.xpending(Q.events, group)["pending"]

    def test_acknowledges_what_it_printed_and_resumes(self):
        ids = [self.xadd(event(f"j{i}")) for i in range(3)]
        rc, out, err = self.watch("--group", "g", "--consumer", "c1", "--from", "0", "--json",
                                  "--count", "2")
        self.assertEqual(rc, 0, err)
        self.assertEqual([x["stream_id"] for x in self.json_lines(out)], ids[:2])
        self.assertEqual(self.group_pending(), 0, "printed but not acknowledged")
        ids.append(self.xadd(event("j3")))
        rc, out, err = self.watch("--group", "g", "--consumer", "c1", "--timeout", "1")
        self.assertEqual(rc, 0, err)
        self.assertEqual([row.split()[0] for row in out.splitlines()], ids[2:])
        self.assertEqual(self.group_pending(), 0)

    def test_unacknowledged_events_come_again_first(self):
        """An event given to the reader and never acknowledged (a watch killed between
        the two) is printed first by the next watch with the same name."""
        ids = [self.xadd(event(f"j{i}")) for i in range(3)]
        self.r.xgroup_create(Q.events, "g", id="0")
        self.r.xreadgroup("g", "c1", {Q.events: ">"}, count=1)  # delivered, not acked
        rc, out, err = self.watch("--group", "g", "--consumer", "c1", "--json", "--count", "3")
        self.assertEqual(rc, 0, err)
        lines = self.json_lines(out)
        self.assertEqual([x["stream_id"] for x in lines], ids)
        self.assertEqual([x.get("redelivered", False) for x in lines], [True, False, False])
        self.assertEqual(self.group_pending(), 0)

    def test_sigterm_ends_a_blocked_group_watch(self):
        p = spawn([CLI, "watch", "--group", "g", "--consumer", "c1"], env=self.env,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: any(c.get("cmd") == "xreadgroup" for c in self.r.client_list()),
                     10, message="watch blocked in XREADGROUP")
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=10)
        finally:
            reap(p)
        self.assertEqual((p.returncode, out, err), (0, b"", b""))

    def test_default_consumer_is_the_host_name(self):
        self.xadd(event("j0"))
        rc, out, err = self.watch("--group", "g", "--from", "0", "--count", "1")
        self.assertEqual(rc, 0, err)
        names = [c["name"] for c in self.r.xinfo_consumers(Q.events, "g")]
        host = socket.gethostname()
        self.assertEqual(len(names), 1)
        self.assertEqual(names[0], "".join(ch if ch.isalnum() or ch in "._:-" else "-"
                                           for ch in host)[:64])

    def test_a_real_consumers_events(self):
        """Events as the consumer's scripts write them: the stream's "sending" and
        "sent" of one mail, read back by a group."""
        rx = self.receiver()
        env = mailroom_env(self.rs, secret=SECRET, smtp=rx)
        self.start_consumer(env, "--id", "c1")
        job_id = self.send(env)
        rx.wait_for_count(1)
        rc, out, err = run_cli("watch", "--group", "app", "--from", "0", "--json", "--count",
                               "2", env=env, timeout=15)
        self.assertEqual(rc, 0, err)
        lines = self.json_lines(out)
        self.assertEqual([(x["id"], x["state"]) for x in lines],
                         [(job_id, "sending"), (job_id, "sent")])
        self.assertEqual(lines[1]["recipients"]["rcpt@example.com"]["state"], "sent")


# --------------------------------------------------------------------------- library

P = ctypes.c_char_p
VP = ctypes.c_void_p


class _Event(ctypes.Structure):  # mailroom_event, include/mailroom_admin.h
    _fields_ = [("payload", P), ("payload_len", ctypes.c_size_t), ("is_object", ctypes.c_int),
                ("id", P), ("queue", P), ("state", P), ("smtp_reply", P), ("error", P),
                ("consumer", P), ("at", P), ("attempts", ctypes.c_int),
                ("smtp_code", ctypes.c_int), ("relay_id", P), ("recipients", VP),
                ("n_recipients", ctypes.c_size_t)]


class _StreamOptions(ctypes.Structure):  # mailroom_stream_options
    _fields_ = [("start", P), ("group", P), ("consumer", P), ("claim_after_ms", ctypes.c_longlong),
                ("batch", ctypes.c_int)]


class _StreamEvent(ctypes.Structure):  # mailroom_stream_event
    _fields_ = [("stream_id", P), ("stream_ms", ctypes.c_longlong), ("trimmed", ctypes.c_int),
                ("redelivered", ctypes.c_int), ("event", ctypes.POINTER(_Event))]


SEP = ctypes.POINTER(ctypes.POINTER(_StreamEvent))
SIGNATURES = {
    "mailroom_options_init": (None, [ctypes.POINTER(_Options)]),
    "mailroom_open": (ctypes.c_int, [ctypes.POINTER(VP), ctypes.POINTER(_Options)]),
    "mailroom_close": (None, [VP]),
    "mailroom_errmsg": (P, [VP]),
    "mailroom_stream_options_init": (None, [ctypes.POINTER(_StreamOptions)]),
    "mailroom_stream_open": (ctypes.c_int, [VP, ctypes.POINTER(_StreamOptions),
                                            ctypes.POINTER(VP)]),
    "mailroom_stream_next": (ctypes.c_int, [VP, ctypes.c_int, SEP]),
    "mailroom_stream_ack": (ctypes.c_int, [VP, P]),
    "mailroom_stream_claim": (ctypes.c_int, [VP, P, SEP]),
    "mailroom_stream_close": (None, [VP]),
}


def s(b):
    return None if b is None else b.decode("utf-8", "replace")


class LibStreamTest(StreamTestCase):

    def setUp(self):
        super().setUp()
        path = libmailroom_path()
        if path is None:
            self.skipTest("libmailroom.so not built, or built with AddressSanitizer")
        self.lib = ctypes.CDLL(str(path))
        for name, (restype, argtypes) in SIGNATURES.items():
            fn = getattr(self.lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        self._keep = []

    def handle(self, rs=None):
        opts = _Options()
        self.lib.mailroom_options_init(ctypes.byref(opts))
        url = (rs or self.rs).url.encode()
        self._keep.append(url)
        opts.redis_url = url
        h = VP()
        self.assertEqual(self.lib.mailroom_open(ctypes.byref(h), ctypes.byref(opts)), OK)
        self.addCleanup(self.lib.mailroom_close, h)
        return h

    def open(self, h, start=None, group=None, consumer=None, claim_after_ms=0, batch=0,
             close_at_cleanup=True):
        o = _StreamOptions()
        self.lib.mailroom_stream_options_init(ctypes.byref(o))
        for field, value in (("start", start), ("group", group), ("consumer", consumer)):
            if value is not None:
                b = value.encode()
                self._keep.append(b)
                setattr(o, field, b)
        o.claim_after_ms, o.batch = claim_after_ms, batch
        st = VP()
        rc = self.lib.mailroom_stream_open(h, ctypes.byref(o), ctypes.byref(st))
        if rc == OK and close_at_cleanup:
            self.addCleanup(self.lib.mailroom_stream_close, st)
        return rc, st

    def next(self, st, timeout_ms=2000):
        ev = ctypes.POINTER(_StreamEvent)()
        rc = self.lib.mailroom_stream_next(st, timeout_ms, ctypes.byref(ev))
        return rc, (ev.contents if ev else None)

    def errmsg(self, h):
        return s(self.lib.mailroom_errmsg(h))

    def test_plain_reader_parses_like_the_watch(self):
        h = self.handle()
        ids = [self.xadd(event("j1", relay_id="4XkQ", recipients={
            "a@example.com": {"state": "sent", "code": 250, "reply": "250 ok"}})),
               self.xadd("not json")]
        self.r.xadd(Q.events, {"other": "x"})
        rc, st = self.open(h, start="0", batch=2)
        self.assertEqual(rc, OK, self.errmsg(h))
        rc, ev = self.next(st)
        self.assertEqual(rc, OK)
        e = ev.event.contents
        self.assertEqual((s(ev.stream_id), ev.stream_ms, ev.trimmed, ev.redelivered),
                         (ids[0], int(ids[0].split("-")[0]), 0, 0))
        self.assertEqual((e.is_object, s(e.id), s(e.state), e.attempts, e.smtp_code,
                          s(e.relay_id), e.n_recipients), (1, "j1", "sent", 1, 250, "4XkQ", 1))
        rc, ev = self.next(st)
        self.assertEqual((s(ev.stream_id), ev.event.contents.is_object,
                          s(ev.event.contents.payload)), (ids[1], 0, "not json"))
        rc, ev = self.next(st)
        self.assertEqual((ev.event.contents.payload_len, s(ev.event.contents.payload)), (0, ""))
        t0 = time.monotonic()
        rc, ev = self.next(st, 300)
        self.assertEqual((rc, ev), (OK, None))
        self.assertGreaterEqual(time.monotonic() - t0, 0.25)
        rc, ev = self.next(st, 0)
        self.assertEqual((rc, ev), (OK, None))
        self.assertEqual(self.lib.mailroom_stream_ack(st, ids[0].encode()), EINVAL)

    def test_reconnects_after_a_redis_restart(self):
        rs = self.stack.enter_context(RedisServer(aof=True))
        r = rs.client()
        h = self.handle(rs)
        first = r.xadd(Q.events, {"event": event("before")})
        rc, st = self.open(h, start="$")
        self.assertEqual(rc, OK, self.errmsg(h))
        second = r.xadd(Q.events, {"event": event("second")})
        rc, ev = self.next(st)
        self.assertEqual(s(ev.stream_id), second)
        rs.stop()
        rc, ev = self.next(st, 500)
        self.assertIn(rc, (EREDIS, 4), self.errmsg(h))
        self.assertIsNone(ev)
        rs.start()
        third = rs.client().xadd(Q.events, {"event": event("third")})
        rc, ev = self.next(st)
        self.assertEqual(rc, OK, self.errmsg(h))
        self.assertEqual(s(ev.stream_id), third)  # neither "before" nor "second" again
        self.assertNotEqual(first, third)

    def test_group_pending_first_ack_and_claim(self):
        h = self.handle()
        ids = [self.xadd(event(f"j{i}")) for i in range(3)]
        rc, a = self.open(h, start="0", group="g", consumer="c1", batch=1,
                          close_at_cleanup=False)
        self.assertEqual(rc, OK, self.errmsg(h))
        rc, ev = self.next(a)
        self.assertEqual((s(ev.stream_id), ev.redelivered), (ids[0], 0))
        rc, ev = self.next(a)
        self.assertEqual(s(ev.stream_id), ids[1])
        self.assertEqual(self.lib.mailroom_stream_ack(a, ids[1].encode()), OK)
        self.lib.mailroom_stream_close(a)
        rc, b = self.open(h, group="g", consumer="c1")  # a restart: ids[0] is still pending
        rc, ev = self.next(b)
        self.assertEqual((s(ev.stream_id), ev.redelivered), (ids[0], 1))
        rc, ev = self.next(b)
        self.assertEqual((s(ev.stream_id), ev.redelivered), (ids[2], 0))
        self.assertEqual(self.r.xpending(Q.events, "g")["pending"], 2)
        claimed = ctypes.POINTER(_StreamEvent)()
        self.assertEqual(self.lib.mailroom_stream_claim(b, ids[0].encode(),
                                                        ctypes.byref(claimed)), OK)
        self.assertEqual((s(claimed.contents.stream_id), s(claimed.contents.event.contents.id),
                          claimed.contents.redelivered), (ids[0], "j0", 1))
        for i in (0, 2):
            self.assertEqual(self.lib.mailroom_stream_ack(b, ids[i].encode()), OK)
        self.assertEqual(self.lib.mailroom_stream_ack(b, ids[0].encode()), OK)  # again: fine
        self.assertEqual(self.r.xpending(Q.events, "g")["pending"], 0)
        self.assertEqual(self.lib.mailroom_stream_claim(b, ids[0].encode(),
                                                        ctypes.byref(claimed)), ENOTFOUND)
        self.assertFalse(claimed)
        self.assertEqual(self.lib.mailroom_stream_ack(b, b"not-an-id"), EINVAL)

    def test_take_over_of_an_idle_readers_events(self):
        h = self.handle()
        sid = self.xadd(event("held"))
        rc, a = self.open(h, start="0", group="g", consumer="a")
        rc, ev = self.next(a)
        self.assertEqual(s(ev.stream_id), sid)  # a holds it and goes silent
        rc, b = self.open(h, group="g", consumer="b", claim_after_ms=500)
        self.assertEqual(rc, OK, self.errmsg(h))
        rc, ev = self.next(b, 200)
        self.assertIsNone(ev, "taken over before it was idle long enough")
        rc, ev = self.next(b, 3000)
        self.assertEqual(rc, OK, self.errmsg(h))
        self.assertEqual((s(ev.stream_id), ev.redelivered), (sid, 1))
        owners = {c["name"]: c["pending"] for c in self.r.xinfo_consumers(Q.events, "g")}
        self.assertEqual((owners["a"], owners["b"]), (0, 1))

    def test_group_created_at_its_start(self):
        h = self.handle()
        old = self.xadd(event("old"))
        rc, st = self.open(h, group="from-now", consumer="c")  # default start "$"
        self.assertEqual(rc, OK, self.errmsg(h))
        rc, ev = self.next(st, 200)
        self.assertIsNone(ev)
        new = self.xadd(event("new"))
        rc, ev = self.next(st)
        self.assertEqual(s(ev.stream_id), new)
        rc, st2 = self.open(h, start=old, group="after-old", consumer="c")
        rc, ev = self.next(st2)
        self.assertEqual(s(ev.stream_id), new)
        groups = {g["name"] for g in self.r.xinfo_groups(Q.events)}
        self.assertEqual(groups, {"from-now", "after-old"})

    def test_bad_options(self):
        h = self.handle()
        for kw, want in (({"start": "yesterday"}, "start must be"),
                         ({"start": "1-2-3"}, "start must be"),
                         ({"group": "g"}, "group and consumer names"),
                         ({"consumer": "c"}, "need a group"),
                         ({"group": "g", "consumer": "c", "batch": 20000}, "batch"),
                         ({"group": "g{x}", "consumer": "c"}, "group and consumer names")):
            with self.subTest(kw=kw):
                rc, st = self.open(h, **kw)
                self.assertEqual((rc, st.value), (EINVAL, None))
                self.assertIn(want, self.errmsg(h))
        self.assertEqual(self.r.exists(Q.events), 0, "a refused open created something")


if __name__ == "__main__":
    unittest.main(verbosity=2)
