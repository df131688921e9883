"""mailroom's state in Redis as the tests read it: the key names of a queue (Keys, with
the literal {queue} hash tag), the dead list, the counters, the processing lists, and
StatusListener, which collects a queue's status events from the moment it subscribed."""

from __future__ import annotations

import json
import threading
import time

import redis  # python3-redis

from .procs import wait_for
from .redis_server import Subscriber


class Keys:
    """The Redis key names of one queue (the braces are a literal hash tag)."""

    def __init__(self, queue: str = "default"):
        self.queue = queue
        p = f"mailroom:{{{queue}}}"
        self.prefix = p
        self.pending = f"{p}:pending"
        self.dead = f"{p}:dead"
        self.stats = f"{p}:stats"
        self.scheduled = f"{p}:scheduled"
        self.consumers = f"{p}:consumers"
        self.status = f"{p}:status"
        self.events = f"{p}:events"
        self.paused = f"{p}:paused"
        self.webhook = f"{p}:webhook"
        self.webhook_failed = f"{p}:webhook:failed"
        self.exporter = f"{p}:exporter"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def processing(self, consumer_id: str) -> str:
        return f"{self.prefix}:processing:{consumer_id}"

    def processing_pattern(self) -> str:
        # the braces must be escaped for a glob
        return f"mailroom:\\{{{self.queue}\\}}:processing:*"


def redis_ms(r: redis.Redis) -> int:
    """Redis' clock (TIME) in ms since the epoch: the clock the scripts use."""
    sec, usec = r.time()
    return int(sec) * 1000 + int(usec) // 1000


def dead_entries(r: redis.Redis, queue: str = "default") -> list:
    """The dead list, oldest first, each entry JSON-decoded."""
    raw = r.lrange(Keys(queue).dead, 0, -1)
    return [json.loads(x) for x in reversed(raw)]


def stats(r: redis.Redis, queue: str = "default") -> dict:
    return {k: int(v) for k, v in r.hgetall(Keys(queue).stats).items()}


def processing_lengths(r: redis.Redis, queue: str = "default") -> dict:
    k = Keys(queue)
    return {key: r.llen(key) for key in r.scan_iter(match=k.processing_pattern())}


class StatusListener:
    """Subscribes to a queue's status channel (on enter, before the caller sends) and
    collects every event on a background thread; on_event(event), when given, is called
    on that thread for each one as it arrives."""

    def __init__(self, redis_server, queue: str = "default", on_event=None):
        self.channel = Keys(queue).status
        self.on_event = on_event
        self._lock = threading.Lock()
        self._events = []
        self.bad = []  # messages that were not JSON objects
        self._sub = Subscriber(redis_server.port, self.channel, self._on_message,
                               host=redis_server.host, name="status-listener")

    def __enter__(self) -> "StatusListener":
        self._sub.start()
        return self

    def _on_message(self, m) -> None:
        try:
            ev = json.loads(m["data"])
            if not isinstance(ev, dict):
                raise ValueError("not an object")
        except ValueError:
            with self._lock:
                self.bad.append(m["data"])
            return
        ev["_received"] = time.monotonic()
        with self._lock:
            self._events.append(ev)
        if self.on_event is not None:
            self.on_event(ev)

    def events(self, job_id: str | None = None) -> list:
        with self._lock:
            return [e for e in self._events if job_id is None or e.get("id") == job_id]

    def states(self, job_id: str) -> list:
        return [e.get("state") for e in self.events(job_id)]

    def wait_for_state(self, job_id: str, state: str, timeout: float = 10.0) -> dict:
        def found():
            for e in self.events(job_id):
                if e.get("state") == state:
                    return e
            return None
        return wait_for(found, timeout, message=f"status event {state!r} for job {job_id}")

    def __exit__(self, *exc) -> None:
        self._sub.stop()
