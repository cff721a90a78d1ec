"""Sliding-window event rates (ticks/s, batches/s, messages/s) per symbol, worker, total.

The status bar wants "ticks per second over the last 1 s, 10 s and 60 s" for every symbol
and worker, updated on each batch. Keeping timestamps per event would cost memory in
proportion to the rate; an exponential average cannot answer "over exactly the last
10 s". A ring of per-slot counters (100 ms slots by default) answers any window up to
its length by summing slots, and :meth:`RateMeter.add` is a clock read and one list
increment.

Semantics (what the tests pin down):

* A window covers whole *completed* slots only, ``[now_slot - k, now_slot)`` with
  ``k = window / resolution``: the slot still filling is left out, so a rate lags by at
  most one slot (100 ms) instead of dipping every time a new slot starts empty.
* The rate divides by the time covered, ``min(window, time observed)``, where time
  observed starts when the meter (or the :class:`RateBook` that made it) started. So a
  symbol that starts trading 2 s after launch at 50 ticks/s reads 50/s over the 60 s
  window from its first completed slot, not 1.7/s ramping up for a minute; and a meter
  made on first use inside a book does not claim events from before the book existed.
* With no events, every rate decays to exactly 0 once its window has passed.

Time comes from :meth:`Clock.monotonic`: a wall-clock jump must not invent or erase
rates. Not thread-safe: one owner (the asyncio loop) adds and reads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from app.clock import SYSTEM_CLOCK, Clock

DEFAULT_WINDOWS: tuple[float, ...] = (1.0, 10.0, 60.0)

#: Fraction of a slot added before flooring, so that time sums such as 0.1 + 0.2 that land
#: a hair below a slot edge still count in the slot they mean (ManualClock in tests).
_EDGE = 1e-6


class RateMeter:
    """Events per second over sliding windows, from a ring of per-slot counts."""

    __slots__ = (
        "_clock",
        "_current",
        "_per_second",
        "_resolution",
        "_ring",
        "_size",
        "_slots_for",
        "_start",
        "_total",
        "windows",
    )

    def __init__(
        self,
        windows: Iterable[float] = DEFAULT_WINDOWS,
        clock: Clock = SYSTEM_CLOCK,
        resolution: float = 0.1,
        *,
        start: float | None = None,
    ) -> None:
        """``start``: monotonic time from which events were being observed (default now).

        Every window must be a whole number of ``resolution`` slots.
        """
        if not resolution > 0:
            raise ValueError(f"resolution must be > 0, got {resolution}")
        self.windows: tuple[float, ...] = tuple(float(w) for w in windows)
        if not self.windows:
            raise ValueError("at least one window is needed")
        self._resolution = float(resolution)
        self._per_second = 1.0 / self._resolution
        self._slots_for: dict[float, int] = {w: self._slots(w) for w in self.windows}
        # One slot more than the longest window: the slot still filling.
        self._size = max(self._slots_for.values()) + 1
        self._ring: list[int] = [0] * self._size
        self._clock = clock
        now = self._slot_at(clock.monotonic())
        self._start = now if start is None else min(now, self._slot_at(start))
        self._current = now
        self._total = 0

    def add(self, n: int = 1) -> None:
        """Count ``n`` events now. O(1) except after idle time, when skipped slots are cleared
        (at most the ring's length, once)."""
        slot = math.floor(self._clock.monotonic() * self._per_second + _EDGE)
        if slot != self._current:
            self._advance(slot)
        self._ring[self._current % self._size] += n
        self._total += n

    @property
    def total(self) -> int:
        """All events counted since the meter was made."""
        return self._total

    @property
    def resolution(self) -> float:
        return self._resolution

    def rate(self, window: float | None = None) -> float:
        """Events per second over the last ``window`` seconds (default: the shortest)."""
        k = self._slots_for.get(window) if window is not None else None
        if k is None:
            k = self._slots(window) if window is not None else min(self._slots_for.values())
            if k >= self._size:
                raise ValueError(
                    f"window {window} s is longer than the meter keeps "
                    f"({(self._size - 1) * self._resolution:g} s)"
                )
        self._advance(math.floor(self._clock.monotonic() * self._per_second + _EDGE))
        covered = min(k, self._current - self._start)
        if covered <= 0:
            return 0.0
        size = self._size
        first = (self._current - covered) % size
        end = self._current % size
        ring = self._ring
        count = sum(ring[first:end]) if first < end else sum(ring[first:]) + sum(ring[:end])
        return count / (covered * self._resolution)

    def rates(self) -> dict[float, float]:
        """``{window: events per second}`` for each configured window."""
        return {w: self.rate(w) for w in self.windows}

    def __repr__(self) -> str:
        shown = ", ".join(f"{w:g}s={r:.1f}/s" for w, r in self.rates().items())
        return f"RateMeter({shown}, total={self._total})"

    def _slots(self, window: float) -> int:
        k = round(window / self._resolution)
        if k < 1 or not math.isclose(k * self._resolution, window, rel_tol=1e-9):
            raise ValueError(
                f"window {window} s is not a whole number of {self._resolution} s slots"
            )
        return k

    def _slot_at(self, t: float) -> int:
        return math.floor(t * self._per_second + _EDGE)

    def _advance(self, slot: int) -> None:
        """Make ``slot`` the one filling, clearing the slots skipped since the last one."""
        current = self._current
        if slot <= current:  # same slot (a monotonic clock never goes back)
            return
        ring = self._ring
        size = self._size
        if slot - current >= size:
            ring[:] = [0] * size
        else:
            for s in range(current + 1, slot + 1):
                ring[s % size] = 0
        self._current = slot


class RateBook:
    """Rate meters by name ("total", a symbol, "worker-2"…), each made on first use.

    All meters share the book's windows, resolution, clock and observation start, so the
    rates of a symbol first seen late are comparable with the total's.
    """

    __slots__ = ("_clock", "_meters", "_resolution", "_start", "windows")

    def __init__(
        self,
        windows: Iterable[float] = DEFAULT_WINDOWS,
        clock: Clock = SYSTEM_CLOCK,
        resolution: float = 0.1,
    ) -> None:
        self.windows: tuple[float, ...] = tuple(float(w) for w in windows)
        self._clock = clock
        self._resolution = resolution
        self._start = clock.monotonic()
        self._meters: dict[str, RateMeter] = {}
        RateMeter(self.windows, clock, resolution)  # validate the windows now, not later

    def meter(self, name: str) -> RateMeter:
        """The meter called ``name``, made (with no events) if it does not exist yet."""
        meter = self._meters.get(name)
        if meter is None:
            meter = RateMeter(self.windows, self._clock, self._resolution, start=self._start)
            self._meters[name] = meter
        return meter

    def add(self, name: str, n: int = 1) -> None:
        """Count ``n`` events under ``name``."""
        meter = self._meters.get(name)
        if meter is None:
            meter = self.meter(name)
        meter.add(n)

    def rate(self, name: str, window: float | None = None) -> float:
        """Events per second of ``name`` over ``window``; 0 for a name never counted."""
        meter = self._meters.get(name)
        return 0.0 if meter is None else meter.rate(window)

    def rates(self, window: float | None = None) -> dict[str, float]:
        """``{name: events per second}`` over one window, for a table of all names."""
        return {name: meter.rate(window) for name, meter in self._meters.items()}

    def totals(self) -> dict[str, int]:
        return {name: meter.total for name, meter in self._meters.items()}

    def remove(self, name: str) -> None:
        """Forget ``name`` (a symbol unsubscribed, a worker removed); no error if unknown."""
        self._meters.pop(name, None)

    def names(self) -> list[str]:
        return list(self._meters)

    def __contains__(self, name: object) -> bool:
        return name in self._meters

    def __getitem__(self, name: str) -> RateMeter:
        return self._meters[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._meters)

    def __len__(self) -> int:
        return len(self._meters)
