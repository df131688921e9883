#!/usr/bin/python3
"""Chaos test of mailroom: the promise under test is

    Every job accepted by the producer ends `sent`, `failed` or `rejected`, with its
    reason, whatever happens to consumers, Redis or the mail server -- and a mail is
    sent twice only if a consumer dies between the server's 250 and the acknowledgement.

Setup (all on 127.0.0.1, free ports, one temporary directory, removed at the end):
  - redis-server with an append-only file fsynced at every write;
  - Postfix's smtp-sink, which dumps every accepted message to its own file (the file is
    complete and closed before the sink answers 250 to the final dot; an aborted
    transaction's file is unlinked);
  - 3 `mailroom-consumer --concurrency 8` processes with short recovery, backoff and
    timeout settings.

Then, in one single-threaded event loop (every child is spawned by the main thread, so
PR_SET_PDEATHSIG takes them down with this process even if it is SIGKILLed):
  - 20 000 signed jobs are enqueued in MULTI/EXEC batches (job hash + EXPIRE + LPUSH,
    exactly what the producer writes) while the consumers run;
  - every 3-5 s a random consumer is SIGKILLed and a new one started; one consumer is
    also stopped with SIGTERM and replaced;
  - redis-server is restarted once (SIGTERM, then started again on the same port and
    directory, so the AOF is reloaded);
  - the sink is restarted on the same port to answer 4xx to RCPT, then normally, then
    to drop the connection after DATA, then normally, then 4xx to DATA, then normally.
When the disruption is over the system runs undisturbed until every job is terminal,
the consumers are stopped with SIGTERM, and the outcome is checked (see check()).

Run: /usr/bin/python3 tests/chaos/chaos_test.py [--jobs N] [--seed S] [--keep]
                                                [--no-chaos]
Binaries from $MAILROOM_BIN_DIR (default <repo>/build/bin). Exit status 0 when the
promise held, 1 with the violations listed otherwise, 2 when the setup failed.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import ctypes
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
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
sys.path.insert(0, str(HERE.parent / "tools"))

import redis  # noqa: E402  (python3-redis)

import mailroom_sign  # noqa: E402
from harness import (  # noqa: E402
    CONSUMER, Keys, LOOPBACK, binaries_missing, free_port, mailroom_env, new_secret,
    port_accepts,
)

QUEUE = "default"
Q = Keys(QUEUE)
SENDER = "noreply@example.com"
TERMINAL = ("sent", "failed", "rejected")
END_MARKER = "chaos-end-of-message"
ID_RE = re.compile(r"chaos-(\d{6})\Z")
MSGID_RE = re.compile(r"^message-id:\s*<([^>]*)>", re.IGNORECASE | re.MULTILINE)

N_CONSUMERS = 3
CONSUMER_ARGS = [
    "--concurrency", "8", "--dead-after", "3s", "--backoff-base", "200ms",
    "--backoff-max", "2s", "--max-attempts", "50", "--smtp-timeout", "5s",
    "--smtp-connect-timeout", "2s", "--block-timeout", "1s", "--shutdown-timeout", "5s",
]
SHUTDOWN_WAIT = 15.0  # seconds a SIGTERMed consumer gets to exit (--shutdown-timeout 5s)


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class SetupError(Exception):
    """The test could not set its servers up (not a verdict on mailroom)."""


# --------------------------------------------------------------------------- processes

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
_children: list = []


def _die_with_parent() -> None:
    # In the child between fork and exec: SIGKILL when the spawning thread (the main
    # thread, the only one there is) goes away, however it goes away.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv, log_path: Path, **kw) -> subprocess.Popen:
    """A child in its own session, stdout+stderr appended to log_path."""
    with open(log_path, "ab") as out:
        p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             preexec_fn=_die_with_parent, **kw)
    _children.append(p)
    return p


def kill_group(p: subprocess.Popen, sig=signal.SIGKILL) -> None:
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@atexit.register
def _kill_children() -> None:
    for p in _children:
        if p.poll() is None:
            kill_group(p)
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                pass


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        return f"    (cannot read {path.name}: {e})"
    return "\n".join("    " + l for l in text.splitlines()[-lines:])


# --------------------------------------------------------------------------- Redis


class AofRedis:
    """redis-server with AOF (fsync always) that can be restarted on the same port and
    directory, so the restarted server reloads everything acknowledged before."""

    def __init__(self, run_dir: Path):
        self.port = free_port()
        self.dir = run_dir / "redis"
        self.dir.mkdir()
        self.log_path = run_dir / "redis.log"
        self.proc = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host=LOOPBACK, port=self.port, decode_responses=True,
                           socket_timeout=10, socket_connect_timeout=2)

    def start(self, timeout: float = 15.0) -> None:
        self.proc = spawn(["redis-server", "--port", self.port, "--bind", LOOPBACK,
                           "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                           "--dir", self.dir, "--protected-mode", "yes",
                           "--daemonize", "no"], self.log_path)
        self.starts += 1
        probe = redis.Redis(host=LOOPBACK, port=self.port, socket_timeout=1,
                            socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise SetupError(f"redis-server exited with {self.proc.returncode}:\n"
                                     + tail(self.log_path))
                try:
                    if probe.ping():
                        return
                except redis.exceptions.RedisError:  # refused, or LOADING the AOF
                    pass
                if time.monotonic() > deadline:
                    raise SetupError("redis-server did not answer PING:\n" + tail(self.log_path))
                time.sleep(0.02)
        finally:
            probe.close()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (Redis fsyncs the AOF and exits), SIGKILL after timeout."""
        if self.proc is None:
            return None
        p, self.proc = self.proc, None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_group(p)
                p.wait()
        return p.returncode


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


# --------------------------------------------------------------------------- SMTP


class Sink:
    """smtp-sink on a fixed port, dumping each message to <dump>/m.<random hex>; the
    mode (extra smtp-sink flags) changes by restarting it on the same port."""

    MODES = {
        "normal": [],
        "4xx-rcpt": ["-r", "rcpt"],     # 450 to RCPT TO
        "drop-data": ["-q", "data"],    # disconnect, no reply, after DATA
        "4xx-data": ["-r", "data"],     # 450 to DATA
    }

    def __init__(self, run_dir: Path):
        self.port = free_port()
        self.dump = run_dir / "sink"
        self.dump.mkdir()
        self.log_path = run_dir / "sink.log"
        self.proc = None
        self.mode = None
        self.restarts = 0
        if os.geteuid() == 0:  # smtp-sink insists on -u as root: let nobody write here
            os.chmod(run_dir, 0o755)
            os.chmod(self.dump, 0o777)

    @property
    def url(self) -> str:
        return f"smtp://{LOOPBACK}:{self.port}"

    def start(self, mode: str = "normal", timeout: float = 10.0) -> None:
        exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        argv = [exe]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        argv += self.MODES[mode] + ["-d", f"{self.dump}/m.", f"{LOOPBACK}:{self.port}", "256"]
        self.proc = spawn(argv, self.log_path)
        self.mode = mode
        deadline = time.monotonic() + timeout
        while not port_accepts(self.port):
            if self.proc.poll() is not None:
                raise SetupError(f"smtp-sink exited with {self.proc.returncode}:\n"
                                 + tail(self.log_path))
            if time.monotonic() > deadline:
                raise SetupError("smtp-sink does not accept connections")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.proc is not None:
            kill_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                kill_group(self.proc)
                self.proc.wait()
            self.proc = None

    def switch(self, mode: str) -> None:
        self.stop()
        self.start(mode)
        self.restarts += 1

    def received(self):
        """(Counter job id -> copies, unknown Message-IDs, incomplete dump files)."""
        copies = collections.Counter()
        unknown, incomplete = [], []
        for f in self.dump.iterdir():
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
    seq = 0

    def __init__(self, run_dir: Path, env: dict):
        ConsumerProc.seq += 1
        self.n = ConsumerProc.seq
        self.log_path = run_dir / f"consumer-{self.n:02d}.log"
        self.proc = spawn([CONSUMER, *CONSUMER_ARGS], self.log_path, env=env)
        self.fate = "running"  # running, killed, terminating, stopped, crashed

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        kill_group(self.proc)
        self.fate = "killed"

    def term(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.fate = "terminating"
        self.term_deadline = time.monotonic() + SHUTDOWN_WAIT

    def __str__(self) -> str:
        return f"consumer #{self.n} (pid {self.proc.pid})"


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
        signed = mailroom_sign.signed_job(job, key)
        jobs.append((jid, mailroom_sign.dumps(signed)))
    return jobs


class Enqueuer:
    """Pushes the jobs in MULTI/EXEC batches, as the producer writes them. A batch whose
    EXEC outcome is unknown (connection lost) counts as accepted if its first job's
    record exists (MULTI/EXEC is all or nothing), else it is sent again."""

    def __init__(self, srv: AofRedis, jobs: list, batch: int):
        self.srv = srv
        self.jobs = jobs
        self.batch = batch
        self.next = 0
        self.r = srv.client()
        self.failures = 0

    def done(self) -> bool:
        return self.next >= len(self.jobs)

    def push_batch(self) -> bool:
        chunk = self.jobs[self.next:self.next + self.batch]
        if not chunk:
            return True
        try:
            if self.failures and self.r.exists(Q.job(chunk[0][0])):
                self.next += len(chunk)
                self.failures = 0
                return True
            now = iso_now()
            p = self.r.pipeline(transaction=True)
            for jid, raw in chunk:
                p.hset(Q.job(jid), mapping={"state": "queued", "attempts": "0",
                                            "created_at": now, "updated_at": now})
                p.expire(Q.job(jid), 604800)
                p.lpush(Q.pending, raw)
            p.execute()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                redis.exceptions.BusyLoadingError):
            self.failures += 1
            return False
        self.next += len(chunk)
        self.failures = 0
        return True


# --------------------------------------------------------------------------- the run


class Chaos:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.run_dir = Path(tempfile.mkdtemp(prefix="mailroom-chaos-"))
        self.secret = new_secret()
        self.redis = AofRedis(self.run_dir)
        self.sink = Sink(self.run_dir)
        self.consumers: list = []   # every ConsumerProc ever started
        self.kills = 0
        self.term_restarts = 0
        self.redis_restarts = 0
        self.crashed: list = []     # consumers that exited without being told to
        self.timeline: list = []
        self.violations: list = []

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
        for c in self.consumers:
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

    def kill_random(self) -> None:
        victims = self.live()
        if not victims:
            return
        c = self.rng.choice(victims)
        c.kill9()
        self.kills += 1
        n = self.start_consumer()
        self.note(f"kill -9 {c}; started {n}  (kills={self.kills})")

    def term_random(self) -> None:
        victims = self.live()
        if not victims:
            return
        c = self.rng.choice(victims)
        c.term()
        self.term_restarts += 1
        n = self.start_consumer()
        self.note(f"SIGTERM {c}; started {n}")

    def restart_redis(self) -> None:
        t = time.monotonic()
        rc = self.redis.stop()
        self.redis.start()
        self.redis_restarts += 1
        self.note(f"redis-server restarted (exit {rc}, down {time.monotonic() - t:.2f}s)")

    def sink_mode(self, mode: str) -> None:
        self.sink.switch(mode)
        self.note(f"smtp-sink now {mode}")

    def states(self, r: redis.Redis, ids: list) -> dict:
        out = {}
        for i in range(0, len(ids), 5000):
            part = ids[i:i + 5000]
            p = r.pipeline(transaction=False)
            for jid in part:
                p.hget(Q.job(jid), "state")
            out.update(zip(part, p.execute()))
        return out

    # ---- phases

    def schedule(self) -> list:
        """[(t, label, action)] of the disruption, relative to the start."""
        ev = []
        if not self.args.no_chaos:
            t = 2.0
            while True:
                t += self.rng.uniform(3.0, 5.0)
                if t > self.args.chaos_seconds:
                    break
                ev.append((t, "kill", self.kill_random))
            ev += [
                (6.0, "sink", lambda: self.sink_mode("4xx-rcpt")),
                (12.0, "sink", lambda: self.sink_mode("normal")),
                (17.5, "term", self.term_random),
                (19.0, "redis", self.restart_redis),
                (25.0, "sink", lambda: self.sink_mode("drop-data")),
                (31.0, "sink", lambda: self.sink_mode("normal")),
                (35.0, "sink", lambda: self.sink_mode("4xx-data")),
                (39.0, "sink", lambda: self.sink_mode("normal")),
            ]
        ev.sort(key=lambda e: e[0])
        return ev

    def run(self) -> int:
        self.t_start = time.monotonic()
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

        jobs = make_jobs(self.args.jobs, self.secret.encode())
        self.ids = [jid for jid, _ in jobs]
        self.redis.start()
        self.sink.start("normal")
        self.env = mailroom_env(redis_url=self.redis.url, secret=self.secret,
                                smtp=self.sink.url)
        r = self.redis.client()
        log(f"run dir {self.run_dir}; redis :{self.redis.port}; smtp-sink :{self.sink.port}; "
            f"{len(jobs)} jobs; seed {self.args.seed}")

        self.t0 = time.monotonic()
        for _ in range(N_CONSUMERS):
            self.start_consumer()
        events = self.schedule()
        enq = Enqueuer(self.redis, jobs, self.args.batch)
        enqueue_every = self.args.enqueue_seconds / max(1, -(-len(jobs) // self.args.batch))
        next_batch = 0.0
        # ---- disruption phase: events, paced enqueueing, consumer watch
        while events or not enq.done():
            now = time.monotonic() - self.t0
            if events and events[0][0] <= now:
                _, _, action = events.pop(0)
                action()
                continue
            if not enq.done() and now >= next_batch:
                if enq.push_batch():
                    next_batch += enqueue_every
                else:
                    next_batch = now + 0.1
            self.watch_consumers()
            wake = min([events[0][0] if events else 1e9,
                        next_batch if not enq.done() else 1e9, now + 0.2])
            time.sleep(max(0.0, wake - (time.monotonic() - self.t0)))
        self.note(f"disruption over ({self.kills} kills, {self.redis_restarts} Redis "
                  f"restarts, {self.sink.restarts} sink restarts); all {len(jobs)} jobs "
                  f"accepted")

        # ---- convergence: undisturbed until every job is terminal
        deadline = time.monotonic() + self.args.converge_seconds
        open_ids = list(self.ids)
        last_report = 0.0
        while True:
            self.watch_consumers()
            st = retry_redis(lambda: self.states(r, open_ids), "polling job states")
            open_ids = [j for j in open_ids if st[j] not in TERMINAL]
            if not open_ids:
                break
            if time.monotonic() > deadline:
                break
            if time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                cnt = collections.Counter(st[j] for j in open_ids)
                log(f"waiting: {len(open_ids)} not terminal {dict(cnt)}; pending "
                    f"{r.llen(Q.pending)}, scheduled {r.zcard(Q.scheduled)}")
            time.sleep(0.5)
        if open_ids:
            self.note(f"convergence deadline passed with {len(open_ids)} jobs not terminal")
        else:
            self.note("every job is terminal")
        # stale copies of already-sent jobs (recovered after the 250 was recorded) are
        # acknowledged as duplicates by BEGIN; give the consumers a moment to drain them
        idle_deadline = time.monotonic() + 10
        while time.monotonic() < idle_deadline:
            busy = r.llen(Q.pending) + sum(r.llen(k) for k in
                                           r.scan_iter(match=Q.processing_pattern()))
            due = r.zcount(Q.scheduled, "-inf", int(time.time() * 1000))
            if busy == 0 and due == 0:
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
        copies, unknown, incomplete = self.sink.received()
        stats = {k: int(x) for k, x in r.hgetall(Q.stats).items()}
        pending = r.llen(Q.pending)
        processing = {k: r.llen(k) for k in r.scan_iter(match=Q.processing_pattern())}
        processing = {k: n for k, n in processing.items() if n}
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
        print(f"lost={len(lost)} duplicates={duplicates} kills={self.kills} "
              f"redis_restarts={self.redis_restarts}")
        print(f"jobs={len(self.ids)} sent={by_state['sent']} failed={by_state['failed']} "
              f"rejected={by_state['rejected']} not_terminal={len(not_terminal)} "
              f"{dict((s, n) for s, n in by_state.items() if s not in TERMINAL)}")
        print(f"received: {sum(copies.values())} messages for {len(copies)} jobs, "
              f"{len(dup_jobs)} jobs more than once, {len(incomplete)} incomplete dumps "
              f"(sink killed mid-message), {len(unknown)} unknown Message-IDs")
        print(f"stats: {stats}")
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

        if not_terminal:
            v.append(f"{len(not_terminal)} jobs not terminal ([state, error, smtp_code, "
                     f"attempts, smtp_reply]): {some(not_terminal, True)}")
        if lost:
            v.append(f"lost={len(lost)}: neither terminal nor received: {some(lost)}")
        if sent_missing:
            v.append(f"{len(sent_missing)} jobs say sent but the receiver never got them: "
                     f"{some(sent_missing, True)}")
        if duplicates > self.kills:
            v.append(f"duplicates={duplicates} > kills={self.kills}: {some(dup_jobs, True)}")
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
        if received_not_sent:
            print(f"note: {len(received_not_sent)} received jobs do not say sent: "
                  f"{some(received_not_sent, True)}")

        if v:
            print("\nCHAOS TEST FAILED:")
            for x in v:
                print(f"  - {x}")
            self.dump_logs(not_terminal + sent_missing + dup_jobs + failed + rejected)
            return 1
        print("\nchaos test passed")
        return 0

    def dump_logs(self, suspects: list) -> None:
        print("\ntimeline:")
        for line in self.timeline:
            print("  " + line)
        shown = [c for c in self.consumers if c.fate in ("crashed",)] + \
            [c for c in self.consumers if c.fate == "stopped"]
        for c in shown:
            print(f"\n--- {c} [{c.fate}] log tail:")
            print(tail(c.log_path, 30))
        wanted = set(suspects[:5])
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
            if c.alive():
                kill_group(c.proc)
                c.proc.wait()
        self.sink.stop()
        self.redis.stop()
        _kill_children()
        if self.args.keep:
            log(f"kept {self.run_dir}")
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=250, help="jobs per MULTI/EXEC")
    ap.add_argument("--enqueue-seconds", type=float, default=36.0,
                    help="spread the enqueueing over this long")
    ap.add_argument("--chaos-seconds", type=float, default=45.0,
                    help="kill consumers until this long after the start")
    ap.add_argument("--converge-seconds", type=float, default=90.0,
                    help="deadline for every job to be terminal after the disruption")
    ap.add_argument("--seed", type=int,
                    default=int(os.environ.get("MAILROOM_CHAOS_SEED") or random.randrange(1 << 30)))
    ap.add_argument("--no-chaos", action="store_true", help="baseline: no disruption")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    args = ap.parse_args()

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
