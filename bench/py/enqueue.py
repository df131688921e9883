"""Parts 1 and 2 of the benchmarks, both run by the C bench binaries (bench/*.c):
enqueue latency (mailroom_send against a bare LPUSH of the same bytes) and enqueue
throughput (mailroom_send_batch against redis-benchmark LPUSH -P 64)."""

from __future__ import annotations

import shutil

from context import QUEUE


class EnqueueParts:

    def bench_enqueue(self) -> None:
        n = self.args.enqueue_n
        self.log(f"\n== 1. enqueue latency (mailroom_send vs bare LPUSH, {n} calls x {self.args.runs} runs)")
        self.redis.r.flushdb()
        d = self.run_bench_binary([self.benchbin / "bench_enqueue", "--redis", self.redis.url,
                                   "--queue", QUEUE, "-n", n, "--runs", self.args.runs, "--flush"])
        self.results["enqueue_latency"] = d

    # -- 2. enqueue throughput

    def bench_throughput(self) -> None:
        n = self.args.throughput_n
        self.log(f"\n== 2. enqueue throughput (mailroom_send_batch vs redis-benchmark LPUSH -P 64, "
                 f"{n} jobs x {self.args.runs} runs)")
        self.redis.r.flushdb()
        d = self.run_bench_binary([self.benchbin / "bench_batch", "throughput", "--redis",
                                   self.redis.url, "--queue", QUEUE, "-n", n, "--runs",
                                   self.args.runs, "--batches", "64,1000", "--flush",
                                   "--redis-benchmark", shutil.which("redis-benchmark") or "redis-benchmark"])
        self.results["enqueue_throughput"] = d

