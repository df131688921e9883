"""Postfix's smtp-sink as a test's SMTP server on 127.0.0.1:<free port>: fast, and able
to fail on purpose (its flags: "-f data" 5xx, "-r rcpt" 4xx, "-q data" disconnect,
"-Q mail" 421 and disconnect, "-w 1" a slow DATA). restart() runs it again on the same
port with other flags; dump=True keeps every accepted message as a file, counters=True
lets count() tell how many it accepted.

As root it runs as nobody (smtp-sink refuses root): started as that user (Popen's
user=), not through its own -u, which would clear a parent-death signal."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from .paths import LOOPBACK
from .procs import Child, free_port, port_accepts, proc_cpu_s, wait_started


class SmtpSink(Child):
    """smtp-sink on 127.0.0.1:<free port> with extra_args (its flags).

    dump:     every message it accepts goes to <dir>/dump/m.<random> (complete and
              closed before it answers 250 to the final dot; the file of an aborted
              transaction is unlinked)
    counters: -c: running counters in the log, read by count()
    backlog:  the listen backlog (smtp-sink's last argument)"""

    kind = "sink"

    def __init__(self, *extra_args: str, dump: bool = False, counters: bool = False,
                 backlog: int = 64, startup_timeout: float = 10.0, dir=None,
                 die_with_parent: bool = False):
        super().__init__(dir=dir, die_with_parent=die_with_parent)
        self.port = free_port()
        self.host = LOOPBACK
        self.extra = list(extra_args)
        self.dump = dump
        self.counters = counters
        self.backlog = backlog
        self.startup_timeout = startup_timeout
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def dump_dir(self) -> Path:
        return Path(self.make_dir()) / "dump"

    def argv(self) -> list:
        argv = [shutil.which("smtp-sink") or "/usr/sbin/smtp-sink", *self.extra]
        if self.dump:
            argv += ["-d", f"{self.dump_dir}/m."]
        if self.counters:
            argv.append("-c")
        return argv + [f"{self.host}:{self.port}", str(self.backlog)]

    def start(self) -> "SmtpSink":
        kw = {}
        d = self.make_dir()
        if self.dump:
            self.dump_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:  # it runs as nobody: let it into its dir and write dumps
            kw = {"user": "nobody", "group": "nogroup", "extra_groups": []}
            os.chmod(d, 0o755)
            if self.dump:
                os.chmod(self.dump_dir, 0o777)
        self.spawn_child(self.argv(), cwd=d, **kw)
        try:
            wait_started(self, lambda: port_accepts(self.port),
                         "smtp-sink to accept connections", self.startup_timeout)
        except BaseException:
            self.stop(timeout=2)
            raise
        return self

    def restart(self, *extra_args: str) -> "SmtpSink":
        """Stops it and starts it on the same port with extra_args as its flags."""
        self.stop()
        self.extra = list(extra_args)
        self.restarts += 1
        return self.start()

    def dumps(self) -> list:
        """The message files it wrote (dump=True)."""
        return sorted(self.dump_dir.iterdir()) if self.dump_dir.is_dir() else []

    def count(self) -> int:
        """Messages accepted so far (counters=True: the last "mesg=N" in its log)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 200))
                tail = f.read().decode("ascii", "replace")
        except (OSError, TypeError):
            return 0
        m = re.findall(r"mesg=(\d+)", tail)
        return int(m[-1]) if m else 0

    def cpu_s(self) -> float:
        """CPU seconds it used so far."""
        return proc_cpu_s(self.proc.pid)
