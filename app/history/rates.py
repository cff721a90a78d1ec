"""One request for a terminal's bars, in UTC: what the chart's history service asks a
terminal (in the backfill's helper process, or in-process in tests and tools).

The terminal answers ``copy_rates_from`` in server time (``RATES_DTYPE``, ``time`` in
server seconds); :class:`~app.connector.server_clock.UtcTerminal` reads it back to UTC,
and :func:`~app.collector.bars.bars_from_rates` makes the rows collector bars, so the
chart joins them with the live bars of the collector without another conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.collector.bars import BarArray, bars_from_rates
from app.connector.server_clock import UtcTerminal
from app.terminal.sim_rates import timeframe_of_ms

__all__ = ["BarsAnswer", "BarsSource", "HistoryBarsError", "copy_bars"]


class HistoryBarsError(RuntimeError):
    """The terminal refused a bars request; the text is its ``last_error``."""

    def __init__(self, text: str, code: int = 0) -> None:
        super().__init__(text)
        self.code = code

    def __reduce__(self) -> tuple[type[HistoryBarsError], tuple[str, int]]:
        return (HistoryBarsError, (str(self), self.code))


@dataclass(frozen=True, slots=True)
class BarsAnswer:
    """Bars (UTC starts, oldest first) and the instant up to which they hold every tick."""

    bars: BarArray
    #: The terminal's history was read at this UTC instant (ms): later ticks are not in
    #: ``bars``; the chart takes them from the live capture.
    until_ms: int


class BarsSource(Protocol):
    """Where the chart reads history: one terminal."""

    async def bars(self, symbol: str, tf_ms: int, before_s: int, count: int) -> BarsAnswer: ...

    async def close(self) -> None: ...


def copy_bars(
    terminal: UtcTerminal, symbol: str, tf_ms: int, before_s: int, count: int, *, now_ms: int
) -> BarsAnswer:
    """The ``count`` bars of ``symbol`` opening at or before UTC second ``before_s``."""
    info = terminal.api.symbol_info(symbol)
    if info is None:
        code, text = terminal.api.last_error()
        raise HistoryBarsError(f"symbol_info {symbol}: MT5 error {code}: {text}", code)
    rates = terminal.copy_rates_from(symbol, timeframe_of_ms(tf_ms), before_s, count)
    if rates is None:
        code, text = terminal.api.last_error()
        raise HistoryBarsError(f"copy_rates_from {symbol}: MT5 error {code}: {text}", code)
    bars = bars_from_rates(rates, float(info.point) or 1e-5)
    order = np.argsort(bars["time_msc"], kind="stable")  # the autumn hour read in UTC
    return BarsAnswer(bars[order], now_ms)
