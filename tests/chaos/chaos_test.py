#!/usr/bin/python3
"""Chaos test of mailroom. The promise under test:

    Every job accepted by the producer ends `sent`, `failed` or `rejected`, with its
    reason, whatever happens to consumers, Redis or the mail server -- and a mail is
    sent twice only if a consumer dies between the server's 250 and the acknowledgement.

Setup (127.0.0.1 only, free ports, one temporary directory, all removed at the end):
  - redis-server with an append-only file fsynced at every write;
  - Postfix's smtp-sink, which dumps every message it accepts to a file of its own
    (complete and closed before it answers 250 to the final dot; the file of an
    aborted transaction is unlinked), so Message-IDs tell which jobs arrived how often;
  - 3 `mailroom-consumer --concurrency 8` with short recovery, backoff and timeouts.

One single-threaded loop drives everything (the main thread spawns every child, with
PR_SET_PDEATHSIG, so they die with this process however it dies):
  - 20 000 signed jobs are enqueued while the consumers run, in MULTI/EXEC batches of
    exactly what the producer writes (job hash, EXPIRE, LPUSH), paced over ~66 s, plus
    bursts of 300 just before each kill and 1000 just before the Redis restart, so
    that those find work in flight;
  - every 3-5 s a random consumer is SIGKILLed and a new one started; twice one is
    stopped with SIGTERM and replaced; three times one is stalled: SIGSTOPped for 3.5 to
    6.5 s (longer than --dead-after, so the others recover its jobs) and continued,
    when it must find that it lost them and send none of them again. The first consumer (the "veteran") is never
    killed: it lives through every disruption, so a job it loses track of shows up as
    stuck instead of being recovered after a later kill;
  - redis-server is restarted once (SIGTERM, started again on the same port and
    directory, reloading the AOF);
  - smtp-sink is restarted on its port to answer 450 to RCPT, to drop the connection
    after DATA, to answer 450 to DATA, to answer 421 and disconnect at MAIL -- each for
    5-7 s, with normal service in between (every restart also refuses connections for
    a moment); and for 7 s the port is served by a relay with a quota instead, which
    accepts 100 messages a second and answers the rest 454 (SES' throttling reply):
    the consumers must slow down together and no job may fail or spend an attempt on it;
  - once a second (and just before each kill) every processing list is read: a job
    that stays in one for over STUCK_AFTER s, or whose record still does not say
    `sending` after ORPHAN_AFTER s, was lost track of by its consumer (nothing recovers
    the jobs of a consumer that keeps heart-beating), or never recovered.
Then the system runs undisturbed until every job is terminal (or nothing moves for
15 s), the consumers are stopped with SIGTERM, and check() decides: every job terminal
with its reason; every sent job received; lost (neither terminal nor received) = 0;
extra copies received <= kills + stalls (a consumer that dies, or stalls past
--dead-after, between the server's 250 and the acknowledgement); no failed or rejected job; processing lists and pending
empty; nothing overdue in scheduled; every SIGTERMed consumer exited 0 and none exited
on its own.

Run: /usr/bin/python3 tests/chaos/chaos_test.py [--seed S] [--keep] [--jobs N]
         [--chaos-seconds T] [--no-chaos]      (--help for all)
The binaries come from $MAILROOM_BIN_DIR (default <repo>/build/bin). Exit status 0
when the promise held, 1 with the violations listed (and logs) otherwise, 2 when the
servers could not be set up. MAILROOM_CHAOS_SEED fixes the random schedule.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support

import redis  # noqa: E402  (python3-redis)

from support.consumer import Consumer, mailroom_env  # noqa: E402
from support.jobs import new_secret, push_jobs, sign_job, signer  # noqa: E402
from support.paths import CONSUMER, binaries_missing  # noqa: E402
from support.procs import kill_leftovers  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402
from support.smtp_receiver import Receiver  # noqa: E402
from support.smtp_sink import SmtpSink  # noqa: E402
from support.state import Keys, processing_lengths, stats  # noqa: E402

QUEUE = "default"
Q = Keys(QUEUE)
SENDER = "noreply@example.com"
TERMINAL = ("sent", "failed", "rejected")
END_MARKER = "chaos-end-of-message"
ID_RE = re.compile(r"chaos-(\d{6})\Z")
MSGID_RE = re.compile(r"^message-id:\s*<([^>]*)>", re.IGNORECASE | re.MULTILINE)

N_CONSUMERS = 3
THROTTLE_ABOVE = 100  # messages a second the throttling relay phase accepts
CONSUMER_ARGS = [
    "--concurrency", "8", "--dead-after", "3s", "--backoff-base", "200ms",
    "--backoff-max", "2s", "--max-attempts", "50", "--smtp-timeout", "5s",
    "--smtp-connect-timeout", "2s", "--block-timeout", "1s", "--shutdown-timeout", "5s",
]
SHUTDOWN_WAIT = 15.0  # seconds a SIGTERMed consumer gets to exit (--shutdown-timeout 5s)
# A job sits in a processing list for BEGIN, one SMTP attempt (connect 2s + transaction
# 5s, tried twice when a reused connection was found dead) and FINISH, retried through
# a Redis restart; in a killed consumer's list until recovery (--dead-after 3s plus a
# heartbeat period); in a SIGTERMed one's for --shutdown-timeout 5s at most. All well
# under this: longer means a running consumer lost track of the job (and nothing
# recovers the jobs of a consumer that keeps heart-beating), or recovery failed.
STUCK_AFTER = 25.0
# BEGIN follows BLMOVE at once (after a Redis restart, once the worker has reconnected):
# a job whose record does not say `sending` this long after it entered a running
# consumer's processing list is held by no worker. Just before a kill the victim's
# list is judged with KILL_ORPHAN_AFTER, so that a later recovery cannot hide it.
ORPHAN_AFTER = 10.0
KILL_ORPHAN_AFTER = 5.0


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class SetupError(Exception):
    """The test could not set its servers up (not a verdict on mailroom)."""


# --------------------------------------------------------------------------- servers
# Every child is spawned by the main thread (the only one there is) with
# die_with_parent: they die with this process however it dies.


def tail(path, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except (OSError, TypeError) as e:
        return f"    (cannot read {path}: {e})"
    return "\n".join("    " + l for l in text.splitlines()[-lines:])


def start_server(start, what: str) -> None:
    """Calls start() of a server (or a restart); SetupError when it does not come up."""
    try:
        start()
    except (RuntimeError, AssertionError) as e:
        raise SetupError(f"{what} did not start: {e}") from None


def retry_redis(fn, what: str, timeout: float = 20.0):
    """Runs fn() until it does not raise a Redis connection error (Redis restarting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                redis.exceptions.BusyLoadingError) as e:
            if time.monotonic() > deadline:
                raise SetupError(f"Redis unreachable for {timeout:g}s during {what}: {e}")
            time.sleep(0.1)


# smtp-sink's flags of each mode: the mode changes by restarting it on the same port
SINK_MODES = {
    "normal": [],
    "4xx-rcpt": ["-r", "rcpt"],     # 450 to RCPT TO
    "drop-data": ["-q", "data"],    # disconnect, no reply, after DATA
    "4xx-data": ["-r", "data"],     # 450 to DATA
    "421-mail": ["-Q", "mail"],     # 421 and disconnect at MAIL FROM
}


def received(sink: SmtpSink):
    """(Counter job id -> copies, unknown Message-IDs, incomplete dump files) of what
    the sink dumped."""
    copies = collections.Counter()
    unknown, incomplete = [], []
    for f in sink.dumps():
        data = f.read_bytes().decode("utf-8", "replace")
        m = MSGID_RE.search(data)
        # complete: the message ended with "\r\n.\r\n" (dumped as "\n\n") and the
        # body's last line is there
        if not m or not data.endswith("\n\n") or END_MARKER not in data:
            incomplete.append(f.name)
            continue
        local, _, domain = m.group(1).partition("@")
        if domain != "example.com" or not ID_RE.match(local):
            unknown.append(m.group(1))
            continue
        copies[local] += 1
    return copies, unknown, incomplete


# --------------------------------------------------------------------------- consumers


class ConsumerProc:
    """One consumer of the run and what became of it."""

    seq = 0

    def __init__(self, run_dir: Path, env: dict):
        ConsumerProc.seq += 1
        self.n = ConsumerProc.seq
        self.c = Consumer(env, *CONSUMER_ARGS, log_path=run_dir / f"consumer-{self.n:02d}.log",
                          die_with_parent=True).start()
        self.proc = self.c.proc
        self.log_path = Path(self.c.log_path)
        self.fate = "running"  # running, killed, terminating, stopped, crashed
        self.veteran = False
        self.stalled = False  # SIGSTOPped, not yet continued

    def alive(self) -> bool:
        return self.c.alive()

    def kill9(self) -> None:
        self.c.kill()
        self.fate = "killed"

    def stop_for_now(self) -> None:
        self.c.send_signal(signal.SIGSTOP)
        self.stalled = True

    def carry_on(self) -> None:
        if self.alive():
            self.c.send_signal(signal.SIGCONT)
        self.stalled = False

    def term(self) -> None:
        self.c.send_signal(signal.SIGTERM)
        self.fate = "terminating"
        self.term_deadline = time.monotonic() + SHUTDOWN_WAIT

    def __str__(self) -> str:
        return f"consumer #{self.n} (pid {self.proc.pid}{', veteran' if self.veteran else ''})"


# --------------------------------------------------------------------------- jobs


def iso_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def make_jobs(n: int, key: bytes) -> list:
    """[(id, raw json)] for n signed jobs."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    jobs = []
    for i in range(1, n + 1):
        jid = f"chaos-{i:06d}"
        job = {"v": "1", "id": jid, "to": [f"Rcpt {i % 97} <rcpt{i % 97}@example.com>"],
               "from": SENDER, "subject": f"Chaos {i:06d}",
               "text": f"Hello, this is chaos job {jid}.\nSecond line.\n{END_MARKER}\n",
               "created_at": created}
        jobs.append((jid, signer.dumps(sign_job(job, key))))
    return jobs


class Enqueuer:
    """Pushes the jobs in MULTI/EXEC batches, as the producer writes them (job hash,
    EXPIRE, LPUSH). A batch whose EXEC outcome is unknown (connection lost) counts as
    accepted if its first job's record exists (MULTI/EXEC is all or nothing), else it
    is sent again."""

    def __init__(self, srv: RedisServer, jobs: list, batch: int):
        self.srv = srv
        self.jobs = jobs
        self.batch = batch
        self.next = 0
        self.r = srv.client()
        self.failures = 0
        self.retry_at = 0.0

    def done(self) -> bool:
        return self.next >= len(self.jobs)

    def push(self, n: int) -> bool:
        """Pushes the next n jobs (at most one batch); False when Redis is away."""
        chunk = self.jobs[self.next:self.next + min(n, self.batch)]
        if not chunk or time.monotonic() < self.retry_at:
            return not chunk
        try:
            if self.failures and self.r.exists(Q.job(chunk[0][0])):
                self.next += len(chunk)
                self.failures = 0
                return True
            push_jobs(self.r, chunk, QUEUE, now=iso_now())
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                redis.exceptions.BusyLoadingError):
            self.failures += 1
            self.retry_at = time.monotonic() + 0.1
            return False
        self.next += len(chunk)
        self.failures = 0
        return True

    def keep_up(self, target: int) -> None:
        """Pushes until target jobs are accepted (or Redis is away)."""
        while self.next < min(target, len(self.jobs)) and self.push(target - self.next):
            pass


# --------------------------------------------------------------------------- the run


class Chaos:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.run_dir = Path(tempfile.mkdtemp(prefix="mailroom-chaos-"))
        self.secret = new_secret()
        self.redis = RedisServer(15.0, aof=True, dir=self.run_dir / "redis",
                                 die_with_parent=True)
        if os.geteuid() == 0:  # smtp-sink runs as nobody: let it into its dir
            os.chmod(self.run_dir, 0o755)
        self.sink = SmtpSink(dump=True, backlog=256, dir=self.run_dir / "sink",
                             die_with_parent=True)
        self.consumers: list = []   # every ConsumerProc ever started
        self.kills = 0
        self.stalls = 0
        self.throttler = None
        self.throttled = 0  # 454 replies of the throttling relay
        self.term_restarts = 0
        self.redis_restarts = 0
        self.crashed: list = []     # consumers that exited without being told to
        self.timeline: list = []
        self.violations: list = []
        self.stuck_report: list = []
        self.stuck_found: list = []   # jobs held too long by a running consumer
        self.stuck_seen: set = set()
        self.dwell: dict = {}         # (processing key, raw job) -> first seen
        self.next_dwell_check = 0.0
        self.elapsed = 0.0

    # ---- helpers

    def note(self, what: str) -> None:
        t = time.monotonic() - self.t0
        self.timeline.append(f"{t:6.1f}s {what}")
        log(f"t={t:5.1f}s {what}")

    def live(self) -> list:
        return [c for c in self.consumers if c.fate == "running"]

    def start_consumer(self) -> ConsumerProc:
        c = ConsumerProc(self.run_dir, self.env)
        self.consumers.append(c)
        return c

    def watch_consumers(self) -> None:
        """Replaces consumers that exited on their own (recorded as crashes) and reaps
        the SIGTERMed ones."""
        for c in list(self.consumers):
            if c.fate == "running" and not c.alive():
                c.fate = "crashed"
                self.crashed.append(c)
                self.note(f"{c} EXITED ON ITS OWN with status {c.proc.returncode}; "
                          f"starting a replacement")
                self.start_consumer()
            elif c.fate == "terminating":
                if not c.alive():
                    c.fate = "stopped"
                    if c.proc.returncode != 0:
                        self.violations.append(
                            f"{c} exited {c.proc.returncode} after SIGTERM (want 0)")
                elif time.monotonic() > c.term_deadline:
                    c.kill9()
                    c.fate = "stopped"
                    self.violations.append(
                        f"{c} still running {SHUTDOWN_WAIT:g}s after SIGTERM "
                        f"(--shutdown-timeout 5s); killed")

    def burst(self, n: int) -> None:
        """Enqueues n jobs at once, so that the next disruption finds work in flight."""
        before = self.enq.next
        self.enq.keep_up(self.enq.next + n)
        if self.enq.next > before:
            self.burst_jobs += self.enq.next - before

    def stall_random(self) -> None:
        """SIGSTOP a random consumer for longer than --dead-after, then SIGCONT it: the
        others recover its jobs meanwhile, and it must drop them when it wakes."""
        victims = [c for c in self.live() if not c.veteran and not c.stalled]
        if not victims:
            return
        c = self.rng.choice(victims)
        c.stop_for_now()
        self.stalls += 1
        wake = time.monotonic() - self.t0 + self.rng.uniform(3.5, 6.5)
        self.pending_events.append((wake, "continue", c.carry_on))
        self.pending_events.sort(key=lambda e: e[0])
        self.note(f"SIGSTOP {c}  (stalls={self.stalls})")

    def kill_random(self) -> None:
        victims = [c for c in self.live() if not c.veteran and not c.stalled]
        if not victims:
            return
        c = self.rng.choice(victims)
        key = self.processing_key(c)
        if key:
            self.watch_processing(self.r, force=True, only_key=key,
                                  orphan_after=KILL_ORPHAN_AFTER)
        c.kill9()
        self.kills += 1
        n = self.start_consumer()
        self.note(f"kill -9 {c}; started {n}  (kills={self.kills})")

    def term_random(self) -> None:
        victims = [c for c in self.live() if not c.veteran and not c.stalled]
        if not victims:
            return
        c = self.rng.choice(victims)
        c.term()
        self.term_restarts += 1
        n = self.start_consumer()
        self.note(f"SIGTERM {c}; started {n}")

    def restart_redis(self) -> None:
        t = time.monotonic()
        rc = self.redis.stop(timeout=10)  # SIGTERM: Redis fsyncs the AOF and exits
        start_server(self.redis.start, "redis-server")
        self.redis_restarts += 1
        self.note(f"redis-server restarted (exit {rc}, down {time.monotonic() - t:.2f}s)")

    def sink_mode(self, mode: str) -> None:
        if self.throttler:
            self.throttler.stop()
            self.throttled += self.throttler.throttled
            self.throttler = None
            start_server(self.sink.start, "smtp-sink")
        start_server(lambda: self.sink.restart(*SINK_MODES[mode]), "smtp-sink")
        self.note(f"smtp-sink now {mode}")

    def throttle(self) -> None:
        """The relay on the sink's port becomes one with a quota: at most THROTTLE_ABOVE
        messages a second, 454 to the others (what SES answers); what it accepts is
        dumped with smtp-sink's, to be counted alike."""
        self.sink.stop()
        self.throttler = Receiver(port=self.sink.port, throttle_above=THROTTLE_ABOVE,
                                  dump_dir=str(self.sink.dump_dir))
        start_server(self.throttler.start, "throttling relay")
        self.note(f"relay now throttles above {THROTTLE_ABOVE}/s")

    def owner(self, processing_key: str):
        """The ConsumerProc of a processing list (default consumer ids are
        host-pid-xxxx), or None."""
        m = re.search(r"-(\d+)-[0-9a-f]{4}$", processing_key)
        if not m:
            return None
        return next((c for c in self.consumers if c.proc.pid == int(m.group(1))), None)

    def processing_key(self, c: ConsumerProc) -> str | None:
        """c's processing list (found by the pid in its default id), or None."""
        for key, _ in self.dwell:
            if self.owner(key) is c:
                return key
        return None

    def describe_owner(self, processing_key: str, beats: dict) -> str:
        cid = processing_key.split(":processing:", 1)[1]
        c = self.owner(processing_key)
        who = f"{c} [{c.fate}]" if c else f"consumer {cid}"
        if cid in beats:
            return f"{who}, last heartbeat {time.time() - beats[cid] / 1000:.1f}s ago"
        return f"{who}, no heartbeat entry"

    def watch_processing(self, r: redis.Redis, force: bool = False,
                         only_key: str | None = None, orphan_after: float = ORPHAN_AFTER) -> None:
        """Reads every processing list (once a second, or now when forced) and flags
        the jobs that stay in one too long: over STUCK_AFTER s, or over orphan_after s
        while their record does not say `sending` (BEGIN never ran: no worker holds
        them). only_key: judge only that list (the consumer about to be killed)."""
        now = time.monotonic()
        if now < self.next_dwell_check and not force:
            return
        self.next_dwell_check = now + 1.0
        try:
            current = {}
            for key in r.scan_iter(match=Q.processing_pattern()):
                for raw in r.lrange(key, 0, -1):
                    current[(key, raw)] = self.dwell.get((key, raw), now)
            self.dwell = current
            for (key, raw), since in current.items():
                age = now - since
                if age < orphan_after or (only_key and key != only_key):
                    continue
                m = re.search(r'"id":"([^"]*)"', raw)
                jid = m.group(1) if m else raw[:60]
                if (key, jid) in self.stuck_seen:
                    continue
                rec = r.hgetall(Q.job(jid))
                if age < STUCK_AFTER and rec.get("state") == "sending":
                    continue
                if r.lpos(key, raw) is None:  # left the list meanwhile: judge it later
                    continue
                self.stuck_seen.add((key, jid))
                beats = dict(r.zrange(Q.consumers, 0, -1, withscores=True))
                self.stuck_found.append(
                    f"{jid}: in {key} for {age:.0f}s+, held by "
                    f"{self.describe_owner(key, beats)}; its record: state={rec.get('state')} "
                    f"attempts={rec.get('attempts')} updated_at={rec.get('updated_at')} "
                    f"consumer={rec.get('consumer')}")
                self.note(f"STUCK {self.stuck_found[-1]}")
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                redis.exceptions.BusyLoadingError):
            return  # Redis restarting: keep the previous picture

    def states(self, r: redis.Redis, ids: list) -> dict:
        out = {}
        for i in range(0, len(ids), 5000):
            part = ids[i:i + 5000]
            p = r.pipeline(transaction=False)
            for jid in part:
                p.hget(Q.job(jid), "state")
            out.update(zip(part, p.execute()))
        return out

    def locate(self, r: redis.Redis, ids: list) -> list:
        """Where each of ids sits right now: pending, scheduled (due in ...), or which
        processing list and whether that consumer still runs."""
        want = set(ids)
        where = collections.defaultdict(list)
        id_re = re.compile(r'"id":"(chaos-\d{6})"')

        def scan(items, label):
            for raw in items:
                m = id_re.search(raw)
                if m and m.group(1) in want:
                    where[m.group(1)].append(label(raw))

        scan(r.lrange(Q.pending, 0, -1), lambda raw: "pending")
        now_ms = time.time() * 1000
        for raw, due in r.zrange(Q.scheduled, 0, -1, withscores=True):
            scan([raw], lambda _: f"scheduled (due in {(due - now_ms) / 1000:.1f}s)")
        beats = dict(r.zrange(Q.consumers, 0, -1, withscores=True))
        for key in r.scan_iter(match=Q.processing_pattern()):
            owner = self.describe_owner(key, beats)
            scan(r.lrange(key, 0, -1), lambda _: f"{key} of {owner}")
        nowhere = "nowhere (not in pending, scheduled or any processing list)"
        return [f"{j}: {', '.join(where[j]) or nowhere}" for j in sorted(ids)]

    # ---- phases

    def schedule(self) -> list:
        """[(t, label, action)] of the disruption, relative to the start."""
        ev = []
        if self.args.no_chaos:
            return ev
        span = self.args.chaos_seconds
        t = 2.0
        while True:
            t += self.rng.uniform(3.0, 5.0)
            if t > span:
                break
            # a burst of jobs just before, so that the kill finds sends in flight
            ev.append((t - self.rng.uniform(0.05, 0.4), "burst", lambda: self.burst(300)))
            ev.append((t, "kill", self.kill_random))
        f = span / 75.0  # the disruption windows, laid out for a 75 s run
        ev += [
            (8 * f, "sink", lambda: self.sink_mode("4xx-rcpt")),
            (15 * f, "sink", lambda: self.sink_mode("normal")),
            (16 * f, "sink", self.throttle),
            (20 * f, "term", self.term_random),
            (23 * f, "sink", lambda: self.sink_mode("normal")),
            (26 * f - 0.3, "burst", lambda: self.burst(1000)),
            (26 * f, "redis", self.restart_redis),
            (34 * f, "sink", lambda: self.sink_mode("drop-data")),
            (41 * f, "sink", lambda: self.sink_mode("normal")),
            (46 * f, "term", self.term_random),
            (50 * f, "sink", lambda: self.sink_mode("4xx-data")),
            (56 * f, "sink", lambda: self.sink_mode("normal")),
            (62 * f, "sink", lambda: self.sink_mode("421-mail")),
            (12 * f, "stall", self.stall_random),
            (38 * f, "stall", self.stall_random),
            (58 * f, "stall", self.stall_random),
            (67 * f, "sink", lambda: self.sink_mode("normal")),
        ]
        ev.sort(key=lambda e: e[0])
        return ev

    def preflight(self) -> None:
        missing = binaries_missing()
        if missing:
            raise SetupError("binaries not built: " + ", ".join(missing))
        helptext = subprocess.run([str(CONSUMER), "--help"], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT).stdout.decode()
        absent = [f for f in CONSUMER_ARGS if f.startswith("--") and f not in helptext]
        if absent:
            raise SetupError(f"{CONSUMER} does not know {', '.join(absent)}")
        if shutil.which("redis-server") is None:
            raise SetupError("redis-server not found")
        if not (shutil.which("smtp-sink") or os.path.exists("/usr/sbin/smtp-sink")):
            raise SetupError("smtp-sink (postfix) not found")

    def run(self) -> int:
        self.t_start = time.monotonic()
        self.t0 = self.t_start
        self.preflight()
        jobs = make_jobs(self.args.jobs, self.secret.encode())
        self.ids = [jid for jid, _ in jobs]
        start_server(self.redis.start, "redis-server")
        start_server(self.sink.start, "smtp-sink")
        self.env = mailroom_env(redis_url=self.redis.url, secret=self.secret,
                                smtp=self.sink.url)
        r = self.r = self.redis.client()
        log(f"run dir {self.run_dir}; redis :{self.redis.port}; smtp-sink :{self.sink.port}; "
            f"{len(jobs)} jobs; seed {self.args.seed}")

        self.t0 = time.monotonic()
        for _ in range(N_CONSUMERS):
            self.start_consumer()
        # The first consumer is never killed: it lives through every disruption, so a
        # job it loses track of shows up as stuck instead of being recovered (and
        # maybe sent twice) after a later kill.
        self.consumers[0].veteran = not self.args.no_chaos
        events = self.pending_events = self.schedule()
        self.enq = Enqueuer(self.redis, jobs, self.args.batch)
        self.burst_jobs = 0
        # ---- disruption: scheduled events, paced enqueueing, consumers watched
        while events or not self.enq.done():
            now = time.monotonic() - self.t0
            if events and events[0][0] <= now:
                _, _, action = events.pop(0)
                action()
                continue
            if now > max(self.args.chaos_seconds, self.args.enqueue_seconds) + 30:
                raise SetupError(f"only {self.enq.next} of {len(jobs)} jobs could be "
                                 f"enqueued: Redis unreachable")
            pace = min(1.0, now / self.args.enqueue_seconds)
            self.enq.keep_up(int(len(jobs) * pace))
            self.watch_consumers()
            self.watch_processing(r)
            wake = min(events[0][0] if events else 1e9, now + 0.05)
            time.sleep(max(0.0, wake - (time.monotonic() - self.t0)))
        self.note(f"disruption over ({self.kills} kills, {self.redis_restarts} Redis "
                  f"restart, {self.sink.restarts} sink restarts); all {len(jobs)} jobs "
                  f"accepted ({self.burst_jobs} of them in bursts)")

        # ---- undisturbed until every job is terminal (or no progress for a while)
        deadline = time.monotonic() + self.args.converge_seconds
        open_ids = list(self.ids)
        last_report = last_progress = time.monotonic()
        while True:
            self.watch_consumers()
            self.watch_processing(r)
            st = retry_redis(lambda: self.states(r, open_ids), "polling job states")
            still = [j for j in open_ids if st[j] not in TERMINAL]
            if len(still) < len(open_ids):
                last_progress = time.monotonic()
            open_ids = still
            if not open_ids:
                self.note("every job is terminal")
                break
            queued = r.llen(Q.pending) + r.zcard(Q.scheduled)
            stalled = time.monotonic() - last_progress > self.args.stall_seconds and not queued
            if time.monotonic() > deadline or stalled:
                why = (f"and no progress for {self.args.stall_seconds:g}s" if stalled
                       else "at the deadline")
                self.note(f"{len(open_ids)} jobs not terminal {why}; where they are:")
                self.stuck_report = self.locate(r, open_ids)
                for line in self.stuck_report[:20]:
                    log("  " + line)
                break
            if time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                cnt = collections.Counter(st[j] for j in open_ids)
                log(f"waiting: {len(open_ids)} not terminal {dict(cnt)}; pending "
                    f"{r.llen(Q.pending)}, scheduled {r.zcard(Q.scheduled)}")
            time.sleep(0.5)
        # Stale copies of jobs already sent (recovered after their 250 was recorded) are
        # acknowledged by BEGIN as duplicates, and the heartbeats of killed consumers are
        # removed by recovery: let that finish before stopping.
        idle_deadline = time.monotonic() + 3 + 8
        while time.monotonic() < idle_deadline and not open_ids:
            self.watch_consumers()
            busy = r.llen(Q.pending) + sum(r.llen(k) for k in
                                           r.scan_iter(match=Q.processing_pattern()))
            due = r.zcount(Q.scheduled, "-inf", int(time.time() * 1000))
            if busy == 0 and due == 0 and r.zcard(Q.consumers) <= len(self.live()):
                break
            time.sleep(0.2)

        # ---- stop with SIGTERM: each must exit 0
        for c in self.live():
            c.term()
        while any(c.fate == "terminating" for c in self.consumers):
            self.watch_consumers()
            time.sleep(0.05)
        self.note("consumers stopped")
        self.elapsed = time.monotonic() - self.t_start
        return self.check(r, jobs)

    # ---- verdict

    def check(self, r: redis.Redis, jobs: list) -> int:
        v = self.violations
        p = r.pipeline(transaction=False)
        for jid in self.ids:
            p.hmget(Q.job(jid), "state", "error", "smtp_code", "attempts", "smtp_reply")
        records = dict(zip(self.ids, p.execute()))
        copies, unknown, incomplete = received(self.sink)
        counters = stats(r, QUEUE)
        pending = r.llen(Q.pending)
        processing = {k: n for k, n in processing_lengths(r, QUEUE).items() if n}
        now_ms = int(time.time() * 1000)
        overdue = r.zcount(Q.scheduled, "-inf", now_ms)
        scheduled = r.zcard(Q.scheduled)
        heartbeats = r.zcard(Q.consumers)

        by_state = collections.Counter((rec[0] or "missing") for rec in records.values())
        not_terminal = [j for j, rec in records.items() if rec[0] not in TERMINAL]
        lost = [j for j in not_terminal if copies[j] == 0]
        sent_missing = [j for j, rec in records.items() if rec[0] == "sent" and copies[j] == 0]
        failed = [j for j, rec in records.items() if rec[0] == "failed"]
        rejected = [j for j, rec in records.items() if rec[0] == "rejected"]
        no_reason = [j for j, rec in records.items()
                     if (rec[0] == "sent" and rec[2] != "250")
                     or (rec[0] in ("failed", "rejected") and not rec[1])]
        received_not_sent = [j for j in copies if records.get(j, [None])[0] != "sent"]
        duplicates = sum(n - 1 for n in copies.values() if n > 1)
        dup_jobs = sorted(j for j, n in copies.items() if n > 1)
        stranger = [j for j in copies if j not in records]

        print()
        print(f"lost={len(lost)} duplicates={duplicates} kills={self.kills} stalls={self.stalls} "
              f"redis_restarts={self.redis_restarts} throttled={self.throttled}")
        print(f"jobs={len(self.ids)} sent={by_state['sent']} failed={by_state['failed']} "
              f"rejected={by_state['rejected']} not_terminal={len(not_terminal)} "
              f"{dict((s, n) for s, n in by_state.items() if s not in TERMINAL)}")
        print(f"received: {sum(copies.values())} messages for {len(copies)} jobs, "
              f"{len(dup_jobs)} jobs more than once, {len(incomplete)} incomplete dumps "
              f"(sink killed mid-message), {len(unknown)} unknown Message-IDs")
        print(f"stats: {counters}")
        print(f"sink_restarts={self.sink.restarts} sigterm_restarts={self.term_restarts} "
              f"consumers_started={len(self.consumers)} crashed={len(self.crashed)}")
        print(f"after stop: pending={pending} processing={sum(processing.values())} "
              f"scheduled={scheduled} (overdue {overdue}) heartbeats_left={heartbeats}")
        print(f"elapsed={self.elapsed:.1f}s")
        if dup_jobs:
            print(f"duplicated: {', '.join(dup_jobs[:20])}{' ...' if len(dup_jobs) > 20 else ''}")

        def some(xs, with_record=False):
            xs = sorted(xs)
            shown = [f"{j} {records[j]}" if with_record and j in records else j for j in xs[:10]]
            return "; ".join(shown) + (f" ... ({len(xs)} in all)" if len(xs) > 10 else "")

        if self.stuck_found:
            v.append(f"{len(self.stuck_found)} jobs stayed in a processing list held by no "
                     f"worker (record not `sending` after {ORPHAN_AFTER:g}s, or "
                     f"{KILL_ORPHAN_AFTER:g}s when found just before a kill) or were never "
                     f"finished or recovered (after {STUCK_AFTER:g}s):\n      "
                     + "\n      ".join(self.stuck_found[:15]))
        if self.stuck_report:
            v.append(f"{len(self.stuck_report)} jobs were not terminal while the system ran "
                     f"undisturbed after the disruption (each line: where it was then):\n      "
                     + "\n      ".join(self.stuck_report[:15]))
        if not_terminal:
            v.append(f"{len(not_terminal)} jobs not terminal ([state, error, smtp_code, "
                     f"attempts, smtp_reply]): {some(not_terminal, True)}")
        if lost:
            v.append(f"lost={len(lost)}: neither terminal nor received: {some(lost)}")
        if sent_missing:
            v.append(f"{len(sent_missing)} jobs say sent but the receiver never got them: "
                     f"{some(sent_missing, True)}")
        if duplicates > self.kills + self.stalls:
            v.append(f"duplicates={duplicates} > kills={self.kills} + stalls={self.stalls}: "
                     f"{some(dup_jobs, True)}")
        if failed:
            v.append(f"{len(failed)} jobs failed (max-attempts 50; none should): "
                     f"{some(failed, True)}")
        if rejected:
            v.append(f"{len(rejected)} validly signed jobs were rejected: "
                     f"{some(rejected, True)}")
        if no_reason:
            v.append(f"{len(no_reason)} terminal jobs without their reason (sent without "
                     f"smtp_code 250, failed/rejected without error): {some(no_reason, True)}")
        if unknown or stranger:
            v.append(f"the receiver got messages that are not chaos jobs: "
                     f"{(unknown + stranger)[:10]}")
        if processing:
            v.append(f"jobs left in processing lists: {processing}")
        if pending:
            v.append(f"pending holds {pending} jobs after the run: "
                     f"{[x[:80] for x in r.lrange(Q.pending, 0, 4)]}")
        if overdue:
            v.append(f"{overdue} scheduled jobs are past their due time")
        for c in self.crashed:
            v.append(f"{c} exited on its own with status {c.proc.returncode}")
        if counters.get("sent", 0) != by_state["sent"]:
            print(f"note: the stats counter says sent={counters.get('sent', 0)}, the job records "
                  f"{by_state['sent']} (an outcome counted twice, or not at all)")
        if heartbeats:
            print(f"note: {heartbeats} heartbeat entries left after every consumer stopped: "
                  f"{r.zrange(Q.consumers, 0, -1)}")
        if received_not_sent:
            print(f"note: {len(received_not_sent)} received jobs do not say sent: "
                  f"{some(received_not_sent, True)}")

        if v:
            print("\nCHAOS TEST FAILED:")
            for x in v:
                print(f"  - {x}")
            stuck = [line.split(":", 1)[0] for line in self.stuck_found + self.stuck_report]
            self.dump_logs(stuck + not_terminal + sent_missing + failed + rejected + dup_jobs)
            return 1
        print("\nchaos test passed")
        return 0

    def dump_logs(self, suspects: list) -> None:
        print("\ntimeline:")
        for line in self.timeline:
            print("  " + line)
        named = " ".join(self.stuck_found + self.stuck_report)
        shown = [c for c in self.consumers
                 if c.fate in ("crashed", "stopped") or f"consumer #{c.n} " in named]
        routine = re.compile(r"job=\S+ (sent|retrying) ")
        for c in shown:
            try:
                lines = c.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            lines = [l for l in lines if not routine.search(l)][-20:]
            print(f"\n--- {c} [{c.fate}] log, last lines other than per-job sent/retrying:")
            print("\n".join("    " + l for l in lines))
        wanted = list(dict.fromkeys(suspects))[:8]
        if wanted:
            print(f"\n--- log lines naming {sorted(wanted)}:")
            for c in self.consumers:
                try:
                    lines = c.log_path.read_text(errors="replace").splitlines()
                except OSError:
                    continue
                for line in lines:
                    if any(j in line for j in wanted):
                        print(f"  #{c.n}: {line}")
        print("\n--- redis.log tail:")
        print(tail(self.redis.log_path, 15))
        print("\n--- sink.log tail:")
        print(tail(self.sink.log_path, 10))

    def cleanup(self) -> None:
        for c in self.consumers:
            c.c.kill()
        if self.throttler:
            self.throttler.stop()
        self.sink.stop()
        self.redis.cleanup()
        kill_leftovers()
        if self.args.keep:
            log(f"kept {self.run_dir}")
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=250, help="jobs per MULTI/EXEC")
    ap.add_argument("--enqueue-seconds", type=float,
                    help="spread the enqueueing over this long (default: 88%% of "
                         "--chaos-seconds)")
    ap.add_argument("--chaos-seconds", type=float, default=95.0,
                    help="length of the disruption")
    ap.add_argument("--converge-seconds", type=float, default=60.0,
                    help="deadline for every job to be terminal after the disruption")
    ap.add_argument("--stall-seconds", type=float, default=15.0,
                    help="give up waiting when no job became terminal for this long "
                         "and nothing is pending or scheduled")
    ap.add_argument("--seed", type=int,
                    default=int(os.environ.get("MAILROOM_CHAOS_SEED") or random.randrange(1 << 30)))
    ap.add_argument("--no-chaos", action="store_true", help="baseline: no disruption")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    args = ap.parse_args()
    if args.enqueue_seconds is None:
        args.enqueue_seconds = 0.88 * args.chaos_seconds

    def on_term(signum, frame):
        raise SystemExit(f"chaos test: signal {signum}")
    signal.signal(signal.SIGTERM, on_term)

    chaos = Chaos(args)
    try:
        return chaos.run()
    except SetupError as e:
        print(f"chaos test: setup failed: {e}", file=sys.stderr)
        return 2
    finally:
        chaos.cleanup()


if __name__ == "__main__":
    sys.exit(main())
