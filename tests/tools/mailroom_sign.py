#!/usr/bin/env python3
"""mailroom_sign: an independent reference implementation of the mailroom v1 wire
format's canonical form and HMAC signature (docs/protocol.md), Python 3 stdlib only.

Library use (import is free of side effects):

    import mailroom_sign as ms
    ms.canonical({"a": "bc", "b": ""})          # b"1:as2:bc1:bs0:"
    ms.sign(job, b"secret...", "hmac-sha1")     # lowercase hex
    ms.signed_job(job, b"secret...", kid="default", alg="hmac-sha1")   # new dict
    ms.dumps(job)                               # compact UTF-8 JSON text
    ms.validate_job(job, require_sig=True)      # raises ValueError naming the problem

canonical() checks only the shape the format allows (string, array of strings, object
of string to string); it signs whatever it is given, so tests can sign jobs that are
otherwise invalid. validate_job() applies the full v1 rules.

Command line (the secret is read from the environment, never from argv):

    mailroom_sign.py --key-env VAR [--alg A] [--kid K] [--no-validate] < job.json
    mailroom_sign.py --make-vectors [PATH]    # rewrite tests/vectors/signing.json
    mailroom_sign.py --check-vectors [PATH]   # exit 1 unless PATH equals a fresh build
"""

import argparse
import hashlib
import hmac
import json
import os
import re
import sys
import unicodedata

__all__ = [
    "ALGS",
    "MAX_JOB_BYTES",
    "canonical",
    "sign",
    "signed_job",
    "dumps",
    "loads",
    "validate_job",
    "build_vectors",
    "render_vectors",
]

ALGS = {"hmac-sha1": hashlib.sha1, "hmac-sha256": hashlib.sha256}
SIG_HEX_LEN = {"hmac-sha1": 40, "hmac-sha256": 64}
MAX_JOB_BYTES = 262144
MIN_SECRET = 16

# --------------------------------------------------------------------------------------
# canonical form and signature


def _utf8(s, where):
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates cannot be UTF-8
        raise ValueError(f"{where}: not encodable as UTF-8 ({e.reason})") from None


def _str(s, where):
    b = _utf8(s, where)
    return str(len(b)).encode("ascii") + b":" + b


def _members(obj, skip_sig, where):
    items = []
    for k, v in obj.items():
        if not isinstance(k, str):
            raise ValueError(f"{where}: member name {k!r} is not a string")
        if skip_sig and k == "sig":
            continue
        items.append((_utf8(k, where), k, v))
    items.sort(key=lambda t: t[0])  # bytewise on the UTF-8 bytes
    return items


def _leaf(v, where):
    if not isinstance(v, str):
        what = "null" if v is None else type(v).__name__
        raise ValueError(f"{where}: {what} where only a string is allowed")
    return b"s" + _str(v, where)


def canonical(obj: dict) -> bytes:
    """The canonical form of a job (or any object of the allowed shape).

    canonical(object) = for each member, keys in bytewise ascending order: str(key) value(v)
    value(string s)   = "s" str(s)
    value(array a)    = "a" len(a) ":" value(a[0]) value(a[1]) ...
    value(object o)   = "o" len(o) ":" canonical(o)
    str(x)            = bytelen(x) ":" x

    The top-level "sig" member is left out (a nested "sig" is not). Top-level values
    may be strings, arrays of strings or objects of string to string; anything else
    (numbers, booleans, null, deeper nesting) raises ValueError.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"canonical form is defined on objects, not {type(obj).__name__}")
    out = []
    for kb, k, v in _members(obj, True, "object"):
        out.append(str(len(kb)).encode("ascii") + b":" + kb)
        where = f"member {k!r}"
        if isinstance(v, str):
            out.append(_leaf(v, where))
        elif isinstance(v, (list, tuple)):
            out.append(b"a%d:" % len(v))
            out.extend(_leaf(x, f"{where}[{i}]") for i, x in enumerate(v))
        elif isinstance(v, dict):
            inner = _members(v, False, where)
            out.append(b"o%d:" % len(inner))
            for ikb, ik, iv in inner:
                out.append(str(len(ikb)).encode("ascii") + b":" + ikb)
                out.append(_leaf(iv, f"{where}[{ik!r}]"))
        else:
            what = "null" if v is None else type(v).__name__
            raise ValueError(f"{where}: {what} is not allowed (strings, arrays of strings, "
                             f"objects of strings only)")
    return b"".join(out)


def _key_bytes(key):
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError("key must be bytes (or a str, taken as UTF-8)")


def sign(job: dict, key: bytes, alg: str = "hmac-sha1") -> str:
    """Lowercase hex HMAC(alg, key, canonical(job)); job's own kid/alg/sig members are
    not consulted (the kid and alg members are signed like any other member)."""
    if alg not in ALGS:
        raise ValueError(f"unknown alg {alg!r} (hmac-sha1 or hmac-sha256)")
    return hmac.new(_key_bytes(key), canonical(job), ALGS[alg]).hexdigest()


def signed_job(job: dict, key: bytes, kid="default", alg="hmac-sha1") -> dict:
    """A copy of job with kid and alg set and sig computed over the result. kid=None
    leaves the job's kid member as it is (absent stays absent)."""
    out = {k: v for k, v in job.items() if k != "sig"}
    if kid is not None:
        out["kid"] = kid
    out["alg"] = alg
    out["sig"] = sign(out, key, alg)
    return out


def dumps(job: dict) -> str:
    """Compact JSON text of a job, UTF-8 characters unescaped, member order kept."""
    return json.dumps(job, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _no_dupes(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate member {k!r}")
        d[k] = v
    return d


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def loads(text):
    """Strict JSON: duplicate member names and NaN/Infinity raise ValueError.
    bytes must be valid UTF-8."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")  # UnicodeDecodeError is a ValueError
    return json.loads(text, object_pairs_hook=_no_dupes, parse_constant=_no_constant)


# --------------------------------------------------------------------------------------
# v1 validation (the rules of docs/protocol.md, as both ends enforce them)

MEMBERS = {"v", "id", "to", "cc", "bcc", "from", "from_name", "reply_to", "subject",
           "text", "html", "headers", "created_at", "send_at", "expires_at", "kid", "alg",
           "sig"}
REQUIRED = ("v", "id", "to", "from", "subject", "text", "created_at", "kid", "alg")
STRING_MEMBERS = ("v", "id", "from", "from_name", "reply_to", "subject", "text", "html",
                  "created_at", "send_at", "expires_at", "kid", "alg", "sig")
ARRAY_MEMBERS = ("to", "cc", "bcc")

ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")
ULID_RE = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}\Z")
KID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
HEADER_RE = re.compile(r"(list-unsubscribe|list-unsubscribe-post|list-id|x-[a-z0-9-]{1,74})\Z",
                       re.IGNORECASE)
RFC3339_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?"
                        r"([Zz]|[+-](\d{2}):(\d{2}))\Z")
ATEXT = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            "!#$%&'*+-/=?^_`{|}~")
LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
MAX_RCPT = 100
MAX_HEADERS = 32
SUBJECT_MAX = 2000
HEADER_VALUE_MAX = 998
NAME_MAX = 256
MAILBOX_MAX = 254 + 256 + 8  # the whole mailbox string, quotes and brackets included


def _has_ctl(s):
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in s)


def _local_valid(local):
    """RFC 5322 dot-atom whose atext also admits non-ASCII characters (RFC 6532) other
    than the C1 controls; at most 64 octets; not quoted."""
    if not local or len(_utf8(local, "local part")) > 64 or local[0] == "." \
            or local[-1] == "." or ".." in local:
        return False
    return all(c == "." or c in ATEXT or (ord(c) >= 0xA0) for c in local)


def _idn_label(label):
    """The A-label of an internationalised label, or None. A structural check only:
    NFC and lower case, then Punycode, which must give a host name label; an "xn--"
    label must decode and encode back to itself. The consumer's libidn2 (IDNA2008,
    UTS #46 non-transitional) is the authority and refuses more (symbols, bidi rule,
    CONTEXTJ, unassigned code points); this tool only signs."""
    try:
        if label[:4].lower() == "xn--":
            u = label[4:].lower().encode("ascii").decode("punycode")
        else:
            u = unicodedata.normalize("NFC", label.lower())
        if not u or u.isascii() or any(
                unicodedata.category(c)[0] not in "LMN" and c != "-" for c in u):
            return None
        ace = "xn--" + u.encode("punycode").decode("ascii")
    except (UnicodeError, ValueError):
        return None
    if label[:4].lower() == "xn--" and ace != label.lower():
        return None
    return ace if LABEL_RE.match(ace) else None


def envelope_address(s):
    """The envelope form of an address (the domain as A-labels), or None when it is not
    one: a dot-atom local part of ASCII atext and UTF-8 (<= 64 octets), '@', two or more
    labels, each an ASCII host name label as written or an internationalised label
    (see _idn_label); <= 254 octets as given and as A-labels, the domain <= 253."""
    if not s or len(_utf8(s, "address")) > 254 or _has_ctl(s) or s.count("@") != 1:
        return None
    local, domain = s.split("@")
    if not _local_valid(local) or not domain:
        return None
    labels = []
    for lb in domain.split("."):
        if lb and lb.isascii() and lb[:4].lower() != "xn--":
            labels.append(lb if LABEL_RE.match(lb) else None)
        else:
            labels.append(_idn_label(lb) if lb else None)
    if len(labels) < 2 or None in labels:
        return None
    ace = ".".join(labels)
    env = local + "@" + ace
    if len(ace) > 253 or len(_utf8(env, "address")) > 254:
        return None
    return env


def addr_spec_valid(s):
    """docs/protocol.md 1.1: see envelope_address()."""
    return envelope_address(s) is not None


def name_valid(s):
    return len(_utf8(s, "display name")) <= NAME_MAX and not _has_ctl(s)


def parse_mailbox(s):
    """'addr@host' or 'Display Name <addr@host>' or '"Quoted, Name" <addr@host>'.
    Returns (name, address); raises ValueError."""
    if _has_ctl(s):
        raise ValueError("control character in mailbox")
    if len(_utf8(s, "mailbox")) > MAILBOX_MAX:
        raise ValueError(f"mailbox longer than {MAILBOX_MAX} bytes")
    t = s.strip(" \t")
    if not t.endswith(">"):
        if not addr_spec_valid(t):
            raise ValueError(f"malformed address {s!r}")
        return "", t
    lt = t.rfind("<")
    if lt < 0:
        raise ValueError("'>' without '<' in mailbox")
    raw, spec = t[:lt].strip(" \t"), t[lt + 1:-1]
    if "<" in raw or ">" in raw:
        raise ValueError("'<' or '>' in display name")
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        name, i, body = [], 0, raw[1:-1]
        while i < len(body):
            c = body[i]
            if c == "\\" and i + 1 < len(body):
                i += 1
                c = body[i]
            elif c == '"':
                raise ValueError("unescaped quote in display name")
            name.append(c)
            i += 1
        name = "".join(name)
    else:
        if '"' in raw:
            raise ValueError("quote inside unquoted display name")
        name = raw
    if not name_valid(name):
        raise ValueError("display name too long or has control characters")
    if not addr_spec_valid(spec):
        raise ValueError(f"malformed address {spec!r}")
    return name, spec


def rfc3339_valid(s):
    m = RFC3339_RE.match(s)
    if not m:
        return False
    y, mo, d, h, mi, se = (int(m.group(i)) for i in range(1, 7))
    dim = [31, 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28, 31, 30, 31, 30,
           31, 31, 30, 31, 30, 31]
    if not 1 <= mo <= 12 or not 1 <= d <= dim[mo - 1] or h > 23 or mi > 59 or se > 60:
        return False
    return m.group(9) is None or (int(m.group(9)) <= 23 and int(m.group(10)) <= 59)


def validate_job(job, require_sig=None):
    """Raises ValueError naming the first rule job breaks. require_sig: True (consumer),
    False (producer, before signing) or None (either)."""
    if not isinstance(job, dict):
        raise ValueError("a job is a JSON object")
    canonical(job)  # shape: strings, arrays of strings, objects of strings
    for k, v in job.items():
        if k not in MEMBERS:
            raise ValueError(f"unknown member {k!r}")
        for s in ([v] if isinstance(v, str) else v.values() if isinstance(v, dict) else v):
            if "\0" in s:
                raise ValueError(f"NUL in member {k!r}")
        if isinstance(v, dict):
            if any("\0" in n for n in v):
                raise ValueError(f"NUL in member {k!r}")
    for k in REQUIRED:
        if k not in job:
            raise ValueError(f"missing member {k!r}")
    if require_sig is True and "sig" not in job:
        raise ValueError("missing member 'sig'")
    if require_sig is False and "sig" in job:
        raise ValueError("member 'sig' present before signing")
    for k in STRING_MEMBERS:
        if k in job and not isinstance(job[k], str):
            raise ValueError(f"member {k!r} must be a string")
    for k in ARRAY_MEMBERS:
        if k in job and not isinstance(job[k], list):
            raise ValueError(f"member {k!r} must be an array of strings")
    if "headers" in job and not isinstance(job["headers"], dict):
        raise ValueError("member 'headers' must be an object of strings")
    if job["v"] != "1":
        raise ValueError("unsupported version (v must be \"1\")")
    if not ID_RE.match(job["id"]):
        raise ValueError("id must match [A-Za-z0-9._:-]{1,128}")
    if not job["to"]:
        raise ValueError("'to' is empty")
    n = sum(len(job.get(k, [])) for k in ARRAY_MEMBERS)
    if n > MAX_RCPT:
        raise ValueError(f"{n} recipients (at most {MAX_RCPT})")
    for k in ARRAY_MEMBERS:
        for mb in job.get(k, []):
            parse_mailbox(mb)
    if not addr_spec_valid(job["from"]):
        raise ValueError("'from' must be a bare address")
    if "from_name" in job:
        if not name_valid(job["from_name"]):
            raise ValueError("'from_name': over 256 bytes or control characters")
    if "reply_to" in job:
        parse_mailbox(job["reply_to"])
    subj = job["subject"]
    if _has_ctl(subj) or len(_utf8(subj, "subject")) > SUBJECT_MAX:
        raise ValueError("subject has control characters or exceeds 2000 bytes")
    hdrs = job.get("headers", {})
    if len(hdrs) > MAX_HEADERS:
        raise ValueError(f"more than {MAX_HEADERS} headers")
    for name, value in hdrs.items():
        if not HEADER_RE.match(name) or name.lower().startswith("x-mailroom-"):
            raise ValueError(f"header {name!r} is not allowed")
        if _has_ctl(value) or len(_utf8(value, name)) > HEADER_VALUE_MAX:
            raise ValueError(f"header {name!r}: control characters or over 998 bytes")
    for k in ("created_at", "send_at", "expires_at"):
        if k in job and not rfc3339_valid(job[k]):
            raise ValueError(f"{k!r} is not an RFC 3339 timestamp")
    if not KID_RE.match(job["kid"]):
        raise ValueError("kid must match [A-Za-z0-9._-]{1,64}")
    if job["alg"] not in ALGS:
        raise ValueError("alg must be hmac-sha1 or hmac-sha256")
    if "sig" in job:
        want = SIG_HEX_LEN[job["alg"]]
        if not re.fullmatch("[0-9a-f]{%d}" % want, job["sig"]):
            raise ValueError(f"sig must be {want} lowercase hex digits for {job['alg']}")
    if len(dumps(job).encode("utf-8")) > MAX_JOB_BYTES:
        raise ValueError(f"job exceeds {MAX_JOB_BYTES} bytes")


# --------------------------------------------------------------------------------------
# test vectors (tests/vectors/signing.json)

_ULID = "01JDQ6Z3K8P4W7X2M5N9R0T1AB"


# The order in which a producer would naturally write the members: deliberately not
# sorted, so that an implementation that forgets to sort fails the vectors.
_NATURAL_ORDER = ("v", "id", "to", "cc", "bcc", "reply_to", "from", "from_name", "subject",
                  "text", "html", "headers", "created_at", "send_at", "expires_at", "kid",
                  "alg")


def _job(**members):
    base = {"v": "1", "id": _ULID, "created_at": "2026-11-24T13:00:00Z", "kid": "default",
            "alg": "hmac-sha1"}
    base.update(members)
    return {k: base[k] for k in _NATURAL_ORDER if k in base}


def _vector_specs():
    """(name, alg, key, job) for every signing vector."""
    key1 = "mailroom-example-secret"       # the worked example in docs/protocol.md
    key2 = "0123456789abcdef0123456789abcdef"
    key3 = "密钥-rotated-2026-11-🔑"        # non-ASCII secret: the key is its UTF-8 bytes
    return [
        ("minimal_ascii_sha1", "hmac-sha1", key1, _job(
            to=["ming@example.com"], **{"from": "noreply@example.com"},
            subject="Hi", text="Hello")),
        ("chinese_activation_sha1", "hmac-sha1", key1, _job(
            id="01JDQ70A4B5C6D7E8F9G0H1J2K",
            to=["王小明 <ming@example.com>"], **{"from": "noreply@example.com"},
            from_name="滴水网", subject="请激活您的账户",
            text="王小明，您好：\r\n\r\n点击链接激活您的账户：https://example.com/activate?t=abc123\r\n"
                 "链接 24 小时内有效。\r\n",
            html="<p>王小明，您好：</p><p><a href=\"https://example.com/activate?t=abc123\">"
                 "激活账户</a></p>",
            expires_at="2026-11-25T13:00:00Z")),
        ("empty_subject_and_from_name_sha1", "hmac-sha1", key2, _job(
            id="01JDQ71M2N3P4Q5R6S7T8V9W0X",
            to=["a@example.org"], **{"from": "noreply@example.org"}, from_name="",
            subject="", text="(no subject)")),
        ("recipients_to_cc_bcc_sha1", "hmac-sha1", key2, _job(
            id="01JDQ72Y3Z4A5B6C7D8E9F0G1H",
            to=["王小明 <ming@example.com>", "\"Doe, Jane\" <jane.doe@example.com>",
                "ops+alerts@example.org"],
            cc=["李雷 <li.lei@example.com>", "韩梅梅 <han.meimei@example.org>"],
            bcc=["audit@example.org", "Archive <archive@mail.example.com>"],
            reply_to="客服 <support@example.com>",
            **{"from": "receipts@example.com"}, from_name="Example 商店",
            subject="Your receipt / 您的收据 #1042",
            text="Order 1042: 2 items, total ¥198.00\n")),
        ("empty_cc_array_bcc_vs_cc_sha1", "hmac-sha1", key1, _job(
            id="01JDQ73J4K5M6N7P8Q9R0S1T2V",
            to=["ming@example.com"], cc=[], bcc=["audit@example.org"],
            **{"from": "noreply@example.com"}, from_name="Example",
            subject="bcc sorts before cc", text="from < from_name, bcc < cc")),
        ("headers_sha256", "hmac-sha256", key2, _job(
            id="01JDQ74W5X6Y7Z8A9B0C1D2E3F", alg="hmac-sha256",
            to=["王小明 <ming@example.com>"], **{"from": "news@example.com"},
            from_name="滴水网 News", subject="双十一优惠 / Singles' Day offers",
            text="Unsubscribe: https://example.com/u/42\n",
            headers={
                "List-Unsubscribe": "<https://example.com/u/42>, <mailto:unsub-42@example.com>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "List-Id": "Example News <news.example.com>",
                "X-Campaign": "双十一-2026",
                "X-Zone": "eu-1",
                "X-campaign-id": "c-0042",
            })),
        ("scheduled_send_at_sha256", "hmac-sha256", key2, _job(
            id="reminder:user-42.2026-11-30", alg="hmac-sha256", kid="k2026-11",
            to=["Ming Wang <ming@example.com>"], **{"from": "noreply@example.com"},
            subject="Reminder", text="Your trial ends tomorrow.",
            created_at="2026-11-24T21:00:00.123+08:00",
            send_at="2026-11-30T09:00:00+08:00",
            expires_at="2026-11-30T23:59:59.999999Z")),
        ("crlf_quotes_backslash_emoji_sha1", "hmac-sha1", key1, _job(
            id="01JDQ75H6J7K8M9N0P1Q2R3S4T",
            to=["\"Jane \\\"JD\\\" Doe\" <jd@example.org>", "Émile Zola <emile@example.com>"],
            **{"from": "noreply@example.com"}, from_name="Team 🚀 Ops",
            subject="Deploy \"v2\" done ✅ C:\\path 😀",
            text="Line 1\r\nLine 2 with \"quotes\" and a back\\slash\r\n\tTabbed 😀🎉\r\n.\r\n",
            html="<pre>C:\\Users\\ming\r\n\"quoted\" &amp; 😀</pre>")),
        ("caller_id_nonascii_key_sha256", "hmac-sha256", key3, _job(
            id="order-1042:receipt.v2_A", alg="hmac-sha256", kid="rotated.2026-11",
            to=["ming@example.com"], **{"from": "receipts@example.com"},
            subject="收据", text="谢谢惠顾。", html="<p>谢谢惠顾。</p>")),
        ("ambiguity_split_a_sha1", "hmac-sha1", key1, _job(
            id="01JDQ76T7V8W9X0Y1Z2A3B4C5D",
            to=["ming@example.com"], **{"from": "noreply@example.com"},
            subject="Hello W", text="orld")),
        ("ambiguity_split_b_sha1", "hmac-sha1", key1, _job(
            id="01JDQ76T7V8W9X0Y1Z2A3B4C5D",
            to=["ming@example.com"], **{"from": "noreply@example.com"},
            subject="Hello", text=" World")),
        ("idn_domains_sha1", "hmac-sha1", key1, _job(
            id="01JDQ78R9S0T1V2W3X4Y5Z6A7B",
            to=["王小明 <ming@例子.测试>", "Jürgen Weiß <info@Bücher.de>"],
            cc=["ops@xn--bcher-kva.de"],
            **{"from": "noreply@例子.测试"}, from_name="例子",
            subject="请激活您的账户", text="https://例子.测试/activate?t=x\n")),
        ("utf8_local_parts_sha256", "hmac-sha256", key2, _job(
            id="01JDQ79C0D1E2F3G4H5J6K7M8N", alg="hmac-sha256",
            to=["用户@例子.测试", "José <josé@example.com>"],
            bcc=["пользователь@пример.рф"],
            reply_to="Служба поддержки <поддержка@example.com>",
            **{"from": "noreply@example.com"}, from_name="Example",
            subject="Ваш заказ / 您的订单", text="SMTPUTF8\n")),
        ("full_job_sha256", "hmac-sha256", key3, _job(
            id="01JDQ77E8F9G0H1J2K3M4N5P6Q", alg="hmac-sha256", kid="rotated.2026-11",
            to=["王小明 <ming@example.com>", "li.lei@example.org"],
            cc=["\"韩, 梅梅\" <han@example.com>"], bcc=[],
            reply_to="support@example.com",
            **{"from": "noreply@example.com"}, from_name="滴水网",
            subject="请激活您的账户", text="点击链接激活: https://example.com/activate?t=x",
            html="<p>点击<a href=\"https://example.com/activate?t=x\">链接</a>激活</p>",
            headers={"X-Campaign": "activation", "List-Id": "<activation.example.com>"},
            created_at="2026-11-24T13:00:00Z", send_at="2026-11-24T13:05:00Z",
            expires_at="2026-11-25T13:00:00Z")),
    ]


def _canonical_only_specs():
    return [
        ("naive_collision_a", {"b": "", "a": "bc"}),
        ("naive_collision_b", {"a": "b", "b": "c"}),
        ("empty_object", {}),
        ("string_vs_array_vs_object", {"s": "x", "a": ["x"], "o": {"x": ""}}),
        ("nested_counts", {"obj": {"k": "v", "K": "w", "kk": ""}, "arr": ["x", "yz", ""],
                           "empty_obj": {}, "empty_arr": []}),
        ("key_order_ascii", {"from_name": "2", "from": "1", "cc": [], "bcc": [],
                             "sig_x": "", "send_at": "", "Z": "", "z": "", "10": "", "9": "",
                             "_": "", "-": ""}),
        ("key_order_utf8_not_utf16", {"😀": "4-byte", "ｱ": "U+FF71", "é": "U+00E9",
                                      "z": "ascii"}),
        ("lengths_are_bytes", {"名": "滴水网😀", "crlf": "a\r\nb", "q": "\"\\"}),
        ("top_level_sig_skipped", {"y": "1", "sig": "deadbeef", "x": {"sig": "kept"}}),
    ]


def build_vectors():
    vectors = []
    for name, alg, key, job in _vector_specs():
        assert job["alg"] == alg, name
        validate_job(job, require_sig=False)
        assert ULID_RE.match(job["id"]) or not re.fullmatch("[0-9A-Z]{26}", job["id"]), name
        assert len(key.encode("utf-8")) >= MIN_SECRET, name
        vectors.append({"name": name, "alg": alg, "key": key, "job": job,
                        "canonical": canonical(job).decode("utf-8"),
                        "sig": sign(job, key.encode("utf-8"), alg)})
    canon = [{"name": n, "object": o, "canonical": canonical(o).decode("utf-8")}
             for n, o in _canonical_only_specs()]
    names = [v["name"] for v in vectors] + [c["name"] for c in canon]
    assert len(names) == len(set(names))
    return {
        "description": (
            "mailroom v1 signing vectors (docs/protocol.md). For each entry of 'vectors': "
            "canonical(job) must equal 'canonical' (a JSON string; compare its UTF-8 "
            "bytes), and lowercase hex HMAC(alg, UTF-8 bytes of 'key', canonical) must "
            "equal 'sig'. Jobs carry no sig member. 'canonical_only' entries check the "
            "canonical form of 'object' alone (the top-level sig member is left out). "
            "Members appear in this file in an unsorted order on purpose. "
            "Generated by tests/tools/mailroom_sign.py --make-vectors; do not edit."),
        "vectors": sorted(vectors, key=lambda v: v["name"]),
        "canonical_only": sorted(canon, key=lambda c: c["name"]),
    }


def render_vectors():
    # Not sort_keys: the vectors are sorted by name and every object keeps the member
    # order it was written in (insertion order), which is deterministic.
    return json.dumps(build_vectors(), ensure_ascii=False, indent=2) + "\n"


def _default_vectors_path():
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "vectors",
                        "signing.json")


# --------------------------------------------------------------------------------------
# command line


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Sign a mailroom v1 job read from stdin; print it as compact JSON.")
    p.add_argument("--key-env", metavar="VAR",
                   help="environment variable holding the secret (>= 16 bytes)")
    p.add_argument("--alg", default="hmac-sha1", choices=sorted(ALGS))
    p.add_argument("--kid", default="default")
    p.add_argument("--no-validate", action="store_true",
                   help="sign even when the job breaks the v1 rules")
    p.add_argument("--make-vectors", nargs="?", const="", metavar="PATH",
                   help="write the test vectors (default tests/vectors/signing.json)")
    p.add_argument("--check-vectors", nargs="?", const="", metavar="PATH",
                   help="exit 1 unless PATH equals freshly generated vectors")
    a = p.parse_args(argv)

    if a.make_vectors is not None:
        path = a.make_vectors or _default_vectors_path()
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(render_vectors())
        return 0
    if a.check_vectors is not None:
        path = a.check_vectors or _default_vectors_path()
        with open(path, "rb") as f:
            have = f.read()
        if have != render_vectors().encode("utf-8"):
            print(f"mailroom_sign: {path} differs from the generated vectors "
                  f"(run --make-vectors)", file=sys.stderr)
            return 1
        return 0

    if not a.key_env:
        p.error("--key-env VAR is required")
    secret = os.environb.get(a.key_env.encode()) if os.name == "posix" else \
        (os.environ.get(a.key_env) or "").encode("utf-8") or None
    if secret is None:
        print(f"mailroom_sign: environment variable {a.key_env} is not set", file=sys.stderr)
        return 2
    if len(secret) < MIN_SECRET:
        print(f"mailroom_sign: the secret must be at least {MIN_SECRET} bytes",
              file=sys.stderr)
        return 2
    if not KID_RE.match(a.kid):
        print("mailroom_sign: --kid must match [A-Za-z0-9._-]{1,64}", file=sys.stderr)
        return 2
    try:
        job = loads(sys.stdin.buffer.read())
        if not isinstance(job, dict):
            raise ValueError("a job is a JSON object")
        out = signed_job(job, secret, kid=a.kid, alg=a.alg)
        if not a.no_validate:
            validate_job(out, require_sig=True)
    except ValueError as e:
        print(f"mailroom_sign: {e}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(dumps(out).encode("utf-8") + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
