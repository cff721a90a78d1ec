"""The "no tick" alert over a ny-close weekend, on a manual clock.

The newest tick per symbol comes from the simulated terminal with sessions (what the
collector would hold), so the feed is the market's own; the alert must stay silent
while the market is closed and fire inside a session after the rule's 30 s.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from app.clock import ManualClock
from app.collector import SequencedBatch
from app.monitor.alerts import default_rules
from app.monitor.monitor import Inputs, Monitor
from app.servertime import NY_CLOSE
from app.sessions import MarketHours, SessionBook
from app.terminal.simulated import SimulatedTerminal
from app.ticks import TickBatch
from tests.collector.ticks_factory import ticks_at

NY = zoneinfo.ZoneInfo("America/New_York")
SYMBOLS = ("EURUSD", "BTCUSD")


def ny(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=NY).timestamp())  # type: ignore[misc]


FRI_2350 = ny(2026, 1, 16, 16, 50)  # server Friday 23:50
CLOSE = ny(2026, 1, 16, 16, 57)
OPEN = ny(2026, 1, 18, 17, 0)  # server Monday 00:00
MON_0010 = ny(2026, 1, 18, 17, 10)


def _monitor(clock: ManualClock) -> Monitor:
    rules = [r for r in default_rules() if r.name == "no_ticks"]
    return Monitor(rules, clock=clock)


def _inputs(last: dict[str, int], hours: MarketHours | None) -> Inputs:
    return Inputs(workers=[], link=None, queue_depth=0, last_tick_msc=last, market_hours=hours)


def _raised(monitor: Monitor) -> set[str]:
    return {a.labels.get("symbol", "") for a in monitor.alerts.active()}


def test_no_tick_alert_is_silent_over_the_weekend_and_fires_in_session() -> None:
    clock = ManualClock(FRI_2350)
    term = SimulatedTerminal(11, clock=clock, sessions=SessionBook.default())
    assert term.initialize()
    for s in SYMBOLS:  # into Market Watch: hidden symbols serve no data
        assert term.symbol_select(s, True)
    hours = MarketHours.build(SessionBook.default(), dict.fromkeys(SYMBOLS, NY_CLOSE))
    monitor, blind = _monitor(clock), _monitor(clock)

    def newest() -> dict[str, int]:
        out = {}
        for s in SYMBOLS:
            tick = term.symbol_info_tick(s)
            assert tick is not None
            out[s] = NY_CLOSE.to_utc_s(tick.time_msc // 1000) * 1000 + tick.time_msc % 1000
        return out

    weekend_alerts: set[str] = set()
    while clock.time() < MON_0010:
        last = newest()
        m = monitor.tick(_inputs(last, hours))
        blind.tick(_inputs(last, None))
        assert _raised(monitor) == set(), f"alert at {clock.time()}"
        if CLOSE <= clock.time() < OPEN:
            assert m["seconds_since_tick.EURUSD"] == 0.0
            assert hours.closed(clock.time()) == {"EURUSD"}
        weekend_alerts |= _raised(blind)
        # Minutes apart over the weekend, seconds around the close and the open.
        near = min(abs(clock.time() - CLOSE), abs(clock.time() - OPEN)) < 120
        clock.advance(1 if near else 900)
    # Without the sessions the same feed would have alerted all weekend.
    assert weekend_alerts == {"EURUSD"}

    # Inside the session a quiet feed is a stall: EURUSD's newest tick stops moving.
    frozen = newest()["EURUSD"]
    raised_at = None
    for _ in range(40):
        clock.advance(1)
        last = {**newest(), "EURUSD": frozen}
        monitor.tick(_inputs(last, hours))
        if "EURUSD" in _raised(monitor):
            raised_at = clock.time()
            break
    assert raised_at is not None
    assert raised_at - frozen / 1000 > 30  # the rule's limit, counted in session
    assert raised_at - frozen / 1000 <= 31


def test_silence_counts_from_the_open_not_from_fridays_last_tick() -> None:
    clock = ManualClock(OPEN + 5)
    hours = MarketHours.build(SessionBook.default(), {"EURUSD": NY_CLOSE})
    monitor = _monitor(clock)
    friday_tick = (CLOSE - 1) * 1000
    m = monitor.tick(_inputs({"EURUSD": friday_tick}, hours))
    assert m["seconds_since_tick.EURUSD"] == 5.0  # not two days
    assert _raised(monitor) == set()
    clock.advance(26)
    monitor.tick(_inputs({"EURUSD": friday_tick}, hours))
    assert _raised(monitor) == {"EURUSD"}  # 31 s into the session without a tick


def test_tps_low_is_not_raised_while_a_captured_market_is_closed() -> None:
    """At the weekend only the 24/7 symbol ticks: a low total is the calendar, not a
    fault; on a weekday the same low feed raises "TPS low" after the rule's 10 s."""
    hours = MarketHours.build(SessionBook.default(), dict.fromkeys(SYMBOLS, NY_CLOSE))
    rules = [r for r in default_rules() if r.name == "tps_low"]

    def raised_after(start: float, seconds: int) -> set[str]:
        clock = ManualClock(start)
        monitor = Monitor(rules, clock=clock)
        for _ in range(seconds):
            clock.advance(1)
            ticks = ticks_at([int(clock.time() * 1000) - 5])  # 1 tick/s of BTCUSD
            monitor.on_batch(SequencedBatch(1, TickBatch("BTCUSD", ticks), clock.time()))
            monitor.tick(_inputs({}, hours))
        return {a.rule for a in monitor.alerts.active()}

    saturday = ny(2026, 1, 17, 12)
    assert hours.closed(saturday) == {"EURUSD"}
    assert raised_after(saturday, 60) == set()
    tuesday = ny(2026, 1, 20, 12)
    assert hours.closed(tuesday) == frozenset()
    assert raised_after(tuesday, 60) == {"tps_low"}
