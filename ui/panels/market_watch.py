"""Market Watch: the quote board, one row per symbol, as a trader reads it at a glance.

The board never sees individual ticks. Each render (see :meth:`Panel.refresh`) reads the
collector's per-symbol counters (newest bid/ask/time and a tick count) and the monitor's
ticks-per-second, compares them with what the previous render showed, and updates only
the cells that changed. Up/down-tick flashes are therefore refresh-to-refresh changes:
between two renders a price may move several times, and what flashes is the net move
the eye could actually see.

Which symbols are shown is a view choice: by default every captured symbol; the user
can hide rows and add names. A name that is not captured gets a row that says so and
points at the settings, because silently ignoring it would look like a dead feed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QSortFilterProxyModel,
    QStringListModel,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import QColor, QFont, QFontDatabase, QFontMetrics, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCompleter,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.collector import SymbolStats, TickCache
from app.session import DesktopSession
from ui.panels._format import (
    MISSING,
    DigitsGuess,
    captured_symbols,
    format_datetime_msc,
    format_price,
    format_signed,
    format_time_msc,
    point_of,
    profile_digits,
)
from ui.panels.base import Panel
from ui.tasks import TaskRunner
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

SYMBOL, BID, ASK, SPREAD, LAST, CHANGE, TPS, TIME = range(8)
COLUMNS = ("Symbol", "Bid", "Ask", "Spread", "Last", "Change", "Ticks/s", "Time")
HEADER_TIPS = (
    "Symbol name. Right-click to add or hide symbols; Delete hides the selected rows.",
    "Newest bid price. Blue for half a second after it rose, red after it fell.",
    "Newest ask price. Blue for half a second after it rose, red after it fell.",
    "Ask minus bid, in points (one point is the last digit of the price).",
    "Price of the newest deal, for symbols that report deals (empty for Forex quotes).",
    "Bid now minus the first bid seen this session, in price units.",
    "Ticks received per second for this symbol, over the last second.",
    f"Time of the newest tick (local). The row turns grey after {STALE_AFTER_S:g} s "
    "without a tick.",
)
_NUMERIC_COLUMNS = frozenset(range(BID, len(COLUMNS)))
_NO_VALUE = float("-inf")  # sort key of an empty cell: always at one end


@dataclass(slots=True)
class _Quote:
    """What one row shows, plus what the next render compares against."""

    symbol: str
    captured: bool
    fixed_digits: int | None
    guess: DigitsGuess = field(default_factory=DigitsGuess)
    ticks: int = -1  # collector tick count at the last render; -1 = take whatever comes
    time_msc: int = 0
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    first_bid: float | None = None
    tps: float | None = None
    bid_dir: int = 0
    bid_until: float = 0.0
    ask_dir: int = 0
    ask_until: float = 0.0
    stale: bool = False

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
        if self.bid is None or self.first_bid is None:
            return None
        return self.bid - self.first_bid


#: ``(symbol, new ticks since the last render) -> newest non-zero last price or None``.
LastPrice = Callable[[str, int], float | None]


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


class QuoteModel(QAbstractTableModel):
    """The rows of the board; :meth:`update` turns one state snapshot into cell changes."""

    def __init__(self, theme: Theme, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[_Quote] = []
        self._theme = theme
        self._fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self._italic = QFont()
        self._italic.setItalic(True)

    # ------------------------------------------------------------------ structure
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def symbols(self) -> list[str]:
        return [q.symbol for q in self._rows]

    def quote(self, row: int) -> _Quote:
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
        new: list[_Quote] = []
        for symbol, captured, digits in wanted:
            at = present.get(symbol)
            if at is None:
                new.append(_Quote(symbol, captured, digits))
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
    def update(
        self,
        stats: Mapping[str, SymbolStats],
        metrics: Mapping[str, Any],
        last_price: LastPrice | None,
        now: float,
    ) -> None:
        """Fold one snapshot in; emit ``dataChanged`` for the changed cells of each row."""
        for r, q in enumerate(self._rows):
            lo, hi = len(COLUMNS), -1
            s = stats.get(q.symbol) if q.captured else None
            if s is not None and s.ticks != q.ticks and s.last_time_msc > 0:
                new = s.ticks - q.ticks if q.ticks >= 0 else s.ticks
                bid, ask = s.last_bid, s.last_ask
                if q.bid is not None and bid != q.bid:
                    q.bid_dir, q.bid_until = _sign(bid - q.bid), now + FLASH_S
                if q.ask is not None and ask != q.ask:
                    q.ask_dir, q.ask_until = _sign(ask - q.ask), now + FLASH_S
                if q.first_bid is None:
                    q.first_bid = bid
                q.bid, q.ask, q.time_msc, q.ticks = bid, ask, s.last_time_msc, s.ticks
                q.guess.observe(bid, ask)
                if last_price is not None:
                    last = last_price(q.symbol, new)
                    if last is not None:
                        q.last = last
                lo, hi = BID, TIME
            if q.bid_dir and now >= q.bid_until:
                q.bid_dir = 0
                lo, hi = min(lo, BID), max(hi, BID)
            if q.ask_dir and now >= q.ask_until:
                q.ask_dir = 0
                lo, hi = min(lo, ASK), max(hi, ASK)
            tps_value = metrics.get(f"tps.symbol.{q.symbol}") if q.captured else None
            tps = (
                float(tps_value)
                if isinstance(tps_value, int | float) and not isinstance(tps_value, bool)
                else None
            )
            if tps != q.tps:
                q.tps = tps
                lo, hi = min(lo, TPS), max(hi, TPS)
            stale = q.captured and (q.time_msc <= 0 or now - q.time_msc / 1000 > STALE_AFTER_S)
            if stale != q.stale:
                q.stale = stale
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
            return HEADER_TIPS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            side = Qt.AlignmentFlag.AlignLeft if section == SYMBOL else Qt.AlignmentFlag.AlignRight
            return side | Qt.AlignmentFlag.AlignVCenter
        return None

    def _text(self, q: _Quote, c: int) -> str:
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
        if c == LAST:
            return "" if q.last is None else format_price(q.last, d)
        if c == CHANGE:
            return format_signed(q.change, d)
        if c == TPS:
            return MISSING if q.tps is None else f"{q.tps:.1f}"
        return format_time_msc(q.time_msc)

    def _sort_key(self, q: _Quote, c: int) -> Any:
        if c == SYMBOL:
            return q.symbol
        values: dict[int, float | int | None] = {
            BID: q.bid,
            ASK: q.ask,
            SPREAD: q.spread_points,
            LAST: q.last,
            CHANGE: q.change,
            TPS: q.tps,
            TIME: q.time_msc or None,
        }
        v = values.get(c) if q.captured else None
        return _NO_VALUE if v is None else float(v)

    def _foreground(self, q: _Quote, c: int) -> QColor | None:
        t = self._theme
        if not q.captured:
            return t.color("muted")
        if q.stale:
            return t.color("stale")
        direction = q.bid_dir if c == BID else q.ask_dir if c == ASK else 0
        if c == CHANGE and q.change is not None:
            direction = _sign(round(q.change, q.digits))
        if direction > 0:
            return t.color("up")
        if direction < 0:
            return t.color("down")
        return None

    def _background(self, q: _Quote, c: int) -> QColor | None:
        direction = q.bid_dir if c == BID else q.ask_dir if c == ASK else 0
        if not direction or q.stale:
            return None
        tint = self._theme.color("up" if direction > 0 else "down")
        tint.setAlpha(48)
        return tint

    def _tooltip(self, q: _Quote, c: int) -> str:
        if not q.captured:
            return (
                f"{q.symbol} is not captured by any terminal. Add it to a terminal's symbols "
                "in Settings to see its quotes here."
            )
        if q.time_msc <= 0:
            return f"{q.symbol}: waiting for the first tick."
        age = ""
        if q.stale:
            age = f"\nNo tick for more than {STALE_AFTER_S:g} s: the quote may be out of date."
        if c == CHANGE:
            return (
                f"Bid now minus the first bid seen this session "
                f"({format_price(q.first_bid, q.digits)})." + age
            )
        if c == SPREAD:
            return f"Ask - bid = {format_price(q.spread_points, 0)} points of {q.digits} digits."
        if c == TIME:
            return f"Newest tick: {format_datetime_msc(q.time_msc)}" + age
        if c == SYMBOL:
            return f"{q.symbol}: {q.digits} digits, {max(q.ticks, 0):,} ticks this capture." + age
        return HEADER_TIPS[c] + age


class _QuoteTable(QTableView):
    """The table; Delete/Backspace hide the selected rows (a key, not a global shortcut,
    so the key only means "hide" while the board has focus)."""

    delete_pressed = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and not event.modifiers():
            self.delete_pressed.emit()
            event.accept()
            return
        super().keyPressEvent(event)


class MarketWatch(Panel):
    """Bid/ask board of the captured symbols; selecting a row picks the chart's symbol."""

    title = "Market Watch"
    object_name = "marketWatch"
    shortcut = "Alt+1"
    default_area = Qt.DockWidgetArea.LeftDockWidgetArea

    #: A row was selected or activated (double-click, Enter): show this symbol elsewhere.
    symbol_selected = Signal(str)

    def __init__(
        self,
        session: DesktopSession,
        tasks: TaskRunner,
        parent: QWidget | None = None,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(session, tasks, parent)
        self._now = now
        self._hidden: set[str] = set()
        self._extra: list[str] = []
        self._captured: tuple[str, ...] | None = None
        self._runtime: object | None = None
        self._spanned = False

        self.model = QuoteModel(self.theme, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setDynamicSortFilter(True)
        self.proxy.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

        self.add_edit = QLineEdit(self)
        self.add_edit.setPlaceholderText("Add symbol…")
        self.add_edit.setClearButtonEnabled(True)
        self.add_edit.setToolTip(
            "Type a symbol name and press Enter to show it. Only symbols captured by a "
            "terminal (see Settings) have quotes."
        )
        self._completions = QStringListModel(self)
        completer = QCompleter(self._completions, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.add_edit.setCompleter(completer)
        self.add_edit.returnPressed.connect(self._add_from_edit)

        self.add_button = QToolButton(self)
        self.add_button.setText("Add")
        self.add_button.setToolTip("Show the symbol typed on the left (Enter)")
        self.add_button.clicked.connect(self._add_from_edit)
        self.remove_button = QToolButton(self)
        self.remove_button.setText("Remove")
        self.remove_button.setToolTip("Hide the selected rows (Delete); capture goes on")
        self.remove_button.clicked.connect(self.remove_selected)

        self.table = _QuoteTable(self)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # settings order at first
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setShowGrid(False)
        self.table.verticalHeader().hide()
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._show_context_menu)
        self.table.delete_pressed.connect(self.remove_selected)
        self.table.doubleClicked.connect(self._on_activated)
        self.table.activated.connect(self._on_activated)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row)
        self._size_columns()
        for sig in (
            self.proxy.layoutChanged,
            self.proxy.rowsInserted,
            self.proxy.rowsRemoved,
            self.proxy.modelReset,
        ):
            sig.connect(self._update_spans)

        self.hint = QLabel(self)
        self.hint.setWordWrap(True)
        self.hint.setToolTip("What the last action did, or why the board shows nothing")
        self.hint.hide()

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.add_edit, 1)
        bar.addWidget(self.add_button)
        bar.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.hint)
        self.apply_theme(self.theme)
        self._sync_rows()

    # ------------------------------------------------------------------ rendering
    def refresh(self) -> None:
        captured = captured_symbols(self.session.config)
        if captured != self._captured:
            self._sync_rows()
        runtime = self.session.runtime
        if runtime is not self._runtime:
            self._runtime = runtime
            self.model.forget_counts()
            if runtime is not None and self.hint.text() == _NOT_RUNNING:
                self._say("")
        now = self._now()
        if runtime is None:
            self.model.update({}, {}, None, now)
            self._say(_NOT_RUNNING)
            return
        cache = runtime.collector.cache
        metrics = runtime.monitor.metrics if runtime.monitor is not None else {}

        def last_price(symbol: str, new: int) -> float | None:
            return _newest_last(cache, symbol, new)

        self.model.update(runtime.collector.stats.symbols, metrics, last_price, now)

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        self.model.set_theme(theme)
        self.hint.setStyleSheet(f"color: {theme.muted};")

    # ------------------------------------------------------------------ symbols shown
    def shown_symbols(self) -> list[str]:
        """Rows in the model's order (not the sorted order on screen)."""
        return self.model.symbols()

    def add_symbol(self, name: str) -> str | None:
        """Show ``name`` (matched case-insensitively against the captured symbols).

        Returns the symbol shown, or ``None`` for an empty name.
        """
        name = name.strip()
        if not name:
            return None
        captured = captured_symbols(self.session.config)
        symbol = next((s for s in captured if s.casefold() == name.casefold()), name)
        self._hidden.discard(symbol)
        if symbol not in captured and symbol not in self._extra:
            self._extra.append(symbol)
        self._sync_rows()
        if symbol in captured:
            self._say("")
        else:
            self._say(
                f"{symbol} is not captured by any terminal — add it in Settings to see its quotes."
            )
        self._select_symbol(symbol)
        return symbol

    def remove_symbols(self, symbols: Sequence[str]) -> None:
        """Hide rows; a captured symbol keeps being captured, only the row goes."""
        captured = set(captured_symbols(self.session.config))
        for s in symbols:
            if s in captured:
                self._hidden.add(s)
            elif s in self._extra:
                self._extra.remove(s)
        self._sync_rows()
        hidden = [s for s in symbols if s in captured]
        if hidden:
            self._say(
                f"Hidden: {', '.join(hidden)}. Type a name above or right-click "
                "> Show all captured symbols to bring rows back."
            )

    @Slot()
    def remove_selected(self) -> None:
        symbols = self.selected_symbols()
        if symbols:
            self.remove_symbols(symbols)

    @Slot()
    def show_all(self) -> None:
        self._hidden.clear()
        self._sync_rows()
        self._say("")

    def view_state(self) -> dict[str, Any]:
        """What the user chose to see (rows hidden and added, sort), for the saved layout."""
        header = self.table.horizontalHeader()
        return {
            "hidden": sorted(self._hidden),
            "added": list(self._extra),
            "sort_column": header.sortIndicatorSection(),
            "sort_descending": header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder,
        }

    def restore_view_state(self, state: Mapping[str, Any]) -> None:
        """Undo of :meth:`view_state`; unknown or malformed entries are ignored."""
        hidden, added = state.get("hidden", []), state.get("added", [])
        if isinstance(hidden, list):
            self._hidden = {str(s) for s in hidden}
        if isinstance(added, list):
            self._extra = list(dict.fromkeys(str(s) for s in added))
        self._sync_rows()
        column = state.get("sort_column", -1)
        if isinstance(column, int) and -1 <= column < len(COLUMNS):
            order = (
                Qt.SortOrder.DescendingOrder
                if state.get("sort_descending")
                else Qt.SortOrder.AscendingOrder
            )
            self.table.sortByColumn(column, order)

    def selected_symbols(self) -> list[str]:
        rows = self.table.selectionModel().selectedRows(SYMBOL)
        return [self.model.quote(self.proxy.mapToSource(i).row()).symbol for i in rows]

    def _sync_rows(self) -> None:
        config = self.session.config
        captured = captured_symbols(config)
        self._captured = captured
        self._extra = [s for s in self._extra if s not in captured]
        wanted = [(s, True, profile_digits(s, config)) for s in captured if s not in self._hidden]
        wanted += [(s, False, None) for s in self._extra]
        self.model.set_rows(wanted)
        self._completions.setStringList(list(captured))

    # ------------------------------------------------------------------ view helpers
    def _size_columns(self) -> None:
        fixed = QFontMetrics(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        plain = QFontMetrics(self.table.font())
        samples = {
            SYMBOL: (plain, "XAUUSD.pro"),
            BID: (fixed, "00000.00000"),
            ASK: (fixed, "00000.00000"),
            SPREAD: (plain, "Spread"),
            LAST: (fixed, "00000.00000"),
            CHANGE: (fixed, "+000.00000"),
            TPS: (plain, "Ticks/s"),
            TIME: (fixed, "00:00:00.000"),
        }
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        for col, (metrics, sample) in samples.items():
            header.resizeSection(col, metrics.horizontalAdvance(sample) + 24)
        self.table.verticalHeader().setDefaultSectionSize(max(fixed.height(), plain.height()) + 6)

    @Slot()
    def _update_spans(self) -> None:
        """An uncaptured row says so across its price columns instead of in a narrow cell."""
        rows = [
            r
            for r in range(self.proxy.rowCount())
            if not self.model.quote(self.proxy.mapToSource(self.proxy.index(r, 0)).row()).captured
        ]
        if not rows and not self._spanned:
            return
        self.table.clearSpans()
        for r in rows:
            self.table.setSpan(r, BID, 1, len(COLUMNS) - BID)
        self._spanned = bool(rows)

    def _select_symbol(self, symbol: str) -> None:
        row = self.model.row_of(symbol)
        if row is None:
            return
        index = self.proxy.mapFromSource(self.model.index(row, SYMBOL))
        self.table.setCurrentIndex(index)
        self.table.scrollTo(index)

    def _say(self, text: str) -> None:
        self.hint.setText(text)
        self.hint.setVisible(bool(text))

    def _symbol_at(self, index: QModelIndex) -> _Quote | None:
        if not index.isValid():
            return None
        return self.model.quote(self.proxy.mapToSource(index).row())

    @Slot(QModelIndex, QModelIndex)
    def _on_current_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        q = self._symbol_at(current)
        if q is not None and q.captured:
            self.symbol_selected.emit(q.symbol)

    @Slot(QModelIndex)
    def _on_activated(self, index: QModelIndex) -> None:
        q = self._symbol_at(index)
        if q is not None and q.captured:
            self.symbol_selected.emit(q.symbol)

    @Slot()
    def _add_from_edit(self) -> None:
        if self.add_symbol(self.add_edit.text()) is not None:
            self.add_edit.clear()

    def context_menu(self, pos: QPoint) -> QMenu:
        """The table's context menu for a click at ``pos`` (viewport coordinates)."""
        menu = QMenu(self)
        q = self._symbol_at(self.table.indexAt(pos))
        if q is not None and q.captured:
            chart = menu.addAction(f"Show {q.symbol} in Tick Chart")
            chart.setToolTip("Plot this symbol's ticks in the Tick Chart panel")
            chart.triggered.connect(lambda: self.symbol_selected.emit(q.symbol))
            menu.addSeparator()
        add = menu.addAction("Add symbol…")
        add.setToolTip("Type a symbol name to show")
        add.triggered.connect(self._focus_add)
        selected = self.selected_symbols()
        remove = menu.addAction("Remove" + (f" {selected[0]}" if len(selected) == 1 else ""))
        remove.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        remove.setToolTip("Hide the selected rows; capture goes on")
        remove.setEnabled(bool(selected))
        remove.triggered.connect(self.remove_selected)
        show_all = menu.addAction("Show all captured symbols")
        show_all.setToolTip("Bring back every hidden captured symbol")
        show_all.setEnabled(bool(self._hidden))
        show_all.triggered.connect(self.show_all)
        menu.setToolTipsVisible(True)
        return menu

    @Slot(QPoint)
    def _show_context_menu(self, pos: QPoint) -> None:
        menu = self.context_menu(pos)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(self.table.viewport().mapToGlobal(pos))

    @Slot()
    def _focus_add(self) -> None:
        self.add_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.add_edit.selectAll()


_NOT_RUNNING = "Capture is not running: quotes shown are the last ones received."


def _newest_last(cache: TickCache, symbol: str, new: int) -> float | None:
    """The newest non-zero ``last`` among the ticks that arrived since the last render.

    Forex ticks carry ``last = 0``; a deal price stays shown until a newer deal.
    """
    if new <= 0 or symbol not in cache:
        return None
    lasts = cache.snapshot(symbol, min(new, 1024))["last"]
    nz = np.flatnonzero(lasts)
    if nz.size == 0:
        return None
    value = float(lasts[nz[-1]])
    return value if math.isfinite(value) else None
