"""mailroom-webhook as the tests run it, and the other end of it: Webhook (the
process, its output in a log file) and HookReceiver (an HTTP server on 127.0.0.1 in a
thread of the test, http.server from the standard library, that checks every
delivery's signature with the reference definition tests/tools/webhook_sign.py and
answers what the test tells it to: 500 for the first N, then 204)."""

from __future__ import annotations

import contextlib
import http.server
import json
import sys
import threading
import time
from dataclasses import dataclass, field

from .paths import LOOPBACK, TESTS_DIR, WEBHOOK
from .procs import Child, WaitTimeout, free_port

if str(TESTS_DIR / "tools") not in sys.path:
    sys.path.insert(0, str(TESTS_DIR / "tools"))
import webhook_sign  # noqa: E402


class Webhook(Child):
    """A mailroom-webhook child started with args and env (mailroom_env() plus the
    secret variables), its stdout and stderr in a log file."""

    kind = "webhook"

    def __init__(self, env: dict, *args: str, log_path=None):
        super().__init__(log_path=log_path)
        self.env = env
        self.args = [str(a) for a in args]

    def start(self) -> "Webhook":
        self.spawn_child([WEBHOOK, *self.args], env=self.env)
        return self

    def wait_ready(self, timeout: float = 10.0) -> "Webhook":
        """Waits for its "ready" line (configuration accepted)."""
        deadline = time.monotonic() + timeout
        while " ready: " not in self.log():
            if not self.alive():
                raise RuntimeError(f"mailroom-webhook exited {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            if time.monotonic() > deadline:
                raise WaitTimeout(f"mailroom-webhook not ready:\n{self.log_tail()}")
            time.sleep(0.02)
        return self


@dataclass
class Delivery:
    """One request the receiver got."""
    headers: dict
    body: bytes
    why: str            # "" when the signature and the timestamp verified
    status: int         # what the receiver answered
    at: float = field(default_factory=time.monotonic)

    @property
    def event(self) -> dict:
        return json.loads(self.body)

    @property
    def delivery_id(self) -> str:
        return self.headers.get("X-Mailroom-Delivery", "")


class HookReceiver:
    """An HTTP server on 127.0.0.1:<free port> (or port=) receiving deliveries.
    fail_first: answer the first N requests with 500 (and a short body); then 204.
    Requests whose signature does not verify under secret get 401. .deliveries lists
    every request in arrival order."""

    def __init__(self, secret: str, *, fail_first: int = 0, port: int | None = None,
                 path: str = "/hook"):
        self.secret = secret.encode()
        self.fail_first = fail_first
        self.port = port or free_port()
        self.path = path
        self._cond = threading.Condition()
        self._deliveries = []
        self._server = None
        self._thread = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self.path}"

    def _handle(self, handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        headers = {k: v for k, v in handler.headers.items()}
        why = webhook_sign.verify(self.secret, headers.get("X-Mailroom-Timestamp"),
                                  headers.get("X-Mailroom-Signature"), body, int(time.time()))
        with self._cond:
            failing = len(self._deliveries) < self.fail_first
            status = 401 if why else 500 if failing else 204
            self._deliveries.append(Delivery(headers, body, why, status))
            self._cond.notify_all()
        answer = b"not now" if status == 500 else b""
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)

    def start(self) -> "HookReceiver":
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the webhook's curl expects

            def do_POST(self):
                receiver._handle(self)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="hook-receiver")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def deliveries(self) -> list:
        with self._cond:
            return list(self._deliveries)

    def wait_for(self, predicate, timeout: float = 15.0, what: str = "deliveries") -> list:
        """Waits until predicate(deliveries) is true; returns the deliveries."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._deliveries):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}; got "
                                      f"{[(d.status, d.delivery_id) for d in self._deliveries]}")
                self._cond.wait(left)
            return list(self._deliveries)

    def __enter__(self) -> "HookReceiver":
        return self.start()

    def __exit__(self, *exc):
        with contextlib.suppress(Exception):
            self.stop()
