"""aiosmtpd SMTP servers for tests, each on 127.0.0.1:<free port> in a thread of the
test process: SmtpServer (the lifecycle; a test's own scripted handler goes on top),
Receiver (records every message, can delay or refuse), TlsSmtpServer (STARTTLS or
implicit TLS, AUTH, and how each message arrived)."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import logging
import os
import threading
import time
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller  # python3-aiosmtpd
from aiosmtpd.smtp import AuthResult, LoginPassword

from .paths import LOOPBACK
from .pki import server_tls_context
from .procs import WaitTimeout, free_port, wait_for

logging.getLogger("mail.log").setLevel(logging.CRITICAL)  # aiosmtpd's chatter


class SmtpServer:
    """The lifecycle of an aiosmtpd server on 127.0.0.1:<free port>: subclasses pass
    their handler (and any further Controller keywords) to __init__. scheme is the URL
    scheme the consumer is given ("smtps" for implicit TLS); controller_class, a
    Controller subclass."""

    def __init__(self, handler, *, scheme: str = "smtp", controller_class=Controller,
                 port: int | None = None, **controller_kw):
        self.host = LOOPBACK
        self.port = port or free_port()
        self.scheme = scheme
        self.controller = controller_class(handler, hostname=self.host, port=self.port,
                                           ready_timeout=10, **controller_kw)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> "SmtpServer":
        self.controller.start()
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.controller.stop()

    def __enter__(self) -> "SmtpServer":
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list
    raw: bytes
    peer: tuple = ()
    at: float = field(default_factory=time.monotonic)  # monotonic arrival time
    wall: float = field(default_factory=time.time)     # wall-clock arrival time

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)


class _RecordingHandler:
    def __init__(self, receiver: "Receiver"):
        self.receiver = receiver

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        rx = self.receiver
        with rx._cond:
            rx.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        rx = self.receiver
        with rx._cond:
            rx.rcpt_seen += 1
            rx._cond.notify_all()
        if rx.rcpt_delay:
            await asyncio.sleep(rx.rcpt_delay)
        with rx._cond:
            answers = rx.rcpt_refusals.get(address)
            refusal = answers.pop(0) if answers else None
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        rx = self.receiver
        if rx.data_delay:
            await asyncio.sleep(rx.data_delay)
        refusal = rx._take_refusal(envelope) or rx._throttle()
        if refusal:
            return refusal
        n = rx._record(ReceivedMessage(envelope.mail_from, list(envelope.rcpt_tos),
                                       bytes(envelope.original_content or b""),
                                       tuple(session.peer or ())))
        return f"250 2.0.0 Ok: queued as MR{n:06d}"


class Receiver(SmtpServer):
    """An aiosmtpd SMTP server on 127.0.0.1:<free port> that records every message
    (envelope sender, recipients, raw bytes as received after dot-unstuffing).

    data_delay: seconds to sit on each message before answering the final dot.
    rcpt_delay: seconds to sit on each RCPT TO before answering (a client killed then
    has sent no message). .rcpt_seen counts the RCPT commands received.
    refuse_first: answer the first N messages with refuse_reply instead of accepting
    them (they are counted in .refused, not recorded as messages).
    rcpt_refusals: address -> the replies its next RCPTs get, in order (then 250).
    throttle_above: accept at most this many messages in any second, answering the
    others throttle_reply (counted in .throttled), as a relay with a quota does.
    port: listen there (default a free port). .sessions counts the EHLOs received.
    dump_dir: also write each accepted message there as a file, complete before the 250
    (LF line ends, ending in an empty line: the form smtp-sink's dumps have), so a test
    that counts smtp-sink's dumps counts these too."""

    def __init__(self, data_delay: float = 0.0, refuse_first: int = 0,
                 refuse_reply: str = "451 4.3.0 Try again later", rcpt_delay: float = 0.0,
                 rcpt_refusals: dict | None = None, throttle_above: int = 0,
                 throttle_reply: str = "454 4.7.0 Throttling failure: Maximum sending rate "
                                       "exceeded", port: int | None = None, dump_dir=None):
        super().__init__(_RecordingHandler(self), port=port)
        self.dump_dir = dump_dir
        self.throttle_above = throttle_above
        self.throttle_reply = throttle_reply
        self.throttled = 0
        self.sessions = 0
        self.rcpt_refusals = {k: list(v) for k, v in (rcpt_refusals or {}).items()}
        self.data_delay = data_delay
        self.rcpt_delay = rcpt_delay
        self.rcpt_seen = 0
        self.refuse_first = refuse_first
        self.refuse_reply = refuse_reply
        self.refused = 0
        self._cond = threading.Condition()
        self._messages = []

    def _take_refusal(self, envelope):
        with self._cond:
            if self.refused < self.refuse_first:
                self.refused += 1
                self._cond.notify_all()
                return self.refuse_reply
        return None

    def _throttle(self):
        """The throttle reply when throttle_above messages were accepted in the last
        second, else None."""
        if not self.throttle_above:
            return None
        with self._cond:
            now = time.monotonic()
            recent = sum(1 for m in self._messages[-self.throttle_above:] if now - m.at < 1.0)
            if recent >= self.throttle_above:
                self.throttled += 1
                return self.throttle_reply
        return None

    def _record(self, msg: ReceivedMessage) -> int:
        with self._cond:
            self._messages.append(msg)
            self._cond.notify_all()
            n = len(self._messages)
        if self.dump_dir:
            path = os.path.join(self.dump_dir, f"r.{os.getpid()}.{self.port}.{n}")
            with open(path + ".tmp", "wb") as f:
                f.write(msg.raw.replace(b"\r\n", b"\n") + b"\n")
            os.rename(path + ".tmp", path)
        return n

    def messages(self) -> list:
        with self._cond:
            return list(self._messages)

    def count(self) -> int:
        with self._cond:
            return len(self._messages)

    def wait_for_rcpt(self, n: int = 1, timeout: float = 10.0) -> None:
        """Waits until at least n RCPT TO commands arrived."""
        wait_for(lambda: self.rcpt_seen >= n, timeout, message=f"{n} RCPT TO commands")

    def wait_for_count(self, n: int, timeout: float = 10.0) -> list:
        """Waits until at least n messages arrived; returns all of them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(f"timed out after {timeout:g}s waiting for {n} messages; "
                                      f"got {len(self._messages)}")
                self._cond.wait(left)
            return list(self._messages)


# --------------------------------------------------------------------------- TLS and AUTH


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
