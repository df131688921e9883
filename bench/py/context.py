"""The context every part of the benchmarks shares (bench.py mixes the parts into one
Bench): the Release build in build-bench/, a temp dir with the signing keys file, the
private Redis (tests/support), consumers of that build (or of --consumer-bin), the queue
filler and the runner of the C bench binaries, and the results being collected."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from support.consumer import Consumer, mailroom_env
from support.paths import REPO_ROOT
from support.procs import CLK_TCK
from support.redis_server import RedisServer

ROOT = REPO_ROOT
QUEUE = "bench"
SECRET = "bench-secret-not-for-production-0123456789"  # bench/bench_common.h: BENCH_SECRET


def dpkg_version(package: str) -> str:
    """The installed version of a Debian package, or "?"."""
    cp = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return cp.stdout.strip() or "?"


def system_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far (all CPUs), from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return (sum(f[:8]) - idle) / CLK_TCK


class BenchRedis(RedisServer):
    """The private redis-server of a run, with one client r (long timeout), its version
    and its command statistics."""

    def start(self) -> "BenchRedis":
        super().start()
        self.r = self.client(timeout=120)
        self.version = self.r.info("server")["redis_version"]
        return self

    def cmdstats(self) -> dict:
        out = {}
        for k, v in self.r.info("commandstats").items():
            name = k[len("cmdstat_"):] if k.startswith("cmdstat_") else k
            out[name] = {"calls": int(v["calls"]), "usec": int(v["usec"])}
        return out


class Context:
    """The state of one run: options, paths, the Redis, the results (see bench.py)."""

    def __init__(self, args):
        self.args = args
        self.build = ROOT / "build-bench"
        self.bin = self.build / "bin"
        self.benchbin = self.build / "bench"
        self.tmp = Path(tempfile.mkdtemp(prefix="mailroom-bench-"))
        self.keys = self.tmp / "keys"
        self.keys.write_text(f"bench {SECRET}\n")
        os.chmod(self.keys, 0o600)
        self.results: dict = {}
        self.redis: BenchRedis | None = None
        # the consumer measured: this build's, or another one's (--consumer-bin), e.g. a
        # build of an older commit for before/after figures
        self.consumer_bin = Path(args.consumer_bin) if getattr(args, "consumer_bin", None) \
            else self.bin / "mailroom-consumer"

    # -- helpers

    def log(self, msg: str) -> None:
        print(msg, flush=True)

    def run_bench_binary(self, argv, timeout=3600) -> dict:
        """Runs a bench binary, echoes its table, returns its JSON line."""
        cp = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=timeout, text=True)
        if cp.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed ({cp.returncode}):\n{cp.stderr}{cp.stdout}")
        data = None
        for line in cp.stdout.splitlines():
            if line.startswith('{"bench":'):
                data = json.loads(line)
            elif argv[1] != "fill":
                print("  " + line)
        if data is None:
            raise RuntimeError(f"no JSON line from {argv[0]}:\n{cp.stdout}")
        return data

    def consumer_env(self, smtp_url: str) -> dict:
        return mailroom_env(self.redis, queue=QUEUE, keys_file=self.keys, smtp=smtp_url,
                            MAILROOM_SMTP_TLS="none")

    def start_consumers(self, procs: int, conc: int, smtp_url: str, tag: str, wrap=None) -> list:
        """procs consumers of this build at concurrency conc (under wrap, a command line);
        their logs in the temp dir."""
        env = self.consumer_env(smtp_url)
        out = []
        for i in range(procs):
            out.append(Consumer(env, "--concurrency", conc, "--block-timeout", "100ms",
                                "--id", f"bench-{tag}-{i}", wrap=wrap or (),
                                binary=self.consumer_bin,
                                log_path=self.tmp / f"consumer-{tag}-{i}.log").start())
        return out

    def fill(self, n: int) -> dict:
        self.redis.r.flushdb()
        return self.run_bench_binary([self.benchbin / "bench_batch", "fill", "--redis",
                                      self.redis.url, "--queue", QUEUE, "-n", n, "--batch", 1000])

    # -- build

    def do_build(self) -> None:
        self.log("== build (Release) into build-bench/")
        subprocess.run(["cmake", "-S", ROOT, "-B", self.build, "-DCMAKE_BUILD_TYPE=Release",
                        "-DMAILROOM_BUILD_TESTS=OFF", "-DMAILROOM_BUILD_BENCH=ON"],
                       check=True, stdout=subprocess.DEVNULL)
        targets = ["bench_enqueue", "bench_batch", "delay_proxy"]
        if not self.args.consumer_bin:
            targets.append("mailroom-consumer")
        subprocess.run(["cmake", "--build", self.build, "-j2", "--target", *targets],
                       check=True, stdout=subprocess.DEVNULL)


    def job_states(self) -> dict:
        r = self.redis.r
        counts: dict = {}
        pipe = r.pipeline(transaction=False)
        k = 0
        for key in r.scan_iter(match=f"mailroom:{{{QUEUE}}}:job:*", count=2000):
            pipe.hget(key, "state")
            k += 1
            if k % 2000 == 0:
                for s in pipe.execute():
                    counts[s] = counts.get(s, 0) + 1
        for s in pipe.execute():
            counts[s] = counts.get(s, 0) + 1
        return counts


    def json_line(self, name: str, data: dict) -> None:
        print(json.dumps({"bench": name, **data}, separators=(",", ":")), flush=True)

