#!/usr/bin/python3
"""Integration tests of the history calls of libmailroom (include/mailroom_admin.h,
lib/history.c), through ctypes against a private redis-server on a free loopback port:
the outcomes per minute, the events of one job and those naming a recipient (from the
queue's events stream), and the webhook's delivery state. The keys are written by the
test exactly as docs/redis.md says their writers write them.

Run: /usr/bin/python3 tests/integration/test_history.py [-v] [TestClass.test_name]
The library comes from $MAILROOM_BIN_DIR/../lib; the cases skip themselves when
libmailroom.so is built with AddressSanitizer (it cannot be loaded into Python then).
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
from support.libmailroom import _Options, libmailroom_path  # noqa: E402
from support.state import Keys  # noqa: E402

Q = Keys("default")
OK, EINVAL = 0, 1
P, LL = ctypes.c_char_p, ctypes.c_longlong


class _Minute(ctypes.Structure):  # mailroom_minute
    _fields_ = [("minute", LL), ("sent", LL), ("retrying", LL), ("failed", LL),
                ("rejected", LL), ("cancelled", LL)]


class _History(ctypes.Structure):  # mailroom_history
    _fields_ = [("now_ms", LL), ("minutes", ctypes.POINTER(_Minute)), ("n", ctypes.c_size_t)]


class _Entry(ctypes.Structure):  # mailroom_event_log_entry
    _fields_ = [("stream_id", P), ("payload", P), ("payload_len", ctypes.c_size_t)]


class _Log(ctypes.Structure):  # mailroom_event_log
    _fields_ = [("items", ctypes.POINTER(_Entry)), ("n", ctypes.c_size_t), ("scanned", LL),
                ("complete", ctypes.c_int)]


class _Webhook(ctypes.Structure):  # mailroom_webhook_state
    _fields_ = [("present", ctypes.c_int), ("url", P), ("delivered", LL), ("failed", LL),
                ("last_status", ctypes.c_int), ("last_error", P), ("last_at", P), ("lag", LL),
                ("stream_id", P)]


def event(job_id, state, **extra):
    ev = {"id": job_id, "queue": "default", "state": state, "attempts": 1, "smtp_code": None,
          "smtp_reply": "", "error": "", "consumer": "c1", "at": "2026-01-01T00:00:00.000Z"}
    ev.update(extra)
    return json.dumps(ev, separators=(",", ":"))


class HistoryTest(ServerTestCase):

    def setUp(self):
        super().setUp()
        path = libmailroom_path()
        if path is None:
            self.skipTest("libmailroom.so is not built, or built with AddressSanitizer")
        self.lib = lib = ctypes.CDLL(str(path))
        VP = ctypes.c_void_p
        for name, res, args in (
                ("mailroom_options_init", None, [ctypes.POINTER(_Options)]),
                ("mailroom_open", ctypes.c_int, [ctypes.POINTER(VP), ctypes.POINTER(_Options)]),
                ("mailroom_close", None, [VP]),
                ("mailroom_errmsg", P, [VP]),
                ("mailroom_history_read", ctypes.c_int,
                 [VP, ctypes.c_int, ctypes.POINTER(ctypes.POINTER(_History))]),
                ("mailroom_history_free", None, [ctypes.POINTER(_History)]),
                ("mailroom_job_events_read", ctypes.c_int,
                 [VP, P, LL, LL, LL, ctypes.POINTER(ctypes.POINTER(_Log))]),
                ("mailroom_recipient_events_read", ctypes.c_int,
                 [VP, P, ctypes.c_long, LL, ctypes.POINTER(ctypes.POINTER(_Log))]),
                ("mailroom_event_log_free", None, [ctypes.POINTER(_Log)]),
                ("mailroom_webhook_state_read", ctypes.c_int,
                 [VP, ctypes.POINTER(ctypes.POINTER(_Webhook))]),
                ("mailroom_webhook_state_free", None, [ctypes.POINTER(_Webhook)])):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        self.rs = self.redis()
        self.r = self.rs.client()
        opts = _Options()
        lib.mailroom_options_init(ctypes.byref(opts))
        self._url = self.rs.url.encode()
        opts.redis_url = self._url
        self.h = ctypes.c_void_p()
        self.assertEqual(lib.mailroom_open(ctypes.byref(self.h), ctypes.byref(opts)), OK)
        self.addCleanup(lib.mailroom_close, self.h)

    def errmsg(self):
        return self.lib.mailroom_errmsg(self.h).decode()

    # ---- per minute

    def test_minutes_oldest_first_with_their_outcomes(self):
        now_min = int(time.time() // 60)
        self.r.hset(f"{Q.prefix}:minute:{now_min}", mapping={"sent": 7, "failed": 1})
        self.r.hset(f"{Q.prefix}:minute:{now_min - 2}",
                    mapping={"sent": 3, "retrying": 2, "rejected": 4, "cancelled": 5,
                             "unknown": 9})
        self.r.hset(f"{Q.prefix}:minute:{now_min - 3}", mapping={"sent": 100})  # outside
        out = ctypes.POINTER(_History)()
        self.assertEqual(self.lib.mailroom_history_read(self.h, 3, ctypes.byref(out)), OK)
        h = out.contents
        rows = [(m.minute - now_min, m.sent, m.retrying, m.failed, m.rejected, m.cancelled)
                for m in h.minutes[:h.n]]
        self.lib.mailroom_history_free(out)
        if rows[-1][0] == 1:  # the minute turned between the test's clock and the call's
            self.skipTest("a minute boundary passed during the call")
        self.assertEqual(rows, [(-2, 3, 2, 0, 4, 5), (-1, 0, 0, 0, 0, 0), (0, 7, 0, 1, 0, 0)])

    def test_minutes_out_of_range_are_refused(self):
        out = ctypes.POINTER(_History)()
        for n in (0, -1, 2881):
            with self.subTest(n):
                self.assertEqual(self.lib.mailroom_history_read(self.h, n, ctypes.byref(out)),
                                 EINVAL)
                self.assertFalse(out, "no result after a failure")
                self.assertIn("2880", self.errmsg())
        self.assertEqual(self.lib.mailroom_history_read(self.h, 2880, ctypes.byref(out)), OK)
        self.assertEqual(out.contents.n, 2880)
        self.lib.mailroom_history_free(out)

    # ---- a job's events

    def xadd(self, payload):
        return self.r.xadd(f"{Q.prefix}:events", {"event": payload})

    def job_events(self, job_id, from_ms=0, to_ms=0, max_scan=0):
        out = ctypes.POINTER(_Log)()
        rc = self.lib.mailroom_job_events_read(self.h, job_id.encode(), from_ms, to_ms,
                                               max_scan, ctypes.byref(out))
        self.assertEqual(rc, OK, self.errmsg())
        log = out.contents
        got = ([(e.stream_id.decode(), json.loads(e.payload)["state"]) for e in log.items[:log.n]],
               log.scanned, log.complete)
        self.lib.mailroom_event_log_free(out)
        return got

    def test_a_jobs_events_in_order_and_no_others(self):
        ids = []
        for i in range(12):
            self.xadd(event("job-b", "sending", error="not job-a at all"))
            if i % 3 == 0:
                state = ["sending", "retrying", "sending", "sent"][i // 3]
                ids.append(self.xadd(event("job-a", state)))
        self.xadd("not json: \"id\":\"job-a\"")
        items, scanned, complete = self.job_events("job-a")
        self.assertEqual([sid for sid, _ in items], ids)
        self.assertEqual([st for _, st in items], ["sending", "retrying", "sending", "sent"])
        self.assertEqual((scanned, complete), (17, 1))

    def test_the_budget_and_the_time_range_bound_the_search(self):
        first = self.xadd(event("job-a", "sending"))
        for _ in range(30):
            self.xadd(event("job-b", "sending"))
        last = self.xadd(event("job-a", "sent"))
        items, scanned, complete = self.job_events("job-a", max_scan=10)
        self.assertEqual(([st for _, st in items], scanned, complete), (["sending"], 10, 0))
        last_ms = int(last.split("-")[0])
        items, _, complete = self.job_events("job-a", from_ms=last_ms, to_ms=last_ms)
        self.assertEqual(([st for _, st in items], complete), (["sent"], 1))
        first_ms = int(first.split("-")[0])
        items, _, _ = self.job_events("job-a", to_ms=first_ms)
        self.assertEqual([st for _, st in items], ["sending"])

    def test_a_bad_job_id_is_refused(self):
        out = ctypes.POINTER(_Log)()
        for bad in (b"", b"a b", b"x" * 129):
            self.assertEqual(self.lib.mailroom_job_events_read(self.h, bad, 0, 0, 0,
                                                               ctypes.byref(out)), EINVAL)
            self.assertFalse(out)

    # ---- a recipient's outcomes

    def recipient(self, text, limit=0, max_scan=0):
        out = ctypes.POINTER(_Log)()
        rc = self.lib.mailroom_recipient_events_read(self.h, text.encode(), limit, max_scan,
                                                     ctypes.byref(out))
        if rc != OK:
            return rc
        log = out.contents
        got = [json.loads(e.payload)["id"] for e in log.items[:log.n]]
        self.lib.mailroom_event_log_free(out)
        return got

    def test_outcomes_naming_a_recipient_newest_first(self):
        sent = {"state": "sent", "code": 250, "reply": "250 ok"}
        self.xadd(event("j1", "sent", recipients={"Ming@Example.com": sent}))
        self.xadd(event("j2", "failed", error="ming@example.com refused",
                        recipients={"other@example.org": sent}))
        self.xadd(event("j3", "sending", error="ming@example.com"))  # no recipients: not one
        self.xadd(event("j4", "sent", recipients={"a@x.org": sent, "ming@EXAMPLE.com": sent}))
        self.assertEqual(self.recipient("ming@example.COM"), ["j4", "j1"])
        self.assertEqual(self.recipient("@example.com"), ["j4", "j1"])
        self.assertEqual(self.recipient("@example.org"), ["j2"])
        self.assertEqual(self.recipient("ming@example.com", limit=1), ["j4"])
        self.assertEqual(self.recipient("ming@example.com", max_scan=2), ["j4"])
        self.assertEqual(self.recipient("nobody@example.com"), [])
        self.assertEqual(self.recipient(""), EINVAL)
        self.assertEqual(self.recipient("x" * 300), EINVAL)

    # ---- the webhook

    def test_webhook_state(self):
        out = ctypes.POINTER(_Webhook)()
        self.assertEqual(self.lib.mailroom_webhook_state_read(self.h, ctypes.byref(out)), OK)
        self.assertEqual((out.contents.present, out.contents.url), (0, b""))
        self.lib.mailroom_webhook_state_free(out)
        self.r.hset(f"{Q.prefix}:webhook", mapping={
            "url": "https://app.example/hook", "delivered": "12", "failed": "1",
            "last_status": "503", "last_error": "HTTP 503", "last_at": "2026-01-01T00:00:00Z",
            "lag": "4", "stream_id": "1-0"})
        self.assertEqual(self.lib.mailroom_webhook_state_read(self.h, ctypes.byref(out)), OK)
        w = out.contents
        self.assertEqual((w.present, w.url, w.delivered, w.failed, w.last_status, w.last_error,
                          w.last_at, w.lag, w.stream_id),
                         (1, b"https://app.example/hook", 12, 1, 503, b"HTTP 503",
                          b"2026-01-01T00:00:00Z", 4, b"1-0"))
        self.lib.mailroom_webhook_state_free(out)


if __name__ == "__main__":
    unittest.main()
