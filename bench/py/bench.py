#!/usr/bin/python3
"""mailroom's benchmark suite, run as scripts/bench (docs/performance.md explains the figures).

    scripts/bench [--quick | --long] [--profile] [--only LIST] [--runs R] [--no-build]

Builds a Release tree of its own (build-bench/), starts a private redis-server and
Postfix smtp-sink instances on free 127.0.0.1 ports in temp dirs, runs

    enqueue     bench_enqueue: mailroom_send p50/p99/p99.9 vs a bare LPUSH of the same bytes
    throughput  bench_batch: mailroom_send_batch jobs/s vs redis-benchmark -t lpush -P 64
    e2e         N queued jobs, consumers started, time until all are sent; vs smtp-source
                with as many parallel sessions, to the same kind of sink
    cost        Redis commands, consumer CPU and RSS per job (one consumer, concurrency 16)
    scaling     emails/s at concurrency 1..64 and 1..4 processes, plotted with the limit
    slow        a relay that answers DATA after 1 s (smtp-sink -w 1): emails/s vs workers/1 s
    far         a relay 50 ms away (smtp-sink behind bench/delay_proxy): emails/s at 16, 64
                and 256 sessions against sessions / RTT, round trips per message counted on
                the wire; smtp-source -d and BullMQ + nodemailer through the same proxy

and prints every ratio against its target (PASS/MISS). Every figure is the median of at
least 3 runs, and every ratio is taken against a limit measured in the same run, so that
other work on the (shared) machine hits both alike. Results: bench/results/latest.json
and bench/results/scaling.svg. --quick (fewer calls and jobs, no scaling and slow parts,
the far relay at 16 and 64 sessions with 20 messages each) takes a few minutes; the full
run takes about 10; --far adds the far relay (about 10 minutes with today's consumer);
--long adds the far relay and a cost run of 1 000 000 jobs for the memory curve;
--profile also records perf (consumer, Redis) and callgrind (producer) profiles into
build-bench/profile/. A run with --only merges its parts into the existing latest.json.

--consumer-bin PATH measures another mailroom-consumer (a build of an older commit, for
before/after figures; --consumer-label names it in the report); the bench tools still
come from this tree. BullMQ + nodemailer (bench/peer) is installed with npm into
build-bench/peer when node >= 20 and npm work, and left out with a note otherwise.

The parts live beside this file: context.py (build, Redis, consumers, results),
enqueue.py (1, 2), e2e.py (3-6), far_relay.py (7), profiling.py (--profile), report.py
(targets, latest.json, scaling.svg); servers and processes come from tests/support.
Everything started is stopped, also on Ctrl-C. Only the Python standard library and
python3-redis are used (node and npm for the peer).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))  # for tests/support

from context import ROOT, BenchRedis, Context, dpkg_version  # noqa: E402
from e2e import EndToEnd  # noqa: E402
from enqueue import EnqueueParts  # noqa: E402
from far_relay import FarRelay  # noqa: E402
from profiling import Profiling  # noqa: E402
from report import Report  # noqa: E402
from support.paths import LOOPBACK  # noqa: E402
from support.procs import kill_leftovers  # noqa: E402


def _on_signal(signum, frame):
    raise KeyboardInterrupt


class Bench(Context, EnqueueParts, EndToEnd, FarRelay, Profiling, Report):
    """One run of the benchmarks: the parts asked for, in order, then the report."""

    def run(self) -> int:
        self.load_start = os.getloadavg()
        if not self.args.no_build:
            self.do_build()
        for exe in (self.consumer_bin, self.benchbin / "bench_enqueue",
                    self.benchbin / "bench_batch", self.benchbin / "delay_proxy"):
            if not exe.exists():
                raise RuntimeError(f"{exe} missing: build first (without --no-build)")
        self.redis = BenchRedis()
        try:
            self.redis.start()
            self.postfix = dpkg_version("postfix")
            print(f"== Redis {self.redis.version} on {LOOPBACK}:{self.redis.port}; smtp-sink/smtp-source "
                  f"from Postfix {self.postfix}; {os.cpu_count()} CPUs; load average {self.load_start[0]:.2f}")
            only = self.args.only
            if "enqueue" in only:
                self.bench_enqueue()
            if "throughput" in only:
                self.bench_throughput()
            if {"e2e", "scaling", "cost", "profile", "slow", "far"} & set(only):
                self.calibrate_message()
            if "e2e" in only or "scaling" in only:
                self.bench_e2e()
            if "cost" in only:
                self.bench_cost()
            if "slow" in only:
                self.bench_slow_relay()
            if "far" in only:
                self.bench_far()
            if "profile" in only:
                self.bench_profile()
            return self.report()
        finally:
            self.redis.cleanup()

    def cleanup(self):
        if os.environ.get("MAILROOM_BENCH_KEEP"):
            print(f"kept {self.tmp}", file=sys.stderr)
            return
        shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer calls and jobs, fewer configurations")
    ap.add_argument("--long", action="store_true", help="add a cost run of 1 000 000 jobs (memory curve)")
    ap.add_argument("--profile", action="store_true", help="also record perf and callgrind profiles")
    ap.add_argument("--far", action="store_true", help="add the far relay (a 50 ms relay through bench/delay_proxy)")
    ap.add_argument("--only", default="", help="comma list of enqueue,throughput,e2e,scaling,cost,slow,far,profile")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (median; at least 3)")
    ap.add_argument("--no-build", action="store_true", help="use build-bench/ as it is")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="where latest.json and scaling.svg go")
    ap.add_argument("--plot-only", action="store_true", help="redraw scaling.svg from latest.json")
    ap.add_argument("--e2e-n", type=int, help="jobs per end-to-end run")
    ap.add_argument("--cost-n", type=int, help="jobs per cost run")
    ap.add_argument("--long-n", type=int, help="jobs in the --long run")
    ap.add_argument("--far-rtt-ms", type=float, default=50.0, help="far relay: the round trip the proxy adds")
    ap.add_argument("--far-sessions", help="far relay: comma list of sessions (default 16,64,256; quick 16,64)")
    ap.add_argument("--far-per-session", type=int, help="far relay: messages per session (default 120; quick 20)")
    ap.add_argument("--no-peer", action="store_true", help="far relay: leave BullMQ + nodemailer out")
    ap.add_argument("--consumer-bin", help="measure this mailroom-consumer instead of build-bench's")
    ap.add_argument("--consumer-label", default="", help="what to call --consumer-bin in the report")
    args = ap.parse_args()
    if args.runs < 3:
        ap.error("--runs must be at least 3: every figure is a median of at least 3 runs")
    q = args.quick
    args.enqueue_n = 20000 if q else 100000
    args.throughput_n = 20000 if q else 100000
    args.e2e_n = args.e2e_n or (5000 if q else 20000)
    args.cost_n = args.cost_n or (20000 if q else 200000)
    args.long_n = args.long_n or 1000000
    args.profile_n = 30000
    args.far_sessions = [int(x) for x in (args.far_sessions or ("16,64" if q else "16,64,256")).split(",")]
    args.far_per_session = args.far_per_session or (20 if q else 120)
    if any(s < 1 or s > 256 for s in args.far_sessions):
        ap.error("--far-sessions: 1 to 256 (one consumer process)")
    all_parts = ["enqueue", "throughput", "e2e", "scaling", "cost", "slow", "far"]
    args.partial = bool(args.only)
    args.only = [x for x in args.only.split(",") if x] or (["enqueue", "throughput", "e2e", "cost"]
                                                          + ([] if q else ["scaling", "slow"])
                                                          + (["far"] if q or args.long or args.far else []))
    if args.far and "far" not in args.only:
        args.only.append("far")
    if args.profile and "profile" not in args.only:
        args.only.append("profile")
    bad = set(args.only) - set(all_parts) - {"profile"}
    if bad:
        ap.error(f"unknown --only parts: {', '.join(sorted(bad))}")
    signal.signal(signal.SIGTERM, _on_signal)
    b = Bench(args)
    if args.plot_only:
        b.results = json.loads((Path(args.out) / "latest.json").read_text())
        args.runs = b.results.get("conditions", {}).get("runs", args.runs)
        b.write_svg(Path(args.out) / "scaling.svg")
        b.cleanup()
        return 0
    try:
        return b.run()
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        return 130
    except (RuntimeError, AssertionError, subprocess.CalledProcessError) as e:
        print(f"\nbench: {e}", file=sys.stderr)
        return 1
    finally:
        kill_leftovers()
        b.cleanup()


if __name__ == "__main__":
    sys.exit(main())
