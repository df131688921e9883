#!/usr/bin/python3
"""Tests of bench/delay_proxy.c, the loopback TCP proxy the far-relay benchmarks put
between the consumer and the SMTP server (docs/performance.md, section 7): that it
adds the round trip it is asked for (an echo through it), never lets a chunk out
before its time, keeps the bytes of each direction in order, counts each side's bursts
(the round trips the far-relay report is built on) as its header says, carries
hundreds of connections at once, and refuses every address outside loopback.

The proxy is $MAILROOM_DELAY_PROXY, else <build>/bench/delay_proxy where <build>/bin is
$MAILROOM_BIN_DIR (default <repo>/build/bin); the tests skip when the benchmarks are
not built (-DMAILROOM_BUILD_BENCH=OFF). Each test starts its own echo server and proxy
on free loopback ports.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/

from support.paths import BIN_DIR, LOOPBACK  # noqa: E402
from support.procs import forget, reap, spawn  # noqa: E402

PROXY = os.environ.get("MAILROOM_DELAY_PROXY") or str(BIN_DIR.parent / "bench" / "delay_proxy")
# Delays on a shared 2-core machine: a chunk may leave late (scheduling), never early.
LATE_SLACK_S = 0.030


class EchoServer:
    """A TCP server on 127.0.0.1:<free port> that sends back whatever it receives, one
    thread per connection."""

    def __init__(self):
        self.sock = socket.create_server((LOOPBACK, 0), backlog=1024)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                    if not data:
                        return
                    conn.sendall(data)
                except OSError:
                    return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join(2)
        self.sock.close()


class Proxy:
    """delay_proxy from 127.0.0.1:<a port it picks> to upstream_port; stats() asks it
    for its counters (SIGUSR1) and returns them."""

    def __init__(self, upstream_port: int, *args: str):
        self.proc = spawn([PROXY, "--listen", f"{LOOPBACK}:0", "--upstream",
                           f"{LOOPBACK}:{upstream_port}", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"delay_proxy did not start: {self.proc.stderr.read()}")
        self.info = json.loads(line)
        self.port = self.info["port"]

    def stats(self) -> dict:
        self.proc.send_signal(signal.SIGUSR1)
        return json.loads(self.proc.stdout.readline())

    def close(self) -> dict:
        """SIGTERM; returns its exit report."""
        self.proc.send_signal(signal.SIGTERM)
        line = self.proc.stdout.readline()
        self.proc.wait(5)
        forget(self.proc)
        return json.loads(line)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            reap(self.proc)
        forget(self.proc)
        self.proc.stdout.close()
        self.proc.stderr.close()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise AssertionError(f"connection closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


@unittest.skipUnless(os.access(PROXY, os.X_OK), f"{PROXY} not built (MAILROOM_BUILD_BENCH=OFF?)")
class DelayProxyTest(unittest.TestCase):

    def setUp(self):
        self.echo = EchoServer().__enter__()
        self.addCleanup(self.echo.__exit__)

    def proxy(self, *args: str) -> Proxy:
        p = Proxy(self.echo.port, *args)
        self.addCleanup(p.__exit__)
        return p

    def connect(self, proxy: Proxy) -> socket.socket:
        s = socket.create_connection((LOOPBACK, proxy.port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.addCleanup(s.close)
        return s

    def test_an_echo_takes_the_round_trip(self):
        """--rtt-ms 60: every echo takes at least 60 ms and not much more; the first
        one also waits for the upstream connect (1.5 RTT after the client's)."""
        p = self.proxy("--rtt-ms", "60")
        self.assertEqual(p.info["rtt_ms"], 60)
        self.assertEqual(p.info["connect_delay_ms"], 90)
        s = self.connect(p)
        t0 = time.monotonic()
        s.sendall(b"first")
        self.assertEqual(recv_exactly(s, 5), b"first")
        first = time.monotonic() - t0
        # sent at 0, upstream connected at 90 ms, echoed back 30 ms later
        self.assertGreaterEqual(first, 0.120)
        self.assertLess(first, 0.120 + LATE_SLACK_S * 2)
        times = []
        for i in range(10):
            msg = b"ping %d" % i
            t0 = time.monotonic()
            s.sendall(msg)
            self.assertEqual(recv_exactly(s, len(msg)), msg)
            times.append(time.monotonic() - t0)
        self.assertGreaterEqual(min(times), 0.060, times)
        self.assertLess(statistics.median(times), 0.060 + LATE_SLACK_S, times)

    def test_a_chunk_never_leaves_early(self):
        """Two writes 40 ms apart come back 40 ms apart, each a full RTT after it was
        sent: the second is not written together with the first."""
        p = self.proxy("--rtt-ms", "50", "--connect-delay-ms", "0")
        s = self.connect(p)
        t0 = time.monotonic()
        s.sendall(b"a")
        time.sleep(0.040)
        t1 = time.monotonic()
        s.sendall(b"b")
        self.assertEqual(recv_exactly(s, 1), b"a")
        ta = time.monotonic()
        self.assertEqual(recv_exactly(s, 1), b"b")
        tb = time.monotonic()
        self.assertGreaterEqual(ta - t0, 0.050)
        self.assertGreaterEqual(tb - t1, 0.050)
        self.assertGreaterEqual(tb - ta, 0.030)

    def test_bursts_are_the_waits(self):
        """5 request/reply exchanges are 5 client bursts; then 3 writes sent without
        waiting for a reply are 1 more; the server answered 5 times, then once for each
        of the 3 writes that reached it on its own. Bytes are counted exactly."""
        p = self.proxy("--rtt-ms", "40", "--connect-delay-ms", "0")
        s = self.connect(p)
        sent = 0
        for i in range(5):
            msg = b"request %d\r\n" % i
            s.sendall(msg)
            recv_exactly(s, len(msg))
            sent += len(msg)
        for i in range(3):
            s.sendall(b"pipelined %d\r\n" % i)
            sent += len(b"pipelined %d\r\n" % i)
            time.sleep(0.005)
        recv_exactly(s, 3 * len(b"pipelined 0\r\n"))
        st = p.stats()
        self.assertEqual(st["event"], "stats")
        self.assertEqual(st["connections"], 1)
        self.assertEqual(st["open"], 1)
        self.assertEqual(st["client_bursts"], 6)
        # 8 when each pipelined write reached the server on its own (5 ms apart); fewer
        # when a busy machine released two of them in one write
        self.assertGreaterEqual(st["server_bursts"], 6)
        self.assertLessEqual(st["server_bursts"], 8)
        self.assertEqual(st["bytes_up"], sent)
        self.assertEqual(st["bytes_down"], sent)
        s.close()
        time.sleep(0.2)  # the EOF travels through the delay too
        final = p.close()
        self.assertEqual(final["event"], "exit")
        self.assertEqual(final["open"], 0)
        self.assertGreater(final["seq"], st["seq"])

    def test_bytes_keep_their_order(self):
        """3 MB of random bytes, written while the echo comes back, return intact."""
        p = self.proxy("--rtt-ms", "20")
        s = self.connect(p)
        data = os.urandom(3 << 20)
        writer = threading.Thread(target=s.sendall, args=(data,), daemon=True)
        writer.start()
        got = recv_exactly(s, len(data))
        writer.join(10)
        self.assertTrue(got == data, "the echo differs from what was sent")

    def test_hundreds_of_connections(self):
        """300 connections open at once, 3 exchanges each, all through one proxy."""
        p = self.proxy("--rtt-ms", "20", "--connect-delay-ms", "0")
        socks = [self.connect(p) for _ in range(300)]
        for rnd in range(3):
            for i, s in enumerate(socks):
                s.sendall(b"%d.%d;" % (i, rnd))
            for i, s in enumerate(socks):
                msg = b"%d.%d;" % (i, rnd)
                self.assertEqual(recv_exactly(s, len(msg)), msg)
        st = p.stats()
        self.assertEqual(st["connections"], 300)
        self.assertEqual(st["max_open"], 300)
        self.assertEqual(st["client_bursts"], 900)
        self.assertEqual(st["upstream_failed"], 0)

    def test_loopback_only(self):
        """Any address outside 127.0.0.0/8 and ::1, and any host name, is refused with
        exit status 2, before anything listens."""
        for listen, upstream in (("0.0.0.0:0", "127.0.0.1:25"), ("10.0.0.1:2525", "127.0.0.1:25"),
                                 ("127.0.0.1:0", "192.168.1.1:25"), ("127.0.0.1:0", "[::]:25"),
                                 ("[::ffff:10.0.0.1]:0", "127.0.0.1:25"),
                                 ("localhost:0", "127.0.0.1:25"), ("127.0.0.1:0", "example.com:25")):
            with self.subTest(listen=listen, upstream=upstream):
                cp = subprocess.run([PROXY, "--listen", listen, "--upstream", upstream],
                                    capture_output=True, text=True, timeout=10)
                self.assertEqual(cp.returncode, 2, cp.stderr)
                self.assertEqual(cp.stdout, "")
        cp = subprocess.run([PROXY, "--listen", "[::1]:0", "--upstream", "127.0.0.2:9",
                             "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(cp.returncode, 0)
        self.assertIn("--rtt-ms", cp.stdout)


if __name__ == "__main__":
    unittest.main()
