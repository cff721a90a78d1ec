"""No sequence of intents, account changes, clock steps, kill-switch presses and
settings changes makes the risk engine accept an order that passes a limit.

The account is modelled here (positions and pending orders as plain tuples, fills,
closes, cancels, equity moves) and every accepted intent is judged against that model
with arithmetic written independently of the engine: worst-case exposure, positions,
volume, the token bucket's bound, the daily loss since the ny-close server midnight
computed with zoneinfo (17:00 New York), the manual state.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.clock import ManualClock
from app.config.trading_schema import RiskLimitsConfig, TradingConfig
from app.servertime import NY_CLOSE
from app.trading.account_view import AccountView
from app.trading.intent import Action, OrderIntent, OrderKind, Origin, Side
from app.trading.risk import RiskEngine, TradingState
from tests.trading.risk_support import HEDGING, NETTING, pending, position, view

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
SYMBOLS = ("EURUSD", "GBPUSD", "XAUUSD")
EPS = 1e-6
START = 1_783_000_000.0  # July 2026


def server_day(t: float) -> dt.date:
    """A ny-close server day: it begins at 17:00 New York."""
    return (dt.datetime.fromtimestamp(t, NEW_YORK) + dt.timedelta(hours=7)).date()


limits_st = st.builds(
    RiskLimitsConfig,
    max_volume_per_order=st.sampled_from([0.5, 1.0, 2.0]),
    max_exposure_per_symbol=st.sampled_from([1.0, 2.5, 4.0]),
    max_open_positions=st.integers(1, 5),
    max_daily_loss=st.sampled_from([300.0, 800.0, 1500.0]),
    max_orders_per_second=st.sampled_from([1.0, 2.0, 5.0]),
    allowed_symbols=st.sampled_from([[], ["EURUSD", "GBPUSD"]]),
)
open_st = st.tuples(
    st.just("open"),
    st.sampled_from(SYMBOLS),
    st.sampled_from(Side),
    st.sampled_from([0.01, 0.1, 0.5, 1.0, 1.5, 2.5]),
    st.sampled_from([OrderKind.MARKET, OrderKind.MARKET, OrderKind.LIMIT]),
    st.sampled_from(Origin),
)
equity_st = st.tuples(st.just("equity"), st.sampled_from([-700.0, -250.0, -40.0, 60.0, 400.0]))
# Opens and equity moves listed more than once: they are what the limits are about.
step_st = st.one_of(
    open_st,
    open_st,
    open_st,
    equity_st,
    st.tuples(st.just("close"), st.integers(0, 9), st.sampled_from([0.5, 1.0, 1.5])),
    st.tuples(st.just("cancel"), st.integers(0, 9)),
    st.tuples(st.just("fill"), st.integers(0, 9)),
    st.tuples(st.just("tick"), st.sampled_from([0.0, 0.1, 0.4, 1.0, 3600.0, 30_000.0])),
    st.tuples(st.sampled_from(["halt", "reduce", "resume"])),
    st.tuples(st.just("limits"), limits_st),
)


@dataclass
class Book:
    """The account as this test keeps it: (ticket, symbol, side, volume) rows."""

    netting: bool
    positions: list[tuple[int, str, Side, float]] = field(default_factory=list)
    orders: list[tuple[int, str, Side, float]] = field(default_factory=list)
    equity: float = 10_000.0
    next_ticket: int = 1

    def net(self, symbol: str) -> float:
        return sum(v if s is Side.BUY else -v for _, sym, s, v in self.positions if sym == symbol)

    def pending(self, symbol: str, side: Side) -> float:
        return sum(v for _, sym, s, v in self.orders if sym == symbol and s is side)

    def slots(self) -> int:
        if self.netting:
            return len({r[1] for r in self.positions} | {r[1] for r in self.orders})
        return len(self.positions) + len(self.orders)

    def fill(self, symbol: str, side: Side, volume: float) -> None:
        if not self.netting:
            self.positions.append((self.next_ticket, symbol, side, volume))
            self.next_ticket += 1
            return
        net = self.net(symbol) + (volume if side is Side.BUY else -volume)
        self.positions = [r for r in self.positions if r[1] != symbol]
        if abs(net) > EPS:
            self.positions.append(
                (self.next_ticket, symbol, Side.BUY if net > 0 else Side.SELL, abs(net))
            )
            self.next_ticket += 1

    def view(self, now: float) -> AccountView:
        return view(
            positions=tuple(position(sym, s, v, ticket=t) for t, sym, s, v in self.positions),
            orders=tuple(pending(sym, s, v, ticket=t) for t, sym, s, v in self.orders),
            equity=self.equity,
            margin_mode=NETTING if self.netting else HEDGING,
            now=now,
            zone=NY_CLOSE,
            symbols={},
        )


@settings(max_examples=150, deadline=None)
@given(
    netting=st.booleans(),
    limits=limits_st,
    steps=st.lists(step_st, min_size=15, max_size=60),
)
def test_no_accepted_order_passes_a_limit(
    netting: bool, limits: RiskLimitsConfig, steps: list[tuple[Any, ...]]
) -> None:
    clock = ManualClock(START)
    risk = RiskEngine(TradingConfig(risk=limits), clock)
    book = Book(netting)
    manual = TradingState.ACTIVE
    anchor: tuple[dt.date, float] | None = None
    sent: list[float] = []  # times of accepted, throttled intents since the last limits

    for step in steps:
        kind = step[0]
        intent: OrderIntent | None = None
        if kind == "open":
            _, symbol, side, volume, order_kind, origin = step
            price = 1.0 if order_kind is OrderKind.LIMIT else None
            intent = OrderIntent(
                Action.OPEN, symbol, side, volume, origin, kind=order_kind, price=price
            )
        elif kind == "close" and book.positions:
            t, sym, s, v = book.positions[int(step[1]) % len(book.positions)]
            vol = round(v * float(step[2]), 2)
            opposite = Side.SELL if s is Side.BUY else Side.BUY
            intent = OrderIntent(Action.CLOSE, sym, opposite, vol, Origin.MANUAL, ticket=t)
        elif kind == "cancel" and book.orders:
            t, sym, s, v = book.orders[int(step[1]) % len(book.orders)]
            intent = OrderIntent(Action.CANCEL, sym, s, v, Origin.MANUAL, ticket=t)
        elif kind == "fill" and book.orders:
            row = book.orders.pop(int(step[1]) % len(book.orders))
            book.fill(row[1], row[2], row[3])
        elif kind == "tick":
            clock.advance(float(step[1]))
        elif kind == "equity":
            book.equity += float(step[1])
        elif kind == "halt":
            risk.halt("test")
            manual = TradingState.HALTED
        elif kind == "reduce":
            risk.reduce_only("test")
            manual = TradingState.REDUCING
        elif kind == "resume":
            risk.resume()
            manual = TradingState.ACTIVE
        elif kind == "limits":
            limits = step[1]
            risk.update_limits(TradingConfig(risk=limits))
            sent.clear()
        if intent is None:
            continue

        now = clock.time()
        day = server_day(now)
        if anchor is None or day > anchor[0]:
            anchor = (day, book.equity)
        drop = anchor[1] - book.equity
        exposure_before = (
            book.net(intent.symbol),
            book.pending(intent.symbol, Side.BUY),
            book.pending(intent.symbol, Side.SELL),
        )
        slots_before = book.slots()
        decision = risk.check(intent, book.view(now))
        if not decision.accepted:
            continue

        # --- the limits hold for what was accepted
        if intent.origin is Origin.SIGNAL:
            assert manual is not TradingState.HALTED
            assert decision.state is not TradingState.HALTED
        if intent.action is not Action.CANCEL:
            sent.append(now)
            burst = max(1.0, limits.max_orders_per_second)
            for i, t_i in enumerate(sent):
                allowed = burst + limits.max_orders_per_second * (now - t_i) + EPS
                assert len(sent) - i <= allowed
        if intent.action is Action.OPEN:
            net, pend_buy, pend_sell = exposure_before
            assert manual is not TradingState.HALTED
            assert drop < limits.max_daily_loss
            assert intent.volume <= limits.max_volume_per_order + EPS
            if limits.allowed_symbols:
                assert intent.symbol in limits.allowed_symbols
            if intent.side is Side.BUY:
                assert net + pend_buy + intent.volume <= limits.max_exposure_per_symbol + EPS
            else:
                assert pend_sell - net + intent.volume <= limits.max_exposure_per_symbol + EPS
            reducing = (
                book.netting
                and intent.kind is OrderKind.MARKET
                and (net < 0 if intent.side is Side.BUY else net > 0)
                and intent.volume <= abs(net) + EPS
            )
            if manual is TradingState.REDUCING:
                assert reducing
            if intent.kind is OrderKind.MARKET:
                book.fill(intent.symbol, intent.side, intent.volume)
            else:
                book.orders.append((book.next_ticket, intent.symbol, intent.side, intent.volume))
                book.next_ticket += 1
            assert book.slots() <= max(limits.max_open_positions, slots_before)
        elif intent.action is Action.CLOSE:
            row = next(r for r in book.positions if r[0] == intent.ticket)
            assert intent.volume <= row[3] + EPS
            book.positions.remove(row)
            if row[3] - intent.volume > EPS:
                book.positions.append((row[0], row[1], row[2], row[3] - intent.volume))
        elif intent.action is Action.CANCEL:
            book.orders = [r for r in book.orders if r[0] != intent.ticket]
