"""Bounded time series behind the monitor's charts, with CSV and JSON export.

The charts show the last hour at 1 s resolution and the day at 1 min, for a handful of
series (ticks/s, p99 latency, queue depth, CPU…), for as long as the client runs. So
memory must not grow with uptime: each series keeps one numpy ring per resolution
(``capacity`` slots of ``seconds`` each), allocated once, and a slot is reused when the
ring comes round to it again.

Aggregation: values recorded into the same slot are **averaged** (sum and count are
kept). The mean is what a rate or a gauge sampled several times a second should show, and
it downsamples consistently: every resolution is fed the raw records, so a 1 min point is
the count-weighted mean of the 1 s points of that minute (exactly their mean when there
is one record a second). A chart that needs peaks records a max-so-far series itself.

Horizon: a resolution shows the ``capacity`` slots ending at the newest slot recorded in
*any* series, so a series that stopped updating shows its old points ageing out with the
others instead of lingering as if current.

Recording keeps the slot still filling in plain Python numbers and writes it into the
numpy ring only when the next slot starts or someone reads: that makes a record about a
microsecond instead of a handful of numpy scalar writes. Not thread-safe: one owner.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from app.clock import SYSTEM_CLOCK, Clock

FloatArray = npt.NDArray[np.float64]
#: ``(times, {name: values})``: aligned columns, NaN where a series has no point.
Table = tuple[FloatArray, dict[str, FloatArray]]

#: One resolution: ``(slot seconds, slots kept)``.
Resolution = tuple[float, int]
DEFAULT_RESOLUTIONS: tuple[Resolution, ...] = ((1.0, 3600), (60.0, 1440))

_EMPTY = np.iinfo(np.int64).min  # slot id of a ring position never written


class _Ring:
    """One series at one resolution: slot ids, sums and counts in fixed numpy arrays."""

    __slots__ = ("capacity", "count", "counts", "seconds", "slot", "slots", "sum", "sums")

    def __init__(self, seconds: float, capacity: int) -> None:
        self.seconds = seconds
        self.capacity = capacity
        self.slots: npt.NDArray[np.int64] = np.full(capacity, _EMPTY, dtype=np.int64)
        self.sums: FloatArray = np.zeros(capacity, dtype=np.float64)
        self.counts: npt.NDArray[np.uint32] = np.zeros(capacity, dtype=np.uint32)
        # The slot still filling, kept in Python numbers until it is written.
        self.slot = _EMPTY
        self.sum = 0.0
        self.count = 0

    @property
    def nbytes(self) -> int:
        return self.slots.nbytes + self.sums.nbytes + self.counts.nbytes

    def write_current(self) -> None:
        """Put the slot still filling into the arrays (idempotent: assignment, not +=)."""
        if self.count:
            position = self.slot % self.capacity
            self.slots[position] = self.slot
            self.sums[position] = self.sum
            self.counts[position] = self.count

    def add_late(self, slot: int, value: float) -> None:
        """A value for a slot before the one filling: into the ring if still kept."""
        if slot <= self.slot - self.capacity:
            return  # older than the ring reaches
        position = slot % self.capacity
        held = int(self.slots[position])
        if held == slot:
            self.sums[position] += value
            self.counts[position] += 1
        elif held < slot:
            self.slots[position] = slot
            self.sums[position] = value
            self.counts[position] = 1


class SeriesHistory:
    """Named time series at several resolutions, fixed memory per series.

    ``resolutions``: ``(slot seconds, slots kept)`` pairs, default 1 s for an hour and
    1 min for a day. Times are wall-clock epoch seconds (charts label real times); a point
    is stamped with the start of its slot.
    """

    def __init__(
        self,
        resolutions: Sequence[tuple[float, int]] = DEFAULT_RESOLUTIONS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not resolutions:
            raise ValueError("at least one resolution is needed")
        seconds = [float(s) for s, _ in resolutions]
        if len(set(seconds)) != len(seconds):
            raise ValueError(f"resolutions repeat a slot length: {seconds}")
        for s, capacity in resolutions:
            if not s > 0 or capacity < 1:
                raise ValueError(f"bad resolution ({s}, {capacity})")
        self.resolutions: tuple[Resolution, ...] = tuple((float(s), int(c)) for s, c in resolutions)
        self._clock = clock
        self._index = {s: i for i, (s, _) in enumerate(self.resolutions)}
        self._series: dict[str, list[_Ring]] = {}
        # Newest slot recorded in any series, per resolution: the end of the horizon.
        self._latest: list[int] = [_EMPTY] * len(self.resolutions)

    # -- recording -----------------------------------------------------------------------

    def record(self, name: str, value: float, t: float | None = None) -> None:
        """Add ``value`` to series ``name`` at wall time ``t`` (default: the clock's now).

        Values in one slot are averaged. NaN is ignored (it would poison the slot's mean);
        a value older than a ring reaches is dropped from that ring only.
        """
        if math.isnan(value):
            return
        if t is None:
            t = self._clock.time()
        rings = self._series.get(name)
        if rings is None:
            rings = self._series[name] = [_Ring(s, c) for s, c in self.resolutions]
        for i, ring in enumerate(rings):
            slot = math.floor(t / ring.seconds)
            if slot == ring.slot:
                ring.sum += value
                ring.count += 1
            elif slot > ring.slot:
                ring.write_current()
                ring.slot = slot
                ring.sum = value
                ring.count = 1
                self._latest[i] = max(self._latest[i], slot)
            else:
                ring.add_late(slot, value)

    # -- reading -------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Series names in the order they were first recorded."""
        return list(self._series)

    def __contains__(self, name: object) -> bool:
        return name in self._series

    def __len__(self) -> int:
        return len(self._series)

    @property
    def nbytes(self) -> int:
        """Bytes held by the rings: fixed per series, whatever the uptime."""
        return sum(ring.nbytes for rings in self._series.values() for ring in rings)

    def series(
        self, name: str, resolution: float = 1.0, *, dense: bool = False
    ) -> tuple[FloatArray, FloatArray]:
        """``(times, values)`` of ``name`` within the horizon, oldest first.

        Only slots that hold a value, unless ``dense``: then every slot from the oldest
        point to the horizon's end, NaN in the gaps (a chart then breaks its line there).
        Raises ``KeyError`` for an unknown name, ``ValueError`` for an unknown resolution.
        """
        i = self._resolution_index(resolution)
        ring = self._series[name][i]
        ring.write_current()
        latest = self._latest[i]
        kept = np.flatnonzero((ring.slots > latest - ring.capacity) & (ring.counts > 0))
        slots = ring.slots[kept]
        order = np.argsort(slots)
        kept = kept[order]
        slots = slots[order]
        values: FloatArray = ring.sums[kept] / ring.counts[kept]
        if dense and slots.size:
            slots_dense = np.arange(int(slots[0]), latest + 1, dtype=np.int64)
            filled = np.full(slots_dense.size, np.nan)
            filled[slots - slots_dense[0]] = values
            slots, values = slots_dense, filled
        times: FloatArray = slots.astype(np.float64)
        times *= ring.seconds
        return times, values

    def table(self, names: Iterable[str] | None = None, resolution: float = 1.0) -> Table:
        """Series side by side: one row per time any of them has a point, NaN elsewhere."""
        chosen = self.names() if names is None else list(names)
        columns = [self.series(name, resolution) for name in chosen]
        if columns:
            times = np.unique(np.concatenate([t for t, _ in columns]))
        else:
            times = np.empty(0, dtype=np.float64)
        aligned: dict[str, FloatArray] = {}
        for name, (t, v) in zip(chosen, columns, strict=True):
            column = np.full(times.size, np.nan)
            column[np.searchsorted(times, t)] = v
            aligned[name] = column
        return times, aligned

    def restore(
        self, resolution: float, times: Sequence[float], columns: dict[str, Sequence[float | None]]
    ) -> None:
        """Put back points saved at one resolution (what :meth:`table` gave), into that
        resolution's rings only: an hour of 1 s points must not reappear as 1 min points,
        nor a day of 1 min points as 1 s points. ``None``/NaN is a gap."""
        i = self._resolution_index(resolution)
        seconds = self.resolutions[i][0]
        for name, values in columns.items():
            rings = self._series.get(name)
            if rings is None:
                rings = self._series[name] = [_Ring(s, c) for s, c in self.resolutions]
            ring = rings[i]
            for t, value in zip(times, values, strict=True):
                if value is None or math.isnan(value):
                    continue
                slot = math.floor(t / seconds)
                if slot > ring.slot:
                    ring.write_current()
                    ring.slot, ring.sum, ring.count = slot, float(value), 1
                    self._latest[i] = max(self._latest[i], slot)
                elif slot == ring.slot:
                    ring.sum += float(value)
                    ring.count += 1
                else:
                    ring.add_late(slot, float(value))

    def clear(self) -> None:
        """Forget every series (memory is released with them)."""
        self._series.clear()
        self._latest = [_EMPTY] * len(self.resolutions)

    # -- export --------------------------------------------------------------------------

    def to_csv(
        self,
        path_or_file: str | os.PathLike[str] | IO[str],
        names: Iterable[str] | None = None,
        resolution: float = 1.0,
    ) -> None:
        """Write ``time,<name>…`` rows (epoch seconds; empty cell for a gap).

        Floats are written with ``repr`` so :func:`read_csv` gives back the same numbers.
        """
        times, columns = self.table(names, resolution)
        with _open_text(path_or_file, "w") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["time", *columns])
            values = list(columns.values())
            for row, t in enumerate(times.tolist()):
                writer.writerow([repr(t), *(_cell(v[row]) for v in values)])

    def to_json(
        self,
        path_or_file: str | os.PathLike[str] | IO[str],
        names: Iterable[str] | None = None,
        resolution: float = 1.0,
    ) -> None:
        """Write ``{"resolution", "time": [...], "series": {name: [value | null]}}``.

        Columnar, like the CSV, because that is what a chart or pandas reads; JSON has no
        NaN, so a gap is ``null``.
        """
        times, columns = self.table(names, resolution)
        document = {
            "resolution": float(resolution),
            "time": times.tolist(),
            "series": {
                name: [None if math.isnan(v) else v for v in column.tolist()]
                for name, column in columns.items()
            },
        }
        with _open_text(path_or_file, "w") as out:
            json.dump(document, out, allow_nan=False)

    def _resolution_index(self, resolution: float) -> int:
        i = self._index.get(float(resolution))
        if i is None:
            kept = [s for s, _ in self.resolutions]
            raise ValueError(f"no {resolution} s resolution; kept: {kept}")
        return i


def read_csv(path_or_file: str | os.PathLike[str] | IO[str]) -> Table:
    """Read back what :meth:`SeriesHistory.to_csv` wrote (empty cells → NaN)."""
    with _open_text(path_or_file, "r") as src:
        reader = csv.reader(src)
        header = next(reader, None)
        if not header or header[0] != "time":
            raise ValueError("not a series CSV: the first column must be 'time'")
        rows = list(reader)
    times = np.array([float(r[0]) for r in rows], dtype=np.float64)
    columns = {
        name: np.array([float(r[c]) if r[c] else math.nan for r in rows], dtype=np.float64)
        for c, name in enumerate(header[1:], start=1)
    }
    return times, columns


def read_json(path_or_file: str | os.PathLike[str] | IO[str]) -> Table:
    """Read back what :meth:`SeriesHistory.to_json` wrote (null → NaN)."""
    with _open_text(path_or_file, "r") as src:
        document: dict[str, Any] = json.load(src)
    times = np.array(document["time"], dtype=np.float64)
    columns = {
        name: np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        for name, values in document["series"].items()
    }
    return times, columns


def _cell(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


@contextmanager
def _open_text(target: str | os.PathLike[str] | IO[str], mode: str) -> Iterator[IO[str]]:
    """A path is opened (and closed) here; an open file is used as it is, left open."""
    if isinstance(target, str | os.PathLike):
        with open(target, mode, encoding="utf-8", newline="") as f:
            yield f
    else:
        yield target
