"""Integration-test harness for mailroom.

Everything here starts real servers on free loopback ports and always cleans up after
itself: every helper is a context manager, every child runs in its own process group and
is killed as a group, and temporary directories are removed. As a last line of defence an
atexit hook kills any child a crashed test left behind.

    with RedisServer() as redis, Receiver() as rx:
        env = mailroom_env(redis, secret=SECRET, smtp=rx)
        with Consumer(env, "--id", "c1") as consumer:
            rc, out, err = run_cli("send", "--to", "a@example.com", ..., env=env)
            rx.wait_for_count(1, timeout=10)
            assert consumer.stop() == 0

ServerTestCase is the base of the suites; Libmailroom is a ctypes binding of the producer
library (include/mailroom.h) for what the CLI does not expose.

Only the Python standard library, python3-redis and python3-aiosmtpd are used (run with
/usr/bin/python3). The binaries are taken from $MAILROOM_BIN_DIR, else
<repo root>/build/bin.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import email
import email.parser
import email.policy
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import unittest
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis  # python3-redis
from aiosmtpd.controller import Controller  # python3-aiosmtpd

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("MAILROOM_BIN_DIR") or (REPO_ROOT / "build" / "bin"))
CLI = BIN_DIR / "mailroom"
CONSUMER = BIN_DIR / "mailroom-consumer"
LOOPBACK = "127.0.0.1"

logging.getLogger("mail.log").setLevel(logging.CRITICAL)  # aiosmtpd's chatter


# --------------------------------------------------------------------------- processes

_live_lock = threading.Lock()
_live: set = set()  # Popen objects still to be reaped


def _spawn(argv, **kw) -> subprocess.Popen:
    """Starts a child in its own session (so its whole group can be killed)."""
    proc = subprocess.Popen([str(a) for a in argv], start_new_session=True, **kw)
    with _live_lock:
        _live.add(proc)
    return proc


def _kill_group(proc: subprocess.Popen, sig=signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(proc: subprocess.Popen, grace: float = 5.0) -> int:
    """SIGTERM, wait up to `grace` s, then SIGKILL the process group. Returns the rc."""
    if proc.poll() is None:
        _kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    _kill_group(proc, signal.SIGKILL)  # stragglers of the group, if any
    if proc.poll() is None:
        proc.wait()
    with _live_lock:
        _live.discard(proc)
    return proc.returncode


@atexit.register
def _kill_leftovers() -> None:
    with _live_lock:
        procs = list(_live)
    for p in procs:
        _kill_group(p, signal.SIGKILL)
        with contextlib.suppress(Exception):
            p.wait(2)


# --------------------------------------------------------------------------- utilities


class WaitTimeout(AssertionError):
    """wait_for() ran out of time; an AssertionError so unittest reports a failure."""


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02, message: str = ""):
    """Polls predicate() until it returns something truthy, and returns that. Raises
    WaitTimeout (an AssertionError) after `timeout` seconds, naming the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_accepts(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def binaries_missing() -> list:
    return [str(p) for p in (CLI, CONSUMER) if not os.access(p, os.X_OK)]


def run_cli(*args, env: dict, timeout: float = 15.0, input: bytes | None = None):
    """Runs `mailroom ARGS` and returns (rc, stdout, stderr) as str (UTF-8)."""
    try:
        cp = subprocess.run([str(CLI), *map(str, args)], env=env, input=input,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"mailroom {' '.join(map(str, args))!r} still running after {timeout}s") from e
    return (cp.returncode, cp.stdout.decode("utf-8", "replace"), cp.stderr.decode("utf-8", "replace"))


def mailroom_env(redis_server=None, *, secret: str | None = None, keys_file=None,
                 queue: str | None = None, smtp=None, redis_url: str | None = None,
                 **extra) -> dict:
    """The environment for the binaries: the caller's environment without any
    MAILROOM_* variable, plus the ones given here. smtp: a Receiver/SmtpSink or a URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILROOM_")}
    if redis_url is not None:
        env["MAILROOM_REDIS_URL"] = redis_url
    elif redis_server is not None:
        env["MAILROOM_REDIS_URL"] = redis_server.url
    if secret is not None:
        env["MAILROOM_SECRET"] = secret
    if keys_file is not None:
        env["MAILROOM_KEYS_FILE"] = str(keys_file)
    if queue is not None:
        env["MAILROOM_QUEUE"] = queue
    if smtp is not None:
        env["MAILROOM_SMTP_URL"] = smtp if isinstance(smtp, str) else smtp.url
    for k, v in extra.items():
        env[k] = str(v)
    return env


def new_secret() -> str:
    """A random 32-character secret (never print it)."""
    return secrets.token_hex(16)


# --------------------------------------------------------------------------- Redis


class RedisServer:
    """A private redis-server on a free loopback port with its own temp dir; no
    persistence, or with aof=True an append-only file fsynced at every write, so that
    it can be shut down (shutdown()) and started again (start()) on the same port and
    dir, reloading what it acknowledged."""

    def __init__(self, startup_timeout: float = 10.0, *, aof: bool = False):
        self.port = free_port()
        self.host = LOOPBACK
        self.startup_timeout = startup_timeout
        self.aof = aof
        self.dir = None
        self.log_path = None
        self.proc = None
        self._log = None
        self._clients = []

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> "RedisServer":
        """Starts redis-server; again after shutdown(), on the same port and dir (its
        log is appended to)."""
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="mailroom-aof-" if self.aof else "mailroom-redis-")
            self.log_path = os.path.join(self.dir, "redis.log")
        if self._log is None:
            self._log = open(self.log_path, "ab")
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.aof
                       else ["--appendonly", "no"])
        self.proc = _spawn(["redis-server", "--port", str(self.port), "--bind", self.host,
                            "--save", "", *persistence, "--dir", self.dir,
                            "--protected-mode", "yes", "--daemonize", "no"],
                           stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        probe = redis.Redis(host=self.host, port=self.port, socket_timeout=0.5,
                            socket_connect_timeout=0.5)

        def pong():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: "
                                   + self.log_tail())
            try:
                return probe.ping()
            except redis.exceptions.RedisError:  # refused, or LOADING the AOF
                return False

        try:
            wait_for(pong, self.startup_timeout, 0.02, "redis-server to answer PING")
        except BaseException:
            self.stop()
            raise
        finally:
            probe.close()
        return self

    def log_tail(self, n: int = 2000) -> str:
        """The last n characters of redis-server's log (every run's)."""
        try:
            return Path(self.log_path).read_text(errors="replace")[-n:]
        except (OSError, TypeError):
            return ""

    def client(self, decode: bool = True) -> redis.Redis:
        c = redis.Redis(host=self.host, port=self.port, decode_responses=decode,
                        socket_timeout=10, socket_connect_timeout=2)
        self._clients.append(c)
        return c

    def shutdown(self, timeout: float = 10.0) -> int:
        """SHUTDOWN (which fsyncs the AOF) and waits for the exit; returns redis-server's
        exit status. The dir, the log and the clients stay, for start()."""
        c = redis.Redis(host=self.host, port=self.port, socket_timeout=10,
                        socket_connect_timeout=2)
        try:
            c.shutdown()
        finally:
            c.close()
        proc, self.proc = self.proc, None
        try:
            proc.wait(timeout)
        finally:
            _reap(proc, grace=0)
        return proc.returncode

    def stop(self) -> None:
        for c in self._clients:
            with contextlib.suppress(Exception):
                c.close()
        self._clients.clear()
        if self.proc is not None:
            _reap(self.proc, grace=3)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Keys:
    """The Redis key names of one queue (the braces are a literal hash tag)."""

    def __init__(self, queue: str = "default"):
        self.queue = queue
        p = f"mailroom:{{{queue}}}"
        self.prefix = p
        self.pending = f"{p}:pending"
        self.dead = f"{p}:dead"
        self.stats = f"{p}:stats"
        self.scheduled = f"{p}:scheduled"
        self.consumers = f"{p}:consumers"
        self.status = f"{p}:status"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def processing(self, consumer_id: str) -> str:
        return f"{self.prefix}:processing:{consumer_id}"

    def processing_pattern(self) -> str:
        # the braces must be escaped for a glob
        return f"mailroom:\\{{{self.queue}\\}}:processing:*"


def dead_entries(r: redis.Redis, queue: str = "default") -> list:
    """The dead list, oldest first, each entry JSON-decoded."""
    raw = r.lrange(Keys(queue).dead, 0, -1)
    return [json.loads(x) for x in reversed(raw)]


def stats(r: redis.Redis, queue: str = "default") -> dict:
    return {k: int(v) for k, v in r.hgetall(Keys(queue).stats).items()}


def processing_lengths(r: redis.Redis, queue: str = "default") -> dict:
    k = Keys(queue)
    return {key: r.llen(key) for key in r.scan_iter(match=k.processing_pattern())}


def wait_subscribed(pubsub, kind: str = "subscribe", what: str = "", timeout: float = 5.0) -> dict:
    """Waits for the server's confirmation (a message of type kind: "subscribe",
    "psubscribe") of a subscription just sent on pubsub, and returns it; raises
    AssertionError after timeout seconds. what names it in that error."""
    deadline = time.monotonic() + timeout
    while True:
        m = pubsub.get_message(timeout=0.5)
        if m and m["type"] == kind:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"no {kind} confirmation {what}".rstrip())


class StatusListener:
    """Subscribes to a queue's status channel (on enter, before the caller sends) and
    collects every event on a background thread; on_event(event), when given, is called
    on that thread for each one as it arrives."""

    def __init__(self, redis_server: RedisServer, queue: str = "default", on_event=None):
        self.channel = Keys(queue).status
        self.on_event = on_event
        self._client = redis.Redis(host=redis_server.host, port=redis_server.port,
                                   decode_responses=True, socket_timeout=10)
        self._pubsub = self._client.pubsub()
        self._lock = threading.Lock()
        self._events = []
        self.bad = []  # messages that were not JSON objects
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self) -> "StatusListener":
        self._pubsub.subscribe(self.channel)
        # do not return before the server confirmed the subscription
        wait_subscribed(self._pubsub, "subscribe", f"for {self.channel}")
        self._thread = threading.Thread(target=self._run, name="status-listener", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                m = self._pubsub.get_message(timeout=0.1)
            except Exception:  # connection closed at shutdown
                if self._stop.is_set():
                    return
                raise
            if not m or m["type"] != "message":
                continue
            try:
                ev = json.loads(m["data"])
                if not isinstance(ev, dict):
                    raise ValueError("not an object")
            except ValueError:
                with self._lock:
                    self.bad.append(m["data"])
                continue
            ev["_received"] = time.monotonic()
            with self._lock:
                self._events.append(ev)
            if self.on_event is not None:
                self.on_event(ev)

    def events(self, job_id: str | None = None) -> list:
        with self._lock:
            return [e for e in self._events if job_id is None or e.get("id") == job_id]

    def states(self, job_id: str) -> list:
        return [e.get("state") for e in self.events(job_id)]

    def wait_for_state(self, job_id: str, state: str, timeout: float = 10.0) -> dict:
        def found():
            for e in self.events(job_id):
                if e.get("state") == state:
                    return e
            return None
        return wait_for(found, timeout, message=f"status event {state!r} for job {job_id}")

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        with contextlib.suppress(Exception):
            self._pubsub.close()
        with contextlib.suppress(Exception):
            self._client.close()


# --------------------------------------------------------------------------- SMTP


class SmtpServer:
    """The lifecycle of an aiosmtpd server on 127.0.0.1:<free port>: subclasses pass
    their handler (and any further Controller keywords) to __init__. scheme is the URL
    scheme the consumer is given ("smtps" for implicit TLS); controller_class, a
    Controller subclass."""

    def __init__(self, handler, *, scheme: str = "smtp", controller_class=Controller,
                 **controller_kw):
        self.host = LOOPBACK
        self.port = free_port()
        self.scheme = scheme
        self.controller = controller_class(handler, hostname=self.host, port=self.port,
                                           ready_timeout=10, **controller_kw)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> "SmtpServer":
        self.controller.start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.controller.stop()

    def __enter__(self) -> "SmtpServer":
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list
    raw: bytes
    peer: tuple = ()
    at: float = field(default_factory=time.monotonic)  # monotonic arrival time
    wall: float = field(default_factory=time.time)     # wall-clock arrival time

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)


class _RecordingHandler:
    def __init__(self, receiver: "Receiver"):
        self.receiver = receiver

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        rx = self.receiver
        with rx._cond:
            rx.rcpt_seen += 1
            rx._cond.notify_all()
        if rx.rcpt_delay:
            await asyncio.sleep(rx.rcpt_delay)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        rx = self.receiver
        if rx.data_delay:
            await asyncio.sleep(rx.data_delay)
        refusal = rx._take_refusal(envelope)
        if refusal:
            return refusal
        n = rx._record(ReceivedMessage(envelope.mail_from, list(envelope.rcpt_tos),
                                       bytes(envelope.original_content or b""),
                                       tuple(session.peer or ())))
        return f"250 2.0.0 Ok: queued as MR{n:06d}"


class Receiver(SmtpServer):
    """An aiosmtpd SMTP server on 127.0.0.1:<free port> that records every message
    (envelope sender, recipients, raw bytes as received after dot-unstuffing).

    data_delay: seconds to sit on each message before answering the final dot.
    rcpt_delay: seconds to sit on each RCPT TO before answering (a client killed then
    has sent no message). .rcpt_seen counts the RCPT commands received.
    refuse_first: answer the first N messages with refuse_reply instead of accepting
    them (they are counted in .refused, not recorded as messages)."""

    def __init__(self, data_delay: float = 0.0, refuse_first: int = 0,
                 refuse_reply: str = "451 4.3.0 Try again later", rcpt_delay: float = 0.0):
        super().__init__(_RecordingHandler(self))
        self.data_delay = data_delay
        self.rcpt_delay = rcpt_delay
        self.rcpt_seen = 0
        self.refuse_first = refuse_first
        self.refuse_reply = refuse_reply
        self.refused = 0
        self._cond = threading.Condition()
        self._messages = []

    def _take_refusal(self, envelope):
        with self._cond:
            if self.refused < self.refuse_first:
                self.refused += 1
                self._cond.notify_all()
                return self.refuse_reply
        return None

    def _record(self, msg: ReceivedMessage) -> int:
        with self._cond:
            self._messages.append(msg)
            self._cond.notify_all()
            return len(self._messages)

    def messages(self) -> list:
        with self._cond:
            return list(self._messages)

    def count(self) -> int:
        with self._cond:
            return len(self._messages)

    def wait_for_rcpt(self, n: int = 1, timeout: float = 10.0) -> None:
        """Waits until at least n RCPT TO commands arrived."""
        wait_for(lambda: self.rcpt_seen >= n, timeout, message=f"{n} RCPT TO commands")

    def wait_for_count(self, n: int, timeout: float = 10.0) -> list:
        """Waits until at least n messages arrived; returns all of them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(f"timed out after {timeout:g}s waiting for {n} messages; "
                                      f"got {len(self._messages)}")
                self._cond.wait(left)
            return list(self._messages)


class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1:<free port>; extra args such as
    ("-f", "data") make it reject commands with 5xx, ("-r", "rcpt") with 4xx."""

    def __init__(self, *extra_args: str, startup_timeout: float = 10.0):
        self.port = free_port()
        self.host = LOOPBACK
        self.extra = list(extra_args)
        self.startup_timeout = startup_timeout
        self.proc = None
        self.dir = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> "SmtpSink":
        exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        argv = [exe]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        argv += self.extra + [f"{self.host}:{self.port}", "64"]
        self.dir = tempfile.mkdtemp(prefix="mailroom-sink-")
        self._log = open(os.path.join(self.dir, "sink.log"), "wb")
        self.proc = _spawn(argv, stdout=self._log, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, cwd=self.dir)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"smtp-sink exited with {self.proc.returncode}")
            return port_accepts(self.port)

        try:
            wait_for(up, self.startup_timeout, 0.02, "smtp-sink to accept connections")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _reap(self.proc, grace=2)
            self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------- consumer


class Consumer:
    """A mailroom-consumer child with stderr (and stdout) captured to a temp file."""

    def __init__(self, env: dict, *args: str):
        self.env = env
        self.args = list(args)
        self.proc = None
        self.dir = None
        self.returncode = None

    def start(self) -> "Consumer":
        self.dir = tempfile.mkdtemp(prefix="mailroom-consumer-")
        self.log_path = os.path.join(self.dir, "consumer.log")
        self._log = open(self.log_path, "wb")
        self.proc = _spawn([CONSUMER, *self.args], env=self.env, stdout=self._log,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(encoding="utf-8", errors="replace")
        except (OSError, AttributeError):
            return ""

    def error_lines(self) -> list:
        """Log lines at level error or worse (text or json log format)."""
        out = []
        for line in self.log().splitlines():
            if re.match(r"^\S+\s+(error|fatal|crit\w*)\b", line, re.I) or \
                    re.search(r'"level"\s*:\s*"(error|fatal|crit\w*)"', line, re.I):
                out.append(line)
        return out

    def send_signal(self, sig) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0, sig=signal.SIGTERM):
        """Sends sig (SIGTERM) to the consumer and waits up to timeout seconds for it to
        exit; then SIGKILLs its group. Returns the exit code (negative: killed by a
        signal) and sets self.timed_out when the kill was needed."""
        self.timed_out = False
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.timed_out = True
        _kill_group(self.proc, signal.SIGKILL)
        self.proc.wait()
        self.returncode = self.proc.returncode
        with _live_lock:
            _live.discard(self.proc)
        return self.returncode

    def kill(self) -> int:
        """SIGKILL (a crash): no shutdown code runs. Returns the exit code."""
        _kill_group(self.proc, signal.SIGKILL)
        self.proc.wait()
        self.returncode = self.proc.returncode
        return self.returncode

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop(timeout=5)
        if self.proc is not None:
            _kill_group(self.proc, signal.SIGKILL)
            with _live_lock:
                _live.discard(self.proc)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> "Consumer":
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


# --------------------------------------------------------------------------- jobs


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid(ms: int | None = None) -> str:
    """A ULID: 48-bit millisecond time + 80 random bits, 26 Crockford base32 chars."""
    if ms is None:
        ms = time.time_ns() // 1_000_000
    n = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        out.append(_CROCKFORD[n & 31])
        n >>= 5
    return "".join(reversed(out))


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# The reference signer (the same definition as the C code), imported directly.
_TOOLS = REPO_ROOT / "tests" / "tools"
if str(_TOOLS) not in sys.path:
    sys.path.insert(0, str(_TOOLS))
import mailroom_sign as signer  # noqa: E402

SIGNER_SOURCE = "tests/tools/mailroom_sign.py"


def make_job(job_id: str | None = None, *, to=("rcpt@example.com",), subject="Hello",
             text="Hello there.\n", sender="noreply@example.com", **extra) -> dict:
    """An unsigned v1 job dict (no kid/alg/sig yet)."""
    job = {"v": "1", "id": job_id or new_ulid(), "to": list(to), "from": sender,
           "subject": subject, "text": text, "created_at": utc_now()}
    job.update(extra)
    return job


def sign_job(job: dict, key, kid: str = "default", alg: str = "hmac-sha1") -> dict:
    if isinstance(key, str):
        key = key.encode("utf-8")
    return signer.signed_job(job, key, kid=kid, alg=alg)


def job_json(job: dict) -> str:
    return json.dumps(job, ensure_ascii=False, separators=(",", ":"))


def enqueue_raw(r: redis.Redis, raw: str, queue: str = "default", job_id: str | None = None,
                record: bool = True) -> None:
    """Pushes a raw job as the producer does: job hash (state queued) and LPUSH in one
    MULTI/EXEC. record=False pushes the raw string only (what a forger could do)."""
    k = Keys(queue)
    p = r.pipeline(transaction=True)
    if record and job_id:
        now = utc_now()
        p.hset(k.job(job_id), mapping={"state": "queued", "attempts": "0", "created_at": now,
                                       "updated_at": now})
        p.expire(k.job(job_id), 7 * 24 * 3600)
    p.lpush(k.pending, raw)
    p.execute()


# --------------------------------------------------------------------------- messages


def parse_message(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


_BARE_LF = re.compile(rb"(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n)")


def bare_line_ends(raw: bytes) -> int:
    """How many bare LFs and bare CRs raw contains."""
    return len(_BARE_LF.findall(raw)) + len(_BARE_CR.findall(raw))


def longest_line(raw: bytes) -> int:
    return max((len(l) for l in raw.split(b"\r\n")), default=0)


def unfold_header_lines(raw: bytes) -> list:
    """The raw header section's physical lines."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n")


def text_of(part) -> str:
    """A text part's decoded content with CRLF line ends turned into LF."""
    return part.get_content().replace("\r\n", "\n")


def message_id_for(job_id: str, sender: str) -> str:
    """The Message-ID the consumer derives from a job id and the From address."""
    domain = sender.rsplit("@", 1)[1]
    local = "".join(c if re.fullmatch(r"[A-Za-z0-9_-]", c) else "".join(f"={b:02X}" for b in c.encode())
                    for c in job_id)
    return f"<{local}@{domain}>"


_HEADER_PARSER = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def job_id_of(raw: bytes) -> str:
    """The job id from the Message-ID <id@domain> the consumer derives from it (a raw
    message); the Message-ID itself when it has no angle brackets."""
    mid = (_HEADER_PARSER.parsebytes(raw).get("Message-ID") or "").strip()
    return mid[1:].split("@", 1)[0] if mid.startswith("<") else mid


# --------------------------------------------------------------------------- libmailroom (ctypes)


class _Options(ctypes.Structure):  # mailroom_options, include/mailroom.h
    _fields_ = [("redis_url", ctypes.c_char_p), ("queue", ctypes.c_char_p),
                ("kid", ctypes.c_char_p), ("key", ctypes.c_void_p),
                ("key_len", ctypes.c_size_t), ("alg", ctypes.c_char_p),
                ("connect_timeout_ms", ctypes.c_int), ("command_timeout_ms", ctypes.c_int),
                ("status_ttl_s", ctypes.c_long)]


class _Email(ctypes.Structure):  # mailroom_email, include/mailroom.h
    _fields_ = [("to", ctypes.POINTER(ctypes.c_char_p)), ("n_to", ctypes.c_size_t),
                ("cc", ctypes.POINTER(ctypes.c_char_p)), ("n_cc", ctypes.c_size_t),
                ("bcc", ctypes.POINTER(ctypes.c_char_p)), ("n_bcc", ctypes.c_size_t),
                ("from_", ctypes.c_char_p), ("from_name", ctypes.c_char_p),
                ("reply_to", ctypes.c_char_p), ("subject", ctypes.c_char_p),
                ("text", ctypes.c_char_p), ("html", ctypes.c_char_p),
                ("headers", ctypes.c_void_p), ("n_headers", ctypes.c_size_t),
                ("id", ctypes.c_char_p), ("send_at", ctypes.c_long),  # time_t
                ("expires_at", ctypes.c_long)]


MAILROOM_ID_MAX = 129  # job ids are at most 128 bytes, plus the NUL


class _Status(ctypes.Structure):  # mailroom_job_status, include/mailroom.h
    _fields_ = [("id", ctypes.c_char * MAILROOM_ID_MAX), ("state", ctypes.c_int),
                ("attempts", ctypes.c_int), ("smtp_code", ctypes.c_int),
                ("smtp_reply", ctypes.c_char * 512), ("error", ctypes.c_char * 512),
                ("consumer", ctypes.c_char * 128), ("created_at", ctypes.c_char * 32),
                ("updated_at", ctypes.c_char * 32)]


def libmailroom_path() -> Path | None:
    """The built shared library, or None when there is none or it is built with
    AddressSanitizer (the sanitizer pass): an ASan library cannot be loaded into a
    Python that was not started with the ASan runtime, so the ctypes checks run in the
    normal pass only."""
    p = BIN_DIR.parent / "lib" / "libmailroom.so"
    if not p.exists() or b"libasan.so" in p.read_bytes():
        return None
    return p


class Libmailroom:
    """A thin binding of the producer library (include/mailroom.h): one handle, opened
    (and connected) by the constructor with the key `key` (bytes) as key id kid; close()
    (or the with-block) frees it. One thread at a time, as the library requires."""

    STATES = ["unknown", "queued", "sending", "sent", "retrying", "failed", "rejected"]

    def __init__(self, redis_url: str, *, key: bytes, kid: str = "default",
                 alg: str | None = None, queue: str = "default"):
        path = libmailroom_path()
        if path is None:
            raise FileNotFoundError("libmailroom.so not built (or built with ASan)")
        lib = self.lib = ctypes.CDLL(str(path))
        lib.mailroom_open.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(_Options)]
        lib.mailroom_errmsg.restype = ctypes.c_char_p
        lib.mailroom_errmsg.argtypes = [ctypes.c_void_p]
        lib.mailroom_close.argtypes = [ctypes.c_void_p]
        lib.mailroom_send.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Email), ctypes.c_char_p]
        lib.mailroom_wait.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                      ctypes.POINTER(_Status)]
        lib.mailroom_options_init.argtypes = [ctypes.POINTER(_Options)]
        key = bytes(key)
        # the strings must outlive mailroom_open (which copies them): keep them here
        self._keep = [redis_url.encode(), queue.encode(), kid.encode(), (alg or "").encode()]
        self._keybuf = ctypes.create_string_buffer(key, len(key))
        opts = _Options()
        lib.mailroom_options_init(ctypes.byref(opts))
        opts.redis_url, opts.queue, opts.kid = self._keep[0], self._keep[1], self._keep[2]
        opts.key = ctypes.cast(self._keybuf, ctypes.c_void_p)
        opts.key_len = len(key)  # bytes
        if alg:
            opts.alg = self._keep[3]
        self.handle = ctypes.c_void_p()
        rc = lib.mailroom_open(ctypes.byref(self.handle), ctypes.byref(opts))
        if rc != 0:
            msg = self.errmsg()
            self.close()
            raise RuntimeError(f"mailroom_open: rc={rc}: {msg}")

    def errmsg(self) -> str:
        return (self.lib.mailroom_errmsg(self.handle) or b"").decode("utf-8", "replace")

    def send_rc(self, to: str, sender: str, subject: str, text: str,
                job_id: str | None = None) -> tuple:
        """mailroom_send of a text mail to one recipient (with the id job_id when
        given); never raises for a send that fails: (rc, the job id when rc is 0, else
        mailroom_errmsg)."""
        to_arr = (ctypes.c_char_p * 1)(to.encode())
        e = _Email()
        e.to, e.n_to = to_arr, 1
        e.from_, e.subject, e.text = sender.encode(), subject.encode(), text.encode()
        if job_id is not None:
            e.id = job_id.encode()
        out = ctypes.create_string_buffer(MAILROOM_ID_MAX)
        rc = self.lib.mailroom_send(self.handle, ctypes.byref(e), out)
        return rc, (out.value.decode() if rc == 0 else self.errmsg())

    def send(self, to: str, sender: str, subject: str, text: str,
             job_id: str | None = None) -> str:
        """send_rc, but returns the job id and raises RuntimeError when rc is not 0."""
        rc, text_out = self.send_rc(to, sender, subject, text, job_id)
        if rc != 0:
            raise RuntimeError(f"mailroom_send: rc={rc}: {text_out}")
        return text_out

    def wait(self, job_id: str, timeout_ms: int) -> tuple:
        """(rc, state name, error) of mailroom_wait."""
        st = _Status()
        rc = self.lib.mailroom_wait(self.handle, job_id.encode(), timeout_ms, ctypes.byref(st))
        state = self.STATES[st.state] if 0 <= st.state < len(self.STATES) else "?"
        return rc, state, st.error.decode("utf-8", "replace")

    def close(self) -> None:
        if getattr(self, "handle", None):
            self.lib.mailroom_close(self.handle)
            self.handle = None

    def __enter__(self) -> "Libmailroom":
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------- test base


class ServerTestCase(unittest.TestCase):
    """The base of the integration suites: per-test servers entered into an ExitStack
    that cleanup closes; consumers signalled together at cleanup (so they stop in
    parallel) and their logs dumped when the test failed."""

    WAIT_TIMEOUT = 15.0  # default for wait_state
    LOG_TAIL = 6000      # bytes of each consumer log shown on failure

    def setUp(self):
        missing = binaries_missing()
        if missing:
            self.fail("binaries not built: " + ", ".join(missing))
        self.stack = contextlib.ExitStack()
        self.addCleanup(self.stack.close)
        self.consumers = []
        self.addCleanup(self._dump_logs_if_failed)
        self.addCleanup(self._terminate_consumers)  # runs first (cleanups are LIFO)

    # ---- fixtures

    def redis(self) -> RedisServer:
        return self.stack.enter_context(RedisServer())

    def receiver(self, **kw) -> Receiver:
        return self.stack.enter_context(Receiver(**kw))

    def listener(self, redis_server, **kw) -> StatusListener:
        """A StatusListener (kw: queue, on_event), subscribed before this returns."""
        return self.stack.enter_context(StatusListener(redis_server, **kw))

    def sink(self, *args) -> SmtpSink:
        """Postfix's smtp-sink with extra args (see SmtpSink)."""
        return self.stack.enter_context(SmtpSink(*args))

    def tmpdir(self, prefix: str = "mailroom-test-") -> str:
        return self.stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix))

    def start_consumer(self, env, *args) -> Consumer:
        """Starts a consumer owned by this test; its temp dir goes too when the start
        fails (e.g. the binary is being rebuilt)."""
        c = Consumer(env, *args)
        try:
            self.stack.enter_context(c)
        except BaseException:
            c.cleanup()
            raise
        self.consumers.append(c)
        return c

    def _terminate_consumers(self):
        for c in self.consumers:
            with contextlib.suppress(Exception):
                c.send_signal(signal.SIGTERM)

    def _failed(self) -> bool:
        """Whether this test (or one of its subTests) has failed or errored so far."""
        # outcome.success is reset to True while cleanups run: ask the result instead
        result = getattr(getattr(self, "_outcome", None), "result", None)
        problems = getattr(result, "failures", []) + getattr(result, "errors", [])
        return any(test is self or getattr(test, "test_case", None) is self
                   for test, _ in problems)

    def _dump_logs_if_failed(self):
        if not self._failed():
            return
        for c in self.consumers:
            sys.stderr.write(f"\n----- consumer {c.args} log (tail) -----\n"
                             f"{c.log()[-self.LOG_TAIL:]}\n")

    # ---- the producer

    def send(self, env, *extra, to=("rcpt@example.com",), sender="noreply@example.com",
             subject="Hello", text="Hello there.") -> str:
        """`mailroom send` (to: one address or several; text None: no --text; extra:
        further arguments) must exit 0 and print a valid job id, which it returns."""
        args = ["send"]
        for t in ((to,) if isinstance(to, str) else to):
            args += ["--to", t]
        args += ["--from", sender, "--subject", subject]
        if text is not None:
            args += ["--text", text]
        args += list(extra)
        rc, out, err = run_cli(*args, env=env)
        self.assertEqual(rc, 0, f"mailroom send failed: rc={rc} stderr={err!r}")
        job_id = out.strip()
        self.assertRegex(job_id, r"\A[A-Za-z0-9._:-]{1,128}\Z", f"stdout={out!r}")
        return job_id

    # ---- checks

    def wait_state(self, r, job_id, states, queue="default", timeout=None, check=None) -> dict:
        """Waits until the job's record is in one of states (a name or a tuple) and
        returns the record; check, when given, runs at every poll and may raise."""
        if isinstance(states, str):
            states = (states,)
        key = Keys(queue).job(job_id)

        def reached():
            if check:
                check()
            h = r.hgetall(key)
            return h if h.get("state") in states else None
        try:
            return wait_for(reached, timeout or self.WAIT_TIMEOUT,
                            message=f"job {job_id} to reach state {states}")
        except AssertionError as e:
            raise AssertionError(f"{e}; record now: {r.hgetall(key)}") from None

    def assert_queue_drained(self, r, queue="default"):
        self.assertEqual(r.llen(Keys(queue).pending), 0, "pending list not empty")
        self.assertEqual({k: v for k, v in processing_lengths(r, queue).items() if v}, {},
                         "processing lists not empty")
