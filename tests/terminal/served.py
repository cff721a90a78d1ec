"""``trading-client terminal serve`` as a real subprocess, for the remote terminal's tests."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "app"]
_READY = re.compile(r"serving the simulated terminal on (\S+):(\d+) ")


class ServedTerminal:
    """One ``terminal serve`` process; :meth:`kill` and :meth:`start` again on the same port."""

    def __init__(
        self, *, seed: int, rate: int, control_file: Path | None = None, port: int = 0
    ) -> None:
        self.seed = seed
        self.rate = rate
        self.control_file = control_file
        self.port = port
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 60) -> ServedTerminal:
        args = [
            *CLI,
            "terminal",
            "serve",
            "--port",
            str(self.port),
            "--seed",
            str(self.seed),
            "--rate",
            str(self.rate),
            # Stamped in UTC, and the client told so: the comparison with the market's
            # (UTC) history needs no zone, whatever the default zone is.
            "--server-time-zone",
            "UTC",
            # Every symbol ticks, also at the weekend: the comparison is with a 24/7 market.
            "--market-hours",
            "always",
        ]
        if self.control_file is not None:
            args += ["--control-file", str(self.control_file)]
        deadline = time.monotonic() + timeout
        while True:  # the port of a killed server may be held for a moment
            self.proc = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            line = _first_line(self.proc, deadline)
            match = _READY.match(line or "")
            if match:
                self.port = int(match.group(2))
                return self
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.proc.wait()
            if self.port == 0 or "in use" not in err or time.monotonic() > deadline:
                raise RuntimeError(f"terminal serve did not start: {line!r} {err!r}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, as when Wine or its Python dies."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def _first_line(proc: subprocess.Popen[str], deadline: float) -> str | None:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                return proc.stdout.readline()
            if proc.poll() is not None:
                return None
    return None
