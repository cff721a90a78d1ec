"""Vectorised byte-level parsing of MT5 export blocks: the reader's inner loop.

:mod:`~app.terminal.export_files.reader` decides *what* a row must hold (which fields,
what may be empty, what is carried forward) and reports bad rows; this module only turns
bytes into columns, with a fixed number of numpy operations per block whatever its row
count, so that hundreds of MB parse at numpy speed and nothing is parsed per row in
Python. It is kept apart from the reader because this bit-twiddling (fixed-width digit
gathers, character-class tables, civil-from-days) is reasoned about on its own, while
the reader's rules about rows change with the file layouts; both are tested through
the reader's public functions.

* newline and tab positions come from ``np.flatnonzero`` over the block's bytes; a row
  with the wrong number of tabs is a bad row, every other row yields a start and an end
  per field;
* dates and times have a fixed width and are decoded by byte arithmetic;
* numbers are gathered into a fixed-width byte matrix, checked against a character
  class table (digits, one dot, a leading minus: so ``nan``, ``inf``, ``1e5`` and
  ``1_0`` are refused, not parsed) and converted with numpy's bytes-to-float cast,
  which rounds exactly like ``float()``.

Internal to the package: nothing outside :mod:`app.terminal.export_files` imports it.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "F64",
    "I64",
    "REASONS",
    "R_BACKWARDS",
    "R_CROSSED",
    "R_DATE",
    "R_EMPTY",
    "R_FIELDS",
    "R_FLAGGED_EMPTY",
    "R_FUTURE",
    "R_NO_CARRY",
    "R_NUMBER",
    "R_RANGE",
    "R_TAINTED",
    "R_TIME",
    "U8",
    "Bools",
    "Rows",
    "date_ms",
    "detect_encoding",
    "parse_numbers",
    "raw_blocks",
    "split_rows",
    "time_ms",
]

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

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

# Why a row is bad (``Rows.reason``); the first failing field of a row is the one
# reported. The codes live here, with :class:`Rows`, because the parsers set some of them
# (R_FIELDS, R_NUMBER) and the reader the rest, and one table turns any into a message.
R_FIELDS = 1
R_DATE = 2
R_TIME = 3
R_NUMBER = 4
R_EMPTY = 5
R_FLAGGED_EMPTY = 6
R_NO_CARRY = 7
R_TAINTED = 8
R_BACKWARDS = 9
R_RANGE = 10
R_CROSSED = 11
R_FUTURE = 12
REASONS: Final[dict[int, str]] = {
    R_FIELDS: "has {count} fields, expected {expected}",
    R_DATE: "{text!r} is not a date YYYY.MM.DD",
    R_TIME: "{text!r} is not a time {time_format}",
    R_NUMBER: "{text!r} is not a number",
    R_EMPTY: "is empty",
    R_FLAGGED_EMPTY: "is empty although <FLAGS> marks it as changed",
    R_NO_CARRY: "is empty and no earlier row has a value to carry forward",
    R_TAINTED: "is empty and the last row that set it could not be read",
    R_BACKWARDS: "{text!r} is earlier than the row before",
    R_RANGE: "{text!r} is out of range",
    R_CROSSED: "{text!r} is below <BID> although <FLAGS> marks both sides as changed",
    R_FUTURE: "{text!r} lies in the future",
}
#: Most digits of an integer field: any such number fits int64 and uint64 alike.
_MAX_INT_DIGITS = 18


# ----------------------------------------------------------------------- bytes → lines


def detect_encoding(head: bytes) -> tuple[str, int]:
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


def raw_blocks(f: BinaryIO, encoding: str, block_bytes: int) -> Iterator[bytes]:
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
class Rows:
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


def split_rows(data: bytes, nfields: int, first_line: int) -> Rows:
    """A block of whole lines (``first_line`` its first) split into ``nfields`` fields.

    Blank lines are dropped; a row with the wrong number of tabs fails with
    :data:`R_FIELDS` and gets zero-width fields, so later parsers need no special case.
    """
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
    rows = Rows(
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
    rows.fail(~count_ok, R_FIELDS, -1)
    return rows


def _fixed_digits(rows: Rows, k: int, template: bytes) -> tuple[I64, Bools]:
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


def date_ms(rows: Rows, k: int) -> tuple[I64, Bools]:
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


def time_ms(rows: Rows, k: int, with_ms: bool) -> tuple[I64, Bools]:
    """Milliseconds since midnight of a ``HH:MM:SS`` (``.mmm`` with ``with_ms``) field."""
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


def parse_numbers(
    rows: Rows, k: int, dtype: type[np.generic], *, signed: bool = True, integer: bool = False
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
    if integer:
        # Longer integers would overflow numpy's cast (an OverflowError, not a bad row).
        too_long = ok & ((cls == _DIGIT).sum(axis=1) > _MAX_INT_DIGITS)
        rows.fail(_scatter(len(rows), idx[too_long]), R_RANGE, k)
        ok &= ~too_long
    rows.fail(_scatter(len(rows), idx[~ok]), R_NUMBER, k)
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
