"""Both sides of a settings conflict with the gateway, key by key, and the user's choice.

Only the settings that differ are listed, flattened to dotted paths exactly as the
command line's ``config sync`` prints them (:func:`app.config.gateway_sync.describe`), so
the window and the terminal show a conflict the same way. Nothing is decided here: the
dialog records "local" or "remote" and the settings dialog hands it to
:meth:`app.session.DesktopSession.sync_settings`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

# The same flattening `config sync` uses.
from app.session import SyncResult, flatten_settings
from ui.dialogs import palette_theme
from ui.theme import Theme

_ABSENT = object()
Choice = Literal["local", "remote"]


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    if value is None:
        return "(not set)"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def conflict_rows(result: SyncResult) -> list[tuple[str, str, str]]:
    """``(setting, this machine, gateway)`` for every setting that differs."""
    local_doc = result.local.model_dump(mode="json") if result.local is not None else {}
    if result.remote is not None:
        remote_doc: Any = result.remote.model_dump(mode="json")
    else:
        remote_doc = result.remote_settings or {}
    local = dict(flatten_settings(local_doc))
    remote = dict(flatten_settings(remote_doc))
    rows = []
    for key in sorted(local.keys() | remote.keys()):
        mine, theirs = local.get(key, _ABSENT), remote.get(key, _ABSENT)
        if mine != theirs:
            rows.append((key, _show(mine), _show(theirs)))
    return rows


class ConflictModel(QAbstractTableModel):
    """The differing settings; fixed once shown (a new sync opens a new dialog)."""

    def __init__(self, rows: list[tuple[str, str, str]], version: int | None, theme: Theme) -> None:
        super().__init__()
        self.rows = rows
        self.theme = theme
        gateway = f"Gateway (v{version})" if version is not None else "Gateway"
        self.headers = ("Setting", "This machine", gateway)
        self.header_tips = (
            "The setting, as a dotted path into the settings file",
            "The value in this machine's settings file (kept by 'Keep mine')",
            "The value the API gateway holds (taken by 'Take the gateway's')",
        )

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else 3

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        if not index.isValid():
            return None
        text = self.rows[index.row()][index.column()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return text
        if role == Qt.ItemDataRole.ForegroundRole and index.column() > 0:
            return QColor(self.theme.up if index.column() == 1 else self.theme.warn)
        return None

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = 0
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.headers[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.header_tips[section]
        return None


class SyncConflictDialog(QDialog):
    """This machine's settings against the gateway's, side by side; "Keep mine" or
    "Take the gateway's" sets :attr:`choice` and accepts, Esc decides nothing."""

    def __init__(self, result: SyncResult, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sync_result = result
        self.choice: Choice | None = None
        self.theme: Theme = palette_theme()
        self.setObjectName("syncConflictDialog")
        self.setWindowTitle("Settings conflict with the gateway")
        layout = QVBoxLayout(self)

        message = QLabel(
            "The settings on this machine and at the API gateway were both changed since "
            "they were last in step. Nothing has been overwritten; choose which to keep.",
            self,
        )
        message.setWordWrap(True)
        layout.addWidget(message)

        self.model = ConflictModel(conflict_rows(result), result.remote_version, self.theme)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setToolTip("Only the settings that differ are listed")
        layout.addWidget(self.table, 1)

        count = len(self.model.rows)
        self.count_label = QLabel(
            "1 setting differs" if count == 1 else f"{count} settings differ", self
        )
        self.count_label.setEnabled(False)
        layout.addWidget(self.count_label)

        buttons = QHBoxLayout()
        self.keep_button = QPushButton("Keep mine", self)
        self.keep_button.setObjectName("keepMine")
        self.keep_button.setShortcut(QKeySequence("Alt+M"))
        self.keep_button.setToolTip(
            "Store this machine's settings at the gateway as the new version (Alt+M)"
        )
        self.take_button = QPushButton("Take the gateway's", self)
        self.take_button.setObjectName("takeGateway")
        self.take_button.setShortcut(QKeySequence("Alt+G"))
        self.take_button.setToolTip(
            "Replace this machine's settings with the gateway's and restart capture (Alt+G)"
        )
        self.later_button = QPushButton("Decide later", self)
        self.later_button.setToolTip("Change nothing on either side (Esc)")
        for button in (self.keep_button, self.take_button, self.later_button):
            button.setAutoDefault(False)
        self.keep_button.clicked.connect(lambda: self.choose("local"))
        self.take_button.clicked.connect(lambda: self.choose("remote"))
        self.later_button.clicked.connect(self.reject)
        buttons.addStretch(1)
        buttons.addWidget(self.keep_button)
        buttons.addWidget(self.take_button)
        buttons.addWidget(self.later_button)
        layout.addLayout(buttons)
        self.resize(760, 360)

    def choose(self, choice: Choice) -> None:
        self.choice = choice
        self.accept()


class EndpointChangeDialog(QDialog):
    """The gateway's changes of where data or credentials go, old → new, refused until
    the user says otherwise: "Apply the gateway's" sets :attr:`choice` to ``"remote"``,
    "Keep mine" (and Esc) to ``"local"``. The rest of the gateway's settings were already
    taken; this machine's values of these stay unless applied here."""

    def __init__(self, result: SyncResult, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sync_result = result
        self.choice: Choice | None = None
        self.setObjectName("endpointChangeDialog")
        self.setWindowTitle("The gateway wants to redirect this client")
        layout = QVBoxLayout(self)
        message = QLabel(
            "The settings at the API gateway change where this client sends its data or "
            "credentials. These changes were NOT applied: apply them only if you expected "
            "them (whoever can write the gateway's settings could otherwise send your ticks "
            "and passwords elsewhere).",
            self,
        )
        message.setWordWrap(True)
        layout.addWidget(message)
        rows = [(c.setting, _show(c.local), _show(c.remote)) for c in result.refused]
        self.model = ConflictModel(rows, result.remote_version, palette_theme())
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.keep_button = QPushButton("Keep mine", self)
        self.keep_button.setObjectName("keepMineEndpoints")
        self.keep_button.setToolTip("Leave these settings as they are on this machine (Esc)")
        self.apply_button = QPushButton("Apply the gateway's", self)
        self.apply_button.setObjectName("applyRemoteEndpoints")
        self.apply_button.setToolTip("Take these changes too, and restart capture with them")
        for button in (self.keep_button, self.apply_button):
            button.setAutoDefault(False)
        self.keep_button.setDefault(True)
        self.keep_button.clicked.connect(lambda: self.choose("local"))
        self.apply_button.clicked.connect(lambda: self.choose("remote"))
        buttons.addStretch(1)
        buttons.addWidget(self.keep_button)
        buttons.addWidget(self.apply_button)
        layout.addLayout(buttons)
        self.resize(760, 300)

    def choose(self, choice: Choice) -> None:
        self.choice = choice
        self.accept()

    def reject(self) -> None:
        self.choice = "local"  # Esc keeps this machine's values, like "Keep mine"
        super().reject()


__all__ = ["ConflictModel", "EndpointChangeDialog", "SyncConflictDialog", "conflict_rows"]
