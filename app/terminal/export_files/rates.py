"""Bars in MT5's ``MqlRates`` form (:data:`RATES_DTYPE`) built from ticks.

The collector aggregates bars for live use (``app.collector.BAR_DTYPE``: spreads as
price sums, millisecond starts); exports and the terminal speak ``MqlRates`` (second
starts, spread in points, tick and real volume). This module converts ticks or
collector bars into that form, exactly and chunk by chunk.

Conventions (those of MT5 charts of currency pairs and CFDs): prices are bid; the
ticks given are stamped in server time, as in the terminal's files, and bars start at
the server's boundaries (:mod:`app.timeframes`: H4 at 00:00, 04:00…, days at 00:00,
weeks on Sunday, months on the 1st); ``tick_volume``
counts ticks; ``spread`` is the bar's smallest spread in points; ``real_volume`` sums
the volume of deal ticks (``TICK_FLAG_VOLUME``), 0 for quote-only symbols. A period
without ticks has no bar.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from app.terminal.constants import TICK_FLAG_VOLUME
from app.terminal.export_files.formats import RATES_DTYPE, RatesArray
from app.ticks import TickArray
from app.timeframes import TIMEFRAMES, period_starts_server_ms, timeframe_ms

__all__ = [
    "TIMEFRAMES",
    "RatesBuilder",
    "rates_from_bars",
    "rates_from_ticks",
    "rates_resample",
    "timeframe_ms",
]


def _spread_points(spread: npt.NDArray[np.float64], point: float) -> npt.NDArray[np.int64]:
    return np.rint(spread / point).astype(np.int64)


def rates_from_ticks(ticks: TickArray, tf_ms: int, point: float) -> RatesArray:
    """One bar per period with ticks, oldest first (``ticks`` ordered by ``time_msc``)."""
    n = len(ticks)
    if n == 0:
        return np.zeros(0, dtype=RATES_DTYPE)
    tm = ticks["time_msc"].astype(np.int64)
    starts = period_starts_server_ms(tm, tf_ms)
    first = np.flatnonzero(np.concatenate(([True], starts[1:] != starts[:-1])))
    last = np.concatenate((first[1:], [n])) - 1
    bid = np.ascontiguousarray(ticks["bid"], dtype=np.float64)
    spread = _spread_points(ticks["ask"] - bid, point)
    deal = (ticks["flags"] & np.uint32(TICK_FLAG_VOLUME)) != 0
    volume = np.where(deal, ticks["volume"], np.uint64(0)).astype(np.uint64)
    out = np.empty(len(first), dtype=RATES_DTYPE)
    out["time"] = starts[first] // 1000
    out["open"] = bid[first]
    out["high"] = np.maximum.reduceat(bid, first)
    out["low"] = np.minimum.reduceat(bid, first)
    out["close"] = bid[last]
    out["tick_volume"] = last - first + 1
    out["spread"] = np.minimum.reduceat(spread, first)
    out["real_volume"] = np.add.reduceat(volume, first)
    return out


def rates_from_bars(bars: npt.NDArray[np.void], point: float) -> RatesArray:
    """Collector bars (``app.collector.BAR_DTYPE``) as rates; no real volume there."""
    out = np.zeros(len(bars), dtype=RATES_DTYPE)
    out["time"] = bars["time_msc"] // 1000
    for name in ("open", "high", "low", "close"):
        out[name] = bars[name]
    out["tick_volume"] = bars["tick_count"]
    out["spread"] = _spread_points(bars["spread_min"], point)
    return out


def _merge(a: np.void, b: np.void) -> None:
    """Fold bar ``b`` (same start, later ticks) into ``a``, in place; exact (min/max/sum)."""
    a["high"] = max(float(a["high"]), float(b["high"]))
    a["low"] = min(float(a["low"]), float(b["low"]))
    a["close"] = b["close"]
    a["tick_volume"] = int(a["tick_volume"]) + int(b["tick_volume"])
    a["spread"] = min(int(a["spread"]), int(b["spread"]))
    a["real_volume"] = int(a["real_volume"]) + int(b["real_volume"])


class RatesBuilder:
    """Bars from tick chunks: each :meth:`add` returns the bars it completed.

    The last bar of a chunk may continue in the next one, so it is held back and merged
    (every field is a first, last, min, max or sum: the result equals one pass over all
    ticks). :meth:`finish` returns the held bar.
    """

    def __init__(self, tf_ms: int, point: float) -> None:
        if tf_ms <= 0 or point <= 0:
            raise ValueError("timeframe and point must be positive")
        self.tf_ms = tf_ms
        self.point = point
        self._held: RatesArray = np.zeros(0, dtype=RATES_DTYPE)

    def add(self, ticks: TickArray) -> RatesArray:
        bars = rates_from_ticks(ticks, self.tf_ms, self.point)
        if not len(bars):
            return np.zeros(0, dtype=RATES_DTYPE)
        if len(self._held) and self._held[0]["time"] == bars[0]["time"]:
            _merge(self._held[0], bars[0])
            bars = np.concatenate((self._held, bars[1:]))
        elif len(self._held):
            bars = np.concatenate((self._held, bars))
        self._held = bars[-1:].copy()
        return bars[:-1]

    def finish(self) -> RatesArray:
        held, self._held = self._held, np.zeros(0, dtype=RATES_DTYPE)
        return held


def rates_resample(rates: RatesArray, tf_ms: int) -> RatesArray:
    """Shorter bars (server-time starts, oldest first) folded into ``tf_ms`` bars: exact,
    since every field is a first, last, min, max or sum and every server boundary of a
    longer timeframe is one of the shorter's (offsets are whole quarter hours)."""
    n = len(rates)
    if n == 0:
        return np.zeros(0, dtype=RATES_DTYPE)
    starts = period_starts_server_ms(rates["time"].astype(np.int64) * 1000, tf_ms)
    first = np.flatnonzero(np.concatenate(([True], starts[1:] != starts[:-1])))
    last = np.concatenate((first[1:], [n])) - 1
    out = np.empty(len(first), dtype=RATES_DTYPE)
    out["time"] = starts[first] // 1000
    out["open"] = rates["open"][first]
    out["high"] = np.maximum.reduceat(rates["high"], first)
    out["low"] = np.minimum.reduceat(rates["low"], first)
    out["close"] = rates["close"][last]
    out["tick_volume"] = np.add.reduceat(rates["tick_volume"], first)
    out["spread"] = np.minimum.reduceat(rates["spread"], first)
    out["real_volume"] = np.add.reduceat(rates["real_volume"], first)
    return out
