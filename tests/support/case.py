"""ServerTestCase, the base of the integration suites: per-test servers (Redis, SMTP
receivers and sinks, status listeners, temp dirs) entered into an ExitStack that the
test's cleanup closes; consumers signalled together at cleanup, so that they stop in
parallel, and their logs shown when the test failed; `mailroom send` and waits on a
job's state."""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
import unittest

from .consumer import Consumer, run_cli
from .paths import binaries_missing
from .procs import wait_for
from .redis_server import RedisServer
from .smtp_receiver import Receiver
from .smtp_sink import SmtpSink
from .state import Keys, StatusListener, processing_lengths


class ServerTestCase(unittest.TestCase):
    """The base of the integration suites: per-test servers entered into an ExitStack
    that cleanup closes; consumers signalled together at cleanup (so they stop in
    parallel) and their logs dumped when the test failed."""

    WAIT_TIMEOUT = 15.0  # default for wait_state
    LOG_TAIL = 6000      # bytes of each consumer log shown on failure

    def setUp(self):
        missing = binaries_missing()
        if missing:
            self.fail("binaries not built: " + ", ".join(missing))
        self.stack = contextlib.ExitStack()
        self.addCleanup(self.stack.close)
        self.consumers = []
        self.addCleanup(self._dump_logs_if_failed)
        self.addCleanup(self._terminate_consumers)  # runs first (cleanups are LIFO)

    # ---- fixtures

    def redis(self) -> RedisServer:
        return self.stack.enter_context(RedisServer())

    def receiver(self, **kw) -> Receiver:
        return self.stack.enter_context(Receiver(**kw))

    def listener(self, redis_server, **kw) -> StatusListener:
        """A StatusListener (kw: queue, on_event), subscribed before this returns."""
        return self.stack.enter_context(StatusListener(redis_server, **kw))

    def sink(self, *args) -> SmtpSink:
        """Postfix's smtp-sink with extra args (see SmtpSink)."""
        return self.stack.enter_context(SmtpSink(*args))

    def tmpdir(self, prefix: str = "mailroom-test-") -> str:
        return self.stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix))

    def start_consumer(self, env, *args, **kw) -> Consumer:
        """Starts a consumer owned by this test (kw: Consumer's wrap, ...); its temp dir
        goes too when the start fails (e.g. the binary is being rebuilt)."""
        c = self.stack.enter_context(Consumer(env, *args, **kw))
        self.consumers.append(c)
        return c

    def _terminate_consumers(self):
        for c in self.consumers:
            with contextlib.suppress(Exception):
                c.send_signal(signal.SIGTERM)

    def _failed(self) -> bool:
        """Whether this test (or one of its subTests) has failed or errored so far."""
        # outcome.success is reset to True while cleanups run: ask the result instead
        result = getattr(getattr(self, "_outcome", None), "result", None)
        problems = getattr(result, "failures", []) + getattr(result, "errors", [])
        return any(test is self or getattr(test, "test_case", None) is self
                   for test, _ in problems)

    def _dump_logs_if_failed(self):
        if not self._failed():
            return
        for c in self.consumers:
            sys.stderr.write(f"\n----- consumer {c.args} log (tail) -----\n"
                             f"{c.log()[-self.LOG_TAIL:]}\n")

    # ---- the producer

    def send(self, env, *extra, to=("rcpt@example.com",), sender="noreply@example.com",
             subject="Hello", text="Hello there.") -> str:
        """`mailroom send` (to: one address or several; text None: no --text; extra:
        further arguments) must exit 0 and print a valid job id, which it returns."""
        args = ["send"]
        for t in ((to,) if isinstance(to, str) else to):
            args += ["--to", t]
        args += ["--from", sender, "--subject", subject]
        if text is not None:
            args += ["--text", text]
        args += list(extra)
        rc, out, err = run_cli(*args, env=env)
        self.assertEqual(rc, 0, f"mailroom send failed: rc={rc} stderr={err!r}")
        job_id = out.strip()
        self.assertRegex(job_id, r"\A[A-Za-z0-9._:-]{1,128}\Z", f"stdout={out!r}")
        return job_id

    # ---- checks

    def wait_state(self, r, job_id, states, queue="default", timeout=None, check=None) -> dict:
        """Waits until the job's record is in one of states (a name or a tuple) and
        returns the record; check, when given, runs at every poll and may raise."""
        if isinstance(states, str):
            states = (states,)
        key = Keys(queue).job(job_id)

        def reached():
            if check:
                check()
            h = r.hgetall(key)
            return h if h.get("state") in states else None
        try:
            return wait_for(reached, timeout or self.WAIT_TIMEOUT,
                            message=f"job {job_id} to reach state {states}")
        except AssertionError as e:
            raise AssertionError(f"{e}; record now: {r.hgetall(key)}") from None

    def assert_queue_drained(self, r, queue="default"):
        self.assertEqual(r.llen(Keys(queue).pending), 0, "pending list not empty")
        self.assertEqual({k: v for k, v in processing_lengths(r, queue).items() if v}, {},
                         "processing lists not empty")
