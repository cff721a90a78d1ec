"""One line of ``trading-client doctor``'s report: a verdict, what was checked, the fix.

In a module of its own so that groups of checks can live apart from :mod:`app.doctor`
(:mod:`app.doctor_terminals`, :mod:`app.terminal.remote_doctor`) and still speak the
same line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Check", "Level"]

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
