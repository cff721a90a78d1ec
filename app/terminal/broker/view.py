"""The edge between the broker core and the ``MetaTrader5`` API shapes.

* :class:`MarketQuotes` shows the simulated market to the core (:class:`Quotes`);
* ``*_tuple`` functions turn the core's records (UTC) into the module's named tuples,
  stamped in server time by the ``server_msc`` function handed in;
* :func:`parse_request` reads an ``order_send`` dict the way the module does: unknown
  keys and values of the wrong type are refused (``None``), missing ones take defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from app.terminal.broker.account import Quote
from app.terminal.broker.contracts import Contract, contract_for
from app.terminal.broker.state import Deal, Order, Position
from app.terminal.market import Market
from app.terminal.session_market import SessionMarket
from app.terminal.trade_types import (
    REQUEST_DEFAULTS,
    TradeDeal,
    TradeOrder,
    TradePosition,
    TradeRequest,
)
from app.ticks import TickArray

__all__ = [
    "MarketQuotes",
    "deal_tuple",
    "order_tuple",
    "parse_request",
    "position_tuple",
]

ServerMsc = Callable[[int], int]


class MarketQuotes:
    """The broker's view of a :class:`Market`: quotes up to ``limit_msc`` only (a terminal
    that lost its server sees nothing newer)."""

    def __init__(self, market: Market, limit_msc: int) -> None:
        self.market = market
        self.limit_msc = limit_msc
        self._contracts: dict[str, Contract] = {}
        self._quotes: dict[tuple[str, int], Quote | None] = {}

    def symbols(self) -> tuple[str, ...]:
        return self.market.symbols()

    def contract(self, symbol: str) -> Contract | None:
        c = self._contracts.get(symbol)
        if c is None and symbol in self.market.symbols():
            c = self._contracts[symbol] = contract_for(self.market.profile(symbol))
        return c

    def quote(self, symbol: str, until_msc: int) -> Quote | None:
        """Memoised: valuing an account asks for the same quote once per position."""
        key = (symbol, min(until_msc, self.limit_msc))
        if key in self._quotes:
            return self._quotes[key]
        found = None
        if symbol in self.market.symbols():
            tick = self.market.last_tick(symbol, key[1])
            if tick is not None:
                found = Quote(float(tick["bid"]), float(tick["ask"]), int(tick["time_msc"]))
        if len(self._quotes) > 4096:
            self._quotes.clear()
        self._quotes[key] = found
        return found

    def is_open(self, symbol: str, at_msc: int) -> bool:
        if not isinstance(self.market, SessionMarket):
            return True
        hours = self.market.hours.get(symbol)
        return hours is None or hours.is_open(at_msc / 1000)

    def ticks(self, symbol: str, from_msc: int, until_msc: int) -> TickArray:
        return self.market.ticks_range(symbol, from_msc, min(until_msc, self.limit_msc))


# --- records → named tuples --------------------------------------------------------------


def position_tuple(
    p: Position, server_msc: ServerMsc, price_current: float, profit: float
) -> TradePosition:
    opened, updated = server_msc(p.time_msc), server_msc(p.time_update_msc)
    return TradePosition(
        ticket=p.ticket,
        time=opened // 1000,
        time_msc=opened,
        time_update=updated // 1000,
        time_update_msc=updated,
        type=p.type,
        magic=p.magic,
        identifier=p.ticket,
        reason=p.reason,
        volume=p.volume,
        price_open=p.price_open,
        sl=p.sl,
        tp=p.tp,
        price_current=price_current,
        swap=0.0,
        profit=profit,
        symbol=p.symbol,
        comment=p.comment,
        external_id="",
    )


def order_tuple(o: Order, server_msc: ServerMsc, price_current: float) -> TradeOrder:
    setup = server_msc(o.time_setup_msc)
    done = server_msc(o.time_done_msc) if o.time_done_msc else 0
    return TradeOrder(
        ticket=o.ticket,
        time_setup=setup // 1000,
        time_setup_msc=setup,
        time_done=done // 1000,
        time_done_msc=done,
        time_expiration=server_msc(o.expiration_msc) // 1000 if o.expiration_msc else 0,
        type=o.type,
        type_time=o.type_time,
        type_filling=o.type_filling,
        state=o.state,
        magic=o.magic,
        position_id=o.position_id,
        position_by_id=o.position_by_id,
        reason=o.reason,
        volume_initial=o.volume_initial,
        volume_current=o.volume_current,
        price_open=o.price_open,
        sl=o.sl,
        tp=o.tp,
        price_current=price_current,
        price_stoplimit=0.0,
        symbol=o.symbol,
        comment=o.comment,
        external_id="",
    )


def deal_tuple(d: Deal, server_msc: ServerMsc) -> TradeDeal:
    at = server_msc(d.time_msc)
    return TradeDeal(
        ticket=d.ticket,
        order=d.order,
        time=at // 1000,
        time_msc=at,
        type=d.type,
        entry=d.entry,
        magic=d.magic,
        position_id=d.position_id,
        reason=d.reason,
        volume=d.volume,
        price=d.price,
        commission=0.0,
        swap=0.0,
        profit=d.profit,
        fee=0.0,
        symbol=d.symbol,
        comment=d.comment,
        external_id="",
    )


# --- request dicts ---------------------------------------------------------------------------

_INT_FIELDS = frozenset(
    name for name in TradeRequest._fields if isinstance(getattr(REQUEST_DEFAULTS, name), int)
)
_FLOAT_FIELDS = frozenset(
    name for name in TradeRequest._fields if isinstance(getattr(REQUEST_DEFAULTS, name), float)
)


def parse_request(request: object) -> TradeRequest | None:
    """The request as the module reads it, or None (the module's "Invalid params")."""
    if not isinstance(request, Mapping):
        return None
    fields: dict[str, Any] = {}
    for key, value in request.items():
        if not isinstance(key, str) or key not in TradeRequest._fields:
            return None
        if key in _INT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                return None
            fields[key] = int(value)
        elif key in _FLOAT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                return None
            if not math.isfinite(float(value)):
                return None
            fields[key] = float(value)
        elif isinstance(value, str):
            fields[key] = value
        else:
            return None
    return REQUEST_DEFAULTS._replace(**fields)
