"""The files MetaTrader 5 exports from its Symbols window, described in one place.

Two layouts, both tab-separated with an angle-bracket header row:

* ticks (Symbols → Ticks → Export)::

      <DATE>	<TIME>	<BID>	<ASK>	<LAST>	<VOLUME>	<FLAGS>
      2024.01.02	00:05:00.123	1.10012	1.10020			6
      2024.01.02	00:05:00.250		1.10021			4

  ``TIME`` has milliseconds; a price the tick did not change is left **empty** (the
  reader carries the previous value forward, as the terminal's own tick records do);
  ``FLAGS`` are the ``TICK_FLAG_*`` bits (2 bid, 4 ask, 8 last, 16 volume, 32 buy,
  64 sell).
* bars (Symbols → Bars → Export)::

      <DATE>	<TIME>	<OPEN>	<HIGH>	<LOW>	<CLOSE>	<TICKVOL>	<VOL>	<SPREAD>
      2024.01.02	00:05:00	1.10012	1.10030	1.10001	1.10020	153	0	8

  Daily and longer bars are exported without the ``<TIME>`` column.

Times are the trade server's clock, written without a zone; like the ``MetaTrader5``
module, this project keeps them as if they were UTC epoch times.

The terminal writes UTF-16 LE with a byte order mark and CRLF line ends; files that
went through an editor or a script are often UTF-8 (with or without BOM) and LF. The
reader accepts all of those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "BAR_HEADER",
    "BAR_HEADER_NO_TIME",
    "RATES_DTYPE",
    "TICK_HEADER",
    "BadRow",
    "ExportFormatError",
    "ExportKind",
    "RatesArray",
    "ReadReport",
]

ExportKind = Literal["ticks", "bars"]

TICK_HEADER: Final = ("<DATE>", "<TIME>", "<BID>", "<ASK>", "<LAST>", "<VOLUME>", "<FLAGS>")
BAR_HEADER: Final = (
    "<DATE>",
    "<TIME>",
    "<OPEN>",
    "<HIGH>",
    "<LOW>",
    "<CLOSE>",
    "<TICKVOL>",
    "<VOL>",
    "<SPREAD>",
)
#: D1, W1 and MN1 bar exports: one bar per day or longer needs no time of day.
BAR_HEADER_NO_TIME: Final = tuple(h for h in BAR_HEADER if h != "<TIME>")

#: Bars as ``MetaTrader5.copy_rates_*`` returns them (``MqlRates``): the natural record
#: of an exported bar row. ``time`` is the bar's open in epoch seconds (server time);
#: ``spread`` is in points.
RATES_DTYPE: np.dtype[np.void] = np.dtype(
    [
        ("time", "<i8"),
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("tick_volume", "<u8"),
        ("spread", "<i4"),
        ("real_volume", "<u8"),
    ]
)

RatesArray = npt.NDArray[np.void]
"""A 1-d structured array of :data:`RATES_DTYPE`, oldest bar first."""


class ExportFormatError(ValueError):
    """A file is not a readable MT5 export; the message names file, line and field.

    ``line`` is 1-based and counts the header (the first data row is line 2); ``field``
    is the column as the header spells it (``<BID>``), or ``"row"`` when the row as a
    whole is wrong (wrong number of fields).
    """

    def __init__(self, path: str, line: int, field: str, reason: str) -> None:
        where = f"{path}:{line}" if line else path
        what = f" {field}" if field else ""
        super().__init__(f"{where}:{what} {reason}")
        self.path = path
        self.line = line
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BadRow:
    """One skipped row, for the report shown to the user."""

    line: int
    field: str
    reason: str


@dataclass(slots=True)
class ReadReport:
    """What reading one file found: rows kept, rows skipped and why (first few)."""

    path: str
    kind: ExportKind
    encoding: str = "utf-8"
    rows: int = 0
    bad_rows: int = 0
    examples: list[BadRow] = field(default_factory=list)
    #: Most fractional digits seen in a price (the symbol's ``digits``, if it moved).
    digits: int = 0
    #: Times of the first and last row kept (epoch ms, server time); 0 when empty.
    first_msc: int = 0
    last_msc: int = 0
    #: Bar exports only: whether the file had a ``<TIME>`` column.
    has_time: bool = True

    #: How many skipped rows are kept as examples.
    MAX_EXAMPLES = 10

    def add_bad(self, line: int, field_name: str, reason: str) -> None:
        self.bad_rows += 1
        if len(self.examples) < self.MAX_EXAMPLES:
            self.examples.append(BadRow(line, field_name, reason))

    def summary(self) -> str:
        """One line for a log or a status bar."""
        text = f"{self.path}: {self.rows:,} {self.kind} rows"
        if self.bad_rows:
            first = self.examples[0]
            text += (
                f", {self.bad_rows:,} bad rows skipped "
                f"(first: line {first.line} {first.field}: {first.reason})"
            )
        return text
