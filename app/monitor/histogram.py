"""A log-bucketed latency histogram: fixed memory, bounded relative error, cheap to feed.

Latencies span six orders of magnitude (a microsecond in-process hand-off to a minute
stuck behind an outage), and what the operator asks is "p99 within a percent or so".
Keeping every sample would cost memory without bound; fixed-width buckets would be
either too coarse for microseconds or too many for minutes. Geometric buckets (as in
HdrHistogram and DDSketch) give the same *relative* precision at every scale with a
couple of thousand counters.

Layout: bucket ``i`` holds values in ``[lowest·γ^i, lowest·γ^(i+1))`` with
``γ = (1+α)/(1-α)``, and reads back as ``lowest·γ^i · 2γ/(γ+1)``. That representative is
within a relative ``α`` of *every* value in the bucket (DDSketch's choice), so each
order statistic comes back within ``α``. With ``significant_digits=2`` the buckets are
about 1 % wide and ``α`` is 0.5 %.

Percentiles follow :func:`numpy.percentile`'s default (linear interpolation between the
two neighbouring order statistics), each neighbour estimated from its bucket. An
interpolation of two values that are each within ``α`` is itself within ``α``, so the
result is within ``α`` of what numpy returns on the raw samples, for samples in
``[lowest, highest]``. The exact minimum and maximum are kept on the side: ``percentile(0)``
and ``percentile(100)`` are exact, and no estimate ever leaves ``[min, max]``.

Feeding: :meth:`LatencyHistogram.record` only appends to a short Python list (a numpy
scalar update costs more than the whole append); the list is folded into the buckets in
one vectorised step when it fills or before anything is read. :meth:`record_many` copies
a batch into a staging buffer that is folded the same way, because one fold costs ~5 µs
of numpy call overhead however short the batch; tiny batches take the list path, huge
ones are folded at once. Reads fold whatever is pending first, so they are always exact.

Not thread-safe: one owner (the asyncio loop) feeds and reads it, like the collector.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Scalar records buffered before they are folded into the buckets: large enough that
#: the fold's fixed numpy overhead is spread thin, small enough to stay in cache.
_PENDING_MAX = 512
#: Batches at most this long go through the scalar buffer (``tolist`` + ``extend``).
_SMALL_BATCH = 4
#: Values of longer batches staged before one fold: the fold costs ~5 µs of fixed numpy
#: overhead plus ~3 ns a value, so 4096 spreads the overhead to ~1 ns a value.
_STAGE_SIZE = 4096


class LatencyHistogram:
    """Counts of latencies (seconds) in geometric buckets; see the module docstring.

    Values below ``lowest`` (including zero and negative clock skew) fall into the first
    bucket: they read back with an absolute error of about ``lowest``, not a relative one.
    Values above ``highest`` clamp into the top bucket and are counted in :attr:`overflow`
    so that a chart can say "off the scale" instead of pretending to know. NaN is ignored.
    """

    __slots__ = (
        "_alpha",
        "_count",
        "_counts",
        "_cumulative",
        "_highest",
        "_inv_log_gamma",
        "_log_lowest",
        "_lowest",
        "_max",
        "_min",
        "_near_top",
        "_overflow",
        "_pending",
        "_representatives",
        "_significant_digits",
        "_stage",
        "_staged",
        "_sum",
    )

    def __init__(
        self, lowest: float = 1e-6, highest: float = 3600.0, significant_digits: int = 2
    ) -> None:
        if not 0.0 < lowest < highest or not math.isfinite(highest):
            raise ValueError(f"need 0 < lowest < highest < inf, got {lowest}, {highest}")
        if not 1 <= significant_digits <= 5:
            raise ValueError(f"significant_digits must be 1..5, got {significant_digits}")
        self._lowest = float(lowest)
        self._highest = float(highest)
        self._significant_digits = significant_digits
        # Bucket width 10^-d (relative), so the read-back error is half of it.
        self._alpha = 0.5 * 10.0**-significant_digits
        gamma = (1.0 + self._alpha) / (1.0 - self._alpha)
        self._inv_log_gamma = 1.0 / math.log(gamma)
        self._log_lowest = math.log(self._lowest)
        top = math.floor((math.log(self._highest) - self._log_lowest) * self._inv_log_gamma)
        buckets = top + 1
        # Values from just below the top bucket up are re-clamped by index in _fold: numpy's
        # log may differ from math.log by an ulp, which must not make a bucket top + 1.
        self._near_top = self._lowest * gamma ** (top - 1)
        self._representatives: FloatArray = (
            self._lowest * gamma ** np.arange(buckets, dtype=np.float64) * (2.0 * gamma)
        ) / (gamma + 1.0)
        self._counts: npt.NDArray[np.int64] = np.zeros(buckets, dtype=np.int64)
        self._cumulative: npt.NDArray[np.int64] | None = None
        self._pending: list[float] = []
        self._stage: FloatArray | None = None  # allocated by the first mid-sized batch
        self._staged = 0
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf
        self._overflow = 0

    # -- feeding -------------------------------------------------------------------------

    def record(self, value: float) -> None:
        """Count one latency in seconds. Amortised ~100 ns: an append, folded in batches."""
        pending = self._pending
        pending.append(value)
        if len(pending) >= _PENDING_MAX:
            self._fold_pending()

    def record_many(self, values: npt.NDArray[Any] | Sequence[float]) -> None:
        """Count a batch of latencies (any shape; flattened); amortised < 1 µs a call.

        The batch is copied into a staging buffer and folded into the buckets with the
        batches after it, because the fold costs ~5 µs of numpy call overhead however
        short the batch is (measured: ~0.3 µs a call for 1 value, ~0.9 µs for 100, ~3 ns a
        value for 10,000). Batches of half the buffer or more are folded at once.
        """
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 1:
            array = array.ravel()
        n = int(array.size)
        if n <= _SMALL_BATCH:
            if n:
                pending = self._pending
                pending.extend(array.tolist())
                if len(pending) >= _PENDING_MAX:
                    self._fold_pending()
            return
        if n * 2 > _STAGE_SIZE:
            self._fold(array)
            return
        stage = self._stage
        if stage is None:
            stage = self._stage = np.empty(_STAGE_SIZE, dtype=np.float64)
        staged = self._staged
        if staged + n > _STAGE_SIZE:
            self._fold(stage[:staged])
            staged = 0
        stage[staged : staged + n] = array
        self._staged = staged + n

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts to this one, e.g. per-worker histograms into a total.

        Both must have the same layout; equal to having recorded both streams here.
        """
        if other.layout != self.layout:
            raise ValueError(f"cannot merge layout {other.layout} into {self.layout}")
        other._sync()
        self._sync()
        self._counts += other._counts
        self._count += other._count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)
        self._overflow += other._overflow
        self._cumulative = None

    def reset(self) -> None:
        """Forget everything recorded (e.g. at the start of a reporting interval)."""
        self._pending.clear()
        self._staged = 0
        self._counts[:] = 0
        self._cumulative = None
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf
        self._overflow = 0

    def snapshot(self) -> LatencyHistogram:
        """An independent copy: hand it to the UI while this one keeps counting."""
        self._sync()
        copy = LatencyHistogram(self._lowest, self._highest, self._significant_digits)
        copy._counts[:] = self._counts
        copy._count = self._count
        copy._sum = self._sum
        copy._min = self._min
        copy._max = self._max
        copy._overflow = self._overflow
        return copy

    # -- reading -------------------------------------------------------------------------

    @property
    def layout(self) -> tuple[float, float, int]:
        """``(lowest, highest, significant_digits)``: histograms merge only within one."""
        return (self._lowest, self._highest, self._significant_digits)

    @property
    def relative_error(self) -> float:
        """The bound ``α`` on the relative error of any order statistic read back."""
        return self._alpha

    @property
    def bucket_count(self) -> int:
        return len(self._counts)

    @property
    def count(self) -> int:
        self._sync()
        return self._count

    @property
    def overflow(self) -> int:
        """How many values were above ``highest`` (clamped into the top bucket)."""
        self._sync()
        return self._overflow

    @property
    def min(self) -> float:
        """Exact smallest value recorded; NaN when empty."""
        self._sync()
        return self._min if self._count else math.nan

    @property
    def max(self) -> float:
        """Exact largest value recorded (also above ``highest``); NaN when empty."""
        self._sync()
        return self._max if self._count else math.nan

    @property
    def mean(self) -> float:
        """Exact mean of the values recorded; NaN when empty."""
        self._sync()
        return self._sum / self._count if self._count else math.nan

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100), like ``numpy.percentile``; NaN when empty."""
        return self.percentiles((q,))[0]

    def percentiles(self, qs: Iterable[float]) -> list[float]:
        """Several percentiles in one pass over the cumulative counts (e.g. 50, 99, 99.9)."""
        q = np.asarray(list(qs), dtype=np.float64)
        if q.size and (not np.all(q >= 0.0) or not np.all(q <= 100.0)):
            raise ValueError(f"percentiles must be within 0..100, got {q.tolist()}")
        self._sync()
        n = self._count
        if n == 0:
            return [math.nan] * int(q.size)
        position = q / 100.0 * (n - 1)
        below = np.floor(position)
        fraction = position - below
        rank = below.astype(np.int64)
        low = self._value_at_rank(rank)
        high = self._value_at_rank(np.minimum(rank + 1, n - 1))
        result: FloatArray = low + fraction * (high - low)
        return [float(v) for v in result]

    def distribution(self) -> tuple[FloatArray, npt.NDArray[np.int64]]:
        """``(representative value, count)`` of the non-empty buckets, for a histogram chart."""
        self._sync()
        occupied = np.flatnonzero(self._counts)
        return self._representatives[occupied].copy(), self._counts[occupied].copy()

    def __repr__(self) -> str:
        p50, p99 = self.percentiles((50, 99))
        return (
            f"LatencyHistogram(count={self._count}, p50={p50:.3g}, p99={p99:.3g}, "
            f"max={self.max:.3g}, overflow={self._overflow})"
        )

    # -- internals -----------------------------------------------------------------------

    def _sync(self) -> None:
        if self._pending:
            self._fold_pending()
        if self._staged:
            assert self._stage is not None
            staged = self._staged
            self._staged = 0
            self._fold(self._stage[:staged])

    def _fold_pending(self) -> None:
        pending = self._pending
        self._pending = []
        self._fold(np.array(pending, dtype=np.float64))

    def _fold(self, values: FloatArray) -> None:
        """Add ``values`` to the buckets. Never writes to ``values`` (it may be the caller's)."""
        total = float(values.sum())
        if math.isnan(total):  # NaN in the batch (or +inf and -inf together)
            values = values[~np.isnan(values)]
            total = float(values.sum())
        n = int(values.size)
        if n == 0:
            return
        low = float(values.min())
        high = float(values.max())
        # Clamping keeps log() away from zero and negatives and every index within the
        # buckets; it is skipped in the common case where nothing needs it.
        if low < self._lowest:
            values = np.maximum(values, self._lowest)
        if high > self._highest:
            self._overflow += int(np.count_nonzero(values > self._highest))
            values = np.minimum(values, self._highest)
        scaled = np.log(values)
        scaled -= self._log_lowest
        scaled *= self._inv_log_gamma
        # The cast truncates: a floor for these non-negative numbers (a rounding of
        # -1e-16 at the bottom edge also lands in bucket 0).
        index = scaled.astype(np.intp)
        if high >= self._near_top:
            np.minimum(index, len(self._counts) - 1, out=index)
        if n * 8 < len(self._counts):
            np.add.at(self._counts, index, 1)
        else:
            self._counts += np.bincount(index, minlength=len(self._counts))
        self._count += n
        self._sum += total
        self._min = min(self._min, low)
        self._max = max(self._max, high)
        self._cumulative = None

    def _value_at_rank(self, rank: npt.NDArray[np.int64]) -> FloatArray:
        """Estimate of the ``rank``-th smallest value (0-based), exact at both ends."""
        if self._cumulative is None:
            self._cumulative = np.cumsum(self._counts)
        bucket = np.searchsorted(self._cumulative, rank, side="right")
        estimate = np.clip(self._representatives[bucket], self._min, self._max)
        estimate[rank == 0] = self._min
        estimate[rank == self._count - 1] = self._max
        return estimate
