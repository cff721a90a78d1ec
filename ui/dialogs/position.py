"""One open position: close it (all or part of its volume) or change its S/L and T/P.

MT5 opens the same window for both on a double-click in Toolbox ▸ Trade; so does this
one. The dialog only collects the wish and shows the answer: the close or modify goes
through the session (:func:`ui.trade_send.send_intent`), the buttons wait while it is in
flight ("sending…"), and the retcode's name and text stay on screen.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from app.session import DesktopSession
from app.trading.intent import ExecutionReport, Outcome
from app.trading.view import TradePosition
from ui.dialogs import palette_theme, set_message
from ui.tasks import TaskRunner
from ui.trade_send import send_intent
from ui.trade_text import OUTCOME_COLOUR, digits_of, order_type_text, report_text


def price_spin(digits: int, tip: str) -> QDoubleSpinBox:
    """A price box at the symbol's precision; 0 reads "none" (MT5 stores no S/L as 0)."""
    spin = QDoubleSpinBox()
    spin.setDecimals(digits)
    spin.setRange(0.0, 10_000_000.0)
    spin.setSingleStep(10.0**-digits)
    spin.setSpecialValueText("none")
    spin.setToolTip(tip)
    spin.setKeyboardTracking(False)
    return spin


def outcome_label() -> QLabel:
    """The line under a trading dialog's buttons: "sending…", then the terminal's answer
    (selectable, so a trader can copy a ticket or a retcode)."""
    label = QLabel()
    label.setObjectName("resultLabel")
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


class PositionDialog(QDialog):
    """Close (volume) and Modify (S/L, T/P) of one position."""

    def __init__(
        self,
        session: DesktopSession,
        tasks: TaskRunner,
        position: TradePosition,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("positionDialog")
        self.session = session
        self.tasks = tasks
        self.position = position
        snap = session.trading_snapshot()
        digits = digits_of(snap, position.symbol, position.price_open)
        terms = snap.symbols.get(position.symbol) if snap is not None else None
        side = order_type_text(position.type)
        self.setWindowTitle(f"Position #{position.ticket} {side} {position.symbol}")

        heading = QLabel(
            f"<b>#{position.ticket} {side} {position.volume:g} {position.symbol}</b> "
            f"opened at {position.price_open:.{digits}f}"
        )
        self.volume = QDoubleSpinBox()
        self.volume.setObjectName("closeVolume")
        step = terms.volume_step if terms is not None else 0.01
        self.volume.setDecimals(max(0, len(f"{step:g}".partition(".")[2])))
        self.volume.setRange(step, position.volume)
        self.volume.setSingleStep(step)
        self.volume.setValue(position.volume)
        self.volume.setToolTip(
            f"Lots to close: the whole position, or less for a partial close (in steps of {step:g})"
        )
        self.close_button = QPushButton("&Close position")
        self.close_button.setObjectName("closeButton")
        self.close_button.setToolTip("Close this volume at the market price")
        self.close_button.clicked.connect(self.close_position)
        close_row = QHBoxLayout()
        close_row.addWidget(self.volume, 1)
        close_row.addWidget(self.close_button)

        self.sl = price_spin(digits, "Stop loss price (none: no stop loss)")
        self.sl.setObjectName("slSpin")
        self.sl.setValue(position.sl)
        self.tp = price_spin(digits, "Take profit price (none: no take profit)")
        self.tp.setObjectName("tpSpin")
        self.tp.setValue(position.tp)
        self.modify_button = QPushButton("&Modify")
        self.modify_button.setObjectName("modifyButton")
        self.modify_button.setToolTip("Set this S/L and T/P on the position")
        self.modify_button.clicked.connect(self.modify)
        stops = QHBoxLayout()
        stops.addWidget(QLabel("S/L"))
        stops.addWidget(self.sl, 1)
        stops.addWidget(QLabel("T/P"))
        stops.addWidget(self.tp, 1)
        stops.addWidget(self.modify_button)

        form = QFormLayout()
        form.addRow("Close volume", close_row)
        form.addRow("Stops", stops)
        self.outcome = outcome_label()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addLayout(form)
        layout.addWidget(self.outcome)
        layout.addWidget(buttons)
        self.setMinimumWidth(460)

    def focus_stops(self) -> None:
        self.sl.setFocus()
        self.sl.selectAll()

    def _busy(self, busy: bool) -> None:
        self.close_button.setEnabled(not busy)
        self.modify_button.setEnabled(not busy)
        if busy:
            set_message(self.outcome, "sending…", palette_theme().muted)

    def _show(self, report: ExecutionReport) -> None:
        if not isValid(self):  # closed while the order was in flight
            return
        self._busy(False)
        colour = getattr(palette_theme(), OUTCOME_COLOUR[report.outcome])
        set_message(self.outcome, report_text(report), colour)
        if report.outcome is Outcome.EXECUTED and self.volume.value() >= self.position.volume:
            self.close_button.setEnabled(False)  # nothing left to close
            self.modify_button.setEnabled(False)

    def close_position(self) -> None:
        volume = self.volume.value()
        whole = volume >= self.position.volume - 1e-9
        ticket = self.position.ticket
        self._busy(True)
        send_intent(
            self,
            self.session,
            self.tasks,
            "close position",
            lambda: self.session.close_position(ticket, None if whole else volume),
            self._show,
            on_cancel=lambda: self._busy(False),
        )

    def modify(self) -> None:
        sl = self.sl.value() or None
        tp = self.tp.value() or None
        ticket = self.position.ticket
        self._busy(True)
        send_intent(
            self,
            self.session,
            self.tasks,
            "modify position",
            lambda: self.session.modify_position(ticket, sl, tp),
            self._show,
            on_cancel=lambda: self._busy(False),
        )
