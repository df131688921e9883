#!/usr/bin/python3
"""End-to-end tests of mailroom: the `mailroom` CLI enqueues into a private redis-server,
`mailroom-consumer` processes deliver to a private SMTP server (aiosmtpd, or Postfix's
smtp-sink for SMTP errors), and the tests check what arrived, the job records, the
status events, the dead list and the counters.

Run: /usr/bin/python3 tests/integration/test_pipeline.py [-v] [TestClass.test_name]
The binaries come from $MAILROOM_BIN_DIR (default <repo>/build/bin). Every test has its
own servers on free 127.0.0.1 ports; nothing outside loopback is ever contacted.
"""

import collections
import concurrent.futures
import email.parser
import email.policy
import json
import os
import re
import signal
import socket
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import Consumer, mailroom_env, run_cli  # noqa: E402
from support.jobs import (  # noqa: E402
    enqueue_raw, job_json, make_job, new_secret, sign_job, SIGNER_SOURCE,
)
from support.messages import (  # noqa: E402
    bare_line_ends, job_id_of, longest_line, message_id_for, parse_message, text_of,
    unfold_header_lines,
)
from support.procs import free_port, wait_for  # noqa: E402
from support.state import dead_entries, Keys, stats  # noqa: E402

SECRET = new_secret()
SENDER = "noreply@example.com"
ULID_RE = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
ENCODED_WORD_RE = re.compile(rb"=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=")
Q = Keys("default")
SHORT_SECRET = "fifteen-bytes!!"  # 15 bytes: one short of the 16 required


class PipelineTestCase(ServerTestCase):
    """The suite's fixtures on top of support.case.ServerTestCase."""

    def consumer(self, env, *args, default_timing=False) -> Consumer:
        """Starts a consumer. Unless default_timing, it blocks at most 250 ms in BLMOVE
        (--block-timeout) so that it stops quickly at teardown; the shutdown tests use
        the default (1 s)."""
        if not default_timing:
            args = ("--block-timeout", "250ms") + tuple(args)
        return self.start_consumer(env, *args)

    # ---- helpers

    def job_hash(self, r, job_id):
        return r.hgetall(Q.job(job_id))

    def assert_clean_wire_format(self, raw: bytes):
        self.assertEqual(bare_line_ends(raw), 0, "bare LF/CR in the message")
        self.assertTrue(raw.isascii(), "8-bit bytes in a message sent without 8BITMIME")
        self.assertLessEqual(longest_line(raw), 998, "a line exceeds 998 bytes")
        for word in ENCODED_WORD_RE.findall(b"\r\n".join(unfold_header_lines(raw))):
            self.assertLessEqual(len(word), 75, f"encoded word too long: {word!r}")


# --------------------------------------------------------------------------- 1. delivery


class DeliveryTest(PipelineTestCase):

    def test_chinese_activation_email_roundtrip(self):
        """CLI → Redis → consumer → SMTP: exact subject, names, bodies; job record,
        `mailroom status`, and the status events."""
        rs = self.redis()
        rx = self.receiver()
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        tmp = self.tmpdir()
        html = ('<p>王小明，您好：</p>\n<p><a href="https://example.com/activate?t=abc123">'
                '激活账户</a></p>\n')
        html_path = os.path.join(tmp, "body.html")
        with open(html_path, "w", encoding="utf-8") as f:
            f.write(html)
        subject = "请激活您的账户"
        text = ("王小明，您好：\n\n点击链接激活您的账户：https://example.com/activate?t=abc123\n"
                ".以句点开头的一行\n.\n..\n链接 24 小时内有效。\n" + "长" * 400 + "\n"
                + "x" * 1200 + "\n")

        listener = self.listener(rs)  # subscribed before anything is sent
        consumer = self.consumer(env, "--id", "c1", "--concurrency", "2")
        job_id = self.send(env, "--from-name", "滴水网", "--html-file", html_path,
                           to=["王小明 <ming@example.com>"], subject=subject, text=text)
        self.assertRegex(job_id, ULID_RE, "a generated id should be a ULID")

        got = rx.wait_for_count(1, timeout=15)
        self.assertEqual(len(got), 1)
        m = got[0]
        self.assertEqual(m.mail_from, SENDER)
        self.assertEqual(m.rcpt_tos, ["ming@example.com"])
        self.assert_clean_wire_format(m.raw)

        msg = parse_message(m.raw)
        self.assertEqual(msg.defects, [], "message-level parse defects")
        self.assertEqual(str(msg["Subject"]), subject)
        frm = msg["From"].addresses
        self.assertEqual(len(frm), 1)
        self.assertEqual((frm[0].display_name, frm[0].addr_spec), ("滴水网", SENDER))
        to = msg["To"].addresses
        self.assertEqual([(a.display_name, a.addr_spec) for a in to],
                         [("王小明", "ming@example.com")])
        self.assertEqual(msg["Message-ID"], f"<{job_id}@example.com>")
        self.assertIn(job_id, msg["Message-ID"])
        self.assertEqual(str(msg["MIME-Version"]).strip(), "1.0")
        self.assertIsNotNone(msg["Date"])
        self.assertIsNotNone(msg["Date"].datetime, "unparseable Date header")
        self.assertEqual(msg.get_content_type(), "multipart/alternative")
        parts = list(msg.iter_parts())
        self.assertEqual([p.get_content_type() for p in parts], ["text/plain", "text/html"])
        for p in parts:
            self.assertEqual(p.get_content_charset(), "utf-8")
            self.assertEqual(p.defects, [], f"defects in {p.get_content_type()}")
        self.assertEqual(text_of(parts[0]).rstrip("\n"), text.rstrip("\n"))
        self.assertEqual(text_of(parts[1]).rstrip("\n"), html.rstrip("\n"))

        h = self.wait_state(r, job_id, "sent")
        self.assertEqual(h.get("smtp_code"), "250")
        self.assertTrue(h.get("smtp_reply", "").startswith("250"), h)
        self.assertIn("queued as MR000001", h.get("smtp_reply", ""), "reply text not kept")
        self.assertEqual(h.get("attempts"), "1")
        self.assertEqual(h.get("consumer"), "c1")
        self.assertEqual(h.get("error", ""), "")
        self.assertTrue(h.get("created_at") and h.get("updated_at"), h)

        rc, out, err = run_cli("status", job_id, env=env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(out.strip().splitlines()), 1, f"status printed {out!r}")
        st = json.loads(out)
        self.assertEqual(st["id"], job_id)
        self.assertEqual(st["queue"], "default")
        self.assertEqual(st["state"], "sent")
        self.assertEqual(str(st["smtp_code"]), "250")
        self.assertTrue(str(st["smtp_reply"]).startswith("250"), st)
        self.assertEqual(str(st["attempts"]), "1")
        self.assertEqual(st["consumer"], "c1")
        for k in ("error", "created_at", "updated_at"):
            self.assertIn(k, st)

        last = listener.wait_for_state(job_id, "sent", timeout=10)
        self.assertEqual(listener.states(job_id), ["sending", "sent"])
        self.assertEqual(last["queue"], "default")
        self.assertEqual(last["consumer"], "c1")
        self.assertEqual(str(last["smtp_code"]), "250")
        self.assertEqual(str(last["attempts"]), "1")
        self.assertTrue(last.get("at"), last)
        self.assertEqual(listener.bad, [], "non-JSON status events")

        self.assertEqual(stats(r).get("sent"), 1)
        self.assert_queue_drained(r)
        self.assertEqual(r.llen(Q.dead), 0)
        self.assertEqual(consumer.stop(), 0)
        self.assertEqual(consumer.error_lines(), [], "errors logged during a clean run")
        self.assertNotIn(SECRET, consumer.log(), "the secret reached the log")

    def test_cc_bcc_reply_to_header_long_subject_and_caller_id(self):
        """cc/bcc reach the envelope, bcc never the headers; reply-to and an X- header
        pass; a long non-ASCII subject is folded into short encoded words and decodes
        exactly; --text-file; a caller id is echoed and escaped in the Message-ID."""
        rs = self.redis()
        rx = self.receiver()
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        tmp = self.tmpdir()
        text = "Order 1042: 2 items, total ¥198.00\n谢谢惠顾。\n"
        text_path = os.path.join(tmp, "body.txt")
        with open(text_path, "w", encoding="utf-8") as f:
            f.write(text)
        subject = "Your receipt / 您的收据 #1042 " * 5 + "😀✅"
        caller_id = "order-1042:receipt.v2"
        self.consumer(env, "--id", "c1")
        job_id = self.send(
            env, "--cc", '"Doe, Jane" <jane@example.com>', "--bcc", "audit@example.org",
            "--reply-to", "客服 <support@example.com>", "--header", "X-Campaign: receipt-2026",
            "--from-name", "Example 商店", "--text-file", text_path, "--id", caller_id,
            to=["Ming <ming@example.com>", "li.lei@example.org"], subject=subject, text=None)
        self.assertEqual(job_id, caller_id)

        m = rx.wait_for_count(1, timeout=15)[0]
        self.assertEqual(sorted(m.rcpt_tos), sorted(["ming@example.com", "li.lei@example.org",
                                                     "jane@example.com", "audit@example.org"]))
        self.assert_clean_wire_format(m.raw)
        self.assertNotIn(b"audit@example.org", m.raw, "the Bcc address leaked into the message")
        msg = parse_message(m.raw)
        self.assertIsNone(msg["Bcc"])
        self.assertEqual(str(msg["Subject"]), subject)
        self.assertEqual([(a.display_name, a.addr_spec) for a in msg["To"].addresses],
                         [("Ming", "ming@example.com"), ("", "li.lei@example.org")])
        self.assertEqual([(a.display_name, a.addr_spec) for a in msg["Cc"].addresses],
                         [("Doe, Jane", "jane@example.com")])
        self.assertEqual([(a.display_name, a.addr_spec) for a in msg["Reply-To"].addresses],
                         [("客服", "support@example.com")])
        self.assertEqual([(a.display_name, a.addr_spec) for a in msg["From"].addresses],
                         [("Example 商店", SENDER)])
        self.assertEqual(str(msg["X-Campaign"]), "receipt-2026")
        self.assertEqual(msg["Message-ID"].upper(),
                         message_id_for(caller_id, SENDER).upper())
        self.assertEqual(msg.get_content_type(), "text/plain")
        self.assertEqual(msg.get_content_charset(), "utf-8")
        self.assertEqual(text_of(msg).rstrip("\n"), text.rstrip("\n"))
        self.wait_state(r, caller_id, "sent")


# --------------------------------------------------------------------------- 2. rejection


class RejectionTest(PipelineTestCase):

    def test_forged_wrong_key_unknown_kid_and_garbage_rejected(self):
        rs = self.redis()
        rx = self.receiver()
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        listener = self.listener(rs)
        consumer = self.consumer(env, "--id", "c1", "--concurrency", "1")

        # a) a genuine job whose subject was altered after signing
        genuine = sign_job(make_job(subject="Your code is 1234", to=["ming@example.com"]), SECRET)
        forged = dict(genuine, subject="Your code is 9999 — click http://evil.example")
        raw = job_json(forged)
        enqueue_raw(r, raw, record=False)
        h = self.wait_state(r, forged["id"], "rejected")
        self.assertRegex(h.get("error", ""), "(?i)signature")
        dead = dead_entries(r)
        self.assertEqual(len(dead), 1)
        self.assertRegex(dead[0].get("reason", ""), "(?i)signature")
        self.assertEqual(dead[0]["job"], raw)
        self.assertEqual(dead[0].get("id"), forged["id"])
        self.assertEqual(dead[0].get("consumer"), "c1")
        self.assertEqual(dead[0].get("state"), "rejected")
        self.assertTrue(dead[0].get("at"))
        self.assertEqual(stats(r).get("rejected"), 1)
        listener.wait_for_state(forged["id"], "rejected", timeout=5)
        self.assertNotIn("sent", listener.states(forged["id"]))

        # b) signed with a key the consumer does not have
        wrong = sign_job(make_job(subject="wrong key"), new_secret())
        enqueue_raw(r, job_json(wrong), job_id=wrong["id"])
        h = self.wait_state(r, wrong["id"], "rejected")
        self.assertRegex(h.get("error", ""), "(?i)signature")
        self.assertEqual(stats(r).get("rejected"), 2)

        # c) an unknown kid
        other = sign_job(make_job(subject="unknown kid"), SECRET, kid="nosuchkid")
        enqueue_raw(r, job_json(other), job_id=other["id"])
        h = self.wait_state(r, other["id"], "rejected")
        self.assertTrue(h.get("error"), h)
        self.assertEqual(stats(r).get("rejected"), 3)

        # d) not JSON at all
        garbage = "this is not a job {\"id\": "
        enqueue_raw(r, garbage, record=False)
        wait_for(lambda: r.llen(Q.dead) == 4, 10, message="garbage on the dead list")
        d = dead_entries(r)[-1]
        self.assertEqual(d["job"], garbage)
        self.assertTrue(d.get("reason"), d)
        self.assertEqual(stats(r).get("rejected"), 4)
        self.assertTrue(consumer.alive(), "consumer died on a garbage job")

        # the consumer still delivers, and nothing forged ever reached the server
        ok = self.send(env, to=["ming@example.com"], subject="genuine")
        self.wait_state(r, ok, "sent")
        msgs = rx.wait_for_count(1, timeout=10)
        self.assertEqual([parse_message(x.raw)["Message-ID"] for x in msgs],
                         [f"<{ok}@example.com>"])

        # e) a forged copy of a job already sent is refused and leaves its record alone
        sent_hash = self.job_hash(r, ok)
        payload = sign_job(make_job(ok, subject="replayed with a new subject"), new_secret())
        enqueue_raw(r, job_json(payload), record=False)
        wait_for(lambda: r.llen(Q.dead) == 5, 10, message="forged replay on the dead list")
        self.assertEqual(self.job_hash(r, ok).get("state"), "sent")
        self.assertEqual(self.job_hash(r, ok).get("smtp_code"), sent_hash.get("smtp_code"))
        self.assertEqual(stats(r).get("rejected"), 5)
        self.assertEqual(stats(r).get("sent"), 1)
        self.assert_queue_drained(r)
        self.assertEqual(rx.count(), 1)
        self.assertEqual(consumer.stop(), 0)

    def test_redelivered_sent_job_is_not_sent_again(self):
        rs = self.redis()
        rx = self.receiver()
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        job = sign_job(make_job(subject="once only"), SECRET)
        raw = job_json(job)
        enqueue_raw(r, raw, job_id=job["id"])
        enqueue_raw(r, raw, record=False)  # the same job again (a redelivery)
        marker = make_job(subject="marker")
        marker = sign_job(marker, SECRET)
        enqueue_raw(r, job_json(marker), job_id=marker["id"])  # behind both, FIFO
        self.consumer(env, "--id", "c1", "--concurrency", "1")
        self.wait_state(r, marker["id"], "sent")
        self.assert_queue_drained(r)
        mids = [parse_message(m.raw)["Message-ID"] for m in rx.messages()]
        self.assertEqual(sorted(mids), sorted([f"<{job['id']}@example.com>",
                                               f"<{marker['id']}@example.com>"]))
        self.assertEqual(self.job_hash(r, job["id"]).get("state"), "sent")

    def test_expired_job_fails_without_sending(self):
        rs = self.redis()
        rx = self.receiver()
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
        job = sign_job(make_job(subject="too late", expires_at=past), SECRET)
        enqueue_raw(r, job_json(job), job_id=job["id"])
        self.consumer(env, "--id", "c1", "--concurrency", "1")
        h = self.wait_state(r, job["id"], "failed")
        self.assertRegex(h.get("error", ""), "(?i)expire")
        self.assertEqual([d.get("id") for d in dead_entries(r)], [job["id"]])
        ok = self.send(env, subject="still on time")  # FIFO: handled after the expired one
        self.wait_state(r, ok, "sent")
        self.assertEqual([parse_message(m.raw)["Message-ID"] for m in rx.messages()],
                         [f"<{ok}@example.com>"])

    def test_python_signed_jobs_with_keys_file(self):
        """Interop: jobs signed by tests/tools/mailroom_sign.py under two kids and both
        algorithms are accepted; the CLI signs with the first key of the file."""
        rs = self.redis()
        rx = self.receiver()
        r = rs.client()
        tmp = self.tmpdir()
        k1, k2 = new_secret(), new_secret()
        keys = os.path.join(tmp, "keys")
        with open(keys, "w") as f:
            f.write(f"# test keys\nk1 {k1}\n\nk2 {k2}\n")
        os.chmod(keys, 0o600)
        env = mailroom_env(rs, keys_file=keys, smtp=rx)
        a = sign_job(make_job(subject="k1 sha1 请激活", to=["王小明 <ming@example.com>"],
                              from_name="滴水网"), k1, kid="k1", alg="hmac-sha1")
        b = sign_job(make_job(subject="k2 sha256", html="<p>hi</p>"), k2, kid="k2",
                     alg="hmac-sha256")
        for j in (a, b):
            enqueue_raw(r, job_json(j), job_id=j["id"])
        self.consumer(env, "--id", "c1")
        c = self.send(env, subject="via cli")
        for jid in (a["id"], b["id"], c):
            self.wait_state(r, jid, "sent")
        by_mid = {parse_message(m.raw)["Message-ID"]: parse_message(m.raw)
                  for m in rx.wait_for_count(3, timeout=10)}
        self.assertEqual(set(by_mid), {f"<{x}@example.com>" for x in (a["id"], b["id"], c)},
                         f"signer: {SIGNER_SOURCE}")
        self.assertEqual(str(by_mid[f"<{a['id']}@example.com>"]["Subject"]), "k1 sha1 请激活")
        self.assertEqual(stats(r).get("sent"), 3)
        self.assertEqual(r.llen(Q.dead), 0)


# --------------------------------------------------------------------------- 3. SMTP errors


class SmtpErrorTest(PipelineTestCase):

    def _permanent(self, sink_args, code, text):
        rs = self.redis()
        sink = self.sink(*sink_args)
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=sink)
        listener = self.listener(rs)
        self.consumer(env, "--id", "c1")
        job_id = self.send(env, to=["nobody@example.com"], subject="bounce me")
        h = self.wait_state(r, job_id, "failed")
        self.assertEqual(h.get("smtp_code"), str(code))
        self.assertIn(text, h.get("smtp_reply", "") + " | " + h.get("error", ""),
                      "the server's reply text is not recorded")
        self.assertEqual(h.get("attempts"), "1", "a 5xx must not be retried")
        dead = dead_entries(r)
        self.assertEqual(len(dead), 1)
        self.assertEqual(dead[0].get("id"), job_id)
        self.assertEqual(dead[0].get("state"), "failed")
        self.assertTrue(dead[0].get("reason"), dead[0])
        self.assertEqual(json.loads(dead[0]["job"])["id"], job_id)
        self.assertEqual(json.loads(dead[0]["job"])["subject"], "bounce me")
        st = stats(r)
        self.assertEqual(st.get("failed"), 1)
        self.assertFalse(st.get("sent"), st)
        self.assertFalse(st.get("retried"), st)
        self.assertEqual(r.zcard(Q.scheduled), 0, "a 5xx was scheduled for retry")
        self.assert_queue_drained(r)
        ev = listener.wait_for_state(job_id, "failed", timeout=5)
        self.assertEqual(str(ev.get("smtp_code")), str(code))
        self.assertEqual(listener.states(job_id), ["sending", "failed"])

    def test_5xx_on_data_fails_permanently(self):
        self._permanent(["-f", "data", "-B", "554 5.7.1 Rejected by test policy"], 554,
                        "Rejected by test policy")

    def test_5xx_on_rcpt_fails_permanently(self):
        self._permanent(["-f", "rcpt", "-B", "550 5.1.1 No such user here"], 550,
                        "No such user here")

    def test_4xx_is_retried_later(self):
        rs = self.redis()
        sink = self.sink("-r", "rcpt", "-b", "451 4.3.0 Try again later")
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=sink)
        listener = self.listener(rs)
        self.consumer(env, "--id", "c1")
        job_id = self.send(env, subject="greylisted")
        h = self.wait_state(r, job_id, "retrying")
        self.assertEqual(h.get("smtp_code"), "451")
        self.assertIn("Try again later", h.get("smtp_reply", "") + " | " + h.get("error", ""))
        wait_for(lambda: r.zcard(Q.scheduled) == 1, 5, message="job in the scheduled zset")
        [(member, score)] = r.zrange(Q.scheduled, 0, -1, withscores=True)
        self.assertEqual(json.loads(member)["id"], job_id)
        self.assertGreater(score, time.time() * 1000, "retry not scheduled in the future")
        self.assertEqual(stats(r).get("retried"), 1)
        self.assertEqual(r.llen(Q.dead), 0)
        self.assertEqual(listener.states(job_id)[-1], "retrying")
        self.assert_queue_drained(r)

    def test_4xx_then_accepted_on_retry(self):
        """A temporary refusal is retried after the backoff (not earlier) and the job is
        then delivered exactly once."""
        rs = self.redis()
        rx = self.receiver(refuse_first=1, refuse_reply="451 4.7.1 Greylisted, come back later")
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        listener = self.listener(rs)
        self.consumer(env, "--id", "c1", "--backoff-base", "500ms")
        job_id = self.send(env, subject="greylisted once")
        h = self.wait_state(r, job_id, "sent", timeout=20)
        self.assertEqual(h.get("attempts"), "2")
        self.assertEqual(rx.refused, 1)
        self.assertEqual(rx.count(), 1)
        listener.wait_for_state(job_id, "sent", timeout=5)
        evs = [e for e in listener.events(job_id) if e.get("state") != "queued"]
        self.assertEqual([e["state"] for e in evs], ["sending", "retrying", "sending", "sent"])
        self.assertEqual(str(evs[1].get("smtp_code")), "451")
        gap = evs[2]["_received"] - evs[1]["_received"]
        self.assertGreaterEqual(gap, 0.35, "retried before the backoff (500 ms ± 20 %) elapsed")
        st = stats(r)
        self.assertEqual((st.get("retried"), st.get("sent")), (1, 1), st)
        self.assertEqual(r.zcard(Q.scheduled), 0)
        self.assert_queue_drained(r)

    def test_4xx_until_max_attempts_fails(self):
        rs = self.redis()
        sink = self.sink("-r", "rcpt", "-b", "452 4.2.2 Mailbox full")
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=sink)
        listener = self.listener(rs)
        self.consumer(env, "--id", "c1", "--max-attempts", "2", "--backoff-base", "200ms")
        job_id = self.send(env, subject="full mailbox")
        h = self.wait_state(r, job_id, "failed", timeout=20)
        self.assertEqual(h.get("attempts"), "2")
        self.assertEqual(h.get("smtp_code"), "452")
        dead = dead_entries(r)
        self.assertEqual([d.get("id") for d in dead], [job_id])
        st = stats(r)
        self.assertEqual((st.get("retried"), st.get("failed")), (1, 1), st)
        self.assertEqual(r.zcard(Q.scheduled), 0)
        states = [s for s in listener.states(job_id) if s != "queued"]
        self.assertEqual(states, ["sending", "retrying", "sending", "failed"])
        self.assert_queue_drained(r)

    def test_refused_connection_costs_no_attempt(self):
        """A relay nobody answers for: the job waits, queued, with the reason, and no
        attempt is spent (docs/relays.md: an outage costs time, not attempts)."""
        rs = self.redis()
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=f"smtp://127.0.0.1:{free_port()}")
        self.consumer(env, "--id", "c1")
        job_id = self.send(env, subject="nobody listens")
        wait_for(lambda: "could not reach relay" in (r.hget(Q.job(job_id), "error") or ""), 10,
                 message="the put-back recorded")
        h = r.hgetall(Q.job(job_id))
        self.assertEqual((h.get("state"), h.get("attempts")), ("queued", "0"), h)
        self.assertEqual(r.llen(Q.dead), 0)
        st = stats(r)
        self.assertFalse(st.get("retried"), st)
        self.assertGreaterEqual(st.get("unreachable", 0), 1, st)


# --------------------------------------------------------------------------- scheduling


class ScheduleTest(PipelineTestCase):

    def test_send_at_is_held_until_due(self):
        rs = self.redis()
        rx = self.receiver()
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        self.consumer(env, "--id", "c1")
        due = round(time.time() + 1.5, 3)
        due_s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(due)) + f".{round(due * 1000) % 1000:03d}Z"
        job_id = self.send(env, "--send-at", due_s, subject="later")
        self.assertEqual(r.zcard(Q.scheduled), 1, "a future job should wait in the scheduled zset")
        self.assertEqual(r.llen(Q.pending), 0)
        self.assertEqual(r.hget(Q.job(job_id), "state"), "queued")
        m = rx.wait_for_count(1, timeout=10)[0]
        self.assertGreaterEqual(m.wall, due - 0.05, f"delivered {due - m.wall:.2f}s early")
        self.assertEqual(parse_message(m.raw)["Message-ID"], f"<{job_id}@example.com>")
        self.wait_state(r, job_id, "sent")
        self.assertEqual(r.zcard(Q.scheduled), 0)
        self.assert_queue_drained(r)

    def test_restart_with_same_id_resumes_held_job(self):
        """A consumer killed while holding a job leaves it in its processing list; the
        same consumer id started again delivers it."""
        rs = self.redis()
        rx = self.receiver()
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        job = sign_job(make_job(subject="held by a crashed consumer"), SECRET)
        enqueue_raw(r, job_json(job), job_id=job["id"])
        moved = r.lmove(Q.pending, Q.processing("c1"), "RIGHT", "LEFT")  # what c1 did
        self.assertIsNotNone(moved)
        self.consumer(env, "--id", "c1")
        self.wait_state(r, job["id"], "sent")
        self.assertEqual(rx.count(), 1)
        self.assert_queue_drained(r)


    def test_killed_consumer_jobs_are_recovered_by_another(self):
        """SIGKILL a consumer in the middle of an SMTP transaction (before DATA): another
        consumer notices the silence after --dead-after, recovers the job and delivers
        it exactly once."""
        rs = self.redis()
        rx = self.receiver(rcpt_delay=0.3)
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        listener = self.listener(rs)
        a = self.consumer(env, "--id", "a", "--concurrency", "1", "--dead-after", "2s")
        job_id = self.send(env, subject="survives a crash")
        listener.wait_for_state(job_id, "sending", timeout=10)
        rx.wait_for_rcpt(1, timeout=10)
        a.kill()
        self.assertEqual(len(r.lrange(Q.processing("a"), 0, -1)), 1,
                         "the killed consumer's job is not in its processing list")
        self.assertEqual(rx.count(), 0)
        self.consumer(env, "--id", "b", "--concurrency", "1", "--dead-after", "2s")
        h = self.wait_state(r, job_id, "sent", timeout=20)
        self.assertEqual(h.get("consumer"), "b")
        self.assertEqual(h.get("attempts"), "2")
        self.assertEqual(rx.count(), 1)
        self.assertEqual(parse_message(rx.messages()[0].raw)["Message-ID"], f"<{job_id}@example.com>")
        self.assertIn("recovered", listener.states(job_id))
        self.assertEqual(stats(r).get("recovered"), 1)
        self.assertIsNone(r.zscore(Q.consumers, "a"), "the dead consumer is still registered")
        self.assert_queue_drained(r)

    def test_named_queue_is_separate(self):
        rs = self.redis()
        rx = self.receiver()
        r = rs.client()
        qb = Keys("billing")
        env_default = mailroom_env(rs, secret=SECRET, smtp=rx)
        env_billing = mailroom_env(rs, secret=SECRET, smtp=rx, queue="billing")
        listener = self.listener(rs, queue="billing")
        self.consumer(env_default, "--id", "d1")  # must not take billing jobs
        job_id = self.send(env_billing, subject="invoice")
        self.assertEqual(r.llen(qb.pending), 1)
        self.assertEqual(r.hget(qb.job(job_id), "state"), "queued")
        self.assertFalse(r.exists(Q.job(job_id)))
        self.consumer(env_default, "--id", "b1", "--queue", "billing")
        self.wait_state(r, job_id, "sent", queue="billing")
        self.assertEqual(r.hget(qb.job(job_id), "consumer"), "b1")
        self.assertEqual(listener.wait_for_state(job_id, "sent")["queue"], "billing")
        self.assertEqual(int(r.hget(qb.stats, "sent")), 1)
        self.assertFalse(r.exists(Q.stats), "the default queue's counters moved")
        rc, out, err = run_cli("status", job_id, env=env_billing)
        self.assertEqual((rc, json.loads(out)["queue"]), (0, "billing"), err)


# --------------------------------------------------------------------------- 4. volume


class VolumeTest(PipelineTestCase):
    N = 500

    def test_500_jobs_two_consumers_exactly_once(self):
        rs = self.redis()
        rx = self.receiver()
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        c1 = self.consumer(env, "--id", "c1", "--concurrency", "4")
        c2 = self.consumer(env, "--id", "c2", "--concurrency", "4")

        def one(i):
            rc, out, err = run_cli("send", "--to", f"user{i}@example.com", "--from", SENDER,
                                   "--subject", f"Bulk {i}", "--text", f"Message number {i}.",
                                   env=env)
            return i, rc, out.strip(), err

        t0 = time.monotonic()
        ids = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for i, rc, out, err in pool.map(one, range(self.N)):
                self.assertEqual(rc, 0, f"send {i}: {err}")
                ids[out] = i
        enqueue_s = time.monotonic() - t0
        self.assertEqual(len(ids), self.N, "duplicate job ids from the CLI")

        rx.wait_for_count(self.N, timeout=40)
        wait_for(lambda: stats(r).get("sent", 0) >= self.N, 15, message=f"stats sent == {self.N}")
        self.assert_queue_drained(r)

        parser = email.parser.BytesHeaderParser(policy=email.policy.default)
        count = collections.Counter()
        for m in rx.messages():
            hdr = parser.parsebytes(m.raw)
            mid = hdr["Message-ID"]
            count[mid] += 1
            jid = job_id_of(m.raw)
            if jid in ids:
                self.assertEqual(m.rcpt_tos, [f"user{ids[jid]}@example.com"], mid)
                self.assertEqual(str(hdr["Subject"]), f"Bulk {ids[jid]}")
        self.assertEqual(set(count), {f"<{j}@example.com>" for j in ids})
        self.assertEqual([k for k, v in count.items() if v != 1], [], "delivered more than once")

        p = r.pipeline(transaction=False)
        for j in ids:
            p.hmget(Q.job(j), "state", "consumer")
        rows = p.execute()
        self.assertEqual(collections.Counter(s for s, _ in rows), {"sent": self.N})
        by_consumer = collections.Counter(c for _, c in rows)
        self.assertEqual(set(by_consumer), {"c1", "c2"}, f"work split: {by_consumer}")
        self.assertEqual(stats(r).get("sent"), self.N)
        self.assertEqual(r.llen(Q.dead), 0)

        self.assertEqual(c1.stop(), 0)
        self.assertEqual(c2.stop(), 0)
        self.assertEqual(rx.count(), self.N, "messages arrived after every job was sent")
        sys.stderr.write(f"[{self.N} jobs: enqueue {enqueue_s:.1f}s, split {dict(by_consumer)}] ")


# --------------------------------------------------------------------------- 5. CLI errors


class CliErrorTest(PipelineTestCase):

    def setUp(self):
        super().setUp()
        self.rs = self.redis()
        self.r = self.rs.client()
        self.env = mailroom_env(self.rs, secret=SECRET)

    def cli(self, *args, env=None):
        return run_cli(*args, env=env or self.env)

    def assert_refused(self, args, want_rc, env=None):
        rc, out, err = self.cli(*args, env=env)
        self.assertEqual(rc, want_rc, f"mailroom {args!r}: stdout={out!r} stderr={err!r}")
        self.assertTrue(err.strip(), f"no message on stderr for {args!r}")
        self.assertEqual(self.r.dbsize(), 0, f"something was written to Redis for {args!r}")
        return err

    def base(self, **over):
        a = {"--to": "ming@example.com", "--from": SENDER, "--subject": "Hi", "--text": "Hello"}
        a.update(over)
        out = ["send"]
        for k, v in a.items():
            if v is not None:
                out += [k, v]
        return out

    def test_crlf_in_subject_is_65_and_nothing_enqueued(self):
        self.assert_refused(self.base(**{"--subject": "Hi\r\nBcc: victim@example.net"}), 65)
        self.assert_refused(self.base(**{"--subject": "Hi\nthere"}), 65)

    def test_newline_in_addresses_and_names_is_65(self):
        for over in ({"--to": "ming@example.com\nBcc: victim@example.net"},
                     {"--to": "ming@example.com\r\n"},
                     {"--from": "noreply@example.com\r\nBcc: victim@example.net"},
                     {"--to": "Ming\r\nBcc: victim@example.net <ming@example.com>"},
                     {"--to": "not-an-address"}):
            with self.subTest(over=over):
                self.assert_refused(self.base(**over), 65)
        with self.subTest("from-name"):
            self.assert_refused(self.base() + ["--from-name", "Evil\r\nBcc: v@example.net"], 65)
        with self.subTest("header value"):
            self.assert_refused(self.base() + ["--header", "X-Foo: a\r\nBcc: v@example.net"], 65)

    def test_missing_arguments_are_64(self):
        for drop in ("--from", "--to", "--subject"):
            with self.subTest(missing=drop):
                self.assert_refused(self.base(**{drop: None}), 64)
        with self.subTest("no body"):
            self.assert_refused(self.base(**{"--text": None}), 64)
        with self.subTest("unknown option"):
            self.assert_refused(self.base() + ["--no-such-option"], 64)
        with self.subTest("no command"):
            rc, _, err = self.cli()
            self.assertEqual(rc, 64, err)

    def test_unreadable_text_file_is_66(self):
        self.assert_refused(self.base(**{"--text": None}) + ["--text-file", "/nonexistent/x.txt"], 66)

    def test_redis_closed_port_is_69_fast(self):
        env = mailroom_env(redis_url=f"redis://127.0.0.1:{free_port()}/0", secret=SECRET)
        t0 = time.monotonic()
        rc, out, err = self.cli(*self.base(), env=env)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 69, f"stdout={out!r} stderr={err!r}")
        self.assertLess(elapsed, 3.0)
        self.assertTrue(err.strip(), "no message on stderr")
        self.assertEqual(out.strip(), "", "printed an id although nothing was enqueued")

    def test_redis_not_answering_is_69_within_3s(self):
        """A listener that accepts connections and never answers (timeouts)."""
        blackhole = socket.socket()
        self.addCleanup(blackhole.close)
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(16)
        port = blackhole.getsockname()[1]
        env = mailroom_env(redis_url=f"redis://127.0.0.1:{port}/0", secret=SECRET)
        t0 = time.monotonic()
        rc, out, err = self.cli(*self.base(), env=env)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 69, f"stdout={out!r} stderr={err!r}")
        self.assertLess(elapsed, 3.0)
        self.assertTrue(err.strip())

    def test_missing_or_short_secret_is_78(self):
        env = mailroom_env(self.rs)
        self.assert_refused(self.base(), 78, env=env)
        env = mailroom_env(self.rs, secret=SHORT_SECRET)
        err2 = self.assert_refused(self.base(), 78, env=env)
        self.assertNotIn(SHORT_SECRET, err2, "the secret was printed")

    def test_duplicate_id_is_73(self):
        rc, out, err = self.cli(*self.base(), "--id", "signup-42")
        self.assertEqual((rc, out.strip()), (0, "signup-42"), err)
        rc, out, err = self.cli(*self.base(**{"--subject": "again"}), "--id", "signup-42")
        self.assertEqual(rc, 73, f"stdout={out!r} stderr={err!r}")
        self.assertTrue(err.strip())
        self.assertEqual(self.r.llen(Q.pending), 1, "the duplicate was enqueued")
        self.assertEqual(json.loads(self.r.lindex(Q.pending, 0))["subject"], "Hi")
        self.assertEqual(self.r.hget(Q.job("signup-42"), "state"), "queued")

    def test_status_of_unknown_id_is_1_and_of_queued_job_is_json(self):
        rc, out, err = self.cli("status", "01JDQ6Z3K8P4W7X2M5N9R0T1AB")
        self.assertEqual(rc, 1, f"stdout={out!r} stderr={err!r}")
        job_id = self.send(self.env, subject="queued only")
        rc, out, err = self.cli("status", job_id)
        self.assertEqual(rc, 0, err)
        st = json.loads(out)
        self.assertEqual((st["id"], st["state"], st["queue"]), (job_id, "queued", "default"))
        raw = self.r.lindex(Q.pending, 0)
        job = json.loads(raw)
        self.assertEqual((job["id"], job["v"], job["kid"], job["alg"]),
                         (job_id, "1", "default", "hmac-sha1"))
        self.assertEqual(job["sig"], sign_job(job, SECRET)["sig"],
                         "the CLI's signature differs from the reference signer's")


# --------------------------------------------------------------------------- 6. shutdown


class ShutdownTest(PipelineTestCase):

    def _idle_consumer(self, sig, *args):
        rs = self.redis()
        rx = self.receiver()
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        c = self.consumer(env, "--id", "c1", "--concurrency", "4", *args, default_timing=True)
        # one delivered job proves the consumer is up and idle in its loop
        job_id = self.send(env, subject="warm-up")
        self.wait_state(r, job_id, "sent")
        t0 = time.monotonic()
        rc = c.stop(timeout=5, sig=sig)
        elapsed = time.monotonic() - t0
        self.assertFalse(c.timed_out, f"consumer still running 5 s after {sig.name}")
        self.assertEqual(rc, 0, f"exit status after {sig.name}")
        self.assertLess(elapsed, 5.0)
        self.assert_queue_drained(r)
        self.assertIsNone(r.zscore(Q.consumers, "c1"), "heartbeat left behind after shutdown")
        self.assertEqual(c.error_lines(), [], "errors logged during a clean run")
        return c

    def test_sigterm_idle_consumer_exits_0(self):
        self._idle_consumer(signal.SIGTERM)

    def test_sigint_idle_consumer_exits_0_json_log(self):
        c = self._idle_consumer(signal.SIGINT, "--log-format", "json")
        lines = [l for l in c.log().splitlines() if l.strip()]
        self.assertTrue(lines, "nothing logged")
        for line in lines:
            self.assertIsInstance(json.loads(line), dict, f"not a JSON object: {line!r}")

    def test_sigterm_finishes_in_flight_job(self):
        rs = self.redis()
        rx = self.receiver(data_delay=1.5)  # the server sits on DATA for 1.5 s
        r = rs.client()
        env = mailroom_env(rs, secret=SECRET, smtp=rx)
        listener = self.listener(rs)
        c = self.consumer(env, "--id", "c1", "--concurrency", "2", default_timing=True)
        job_id = self.send(env, subject="in flight")
        listener.wait_for_state(job_id, "sending", timeout=10)
        c.send_signal(signal.SIGTERM)
        wait_for(lambda: not c.alive(), 10, message="consumer to exit after SIGTERM")
        self.assertEqual(c.stop(), 0)
        self.assertEqual(rx.count(), 1)
        h = self.job_hash(r, job_id)
        self.assertEqual(h.get("state"), "sent", h)
        self.assert_queue_drained(r)


if __name__ == "__main__":
    unittest.main(verbosity=2)
