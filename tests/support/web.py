"""mailroom-web as a test runs it: Web (the dashboard process on a free 127.0.0.1 port,
its log in its own temp dir, a token file of its own, 0600), and http(), one plain
HTTP request to it with urllib (the refusals are checked this way, without a browser,
so that every header is exactly what the test says)."""

from __future__ import annotations

import os
import secrets
import urllib.error
import urllib.request

from .paths import BIN_DIR, LOOPBACK
from .procs import Child, free_port, port_accepts, wait_started

WEB = BIN_DIR / "mailroom-web"


class Web(Child):
    """mailroom-web with env (mailroom_env()) and extra args, on 127.0.0.1:<free port>.
    token=True writes a random token to a 0600 file and passes --token-file."""

    kind = "web"

    def __init__(self, env: dict, *args: str, token: bool = True, startup_timeout: float = 10.0):
        super().__init__()
        self.env = env
        self.args = [str(a) for a in args]
        self.port = free_port()
        self.token = secrets.token_urlsafe(24) if token else None
        self.startup_timeout = startup_timeout

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    def start(self) -> "Web":
        argv = [WEB, "--listen", f"{LOOPBACK}:{self.port}", *self.args]
        if self.token:
            path = os.path.join(self.make_dir(), "token")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.token + "\n")
            argv += ["--token-file", path]
        self.spawn_child(argv, env=self.env)
        wait_started(self, lambda: port_accepts(self.port), "mailroom-web to listen",
                     self.startup_timeout)
        return self

    def http(self, path: str, *, method: str = "GET", body: bytes | None = None,
             headers: dict | None = None, timeout: float = 10.0):
        """One request; returns (status, headers, body bytes), errors included."""
        req = urllib.request.Request(self.url.rstrip("/") + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()
