"""The daily loss limit: equity drop since the day's start at the account's *server*
midnight halts trading, and the next server day resumes it.

The server midnight of a ny-close broker is computed here independently of
app/servertime.py: 17:00 in New York (zoneinfo), i.e. 21:00 UTC in US summer time and
22:00 UTC in winter, never UTC midnight.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from app.clock import ManualClock
from app.servertime import NY_CLOSE
from app.trading.account_view import AccountView
from app.trading.intent import Origin, Side
from app.trading.risk import RiskEngine, Rule, StateCause, StateChange, TradingState
from tests.trading.risk_support import close, config, open_, position, view

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
LIMIT = 1000.0


def ny_close_midnight(day: dt.date) -> float:
    """The UTC instant a ny-close server day ``day + 1`` begins: 17:00 New York."""
    return dt.datetime(day.year, day.month, day.day, 17, 0, tzinfo=NEW_YORK).timestamp()


@pytest.fixture(params=[dt.date(2026, 7, 14), dt.date(2026, 1, 13)], ids=["summer", "winter"])
def midnight(request: pytest.FixtureRequest) -> float:
    m = ny_close_midnight(request.param)
    utc = dt.datetime.fromtimestamp(m, dt.UTC)
    assert (utc.hour, utc.minute) == ((21, 0) if request.param.month == 7 else (22, 0))
    return m


def at(clock: ManualClock, t: float, equity: float, **kw: object) -> AccountView:
    clock.set_time(t)
    return view(equity=equity, now=t, zone=NY_CLOSE, **kw)  # type: ignore[arg-type]


def test_day_key_is_the_servers_midnight_not_utcs(midnight: float) -> None:
    before = view(now=midnight - 1)
    after = view(now=midnight)
    assert after.day_start_utc_s == midnight
    assert before.day_start_utc_s == midnight - 86_400
    utc_midnight = dt.datetime.fromtimestamp(midnight, dt.UTC).replace(
        hour=0, minute=0
    ) + dt.timedelta(days=1)
    assert view(now=utc_midnight.timestamp()).day_start_utc_s == midnight


def test_daily_loss_halts_at_the_limit_and_the_server_day_re_anchors(midnight: float) -> None:
    clock = ManualClock(midnight - 5 * 3600)
    changes: list[StateChange] = []
    risk = RiskEngine(config(max_daily_loss=LIMIT), clock)
    risk.subscribe(changes.append)
    p = position("EURUSD", Side.BUY, 0.5)

    # The day's start: the first view of the server day.
    assert risk.check(open_(), at(clock, midnight - 5 * 3600, 10_000.0)).accepted
    assert risk.day_start_equity == 10_000.0
    # Just below the limit a second before server midnight: still trading.
    assert risk.check(open_(), at(clock, midnight - 2, 9_000.01)).accepted
    # At the limit: HALTED with the reason, new orders refused, closing allowed.
    d = risk.check(open_(), at(clock, midnight - 1, 9_000.0, positions=(p,)))
    assert (d.accepted, d.rule, d.state) == (False, Rule.DAILY_LOSS, TradingState.HALTED)
    assert "daily loss 1,000.00 USD reached the limit of 1,000.00" in d.reason
    assert risk.check(close(p), at(clock, midnight - 1, 9_000.0, positions=(p,))).accepted
    assert (changes[-1].cause, changes[-1].state, changes[-1].time_utc_s) == (
        StateCause.DAILY_LOSS,
        TradingState.HALTED,
        midnight - 1,
    )
    # resume() cannot lift a daily loss halt.
    change = risk.resume()
    assert change.state is TradingState.HALTED
    assert "still HALTED" in change.reason

    # Server midnight: a new day anchored at the equity then; trading resumes.
    assert risk.check(open_(), at(clock, midnight, 9_000.0)).accepted
    assert risk.day_start_equity == 9_000.0
    assert (changes[-1].cause, changes[-1].state) == (StateCause.NEW_DAY, TradingState.ACTIVE)
    # The drop counts from the new anchor: 999.99 below 9,000 passes, 1,000 halts.
    assert risk.check(open_(), at(clock, midnight + 60, 8_000.01)).accepted
    assert not risk.check(open_(), at(clock, midnight + 120, 8_000.0)).accepted
    # UTC midnight (a few hours later) is no new day: still HALTED.
    utc_midnight = dt.datetime.fromtimestamp(midnight, dt.UTC).replace(
        hour=0, minute=0
    ) + dt.timedelta(days=1)
    d = risk.check(open_(), at(clock, utc_midnight.timestamp() + 1, 8_000.0))
    assert d.rule is Rule.DAILY_LOSS
    # The next server midnight lifts it.
    assert risk.check(open_(), at(clock, midnight + 86_400, 8_000.0)).accepted


def test_a_halt_by_hand_survives_the_new_day(midnight: float) -> None:
    clock = ManualClock(midnight - 3600)
    risk = RiskEngine(config(max_daily_loss=LIMIT), clock)
    risk.observe(at(clock, midnight - 3600, 10_000.0))
    risk.halt("done for today")
    risk.observe(at(clock, midnight - 60, 8_500.0))
    assert risk.state_reason.startswith("daily loss 1,500.00")
    risk.observe(at(clock, midnight + 1, 8_500.0))
    assert (risk.state, risk.state_reason) == (TradingState.HALTED, "done for today")
    d = risk.check(open_(origin=Origin.SIGNAL), at(clock, midnight + 2, 8_500.0))
    assert (d.rule, d.reason) == (
        Rule.STATE,
        "trading is HALTED (done for today): signals are not executed",
    )
    risk.resume()
    assert risk.check(open_(), at(clock, midnight + 3, 8_500.0)).accepted


def test_the_limit_changed_in_the_settings_applies_to_todays_drop(midnight: float) -> None:
    clock = ManualClock(midnight - 3600)
    risk = RiskEngine(config(max_daily_loss=LIMIT), clock)
    risk.observe(at(clock, midnight - 3600, 10_000.0))
    risk.observe(at(clock, midnight - 1800, 9_400.0))
    assert risk.state is TradingState.ACTIVE
    risk.update_limits(config(max_daily_loss=500.0))  # lowered below today's drop
    assert (risk.state, risk.state_reason[:30]) == (
        TradingState.HALTED,
        "daily loss 600.00 reached the ",
    )
    risk.update_limits(config(max_daily_loss=2_000.0))  # raised above it
    assert risk.state is TradingState.ACTIVE
    assert risk.check(open_(), at(clock, midnight - 1700, 9_400.0)).accepted


def test_a_stale_view_of_yesterday_does_not_move_the_anchor(midnight: float) -> None:
    clock = ManualClock(midnight + 10)
    risk = RiskEngine(config(max_daily_loss=LIMIT), clock)
    risk.observe(at(clock, midnight + 10, 10_000.0))
    risk.observe(view(equity=9_800.0, now=midnight - 10))  # yesterday's snapshot, late
    assert risk.day_start_equity == 10_000.0
