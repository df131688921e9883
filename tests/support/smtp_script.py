"""ScriptedSmtp: a small SMTP server on 127.0.0.1:<free port> whose timing the test
drives, for what real servers will not do on demand: hold back the 354 to DATA, or the
final reply after the content, for a while or for ever, connection by connection.

It speaks enough SMTP for mailroom's engine (EHLO with PIPELINING, MAIL, RCPT, DATA,
RSET, NOOP, QUIT), reads pipelined commands in order, and records every message it
accepted (its Message-ID) and every connection. A hook decides, per connection number
(1, 2, ...) and per message on it, how long to wait before the 354 and before the
final 250: `delay_354(conn, n)` and `delay_250(conn, n)` return seconds, or None for
never (the server then keeps the connection open without answering until the client
goes away or the server stops). hang_quit: never answer QUIT.
"""

from __future__ import annotations

import re
import socket
import socketserver
import threading
import time

from .procs import free_port

LOOPBACK = "127.0.0.1"


class _Handler(socketserver.StreamRequestHandler):
    timeout = 60

    def setup(self):
        super().setup()
        srv = self.server.owner
        with srv.lock:
            srv.connections += 1
            self.conn_no = srv.connections
        self.n_msg = 0

    def reply(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())
        self.wfile.flush()

    def wait(self, seconds) -> bool:
        """Sleeps seconds (None: until the server stops); False when stopping."""
        srv = self.server.owner
        end = None if seconds is None else time.monotonic() + seconds
        while not srv.stopping.is_set():
            if end is not None and time.monotonic() >= end:
                return True
            srv.stopping.wait(0.05)
        return False

    def content(self) -> bytes | None:
        lines = []
        while True:
            line = self.rfile.readline()
            if not line:
                return None
            if line in (b".\r\n", b".\n"):
                return b"".join(lines)
            lines.append(line[1:] if line.startswith(b"..") else line)

    def data(self) -> bool:
        srv = self.server.owner
        self.n_msg += 1
        if not self.wait(srv.delay_354(self.conn_no, self.n_msg)):
            return False
        self.reply("354 go ahead")
        body = self.content()
        if body is None:
            return False
        if not self.wait(srv.delay_250(self.conn_no, self.n_msg)):
            return False
        m = re.search(rb"(?im)^Message-ID:\s*<([^@>]+)@", body)
        with srv.lock:
            srv.accepted.append((self.conn_no, m.group(1).decode() if m else None))
            n = len(srv.accepted)
        self.reply(f"250 2.0.0 Ok: queued as SC{n:05d}")
        return True

    def handle(self):
        srv = self.server.owner
        self.reply("220 scripted ESMTP")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line.decode("latin-1").strip().split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250-scripted\r\n250-PIPELINING\r\n250 8BITMIME")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                self.reply("250 2.1.0 Ok")
            elif verb == "DATA":
                if not self.data():
                    return
            elif verb == "QUIT":
                if srv.hang_quit:
                    self.wait(None)
                    return
                self.reply("221 bye")
                return
            else:
                self.reply("502 5.5.2 not implemented")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class ScriptedSmtp:
    """The server; use as a context manager. .accepted: [(connection, job id)]."""

    def __init__(self, delay_354=None, delay_250=None, hang_quit: bool = False):
        self.delay_354 = delay_354 or (lambda conn, n: 0)
        self.delay_250 = delay_250 or (lambda conn, n: 0)
        self.hang_quit = hang_quit
        self.lock = threading.Lock()
        self.connections = 0
        self.accepted = []
        self.stopping = threading.Event()
        self.port = free_port()
        self.srv = _Server((LOOPBACK, self.port), _Handler)
        self.srv.owner = self
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"smtp://{LOOPBACK}:{self.port}"

    def __enter__(self) -> "ScriptedSmtp":
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.srv.shutdown()
        self.srv.server_close()
        with socket.socket() as s:  # wake a handler blocked in accept, if any
            s.settimeout(0.2)
            try:
                s.connect((LOOPBACK, self.port))
            except OSError:
                pass

    def ids(self) -> list:
        with self.lock:
            return [job for _, job in self.accepted]
