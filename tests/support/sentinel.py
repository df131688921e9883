"""Redis Sentinel for a test: one master, one replica and three sentinels, every one a
redis-server child (redis_server.RedisServer) on a free 127.0.0.1 port with its own
temp dir.

    with SentinelCluster() as cluster:          # waits until every sentinel sees all
        url = cluster.url                       # redis-sentinel://127.0.0.1:S1,.../mymaster
        old = cluster.master_port()
        cluster.failover()                      # SENTINEL FAILOVER on one sentinel
        new = cluster.wait_switched(old)        # every sentinel names the new master
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import redis  # python3-redis

from .paths import LOOPBACK
from .procs import wait_for
from .redis_server import RedisServer, Subscriber, connect

MASTER_NAME = "mymaster"
# a replica (re)syncs at once, not after the default 5 s wait for others
_DATA_NODE_ARGS = ("--repl-diskless-sync-delay", "0")


class SentinelNode(RedisServer):
    """redis-server <conf> --sentinel, its config file writable in its own temp dir."""

    kind = "sentinel"

    def __init__(self, master_port: int, quorum: int = 2, down_after_ms: int = 1000,
                 failover_timeout_ms: int = 5000):
        super().__init__()
        self.conf = os.path.join(self.make_dir(), "sentinel.conf")
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
            with contextlib.closing(connect(self.port, timeout=1.0, connect_timeout=1.0)) as c:
                a = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        except redis.RedisError:
            return None
        return (a[0], int(a[1])) if a else None

    def _table(self, sub: str) -> list:
        with contextlib.closing(connect(self.port, timeout=1.0, connect_timeout=1.0)) as c:
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
        self._lock = threading.Lock()
        self.events = []  # (monotonic time, channel, data)
        self._sub = Subscriber(sentinel.port, "*", self._on_message, pattern=True,
                               tolerate_loss=True, name="sentinel-events")

    def start(self) -> "EventLog":
        self._sub.start()
        return self

    def _on_message(self, m) -> None:
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
        self._sub.stop()


class SentinelCluster:
    """One master, one replica (both AOF), three sentinels (quorum 2, down-after 1 s,
    failover timeout 5 s). On enter it waits until the replica is in sync and every
    sentinel sees the master, the replica and the two other sentinels."""

    def __init__(self, n_sentinels: int = 3, quorum: int = 2, ready_timeout: float = 30.0):
        self.n_sentinels = n_sentinels
        self.quorum = quorum
        self.ready_timeout = ready_timeout
        self.nodes = []      # RedisServer, in start order: [initial master, initial replica]
        self.sentinels = []  # SentinelNode
        self.events = None   # EventLog on the first sentinel

    # -- lifecycle

    def _start_node(self, node):
        """Starts a node that cleanup() will remove (also when the start fails)."""
        (self.sentinels if isinstance(node, SentinelNode) else self.nodes).append(node)
        return node.start()

    def start(self) -> "SentinelCluster":
        try:
            master = self._start_node(RedisServer(aof=True, extra=_DATA_NODE_ARGS))
            replica = self._start_node(RedisServer(aof=True, extra=_DATA_NODE_ARGS,
                                                   replicaof=master.port))
            # Sentinels learn replicas from the master's INFO, which they ask for at
            # connect and then every 10 s: start them only once the replica is online.
            wait_for(lambda: self._replica_online(master, replica), 15, 0.05,
                     "the replica to be online and in sync")
            for _ in range(self.n_sentinels):
                self._start_node(SentinelNode(master.port, self.quorum))
            self.events = EventLog(self.sentinels[0]).start()
            wait_for(lambda: self._ready(master.port, replica.port), self.ready_timeout, 0.1,
                     "every sentinel to see the master, the replica and the other sentinels")
        except BaseException:
            self.cleanup()
            raise
        return self

    @staticmethod
    def _replica_online(master: RedisServer, replica: RedisServer) -> bool:
        try:
            with contextlib.closing(connect(master.port, timeout=2.0)) as c:
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
        for s in self.sentinels + self.nodes:
            s.cleanup()
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

    def node(self, port: int) -> RedisServer:
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
        with contextlib.closing(connect(self.sentinels[sentinel_index].port, timeout=5,
                                        connect_timeout=5)) as c:
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
