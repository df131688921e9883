"""Parts 3 to 6 of the benchmarks, the consumer end to end against smtp-sink (tests/
support): e2e (N queued jobs, then consumers, until all are sent; against smtp-source
with as many sessions, the limit), scaling (the same at concurrency 1..64 and 1..4
processes), cost (Redis commands, CPU and RSS per job) and slow (a relay with 1 s DATA
latency: emails/s against workers / latency); with the message-size calibration that
makes smtp-source send messages as large as the consumer's."""

from __future__ import annotations

import os
import statistics
import subprocess
import time

from context import QUEUE, system_busy_s
from support.paths import LOOPBACK
from support.procs import forget, proc_cpu_s, proc_status_kb, spawn, wait_for
from support.smtp_sink import SmtpSink


def bench_sink(*extra_args: str, dump: bool = False) -> SmtpSink:
    """A started smtp-sink with running counters (count())."""
    return SmtpSink(*extra_args, dump=dump, counters=True, backlog=1024).start()


class EndToEnd:
    # -- message size calibration for smtp-source

    def calibrate_message(self) -> None:
        """Sends one job through a consumer and one smtp-source message into dumping
        sinks, and picks smtp-source's -l so that both messages have the same size."""
        sink = bench_sink(dump=True)
        try:
            self.fill(1)
            cons = self.start_consumers(1, 1, sink.url, "calib")
            wait_for(lambda: sink.count() >= 1, 20, message="the calibration message")
            cons[0].stop()
            ours = wait_for(sink.dumps, 5, message="the dump file")
            ours_size = ours[0].stat().st_size
            ours_text = ours[0].read_bytes()
            for f in ours:
                f.unlink()
            subprocess.run(["smtp-source", "-m", "1", "-l", "1000", f"{LOOPBACK}:{sink.port}"],
                           check=True, stdout=subprocess.DEVNULL)
            src = wait_for(sink.dumps, 5, message="the smtp-source dump")[0]
            time.sleep(0.1)
            src_size = src.stat().st_size
        finally:
            sink.cleanup()
        # both dumps carry smtp-sink's own headers; the difference is in the messages
        self.msg_l = max(100, 1000 + ours_size - src_size)
        lines = ours_text.count(b"\n")
        self.msg_bytes = ours_size + lines  # dumps have LF line ends; the wire has CRLF
        self.results["message"] = {"consumer_message_dump_bytes": ours_size,
                                   "approx_wire_bytes": self.msg_bytes,
                                   "smtp_source_l": self.msg_l}
        self.log(f"   one job makes a MIME message of about {self.msg_bytes} bytes on the wire; "
                 f"smtp-source gets -l {self.msg_l} for the same size")

    # -- one end-to-end run

    def e2e_run(self, procs: int, conc: int, n: int, tag: str, sample_rss: bool = False,
                wrap=None, on_started=None, sink_args=()) -> dict:
        fill = self.fill(n)
        sink = bench_sink(*sink_args)
        r = self.redis.r
        try:
            r.config_resetstat()
            redis_cpu0, sink_cpu0, busy0 = proc_cpu_s(self.redis.proc.pid), sink.cpu_s(), system_busy_s()
            t0 = time.monotonic()
            cons = self.start_consumers(procs, conc, sink.url, tag, wrap=wrap)
            if on_started:
                on_started(cons)
            samples = []  # (t, sent, rss_kb of consumer 0)
            next_sample = 0.0
            sent = 0
            deadline = t0 + max(120, n / 50)
            stats_key = f"mailroom:{{{QUEUE}}}:stats"
            while True:
                v = r.hmget(stats_key, "sent", "failed", "rejected", "retried")
                sent = int(v[0] or 0)
                bad = sum(int(x or 0) for x in v[1:])
                now = time.monotonic()
                if sample_rss and now >= next_sample:
                    samples.append((now - t0, sent, proc_status_kb(cons[0].pid, "VmRSS")))
                    next_sample = now + 0.5
                if sent >= n:
                    break
                if bad:
                    raise RuntimeError(f"{bad} jobs not sent (failed/rejected/retried): see {self.tmp}")
                for c in cons:
                    if not c.alive():
                        raise RuntimeError(f"a consumer exited with {c.proc.returncode}: see {self.tmp}")
                if now > deadline:
                    raise RuntimeError(f"only {sent}/{n} sent after {now - t0:.0f}s")
                time.sleep(0.01)
            t1 = time.monotonic()
            stats = self.redis.cmdstats()
            cpu = sum(proc_cpu_s(c.pid) for c in cons)
            redis_cpu = proc_cpu_s(self.redis.proc.pid) - redis_cpu0
            sink_cpu = sink.cpu_s() - sink_cpu0
            busy = system_busy_s() - busy0
            hwm = [proc_status_kb(c.pid, "VmHWM") for c in cons]
            rss = [proc_status_kb(c.pid, "VmRSS") for c in cons]
            if sample_rss:
                samples.append((t1 - t0, sent, rss[0]))
            rcs = [c.stop(timeout=30) for c in cons]
            if any(rcs):
                raise RuntimeError(f"consumer exit codes {rcs}: see {self.tmp}")
            wait_for(lambda: sink.count() >= n, 10, message=f"smtp-sink to count {n}")
            accepted = sink.count()
        finally:
            sink.cleanup()
        secs = t1 - t0
        # every job record says sent (checked outside the timed part)
        states = self.job_states()
        if states.get("sent", 0) != n or accepted != n:
            raise RuntimeError(f"after the run: records {states}, sink accepted {accepted}, expected {n}")
        top = {k: stats.get(k, {}).get("calls", 0) for k in ("blmove", "evalsha", "eval")}
        # top-level calls that go out in the same write as a script, so add no wait: the
        # take FINISH carries (LMOVE) and the suppression lookup BEGIN carries (MGET); no
        # script runs either
        along = {k: stats.get(k, {}).get("calls", 0) for k in ("lmove", "mget")}
        # top-level calls of the housekeeper besides its scripts (its orphan check)
        top_housekeeping = {k: stats.get(k, {}).get("calls", 0) for k in ("lrange",)}
        # HGET is not among them: this script's own HGETs (job_states) come after the
        # snapshot, so every HGET in it is a script's.
        ours = {"hmget", "info", "config|resetstat", "config", "ping", "select", "auth", "hello",
                "client|setname", "flushdb", "scan", "client|setinfo"}
        inside = {k: v["calls"] for k, v in stats.items()
                  if k not in top and k not in top_housekeeping and k not in along
                  and k not in ours and v["calls"]}
        # Housekeeping: each consumer's main thread runs HEARTBEAT (which calls TIME once)
        # and PROMOTE once a second. Idle BLMOVEs: calls beyond the N that took a job (each
        # job was taken once: none retried, checked above).
        housekeeping = 2 * inside.get("time", 0) + sum(top_housekeeping.values())
        idle_blmove = max(0, top["blmove"] - n)
        top.update(top_housekeeping)
        return {
            "procs": procs, "concurrency": conc, "n": n, "seconds": secs, "rate": n / secs,
            "fill_rate": fill["jobs_per_s"],
            "consumer_cpu_us_per_job": cpu / n * 1e6,
            "redis_cpu_us_per_job": redis_cpu / n * 1e6,
            "sink_cpu_us_per_job": sink_cpu / n * 1e6,
            "machine_busy_cores": busy / secs,
            "other_busy_cores": max(0.0, (busy - cpu - redis_cpu - sink_cpu) / secs),
            "top_level_calls": top, "inside_script_calls": inside, "along_calls": along,
            "along_per_job": sum(along.values()) / n,
            "round_trips_per_job_raw": sum(top.values()) / n,
            "round_trips_per_job": (sum(top.values()) - housekeeping - idle_blmove) / n,
            "housekeeping_calls": housekeeping, "idle_blmove_calls": idle_blmove,
            "inside_calls_per_job": sum(inside.values()) / n,
            "vmhwm_kb": hwm, "vmrss_kb": rss, "rss_samples": samples,
        }


    def source_run(self, sessions: int, n: int) -> dict:
        """The limit: smtp-source with the same number of parallel sessions, reusing them."""
        sink = bench_sink()
        try:
            sink_cpu0, busy0 = sink.cpu_s(), system_busy_s()
            t0 = time.monotonic()
            p = spawn(["smtp-source", "-d", "-s", sessions, "-m", n, "-l", self.msg_l,
                       f"{LOOPBACK}:{sink.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, ru = os.wait4(p.pid, 0)  # its rusage: the CPU it used
            t1 = time.monotonic()
            p.returncode = os.waitstatus_to_exitcode(status)
            forget(p)
            if p.returncode != 0:
                raise RuntimeError(f"smtp-source failed: {p.stderr.read().decode(errors='replace')}")
            p.stderr.close()
            wait_for(lambda: sink.count() >= n, 10, message=f"smtp-sink to count {n}")
            sink_cpu = sink.cpu_s() - sink_cpu0
            busy = system_busy_s() - busy0
        finally:
            sink.cleanup()
        secs = t1 - t0
        src_cpu = ru.ru_utime + ru.ru_stime
        return {"sessions": sessions, "n": n, "seconds": secs, "rate": n / secs,
                "source_cpu_us_per_msg": src_cpu / n * 1e6,
                "sink_cpu_us_per_msg": sink_cpu / n * 1e6,
                "machine_busy_cores": busy / secs,
                "other_busy_cores": max(0.0, (busy - src_cpu - sink_cpu) / secs)}

    # -- 3 + 5. end to end and scaling

    def bench_e2e(self) -> None:
        quick = self.args.quick
        configs = [(1, 1), (1, 4), (1, 16), (2, 16)]
        if "scaling" in self.args.only:
            configs = [(1, c) for c in ((1, 2, 4, 8, 16, 32, 64) if not quick else (1, 4, 16, 64))]
            configs += [(p, 16) for p in ((2, 3, 4) if not quick else (2, 4))]
        n = self.args.e2e_n
        self.log(f"\n== 3/5. end to end: {n} queued jobs, then consumers (--block-timeout 100ms, "
                 f"TLS none), until all are sent;\n   limit: smtp-source -d -s <sessions> -m {n} "
                 f"-l {self.msg_l} to a fresh smtp-sink; {self.args.runs} runs, alternating")
        runs: dict = {cfg: [] for cfg in configs}
        limits: dict = {}
        for rep in range(self.args.runs):
            for procs, conc in configs:
                s = procs * conc
                res = self.e2e_run(procs, conc, n, f"e2e{procs}x{conc}r{rep}")
                lim = self.source_run(s, n)
                res["limit_rate"] = lim["rate"]
                res["ratio"] = res["rate"] / lim["rate"]
                res["limit"] = lim
                runs[(procs, conc)].append(res)
                limits.setdefault(s, []).append(lim)
                print(f"   run {rep + 1}: {procs} x {conc:<3} {res['rate']:8.0f} emails/s   "
                      f"smtp-source -s {s:<3} {lim['rate']:8.0f}/s   ratio {res['ratio']:.2f}", flush=True)
        out = []
        for (procs, conc), rs in runs.items():
            out.append(self.summarise(procs, conc, rs))
        self.results["e2e"] = out
        print(f"   {'procs x conc':>12} {'emails/s':>9} {'limit/s':>9} {'ratio':>6}")
        for e in out:
            print(f"   {e['procs']:>5} x {e['concurrency']:<4} {e['rate']:>9.0f} {e['limit_rate']:>9.0f} {e['ratio']:>6.2f}")
        self.json_line("e2e", {"message_bytes": self.msg_bytes, "smtp_source_l": self.msg_l,
                               "postfix": self.postfix, "redis_version": self.redis.version,
                               "configs": [{k: e[k] for k in ("procs", "concurrency", "n", "rate",
                                                              "limit_rate", "ratio")} for e in out]})


    @staticmethod
    def summarise(procs, conc, rs) -> dict:
        med = lambda key: statistics.median(r[key] for r in rs)
        return {
            "procs": procs, "concurrency": conc, "sessions": procs * conc, "n": rs[0]["n"],
            "runs": len(rs), "rate": med("rate"), "limit_rate": med("limit_rate"),
            "ratio": med("ratio"),
            "consumer_cpu_us_per_job": med("consumer_cpu_us_per_job"),
            "redis_cpu_us_per_job": med("redis_cpu_us_per_job"),
            "sink_cpu_us_per_job": med("sink_cpu_us_per_job"),
            "busy_cores": med("machine_busy_cores"),
            "other_busy_cores": med("other_busy_cores"),
            "round_trips_per_job": med("round_trips_per_job"),
            "limit_source_cpu_us_per_msg": statistics.median(r["limit"]["source_cpu_us_per_msg"] for r in rs),
            "limit_sink_cpu_us_per_msg": statistics.median(r["limit"]["sink_cpu_us_per_msg"] for r in rs),
            "limit_busy_cores": statistics.median(r["limit"]["machine_busy_cores"] for r in rs),
            "vmhwm_kb_max": max(max(r["vmhwm_kb"]) for r in rs),
            "rates": [r["rate"] for r in rs], "limit_rates": [r["limit_rate"] for r in rs],
        }

    # -- 6. a slow relay: concurrency is what buys throughput

    def bench_slow_relay(self) -> None:
        """smtp-sink -w 1 answers DATA after 1 s: a relay with 1 s latency. Little's law says
        emails/s = workers / latency; this checks that the consumer gets there."""
        self.log("\n== 6. slow relay: smtp-sink -w 1 (every DATA answered after 1 s); "
                 "emails/s vs Little's law (workers / 1 s)")
        out = []
        for procs, conc in ((1, 16), (1, 64), (2, 64)):
            workers = procs * conc
            rates = []
            for rep in range(self.args.runs):
                n = workers * 4  # about 4 s per run
                res = self.e2e_run(procs, conc, n, f"slow{procs}x{conc}r{rep}", sink_args=("-w", "1"))
                rates.append(res["rate"])
            rate = statistics.median(rates)
            out.append({"procs": procs, "concurrency": conc, "workers": workers, "latency_s": 1.0,
                        "rate": rate, "expected": workers / 1.0, "ratio": rate / workers, "rates": rates})
            print(f"   {procs} x {conc:<3} workers {workers:<4} {rate:7.1f} emails/s  "
                  f"(workers / latency = {workers}/s; {rate / workers:.2f} of it)", flush=True)
        self.results["slow_relay"] = out
        self.json_line("slow_relay", {"configs": out})

    # -- 4. cost per job

    def cost_run(self, n: int, tag: str) -> dict:
        res = self.e2e_run(1, 16, n, tag, sample_rss=True)
        samples = res.pop("rss_samples")
        warm = next((x for x in samples if x[1] >= n * 0.1), samples[0])
        end = samples[-1]
        res.update(rss_warm_kb=warm[2], rss_end_kb=end[2], rss_max_sampled_kb=max(x[2] for x in samples),
                   rss_samples=[[round(t, 1), k, kb] for t, k, kb in samples[:: max(1, len(samples) // 60)]])
        res["rss_flat"] = end[2] - warm[2] <= max(1024, warm[2] * 0.05)
        return res

    def bench_cost(self) -> None:
        n, runs = self.args.cost_n, self.args.runs
        self.log(f"\n== 4. cost per job: one consumer at concurrency 16, {n} jobs x {runs} runs"
                 + (f", then one run of {self.args.long_n} jobs for the memory curve" if self.args.long else ""))
        rs = []
        for r in range(runs):
            res = self.cost_run(n, f"cost{r}")
            rs.append(res)
            print(f"   run {r + 1}: {n} jobs in {res['seconds']:.1f}s ({res['rate']:.0f} emails/s); CPU per job: "
                  f"consumer {res['consumer_cpu_us_per_job']:.0f} us, Redis {res['redis_cpu_us_per_job']:.0f} us, "
                  f"smtp-sink {res['sink_cpu_us_per_job']:.0f} us; RSS {res['rss_warm_kb'] / 1024:.1f} -> "
                  f"{res['rss_end_kb'] / 1024:.1f} MB, peak {res['vmhwm_kb'][0] / 1024:.1f} MB", flush=True)
        med = lambda key: statistics.median(x[key] for x in rs)
        mid = sorted(rs, key=lambda x: x["round_trips_per_job"])[len(rs) // 2]
        top, inside = mid["top_level_calls"], mid["inside_script_calls"]
        cost = {
            "n": n, "runs": runs, "rate": med("rate"),
            "consumer_cpu_us_per_job": med("consumer_cpu_us_per_job"),
            "redis_cpu_us_per_job": med("redis_cpu_us_per_job"),
            "sink_cpu_us_per_job": med("sink_cpu_us_per_job"),
            "round_trips_per_job": med("round_trips_per_job"),
            "round_trips_per_job_raw": med("round_trips_per_job_raw"),
            "along_per_job": med("along_per_job"), "along_calls": mid["along_calls"],
            "inside_calls_per_job": med("inside_calls_per_job"),
            "top_level_calls": top, "inside_script_calls": inside,
            "housekeeping_calls": mid["housekeeping_calls"], "idle_blmove_calls": mid["idle_blmove_calls"],
            "vmhwm_kb_max": max(x["vmhwm_kb"][0] for x in rs),
            "rss_warm_kb": med("rss_warm_kb"), "rss_end_kb": med("rss_end_kb"),
            "rss_flat": all(x["rss_flat"] for x in rs),
            "runs_detail": [{k: v for k, v in x.items() if k not in ("rss_samples", "top_level_calls",
                                                                   "inside_script_calls")} for x in rs],
        }
        if self.args.long:
            ln = self.args.long_n
            res = self.cost_run(ln, "costlong")
            cost["long"] = {k: res[k] for k in ("n", "seconds", "rate", "consumer_cpu_us_per_job",
                                                "redis_cpu_us_per_job", "sink_cpu_us_per_job",
                                                "round_trips_per_job", "vmhwm_kb", "rss_warm_kb",
                                                "rss_end_kb", "rss_max_sampled_kb", "rss_flat", "rss_samples")}
            cost["vmhwm_kb_max"] = max(cost["vmhwm_kb_max"], res["vmhwm_kb"][0])
            cost["rss_flat"] = res["rss_flat"]
            print(f"   long run: {ln} jobs in {res['seconds']:.1f}s ({res['rate']:.0f} emails/s); RSS "
                  f"{res['rss_warm_kb'] / 1024:.1f} MB after 10 % of the jobs, {res['rss_end_kb'] / 1024:.1f} MB "
                  f"at the end, peak {res['vmhwm_kb'][0] / 1024:.1f} MB")
        self.results["cost"] = cost
        print(f"   medians: Redis round trips per sent job {cost['round_trips_per_job']:.3f} (all top-level "
              f"calls: {cost['round_trips_per_job_raw']:.4f} = blmove {top['blmove'] / n:.4f} + evalsha "
              f"{top['evalsha'] / n:.4f} + eval {top['eval'] / n:.4f} + lrange {top.get('lrange', 0) / n:.4f}, "
              f"which include {cost['housekeeping_calls']} housekeeping calls and {cost['idle_blmove_calls']} "
              f"BLMOVEs that timed out on an empty queue, in the middle run); sent along with a "
              f"script, no wait of their own: {cost['along_per_job']:.4f} = " + " + ".join(
                  f"{k} {v / n:.4f}" for k, v in cost["along_calls"].items()))
        print(f"   commands run inside the scripts per sent job: {cost['inside_calls_per_job']:.2f}: " + ", ".join(
            f"{k} {v / n:.2f}" for k, v in sorted(inside.items(), key=lambda kv: -kv[1]) if v / n >= 0.005))
        print(f"   CPU per job: consumer {cost['consumer_cpu_us_per_job']:.0f} us, Redis "
              f"{cost['redis_cpu_us_per_job']:.0f} us, smtp-sink {cost['sink_cpu_us_per_job']:.0f} us")
        print(f"   consumer RSS: {cost['rss_warm_kb'] / 1024:.1f} MB after warm-up (10 % of jobs), "
              f"{cost['rss_end_kb'] / 1024:.1f} MB at the end (medians); peak (VmHWM) over all runs {cost['vmhwm_kb_max'] / 1024:.1f} MB")
        self.json_line("cost", {k: v for k, v in cost.items() if k not in ("runs_detail", "long")}
                       | ({"long": {k: v for k, v in cost["long"].items() if k != "rss_samples"}}
                          if "long" in cost else {}))

