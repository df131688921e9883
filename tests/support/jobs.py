"""Jobs made by hand, as a producer (or a forger) would make them: random secrets and
ULIDs, unsigned v1 job dicts, signing with the reference signer (tests/tools/
mailroom_sign.py, the same definition as the C code, imported here as `signer`), and
pushing raw jobs the way the producer writes them."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time

from .paths import TESTS_DIR
from .state import Keys

# The reference signer, imported directly.
if str(TESTS_DIR / "tools") not in sys.path:
    sys.path.insert(0, str(TESTS_DIR / "tools"))
import mailroom_sign as signer  # noqa: E402

SIGNER_SOURCE = "tests/tools/mailroom_sign.py"


def new_secret() -> str:
    """A random 32-character secret (never print it)."""
    return secrets.token_hex(16)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid(ms: int | None = None) -> str:
    """A ULID: 48-bit millisecond time + 80 random bits, 26 Crockford base32 chars."""
    if ms is None:
        ms = time.time_ns() // 1_000_000
    n = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        out.append(_CROCKFORD[n & 31])
        n >>= 5
    return "".join(reversed(out))


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())



def make_job(job_id: str | None = None, *, to=("rcpt@example.com",), subject="Hello",
             text="Hello there.\n", sender="noreply@example.com", **extra) -> dict:
    """An unsigned v1 job dict (no kid/alg/sig yet)."""
    job = {"v": "1", "id": job_id or new_ulid(), "to": list(to), "from": sender,
           "subject": subject, "text": text, "created_at": utc_now()}
    job.update(extra)
    return job


def sign_job(job: dict, key, kid: str = "default", alg: str = "hmac-sha1") -> dict:
    if isinstance(key, str):
        key = key.encode("utf-8")
    return signer.signed_job(job, key, kid=kid, alg=alg)


def job_json(job: dict) -> str:
    return json.dumps(job, ensure_ascii=False, separators=(",", ":"))


def push_jobs(r, jobs, queue: str = "default", *, record: bool = True,
              now: str | None = None) -> None:
    """Pushes [(job id, raw job)] as the producer writes them, in one MULTI/EXEC: per
    job its record (state queued, created_at/updated_at now, 7 days TTL) and an LPUSH.
    record=False pushes the raw strings only (what a forger could do); a job id None
    gets no record either."""
    k = Keys(queue)
    p = r.pipeline(transaction=True)
    now = now or utc_now()
    for job_id, raw in jobs:
        if record and job_id:
            p.hset(k.job(job_id), mapping={"state": "queued", "attempts": "0",
                                           "created_at": now, "updated_at": now})
            p.expire(k.job(job_id), 7 * 24 * 3600)
        p.lpush(k.pending, raw)
    p.execute()


def enqueue_raw(r, raw: str, queue: str = "default", job_id: str | None = None,
                record: bool = True) -> None:
    """Pushes one raw job as the producer does: job hash (state queued) and LPUSH in
    one MULTI/EXEC. record=False pushes the raw string only (what a forger could do)."""
    push_jobs(r, [(job_id, raw)], queue, record=record)
