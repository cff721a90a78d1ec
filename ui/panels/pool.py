"""The connection pool: one row per MT5 worker, and the buttons to kick or park one.

Rows come from the frame's snapshot (``SessionSnapshot.workers``: the pool's health),
redrawn a few times a second (a tick counter that changes thirty times a second cannot be
read anyway). Only
rows whose rendered text changed are repainted. Reconnect, Disable and Enable are user
intents the session forwards to the pool's supervisor; the row then shows what the
supervisor actually did (connecting, backing off, stopped...).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import (
    QItemSelection,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtWidgets import (
    QHeaderView,
    QTableView,
    QWidget,
)

from app.session import DesktopSession, SessionSnapshot
from app.session_view import WorkerHealth, WorkerState
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

#: Seconds between two polls of the pool (the render timer runs much faster).
POLL_INTERVAL = 0.25
#: Role that sorts by the raw value (numbers as numbers, uptime in seconds).
SORT_ROLE = Qt.ItemDataRole.UserRole + 1

COLUMNS: tuple[tuple[str, str], ...] = (
    ("Worker", "Worker number: one MT5 terminal connection, run in its own process"),
    ("Terminal", "The terminal (settings name) this connection logs in to"),
    ("State", "What the supervisor is doing with this connection right now"),
    ("Symbols", "Symbols this connection captures"),
    ("Ticks", "Ticks captured by this connection since capture started"),
    ("Reconnects", "Times the connection ended and was started again"),
    ("Uptime", "Time since the current process started streaming (h:mm:ss)"),
    ("Last error", "Last error the terminal reported: MT5 code and text"),
)
(COL_WORKER, COL_TERMINAL, COL_STATE, COL_SYMBOLS, COL_TICKS, COL_RECONNECTS, COL_UPTIME,
 COL_ERROR) = range(len(COLUMNS))  # fmt: skip
_NUMERIC = frozenset({COL_WORKER, COL_TICKS, COL_RECONNECTS, COL_UPTIME})

#: Theme colour of each state, and what it means for someone reading the table.
STATE_COLOURS: dict[WorkerState, str] = {
    WorkerState.STREAMING: "ok",
    WorkerState.OFFLINE: "offline",
    WorkerState.CONNECTING: "warn",
    WorkerState.BACKING_OFF: "warn",
    WorkerState.STALLED: "bad",
    WorkerState.FAILED: "bad",
    WorkerState.STOPPED: "muted",
}
STATE_HELP: dict[WorkerState, str] = {
    WorkerState.STREAMING: "Logged in and sending ticks",
    WorkerState.OFFLINE: "Terminal offline: the terminal answers but lost its connection to "
    "the trade server, so no new ticks arrive. Capture resumes by itself, without a hole, "
    "when the terminal is back (check its network or the broker's server)",
    WorkerState.CONNECTING: "Starting the process and logging in to the terminal",
    WorkerState.BACKING_OFF: "The connection ended; waiting before the next attempt "
    "(Reconnect skips the wait)",
    WorkerState.STALLED: "The terminal stopped answering; the process is being restarted",
    WorkerState.FAILED: "The terminal refused the login or the settings are wrong; "
    "fix the cause, then Reconnect",
    WorkerState.STOPPED: "Not running",
}


def state_text(state: WorkerState) -> str:
    return state.value.replace("_", " ")


def format_uptime(seconds: float) -> str:
    if seconds <= 0:
        return "—"
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def error_text(h: WorkerHealth) -> str:
    if not h.last_error_code and not h.last_error_text:
        return ""
    if h.last_error_code:
        return f"{h.last_error_code}: {h.last_error_text}"
    return h.last_error_text


class WorkerTableModel(ColumnsModel):
    """Rows of :class:`WorkerHealth`; :meth:`update` signals only the rows that changed."""

    columns = COLUMNS
    right_aligned = frozenset(_NUMERIC)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[WorkerHealth] = []
        self._rendered: list[tuple[object, ...]] = []
        self.theme: Theme = DARK

    # -- feeding ---------------------------------------------------------------------
    def update(self, health: Sequence[WorkerHealth]) -> bool:
        """Take a new snapshot; returns whether any row changed."""
        rendered = [self._render(h) for h in health]
        if [h.worker_id for h in health] != [h.worker_id for h in self._rows]:
            self.beginResetModel()
            self._rows, self._rendered = list(health), rendered
            self.endResetModel()
            return True
        changed = False
        last = len(COLUMNS) - 1
        for row, (before, after) in enumerate(zip(self._rendered, rendered, strict=True)):
            self._rows[row] = health[row]
            if before != after:
                self._rendered[row] = after
                self.dataChanged.emit(self.index(row, 0), self.index(row, last))
                changed = True
        return changed

    @staticmethod
    def _render(h: WorkerHealth) -> tuple[object, ...]:
        """What the row shows: two snapshots that render alike need no repaint."""
        return (
            h.terminal,
            h.state,
            h.enabled,
            h.symbols,
            h.ticks,
            h.reconnects,
            format_uptime(h.uptime),
            h.last_error_code,
            h.last_error_text,
        )

    def worker(self, row: int) -> WorkerHealth:
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
        h = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(h, col)
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == COL_STATE:
                return self.theme.color(STATE_COLOURS.get(h.state, "text"))
            if not h.enabled or (col == COL_ERROR and h.last_error_text):
                return self.theme.color("muted")
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(h, col)
        if role == Qt.ItemDataRole.TextAlignmentRole and col in _NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == SORT_ROLE:
            return self._sort_key(h, col)
        return None

    @staticmethod
    def _display(h: WorkerHealth, col: int) -> str:
        if col == COL_WORKER:
            return str(h.worker_id)
        if col == COL_TERMINAL:
            return h.terminal
        if col == COL_STATE:
            text = state_text(h.state)
            return text if h.enabled or h.state is WorkerState.STOPPED else f"{text} (disabling)"
        if col == COL_SYMBOLS:
            return ", ".join(h.symbols)
        if col == COL_TICKS:
            return f"{h.ticks:,}"
        if col == COL_RECONNECTS:
            return f"{h.reconnects:,}"
        if col == COL_UPTIME:
            return format_uptime(h.uptime)
        return error_text(h)

    @staticmethod
    def _tooltip(h: WorkerHealth, col: int) -> str:
        if col == COL_STATE:
            why = STATE_HELP.get(h.state, "")
            if not h.enabled:
                why = "Disabled by the user; Enable or Reconnect starts it again"
            return f"{state_text(h.state)}: {why}"
        if col == COL_SYMBOLS:
            return f"{len(h.symbols)} symbols: {', '.join(h.symbols)}"
        if col == COL_ERROR:
            if not h.last_error_code and not h.last_error_text:
                return "No error reported"
            return f"MT5 error {h.last_error_code}: {h.last_error_text}"
        if col == COL_WORKER:
            return f"Worker {h.worker_id}, process id {h.pid}" if h.pid else f"Worker {h.worker_id}"
        return COLUMNS[col][1]

    @staticmethod
    def _sort_key(h: WorkerHealth, col: int) -> object:
        keys: dict[int, object] = {
            COL_WORKER: h.worker_id,
            COL_TERMINAL: h.terminal,
            COL_STATE: h.state.value,
            COL_SYMBOLS: ", ".join(h.symbols),
            COL_TICKS: h.ticks,
            COL_RECONNECTS: h.reconnects,
            COL_UPTIME: h.uptime,
            COL_ERROR: error_text(h),
        }
        return keys[col]


class PoolPanel(Panel):
    """Worker table with Reconnect / Disable / Enable on the selected rows."""

    title = "Connection Pool"
    object_name = "pool"
    shortcut = "Alt+4"
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea

    def __init__(
        self, session: DesktopSession, tasks: TaskRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(session, tasks, parent)
        self._last_poll = float("-inf")
        self._running = False
        self._sized = False

        self.model = WorkerTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = QTableView(self)
        header = setup_table_view(
            self.view, self.proxy, sort=(COL_WORKER, Qt.SortOrder.AscendingOrder)
        )
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.view.setToolTip("")  # cells and headers carry their own tooltips

        self.reconnect_action = self.add_action(
            "&Reconnect",
            "Ctrl+Shift+R",
            "Stop the selected workers' processes and connect again now, skipping any "
            "back-off wait (also starts a disabled worker)",
            self._reconnect,
        )
        self.disable_action = self.add_action(
            "&Disable",
            "Ctrl+Shift+D",
            "Stop the selected workers and keep them stopped; their symbols are not "
            "captured until they are enabled again",
            self._disable,
        )
        self.enable_action = self.add_action(
            "&Enable",
            "Ctrl+Shift+E",
            "Start the selected disabled workers again",
            self._enable,
        )
        self.toolbar = actions_toolbar("Worker actions", self, self.view)

        self.summary = status_label(
            "Workers streaming out of the pool, and reconnects so far",
            "99/99 streaming · 9,999 reconnects",
        )
        lay_out_table_panel(self, [self.toolbar, None, self.summary], self.view)

        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        self._update_actions()

    # ------------------------------------------------------------------ rendering
    def render(self, snap: SessionSnapshot) -> None:  # type: ignore[override]
        now = time.monotonic()
        if now - self._last_poll < POLL_INTERVAL:
            return
        self._last_poll = now
        self._draw(snap)

    def poll(self) -> None:
        """Draw the pool now (``render`` does it at most every :data:`POLL_INTERVAL`)."""
        self._draw(self.session.snapshot())

    def _draw(self, snap: SessionSnapshot) -> None:
        self._running = snap.running
        health = snap.workers
        if self.model.update(health):
            self._update_actions()
        if health and not self._sized:
            self._sized = True
            self.view.resizeColumnsToContents()
            header = self.view.horizontalHeader()
            for col in range(len(COLUMNS) - 1):  # room for the sort arrow and live numbers
                header.resizeSection(col, header.sectionSize(col) + 18)
        if not snap.running:
            self.summary.setText("Capture stopped")
            return
        streaming = snap.streaming
        reconnects = sum(h.reconnects for h in health)
        plural = "" if reconnects == 1 else "s"
        offline = sum(h.state is WorkerState.OFFLINE for h in health)
        self.summary.setText(
            f"{streaming}/{len(health)} streaming · "
            + (f"{offline} terminal offline · " if offline else "")
            + f"{reconnects:,} reconnect{plural}"
        )

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        self.model.set_theme(theme)

    # ------------------------------------------------------------------ actions
    def selected_workers(self) -> list[WorkerHealth]:
        rows = {
            self.proxy.mapToSource(index).row()
            for index in self.view.selectionModel().selectedRows()
        }
        return [self.model.worker(row) for row in sorted(rows)]

    def _selection_changed(self, _sel: QItemSelection, _desel: QItemSelection) -> None:
        self._update_actions()

    def _update_actions(self) -> None:
        selected = self.selected_workers()
        running = self._running
        self.reconnect_action.setEnabled(running and bool(selected))
        self.disable_action.setEnabled(running and any(h.enabled for h in selected))
        self.enable_action.setEnabled(running and any(not h.enabled for h in selected))

    def _reconnect(self) -> None:
        for h in self.selected_workers():
            self.session.restart_worker(h.worker_id)
        self.poll()

    def _disable(self) -> None:
        for h in self.selected_workers():
            if h.enabled:
                self.session.disable_worker(h.worker_id)
        self.poll()

    def _enable(self) -> None:
        for h in self.selected_workers():
            if not h.enabled:
                self.session.enable_worker(h.worker_id)
        self.poll()


__all__ = ["COLUMNS", "PoolPanel", "WorkerTableModel", "format_uptime", "state_text"]
