#!/usr/bin/python3
"""Integration tests of the SMTP engine (consumer/smtp/, docs/smtp.md) through its
driver, tests/tools/smtp_send.c, against real servers on free loopback ports that each
test starts and stops:

- Postfix's smtp-sink with PIPELINING: 50 messages over one warm connection, with the
  client's round trips counted on the wire by a recording proxy (a round trip is a
  burst of client bytes sent after the server spoke: what the client waits for); the
  same without PIPELINING; connections recycled after --max-per-connection.
- aiosmtpd: one recipient of three refused (5xx, then 4xx), every recipient refused,
  STARTTLS with a private CA and AUTH (also a wrong host, a self-signed certificate,
  --insecure, a wrong password), implicit TLS, SIZE, SMTPUTF8.
- raw socket servers: one that never answers after the content (timeout, outcome
  unknown, the next message on a new connection), one that drops, one that closes an
  idle connection, a hurried shutdown (SIGTERM sets the abort flag), and hostile ones:
  over-long lines, endless lines, bad continuations, replies before commands, a 354 at
  the wrong time, more replies than commands, 257-line replies, garbage, a 421 in the
  middle, data injected after STARTTLS's 220, NUL bytes in a reply. Each ends with one
  clear verdict and never a crash; with valgrind installed a handful also run under it.

The driver is $MAILROOM_SMTP_SEND, else <build>/tests/smtp_send where <build>/bin is
$MAILROOM_BIN_DIR (default <repo>/build/bin). Run with Debian's
/usr/bin/python3 (python3-aiosmtpd); smtp-sink comes with the postfix package.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/

from support.paths import BIN_DIR, LOOPBACK  # noqa: E402
from support.pki import make_pki  # noqa: E402
from support.procs import free_port, wait_for  # noqa: E402
from support.smtp_receiver import SmtpServer, TlsSmtpServer  # noqa: E402
from support.smtp_sink import SmtpSink  # noqa: E402

# the build puts the driver next to the unit tests: <build>/tests, beside <build>/bin
SEND = os.environ.get("MAILROOM_SMTP_SEND") or str(BIN_DIR.parent / "tests" / "smtp_send")
HAVE_SINK = bool(shutil.which("smtp-sink") or os.path.exists("/usr/sbin/smtp-sink"))
HAVE_VALGRIND = bool(shutil.which("valgrind"))
# valgrind cannot run a driver built with AddressSanitizer (MAILROOM_SANITIZE)
SEND_HAS_ASAN = os.path.exists(SEND) and b"__asan_init" in Path(SEND).read_bytes()
PASSWORD = "s3cret-Pa55word"


def send(url: str, *args: str, env: dict | None = None, timeout: float = 60.0,
         valgrind: bool = False):
    """Runs the driver; returns (one dict per message, stderr, exit status)."""
    e = {k: v for k, v in os.environ.items() if k not in ("SMTP_URL", "SMTP_PASSWORD_FILE")}
    e.update(env or {})
    argv = [SEND, "--url", url, "--ehlo", "client.test", *args]
    if valgrind:
        argv = ["valgrind", "-q", "--leak-check=full", "--errors-for-leak-kinds=definite",
                "--error-exitcode=99", *argv]
    cp = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                        timeout=timeout)
    out = cp.stdout.decode("utf-8", "replace")
    return [json.loads(line) for line in out.splitlines() if line.strip()], \
        cp.stderr.decode("utf-8", "replace"), cp.returncode


# --------------------------------------------------------------------------- the proxy


class CountingProxy:
    """A TCP relay from 127.0.0.1:<free port> to upstream that counts connections and,
    over all of them, the client's bursts: bytes the client sends after the server has
    sent something (or first on a connection). Each burst is one round trip the client
    waited for, however TCP cut or merged its writes."""

    def __init__(self, upstream_port: int):
        self.upstream = upstream_port
        self.port = free_port()
        self.connections = 0
        self.bursts = 0
        self.client_reads = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server((LOOPBACK, self.port))
        self._stop = False
        self._threads = []

    @property
    def url(self) -> str:
        return f"smtp://{LOOPBACK}:{self.port}"

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection((LOOPBACK, self.upstream))
        last_from_client = False
        with client, upstream:
            while not self._stop:
                ready, _, _ = select.select([client, upstream], [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        with self._lock:
                            self.client_reads += 1
                            self.bursts += 0 if last_from_client else 1
                        last_from_client = True
                        upstream.sendall(data)
                    else:
                        last_from_client = False
                        client.sendall(data)

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            with self._lock:
                self.connections += 1
            t = threading.Thread(target=self._relay, args=(client,), daemon=True)
            t.start()
            self._threads.append(t)

    def __enter__(self) -> "CountingProxy":
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc):
        self._stop = True
        for t in self._threads:
            t.join(2)
        self._listener.close()


# --------------------------------------------------------------------------- raw servers


class Conn:
    """One accepted connection of a ScriptServer, with a receive buffer."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""
        self.received = b""

    def send(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(data)

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except OSError:
            return False
        self.received += data
        self.buf += data
        return bool(data)

    def line(self) -> bytes | None:
        """The next line without CRLF; None at EOF."""
        while b"\r\n" not in self.buf:
            if not self._fill():
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def content(self) -> bytes | None:
        """The message content after a 354, up to and without the final dot."""
        while True:
            if self.buf.startswith(b".\r\n"):
                self.buf = self.buf[3:]
                return b""
            at = self.buf.find(b"\r\n.\r\n")
            if at >= 0:
                body, self.buf = self.buf[:at + 2], self.buf[at + 5:]
                return body
            if not self._fill():
                return None

    def wait_closed(self, timeout: float = 30.0) -> None:
        """Reads until the client closes (or timeout)."""
        self.sock.settimeout(timeout)
        while self._fill():
            pass


class ScriptServer:
    """A TCP server on 127.0.0.1:<free port> (host="::1": IPv6) that runs script(conn,
    n) for its n-th connection (from 0) in a thread of its own."""

    def __init__(self, script, host: str = LOOPBACK):
        self.script = script
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, 0), family=family)
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self.conns = []
        self._stop = False
        self._threads = []

    @property
    def url(self) -> str:
        return f"smtp://[{self.host}]:{self.port}" if ":" in self.host else \
            f"smtp://{self.host}:{self.port}"

    def _run(self, conn: Conn, n: int) -> None:
        with conn.sock:
            with contextlib.suppress(OSError):
                self.script(conn, n)

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop:
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            conn = Conn(sock)
            self.conns.append(conn)
            t = threading.Thread(target=self._run, args=(conn, self.connections), daemon=True)
            self.connections += 1
            t.start()
            self._threads.append(t)

    def __enter__(self) -> "ScriptServer":
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc):
        self._stop = True
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.sock.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            t.join(2)
        self._listener.close()


EHLO_PIPELINING = b"250-raw.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"


def serve(conn: Conn, *, ehlo: bytes = EHLO_PIPELINING, on=None, final=None) -> None:
    """A small correct server: greeting, then each command answered; on(cmd, line) may
    return the bytes to answer instead (or False: hang up; b"": answer nothing and wait
    for the client to close). final(n) answers the n-th message's content."""
    conn.send(b"220 raw.test ESMTP\r\n")
    n = 0
    while True:
        line = conn.line()
        if line is None:
            return
        cmd = line[:4].upper()
        custom = on(cmd, line) if on else None
        if custom is False:
            return
        if custom == b"":
            conn.wait_closed()
            return
        if custom is not None:
            conn.send(custom)
        elif cmd == b"EHLO":
            conn.send(ehlo)
        elif cmd in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
            conn.send(b"250 2.0.0 Ok\r\n")
        elif cmd == b"DATA":
            conn.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            if conn.content() is None:
                return
            conn.send(final(n) if final else b"250 2.0.0 Ok: queued as RAW%d\r\n" % n)
            n += 1
        elif cmd == b"QUIT":
            conn.send(b"221 2.0.0 Bye\r\n")
            return
        else:
            conn.send(b"502 5.5.2 what?\r\n")


# --------------------------------------------------------------------------- aiosmtpd


class _RefusingHandler:
    def __init__(self, server: "RefusingServer"):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.server.refuse.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        with self.server.cond:
            self.server.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                         bytes(envelope.original_content or b""),
                                         list(envelope.mail_options)))
            n = len(self.server.messages)
        return f"250 2.0.0 Ok: queued as AIO{n}"


class RefusingServer(SmtpServer):
    """aiosmtpd (no PIPELINING: one command at a time) that answers the RCPT of an
    address in refuse with its reply, and records each message (sender, recipients,
    content, MAIL parameters)."""

    def __init__(self, refuse: dict | None = None, **kw):
        self.refuse = dict(refuse or {})
        self.messages = []
        self.cond = threading.Condition()
        super().__init__(_RefusingHandler(self), **kw)


# --------------------------------------------------------------------------- the tests


@unittest.skipUnless(os.access(SEND, os.X_OK), f"{SEND} is not built")
class PipeliningTest(unittest.TestCase):
    """smtp-sink, through the counting proxy."""

    @unittest.skipUnless(HAVE_SINK, "smtp-sink (postfix) is not installed")
    def test_round_trips_per_message(self):
        n = 50
        with SmtpSink() as sink, CountingProxy(sink.port) as proxy:
            results, err, rc = send(proxy.url, "--count", str(n), "--rcpt", "a@x.test",
                                    "--rcpt", "b@x.test", "--body-size", "2000")
        self.assertEqual(rc, 0, err)
        self.assertEqual([r["verdict"] for r in results], ["sent"] * n)
        self.assertTrue(all(r["accepted"] == 2 for r in results))
        self.assertEqual(proxy.connections, 1)
        per_message = proxy.bursts / n
        print(f"\n  smtp-sink, PIPELINING, {n} messages, 2 recipients: {proxy.bursts} client "
              f"bursts ({per_message:.2f} per message), {proxy.client_reads} proxy reads",
              file=sys.stderr)
        self.assertLessEqual(per_message, 1.1)

    @unittest.skipUnless(HAVE_SINK, "smtp-sink (postfix) is not installed")
    def test_without_pipelining(self):
        n = 10
        with SmtpSink("-p") as sink, CountingProxy(sink.port) as proxy:
            results, err, rc = send(proxy.url, "--count", str(n), "--rcpt", "a@x.test",
                                    "--rcpt", "b@x.test")
        self.assertEqual(rc, 0, err)
        self.assertEqual([r["verdict"] for r in results], ["sent"] * n)
        print(f"\n  smtp-sink, no PIPELINING, {n} messages, 2 recipients: {proxy.bursts} "
              f"client bursts ({proxy.bursts / n:.2f} per message)", file=sys.stderr)
        self.assertGreaterEqual(proxy.bursts, 5 * n)  # MAIL, RCPT, RCPT, DATA, content

    @unittest.skipUnless(HAVE_SINK, "smtp-sink (postfix) is not installed")
    def test_max_per_connection(self):
        with SmtpSink() as sink, CountingProxy(sink.port) as proxy:
            results, err, rc = send(proxy.url, "--count", "10", "--max-per-connection", "3")
        self.assertEqual(rc, 0, err)
        self.assertEqual([r["verdict"] for r in results], ["sent"] * 10)
        self.assertEqual(proxy.connections, 4)

    @unittest.skipUnless(HAVE_SINK, "smtp-sink (postfix) is not installed")
    def test_sink_refuses_recipients_and_data(self):
        with SmtpSink("-r", "rcpt") as sink:  # every RCPT 4xx
            results, err, rc = send(sink.url, "--count", "2", "--rcpt", "a@x.test")
        self.assertEqual(rc, 0, err)
        self.assertEqual([r["verdict"] for r in results], ["temporary"] * 2)
        self.assertEqual(results[0]["rcpt"][0]["code"], 450)
        self.assertIn("every recipient was refused", results[0]["error"])
        with SmtpSink("-f", ".") as sink:  # the content refused, 5xx
            results, err, rc = send(sink.url, "--count", "3")
        self.assertEqual([r["verdict"] for r in results], ["permanent"] * 3)
        self.assertEqual(results[2]["code"], 500)


@unittest.skipUnless(os.access(SEND, os.X_OK), f"{SEND} is not built")
class RecipientsTest(unittest.TestCase):
    """aiosmtpd refusing some recipients."""

    def test_one_of_three_refused(self):
        with RefusingServer({"b@x.test": "550 5.1.1 <b@x.test>: Recipient address rejected"}) \
                as rx:
            results, err, rc = send(rx.url, "--rcpt", "a@x.test", "--rcpt", "b@x.test",
                                    "--rcpt", "c@x.test")
        self.assertEqual(rc, 0, err)
        r = results[0]
        self.assertEqual(r["verdict"], "sent")
        self.assertEqual(r["accepted"], 2)
        self.assertEqual([x["code"] for x in r["rcpt"]], [250, 550, 250])
        self.assertEqual(r["rcpt"][1]["text"], "550 5.1.1 <b@x.test>: Recipient address rejected")
        self.assertEqual(r["rcpt"][1]["enhanced"], "5.1.1")
        self.assertRegex(r["relay_id"], r"^AIO\d+$")
        self.assertEqual(len(rx.messages), 1)
        self.assertEqual(rx.messages[0][1], ["a@x.test", "c@x.test"])

    def test_4xx_on_one_recipient(self):
        with RefusingServer({"b@x.test": "450 4.2.1 Mailbox busy, try later"}) as rx:
            results, err, rc = send(rx.url, "--rcpt", "a@x.test", "--rcpt", "b@x.test",
                                    "--rcpt", "c@x.test")
        r = results[0]
        self.assertEqual(r["verdict"], "sent")
        self.assertEqual([x["code"] for x in r["rcpt"]], [250, 450, 250])
        self.assertEqual(rx.messages[0][1], ["a@x.test", "c@x.test"])

    def test_every_recipient_refused(self):
        refuse = {"a@x.test": "550 5.1.1 no a", "b@x.test": "553 5.1.3 bad b"}
        with RefusingServer(refuse) as rx:
            results, err, rc = send(rx.url, "--count", "2", "--rcpt", "a@x.test",
                                    "--rcpt", "b@x.test")
            self.assertEqual([r["verdict"] for r in results], ["permanent"] * 2)
            self.assertEqual(results[0]["code"], 550)
            self.assertEqual(rx.messages, [])
            rx.refuse["b@x.test"] = "452 4.2.2 b is over quota"
            results, err, rc = send(rx.url, "--rcpt", "a@x.test", "--rcpt", "b@x.test")
        self.assertEqual(results[0]["verdict"], "temporary")
        self.assertEqual(results[0]["code"], 452)

    def test_size_and_smtputf8(self):
        with RefusingServer(data_size_limit=5000, enable_SMTPUTF8=False) as rx:
            results, err, rc = send(rx.url, "--count", "2", "--body-size", "8000")
            self.assertEqual([r["verdict"] for r in results], ["permanent"] * 2)
            self.assertIn("exceeds the server's limit 5000", results[0]["error"])
            results, err, rc = send(rx.url, "--body-size", "1000")
            self.assertEqual(results[0]["verdict"], "sent")
            self.assertTrue(any(o.startswith("SIZE=") for o in rx.messages[0][3]))
            results, err, rc = send(rx.url, "--rcpt", "王小明@x.test")
            self.assertEqual(results[0]["verdict"], "permanent")
            self.assertIn("SMTPUTF8", results[0]["error"])
        with RefusingServer(enable_SMTPUTF8=True) as rx:
            results, err, rc = send(rx.url, "--rcpt", "王小明@x.test")
            self.assertEqual(results[0]["verdict"], "sent", results)
            self.assertIn("SMTPUTF8", rx.messages[0][3])
            self.assertEqual(rx.messages[0][1], ["王小明@x.test"])


@unittest.skipUnless(os.access(SEND, os.X_OK), f"{SEND} is not built")
class TlsTest(unittest.TestCase):
    """STARTTLS and implicit TLS with a private CA, AUTH, certificate checks."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="mailroom-smtp-tls-")
        cls.pki = make_pki(cls.dir)
        cls.pw_file = os.path.join(cls.dir, "password")
        Path(cls.pw_file).write_text(PASSWORD + "\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def tls_send(self, url, *args, ca=True, password_file=None):
        extra = ["--tls-required"] + (["--ca-file", self.pki.ca] if ca else [])
        env = {"SMTP_PASSWORD_FILE": password_file} if password_file else None
        return send(url, *extra, *args, env=env)

    def test_starttls_private_ca_and_auth(self):
        with TlsSmtpServer(self.pki.server_cert, self.pki.server_key,
                           users={"mailer": PASSWORD}) as srv:
            for host in ("127.0.0.1", "localhost"):
                results, err, rc = self.tls_send(f"smtp://{host}:{srv.port}", "--user",
                                                 "mailer", "--count", "2",
                                                 password_file=self.pw_file)
                self.assertEqual(rc, 0, err)
                self.assertEqual([r["verdict"] for r in results], ["sent"] * 2, results)
                for form in (PASSWORD, "czNjcmV0"):
                    self.assertNotIn(form, json.dumps(results) + err)
            msgs = srv.wait_for_count(4)
            self.assertTrue(all(m.tls and m.authenticated and m.login == "mailer" for m in msgs))
            self.assertTrue(all(m.tls_version in ("TLSv1.2", "TLSv1.3") for m in msgs))
            self.assertTrue(all(ok and tls for _, ok, tls in srv.auth_attempts))

    def test_wrong_password(self):
        bad = os.path.join(self.dir, "bad-password")
        Path(bad).write_text("not-it\n")
        with TlsSmtpServer(self.pki.server_cert, self.pki.server_key,
                           users={"mailer": PASSWORD}) as srv:
            results, err, rc = self.tls_send(srv.url, "--user", "mailer", password_file=bad)
        r = results[0]
        self.assertEqual(r["verdict"], "temporary")
        self.assertEqual(r["flags"], ["auth"])
        self.assertEqual(r["code"], 535)
        self.assertNotIn("not-it", json.dumps(results) + err)

    def test_certificate_checks(self):
        cases = [  # (cert, key, ca?, insecure?, expected verdict)
            (self.pki.wrong_host_cert, self.pki.wrong_host_key, True, False, "temporary"),
            (self.pki.self_signed_cert, self.pki.self_signed_key, False, False, "temporary"),
            (self.pki.server_cert, self.pki.server_key, False, False, "temporary"),
            (self.pki.wrong_host_cert, self.pki.wrong_host_key, True, True, "sent"),
            (self.pki.self_signed_cert, self.pki.self_signed_key, False, True, "sent"),
        ]
        for cert, key, ca, insecure, verdict in cases:
            with self.subTest(cert=os.path.basename(cert), insecure=insecure), \
                    TlsSmtpServer(cert, key) as srv:
                args = ["--insecure"] if insecure else []
                results, err, rc = self.tls_send(srv.url, *args, ca=ca)
                self.assertEqual(results[0]["verdict"], verdict, results)
                if verdict == "temporary":
                    self.assertEqual(results[0]["flags"], ["tls"])
                    self.assertIn("certificate verification failed", results[0]["error"])
                    self.assertEqual(srv.messages(), [])

    def test_no_starttls_offered(self):
        with RefusingServer() as rx:
            results, err, rc = self.tls_send(rx.url)
        self.assertEqual(results[0]["verdict"], "temporary")
        self.assertEqual(results[0]["flags"], ["tls"])
        self.assertIn("does not offer STARTTLS", results[0]["error"])
        self.assertEqual(rx.messages, [])

    def test_implicit_tls(self):
        with TlsSmtpServer(self.pki.server_cert, self.pki.server_key, implicit=True,
                           users={"mailer": PASSWORD}) as srv:
            results, err, rc = send(f"smtps://localhost:{srv.port}", "--ca-file", self.pki.ca,
                                    "--user", "mailer", "--count", "3",
                                    env={"SMTP_PASSWORD_FILE": self.pw_file})
            self.assertEqual([r["verdict"] for r in results], ["sent"] * 3, results)
            self.assertTrue(all(m.tls and m.authenticated for m in srv.wait_for_count(3)))

    def test_auth_refused_in_clear_to_a_remote_host(self):
        results, err, rc = send("smtp://192.0.2.1:25", "--user", "mailer",
                                env={"SMTP_PASSWORD_FILE": self.pw_file})
        self.assertEqual(rc, 1)
        self.assertIn("AUTH needs TLS", err)


@unittest.skipUnless(os.access(SEND, os.X_OK), f"{SEND} is not built")
class FailureTest(unittest.TestCase):
    """Servers that hang, drop or close."""

    def test_hang_after_content(self):
        def hang(conn, n):
            if n == 0:
                conn.send(b"220 raw.test\r\n")
                while True:
                    line = conn.line()
                    if line is None:
                        return
                    if line.upper().startswith(b"EHLO"):
                        conn.send(EHLO_PIPELINING)
                    elif line.upper() == b"DATA":
                        conn.send(b"250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n354 go\r\n")
                        conn.content()
                        conn.wait_closed()  # silence: no final reply
                        return
            else:
                serve(conn)
        with ScriptServer(hang) as srv:
            t0 = time.monotonic()
            results, err, rc = send(srv.url, "--count", "2", "--gap-ms", "1",
                                    "--timeout-ms", "1000")
            took = time.monotonic() - t0
        self.assertEqual(rc, 0, err)
        first, second = results
        self.assertEqual(first["verdict"], "temporary")
        self.assertEqual(first["flags"], ["timeout"])
        self.assertIn("outcome unknown", first["error"])
        self.assertEqual(first["code"], 0)
        self.assertEqual(second["verdict"], "sent")
        self.assertEqual(srv.connections, 2)  # the timed-out connection was not reused
        self.assertLess(took, 5)

    def test_drop_after_mail_and_after_content(self):
        def drop_mail(conn, n):
            serve(conn, on=lambda cmd, line: False if cmd == b"MAIL" else None)
        with ScriptServer(drop_mail) as srv:
            results, err, rc = send(srv.url)
        self.assertEqual(results[0]["verdict"], "temporary")
        self.assertIn("closed by the server", results[0]["error"])

        def drop_content(conn, n):
            conn.send(b"220 raw.test\r\n")
            while (line := conn.line()) is not None:
                if line.upper().startswith(b"EHLO"):
                    conn.send(EHLO_PIPELINING)
                elif line.upper() == b"DATA":
                    conn.send(b"250 Ok\r\n250 Ok\r\n354 go\r\n")
                    conn.content()
                    return  # closes without a final reply
        with ScriptServer(drop_content) as srv:
            results, err, rc = send(srv.url)
        self.assertEqual(results[0]["verdict"], "temporary")
        self.assertIn("outcome unknown", results[0]["error"])

    def test_idle_connection_closed_by_server(self):
        def script(conn, n):
            def final(i):
                return b"250 2.0.0 Ok: queued as C%dM%d\r\n" % (n, i)
            if n == 0:
                conn.send(b"220 raw.test\r\n")
                conn.line()
                conn.send(EHLO_PIPELINING)
                for _ in range(3):
                    conn.line()
                conn.send(b"250 Ok\r\n250 Ok\r\n354 go\r\n")
                conn.content()
                conn.send(final(0))
                time.sleep(0.1)
                conn.send(b"421 4.4.2 raw.test Error: timeout exceeded\r\n")
                return
            serve(conn, final=final)
        with ScriptServer(script) as srv:
            results, err, rc = send(srv.url, "--count", "3", "--gap-ms", "400")
        self.assertEqual([r["verdict"] for r in results], ["sent"] * 3, results)
        self.assertEqual([r["relay_id"] for r in results], ["C0M0", "C1M0", "C1M1"])
        self.assertEqual(srv.connections, 2)

    def test_idle_limit(self):
        with ScriptServer(lambda conn, n: serve(conn)) as srv:
            results, err, rc = send(srv.url, "--count", "3", "--gap-ms", "300",
                                    "--idle-max-ms", "200")
        self.assertEqual([r["verdict"] for r in results], ["sent"] * 3)
        self.assertEqual(srv.connections, 3)
        self.assertTrue(all(b"QUIT\r\n" in c.received for c in srv.conns))

    def test_sigterm_aborts_within_a_slice(self):
        def hang_on_mail(conn, n):
            serve(conn, on=lambda cmd, line: b"" if cmd == b"MAIL" else None)
        with ScriptServer(hang_on_mail) as srv:
            proc = subprocess.Popen([SEND, "--url", srv.url, "--ehlo", "c.test",
                                     "--timeout-ms", "30000"], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            wait_for(lambda: any(b"MAIL FROM" in c.received for c in srv.conns), 10)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
            took = time.monotonic() - t0
        self.assertEqual(proc.returncode, 0, err)
        result = json.loads(out)
        self.assertEqual(result["verdict"], "aborted")
        self.assertLess(took, 1.0)  # a 100 ms slice, process exit, a loaded machine

    def test_ipv6_literal_and_default_ehlo_name(self):
        try:
            srv = ScriptServer(lambda conn, n: serve(conn), host="::1")
        except OSError:
            self.skipTest("no IPv6 loopback")
        with srv:
            e = {k: v for k, v in os.environ.items() if k != "SMTP_URL"}
            cp = subprocess.run([SEND, "--url", srv.url, "--count", "2"], env=e,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        results = [json.loads(x) for x in cp.stdout.decode().splitlines()]
        self.assertEqual([r["verdict"] for r in results], ["sent"] * 2, cp.stderr)
        ehlo = srv.conns[0].received.split(b"\r\n", 1)[0]
        self.assertTrue(ehlo.startswith(b"EHLO "))
        name = ehlo[5:].decode()
        self.assertTrue("." in name or name == "[IPv6:::1]", name)

    def test_greeting_421_and_helo_fallback(self):
        with ScriptServer(lambda conn, n: conn.send(b"421 4.7.0 raw.test too busy\r\n")) \
                as srv:
            results, err, rc = send(srv.url)
        r = results[0]
        self.assertEqual((r["verdict"], r["code"]), ("temporary", 421))
        self.assertEqual(r["flags"], ["greeting"])

        def old(conn, n):
            serve(conn, on=lambda cmd, line: b"502 5.5.2 no EHLO here\r\n"
                  if cmd == b"EHLO" else None)
        with ScriptServer(old) as srv:
            results, err, rc = send(srv.url, "--count", "2")
        self.assertEqual([r["verdict"] for r in results], ["sent"] * 2)
        self.assertIn(b"HELO client.test\r\n", srv.conns[0].received)


def hostile(kind: str):
    """A server script for one kind of hostile behaviour."""
    def script(conn, n):
        if kind == "long_line":
            conn.send(b"220 " + b"x" * 5000 + b"\r\n")
        elif kind == "endless_line":
            conn.send(b"220 ")
            for _ in range(100):
                conn.send(b"A" * 1000)
        elif kind == "garbage":
            conn.send(b"\x00\xff\xfe garbage \x1b[31m\r\n")
        elif kind == "bad_continuation":
            serve(conn, on=lambda cmd, line: b"250-raw.test\r\n251 PIPELINING\r\n"
                  if cmd == b"EHLO" else None)
        elif kind == "replies_before_commands":
            conn.send(b"220 raw.test\r\n" + EHLO_PIPELINING)
        elif kind == "354_to_mail":
            serve(conn, on=lambda cmd, line: b"354 go\r\n" if cmd == b"MAIL" else None)
        elif kind == "more_replies":
            serve(conn, on=lambda cmd, line: EHLO_PIPELINING + b"250 extra\r\n"
                  if cmd == b"EHLO" else None)
        elif kind == "257_lines":
            serve(conn, on=lambda cmd, line: b"250-x\r\n" * 256 + b"250 x\r\n"
                  if cmd == b"EHLO" else None)
        elif kind == "421_mid_transaction":
            serve(conn, on=lambda cmd, line: b"421 4.3.2 raw.test shutting down\r\n"
                  if line.startswith(b"RCPT TO:<b@") else None)
        elif kind == "starttls_injection":
            serve(conn, ehlo=b"250-raw.test\r\n250 STARTTLS\r\n",
                  on=lambda cmd, line: b"220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n"
                  if cmd == b"STAR" else None)
        elif kind == "nul_in_reply":
            serve(conn, final=lambda i: b"250 2.0.0 Ok\x00 queued as X\x01Y\r\n")
        conn.wait_closed(5)
    return script


@unittest.skipUnless(os.access(SEND, os.X_OK), f"{SEND} is not built")
class HostileServerTest(unittest.TestCase):
    # kind: (verdict, flags, text in the error or the reply)
    CASES = {
        "long_line": ("temporary", ["protocol"], "longer than 4096"),
        "endless_line": ("temporary", ["protocol"], "longer than 4096"),
        "garbage": ("temporary", ["protocol"], "without a valid code"),
        "bad_continuation": ("temporary", ["protocol"], "continuation line"),
        "replies_before_commands": ("temporary", ["protocol"], "before its command"),
        "354_to_mail": ("temporary", ["protocol"], "354 in reply to MAIL FROM"),
        "more_replies": ("temporary", ["protocol"], "nobody asked for"),
        "257_lines": ("temporary", ["protocol"], "more than 256 lines"),
        "421_mid_transaction": ("temporary", ["greeting"], "closes the connection"),
        "starttls_injection": ("temporary", ["tls", "protocol"], "before TLS began"),
        "nul_in_reply": ("sent", [], "250 2.0.0 Ok? queued as X?Y"),
    }

    def run_case(self, kind: str, valgrind: bool = False):
        verdict, flags, text = self.CASES[kind]
        args = ["--rcpt", "a@x.test", "--rcpt", "b@x.test", "--timeout-ms", "3000"]
        if kind == "starttls_injection":
            args.append("--tls-required")
        with ScriptServer(hostile(kind)) as srv:
            results, err, rc = send(srv.url, *args, valgrind=valgrind, timeout=120)
        self.assertEqual(rc, 0, f"{kind}: exit {rc}\n{err}")
        self.assertEqual(len(results), 1, err)
        r = results[0]
        self.assertEqual((r["verdict"], r["flags"]), (verdict, flags), r)
        self.assertIn(text, r["error"] if verdict != "sent" else r["reply"], r)
        return r

    def test_each_kind(self):
        for kind in self.CASES:
            with self.subTest(kind=kind):
                r = self.run_case(kind)
                if kind == "nul_in_reply":
                    self.assertEqual(r["relay_id"], "X?Y")

    @unittest.skipUnless(HAVE_VALGRIND and not SEND_HAS_ASAN,
                         "valgrind is not installed, or the driver is built with ASan")
    def test_under_valgrind(self):
        for kind in ("long_line", "bad_continuation", "354_to_mail", "421_mid_transaction",
                     "starttls_injection", "nul_in_reply"):
            with self.subTest(kind=kind):
                self.run_case(kind, valgrind=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
