"""Small batches (a few ticks, the low-rate case) take Python-float paths in the collector,
the bar aggregator and the day statistics, to save numpy's per-call overhead. They must
give exactly what the numpy paths give: the same run is replayed with the small paths
switched off (``_SMALL = 0``) and every figure compared bit for bit, for batches in and out
of order, across bar and day boundaries, with NaN and infinite prices among them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import daystats
from app.collector import Collector, bars, collector
from app.daystats import DayBook
from app.servertime import NY_CLOSE
from app.ticks import TickBatch, empty_ticks
from app.zones import ServerZones

from .ticks_factory import START_MSC

# Before a ny-close server midnight (21:00 UTC in summer) so some runs cross it.
_START = 1_783_544_400_000 - 30_000  # 2026-07-08 20:59:30 UTC

_price = st.one_of(
    st.floats(1.0, 1.2, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
_tick = st.tuples(st.integers(-2_000, 60_000), _price, st.integers(0, 30))
_batches = st.lists(st.lists(_tick, min_size=1, max_size=20), min_size=1, max_size=30)


def _run(
    steps: list[list[tuple[int, float, int]]], small: int, monkeypatch: pytest.MonkeyPatch
) -> list[object]:
    """Feed the batches (time offsets from the previous batch's end, bid, spread in
    points) and return everything the collector and the day book show."""
    for module in (bars, collector, daystats):
        monkeypatch.setattr(module, "_SMALL", small)
    zones = ServerZones([("sim", NY_CLOSE, ["EURUSD"])])
    col = Collector(10_000, bar_timeframes_ms=(60_000, 3_600_000), zones=zones)
    book = DayBook(col, zones.zone, lambda: zones.version)
    col.subscribe(book.on_batch)
    at = _START
    for step in steps:
        ticks = empty_ticks(len(step))
        times = [at + dt for dt, _, _ in step]
        ticks["time_msc"] = times
        ticks["time"] = np.asarray(times) // 1000
        ticks["bid"] = [bid for _, bid, _ in step]
        ticks["ask"] = [bid + points * 1e-5 for _, bid, points in step]
        col.ingest(TickBatch("EURUSD", ticks))
        at = max(times)
    stats = col.stats
    figures = book.figures("EURUSD")
    return [
        col.cache.snapshot("EURUSD").tobytes(),
        col.bars("EURUSD", 60_000).tobytes(),
        col.bars("EURUSD", 3_600_000).tobytes(),
        stats.stale_dropped,
        stats.last_seq,
        repr(stats.symbols),
        repr(figures),
    ]


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@settings(max_examples=150, deadline=None)
@given(steps=_batches)
def test_small_batches_give_bit_for_bit_what_numpy_gives(
    steps: list[list[tuple[int, float, int]]],
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        fast = _run(steps, 16, mp)
    with pytest.MonkeyPatch.context() as mp:
        slow = _run(steps, 0, mp)
    assert fast == slow


def test_ticks_going_back_in_a_small_batch_are_dropped_as_stale() -> None:
    col = Collector(100)
    ticks = empty_ticks(4)
    ticks["time_msc"] = [START_MSC + 5, START_MSC + 3, START_MSC + 5, START_MSC + 6]
    ticks["bid"] = [1.0, 2.0, 3.0, 4.0]
    col.ingest(TickBatch("EURUSD", ticks))
    assert col.stats.stale_dropped == 1
    assert col.cache.snapshot("EURUSD")["bid"].tolist() == [1.0, 3.0, 4.0]
