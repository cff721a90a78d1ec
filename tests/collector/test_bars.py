from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.collector.bars import BAR_DTYPE, H1, M1, M5, BarAggregator, BarArray, spread_mean
from app.ticks import TickArray

from .ticks_factory import START_MSC, make_ticks, split, ticks_at


def reference_bars(ticks: TickArray, timeframe_ms: int) -> list[tuple[object, ...]]:
    """Bars the slow, obvious way: one Python iteration per tick."""
    return reference_bars_and_late(ticks, timeframe_ms)[0]


def reference_bars_and_late(
    ticks: TickArray, timeframe_ms: int
) -> tuple[list[tuple[object, ...]], int]:
    """Bars and the count of late ticks: a tick whose bar starts before the open bar."""
    bars: list[list[float]] = []
    late = 0
    for t, bid, ask in zip(
        ticks["time_msc"].tolist(), ticks["bid"].tolist(), ticks["ask"].tolist(), strict=True
    ):
        start = t // timeframe_ms * timeframe_ms
        spread = ask - bid
        if bars and start < bars[-1][0]:
            late += 1
            continue
        if not bars or bars[-1][0] != start:
            bars.append([start, bid, bid, bid, bid, 1, spread, spread, spread])
            continue
        bar = bars[-1]
        bar[2] = max(bar[2], bid)
        bar[3] = min(bar[3], bid)
        bar[4] = bid
        bar[5] += 1
        bar[6] = min(bar[6], spread)
        bar[7] = max(bar[7], spread)
        bar[8] += spread
    return [tuple(b) for b in bars], late


def as_bar_array(rows: list[tuple[object, ...]]) -> BarArray:
    return np.array(rows, dtype=BAR_DTYPE)


def assert_bars_equal(got: BarArray, expected: BarArray) -> None:
    assert got.dtype == BAR_DTYPE
    assert len(got) == len(expected)
    names = BAR_DTYPE.names
    assert names is not None
    for name in names:
        # Exact, spread_sum included: the split into batches must not change a bit.
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 800),
    cuts=st.lists(st.integers(0, 800), max_size=30),
    timeframe_ms=st.sampled_from([M1, M5, H1, 1_000]),
    history=st.sampled_from([1, 3, 17, 100_000]),
)
def test_bars_match_a_per_tick_loop_whatever_the_batch_split(
    seed: int, n: int, cuts: list[int], timeframe_ms: int, history: int
) -> None:
    ticks = make_ticks(np.random.default_rng(seed), n)
    expected = as_bar_array(reference_bars(ticks, timeframe_ms))

    agg = BarAggregator(timeframe_ms, history=history)
    closed_by_updates = [agg.update(part) for part in split(ticks, cuts)]

    assert_bars_equal(agg.closed(), expected[:-1][-history:])
    current = agg.current()
    assert current is not None
    assert_bars_equal(np.array([current], dtype=BAR_DTYPE), expected[-1:])
    assert_bars_equal(agg.all(), np.concatenate((expected[:-1][-history:], expected[-1:])))
    # What update() returned, concatenated, is every bar ever closed, in order.
    assert_bars_equal(np.concatenate(closed_by_updates), expected[:-1])
    assert agg.closed_total == len(expected) - 1
    assert agg.late_dropped == 0


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
    cuts=st.lists(st.integers(0, 400), max_size=20),
    timeframe_ms=st.sampled_from([1_000, M1, M5]),
)
def test_late_ticks_are_dropped_as_a_per_tick_loop_would(
    seed: int, n: int, cuts: list[int], timeframe_ms: int
) -> None:
    rng = np.random.default_rng(seed)
    ticks = make_ticks(rng, n)
    moved = rng.random(n) < 0.1  # one tick in ten arrives up to three bars late
    ticks["time_msc"][moved] -= rng.integers(0, 3 * timeframe_ms, int(moved.sum()))
    rows, late = reference_bars_and_late(ticks, timeframe_ms)

    agg = BarAggregator(timeframe_ms, history=100_000)
    for part in split(ticks, cuts):
        agg.update(part)

    assert agg.late_dropped == late
    assert_bars_equal(agg.all(), as_bar_array(rows))


def test_spread_sum_is_bit_identical_across_many_merges() -> None:
    """Long bars fed in small batches, so most ticks are merged into an open bar.

    Spreads of real quotes are multiples of one price ulp and sum exactly in any order;
    prices spanning many magnitudes make the sum order-sensitive, so that adding a
    batch's own sum to the open bar (instead of continuing its running sum) shows."""
    rng = np.random.default_rng(11)
    ticks = make_ticks(rng, 5_000)
    ticks["bid"] = 10.0 ** rng.uniform(-6, 3, len(ticks))
    ticks["ask"] = ticks["bid"] + 10.0 ** rng.uniform(-8, 0, len(ticks))
    cuts = np.cumsum(rng.integers(2, 12, len(ticks) // 2)).tolist()
    agg = BarAggregator(H1)
    for part in split(ticks, cuts):
        agg.update(part)
    assert_bars_equal(agg.all(), as_bar_array(reference_bars(ticks, H1)))


def test_reference_covers_shared_milliseconds_and_gaps() -> None:
    """The random ticks really exercise what the property test claims to cover."""
    ticks = make_ticks(np.random.default_rng(7), 2_000)
    steps = np.diff(ticks["time_msc"])
    assert (steps == 0).sum() > 100
    assert (steps > 3 * M1).sum() > 10
    starts = np.unique(ticks["time_msc"] // M1)
    assert (np.diff(starts) > 1).any()  # minutes without any bar


def test_one_batch_spanning_many_bars_closes_all_but_the_last() -> None:
    base = START_MSC - START_MSC % M1
    ticks = ticks_at([base, base + 1, base + M1, base + 5 * M1 + 7, base + 5 * M1 + 9])
    agg = BarAggregator(M1)
    closed = agg.update(ticks)
    assert closed["time_msc"].tolist() == [base, base + M1]
    assert closed["tick_count"].tolist() == [2, 1]
    current = agg.current()
    assert current is not None
    assert int(current["time_msc"]) == base + 5 * M1
    assert int(current["tick_count"]) == 2
    assert float(current["open"]) == pytest.approx(1.003)
    assert float(current["close"]) == pytest.approx(1.004)


def test_ticks_older_than_the_open_bar_are_counted_and_ignored() -> None:
    base = START_MSC - START_MSC % M1
    agg = BarAggregator(M1)
    agg.update(ticks_at([base + 10, base + M1 + 10, base + 2 * M1 + 10]))
    closed_before = agg.closed()
    current_before = agg.current()

    # One tick in a closed bar, one before any bar, one inside the open bar.
    late = ticks_at([base + M1 + 5, base - 5 * M1, base + 2 * M1 + 1], bid=2.0, ask=2.5)
    assert len(agg.update(late)) == 0

    assert agg.late_dropped == 2
    assert_bars_equal(agg.closed(), closed_before)
    current = agg.current()
    assert current is not None
    assert current_before is not None
    assert int(current["tick_count"]) == int(current_before["tick_count"]) + 1
    assert float(current["high"]) == pytest.approx(2.002)
    assert float(current["spread_max"]) == pytest.approx(0.5)


def test_ticks_going_back_within_a_batch_cannot_reopen_a_bar() -> None:
    base = START_MSC - START_MSC % M1
    agg = BarAggregator(M1)
    agg.update(ticks_at([base, base + M1, base + 30, base + M1 + 1]))
    assert agg.late_dropped == 1
    assert agg.closed()["tick_count"].tolist() == [1]
    current = agg.current()
    assert current is not None
    assert int(current["tick_count"]) == 2


def test_empty_and_entirely_late_batches_change_nothing() -> None:
    agg = BarAggregator(M1)
    assert agg.current() is None
    assert len(agg.update(ticks_at([]))) == 0
    assert len(agg.all()) == 0
    agg.update(ticks_at([START_MSC]))
    assert len(agg.update(ticks_at([START_MSC - 2 * M1]))) == 0
    assert agg.late_dropped == 1
    assert len(agg.all()) == 1


def test_negative_times_are_floored_to_the_bar_start() -> None:
    agg = BarAggregator(M1)
    agg.update(ticks_at([-1, 0]))
    assert agg.all()["time_msc"].tolist() == [-M1, 0]


def test_spread_mean_of_arrays_and_single_bars() -> None:
    ticks = ticks_at([START_MSC, START_MSC + 1, START_MSC + 2])
    ticks["ask"] = ticks["bid"] + np.array([0.1, 0.2, 0.6])
    agg = BarAggregator(H1)
    agg.update(ticks)
    current = agg.current()
    assert current is not None
    assert spread_mean(current) == pytest.approx(0.3)
    np.testing.assert_allclose(spread_mean(agg.all()), [0.3])
    assert float(current["spread_min"]) == pytest.approx(0.1)
    assert float(current["spread_max"]) == pytest.approx(0.6)


def test_current_is_a_copy() -> None:
    agg = BarAggregator(M1)
    agg.update(ticks_at([START_MSC]))
    current = agg.current()
    assert current is not None
    current["tick_count"] = 99
    again = agg.current()
    assert again is not None
    assert int(again["tick_count"]) == 1


@pytest.mark.parametrize(("timeframe_ms", "history"), [(0, 10), (-M1, 10), (M1, 0)])
def test_invalid_parameters_are_refused(timeframe_ms: int, history: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        BarAggregator(timeframe_ms, history)
