"""The tick chart's point buffer: every tick while sparse, an exact min/max envelope per
bucket once dense, however the ticks are split across frames."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ui.panels.series import BUCKETS, DENSE_POINTS, TickSeries

WINDOW_S = 300.0


def _ticks(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = 1_700_000_000.0 + np.sort(rng.uniform(0, WINDOW_S, n))
    bid = 1.1 + np.cumsum(rng.normal(0, 1e-5, n))
    return x, bid, bid + rng.uniform(1e-5, 3e-5, n)


def test_sparse_windows_keep_every_tick_and_trim() -> None:
    x, bid, ask = _ticks(5000, 1)
    s = TickSeries(capacity=16)
    for part in np.array_split(np.arange(len(x)), 37):
        s.append(x[part], bid[part], ask[part], WINDOW_S)
    assert s.bucket_s == 0.0
    assert np.array_equal(s.x, x)
    assert np.array_equal(s.bid, bid)
    s.trim_before(float(x[1000]))
    assert np.array_equal(s.x, x[1000:])
    assert np.array_equal(s.ask, ask[1000:])


@settings(max_examples=25, deadline=None)
@given(splits=st.lists(st.integers(1, 60_000), min_size=0, max_size=12), seed=st.integers(0, 99))
def test_dense_windows_fold_to_the_exact_envelope(splits: list[int], seed: int) -> None:
    n = 3 * DENSE_POINTS
    x, bid, ask = _ticks(n, seed)
    cuts = sorted({c for c in splits if c < n})
    s = TickSeries()
    for part in np.split(np.arange(n), cuts):
        s.append(x[part], bid[part], ask[part], WINDOW_S)
    assert s.bucket_s == WINDOW_S / BUCKETS
    assert len(s) <= 2 * (BUCKETS + 1)
    # Independent: per bucket, lowest and highest bid and ask, first and last time.
    keys = np.floor(x / s.bucket_s)
    uniq = np.unique(keys)
    assert len(s) == 2 * len(uniq)
    lows, highs = s.bid[0::2], s.bid[1::2]
    for i, k in enumerate(uniq):
        sel = keys == k
        assert lows[i] == bid[sel].min()
        assert highs[i] == bid[sel].max()
        assert s.ask[2 * i] == ask[sel].min()
        assert s.ask[2 * i + 1] == ask[sel].max()
        assert s.x[2 * i] == x[sel][0]
        assert s.x[2 * i + 1] == x[sel][-1]
    assert np.all(np.diff(s.x) >= 0)
