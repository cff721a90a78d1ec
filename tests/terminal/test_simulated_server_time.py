"""The simulated terminal keeps its trade server's clock (ny-close by default).

Truth: the market's own history (a pure function of UTC) and switch instants written
by hand (tests/test_servertime.py): the terminal must serve exactly those ticks, stamped
GMT+2 in winter and GMT+3 in summer, and read the dates it is asked for on that clock.
"""

from __future__ import annotations

import numpy as np

from app.clock import ManualClock
from app.servertime import NY_CLOSE, parse_server_time_zone
from app.terminal import constants as c
from app.terminal.market import DEFAULT_PROFILES, Market
from app.terminal.simulated import SimulatedTerminal
from app.terminal.spec import TerminalSpec
from app.ticks import TickArray
from tests.test_servertime import US_AUTUMN, US_SPRING, utc_s

H = 3600
SEED = 5


def terminal(at_s: float) -> tuple[SimulatedTerminal, ManualClock]:
    clock = ManualClock(at_s)
    term = SimulatedTerminal(SEED, clock=clock)
    assert term.initialize()
    for symbol in DEFAULT_PROFILES:  # into Market Watch: hidden ones serve no data
        assert term.symbol_select(symbol, True)
    return term, clock


def market_utc(symbol: str, from_s: int, to_s: int) -> TickArray:
    """Ticks with from_s <= time <= to_s (both in UTC seconds), as the market made them."""
    return Market(SEED, DEFAULT_PROFILES).ticks_range(symbol, from_s * 1000, to_s * 1000 + 1)


def stamped(ticks: TickArray, offset_s: int) -> TickArray:
    out = ticks.copy()
    out["time_msc"] += offset_s * 1000
    out["time"] = out["time_msc"] // 1000
    return out


def test_default_is_ny_close_and_specs_carry_their_zone() -> None:
    assert SimulatedTerminal().server_time_zone is NY_CLOSE
    spec = TerminalSpec(server_time_zone="Europe/Athens")
    assert SimulatedTerminal.from_spec(spec).server_time_zone == parse_server_time_zone(
        "Europe/Athens"
    )
    assert SimulatedTerminal.from_spec(TerminalSpec()).server_time_zone is NY_CLOSE


def test_winter_at_plus_two_summer_at_plus_three() -> None:
    for now, offset in ((utc_s(2025, 1, 15, 12), 2 * H), (utc_s(2025, 7, 15, 12), 3 * H)):
        term, _ = terminal(now + 0.5)
        truth = market_utc("EURUSD", now - 60, now)
        # Asked on the server's clock: the last minute is [now - 60, now] + offset.
        got = term.copy_ticks_range("EURUSD", now + offset - 60, now + offset, c.COPY_TICKS_ALL)
        assert got is not None
        assert np.array_equal(got, stamped(truth, offset))
        frm = term.copy_ticks_from("EURUSD", now + offset - 60, 50, c.COPY_TICKS_ALL)
        assert frm is not None
        assert np.array_equal(frm, stamped(truth[:50], offset))
        # Asked in UTC by mistake: the ticks of a minute `offset` earlier.
        wrong = term.copy_ticks_range("EURUSD", now - 60, now, c.COPY_TICKS_ALL)
        assert wrong is not None
        early = market_utc("EURUSD", now - 60 - offset, now - offset)
        assert np.array_equal(wrong, stamped(early, offset))
        tick = term.symbol_info_tick("EURUSD")
        assert tick is not None
        last = Market(SEED, DEFAULT_PROFILES).last_tick("EURUSD", int((now + 0.5) * 1000) + 1)
        assert last is not None
        assert tick.time_msc == int(last["time_msc"]) + offset * 1000
        assert tick.time == tick.time_msc // 1000
        info = term.symbol_info("EURUSD")
        assert info is not None
        assert info.time == tick.time


def test_a_range_across_the_spring_switch() -> None:
    term, _ = terminal(US_SPRING + 2 * H)
    truth = market_utc("BTCUSD", US_SPRING - 600, US_SPRING + 600)
    # 08:50 (+2) to 10:10 (+3) server time on 9 March 2025.
    got = term.copy_ticks_range(
        "BTCUSD", US_SPRING - 600 + 2 * H, US_SPRING + 600 + 3 * H, c.COPY_TICKS_ALL
    )
    assert got is not None
    before = truth["time_msc"] < US_SPRING * 1000
    expected = np.concatenate([stamped(truth[before], 2 * H), stamped(truth[~before], 3 * H)])
    assert np.array_equal(got, expected)
    assert int(np.diff(got["time_msc"]).max()) > H * 1000  # the stamps skip the gap


def test_the_autumn_hour_of_a_24_7_symbol_goes_back_in_true_order() -> None:
    term, _ = terminal(US_AUTUMN + 3 * H)
    truth = market_utc("BTCUSD", US_AUTUMN - 90 * 60, US_AUTUMN + 90 * 60)
    # 07:30 server time (+3, unambiguous) to 09:30 (+2, after the repeated hour).
    got = term.copy_ticks_range(
        "BTCUSD", US_AUTUMN - 90 * 60 + 3 * H, US_AUTUMN + 90 * 60 + 2 * H, c.COPY_TICKS_ALL
    )
    assert got is not None
    before = truth["time_msc"] < US_AUTUMN * 1000
    expected = np.concatenate([stamped(truth[before], 3 * H), stamped(truth[~before], 2 * H)])
    assert np.array_equal(got, expected)  # every tick once, in true order
    assert (np.diff(got["time_msc"]) < 0).sum() == 1  # the stamps go back once
    assert np.array_equal(NY_CLOSE.to_utc_ms(got["time_msc"]), truth["time_msc"])
    # A date in the repeated hour: from the earlier pass (more, never fewer), and up to
    # the later pass at the end of a range.
    ambiguous = US_AUTUMN + 2 * H + 30 * 60  # 08:30 server time
    frm = term.copy_ticks_from("BTCUSD", ambiguous, 10, c.COPY_TICKS_ALL)
    assert frm is not None
    first = truth[truth["time_msc"] >= (US_AUTUMN - 30 * 60) * 1000][:10]
    assert np.array_equal(frm, stamped(first, 3 * H))
    upto = term.copy_ticks_range("BTCUSD", ambiguous - 60, ambiguous, c.COPY_TICKS_ALL)
    assert upto is not None
    assert int(NY_CLOSE.to_utc_ms(upto["time_msc"])[-1]) <= (US_AUTUMN + 30 * 60) * 1000
    assert int(NY_CLOSE.to_utc_ms(upto["time_msc"])[-1]) > US_AUTUMN * 1000
