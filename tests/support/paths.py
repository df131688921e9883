"""Where things are: the repository, the built binaries ($MAILROOM_BIN_DIR, else
<repo>/build/bin), the built examples ($MAILROOM_EXAMPLES_DIR, else <repo>/build/examples),
and the one address every server binds to."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS_DIR = REPO_ROOT / "tests"
BIN_DIR = Path(os.environ.get("MAILROOM_BIN_DIR") or (REPO_ROOT / "build" / "bin"))
EXAMPLES_DIR = Path(os.environ.get("MAILROOM_EXAMPLES_DIR") or (REPO_ROOT / "build" / "examples"))
CLI = BIN_DIR / "mailroom"
CONSUMER = BIN_DIR / "mailroom-consumer"
WEBHOOK = BIN_DIR / "mailroom-webhook"
LOOPBACK = "127.0.0.1"


def binaries_missing() -> list:
    """The programs (mailroom, mailroom-consumer) that are not built, as strings."""
    return [str(p) for p in (CLI, CONSUMER) if not os.access(p, os.X_OK)]
