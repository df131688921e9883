"""Reading the messages an SMTP server received: parsing, the wire-format checks
(bare line ends, line lengths, header lines), text parts, and the Message-ID the
consumer derives from a job id (and back)."""

from __future__ import annotations

import email
import email.parser
import email.policy
import re


def parse_message(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


_BARE_LF = re.compile(rb"(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n)")


def bare_line_ends(raw: bytes) -> int:
    """How many bare LFs and bare CRs raw contains."""
    return len(_BARE_LF.findall(raw)) + len(_BARE_CR.findall(raw))


def longest_line(raw: bytes) -> int:
    return max((len(l) for l in raw.split(b"\r\n")), default=0)


def unfold_header_lines(raw: bytes) -> list:
    """The raw header section's physical lines."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n")


def text_of(part) -> str:
    """A text part's decoded content with CRLF line ends turned into LF."""
    return part.get_content().replace("\r\n", "\n")


def message_id_for(job_id: str, sender: str) -> str:
    """The Message-ID the consumer derives from a job id and the From address."""
    domain = sender.rsplit("@", 1)[1]
    local = "".join(c if re.fullmatch(r"[A-Za-z0-9_-]", c) else "".join(f"={b:02X}" for b in c.encode())
                    for c in job_id)
    return f"<{local}@{domain}>"


_HEADER_PARSER = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def job_id_of(raw: bytes) -> str:
    """The job id from the Message-ID <id@domain> the consumer derives from it (a raw
    message); the Message-ID itself when it has no angle brackets."""
    mid = (_HEADER_PARSER.parsebytes(raw).get("Message-ID") or "").strip()
    return mid[1:].split("@", 1)[0] if mid.startswith("<") else mid
