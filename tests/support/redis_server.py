"""A private redis-server for a test, on a free 127.0.0.1 port with its own dir: no
persistence, or with aof=True an append-only file fsynced at every write, so that it
can be stopped (shutdown(), stop(), kill()) and started again (start()) on the same port
and dir, reloading what it acknowledged; replicaof= makes it a replica. Also connect()
and wait_subscribed(), the two things every Redis client here needs."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time

import redis  # python3-redis

from .paths import LOOPBACK
from .procs import Child, free_port, wait_started


def connect(port: int, *, host: str = LOOPBACK, decode: bool = True, timeout: float = 10.0,
            connect_timeout: float | None = 2.0, **kw) -> redis.Redis:
    """A client of the server on host:port (socket timeout `timeout` s)."""
    return redis.Redis(host=host, port=port, decode_responses=decode, socket_timeout=timeout,
                       socket_connect_timeout=connect_timeout, **kw)


def wait_subscribed(pubsub, kind: str = "subscribe", what: str = "", timeout: float = 5.0) -> dict:
    """Waits for the server's confirmation (a message of type kind: "subscribe",
    "psubscribe") of a subscription just sent on pubsub, and returns it; raises
    AssertionError after timeout seconds. what names it in that error."""
    deadline = time.monotonic() + timeout
    while True:
        m = pubsub.get_message(timeout=0.5)
        if m and m["type"] == kind:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"no {kind} confirmation {what}".rstrip())


class Subscriber:
    """A pub/sub subscription read on a background thread: start() subscribes to
    channel (a glob pattern with pattern=True) and returns once the server confirmed
    it; then every message goes to on_message(message) on that thread, until stop(). A
    lost connection ends the thread: raised there, unless tolerate_loss (a server the
    test kills)."""

    def __init__(self, port: int, channel: str, on_message, *, host: str = LOOPBACK,
                 pattern: bool = False, tolerate_loss: bool = False, name: str = "subscriber"):
        self.channel = channel
        self.on_message = on_message
        self.pattern = pattern
        self.tolerate_loss = tolerate_loss
        self.name = name
        self._client = connect(port, host=host, connect_timeout=10.0)
        self._pubsub = self._client.pubsub()
        self._stop = threading.Event()
        self._thread = None

    def start(self) -> "Subscriber":
        if self.pattern:
            self._pubsub.psubscribe(self.channel)
        else:
            self._pubsub.subscribe(self.channel)
        # do not return before the server confirmed the subscription
        wait_subscribed(self._pubsub, "psubscribe" if self.pattern else "subscribe",
                        f"for {self.channel}")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        kind = "pmessage" if self.pattern else "message"
        while not self._stop.is_set():
            try:
                m = self._pubsub.get_message(timeout=0.1)
            except Exception:  # the connection closed: at stop(), or the server went away
                if self._stop.is_set() or self.tolerate_loss:
                    return
                raise
            if m and m["type"] == kind:
                self.on_message(m)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        with contextlib.suppress(Exception):
            self._pubsub.close()
        with contextlib.suppress(Exception):
            self._client.close()


class RedisServer(Child):
    """redis-server on 127.0.0.1:<free port> in its own temp dir (or dir=).

    aof:       append-only file, fsync always (reloaded by a restart)
    replicaof: the port of a master to replicate
    extra:     further redis-server arguments"""

    kind = "redis"

    def __init__(self, startup_timeout: float = 10.0, *, aof: bool = False,
                 replicaof: int | None = None, extra=(), dir=None,
                 die_with_parent: bool = False):
        super().__init__(dir=dir, die_with_parent=die_with_parent)
        self.port = free_port()
        self.host = LOOPBACK
        self.startup_timeout = startup_timeout
        self.aof = aof
        self.replicaof = replicaof
        self.extra = list(extra)
        self._clients = []

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def argv(self) -> list:
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.aof
                       else ["--appendonly", "no"])
        argv = ["redis-server", "--port", str(self.port), "--bind", self.host, "--save", "",
                *persistence, "--dir", self.make_dir(), "--protected-mode", "yes",
                "--daemonize", "no", *self.extra]
        if self.replicaof:
            argv += ["--replicaof", LOOPBACK, str(self.replicaof)]
        return argv

    def start(self) -> "RedisServer":
        """Starts redis-server and waits for its PING (after a restart, until it has
        loaded its AOF); again after a stop, on the same port and dir (the log is
        appended to)."""
        self.spawn_child(self.argv(), cwd=self.make_dir())
        probe = connect(self.port, decode=False, timeout=0.5, connect_timeout=0.5)

        def pong():
            try:
                return probe.ping()
            except redis.exceptions.RedisError:  # refused, or LOADING the AOF
                return False

        try:
            wait_started(self, pong, f"{self.kind} on port {self.port} to answer PING",
                         self.startup_timeout)
        except BaseException:
            self.stop(timeout=3)
            raise
        finally:
            probe.close()
        return self

    def client(self, decode: bool = True, timeout: float = 10.0) -> redis.Redis:
        """A client, closed at cleanup()."""
        c = connect(self.port, decode=decode, timeout=timeout)
        self._clients.append(c)
        return c

    def role(self) -> str:
        """"master", "slave", or "" when it does not answer."""
        try:
            with contextlib.closing(connect(self.port, timeout=1.0, connect_timeout=1.0)) as c:
                return str(c.execute_command("ROLE")[0])
        except redis.RedisError:
            return ""

    def version(self) -> str:
        with contextlib.closing(connect(self.port)) as c:
            return c.info("server")["redis_version"]

    def shutdown(self, timeout: float = 10.0) -> int:
        """SHUTDOWN (which fsyncs the AOF) and waits for the exit; returns redis-server's
        exit status. The dir, the log and the clients stay, for start()."""
        with contextlib.closing(connect(self.port)) as c:
            c.shutdown()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        return self.stop(timeout=0)

    def cleanup(self) -> None:
        for c in self._clients:
            with contextlib.suppress(Exception):
                c.close()
        self._clients.clear()
        super().cleanup()
