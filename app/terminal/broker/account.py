"""What the broker's books are worth at an instant: floating P/L, equity, margin.

The core never reads a clock or a file: it asks a :class:`Quotes` (the simulated
market, seen by the terminal) for the latest bid/ask before an instant, so every figure
is a pure function of the books and the deterministic market.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.terminal.broker.contracts import ACCOUNT_CURRENCY, Contract, Converter, profit
from app.terminal.broker.state import BrokerState, Position
from app.ticks import TickArray

__all__ = [
    "Figures",
    "Quote",
    "Quotes",
    "converter",
    "figures",
    "position_value",
    "volume_ok",
]


@dataclass(frozen=True, slots=True)
class Quote:
    bid: float
    ask: float
    time_msc: int


class Quotes(Protocol):
    """The market as the broker sees it (UTC milliseconds throughout)."""

    def contract(self, symbol: str) -> Contract | None: ...

    def quote(self, symbol: str, until_msc: int) -> Quote | None:
        """The latest tick with ``time_msc < until_msc`` (None: no quote)."""
        ...

    def is_open(self, symbol: str, at_msc: int) -> bool: ...

    def ticks(self, symbol: str, from_msc: int, until_msc: int) -> TickArray:
        """Every tick with ``from_msc <= time_msc < until_msc``, oldest first."""
        ...

    def symbols(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Figures:
    balance: float
    equity: float
    profit: float
    margin: float
    margin_free: float
    margin_level: float


def converter(quotes: Quotes, until_msc: int) -> Converter:
    """Amounts in another currency at the market's own cross rate at that instant
    (``XXXUSD`` bid, or ``1 / USDXXX`` ask)."""

    def to_usd(currency: str, amount: float) -> float | None:
        if currency == ACCOUNT_CURRENCY:
            return amount
        direct = quotes.quote(f"{currency}{ACCOUNT_CURRENCY}", until_msc)
        if direct is not None:
            return amount * direct.bid
        inverse = quotes.quote(f"{ACCOUNT_CURRENCY}{currency}", until_msc)
        if inverse is not None and inverse.ask > 0:
            return amount / inverse.ask
        return None

    return to_usd


def position_value(p: Position, quotes: Quotes, until_msc: int) -> tuple[float, float]:
    """``(price_current, profit)``: a buy is valued at the bid, a sell at the ask."""
    c = quotes.contract(p.symbol)
    q = quotes.quote(p.symbol, until_msc)
    if c is None or q is None:
        return p.price_open, 0.0
    current = q.bid if p.is_buy else q.ask
    value = profit(
        c,
        p.is_buy,
        p.volume,
        price_open=p.price_open,
        price_close=current,
        to_usd=converter(quotes, until_msc),
    )
    return current, value or 0.0


def figures(state: BrokerState, quotes: Quotes, until_msc: int) -> Figures:
    floating = float(sum(position_value(p, quotes, until_msc)[1] for p in state.positions.values()))
    held = float(sum(p.margin for p in state.positions.values()))
    balance = state.account.balance
    equity = round(balance + floating, 2)
    held = round(held, 2)
    level = round(equity / held * 100.0, 2) if held > 0 else 0.0
    return Figures(
        balance=balance,
        equity=equity,
        profit=round(floating, 2),
        margin=held,
        margin_free=round(equity - held, 2),
        margin_level=level,
    )


def volume_ok(c: Contract, volume: float) -> bool:
    """Within min/max and a whole number of steps (to a millionth of a step)."""
    if not np.isfinite(volume) or volume < c.volume_min - 1e-9 or volume > c.volume_max + 1e-9:
        return False
    steps = volume / c.volume_step
    return abs(steps - round(steps)) < 1e-6
