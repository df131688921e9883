"""mailroom-web as a test runs it: Web (the dashboard process on a free 127.0.0.1 port,
its log in its own temp dir, a token file of its own, 0600) and its http(), one plain
HTTP request with urllib (the refusals are checked this way, without a browser, so that
every header is exactly what the test says). Also what the dashboard shows besides the
queues: Program (any other mailroom program run until the test ends, e.g.
mailroom-webhook) and Application (an HTTP endpoint on 127.0.0.1 that records the
status it answered to each POST, failing the first ones on request)."""

from __future__ import annotations

import http.server
import os
import secrets
import threading
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


class Program(Child):
    """A program (argv) run with env until the test ends; its log in its own temp dir."""

    def __init__(self, env: dict, *argv, kind: str = "program"):
        super().__init__()
        self.kind = kind
        self.env = env
        self.argv = [str(a) for a in argv]

    def start(self) -> "Program":
        self.spawn_child(self.argv, env=self.env)
        return self


class _AppHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        app = self.server.app
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with app.lock:
            status = 500 if len(app.statuses) < app.fail_first else 200
            app.statuses.append(status)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Application:
    """An application's endpoint on 127.0.0.1:<free port>/hook, in a thread: answers 500
    to the first fail_first POSTs, then 200; .statuses lists what it answered."""

    def __init__(self, fail_first: int = 0):
        self.fail_first = fail_first
        self.statuses = []
        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer((LOOPBACK, 0), _AppHandler)
        self.server.app = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_address[1]}/hook"

    def __enter__(self) -> "Application":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
