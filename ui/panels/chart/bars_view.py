"""The chart's bar timeframes (M1 … D1): candles from the session's ChartSeries, MT5-like.

* **At start and after a restart** the series arrives with history from the terminal
  (``loading`` until then); while a new capture's first answer is pending, the bars
  already drawn for the same symbol and timeframe stay (Ctrl+R keeps the chart filled).
* **Following** keeps the newest bar at the right with :data:`DEFAULT_BARS` bars in view
  (about the last screen; 100 M1 bars is more than the last hour).
* **Lazy history**: when the view's left edge comes within :data:`PREFETCH_BARS` bars of
  the oldest bar held, the panel asks the session for the page before it
  (``request_older``); the status says "loading history…" meanwhile. Nothing blocks:
  the request runs in the terminal's helper process.
* **Data window**: the bar under the mouse, its time in the symbol's server time.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from app.history.chart_history import ChartSeries
from app.servertime import ServerTimeZone, format_offset
from app.timeframes import TIMEFRAMES
from ui.panels._format import format_price, server_datetime
from ui.panels.chart.candles import CandleItem
from ui.panels.chart.crosshair import QuoteLines

#: Bars in view when following (and after a timeframe or symbol change).
DEFAULT_BARS = 100
#: Ask for older bars when the view's left edge is this close (in bars) to the oldest.
PREFETCH_BARS = 20
#: Room right of the newest bar while following, in bars.
RIGHT_BARS = 3


class BarsView:
    """Candles and bid/ask lines of one (symbol, timeframe); fed by the panel."""

    def __init__(self, plot: pg.PlotWidget, candles: CandleItem) -> None:
        self.candles = candles
        self.quote = QuoteLines(plot)
        self.key: tuple[str, str] = ("", "")
        self.zone: ServerTimeZone | None = None
        self.loading = False
        self.error = ""
        self.complete = False
        #: Requests for older bars made (for tests and the benchmark).
        self.requests = 0

    @property
    def period_s(self) -> float:
        return self.candles.period_s

    def show(self, series: ChartSeries, digits: int) -> bool:
        """Draw ``series``; True when the candles changed."""
        key = (series.symbol, series.timeframe)
        pending = series.loading and not len(series.history)
        if pending and key == self.key and len(self.candles):
            # A new capture's history is on its way: keep what is drawn meanwhile.
            self.loading = True
            return False
        self.key = key
        self.zone = series.zone
        self.loading, self.error, self.complete = series.loading, series.error, series.complete
        period = TIMEFRAMES[series.timeframe] / 1000
        history_key = (id(series.history), series.history_version, key)
        changed = self.candles.set_bars(series.history, series.recent, period, history_key)
        self.quote.set_quote(series.bid, series.ask, digits)
        return changed

    def follow_range(self, visible_bars: float) -> tuple[float, float] | None:
        newest = self.candles.newest_s
        if newest is None:
            return None
        right = newest + self.period_s * (1 + RIGHT_BARS)
        return right - self.period_s * visible_bars, right

    def wants_older(self, left: float) -> int | None:
        """The oldest bar's open (UTC ms) when the view nears it and more may exist."""
        oldest = self.candles.oldest_s
        if oldest is None or self.loading or self.complete:
            return None
        if left > oldest + PREFETCH_BARS * self.period_s:
            return None
        self.requests += 1
        return round(oldest * 1000)

    def describe(self, x: float, digits: int) -> str | None:
        """The data window's text for the bar under ``x``."""
        bar = self.candles.bar_at(x)
        if bar is None:
            return None
        return describe_bar(bar, self.key[1], self.zone, digits)


def describe_bar(bar: np.void, timeframe: str, zone: ServerTimeZone | None, digits: int) -> str:
    """MT5's data window for one bar: server time, OHLC, spread and tick volume."""
    msc = int(bar["time_msc"])
    when = server_datetime(msc, zone).strftime("%Y.%m.%d %H:%M")
    where = f"{zone.key}, {format_offset(zone.offset_s(msc // 1000))}" if zone else "UTC"
    count = int(bar["tick_count"])
    point = 10.0**-digits
    spread = float(bar["spread_sum"]) / count / point if count else 0.0
    rows = [
        ("Time", f"{when}"),
        ("Open", format_price(float(bar["open"]), digits)),
        ("High", format_price(float(bar["high"]), digits)),
        ("Low", format_price(float(bar["low"]), digits)),
        ("Close", format_price(float(bar["close"]), digits)),
        ("Spread", f"{spread:.0f}"),
        ("Tick volume", f"{count}"),
    ]
    body = "".join(f"<tr><td>{k}</td><td align='right'>&nbsp;{v}</td></tr>" for k, v in rows)
    return f"<b>{timeframe}</b> <small>server time ({where})</small><table>{body}</table>"
