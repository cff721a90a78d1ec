"""Export ticks or bars of one symbol to a file: the function the window and the CLI call.

Sources, all giving :data:`~app.ticks.TICK_DTYPE` ticks in time order:

* a running :class:`~app.collector.Collector` (what is in its in-memory cache);
* the reference backend's database (:class:`~app.server.store.TickStore`, or its
  path): every stored tick of the symbol, across sessions, ordered by time;
* MT5 tick export files (or replay files): read with the streaming reader.

Outputs: the MT5 export layout (``mt5``, read back by MT5 and by this project), plain
CSV (``csv``) or Parquet (``parquet``, with the optional ``pyarrow``). Bars are built
from the ticks (:mod:`app.terminal.export_files.rates`: bid prices, spread in points).

Server time: files are written in the server's time, like the terminal's own exports
(docs/time.md). The collector and the database hold UTC, so their exports take the
symbol's ``zone``: ticks are converted on the way out, bars are cut at the server's
boundaries, and ``start_msc``/``end_msc`` are server time (as a trader reads MT5).
Export files are already in server time and are passed through (``zone`` None).

Blocking (file I/O); a window runs it in a worker thread and shows ``progress``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeAlias

import numpy as np

from app.collector import Collector
from app.servertime import ServerTimeZone
from app.terminal.export_files import (
    ExportReader,
    FileFormat,
    RatesBuilder,
    TextEncoding,
    read_time_span,
    timeframe_ms,
)
from app.terminal.export_files.formats import RATES_DTYPE
from app.terminal.export_files.writer import (
    BarFileWriter,
    TickFileWriter,
    write_parquet,
)
from app.ticks import TICK_DTYPE, TickArray

if TYPE_CHECKING:
    # Imported when used: ``app.server`` brings aiohttp and the whole reference backend
    # (~0.2 s of CPU, 0.5 s and more under load) into the window's cold start otherwise.
    from app.server.store import TickStore

__all__ = [
    "ExportCancelledError",
    "ExportProgress",
    "ProgressCallback",
    "TickSource",
    "export_bars",
    "export_ticks",
    "infer_digits",
    "server_time_ticks",
    "source_ticks",
]

#: Ticks handed to the writer at a time (and between two progress calls).
CHUNK: Final = 200_000

TickSource: TypeAlias = "Collector | TickStore | Path | str | Sequence[Path | str]"


@dataclass(frozen=True, slots=True)
class ExportProgress:
    """Where an export stands; ``fraction`` is by time when the span is known."""

    rows: int
    done_msc: int
    start_msc: int
    end_msc: int
    finished: bool = False

    @property
    def fraction(self) -> float:
        if self.finished:
            return 1.0
        span = self.end_msc - self.start_msc
        if span <= 0:
            return 0.0
        return min(1.0, max(0.0, (self.done_msc - self.start_msc) / span))


#: Called after each chunk; returning ``False`` aborts the export.
ProgressCallback = Callable[[ExportProgress], bool | None]


class ExportCancelledError(RuntimeError):
    """The progress callback asked to stop; the partial file was removed."""


def _in_range(ticks: TickArray, start_msc: int | None, end_msc: int | None) -> TickArray:
    tm = ticks["time_msc"]
    lo = 0 if start_msc is None else int(np.searchsorted(tm, start_msc, side="left"))
    hi = len(ticks) if end_msc is None else int(np.searchsorted(tm, end_msc, side="left"))
    return ticks[lo:hi]


def _chunks(ticks: TickArray) -> Iterator[TickArray]:
    for lo in range(0, len(ticks), CHUNK):
        yield ticks[lo : lo + CHUNK]


def source_ticks(
    source: TickSource,
    symbol: str,
    start_msc: int | None = None,
    end_msc: int | None = None,
    *,
    client_id: str | None = None,
) -> Iterator[TickArray]:
    """Ticks of ``symbol`` with ``start_msc <= time_msc < end_msc``, in chunks, in order."""
    from app.server.store import TickStore  # noqa: PLC0415 - see the TYPE_CHECKING import

    if isinstance(source, Collector):
        yield from _chunks(_in_range(source.cache.snapshot(symbol), start_msc, end_msc))
        return
    if isinstance(source, TickStore):
        ticks = source.read_ticks(client_id=client_id, symbol=symbol)
        order = np.argsort(ticks["time_msc"], kind="stable")
        yield from _chunks(_in_range(ticks[order], start_msc, end_msc))
        return
    paths = [Path(source)] if isinstance(source, str | Path) else [Path(p) for p in source]
    if len(paths) == 1 and paths[0].suffix.lower() in (".sqlite", ".db", ".sqlite3"):
        with TickStore(paths[0]) as store:
            yield from source_ticks(store, symbol, start_msc, end_msc, client_id=client_id)
        return
    if len(paths) > 1:
        paths.sort(key=lambda p: read_time_span(p)[0])
    for path in paths:
        reader = ExportReader(path)
        if reader.kind != "ticks":
            raise ValueError(f"{path} is a bar export; ticks are needed")
        for part in reader:
            yield _in_range(part, start_msc, end_msc)


def _utc_bounds(
    zone: ServerTimeZone | None, start_msc: int | None, end_msc: int | None
) -> tuple[int | None, int | None]:
    """Server-time bounds as UTC: the start's earlier pass, the end's later pass (an
    ambiguous autumn hour is taken whole)."""
    if zone is None:
        return start_msc, end_msc
    lo = None if start_msc is None else int(zone.to_utc_ms(np.array([start_msc], np.int64))[0])
    hi = (
        None
        if end_msc is None
        else int(zone.to_utc_ms(np.array([end_msc], np.int64), later=True)[0])
    )
    return lo, hi


def server_time_ticks(
    source: TickSource,
    symbol: str,
    zone: ServerTimeZone | None,
    start_msc: int | None = None,
    end_msc: int | None = None,
    *,
    client_id: str | None = None,
) -> Iterator[TickArray]:
    """:func:`source_ticks` stamped in ``zone``'s server time (bounds in server time too);
    ``zone`` None: the source already is in server time (export files)."""
    lo, hi = _utc_bounds(zone, start_msc, end_msc)
    for chunk in source_ticks(source, symbol, lo, hi, client_id=client_id):
        if zone is None or not len(chunk):
            yield chunk
            continue
        out = chunk.copy()
        out["time_msc"] = zone.to_server_ms(chunk["time_msc"])
        out["time"] = out["time_msc"] // 1000
        yield out


def infer_digits(ticks: TickArray, max_digits: int = 8) -> int:
    """The fewest decimals that write every bid and ask exactly (a symbol's ``digits``)."""
    sample = np.concatenate((ticks["bid"][:10_000], ticks["ask"][:10_000]))
    for digits in range(max_digits + 1):
        scaled = sample * 10.0**digits
        if np.all(np.abs(scaled - np.round(scaled)) < 1e-6):
            return digits
    return max_digits


def _report(
    progress: ProgressCallback | None,
    rows: int,
    done: int,
    start: int | None,
    end: int | None,
    *,
    finished: bool = False,
) -> None:
    if progress is None:
        return
    state = ExportProgress(rows, done, start or 0, end or 0, finished)
    if progress(state) is False:
        raise ExportCancelledError("export cancelled")


def export_ticks(
    source: TickSource,
    symbol: str,
    path: Path | str,
    *,
    start_msc: int | None = None,
    end_msc: int | None = None,
    fmt: FileFormat = "mt5",
    digits: int | None = None,
    encoding: TextEncoding = "utf-8",
    client_id: str | None = None,
    progress: ProgressCallback | None = None,
    zone: ServerTimeZone | None = None,
) -> int:
    """Write the ticks of ``symbol`` in [start, end) to ``path``; returns rows written.

    ``digits`` None writes prices as the shortest exact text (MT5 would write the
    symbol's digits; pass them for identical files). ``zone``: the UTC source's ticks
    are written in this server time (the module doc).
    """
    out = Path(path)
    rows = 0
    chunks = server_time_ticks(source, symbol, zone, start_msc, end_msc, client_id=client_id)
    try:
        if fmt == "parquet":

            def counted() -> Iterator[TickArray]:
                nonlocal rows
                for chunk in chunks:
                    rows += len(chunk)
                    if len(chunk):
                        _report(progress, rows, int(chunk["time_msc"][-1]), start_msc, end_msc)
                    yield chunk

            write_parquet(out, counted(), TICK_DTYPE)
        else:
            with TickFileWriter(out, fmt=fmt, digits=digits, encoding=encoding) as writer:
                for chunk in chunks:
                    writer.write(chunk)
                    rows += len(chunk)
                    if len(chunk):
                        _report(progress, rows, int(chunk["time_msc"][-1]), start_msc, end_msc)
    except ExportCancelledError:
        with contextlib.suppress(OSError):
            out.unlink()
        raise
    _report(progress, rows, end_msc or 0, start_msc, end_msc, finished=True)
    return rows


def export_bars(
    source: TickSource,
    symbol: str,
    path: Path | str,
    timeframe: str,
    *,
    start_msc: int | None = None,
    end_msc: int | None = None,
    fmt: FileFormat = "mt5",
    digits: int | None = None,
    encoding: TextEncoding = "utf-8",
    client_id: str | None = None,
    progress: ProgressCallback | None = None,
    zone: ServerTimeZone | None = None,
) -> int:
    """Write ``timeframe`` bars (M1…MN1) of ``symbol`` built from its ticks; returns bars.

    ``digits`` (also the point of the spread) is inferred from the prices when None.
    D1 and longer bars are written without the ``<TIME>`` column, as MT5 does. ``zone``:
    the UTC source's ticks are cut at that server's boundaries and stamped in its time.
    """
    tf = timeframe_ms(timeframe)
    out = Path(path)
    chunks = server_time_ticks(source, symbol, zone, start_msc, end_msc, client_id=client_id)
    first = next(chunks, None)
    if first is None:
        first = np.zeros(0, dtype=TICK_DTYPE)
    if digits is None:
        digits = infer_digits(first) if len(first) else 5
    builder = RatesBuilder(tf, 10.0**-digits)
    ticks_seen = 0
    bars_out = 0

    def bar_chunks() -> Iterator[np.ndarray[tuple[int], np.dtype[np.void]]]:
        nonlocal ticks_seen
        for chunk in (first, *chunks) if len(first) else chunks:
            ticks_seen += len(chunk)
            done = builder.add(chunk)
            if len(chunk):
                _report(progress, ticks_seen, int(chunk["time_msc"][-1]), start_msc, end_msc)
            if len(done):
                yield done
        last = builder.finish()
        if len(last):
            yield last

    try:
        if fmt == "parquet":
            bars_out = write_parquet(out, bar_chunks(), RATES_DTYPE)
        else:
            with BarFileWriter(
                out, fmt=fmt, digits=digits, with_time=tf < 86_400_000, encoding=encoding
            ) as writer:
                for bars in bar_chunks():
                    writer.write(bars)
                bars_out = writer.rows
    except ExportCancelledError:
        with contextlib.suppress(OSError):
            out.unlink()
        raise
    _report(progress, ticks_seen, end_msc or 0, start_msc, end_msc, finished=True)
    return bars_out


def parse_time(text: str) -> int:
    """Epoch ms of ``2024-01-02``, ``2024-01-02T10:00[:00[.123]]``, ``2024.01.02 10:00``
    or plain epoch milliseconds, as a server-time stamp: the wall time is read as if it
    were UTC, which is how server-time stamps are held (``time_msc`` of an export)."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    iso = value.replace(".", "-", 2) if value[4:5] == "." else value
    iso = iso.replace(" ", "T")
    try:
        stamp = np.datetime64(iso, "ms")
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time (2024-01-02, 2024-01-02T10:00:00, or epoch ms)"
        ) from None
    ms = int(stamp.astype(np.int64))
    if not math.isfinite(ms):
        raise ValueError(f"{text!r} is not a time")
    return ms
