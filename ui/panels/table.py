"""What the table panels (pool, alerts, journal) share: a model over a list of rows with
fixed, explained columns, and the same read-only table view under a row of actions,
filters and a status label."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

ModelIndex = QModelIndex | QPersistentModelIndex


class ColumnsModel(QAbstractTableModel):
    """Rows in ``self._rows``; ``columns`` = (header, header tooltip) per column."""

    columns: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: Columns whose header is right-aligned (numbers).
    right_aligned: ClassVar[frozenset[int]] = frozenset()
    _rows: Sequence[Any]

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.columns)

    def headerData(  # noqa: N802 - Qt's name
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section][0]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.columns[section][1]
        if role == Qt.ItemDataRole.TextAlignmentRole and section in self.right_aligned:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


def setup_table_view(
    view: QTableView,
    model: QAbstractItemModel,
    *,
    sort: tuple[int, Qt.SortOrder] | None = None,
    row_height: int = 22,
) -> QHeaderView:
    """Show ``model`` in ``view`` as read-only rows, selected whole and several at a time,
    one line each, without row numbers; sorted by clicking a header when ``sort`` (the
    column and order to start with) is given. Returns the horizontal header, for the
    caller's column sizes."""
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    if sort is not None:
        view.setSortingEnabled(True)
        view.sortByColumn(*sort)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.verticalHeader().hide()
    view.verticalHeader().setDefaultSectionSize(row_height)
    header = view.horizontalHeader()
    header.setHighlightSections(False)
    return header


def actions_toolbar(
    title: str, panel: QWidget, view: QAbstractItemView, shown: Sequence[QAction] | None = None
) -> QToolBar:
    """A text-only toolbar of ``shown`` (default: all the panel's actions); the view's
    context menu offers every action of the panel."""
    toolbar = QToolBar(title, panel)
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    for action in panel.actions() if shown is None else shown:
        toolbar.addAction(action)
    view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
    view.addActions(panel.actions())
    return toolbar


def status_label(tooltip: str, widest: str) -> QLabel:
    """The right-aligned counts at the end of the toolbar row, wide enough for ``widest``
    so the row does not jump as the numbers change."""
    label = QLabel("")
    label.setToolTip(tooltip)
    label.setMinimumWidth(label.fontMetrics().horizontalAdvance(widest))
    label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return label


#: An item of the toolbar row: a widget, a widget with its stretch factor, or ``None`` for
#: an empty stretch.
BarItem = QWidget | tuple[QWidget, int] | None


def lay_out_table_panel(panel: QWidget, bar: Sequence[BarItem], view: QWidget) -> None:
    """The panel's layout: the ``bar`` row on top, the view taking the rest."""
    row = QHBoxLayout()
    row.setContentsMargins(0, 0, 6, 0)
    for item in bar:
        if item is None:
            row.addStretch(1)
        elif isinstance(item, tuple):
            row.addWidget(*item)
        else:
            row.addWidget(item)
    layout = QVBoxLayout(panel)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(0)
    layout.addLayout(row)
    layout.addWidget(view, 1)
