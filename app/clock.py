"""The one clock of the project.

Everything that needs "now" takes a :class:`Clock`, so that rules, backoff and the
simulated market can be driven by a :class:`ManualClock` in tests instead of sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; for durations only."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to; both readings advance together."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall = start
        self._mono = 0.0

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._wall += seconds
        self._mono += seconds

    def set_time(self, wall: float) -> None:
        """Jump the wall clock (monotonic follows by the same amount, never backwards)."""
        self.advance(max(0.0, wall - self._wall))


SYSTEM_CLOCK: Clock = SystemClock()


def now_msc(clock: Clock = SYSTEM_CLOCK) -> int:
    """Wall-clock milliseconds, the unit of ``time_msc``."""
    return int(clock.time() * 1000)
