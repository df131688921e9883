"""Prometheus for tests: a real Prometheus server (Debian's `prometheus`) on a free
127.0.0.1 port with its own temp dir for its configuration and storage, scraping the
given targets every second (rule files loaded and evaluated every second too), and its
HTTP API read with urllib: query(), value(), wait_value(), targets(), rules(). Also
scrape() (one GET of a /metrics, or any URL, as (status, headers, body)) and promtool(),
Prometheus' own checker (`promtool check metrics` on a scrape, `check rules`, `test
rules`).

    with Prometheus(["127.0.0.1:9780", "127.0.0.1:9781"], rule_files=[RULES]) as prom:
        prom.wait_value('sum(up{job="mailroom"})', lambda v: v == 2, timeout=20)
        sent = prom.value('sum(mailroom_jobs_total{state="sent"})')
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request

from .paths import LOOPBACK
from .procs import Child, free_port, run, wait_for, wait_started

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def prometheus_missing() -> list:
    """The programs of Debian's prometheus package that are not installed."""
    return [p for p in (PROMETHEUS, PROMTOOL) if not os.access(p, os.X_OK)]


def scrape(url: str, *, method: str = "GET", timeout: float = 5.0):
    """One HTTP request; returns (status, headers as a dict with lower-case names, body
    as str). An HTTP error status is returned, not raised."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return (resp.status, {k.lower(): v for k, v in resp.headers.items()},
                    resp.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        return (e.code, {k.lower(): v for k, v in e.headers.items()},
                e.read().decode("utf-8", "replace"))


def promtool(*args, input: str | None = None, timeout: float = 60.0):
    """Runs `promtool ARGS` (input: its stdin) and returns (rc, stdout, stderr)."""
    return run([PROMTOOL, *args], timeout=timeout,
               input=input.encode("utf-8") if input is not None else None)


def samples(text: str, name: str) -> dict:
    """The samples of one series name in an exposition: {label text: value}, the label
    text as written between the braces ("" when none)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        series, _, labels = head.partition("{")
        if series == name:
            out[labels.rstrip("}")] = float(value)
    return out


class Prometheus(Child):
    """prometheus on 127.0.0.1:<free port>, scraping `targets` (host:port strings) as
    job `job` every `interval`, evaluating `rule_files` at the same interval, its TSDB
    in its own temp dir. start() returns once /-/ready answers 200."""

    kind = "prometheus"

    def __init__(self, targets, *, job: str = "mailroom", interval: str = "1s",
                 rule_files=(), startup_timeout: float = 30.0):
        super().__init__()
        self.port = free_port()
        self.targets = list(targets)
        self.job = job
        self.interval = interval
        self.rule_files = [str(p) for p in rule_files]
        self.startup_timeout = startup_timeout

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def write_config(self) -> str:
        """prometheus.yml in the temp dir (JSON is YAML); returns its path."""
        config = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval,
                       "scrape_timeout": self.interval},
            "rule_files": self.rule_files,
            "scrape_configs": [{"job_name": self.job,
                                "static_configs": [{"targets": self.targets}]}],
        }
        path = os.path.join(self.make_dir(), "prometheus.yml")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=1)
        return path

    def start(self) -> "Prometheus":
        config = self.write_config()
        argv = [PROMETHEUS, f"--config.file={config}",
                f"--storage.tsdb.path={os.path.join(self.make_dir(), 'data')}",
                f"--web.listen-address={LOOPBACK}:{self.port}", "--log.level=warn"]
        self.spawn_child(argv, cwd=self.make_dir())

        def ready():
            try:
                return scrape(self.url + "/-/ready", timeout=1.0)[0] == 200
            except OSError:
                return False

        try:
            wait_started(self, ready, f"prometheus on port {self.port}", self.startup_timeout)
        except BaseException:
            self.stop(timeout=3)
            raise
        return self

    def api(self, path: str, **params):
        """GET /api/v1/<path>?params; returns the answer's data (raises on an error)."""
        query = urllib.parse.urlencode(params)
        status, _, body = scrape(f"{self.url}/api/v1/{path}?{query}", timeout=10.0)
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise AssertionError(f"prometheus {path} {params}: {status} {body[:500]}")
        return answer["data"]

    def query(self, expr: str) -> list:
        """An instant query's vector: [(labels dict, value float)]."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def value(self, expr: str):
        """The one value of an instant query, or None when it returned nothing."""
        result = self.query(expr)
        if len(result) > 1:
            raise AssertionError(f"{expr} gave {len(result)} series: {result}")
        return result[0][1] if result else None

    def wait_value(self, expr: str, predicate, timeout: float = 20.0) -> float:
        """Polls value(expr) until predicate(value) holds (None is never passed);
        returns the value."""
        last = []

        def holds():
            v = self.value(expr)
            last[:] = [v]
            return v is not None and predicate(v)

        wait_for(holds, timeout, 0.25, f"{expr} (last value: {last})")
        return last[0]

    def targets(self) -> list:
        return self.api("targets")["activeTargets"]

    def rules(self) -> list:
        """Every rule of every group, as /api/v1/rules gives them."""
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]
