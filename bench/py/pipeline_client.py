#!/usr/bin/python3
"""An ideal pipelining SMTP client for the far-relay benchmark (far_relay.py): S sessions
(asyncio, one thread) each send their share of N messages of a given size over a
connection kept open, the way RFC 2920 allows and mailroom's engine does it: MAIL, RCPT and DATA
in one write, then each message's content together with the next message's MAIL, RCPT
and DATA, so that a warm connection spends one round trip per message. No queue, no
MIME, no checks beyond counting the replies: what the machine, the delay proxy and the
sink allow a client that waits exactly one round trip per message. Like the consumer
(its --max-per-connection, default 100), a session opens a new connection after 100
messages. Loopback only.

    pipeline_client.py --port 2626 --sessions 256 --messages 25600 --size 1805

Prints one JSON line at the end: {"sent": N, "seconds": ..., "rate": ...}. Exit 1 when
the server refuses anything (every reply must be 2xx, or 354 to DATA).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

ENVELOPE = b"MAIL FROM:<bench@example.com>\r\nRCPT TO:<sink@example.com>\r\nDATA\r\n"


class Refused(Exception):
    pass


async def replies(reader: asyncio.StreamReader, n: int) -> None:
    """Reads n complete replies (multi-line ones included); each must be 2xx or 354."""
    while n:
        line = await reader.readline()
        if not line:
            raise Refused("connection closed")
        if line[:1] not in (b"2", b"3"):
            raise Refused(line.decode(errors="replace").strip())
        if line[3:4] != b"-":
            n -= 1


def message(size: int) -> bytes:
    """A message of about size bytes with its terminating dot (lines never start with one)."""
    head = b"From: <bench@example.com>\r\nTo: <sink@example.com>\r\nSubject: bench\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body + b".\r\n"


async def connection(port: int, count: int, msg: bytes) -> None:
    """One connection that sends count messages, then QUIT."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await replies(reader, 1)
    writer.write(b"EHLO pipeline-client.test\r\n")
    await replies(reader, 1)
    writer.write(ENVELOPE)
    await replies(reader, 3)
    for _ in range(count - 1):
        writer.write(msg + ENVELOPE)  # this message's content opens the next group
        await replies(reader, 4)
    writer.write(msg + b"QUIT\r\n")
    await replies(reader, 2)
    writer.close()


async def session(port: int, count: int, msg: bytes, per_connection: int) -> None:
    """count messages, on a new connection after every per_connection of them."""
    while count > 0:
        k = min(count, per_connection)
        await connection(port, k, msg)
        count -= k


async def run(port: int, sessions: int, messages: int, size: int, per_connection: int) -> float:
    msg = message(size)
    shares = [messages // sessions + (1 if i < messages % sessions else 0) for i in range(sessions)]
    t0 = time.monotonic()
    await asyncio.gather(*(session(port, k, msg, per_connection) for k in shares if k))
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True, help="the server (or proxy) on 127.0.0.1")
    ap.add_argument("--sessions", type=int, required=True)
    ap.add_argument("--messages", type=int, required=True)
    ap.add_argument("--size", type=int, default=1800, help="bytes per message")
    ap.add_argument("--max-per-connection", type=int, default=100,
                    help="messages before a session opens a new connection (as the consumer's option)")
    args = ap.parse_args()
    try:
        secs = asyncio.run(run(args.port, args.sessions, args.messages, args.size,
                               max(1, args.max_per_connection)))
    except (Refused, OSError) as e:
        print(f"pipeline_client: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"sent": args.messages, "seconds": secs, "rate": args.messages / secs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
