#!/usr/bin/python3
"""Integration test of mailroom with Redis Sentinel: a master, a replica and three
sentinels on loopback; two consumers and two producers that use
MAILROOM_REDIS_URL=redis-sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/mymaster: the
`mailroom` CLI (one process, so one connection, per send: job-NNNN) and one long-lived
libmailroom handle (ctypes; lib-NNNN, skipped when the library is built with ASan),
whose connection outlives the failover's first step; the master is failed over while
jobs flow; nothing accepted may be lost.

  1. test_graceful_failover: `SENTINEL FAILOVER mymaster` (the master stays up) while
     the producers send 300 + 100 jobs over ~10 s. For about a second the sentinels
     still name the old master after its replica was promoted; rconn must refuse it
     (at connect, and after a write no replica acknowledged). Strict: every accepted job
     (exit 0 / MAILROOM_OK) ends `sent` on the new master, the SMTP receiver got each
     exactly once, nothing is left in pending, scheduled, processing lists or the dead
     list, and no job takes more than MAX_LATENCY_S from accept to sent (the new master
     must not be refused while the old one still says ROLE master, ~10 s).
  2. test_master_killed: SIGKILL of the master; the sentinels (quorum 2, down-after 1 s)
     elect the replica. Replication is asynchronous, so a job acknowledged by the old
     master in the last moment before its death may not have reached the replica, and a
     transition lost that way may make a job be sent again (docs/reliability.md). Such
     losses (only for jobs accepted within LOSS_WINDOW_S before the kill) and duplicates
     are reported, not failed; everything else is as strict as in 1.

In both: a send that fails while the master is moving must exit 69 with a clear message
(it is "not accepted" and sent again with the same --id afterwards); both consumers stay
alive the whole time and exit 0 on SIGTERM; `mailroom status ID` works through the
Sentinel URL after the failover.

Run: MAILROOM_BIN_DIR=<build>/bin /usr/bin/python3 tests/integration/test_sentinel.py [-v]
(ctest runs each case on its own: integration.test_sentinel.SentinelFailoverTest.
test_master_killed, about 50 s, and ...test_graceful_failover, about 20 s)
Every server listens on a free 127.0.0.1 port and keeps its files in its own temp dir;
all are stopped and removed afterwards, also when a test fails.
"""

import calendar
import collections
import contextlib
import json
import os
import re
import shutil
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

import redis  # noqa: E402  python3-redis

from support.case import ServerTestCase  # noqa: E402
from support.consumer import mailroom_env, run_cli  # noqa: E402
from support.jobs import new_secret  # noqa: E402
from support.libmailroom import (  # noqa: E402
    lib_exit_code, Libmailroom, libmailroom_path, MAILROOM_DUPLICATE_RC,
)
from support.messages import job_id_of  # noqa: E402
from support.procs import wait_for  # noqa: E402
from support.sentinel import SentinelCluster  # noqa: E402
from support.state import dead_entries, Keys, processing_lengths  # noqa: E402

SECRET = new_secret()
SENDER = "noreply@example.com"
Q = Keys("default")
N_JOBS = 300
N_LIB_JOBS = 100           # sent meanwhile through one long-lived libmailroom handle
SEND_SECONDS = 10.0
FAILOVER_AFTER = 100       # trigger the failover once this many sends have returned
FOLLOW_S = 3.0            # consumers must have left the old master this long after the switch
LOSS_WINDOW_S = 1.0        # kill -9: losses tolerated (reported) only this close to the kill
# graceful: the longest accept -> sent allowed. The old master keeps saying ROLE master
# for ~10 s after the switch (until the sentinels convert it); a client that took that
# for "the new master is being abandoned" would stall every write that long.
MAX_LATENCY_S = 5.0
TERMINAL = ("sent", "failed", "rejected")
CONSUMER_ARGS = ("--concurrency", "4", "--dead-after", "3s", "--block-timeout", "1s",
                 "--shutdown-timeout", "10s")

def log(text: str) -> None:
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def paced(ids: list, seconds: float, stop_flag):
    """Yields the ids one by one, the i-th not before i * seconds / len(ids) from the
    first; stops early once stop_flag (a threading.Event) is set."""
    start = time.monotonic()
    step = seconds / len(ids)
    for i, job_id in enumerate(ids):
        if stop_flag.is_set():
            return
        delay = start + i * step - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield job_id


class Attempt:
    __slots__ = ("job_id", "t0", "t1", "rc", "out", "err", "phase")

    def __init__(self, job_id, t0, t1, rc, out, err, phase):
        self.job_id, self.t0, self.t1, self.rc = job_id, t0, t1, rc
        self.out, self.err, self.phase = out, err, phase


class Producer(threading.Thread):
    """Sends N_JOBS jobs with `mailroom send --id job-NNNN`, one after another, paced
    to last about SEND_SECONDS; records every attempt."""

    def __init__(self, env: dict, ids: list, seconds: float):
        super().__init__(name="producer", daemon=True)
        self.env, self.ids, self.seconds = env, ids, seconds
        self.attempts = []
        self.error = None
        self.t_end = None
        self._lock = threading.Lock()
        self.stop_flag = threading.Event()

    def done_count(self) -> int:
        with self._lock:
            return len(self.attempts)

    def run(self) -> None:
        try:
            for job_id in paced(self.ids, self.seconds, self.stop_flag):
                a = send_job(self.env, job_id, "run")
                with self._lock:
                    self.attempts.append(a)
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            self.t_end = time.monotonic()


class LibProducer(threading.Thread):
    """Sends N_LIB_JOBS jobs (lib-NNNN, same fields as send_job) through one
    libmailroom handle opened before the failover, paced like Producer. Its connection
    outlives the promotion of the replica, so its writes in the failover window reach
    the old master and must be refused after the fact (no replica acknowledged them,
    the sentinels still name that master): the CLI, which connects for every send, is
    mostly refused already when it connects. rc follows the CLI's exit codes (0, 69,
    73; see lib_exit_code)."""

    def __init__(self, url: str, ids: list, seconds: float):
        super().__init__(name="lib-producer", daemon=True)
        self.ids, self.seconds = ids, seconds
        self.sender = Libmailroom(url, key=SECRET.encode())  # connects now, before the failover
        self.attempts = []
        self.error = None
        self.stop_flag = threading.Event()

    def run(self) -> None:
        try:
            for job_id in paced(self.ids, self.seconds, self.stop_flag):
                t0 = time.monotonic()
                rc, text = self.sender.send_rc(f"Rcpt {job_id} <rcpt@example.com>", SENDER,
                                               f"Failover test {job_id}", f"Job {job_id}.\n",
                                               job_id=job_id)
                self.attempts.append(Attempt(job_id, t0, time.monotonic(), lib_exit_code(rc),
                                             text if rc == 0 else "", "" if rc == 0 else text,
                                             "lib"))
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            self.sender.close()


def send_job(env: dict, job_id: str, phase: str) -> Attempt:
    t0 = time.monotonic()
    rc, out, err = run_cli("send", "--to", f"Rcpt {job_id} <rcpt@example.com>",
                           "--from", SENDER, "--subject", f"Failover test {job_id}",
                           "--text", f"Job {job_id}.\n", "--id", job_id, env=env, timeout=20)
    return Attempt(job_id, t0, time.monotonic(), rc, out.strip(), err.strip(), phase)


class PromotionWatch(threading.Thread):
    """Notes the first moment the replica's ROLE says master (polled every 10 ms)."""

    def __init__(self, node):
        super().__init__(name="promotion-watch", daemon=True)
        self.node = node
        self.t_promoted = None
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set() and self.t_promoted is None:
            if self.node.role() == "master":
                self.t_promoted = time.monotonic()
            time.sleep(0.01)

    def stop(self) -> None:
        self._halt.set()
        self.join(2)


class BlockedWatch(threading.Thread):
    """Samples a server's INFO clients every 50 ms while it is a master: blocked_clients
    counts the consumers' workers waiting in BLMOVE on it (nothing else blocks there)."""

    def __init__(self, node):
        super().__init__(name="blocked-watch", daemon=True)
        self.node = node
        self.samples = []  # (monotonic time, blocked_clients)
        self.ended_at = None  # when it stopped being a master (or answering)
        self._halt = threading.Event()

    def run(self) -> None:
        with contextlib.closing(self.node.client(timeout=1.0)) as c:
            while not self._halt.is_set():
                try:
                    info = c.info()
                except redis.RedisError:
                    info = {}  # gone (killed), or demoted and our connection killed
                if info.get("role") != "master":
                    self.ended_at = time.monotonic()
                    return
                self.samples.append((time.monotonic(), int(info.get("blocked_clients", 0))))
                time.sleep(0.05)

    def last_blocked(self):
        """The last moment some client was blocked on the server, or None."""
        return max((t for t, n in self.samples if n > 0), default=None)

    def blocked_at(self, t: float) -> int:
        if self.ended_at is not None and self.ended_at <= t:
            return 0
        before = [n for ts, n in self.samples if ts <= t]
        return before[-1] if before else 0

    def stop(self) -> None:
        self._halt.set()
        self.join(2)


class LivenessMonitor(threading.Thread):
    """Polls the consumers every 50 ms and notes the first moment one is not running."""

    def __init__(self, consumers: list):
        super().__init__(name="liveness", daemon=True)
        self.consumers = consumers
        self.deaths = {}  # index -> (monotonic time, returncode)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for i, c in enumerate(self.consumers):
                if i not in self.deaths and not c.alive():
                    self.deaths[i] = (time.monotonic(), c.proc.poll() if c.proc else None)
            time.sleep(0.05)

    def stop(self) -> None:
        self._halt.set()
        self.join(2)


class SentinelFailoverTest(ServerTestCase):

    def setUp(self):
        super().setUp()
        if not shutil.which("redis-server"):
            self.fail("redis-server not installed")
        self.t_begin = time.monotonic()

    def _dump_logs_if_failed(self):
        pass  # show_logs() printed the consumers' logs (and the sentinel's events) already

    # ------------------------------------------------------------------ the scenario

    def run_failover_scenario(self, kind: str) -> None:
        self.cluster = None
        self.logs_shown = False
        try:
            self._scenario(kind)
        except BaseException:
            if not self.logs_shown:  # an unexpected error or timeout: show what we have
                self.show_logs(0.0)
            raise

    def show_logs(self, since: float) -> None:
        self.logs_shown = True
        if self.cluster is not None and self.cluster.events is not None:
            log("----- sentinel 1 events -----\n" + "\n".join(self.cluster.events.lines(since)))
        for i, c in enumerate(self.consumers):
            log(f"----- consumer {i + 1} log (tail) -----\n{c.log()[-4000:]}")

    def _scenario(self, kind: str) -> None:
        assert kind in ("graceful", "kill")
        problems = []      # each one a failure of the test
        reports = []       # figures and tolerated, documented effects
        timeline = {}      # name -> monotonic time

        cluster = self.cluster = self.stack.enter_context(SentinelCluster())
        timeline["cluster ready"] = time.monotonic()
        rx = self.receiver(data_delay=0.02)
        env = mailroom_env(redis_url=cluster.url, secret=SECRET, smtp=rx)
        for i in range(2):
            self.start_consumer(env, *CONSUMER_ARGS, "--id", f"sentinel-c{i + 1}")
        monitor = LivenessMonitor(self.consumers)
        monitor.start()
        self.addCleanup(monitor.stop)

        old_port = cluster.master_port()
        old_node = cluster.node(old_port)
        # the consumers are up once both heartbeat on the master
        with contextlib.closing(old_node.client(timeout=2.0)) as r:
            wait_for(lambda: r.zcard(Q.consumers) == 2, 10, 0.05, "both consumers' heartbeats")

        ids = [f"job-{n:04d}" for n in range(1, N_JOBS + 1)]
        producer = Producer(env, ids, SEND_SECONDS)
        self.addCleanup(producer.stop_flag.set)
        libprod = None
        if libmailroom_path() is not None:
            libprod = LibProducer(cluster.url, [f"lib-{n:04d}" for n in range(1, N_LIB_JOBS + 1)],
                                  SEND_SECONDS)
            self.addCleanup(libprod.stop_flag.set)
        else:
            reports.append("libmailroom.so not built or built with ASan: no library producer")
        timeline["producer start"] = time.monotonic()
        producer.start()
        if libprod is not None:
            libprod.start()
        wait_for(lambda: producer.done_count() >= FAILOVER_AFTER or not producer.is_alive(),
                 30, 0.01, f"{FAILOVER_AFTER} sends")

        # ---- fail the master over
        replica = next(n for n in cluster.nodes if n.port != old_port)
        promotion = PromotionWatch(replica)
        promotion.start()
        self.addCleanup(promotion.stop)
        blocked = BlockedWatch(old_node)
        blocked.start()
        self.addCleanup(blocked.stop)
        timeline["failover begins"] = time.monotonic()
        if kind == "graceful":
            cluster.failover(0)  # on the sentinel the clients ask first
        else:
            old_node.kill()
        new_port = cluster.wait_switched(old_port, timeout=20)
        timeline["all sentinels name the new master"] = time.monotonic()
        ev = cluster.events
        for name in ("+promoted-slave", "+switch-master", "+odown", "+convert-to-slave"):
            t = ev.first(name, timeline["failover begins"])
            if t is not None:
                timeline[f"sentinel 1 event {name}"] = t

        # consumers follow the failover: none of their workers still waits in BLMOVE on
        # the old master FOLLOW_S after every sentinel named the new one
        t_switch = timeline["all sentinels name the new master"]
        time.sleep(max(0.0, t_switch + FOLLOW_S + 0.2 - time.monotonic()))
        stuck_workers = blocked.blocked_at(t_switch + FOLLOW_S)
        if kind == "graceful":
            cluster.wait_demoted(old_port, timeout=30)
            timeline["old master says ROLE slave"] = time.monotonic()
        blocked.stop()
        if stuck_workers:
            t_last = blocked.last_blocked()
            problems.append(
                f"consumers stick to the old master: {stuck_workers} worker(s) still blocked "
                f"in BLMOVE on :{old_port} {FOLLOW_S:g}s after every sentinel named :{new_port}"
                f"; the last left at {t_last - t_switch:+.2f}s from the switch"
                + (" (when the old master was demoted and its clients killed)"
                   if kind == "graceful" else ""))

        producer.join(60)
        self.assertFalse(producer.is_alive(), "the producer did not finish")
        timeline["producer done"] = producer.t_end
        if libprod is not None:
            libprod.join(60)
            self.assertFalse(libprod.is_alive(), "the library producer did not finish")
            if libprod.error is not None:
                problems.append(f"library producer thread failed: {libprod.error!r}")
        promotion.stop()
        if promotion.t_promoted is not None:
            timeline["replica says ROLE master"] = promotion.t_promoted
        if producer.error is not None:
            problems.append(f"producer thread failed: {producer.error!r}")

        # ---- every send: exit 0 (accepted) or 69 with a clear message (not accepted)
        attempts = list(producer.attempts) + (list(libprod.attempts) if libprod else [])
        accepted = {}      # job id -> Attempt that got exit 0
        not_accepted = []  # first attempts with exit 69
        for a in attempts:
            if a.rc == 0:
                accepted[a.job_id] = a
                if a.out != a.job_id:
                    problems.append(f"send {a.job_id}: printed {a.out!r}, not the id")
            elif a.rc == 69:
                not_accepted.append(a)
                prefix = "" if a.phase == "lib" else "mailroom: "
                if not re.fullmatch(prefix + r"[^\n]*(redis|sentinel|master)[^\n]*", a.err,
                                    re.I):
                    problems.append(f"send {a.job_id} exit 69 without a clear one-line "
                                    f"message: {a.err!r}")
            elif a.rc == MAILROOM_DUPLICATE_RC and a.phase == "lib":
                # the handle's own retry met its first try's record: "already recorded"
                # is what the caller is told, so it must hold (checked below like the rest)
                accepted[a.job_id] = a
                reports.append(f"{a.job_id}: mailroom_send answered 'already recorded' to "
                               f"its first call: {a.err!r}")
            else:
                problems.append(f"send {a.job_id}: unexpected exit {a.rc}: {a.err!r}")
        # the ones not accepted, again with the same id now that the master is known
        retried = []
        for a in not_accepted:
            b = send_job(env, a.job_id, "retry")
            retried.append(b)
            if b.rc == 0:
                accepted[b.job_id] = b
            elif b.rc == 73:
                # the first try reached Redis although it reported 69 (its reply was lost)
                accepted[b.job_id] = a
                reports.append(f"{a.job_id}: exit 69 ({a.err!r}) but the job was enqueued "
                               "(retry answered 73 duplicate)")
            else:
                problems.append(f"retry of {b.job_id} after the failover: exit {b.rc}: "
                                f"{b.err!r}")
        timeline["retries done"] = time.monotonic()

        # ---- wait until every accepted job is terminal on the new master (or nothing
        # moves any more)
        new = cluster.node(new_port).client(timeout=10)
        self.addCleanup(new.close)
        acc_ids = sorted(accepted)

        def snapshot():
            p = new.pipeline(transaction=False)
            for j in acc_ids:
                p.hget(Q.job(j), "state")
            p.llen(Q.pending)
            p.zcard(Q.scheduled)
            res = p.execute()
            return tuple(res), dict(zip(acc_ids, res[:len(acc_ids)]))

        last, since, states = None, time.monotonic(), {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            snap, states = snapshot()
            if all(s in TERMINAL for s in states.values()):
                break
            if snap != last:
                last, since = snap, time.monotonic()
            elif time.monotonic() - since > 5 and snap[-2] == 0 and snap[-1] == 0:
                break  # nothing pending or scheduled and nothing changed for 5 s
            time.sleep(0.1)
        timeline["accepted jobs settled"] = time.monotonic()
        rx_ids = collections.Counter(job_id_of(m.raw) for m in rx.messages())

        # ---- consumers: alive throughout
        for i, c in enumerate(self.consumers):
            if i in monitor.deaths:
                t, rc = monitor.deaths[i]
                problems.append(f"consumer {i + 1} exited (rc {rc}) at "
                                f"{t - timeline['failover begins']:+.2f}s from the failover")

        # ---- `mailroom status` through the Sentinel URL, after the failover
        sample = sorted({acc_ids[0], acc_ids[-1], *acc_ids[FAILOVER_AFTER - 3:FAILOVER_AFTER + 3]}) \
            if acc_ids else []
        for j in sample:
            rc, out, err = run_cli("status", j, env=env)
            if rc != 0:
                problems.append(f"mailroom status {j} via Sentinel: exit {rc}: {err.strip()!r}")
                continue
            try:
                st = json.loads(out)
            except ValueError:
                problems.append(f"mailroom status {j}: not JSON: {out!r}")
                continue
            if st.get("state") != states.get(j):
                problems.append(f"mailroom status {j} says {st.get('state')!r}, the new "
                                f"master says {states.get(j)!r}")

        # ---- every accepted job: sent on the new master, received (once)
        t_fail = timeline["failover begins"]
        lost = [j for j in acc_ids if states.get(j) is None]
        not_sent = {j: s for j, s in states.items() if s is not None and s != "sent"}
        missing_rx = [j for j in acc_ids if rx_ids[j] == 0]
        dups = {j: n for j, n in rx_ids.items() if n > 1}
        strangers = sorted(j for j in rx_ids if j not in accepted)
        lost_desc = ", ".join(f"{j} (accepted {accepted[j].t1 - t_fail:+.3f}s from the "
                              f"failover, received {rx_ids[j]}x)" for j in lost)
        if kind == "kill":
            early = [j for j in lost if accepted[j].t1 < t_fail - LOSS_WINDOW_S]
            late = [j for j in lost if j not in early]
            if late:
                reports.append(f"ASYNC REPLICATION LOSS: {len(late)} job(s) acknowledged by the "
                               f"old master within {LOSS_WINDOW_S}s of its SIGKILL never "
                               f"reached the replica: {lost_desc}")
            if early:
                problems.append(f"{len(early)} accepted job(s) lost (accepted more than "
                                f"{LOSS_WINDOW_S}s before the kill): {early}")
            if dups:
                reports.append(f"DUPLICATES after the master's crash (a transition lost with "
                               f"it): {dups}")
            missing_rx = [j for j in missing_rx if j not in late]
        else:
            if lost:
                problems.append(f"{len(lost)} accepted job(s) have no record on the new master "
                                f"(lost): {lost_desc}")
            if dups:
                problems.append(f"{len(dups)} job(s) delivered more than once although no "
                                f"consumer died: " + ", ".join(f"{j} x{n}" for j, n in
                                                               sorted(dups.items())))
        if not_sent:
            problems.append(f"{len(not_sent)} accepted job(s) not 'sent' on the new master: "
                            + ", ".join(f"{j}={s} (accepted {accepted[j].t1 - t_fail:+.3f}s "
                                        f"from the failover)"
                                        for j, s in sorted(not_sent.items())))
        if missing_rx:
            problems.append(f"{len(missing_rx)} accepted job(s) never reached the SMTP "
                            f"receiver: {missing_rx}")
        if strangers:
            problems.append(f"received mail for ids never accepted: {strangers}")

        # ---- nothing left behind on the new master
        pend, sched = new.lrange(Q.pending, 0, -1), new.zrange(Q.scheduled, 0, -1)
        procs = {k: new.lrange(k, 0, -1) for k in processing_lengths(new)}
        procs = {k: v for k, v in procs.items() if v}
        deads = dead_entries(new)

        def ids_of(raws):
            out = []
            for raw in raws:
                try:
                    out.append(json.loads(raw).get("id"))
                except ValueError:
                    out.append(raw[:40])
            return out

        if pend:
            problems.append(f"pending holds {len(pend)} job(s): {ids_of(pend)}")
        if sched:
            problems.append(f"scheduled holds {len(sched)} job(s): {ids_of(sched)}")
        for k, v in procs.items():
            problems.append(f"{k} holds {len(v)} job(s) while its consumer is alive: "
                            f"{ids_of(v)} (states: "
                            f"{[states.get(j, new.hget(Q.job(j), 'state')) for j in ids_of(v)]})")
        if deads:
            problems.append(f"dead list holds {len(deads)} entr(ies): "
                            f"{[(d.get('id'), d.get('reason')) for d in deads]}")

        # ---- latency figures: accept -> sent, from the status records
        def ms(ts):
            m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?Z", ts)
            if not m:
                raise ValueError(ts)
            frac = (m.group(2) or "0").ljust(3, "0")[:3]
            return calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) * 1000 + \
                int(frac)
        lat = []
        for j in acc_ids:
            h = new.hmget(Q.job(j), "created_at", "updated_at", "state")
            if h[2] == "sent" and h[0] and h[1]:
                with contextlib.suppress(ValueError):
                    lat.append((ms(h[1]) - ms(h[0]), j))
        lat.sort()
        if kind == "graceful" and lat and lat[-1][0] > MAX_LATENCY_S * 1000:
            problems.append(f"accept->sent took {lat[-1][0]:.0f} ms for {lat[-1][1]} (more than "
                            f"{MAX_LATENCY_S:g} s)")

        # ---- SIGTERM: both consumers exit 0
        monitor.stop()
        for i, c in enumerate(self.consumers):
            if i in monitor.deaths:
                continue
            rc = c.stop(timeout=15)
            if rc != 0 or c.timed_out:
                problems.append(f"consumer {i + 1} on SIGTERM: exit {rc}"
                                f"{' (killed after 15 s)' if c.timed_out else ''}")
        rx_after = collections.Counter(job_id_of(m.raw) for m in rx.messages())
        late_rx = rx_after - rx_ids
        if late_rx:
            what = (f"{sum(late_rx.values())} mail(s) sent during the consumers' shutdown "
                    f"(a job they held was returned to pending and sent again): "
                    f"{dict(sorted(late_rx.items()))}")
            (reports if kind == "kill" else problems).append(what)

        # ---- the report
        t0 = timeline["producer start"]
        lib_attempts = [a for a in attempts if a.phase == "lib"]
        lines = [f"== {kind} failover: master :{old_port} -> :{new_port}; "
                 f"{len(attempts)} sends ({len(lib_attempts)} through one libmailroom handle, "
                 f"{sum(1 for a in lib_attempts if a.rc != 0)} of them not accepted at once), "
                 f"{len(accepted)} accepted "
                 f"({sum(1 for a in attempts if a.rc == 0)} at once, "
                 f"{sum(1 for b in retried if b.rc == 0)} on retry), "
                 f"{len(not_accepted)} exit 69 during the run; "
                 f"{sum(rx_ids.values())} mails received for {len(rx_ids)} ids; "
                 f"test runtime {time.monotonic() - self.t_begin:.1f}s"]
        for name, t in sorted(timeline.items(), key=lambda kv: kv[1]):
            lines.append(f"   {t - t0:+7.2f}s  {name}")
        if not_accepted:
            first, lastna = not_accepted[0], not_accepted[-1]
            lines.append(f"   exit 69 window: {first.t0 - t_fail:+.2f}s .. {lastna.t1 - t_fail:+.2f}s"
                         f" from the failover; messages: "
                         f"{sorted(collections.Counter(a.err for a in not_accepted).items())}")
        if lat:
            lines.append(f"   accept->sent latency: median {lat[len(lat) // 2][0]:.0f} ms, "
                         f"max {lat[-1][0]:.0f} ms ({lat[-1][1]})")
        clog = "\n".join(c.log() for c in self.consumers)
        lines.append(f"   consumers: {clog.count('no replica acknowledged the write')} write(s) "
                     f"redone after the sentinels did not confirm the master, "
                     f"{clog.count('is being replaced as master')} reconnect(s) that first met the "
                     f"old master refused as being replaced")
        lines += [f"   NOTE {r}" for r in reports]
        lines += [f"   PROBLEM {p}" for p in problems]
        log("\n".join(lines))
        if problems:
            self.show_logs(t_fail)
            self.fail(f"{kind} failover: {len(problems)} problem(s):\n  " +
                      "\n  ".join(problems))

    # ------------------------------------------------------------------ tests

    def test_graceful_failover(self):
        """SENTINEL FAILOVER mid-run: every accepted job sent exactly once, nothing
        left behind, consumers alive and exiting 0."""
        self.run_failover_scenario("graceful")

    def test_master_killed(self):
        """kill -9 of the master mid-run, the sentinels elect the replica: every
        accepted job sent (beyond Redis' asynchronous-replication window)."""
        self.run_failover_scenario("kill")


if __name__ == "__main__":
    unittest.main(verbosity=2)
