"""The report of the benchmarks: every ratio against its target (PASS/MISS), the
conditions of the run, bench/results/latest.json and the scaling plot
bench/results/scaling.svg."""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import platform
import statistics
from pathlib import Path

from context import dpkg_version

TARGETS = {
    "enqueue_p50": ("<=", 1.3),
    "enqueue_p99": ("<=", 1.5),
    "throughput": (">=", 0.5),
    "e2e": (">=", 0.6),
    "round_trips": ("<=", 3.0),
    "rss_mb": ("<=", 16.0),
    # issue 13 (the SMTP engine): loopback and far relay
    "e2e_16": (">=", 0.5),
    "consumer_cpu_16": ("<=", 60.0),
    "far_ratio": (">=", 0.85),
    "far_vs_bullmq": (">=", 1.8),
    "far_round_trips": ("<=", 1.1),
    "far_rss_256_mb": ("<=", 32.0),
}


class Report:

    def verdicts(self) -> list:
        v = []

        def add(name, value, key, detail):
            op, target = TARGETS[key]
            value = round(value, 3)
            ok = value <= target if op == "<=" else value >= target
            v.append({"name": name, "value": round(value, 3), "target": f"{op} {target:g}",
                      "pass": ok, "detail": detail})

        if "enqueue_latency" in self.results:
            d = self.results["enqueue_latency"]
            add("enqueue p50 / LPUSH p50", d["ratio_p50"], "enqueue_p50",
                f"{d['send_p50_us']:.1f} us vs {d['lpush_p50_us']:.1f} us")
            add("enqueue p99 / LPUSH p99", d["ratio_p99"], "enqueue_p99",
                f"{d['send_p99_us']:.1f} us vs {d['lpush_p99_us']:.1f} us")
        if "enqueue_throughput" in self.results:
            d = self.results["enqueue_throughput"]
            for b in d["batches"]:
                add(f"send_batch({b['batch']}) / redis-benchmark LPUSH -P 64", b["ratio"], "throughput",
                    f"{b['jobs_per_s']:.0f} vs {d['limit_per_s']:.0f} jobs/s")
        for e in self.results.get("e2e", []):
            if (e["procs"], e["concurrency"]) in ((1, 1), (1, 4), (1, 16), (2, 16)):
                add(f"end to end {e['procs']} x {e['concurrency']} / smtp-source -s {e['sessions']}",
                    e["ratio"], "e2e", f"{e['rate']:.0f} vs {e['limit_rate']:.0f} emails/s")
        for e in self.results.get("e2e", []):
            if (e["procs"], e["concurrency"]) == (1, 16):
                add("issue 13: end to end 1 x 16 / smtp-source -s 16", e["ratio"], "e2e_16",
                    f"{e['rate']:.0f} vs {e['limit_rate']:.0f} emails/s")
                add("issue 13: consumer CPU us per sent job, 1 x 16", e["consumer_cpu_us_per_job"],
                    "consumer_cpu_16", f"Redis {e['redis_cpu_us_per_job']:.0f} us, smtp-sink "
                    f"{e['sink_cpu_us_per_job']:.0f} us per job")
        far = self.results.get("far_relay")
        for c in (far or {}).get("configs", []):
            m, s = c["mailroom"], c["sessions"]
            add(f"far relay {far['rtt_ms']:g} ms, {s} sessions / (sessions / RTT)", m["ratio_to_limit"],
                "far_ratio", f"{m['rate']:.0f} vs {c['limit_rate']:.0f} emails/s; smtp-source "
                f"{c['smtp_source']['ratio_to_limit']:.2f}, ideal pipelining client "
                f"{c['ideal']['ratio_to_limit']:.2f}, BullMQ "
                + (f"{c['bullmq']['ratio_to_limit']:.2f}" if "rate" in c["bullmq"] else "not run"))
            if "mailroom_vs_bullmq" in c:
                add(f"far relay, {s} sessions: mailroom / BullMQ + nodemailer", c["mailroom_vs_bullmq"],
                    "far_vs_bullmq", f"{m['rate']:.0f} vs {c['bullmq']['rate']:.0f} emails/s")
            add(f"far relay, {s} sessions: round trips per message on the wire", m["steady_round_trips_per_msg"],
                "far_round_trips", f"steady state; {m['round_trips_per_msg_all']:.2f} over the whole run "
                f"(connecting and QUIT included)")
            if s == 256:
                add("far relay: consumer peak RSS at 256 sessions, MB", m["rss_peak_kb"] / 1024, "far_rss_256_mb",
                    "VmHWM of the one consumer process")
        if "cost" in self.results:
            c = self.results["cost"]
            add("Redis round trips per sent job (consumer)", c["round_trips_per_job"], "round_trips",
                f"blmove+evalsha+eval; {c['round_trips_per_job_raw']:.4f} with housekeeping and idle "
                f"BLMOVEs; {c.get('along_per_job', 0):.1f} more sent along with a script (lmove, mget); "
                f"{c['inside_calls_per_job']:.1f} commands inside the scripts")
            src = c.get("long", c)
            add("consumer peak RSS at concurrency 16, MB", c["vmhwm_kb_max"] / 1024, "rss_mb",
                f"{src['rss_warm_kb'] / 1024:.1f} MB after warm-up, {src['rss_end_kb'] / 1024:.1f} MB at the end "
                f"({'flat' if c['rss_flat'] else 'GROWS'}) over {src['n']} jobs")
        return v

    def conditions(self) -> dict:
        cpu = "?"
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host_cpus": os.cpu_count(), "cpu_model": cpu, "kernel": platform.release(),
            "redis": self.redis.version if self.redis else "?",
            "postfix_smtp_sink_source": self.postfix, "libcurl": dpkg_version("libcurl4"),
            "hiredis": dpkg_version("libhiredis0.14"), "json_c": dpkg_version("libjson-c5"),
            "openssl": dpkg_version("libssl3"),
            "build": "Release (-O3), build-bench/", "transport": "TCP over 127.0.0.1",
            "job_bytes": next((self.results[k]["job_bytes"] for k in ("enqueue_latency", "enqueue_throughput")
                               if k in self.results), None),
            "mode": "quick" if self.args.quick else ("long" if self.args.long else "full"),
            "parts": self.args.only, "consumer_bin": str(self.consumer_bin),
            "consumer_label": self.args.consumer_label,
            "runs": self.args.runs, "loadavg_start": self.load_start, "loadavg_end": os.getloadavg(),
        }

    def write_svg(self, path: Path) -> None:
        """The scaling plot: medians with the range of the runs as whiskers."""
        e2e = {(e["procs"], e["concurrency"]): e for e in self.results.get("e2e", [])}
        pt = lambda x, rs: (x, statistics.median(rs), min(rs), max(rs))
        one = sorted(pt(c, e["rates"]) for (p, c), e in e2e.items() if p == 1)
        multi = sorted(pt(p * 16, e["rates"]) for (p, c), e in e2e.items() if c == 16)
        pooled: dict = {}
        for e in e2e.values():
            pooled.setdefault(e["sessions"], []).extend(e["limit_rates"])
        limit = sorted(pt(s, rs) for s, rs in pooled.items())
        if len(one) < 2:
            return
        series = [("smtp-source -d -s N (the limit)", limit, "#888888", "6,4"),
                  ("mailroom: 1 process, concurrency N", one, "#1f77b4", ""),
                  ("mailroom: N/16 processes x concurrency 16", multi, "#d62728", "")]
        W, H, L, R, T, B = 720, 470, 70, 20, 56, 90  # the legend goes under the axis
        xs = [p[0] for _, pts, _, _ in series for p in pts]
        ymax = max(p[3] for _, pts, _, _ in series for p in pts) * 1.1
        step = 10 ** math.floor(math.log10(ymax / 5))
        step = next(s * step for s in (1, 2, 5, 10) if ymax / (s * step) <= 6)
        xlo, xhi = math.log2(min(xs)), math.log2(max(xs))
        X = lambda x: L + (math.log2(x) - xlo) / max(1e-9, xhi - xlo) * (W - L - R)
        Y = lambda y: H - B - y / ymax * (H - T - B)
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
               f'font-family="sans-serif" font-size="12">',
               f'<rect width="{W}" height="{H}" fill="white"/>',
               f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="15">mailroom end to end: '
               f'emails/s by parallel SMTP sessions</text>',
               f'<text x="{W / 2}" y="37" text-anchor="middle" font-size="11" fill="#555">'
               f'{self.results.get("message", {}).get("approx_wire_bytes", "?")} B messages over 127.0.0.1, '
               f'{self.results.get("conditions", {}).get("host_cpus", os.cpu_count())} shared cores; '
               f'points: median of {self.args.runs} runs, whiskers: lowest and highest run</text>']
        y = 0.0
        while y <= ymax:
            out.append(f'<line x1="{L}" x2="{W - R}" y1="{Y(y):.1f}" y2="{Y(y):.1f}" stroke="#e5e5e5"/>')
            out.append(f'<text x="{L - 6}" y="{Y(y) + 4:.1f}" text-anchor="end">{y:,.0f}</text>')
            y += step
        for x in sorted(set(xs)):
            out.append(f'<line x1="{X(x):.1f}" x2="{X(x):.1f}" y1="{T}" y2="{H - B}" stroke="#f0f0f0"/>')
            out.append(f'<text x="{X(x):.1f}" y="{H - B + 16}" text-anchor="middle">{x}</text>')
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{H - B}" y2="{H - B}" stroke="black"/>')
        out.append(f'<line x1="{L}" x2="{L}" y1="{T}" y2="{H - B}" stroke="black"/>')
        out.append(f'<text x="{(L + W - R) / 2}" y="{H - B + 34}" text-anchor="middle">'
                   f'parallel SMTP sessions N = processes x concurrency (log scale)</text>')
        out.append(f'<text x="16" y="{(T + H - B) / 2}" text-anchor="middle" '
                   f'transform="rotate(-90 16 {(T + H - B) / 2})">emails / s</text>')
        for i, (name, pts, color, dash) in enumerate(series):
            if not pts:
                continue
            d = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y, _, _ in pts)
            da = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"{da}/>')
            for x, y, lo, hi in pts:
                out.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3" fill="{color}"/>')
                out.append(f'<line x1="{X(x):.1f}" x2="{X(x):.1f}" y1="{Y(lo):.1f}" y2="{Y(hi):.1f}" '
                           f'stroke="{color}" stroke-width="1"/>')
            lx, ly = L + 10 + (i % 2) * 300, H - B + 56 + (i // 2) * 18
            out.append(f'<line x1="{lx}" x2="{lx + 24}" y1="{ly}" y2="{ly}" stroke="{color}" '
                       f'stroke-width="2"{da}/>')
            out.append(f'<text x="{lx + 30}" y="{ly + 4}">{name}</text>')
        out.append("</svg>")
        path.write_text("\n".join(out) + "\n")

    def merged_results(self, path: Path) -> dict:
        """What latest.json gets: this run's results; for a run of some parts only
        (--only), the previous file with those parts replaced, this run's conditions and
        verdicts under conditions_<parts> and verdicts_<parts>, the earlier ones kept."""
        if not self.args.partial or not path.exists():
            return self.results
        try:
            old = json.loads(path.read_text())
        except ValueError:
            return self.results
        tag = "_".join(self.args.only)
        for k, val in self.results.items():
            if k in ("conditions", "verdicts"):
                old[f"{k}_{tag}"] = val
            else:
                old[k] = val
        return old

    def report(self) -> int:
        v = self.verdicts()
        print("\n== summary (each ratio: median of the per-run ratios against a limit measured in the same run)")
        for x in v:
            print(f"  {'PASS' if x['pass'] else 'MISS'}  {x['name']:<62} {x['value']:>8.3f}  "
                  f"(target {x['target']})  {x['detail']}")
        if "e2e" in self.results:
            print("\n  end to end / scaling (emails/s, medians):")
            print(f"  {'procs x conc':>12} {'mailroom':>9} {'limit':>9} {'ratio':>6} {'cons us/j':>10} "
                  f"{'redis us/j':>10} {'sink us/j':>9} {'busy cores':>10}")
            for e in self.results["e2e"]:
                print(f"  {e['procs']:>5} x {e['concurrency']:<4} {e['rate']:>9.0f} {e['limit_rate']:>9.0f} "
                      f"{e['ratio']:>6.2f} {e['consumer_cpu_us_per_job']:>10.0f} {e['redis_cpu_us_per_job']:>10.0f} "
                      f"{e['sink_cpu_us_per_job']:>9.0f} {e['busy_cores']:>10.2f}")
        if "far_relay" in self.results:
            self.far_print(self.results["far_relay"])
            md = self.build / "far-relay.md"
            md.write_text(self.far_markdown(self.results["far_relay"]))
            print(f"\n  the far-relay tables for docs/performance.md: {md}")
        self.results["conditions"] = self.conditions()
        self.results["verdicts"] = v
        outdir = Path(self.args.out)
        outdir.mkdir(parents=True, exist_ok=True)
        (outdir / "latest.json").write_text(json.dumps(self.merged_results(outdir / "latest.json"),
                                                       indent=1, sort_keys=True) + "\n")
        self.write_svg(outdir / "scaling.svg")
        print(f"\n  wrote {outdir / 'latest.json'}" + (f" and {outdir / 'scaling.svg'}" if "e2e" in self.results else ""))
        return 0

