"""Streaming, vectorised reader of MT5 tick and bar exports.

Exports run to hundreds of MB, so a file is never loaded whole and never parsed one row
at a time in Python: it is read in blocks of whole lines (a few MB), and each block is
parsed with a fixed number of numpy operations whatever its row count. The byte-level
work (encoding, splitting lines and tabs, fixed-width dates and times, checked numbers)
is in :mod:`~app.terminal.export_files.parse`; this module decides what each layout's
fields must hold and what to do about rows that do not:

* a row with the wrong number of tabs, an unreadable date, time or number, or a time
  earlier than the row before is a bad row, except one step back of at most an hour
  per 300 days of file time: the server clock's autumn hour
  (:mod:`~app.terminal.export_files.order`);
* so is a tick the bridge would refuse (:mod:`app.protocol.validation`, the same rules:
  negative or absurd prices, ask below bid unless one side alone changed, volume out of
  range, flags beyond the defined bits, a time in the future), reported on its field;
* empty tick fields are filled from the previous row that had one, by a running
  maximum over row indices (see :func:`_carry`).

Nothing is ever silently invented: a value that would have to be carried forward
across a row that could not be read, or from before the first row, makes its row bad.
Bad rows raise :class:`ExportFormatError` (file, line, field) or, with
``skip_bad_rows=True``, are skipped and counted in the :class:`ReadReport`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt

from app.clock import SYSTEM_CLOCK, Clock, now_msc
from app.protocol.validation import DEFAULT_TICK_RULES, Reason, TickRules, check_rows, price_ok
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
from app.terminal.export_files.order import OrderState, check_order
from app.terminal.export_files.parse import (
    F64,
    I64,
    R_CROSSED,
    R_DATE,
    R_EMPTY,
    R_FIELDS,
    R_FLAGGED_EMPTY,
    R_FUTURE,
    R_NO_CARRY,
    R_RANGE,
    R_TAINTED,
    R_TIME,
    REASONS,
    Bools,
    Rows,
    date_ms,
    detect_encoding,
    parse_numbers,
    raw_blocks,
    split_rows,
    time_ms,
)
from app.ticks import TICK_DTYPE, TickArray
from app.untrusted import UnsafeFileError, check_regular_file

__all__ = [
    "ExportReader",
    "ReadResult",
    "read_bars",
    "read_export",
    "read_ticks",
    "read_time_span",
    "sniff",
]

#: Bytes read per block; whole lines only are parsed, the rest waits for the next block.
DEFAULT_BLOCK_BYTES: Final = 4 << 20
#: The bridge's rules, except that a file may hold history of any age (since 1970).
FILE_TICK_RULES: Final = TickRules(
    max_price=DEFAULT_TICK_RULES.max_price,
    max_volume=DEFAULT_TICK_RULES.max_volume,
    max_age_s=2**40,
    max_ahead_s=DEFAULT_TICK_RULES.max_ahead_s,
)


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


# ----------------------------------------------------------------------- carry forward


@dataclass(slots=True)
class _CarryState:
    """A tick column's value at the end of the rows read so far."""

    value: float = 0.0
    known: bool = False
    #: Whether any row so far had a value in this column (see :func:`_carry`).
    ever_present: bool = False


def _carry(
    values: F64, present: Bools, rows: Rows, k: int, *, state: _CarryState, bad_before: Bools
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
    rows.fail(tainted, R_TAINTED, k)
    if not state.known:
        rows.fail(from_state, R_NO_CARRY if not state.ever_present else R_TAINTED, k)
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
        rules: TickRules = FILE_TICK_RULES,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.path = Path(path)
        self.skip_bad_rows = skip_bad_rows
        self._rules = rules
        self._clock = clock
        self._block_bytes = max(64, int(block_bytes))
        try:
            check_regular_file(self.path)  # a FIFO would hang the reader, /dev/zero fill memory
        except UnsafeFileError as exc:
            raise ExportFormatError(str(self.path), 0, "", str(exc.strerror)) from None
        with open(self.path, "rb") as f:
            head = f.read(4)
        self._encoding, self._bom = detect_encoding(head)
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
        return raw_blocks(f, self._encoding, self._block_bytes)

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
        state = OrderState()
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
                rows = split_rows(data, layout.nfields, line)
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

    def _report_bad(self, rows: Rows) -> None:
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

    def _describe(self, rows: Rows, i: int) -> tuple[str, str]:
        code = int(rows.reason[i])
        k = int(rows.field[i])
        header = self._layout.header
        if code == R_FIELDS:
            text = REASONS[code].format(
                count=int(rows.nfields_seen[i]), expected=self._layout.nfields
            )
            return "row", text
        raw = rows.text(i, k) if rows.count_ok[i] else ""
        text = REASONS[code].format(text=raw, time_format=self._layout.time_format)
        return header[k], text

    def _times(self, rows: Rows) -> I64:
        date, ok = date_ms(rows, 0)
        rows.fail(~ok, R_DATE, 0)
        if self._layout.time_format:
            tod, ok = time_ms(rows, 1, self._layout.kind == "ticks")
            rows.fail(~ok, R_TIME, 1)
            date = date + tod
        return date

    def _order(self, rows: Rows, time_msc: I64, state: OrderState) -> None:
        """A row earlier than the latest readable row before it is bad (replaying or
        aggregating out-of-order ticks would silently produce wrong bars), except the
        server clock's autumn hour (:mod:`~app.terminal.export_files.order`)."""
        check_order(rows, time_msc, state, 1 if self._layout.time_format else 0)

    def _ticks(self, rows: Rows, carry: list[_CarryState], state: OrderState) -> TickArray:
        time_msc = self._times(rows)
        # A time in the future is refused before the order check, so that it does not
        # make every later (correct) row look backwards.
        _, newest = self._rules.window(now_msc(self._clock))
        rows.fail(time_msc > newest, R_FUTURE, 0)
        raw_flags, flags_present, _ = parse_numbers(rows, 6, np.uint64, signed=False, integer=True)
        rows.fail(~flags_present & ~rows.bad, R_EMPTY, 6)
        too_big = raw_flags.astype(np.uint64) > np.iinfo(np.uint32).max
        rows.fail(too_big & ~rows.bad, R_RANGE, 6)
        flags = raw_flags.astype(np.uint32)
        columns: list[F64] = []
        presents: list[Bools] = []
        for k, bit in ((2, TICK_FLAG_BID), (3, TICK_FLAG_ASK), (4, TICK_FLAG_LAST)):
            values, present, digits = parse_numbers(rows, k, np.float64)
            self.report.digits = max(self.report.digits, digits)
            flagged = (flags & np.uint32(bit)) != 0
            rows.fail(flagged & ~present & ~rows.bad, R_FLAGGED_EMPTY, k)
            columns.append(values.astype(np.float64))
            presents.append(present)
        volume, present, _ = parse_numbers(rows, 5, np.float64, signed=False)
        flagged = (flags & np.uint32(TICK_FLAG_VOLUME)) != 0
        rows.fail(flagged & ~present & ~rows.bad, R_FLAGGED_EMPTY, 5)
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
        self._values(rows, time_msc, filled, flags)
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
        self._count(tm)
        return out

    def _values(
        self, rows: Rows, time_msc: I64, filled: list[F64], flags: npt.NDArray[np.uint32]
    ) -> None:
        """The value rules of the bridge over the rows read so far (filled forward), each
        refusal on the field that breaks it."""
        ticks = np.zeros(len(rows), dtype=TICK_DTYPE)
        ticks["time_msc"] = time_msc
        ticks["time"] = time_msc // 1000
        ticks["bid"], ticks["ask"], ticks["last"] = filled[0], filled[1], filled[2]
        volume = filled[3]
        ticks["volume_real"] = volume
        # The uint64 column of a negative or huge volume: saturate, so the rule sees it.
        ticks["volume"] = np.clip(volume, 0, 2**63).astype(np.uint64)
        ticks["flags"] = flags
        codes = check_rows(ticks, now_msc(self._clock), self._rules)
        if not codes.any():
            return
        # Rows already bad keep their first reason (``Rows.fail`` never overwrites one).
        for reason, code, k in (
            (Reason.ASK_BELOW_BID, R_CROSSED, 3),
            (Reason.VOLUME_RANGE, R_RANGE, 5),
            (Reason.TIME_WINDOW, R_FUTURE, 0),
            (Reason.UNKNOWN_FLAGS, R_RANGE, 6),
        ):
            rows.fail(codes == reason.code, code, k)
        is_price = (codes == Reason.PRICE_RANGE.code) | (codes == Reason.NOT_FINITE.code)
        for k, column in ((2, filled[0]), (3, filled[1]), (4, filled[2])):
            rows.fail(is_price & ~price_ok(column, self._rules), R_RANGE, k)

    def _bars(self, rows: Rows, state: OrderState) -> RatesArray:
        t = self._times(rows)
        off = 1 if self._layout.time_format else 0
        prices: list[F64] = []
        for k in range(1 + off, 5 + off):
            values, present, digits = parse_numbers(rows, k, np.float64)
            rows.fail(~present & ~rows.bad, R_EMPTY, k)
            self.report.digits = max(self.report.digits, digits)
            prices.append(values.astype(np.float64))
        ints: list[npt.NDArray[np.generic]] = []
        for k, dtype, signed in ((5 + off, np.uint64, False), (6 + off, np.uint64, False)):
            values_i, present, _ = parse_numbers(rows, k, dtype, signed=signed, integer=True)
            rows.fail(~present & ~rows.bad, R_EMPTY, k)
            ints.append(values_i)
        spread, present, _ = parse_numbers(rows, 7 + off, np.int64, integer=True)
        rows.fail(~present & ~rows.bad, R_EMPTY, 7 + off)
        in_range = (spread.astype(np.int64) >= np.iinfo(np.int32).min) & (
            spread.astype(np.int64) <= np.iinfo(np.int32).max
        )
        rows.fail(~in_range & ~rows.bad, R_RANGE, 7 + off)
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
        self._count(tm)
        return out

    def _count(self, tm: I64) -> None:
        if not len(tm):
            return
        report = self.report
        if not report.rows:
            report.first_msc = int(tm[0])
        report.rows += len(tm)
        report.last_msc = int(tm[-1])


# ----------------------------------------------------------------------- entry points


def sniff(path: Path | str) -> ExportKind:
    """``"ticks"`` or ``"bars"``, from the header; raises :class:`ExportFormatError`."""
    return ExportReader(path).kind


def read_export(
    path: Path | str, *, skip_bad_rows: bool = False, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> ReadResult:
    """A whole tick or bar export (ticks as ``TICK_DTYPE``, bars as ``RATES_DTYPE``)."""
    return _read_all(ExportReader(path, skip_bad_rows=skip_bad_rows, block_bytes=block_bytes))


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
    return _read_all(reader)


def _read_all(reader: ExportReader) -> ReadResult:
    """Every block of ``reader`` in one array (an empty one of the kind's dtype if none)."""
    parts = list(reader)
    dtype = TICK_DTYPE if reader.kind == "ticks" else RATES_DTYPE
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
    rows = split_rows(data, layout.nfields, 0)
    date, ok = date_ms(rows, 0)
    if layout.time_format:
        tod, ok2 = time_ms(rows, 1, layout.kind == "ticks")
        ok &= ok2
        date = date + tod
    if not len(rows) or not (ok & rows.count_ok).all():
        raise ExportFormatError(str(path), 0, "<DATE>", f"cannot read the time of row {line!r}")
    return int(date[0])
