#!/usr/bin/python3
"""Hostile input: 10 000 random and malicious strings pushed straight onto
mailroom:{default}:pending (LPUSH, pipelined, no job hash), as anyone who can write to
the queue could, against one real consumer (--concurrency 4) and a real SMTP receiver.

Every input is invalid or forged; none is a correctly signed valid job (the generator
checks each one against the reference signer and validator and drops any the consumer
might accept). Invalid jobs signed with the real key are included on purpose. What
must hold afterwards:
  - the consumer stayed up the whole time and exits 0 on SIGTERM;
  - each of the 10 000 is on the dead list (LLEN == 10 000) as "rejected" with a
    non-empty reason, its "job" field byte for byte the string that was pushed;
  - stats: rejected == 10 000 and nothing else counted; pending and every processing
    list are empty; the SMTP receiver saw no message and no RCPT;
  - the consumer's log does not contain the secret;
  - (reported separately) rejection reasons are one line of valid UTF-8 without
    control characters, and the log has no control characters an input put there.

Inputs: a deterministic list of nasty ones (non-JSON, empty, > 256 KiB and ~1 MiB,
deep nesting, forged / truncated / wrong-length / uppercase signatures, valid jobs with
one field altered, CR/LF in every field, invalid and overlong UTF-8, NUL through
\\u0000, numbers/booleans/null where strings belong, arrays of objects, unknown and
missing members, bad ids, 101 recipients, bad timestamps, ...) then random ones from a
fixed seed (printed; MAILROOM_HOSTILE_SEED=N to choose another).

Run: /usr/bin/python3 tests/integration/test_hostile.py [-v]
The binaries come from $MAILROOM_BIN_DIR (default <repo>/build/bin).
"""

import collections
import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.consumer import Consumer, mailroom_env  # noqa: E402
from support.jobs import signer  # noqa: E402
from support.paths import binaries_missing  # noqa: E402
from support.procs import wait_for  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402
from support.smtp_receiver import Receiver  # noqa: E402
from support.state import Keys, processing_lengths  # noqa: E402

SEED = int(os.environ.get("MAILROOM_HOSTILE_SEED", "20261124"))
TOTAL = 10_000
MAX_JOB = 262_144
Q = Keys("default")
# The consumer's only key (kid "default"): derived from the seed so that a failing run
# can be reproduced exactly. Never printed.
SECRET = hashlib.sha256(b"mailroom-hostile-%d" % SEED).hexdigest()[:32]
KEY = SECRET.encode()
WRONG_KEY = b"not-the-consumer-key-0123456789"


# ------------------------------------------------------------------ the reference check


def _fffd(v):
    """What json-c makes of a lone surrogate escape: U+FFFD."""
    if isinstance(v, str):
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in v)
    if isinstance(v, list):
        return [_fffd(x) for x in v]
    if isinstance(v, dict):
        return {_fffd(k): _fffd(x) for k, x in v.items()}
    return v


def would_accept(raw: bytes) -> bool:
    """True when the consumer might accept raw as a genuine, valid job: it parses
    (leniently, last duplicate wins as in json-c, lone surrogates as U+FFFD) to an object
    signed with the consumer's key under kid "default" (hex compared in any case) that
    the reference validator accepts. Such an input is never pushed. Jobs signed with the
    real key but invalid are kept on purpose: only validation can stop those."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    if not isinstance(obj, dict) or not isinstance(obj.get("sig"), str) or \
            obj.get("kid") != "default":
        return False
    obj = _fffd(obj)
    for md in (hashlib.sha1, hashlib.sha256):
        try:
            want = hmac.new(KEY, signer.canonical(obj), md).hexdigest()
        except (ValueError, TypeError):
            return False
        if hmac.compare_digest(want, obj["sig"].lower()):
            return py_valid(obj)  # an uppercase sig is invalid: kept
    return False


def py_valid(job) -> bool:
    """The reference validator (tests/tools/mailroom_sign.py) accepts the job."""
    try:
        signer.validate_job(job, require_sig=True)
        return True
    except Exception:  # noqa: BLE001 - any refusal counts
        return False


# ------------------------------------------------------------------ building blocks


def dumps(obj, **kw) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), **kw).encode(
        "utf-8", "surrogatepass")


def now_z(offset_s=0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset_s))


def base_jobs():
    """Valid, unsigned jobs of several shapes."""
    minimal = {"v": "1", "id": "01JDQ6Z3K8P4W7X2M5N9R0T1AB", "to": ["ming@example.com"],
               "from": "noreply@example.com", "subject": "Hi", "text": "Hello",
               "created_at": now_z(), "kid": "default", "alg": "hmac-sha1"}
    full = {"v": "1", "id": "order-1042:receipt.v2_A",
            "to": ["王小明 <ming@example.com>", '"Doe, Jane" <jane@example.org>'],
            "cc": ["李雷 <li.lei@example.com>"], "bcc": ["audit@example.org"],
            "reply_to": "客服 <support@example.com>", "from": "receipts@example.com",
            "from_name": "滴水网", "subject": "请激活您的账户 / activate",
            "text": "点击链接激活: https://example.com/a?t=x\r\n", "html": "<p>激活</p>",
            "headers": {"List-Unsubscribe": "<https://example.com/u/42>",
                        "X-Campaign": "activation"},
            "created_at": now_z(), "send_at": now_z(-60), "expires_at": now_z(86400),
            "kid": "default", "alg": "hmac-sha256"}
    return [minimal, full]


def sign(job, key=KEY, alg=None):
    alg = alg or job.get("alg", "hmac-sha1")
    out = {k: v for k, v in job.items() if k != "sig"}
    out["alg"] = alg
    out["sig"] = hmac.new(key, signer.canonical(out),
                          hashlib.sha1 if alg == "hmac-sha1" else hashlib.sha256).hexdigest()
    return out


STRING_FIELDS = ["v", "id", "from", "from_name", "reply_to", "subject", "text", "html",
                 "created_at", "send_at", "expires_at", "kid", "alg"]
NO_CTL_FIELDS = ["v", "id", "from", "from_name", "reply_to", "subject", "created_at",
                 "send_at", "expires_at", "kid", "alg"]
CRLF_BITS = ["\r\n", "\r", "\n", "\r\nBcc: victim@evil.example", "\n.\n",
             "\r\n\r\nInjected body", "\x00", "\t", "\x1b[31m", "\x7f", "\u0085", "\u2028"]
BAD_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",
            b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
            b"\x80", b"\xe6\xbb", b"a\xc3(b"]
BAD_IDS = ["{default}", "a b", "", "a" * 129, "é", "a/b", "a\tb", "../x", "*", "a,b", "{",
           "}", "a\r\nb", "id\x00", "😀", " a", "a ", "a;b", "a\"b", "a'b", "$(id)"]
BAD_TIMES = ["2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-24", "2026-11-24T13:00:00",
             "2026-11-24 13:00:00Z", "2026-11-24T25:00:00Z", "2026-11-24T13:00:00+24:00",
             "2026-11-24T13:00:00.Z", "2026-11-24T13:00:00.0123456789Z", "yesterday", "",
             "1732453200", "+2026-11-24T13:00:00Z", "2026-11-24T13:00:00ZZ",
             "２０２６-11-24T13:00:00Z", "2026-11-24T13:60:00Z", "2026-11-24T13:00:61Z",
             "2026-11-24T13:00:00+0800", "2026-11-24T13:00:00 Z", "-001-11-24T13:00:00Z",
             "2026-11-24T13:00:00+08:60", "2026-00-24T13:00:00Z", "2026-11-00T13:00:00Z",
             "2026-11-24T13:00:00Z\n", "2026-11-24t13:00:00"]
BAD_ADDRS = ["a@b", "a@[127.0.0.1]", '"q"@example.com', "a..b@example.com", ".a@example.com",
             "a@-x.example.com", "a@x_y.example.com", "ü@example.com", "a@example.com>",
             "<a@example.com", "Name <a@example.com", "a@example.com, b@example.com",
             "l" * 65 + "@example.com", "a@" + "d" * 64 + ".com", "a@" + ("d" * 60 + ".") * 5 + "com",
             "N" * 257 + " <a@example.com>", "a<b <c@example.com>", '"a <a@example.com>',
             'a"b <a@example.com>', '"a\\" <a@example.com>', "", " ", "@example.com", "a@",
             "a@example.com.", "a@.example.com", "a b@example.com", "Name <>",
             "Name <a@example.com> x", "a@example.com\r\nRCPT TO:<evil@example.com>",
             "=?UTF-8?B?PGV2aWxAeC5jb20+?= <\r\n>", "a@ex ample.com", "a@例子.公司"]
BAD_HEADERS = [{"X-Mailroom-Id": "x"}, {"Bcc": "x@example.com"}, {"Content-Type": "text/html"},
               {"X-": "short"}, {"X-a b": "v"}, {"X-" + "a" * 75: "v"}, {"X-A": "v" * 999},
               {"X-A": "a\tb"}, {"X-A": "a\x7fb"}, {"X-A\r\nBcc": "v"}, {"X-A:": "v"},
               {"X-A": "v\r\n"}, {"": "v"}, {"Subject": "x"}, {"From": "evil@example.com"},
               {"x-mailroom-": "v"}, {"X-Ä": "v"}, {"X-A": "v\u0000"}, {"To": "a@example.com"},
               {"X-H%d" % i: "v" for i in range(33)}]
TYPE_SWAPS = [1, 0, -1, 1.5, 1e400, True, False, None, {}, [], {"a": "b"}, [{"a": "b"}],
              [["x"]], [1], [None], "x" * 3]


class Gen:
    """Collects the inputs; every one is checked not to verify and not to contain the
    secret before it is kept."""

    def __init__(self, rng):
        self.rng = rng
        self.items = []
        self.dropped = 0

    def add(self, raw):
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogatepass")
        if KEY in raw or would_accept(raw):
            self.dropped += 1
            return False
        self.items.append(raw)
        return True

    def add_job(self, job, how="real"):
        """A job dict made invalid by the caller: signed with the real key when the
        reference validator refuses it (so only validation can stop it), else forged;
        how: real | wrong | random | none | trunc | upper | sha256len."""
        job = dict(job)
        if how == "real":
            try:
                signed = sign(job)
            except (ValueError, TypeError):
                how = "random"
            else:
                if py_valid(signed):
                    how = "wrong"  # still valid: never sign that with the real key
                else:
                    return self.add(dumps(signed))
        if how == "wrong":
            try:
                return self.add(dumps(sign(job, WRONG_KEY)))
            except (ValueError, TypeError):
                how = "random"
        if how == "none":
            job.pop("sig", None)
            return self.add(dumps(job))
        if how in ("trunc", "upper", "sha256len"):
            try:
                s = sign(job)["sig"]
            except (ValueError, TypeError):
                s = "%040x" % self.rng.getrandbits(160)
            job["sig"] = {"trunc": s[:-1], "upper": s.upper(), "sha256len": (s * 2)[:64]}[how]
            return self.add(dumps(job))
        job["sig"] = "%040x" % self.rng.getrandbits(160)
        return self.add(dumps(job))


def nasty_list(g: Gen):
    """The deterministic part."""
    rng = g.rng
    minimal, full = base_jobs()
    good = sign(minimal)
    goodf = sign(full)
    graw = dumps(good)

    # non-JSON and not-a-job JSON
    for s in [b"", b" ", b"\n", b"\r\n", b"\x00", b"null", b"true", b"false", b"0", b"-1",
              b"1e999", b'"string"', b"[]", b"{}", b"{", b"}", b"[", b"]", b'{"v":"1"',
              b"\xff\xfe", b"\xef\xbb\xbf{}", b"hello world", b"<xml/>", b"{'a':1}", b"{a:1}",
              b'{"a":NaN}', b'{"a":Infinity}', b'{"a":1,}', b"[1,]", b'{"a":1}/*c*/',
              b'//c\n{"a":1}', b'{"a":"\x01"}', b'{"a":"\\x41"}', b'{"a":"\\u12"}',
              b'{"a" "b"}', b"{}{}", b"{} x", b"\x00{}", b"{}\x00", b"*1\r\n$4\r\nPING\r\n",
              b"PING\r\n", b"%s%s%n%x", b"\\u0000", b"\"\\ud800\"", b"{\"\\ud800\":\"x\"}"]:
        g.add(s)

    # the valid job spoiled around the JSON text
    for s in [graw[:n] for n in (1, 2, 10, len(graw) // 2, len(graw) - 1)] + [
            graw + b"x", graw + b"\x00", graw + graw, graw + b"]", b"[" + graw + b"]",
            b"\xef\xbb\xbf" + graw, graw + b"\xef\xbb\xbf", graw.replace(b'"', b"'"),
            graw.replace(b",", b",,", 1), graw.replace(b":", b"=", 1), graw[:-1] + b",}",
            graw[:-1] + b',"sig":null}', graw[:-1] + b',"x":NaN}',
            b'{"a":' + graw + b"}", graw.replace(b"{", b"{\x00", 1),
            graw.replace(b'"v"', b'"\\u0076"').replace(b'"1"', b'"2"', 1)]:
        g.add(s)

    # huge: just over the limit, 300 KB, ~1 MiB
    pad = MAX_JOB - len(graw) + 1
    over = dict(minimal, text="a" * (pad + 8))
    g.add(dumps(sign(over)))
    g.add(dumps(sign(dict(minimal, text="é" * 150_000))))
    g.add(dumps(sign(dict(minimal, text="x" * (1 << 20)))))
    g.add(b"a" * (1 << 20))
    g.add(b"[" * (1 << 20))
    g.add(bytes(rng.getrandbits(8) for _ in range(300_000)))

    # deep nesting
    for n in (3, 4, 64, 1000, 100_000):
        g.add(b"[" * n + b"]" * n)
        g.add(b"[" * n)
        g.add(b'{"a":' * n + b"1" + b"}" * n)
    for member, val in [("to", [["x@example.com"]]), ("headers", {"X-A": {"b": "c"}}),
                        ("text", {"a": "b"}), ("subject", ["Hi"]), ("to", [{"a": "b"}]),
                        ("headers", {"X-A": ["v"]}), ("cc", [[[]]])]:
        g.add_job(dict(minimal, **{member: val}), "random")

    # signatures: forged, truncated, wrong length, uppercase, wrong type, wrong alg
    sig = good["sig"]
    for s in [sig.upper(), sig[:39], sig[:20], sig + "0", sig + " ", " " + sig, "0x" + sig[2:],
              sig[:-1] + "g", "0" * 40, "", (sig * 2)[:64], sig[:39] + "\n",
              "%040x" % rng.getrandbits(160), hashlib.sha1(b"forged").hexdigest(),
              "".join(c.upper() if i % 2 else c for i, c in enumerate(sig))]:
        g.add(dumps(dict(good, sig=s)))
    for s in [1, None, True, [sig], {"sig": sig}]:
        g.add(dumps(dict(good, sig=s)))
    g.add(dumps(dict(good, alg="hmac-sha256")))                    # 40 digits for sha256
    g.add(dumps(dict(goodf, alg="hmac-sha1")))                     # 64 digits for sha1
    g.add(dumps(sign(minimal, WRONG_KEY)))
    g.add(dumps(dict(good, kid="k2")))
    g.add(dumps(sign(dict(minimal, kid="unknown-kid"))))
    g.add(dumps(sign(dict(minimal, alg="hmac-sha256"))).replace(b"hmac-sha256", b"HMAC-SHA256"))
    g.add(dumps({k: v for k, v in good.items() if k != "sig"}))    # unsigned
    g.add(dumps(dict(good, sig=goodf["sig"])))                     # another job's sig
    g.add(dumps(dict(goodf, sig=goodf["sig"].upper())))

    # valid jobs with one field altered after signing
    for src in (good, goodf):
        for k, v in src.items():
            if k == "sig":
                continue
            if isinstance(v, str):
                alts = [v + "x", v[:-1], v.swapcase(), "", v + " ", " " + v]
            elif isinstance(v, list):
                alts = [v + ["extra@example.com"], v[:-1], list(reversed(v)) + [v[0]]]
            else:
                alts = [dict(v, **{"X-Extra": "1"}), {}, {k2: v2 + "!" for k2, v2 in v.items()}]
            for alt in alts:
                if alt != v:
                    g.add(dumps(dict(src, **{k: alt})))
            g.add(dumps({k2: v2 for k2, v2 in src.items() if k2 != k}))   # member removed
        g.add(dumps(dict(src, priority="high")))                          # member added
        g.add(dumps(src)[:-1] + b',"subject":"Other"}')                   # duplicate member
        g.add(dumps(src).replace(b'"text":"', b'"text":"\\u0041', 1))     # one more char

    # CR/LF and other controls in every field, signed with the real key
    for base in (minimal, full):
        for f in NO_CTL_FIELDS:
            if f not in base:
                continue
            for bit in CRLF_BITS:
                for val in (base[f] + bit, bit + base[f], base[f][:1] + bit + base[f][1:]):
                    g.add_job(dict(base, **{f: val}))
        for f in ("to", "cc", "bcc"):
            if f in base:
                for bit in CRLF_BITS[:7]:
                    g.add_job(dict(base, **{f: [base[f][0] + bit] + base[f][1:]}))
                    g.add_job(dict(base, **{f: base[f] + [bit + "x@example.com"]}))
        for bit in CRLF_BITS[:7]:
            g.add_job(dict(base, headers={"X-A" + bit + "Bcc": "v@example.com"}))
            g.add_job(dict(base, headers={"X-A": "v" + bit + "Bcc: v@example.com"}))
            g.add_job(dict(base, headers={"List-Unsubscribe": bit + "<https://x.example>"}))
        g.add_job(dict(base, text="a\x00b"))
        g.add_job(dict(base, html="<p>\x00</p>"))

    # invalid UTF-8 (raw bytes put in place of a placeholder after signing)
    for f in STRING_FIELDS + ["to", "headers-name", "headers-value", "member-name"]:
        for bad in BAD_UTF8:
            job = dict(good)
            ph = "QQPLACEHOLDERQQ"
            if f == "to":
                job["to"] = [ph + "@example.com"]
            elif f == "headers-name":
                job["headers"] = {"X-" + ph: "v"}
            elif f == "headers-value":
                job["headers"] = {"X-A": ph}
            elif f == "member-name":
                job[ph] = "v"
            else:
                job[f] = ph
            g.add(dumps(job).replace(ph.encode(), bad, 1))

    # NUL through \u0000 in every field (and in member names and header names)
    for base in (minimal, full):
        for f in STRING_FIELDS:
            if f in base:
                g.add_job(dict(base, **{f: base[f] + "\x00"}))
                g.add_job(dict(base, **{f: "\x00" + base[f]}), "wrong")
        g.add_job(dict(base, to=["a\x00@example.com"]))
        g.add_job(dict(base, headers={"X-A\x00": "v"}))
        g.add_job(dict(base, **{"sub\x00ject": "x"}))
    # ... and a NUL escape appended to a member name of a genuinely signed job: json-c
    # cuts names at NUL, so a parser that does not refuse it sees the original job
    for src in (good, goodf):
        for k in ("subject", "to", "expires_at", "X-Campaign", "sig"):
            raw = dumps(src)
            if b'"%s":' % k.encode() in raw:
                g.add(raw.replace(b'"%s":' % k.encode(), b'"%s\\u0000":' % k.encode(), 1))
                g.add(raw.replace(b'"%s":' % k.encode(), b'"%s\\u0000x":' % k.encode(), 1))

    # numbers, booleans, null, objects, arrays where strings belong (and vice versa)
    for base in (minimal, full):
        for f in list(base) + ["sig"]:
            for v in TYPE_SWAPS:
                if f == "to" and isinstance(v, list) and v and all(isinstance(x, str) for x in v):
                    continue
                job = dict(base, **{f: v})
                g.add_job(job, "random")

    # unknown and missing members
    for name in ["priority", "Subject", "SIG", "sig2", "", " v", "v ", "a\nb", "a\r\nb",
                 "\x1b[2J\x1b[31mALERT", "a\tb", "\x7f", "x" * 1000, "a" + "é" * 60,
                 "😀" * 30, "\u202eevil", "__proto__", "constructor"]:
        g.add_job(dict(minimal, **{name: "x"}))
        g.add_job(dict(minimal, **{name: "x"}), "wrong")
    for f in list(full):
        g.add_job({k: v for k, v in full.items() if k != f}, "real")
    g.add_job({}, "real")
    g.add_job({"sig": "0" * 40}, "none")

    # bad ids, addresses, headers, versions, algorithms, kids, limits
    for i in BAD_IDS:
        g.add_job(dict(minimal, id=i))
    for a in BAD_ADDRS:
        g.add_job(dict(minimal, to=[a]))
        g.add_job(dict(minimal, **{"from": a}))
        g.add_job(dict(full, reply_to=a))
    g.add_job(dict(minimal, **{"from": "Name <noreply@example.com>"}))
    for h in BAD_HEADERS:
        g.add_job(dict(full, headers=h))
    g.add_job(dict(full, headers=[["X-A", "v"]]), "random")
    for v in ["2", "", "1.0", " 1", "01", "１"]:
        g.add_job(dict(minimal, v=v))
    for a in ["hmac-md5", "HMAC-SHA1", "none", "", "hmac-sha1 ", "sha1", "hmac-sha512"]:
        g.add_job(dict(minimal, alg=a), "random")
    for k in ["", "k k", "a" * 65, "unknown", "default\n", "../default", "DEFAULT"]:
        g.add_job(dict(minimal, kid=k))
    rcpt = ["u%d@example.com" % i for i in range(101)]
    g.add_job(dict(minimal, to=rcpt))
    g.add_job(dict(minimal, to=rcpt[:50], cc=rcpt[50:100], bcc=rcpt[100:]))
    g.add_job(dict(minimal, to=rcpt[:1], cc=rcpt[1:]))
    g.add_job(dict(minimal, to=[]))
    g.add_job(dict(minimal, to=rcpt[:1] * 101))
    g.add_job(dict(minimal, subject="S" * 2001))
    g.add_job(dict(minimal, subject="é" * 1001))
    g.add_job(dict(minimal, from_name="N" * 257))
    g.add_job(dict(minimal, subject="a\tb"))
    for f in ("created_at", "send_at", "expires_at"):
        for t in BAD_TIMES:
            g.add_job(dict(minimal, **{f: t}))


# ------------------------------------------------------------------ random inputs


JSON_TOKENS = [b"{", b"}", b"[", b"]", b":", b",", b'"v"', b'"1"', b'"id"', b'"to"', b'"sig"',
               b'"subject"', b'"text"', b'"headers"', b'"kid"', b'"alg"', b'"default"',
               b'"hmac-sha1"', b"null", b"true", b"0", b"-1.5e9", b'"\\u0000"', b'"\\ud800"',
               b'"a@example.com"', b'"\xff"', b" ", b"\r\n", b'"\\r\\n"', b'"' + b"x" * 300 + b'"']


def mutate(rng, raw: bytes) -> bytes:
    b = bytearray(raw)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        op = rng.randrange(7)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[i:i] = bytes([rng.randrange(256)])
        elif op == 2 and b:
            del b[i:i + rng.randrange(1, 8)]
        elif op == 3:
            b[i:i] = rng.choice(JSON_TOKENS)
        elif op == 4 and b:
            j = rng.randrange(len(b))
            b[i:i] = b[j:j + rng.randrange(1, 40)]
        elif op == 5:
            del b[i:]
        else:
            b[i:i] = rng.choice([b"\r\n", b"\\r\\n", b"\\u0000", b"\x00", b"\xc0\xaf", b"\\\"", b'"'])
    return bytes(b)


def random_value(rng):
    pick = rng.randrange(10)
    if pick == 0:
        return "".join(chr(rng.randrange(0x20)) for _ in range(rng.randrange(1, 6)))
    if pick == 1:
        return rng.choice(CRLF_BITS) * rng.randrange(1, 3)
    if pick == 2:
        return rng.choice(BAD_IDS + BAD_TIMES + BAD_ADDRS)
    if pick == 3:
        return rng.choice(TYPE_SWAPS)
    if pick == 4:
        return "x" * rng.choice((0, 1, 257, 999, 2001, 70_000))
    if pick == 5:
        return "".join(chr(rng.choice((rng.randrange(0x20, 0x7f), rng.randrange(0xa0, 0xd7ff),
                                        rng.randrange(0xe000, 0x10ffff))))
                       for _ in range(rng.randrange(1, 40)))
    if pick == 6:
        return [random_value(rng) for _ in range(rng.randrange(0, 4))]
    if pick == 7:
        return {rng.choice(["X-A", "Bcc", "X-Mailroom-X", "List-Id", "x" * 80]): random_value(rng)}
    if pick == 8:
        return "\x00"
    return rng.choice(["ming@example.com", "Hi", "1", "default", "hmac-sha1",
                       "2026-11-24T13:00:00Z"])


def random_inputs(g: Gen, total: int):
    rng = g.rng
    bases = base_jobs()
    signed_bases = [dumps(sign(b)) for b in bases]
    members = sorted({k for b in bases for k in b}) + ["sig", "extra", ""]
    while len(g.items) < total:
        kind = rng.randrange(10)
        if kind == 0:       # random bytes
            n = rng.choice((0, 1, 2, 8, 64, 300, 3000))
            g.add(bytes(rng.getrandbits(8) for _ in range(rng.randrange(n + 1))))
        elif kind == 1:     # JSON token soup
            g.add(b"".join(rng.choice(JSON_TOKENS) for _ in range(rng.randrange(1, 30))))
        elif kind in (2, 3, 4):   # byte mutations of a genuinely signed job
            g.add(mutate(rng, rng.choice(signed_bases)))
        elif kind in (5, 6, 7):   # structured: 1-3 hostile member changes, then signed
            job = dict(rng.choice(bases))
            for _ in range(rng.randrange(1, 4)):
                m = rng.choice(members)
                if rng.randrange(4) == 0:
                    job.pop(m, None)
                else:
                    job[m] = random_value(rng)
            g.add_job(job, rng.choice(("real", "real", "wrong", "random", "none", "trunc",
                                       "upper", "sha256len")))
        else:               # signed genuinely, then one member altered
            src = sign(rng.choice(bases))
            m = rng.choice([k for k in src if k != "sig"])
            v = src[m]
            if isinstance(v, str):
                i = rng.randrange(len(v) + 1)
                v = v[:i] + rng.choice(["x", " ", "\r\n", "é", "", "\x00"]) + v[i + 1:]
            elif isinstance(v, list):
                v = v + [rng.choice(v + ["z@example.com"])]
            else:
                v = dict(v, **{"X-R%d" % rng.randrange(100): "v"})
            g.add(dumps(dict(src, **{m: v})))


def build_inputs():
    g = Gen(random.Random(SEED))
    nasty_list(g)
    n_nasty = len(g.items)
    assert n_nasty < TOTAL, n_nasty
    random_inputs(g, TOTAL)
    return g.items, n_nasty, g.dropped


# ------------------------------------------------------------------ the test


def _shown(key) -> bytes:
    """The start of a dead-list key (a raw job, or a cut one with its true size)."""
    return key[:600] if isinstance(key, bytes) else (key[0][:300], key[1])


def _decode_entry(raw: bytes) -> dict:
    return json.loads(raw.decode("utf-8", "surrogateescape"))


class HostileInputTest(unittest.TestCase):
    """One run (setUpClass): push everything, let one consumer reject it all, stop it;
    the test methods then check different aspects of the outcome."""

    @classmethod
    def setUpClass(cls):
        missing = binaries_missing()
        if missing:  # a failure, as in support.case.ServerTestCase.setUp: never a skip
            raise AssertionError("binaries not built: " + ", ".join(missing))
        t0 = time.monotonic()
        cls.inputs, n_nasty, dropped = build_inputs()
        print(f"\nhostile: seed {SEED} (MAILROOM_HOSTILE_SEED): {len(cls.inputs)} inputs, "
              f"{n_nasty} from the fixed list, {len(cls.inputs) - n_nasty} random, "
              f"{dropped} candidates dropped as possibly genuine; "
              f"{sum(map(len, cls.inputs)) / 1e6:.1f} MB; built in {time.monotonic() - t0:.1f}s",
              file=sys.stderr)
        cls.stack = contextlib.ExitStack()
        try:
            cls._run()
        except BaseException:
            cls.stack.close()
            raise

    @classmethod
    def _run(cls):
        st = cls.stack
        cls.redis_server = st.enter_context(RedisServer())
        cls.rx = st.enter_context(Receiver())
        env = mailroom_env(cls.redis_server, secret=SECRET, smtp=cls.rx)
        cls.consumer = Consumer(env, "--concurrency", "4", "--id", "hostile-1",
                                "--block-timeout", "250ms", "--log-level", "info")
        st.enter_context(cls.consumer)
        r = cls.redis_server.client(decode=False)
        cls.r = r
        t0 = time.monotonic()
        cls.alive_samples = []
        pipe = r.pipeline(transaction=False)
        for i, raw in enumerate(cls.inputs):
            pipe.lpush(Q.pending, raw)
            if i % 500 == 499:
                pipe.execute()
                cls.alive_samples.append(cls.consumer.alive())
        pipe.execute()
        cls.push_s = time.monotonic() - t0

        def done():
            cls.alive_samples.append(cls.consumer.alive())
            if not cls.consumer.alive():
                raise AssertionError("the consumer died: rc %s\n%s" % (
                    cls.consumer.proc.poll(), cls.consumer.log()[-3000:]))
            # Taken (BLMOVE) and finished (FINISH) are atomic moves: a job is always in
            # pending, in the processing list or done; read both in one transaction.
            p = r.pipeline(transaction=True)
            p.llen(Q.pending)
            p.llen(Q.processing("hostile-1"))
            return p.execute() == [0, 0]

        cls.run_error = None
        try:
            wait_for(done, timeout=60, interval=0.1, message="every input taken and finished")
        except AssertionError as e:
            cls.run_error = str(e)
        finally:
            cls.process_s = time.monotonic() - t0
            cls.alive_at_end = cls.consumer.alive()
            # A little longer: anything still in flight would show up in the checks.
            time.sleep(0.5)
            cls.dead_raw = r.lrange(Q.dead, 0, -1)
            cls.pending_len = r.llen(Q.pending)
            cls.processing = processing_lengths(r)
            cls.stats = {k.decode(): int(v) for k, v in r.hgetall(Q.stats).items()}
            cls.stop_rc = cls.consumer.stop(timeout=15)
            cls.stop_timed_out = cls.consumer.timed_out
            cls.log = cls.consumer.log()
            cls.messages = cls.rx.messages()
            cls.rcpt_seen = cls.rx.rcpt_seen
        print(f"hostile: pushed in {cls.push_s:.1f}s, all taken and finished after "
              f"{cls.process_s:.1f}s",
              file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    # ---- the consumer

    def test_run_completed(self):
        self.assertIsNone(self.run_error)

    def test_consumer_stayed_up_and_exits_0(self):
        self.assertTrue(all(self.alive_samples), "the consumer died during the run")
        self.assertTrue(self.alive_at_end)
        self.assertFalse(self.stop_timed_out, "no exit within 15 s of SIGTERM")
        self.assertEqual(self.stop_rc, 0, self.log[-3000:])

    def test_nothing_sent(self):
        self.assertEqual(len(self.messages), 0,
                         [m.raw[:300] for m in self.messages[:3]])
        self.assertEqual(self.rcpt_seen, 0)

    # ---- Redis

    def test_queues_empty_and_counters(self):
        self.assertEqual(self.pending_len, 0)
        self.assertEqual({k: v for k, v in self.processing.items() if v}, {})
        self.assertEqual(self.stats.get("rejected"), TOTAL, self.stats)
        for k in ("sent", "retried", "failed", "recovered"):
            self.assertEqual(self.stats.get(k, 0), 0, self.stats)

    def test_every_input_on_dead_list_exactly(self):
        got = collections.Counter()
        bad = []
        for raw in self.dead_raw:
            e = _decode_entry(raw)
            if e.get("state") != "rejected" or not isinstance(e.get("reason"), str) \
                    or not e["reason"].strip():
                bad.append(e)
                continue
            if not (e.get("id") is None or re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", e["id"])):
                bad.append(e)
            job = e["job"].encode("utf-8", "surrogateescape")
            if e.get("truncated") is True:
                # over the size limit: never read by the consumer; the dead list keeps
                # the first MAX_JOB and the true size (docs/reliability.md)
                if len(job) != MAX_JOB or not isinstance(e.get("job_bytes"), int) \
                        or e["job_bytes"] <= MAX_JOB:
                    bad.append({k: v for k, v in e.items() if k != "job"})
                    continue
                job = (job, e["job_bytes"])
            got[job] += 1
        self.assertEqual(bad[:5], [], f"{len(bad)} entries not rejected with a reason")
        want = collections.Counter(raw if len(raw) <= MAX_JOB
                                   else (raw[:MAX_JOB], len(raw)) for raw in self.inputs)
        missing = want - got
        extra = got - want
        self.assertFalse(missing, "%d pushed but not on the dead list (or altered), e.g. %r" %
                         (sum(missing.values()), [_shown(k) for k in list(missing)[:8]]))
        self.assertFalse(extra, "on the dead list but never pushed: %r" %
                         [_shown(k) for k in list(extra)[:5]])
        self.assertEqual(len(self.dead_raw), TOTAL)

    # ---- secrets and text hygiene

    def test_log_has_no_secret(self):
        self.assertTrue(self.log, "the consumer wrote no log")
        self.assertNotIn(SECRET, self.log)
        self.assertNotIn(SECRET.encode().hex(), self.log)

    def test_reasons_are_clean_lines(self):
        """A reason is one line of UTF-8 text (job.h: "a one-line reason"): it lands in
        logs, status records and JSON events read by other programs."""
        bad = []
        for raw in self.dead_raw:
            reason = _decode_entry(raw).get("reason", "")
            if any(0xDC80 <= ord(c) <= 0xDCFF for c in reason) or \
                    any(ord(c) < 0x20 or ord(c) == 0x7F for c in reason):
                bad.append(reason)
        self.assertEqual(len(bad), 0, "%d reasons with control characters or invalid "
                         "UTF-8, e.g. %r" % (len(bad), sorted(set(bad))[:6]))

    def test_log_has_no_injected_control_characters(self):
        raw = self.log.encode("utf-8", "surrogateescape")
        ctl = sorted({c for c in raw if (c < 0x20 and c not in (0x0A,)) or c == 0x7F})
        lines = [ln for ln in self.log.splitlines()
                 if any((ord(c) < 0x20 and c != "\n") or ord(c) == 0x7F for c in ln)]
        self.assertEqual(ctl, [], "control bytes in the consumer log, e.g. %r" % lines[:3])


if __name__ == "__main__":
    unittest.main()
