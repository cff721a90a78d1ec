from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.collector.bars import BAR_DTYPE
from app.collector.cache import TickCache, TickRing
from app.collector.ring import StructRing
from app.ticks import TICK_DTYPE

from .ticks_factory import make_ticks


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(
    capacity=st.integers(1, 64),
    sizes=st.lists(st.integers(0, 150), max_size=20),
    n=st.none() | st.integers(-3, 200),
)
def test_snapshot_is_the_newest_ticks_of_everything_appended(
    capacity: int, sizes: list[int], n: int | None
) -> None:
    everything = make_ticks(np.random.default_rng(capacity), sum(sizes))
    ring = TickRing(capacity)
    offset = 0
    for size in sizes:
        ring.append(everything[offset : offset + size])
        offset += size

    kept = min(len(everything), capacity)
    assert len(ring) == kept
    assert ring.total_appended == len(everything)
    assert ring.capacity == capacity
    np.testing.assert_array_equal(ring.snapshot(), everything[len(everything) - kept :])
    wanted = kept if n is None else max(0, min(n, kept))
    np.testing.assert_array_equal(ring.snapshot(n), everything[len(everything) - wanted :])


def test_wrap_around_keeps_time_order() -> None:
    ticks = make_ticks(np.random.default_rng(1), 25)
    ring = TickRing(10)
    ring.append(ticks[:7])
    ring.append(ticks[7:15])  # wraps: 3 at the end, 5 at the start
    snap = ring.snapshot()
    np.testing.assert_array_equal(snap, ticks[5:15])
    assert (np.diff(snap["time_msc"]) >= 0).all()
    ring.append(ticks[15:])  # exactly capacity: overwrites everything
    np.testing.assert_array_equal(ring.snapshot(), ticks[15:])


def test_snapshot_is_a_copy_not_a_view() -> None:
    ticks = make_ticks(np.random.default_rng(2), 5)
    ring = TickRing(5)
    ring.append(ticks)
    snap = ring.snapshot()
    snap["bid"] = -1.0
    ring.append(make_ticks(np.random.default_rng(3), 2))
    assert (ring.snapshot()["bid"] > 0).all()
    assert (snap["bid"] == -1.0).all()


def test_buffer_is_allocated_once_at_full_capacity_on_first_append() -> None:
    ring = TickRing(1_000)
    assert ring.nbytes == 0
    assert len(ring.snapshot()) == 0
    ring.append(make_ticks(np.random.default_rng(4), 1))
    assert ring.nbytes == 1_000 * TICK_DTYPE.itemsize
    ring.append(make_ticks(np.random.default_rng(5), 5_000))
    assert ring.nbytes == 1_000 * TICK_DTYPE.itemsize


def test_memory_stays_flat_once_full() -> None:
    cache = TickCache(capacity_per_symbol=20_000)
    rng = np.random.default_rng(6)
    batches = [make_ticks(rng, 1_000) for _ in range(10)]
    for b in batches * 3:  # fill both rings past capacity
        cache.append("EURUSD", b)
        cache.append("USDJPY", b)
    nbytes = cache.nbytes

    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        for b in batches * 20:  # 200,000 more ticks per symbol
            cache.append("EURUSD", b)
            cache.append("USDJPY", b)
        grown, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert cache.nbytes == nbytes == 2 * 20_000 * TICK_DTYPE.itemsize
    assert grown - baseline < 16 * 1024


def test_cache_creates_one_ring_per_symbol_on_first_use() -> None:
    cache = TickCache(8)
    assert len(cache) == 0
    assert "EURUSD" not in cache
    assert len(cache.snapshot("EURUSD")) == 0
    assert cache.snapshot("EURUSD").dtype == TICK_DTYPE
    ticks = make_ticks(np.random.default_rng(8), 12)
    cache.append("EURUSD", ticks)
    cache.append("GBPUSD", ticks[:3])
    assert cache.symbols == ("EURUSD", "GBPUSD")
    assert list(cache) == ["EURUSD", "GBPUSD"]
    np.testing.assert_array_equal(cache.snapshot("EURUSD"), ticks[4:])
    np.testing.assert_array_equal(cache.snapshot("GBPUSD", 2), ticks[1:3])
    assert cache.ring("EURUSD") is cache.ring("EURUSD")
    assert cache.capacity_per_symbol == 8


def test_wrong_dtype_and_capacity_are_refused() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        TickRing(0)
    with pytest.raises(ValueError, match=">= 1"):
        TickCache(0)
    with pytest.raises(TypeError, match="expected dtype"):
        TickRing(4).append(np.zeros(2, dtype=BAR_DTYPE))


def test_struct_ring_holds_any_record_type() -> None:
    ring = StructRing(BAR_DTYPE, 3)
    bars = np.zeros(5, dtype=BAR_DTYPE)
    bars["time_msc"] = np.arange(5)
    for i in range(5):
        ring.append(bars[i : i + 1])
    assert ring.snapshot()["time_msc"].tolist() == [2, 3, 4]
    ring.clear()
    assert len(ring) == 0
    assert ring.nbytes == 3 * BAR_DTYPE.itemsize
