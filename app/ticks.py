"""The one tick type of the project.

Ticks never travel as one Python object each: they live in numpy structured arrays
with exactly the dtype that ``MetaTrader5.copy_ticks_*`` returns, so a batch read from a
real terminal, the simulated one or a replay file flows through the pipeline unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: The dtype of ``MetaTrader5.copy_ticks_from`` / ``copy_ticks_range`` results.
TICK_DTYPE: np.dtype[np.void] = np.dtype(
    [
        ("time", "<i8"),
        ("bid", "<f8"),
        ("ask", "<f8"),
        ("last", "<f8"),
        ("volume", "<u8"),
        ("time_msc", "<i8"),
        ("flags", "<u4"),
        ("volume_real", "<f8"),
    ]
)

TickArray = npt.NDArray[np.void]
"""A 1-d structured array of :data:`TICK_DTYPE`, ordered by ``time_msc``."""


def empty_ticks(n: int = 0) -> TickArray:
    """A zero-filled tick array of length ``n``."""
    return np.zeros(n, dtype=TICK_DTYPE)


def as_ticks(data: npt.NDArray[np.void]) -> TickArray:
    """Check that ``data`` carries the MT5 tick dtype and return it as a contiguous array.

    Raises ``TypeError`` naming both dtypes, so that a terminal that returns something
    else is caught at the boundary and not deep in the collector.
    """
    if data.dtype != TICK_DTYPE:
        raise TypeError(f"expected tick dtype {TICK_DTYPE}, got {data.dtype}")
    return np.ascontiguousarray(data)


@dataclass(frozen=True, slots=True)
class TickBatch:
    """Ticks of one symbol captured in one poll by one worker."""

    symbol: str
    ticks: TickArray
    worker_id: int = 0
    #: Wall-clock seconds at which the worker read the batch from its terminal.
    captured_at: float = 0.0

    def __len__(self) -> int:
        return len(self.ticks)

    @property
    def first_msc(self) -> int:
        return int(self.ticks["time_msc"][0]) if len(self.ticks) else 0

    @property
    def last_msc(self) -> int:
        return int(self.ticks["time_msc"][-1]) if len(self.ticks) else 0


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """What the client needs to know about a symbol to render and aggregate its ticks."""

    name: str
    digits: int
    point: float
    description: str = ""
    currency_base: str = ""
    currency_profit: str = ""
