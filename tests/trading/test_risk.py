"""The risk engine's rules: each refuses with its reason and accepts at its boundary;
the trading states (REDUCING, HALTED, the kill switch); real-account consent."""

from __future__ import annotations

import math

import pytest

from app.clock import ManualClock
from app.servertime import NY_CLOSE
from app.terminal.simulated import SimulatedTerminal
from app.terminal.trade_constants import (
    ACCOUNT_TRADE_MODE_CONTEST,
    ACCOUNT_TRADE_MODE_REAL,
)
from app.trading.account_view import AccountView, VolumeRule
from app.trading.intent import Action, OrderIntent, OrderKind, Origin, Side
from app.trading.risk import RiskEngine, Rule, StateCause, StateChange, TradingState
from app.trading.view import RiskState, RiskStatus
from tests.trading.risk_support import (
    NETTING,
    cancel,
    close,
    config,
    engine,
    modify,
    open_,
    pending,
    position,
    view,
)


def test_trading_off_refuses_everything_even_a_close() -> None:
    p = position("EURUSD", Side.BUY, 0.1)
    risk = engine(enabled=False)
    for intent in (open_(), close(p)):
        d = risk.check(intent, view(positions=(p,)))
        assert (d.accepted, d.rule) == (False, Rule.DISABLED)
        assert "trading.enabled" in d.reason


def test_allowed_symbols_refuse_new_orders_elsewhere_but_let_a_position_close() -> None:
    p = position("GBPUSD", Side.BUY, 0.5)
    risk = engine(allowed_symbols=["EURUSD"])
    d = risk.check(open_("GBPUSD"), view(positions=(p,)))
    assert (d.accepted, d.rule) == (False, Rule.SYMBOL)
    assert d.reason == "GBPUSD is not among the allowed symbols (trading.risk.allowed_symbols)"
    assert risk.check(open_("EURUSD"), view(positions=(p,))).accepted
    assert risk.check(close(p), view(positions=(p,))).accepted
    assert engine().check(open_("GBPUSD"), view()).accepted  # empty list: every symbol


def test_volume_per_order_accepts_the_limit_and_refuses_above() -> None:
    risk = engine(max_volume_per_order=1.0, max_exposure_per_symbol=10)
    assert risk.check(open_(volume=1.0), view()).accepted
    d = risk.check(open_(volume=1.01), view())
    assert (d.accepted, d.rule) == (False, Rule.VOLUME)
    assert d.reason == "volume 1.01 lots is above the limit of 1 lots per order"


@pytest.mark.parametrize("volume", [0.015, 0.001, 100.01])
def test_volume_that_does_not_fit_the_symbol_is_refused(volume: float) -> None:
    risk = engine(max_volume_per_order=1000, max_exposure_per_symbol=10_000)
    d = risk.check(open_(volume=volume), view(symbols={"EURUSD": VolumeRule(0.01, 100, 0.01)}))
    assert (d.accepted, d.rule) == (False, Rule.VOLUME_STEP)
    assert "does not fit EURUSD (min 0.01, max 100, step 0.01)" in d.reason


def test_volume_rules_come_from_the_simulated_terminals_symbol_info() -> None:
    """The view built from what a terminal answers (the simulated one here) carries the
    account and the symbols' volume rules unchanged."""
    clock = ManualClock(1_780_000_000.0)
    term = SimulatedTerminal(3, clock=clock)
    assert term.initialize()
    account, info = term.account_info(), term.symbol_info("EURUSD")
    assert account is not None
    assert info is not None
    v = AccountView.of(account, NY_CLOSE, clock.time(), symbols=[info])
    assert (v.login, v.server, v.equity, v.trade_mode) == (
        account.login,
        account.server,
        account.equity,
        account.trade_mode,
    )
    assert v.symbols["EURUSD"] == VolumeRule(info.volume_min, info.volume_max, info.volume_step)
    risk = engine(clock)
    odd = info.volume_step * 1.5
    assert not risk.check(open_(volume=odd), v).accepted
    assert risk.check(open_(volume=info.volume_step * 3), v).accepted


def test_exposure_counts_positions_net_and_pending_orders_in_their_direction() -> None:
    risk = engine(max_volume_per_order=10, max_exposure_per_symbol=5.0)
    book = view(
        positions=(position("EURUSD", Side.BUY, 3.0), position("EURUSD", Side.SELL, 1.0)),
        orders=(pending("EURUSD", Side.BUY, 1.0), pending("EURUSD", Side.SELL, 2.0)),
    )
    # long: net 2 + pending buys 1 + 2 = 5 → at the limit
    assert risk.check(open_(volume=2.0), book).accepted
    d = risk.check(open_(volume=2.01), book)
    assert (d.accepted, d.rule) == (False, Rule.EXPOSURE)
    assert d.reason == (
        "EURUSD would be 5.01 lots long counting positions and pending orders, above the limit of 5"
    )
    # short: pending sells 2 - net 2 + 5 = 5 → at the limit
    assert risk.check(open_(side=Side.SELL, volume=5.0), book).accepted
    d = risk.check(open_(side=Side.SELL, volume=5.5), book)
    assert (d.rule, "5.5 lots short" in d.reason) == (Rule.EXPOSURE, True)
    # another symbol is its own budget
    assert risk.check(open_("GBPUSD", volume=5.0), book).accepted


def test_an_order_that_lowers_exposure_passes_a_limit_already_exceeded() -> None:
    """The limit was lowered below what is open: an order against the position passes."""
    risk = engine(max_volume_per_order=10, max_exposure_per_symbol=1.0)
    book = view(positions=(position("EURUSD", Side.BUY, 4.0),))
    assert not risk.check(open_(volume=0.1), book).accepted
    assert risk.check(open_(side=Side.SELL, volume=2.0), book).accepted


def test_open_positions_limit_counts_pending_orders_that_may_open_one() -> None:
    risk = engine(max_open_positions=3, max_exposure_per_symbol=100)
    two = (position("EURUSD", Side.BUY, 0.1), position("GBPUSD", Side.SELL, 0.1))
    assert risk.check(open_(), view(positions=two)).accepted  # the third
    d = risk.check(open_(), view(positions=two, orders=(pending("USDJPY", Side.BUY, 0.1),)))
    assert (d.accepted, d.rule) == (False, Rule.POSITIONS)
    assert "4 positions" in d.reason
    assert "limit of 3" in d.reason


def test_on_a_netting_account_a_symbol_holds_one_position() -> None:
    risk = engine(max_open_positions=2, max_exposure_per_symbol=100)
    book = view(
        margin_mode=NETTING,
        positions=(position("EURUSD", Side.BUY, 0.1), position("GBPUSD", Side.BUY, 0.1)),
    )
    assert risk.check(open_("EURUSD"), book).accepted  # adds to the EURUSD position
    assert risk.check(open_("GBPUSD", Side.SELL), book).accepted
    d = risk.check(open_("USDJPY"), book)
    assert (d.accepted, d.rule) == (False, Rule.POSITIONS)


def test_order_rate_is_a_token_bucket_on_the_clock_for_every_origin() -> None:
    clock = ManualClock()
    risk = engine(clock, max_orders_per_second=5, max_exposure_per_symbol=100)
    origins = [Origin.MANUAL, Origin.CLI, Origin.SIGNAL, Origin.MANUAL, Origin.SIGNAL]
    for origin in origins:
        assert risk.check(open_(origin=origin), view()).accepted
    d = risk.check(open_(origin=Origin.CLI), view())
    assert (d.accepted, d.rule) == (False, Rule.RATE)
    assert d.reason == "more than 5 orders per second: try again in 200 ms"
    # a refused order spent nothing, a cancel is not throttled
    o = pending("EURUSD", Side.BUY, 0.1)
    assert risk.check(cancel(o), view(orders=(o,))).accepted
    clock.advance(0.199)
    assert not risk.check(open_(), view()).accepted
    clock.advance(0.001)
    assert risk.check(open_(), view()).accepted
    assert not risk.check(open_(), view()).accepted
    clock.advance(10.0)  # the bucket refills to its burst, not beyond
    accepted = sum(risk.check(open_(), view()).accepted for _ in range(8))
    assert accepted == 5


def test_real_account_needs_the_setting_and_this_sessions_consent() -> None:
    real = view(trade_mode=ACCOUNT_TRADE_MODE_REAL)
    d = engine().check(open_(), real)
    assert (d.accepted, d.rule) == (False, Rule.REAL_ACCOUNT)
    assert d.reason.startswith("real account: ")
    assert "trading.allow_real_account" in d.reason

    risk = engine(allow_real_account=True)
    d = risk.check(open_(), real)
    assert (d.accepted, d.rule) == (False, Rule.REAL_ACCOUNT_CONSENT)
    assert d.reason == (
        "real account: account 5001 on Broker-Demo trades real money; "
        "confirm it once for this session first"
    )
    risk.grant_real_account_consent()
    assert risk.real_account_consent
    assert risk.check(open_(), real).accepted
    risk.revoke_real_account_consent()
    assert risk.check(open_(), real).rule is Rule.REAL_ACCOUNT_CONSENT
    # demo and contest accounts need nothing
    assert engine().check(open_(), view()).accepted
    assert engine().check(open_(), view(trade_mode=ACCOUNT_TRADE_MODE_CONTEST)).accepted


@pytest.mark.parametrize(
    ("intent", "reason"),
    [
        (open_(volume=0.0), "volume 0.0 lots: it must be above 0"),
        (open_(volume=math.nan), "volume nan lots: it must be above 0"),
        (open_(kind=OrderKind.LIMIT), "a limit order needs a price"),
        (open_(kind=OrderKind.STOP, price=math.inf), "price inf is not a price"),
        (
            OrderIntent(Action.CLOSE, "EURUSD", Side.SELL, 0.1, Origin.MANUAL),
            "close needs the ticket of a position or order",
        ),
        (
            OrderIntent(Action.CLOSE, "EURUSD", Side.SELL, 0.1, Origin.MANUAL, ticket=77),
            "position 77 is not open",
        ),
        (
            OrderIntent(Action.CLOSE, "GBPUSD", Side.SELL, 0.1, Origin.MANUAL, ticket=1),
            "position 1 is EURUSD, not GBPUSD",
        ),
        (
            OrderIntent(Action.CLOSE, "EURUSD", Side.SELL, 0.6, Origin.MANUAL, ticket=1),
            "cannot close 0.6 lots of position 1: it holds 0.5",
        ),
        (
            OrderIntent(Action.CANCEL, "EURUSD", Side.BUY, 0.1, Origin.MANUAL, ticket=1),
            "pending order 1 does not exist",
        ),
        (modify(99), "no position or pending order 99 to modify"),
    ],
)
def test_impossible_intents_are_refused_with_what_is_wrong(
    intent: OrderIntent, reason: str
) -> None:
    d = engine().check(intent, view(positions=(position("EURUSD", Side.BUY, 0.5, ticket=1),)))
    assert (d.accepted, d.rule, d.reason) == (False, Rule.INVALID, reason)


def test_reducing_allows_a_close_and_refuses_a_new_open() -> None:
    clock = ManualClock()
    risk = engine(clock, max_exposure_per_symbol=100, max_orders_per_second=100)
    p = position("EURUSD", Side.BUY, 1.0)
    o = pending("EURUSD", Side.SELL, 0.3)
    book = view(positions=(p,), orders=(o,))
    change = risk.reduce_only("news at 14:30")
    assert (change.state, change.cause, change.reason) == (
        TradingState.REDUCING,
        StateCause.MANUAL,
        "news at 14:30",
    )
    assert risk.check(close(p), book).accepted
    assert risk.check(close(p, volume=0.4), book).accepted
    assert risk.check(close(p, origin=Origin.SIGNAL), book).accepted
    assert risk.check(cancel(o), book).accepted
    assert risk.check(modify(p.ticket), book).accepted
    for intent in (open_(), open_(side=Side.SELL)):  # hedging: a sell opens a new position
        d = risk.check(intent, book)
        assert (d.accepted, d.rule, d.state) == (False, Rule.STATE, TradingState.REDUCING)
        assert d.reason == (
            "trading is REDUCING (news at 14:30): only orders that reduce a position"
        )


def test_reducing_on_netting_lets_an_opposite_order_through_unless_it_flips() -> None:
    risk = engine(max_exposure_per_symbol=100, max_volume_per_order=10)
    book = view(margin_mode=NETTING, positions=(position("EURUSD", Side.BUY, 1.0),))
    risk.reduce_only("")
    assert risk.check(open_(side=Side.SELL, volume=1.0), book).accepted
    assert not risk.check(open_(side=Side.SELL, volume=1.01), book).accepted  # flips
    assert not risk.check(open_(side=Side.BUY, volume=0.1), book).accepted
    limit_sell = open_(side=Side.SELL, volume=0.5, kind=OrderKind.LIMIT, price=1.2)
    assert not risk.check(limit_sell, book).accepted  # a pending order is a new order


def test_halt_refuses_new_orders_and_signals_but_lets_the_trader_get_flat() -> None:
    clock = ManualClock(1_700_000_000.0)
    risk = engine(clock, max_exposure_per_symbol=100, max_orders_per_second=100)
    seen: list[StateChange] = []
    risk.subscribe(seen.append)
    p = position("EURUSD", Side.BUY, 1.0)
    o = pending("EURUSD", Side.BUY, 0.2)
    book = view(positions=(p,), orders=(o,))
    clock.advance(5)
    risk.halt("kill switch")
    assert risk.state is TradingState.HALTED
    assert seen == [
        StateChange(
            TradingState.HALTED,
            TradingState.ACTIVE,
            TradingState.HALTED,
            StateCause.MANUAL,
            "kill switch",
            1_700_000_005.0,
        )
    ]
    # the window's status line reads the same state, reason and time
    assert risk.status() == RiskStatus(RiskState.HALTED, "kill switch", 1_700_000_005_000)
    for intent in (open_(), open_(side=Side.SELL), modify(p.ticket)):
        d = risk.check(intent, book)
        assert (d.accepted, d.rule) == (False, Rule.STATE)
        assert d.reason == (
            "trading is HALTED (kill switch): only closing positions and cancelling pending orders"
        )
    signal = open_(origin=Origin.SIGNAL, source="ma-cross", signal_id="s-1")
    for intent in (signal, close(p, origin=Origin.SIGNAL)):
        d = risk.check(intent, book)
        assert d.reason == "trading is HALTED (kill switch): signals are not executed"
    assert risk.check(close(p), book).accepted
    assert risk.check(cancel(o), book).accepted
    risk.resume()
    assert (risk.state, seen[-1].state, seen[-1].previous) == (
        TradingState.ACTIVE,
        TradingState.ACTIVE,
        TradingState.HALTED,
    )
    assert risk.check(signal, book).accepted


def test_new_limits_apply_from_the_next_check() -> None:
    risk = engine(max_volume_per_order=1.0)
    assert not risk.check(open_(volume=2.0), view()).accepted
    risk.update_limits(config(max_volume_per_order=2.0, allowed_symbols=["EURUSD"]))
    assert risk.check(open_(volume=2.0), view()).accepted
    assert risk.check(open_("GBPUSD", volume=0.1), view()).rule is Rule.SYMBOL
    risk.update_limits(config(enabled=False))
    assert risk.check(open_(), view()).rule is Rule.DISABLED


def test_the_engines_state_is_the_windows_risk_state() -> None:
    assert TradingState is RiskState
    assert engine().status() == RiskStatus(RiskState.ACTIVE, "", 0)


def test_a_broken_state_listener_does_not_stop_the_kill_switch() -> None:
    risk = RiskEngine(config(), ManualClock())

    def broken(_: StateChange) -> None:
        raise RuntimeError("listener bug")

    risk.subscribe(broken)
    risk.halt("stop")
    assert risk.state is TradingState.HALTED
    assert not risk.check(open_(), view()).accepted
