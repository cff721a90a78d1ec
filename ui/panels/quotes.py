"""Market Watch's model: one :class:`Quote` per row, and :class:`QuoteModel`, which folds
each frame's snapshot (:class:`~app.session_view.QuoteRow` per symbol: the newest quote,
the core's day figures, the monitor's ticks per second) into cell changes, flashes and
stale rows. The panel widget is :mod:`ui.panels.market_watch`.

The columns are MT5's Market Watch's: bid, ask, spread in points, the day's high and low
and the daily change in percent against the previous day's close at *server* midnight
(``app/daystats.py`` computes them; "—" while the app holds no tick from before server
midnight, rather than a wrong number), the newest tick's server time, ticks per second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase
from PySide6.QtWidgets import QWidget

from app.servertime import ServerTimeZone
from app.session_view import DayFigures, QuoteRow
from ui.panels._format import (
    MISSING,
    DigitsGuess,
    format_datetime_msc,
    format_price,
    format_time_msc,
    point_of,
)
from ui.theme import Theme

#: A row turns grey when its newest tick is older than this (tick time vs wall clock,
#: the same age the monitor's ``seconds_since_tick`` alert uses).
STALE_AFTER_S = 15.0
#: How long a price cell stays coloured after it moved.
FLASH_S = 0.5
#: Role the proxy sorts by: raw numbers, so "9.5" sorts before "10.2".
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
#: Text of a row whose symbol no terminal captures.
NOT_CAPTURED = "not captured — add it in Settings"
#: Time cell of a symbol whose market is closed (outside its trading session).
CLOSED = "closed"

SYMBOL, BID, ASK, SPREAD, HIGH, LOW, CHANGE, TIME, TPS = range(9)
#: Short labels (MT5 has room for "Daily Change"; a dock has not): each header's tooltip
#: (HEADER_TIPS) says what the column is.
COLUMNS = ("Symbol", "Bid", "Ask", "Spread", "High", "Low", "Chg %", "Time", "Ticks/s")
_DAY = "The server day begins at the server's midnight (the D1 bar's open)."
_UNKNOWN_DAY = (
    "— : the app holds no tick from before today's server midnight (the capture and its "
    "history backfill do not reach back), so the day's figures are not known."
)
HEADER_TIPS = (
    "Symbol name. Right-click to add or hide symbols; Delete hides the selected rows.",
    "Newest bid price. Blue for half a second after it rose, red after it fell.",
    "Newest ask price. Blue for half a second after it rose, red after it fell.",
    "Ask minus bid, in points (one point is the last digit of the price).",
    f"Highest bid of the server day. {_DAY}",
    f"Lowest bid of the server day. {_DAY}",
    "Chg %: the daily change, bid now against the previous day's close (the last bid "
    "before today's server midnight), in percent.",
    "Time of the newest tick in the server's time, as MT5 shows it (UTC until a detected "
    "zone is known; the cell's tooltip has UTC and local time). The row turns grey after "
    f"{STALE_AFTER_S:g} s without a tick, and reads '{CLOSED}' while the market is closed "
    "(Settings > sessions).",
    "Ticks received per second for this symbol, over the last second.",
)
_NUMERIC_COLUMNS = frozenset(range(BID, len(COLUMNS)))
_NO_VALUE = float("-inf")  # sort key of an empty cell: always at one end


@dataclass(slots=True)
class Quote:
    """What one row shows, plus what the next render compares against."""

    symbol: str
    captured: bool
    fixed_digits: int | None
    guess: DigitsGuess = field(default_factory=DigitsGuess)
    ticks: int = -1  # collector tick count at the last render; -1 = take whatever comes
    time_msc: int = 0
    bid: float | None = None
    ask: float | None = None
    #: The day's figures (None: not known yet).
    day: DayFigures | None = None
    tps: float | None = None
    bid_dir: int = 0
    bid_until: float = 0.0
    ask_dir: int = 0
    ask_until: float = 0.0
    stale: bool = False
    #: Outside the symbol's trading session: greyed, "closed", never stale.
    closed: bool = False
    #: The symbol's server zone (None: not known yet, times shown in UTC).
    zone: ServerTimeZone | None = None

    @property
    def digits(self) -> int:
        return self.fixed_digits if self.fixed_digits is not None else self.guess.digits

    @property
    def spread_points(self) -> int | None:
        if self.bid is None or self.ask is None:
            return None
        return round((self.ask - self.bid) / point_of(self.digits))

    @property
    def change(self) -> float | None:
        """Daily change in percent, from the core's day figures and the shown bid."""
        day = self.day
        if day is None or not day.known or not day.prev_close or self.bid is None:
            return None
        return (self.bid - day.prev_close) / day.prev_close * 100.0

    @property
    def high(self) -> float | None:
        return None if self.day is None else self.day.high

    @property
    def low(self) -> float | None:
        return None if self.day is None else self.day.low


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


class QuoteModel(QAbstractTableModel):
    """The rows of the board; :meth:`update` turns one state snapshot into cell changes."""

    def __init__(self, theme: Theme, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Quote] = []
        self._theme = theme
        self._fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self._italic = QFont()
        self._italic.setItalic(True)
        #: Header labels of the columns a narrow dock left out (said in a tooltip).
        self._left_out: tuple[str, ...] = ()

    # ------------------------------------------------------------------ structure
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def symbols(self) -> list[str]:
        return [q.symbol for q in self._rows]

    def quotes(self) -> list[Quote]:
        return list(self._rows)

    def quote(self, row: int) -> Quote:
        return self._rows[row]

    def row_of(self, symbol: str) -> int | None:
        return next((i for i, q in enumerate(self._rows) if q.symbol == symbol), None)

    def set_rows(self, wanted: Sequence[tuple[str, bool, int | None]]) -> None:
        """Make the rows ``(symbol, captured, fixed digits)`` in order of first appearance,
        keeping existing rows (and their history: first bid, flashes) where they are."""
        names = {w[0] for w in wanted}
        for i in range(len(self._rows) - 1, -1, -1):
            if self._rows[i].symbol not in names:
                self.beginRemoveRows(QModelIndex(), i, i)
                del self._rows[i]
                self.endRemoveRows()
        present = {q.symbol: i for i, q in enumerate(self._rows)}
        new: list[Quote] = []
        for symbol, captured, digits in wanted:
            at = present.get(symbol)
            if at is None:
                new.append(Quote(symbol, captured, digits))
                continue
            q = self._rows[at]
            if (q.captured, q.fixed_digits) != (captured, digits):
                q.captured, q.fixed_digits = captured, digits
                self._row_changed(at, SYMBOL, len(COLUMNS) - 1)
        if new:
            n = len(self._rows)
            self.beginInsertRows(QModelIndex(), n, n + len(new) - 1)
            self._rows.extend(new)
            self.endInsertRows()

    def set_left_out(self, labels: tuple[str, ...]) -> None:
        """The columns a narrow dock left out (:mod:`ui.panels.quote_columns`): the
        Symbol header's tooltip names them."""
        self._left_out = labels
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, SYMBOL, SYMBOL)

    def forget_counts(self) -> None:
        """A new runtime counts ticks from zero: take its next values whatever they are."""
        for q in self._rows:
            q.ticks = -1

    def set_theme(self, theme: Theme) -> None:
        self._theme = theme
        if self._rows:
            self._row_changed(0, 0, len(COLUMNS) - 1, last_row=len(self._rows) - 1)

    def _row_changed(self, row: int, lo: int, hi: int, last_row: int | None = None) -> None:
        self.dataChanged.emit(
            self.index(row, lo), self.index(row if last_row is None else last_row, hi)
        )

    # ------------------------------------------------------------------ state
    def update(self, quotes: Mapping[str, QuoteRow], now: float) -> None:
        """Fold one snapshot's quotes in; emit ``dataChanged`` for the changed cells of
        each row. A captured symbol missing from ``quotes`` has no tick yet (or capture
        stopped: its row keeps the last quote and turns stale)."""
        for r, q in enumerate(self._rows):
            lo, hi = len(COLUMNS), -1
            row = quotes.get(q.symbol) if q.captured else None
            zone = row.zone if row is not None else q.zone if q.captured else None
            if zone != q.zone:
                q.zone = zone
                lo, hi = TIME, TIME
            if row is not None and row.ticks != q.ticks and row.time_msc > 0:
                bid, ask = row.bid, row.ask
                if q.bid is not None and bid != q.bid:
                    q.bid_dir, q.bid_until = _sign(bid - q.bid), now + FLASH_S
                if q.ask is not None and ask != q.ask:
                    q.ask_dir, q.ask_until = _sign(ask - q.ask), now + FLASH_S
                q.bid, q.ask, q.time_msc, q.ticks = bid, ask, row.time_msc, row.ticks
                q.guess.observe(bid, ask)
                lo, hi = BID, TIME
            day = row.day if row is not None else None
            if day != q.day:
                q.day = day
                lo, hi = min(lo, HIGH), max(hi, CHANGE)
            if q.bid_dir and now >= q.bid_until:
                q.bid_dir = 0
                lo, hi = min(lo, BID), max(hi, BID)
            if q.ask_dir and now >= q.ask_until:
                q.ask_dir = 0
                lo, hi = min(lo, ASK), max(hi, ASK)
            tps = row.tps if row is not None else None
            if tps != q.tps:
                q.tps = tps
                lo, hi = min(lo, TPS), max(hi, TPS)
            is_closed = row is not None and row.closed
            stale = (
                q.captured
                and not is_closed
                and (q.time_msc <= 0 or now - q.time_msc / 1000 > STALE_AFTER_S)
            )
            if (stale, is_closed) != (q.stale, q.closed):
                q.stale, q.closed = stale, is_closed
                lo, hi = SYMBOL, len(COLUMNS) - 1
            if hi >= 0:
                self._row_changed(r, lo, hi)

    # ------------------------------------------------------------------ cells
    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        if not index.isValid():
            return None
        q = self._rows[index.row()]
        c = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(q, c)
        if role == SORT_ROLE:
            return self._sort_key(q, c)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            side = Qt.AlignmentFlag.AlignLeft if c == SYMBOL else Qt.AlignmentFlag.AlignRight
            if not q.captured and c == BID:
                side = Qt.AlignmentFlag.AlignLeft
            return side | Qt.AlignmentFlag.AlignVCenter
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._foreground(q, c)
        if role == Qt.ItemDataRole.BackgroundRole:
            return self._background(q, c)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(q, c)
        if role == Qt.ItemDataRole.FontRole:
            if not q.captured:
                return self._italic
            return self._fixed if c in _NUMERIC_COLUMNS else None
        return None

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = 0
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            if section == SYMBOL and self._left_out:
                return (
                    f"{HEADER_TIPS[SYMBOL]}\nLeft out for lack of room: "
                    f"{', '.join(self._left_out)}. Widen the dock to see them."
                )
            return HEADER_TIPS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            side = Qt.AlignmentFlag.AlignLeft if section == SYMBOL else Qt.AlignmentFlag.AlignRight
            return side | Qt.AlignmentFlag.AlignVCenter
        return None

    def _text(self, q: Quote, c: int) -> str:
        if c == SYMBOL:
            return q.symbol
        if not q.captured:
            return NOT_CAPTURED if c == BID else ""
        d = q.digits
        if c == BID:
            return format_price(q.bid, d)
        if c == ASK:
            return format_price(q.ask, d)
        if c == SPREAD:
            sp = q.spread_points
            return MISSING if sp is None else str(sp)
        if c == HIGH:
            return format_price(q.high, d)
        if c == LOW:
            return format_price(q.low, d)
        if c == CHANGE:
            change = q.change
            return MISSING if change is None else f"{change:+.2f}%"
        if c == TPS:
            return MISSING if q.tps is None else f"{q.tps:.1f}"
        return CLOSED if q.closed else format_time_msc(q.time_msc, q.zone)

    def _day_tooltip(self, q: Quote) -> str:
        day = q.day
        if day is None:
            return f"{q.symbol}: the day's figures wait for the server's time zone and a tick."
        start = format_datetime_msc(day.day_start_ms, q.zone)
        if not day.known:
            return f"{q.symbol}: server day since {start}.\n{_UNKNOWN_DAY}"
        d = q.digits
        text = (
            f"{q.symbol}: server day since {start}\nopen {format_price(day.open, d)}, "
            f"high {format_price(day.high, d)}, low {format_price(day.low, d)}\n"
            f"previous close {format_price(day.prev_close, d)} (last bid before midnight)"
        )
        if day.pending:
            text += "\nHistory is still arriving (backfill): the figures may still change."
        return text

    def _sort_key(self, q: Quote, c: int) -> Any:
        if c == SYMBOL:
            return q.symbol
        values: dict[int, float | int | None] = {
            BID: q.bid,
            ASK: q.ask,
            SPREAD: q.spread_points,
            HIGH: q.high,
            LOW: q.low,
            CHANGE: q.change,
            TPS: q.tps,
            TIME: q.time_msc or None,
        }
        v = values.get(c) if q.captured else None
        return _NO_VALUE if v is None else float(v)

    def _foreground(self, q: Quote, c: int) -> QColor | None:
        t = self._theme
        if not q.captured:
            return t.color("muted")
        if q.stale or q.closed:
            return t.color("stale")
        direction = q.bid_dir if c == BID else q.ask_dir if c == ASK else 0
        if c == CHANGE and q.change is not None:
            direction = _sign(round(q.change, 2))
        if direction > 0:
            return t.color("up")
        if direction < 0:
            return t.color("down")
        return None

    def _background(self, q: Quote, c: int) -> QColor | None:
        direction = q.bid_dir if c == BID else q.ask_dir if c == ASK else 0
        if not direction or q.stale or q.closed:
            return None
        tint = self._theme.color("up" if direction > 0 else "down")
        tint.setAlpha(48)
        return tint

    def _tooltip(self, q: Quote, c: int) -> str:
        if not q.captured:
            return (
                f"{q.symbol} is not captured by any terminal. Add it to a terminal's symbols "
                "in Settings to see its quotes here."
            )
        if q.closed:
            last = format_datetime_msc(q.time_msc) if q.time_msc > 0 else "none yet"
            return (
                f"{q.symbol}: market closed (outside its trading session, Settings > "
                f"sessions); no tick is expected. Last tick: {last}."
            )
        if q.time_msc <= 0:
            return f"{q.symbol}: waiting for the first tick."
        age = ""
        if q.stale:
            age = f"\nNo tick for more than {STALE_AFTER_S:g} s: the quote may be out of date."
        if c in (HIGH, LOW, CHANGE):
            return self._day_tooltip(q) + age
        if c == SPREAD:
            return f"Ask - bid = {format_price(q.spread_points, 0)} points of {q.digits} digits."
        if c == TIME:
            return f"Newest tick:\n{format_datetime_msc(q.time_msc, q.zone)}" + age
        if c == SYMBOL:
            return f"{q.symbol}: {q.digits} digits, {max(q.ticks, 0):,} ticks this capture." + age
        return HEADER_TIPS[c] + age


__all__ = [
    "ASK",
    "BID",
    "CHANGE",
    "CLOSED",
    "COLUMNS",
    "FLASH_S",
    "HEADER_TIPS",
    "HIGH",
    "LOW",
    "NOT_CAPTURED",
    "SORT_ROLE",
    "SPREAD",
    "STALE_AFTER_S",
    "SYMBOL",
    "TIME",
    "TPS",
    "Quote",
    "QuoteModel",
]
