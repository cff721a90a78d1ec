"""The chart's history service: terminal bars joined with live bars, off the loop.

Truth: the simulated market's own ticks (a pure function of time), aggregated here with
numpy by UTC floor (M1, H1: ny-close offsets are whole hours), and the last bid before
server midnight read from those ticks. A ManualClock holds "now" so the terminal, the
live capture and the expectations agree to the millisecond.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from app.clock import ManualClock
from app.collector import Collector
from app.connector.history_sources import ApiHistory
from app.daystats import DayBook
from app.history.chart_history import ChartHistory
from app.servertime import NY_CLOSE
from app.sessions import MarketHours
from app.terminal.simulated import SimulatedTerminal
from app.terminal.spec import TerminalSpec
from app.ticks import TickBatch
from app.zones import ServerZones
from tests.conftest import wait_until

SYMBOL = "EURUSD"
#: Wednesday 2026-01-14 00:40 UTC = 02:40 server (GMT+2): today is 2 h 40 min old.
NOW = int(dt.datetime(2026, 1, 14, 0, 40, 17, tzinfo=dt.UTC).timestamp())


class Rig:
    """A terminal, a live capture fed from its market, and the service over both."""

    def __init__(self, page: int = 120) -> None:
        self.clock = ManualClock(NOW)
        self.term = SimulatedTerminal(3, clock=self.clock)
        assert self.term.initialize()
        self.zones = ServerZones([("sim", NY_CLOSE, [SYMBOL])])
        self.collector = Collector(200_000, zones=self.zones)
        self.days = DayBook(self.collector, self.zones.zone, lambda: self.zones.version)
        self.collector.subscribe(self.days.on_batch, name="days")
        spec = TerminalSpec(name="sim")
        self.fetches = 0

        def source(_spec: TerminalSpec) -> ApiHistory:
            self.fetches += 1
            return ApiHistory(self.term, NY_CLOSE, self.clock)

        self.chart = ChartHistory(
            self.collector,
            self.zones,
            MarketHours(enabled=False),
            lambda s: spec if s == SYMBOL else None,
            source,
            clock=self.clock,
            page=page,
        )
        #: Live capture begins 20 s before the history is read.
        self.live_from = (NOW - 20) * 1000
        self.fed_to = self.live_from

    def feed(self, seconds: float) -> None:
        """Advance the clock and capture the ticks of that time, in poll-sized batches."""
        self.clock.advance(seconds)
        until = int(self.clock.time() * 1000)
        for a in range(self.fed_to, until, 250):
            ticks = self.term.market.ticks_range(SYMBOL, a, min(a + 250, until))
            if len(ticks):
                self.collector.ingest(TickBatch(SYMBOL, ticks))
        self.fed_to = until

    def truth(self, from_ms: int, tf_ms: int) -> np.ndarray:
        ticks = self.term.market.ticks_range(SYMBOL, from_ms, int(self.clock.time() * 1000))
        start = ticks["time_msc"] - ticks["time_msc"] % tf_ms
        keys, first = np.unique(start, return_index=True)
        last = np.append(first[1:], len(ticks)) - 1
        bid = ticks["bid"]
        return np.array(
            [
                (k, bid[f], bid[f : la + 1].max(), bid[f : la + 1].min(), bid[la], la - f + 1)
                for k, f, la in zip(keys, first, last, strict=True)
            ],
            dtype=[("t", "i8"), ("o", "f8"), ("h", "f8"), ("l", "f8"), ("c", "f8"), ("n", "i8")],
        )


def assert_bars_equal(bars: np.ndarray, truth: np.ndarray) -> None:
    assert np.array_equal(bars["time_msc"], truth["t"])
    for mine, theirs in (("open", "o"), ("high", "h"), ("low", "l"), ("close", "c")):
        assert np.array_equal(bars[mine], truth[theirs]), mine
    assert np.array_equal(bars["tick_count"], truth["n"])


async def test_history_joins_live_bars_without_gap_or_duplicate() -> None:
    rig = Rig()
    rig.feed(0)  # capture has run for 20 s
    await rig.chart.start([])
    try:
        first = rig.chart.series(SYMBOL, "M1")
        assert first.loading  # asked now, answered off the loop
        await wait_until(lambda: not rig.chart.series(SYMBOL, "M1").loading, 30, "M1 history")
        rig.feed(150)  # live capture goes on, past the history's end and two minutes more
        series = rig.chart.series(SYMBOL, "M1")
        assert series.error == ""
        bars = series.bars
        assert len(bars) == 120 + 2  # the page (its newest: the seam bar), two live minutes
        assert np.all(np.diff(bars["time_msc"]) == 60_000)  # no gap, no duplicate
        # Bars of the last three hours are the terminal's ticks aggregated, seam included.
        recent = bars[bars["time_msc"] >= (NOW - 2 * 3600) * 1000]
        assert_bars_equal(recent, rig.truth(int(recent["time_msc"][0]), 60_000))
        assert series.bid == float(rig.collector.stats.symbols[SYMBOL].last_bid)

        # H1: the same join at the hour; today's hours from ticks.
        await wait_until(lambda: not rig.chart.series(SYMBOL, "H1").loading, 30, "H1 history")
        rig.feed(30)
        h1 = rig.chart.series(SYMBOL, "H1").bars
        assert np.all(np.diff(h1["time_msc"]) == 3_600_000)
        tail = h1[h1["time_msc"] >= (NOW // 3600 - 2) * 3_600_000]
        assert_bars_equal(tail, rig.truth(int(tail["time_msc"][0]), 3_600_000))

        # Older bars on request: the count grows, the oldest time moves back.
        oldest = series.oldest_ms
        assert oldest is not None
        rig.chart.request_older(SYMBOL, "M1", oldest)
        assert rig.chart.series(SYMBOL, "M1").loading
        await wait_until(lambda: not rig.chart.series(SYMBOL, "M1").loading, 30, "older M1")
        older = rig.chart.series(SYMBOL, "M1")
        assert len(older.bars) == len(bars) + 120 + 1  # a page more; a minute fed since
        assert older.oldest_ms == oldest - 120 * 60_000
        assert older.history_version > series.history_version
        assert np.all(np.diff(older.bars["time_msc"]) == 60_000)
        assert rig.fetches == 1  # one history reader for the terminal
    finally:
        await rig.chart.close()


async def test_day_figures_are_seeded_from_history_at_start() -> None:
    rig = Rig()
    assert rig.days.figures(SYMBOL) is None  # no tick yet: nothing known
    await rig.chart.start([SYMBOL], rig.days)
    try:
        await wait_until(
            lambda: (f := rig.days.figures(SYMBOL)) is not None and f.known, 30, "seeded day"
        )
        figures = rig.days.figures(SYMBOL)
        assert figures is not None
        midnight = NY_CLOSE.server_midnight_utc_s(NOW) * 1000
        assert figures.day_start_ms == midnight
        day = rig.term.market.ticks_range(SYMBOL, midnight, NOW * 1000 + 1)
        before = rig.term.market.ticks_range(SYMBOL, midnight - 60_000, midnight)
        assert figures.prev_close == float(before["bid"][-1])
        assert figures.high == float(day["bid"].max())
        assert figures.low == float(day["bid"].min())
        assert figures.open == float(day["bid"][0])
        # Live ticks fold in on top of the seed.
        rig.fed_to = NOW * 1000
        rig.feed(60)
        live = rig.term.market.ticks_range(SYMBOL, NOW * 1000, rig.fed_to)
        after = rig.days.figures(SYMBOL)
        assert after is not None
        assert after.high == max(figures.high, float(live["bid"].max()))
        assert after.bid == float(live["bid"][-1])
    finally:
        await rig.chart.close()
