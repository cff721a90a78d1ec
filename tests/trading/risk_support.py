"""Builders for the risk engine's tests: accounts, positions and pending orders as the
terminal's own named tuples, and intents with the fields a test cares about."""

from __future__ import annotations

import itertools
from typing import Any

from app.clock import ManualClock
from app.config.trading_schema import RiskLimitsConfig, TradingConfig
from app.servertime import NY_CLOSE, ServerTimeZone
from app.terminal.trade_constants import (
    ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
    ACCOUNT_MARGIN_MODE_RETAIL_NETTING,
    ACCOUNT_TRADE_MODE_DEMO,
    ORDER_TYPE_BUY_LIMIT,
    ORDER_TYPE_SELL_LIMIT,
    POSITION_TYPE_BUY,
    POSITION_TYPE_SELL,
)
from app.terminal.trade_types import TradeOrder, TradePosition
from app.trading.account_view import AccountView, VolumeRule
from app.trading.intent import Action, OrderIntent, OrderKind, Origin, Side
from app.trading.risk import RiskEngine

_tickets = itertools.count(1000)

HEDGING = ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
NETTING = ACCOUNT_MARGIN_MODE_RETAIL_NETTING
EURUSD_RULE = VolumeRule(0.01, 100.0, 0.01)


def config(**risk: Any) -> TradingConfig:
    """Settings with these risk limits (the rest default); ``enabled`` and
    ``allow_real_account`` may be given too."""
    top = {k: risk.pop(k) for k in ("enabled", "allow_real_account") if k in risk}
    return TradingConfig(risk=RiskLimitsConfig(**risk), **top)


def engine(clock: ManualClock | None = None, **risk: Any) -> RiskEngine:
    return RiskEngine(config(**risk), clock or ManualClock())


def position(symbol: str, side: Side, volume: float, ticket: int | None = None) -> TradePosition:
    kind = POSITION_TYPE_BUY if side is Side.BUY else POSITION_TYPE_SELL
    t = ticket if ticket is not None else next(_tickets)
    return TradePosition(
        t, 0, 0, 0, 0, kind, 0, t, 0, volume, 1.1, 0.0, 0.0, 1.1, 0.0, 0.0, symbol, "", ""
    )


def pending(symbol: str, side: Side, volume: float, ticket: int | None = None) -> TradeOrder:
    kind = ORDER_TYPE_BUY_LIMIT if side is Side.BUY else ORDER_TYPE_SELL_LIMIT
    t = ticket if ticket is not None else next(_tickets)
    return TradeOrder(
        t, 0, 0, 0, 0, 0, kind, 0, 0, 1, 0, 0, 0, 0,
        volume, volume, 1.0, 0.0, 0.0, 1.1, 0.0, symbol, "", "",
    )  # fmt: skip


def view(
    *,
    positions: tuple[TradePosition, ...] = (),
    orders: tuple[TradeOrder, ...] = (),
    equity: float = 10_000.0,
    trade_mode: int = ACCOUNT_TRADE_MODE_DEMO,
    margin_mode: int = HEDGING,
    now: float = 1_700_000_000.0,
    zone: ServerTimeZone = NY_CLOSE,
    symbols: dict[str, VolumeRule] | None = None,
) -> AccountView:
    return AccountView(
        login=5001,
        server="Broker-Demo",
        currency="USD",
        trade_mode=trade_mode,
        margin_mode=margin_mode,
        balance=10_000.0,
        equity=equity,
        margin_free=equity,
        day_start_utc_s=zone.server_midnight_utc_s(int(now)),
        time_utc_s=now,
        positions=positions,
        orders=orders,
        symbols=symbols if symbols is not None else {"EURUSD": EURUSD_RULE},
    )


def open_(
    symbol: str = "EURUSD",
    side: Side = Side.BUY,
    volume: float = 0.1,
    *,
    origin: Origin = Origin.MANUAL,
    kind: OrderKind = OrderKind.MARKET,
    price: float | None = None,
    source: str = "manual",
    signal_id: str | None = None,
) -> OrderIntent:
    return OrderIntent(
        Action.OPEN, symbol, side, volume, origin, kind=kind, price=price,
        source=source, signal_id=signal_id,
    )  # fmt: skip


def close(
    p: TradePosition, volume: float | None = None, origin: Origin = Origin.MANUAL
) -> OrderIntent:
    side = Side.SELL if p.type == POSITION_TYPE_BUY else Side.BUY
    return OrderIntent(
        Action.CLOSE,
        p.symbol,
        side,
        p.volume if volume is None else volume,
        origin,
        ticket=p.ticket,
    )


def cancel(o: TradeOrder, origin: Origin = Origin.MANUAL) -> OrderIntent:
    return OrderIntent(Action.CANCEL, o.symbol, Side.BUY, o.volume_current, origin, ticket=o.ticket)


def modify(ticket: int, symbol: str = "EURUSD", sl: float = 1.0) -> OrderIntent:
    return OrderIntent(Action.MODIFY, symbol, Side.BUY, 0.0, Origin.MANUAL, sl=sl, ticket=ticket)
