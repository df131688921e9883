"""The mailroom programs as a test runs them: Consumer (a mailroom-consumer process, its
output in a log file, optionally under a wrapper such as valgrind), run_cli() (one
`mailroom` command to its end), and mailroom_env(), the environment both get: the
caller's without any MAILROOM_* variable, plus the ones the test names."""

from __future__ import annotations

import os
import re
import signal

from .paths import CLI, CONSUMER
from .procs import Child, run


def mailroom_env(redis_server=None, *, secret: str | None = None, keys_file=None,
                 queue: str | None = None, smtp=None, redis_url: str | None = None,
                 **extra) -> dict:
    """The environment for the binaries: the caller's environment without any
    MAILROOM_* variable, plus the ones given here. smtp: a server with .url, or a URL;
    extra: further variables (MAILROOM_SMTP_TLS="none", ...)."""
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


def run_cli(*args, env: dict, timeout: float = 15.0, input: bytes | None = None):
    """Runs `mailroom ARGS` and returns (rc, stdout, stderr) as str (UTF-8)."""
    return run([CLI, *args], env=env, timeout=timeout, input=input,
               name=f"mailroom {' '.join(map(str, args))!r}")


class Consumer(Child):
    """A mailroom-consumer child started with args, its stdout and stderr in a log
    file (its own temp dir, or log_path=). wrap: a command line it runs under
    (valgrind, ...); binary: another build's mailroom-consumer."""

    kind = "consumer"

    def __init__(self, env: dict, *args: str, wrap=(), binary=None, log_path=None,
                 die_with_parent: bool = False):
        super().__init__(log_path=log_path, die_with_parent=die_with_parent)
        self.env = env
        self.args = [str(a) for a in args]
        self.wrap = [str(a) for a in wrap]
        self.binary = binary or CONSUMER

    def start(self) -> "Consumer":
        self.spawn_child([*self.wrap, self.binary, *self.args], env=self.env)
        return self

    def error_lines(self) -> list:
        """Log lines at level error or worse (text or json log format)."""
        out = []
        for line in self.log().splitlines():
            if re.match(r"^\S+\s+(error|fatal|crit\w*)\b", line, re.I) or \
                    re.search(r'"level"\s*:\s*"(error|fatal|crit\w*)"', line, re.I):
                out.append(line)
        return out

    def stop(self, timeout: float = 10.0, sig=signal.SIGTERM):
        """sig (SIGTERM) and up to timeout s to exit, then SIGKILL; returns the exit code
        (negative: killed by a signal); timed_out says whether the kill was needed."""
        return super().stop(timeout, sig)
