"""The profiles of the benchmarks (--profile): perf of a consumer at concurrency 16 and
of Redis during an end-to-end run, callgrind of mailroom_send in bench_enqueue; and
their summaries (inclusive shares by stage, kernel time by syscall, callgrind shares of
mailroom_send's path)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

from context import QUEUE
from support.procs import forget, spawn


class Profiling:

    def bench_profile(self) -> None:
        outdir = self.build / "profile"
        outdir.mkdir(exist_ok=True)
        for old in outdir.glob("*.txt"):
            old.unlink()
        self.log(f"\n== profile: perf (consumer at concurrency 16 + Redis), callgrind (mailroom_send) -> {outdir}")
        perf = shutil.which("perf")
        if perf:
            data = outdir / "consumer.perf.data"
            holder = {}

            def attach(cons):
                pids = f"{cons[0].pid},{self.redis.proc.pid}"
                holder["p"] = spawn([perf, "record", "-F", "499", "-e", "cpu-clock",
                                     "--call-graph", "dwarf,16384", "-o", data, "-p", pids],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            self.e2e_run(1, 16, self.args.profile_n, "prof", on_started=attach)
            p = holder["p"]
            p.send_signal(signal.SIGINT)
            p.wait(60)
            forget(p)
            summary = self.perf_summary(data)
            self.results.setdefault("profile", {})["perf"] = summary
            with open(outdir / "perf-summary.txt", "w") as f:
                for who, d in summary.items():
                    f.write(f"{who}: {d['samples']} samples, {d['kernel_pct']} % in the kernel\n")
                    for title, key in (("inclusive", "inclusive_pct"), ("kernel by syscall", "kernel_by_syscall_pct"),
                                       ("self by DSO", "self_by_dso_pct"), ("self by symbol", "self_by_symbol_pct")):
                        f.write(f"  {title}:\n")
                        for name, pct in d[key]:
                            f.write(f"    {pct:5.1f} %  {name}\n")
            print((outdir / "perf-summary.txt").read_text())
        if shutil.which("valgrind"):
            self.redis.r.flushdb()
            cg = outdir / "send.callgrind.out"
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}",
                            self.benchbin / "bench_enqueue", "--redis", self.redis.url, "--queue",
                            QUEUE, "-n", "3000", "--runs", "1", "--warmup", "50", "--ops",
                            "lpush,send", "--flush"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True)
            text = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(cg)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
            (outdir / "send-callgrind.txt").write_text(text)
            cgs, missing = self.callgrind_summary(text)
            self.results.setdefault("profile", {})["send_callgrind_pct_of_mailroom_send"] = cgs
            print("   mailroom_send, share of its instructions (callgrind, inclusive):")
            for fn, obj, pct in cgs:
                print(f"    {pct:5.1f} %  {fn} ({obj})")
            if missing:
                print(f"    not in the profile (inlined, renamed or below callgrind_annotate's "
                      f"threshold): {', '.join(missing)}")
        self.log(f"   wrote {', '.join(sorted(p.name for p in outdir.glob('*.txt')))}")

    # -- profile summaries

    CONSUMER_BUCKETS = [
        ("SMTP exchange: smtp_exchange (the engine)", lambda f: "smtp_exchange" in f),
        ("FINISH (and the take it carries): outcome_finish_carrying",
         lambda f: "outcome_finish_carrying" in f),
        ("BEGIN (and the suppression lookup it carries): take_begin", lambda f: "take_begin" in f),
        ("take of its own: take_job", lambda f: "take_job" in f),
        ("MIME build: mime_build", lambda f: "mime_build" in f),
        ("signature check: sig_verify_job_with",
         lambda f: "sig_verify_job_with" in f or "sig_verify_job" in f),
        ("job JSON decode: job_decode", lambda f: "job_decode" in f),
        ("log lines: log_msg", lambda f: "log_msg" in f),
        ("housekeeping thread (heartbeat, promote, mirror)", lambda f: "worker_main" not in f
         and ("housekeeping_" in f or "mirror_refresh" in f or "main" in f)),
    ]
    REDIS_BUCKETS = [
        ("EVALSHA: Lua scripts (evalGenericCommand)", lambda f: "evalGenericCommand" in f
         or "evalShaCommand" in f or "luaCallFunction" in f),
        ("  of it, commands the scripts call (luaRedisGenericCommand)",
         lambda f: "luaRedisGenericCommand" in f or "scriptCall" in f),
        ("BLMOVE (blmoveCommand, blocked clients)", lambda f: "blmoveCommand" in f
         or "handleClientsBlockedOnKeys" in f or "serveClientBlockedOnList" in f),
        ("reading queries: readQueryFromClient", lambda f: "readQueryFromClient" in f
         and "processCommand" not in f),
        ("writing replies: writeToClient", lambda f: "writeToClient" in f
         or "handleClientsWithPendingWrites" in f),
        ("PUBLISH (inside the scripts)", lambda f: "publishCommand" in f or "pubsubPublishMessage" in f),
    ]

    @staticmethod
    def perf_samples(data: Path):
        """(comm, [frames leaf first as (sym, dso)]) for every sample of a perf.data."""
        cp = subprocess.run(["perf", "script", "-i", str(data), "-F", "comm,ip,sym,dso"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            errors="replace")
        comm, frames = None, []
        for line in cp.stdout.splitlines():
            if not line.strip():
                if comm is not None:
                    yield comm, frames
                comm, frames = None, []
            elif not line[0].isspace():
                comm, frames = line.strip(), []
            else:
                m = re.match(r"\s*[0-9a-f]+ (.+?) \((.*)\)$", line)
                if m:
                    frames.append((re.sub(r"\+0x[0-9a-f]+$", "", m.group(1)), m.group(2)))
        if comm is not None:
            yield comm, frames

    def perf_summary(self, data: Path) -> dict:
        by_comm: dict = {}
        for comm, frames in self.perf_samples(data):
            key = "consumer" if comm.startswith("mailroom-consum") else (
                "redis" if comm.startswith("redis-server") else None)
            if key is None or not frames:
                continue
            d = by_comm.setdefault(key, {"samples": 0, "kernel": 0, "buckets": {}, "syscalls": {},
                                         "self_dso": {}, "self_sym": {}})
            d["samples"] += 1
            names = {sym for sym, _ in frames}
            leaf_sym, leaf_dso = frames[0]
            dso = Path(leaf_dso).name
            d["self_dso"][dso] = d["self_dso"].get(dso, 0) + 1
            d["self_sym"][leaf_sym] = d["self_sym"].get(leaf_sym, 0) + 1
            if "kernel" in leaf_dso:
                d["kernel"] += 1
                sc = "other kernel work (interrupts, scheduler ticks)"
                for sym, _ in frames:
                    if sym.startswith("__x64_sys_") or sym.startswith("ksys_"):
                        sc = sym.replace("__x64_sys_", "").replace("ksys_", "")
                        break
                if leaf_sym.startswith("finish_task_switch") or leaf_sym == "__schedule":
                    sc = "context switches (" + sc + ")"
                d["syscalls"][sc] = d["syscalls"].get(sc, 0) + 1
            for name, pred in (self.CONSUMER_BUCKETS if key == "consumer" else self.REDIS_BUCKETS):
                if pred(names):
                    d["buckets"][name] = d["buckets"].get(name, 0) + 1
        out = {}
        for key, d in by_comm.items():
            n = d["samples"]
            pct = lambda x: round(100.0 * x / n, 1)
            top = lambda m, k: [[name, pct(c)] for name, c in sorted(m.items(), key=lambda kv: -kv[1])[:k]]
            out[key] = {"samples": n, "kernel_pct": pct(d["kernel"]),
                        "inclusive_pct": [[name, pct(d["buckets"].get(name, 0))]
                                          for name, _ in (self.CONSUMER_BUCKETS if key == "consumer"
                                                          else self.REDIS_BUCKETS)],
                        "kernel_by_syscall_pct": top(d["syscalls"], 8),
                        "self_by_dso_pct": top(d["self_dso"], 10),
                        "self_by_symbol_pct": top(d["self_sym"], 15)}
        return out

    # The path of mailroom_send (producer/mailroom.c) in call order: what the callgrind
    # summary reports. Mostly exported functions (ours, OpenSSL's, json-c's, hiredis'),
    # whose names do not depend on the compiler's inlining; a static function the
    # compiler split counts under its name (enqueue_once.part.0 for enqueue_once).
    CALLGRIND_FUNCTIONS = [
        "mailroom_send", "prepare", "ulid_next", "RAND_bytes", "clock_format_iso", "job_from_tree",
        "sig_canonical", "buf_append", "sig_mac_hex", "EVP_MAC_update", "EVP_MAC_final",
        "json_object_to_json_string_length", "enqueue_once", "script_run_acked",
        "redisCommandArgv", "redisFormatSdsCommandArgv", "redisGetReply", "json_object_put",
        "json_object_new_string", "json_object_object_add", "malloc", "free"]

    @classmethod
    def callgrind_summary(cls, text: str) -> tuple:
        """([function, object, % of mailroom_send's instructions], the CALLGRIND_FUNCTIONS not
        in the profile) from callgrind_annotate --inclusive."""
        rows = []
        for line in text.splitlines():
            m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+?):(\S+) \[(.*)\]", line)
            if m:
                rows.append((int(m.group(1).replace(",", "")), m.group(3), Path(m.group(4)).name))
        send = next((ir for ir, fn, _ in rows if fn == "mailroom_send"), None)
        if not send:
            return [], list(cls.CALLGRIND_FUNCTIONS)
        out, missing = [], []
        for name in cls.CALLGRIND_FUNCTIONS:
            row = next((r for r in rows if r[1] == name or r[1].startswith(name + ".")), None)
            if row:
                out.append([row[1], row[2], round(100.0 * row[0] / send, 1)])
            else:
                missing.append(name)
        return out, missing

