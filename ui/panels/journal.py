"""The journal: the application's own log, live, for when something needs explaining.

Log records land in :class:`app.journal.Journal` (a ring on the root logger) from any
thread; a refresh asks it for the entries after the last sequence number it has, so a
burst of a thousand lines costs one insert of a thousand rows, and a quiet log costs one
integer comparison. The view keeps the newest :data:`MAX_ROWS` lines and follows the end
unless the user scrolled up to read something.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from PySide6.QtCore import (
    QItemSelection,
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QGuiApplication, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHeaderView,
    QLineEdit,
    QTableView,
    QWidget,
)

from app.journal import JournalEntry
from app.session import DesktopSession
from ui.panels.base import Panel
from ui.panels.table import (
    ColumnsModel,
    ModelIndex,
    actions_toolbar,
    lay_out_table_panel,
    setup_table_view,
    status_label,
)
from ui.tasks import TaskRunner
from ui.theme import DARK, Theme

#: Lines the view keeps; older ones are dropped from the view (the journal's own ring and
#: the log file, when configured, are separate).
MAX_ROWS = 5000
ENTRY_ROLE = Qt.ItemDataRole.UserRole + 1

COLUMNS: tuple[tuple[str, str], ...] = (
    ("Time", "When the line was logged (local time)"),
    ("Level", "How serious: DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("Source", "The part of the application that logged it (logger name)"),
    ("Message", "What happened"),
)
COL_TIME, COL_LEVEL, COL_SOURCE, COL_MESSAGE = range(len(COLUMNS))

LEVELS: tuple[tuple[str, int], ...] = (
    ("Debug", logging.DEBUG),
    ("Info", logging.INFO),
    ("Warning", logging.WARNING),
    ("Error", logging.ERROR),
    ("Critical", logging.CRITICAL),
)
DEFAULT_LEVEL = logging.INFO


def level_colour(level: int) -> str | None:
    """Theme colour of a level; ``None`` keeps the normal text colour."""
    if level >= logging.ERROR:
        return "bad"
    if level >= logging.WARNING:
        return "warn"
    if level < logging.INFO:
        return "muted"
    return None


def entry_line(entry: JournalEntry) -> str:
    """One entry as a line of text (what Copy puts on the clipboard)."""
    stamp = datetime.fromtimestamp(entry.created).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return f"{stamp}\t{entry.level_name}\t{entry.source}\t{entry.message}"


class JournalModel(ColumnsModel):
    """Entries in arrival order; appended at the end, trimmed at the start."""

    columns = COLUMNS

    def __init__(self, max_rows: int = MAX_ROWS, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.max_rows = max_rows
        self._rows: list[JournalEntry] = []
        self._times: list[str] = []  # formatted once: paint calls data() a lot
        self.theme: Theme = DARK

    def append(self, entries: Sequence[JournalEntry]) -> None:
        if not entries:
            return
        entries = entries[-self.max_rows :]
        overflow = len(self._rows) + len(entries) - self.max_rows
        if overflow > 0:
            self.beginRemoveRows(QModelIndex(), 0, overflow - 1)
            del self._rows[:overflow]
            del self._times[:overflow]
            self.endRemoveRows()
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(entries) - 1)
        self._rows.extend(entries)
        self._times.extend(
            datetime.fromtimestamp(e.created).strftime("%H:%M:%S.%f")[:-3] for e in entries
        )
        self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self._rows.clear()
        self._times.clear()
        self.endResetModel()

    def entry(self, row: int) -> JournalEntry:
        return self._rows[row]

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        if self._rows:
            self.dataChanged.emit(
                self.index(0, 0),
                self.index(len(self._rows) - 1, len(COLUMNS) - 1),
                [Qt.ItemDataRole.ForegroundRole],
            )

    # -- Qt model API ------------------------------------------------------------------
    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        e = self._rows[row]
        if role == Qt.ItemDataRole.DisplayRole:
            if col == COL_TIME:
                return self._times[row]
            if col == COL_LEVEL:
                return e.level_name
            if col == COL_SOURCE:
                return e.source
            return e.message
        if role == Qt.ItemDataRole.ForegroundRole:
            colour = level_colour(e.level)
            return self.theme.color(colour) if colour is not None else None
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == COL_TIME:
                return datetime.fromtimestamp(e.created).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            if col == COL_MESSAGE:
                return e.message if len(e.message) < 2000 else e.message[:2000] + "…"
            if col == COL_SOURCE:
                return f"Logger {e.source}"
            return None
        if role == ENTRY_ROLE:
            return e
        return None


class JournalFilterProxy(QSortFilterProxyModel):
    """Minimum level, source substring and message substring, all case-insensitive."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._level = DEFAULT_LEVEL
        self._source = ""
        self._text = ""

    def set_filters(
        self, level: int | None = None, source: str | None = None, text: str | None = None
    ) -> None:
        self.beginFilterChange()
        if level is not None:
            self._level = level
        if source is not None:
            self._source = source.strip().casefold()
        if text is not None:
            self._text = text.strip().casefold()
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: ModelIndex) -> bool:  # noqa: N802
        model = self.sourceModel()
        assert isinstance(model, JournalModel)
        e = model.entry(source_row)
        if e.level < self._level:
            return False
        if self._source and self._source not in e.source.casefold():
            return False
        return not self._text or self._text in e.message.casefold()


class JournalView(QTableView):
    """A table whose Copy key copies whole lines (Qt's item views copy one cell)."""

    copy_requested = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_requested.emit()
            event.accept()
            return
        super().keyPressEvent(event)


class JournalPanel(Panel):
    """The live application log with level/source/text filters, Copy and Clear."""

    title = "Journal"
    object_name = "journal"
    shortcut = "Alt+6"
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea

    def __init__(
        self, session: DesktopSession, tasks: TaskRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(session, tasks, parent)
        self._seq = 0
        self._sources: set[str] = set()

        self.model = JournalModel(MAX_ROWS, self)
        self.proxy = JournalFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.view = JournalView(self)
        header = setup_table_view(self.view, self.proxy, row_height=20)
        self.view.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header.setStretchLastSection(True)
        for col, width in ((COL_TIME, 100), (COL_LEVEL, 80), (COL_SOURCE, 200)):
            header.resizeSection(col, width)

        self.copy_action = self.add_action(
            "&Copy",
            QKeySequence(QKeySequence.StandardKey.Copy),
            "Copy the selected lines as tab-separated text",
            self.copy_selected,
        )
        self.clear_action = self.add_action(
            "C&lear",
            QKeySequence("Ctrl+Shift+X"),
            "Empty this view (the log itself is kept; new lines keep coming)",
            self.clear_view,
        )
        self.only_source_action = self.add_action(
            "Only this &source",
            QKeySequence("Ctrl+Shift+S"),
            "Filter the view to the source of the selected line",
            self._only_selected_source,
        )
        self.view.copy_requested.connect(self.copy_selected)
        self.toolbar = actions_toolbar(
            "Journal actions", self, self.view, [self.copy_action, self.clear_action]
        )

        self.level_combo = QComboBox()
        for label, level in LEVELS:
            self.level_combo.addItem(label, level)
        self.level_combo.setCurrentIndex([lv for _, lv in LEVELS].index(DEFAULT_LEVEL))
        self.level_combo.setToolTip("Show lines at this level and above")
        self.level_combo.currentIndexChanged.connect(self._level_changed)
        # An editable list of the sources seen so far: type a part of a logger name, or
        # pick one. (No completer: its popup would fight the live filtering.)
        self.source_combo = QComboBox()
        self.source_combo.setEditable(True)
        self.source_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.source_combo.setCompleter(None)  # type: ignore[arg-type]  # None removes it
        self.source_combo.addItem("")  # all sources
        self.source_combo.setMinimumContentsLength(16)
        self.source_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        source_line = self.source_combo.lineEdit()
        assert source_line is not None  # editable
        source_line.setPlaceholderText("Source…")
        source_line.setClearButtonEnabled(True)
        self.source_combo.setToolTip(
            "Show only lines whose source (logger name) contains this text, e.g. "
            "app.connector; the list offers every source seen so far"
        )
        self.source_combo.editTextChanged.connect(lambda t: self._filter(source=t))
        self.text_edit = QLineEdit()
        self.text_edit.setPlaceholderText("Filter messages…")
        self.text_edit.setClearButtonEnabled(True)
        self.text_edit.setToolTip("Show only lines whose message contains this text")
        self.text_edit.textChanged.connect(lambda t: self._filter(text=t))
        self.counter = status_label(
            "Lines shown / lines kept in this view", f"{MAX_ROWS:,} / {MAX_ROWS:,} lines"
        )
        lay_out_table_panel(
            self,
            [
                self.toolbar,
                self.level_combo,
                (self.source_combo, 1),
                (self.text_edit, 2),
                self.counter,
            ],
            self.view,
        )

        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        self._update_actions()

    # ------------------------------------------------------------------ rendering
    def refresh(self) -> None:
        journal = self.session.journal
        if journal.last_seq == self._seq:
            return
        entries = journal.after(self._seq)
        self._seq = journal.last_seq if not entries else entries[-1].seq
        if not entries:
            return
        bar = self.view.verticalScrollBar()
        following = bar.value() >= bar.maximum() - 2
        self.model.append(entries)
        for source in sorted({e.source for e in entries} - self._sources):
            self._add_source(source)
        if following:
            self.view.scrollToBottom()
        self._update_counter()

    def _add_source(self, source: str) -> None:
        """Insert in name order after the empty "all sources" item; inserting never
        touches the text being typed."""
        self._sources.add(source)
        names = [self.source_combo.itemText(i) for i in range(1, self.source_combo.count())]
        self.source_combo.insertItem(1 + bisect.bisect(names, source), source)

    def _update_counter(self) -> None:
        self.counter.setText(f"{self.proxy.rowCount():,} / {self.model.rowCount():,} lines")

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        self.model.set_theme(theme)

    # ------------------------------------------------------------------ filters
    def _level_changed(self, index: int) -> None:
        self._filter(level=int(self.level_combo.itemData(index)))

    def _filter(
        self, level: int | None = None, source: str | None = None, text: str | None = None
    ) -> None:
        self.proxy.set_filters(level, source, text)
        self.view.scrollToBottom()
        self._update_counter()
        self._update_actions()

    def _only_selected_source(self) -> None:
        selected = self.selected_entries()
        if selected:
            self.source_combo.setEditText(selected[0].source)

    # ------------------------------------------------------------------ actions
    def selected_entries(self) -> list[JournalEntry]:
        rows = sorted(index.row() for index in self.view.selectionModel().selectedRows())
        return [self.proxy.index(row, 0).data(ENTRY_ROLE) for row in rows]

    def shown_entries(self) -> list[JournalEntry]:
        return [self.proxy.index(r, 0).data(ENTRY_ROLE) for r in range(self.proxy.rowCount())]

    def _selection_changed(self, _sel: QItemSelection, _desel: QItemSelection) -> None:
        self._update_actions()

    def _update_actions(self) -> None:
        selected = self.view.selectionModel().hasSelection()
        self.copy_action.setEnabled(selected)
        self.only_source_action.setEnabled(selected)

    def copy_selected(self) -> None:
        entries = self.selected_entries()
        if entries:
            QGuiApplication.clipboard().setText("\n".join(entry_line(e) for e in entries))

    def clear_view(self) -> None:
        self.model.clear()
        self._update_counter()
        self._update_actions()
