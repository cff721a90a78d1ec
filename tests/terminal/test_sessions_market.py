"""The simulated market closes outside its sessions: a ny-close weekend on a manual clock.

Friday 23:50 server (16:50 New York) to Monday 00:10 server (Sunday 17:10 New York). The
truth is the 24/7 market of the same seed with New York's close and open cut out, worked
out here with zoneinfo, not with the schedule code under test.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np

from app.clock import ManualClock
from app.connector.server_clock import UtcTerminal
from app.servertime import NY_CLOSE
from app.sessions import SessionBook
from app.terminal.constants import COPY_TICKS_ALL
from app.terminal.market import DEFAULT_PROFILES, Market
from app.terminal.simulated import SimulatedTerminal
from app.ticks import TickArray

NY = zoneinfo.ZoneInfo("America/New_York")
SEED = 5
RATES = {"EURUSD": 40.0, "XAUUSD": 20.0, "BTCUSD": 20.0}


def ny(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=NY).timestamp())  # type: ignore[misc]


FRI_2350 = ny(2026, 1, 16, 16, 50)  # server Friday 23:50
CLOSE = ny(2026, 1, 16, 16, 57)  # server Friday 23:57
OPEN = ny(2026, 1, 18, 17, 0)  # server Monday 00:00
MON_0010 = ny(2026, 1, 18, 17, 10)


def _terminal(clock: ManualClock) -> SimulatedTerminal:
    term = SimulatedTerminal(SEED, rates=RATES, clock=clock, sessions=SessionBook.default())
    assert term.initialize()
    for symbol in RATES:  # into Market Watch: hidden symbols serve no data
        assert term.symbol_select(symbol, True)
    return term


def _utc(term: SimulatedTerminal) -> UtcTerminal:
    """The terminal read in UTC, as the worker reads it (it stamps in ny-close time)."""
    return UtcTerminal(term, NY_CLOSE)


def _server_ms(utc_ms: int) -> int:
    return utc_ms + 1000 * NY_CLOSE.offset_s(utc_ms // 1000)


def _truth(symbol: str, a: int, b: int, *closed: tuple[int, int]) -> TickArray:
    """The 24/7 market's ticks from second ``a`` through second ``b`` (inclusive at its
    first millisecond, as ``copy_ticks_range``), minus the closed stretches (which are
    not generated at all: a weekend at 40 ticks/s is millions of quotes)."""
    market = Market(SEED, DEFAULT_PROFILES, RATES)
    edges = [a, *(x for span in closed for x in span), b]
    parts = [
        market.ticks_range(symbol, lo * 1000, hi * 1000 + (1 if hi == b else 0))
        for lo, hi in zip(edges[::2], edges[1::2], strict=True)
    ]
    return np.concatenate(parts)


def test_no_ticks_over_the_weekend_and_the_quote_stays_fridays() -> None:
    clock = ManualClock(FRI_2350)
    term = _terminal(clock)
    clock.set_time(ny(2026, 1, 17, 12))  # Saturday
    got = _utc(term).copy_ticks_from("EURUSD", FRI_2350, 1_000_000, COPY_TICKS_ALL)
    assert got is not None
    truth = Market(SEED, DEFAULT_PROFILES, RATES).ticks_range(
        "EURUSD", FRI_2350 * 1000, CLOSE * 1000
    )
    assert len(truth) > 1000
    assert np.array_equal(got, truth)
    tick = term.symbol_info_tick("EURUSD")
    assert tick is not None
    assert tick.time_msc == _server_ms(int(truth["time_msc"][-1]))  # time stays old
    info = term.symbol_info("EURUSD")
    assert info is not None
    assert info.trade_mode == 4  # SYMBOL_TRADE_MODE_FULL: the real module keeps it
    assert info.time == _server_ms(int(truth["time_msc"][-1])) // 1000
    assert info.session_close == float(truth["bid"][-1]) == info.bid
    assert info.session_open > 0
    # Bitcoin trades on.
    btc = term.symbol_info_tick("BTCUSD")
    assert btc is not None
    assert clock.time() - NY_CLOSE.to_utc_s(btc.time) < 60


def test_a_weekend_range_holds_only_friday_and_monday_and_btc_runs_through() -> None:
    clock = ManualClock(MON_0010)
    term = _terminal(clock)
    got = _utc(term).copy_ticks_range("EURUSD", FRI_2350, MON_0010, COPY_TICKS_ALL)
    assert got is not None
    assert np.array_equal(got, _truth("EURUSD", FRI_2350, MON_0010, (CLOSE, OPEN)))
    t = got["time_msc"] // 1000
    assert (t < CLOSE).sum() > 0
    assert (t >= OPEN).sum() > 0
    assert ((t >= CLOSE) & (t < OPEN)).sum() == 0
    assert np.array_equal(term.market.ticks_range("EURUSD", FRI_2350 * 1000, MON_0010 * 1000), got)
    saturday = ny(2026, 1, 17, 12)
    btc = _utc(term).copy_ticks_range("BTCUSD", saturday, saturday + 600, COPY_TICKS_ALL)
    assert btc is not None
    assert len(btc) > 1000
    assert np.array_equal(btc, _truth("BTCUSD", saturday, saturday + 600))
    # A poll from Friday's cursor on Monday moves on to Monday's ticks.
    nxt = _utc(term).copy_ticks_from("EURUSD", CLOSE - 1, 50, COPY_TICKS_ALL)
    assert nxt is not None
    assert len(nxt) == 50
    assert (nxt["time_msc"] // 1000 >= OPEN).any()


def test_gold_breaks_daily_from_23_57_to_01_00_server() -> None:
    brk, reopen = ny(2026, 1, 20, 16, 57), ny(2026, 1, 20, 18, 0)  # Tuesday
    clock = ManualClock(reopen + 600)
    term = _terminal(clock)
    got = _utc(term).copy_ticks_range("XAUUSD", brk - 600, reopen + 600, COPY_TICKS_ALL)
    assert got is not None
    assert np.array_equal(got, _truth("XAUUSD", brk - 600, reopen + 600, (brk, reopen)))
    t = got["time_msc"] // 1000
    assert (t < brk).any()
    assert (t >= reopen).any()
    # FX trades through gold's break.
    fx = _utc(term).copy_ticks_range("EURUSD", brk, reopen, COPY_TICKS_ALL)
    assert fx is not None
    assert len(fx) > 1000
