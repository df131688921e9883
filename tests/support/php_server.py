"""PHP's built-in web server (`php -S 127.0.0.1:PORT SCRIPT`) as a child: the
registration example's callback page, which tests stop and start again on the same
port to play an application that was down for a while."""

from __future__ import annotations

import shutil

from .paths import LOOPBACK
from .procs import Child, free_port, port_accepts, wait_started

PHP = shutil.which("php")


class PhpServer(Child):
    """php -S on 127.0.0.1:<free port> (kept across restarts) serving every request
    with script (a router script), the environment env."""

    kind = "php"

    def __init__(self, script, env: dict):
        super().__init__()
        self.script = str(script)
        self.env = env
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/mailroom/callback"

    def start(self) -> "PhpServer":
        self.spawn_child([PHP, "-S", f"{LOOPBACK}:{self.port}", self.script], env=self.env)
        wait_started(self, lambda: port_accepts(self.port), f"php -S on port {self.port}", 10)
        return self
