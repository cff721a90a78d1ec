"""The bounded in-memory tick cache: the newest ticks of every symbol, in flat memory.

The UI charts and late subscribers need "the last N ticks" without asking a terminal
again, but a capture that runs for days must not grow: each symbol gets one ring of
fixed capacity, allocated on its first tick and never resized.
"""

from __future__ import annotations

from collections.abc import Iterator

from app.collector.ring import StructRing
from app.ticks import TICK_DTYPE, TickArray, empty_ticks


class TickRing(StructRing):
    """A :class:`StructRing` of :data:`~app.ticks.TICK_DTYPE` records."""

    __slots__ = ()

    def __init__(self, capacity: int) -> None:
        super().__init__(TICK_DTYPE, capacity)


class TickCache:
    """One :class:`TickRing` per symbol, created on first use.

    Memory is bounded by ``capacity_per_symbol * TICK_DTYPE.itemsize`` per symbol seen;
    once a ring is full, appending moves no memory boundary at all.
    """

    def __init__(self, capacity_per_symbol: int) -> None:
        if capacity_per_symbol < 1:
            raise ValueError(f"capacity_per_symbol must be >= 1, got {capacity_per_symbol}")
        self._capacity = int(capacity_per_symbol)
        self._rings: dict[str, TickRing] = {}

    @property
    def capacity_per_symbol(self) -> int:
        return self._capacity

    def ring(self, symbol: str) -> TickRing:
        """The ring of ``symbol``, created (empty, unallocated) if it did not exist."""
        ring = self._rings.get(symbol)
        if ring is None:
            ring = self._rings[symbol] = TickRing(self._capacity)
        return ring

    def append(self, symbol: str, ticks: TickArray) -> None:
        self.ring(symbol).append(ticks)

    def snapshot(self, symbol: str, n: int | None = None) -> TickArray:
        """The newest ``n`` ticks of ``symbol`` oldest first; empty for an unknown symbol."""
        ring = self._rings.get(symbol)
        if ring is None:
            return empty_ticks(0)
        return ring.snapshot(n)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._rings)

    @property
    def nbytes(self) -> int:
        """Bytes reserved by all rings together."""
        return sum(r.nbytes for r in self._rings.values())

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._rings

    def __len__(self) -> int:
        """Number of symbols with a ring."""
        return len(self._rings)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._rings))
