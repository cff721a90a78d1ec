"""The symbol browser (MT5's "Symbols" window, Ctrl+U): search the terminals' symbols,
grouped by their folder in the terminal's tree, and start or stop capturing one.

The list is each terminal's ``symbols_get()``, asked through the session
(:meth:`~app.session.DesktopSession.terminal_symbols`, once per session, off the loop).
Add and Remove are the session's intents (:meth:`~app.session.DesktopSession.add_symbol`,
:meth:`~app.session.DesktopSession.remove_symbol`): saved in the settings, only the
worker concerned restarts, and a refusal (the last symbol of a terminal) says why in the
status line. The search matches name, description and folder, case-insensitively.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.session import DesktopSession, SymbolChange, TerminalSymbol
from ui.panels._format import captured_symbols
from ui.tasks import TaskRunner

#: Role of a leaf: the :class:`TerminalSymbol`; of every row: the text the search matches.
SYMBOL_ROLE = Qt.ItemDataRole.UserRole + 1
SEARCH_ROLE = Qt.ItemDataRole.UserRole + 2
COLUMNS = ("Symbol", "Description", "Captured")
CAPTURED_MARK = "✓"


def folder_of(symbol: TerminalSymbol) -> str:
    """The symbol's folder in the terminal's tree (``Forex\\EURUSD`` → ``Forex``)."""
    parts = symbol.path.replace("/", "\\").split("\\")
    folder = "\\".join(parts[:-1]) if len(parts) > 1 else ""
    return folder or "(no folder)"


class _SearchProxy(QSortFilterProxyModel):
    """Keeps a leaf whose name, description or path contains the search text; a folder
    stays while one of its symbols does (recursive filtering)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self.setRecursiveFilteringEnabled(True)

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self._text = text.strip().casefold()
        self.endFilterChange()

    def filterAcceptsRow(  # noqa: N802 - Qt's name
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        if not self._text:
            return True
        index = self.sourceModel().index(source_row, 0, source_parent)
        if index.data(SYMBOL_ROLE) is None:
            return False  # a folder: kept when a child matches (recursive filtering)
        return self._text in str(index.data(SEARCH_ROLE))


class SymbolsDialog(QDialog):
    """Search the terminals' symbols and add or remove them from capture."""

    def __init__(
        self, session: DesktopSession, tasks: TaskRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.tasks = tasks
        self.setObjectName("symbolsDialog")
        self.setWindowTitle("Symbols")
        self.resize(620, 460)
        self._symbols: list[TerminalSymbol] = []
        self._pending = 0
        self._busy = False

        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search name, description or folder…")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip("Filters the list as you type (e.g. 'usd', 'gold', 'metals')")
        self.search.textChanged.connect(self._search_changed)

        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        self.proxy = _SearchProxy(self)
        self.proxy.setSourceModel(self.model)
        self.tree = QTreeView(self)
        self.tree.setModel(self.proxy)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.selectionModel().currentRowChanged.connect(lambda *_: self._update_buttons())
        self.tree.doubleClicked.connect(lambda _i: self.add_selected())

        self.add_button = QPushButton("&Add", self)
        self.add_button.setToolTip(
            "Capture the selected symbol: saved in the settings; only one worker restarts"
        )
        self.add_button.clicked.connect(self.add_selected)
        self.remove_button = QPushButton("&Remove", self)
        self.remove_button.setToolTip(
            "Stop capturing the selected symbol: saved in the settings; only the worker "
            "that captured it restarts, and it leaves Market Watch"
        )
        self.remove_button.clicked.connect(self.remove_selected)
        self.status = QLabel("Loading the terminals' symbol lists…", self)
        self.status.setObjectName("symbolsStatus")
        self.status.setWordWrap(True)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)

        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self._update_buttons()
        self.load()

    # ------------------------------------------------------------------ loading
    def load(self) -> None:
        """Ask every terminal of the settings for its symbols (answers fill the tree)."""
        terminals = [t.name for t in self.session.config.terminals]
        self._pending = len(terminals)
        for name in terminals:
            self.tasks.run(
                self.session.terminal_symbols(name),
                f"symbol list of {name}",
                on_done=self._got,
                on_error=self._failer(name),
            )

    def _failer(self, terminal: str) -> Callable[[BaseException], None]:
        return lambda exc: self._failed(terminal, exc)

    def _got(self, symbols: list[TerminalSymbol]) -> None:
        self._symbols += symbols
        self._pending -= 1
        self._fill()
        self._say(f"{len(self._symbols)} symbols; {len(self._captured())} captured")

    def _failed(self, terminal: str, exc: BaseException) -> None:
        self._pending -= 1
        self._say(f"The symbol list of {terminal} is not available: {exc}")

    @property
    def loading(self) -> bool:
        return self._pending > 0

    def _captured(self) -> set[str]:
        return set(captured_symbols(self.session.config))

    def _fill(self) -> None:
        """(Re)build the tree: one folder row per path folder, one leaf per symbol."""
        captured = self._captured()
        several = len({s.terminal for s in self._symbols}) > 1
        self.model.removeRows(0, self.model.rowCount())
        folders: dict[str, QStandardItem] = {}
        for sym in sorted(self._symbols, key=lambda s: (folder_of(s), s.name)):
            key = f"{sym.terminal}: {folder_of(sym)}" if several else folder_of(sym)
            folder = folders.get(key)
            if folder is None:
                folder = QStandardItem(key)
                folder.setData(key.casefold(), SEARCH_ROLE)
                folders[key] = folder
                self.model.appendRow([folder, QStandardItem(""), QStandardItem("")])
            name = QStandardItem(sym.name)
            name.setData(sym, SYMBOL_ROLE)
            name.setData(f"{sym.name} {sym.description} {sym.path}".casefold(), SEARCH_ROLE)
            name.setToolTip(f"{sym.path} ({sym.terminal})")
            mark = QStandardItem(CAPTURED_MARK if sym.name in captured else "")
            folder.appendRow([name, QStandardItem(sym.description), mark])
        self.tree.expandAll()
        for col in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(col)
        self._update_buttons()

    # ------------------------------------------------------------------ reading
    def _search_changed(self, text: str) -> None:
        self.proxy.set_text(text)
        self.tree.expandAll()
        first = self._first_leaf()
        if first is not None:
            self.tree.setCurrentIndex(first)
        self._update_buttons()

    def _first_leaf(self) -> QModelIndex | None:
        for r in range(self.proxy.rowCount()):
            folder = self.proxy.index(r, 0)
            if self.proxy.rowCount(folder):
                return self.proxy.index(0, 0, folder)
        return None

    def shown_symbols(self) -> list[str]:
        """Symbol names the tree shows now (after the search), top to bottom."""
        out: list[str] = []
        for r in range(self.proxy.rowCount()):
            folder = self.proxy.index(r, 0)
            out += [
                str(self.proxy.index(c, 0, folder).data())
                for c in range(self.proxy.rowCount(folder))
            ]
        return out

    def shown_folders(self) -> list[str]:
        return [str(self.proxy.index(r, 0).data()) for r in range(self.proxy.rowCount())]

    def selected(self) -> TerminalSymbol | None:
        index = self.tree.currentIndex()
        if not index.isValid():
            return None
        sym = index.sibling(index.row(), 0).data(SYMBOL_ROLE)
        return sym if isinstance(sym, TerminalSymbol) else None

    def select(self, name: str) -> bool:
        """Make ``name`` the current row (as a click would); False when not shown."""
        for r in range(self.proxy.rowCount()):
            folder = self.proxy.index(r, 0)
            for c in range(self.proxy.rowCount(folder)):
                index = self.proxy.index(c, 0, folder)
                if index.data() == name:
                    self.tree.setCurrentIndex(index)
                    return True
        return False

    # ------------------------------------------------------------------ intents
    def _update_buttons(self) -> None:
        sym = self.selected()
        captured = sym is not None and sym.name in self._captured()
        self.add_button.setEnabled(sym is not None and not captured and not self._busy)
        self.remove_button.setEnabled(captured and not self._busy)

    def add_selected(self) -> None:
        sym = self.selected()
        if sym is None or sym.name in self._captured() or self._busy:
            return
        self._run_change(f"Adding {sym.name}…", self.session.add_symbol(sym.name, sym.terminal))

    def remove_selected(self) -> None:
        sym = self.selected()
        if sym is None or sym.name not in self._captured() or self._busy:
            return
        self._run_change(f"Removing {sym.name}…", self.session.remove_symbol(sym.name))

    def _run_change(self, text: str, coro: Coroutine[Any, Any, SymbolChange]) -> None:
        self._busy = True
        self._update_buttons()
        self._say(text)
        self.tasks.run(coro, text.rstrip("…").lower(), self._changed, self._change_failed)

    def _changed(self, result: SymbolChange) -> None:
        self._busy = False
        current = self.selected()
        self._fill()
        if current is not None:
            self.select(current.name)
        self._say(result.message)
        self._update_buttons()

    def _change_failed(self, exc: BaseException) -> None:
        self._busy = False
        self._say(f"Failed: {type(exc).__name__}: {exc}")
        self._update_buttons()

    def _say(self, text: str) -> None:
        self.status.setText(text)

    def captured_marks(self) -> dict[str, bool]:
        """Each listed symbol and whether its row shows it captured (for tests)."""
        marks: dict[str, bool] = {}
        for r in range(self.model.rowCount()):
            folder = self.model.item(r, 0)
            for c in range(folder.rowCount()):
                marks[folder.child(c, 0).text()] = folder.child(c, 2).text() == CAPTURED_MARK
        return marks


def open_symbols(
    session: DesktopSession, tasks: TaskRunner, parent: QWidget | None, search: str = ""
) -> SymbolsDialog:
    """Open the browser non-modally (deleted on close), optionally pre-searched."""
    dialog = SymbolsDialog(session, tasks, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    if search:
        dialog.search.setText(search)
    dialog.open()
    return dialog


__all__ = ["COLUMNS", "SymbolsDialog", "folder_of", "open_symbols"]
