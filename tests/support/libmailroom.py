"""A ctypes binding of libmailroom (include/mailroom.h) for what the CLI does not expose:
one long-lived handle, mailroom_send and mailroom_wait; and the mapping of its return
codes to the CLI's exit codes."""

from __future__ import annotations

import ctypes
from pathlib import Path

from .paths import BIN_DIR


class _Options(ctypes.Structure):  # mailroom_options, include/mailroom.h
    _fields_ = [("redis_url", ctypes.c_char_p), ("queue", ctypes.c_char_p),
                ("kid", ctypes.c_char_p), ("key", ctypes.c_void_p),
                ("key_len", ctypes.c_size_t), ("alg", ctypes.c_char_p),
                ("connect_timeout_ms", ctypes.c_int), ("command_timeout_ms", ctypes.c_int),
                ("status_ttl_s", ctypes.c_long)]


class _Email(ctypes.Structure):  # mailroom_email, include/mailroom.h
    _fields_ = [("to", ctypes.POINTER(ctypes.c_char_p)), ("n_to", ctypes.c_size_t),
                ("cc", ctypes.POINTER(ctypes.c_char_p)), ("n_cc", ctypes.c_size_t),
                ("bcc", ctypes.POINTER(ctypes.c_char_p)), ("n_bcc", ctypes.c_size_t),
                ("from_", ctypes.c_char_p), ("from_name", ctypes.c_char_p),
                ("reply_to", ctypes.c_char_p), ("subject", ctypes.c_char_p),
                ("text", ctypes.c_char_p), ("html", ctypes.c_char_p),
                ("headers", ctypes.c_void_p), ("n_headers", ctypes.c_size_t),
                ("id", ctypes.c_char_p), ("send_at", ctypes.c_long),  # time_t
                ("expires_at", ctypes.c_long)]


MAILROOM_ID_MAX = 129  # job ids are at most 128 bytes, plus the NUL


class _Status(ctypes.Structure):  # mailroom_job_status, include/mailroom.h
    _fields_ = [("id", ctypes.c_char * MAILROOM_ID_MAX), ("state", ctypes.c_int),
                ("attempts", ctypes.c_int), ("smtp_code", ctypes.c_int),
                ("smtp_reply", ctypes.c_char * 512), ("error", ctypes.c_char * 512),
                ("consumer", ctypes.c_char * 128), ("created_at", ctypes.c_char * 32),
                ("updated_at", ctypes.c_char * 32)]


def libmailroom_path() -> Path | None:
    """The built shared library, or None when there is none or it is built with
    AddressSanitizer (the sanitizer pass): an ASan library cannot be loaded into a
    Python that was not started with the ASan runtime, so the ctypes checks run in the
    normal pass only."""
    p = BIN_DIR.parent / "lib" / "libmailroom.so"
    if not p.exists() or b"libasan.so" in p.read_bytes():
        return None
    return p


class Libmailroom:
    """A thin binding of the producer library (include/mailroom.h): one handle, opened
    (and connected) by the constructor with the key `key` (bytes) as key id kid; close()
    (or the with-block) frees it. One thread at a time, as the library requires."""

    STATES = ["unknown", "queued", "sending", "sent", "retrying", "failed", "rejected"]

    def __init__(self, redis_url: str, *, key: bytes, kid: str = "default",
                 alg: str | None = None, queue: str = "default"):
        path = libmailroom_path()
        if path is None:
            raise FileNotFoundError("libmailroom.so not built (or built with ASan)")
        lib = self.lib = ctypes.CDLL(str(path))
        lib.mailroom_open.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(_Options)]
        lib.mailroom_errmsg.restype = ctypes.c_char_p
        lib.mailroom_errmsg.argtypes = [ctypes.c_void_p]
        lib.mailroom_close.argtypes = [ctypes.c_void_p]
        lib.mailroom_send.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Email), ctypes.c_char_p]
        lib.mailroom_wait.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                      ctypes.POINTER(_Status)]
        lib.mailroom_options_init.argtypes = [ctypes.POINTER(_Options)]
        key = bytes(key)
        # the strings must outlive mailroom_open (which copies them): keep them here
        self._keep = [redis_url.encode(), queue.encode(), kid.encode(), (alg or "").encode()]
        self._keybuf = ctypes.create_string_buffer(key, len(key))
        opts = _Options()
        lib.mailroom_options_init(ctypes.byref(opts))
        opts.redis_url, opts.queue, opts.kid = self._keep[0], self._keep[1], self._keep[2]
        opts.key = ctypes.cast(self._keybuf, ctypes.c_void_p)
        opts.key_len = len(key)  # bytes
        if alg:
            opts.alg = self._keep[3]
        self.handle = ctypes.c_void_p()
        rc = lib.mailroom_open(ctypes.byref(self.handle), ctypes.byref(opts))
        if rc != 0:
            msg = self.errmsg()
            self.close()
            raise RuntimeError(f"mailroom_open: rc={rc}: {msg}")

    def errmsg(self) -> str:
        return (self.lib.mailroom_errmsg(self.handle) or b"").decode("utf-8", "replace")

    def send_rc(self, to: str, sender: str, subject: str, text: str,
                job_id: str | None = None) -> tuple:
        """mailroom_send of a text mail to one recipient (with the id job_id when
        given); never raises for a send that fails: (rc, the job id when rc is 0, else
        mailroom_errmsg)."""
        to_arr = (ctypes.c_char_p * 1)(to.encode())
        e = _Email()
        e.to, e.n_to = to_arr, 1
        e.from_, e.subject, e.text = sender.encode(), subject.encode(), text.encode()
        if job_id is not None:
            e.id = job_id.encode()
        out = ctypes.create_string_buffer(MAILROOM_ID_MAX)
        rc = self.lib.mailroom_send(self.handle, ctypes.byref(e), out)
        return rc, (out.value.decode() if rc == 0 else self.errmsg())

    def send(self, to: str, sender: str, subject: str, text: str,
             job_id: str | None = None) -> str:
        """send_rc, but returns the job id and raises RuntimeError when rc is not 0."""
        rc, text_out = self.send_rc(to, sender, subject, text, job_id)
        if rc != 0:
            raise RuntimeError(f"mailroom_send: rc={rc}: {text_out}")
        return text_out

    def wait(self, job_id: str, timeout_ms: int) -> tuple:
        """(rc, state name, error) of mailroom_wait."""
        st = _Status()
        rc = self.lib.mailroom_wait(self.handle, job_id.encode(), timeout_ms, ctypes.byref(st))
        state = self.STATES[st.state] if 0 <= st.state < len(self.STATES) else "?"
        return rc, state, st.error.decode("utf-8", "replace")

    def close(self) -> None:
        if getattr(self, "handle", None):
            self.lib.mailroom_close(self.handle)
            self.handle = None

    def __enter__(self) -> "Libmailroom":
        return self

    def __exit__(self, *exc):
        self.close()


MAILROOM_OK, MAILROOM_EREDIS, MAILROOM_ETIMEOUT, MAILROOM_EDUPLICATE = 0, 3, 4, 6
MAILROOM_DUPLICATE_RC = 73  # the CLI's exit code for MAILROOM_EDUPLICATE


def lib_exit_code(rc: int) -> int:
    """The `mailroom send` exit code for a mailroom_send() status: 0, 69 (Redis failed
    or timed out), 73 (duplicate); anything else as 1000 + rc (never expected here)."""
    return {MAILROOM_OK: 0, MAILROOM_EREDIS: 69, MAILROOM_ETIMEOUT: 69,
            MAILROOM_EDUPLICATE: MAILROOM_DUPLICATE_RC}.get(rc, 1000 + rc)
