"""``copy_rates_from`` / ``copy_rates_from_pos`` / ``copy_rates_range`` of the simulated
and replay terminals: the terminal's history of bars, as the ``MetaTrader5`` module
answers it (``RATES_DTYPE`` rows, ``time`` in **server time** seconds, bars opening at
the server's boundaries of :mod:`app.timeframes`, ``None`` + ``last_error`` on bad input).

A mixin (:class:`SimRates`), a base class of :class:`~app.terminal.simulated.SimulatedTerminal`,
so the terminal's module stays the size it is. Where the bars come from:

* **Recent bars are exact**: a bar opening within :data:`EXACT_SPAN_MS` (the last 3
  whole hours and the current one; for a symbol so fast that this exceeds
  :data:`EXACT_TICKS`, fewer whole minutes, or none under 5) is the aggregation of the
  terminal's own ticks (the ones ``copy_ticks_range`` serves), with the export's
  rules (``app/terminal/export_files/rates.py``: bid prices, ``tick_volume`` counts
  ticks, ``spread`` is the bar's smallest spread in points). M1 bars are built per
  UTC hour from ticks and cached (a pure function of time), longer timeframes are
  folded from them, so a request for H1 over the last day generates each hour once.
* **Older bars are sampled**: the mid-price path of the market (a pure function of
  time, app/terminal/market.py) is read every ``step = max(5 s, min(tf, 1 day) / 12)``
  on an absolute grid (12 samples per bar up to D1, every 5 s for M1); ``bid = mid −
  spread/2`` rounded to points gives open (first sample), high, low, close (last
  sample); ``tick_volume`` is the expected count (the rate × 0.9 × open seconds) and
  ``spread`` the profile's. Closed market hours (the terminal's sessions) hold no
  sample, so a weekend has no bar. A year of D1 or 100k M1 bars answer in well under
  half a second. A bar across the line (today's D1 and H4) is its sampled part and its
  exact part folded together (open sampled, close exact, high/low of both). The line
  moves with the clock: an older bar may change a little when asked again later.
* The replay terminal has every tick of its files in memory: all its bars are exact
  (:meth:`SimRates._exact_since_ms` is its first tick).

History depth is :data:`HISTORY_SPAN_MS` (two years) before now, at most
:data:`MAX_BARS` bars per answer (``terminal_info().maxbars``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Final

import numpy as np

from app.terminal import constants as c
from app.terminal import trade_constants as tc
from app.terminal.arguments import epoch_seconds
from app.terminal.export_files.rates import rates_from_ticks, rates_resample
from app.terminal.market import _noise  # the mid path's one definition
from app.terminal.trade_types import RATES_DTYPE
from app.timeframes import D1, MN1, W1, period_starts_server_ms

if TYPE_CHECKING:
    from app.servertime import ServerTimeZone
    from app.terminal.api import DateLike, RatesArray
    from app.terminal.market import Market
    from app.ticks import TickArray

__all__ = ["EXACT_SPAN_MS", "HISTORY_SPAN_MS", "MAX_BARS", "TIMEFRAME_MS", "SimRates"]

_MIN: Final = 60_000
_HOUR: Final = 60 * _MIN
#: The module's timeframe constants and their length (W1/MN1 only name calendar periods).
TIMEFRAME_MS: Final[dict[int, int]] = {
    tc.TIMEFRAME_M1: _MIN,
    tc.TIMEFRAME_M2: 2 * _MIN,
    tc.TIMEFRAME_M3: 3 * _MIN,
    tc.TIMEFRAME_M4: 4 * _MIN,
    tc.TIMEFRAME_M5: 5 * _MIN,
    tc.TIMEFRAME_M6: 6 * _MIN,
    tc.TIMEFRAME_M10: 10 * _MIN,
    tc.TIMEFRAME_M12: 12 * _MIN,
    tc.TIMEFRAME_M15: 15 * _MIN,
    tc.TIMEFRAME_M20: 20 * _MIN,
    tc.TIMEFRAME_M30: 30 * _MIN,
    tc.TIMEFRAME_H1: _HOUR,
    tc.TIMEFRAME_H2: 2 * _HOUR,
    tc.TIMEFRAME_H3: 3 * _HOUR,
    tc.TIMEFRAME_H4: 4 * _HOUR,
    tc.TIMEFRAME_H6: 6 * _HOUR,
    tc.TIMEFRAME_H8: 8 * _HOUR,
    tc.TIMEFRAME_H12: 12 * _HOUR,
    tc.TIMEFRAME_D1: D1,
    tc.TIMEFRAME_W1: W1,
    tc.TIMEFRAME_MN1: MN1,
}
#: Bars opening this recently are aggregated from ticks (3 hours: ~0.2 s of ticks
#: generation for a 20 ticks/s symbol, done once: hours are cached).
EXACT_SPAN_MS: Final = 3 * _HOUR
#: ... unless that is more ticks than this (then fewer whole minutes).
EXACT_TICKS: Final = 250_000
_MIN_EXACT_MINUTES: Final = 5
#: How far back the terminal's history reaches.
HISTORY_SPAN_MS: Final = 730 * D1
#: Bars per answer at most (the terminal's ``maxbars``).
MAX_BARS: Final = 100_000
SAMPLES_PER_BAR: Final = 12
_MIN_STEP_MS: Final = 5_000
#: Share of generated quotes that are sent (unchanged quotes are dropped, ~10 %).
_SENT: Final = 0.9
#: Hours of M1 bars kept per terminal (two days of every captured symbol).
_HOURS_CACHED: Final = 512


def _empty() -> RatesArray:
    return np.zeros(0, dtype=RATES_DTYPE)


def _longest_ms(tf_ms: int) -> int:
    """An upper bound of one bar's length in UTC (a DST day is 25 h, a month 31 days)."""
    return 32 * D1 if tf_ms == MN1 else tf_ms + _HOUR if tf_ms >= D1 else tf_ms


class SimRates:
    """The rates calls over the terminal's market; see the module doc."""

    if TYPE_CHECKING:
        server_time_zone: ServerTimeZone
        market: Market
        _selected: dict[str, bool]

        def _ready(self, call: str) -> bool: ...
        def _shown(self, symbol: str) -> bool: ...
        def _fail(self, code: int) -> None: ...
        def _ok(self) -> None: ...
        def _live_until(self) -> int: ...

    # --- the module's calls ---------------------------------------------------------

    def copy_rates_from(
        self, symbol: str, timeframe: int, date_from: DateLike, count: int
    ) -> RatesArray | None:
        """The ``count`` newest bars opening at or before ``date_from`` (server time)."""
        tf = self._rates_args("copy_rates_from", symbol, timeframe, count)
        at = epoch_seconds(date_from)
        if tf is None or at is None:
            if tf is not None:
                self._fail(c.RES_E_INVALID_PARAMS)
            return None
        until = self.server_time_zone.to_utc_s(at, later=True) * 1000 + 1
        return self._newest(symbol, tf, min(until, self._live_until()), 0, int(count))

    def copy_rates_from_pos(
        self, symbol: str, timeframe: int, start_pos: int, count: int
    ) -> RatesArray | None:
        """Bars ``start_pos`` … ``start_pos + count - 1`` counted back from the current
        one (0), oldest first."""
        tf = self._rates_args("copy_rates_from_pos", symbol, timeframe, count)
        if tf is None:
            return None
        if not isinstance(start_pos, int | np.integer) or start_pos < 0:
            self._fail(c.RES_E_INVALID_PARAMS)
            return None
        return self._newest(symbol, tf, self._live_until(), int(start_pos), int(count))

    def copy_rates_range(
        self, symbol: str, timeframe: int, date_from: DateLike, date_to: DateLike
    ) -> RatesArray | None:
        """Bars opening within ``[date_from, date_to]`` (server seconds, both inclusive)."""
        tf = self._rates_args("copy_rates_range", symbol, timeframe, 1)
        lo, hi = epoch_seconds(date_from), epoch_seconds(date_to)
        if tf is None or lo is None or hi is None:
            if tf is not None:
                self._fail(c.RES_E_INVALID_PARAMS)
            return None
        zone = self.server_time_zone
        from_ms = zone.to_utc_s(lo, later=False) * 1000
        until = min(zone.to_utc_s(hi, later=True) * 1000 + 1, self._live_until())
        bars = self._rates_between(symbol, tf, max(from_ms, self._floor_ms()), until)
        self._ok()
        return bars[-MAX_BARS:]

    # --- arguments ------------------------------------------------------------------

    def _rates_args(self, call: str, symbol: str, timeframe: int, count: int) -> int | None:
        """The timeframe's length, or None with ``last_error`` set (like the module)."""
        if not self._ready(call):
            return None
        valid_count = isinstance(count, int | np.integer) and not isinstance(count, bool)
        tf = TIMEFRAME_MS.get(timeframe) if isinstance(timeframe, int) else None
        if symbol not in self._selected or tf is None or not valid_count or count <= 0:
            self._fail(c.RES_E_INVALID_PARAMS)
            return None
        if not self._shown(symbol):
            return None
        return tf

    def _floor_ms(self) -> int:
        return self._live_until() - HISTORY_SPAN_MS

    def _newest(
        self, symbol: str, tf: int, until_ms: int, skip: int, count: int
    ) -> RatesArray | None:
        """The newest ``skip + count`` bars opening before ``until_ms``, minus the
        ``skip`` newest: looked for in growing spans back to the history's start."""
        want = min(skip + count, MAX_BARS + skip)
        floor = self._floor_ms()
        span = max(want * _longest_ms(tf) * 3 // 2, 2 * _longest_ms(tf))
        while True:
            from_ms = max(floor, until_ms - span)
            bars = self._rates_between(symbol, tf, from_ms, until_ms)
            if len(bars) > want or from_ms <= floor:  # one more: the first may be cut
                break
            span *= 2
        if from_ms > floor:
            bars = bars[1:]
        end = len(bars) - skip
        self._ok()
        return bars[max(0, end - min(count, MAX_BARS)) : max(0, end)].copy()

    # --- where bars come from -------------------------------------------------------

    def _exact_since_ms(self, symbol: str, live_until: int) -> int:
        """Bars (or the parts of bars) from this UTC instant on are built from ticks:
        the last :data:`EXACT_SPAN_MS` (from a whole hour), or for a fast symbol the
        whole minutes that hold about :data:`EXACT_TICKS` ticks; none when that is
        under 5 minutes (a benchmark's thousands of ticks a second: generating them
        would take the helper process seconds of CPU per request)."""
        rate = max(self.market.rate(symbol), 1e-9)
        if rate * EXACT_SPAN_MS / 1000 <= EXACT_TICKS:
            return live_until - live_until % _HOUR - EXACT_SPAN_MS
        minutes = int(EXACT_TICKS / rate // 60)
        if minutes < _MIN_EXACT_MINUTES:  # a benchmark's firehose: all sampled, cheap
            return live_until
        return live_until - live_until % _MIN - minutes * _MIN

    def _rate_ticks(self, symbol: str, from_ms: int, until_ms: int) -> TickArray:
        """Every tick in ``[from_ms, until_ms)`` (UTC bounds), stamped in server time."""
        ticks = self.market.ticks_range(symbol, from_ms, until_ms)
        server = self.server_time_zone.to_server_ms(ticks["time_msc"])
        ticks["time_msc"] = server
        ticks["time"] = server // 1000
        return ticks

    def _rates_between(self, symbol: str, tf: int, from_ms: int, until_ms: int) -> RatesArray:
        """Bars opening in ``[from_ms, until_ms)`` (UTC), complete up to the terminal's
        now, oldest first, server-time ``time``. A bar across the exact line is its
        sampled part and its exact part folded together."""
        if until_ms <= from_ms:
            return _empty()
        zone = self.server_time_zone
        live = self._live_until()
        exact_since = self._exact_since_ms(symbol, live)
        sampled = _empty()
        if from_ms < exact_since:
            sampled = self._sampled(symbol, tf, from_ms, min(until_ms, exact_since), exact_since)
        exact = _empty()
        if until_ms > exact_since - _longest_ms(tf):
            m1 = self._m1_exact(symbol, exact_since, live)
            exact = rates_resample(m1, tf) if tf != _MIN else m1
            lo, hi = zone.to_server_ms(np.array([from_ms, until_ms], np.int64))
            t = exact["time"].astype(np.int64) * 1000
            exact = exact[(t >= lo) & (t < hi)]
        if len(sampled) and len(exact) and sampled["time"][-1] == exact["time"][0]:
            both = np.concatenate((sampled[-1:], exact[:1]))
            exact = rates_resample(both, tf)
            sampled = sampled[:-1]
        if not len(sampled):
            return exact
        return np.concatenate((sampled, exact)) if len(exact) else sampled

    def _m1_exact(self, symbol: str, from_ms: int, live: int) -> RatesArray:
        """M1 bars from ticks, hour by hour from ``from_ms`` (a whole minute) to now;
        complete hours are cached (pure functions of time)."""
        cache: OrderedDict[tuple[str, int], RatesArray]
        cache = self.__dict__.setdefault("_rates_m1_hours", OrderedDict())
        point = self._rate_point(symbol)
        parts: list[RatesArray] = []
        for hour in range(from_ms, live, _HOUR):
            key = (symbol, hour)
            bars = cache.get(key)
            if bars is None:
                ticks = self._rate_ticks(symbol, hour, min(hour + _HOUR, live))
                bars = rates_from_ticks(ticks, _MIN, point)
                if hour + _HOUR <= live:
                    cache[key] = bars
                    if len(cache) > _HOURS_CACHED:
                        cache.popitem(last=False)
            parts.append(bars)
        # An hour's last M1 bar never continues into the next hour: no merge needed.
        return np.concatenate(parts) if parts else _empty()

    def _rate_point(self, symbol: str) -> float:
        """The price step spreads are counted in."""
        return self.market.profile(symbol).point

    def _sampled(
        self, symbol: str, tf: int, from_ms: int, until_ms: int, exact_since: int
    ) -> RatesArray:
        """Bars opening in ``[from_ms, until_ms)`` from the mid path sampled on a grid
        (up to ``exact_since``, where ticks take over)."""
        zone = self.server_time_zone
        profile = self.market.profile(symbol)
        gen = self.market._gen(symbol)
        if gen.rate == 0:  # a market that never ticks (the replay's) has no bars
            return _empty()
        step = max(_MIN_STEP_MS, min(tf, D1) // SAMPLES_PER_BAR)
        # Bars opening in the span need samples from its start to their own end.
        end = min(until_ms + _longest_ms(tf), exact_since)
        t = np.arange(from_ms + (-from_ms) % step, end, step, dtype=np.int64)
        hours = getattr(self.market, "hours", {}).get(symbol)
        if hours is not None and len(t):
            t = t[hours.open_mask(t)]
        if not len(t):
            return _empty()
        mid = gen._price_pts * np.exp(profile.volatility * _noise(t, gen._keys))
        bid = np.round((np.rint(mid - profile.spread_points / 2)) * profile.point, profile.digits)
        starts = period_starts_server_ms(zone.to_server_ms(t), tf)
        first = np.flatnonzero(np.concatenate(([True], starts[1:] != starts[:-1])))
        last = np.concatenate((first[1:], [len(t)])) - 1
        n = last - first + 1
        out = np.zeros(len(first), dtype=RATES_DTYPE)
        out["time"] = starts[first] // 1000
        out["open"] = bid[first]
        out["high"] = np.maximum.reduceat(bid, first)
        out["low"] = np.minimum.reduceat(bid, first)
        out["close"] = bid[last]
        expected = np.maximum(1, np.rint(n * step / 1000 * gen.rate * _SENT))
        out["tick_volume"] = expected.astype(np.uint64)
        out["spread"] = max(1, round(profile.spread_points))
        lo, hi = zone.to_server_ms(np.array([from_ms, until_ms], np.int64))
        opened = out["time"].astype(np.int64) * 1000
        kept: RatesArray = out[(opened >= lo) & (opened < hi)]
        return kept


def timeframe_of_ms(tf_ms: int) -> int:
    """The module's constant for a timeframe length (``60_000`` → ``TIMEFRAME_M1``)."""
    for code, ms in TIMEFRAME_MS.items():
        if ms == tf_ms:
            return code
    raise ValueError(f"no MT5 timeframe of {tf_ms} ms")
