"""The day's figures of each symbol, as MT5's Market Watch shows them: high, low, the
day's open and the previous day's close, cut at the symbol's **server** midnight (the D1
bar's open, ``ServerTimeZone.server_midnight_utc_s``; docs/time.md).

Fed by every sequenced batch of the collector (live and history), in any order: the
fold is order-independent (max, min, the tick with the smallest time at or after
midnight, the tick with the greatest time before it), so history that arrives after the
live ticks (the backfill) lands where it belongs.

**What is known, and when "—" is shown.** The figures are only as good as the ticks the
app has. The previous close is the last bid *before* today's server midnight; when the
app holds such a tick, capture is contiguous from it to now (the live capture is
gap-free and the backfill fills from where the previous run stopped), so today's high,
low and open are the day's. When it holds none (the cache and the backfill do not reach
back to server midnight, e.g. a first run started mid-day), high, low, open and change
are *unknown*: :attr:`DayFigures.known` is False and the window shows "—" rather than
the range of the last few hours. While a backfill is still staging history for the
symbol the figures are not final either (``pending``). Until the symbol's server zone is
known (a real terminal being detected) there is no midnight to cut at: unknown too.

A detected zone that changes (detection, a DST re-detection) rebuilds the symbol's
figures from the collector's cache.

**Seeded from the terminal's history at start** (:meth:`DayBook.seed`, called by the
chart's history service, app/history/chart_history.py, with the H1 bars of the last two
server days): each bar enters the fold as four stamps (open at its start, then high,
low and close), so the previous close (the last bar before midnight closes at it), the
day's open, high and low are known at once instead of "—" until a tick from before
midnight is held; live ticks then fold in as before. Seeds are kept and folded again
when a zone change rebuilds the symbol.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.collector import BarArray, Collector, SequencedBatch
from app.servertime import ServerTimeZone
from app.ticks import TICK_DTYPE, TickArray

__all__ = ["DayBook", "DayFigures", "DayStats"]

#: Seconds after a server midnight that always fall in the next server day.
_NEXT_DAY_PROBE_S = 26 * 3600
#: Batches up to this many ticks are reduced as Python lists (see ``update``).
_SMALL = 16


def _high_low(bid: npt.NDArray[np.float64], small: bool) -> tuple[float, float]:
    """``bid.max(), bid.min()`` exactly as numpy gives them (a NaN propagates)."""
    if small:
        values = bid.tolist()
        if not math.isnan(sum(values)):  # no NaN (nor +inf and -inf): Python agrees
            return max(values), min(values)
    return float(bid.max()), float(bid.min())


@dataclass(frozen=True, slots=True)
class DayFigures:
    """One symbol's day at one instant (bid prices, like MT5's Market Watch)."""

    #: UTC ms of the server midnight that opened the day.
    day_start_ms: int
    #: False: the app holds no tick from before server midnight; only ``bid`` is real.
    known: bool
    high: float | None
    low: float | None
    open: float | None
    prev_close: float | None
    bid: float | None
    #: History for the symbol is still arriving: the figures may still change.
    pending: bool = False

    @property
    def change_pct(self) -> float | None:
        """(bid − previous close) / previous close, in percent; None when unknown."""
        if not self.known or self.prev_close is None or self.bid is None or not self.prev_close:
            return None
        return (self.bid - self.prev_close) / self.prev_close * 100.0


class DayStats:
    """The fold for one symbol in one server zone (pure: no clock, no I/O)."""

    __slots__ = (
        "_day",
        "_first",
        "_high",
        "_last",
        "_low",
        "_open",
        "_prev",
        "_span",
        "zone",
    )

    def __init__(self, zone: ServerTimeZone) -> None:
        self.zone = zone
        self._day = -1  # UTC ms of the current day's server midnight
        self._high = -np.inf
        self._low = np.inf
        self._open: tuple[int, float] | None = None  # (time_msc, bid), smallest time in day
        self._prev: tuple[int, float] | None = None  # greatest time before the day
        self._last: tuple[int, float] | None = None  # greatest time of all
        self._first = 2**62
        #: [start, end) UTC ms of the server day last looked up: every batch falls in it
        #: but one a day, and the zone's calendar arithmetic (numpy over its DST steps,
        #: ≈30 µs) was a quarter of the app's CPU at 10k ticks/s in small batches.
        self._span = (0, 0)

    def _midnight_ms(self, time_msc: int) -> int:
        start, end = self._span
        if start <= time_msc < end:
            return start
        start = self.zone.server_midnight_utc_s(time_msc // 1000) * 1000
        # A server day lasts 23 to 25 hours: 26 h after its midnight is inside the next one.
        end = self.zone.server_midnight_utc_s(start // 1000 + _NEXT_DAY_PROBE_S) * 1000
        self._span = (start, end)
        return start

    def update(self, ticks: TickArray) -> None:
        """Fold ticks in (any order, any day)."""
        if not len(ticks):
            return
        t = ticks["time_msc"]
        b = ticks["bid"]
        n = len(t)
        # At low rates a batch holds a few ticks, and numpy's call overhead (not the
        # work) was most of this method: small batches are reduced as Python lists.
        small = n <= _SMALL
        if small:
            times = t.tolist()
            newest, oldest = max(times), min(times)
        else:
            newest, oldest = int(t.max()), int(t.min())
        day = self._midnight_ms(max(newest, self._last[0] if self._last else newest))
        if day > self._day:
            # A new server day: what was the newest tick is the previous close candidate.
            self._day = day
            self._high, self._low = -np.inf, np.inf
            self._open = None
            if self._last is not None and self._last[0] < day:
                self._prev = self._last
            elif self._prev is not None and self._prev[0] >= day:
                self._prev = None
        self._first = min(self._first, oldest)
        # The last tick of the greatest time; in a batch in time order (the collector's
        # always are) that is the last one, without a search.
        i_last = n - 1 if int(t[-1]) == newest else n - 1 - int(np.argmax(t[::-1]))
        if self._last is None or newest >= self._last[0]:
            self._last = (newest, float(b[i_last]))
        if oldest >= self._day:
            # All of it today (every live batch but one a day): no masks, a few reductions.
            high, low = _high_low(b, small)
            self._high = max(self._high, high)
            self._low = min(self._low, low)
            if self._open is None or oldest < self._open[0]:
                i = 0 if int(t[0]) == oldest else int(np.argmin(t))
                self._open = (oldest, float(b[i]))
            return
        today = t >= self._day
        if today.any():
            bt, tt = b[today], t[today]
            self._high = max(self._high, float(bt.max()))
            self._low = min(self._low, float(bt.min()))
            i = int(np.argmin(tt))
            if self._open is None or int(tt[i]) < self._open[0]:
                self._open = (int(tt[i]), float(bt[i]))
        before = ~today
        if before.any():
            tb, bb = t[before], b[before]
            i = len(tb) - 1 - int(np.argmax(tb[::-1]))
            if self._prev is None or int(tb[i]) >= self._prev[0]:
                self._prev = (int(tb[i]), float(bb[i]))

    def figures(self, pending: bool = False) -> DayFigures | None:
        if self._last is None:
            return None
        known = self._prev is not None and self._first < self._day
        return DayFigures(
            day_start_ms=self._day,
            known=known,
            high=self._high if known and self._open is not None else None,
            low=self._low if known and self._open is not None else None,
            open=self._open[1] if known and self._open is not None else None,
            prev_close=self._prev[1] if self._prev is not None else None,
            bid=self._last[1],
            pending=pending,
        )


class DayBook:
    """Every symbol's :class:`DayStats`, fed by the collector (subscribe :meth:`on_batch`).

    ``zone_of`` is the runtime's ``ServerZones.zone`` (None while a zone is detected);
    ``version`` its change counter, so a new zone rebuilds from the cache.
    """

    def __init__(
        self,
        collector: Collector,
        zone_of: Callable[[str], ServerTimeZone | None],
        version: Callable[[], int] = lambda: 0,
    ) -> None:
        self._collector = collector
        self._zone_of = zone_of
        self._version = version
        self._seen = version()
        self._stats: dict[str, DayStats] = {}
        self._seeds: dict[str, TickArray] = {}

    def on_batch(self, batch: SequencedBatch) -> None:
        self._check_zones()
        symbol = batch.batch.symbol
        stats = self._stats.get(symbol)
        if stats is None:
            if self._rebuild(symbol) and batch.history:
                stats = self._stats[symbol]  # staged history is not in the cache yet
                stats.update(batch.batch.ticks)
            return
        stats.update(batch.batch.ticks)

    def seed(self, symbol: str, bars: BarArray) -> None:
        """Fold history bars (UTC opens, ``BAR_DTYPE``) of ``symbol`` in; see the module."""
        if not len(bars):
            return
        ticks = np.zeros(4 * len(bars), dtype=TICK_DTYPE)
        for k, name in enumerate(("open", "high", "low", "close")):
            ticks["time_msc"][k::4] = bars["time_msc"] + k
            ticks["bid"][k::4] = bars[name]
        ticks["time"] = ticks["time_msc"] // 1000
        self._seeds[symbol] = ticks
        stats = self._stats.get(symbol)
        if stats is None:
            self._rebuild(symbol)
        else:
            stats.update(ticks)

    def figures(self, symbol: str) -> DayFigures | None:
        """The day of ``symbol`` now; None before its first tick or while its server zone
        is not known."""
        self._check_zones()
        stats = self._stats.get(symbol)
        if stats is None:
            return None
        return stats.figures(pending=self._collector.history_pending(symbol))

    def _check_zones(self) -> None:
        v = self._version()
        if v == self._seen:
            return
        self._seen = v
        for symbol in list(self._stats):
            zone = self._zone_of(symbol)
            if zone is None or zone != self._stats[symbol].zone:
                self._rebuild(symbol)
        for symbol in self._collector.cache.symbols:
            if symbol not in self._stats:
                self._rebuild(symbol)

    def _rebuild(self, symbol: str) -> bool:
        """Fold ``symbol``'s cached ticks afresh in its zone; False while it has none."""
        zone = self._zone_of(symbol)
        self._stats.pop(symbol, None)
        if zone is None:
            return False
        stats = DayStats(zone)
        if symbol in self._seeds:
            stats.update(self._seeds[symbol])
        if symbol in self._collector.cache:
            stats.update(self._collector.cache.snapshot(symbol))
        self._stats[symbol] = stats
        return True
