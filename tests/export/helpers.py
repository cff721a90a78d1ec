"""Realistic tick streams for export tests: the simulated market and real Dukascopy data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.terminal.constants import TICK_FLAG_ASK, TICK_FLAG_BID
from app.terminal.market import DEFAULT_PROFILES, Market, SymbolProfile
from app.ticks import TickArray, empty_ticks

DUKASCOPY = Path("/work/shared/data/eurusd-dukascopy")
T0 = 1_700_000_000_000

#: An exchange-style symbol: deals set last and volume (and the buy/sell flags).
STOCK = SymbolProfile(
    name="SBER",
    digits=2,
    point=0.01,
    base_price=250.0,
    spread_points=3,
    volatility=5e-5,
    tick_rate=30.0,
    has_last=True,
    contract_size=10.0,
)


def market_ticks(symbol: str = "EURUSD", seconds: int = 60, rate: float = 200.0) -> TickArray:
    profiles = {**DEFAULT_PROFILES, "SBER": STOCK}
    market = Market(5, profiles, {symbol: rate})
    return market.ticks_range(symbol, T0, T0 + seconds * 1000)


def dukascopy_ticks() -> TickArray:
    """The real EURUSD ticks of the shared sample, as an MT5 terminal would hold them:
    flags say what changed, and quotes that changed nothing are not ticks."""
    rows = []
    for path in sorted(DUKASCOPY.glob("*.csv")):
        for line in path.read_text().splitlines():
            stamp, bid, ask, _, _ = line.split(",")
            day, clock = stamp.split(" ")
            ms = int(np.datetime64(day.replace(".", "-") + "T" + clock, "ms").astype(np.int64))
            rows.append((ms, float(bid), float(ask)))
    ticks = empty_ticks(len(rows))
    ticks["time_msc"] = [r[0] for r in rows]
    ticks["bid"] = [r[1] for r in rows]
    ticks["ask"] = [r[2] for r in rows]
    ticks["time"] = ticks["time_msc"] // 1000
    bid_changed = np.concatenate(([True], ticks["bid"][1:] != ticks["bid"][:-1]))
    ask_changed = np.concatenate(([True], ticks["ask"][1:] != ticks["ask"][:-1]))
    ticks["flags"] = np.where(bid_changed, TICK_FLAG_BID, 0) | np.where(
        ask_changed, TICK_FLAG_ASK, 0
    )
    return ticks[bid_changed | ask_changed]
