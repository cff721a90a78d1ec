"""Shared pieces of the simulated broker's tests: a terminal on a manual clock, and the
independent truth (the terminal's own tick history) the tests compare fills with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from app.clock import ManualClock
from app.terminal import trade_constants as tc
from app.terminal.broker.state import AccountSettings
from app.terminal.constants import COPY_TICKS_ALL
from app.terminal.simulated import SimulatedTerminal
from app.terminal.trade_types import OrderSendResult
from app.ticks import TickArray

#: Tuesday 14 Nov 2023 22:13:20 UTC: every market of the default sessions is open.
START = 1_700_000_000.0
SEED = 7


def terminal(
    clock: ManualClock,
    folder: Path | None = None,
    *,
    margin_mode: str = "hedging",
    balance: float = 10_000.0,
    **kw: Any,
) -> SimulatedTerminal:
    t = SimulatedTerminal(
        SEED,
        clock=clock,
        broker=AccountSettings(balance=balance, margin_mode=margin_mode),  # type: ignore[arg-type]
        broker_dir=folder,
        market_watch=("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD"),
        **kw,
    )
    assert t.initialize()
    return t


def history(t: SimulatedTerminal, symbol: str, back_s: int = 3600) -> TickArray:
    """Every tick up to the terminal's now (server-time stamps), from its own history."""
    tick = t.symbol_info_tick(symbol)
    assert tick is not None
    ticks = t.copy_ticks_from(symbol, tick.time - back_s, 10_000_000, COPY_TICKS_ALL)
    assert ticks is not None
    assert len(ticks)
    return ticks


def last_quote(t: SimulatedTerminal, symbol: str) -> tuple[float, float]:
    last = history(t, symbol)[-1]
    return float(last["bid"]), float(last["ask"])


def market(
    t: SimulatedTerminal,
    symbol: str,
    volume: float,
    *,
    buy: bool = True,
    filling: int = tc.ORDER_FILLING_FOK,
    **extra: Any,
) -> OrderSendResult:
    request = {
        "action": tc.TRADE_ACTION_DEAL,
        "symbol": symbol,
        "volume": volume,
        "type": tc.ORDER_TYPE_BUY if buy else tc.ORDER_TYPE_SELL,
        "type_filling": filling,
        "deviation": 10,
        **extra,
    }
    result = t.order_send(request)
    assert result is not None, t.last_error()
    return result


def first_index(mask: np.ndarray[Any, np.dtype[np.bool_]]) -> int:
    hits = np.flatnonzero(mask)
    assert len(hits), "the test's market never crossed the level"
    return int(hits[0])
