"""Alerts: what the monitor's rules raised, and the operator's acknowledgement of it.

The alerts only change when the monitor ticks (once a second) or when someone
acknowledges; the frame's snapshot carries them (``SessionSnapshot.monitor``: every
alert the engine can name, the unacknowledged count, the rules) with a version that moves
only then, so a render compares one integer and returns otherwise. New alerts are found
by comparing ids, raise times and occurrence counts with the previous render, never by
subscribing to the engine from Qt. Acknowledging is the session's intent.

The list holds every alert the engine knows (active and resolved, from its bounded event
history). "Clear resolved" hides the resolved ones from this view only; an alert that is
raised again comes back.

The window should call :meth:`AlertsPanel.refresh` even while the panel is hidden behind
another tab: it costs one identity check per frame, and it keeps the dock title's count
and the :attr:`AlertsPanel.notify` signal current.
"""

from __future__ import annotations

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
from PySide6.QtGui import QColor, QFont, QIcon, QKeySequence, QPainter, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QHeaderView,
    QLineEdit,
    QTableView,
    QWidget,
)

from app.session import DesktopSession, SessionSnapshot
from app.session_view import (
    Alert,
    AlertState,
    Comparison,
    MonitorView,
    Rule,
    Severity,
    ThresholdRule,
)
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

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
#: The :class:`Alert` behind a row (for filters and actions).
ALERT_ROLE = Qt.ItemDataRole.UserRole + 2

COLUMNS: tuple[tuple[str, str], ...] = (
    ("Severity", "How serious the condition is: critical, warning or info"),
    ("Raised", "When this incident was first raised (local time); ×n counts re-raises"),
    ("Message", "What the rule found"),
    ("Value", "Latest measured value against the rule's threshold"),
    ("State", "Active or resolved, and whether someone acknowledged it"),
)
COL_SEVERITY, COL_RAISED, COL_MESSAGE, COL_VALUE, COL_STATE = range(len(COLUMNS))

SEVERITY_COLOURS: dict[Severity, str] = {
    Severity.CRITICAL: "bad",
    Severity.WARNING: "warn",
    Severity.INFO: "info",
}
#: Severity filter choices: ``(label, severity or None for all)``.
SEVERITY_FILTERS: tuple[tuple[str, Severity | None], ...] = (
    ("All severities", None),
    ("Critical", Severity.CRITICAL),
    ("Warning", Severity.WARNING),
    ("Info", Severity.INFO),
)


def severity_icon(colour: QColor, size: int = 12) -> QIcon:
    """A filled dot in the severity's theme colour (reads the same in both themes)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(colour)
    painter.drawEllipse(1, 1, size - 2, size - 2)
    painter.end()
    return QIcon(pixmap)


def _number(x: float) -> str:
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def value_text(alert: Alert, rule: Rule | None) -> str:
    """``62.3 ms > 50 ms`` for a threshold rule (in the rule's display unit), else the
    flag, e.g. ``link.down = true``."""
    value = alert.value
    if isinstance(rule, ThresholdRule) and not isinstance(value, bool):
        scale, unit = rule.display_scale, f" {rule.unit}" if rule.unit else ""
        above = rule.comparison is Comparison.ABOVE
        sign = ("≥" if above else "≤") if rule.inclusive else (">" if above else "<")
        return f"{_number(value * scale)}{unit} {sign} {_number(rule.threshold * scale)}{unit}"
    if isinstance(value, bool):
        return f"{alert.metric} = {str(value).lower()}"
    if alert.threshold is not None:
        return f"{_number(value)} (limit {_number(alert.threshold)})"
    return _number(value)


def state_text(alert: Alert) -> str:
    state = "active" if alert.active else "resolved"
    return f"{state} · acknowledged" if alert.acknowledged else state


def clock_text(at: float) -> str:
    moment = datetime.fromtimestamp(at)
    if moment.date() == datetime.now().date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


class AlertTableModel(ColumnsModel):
    """One row per alert id; rows are appended, updated in place, or reset on removal."""

    columns = COLUMNS

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Alert] = []
        self._row_of: dict[str, int] = {}
        self.rules: dict[str, Rule] = {}
        self.theme: Theme = DARK
        self._icons: dict[Severity, QIcon] = {}
        self._bold = QFont()
        self._bold.setBold(True)
        self.set_theme(DARK)

    def update(self, alerts: Sequence[Alert]) -> None:
        ids = [a.id for a in alerts]
        if not set(self._row_of) <= set(ids):  # a row goes (clear resolved, restart)
            self.beginResetModel()
            self._rows = list(alerts)
            self._row_of = {a.id: i for i, a in enumerate(self._rows)}
            self.endResetModel()
            return
        new = [a for a in alerts if a.id not in self._row_of]
        last = len(COLUMNS) - 1
        for alert in alerts:
            row = self._row_of.get(alert.id)
            if row is not None and self._rows[row] != alert:
                self._rows[row] = alert
                self.dataChanged.emit(self.index(row, 0), self.index(row, last))
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for alert in new:
                self._row_of[alert.id] = len(self._rows)
                self._rows.append(alert)
            self.endInsertRows()

    def alerts(self) -> list[Alert]:
        return list(self._rows)

    def alert(self, row: int) -> Alert:
        return self._rows[row]

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self._icons = {s: severity_icon(theme.color(c)) for s, c in SEVERITY_COLOURS.items()}
        if self._rows:
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self._rows) - 1, len(COLUMNS) - 1)
            )

    # -- Qt model API ------------------------------------------------------------------
    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        a = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(a, col)
        if role == Qt.ItemDataRole.DecorationRole and col == COL_SEVERITY:
            return self._icons.get(a.severity)
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == COL_SEVERITY:
                return self.theme.color(SEVERITY_COLOURS.get(a.severity, "text"))
            if not a.active:
                return self.theme.color("muted")
            return None
        if role == Qt.ItemDataRole.FontRole and a.active and not a.acknowledged:
            return self._bold
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(a, col)
        if role == SORT_ROLE:
            return self._sort_key(a, col)
        if role == ALERT_ROLE:
            return a
        return None

    def _display(self, a: Alert, col: int) -> str:
        if col == COL_SEVERITY:
            return a.severity.value.capitalize()
        if col == COL_RAISED:
            times = f" ×{a.occurrences}" if a.occurrences > 1 else ""
            return clock_text(a.raised_at) + times
        if col == COL_MESSAGE:
            return a.message
        if col == COL_VALUE:
            return value_text(a, self.rules.get(a.rule))
        return state_text(a)

    def _tooltip(self, a: Alert, col: int) -> str:
        if col == COL_RAISED:
            full = datetime.fromtimestamp(a.raised_at).strftime("%Y-%m-%d %H:%M:%S")
            lines = [f"Raised {full}"]
            if a.occurrences > 1:
                lines.append(f"Raised {a.occurrences} times (flapping within the cool-down)")
            if a.resolved_at is not None:
                lines.append(
                    "Resolved " + datetime.fromtimestamp(a.resolved_at).strftime("%H:%M:%S")
                )
            return "\n".join(lines)
        if col == COL_MESSAGE:
            return f"{a.message}\nRule {a.rule} on metric {a.metric}"
        if col == COL_VALUE:
            seen = datetime.fromtimestamp(a.last_value_at).strftime("%H:%M:%S")
            return f"{value_text(a, self.rules.get(a.rule))} (measured {seen})"
        if col == COL_STATE:
            if a.active and not a.acknowledged:
                return "Active and not acknowledged: select it and press Space or Ctrl+K"
            return state_text(a).capitalize()
        return f"{a.severity.value.capitalize()} alert {a.id}"

    @staticmethod
    def _sort_key(a: Alert, col: int) -> object:
        if col == COL_SEVERITY:
            return a.severity.rank
        if col == COL_RAISED:
            return a.raised_at
        if col == COL_MESSAGE:
            return a.message
        if col == COL_VALUE:
            return float(a.value)
        return (a.active, not a.acknowledged)


class AlertFilterProxy(QSortFilterProxyModel):
    """Severity and message-text filter over :class:`AlertTableModel`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._severity: Severity | None = None
        self._text = ""
        self.setSortRole(SORT_ROLE)

    def set_severity(self, severity: Severity | None) -> None:
        self.beginFilterChange()
        self._severity = severity
        self.endFilterChange()

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self._text = text.strip().casefold()
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: ModelIndex) -> bool:  # noqa: N802
        model = self.sourceModel()
        assert isinstance(model, AlertTableModel)
        alert = model.alert(source_row)
        if self._severity is not None and alert.severity is not self._severity:
            return False
        return not self._text or self._text in alert.message.casefold()


class AlertsPanel(Panel):
    """Live alert list with acknowledge, filters and a count in the dock title."""

    title = "Alerts"
    object_name = "alerts"
    shortcut = "Alt+5"
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea
    refresh_when_hidden = True

    #: ``(severity, title, message)`` once per newly raised, unacknowledged alert: the
    #: window decides whether to show it (status bar, tray message).
    notify = Signal(str, str, str)

    def __init__(
        self, session: DesktopSession, tasks: TaskRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(session, tasks, parent)
        self._run = -1
        self._seen_version = -1
        self._count = 0
        self._dirty = True
        self._last: MonitorView | None = None
        self._notified: set[tuple[str, float, int]] = set()
        #: Resolved alerts hidden by "Clear resolved": id -> the resolution it hid.
        self._cleared: dict[str, float | None] = {}

        self.model = AlertTableModel(self)
        self.proxy = AlertFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.view = QTableView(self)
        header = setup_table_view(
            self.view, self.proxy, sort=(COL_RAISED, Qt.SortOrder.DescendingOrder)
        )
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(COL_MESSAGE, QHeaderView.ResizeMode.Stretch)
        for col, width in ((COL_SEVERITY, 90), (COL_RAISED, 110), (COL_VALUE, 170)):
            header.resizeSection(col, width)
        header.resizeSection(COL_STATE, 170)

        self.ack_action = self.add_action(
            "&Acknowledge",
            "Ctrl+K",
            "Mark the selected alerts as seen (Space or Ctrl+K); they stay listed "
            "until they resolve",
            self.acknowledge_selected,
        )
        self.ack_all_action = self.add_action(
            "Acknowledge a&ll",
            "Ctrl+Shift+A",
            "Acknowledge every alert the list shows (filters apply)",
            self.acknowledge_all,
        )
        self.clear_action = self.add_action(
            "&Clear resolved",
            "Ctrl+Shift+X",
            "Hide resolved alerts from this list (the alert history keeps them); an "
            "alert raised again reappears",
            self.clear_resolved,
        )
        # Space acknowledges from the list itself (in the filter box it types a space).
        self._space = QShortcut(QKeySequence(Qt.Key.Key_Space), self.view)
        self._space.setContext(Qt.ShortcutContext.WidgetShortcut)
        self._space.activated.connect(self.acknowledge_selected)
        self.toolbar = actions_toolbar("Alert actions", self, self.view)

        self.severity_combo = QComboBox()
        for label, severity in SEVERITY_FILTERS:
            self.severity_combo.addItem(label, severity)
        self.severity_combo.setToolTip("Show only alerts of this severity")
        self.severity_combo.currentIndexChanged.connect(self._severity_changed)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter messages…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setToolTip("Show only alerts whose message contains this text")
        self.filter_edit.textChanged.connect(self._text_changed)
        self.summary = status_label(
            "Active alerts, and how many of them nobody acknowledged yet",
            "99 active · 99 unacknowledged",
        )
        lay_out_table_panel(
            self,
            [self.toolbar, self.severity_combo, (self.filter_edit, 1), self.summary],
            self.view,
        )

        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        self._update_actions()

    # ------------------------------------------------------------------ state
    def dock_title(self) -> str:
        return f"{self.title} ({self._count})" if self._count else self.title

    @property
    def unacknowledged(self) -> int:
        return self._count

    # ------------------------------------------------------------------ rendering
    def render(self, snap: SessionSnapshot) -> None:  # type: ignore[override]
        view = snap.monitor
        if snap.run != self._run or (view is None) != (self._last is None):
            # Capture restarted (a new monitor, new alerts) or stopped.
            self._run = snap.run
            self._cleared.clear()
            self._dirty = True
        self._last = view
        if view is None:
            if self._dirty:
                self._dirty = False
                self.model.rules = {}
                self.model.update([])
                self._set_count(0)
                self.summary.setText("Capture stopped")
                self._update_actions()
            return
        if view.version == self._seen_version and not self._dirty:
            return
        self._seen_version, self._dirty = view.version, False
        self.model.rules = dict(view.rules)
        alerts = view.alerts
        self._announce(alerts)
        visible = [a for a in alerts if not self._is_cleared(a)]
        self.model.update(visible)
        self._set_count(view.unacknowledged)
        active = sum(a.active for a in alerts)
        self.summary.setText(
            f"{active} active · {view.unacknowledged} unacknowledged" if alerts else "No alerts"
        )
        self._update_actions()

    def _announce(self, alerts: Sequence[Alert]) -> None:
        for a in alerts:
            key = (a.id, a.raised_at, a.occurrences)
            if a.active and not a.acknowledged and key not in self._notified:
                self._notified.add(key)
                title = f"{a.severity.value.capitalize()} alert"
                self.notify.emit(a.severity.value, title, a.message)

    def _is_cleared(self, alert: Alert) -> bool:
        return (
            alert.state is AlertState.RESOLVED
            and alert.id in self._cleared
            and self._cleared[alert.id] == alert.resolved_at
        )

    def _set_count(self, count: int) -> None:
        if count != self._count:
            self._count = count
            self.title_changed.emit(self.dock_title())

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        self.model.set_theme(theme)

    # ------------------------------------------------------------------ filters
    def _severity_changed(self, index: int) -> None:
        value = self.severity_combo.itemData(index)  # Qt hands a StrEnum back as str
        self.proxy.set_severity(Severity(value) if value else None)
        self._update_actions()

    def _text_changed(self, text: str) -> None:
        self.proxy.set_text(text)
        self._update_actions()

    # ------------------------------------------------------------------ actions
    def selected_alerts(self) -> list[Alert]:
        rows = {
            self.proxy.mapToSource(index).row()
            for index in self.view.selectionModel().selectedRows()
        }
        return [self.model.alert(row) for row in sorted(rows)]

    def shown_alerts(self) -> list[Alert]:
        """The alerts the list shows now, after the filters, top to bottom."""
        return [self.proxy.index(row, 0).data(ALERT_ROLE) for row in range(self.proxy.rowCount())]

    def _selection_changed(self, _sel: QItemSelection, _desel: QItemSelection) -> None:
        self._update_actions()

    def _update_actions(self) -> None:
        self.ack_action.setEnabled(any(not a.acknowledged for a in self.selected_alerts()))
        shown = self.shown_alerts()
        self.ack_all_action.setEnabled(any(not a.acknowledged for a in shown))
        self.clear_action.setEnabled(any(not a.active for a in self.model.alerts()))

    def _acknowledge(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            if not alert.acknowledged:
                # False: capture restarted since the list was drawn, nothing to mark.
                self.session.acknowledge_alert(alert.id)
        self._dirty = True
        self.refresh()

    def acknowledge_selected(self) -> None:
        self._acknowledge(self.selected_alerts())

    def acknowledge_all(self) -> None:
        self._acknowledge(self.shown_alerts())

    def clear_resolved(self) -> None:
        for alert in self.model.alerts():
            if alert.state is AlertState.RESOLVED:
                self._cleared[alert.id] = alert.resolved_at
        self._dirty = True
        self.refresh()


__all__ = ["COLUMNS", "AlertTableModel", "AlertsPanel", "value_text"]
