"""Part 7 of the benchmarks, the far relay (docs/performance.md, section 7): the same
Postfix smtp-sink as the end-to-end part, but behind bench/delay_proxy, which adds a
round trip (50 ms: 25 ms each way) and counts each side's bursts. Through it, at 16, 64
and 256 parallel SMTP sessions, in turn and alternating within each of 3 runs:

    mailroom     one mailroom-consumer at --concurrency S draining a pre-filled queue
    smtp-source  smtp-source -d -s S (Postfix's generator; no PIPELINING, per its man page)
    ideal        pipeline_client.py: S asyncio sessions that pipeline exactly as RFC 2920
                 allows (one round trip per message, no queue, no MIME): what this
                 machine, the proxy and the sink allow a one-round-trip client
    bullmq       BullMQ + nodemailer (bench/peer/bullmq_send.js): a Worker of concurrency
                 S and a pooled transport of S connections, when node and npm work

Measured for each: emails/s in the steady state (smtp-sink's count between 10 % and 90 %
of the messages, so that connecting and the last wave are left out), round trips per
message on the wire (the proxy's client bursts over the same window; and over the whole
run, connection set-up and QUIT included), CPU per message of the client (from /proc or
its rusage), of Redis, of the sink and of the proxy, and the client's peak RSS. The
limit is sessions / RTT emails/s: what S sessions achieve when each message costs
exactly one round trip and nothing else. Every rate is also given as a ratio to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from context import QUEUE, ROOT
from e2e import bench_sink
from support.paths import LOOPBACK
from support.procs import Child, finish, forget, proc_cpu_s, proc_status_kb, spawn, wait_for, wait_started

PEER_SRC = ROOT / "bench" / "peer"
WINDOW = (0.10, 0.90)  # the steady state: between these shares of the messages


class DelayProxy(Child):
    """bench/delay_proxy from 127.0.0.1:<a port it picks> to upstream_port with rtt_ms;
    stats() asks for its counters (SIGUSR1) and returns the JSON line it prints."""

    kind = "proxy"

    def __init__(self, binary: Path, upstream_port: int, rtt_ms: float):
        super().__init__()
        self.binary, self.upstream_port, self.rtt_ms = binary, upstream_port, rtt_ms
        self.port = None
        self.seq = 0

    @property
    def url(self) -> str:
        return f"smtp://{LOOPBACK}:{self.port}"

    def lines(self) -> list:
        out = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def start(self) -> "DelayProxy":
        self.spawn_child([self.binary, "--listen", f"{LOOPBACK}:0", "--upstream",
                          f"{LOOPBACK}:{self.upstream_port}", "--rtt-ms", self.rtt_ms])

        def listening():
            return next((x for x in self.lines() if x.get("event") == "listening"), None)

        wait_started(self, listening, "delay_proxy to listen", 10)
        self.port = listening()["port"]
        return self

    def stats(self) -> dict:
        os.kill(self.pid, signal.SIGUSR1)
        want = self.seq + 1

        def report():
            return next((x for x in reversed(self.lines()) if x.get("seq", 0) >= want), None)

        st = wait_for(report, 10, 0.002, "the delay proxy's report")
        self.seq = st["seq"]
        return st

    def cpu_s(self) -> float:
        return proc_cpu_s(self.pid)


class Reaped:
    """A spawned child (smtp-source, node) that this module reaps itself with wait4, for
    its rusage: the CPU it used and its peak RSS."""

    def __init__(self, proc):
        self.proc = proc
        self.rc = self.ru = None

    def poll(self, block: bool = False) -> bool:
        """Whether it has exited (reaping it then)."""
        if self.rc is None:
            pid, status, ru = os.wait4(self.proc.pid, 0 if block else os.WNOHANG)
            if pid == 0:
                return False
            self.rc, self.ru = os.waitstatus_to_exitcode(status), ru
            self.proc.returncode = self.rc
            forget(self.proc)
        return True

    def alive_or_ok(self) -> bool:
        """For far_watch: running, or exited with 0."""
        return not self.poll() or self.rc == 0

    def cpu_s(self) -> float:
        return self.ru.ru_utime + self.ru.ru_stime


class FarRelay:

    # -- the proxy's own check: an SMTP greeting and NOOPs through it

    def far_proxy_check(self, rtt_ms: float) -> dict:
        """Times the greeting (2 RTT after the connect: the handshake, then the 220) and
        10 NOOPs (1 RTT each) through the proxy to a sink."""
        sink = bench_sink()
        proxy = DelayProxy(self.benchbin / "delay_proxy", sink.port, rtt_ms).start()
        try:
            t0 = time.monotonic()
            with socket.create_connection((LOOPBACK, proxy.port), timeout=10) as s:
                f = s.makefile("rb")
                f.readline()
                greeting = time.monotonic() - t0
                noops = []
                for _ in range(10):
                    t0 = time.monotonic()
                    s.sendall(b"NOOP\r\n")
                    f.readline()
                    noops.append(time.monotonic() - t0)
                s.sendall(b"QUIT\r\n")
                f.readline()
            st = proxy.stats()
        finally:
            proxy.cleanup()
            sink.cleanup()
        return {"greeting_ms": greeting * 1e3, "noop_rtt_ms_median": statistics.median(noops) * 1e3,
                "noop_rtt_ms_max": max(noops) * 1e3, "noop_client_bursts": st["client_bursts"]}

    # -- watching a run: steady-state rate and round trips from the sink and the proxy

    def far_watch(self, sink, proxy, n: int, alive, deadline_s: float) -> dict:
        """Polls the sink's count until it reaches n; takes the proxy's counters when the
        count first passes 10 % and 90 % of n. alive() raises or returns False when the
        client died."""
        lo, hi = int(n * WINDOW[0]), int(n * WINDOW[1])
        marks = {}
        t0 = time.monotonic()
        while True:
            c = sink.count()
            now = time.monotonic()
            for name, at in (("lo", lo), ("hi", hi)):
                if name not in marks and c >= at:
                    st = proxy.stats()
                    marks[name] = (time.monotonic(), sink.count(), st)
            if c >= n:
                break
            if not alive():
                raise RuntimeError(f"the client exited after {c}/{n} messages: see {self.tmp}")
            if now - t0 > deadline_s:
                raise RuntimeError(f"only {c}/{n} messages after {now - t0:.0f}s: see {self.tmp}")
            time.sleep(0.02)
        (t_lo, c_lo, s_lo), (t_hi, c_hi, s_hi) = marks["lo"], marks["hi"]
        msgs = max(1, c_hi - c_lo)
        return {"steady_rate": msgs / (t_hi - t_lo),
                "steady_round_trips_per_msg": (s_hi["client_bursts"] - s_lo["client_bursts"]) / msgs,
                "steady_server_bursts_per_msg": (s_hi["server_bursts"] - s_lo["server_bursts"]) / msgs,
                "steady_connections_per_msg": (s_hi["connections"] - s_lo["connections"]) / msgs,
                "steady_seconds": t_hi - t_lo, "seconds_to_all": time.monotonic() - t0}

    def far_finish(self, res: dict, proxy, n: int, sink_cpu_s: float) -> dict:
        """Adds the whole-run counters once the client is gone (its QUITs and closes
        have gone through the proxy)."""
        time.sleep(2.5 * self.far_rtt_ms / 1000)
        st = proxy.stats()
        res.update(round_trips_per_msg_all=st["client_bursts"] / n,
                   server_bursts_per_msg_all=st["server_bursts"] / n,
                   connections=st["connections"], max_open=st["max_open"],
                   upstream_failed=st["upstream_failed"],
                   bytes_up_per_msg=st["bytes_up"] / n, bytes_down_per_msg=st["bytes_down"] / n,
                   proxy_cpu_us_per_msg=(st["cpu_user_s"] + st["cpu_sys_s"]) / n * 1e6,
                   proxy_late_us_mean=st["late_us_mean"], proxy_late_us_max=st["late_us_max"],
                   sink_cpu_us_per_msg=sink_cpu_s / n * 1e6)
        return res

    # -- the three clients

    def far_mailroom_run(self, sessions: int, n: int, tag: str) -> dict:
        self.fill(n)
        sink = bench_sink("-m", "4096")
        proxy = DelayProxy(self.benchbin / "delay_proxy", sink.port, self.far_rtt_ms).start()
        cons = []
        try:
            redis0, sink0 = proc_cpu_s(self.redis.proc.pid), sink.cpu_s()
            cons = self.start_consumers(1, sessions, proxy.url, tag)
            c = cons[0]
            res = self.far_watch(sink, proxy, n, c.alive, self.far_deadline_s())
            stats_key = f"mailroom:{{{QUEUE}}}:stats"
            wait_for(lambda: int(self.redis.r.hget(stats_key, "sent") or 0) >= n, 30,
                     message=f"the stats hash to say {n} sent")
            res["client_cpu_us_per_msg"] = proc_cpu_s(c.pid) / n * 1e6
            res["redis_cpu_us_per_msg"] = (proc_cpu_s(self.redis.proc.pid) - redis0) / n * 1e6
            res["rss_peak_kb"] = proc_status_kb(c.pid, "VmHWM")
            res["threads"] = int(next((ln.split()[1] for ln in Path(f"/proc/{c.pid}/status").read_text()
                                       .splitlines() if ln.startswith("Threads:")), 0))
            sink_cpu = sink.cpu_s() - sink0
            rc = c.stop(timeout=30)
            if rc:
                raise RuntimeError(f"consumer exit code {rc}: see {self.tmp}")
            self.far_finish(res, proxy, n, sink_cpu)
            bad = self.redis.r.hmget(stats_key, "failed", "rejected", "retried")
            if any(int(x or 0) for x in bad):
                raise RuntimeError(f"jobs not sent (failed, rejected, retried: {bad}): see {self.tmp}")
        finally:
            for c in cons:
                c.stop(timeout=5)
            proxy.cleanup()
            sink.cleanup()
        return res

    def far_spawned_run(self, what: str, argv_for_port, n: int) -> dict:
        """A client program that sends n messages to the proxy's port and exits:
        argv_for_port(port) is its command line. Its CPU and peak RSS from its rusage."""
        sink = bench_sink("-m", "4096")
        proxy = DelayProxy(self.benchbin / "delay_proxy", sink.port, self.far_rtt_ms).start()
        child = None
        try:
            sink0 = sink.cpu_s()
            p = spawn(argv_for_port(proxy.port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            child = Reaped(p)
            res = self.far_watch(sink, proxy, n, child.alive_or_ok, self.far_deadline_s())
            child.poll(block=True)
            err = p.stderr.read().decode(errors="replace")
            p.stderr.close()
            if child.rc != 0:
                raise RuntimeError(f"{what} failed ({child.rc}): {err}")
            res["client_cpu_us_per_msg"] = child.cpu_s() / n * 1e6
            res["rss_peak_kb"] = child.ru.ru_maxrss
            self.far_finish(res, proxy, n, sink.cpu_s() - sink0)
        finally:
            if child is not None and child.rc is None:
                finish(child.proc)
            proxy.cleanup()
            sink.cleanup()
        return res

    def far_source_run(self, sessions: int, n: int) -> dict:
        """smtp-source -d: S sessions kept open, no PIPELINING (its man page, BUGS)."""
        return self.far_spawned_run("smtp-source", lambda port: [
            "smtp-source", "-d", "-s", sessions, "-m", n, "-l", self.msg_l, f"{LOOPBACK}:{port}"], n)

    def far_ideal_run(self, sessions: int, n: int) -> dict:
        """pipeline_client.py: one round trip per message and nothing else."""
        return self.far_spawned_run("pipeline_client.py", lambda port: [
            sys.executable, Path(__file__).with_name("pipeline_client.py"), "--port", port,
            "--sessions", sessions, "--messages", n, "--size", self.msg_bytes], n)

    def far_bullmq_run(self, sessions: int, n: int, tag: str) -> dict:
        self.redis.r.flushdb()
        sink = bench_sink("-m", "4096")
        proxy = DelayProxy(self.benchbin / "delay_proxy", sink.port, self.far_rtt_ms).start()
        log = self.tmp / f"bullmq-{tag}.log"
        child = None
        try:
            sink0 = sink.cpu_s()
            p = spawn([self.peer["node_path"], self.peer["dir"] / "bullmq_send.js", "--redis",
                       self.redis.url, "--smtp", f"{LOOPBACK}:{proxy.port}", "--concurrency",
                       sessions, "--jobs", n, "--email", self.peer_email_path], log=log)
            child = Reaped(p)
            # Redis's CPU from the worker's start: the filling is left out, as for mailroom
            wait_for(lambda: '"event":"started"' in log.read_text() or not child.alive_or_ok(), 120,
                     0.005, "bullmq_send.js to fill its queue")
            redis0 = proc_cpu_s(self.redis.proc.pid)
            res = self.far_watch(sink, proxy, n, child.alive_or_ok, self.far_deadline_s() + 60)
            wait_for(child.poll, 60, 0.02, "bullmq_send.js to exit")
            rc, ru = child.rc, child.ru
            lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
            end = next((x for x in lines if x.get("event") == "done"), None)
            if rc != 0 or not end or end["sent"] != n:
                raise RuntimeError(f"bullmq_send.js failed ({rc}): {log.read_text()[-2000:]}")
            # the draining's CPU: node's own figures at the end minus at the worker's start
            # (loading the modules and filling the queue are left out, as for mailroom)
            start = next(x for x in lines if x.get("event") == "started")
            res["client_cpu_us_per_msg"] = (end["cpu_user_s"] + end["cpu_sys_s"] - start["cpu_user_s"]
                                            - start["cpu_sys_s"]) / n * 1e6
            res["client_cpu_us_per_msg_whole_process"] = (ru.ru_utime + ru.ru_stime) / n * 1e6
            res["redis_cpu_us_per_msg"] = (proc_cpu_s(self.redis.proc.pid) - redis0) / n * 1e6
            res["rss_peak_kb"] = ru.ru_maxrss
            self.far_finish(res, proxy, n, sink.cpu_s() - sink0)
        finally:
            if child is not None and child.rc is None:
                finish(p)
            proxy.cleanup()
            sink.cleanup()
        return res

    def far_deadline_s(self) -> float:
        # a client without pipelining needs about 4 round trips a message
        return 60 + self.far_per_session * 10 * self.far_rtt_ms / 1000

    # -- the peer: node, npm install into build-bench/peer, the email it sends

    def prepare_peer(self) -> dict:
        """Installs the pinned packages of bench/peer/package.json (versions of their
        dependencies from package-lock.json) into build-bench/peer, again only when one
        of the two changed; returns what the report says about it."""
        pkg = json.loads((PEER_SRC / "package.json").read_text())
        info = {"available": False, "pins": pkg["dependencies"]}
        node, npm = shutil.which("node"), shutil.which("npm")
        if not node or not npm:
            info["reason"] = "node or npm not installed"
            return info
        cp = subprocess.run([node, "--version"], capture_output=True, text=True)
        info["node"] = cp.stdout.strip()
        major = int(info["node"].lstrip("v").split(".")[0] or 0) if cp.returncode == 0 else 0
        if major < 20:
            info["reason"] = f"node {info['node'] or '?'} is older than 20 (nodemailer needs 20)"
            return info
        d = self.build / "peer"
        d.mkdir(parents=True, exist_ok=True)
        for f in ("package.json", "package-lock.json", "bullmq_send.js"):
            if (PEER_SRC / f).exists():
                shutil.copyfile(PEER_SRC / f, d / f)
        stamp = d / ".installed"
        want = hashlib.sha256(b"".join((PEER_SRC / f).read_bytes() for f in ("package.json", "package-lock.json")
                                       if (PEER_SRC / f).exists())).hexdigest()
        if not (d / "node_modules").is_dir() or not stamp.exists() or stamp.read_text() != want:
            self.log(f"   npm install into {d} (bullmq {pkg['dependencies']['bullmq']}, "
                     f"nodemailer {pkg['dependencies']['nodemailer']})")
            try:
                cp = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--omit=dev",
                                     "--loglevel=error"], cwd=d, capture_output=True, text=True,
                                    timeout=600)
            except subprocess.TimeoutExpired:
                info["reason"] = "npm install did not finish in 10 minutes"
                return info
            if cp.returncode != 0:
                info["reason"] = f"npm install failed: {(cp.stderr or cp.stdout).strip()[-300:]}"
                return info
            stamp.write_text(want)
        for name in pkg["dependencies"]:
            with contextlib.suppress(OSError, ValueError, KeyError):
                info.setdefault("installed", {})[name] = json.loads(
                    (d / "node_modules" / name / "package.json").read_text())["version"]
        info.update(available=True, node_path=node, dir=d)
        return info

    def peer_email(self) -> Path:
        """The fields of one mailroom bench job (as bench_batch fill writes it), as JSON
        for the peer, so that both send the same email."""
        path = self.tmp / "peer-email.json"
        self.fill(1)
        job = json.loads(self.redis.r.lindex(f"mailroom:{{{QUEUE}}}:pending", 0))
        path.write_text(json.dumps({k: job[k] for k in ("to", "from", "from_name", "subject",
                                                        "text", "html")}, ensure_ascii=False))
        self.redis.r.flushdb()
        return path

    # -- the part

    def consumer_info(self) -> dict:
        b = Path(self.consumer_bin)
        cp = subprocess.run([b, "--version"], capture_output=True, text=True)
        ldd = subprocess.run(["ldd", b], capture_output=True, text=True).stdout
        return {"binary": str(b), "label": self.args.consumer_label,
                "version": cp.stdout.strip(), "links_libcurl": "libcurl" in ldd,
                "sha256": hashlib.sha256(b.read_bytes()).hexdigest()[:16],
                "mtime": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(b.stat().st_mtime))}

    def bench_far(self) -> None:
        rtt, per = self.args.far_rtt_ms, self.args.far_per_session
        self.far_rtt_ms, self.far_per_session = rtt, per
        sessions = self.args.far_sessions
        self.log(f"\n== 7. far relay: smtp-sink behind bench/delay_proxy at {rtt:g} ms RTT; "
                 f"{per} messages per session at {', '.join(map(str, sessions))} sessions; "
                 f"{self.args.runs} runs, alternating mailroom, smtp-source -d, the ideal pipelining "
                 f"client, BullMQ + nodemailer")
        check = self.far_proxy_check(rtt)
        self.log(f"   through the proxy: greeting after {check['greeting_ms']:.1f} ms (2 RTT), "
                 f"NOOP round trip {check['noop_rtt_ms_median']:.2f} ms median, "
                 f"{check['noop_rtt_ms_max']:.2f} ms at most")
        cons = self.consumer_info()
        self.log(f"   consumer {cons['binary']} ({cons['label'] or 'this build'}; "
                 f"{'links' if cons['links_libcurl'] else 'does not link'} libcurl)")
        if self.args.no_peer:
            self.peer = {"available": False, "reason": "--no-peer"}
        else:
            self.peer = self.prepare_peer()
        if not self.peer["available"]:
            self.log(f"   BullMQ + nodemailer: not run ({self.peer['reason']})")
        else:
            self.peer_email_path = self.peer_email()
        runs: dict = {s: {"mailroom": [], "smtp_source": [], "ideal": [], "bullmq": []} for s in sessions}
        bullmq_errors: dict = {}
        for rep in range(self.args.runs):
            for s in sessions:
                n = s * per
                limit = s / (rtt / 1000)
                row = runs[s]
                m = self.far_mailroom_run(s, n, f"far{s}r{rep}")
                row["mailroom"].append(m)
                src = self.far_source_run(s, n)
                row["smtp_source"].append(src)
                ideal = self.far_ideal_run(s, n)
                row["ideal"].append(ideal)
                line = (f"   run {rep + 1}, {s:>3} sessions (limit {limit:5.0f}/s): mailroom "
                        f"{m['steady_rate']:6.0f}/s {m['steady_round_trips_per_msg']:.2f} rt/msg; "
                        f"smtp-source {src['steady_rate']:6.0f}/s {src['steady_round_trips_per_msg']:.2f}; "
                        f"ideal {ideal['steady_rate']:6.0f}/s {ideal['steady_round_trips_per_msg']:.2f}")
                if self.peer["available"] and s not in bullmq_errors:
                    try:
                        b = self.far_bullmq_run(s, n, f"{s}r{rep}")
                        row["bullmq"].append(b)
                        line += f"; BullMQ {b['steady_rate']:6.0f}/s {b['steady_round_trips_per_msg']:.2f}"
                    except (RuntimeError, AssertionError) as e:
                        bullmq_errors[s] = str(e)[-500:]
                        line += "; BullMQ failed (see the report)"
                print(line, flush=True)
        far = self.results["far_relay"] = self.far_summary(runs, check, cons, bullmq_errors)
        self.json_line("far_relay", {"rtt_ms": far["rtt_ms"], "configs": [
            {"sessions": c["sessions"], "limit_rate": c["limit_rate"],
             **{f"{side}_rate": c[side].get("rate") for side in ("mailroom", "smtp_source", "ideal", "bullmq")},
             **{f"{side}_rt": c[side].get("steady_round_trips_per_msg")
                for side in ("mailroom", "smtp_source", "ideal", "bullmq")}} for c in far["configs"]]})

    @staticmethod
    def far_side(rs: list, limit: float) -> dict:
        if not rs:
            return {}
        med = lambda k: statistics.median(r[k] for r in rs if k in r)
        out = {"runs": len(rs), "rate": med("steady_rate"), "rates": [r["steady_rate"] for r in rs]}
        out["ratio_to_limit"] = out["rate"] / limit
        for k in ("steady_round_trips_per_msg", "round_trips_per_msg_all", "steady_connections_per_msg",
                  "client_cpu_us_per_msg", "sink_cpu_us_per_msg", "proxy_cpu_us_per_msg",
                  "proxy_late_us_mean", "bytes_up_per_msg", "steady_server_bursts_per_msg"):
            out[k] = med(k)
        if any("redis_cpu_us_per_msg" in r for r in rs):
            out["redis_cpu_us_per_msg"] = med("redis_cpu_us_per_msg")
        out["rss_peak_kb"] = max(r["rss_peak_kb"] for r in rs)
        out["proxy_late_us_max"] = max(r["proxy_late_us_max"] for r in rs)
        out["connections"] = statistics.median(r["connections"] for r in rs)
        out["upstream_failed"] = sum(r["upstream_failed"] for r in rs)
        return out

    def far_summary(self, runs: dict, check: dict, cons: dict, bullmq_errors: dict) -> dict:
        rtt = self.far_rtt_ms
        configs = []
        for s, row in runs.items():
            limit = s / (rtt / 1000)
            c = {"sessions": s, "n": s * self.far_per_session, "limit_rate": limit,
                 "mailroom": self.far_side(row["mailroom"], limit),
                 "smtp_source": self.far_side(row["smtp_source"], limit),
                 "ideal": self.far_side(row["ideal"], limit),
                 "bullmq": self.far_side(row["bullmq"], limit)}
            # seconds a session spends per message (Little's law: sessions / rate)
            for side in ("mailroom", "smtp_source", "ideal", "bullmq"):
                if c[side]:
                    c[side]["seconds_per_msg_per_session"] = s / c[side]["rate"]
            if row["bullmq"] and len(row["bullmq"]) == len(row["mailroom"]):
                c["mailroom_vs_bullmq"] = statistics.median(
                    m["steady_rate"] / b["steady_rate"] for m, b in zip(row["mailroom"], row["bullmq"]))
            elif s in bullmq_errors:
                c["bullmq"] = {"error": bullmq_errors[s]}
            elif not self.peer["available"]:
                c["bullmq"] = {"skipped": self.peer["reason"]}
            for side in ("smtp_source", "ideal"):
                c[f"mailroom_vs_{side}"] = statistics.median(
                    m["steady_rate"] / x["steady_rate"] for m, x in zip(row["mailroom"], row[side]))
            configs.append(c)
        peer = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.peer.items()
                if k not in ("node_path",)}
        return {"rtt_ms": rtt, "per_session": self.far_per_session, "runs": self.args.runs,
                "window": list(WINDOW), "proxy_check": check, "consumer": cons, "peer": peer,
                "consumer_options": "--concurrency S --block-timeout 100ms (defaults otherwise: "
                                    "--max-per-connection 100)",
                "smtp_sink": "smtp-sink -c -m 4096 (PIPELINING offered)",
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg_start": self.load_start,
                "configs": configs}

    def far_print(self, far: dict) -> None:
        print(f"\n   far relay, {far['rtt_ms']:g} ms RTT (medians of {far['runs']} runs; steady state "
              f"{int(WINDOW[0] * 100)}-{int(WINDOW[1] * 100)} % of the messages; rt: client bursts "
              f"per message on the wire)")
        print(f"   {'sessions':>8} {'limit/s':>8} | {'mailroom':>8} {'ratio':>5} {'rt':>5} {'cpu us':>6} "
              f"{'RSS MB':>6} | {'source':>7} {'ratio':>5} {'rt':>5} | {'ideal':>7} {'ratio':>5} {'rt':>5} | "
              f"{'BullMQ':>7} {'ratio':>5} {'rt':>5} {'cpu us':>6} | {'vs BullMQ':>9}")
        for c in far["configs"]:
            m, s, b, i = c["mailroom"], c["smtp_source"], c["bullmq"], c["ideal"]
            bq = (f"{b['rate']:>7.0f} {b['ratio_to_limit']:>5.2f} {b['steady_round_trips_per_msg']:>5.2f} "
                  f"{b['client_cpu_us_per_msg']:>6.0f}" if "rate" in b else f"{'-':>7} {'':>5} {'':>5} {'':>6}")
            vs = f"{c['mailroom_vs_bullmq']:>9.2f}" if "mailroom_vs_bullmq" in c else f"{'-':>9}"
            print(f"   {c['sessions']:>8} {c['limit_rate']:>8.0f} | {m['rate']:>8.0f} {m['ratio_to_limit']:>5.2f} "
                  f"{m['steady_round_trips_per_msg']:>5.2f} {m['client_cpu_us_per_msg']:>6.0f} "
                  f"{m['rss_peak_kb'] / 1024:>6.1f} | {s['rate']:>7.0f} {s['ratio_to_limit']:>5.2f} "
                  f"{s['steady_round_trips_per_msg']:>5.2f} | {i['rate']:>7.0f} {i['ratio_to_limit']:>5.2f} "
                  f"{i['steady_round_trips_per_msg']:>5.2f} | {bq} | {vs}")
        for side, name in (("mailroom", "mailroom"), ("ideal", "the ideal client")):
            px = ", ".join(f"{c[side]['proxy_cpu_us_per_msg']:.0f} us at {c[side]['rate']:.0f}/s"
                           for c in far["configs"])
            print(f"   the proxy's own CPU per message with {name}: {px}")
        late = statistics.median(c["mailroom"]["proxy_late_us_mean"] for c in far["configs"])
        print(f"   a chunk left the proxy {late:.0f} us after its due time on average (median over the "
              f"mailroom runs); the proxy check: NOOP round trip {far['proxy_check']['noop_rtt_ms_median']:.2f} ms")

    # -- Markdown for docs/performance.md

    SIZING_RATES = (10, 100, 1000, 3000)
    SIZING_RTTS_MS = (20, 50, 100, 250)

    @staticmethod
    def far_markdown(far: dict) -> str:
        """The far-relay tables of docs/performance.md, filled from a run: the results
        table, and the sizing table (workers = emails/s x seconds per message, where a
        message takes the measured round trips per message x RTT plus the local time
        measured at this RTT)."""
        cons = far["consumer"]
        label = cons.get("label") or "this build"
        rows = ["| sessions | limit (sessions / RTT) | mailroom emails/s | ratio | round trips / msg "
                "| consumer CPU µs/job | consumer RSS | smtp-source -d | ratio | rt / msg | ideal pipelining "
                "| ratio | rt / msg | BullMQ + nodemailer | ratio | rt / msg | its CPU µs/job | its RSS "
                "| mailroom ÷ BullMQ |",
                "| " + " | ".join(["---"] * 19) + " |"]
        for c in far["configs"]:
            m, s, i, b = c["mailroom"], c["smtp_source"], c["ideal"], c["bullmq"]
            bq = (f"{b['rate']:,.0f} | {b['ratio_to_limit']:.2f} | {b['steady_round_trips_per_msg']:.2f} | "
                  f"{b['client_cpu_us_per_msg']:,.0f} | {b['rss_peak_kb'] / 1024:.0f} MB | "
                  f"{c['mailroom_vs_bullmq']:.2f}" if "rate" in b else "— | | | | | ")
            rows.append(f"| {c['sessions']} | {c['limit_rate']:,.0f} | {m['rate']:,.0f} | {m['ratio_to_limit']:.2f} | "
                        f"{m['steady_round_trips_per_msg']:.2f} | {m['client_cpu_us_per_msg']:.0f} | "
                        f"{m['rss_peak_kb'] / 1024:.1f} MB | {s['rate']:,.0f} | {s['ratio_to_limit']:.2f} | "
                        f"{s['steady_round_trips_per_msg']:.2f} | {i['rate']:,.0f} | {i['ratio_to_limit']:.2f} | "
                        f"{i['steady_round_trips_per_msg']:.2f} | {bq} |")
        rtt_s = far["rtt_ms"] / 1000
        # seconds per message per session at the measured RTT, from the largest session
        # count that was not CPU-bound (the one closest to its limit)
        best = max(far["configs"], key=lambda c: c["mailroom"]["ratio_to_limit"])
        per_msg = best["mailroom"]["seconds_per_msg_per_session"]
        rts = best["mailroom"]["steady_round_trips_per_msg"]
        local = max(0.0, per_msg - rts * rtt_s)
        sizing = [f"Per message, {label}: {per_msg * 1000:.1f} ms at {far['rtt_ms']:g} ms RTT "
                  f"({best['sessions']} sessions) = {rts:.2f} round trips × RTT + {local * 1000:.1f} ms "
                  f"(the rest: local work, and connecting again every 100 messages); "
                  f"workers = emails/s × ({rts:.2f} × RTT + {local * 1000:.1f} ms), "
                  f"as processes × concurrency beyond 256:", "",
                  "| emails/s | " + " | ".join(f"relay {r} ms RTT" for r in FarRelay.SIZING_RTTS_MS) + " |",
                  "| --- | " + " | ".join(["---"] * len(FarRelay.SIZING_RTTS_MS)) + " |"]
        for rate in FarRelay.SIZING_RATES:
            cells = []
            for r in FarRelay.SIZING_RTTS_MS:
                w = max(1, math.ceil(rate * (rts * r / 1000 + local)))
                procs = math.ceil(w / 256)
                cells.append(f"{w:,}" + (f" ({procs} × {math.ceil(w / procs)})" if w > 256 else ""))
            sizing.append(f"| {rate:,} | " + " | ".join(cells) + " |")
        return "\n".join(rows) + "\n\n" + "\n".join(sizing) + "\n"
