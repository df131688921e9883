#!/usr/bin/python3
"""mailroom demo (run through scripts/demo, which builds first).

Starts a private redis-server and an SMTP receiver (aiosmtpd) on free 127.0.0.1 ports,
writes a random signing key into a temporary keys file (never printed), starts two
mailroom-consumer processes serving two lanes (reset, then default; one with its
Prometheus endpoint), the dashboard (mailroom-web) and mailroom-webhook posting to a
small application endpoint, and watches the status channel. Then it enqueues three
registration emails with the `mailroom` CLI (English, Chinese, HTML), a password reset
on the urgent lane, two emails to an address the relay does not know (the first is
refused with 550 5.1.1 and suppresses it, the second never reaches the relay), and
pushes one job whose subject was altered after signing. It prints the status events as
they arrive, every received message decoded, the dead list, `mailroom stats`, the
suppression list, the metrics, the dashboard's view and the webhook's deliveries; then
stops everything.

Exit status: 0 when every expected outcome happened, 1 when one did not, 130 on Ctrl-C.
"""

import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, str(REPO / "tests"))  # for tests/support

from support.consumer import Consumer, mailroom_env, run_cli  # noqa: E402
from support.jobs import (  # noqa: E402
    enqueue_raw, job_json, make_job, new_secret, new_ulid, sign_job,
)
from support.messages import parse_message, text_of  # noqa: E402
from support.paths import BIN_DIR, binaries_missing  # noqa: E402
from support.procs import free_port, wait_for  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402
from support.smtp_receiver import Receiver  # noqa: E402
from support.state import Keys, StatusListener, dead_entries, stats  # noqa: E402
from support.web import Application, Program, Web  # noqa: E402

DEADLINE_S = 30.0
SENDER = "noreply@example.com"
GHOST = "ghost@example.com"  # the relay refuses it: 550 5.1.1 user unknown

_print_lock = threading.Lock()
_t0 = time.monotonic()


def say(line: str = "") -> None:
    with _print_lock:
        print(line, flush=True)


def short(job_id: str) -> str:
    return job_id if len(job_id) <= 14 else job_id[:10] + "…" + job_id[-3:]


class Demo:
    def __init__(self, stack: contextlib.ExitStack):
        self.stack = stack
        self.checks = []  # (ok, description)
        self.labels = {}  # job id -> label
        self.consumers = []

    def check(self, ok: bool, what: str) -> bool:
        self.checks.append((bool(ok), what))
        return bool(ok)

    # ---- status events, printed as they arrive (listener thread)

    def on_event(self, ev: dict) -> None:
        try:
            jid = str(ev.get("id", ""))
            state = str(ev.get("state", "?"))
            detail = ""
            if state == "sent":
                detail = str(ev.get("smtp_reply") or ev.get("smtp_code") or "")
            elif state in ("failed", "retrying", "rejected"):
                detail = str(ev.get("error") or ev.get("smtp_reply") or "")
            label = self.labels.get(jid, "")
            say(f"  event  +{time.monotonic() - _t0:5.2f}s  {short(jid):14}  {state:9} "
                f"{str(ev.get('consumer', '')):7} {label:10} {detail}".rstrip())
        except Exception:  # never let printing kill the listener
            traceback.print_exc()

    # ---- the run

    def run(self) -> int:
        missing = binaries_missing()
        if missing:
            say("demo: binaries not built: " + ", ".join(missing))
            return 1

        redis_server = self.stack.enter_context(RedisServer())
        receiver = self.stack.enter_context(Receiver(rcpt_refusals={GHOST: [
            f"550 5.1.1 <{GHOST}>: Recipient address rejected: User unknown"]}))
        r = redis_server.client()
        tmp = self.stack.enter_context(tempfile.TemporaryDirectory(prefix="mailroom-demo-"))
        secret = new_secret()
        keys_file = os.path.join(tmp, "keys")
        fd = os.open(keys_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"default {secret}\n")
        env = mailroom_env(redis_server, keys_file=keys_file, smtp=receiver)

        say("mailroom demo")
        say(f"  redis      {redis_server.host}:{redis_server.port} (private, no persistence)")
        say(f"  smtp       {receiver.host}:{receiver.port} (aiosmtpd receiver)")
        say("  key        random, kid 'default', in a mode-600 temp file (not shown)")

        listener = self.stack.enter_context(
            StatusListener(redis_server, on_event=self.on_event))
        metrics_port = free_port()
        for cid, extra in (("demo-1", ["--http", f"127.0.0.1:{metrics_port}"]), ("demo-2", [])):
            c = self.stack.enter_context(Consumer(env, "--id", cid, "--concurrency", "2",
                                                  "--queue", "reset,default", *extra))
            self.consumers.append((cid, c))
        app = self.stack.enter_context(Application())
        secret_file = os.path.join(tmp, "webhook-secret")
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(new_secret() + "\n")
        self.stack.enter_context(Program(
            dict(env, MAILROOM_WEBHOOK_SECRET_FILE=secret_file), BIN_DIR / "mailroom-webhook",
            "--url", app.url, "--start", "0", kind="webhook"))
        web = self.stack.enter_context(Web(env, "--queue", "reset,default"))
        say("  consumers  demo-1, demo-2 (2 worker threads each), lanes reset then default")
        say(f"  metrics    http://127.0.0.1:{metrics_port}/metrics (demo-1)")
        say(f"  dashboard  {web.url} (mailroom-web)")
        say(f"  webhook    mailroom-webhook posting final outcomes to {app.url}")
        say(f"  status     subscribed to {listener.channel}")
        say()

        html_path = os.path.join(tmp, "welcome.html")
        with open(html_path, "w", encoding="utf-8") as f:
            f.write('<h1>Welcome, Bob!</h1>\n<p>Please <a href="https://example.com/confirm?t=b0b">'
                    "confirm your email address</a>.</p>\n")

        emails = [
            ("english", ["--to", "Alice Smith <alice@example.com>", "--from", SENDER,
                         "--from-name", "Example App", "--subject", "Activate your account",
                         "--text", "Hi Alice,\n\nactivate your account here:\n"
                                   "https://example.com/activate?t=a11ce\n\n"
                                   "The link is valid for 24 hours.\n"],
             "Activate your account", "alice@example.com"),
            ("chinese", ["--to", "王小明 <ming@example.com>", "--from", SENDER,
                         "--from-name", "滴水网", "--subject", "请激活您的账户",
                         "--text", "王小明，您好：\n\n请点击下面的链接激活您的账户：\n"
                                   "https://example.com/activate?t=m1ng\n\n链接 24 小时内有效。\n"],
             "请激活您的账户", "ming@example.com"),
            ("html", ["--to", "bob@example.org", "--from", SENDER, "--from-name", "Example App",
                      "--subject", "Welcome, Bob — confirm your email",
                      "--text", "Welcome, Bob!\n\nConfirm your email address:\n"
                                "https://example.com/confirm?t=b0b\n",
                      "--html-file", html_path],
             "Welcome, Bob — confirm your email", "bob@example.org"),
        ]

        say("enqueue (mailroom send) and status events as they arrive")
        expected = {}  # id -> (label, subject, rcpt)
        for label, args, subject, rcpt in emails:
            # a caller-chosen ULID, so that events arriving before `send` returns are
            # already labelled
            jid = new_ulid()
            self.labels[jid] = label
            t = time.monotonic()
            rc, out, err = run_cli("send", *args, "--id", jid, env=env)
            ms = (time.monotonic() - t) * 1000
            if not self.check(rc == 0 and out.strip() == jid,
                              f"`mailroom send` ({label}) exits 0 and prints the job id"):
                say(f"  send   {label}: exit {rc}: {err.strip()}")
                continue
            expected[jid] = (label, subject, rcpt)
            say(f"  send   {short(jid):14}  {label:8} {subject}  → {rcpt}  ({ms:.0f} ms incl. process start)")

        reset = new_ulid()
        self.labels[reset] = "reset"
        rc, out, err = run_cli("send", "--queue", "reset", "--to", "carol@example.com",
                               "--from", SENDER, "--subject", "Reset your password",
                               "--text", "https://example.com/reset?t=c4r0l\n", "--id", reset,
                               env=env)
        self.check(rc == 0, "`mailroom send --queue reset` exits 0 (the urgent lane)")
        say(f"  send   {short(reset):14}  reset    Reset your password  → carol@example.com  (lane reset)")
        ghosts = []
        for n in (1, 2):
            jid = new_ulid()
            self.labels[jid] = f"ghost-{n}"
            rc, out, err = run_cli("send", "--to", GHOST, "--from", SENDER, "--subject",
                                   "Welcome", "--text", "Hello.\n", "--id", jid, env=env)
            self.check(rc == 0, f"`mailroom send` to {GHOST} ({n}) exits 0")
            ghosts.append(jid)
            say(f"  send   {short(jid):14}  ghost-{n}  Welcome  → {GHOST}")
            if n == 1:  # the relay's refusal suppresses the address before the second
                wait_for(lambda: r.hget(Keys().job(jid), "state") == "failed", DEADLINE_S, 0.05,
                         "the first email to the unknown address to fail")

        genuine = sign_job(make_job(to=["Mallory <mallory@example.com>"],
                                        subject="Activate your account",
                                        text="https://example.com/activate?t=ok"),
                             secret)
        forged = dict(genuine, subject="Your account is locked — log in at http://evil.example")
        forged_raw = job_json(forged)
        self.labels[forged["id"]] = "forged"
        enqueue_raw(r, forged_raw, record=False)
        say(f"  push   {short(forged['id']):14}  forged   subject altered after signing, "
            "LPUSHed raw")

        # wait for every outcome (bounded)
        def settled():
            states = {j: r.hget(Keys().job(j), "state") for j in expected}
            return (all(s == "sent" for s in states.values())
                    and r.hget(Keys("reset").job(reset), "state") == "sent"
                    and all(r.hget(Keys().job(g), "state") == "failed" for g in ghosts)
                    and r.hget(Keys().job(forged["id"]), "state") == "rejected"
                    and receiver.count() >= len(expected) + 1
                    and all(listener.states(j)[-1:] == ["sent"] for j in expected)
                    and listener.states(forged["id"])[-1:] == ["rejected"])
        try:
            wait_for(settled, DEADLINE_S, 0.05, "every job to settle")
            settled_ok = True
        except AssertionError as e:
            say(f"  !! {e}")
            settled_ok = False
        self.check(settled_ok, "every job reached its final state in time")
        say()

        # received messages
        say("received messages")
        msgs = receiver.messages()
        got_subjects = {}
        for n, m in enumerate(msgs, 1):
            msg = parse_message(m.raw)
            body = msg.get_body(preferencelist=("plain",))
            text = text_of(body) if body is not None else ""
            kinds = [p.get_content_type() for p in msg.walk() if not p.is_multipart()]
            say(f"  [{n}] From:    {msg['From']}")
            say(f"      To:      {msg['To']}")
            say(f"      Subject: {msg['Subject']}")
            say(f"      Parts:   {', '.join(kinds)}   Message-ID: {msg['Message-ID']}")
            for line in [x for x in text.splitlines() if x.strip()][:3]:
                say(f"      | {line}")
            mid = str(msg["Message-ID"] or "")
            jid = mid[1:].split("@", 1)[0] if mid.startswith("<") else ""
            got_subjects[jid] = (str(msg["Subject"]), m.rcpt_tos, kinds)
        say()

        # dead list
        say("dead list")
        dead = dead_entries(r)
        for d in dead:
            say(f"  {short(str(d.get('id') or '-')):14}  {d.get('state', '?'):9} {d.get('reason')}")
        if not dead:
            say("  (empty)")
        say()

        # checks
        for jid, (label, subject, rcpt) in expected.items():
            got = got_subjects.get(jid)
            self.check(got is not None and got[0] == subject and got[1] == [rcpt],
                       f"{label} email arrived once, subject {subject!r}, to {rcpt}")
            self.check(listener.states(jid) == ["sending", "sent"],
                       f"{label} email: status events sending, sent")
        self.check(any(g[2] == ["text/plain", "text/html"] for g in got_subjects.values()),
                   "the html email is multipart/alternative, text then html")
        self.check(len(msgs) == len(expected) + 1,
                   f"exactly {len(expected) + 1} messages received (with the reset)")
        self.check(forged["id"] not in got_subjects and
                   not any(m.rcpt_tos == ["mallory@example.com"] for m in msgs),
                   "the forged job was not delivered")
        fd_ = [d for d in dead if d.get("job") == forged_raw]
        self.check(len(fd_) == 1 and "signature" in str(fd_[0].get("reason", "")).lower(),
                   "the forged job is on the dead list, reason mentions the signature")
        st = stats(r)
        self.check(st.get("sent") == len(expected) and st.get("rejected") == 1
                   and st.get("failed") == 2,
                   f"stats: sent={st.get('sent')} rejected={st.get('rejected')} "
                   f"failed={st.get('failed')}")
        self.show_extras(r, env, receiver, ghosts, metrics_port, web, app)

        # stop the consumers (SIGTERM) and expect a clean exit
        for cid, c in self.consumers:
            rc = c.stop(timeout=10)
            self.check(rc == 0, f"consumer {cid} exits 0 on SIGTERM (got {rc})")
        logs_secret_free = all(secret not in c.log() for _, c in self.consumers)
        self.check(logs_secret_free, "the secret appears in no consumer log")

        say("checks")
        for ok, what in self.checks:
            say(f"  {'ok  ' if ok else 'FAIL'} {what}")
        failed = [w for ok, w in self.checks if not ok]
        if failed:
            for cid, c in self.consumers:
                say(f"\n----- {cid} log (tail) -----\n{c.log()[-3000:]}")
            say(f"\ndemo: {len(failed)} of {len(self.checks)} checks FAILED")
            return 1
        say(f"\ndemo: all {len(self.checks)} checks passed in {time.monotonic() - _t0:.1f} s")
        return 0


    def show_extras(self, r, env, receiver, ghosts, metrics_port, web, app) -> None:
        """Lanes, suppression, stats, metrics, the dashboard and the webhook."""
        first, second = (r.hgetall(Keys().job(g)) for g in ghosts)
        say("suppression (a 550 5.1.1 to RCPT puts the address on the list)")
        say(f"  ghost-1  {first.get('state')}: {first.get('error')}")
        say(f"  ghost-2  {second.get('state')}: {second.get('error')}")
        rc, out, _ = run_cli("suppress", "list", env=env)
        for line in out.splitlines():
            say(f"  | {line}")
        self.check(rc == 0 and GHOST in out, f"{GHOST} is on the suppression list")
        self.check(receiver.rcpt_seen == 1 + sum(len(m.rcpt_tos) for m in receiver.messages()),
                   "the second email to the suppressed address never reached the relay")
        self.check("suppression list" in second.get("error", ""),
                   "the second email failed because of the suppression list")
        say()
        say("mailroom stats")
        rc, out, _ = run_cli("stats", env=env)
        for line in out.splitlines():
            say(f"  | {line}")
        self.check(rc == 0, "`mailroom stats` exits 0")
        say()
        say(f"metrics (GET http://127.0.0.1:{metrics_port}/metrics, a few series)")
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as f:
            text = f.read().decode()
        shown = [line for line in text.splitlines()
                 if line.startswith(("mailroom_jobs_total", "mailroom_queue_pending",
                                     "mailroom_relay_circuit"))]
        for line in shown[:12]:
            say(f"  | {line}")
        self.check(any(line.startswith("mailroom_jobs_total") for line in shown),
                   "the consumer's /metrics serves mailroom_jobs_total")
        say()
        status, _, body = web.http("/api/overview")
        import json
        overview = json.loads(body) if status == 200 else {}
        names = [q.get("name") for q in overview.get("queues", [])]
        say(f"dashboard {web.url}: queues {', '.join(map(str, names))}; relays "
            f"{', '.join(x.get('name', '?') + ' ' + x.get('circuit', '?') for x in overview.get('relays', []))}")
        self.check(status == 200 and names == ["reset", "default"],
                   "mailroom-web answers /api/overview for both lanes")
        try:
            wait_for(lambda: app.statuses.count(200) >= 6, DEADLINE_S, 0.1,
                     "the webhook to deliver the default queue's 6 final outcomes")
        except AssertionError as e:
            say(f"  !! {e}")
        say(f"webhook: {app.statuses.count(200)} signed outcomes delivered to {app.url}")
        self.check(app.statuses.count(200) >= 6, "mailroom-webhook delivered every final outcome")
        say()


def main() -> int:
    with contextlib.suppress(Exception):
        sys.stdout.reconfigure(encoding="utf-8", errors="replace")

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        with contextlib.ExitStack() as stack:
            return Demo(stack).run()
    except KeyboardInterrupt:
        say("\ndemo: interrupted; everything stopped and removed")
        return 130


if __name__ == "__main__":
    sys.exit(main())
