"""Bars (OHLC of bid, tick count, spread statistics) aggregated from tick batches.

A bar holds what can be merged exactly: extremes, counts and a *sum* of spreads, never a
mean, so that a bar split across any number of batches ends bit-identical to one built
from all its ticks at once. The mean is derived on read with :func:`spread_mean`.

Bars exist only for periods that had ticks: a gap of several minutes produces no empty
bars, as in MetaTrader's own history.

Bar opens are UTC (the project's rule, docs/time.md) but cut where MT5 cuts them: at the
server's hour, midnight, Sunday or month boundaries (:mod:`app.timeframes`), so an
aggregator of H1 or longer is given its symbol's server zone.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass
from typing import overload

import numpy as np
import numpy.typing as npt

from app.collector.ring import StructRing
from app.servertime import UTC_ZONE, ServerTimeZone
from app.ticks import TickArray
from app.timeframes import bar_end_utc_ms, bar_starts_utc_ms

#: One bar. ``time_msc`` is the bar start in UTC epoch ms (a server-time boundary of
#: the timeframe, see :mod:`app.timeframes`);
#: prices are bid; spreads are ``ask - bid`` in price units.
BAR_DTYPE: np.dtype[np.void] = np.dtype(
    [
        ("time_msc", "<i8"),
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("tick_count", "<i8"),
        ("spread_min", "<f8"),
        ("spread_max", "<f8"),
        ("spread_sum", "<f8"),
    ]
)

BarArray = npt.NDArray[np.void]
"""A 1-d structured array of :data:`BAR_DTYPE`, oldest bar first."""

M1: int = 60_000
M5: int = 5 * M1
M15: int = 15 * M1
H1: int = 60 * M1

#: Closed bars kept per aggregator: one week of M1.
DEFAULT_BAR_HISTORY: int = 7 * 24 * 60
#: Instants across a year (both daylight-saving switches), to tell whether a zone can
#: move a timeframe's boundaries at all.
#: Batches up to this many ticks take the Python-float paths (see ``update``).
_SMALL = 16
_PROBE = np.arange(1_704_067_200_000, 1_735_689_600_000, 3_600_000 + 7 * 60_000, dtype=np.int64)


@overload
def spread_mean(bars: np.void) -> float: ...
@overload
def spread_mean(bars: BarArray) -> npt.NDArray[np.float64]: ...
def spread_mean(bars: np.void | BarArray) -> float | npt.NDArray[np.float64]:
    """Mean spread of each bar; every stored bar has at least one tick."""
    if isinstance(bars, np.void):
        return float(bars["spread_sum"]) / int(bars["tick_count"])
    result: npt.NDArray[np.float64] = bars["spread_sum"] / bars["tick_count"]
    return result


def empty_bars(n: int = 0) -> BarArray:
    return np.zeros(n, dtype=BAR_DTYPE)


@dataclass(slots=True)
class _OpenBar:
    """The bar still receiving ticks, as Python scalars.

    The common batch (a poll's worth of ticks) lands entirely in the open bar; updating
    a handful of floats is several times cheaper than writing fields of a numpy record.
    Field order is that of :data:`BAR_DTYPE`.
    """

    start: int
    open: float
    high: float
    low: float
    close: float
    count: int
    smin: float
    smax: float
    ssum: float

    @classmethod
    def from_record(cls, record: np.void) -> _OpenBar:
        return cls(*record.tolist())

    def to_array(self) -> BarArray:
        bar = np.empty(1, dtype=BAR_DTYPE)
        bar[0] = astuple(self)
        return bar


def _running_sum(seed: float, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``seed + v0 + v1 + ...`` added strictly left to right, as one bar's ticks arrive.

    Not ``values.sum()``: numpy sums pairwise, so a bar split across batches would end
    with a sum that depends on where the batches were cut.
    """
    return np.add.accumulate(np.concatenate(([seed], values)))


class BarAggregator:
    """Bars of one symbol and one timeframe, fed batch by batch in time order.

    Late ticks: a tick whose bar starts before the open bar (or before a bar already
    seen earlier in the same batch) can no longer be placed without rewriting a closed
    bar, which subscribers may already have consumed. Such ticks are ignored and
    counted in :attr:`late_dropped`. A tick older than its predecessor but within the
    open bar is still merged into it: it changes no closed bar.

    Server time: ``zone`` places the boundaries of H1 and longer bars (None: UTC, while
    a detected zone is not known yet). :meth:`set_zone` applies from the next bar on; a
    tick at or after the open bar's start always joins it or a later bar, never counts
    as late because the boundaries moved.
    """

    def __init__(
        self,
        timeframe_ms: int = M1,
        history: int = DEFAULT_BAR_HISTORY,
        zone: ServerTimeZone | None = None,
    ) -> None:
        if timeframe_ms <= 0:
            raise ValueError(f"timeframe_ms must be > 0, got {timeframe_ms}")
        self._tf = int(timeframe_ms)
        self._closed = StructRing(BAR_DTYPE, history)
        self._open: _OpenBar | None = None
        self._late = 0
        self._zone = zone or UTC_ZONE
        #: Bars that start at plain multiples of the timeframe in UTC whatever the zone.
        self._plain = bool(np.array_equal(self._starts(_PROBE), _PROBE - _PROBE % self._tf))
        #: UTC end of the open bar (zone-dependent timeframes only).
        self._open_end = 0

    @property
    def zone(self) -> ServerTimeZone:
        return self._zone

    def set_zone(self, zone: ServerTimeZone | None) -> None:
        """Cut bars by ``zone`` from the next bar on (a zone detected or re-detected)."""
        self._zone = zone or UTC_ZONE
        self._plain = bool(np.array_equal(self._starts(_PROBE), _PROBE - _PROBE % self._tf))

    def _starts(self, time_msc: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return bar_starts_utc_ms(time_msc, self._tf, self._zone)

    def _opened(self, bar: _OpenBar) -> None:
        self._open = bar
        if not self._plain:
            self._open_end = bar_end_utc_ms(bar.start, self._tf, self._zone)

    @property
    def timeframe_ms(self) -> int:
        return self._tf

    @property
    def history(self) -> int:
        return self._closed.capacity

    @property
    def late_dropped(self) -> int:
        return self._late

    @property
    def closed_total(self) -> int:
        """Bars closed since creation, including those dropped from the history."""
        return self._closed.total_appended

    def closed(self) -> BarArray:
        """Closed bars still in the history, oldest first (a fresh array)."""
        return self._closed.snapshot()

    def current(self) -> np.void | None:
        """A copy of the bar still open, or ``None`` before the first tick."""
        return None if self._open is None else self._open.to_array()[0]

    def all(self) -> BarArray:
        """Closed bars followed by the open one."""
        closed = self._closed.snapshot()
        if self._open is None:
            return closed
        return np.concatenate((closed, self._open.to_array()))

    def prepend(self, older: BarAggregator) -> None:
        """Put the bars of ``older`` (all of them before this aggregator's first tick) in
        front of this one's, for history fetched after live capture began.

        A bar both hold (the seam) is merged: open from the older, close from this one,
        extremes and counts combined exactly; its ``spread_sum`` is the sum of the two
        partial sums. The history keeps the newest ``history`` bars.
        """
        if older.timeframe_ms != self._tf:
            raise ValueError(f"cannot join {older.timeframe_ms} ms bars to {self._tf} ms bars")
        old = older.all()
        if not len(old):
            return
        mine = self.all()
        if len(mine) and int(old[-1]["time_msc"]) == int(mine[0]["time_msc"]):
            seam = old[-1:].copy()
            first = mine[0]
            seam["high"] = max(float(seam["high"][0]), float(first["high"]))
            seam["low"] = min(float(seam["low"][0]), float(first["low"]))
            seam["close"] = first["close"]
            seam["tick_count"] += first["tick_count"]
            seam["spread_min"] = min(float(seam["spread_min"][0]), float(first["spread_min"]))
            seam["spread_max"] = max(float(seam["spread_max"][0]), float(first["spread_max"]))
            seam["spread_sum"] += first["spread_sum"]
            bars = np.concatenate((old[:-1], seam, mine[1:]))
        else:
            bars = np.concatenate((old, mine))
        self._closed = StructRing(BAR_DTYPE, self._closed.capacity)
        self._closed.append(bars[:-1])
        self._opened(_OpenBar.from_record(bars[-1]))
        self._late += older.late_dropped

    def update(self, ticks: TickArray) -> BarArray:
        """Merge a batch; return the bars it closed (oldest first, possibly empty).

        Vectorised per batch: a few numpy reductions whatever the number of ticks, and
        segment reductions (``reduceat``) when the batch spans several bars.
        """
        n = len(ticks)
        if n == 0:
            return empty_bars()
        time_msc = ticks["time_msc"]
        prev = self._open
        if self._plain and n <= _SMALL:
            # A few ticks (low rates): one bar when the oldest and newest share it, found
            # without numpy's per-call overhead (the bar start is monotone in the time).
            times = time_msc.tolist()
            tf = self._tf
            lo, hi = min(times), max(times)
            start = lo - lo % tf
            if start == hi - hi % tf and (prev is None or start >= prev.start):
                return self._update_one_bar(ticks, start)
        if self._plain:
            starts = time_msc - np.mod(time_msc, self._tf)  # floored, also for negative times
        else:
            if (
                prev is not None
                and prev.start <= time_msc.min()
                and time_msc.max() < self._open_end
            ):
                return self._update_one_bar(ticks, prev.start)
            starts = self._starts(time_msc)
            if prev is not None:  # the zone changed under the open bar: it still holds
                starts = np.where(
                    (starts < prev.start) & (time_msc >= prev.start), prev.start, starts
                )
        first = int(starts[0])
        if (prev is None or first >= prev.start) and (starts == first).all():
            return self._update_one_bar(ticks, first)

        floor = np.maximum.accumulate(starts)
        if prev is not None:
            np.maximum(floor, prev.start, out=floor)
        keep = starts == floor
        if not keep.all():
            self._late += n - int(np.count_nonzero(keep))
            ticks = ticks[keep]
            starts = starts[keep]
            if len(ticks) == 0:
                return empty_bars()
            first = int(starts[0])
            if (prev is None or first >= prev.start) and (starts == first).all():
                return self._update_one_bar(ticks, first)

        bars = self._segment(ticks, starts)
        if prev is not None and prev.start == first:
            _merge_into_first(bars, prev)
            newly_closed = bars[:-1]
        elif prev is not None:
            newly_closed = np.concatenate((prev.to_array(), bars[:-1]))
        else:
            newly_closed = bars[:-1]
        self._closed.append(newly_closed)
        self._opened(_OpenBar.from_record(bars[-1]))
        return newly_closed

    def _update_one_bar(self, ticks: TickArray, start: int) -> BarArray:
        """The common case: every tick of the batch falls in one bar, open or new."""
        bar = self._open
        if (
            bar is not None
            and bar.start == start
            and len(ticks) <= _SMALL
            and self._update_open_bar_small(ticks, bar)
        ):
            return empty_bars()
        bid = ticks["bid"]
        spread = ticks["ask"] - bid
        high = float(bid.max())
        low = float(bid.min())
        smin = float(spread.min())
        smax = float(spread.max())
        if bar is not None and bar.start == start:
            bar.high = max(bar.high, high)
            bar.low = min(bar.low, low)
            bar.close = float(bid[-1])
            bar.count += len(ticks)
            bar.smin = min(bar.smin, smin)
            bar.smax = max(bar.smax, smax)
            bar.ssum = float(_running_sum(bar.ssum, spread)[-1])
            return empty_bars()
        newly_closed = empty_bars() if bar is None else bar.to_array()
        self._closed.append(newly_closed)
        self._opened(
            _OpenBar(
                start,
                float(bid[0]),
                high,
                low,
                float(bid[-1]),
                len(ticks),
                smin,
                smax,
                float(_running_sum(0.0, spread)[-1]),
            )
        )
        return newly_closed

    @staticmethod
    def _update_open_bar_small(ticks: TickArray, bar: _OpenBar) -> bool:
        """Merge a few ticks into the open bar with Python floats; False (nothing done)
        when a NaN or infinity is among them (numpy's rules then apply, in the caller).

        Bit for bit what the numpy path gives: the same float64 subtractions, min/max of
        finite values, and the spread sum added left to right as ``_running_sum`` does.
        At low rates (batches of a few ticks) numpy's per-call overhead was most of the
        collector's time.
        """
        bids = ticks["bid"].tolist()
        spreads = [a - b for a, b in zip(ticks["ask"].tolist(), bids, strict=True)]
        if not math.isfinite(sum(bids) + sum(spreads)):
            return False
        bar.high = max(bar.high, *bids)
        bar.low = min(bar.low, *bids)
        bar.close = bids[-1]
        bar.count += len(bids)
        bar.smin = min(bar.smin, *spreads)
        bar.smax = max(bar.smax, *spreads)
        ssum = bar.ssum
        for spread in spreads:
            ssum += spread
        bar.ssum = ssum
        return True

    def _segment(self, ticks: TickArray, starts: npt.NDArray[np.int64]) -> BarArray:
        """One bar per run of equal ``starts``; ``spread_sum`` continues the open bar."""
        n = len(ticks)
        bid = np.ascontiguousarray(ticks["bid"])
        spread = ticks["ask"] - bid
        change = np.flatnonzero(starts[1:] != starts[:-1]) + 1
        first = np.concatenate(([0], change))
        counts = np.diff(np.concatenate((first, [n])))
        k = len(first)

        bars = np.empty(k, dtype=BAR_DTYPE)
        bars["time_msc"] = starts[first]
        bars["open"] = bid[first]
        bars["high"] = np.maximum.reduceat(bid, first)
        bars["low"] = np.minimum.reduceat(bid, first)
        bars["close"] = bid[first + counts - 1]
        bars["tick_count"] = counts
        bars["spread_min"] = np.minimum.reduceat(spread, first)
        bars["spread_max"] = np.maximum.reduceat(spread, first)

        # bincount adds its weights one by one in order, unlike np.add.reduceat (pairwise),
        # so each sum is a left-to-right running sum, seeded for segment 0 with the open
        # bar's sum when the batch continues it: see _running_sum.
        segment = np.repeat(np.arange(k), counts)
        prev = self._open
        if prev is not None and prev.start == starts[0]:
            segment = np.concatenate(([0], segment))
            spread = np.concatenate(([prev.ssum], spread))
        bars["spread_sum"] = np.bincount(segment, weights=spread, minlength=k)
        return bars


def _merge_into_first(bars: BarArray, prev: _OpenBar) -> None:
    """Fold the open bar ``prev`` into ``bars[0]`` (same start); spread_sum already is."""
    first = bars[0]
    first["open"] = prev.open
    first["high"] = max(float(first["high"]), prev.high)
    first["low"] = min(float(first["low"]), prev.low)
    first["tick_count"] = int(first["tick_count"]) + prev.count
    first["spread_min"] = min(float(first["spread_min"]), prev.smin)
    first["spread_max"] = max(float(first["spread_max"]), prev.smax)


def bars_from_rates(rates: npt.NDArray[np.void], point: float) -> BarArray:
    """A terminal's bars (``RATES_DTYPE`` with ``time`` already in UTC seconds) as
    collector bars. Rates carry one spread (the bar's smallest, in points), so
    ``spread_min``/``spread_max`` are that spread and ``spread_sum`` makes it the mean."""
    out = empty_bars(len(rates))
    out["time_msc"] = rates["time"].astype(np.int64) * 1000
    for name in ("open", "high", "low", "close"):
        out[name] = rates[name]
    count = rates["tick_volume"].astype(np.int64)
    spread = rates["spread"].astype(np.float64) * point
    out["tick_count"] = count
    out["spread_min"] = spread
    out["spread_max"] = spread
    out["spread_sum"] = spread * count
    return out


def resample_bars(bars: BarArray, tf_ms: int, zone: ServerTimeZone | None) -> BarArray:
    """Shorter bars (UTC starts, oldest first) folded into ``tf_ms`` bars opening at the
    server's boundaries (:func:`app.timeframes.bar_starts_utc_ms`): exact, since every
    field is a first, last, min, max or sum and every longer boundary is a shorter one's
    (offsets are whole quarter hours)."""
    n = len(bars)
    if n == 0:
        return empty_bars()
    starts = bar_starts_utc_ms(bars["time_msc"], tf_ms, zone or UTC_ZONE)
    first = np.flatnonzero(np.concatenate(([True], starts[1:] != starts[:-1])))
    last = np.concatenate((first[1:], [n])) - 1
    out = empty_bars(len(first))
    out["time_msc"] = starts[first]
    out["open"] = bars["open"][first]
    out["high"] = np.maximum.reduceat(bars["high"], first)
    out["low"] = np.minimum.reduceat(bars["low"], first)
    out["close"] = bars["close"][last]
    out["tick_count"] = np.add.reduceat(bars["tick_count"], first)
    out["spread_min"] = np.minimum.reduceat(bars["spread_min"], first)
    out["spread_max"] = np.maximum.reduceat(bars["spread_max"], first)
    out["spread_sum"] = np.add.reduceat(bars["spread_sum"], first)
    return out
