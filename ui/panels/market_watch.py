"""Market Watch: the quote board, one row per symbol, as a trader reads it at a glance.

The board never sees individual ticks. Each frame (see :meth:`Panel.render`) hands it the
session's snapshot: one :class:`~app.session_view.QuoteRow` per captured symbol (newest
bid/ask/time, a tick count, the day's figures, ticks per second, open or closed); the
model compares them with what the previous frame showed and updates only the cells that
changed. Up/down-tick flashes are therefore refresh-to-refresh changes:
between two renders a price may move several times, and what flashes is the net move
the eye could actually see.

Which symbols are shown is a view choice: by default every captured symbol; the user
can hide rows (Delete), or stop capturing a symbol (context menu "Stop capturing", or
the symbol browser, Ctrl+U: :mod:`ui.dialogs.symbols`). Typing a name in "Add symbol…"
(completed from the terminal's own ``symbols_get()`` list, asked through the session)
and pressing Enter *captures* it: the
session checks the terminal offers it, saves it in the settings and restarts only the
worker that takes it. A name the terminal does not offer is refused with the reason.

The rows and their cells (:class:`~ui.panels.quotes.QuoteModel`) are in :mod:`ui.panels.quotes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QPoint,
    QSortFilterProxyModel,
    QStringListModel,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import QKeyEvent, QKeySequence, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCompleter,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.session import DesktopSession, SessionSnapshot, SymbolChange, TerminalSymbol
from ui.panels._format import captured_symbols, profile_digits
from ui.panels.base import Panel
from ui.panels.quote_columns import ColumnFitter
from ui.panels.quotes import (
    ASK,
    BID,
    CHANGE,
    CLOSED,
    COLUMNS,
    HIGH,
    LOW,
    NOT_CAPTURED,
    SORT_ROLE,
    STALE_AFTER_S,
    SYMBOL,
    TIME,
    TPS,
    Quote,
    QuoteModel,
)
from ui.tasks import TaskRunner
from ui.theme import Theme


class _QuoteTable(QTableView):
    """The table; Delete/Backspace hide the selected rows (a key, not a global shortcut,
    so the key only means "hide" while the board has focus)."""

    delete_pressed = Signal()
    #: The view's width changed (the dock was resized): the columns are fitted again.
    resized = Signal()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.resized.emit()

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
    ) -> None:
        super().__init__(session, tasks, parent)
        self._hidden: set[str] = set()
        self._extra: list[str] = []
        self._captured: tuple[str, ...] | None = None
        self._run = -1
        self._spanned = False
        self._fitted_time = False
        #: The terminal's symbols (``symbols_get()``), asked once when first needed.
        self._offered: list[TerminalSymbol] | None = None
        self._asking = False

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
            "Type a symbol name (the list is the terminal's symbols) and press Enter to "
            "capture it: it is saved in the settings and only one worker restarts."
        )
        self._completions = QStringListModel(self)
        completer = QCompleter(self._completions, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)  # search: "USD" finds XAUUSD
        self.add_edit.setCompleter(completer)
        self.completer = completer
        self.add_edit.textEdited.connect(lambda _text: self.load_symbol_list())
        self.add_edit.returnPressed.connect(self._add_from_edit)

        self.add_button = QToolButton(self)
        self.add_button.setText("Add")
        self.add_button.setToolTip("Capture the symbol typed on the left (Enter)")
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
        #: The columns' widths, fitted to the dock's width (ui/panels/quote_columns.py).
        self.columns = ColumnFitter(self.table, self.model)
        self.table.resized.connect(self.columns.fit)
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
    def render(self, snap: SessionSnapshot) -> None:  # type: ignore[override]
        if snap.captured != self._captured:
            self._sync_rows()
        if snap.run != self._run:
            self._run = snap.run
            self.model.forget_counts()  # a new run counts ticks from zero
            if snap.running and self.hint.text() == _NOT_RUNNING:
                self._say("")
        self.model.update(snap.quotes, snap.now)
        if not snap.running:
            self._say(_NOT_RUNNING)
            return
        if not self._fitted_time and any(q.time_msc > 0 for q in self.model.quotes()):
            self._fit_time_column()

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
        if self._offered is None:
            self._completions.setStringList(list(captured))

    # ------------------------------------------------------------------ view helpers
    def _fit_time_column(self) -> None:
        """On the first data: the time column as wide as its text needs (seconds and
        milliseconds never cut), whatever the style's margins are."""
        self._fitted_time = True
        self.columns.widen_time(self.table.sizeHintForColumn(TIME))

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

    def _symbol_at(self, index: QModelIndex) -> Quote | None:
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
        """Enter in the add field: a captured name is shown; any other is captured
        through the session (or refused with the terminal's reason)."""
        name = self.add_edit.text().strip()
        if not name:
            return
        captured = captured_symbols(self.session.config)
        if any(s.casefold() == name.casefold() for s in captured):
            self.add_symbol(name)
            self.add_edit.clear()
            return
        if not self.add_button.isEnabled():
            return  # one add at a time (the completer's Enter also reaches returnPressed)
        self._say(f"Adding {name}…")
        self.add_button.setEnabled(False)
        self.tasks.run(
            self.session.add_symbol(name),
            f"add {name}",
            on_done=self._added,
            on_error=self._add_failed,
        )

    def _added(self, result: SymbolChange) -> None:
        self.add_button.setEnabled(True)
        if result.ok:
            self.add_edit.clear()
            self._hidden.discard(result.symbol)
            self._extra = [s for s in self._extra if s.casefold() != result.symbol.casefold()]
            self._sync_rows()
            self._select_symbol(result.symbol)
        self._say(result.message)

    def _add_failed(self, exc: BaseException) -> None:
        self.add_button.setEnabled(True)
        self._say(f"Not added: {type(exc).__name__}: {exc}")

    def load_symbol_list(self) -> None:
        """Ask the terminal for its symbols (once) to complete the add field with."""
        if self._offered is not None or self._asking:
            return
        self._asking = True

        def got(symbols: list[TerminalSymbol]) -> None:
            self._asking = False
            self._offered = symbols
            self._completions.setStringList(sorted({s.name for s in symbols}))

        def failed(exc: BaseException) -> None:
            self._asking = False
            self._say(f"The terminal's symbol list is not available: {exc}")

        self.tasks.run(self.session.terminal_symbols(), "symbol list", got, failed)

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
        add.setToolTip("Type a symbol of the terminal to capture")
        add.triggered.connect(self._focus_add)
        selected = self.selected_symbols()
        remove = menu.addAction("Hide" + (f" {selected[0]}" if len(selected) == 1 else ""))
        remove.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        remove.setToolTip("Hide the selected rows; capture goes on")
        remove.setEnabled(bool(selected))
        remove.triggered.connect(self.remove_selected)
        stop = menu.addAction(
            "Stop capturing" + (f" {selected[0]}" if len(selected) == 1 else " selected")
        )
        stop.setToolTip(
            "Remove the symbol from capture: saved in the settings, only its worker "
            "restarts, and the row leaves Market Watch (the last symbol of a terminal stays)"
        )
        stop.setEnabled(any(s in set(self._captured or ()) for s in selected))
        stop.triggered.connect(self.stop_capturing_selected)
        browse = menu.addAction("Symbols…")
        browse.setShortcut(QKeySequence("Ctrl+U"))
        browse.setToolTip("Search the terminal's symbols and add or remove them (Ctrl+U)")
        browse.triggered.connect(self.open_symbols)
        show_all = menu.addAction("Show all captured symbols")
        show_all.setToolTip("Bring back every hidden captured symbol")
        show_all.setEnabled(bool(self._hidden))
        show_all.triggered.connect(self.show_all)
        menu.setToolTipsVisible(True)
        return menu

    @Slot()
    def open_symbols(self) -> None:
        """The symbol browser (MT5's "Symbols" window)."""
        from ui.dialogs.symbols import open_symbols  # noqa: PLC0415 - opened on demand

        open_symbols(self.session, self.tasks, self)

    @Slot()
    def stop_capturing_selected(self) -> None:
        """Stop capturing the selected symbols, one after the other, through the session
        (each refusal, e.g. a terminal's last symbol, is said in the hint line)."""
        captured = set(self._captured or ())
        for symbol in [s for s in self.selected_symbols() if s in captured]:
            self._say(f"Removing {symbol}…")
            self.tasks.run(
                self.session.remove_symbol(symbol),
                f"remove {symbol}",
                on_done=self._removed,
                on_error=lambda exc: self._say(f"Not removed: {type(exc).__name__}: {exc}"),
            )

    def _removed(self, result: SymbolChange) -> None:
        if result.ok:
            self._hidden.discard(result.symbol)
            self._sync_rows()
        self._say(result.message)

    @Slot(QPoint)
    def _show_context_menu(self, pos: QPoint) -> None:
        menu = self.context_menu(pos)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(self.table.viewport().mapToGlobal(pos))

    @Slot()
    def _focus_add(self) -> None:
        self.load_symbol_list()
        self.add_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.add_edit.selectAll()


_NOT_RUNNING = "Capture is not running: quotes shown are the last ones received."


#: The column constants are re-exported: the panel's callers and tests name them here.
__all__ = [
    "ASK",
    "BID",
    "CHANGE",
    "CLOSED",
    "COLUMNS",
    "HIGH",
    "LOW",
    "NOT_CAPTURED",
    "SORT_ROLE",
    "STALE_AFTER_S",
    "SYMBOL",
    "TIME",
    "TPS",
    "MarketWatch",
    "QuoteModel",
]
