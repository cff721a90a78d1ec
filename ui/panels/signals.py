"""Signals from the AI services: waiting ones to accept or dismiss, and what became of
the others (executed, refused, rejected, expired, dismissed) with the reason, the
latency and the source.

A signal waits for the trader unless its source is set to "Auto" here (the session's
``set_auto_execute``; automatic orders still go through the risk engine, and HALT stops
them all). The dock title counts the waiting signals, also while the tab is hidden, so
a signal is never missed behind another tab.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QHeaderView, QLabel, QWidget
from shiboken6 import isValid

from app.session import DesktopSession
from app.trading.intent import ExecutionReport
from app.trading.view import SignalRow, SignalState, TradingSnapshot
from ui.panels.table import actions_toolbar, lay_out_table_panel, status_label
from ui.panels.trade_models import TicketRowsModel, TradingPanel, select_key, trade_table
from ui.tasks import TaskRunner
from ui.theme import Theme
from ui.trade_send import send_intent
from ui.trade_text import digits_of, report_text, stop_text

#: Theme colour of each state (waiting stands out; finished rows are quieter).
STATE_COLOUR: dict[SignalState, str] = {
    SignalState.WAITING: "warn",
    SignalState.ACCEPTED: "info",
    SignalState.EXECUTING: "info",
    SignalState.EXECUTED: "ok",
    SignalState.REFUSED: "bad",
    SignalState.REJECTED: "bad",
    SignalState.EXPIRED: "muted",
    SignalState.DISMISSED: "muted",
}
AUTO_TIP = (
    "Execute this source's signals without asking. Every automatic order still goes "
    "through the risk engine (limits, HALT), like a manual one."
)


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S") if ms > 0 else ""


class SignalsModel(TicketRowsModel):
    columns = (
        ("Received", "When the signal arrived (local time)"),
        ("Source", "The AI service that sent it"),
        ("Symbol", "Symbol"),
        ("Side", "buy or sell"),
        ("Volume", "Lots"),
        ("S / L", "Stop loss"),
        ("T / P", "Take profit"),
        ("State", "waiting for you, executed, refused, rejected, expired or dismissed"),
        ("Reason", "Why it was refused, rejected or expired; the ticket when executed"),
        ("Latency", "Created → received, and received → executed"),
    )

    right_aligned = frozenset({4, 5, 6, 9})

    @staticmethod
    def key(row: Any) -> object:
        return row.id

    def cells(
        self, row: Any, snap: TradingSnapshot | None
    ) -> tuple[list[tuple[str, object]], float]:
        s: SignalRow = row
        digits = digits_of(snap, s.symbol)
        travel = s.received_at_ms - s.created_at_ms if s.created_at_ms else None
        latency = f"{travel} ms" if travel is not None else ""
        if s.latency_ms is not None:
            latency += f" + {s.latency_ms:.0f} ms"
        reason = s.reason
        if s.state is SignalState.EXECUTED and s.ticket:
            reason = f"#{s.ticket} at {s.price:g}" + (f" · {reason}" if reason else "")
        elif s.state is SignalState.WAITING and s.valid_until_ms:
            reason = reason or f"valid until {_clock(s.valid_until_ms)}"
        return [
            (_clock(s.received_at_ms), s.received_at_ms),
            (s.source + (" (auto)" if s.auto else ""), s.source),
            (s.symbol, s.symbol),
            (s.side, s.side),
            (f"{s.volume:g}", s.volume),
            (stop_text(s.sl or 0.0, digits), s.sl or 0.0),
            (stop_text(s.tp or 0.0, digits), s.tp or 0.0),
            (s.state.value, s.state.value),
            (reason, reason),
            (latency, s.latency_ms or 0.0),
        ], 0.0

    def data(self, index: Any, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if index.isValid() and role == Qt.ItemDataRole.ForegroundRole and index.column() == 7:
            return self.theme.color(STATE_COLOUR.get(self._rows[index.row()].state, "text"))
        if index.isValid() and role == Qt.ItemDataRole.ToolTipRole:
            s: SignalRow = self._rows[index.row()]
            tip = f"Signal {s.id} from {s.source}"
            if s.state is SignalState.WAITING:
                tip += "\nEnter: accept (sends the order) · Delete: dismiss"
            return tip + (f"\n{s.reason}" if s.reason else "")
        return super().data(index, role)


class SignalsPanel(TradingPanel):
    title = "Signals"
    object_name = "signals"
    shortcut = "Alt+9"
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea
    refresh_when_hidden = True

    def __init__(
        self, session: DesktopSession, tasks: TaskRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(session, tasks, parent)
        self._waiting = 0
        self.model = SignalsModel(self)
        self.view, self.proxy = trade_table(
            self, self.model, "signalsView", (0, Qt.SortOrder.DescendingOrder)
        )
        header = self.view.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(8, QHeaderView.ResizeMode.Stretch)

        self.accept_action = self.add_action(
            "&Accept",
            "Ctrl+Return",
            "Send the selected waiting signal's order (Enter), through the risk engine",
            self.accept_selected,
        )
        self.dismiss_action = self.add_action(
            "&Dismiss",
            "Ctrl+D",
            "Dismiss the selected waiting signals (Delete)",
            self.dismiss_selected,
        )
        for key, slot in (
            (Qt.Key.Key_Return, self.accept_selected),
            (Qt.Key.Key_Enter, self.accept_selected),
            (Qt.Key.Key_Delete, self.dismiss_selected),
        ):
            shortcut = QShortcut(QKeySequence(key), self.view)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(slot)
        self.toolbar = actions_toolbar("Signal actions", self, self.view)
        self.auto_box = QWidget()
        self.auto_row = QHBoxLayout(self.auto_box)
        self.auto_row.setContentsMargins(6, 0, 6, 0)
        self.auto_row.addWidget(QLabel("Auto:"))
        self.auto_checks: dict[str, QCheckBox] = {}
        self.summary = status_label(
            "Signals waiting for you, and all listed", "99 waiting · 999 signals"
        )
        self.message = QLabel()
        self.message.setObjectName("signalsMessage")
        lay_out_table_panel(
            self, [self.toolbar, self.auto_box, None, self.message, self.summary], self.view
        )
        self.view.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        self._update_actions()

    # ------------------------------------------------------------------ rendering
    def dock_title(self) -> str:
        return f"{self.title} ({self._waiting})" if self._waiting else self.title

    def draw(self, snap: TradingSnapshot | None) -> None:
        rows = snap.signals if snap is not None else ()
        self.model.update(rows, snap)
        self._sync_auto(snap)
        waiting = sum(r.state is SignalState.WAITING for r in rows)
        if waiting != self._waiting:
            self._waiting = waiting
            self.title_changed.emit(self.dock_title())
        self.summary.setText(f"{waiting} waiting · {len(rows)} signals" if rows else "No signals")
        self._update_actions()

    def _sync_auto(self, snap: TradingSnapshot | None) -> None:
        auto = snap.auto_sources if snap is not None else frozenset()
        sources = sorted({r.source for r in snap.signals} | set(auto)) if snap else []
        for source in sources:
            check = self.auto_checks.get(source)
            if check is None:
                check = QCheckBox(source)
                check.setObjectName(f"auto_{source}")
                check.setToolTip(AUTO_TIP)
                check.toggled.connect(lambda on, s=source: self.session.set_auto_execute(s, on))
                self.auto_row.addWidget(check)
                check.show()  # a child added to a shown widget is not shown by itself
                self.auto_checks[source] = check
            if check.isChecked() != (source in auto):
                check.blockSignals(True)
                check.setChecked(source in auto)
                check.blockSignals(False)

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        self.model.set_theme(theme)

    # ------------------------------------------------------------------ actions
    def selected_signals(self) -> list[SignalRow]:
        rows = sorted(
            {self.proxy.mapToSource(i).row() for i in self.view.selectionModel().selectedRows()}
        )
        return [self.model.row(r) for r in rows]

    def select_signal(self, signal_id: str) -> bool:
        return select_key(self.view, signal_id)

    def _update_actions(self) -> None:
        waiting = [s for s in self.selected_signals() if s.state is SignalState.WAITING]
        self.accept_action.setEnabled(len(waiting) == 1)
        self.dismiss_action.setEnabled(bool(waiting))

    def say(self, report: ExecutionReport) -> None:
        if not isValid(self):  # the window closed while the core answered
            return
        self.message.setText(report_text(report))

    def accept_selected(self) -> None:
        waiting = [s for s in self.selected_signals() if s.state is SignalState.WAITING]
        if len(waiting) != 1:
            return
        signal_id = waiting[0].id
        send_intent(
            self,
            self.session,
            self.tasks,
            "accept signal",
            lambda: self.session.accept_signal(signal_id),
            self.say,
        )

    def dismiss_selected(self) -> None:
        for s in self.selected_signals():
            if s.state is SignalState.WAITING:
                self.session.dismiss_signal(s.id)
