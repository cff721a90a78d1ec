"""Streaming, vectorised reader of MT5 tick and bar exports.

Exports run to hundreds of MB, so a file is never loaded whole and never parsed one row
at a time in Python: it is read in blocks of whole lines (a few MB), and each block is
parsed with a fixed number of numpy operations whatever its row count:

* newline and tab positions come from ``np.flatnonzero`` over the block's bytes; a row
  with the wrong number of tabs is a bad row, every other row yields a start and an end
  per field;
* dates and times have a fixed width and are decoded by byte arithmetic;
* numbers are gathered into a fixed-width byte matrix, checked against a character
  class table (digits, one dot, a leading minus: so ``nan``, ``inf``, ``1e5`` and
  ``1_0`` are refused, not parsed) and converted with numpy's bytes-to-float cast,
  which rounds exactly like ``float()``;
* empty tick fields are filled from the previous row that had one, by a running
  maximum over row indices (see :func:`_carry`).

Nothing is ever silently invented: a value that would have to be carried forward
across a row that could not be read, or from before the first row, makes its row bad.
Bad rows raise :class:`ExportFormatError` (file, line, field) or, with
``skip_bad_rows=True``, are skipped and counted in the :class:`ReadReport`.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt

from app.terminal.constants import TICK_FLAG_ASK, TICK_FLAG_BID, TICK_FLAG_LAST, TICK_FLAG_VOLUME
from app.terminal.export_files.formats import (
    BAR_HEADER,
    BAR_HEADER_NO_TIME,
    RATES_DTYPE,
    TICK_HEADER,
    ExportFormatError,
    ExportKind,
    RatesArray,
    ReadReport,
)
from app.ticks import TICK_DTYPE, TickArray

__all__ = [
    "ExportReader",
    "ReadResult",
    "read_bars",
    "read_export",
    "read_ticks",
    "read_time_span",
    "sniff",
]

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

#: Bytes read per block; whole lines only are parsed, the rest waits for the next block.
DEFAULT_BLOCK_BYTES: Final = 4 << 20
#: Longest number accepted in a field (MT5 writes at most ~20 characters).
_MAX_NUMBER = 24
#: Zero bytes appended to a block so that fixed-width gathers never run off its end.
_PAD = _MAX_NUMBER + 16
_COLUMNS = np.arange(_MAX_NUMBER, dtype=np.int64)

#: Rows per block whose prices are looked at for the number of decimals (``digits``).
_DIGITS_SAMPLE = 4096

# Character classes of number fields, one bit each so that a row's classes OR together.
_DIGIT, _DOT, _MINUS, _INVALID = 1, 2, 4, 8
_CLASS = np.full(256, _INVALID, dtype=np.uint8)
_CLASS[ord("0") : ord("9") + 1] = _DIGIT
_CLASS[ord(".")] = _DOT
_CLASS[ord("-")] = _MINUS

_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_MIN_YEAR = 1970  # epoch times are never negative in MT5

# Why a row is bad; the first failing field of a row is the one reported.
_R_FIELDS = 1
_R_DATE = 2
_R_TIME = 3
_R_NUMBER = 4
_R_EMPTY = 5
_R_FLAGGED_EMPTY = 6
_R_NO_CARRY = 7
_R_TAINTED = 8
_R_BACKWARDS = 9
_R_RANGE = 10
_REASONS: Final[dict[int, str]] = {
    _R_FIELDS: "has {count} fields, expected {expected}",
    _R_DATE: "{text!r} is not a date YYYY.MM.DD",
    _R_TIME: "{text!r} is not a time {time_format}",
    _R_NUMBER: "{text!r} is not a number",
    _R_EMPTY: "is empty",
    _R_FLAGGED_EMPTY: "is empty although <FLAGS> marks it as changed",
    _R_NO_CARRY: "is empty and no earlier row has a value to carry forward",
    _R_TAINTED: "is empty and the last row that set it could not be read",
    _R_BACKWARDS: "{text!r} is earlier than the row before",
    _R_RANGE: "{text!r} is out of range",
}


@dataclass(frozen=True, slots=True)
class _Layout:
    kind: ExportKind
    header: tuple[str, ...]
    #: Width and template of the TIME field ("" when the file has none).
    time_format: str

    @property
    def nfields(self) -> int:
        return len(self.header)


_TICKS = _Layout("ticks", TICK_HEADER, "HH:MM:SS.mmm")
_BARS = _Layout("bars", BAR_HEADER, "HH:MM:SS")
_BARS_NO_TIME = _Layout("bars", BAR_HEADER_NO_TIME, "")
_LAYOUTS = (_TICKS, _BARS, _BARS_NO_TIME)


@dataclass(frozen=True, slots=True)
class ReadResult:
    """A whole file read: the records and the report (rows, bad rows, digits)."""

    data: npt.NDArray[np.void]
    report: ReadReport

    @property
    def kind(self) -> ExportKind:
        return self.report.kind


# ----------------------------------------------------------------------- bytes → lines


def _detect_encoding(head: bytes) -> tuple[str, int]:
    """The encoding of a file from its first bytes, and the length of its BOM.

    UTF-16 without a BOM is recognised by the zero bytes of its ASCII header.
    """
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    if len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] != 0:
        return "utf-16-le", 0
    if len(head) >= 4 and head[0] == 0 and head[2] == 0 and head[1] != 0:
        return "utf-16-be", 0
    return "utf-8", 0


def _raw_blocks(f: BinaryIO, encoding: str, block_bytes: int) -> Iterator[bytes]:
    """UTF-8 bytes of the file in blocks of whole lines, CRs removed, each ending in LF."""
    decoder = None if encoding == "utf-8" else codecs.getincrementaldecoder(encoding)("replace")
    rest = b""
    while True:
        chunk = f.read(block_bytes)
        final = not chunk
        if decoder is not None:
            # Non-ASCII characters never belong in an export; they stay visible (and
            # invalid) after re-encoding, so the row that holds one is reported.
            chunk = decoder.decode(chunk, final=final).encode("utf-8", "replace")
        data = rest + chunk
        if final:
            if data:
                data = data.replace(b"\r", b"")
                yield data if data.endswith(b"\n") else data + b"\n"
            return
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        rest = data[cut:]
        yield data[:cut].replace(b"\r", b"")


# ----------------------------------------------------------------------- field parsers


@dataclass(slots=True)
class _Rows:
    """The non-blank lines of one block, split into fields."""

    buf: U8
    line: I64  # absolute 1-based line number per row
    starts: I64  # (n, nfields); zero-width fields for rows with the wrong field count
    ends: I64
    widths: I64  # ends - starts
    count_ok: Bools
    nfields_seen: I64
    #: First reason a row is bad (0: good) and the field it concerns.
    reason: npt.NDArray[np.int16]
    field: npt.NDArray[np.int16]

    def __len__(self) -> int:
        return len(self.line)

    def fail(self, mask: Bools, reason: int, field_index: int) -> None:
        """Mark rows bad for ``reason`` unless an earlier field already failed them."""
        new = mask & (self.reason == 0)
        self.reason[new] = reason
        self.field[new] = field_index

    @property
    def bad(self) -> Bools:
        bad: Bools = self.reason != 0
        return bad

    def width(self, k: int) -> I64:
        w: I64 = self.widths[:, k]
        return w

    def text(self, i: int, k: int) -> str:
        raw = bytes(self.buf[self.starts[i, k] : self.ends[i, k]])
        return raw.decode("utf-8", "replace")


def _split(data: bytes, nfields: int, first_line: int) -> _Rows:
    n = len(data)
    buf = np.frombuffer(data + bytes(_PAD), dtype=np.uint8)
    body = buf[:n]
    nl = np.flatnonzero(body == 10)
    ls = np.empty_like(nl)
    if len(nl):
        ls[0] = 0
        ls[1:] = nl[:-1] + 1
    lines = np.arange(first_line, first_line + len(nl), dtype=np.int64)
    keep = nl > ls  # blank lines carry no data and are not rows
    if not keep.all():
        nl, ls, lines = nl[keep], ls[keep], lines[keep]
    tabs = np.flatnonzero(body == 9)
    seen = np.searchsorted(tabs, nl) - np.searchsorted(tabs, ls) + 1
    count_ok = seen == nfields
    m = len(nl)
    if count_ok.all():
        t = tabs.reshape(m, nfields - 1)
        starts = np.empty((m, nfields), dtype=np.int64)
        ends = np.empty((m, nfields), dtype=np.int64)
        starts[:, 0] = ls
        starts[:, 1:] = t + 1
        ends[:, :-1] = t
        ends[:, -1] = nl
    else:
        starts = np.repeat(ls[:, None], nfields, axis=1)
        ends = starts.copy()
        row_of_tab = np.searchsorted(nl, tabs)
        t = tabs[count_ok[row_of_tab]].reshape(-1, nfields - 1)
        starts[count_ok, 1:] = t + 1
        ends[count_ok, :-1] = t
        ends[count_ok, -1] = nl[count_ok]
    rows = _Rows(
        buf,
        lines,
        starts,
        ends,
        ends - starts,
        count_ok,
        seen,
        np.zeros(m, dtype=np.int16),
        np.zeros(m, dtype=np.int16),
    )
    rows.fail(~count_ok, _R_FIELDS, -1)
    return rows


def _fixed_digits(rows: _Rows, k: int, template: bytes) -> tuple[I64, Bools]:
    """Digits of a fixed-width field like ``DDDD.DD.DD`` (D: digit, else literal).

    Returns the digits as an (n, number of D) matrix and which rows matched.
    """
    width = len(template)
    tpl = np.frombuffer(template, dtype=np.uint8)
    digit_at = np.flatnonzero(tpl == ord("D"))
    literal_at = np.flatnonzero(tpl != ord("D"))
    chars = rows.buf[rows.starts[:, k][:, None] + np.arange(width)]
    ok = rows.width(k) == width
    digits = chars[:, digit_at] - np.uint8(48)  # wraps below '0', so one test suffices
    ok &= (digits < 10).all(axis=1)
    ok &= (chars[:, literal_at] == tpl[literal_at]).all(axis=1)
    return digits.astype(np.int64), ok


def _combine(d: I64, cols: slice) -> I64:
    """Digits ``d[:, cols]`` read as one decimal number per row."""
    out = np.zeros(len(d), dtype=np.int64)
    for j in range(cols.start, cols.stop):
        out *= 10
        out += d[:, j]
    return out


def _date_ms(rows: _Rows, k: int) -> tuple[I64, Bools]:
    """Epoch milliseconds of a ``YYYY.MM.DD`` field at midnight (civil-from-days)."""
    d, ok = _fixed_digits(rows, k, b"DDDD.DD.DD")
    year, month, day = _combine(d, slice(0, 4)), _combine(d, slice(4, 6)), _combine(d, slice(6, 8))
    ok &= (year >= _MIN_YEAR) & (month >= 1) & (month <= 12) & (day >= 1)
    month = np.where(ok, month, 1)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    ok &= day <= _DAYS_IN_MONTH[month] + (leap & (month == 2))
    # Howard Hinnant's days_from_civil, vectorised (years >= 1970, so no negative eras).
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146_097 + doe - 719_468
    return days * 86_400_000, ok


def _time_ms(rows: _Rows, k: int, with_ms: bool) -> tuple[I64, Bools]:
    template = b"DD:DD:DD.DDD" if with_ms else b"DD:DD:DD"
    d, ok = _fixed_digits(rows, k, template)
    h, m, s = _combine(d, slice(0, 2)), _combine(d, slice(2, 4)), _combine(d, slice(4, 6))
    ok &= (h < 24) & (m < 60) & (s < 60)
    ms = _combine(d, slice(6, 9)) if with_ms else 0
    return ((h * 60 + m) * 60 + s) * 1000 + ms, ok


def _to_dtype(chars: U8, dtype: type[np.generic]) -> npt.NDArray[np.generic]:
    """Checked number bytes → values, by numpy's string cast (exact, like ``float()``)."""
    if not len(chars):
        return np.zeros(0, dtype=dtype)
    strings = np.ascontiguousarray(chars).view(f"S{chars.shape[1]}").ravel()
    return strings.astype(dtype)


def _numbers(
    rows: _Rows, k: int, dtype: type[np.generic], *, signed: bool = True, integer: bool = False
) -> tuple[npt.NDArray[np.generic], Bools, int]:
    """Values of number field ``k`` (0 where empty or bad), which rows have one, and the
    most fractional digits seen (in a sample of rows). Bad numbers fail their row.

    The field bytes are gathered into an (rows, width) matrix; a class bit per byte
    (digit, dot, minus, invalid) is OR-reduced per row, so checking costs a few passes
    over the matrix however many rows there are.
    """
    width_all = rows.widths[:, k]
    present = width_all > 0
    sel = present & ~rows.bad
    values = np.zeros(len(rows), dtype=dtype)
    if not sel.any():
        return values, present, 0
    idx = np.flatnonzero(sel)
    width = width_all[idx]
    w = int(min(width.max(), _MAX_NUMBER))
    chars = rows.buf[rows.starts[idx, k][:, None] + _COLUMNS[:w]]
    inside = _COLUMNS[:w] < width[:, None]
    cls = _CLASS[chars]
    cls *= inside
    allowed = _MINUS if signed else 0
    ok = (np.bitwise_or.reduce(cls, axis=1) & (_INVALID | (_MINUS & ~allowed))) == 0
    ok &= (np.bitwise_or.reduce(cls[:, 1:], axis=1) & _MINUS) == 0
    dots = (cls == _DOT).sum(axis=1)
    ok &= dots <= (0 if integer else 1)
    ok &= (cls == _DIGIT).any(axis=1)
    ok &= width <= _MAX_NUMBER
    rows.fail(_scatter(len(rows), idx[~ok]), _R_NUMBER, k)
    digits = 0
    if ok.all():
        chars *= inside
        values[idx] = _to_dtype(chars, dtype)
    elif ok.any():
        good = chars[ok]
        good *= inside[ok]
        values[idx[ok]] = _to_dtype(good, dtype)
    if not integer and ok.any():
        sample = np.flatnonzero(ok)[:_DIGITS_SAMPLE]
        has_dot = dots[sample] > 0
        dot_at = np.argmax(cls[sample] == _DOT, axis=1)
        frac = np.where(has_dot, width[sample] - dot_at - 1, 0)
        digits = int(frac.max(initial=0))
    return values, present, digits


def _scatter(n: int, idx: I64) -> Bools:
    mask = np.zeros(n, dtype=np.bool_)
    mask[idx] = True
    return mask


# ----------------------------------------------------------------------- carry forward


@dataclass(slots=True)
class _CarryState:
    """A tick column's value at the end of the rows read so far."""

    value: float = 0.0
    known: bool = False
    #: Whether any row so far had a value in this column (see :func:`_carry`).
    ever_present: bool = False


def _carry(
    values: F64, present: Bools, rows: _Rows, k: int, *, state: _CarryState, bad_before: Bools
) -> F64:
    """Fill empty fields with the value of the latest row that had one.

    A row that could not be read (``bad_before``) may have changed the column, so it
    *taints* it: rows after it that leave the field empty are bad until a readable row
    sets it again. It taints if its field there was non-empty, or, when its fields
    cannot even be told apart (wrong number of tabs), if the file uses the column at
    all: some readable row so far or anywhere in this block (a few MB) has a value
    there. The ``<LAST>`` column of a currency pair is empty throughout, and one bad
    row must not make every later row unreadable. Rows failed *here* still set the
    column from their own, readable value, so skipping cascades no further than needed.
    """
    n = len(values)
    if n == 0:
        return values
    present_ok = present & ~bad_before
    ever = np.maximum.accumulate(present_ok)
    used = state.ever_present or bool(ever[-1])
    taints = bad_before & np.where(rows.count_ok, present, used)
    events = present_ok | taints
    last = np.maximum.accumulate(np.where(events, np.arange(n), -1))
    needs = ~present_ok & ~bad_before
    from_state = needs & (last < 0)
    from_row = needs & (last >= 0)
    safe = np.maximum(last, 0)
    tainted = from_row & taints[safe]
    rows.fail(tainted, _R_TAINTED, k)
    if not state.known:
        rows.fail(from_state, _R_NO_CARRY if not state.ever_present else _R_TAINTED, k)
    out = np.where(from_row, values[safe], values)
    out = np.where(from_state, state.value, out)
    if last[-1] >= 0:
        if taints[last[-1]]:
            state.known = False
        else:
            state.value = float(values[last[-1]])
            state.known = True
    state.ever_present = state.ever_present or bool(ever[-1])
    return out


# ----------------------------------------------------------------------- the reader


class ExportReader:
    """Reads one MT5 export file block by block; iterate for record arrays.

    ``kind`` and ``report.encoding`` are known as soon as the reader is made (the header
    is read then); ``report`` fills in while iterating. Use :func:`read_ticks` or
    :func:`read_bars` for a whole file at once.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        skip_bad_rows: bool = False,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        self.path = Path(path)
        self.skip_bad_rows = skip_bad_rows
        self._block_bytes = max(64, int(block_bytes))
        with open(self.path, "rb") as f:
            head = f.read(4)
        self._encoding, self._bom = _detect_encoding(head)
        self._layout = self._read_header()
        self.report = ReadReport(
            str(self.path),
            self._layout.kind,
            encoding=self._encoding + ("-sig" if self._bom else ""),
            has_time=bool(self._layout.time_format),
        )

    @property
    def kind(self) -> ExportKind:
        return self._layout.kind

    def _open_text_blocks(self, f: BinaryIO) -> Iterator[bytes]:
        f.seek(self._bom)
        return _raw_blocks(f, self._encoding, self._block_bytes)

    def _read_header(self) -> _Layout:
        with open(self.path, "rb") as f:
            f.seek(self._bom)
            raw = f.read(512)
        text = raw.decode(self._encoding, "replace")
        first = text.split("\n", 1)[0].rstrip("\r")
        columns = tuple(first.split("\t"))
        for layout in _LAYOUTS:
            if columns == layout.header:
                return layout
        expected = " or ".join("\\t".join(lay.header) for lay in (_TICKS, _BARS))
        shown = first[:120]
        raise ExportFormatError(
            str(self.path), 1, "header", f"{shown!r} is not an MT5 export header ({expected})"
        )

    def __iter__(self) -> Iterator[npt.NDArray[np.void]]:
        layout = self._layout
        carry = [_CarryState() for _ in range(4)]
        # LAST and VOLUME of a file's first row may be empty for a symbol without deals.
        carry[2].known = carry[3].known = True
        state = _OrderState()
        with open(self.path, "rb") as f:
            line = 1
            first = True
            for block in self._open_text_blocks(f):
                data = block
                if first:
                    data = block[block.find(b"\n") + 1 :]  # the header row
                    first = False
                    line = 2
                if not data:
                    continue
                rows = _split(data, layout.nfields, line)
                line += data.count(b"\n")
                if not len(rows):
                    continue
                if layout.kind == "ticks":
                    out = self._ticks(rows, carry, state)
                else:
                    out = self._bars(rows, state)
                if len(out):
                    yield out

    # --- one block -------------------------------------------------------------------

    def _report_bad(self, rows: _Rows) -> None:
        bad = np.flatnonzero(rows.bad)
        if not len(bad):
            return
        if not self.skip_bad_rows:
            i = int(bad[0])
            field, reason = self._describe(rows, i)
            raise ExportFormatError(str(self.path), int(rows.line[i]), field, reason)
        report = self.report
        room = max(0, report.MAX_EXAMPLES - len(report.examples))
        for i in bad[:room]:
            field, reason = self._describe(rows, int(i))
            report.add_bad(int(rows.line[i]), field, reason)
        report.bad_rows += len(bad) - min(room, len(bad))

    def _describe(self, rows: _Rows, i: int) -> tuple[str, str]:
        code = int(rows.reason[i])
        k = int(rows.field[i])
        header = self._layout.header
        if code == _R_FIELDS:
            text = _REASONS[code].format(
                count=int(rows.nfields_seen[i]), expected=self._layout.nfields
            )
            return "row", text
        raw = rows.text(i, k) if rows.count_ok[i] else ""
        text = _REASONS[code].format(text=raw, time_format=self._layout.time_format)
        return header[k], text

    def _times(self, rows: _Rows) -> I64:
        date, ok = _date_ms(rows, 0)
        rows.fail(~ok, _R_DATE, 0)
        if self._layout.time_format:
            tod, ok = _time_ms(rows, 1, self._layout.kind == "ticks")
            rows.fail(~ok, _R_TIME, 1)
            date = date + tod
        return date

    def _order(self, rows: _Rows, time_msc: I64, state: _OrderState) -> None:
        """A row earlier than the latest readable row before it is bad: replaying or
        aggregating out-of-order ticks would silently produce wrong bars."""
        good = ~rows.bad
        t = np.where(good, time_msc, np.iinfo(np.int64).min)
        before = np.empty_like(t)
        if len(t):
            before[0] = state.last_msc
            np.maximum(np.maximum.accumulate(t)[:-1], state.last_msc, out=before[1:])
        rows.fail(good & (time_msc < before), _R_BACKWARDS, 1 if self._layout.time_format else 0)

    def _ticks(self, rows: _Rows, carry: list[_CarryState], state: _OrderState) -> TickArray:
        time_msc = self._times(rows)
        raw_flags, flags_present, _ = _numbers(rows, 6, np.uint64, signed=False, integer=True)
        rows.fail(~flags_present & ~rows.bad, _R_EMPTY, 6)
        too_big = raw_flags.astype(np.uint64) > np.iinfo(np.uint32).max
        rows.fail(too_big & ~rows.bad, _R_RANGE, 6)
        flags = raw_flags.astype(np.uint32)
        columns: list[F64] = []
        presents: list[Bools] = []
        for k, bit in ((2, TICK_FLAG_BID), (3, TICK_FLAG_ASK), (4, TICK_FLAG_LAST)):
            values, present, digits = _numbers(rows, k, np.float64)
            self.report.digits = max(self.report.digits, digits)
            flagged = (flags & np.uint32(bit)) != 0
            rows.fail(flagged & ~present & ~rows.bad, _R_FLAGGED_EMPTY, k)
            columns.append(values.astype(np.float64))
            presents.append(present)
        volume, present, _ = _numbers(rows, 5, np.float64, signed=False)
        flagged = (flags & np.uint32(TICK_FLAG_VOLUME)) != 0
        rows.fail(flagged & ~present & ~rows.bad, _R_FLAGGED_EMPTY, 5)
        columns.append(volume.astype(np.float64))
        presents.append(present)
        self._order(rows, time_msc, state)
        bad_before = rows.bad.copy()
        filled = [
            _carry(values, present, rows, k, state=carry[i], bad_before=bad_before)
            for i, (k, values, present) in enumerate(
                zip((2, 3, 4, 5), columns, presents, strict=True)
            )
        ]
        self._report_bad(rows)
        good = ~rows.bad
        n = int(good.sum())
        out = np.empty(n, dtype=TICK_DTYPE)
        tm = time_msc[good]
        out["time"] = tm // 1000
        out["time_msc"] = tm
        out["bid"] = filled[0][good]
        out["ask"] = filled[1][good]
        out["last"] = filled[2][good]
        vol = filled[3][good]
        out["volume"] = vol.astype(np.uint64)
        out["volume_real"] = vol
        out["flags"] = flags[good]
        self._count(tm, state)
        return out

    def _bars(self, rows: _Rows, state: _OrderState) -> RatesArray:
        t = self._times(rows)
        off = 1 if self._layout.time_format else 0
        prices: list[F64] = []
        for k in range(1 + off, 5 + off):
            values, present, digits = _numbers(rows, k, np.float64)
            rows.fail(~present & ~rows.bad, _R_EMPTY, k)
            self.report.digits = max(self.report.digits, digits)
            prices.append(values.astype(np.float64))
        ints: list[npt.NDArray[np.generic]] = []
        for k, dtype, signed in ((5 + off, np.uint64, False), (6 + off, np.uint64, False)):
            values_i, present, _ = _numbers(rows, k, dtype, signed=signed, integer=True)
            rows.fail(~present & ~rows.bad, _R_EMPTY, k)
            ints.append(values_i)
        spread, present, _ = _numbers(rows, 7 + off, np.int64, integer=True)
        rows.fail(~present & ~rows.bad, _R_EMPTY, 7 + off)
        in_range = (spread.astype(np.int64) >= np.iinfo(np.int32).min) & (
            spread.astype(np.int64) <= np.iinfo(np.int32).max
        )
        rows.fail(~in_range & ~rows.bad, _R_RANGE, 7 + off)
        self._order(rows, t, state)
        self._report_bad(rows)
        good = ~rows.bad
        out = np.empty(int(good.sum()), dtype=RATES_DTYPE)
        tm = t[good]
        out["time"] = tm // 1000
        for name, values in zip(("open", "high", "low", "close"), prices, strict=True):
            out[name] = values[good]
        out["tick_volume"] = ints[0][good]
        out["real_volume"] = ints[1][good]
        out["spread"] = spread[good]
        self._count(tm, state)
        return out

    def _count(self, tm: I64, state: _OrderState) -> None:
        if not len(tm):
            return
        report = self.report
        if not report.rows:
            report.first_msc = int(tm[0])
        report.rows += len(tm)
        report.last_msc = int(tm[-1])
        state.last_msc = max(state.last_msc, int(tm[-1]))


@dataclass(slots=True)
class _OrderState:
    last_msc: int = int(np.iinfo(np.int64).min)


# ----------------------------------------------------------------------- entry points


def sniff(path: Path | str) -> ExportKind:
    """``"ticks"`` or ``"bars"``, from the header; raises :class:`ExportFormatError`."""
    return ExportReader(path).kind


def read_export(
    path: Path | str, *, skip_bad_rows: bool = False, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> ReadResult:
    """A whole tick or bar export (ticks as ``TICK_DTYPE``, bars as ``RATES_DTYPE``)."""
    reader = ExportReader(path, skip_bad_rows=skip_bad_rows, block_bytes=block_bytes)
    parts = list(reader)
    dtype = TICK_DTYPE if reader.kind == "ticks" else RATES_DTYPE
    data = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    return ReadResult(data, reader.report)


def read_ticks(path: Path | str, *, skip_bad_rows: bool = False) -> ReadResult:
    """A whole tick export; ``result.data`` has :data:`~app.ticks.TICK_DTYPE`."""
    return _read_kind(path, "ticks", skip_bad_rows)


def read_bars(path: Path | str, *, skip_bad_rows: bool = False) -> ReadResult:
    """A whole bar export; ``result.data`` has :data:`RATES_DTYPE`."""
    return _read_kind(path, "bars", skip_bad_rows)


def _read_kind(path: Path | str, kind: ExportKind, skip_bad_rows: bool) -> ReadResult:
    reader = ExportReader(path, skip_bad_rows=skip_bad_rows)
    if reader.kind != kind:
        raise ExportFormatError(
            str(path), 1, "header", f"this is a {reader.kind} export, not a {kind} export"
        )
    parts = list(reader)
    dtype = TICK_DTYPE if kind == "ticks" else RATES_DTYPE
    data = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    return ReadResult(data, reader.report)


def read_time_span(path: Path | str) -> tuple[int, int]:
    """Times (epoch ms) of the first and the last data row, reading only both ends.

    For planning a replay without parsing the file: the first row's date and time, and
    the last non-blank row's. Rows are not validated beyond those two fields.
    """
    reader = ExportReader(path)
    layout = reader._layout
    with open(reader.path, "rb") as f:
        f.seek(reader._bom)
        head = f.read(4096)
        size = f.seek(0, io.SEEK_END)
        start = max(reader._bom, size - 4096)
        if reader._encoding != "utf-8":
            start -= (start - reader._bom) % 2
        f.seek(start)
        tail = f.read()
    enc = reader._encoding
    head_lines = [ln for ln in head.decode(enc, "replace").replace("\r", "").split("\n")[1:] if ln]
    tail_lines = [ln for ln in tail.decode(enc, "replace").replace("\r", "").split("\n") if ln]
    if not head_lines or not tail_lines:
        raise ExportFormatError(str(path), 0, "", "has no data rows")
    return _row_time(head_lines[0], layout, path), _row_time(tail_lines[-1], layout, path)


def _row_time(line: str, layout: _Layout, path: Path | str) -> int:
    data = (line + "\n").encode("utf-8", "replace")
    rows = _split(data, layout.nfields, 0)
    date, ok = _date_ms(rows, 0)
    if layout.time_format:
        tod, ok2 = _time_ms(rows, 1, layout.kind == "ticks")
        ok &= ok2
        date = date + tod
    if not len(rows) or not (ok & rows.count_ok).all():
        raise ExportFormatError(str(path), 0, "<DATE>", f"cannot read the time of row {line!r}")
    return int(date[0])
