"""LatencyHistogram against numpy on the raw samples: every percentile within the bucket error."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.monitor.histogram import LatencyHistogram

QS = [0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 100.0]
LOWEST, HIGHEST = 1e-6, 3600.0


def _tolerance(h: LatencyHistogram) -> float:
    # The bound itself, plus float rounding at bucket edges.
    return h.relative_error * (1 + 1e-9) + 1e-12


def _draw(kind: str, n: int, seed: int, scale: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "lognormal":
        data = rng.lognormal(math.log(scale), 2.0, n)
    elif kind == "uniform":
        data = rng.uniform(scale, scale * 1000, n)
    elif kind == "bimodal":  # fast path plus a slow tail, the shape of a real pipeline
        fast = rng.normal(scale, scale * 0.1, n)
        slow = rng.normal(scale * 500, scale * 20, max(1, n // 20))
        data = np.concatenate([fast, slow])
        rng.shuffle(data)
    else:  # heavy ties: few distinct values
        data = rng.choice(np.array([1, 2, 3, 50]) * scale, n)
    return np.clip(data, LOWEST, HIGHEST)


def _assert_close(h: LatencyHistogram, data: np.ndarray, qs: list[float] = QS) -> None:
    got = np.array(h.percentiles(qs))
    want = np.percentile(data, qs)
    relative = np.abs(got - want) / want
    worst = int(np.argmax(relative))
    assert relative[worst] <= _tolerance(h), (qs[worst], got[worst], want[worst])


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    kind=st.sampled_from(["lognormal", "uniform", "bimodal", "ties"]),
    n=st.integers(1, 3000),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1e-5, 1e-3, 0.2, 5.0]),
    batch=st.sampled_from([1, 3, 100, 5000]),
)
def test_percentiles_match_numpy_within_the_bucket_error(
    kind: str, n: int, seed: int, scale: float, batch: int
) -> None:
    data = _draw(kind, n, seed, scale)
    h = LatencyHistogram(LOWEST, HIGHEST)
    for start in range(0, len(data), batch):  # batch sizes exercise all three feeding paths
        h.record_many(data[start : start + batch])
    assert h.count == len(data)
    _assert_close(h, data)
    assert h.min == data.min()
    assert h.max == data.max()
    assert h.mean == pytest.approx(data.mean(), rel=1e-9)


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(
    values=st.lists(st.floats(LOWEST, HIGHEST, allow_nan=False, allow_infinity=False), min_size=1),
    q=st.floats(0.0, 100.0),
)
def test_scalar_records_match_numpy_at_any_percentile(values: list[float], q: float) -> None:
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    _assert_close(h, np.array(values), [q])


def test_percentile_ends_are_exact_and_order_is_kept() -> None:
    data = _draw("lognormal", 10_000, 7, 1e-3)
    h = LatencyHistogram()
    h.record_many(data)
    assert h.percentile(0) == data.min()
    assert h.percentile(100) == data.max()
    many = h.percentiles(np.linspace(0, 100, 501))
    assert many == sorted(many)
    assert h.percentiles([50, 99, 99.9]) == [h.percentile(50), h.percentile(99), h.percentile(99.9)]


def test_scalar_and_batch_recording_agree_and_reads_see_pending_values() -> None:
    data = _draw("bimodal", 2_345, 3, 1e-3)
    by_one, by_batch = LatencyHistogram(), LatencyHistogram()
    for v in data.tolist():
        by_one.record(v)
    by_batch.record_many(data)
    assert by_one.count == by_batch.count == len(data)  # read while values are buffered
    assert by_one.percentiles(QS) == by_batch.percentiles(QS)
    assert by_one.distribution()[1].tolist() == by_batch.distribution()[1].tolist()
    # Staging buffer: a read in the middle of mid-sized batches sees all of them.
    staged = LatencyHistogram()
    staged.record_many(data[:100])
    assert staged.count == 100
    staged.record_many(data[100:200])
    assert staged.max == data[:200].max()


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_a=st.integers(0, 2000),
    n_b=st.integers(0, 2000),
)
def test_merge_equals_recording_everything_in_one(seed: int, n_a: int, n_b: int) -> None:
    a_data = _draw("lognormal", n_a, seed, 1e-3)[:n_a]
    b_data = _draw("bimodal", n_b, seed + 1, 0.05)[:n_b]
    a, b, whole = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    a.record_many(a_data)
    for v in b_data.tolist():
        b.record(v)  # b still has buffered values when merged
    whole.record_many(np.concatenate([a_data, b_data]))
    a.merge(b)
    assert a.count == whole.count
    for got, want in zip(a.distribution(), whole.distribution(), strict=True):
        assert got.tolist() == want.tolist()
    assert a.percentiles(QS) == pytest.approx(whole.percentiles(QS), nan_ok=True)
    assert (a.min, a.max) == pytest.approx((whole.min, whole.max), nan_ok=True)
    assert b.count == n_b  # the source is left as it was


def test_merge_refuses_a_different_layout() -> None:
    with pytest.raises(ValueError, match="layout"):
        LatencyHistogram(significant_digits=2).merge(LatencyHistogram(significant_digits=3))
    with pytest.raises(ValueError, match="layout"):
        LatencyHistogram(highest=60).merge(LatencyHistogram(highest=3600))


def test_values_above_highest_clamp_to_the_top_bucket_and_count_as_overflow() -> None:
    h = LatencyHistogram(lowest=1e-3, highest=10.0)
    h.record_many(np.array([0.5] * 97 + [11.0, 1e6, math.inf]))
    h.record(10.0)  # exactly highest is on the scale
    h.record(10.5)
    assert h.overflow == 4
    assert h.count == 102
    assert h.max == math.inf  # the exact maximum is kept
    values, counts = h.distribution()
    assert counts[-1] == 5  # four overflows and 10.0 share the top bucket
    assert values[-1] == pytest.approx(10.0, rel=h.relative_error * 2)
    assert h.percentile(99) == pytest.approx(10.0, rel=h.relative_error * 2)


def test_values_below_lowest_land_in_the_first_bucket_and_nan_is_ignored() -> None:
    h = LatencyHistogram(lowest=1e-6)
    h.record_many(np.array([0.0, -1e-3, 5e-7, math.nan, 1e-3] + [2e-3] * 20))
    h.record(math.nan)
    assert h.count == 24
    assert h.overflow == 0
    assert h.min == -1e-3
    assert h.percentile(0) == -1e-3
    # Under-range values read back within about `lowest`, never outside [min, max].
    assert abs(h.percentile(5) - 1e-6) <= 1.1e-6
    assert math.isnan(LatencyHistogram().percentile(50))


def test_reset_and_snapshot() -> None:
    h = LatencyHistogram()
    h.record_many(np.full(1000, 0.01))
    h.record(1.0)
    snap = h.snapshot()
    h.record_many(np.full(1000, 5.0))
    assert snap.count == 1001  # independent of later records
    assert snap.max == 1.0
    assert h.count == 2001
    h.reset()
    assert h.count == 0
    assert h.overflow == 0
    assert math.isnan(h.max)
    assert math.isnan(h.mean)
    h.record(0.25)
    assert h.percentile(50) == 0.25


def test_layout_and_memory_are_fixed() -> None:
    h = LatencyHistogram(1e-6, 3600.0, 2)
    assert h.relative_error == 0.005
    # ln(3.6e9) / ln(1.01) ≈ 2.2k counters for twelve decades at ~1 % width.
    assert 2000 < h.bucket_count < 2400
    assert LatencyHistogram(significant_digits=3).relative_error == 0.0005
    with pytest.raises(ValueError, match="lowest < highest"):
        LatencyHistogram(lowest=1.0, highest=1.0)
    with pytest.raises(ValueError, match="within 0"):
        h.percentile(101)


@pytest.mark.parametrize("digits", [1, 2, 3])
def test_any_layout_takes_values_at_its_exact_edges(digits: int) -> None:
    # numpy's log and math.log may differ by an ulp: `highest` must still land in range.
    for lowest in np.geomspace(1e-9, 1e-3, 13).tolist():
        for highest in np.geomspace(1e-2, 1e5, 17).tolist():
            h = LatencyHistogram(lowest, highest, digits)
            h.record_many(np.array([highest] * 20 + [np.nextafter(highest, 0)] * 20))
            h.record_many(np.array([lowest] * 20))
            assert h.count == 60
            assert h.overflow == 0
            assert h.distribution()[1].sum() == 60
