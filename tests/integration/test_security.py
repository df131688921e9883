#!/usr/bin/python3
"""Security tests of mailroom (docs/security.md): SMTP STARTTLS/implicit TLS, AUTH and
certificate checks against a real aiosmtpd server with a throw-away PKI; secrets that
must never leak (logs, ps, Redis, events, dead list); the Redis ACL roles documented in
docs/security.md, applied verbatim; signing-key rotation with jobs in flight;
--accept-alg; and the minimum key length.

Run: /usr/bin/python3 tests/integration/test_security.py [-v] [TestClass.test_name]
The binaries come from $MAILROOM_BIN_DIR (default <repo>/build/bin). Every server
listens on a free 127.0.0.1 port; temporary files live in temporary directories that
are removed; every child process is stopped at the end of its test.
"""

import base64
import contextlib
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
import unittest
from pathlib import Path

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

import redis  # noqa: E402  (python3-redis)

from support.case import ServerTestCase  # noqa: E402
from support.consumer import Consumer, mailroom_env, run_cli  # noqa: E402
from support.jobs import enqueue_raw, job_json, make_job, new_secret, sign_job  # noqa: E402
from support.libmailroom import Libmailroom, libmailroom_path  # noqa: E402
from support.paths import REPO_ROOT  # noqa: E402
from support.pki import make_pki  # noqa: E402
from support.procs import proc_text, wait_for  # noqa: E402
from support.smtp_receiver import TlsSmtpServer  # noqa: E402
from support.state import Keys, stats, StatusListener  # noqa: E402

SENDER = "noreply@example.com"
RCPT = "rcpt@example.com"
FINAL = ("sent", "failed", "rejected")
SECURITY_DOC = REPO_ROOT / "docs" / "security.md"


# --------------------------------------------------------------------------- ACL rules

ACL_MARKER = "<!-- acl-rules: applied verbatim by tests/integration/test_security.py -->"
ACL_PLACEHOLDERS = ("PRODUCER_PASSWORD", "CONSUMER_PASSWORD")


def acl_commands(passwords: dict, doc: Path = SECURITY_DOC) -> list:
    """The `ACL SETUSER ...` lines of the fenced block that follows ACL_MARKER in
    docs/security.md, each split as redis-cli splits a line (shell-like quoting), with
    the password placeholders replaced. Raises AssertionError when the block is
    missing or names a placeholder not given."""
    text = doc.read_text(encoding="utf-8")
    at = text.find(ACL_MARKER)
    if at < 0:
        raise AssertionError(f"{doc}: the ACL block marker {ACL_MARKER!r} is missing")
    m = re.search(r"```[^\n]*\n(.*?)```", text[at:], re.S)
    if not m:
        raise AssertionError(f"{doc}: no fenced block after the ACL marker")
    out = []
    for line in m.group(1).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.upper().startswith("ACL SETUSER "):
            raise AssertionError(f"{doc}: unexpected line in the ACL block: {line!r}")
        args = shlex.split(line)
        fixed = []
        for a in args:
            for name in ACL_PLACEHOLDERS:
                if name in a:
                    if name not in passwords:
                        raise AssertionError(f"no password given for {name}")
                    a = a.replace(name, passwords[name])
            fixed.append(a)
        out.append(fixed)
    if not out:
        raise AssertionError(f"{doc}: the ACL block holds no ACL SETUSER line")
    return out


# --------------------------------------------------------------------------- leaks


def secret_forms(secret: str, user: str | None = None) -> list:
    """The ways a password could show up in a log or a trace: itself, base64 of it
    (AUTH LOGIN), and the AUTH PLAIN token."""
    forms = [secret, base64.b64encode(secret.encode()).decode()]
    if user is not None:
        forms.append(base64.b64encode(f"\0{user}\0{secret}".encode()).decode())
        forms.append(base64.b64encode(f"{user}\0{user}\0{secret}".encode()).decode())
    return forms


def redis_dump(r) -> str:
    """Every key of the connection's database with its whole value, as one string (r
    decodes responses)."""
    parts = []
    for key in r.scan_iter(count=1000):
        t = r.type(key)
        if t == "string":
            v = r.get(key)
        elif t == "list":
            v = r.lrange(key, 0, -1)
        elif t == "hash":
            v = r.hgetall(key)
        elif t == "set":
            v = sorted(r.smembers(key))
        elif t == "zset":
            v = r.zrange(key, 0, -1, withscores=True)
        else:
            v = f"<{t}>"
        parts.append(f"{key} {t} {v!r}")
    return "\n".join(parts)


def _pw(tag: str) -> str:
    """A random password made of [a-z0-9-] only, so that it reads the same in text
    logs, JSON logs and Redis replies."""
    return f"{tag}-{new_secret()}"


class SecurityTestCase(ServerTestCase):
    """Per-test servers in an ExitStack closed at cleanup, a PKI shared by the class,
    and a dump of the consumers' logs when a test failed."""

    @classmethod
    def setUpClass(cls):
        cls._pki_dir = tempfile.mkdtemp(prefix="mailroom-pki-")
        try:
            cls.pki = make_pki(cls._pki_dir)
        except BaseException:
            shutil.rmtree(cls._pki_dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls._pki_dir, ignore_errors=True)

    WAIT_TIMEOUT = 10.0
    LOG_TAIL = 4000

    def tmpdir(self, prefix: str = "mailroom-sec-") -> str:
        return super().tmpdir(prefix)

    def write(self, directory: str, name: str, text: str) -> str:
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def consumer(self, env, *args) -> Consumer:
        return self.start_consumer(env, "--block-timeout", "250ms", *args)

    # ---- helpers

    def wait_state(self, r, job_id, states, queue="default", timeout=None, check=None):
        """Also fails at once when a consumer died or was refused by Redis."""
        return super().wait_state(r, job_id, states, queue, timeout,
                                  check or self.assert_consumers_alive)

    def wait_put_back(self, r, job_id, queue="default"):
        """Waits until the job was put back after its relay could not be reached (no
        connection, TLS or greeting): queued, no attempt counted; returns the record."""
        def put_back():
            self.assert_consumers_alive()
            h = r.hgetall(Keys(queue).job(job_id))
            return h if "could not reach relay" in h.get("error", "") else None
        h = wait_for(put_back, 10, message=f"job {job_id} put back")
        self.assertEqual((h["state"], h["attempts"]), ("queued", "0"), h)
        return h

    def assert_consumers_alive(self):
        """Fails at once when a consumer this test did not stop has exited, or when one
        was refused by Redis (authentication or ACL)."""
        for c in self.consumers:
            if c.returncode is None and c.proc is not None and c.proc.poll() is not None:
                raise AssertionError(f"consumer {c.args} exited with {c.proc.returncode}: "
                                     f"{c.log()[-1500:]}")
            if re.search(r"Redis AUTH refused|NOPERM|no permissions|can.t (run|access|publish)",
                         c.log()):
                raise AssertionError(f"consumer {c.args} refused by Redis: {c.log()[-1500:]}")

    def wait_log(self, consumer, pattern, timeout=10.0) -> str:
        def found():
            m = re.search(pattern, consumer.log())
            if not m and not consumer.alive():
                raise AssertionError(f"consumer exited ({consumer.proc.returncode}) before "
                                     f"logging {pattern!r}: {consumer.log()[-1500:]}")
            return m and m.group(0)
        return wait_for(found, timeout, message=f"log line {pattern!r}")

    def tls_server(self, cert=None, key=None, **kw) -> TlsSmtpServer:
        return self.stack.enter_context(TlsSmtpServer(cert or self.pki.server_cert,
                                                      key or self.pki.server_key, **kw))


# --------------------------------------------------------------------------- SMTP TLS


class SmtpTlsTest(SecurityTestCase):

    def test_starttls_and_auth_deliver_over_tls(self):
        """STARTTLS (required) + AUTH against a server that refuses MAIL before STARTTLS
        and AUTH before TLS: the job is sent, over TLS, authenticated as our user. The
        same over implicit TLS (smtps://)."""
        rs = self.redis()
        r = rs.client()
        d = self.tmpdir()
        user, pw = "mailer", _pw("smtp")
        pw_file = self.write(d, "smtp-password", pw + "\n")  # first line only
        secret = new_secret()
        for implicit in (False, True):
            with self.subTest(implicit=implicit):
                srv = self.tls_server(implicit=implicit, users={user: pw})
                queue = "implicit" if implicit else "starttls"
                env = mailroom_env(rs, secret=secret, smtp=srv, queue=queue,
                                   MAILROOM_SMTP_TLS="required",
                                   MAILROOM_SMTP_CA_FILE=self.pki.ca,
                                   MAILROOM_SMTP_USER=user, MAILROOM_SMTP_PASSWORD_FILE=pw_file)
                c = self.consumer(env)
                job_id = self.send(env, subject=f"tls {queue}")
                h = self.wait_state(r, job_id, FINAL + ("retrying",), queue=queue)
                self.assertEqual(h["state"], "sent", f"record: {h}")
                self.assertEqual(h["smtp_code"], "250")
                msgs = srv.wait_for_count(1)
                self.assertEqual(len(msgs), 1)
                m = msgs[0]
                self.assertTrue(m.tls, "the message did not travel over TLS")
                self.assertIn(m.tls_version, ("TLSv1.2", "TLSv1.3"))
                self.assertTrue(m.authenticated, "the session was not authenticated")
                self.assertEqual(m.login, user)
                self.assertIn(f"tls {queue}".encode(), m.raw)
                self.assertTrue(srv.auth_attempts, "no AUTH seen")
                self.assertTrue(all(tls for _, _, tls in srv.auth_attempts),
                                f"AUTH sent before TLS: {srv.auth_attempts}")
                self.assertEqual([ok for _, ok, _ in srv.auth_attempts][-1], True)
                self.assertRegex(c.log(), r"tls (required|implicit), auth")

    def test_server_without_starttls_is_not_used_under_required(self):
        """A server that offers no STARTTLS (and would accept the mail in clear text):
        with MAILROOM_SMTP_TLS=required nothing is sent; the job waits, queued, with an
        error naming STARTTLS/TLS, and no attempt spent (a TLS failure is the relay's,
        docs/relays.md)."""
        rs = self.redis()
        r = rs.client()
        rx = self.receiver()
        env = mailroom_env(rs, secret=new_secret(), smtp=rx, MAILROOM_SMTP_TLS="required")
        self.consumer(env)
        job_id = self.send(env)
        h = self.wait_put_back(r, job_id)
        self.assertRegex(h["error"], r"(?i)starttls|\btls\b|\bssl\b")
        time.sleep(0.3)
        self.assertNotEqual(r.hget(Keys().job(job_id), "state"), "sent")
        self.assertEqual(rx.count(), 0, "a message was delivered without TLS")
        self.assertEqual(rx.rcpt_seen, 0, "envelope commands were sent without TLS")

    def test_wrong_password_is_retried_never_sent(self):
        rs = self.redis()
        r = rs.client()
        d = self.tmpdir()
        srv = self.tls_server(users={"mailer": _pw("right")})
        env = mailroom_env(rs, secret=new_secret(), smtp=srv, MAILROOM_SMTP_TLS="required",
                           MAILROOM_SMTP_CA_FILE=self.pki.ca, MAILROOM_SMTP_USER="mailer",
                           MAILROOM_SMTP_PASSWORD_FILE=self.write(d, "pw", _pw("wrong")))
        self.consumer(env)
        job_id = self.send(env)
        h = self.wait_state(r, job_id, FINAL + ("retrying",))
        self.assertEqual(h["state"], "retrying", f"record: {h}")
        self.assertRegex(h["error"], r"(?i)login|auth")
        time.sleep(0.3)
        self.assertEqual(srv.messages(), [])
        self.assertNotEqual(r.hget(Keys().job(job_id), "state"), "sent")
        self.assertTrue(srv.auth_attempts and not any(ok for _, ok, _ in srv.auth_attempts),
                        f"auth attempts: {srv.auth_attempts}")

    def test_certificate_verification_is_on_by_default(self):
        """Self-signed server without a CA file: refused. A CA-signed certificate for
        another host name, with the CA file: refused. --smtp-insecure: sent, with a
        warning in the log."""
        rs = self.redis()
        r = rs.client()
        selfsigned = self.tls_server(self.pki.self_signed_cert, self.pki.self_signed_key)
        wronghost = self.tls_server(self.pki.wrong_host_cert, self.pki.wrong_host_key)
        secret = new_secret()
        cases = {
            "noca": (selfsigned, {}, ()),
            "wrongca": (selfsigned, {"MAILROOM_SMTP_CA_FILE": self.pki.ca}, ()),
            "wronghost": (wronghost, {"MAILROOM_SMTP_CA_FILE": self.pki.ca}, ()),
            "insecure": (selfsigned, {}, ("--smtp-insecure",)),
        }
        jobs, consumers = {}, {}
        for q, (srv, extra, args) in cases.items():
            env = mailroom_env(rs, secret=secret, smtp=srv, queue=q,
                               MAILROOM_SMTP_TLS="required", **extra)
            consumers[q] = self.consumer(env, *args)
            jobs[q] = self.send(env, subject=f"cert {q}")
        for q in ("noca", "wrongca", "wronghost"):
            h = self.wait_put_back(r, jobs[q], queue=q)
            self.assertRegex(h["error"], r"(?i)certificate", q)
            self.assertNotRegex(consumers[q].log(), r"(?i)not verified", q)
        h = self.wait_state(r, jobs["insecure"], FINAL + ("retrying",), queue="insecure")
        self.assertEqual(h["state"], "sent", f"insecure: {h}")
        got = selfsigned.wait_for_count(1)
        self.assertEqual([m.raw.count(b"cert insecure") for m in got], [1])
        self.assertTrue(got[0].tls)
        self.assertEqual(wronghost.messages(), [])
        self.assertRegex(consumers["insecure"].log(),
                         r"(?im)^\S+\s+warn\S*\s+.*certificates are NOT verified")

    def test_default_tls_policy(self):
        """Without MAILROOM_SMTP_TLS: none for a loopback host, required otherwise."""
        rs = self.redis()
        expect = {"smtp://127.0.0.1:2525": "none", "smtp://localhost:2525": "none",
                  "smtp://[::1]:2525": "none", "smtp://mail.example.com:587": "required",
                  "smtps://mail.example.com:465": "implicit"}
        self._check_tls_policy(rs, expect)

    def test_loopback_exemption_is_not_a_host_name_prefix(self):
        """Host names that merely start like a loopback address are remote hosts: TLS
        must stay required for them (DNS decides where 127.evil.example goes)."""
        rs = self.redis()
        expect = {"smtp://127.mail.example.com:25": "required",
                  "smtp://127.0.0.1.nip.io:25": "required",
                  "smtp://localhost.example.com:25": "required"}
        self._check_tls_policy(rs, expect)

    def _check_tls_policy(self, rs, expect):
        secret = new_secret()
        started = []
        for i, url in enumerate(expect):
            env = mailroom_env(rs, secret=secret, smtp=url, queue=f"policy{i}")
            started.append((url, self.consumer(env, "--concurrency", "1")))
        got = {}
        for url, c in started:
            line = self.wait_log(c, r"ready: .*")
            m = re.search(r"\(tls (\w+)", line)
            got[url] = m.group(1) if m else line
        self.assertEqual(got, expect)


# --------------------------------------------------------------------------- secrets


class SecretLeakTest(SecurityTestCase):

    def test_passwords_never_leak(self):
        """The SMTP password (right and wrong ones) and the Redis password appear in no
        log line (text and JSON, debug level), no /proc/<pid>/cmdline or environ, no
        Redis key (job records, dead list, stats, ...), no status event, no message."""
        rs = self.redis()
        admin = rs.client()
        d = self.tmpdir()
        user, smtp_pw, wrong_pw, redis_pw = "mailer", _pw("smtp"), _pw("wrong"), _pw("redis")
        admin.execute_command("ACL", "SETUSER", "app", "on", f">{redis_pw}", "~*", "&*",
                              "+@all")
        srv = self.tls_server(users={user: smtp_pw})
        files = {"good": self.write(d, "good", smtp_pw + "\n"),
                 "bad": self.write(d, "bad", wrong_pw + "\n"),
                 "redis": self.write(d, "redis", redis_pw + "\n")}
        secrets = {"smtp": secret_forms(smtp_pw, user), "wrong": secret_forms(wrong_pw, user),
                   "redis": secret_forms(redis_pw, "app")}
        secret = new_secret()
        url = f"redis://app:@127.0.0.1:{rs.port}/0"  # the password comes from the file

        def leaks(text):
            return [name for name, forms in secrets.items() if any(f in text for f in forms)]

        runs = []
        with contextlib.ExitStack() as listeners:
            for fmt in ("text", "json"):
                for kind in ("good", "bad"):
                    q = f"{fmt}-{kind}"
                    lst = listeners.enter_context(StatusListener(rs, queue=q))
                    env = mailroom_env(redis_url=url, secret=secret, smtp=srv, queue=q,
                                       MAILROOM_REDIS_PASSWORD_FILE=files["redis"],
                                       MAILROOM_SMTP_TLS="required",
                                       MAILROOM_SMTP_CA_FILE=self.pki.ca,
                                       MAILROOM_SMTP_USER=user,
                                       MAILROOM_SMTP_PASSWORD_FILE=files[kind])
                    c = self.consumer(env, "--log-format", fmt, "--log-level", "debug",
                                      "--max-attempts", "1", "--concurrency", "2")
                    job_id = self.send(env, subject=q)
                    runs.append((q, kind, c, lst, job_id, env))
            for q, kind, c, lst, job_id, env in runs:
                want = "sent" if kind == "good" else "failed"
                h = self.wait_state(admin, job_id, FINAL + ("retrying",), queue=q)
                self.assertEqual(h["state"], want, f"{q}: {h}")
                lst.wait_for_state(job_id, want)
                # the process while it runs: argv and environment
                self.assertEqual(leaks(proc_text(c.pid, "cmdline")), [], f"{q}: cmdline")
                self.assertEqual(leaks(proc_text(c.pid, "environ")), [], f"{q}: environ")
                rc, out, err = run_cli("status", job_id, env=env)
                self.assertEqual(rc, 0, err)
                self.assertEqual(leaks(out + err), [], f"{q}: mailroom status")
            for q, kind, c, lst, job_id, env in runs:
                self.assertEqual(c.stop(), 0, f"{q}: consumer exit code")
                log = c.log()
                if q.startswith("json"):
                    self.assertTrue(log.strip() and all(
                        json.loads(l) for l in log.splitlines() if l.strip()))
                self.assertIn(f"queue {q}", log, f"{q}: not the log of this consumer")
                self.assertIn("AUTH refused: 535" if kind == "bad" else "sent 250", log)
                self.assertEqual(leaks(log), [], f"{q}: consumer log")
                events = json.dumps(lst.events(), ensure_ascii=False)
                self.assertEqual(leaks(events), [], f"{q}: status events")
            # a wrong Redis password: the refusal names no password
            wrong_redis_pw = _pw("wrongredis")
            wrong_redis = self.write(d, "wrong-redis", wrong_redis_pw + "\n")
            secrets["wrong-redis"] = secret_forms(wrong_redis_pw, "app")
            env = mailroom_env(redis_url=url, secret=secret, smtp=srv,
                               MAILROOM_REDIS_PASSWORD_FILE=wrong_redis)
            rc, out, err = run_cli("status", runs[0][4], env=env)
            self.assertEqual(rc, 69, err)
            self.assertIn("AUTH", err)
            self.assertEqual(leaks(out + err), [], "mailroom status, wrong Redis password")
            bad = Consumer(env, "--block-timeout", "250ms")
            self.stack.enter_context(bad)
            wait_for(lambda: "AUTH refused" in bad.log(), 10, message="AUTH refused logged")
            self.assertEqual(bad.stop(), 0)
            self.assertEqual(leaks(bad.log()), [], "consumer log, wrong Redis password")
            dump = redis_dump(admin)
            self.assertIn("dead", dump)  # the failed jobs' dead letters are in the dump
            self.assertIn("AUTH refused: 535", dump)
            self.assertEqual(leaks(dump), [], "Redis contents")
            self.assertEqual(leaks(b"".join(m.raw for m in srv.messages()).decode(
                "utf-8", "replace")), [], "delivered messages")

    def test_smtp_url_credentials_never_logged(self):
        """A password put into the SMTP URL (smtp://user:pass@host) must not reach the
        log: either the consumer refuses such a URL, or it masks the password."""
        rs = self.redis()
        pw = _pw("urlpw")
        srv = self.receiver()
        env = mailroom_env(rs, secret=new_secret(),
                           smtp=f"smtp://mailer:{pw}@127.0.0.1:{srv.port}")
        c = self.consumer(env)
        try:
            wait_for(lambda: not c.alive() or "ready:" in c.log(), 10,
                     message="the consumer to start or refuse")
        finally:
            c.stop()
        self.assertNotIn(pw, c.log(), "the SMTP URL's password was written to the log")
        if "ready:" not in c.log():  # it refused the URL: an orderly refusal, not a crash
            self.assertGreater(c.returncode, 0, f"the consumer did not refuse: {c.log()}")
            self.assertRegex(c.log(), r"(?i)SMTP URL must not carry a user or password",
                             "the consumer stopped without naming the refusal")

    def test_redis_password_never_visible_in_argv(self):
        """`--redis redis://user:PASS@...` puts the password into argv, which every local
        user reads with ps. Either the consumer refuses a password in --redis (pointing
        to MAILROOM_REDIS_URL / MAILROOM_REDIS_PASSWORD_FILE), or it scrubs it from its
        argv before it connects."""
        rs = self.redis()
        admin = rs.client()
        pw = _pw("argvpw")
        admin.execute_command("ACL", "SETUSER", "app", "on", f">{pw}", "~*", "&*", "+@all")
        env = mailroom_env(secret=new_secret(), smtp="smtp://127.0.0.1:9")
        c = self.consumer(env, "--redis", f"redis://app:{pw}@127.0.0.1:{rs.port}/0")
        seen = []
        deadline = time.monotonic() + 5
        while c.alive() and time.monotonic() < deadline and "ready:" not in c.log():
            seen.append(proc_text(c.pid, "cmdline"))
            time.sleep(0.02)
        if c.alive():
            seen.append(proc_text(c.pid, "cmdline"))
        c.stop()
        self.assertNotIn(pw, c.log())
        if "ready:" in c.log():  # it ran: argv must not show the password once running
            self.assertFalse(any(pw in s for s in seen[-1:]),
                             "the Redis password is visible in /proc/<pid>/cmdline (ps)")
        else:  # it refused --redis: an orderly refusal, not a crash
            self.assertGreater(c.returncode, 0, f"the consumer did not refuse: {c.log()}")
            self.assertRegex(c.log(), r"--redis must not carry a password",
                             "the consumer stopped without naming the refusal")


# --------------------------------------------------------------------------- Redis ACL


class RedisAclTest(SecurityTestCase):

    def test_documented_acl_roles(self):
        """The ACL SETUSER lines of docs/security.md, applied verbatim: the CLI and the
        library work as the producer user, a consumer works as the consumer user (sent,
        retried, rejected, recovered, clean shutdown); everything else is NOPERM."""
        rs = self.redis()
        admin = rs.client()
        admin1 = redis.Redis(host=rs.host, port=rs.port, db=1, decode_responses=True,
                             socket_timeout=10)
        self.addCleanup(admin1.close)
        pwd = {"PRODUCER_PASSWORD": _pw("prod"), "CONSUMER_PASSWORD": _pw("cons")}
        for cmd in acl_commands(pwd):
            admin.execute_command(*cmd)
        users = set(admin.execute_command("ACL", "USERS"))
        self.assertLessEqual({"mailroom-producer", "mailroom-consumer"}, users)
        d = self.tmpdir()
        cons_pw_file = self.write(d, "redis-consumer", pwd["CONSUMER_PASSWORD"] + "\n")
        secret = new_secret()
        # database 1, so that SELECT is exercised too
        prod_url = f"redis://mailroom-producer:{pwd['PRODUCER_PASSWORD']}@127.0.0.1:{rs.port}/1"
        # user only (the colon says so), the password from MAILROOM_REDIS_PASSWORD_FILE
        cons_url = f"redis://mailroom-consumer:@127.0.0.1:{rs.port}/1"
        rx = self.receiver(refuse_first=1)
        penv = mailroom_env(redis_url=prod_url, secret=secret)
        cenv = mailroom_env(redis_url=cons_url, secret=secret, smtp=rx,
                            MAILROOM_REDIS_PASSWORD_FILE=cons_pw_file)
        Q = Keys("default")

        # a silent consumer "ghost" holding a job: the housekeeper must recover it
        ghost_job = sign_job(make_job(subject="recovered"), secret)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        admin1.hset(Q.job(ghost_job["id"]), mapping={"state": "sending", "attempts": "1",
                                                     "created_at": now, "updated_at": now})
        admin1.lpush(Q.processing("ghost"), job_json(ghost_job))
        admin1.zadd(Q.consumers, {"ghost": 1})

        c = self.consumer(cenv, "--backoff-base", "1s", "--dead-after", "2s",
                          "--concurrency", "2")
        first = self.send(penv, subject="acl retried")     # 451 once, then sent
        h = self.wait_state(admin1, first, FINAL, timeout=15)
        self.assertEqual(h["state"], "sent", f"record: {h}")
        second = self.send(penv, subject="acl direct")
        rc, out, err = run_cli("status", first, env=penv)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["state"], "sent")

        # mailroom_wait (SUBSCRIBE + HGETALL) as the producer, through the library
        if libmailroom_path() is not None:
            with Libmailroom(prod_url, key=secret.encode()) as lib:
                rc, state, err = lib.wait(second, 10000)
                self.assertEqual((rc, state), (0, "sent"), err)
                third = lib.send(RCPT, SENDER, "acl library", "sent by libmailroom")
                rc, state, err = lib.wait(third, 10000)
                self.assertEqual((rc, state), (0, "sent"), err)
        else:
            self.wait_state(admin1, second, "sent")

        # a forged job goes to the dead list (FINISH rejected: LPUSH + LTRIM dead)
        forged = sign_job(make_job(subject="forged"), "x" * 32)
        enqueue_raw(admin1, job_json(forged), job_id=forged["id"])
        self.assertEqual(self.wait_state(admin1, forged["id"], FINAL)["state"], "rejected")
        self.assertEqual(self.wait_state(admin1, ghost_job["id"], FINAL, timeout=15)["state"],
                         "sent")
        self.assertEqual(c.stop(), 0)  # RECLAIM on the way out
        log = c.log()
        self.assertNotRegex(log, r"(?i)noperm|no permissions|can't run|can't access",
                            "the consumer hit an ACL refusal")
        got = sorted(re.search(rb"Subject: ([^\r\n]*)", m.raw).group(1).decode()
                     for m in rx.messages())
        want = ["acl direct", "acl retried", "recovered"]
        if libmailroom_path() is not None:
            want.append("acl library")
        self.assertEqual(got, sorted(want))
        s = stats(admin1)
        self.assertEqual((s.get("retried"), s.get("rejected"), s.get("recovered")), (1, 1, 1))

        # what the producer must not do
        prod = redis.Redis(host=rs.host, port=rs.port, db=1, decode_responses=True,
                           username="mailroom-producer", password=pwd["PRODUCER_PASSWORD"])
        self.addCleanup(prod.close)
        admin1.set("app:secret", "x")
        denied = [
            ("LRANGE", Q.dead, 0, -1), ("LRANGE", Q.pending, 0, -1),
            ("ZRANGE", Q.scheduled, 0, -1), ("LRANGE", Q.processing("ghost"), 0, -1),
            ("HGETALL", Q.stats), ("DEL", Q.job(first)), ("UNLINK", Q.pending),
            ("FLUSHALL",), ("FLUSHDB",), ("KEYS", "*"), ("SCAN", 0),
            ("EXPIRE", Q.pending, 0), ("EXPIRE", Q.dead, 0), ("LPUSH", Q.dead, "x"),
            ("RPOP", Q.pending), ("LTRIM", Q.pending, 0, 0), ("ZREM", Q.scheduled, "x"),
            ("PUBLISH", Q.status, "{}"),
            ("GET", "app:secret"), ("HSET", "app:secret", "a", "b"),
            ("EVAL", "return redis.call('LRANGE', KEYS[1], 0, -1)", 1, Q.pending),
            ("EVAL", "return redis.call('LRANGE', KEYS[1], 0, -1)", 1, Q.dead),
            ("EVAL", "return redis.call('EXPIRE', KEYS[1], 0)", 1, Q.pending),
            ("EVAL", "return redis.call('DEL', KEYS[1])", 1, Q.job(first)),
            ("EVAL", "return redis.call('HSET', 'app:secret', 'a', 'b')", 0),
            ("CONFIG", "GET", "requirepass"), ("ACL", "LIST"), ("SCRIPT", "FLUSH"),
        ]
        self._assert_denied(prod, denied, "producer")
        ps = prod.pubsub()
        self.addCleanup(ps.close)
        ps.subscribe(Q.status)  # allowed: the status channel
        self.assertEqual(ps.get_message(timeout=5)["type"], "subscribe")
        with self.assertRaises(redis.exceptions.NoPermissionError):
            ps.subscribe("app:events")
            ps.get_message(timeout=5)
        self.assertEqual(admin1.llen(Q.dead), 1, "the producer changed the dead list")
        self.assertEqual(admin1.get("app:secret"), "x")

        # what the consumer must not do: nothing outside mailroom:*
        cons = redis.Redis(host=rs.host, port=rs.port, db=1, decode_responses=True,
                           username="mailroom-consumer", password=pwd["CONSUMER_PASSWORD"])
        self.addCleanup(cons.close)
        denied = [
            ("GET", "app:secret"), ("HGET", "app:secret", "a"), ("HSET", "app:secret", "a", "b"),
            ("LPUSH", "app:list", "x"), ("EXPIRE", "app:secret", 0), ("INCR", "counter"),
            ("BLMOVE", "app:list", Q.pending, "RIGHT", "LEFT", 1),
            ("BLMOVE", Q.pending, "app:list", "RIGHT", "LEFT", 1),
            ("PUBLISH", "app:events", "x"), ("DEL", "app:secret"), ("DEL", Q.stats),
            ("FLUSHALL",),
            ("KEYS", "*"), ("CONFIG", "GET", "*"),
            ("EVAL", "return redis.call('GET', 'app:secret')", 0),
            ("EVAL", "return redis.call('HSET', KEYS[1], 'a', 'b')", 1, "app:secret"),
            ("EVAL", "return redis.call('PUBLISH', 'app:events', 'x')", 0),
        ]
        self._assert_denied(cons, denied, "consumer")
        self.assertEqual(admin1.get("app:secret"), "x")
        self.assertFalse(admin1.exists("app:list", "counter"))

    def _assert_denied(self, client, commands, who):
        allowed = []
        for cmd in commands:
            try:
                client.execute_command(*cmd)
            except redis.exceptions.NoPermissionError:
                continue
            except redis.exceptions.ResponseError as e:
                # a refusal inside a script comes back as a script error
                if re.search(r"(?i)noperm|no permissions|can't (run|access|publish|subscribe)",
                             str(e)):
                    continue
                allowed.append((cmd[:2], f"unexpected error: {e}"))
                continue
            allowed.append(cmd[:2])
        self.assertEqual(allowed, [], f"the {who} user was allowed these")


# --------------------------------------------------------------------------- keys


class KeyTest(SecurityTestCase):

    def test_key_rotation_with_jobs_in_flight_loses_none(self):
        """Producers sign with `old`; two consumers accept old+new. Rotate: consumers
        restarted one at a time with `new` first, the producer switches to `new`
        meanwhile; then `old` is removed. Every job is sent exactly once, none rejected;
        a job signed with `old` after its removal, or with an unknown kid, is rejected
        with "unknown kid"."""
        rs = self.redis()
        r = rs.client()
        d = self.tmpdir()
        old, new = new_secret(), new_secret()
        cons_keys = self.write(d, "consumer-keys", f"old {old}\nnew {new}\n")
        prod_keys = self.write(d, "producer-keys", f"old {old}\n")
        rx = self.receiver(data_delay=0.1)
        cenv = mailroom_env(rs, keys_file=cons_keys, smtp=rx)
        penv = mailroom_env(rs, keys_file=prod_keys)
        args = ("--concurrency", "2")

        def kid_signed_now():
            probe_env = dict(penv, MAILROOM_QUEUE="probe")
            self.send(probe_env, subject="probe")
            raw = r.lpop(Keys("probe").pending)
            return json.loads(raw)["kid"]

        self.assertEqual(kid_signed_now(), "old")
        cs = [self.consumer(cenv, *args), self.consumer(cenv, *args)]
        sent_ids = [self.send(penv, subject=f"batch A {i}") for i in range(16)]
        rx.wait_for_count(3)  # jobs are in flight now

        # rotation step 1: every consumer learns `new` (restarted one at a time)
        self.write(d, "consumer-keys", f"new {new}\nold {old}\n")
        self.assertEqual(cs[0].stop(), 0)
        cs[0] = self.consumer(cenv, *args)
        # step 2: producers sign with `new` (while consumer 1 still runs the old ring)
        self.write(d, "producer-keys", f"new {new}\nold {old}\n")
        self.assertEqual(kid_signed_now(), "new")
        sent_ids += [self.send(penv, subject=f"batch B {i}") for i in range(16)]
        self.assertEqual(cs[1].stop(), 0)
        cs[1] = self.consumer(cenv, *args)
        sent_ids += [self.send(penv, subject=f"batch C {i}") for i in range(8)]
        for job_id in sent_ids:
            self.wait_state(r, job_id, FINAL, timeout=20)
        states = {j: r.hget(Keys().job(j), "state") for j in sent_ids}
        self.assertEqual({j: s for j, s in states.items() if s != "sent"}, {})

        # step 3: `old` is removed from the consumers
        self.write(d, "consumer-keys", f"new {new}\n")
        for i in range(2):
            self.assertEqual(cs[i].stop(), 0)
            cs[i] = self.consumer(cenv, *args)
        sent_ids.append(self.send(penv, subject="after removal"))
        self.write(d, "producer-keys", f"old {old}\n")  # a producer left behind
        stale = self.send(penv, subject="stale key")
        ghost = sign_job(make_job(subject="unknown kid"), new_secret(), kid="ghost")
        enqueue_raw(r, job_json(ghost), job_id=ghost["id"])
        for job_id in (stale, ghost["id"]):
            h = self.wait_state(r, job_id, FINAL)
            self.assertEqual(h["state"], "rejected", f"record: {h}")
            self.assertIn("unknown kid", h["error"])
        self.assertEqual(self.wait_state(r, sent_ids[-1], FINAL)["state"], "sent")

        subjects = sorted(re.search(rb"Subject: ([^\r\n]*)", m.raw).group(1).decode()
                          for m in rx.messages())
        want = sorted([f"batch A {i}" for i in range(16)] + [f"batch B {i}" for i in range(16)]
                      + [f"batch C {i}" for i in range(8)] + ["after removal"])
        self.assertEqual(subjects, want, "lost or duplicated mail")
        s = stats(r)
        self.assertEqual((s.get("sent"), s.get("rejected", 0)), (len(want), 2))

    def test_accept_alg_sha256_only(self):
        rs = self.redis()
        r = rs.client()
        rx = self.receiver()
        secret = new_secret()
        env = mailroom_env(rs, secret=secret, smtp=rx)
        self.consumer(env, "--accept-alg", "hmac-sha256")
        sha1 = self.send(env, subject="sha1 job")       # the producer's default: SHA-1
        # signed by the Python reference signer: sig is 64 hex digits (HMAC-SHA-256)
        job = sign_job(make_job(subject="sha256 job"), secret, alg="hmac-sha256")
        enqueue_raw(r, job_json(job), job_id=job["id"])
        h = self.wait_state(r, sha1, FINAL)
        self.assertEqual(h["state"], "rejected", f"record: {h}")
        self.assertIn("not accepted", h["error"])
        self.assertEqual(self.wait_state(r, job["id"], FINAL)["state"], "sent")
        want = ["sha256 job"]
        if libmailroom_path() is not None:
            with Libmailroom(rs.url, key=secret.encode(), alg="hmac-sha256") as lib:
                lib_id = lib.send(RCPT, SENDER, "library sha256", "x")
                self.assertEqual(lib.wait(lib_id, 10000)[:2], (0, "sent"))
            want.append("library sha256")
        got = [re.search(rb"Subject: ([^\r\n]*)", m.raw).group(1).decode()
               for m in rx.messages()]
        self.assertEqual(sorted(got), sorted(want))

    def test_short_keys_are_refused(self):
        """A 15-byte secret (MAILROOM_SECRET, or a keys-file line) stops the CLI and the
        consumer with exit 78 and a message that names the rule, not the secret; 16 bytes
        are accepted."""
        rs = self.redis()
        d = self.tmpdir()
        short = "Sh0rt-" + new_secret()[:9]  # 6 + 9 = 15 ASCII bytes: one short
        ok16 = "L0ng-" + new_secret()[:11]    # 5 + 11 = 16 bytes: the minimum
        envs = {
            "secret": mailroom_env(rs, secret=short, smtp="smtp://127.0.0.1:9"),
            "keys file": mailroom_env(rs, smtp="smtp://127.0.0.1:9", keys_file=self.write(
                d, "keys", f"first {new_secret()}\nsecond {short}\n")),
        }
        for what, env in envs.items():
            with self.subTest(what=what):
                rc, out, err = run_cli("send", "--to", RCPT, "--from", SENDER, "--subject",
                                       "x", "--text", "y", env=env)
                self.assertEqual(rc, 78, err)
                self.assertRegex(err, r"16 bytes")
                self.assertNotIn(short, out + err)
                c = Consumer(env)
                self.stack.enter_context(c)
                try:
                    c.proc.wait(10)
                except Exception:
                    self.fail("the consumer started with a short key")
                self.assertEqual(c.proc.returncode, 78, c.log())
                self.assertRegex(c.log(), r"16 bytes")
                self.assertNotIn(short, c.log())
        env = mailroom_env(rs, secret=ok16, smtp="smtp://127.0.0.1:9")
        rc, out, err = run_cli("send", "--to", RCPT, "--from", SENDER, "--subject", "x",
                               "--text", "y", env=env)
        self.assertEqual(rc, 0, err)
        c = self.consumer(env)
        self.wait_log(c, r"ready: ")


if __name__ == "__main__":
    unittest.main(verbosity=2)
