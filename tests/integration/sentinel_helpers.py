"""Redis Sentinel fixtures for mailroom's integration tests.

    with SentinelCluster() as cluster:          # master, replica, 3 sentinels, loopback
        url = cluster.url                       # redis-sentinel://127.0.0.1:S1,.../mymaster
        old = cluster.master_port()
        cluster.failover()                      # SENTINEL FAILOVER on one sentinel
        new = cluster.wait_switched(old)        # every sentinel names the new master

Every server is a child in its own process group (harness._spawn), listens on a free
127.0.0.1 port, keeps its files in its own temp dir, and is killed and cleaned up on
exit, also when a test fails (and by harness's atexit hook if the test process dies).
Only the standard library and python3-redis are used.

lib_exit_code() maps a mailroom_send() status of a long-lived libmailroom handle
(harness.Libmailroom), whose writes reach a master over a connection made before the
failover, to the CLI's exit code.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis  # python3-redis

from harness import (
    LOOPBACK, _kill_group, _reap, _spawn, free_port, wait_for, wait_subscribed,
)

MASTER_NAME = "mymaster"


def _client(port: int, timeout: float = 2.0) -> redis.Redis:
    return redis.Redis(host=LOOPBACK, port=port, decode_responses=True,
                       socket_timeout=timeout, socket_connect_timeout=timeout)


def _tail(path, n: int = 3000) -> str:
    try:
        return Path(path).read_text(errors="replace")[-n:]
    except OSError:
        return ""


class _Server:
    """A redis-server child (data node or sentinel) with its own temp dir and log."""

    kind = "redis"

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"mailroom-{self.kind}-")
        self.log_path = os.path.join(self.dir, f"{self.kind}.log")
        self.proc = None
        self._log = None

    def argv(self) -> list:
        raise NotImplementedError

    def start(self, timeout: float = 10.0):
        self._log = open(self.log_path, "ab")
        self.proc = _spawn(self.argv(), stdout=self._log, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, cwd=self.dir)

        def pong():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} on port {self.port} exited with "
                                   f"{self.proc.returncode}:\n{self.log_tail()}")
            try:
                with contextlib.closing(_client(self.port, 0.5)) as c:
                    return c.ping()
            except redis.RedisError:
                return False

        wait_for(pong, timeout, 0.02, f"{self.kind} on port {self.port} to answer PING")
        return self

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return _client(self.port, timeout)

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, nothing more is written."""
        if self.proc is not None:
            _kill_group(self.proc, signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, n: int = 3000) -> str:
        return _tail(self.log_path, n)

    def stop(self) -> None:
        if self.proc is not None:
            _reap(self.proc, grace=3)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        self.stop()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


class DataNode(_Server):
    """A redis-server data node: no RDB, AOF with fsync at every write."""

    kind = "redis"

    def __init__(self, replicaof: int | None = None):
        super().__init__()
        self.replicaof = replicaof

    def argv(self) -> list:
        argv = ["redis-server", "--port", str(self.port), "--bind", LOOPBACK,
                "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                "--dir", self.dir, "--daemonize", "no", "--protected-mode", "yes",
                # a replica (re)syncs at once, not after the default 5 s wait for others
                "--repl-diskless-sync-delay", "0"]
        if self.replicaof:
            argv += ["--replicaof", LOOPBACK, str(self.replicaof)]
        return argv

    def role(self) -> str:
        """"master", "slave", or "" when it does not answer."""
        try:
            with contextlib.closing(self.client(1.0)) as c:
                return str(c.execute_command("ROLE")[0])
        except redis.RedisError:
            return ""


class SentinelNode(_Server):
    """redis-server <conf> --sentinel, its config file writable in its own temp dir."""

    kind = "sentinel"

    def __init__(self, master_port: int, quorum: int = 2, down_after_ms: int = 1000,
                 failover_timeout_ms: int = 5000):
        super().__init__()
        self.conf = os.path.join(self.dir, "sentinel.conf")
        with open(self.conf, "w") as f:
            f.write(f"port {self.port}\n"
                    f"bind {LOOPBACK}\n"
                    f"dir {self.dir}\n"
                    "daemonize no\n"
                    "sentinel resolve-hostnames no\n"
                    f"sentinel monitor {MASTER_NAME} {LOOPBACK} {master_port} {quorum}\n"
                    f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n"
                    f"sentinel failover-timeout {MASTER_NAME} {failover_timeout_ms}\n"
                    f"sentinel parallel-syncs {MASTER_NAME} 1\n")

    def argv(self) -> list:
        return ["redis-server", self.conf, "--sentinel"]

    def master_addr(self):
        """(host, port) this sentinel names as the master, or None."""
        try:
            with contextlib.closing(self.client(1.0)) as c:
                a = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        except redis.RedisError:
            return None
        return (a[0], int(a[1])) if a else None

    def _table(self, sub: str) -> list:
        with contextlib.closing(self.client(1.0)) as c:
            rows = c.execute_command("SENTINEL", sub, MASTER_NAME)
        out = []
        for row in rows or []:
            if isinstance(row, dict):
                out.append(row)
            else:  # flat [k1, v1, k2, v2, ...]
                out.append(dict(zip(row[::2], row[1::2])))
        return out

    def replicas(self) -> list:
        return self._table("REPLICAS")

    def sentinels(self) -> list:
        return self._table("SENTINELS")


class EventLog:
    """Subscribes to every event a sentinel publishes (+switch-master, +sdown,
    +convert-to-slave, ...) and keeps them with their monotonic arrival time."""

    def __init__(self, sentinel: SentinelNode):
        self._client = _client(sentinel.port, 10)
        self._pubsub = self._client.pubsub()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.events = []  # (monotonic time, channel, data)
        self._thread = None

    def start(self) -> "EventLog":
        self._pubsub.psubscribe("*")
        wait_subscribed(self._pubsub, "psubscribe", "from the sentinel")
        self._thread = threading.Thread(target=self._run, name="sentinel-events", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                m = self._pubsub.get_message(timeout=0.1)
            except Exception:
                return  # the sentinel went away or we are closing
            if m and m["type"] == "pmessage":
                with self._lock:
                    self.events.append((time.monotonic(), m["channel"], m["data"]))

    def first(self, channel: str, after: float = 0.0):
        """The arrival time of the first `channel` event after `after`, or None."""
        with self._lock:
            for t, ch, _ in self.events:
                if ch == channel and t >= after:
                    return t
        return None

    def lines(self, since: float = 0.0) -> list:
        with self._lock:
            return [f"{t - since:+7.2f}s {ch} {data}" for t, ch, data in self.events
                    if t >= since]

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(3)
        with contextlib.suppress(Exception):
            self._pubsub.close()
        with contextlib.suppress(Exception):
            self._client.close()


class SentinelCluster:
    """One master, one replica, three sentinels (quorum 2, down-after 1 s, failover
    timeout 5 s), all on free 127.0.0.1 ports. On enter it waits until the replica is
    in sync and every sentinel sees the master, the replica and the two other
    sentinels."""

    def __init__(self, n_sentinels: int = 3, quorum: int = 2, ready_timeout: float = 30.0):
        self.n_sentinels = n_sentinels
        self.quorum = quorum
        self.ready_timeout = ready_timeout
        self.nodes = []      # DataNode, in start order: [initial master, initial replica]
        self.sentinels = []  # SentinelNode
        self.events = None   # EventLog on the first sentinel

    # -- lifecycle

    def start(self) -> "SentinelCluster":
        try:
            master = DataNode().start()
            self.nodes.append(master)
            replica = DataNode(replicaof=master.port).start()
            self.nodes.append(replica)
            # Sentinels learn replicas from the master's INFO, which they ask for at
            # connect and then every 10 s: start them only once the replica is online.
            wait_for(lambda: self._replica_online(master, replica), 15, 0.05,
                     "the replica to be online and in sync")
            for _ in range(self.n_sentinels):
                self.sentinels.append(SentinelNode(master.port, self.quorum).start())
            self.events = EventLog(self.sentinels[0]).start()
            wait_for(lambda: self._ready(master.port, replica.port), self.ready_timeout, 0.1,
                     "every sentinel to see the master, the replica and the other sentinels")
        except BaseException:
            self.cleanup()
            raise
        return self

    @staticmethod
    def _replica_online(master: DataNode, replica: DataNode) -> bool:
        try:
            with contextlib.closing(master.client()) as c:
                info = c.info("replication")
        except redis.RedisError:
            return False
        s0 = info.get("slave0")
        return (info.get("connected_slaves") == 1 and isinstance(s0, dict)
                and s0.get("state") == "online" and int(s0.get("port", 0)) == replica.port)

    def _ready(self, master_port: int, replica_port: int) -> bool:
        for s in self.sentinels:
            try:
                if s.master_addr() != (LOOPBACK, master_port):
                    return False
                reps = s.replicas()
                if not any(int(r.get("port", 0)) == replica_port and
                           "s_down" not in r.get("flags", "") and
                           "disconnected" not in r.get("flags", "") for r in reps):
                    return False
                if len(s.sentinels()) != self.n_sentinels - 1:
                    return False
            except redis.RedisError:
                return False
        return True

    def cleanup(self) -> None:
        if self.events is not None:
            self.events.stop()
            self.events = None
        for s in self.sentinels:
            s.cleanup()
        for n in self.nodes:
            n.cleanup()
        self.sentinels = []
        self.nodes = []

    __enter__ = start

    def __exit__(self, *exc):
        self.cleanup()

    # -- what the clients see

    @property
    def url(self) -> str:
        hosts = ",".join(f"{LOOPBACK}:{s.port}" for s in self.sentinels)
        return f"redis-sentinel://{hosts}/{MASTER_NAME}"

    def node(self, port: int) -> DataNode:
        for n in self.nodes:
            if n.port == port:
                return n
        raise KeyError(port)

    def master_port(self) -> int:
        """The master's port as the first sentinel names it."""
        addr = self.sentinels[0].master_addr()
        assert addr is not None, "the first sentinel names no master"
        return addr[1]

    def master_addrs(self) -> list:
        return [s.master_addr() for s in self.sentinels]

    # -- failover

    def failover(self, sentinel_index: int = 0) -> None:
        """SENTINEL FAILOVER mymaster on one sentinel (a forced, coordinated failover:
        no agreement needed, the master stays up)."""
        with contextlib.closing(self.sentinels[sentinel_index].client(5)) as c:
            c.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)

    def wait_switched(self, old_port: int, timeout: float = 20.0) -> int:
        """Waits until every sentinel names one new master other than old_port and that
        server's ROLE says master; returns its port."""
        def switched():
            addrs = self.master_addrs()
            if None in addrs or len(set(addrs)) != 1:
                return None
            host, port = addrs[0]
            if port == old_port:
                return None
            try:
                return port if self.node(port).role() == "master" else None
            except KeyError:
                return None
        return wait_for(switched, timeout, 0.05,
                        f"every sentinel to name a new master instead of port {old_port}")

    def wait_demoted(self, port: int, timeout: float = 30.0) -> None:
        """Waits until the server on `port` (a former master) says ROLE slave."""
        wait_for(lambda: self.node(port).role() == "slave", timeout, 0.05,
                 f"the old master on port {port} to become a replica")


# --------------------------------------------------------------------------- libmailroom


MAILROOM_OK, MAILROOM_EREDIS, MAILROOM_ETIMEOUT, MAILROOM_EDUPLICATE = 0, 3, 4, 6
MAILROOM_DUPLICATE_RC = 73  # the CLI's exit code for MAILROOM_EDUPLICATE


def lib_exit_code(rc: int) -> int:
    """The `mailroom send` exit code for a mailroom_send() status: 0, 69 (Redis failed
    or timed out), 73 (duplicate); anything else as 1000 + rc (never expected here)."""
    return {MAILROOM_OK: 0, MAILROOM_EREDIS: 69, MAILROOM_ETIMEOUT: 69,
            MAILROOM_EDUPLICATE: MAILROOM_DUPLICATE_RC}.get(rc, 1000 + rc)
