"""Children and their clean-up: spawn() starts every program in its own session (so
that its whole process group can be killed), reap() stops one, and an atexit hook kills
whatever a crashed test left behind. Child is the base of every server and of the
consumer: a program with its own temp dir and a log file collecting its output.

Also the small things every test needs around processes: wait_for() (a poll with a
deadline that fails as an AssertionError), free loopback ports, run() of a program with
a timeout, and readings from /proc.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .paths import LOOPBACK

# --------------------------------------------------------------------------- spawn and reap

_live_lock = threading.Lock()
_live: set = set()  # Popen objects still to be reaped

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # In the child between fork and exec: SIGKILL when the spawning thread goes away,
    # however it goes away. (Cleared by a change of user: run after Popen's user=.)
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv, *, log=None, die_with_parent: bool = False, **kw) -> subprocess.Popen:
    """Starts argv in its own session. log: a path its stdout and stderr are appended
    to (else kw says where they go; stdin is /dev/null unless kw says otherwise).
    die_with_parent: SIGKILL it when the spawning thread dies (use it from the main
    thread of a single-threaded program only: preexec_fn)."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    if die_with_parent:
        kw["preexec_fn"] = _die_with_parent
    out = open(log, "ab") if log is not None else None
    try:
        if out is not None:
            kw.update(stdout=out, stderr=subprocess.STDOUT)
        proc = subprocess.Popen([str(a) for a in argv], start_new_session=True, **kw)
    finally:
        if out is not None:
            out.close()  # the child has its own descriptor
    with _live_lock:
        _live.add(proc)
    return proc


def kill_group(proc: subprocess.Popen, sig=signal.SIGKILL) -> None:
    """Sends sig to the child's process group; nothing when it is gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def forget(proc: subprocess.Popen) -> None:
    """Drops a child that its caller reaped itself from the atexit list."""
    with _live_lock:
        _live.discard(proc)


def finish(proc: subprocess.Popen) -> int:
    """SIGKILLs what is left of the child's group, waits, forgets it; returns its rc."""
    kill_group(proc, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait()
    forget(proc)
    return proc.returncode


def reap(proc: subprocess.Popen, grace: float = 5.0, sig=signal.SIGTERM) -> int:
    """sig (SIGTERM) to the group, up to `grace` s to exit, then SIGKILL. Returns the rc."""
    if proc.poll() is None:
        kill_group(proc, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    return finish(proc)


@atexit.register
def kill_leftovers() -> None:
    """SIGKILLs every child not reaped yet (a crashed test's, or on Ctrl-C)."""
    with _live_lock:
        procs = list(_live)
    for p in procs:
        kill_group(p, signal.SIGKILL)
        with contextlib.suppress(Exception):
            p.wait(2)
        forget(p)


class Child:
    """A program run as a child, its stdout and stderr appended to a log file: by
    default <its own temp dir>/<kind>.log, removed by cleanup(); dir: a directory of the
    caller's instead (kept); log_path: the log file (then no dir is made).

    start() (a subclass's) calls spawn_child(argv); stop() ends the process and keeps
    the dir, so that start() can run it again; cleanup() (the with-block) removes it."""

    kind = "child"  # names the temp dir (mailroom-<kind>-) and the log (<kind>.log)

    def __init__(self, *, dir=None, log_path=None, die_with_parent: bool = False):
        self.dir = str(dir) if dir is not None else None
        self._own_dir = dir is None and log_path is None
        self.log_path = str(log_path) if log_path is not None else None
        self.die_with_parent = die_with_parent
        self.proc = None
        self.returncode = None
        self.timed_out = False

    def make_dir(self) -> str:
        """The child's directory, made now when it does not exist yet."""
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix=f"mailroom-{self.kind}-")
        os.makedirs(self.dir, exist_ok=True)
        return self.dir

    def spawn_child(self, argv, **kw) -> subprocess.Popen:
        if self.log_path is None:
            self.log_path = os.path.join(self.make_dir(), f"{self.kind}.log")
        self.returncode = None
        self.timed_out = False
        self.proc = spawn(argv, log=self.log_path, die_with_parent=self.die_with_parent, **kw)
        return self.proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """Everything the child wrote so far ("" before it started)."""
        try:
            return Path(self.log_path).read_text(encoding="utf-8", errors="replace")
        except (OSError, TypeError):
            return ""

    def log_tail(self, n: int = 2000) -> str:
        return self.log()[-n:]

    def send_signal(self, sig) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 5.0, sig=signal.SIGTERM):
        """sig (SIGTERM) to the child, up to timeout s to exit, then SIGKILL to its
        group. Returns the exit code (negative: killed by a signal); sets timed_out
        when the kill was needed. The dir and the log stay."""
        self.timed_out = False
        if self.proc is None or self.returncode is not None:
            return self.returncode
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.timed_out = True
        self.returncode = finish(self.proc)
        return self.returncode

    def kill(self) -> int:
        """SIGKILL to the group (a crash: no shutdown code runs). Returns the exit code."""
        if self.proc is None:
            return self.returncode
        self.returncode = finish(self.proc)
        return self.returncode

    def cleanup(self) -> None:
        """Stops the child (SIGTERM, 5 s) and removes its own dir."""
        self.stop(timeout=5)
        if self._own_dir and self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        self.cleanup()


# --------------------------------------------------------------------------- waiting


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


def wait_started(child: Child, probe, what: str, timeout: float) -> None:
    """Waits until probe() is truthy; raises RuntimeError with the log's tail when the
    child exits first."""
    def up():
        if child.proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {child.proc.returncode}:\n{child.log_tail()}")
        return probe()
    wait_for(up, timeout, 0.02, what)


# --------------------------------------------------------------------------- ports


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


# --------------------------------------------------------------------------- programs


def run(argv, *, env=None, timeout: float = 30.0, input: bytes | None = None,
        name: str | None = None):
    """Runs a program to its end; returns (rc, stdout, stderr) as str (UTF-8). Raises
    AssertionError when it still runs after timeout seconds (name: how to call it)."""
    argv = [str(a) for a in argv]
    try:
        cp = subprocess.run(argv, env=env, input=input, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        what = name or repr(argv)
        raise AssertionError(f"{what} still running after {timeout}s") from e
    return (cp.returncode, cp.stdout.decode("utf-8", "replace"),
            cp.stderr.decode("utf-8", "replace"))


# --------------------------------------------------------------------------- /proc

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all threads), in seconds; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_status_kb(pid: int, field: str) -> int:
    """A kB field of /proc/<pid>/status (VmRSS, VmHWM); 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_text(pid: int, what: str) -> str:
    """/proc/<pid>/<what> (cmdline, environ) with NULs as spaces; "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/{what}").read_bytes().replace(b"\0", b" ").decode(
            "utf-8", "replace")
    except OSError:
        return ""
