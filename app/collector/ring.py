"""A fixed-capacity ring of numpy records, shared by the tick cache and the bar history.

Capture runs for days; anything that keeps "the recent past" must stop growing once it
holds enough. A preallocated structured array written with slice copies gives that with
no per-record Python objects and no reallocation after the first append.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

RecordArray = npt.NDArray[np.void]


class StructRing:
    """The newest ``capacity`` records of a stream of structured arrays, oldest dropped.

    The buffer is allocated on the first append, at full capacity, with ``np.empty``:
    a symbol that never ticks costs nothing, and one that does is never reallocated.
    Because ``np.empty`` does not touch its pages, the resident size still grows only
    as far as the ring has been written.
    """

    __slots__ = ("_buf", "_capacity", "_dtype", "_head", "_size", "_total")

    def __init__(self, dtype: np.dtype[np.void], capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"ring capacity must be >= 1, got {capacity}")
        self._dtype = dtype
        self._capacity = int(capacity)
        self._buf: RecordArray | None = None
        self._head = 0  # index the next record is written to
        self._size = 0
        self._total = 0

    @property
    def dtype(self) -> np.dtype[np.void]:
        return self._dtype

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def total_appended(self) -> int:
        """Records ever appended, including those since overwritten."""
        return self._total

    @property
    def nbytes(self) -> int:
        """Bytes reserved by the buffer: 0 before the first append, then constant."""
        return 0 if self._buf is None else int(self._buf.nbytes)

    def __len__(self) -> int:
        return self._size

    def append(self, records: RecordArray) -> None:
        """Copy ``records`` in; when more than ``capacity`` arrive, only the newest survive."""
        n = len(records)
        if n == 0:
            return
        if records.dtype != self._dtype:
            raise TypeError(f"expected dtype {self._dtype}, got {records.dtype}")
        buf = self._buf
        if buf is None:
            buf = self._buf = np.empty(self._capacity, dtype=self._dtype)
        cap = self._capacity
        self._total += n
        if n >= cap:
            buf[:] = records[n - cap :]
            self._head = 0
            self._size = cap
            return
        head = self._head
        first = min(n, cap - head)
        buf[head : head + first] = records[:first]
        if first < n:
            buf[: n - first] = records[first:]
        self._head = (head + n) % cap
        self._size = min(self._size + n, cap)

    def snapshot(self, n: int | None = None) -> RecordArray:
        """The newest ``n`` records (all if ``None``) oldest first, as a fresh array.

        A copy, never a view, so that a reader may keep it while the ring wraps.
        """
        m = self._size if n is None else max(0, min(int(n), self._size))
        buf = self._buf
        if m == 0 or buf is None:
            return np.empty(0, dtype=self._dtype)
        start = (self._head - m) % self._capacity
        end = start + m
        if end <= self._capacity:
            return buf[start:end].copy()
        return np.concatenate((buf[start:], buf[: end - self._capacity]))

    def clear(self) -> None:
        """Forget the records but keep the buffer, so a restart does not reallocate."""
        self._head = 0
        self._size = 0
