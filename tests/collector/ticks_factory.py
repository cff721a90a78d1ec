"""Random but realistic tick arrays for the collector tests."""

from __future__ import annotations

import numpy as np

from app.ticks import TickArray, TickBatch, empty_ticks

START_MSC = 1_700_000_000_000  # 2023-11-14, a multiple of no timeframe in particular


def make_ticks(rng: np.random.Generator, n: int, start_msc: int = START_MSC) -> TickArray:
    """``n`` ticks in time order: ~30 % share a millisecond with their predecessor, most
    are a few hundred ms apart, ~3 % follow a gap of 3 to 15 minutes (bars with no tick)."""
    kind = rng.random(n)
    gaps = np.where(
        kind < 0.3,
        0,
        np.where(kind < 0.97, rng.integers(1, 3_000, n), rng.integers(180_000, 900_000, n)),
    )
    gaps[:1] = 0
    time_msc = start_msc + np.cumsum(gaps)
    bid = np.round(1.1 + np.cumsum(rng.normal(0.0, 0.0002, n)), 5)
    ask = np.round(bid + rng.integers(0, 30, n) * 1e-5, 5)
    ticks = empty_ticks(n)
    ticks["time"] = time_msc // 1000
    ticks["time_msc"] = time_msc
    ticks["bid"] = bid
    ticks["ask"] = ask
    ticks["flags"] = 6
    return ticks


def ticks_at(times_msc: list[int], bid: float = 1.0, ask: float = 1.0001) -> TickArray:
    """Ticks at the given times, bid rising by 0.001 per tick so each is recognisable."""
    n = len(times_msc)
    ticks = empty_ticks(n)
    ticks["time_msc"] = times_msc
    ticks["time"] = np.asarray(times_msc) // 1000
    ticks["bid"] = bid + 0.001 * np.arange(n)
    ticks["ask"] = ticks["bid"] + (ask - bid)
    return ticks


def split(ticks: TickArray, cuts: list[int]) -> list[TickArray]:
    """``ticks`` cut at the given indices (clipped, sorted, duplicates give empty batches)."""
    points = sorted(min(max(c, 0), len(ticks)) for c in cuts)
    return np.split(ticks, points)


def batch(symbol: str, ticks: TickArray, worker_id: int = 0) -> TickBatch:
    return TickBatch(symbol, ticks, worker_id, captured_at=0.0)
