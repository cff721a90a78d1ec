"""One line of ``trading-client doctor``'s report: a verdict, what was checked, the fix.

In a module of its own so that groups of checks can live apart from :mod:`app.doctor`
(:mod:`app.doctor_terminals`, :mod:`app.terminal.remote_doctor`) and still speak the
same line (and reach a port the same way: :func:`tcp_error`).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Literal

__all__ = ["Check", "Level", "tcp_error"]

Level = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Check:
    level: Level
    what: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = f"[{self.level}]".ljust(7)
        fix = f" — fix: {self.fix}" if self.fix and self.level != "ok" else ""
        return f"{mark}{self.what}: {self.detail}{fix}"


def tcp_error(host: str, port: int, timeout: float) -> str | None:
    """None when something accepts a TCP connection at host:port, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror as exc:
        return f"cannot resolve {host!r} ({exc.strerror or exc})"
    except ConnectionRefusedError:
        return f"nothing listens on {host}:{port} (connection refused)"
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g} s"
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"
