"""Writers of tick and bar files: the MT5 export layout, plain CSV, and Parquet.

The MT5 layout is written exactly as the terminal writes it, so that the terminal's own
tools, other programs reading MT5 exports and :mod:`~app.terminal.export_files.reader`
all read our files: a price or volume that did not change is left empty. A field is
written when the tick's flag says it changed, when it differs from the previous row,
and (bid and ask) in the first row, so reading a file back gives the very same values.

Writers are streaming (``write`` a chunk at a time, the empty-field state carries over)
and format dates with numpy; the per-row work left in Python is one ``join``.
"""

from __future__ import annotations

import codecs
import importlib
import math
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType, TracebackType
from typing import IO, Final, Literal, Self

import numpy as np
import numpy.typing as npt

from app.terminal.constants import TICK_FLAG_ASK, TICK_FLAG_BID, TICK_FLAG_LAST, TICK_FLAG_VOLUME
from app.terminal.export_files.formats import (
    BAR_HEADER,
    BAR_HEADER_NO_TIME,
    RATES_DTYPE,
    TICK_HEADER,
    RatesArray,
)
from app.ticks import TICK_DTYPE, TickArray

__all__ = [
    "BarFileWriter",
    "ExportUnavailableError",
    "FileFormat",
    "TextEncoding",
    "TickFileWriter",
    "parquet_available",
    "write_bars",
    "write_parquet",
    "write_ticks",
]

#: "mt5": the terminal's tab-separated export; "csv": plain comma-separated, every field
#: filled; "parquet": columnar, needs the optional ``pyarrow`` package.
FileFormat = Literal["mt5", "csv", "parquet"]
#: "utf-8" without BOM and LF (default), or "utf-16": UTF-16 LE with BOM and CRLF, as
#: the terminal itself writes.
TextEncoding = Literal["utf-8", "utf-16"]

_PARQUET_MISSING: Final = (
    "Parquet needs the optional pyarrow package (pip install pyarrow); "
    "use --format mt5 or csv otherwise"
)


class ExportUnavailableError(RuntimeError):
    """The requested output cannot be produced here (a missing optional package)."""


def _open_text(path: Path, encoding: TextEncoding, crlf: bool | None) -> IO[str]:
    newline = "\r\n" if (crlf if crlf is not None else encoding == "utf-16") else "\n"
    if encoding == "utf-16":
        f = open(path, "w", encoding="utf-16-le", newline=newline)  # noqa: SIM115 - returned
        f.write(codecs.BOM_UTF16_LE.decode("utf-16-le"))
        return f
    return open(path, "w", encoding="utf-8", newline=newline)


def _stamps(time_msc: npt.NDArray[np.int64], with_ms: bool, sep: str) -> list[str]:
    """``YYYY.MM.DD<sep>HH:MM:SS[.mmm]`` per time, formatted by numpy in C."""
    if with_ms:
        text = np.datetime_as_string(time_msc.astype("datetime64[ms]"), unit="ms")
    else:
        text = np.datetime_as_string((time_msc // 1000).astype("datetime64[s]"), unit="s")
    raw = np.ascontiguousarray(text.astype("S"))
    width = raw.dtype.itemsize
    chars = raw.view(np.uint8).reshape(len(raw), width)
    chars[:, 4] = chars[:, 7] = ord(".")
    chars[:, 10] = ord(sep)
    return [s.decode("ascii") for s in chars.view(f"S{width}").ravel().tolist()]


def _fmt_prices(values: npt.NDArray[np.float64], digits: int | None) -> list[str]:
    if digits is None:
        return [repr(v) for v in values.tolist()]
    fmt = f"{{:.{digits}f}}".format
    return [fmt(v) for v in values.tolist()]


def _fmt_volume(values: npt.NDArray[np.float64]) -> list[str]:
    return [str(int(v)) if v.is_integer() else repr(v) for v in values.tolist()]


class _TextFileWriter:
    """What tick and bar writers share: the open text file, the rows written so far, and
    closing it (also as a context manager), written once so the two cannot drift apart.
    """

    def __init__(
        self,
        path: Path | str,
        fmt: Literal["mt5", "csv"],
        digits: int | None,
        encoding: TextEncoding,
        crlf: bool | None,
    ) -> None:
        self.path = Path(path)
        self.fmt = fmt
        self.digits = digits
        self.rows = 0
        self._f = _open_text(self.path, encoding, crlf)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class TickFileWriter(_TextFileWriter):
    """Writes ticks chunk by chunk to an MT5 tick export (or plain CSV).

    ``digits`` fixes the decimals of prices as the terminal does (``5`` for EURUSD);
    ``None`` writes the shortest text that reads back as the same float.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        fmt: Literal["mt5", "csv"] = "mt5",
        digits: int | None = None,
        encoding: TextEncoding = "utf-8",
        crlf: bool | None = None,
    ) -> None:
        super().__init__(path, fmt, digits, encoding, crlf)
        self._prev: list[float] | None = None  # bid, ask, last, volume of the last row
        if fmt == "mt5":
            self._f.write("\t".join(TICK_HEADER) + "\n")
        else:
            self._f.write("datetime,time_msc,bid,ask,last,volume,volume_real,flags\n")

    def write(self, ticks: TickArray) -> None:
        if ticks.dtype != TICK_DTYPE:
            raise TypeError(f"expected tick dtype {TICK_DTYPE}, got {ticks.dtype}")
        n = len(ticks)
        if n == 0:
            return
        tm = ticks["time_msc"].astype(np.int64)
        if self.fmt == "csv":
            self._write_csv(ticks, tm)
        else:
            self._write_mt5(ticks, tm)
        self.rows += n

    def _write_mt5(self, ticks: TickArray, tm: npt.NDArray[np.int64]) -> None:
        n = len(ticks)
        flags = ticks["flags"].astype(np.uint32)
        volume = np.where(
            ticks["volume_real"] != 0, ticks["volume_real"], ticks["volume"].astype(np.float64)
        )
        columns: list[list[str]] = []
        specs = (
            (ticks["bid"].astype(np.float64), TICK_FLAG_BID, True),
            (ticks["ask"].astype(np.float64), TICK_FLAG_ASK, True),
            (ticks["last"].astype(np.float64), TICK_FLAG_LAST, False),
            (volume, TICK_FLAG_VOLUME, False),
        )
        prev = self._prev
        new_prev: list[float] = []
        for i, (values, bit, needed_first) in enumerate(specs):
            before = np.empty(n, dtype=np.float64)
            before[1:] = values[:-1]
            write = (flags & np.uint32(bit)) != 0
            if prev is None:
                # bid and ask must be in the first row; last and volume read back as 0.
                before[0] = math.nan if needed_first else 0.0
            else:
                before[0] = prev[i]
            write |= values != before  # NaN != anything: the first row's bid and ask
            text = _fmt_volume(values[write]) if i == 3 else _fmt_prices(values[write], self.digits)
            col = [""] * n
            for j, s in zip(np.flatnonzero(write).tolist(), text, strict=True):
                col[j] = s
            columns.append(col)
            new_prev.append(float(values[-1]))
        self._prev = new_prev
        stamps = _stamps(tm, True, "\t")
        flag_text = [str(f) for f in flags.tolist()]
        lines = map("\t".join, zip(stamps, *columns, flag_text, strict=True))
        self._f.write("\n".join(lines) + "\n")

    def _write_csv(self, ticks: TickArray, tm: npt.NDArray[np.int64]) -> None:
        stamps = _stamps(tm, True, "T")
        iso = [s.replace(".", "-", 2) for s in stamps]
        bid = _fmt_prices(ticks["bid"].astype(np.float64), self.digits)
        ask = _fmt_prices(ticks["ask"].astype(np.float64), self.digits)
        last = _fmt_prices(ticks["last"].astype(np.float64), self.digits)
        vol_real = [repr(v) for v in ticks["volume_real"].astype(np.float64).tolist()]
        rows = zip(
            iso,
            map(str, tm.tolist()),
            bid,
            ask,
            last,
            map(str, ticks["volume"].tolist()),
            vol_real,
            map(str, ticks["flags"].tolist()),
            strict=True,
        )
        self._f.write("\n".join(map(",".join, rows)) + "\n")


class BarFileWriter(_TextFileWriter):
    """Writes bars (:data:`RATES_DTYPE`) chunk by chunk, MT5 layout or plain CSV.

    ``with_time=False`` writes the D1-and-longer layout without the ``<TIME>`` column.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        fmt: Literal["mt5", "csv"] = "mt5",
        digits: int | None = None,
        with_time: bool = True,
        encoding: TextEncoding = "utf-8",
        crlf: bool | None = None,
    ) -> None:
        super().__init__(path, fmt, digits, encoding, crlf)
        self.with_time = with_time
        if fmt == "mt5":
            header = BAR_HEADER if with_time else BAR_HEADER_NO_TIME
            self._f.write("\t".join(header) + "\n")
        else:
            self._f.write("datetime,time,open,high,low,close,tick_volume,spread,real_volume\n")

    def write(self, bars: RatesArray) -> None:
        if bars.dtype != RATES_DTYPE:
            raise TypeError(f"expected rates dtype {RATES_DTYPE}, got {bars.dtype}")
        if not len(bars):
            return
        t = bars["time"].astype(np.int64)
        prices = [_fmt_prices(bars[k].astype(np.float64), self.digits) for k in BAR_PRICES]
        tickvol = map(str, bars["tick_volume"].tolist())
        vol = map(str, bars["real_volume"].tolist())
        spread = map(str, bars["spread"].tolist())
        if self.fmt == "csv":
            iso = [s.replace(".", "-", 2) for s in _stamps(t * 1000, False, "T")]
            rows = zip(iso, map(str, t.tolist()), *prices, tickvol, spread, vol, strict=True)
            self._f.write("\n".join(map(",".join, rows)) + "\n")
        else:
            stamps = _stamps(t * 1000, False, "\t")
            if not self.with_time:
                stamps = [s[:10] for s in stamps]
            rows = zip(stamps, *prices, tickvol, vol, spread, strict=True)
            self._f.write("\n".join(map("\t".join, rows)) + "\n")
        self.rows += len(bars)


BAR_PRICES: Final = ("open", "high", "low", "close")


def write_ticks(
    path: Path | str,
    ticks: TickArray | Iterable[TickArray],
    *,
    fmt: FileFormat = "mt5",
    digits: int | None = None,
    encoding: TextEncoding = "utf-8",
    crlf: bool | None = None,
) -> int:
    """Write ticks (one array or chunks) to ``path``; returns the number of rows."""
    chunks = [ticks] if isinstance(ticks, np.ndarray) else ticks
    if fmt == "parquet":
        return write_parquet(path, chunks, TICK_DTYPE)
    with TickFileWriter(path, fmt=fmt, digits=digits, encoding=encoding, crlf=crlf) as w:
        for chunk in chunks:
            w.write(chunk)
        return w.rows


def write_bars(
    path: Path | str,
    bars: RatesArray | Iterable[RatesArray],
    *,
    fmt: FileFormat = "mt5",
    digits: int | None = None,
    with_time: bool = True,
    encoding: TextEncoding = "utf-8",
    crlf: bool | None = None,
) -> int:
    """Write bars (one array or chunks) to ``path``; returns the number of rows."""
    chunks = [bars] if isinstance(bars, np.ndarray) else bars
    if fmt == "parquet":
        return write_parquet(path, chunks, RATES_DTYPE)
    with BarFileWriter(
        path, fmt=fmt, digits=digits, with_time=with_time, encoding=encoding, crlf=crlf
    ) as w:
        for chunk in chunks:
            w.write(chunk)
        return w.rows


def _pyarrow() -> tuple[ModuleType, ModuleType]:
    try:
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ExportUnavailableError(_PARQUET_MISSING) from None
    return pa, pq


def parquet_available() -> bool:
    """Whether Parquet output works here (the optional ``pyarrow`` package)."""
    try:
        _pyarrow()
    except ExportUnavailableError:
        return False
    return True


def write_parquet(
    path: Path | str, chunks: Iterable[npt.NDArray[np.void]], dtype: np.dtype[np.void]
) -> int:
    """Structured-array chunks to one Parquet file, one column per field, row group per chunk.

    Raises :class:`ExportUnavailableError` (with the install hint) without ``pyarrow``.
    """
    pa, pq = _pyarrow()
    names = list(dtype.names or ())
    schema = pa.schema([(n, pa.from_numpy_dtype(dtype[n])) for n in names])
    rows = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        for chunk in chunks:
            if not len(chunk):
                continue
            table = pa.Table.from_arrays([pa.array(chunk[n]) for n in names], schema=schema)
            writer.write_table(table)
            rows += len(chunk)
    return rows
