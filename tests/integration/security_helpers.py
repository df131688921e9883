"""Helpers for tests/integration/test_security.py: a throw-away PKI made with `openssl`,
an aiosmtpd server with STARTTLS or implicit TLS and AUTH that records how each
message arrived, the Redis ACL rules read from docs/security.md (so the documentation
and the test apply the very same text), a dump of a whole Redis database for leak
checks. (The ctypes binding of libmailroom is harness.Libmailroom.)

Only the Python standard library, python3-redis and python3-aiosmtpd (run with
/usr/bin/python3). Everything binds to 127.0.0.1 and lives in temporary directories
that the callers remove.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from harness import REPO_ROOT, SmtpServer, wait_for

SECURITY_DOC = REPO_ROOT / "docs" / "security.md"



# --------------------------------------------------------------------------- PKI


def _openssl(*args, cwd) -> None:
    cp = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, timeout=30)
    if cp.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: "
                           + cp.stderr.decode(errors="replace")[-1500:])


_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass
class Pki:
    dir: str
    ca: str            # the test CA's certificate (what MAILROOM_SMTP_CA_FILE names)
    server_cert: str   # signed by the CA; SAN IP:127.0.0.1, DNS:localhost
    server_key: str
    wrong_host_cert: str  # signed by the CA, but only for DNS:mail.example.com
    wrong_host_key: str
    self_signed_cert: str  # its own issuer; SAN IP:127.0.0.1, DNS:localhost
    self_signed_key: str


def make_pki(directory: str) -> Pki:
    """A CA, a server certificate it signed for 127.0.0.1/localhost, one it signed for
    another host name, and a self-signed certificate for 127.0.0.1 (EC P-256, 2 days)."""
    d = directory

    def leaf(name: str, san: str) -> None:
        _openssl("req", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={san.split(':', 1)[1].split(',')[0]}", cwd=d)
        Path(d, f"{name}.ext").write_text(
            f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2",
                 "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)

    _openssl("req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=mailroom test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    leaf("server", "IP:127.0.0.1,DNS:localhost")
    leaf("wronghost", "DNS:mail.example.com")
    _openssl("req", "-x509", *_EC, "-keyout", "selfsigned.key", "-out", "selfsigned.pem",
             "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", cwd=d)
    p = lambda n: os.path.join(d, n)  # noqa: E731
    return Pki(d, p("ca.pem"), p("server.pem"), p("server.key"), p("wronghost.pem"),
               p("wronghost.key"), p("selfsigned.pem"), p("selfsigned.key"))


def server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


# --------------------------------------------------------------------------- SMTP


@dataclass
class TlsMessage:
    mail_from: str
    rcpt_tos: list
    raw: bytes
    tls: bool              # the session ran over TLS (STARTTLS or implicit)
    tls_version: str
    authenticated: bool
    login: str | None
    at: float = field(default_factory=time.monotonic)


def _ssl_object(server, session):
    """The ssl.SSLObject of the session: after STARTTLS aiosmtpd keeps it in
    session.ssl; with implicit TLS the transport itself carries it."""
    if session.ssl:
        return session.ssl.get("ssl_object")
    transport = getattr(server, "transport", None)
    return transport.get_extra_info("ssl_object") if transport is not None else None


class _TlsHandler:
    def __init__(self, server: "TlsSmtpServer"):
        self.server = server

    async def handle_DATA(self, server, session, envelope):
        ssl_obj = _ssl_object(server, session)
        tls = ssl_obj is not None
        login = session.login_data
        if isinstance(login, bytes):
            login = login.decode("utf-8", "replace")
        msg = TlsMessage(envelope.mail_from, list(envelope.rcpt_tos),
                         bytes(envelope.original_content or b""), tls,
                         ssl_obj.version() if ssl_obj else "", bool(session.authenticated),
                         login)
        with self.server.cond:
            self.server._messages.append(msg)
            self.server.cond.notify_all()
        return "250 2.0.0 Ok: queued"


class _Controller(Controller):
    """aiosmtpd counts only STARTTLS as TLS for auth_require_tls, so with implicit TLS
    (smtps://) it would never offer AUTH. The session is TLS from its first byte there:
    lift the rule on each new session (the authenticator records TLS per attempt)."""

    def __init__(self, handler, *, implicit: bool, **kw):
        super().__init__(handler, **kw)
        self._implicit = implicit

    def factory(self):
        smtp = super().factory()
        if self._implicit:
            smtp._auth_require_tls = False
        return smtp


class TlsSmtpServer(SmtpServer):
    """aiosmtpd on 127.0.0.1:<free port>.

    starttls: offer STARTTLS with (cert, key) and refuse MAIL before it
              (require_starttls); implicit: TLS from the first byte (smtps://).
    users:    {login: password}; when given, AUTH is required (and, as aiosmtpd's
              auth_require_tls says, only offered over TLS).
    .messages() records how each message arrived; .auth_attempts lists
    (login, success, over_tls) for every AUTH."""

    def __init__(self, cert: str, key: str, *, implicit: bool = False,
                 users: dict | None = None):
        self.implicit = implicit
        self.users = dict(users or {})
        self.cond = threading.Condition()
        self._messages = []
        self.auth_attempts = []
        ctx = server_tls_context(cert, key)
        kw = dict(auth_require_tls=True)
        if implicit:
            kw["ssl_context"] = ctx
        else:
            kw.update(tls_context=ctx, require_starttls=True)
        if self.users:
            kw.update(authenticator=self._authenticate, auth_required=True)
        super().__init__(_TlsHandler(self), scheme="smtps" if implicit else "smtp",
                         controller_class=_Controller, implicit=implicit, **kw)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = False
        login = None
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            want = self.users.get(login)
            ok = want is not None and auth_data.password == want.encode()
        with self.cond:
            self.auth_attempts.append((login, ok, _ssl_object(server, session) is not None))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def messages(self) -> list:
        with self.cond:
            return list(self._messages)

    def wait_for_count(self, n: int, timeout: float = 10.0) -> list:
        return wait_for(lambda: len(self.messages()) >= n and self.messages(), timeout,
                        message=f"{n} messages on the TLS server")


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


def proc_text(pid: int, what: str) -> str:
    """/proc/<pid>/<what> (cmdline, environ) with NULs as spaces; "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/{what}").read_bytes().replace(b"\0", b" ").decode(
            "utf-8", "replace")
    except OSError:
        return ""
