"""The window's status bar: one label per key (link, pool, rate, clock…), a progress bar,
and the HALT control (always visible: the kill switch of automatic trading)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QMainWindow, QProgressBar, QPushButton, QWidget

from app.trading.view import RiskState, RiskStatus
from ui.theme import Theme

#: Theme colour of each trading state.
RISK_COLOUR: dict[RiskState, str] = {
    RiskState.ACTIVE: "ok",
    RiskState.REDUCING: "warn",
    RiskState.HALTED: "bad",
}


class HaltButton(QPushButton):
    """Shows the risk engine's state; a click halts (or, when halted, offers to resume:
    the window asks first). Flat, in the state's colour, so it reads as a status."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("trading –", parent)
        self.setObjectName("haltButton")
        self.setFlat(True)
        self.state: RiskState | None = None
        self._shown: object = None

    def show_status(self, status: RiskStatus | None, theme: Theme) -> None:
        key = (status, theme.name)
        if key == self._shown:
            return
        self._shown = key
        self.state = status.state if status is not None else None
        if status is None:
            self.setText("trading off")
            self.setStyleSheet(f"color: {theme.muted};")
            self.setToolTip("Trading is not running (capture stopped or trading disabled)")
            self.setEnabled(False)
            return
        self.setEnabled(True)
        colour = getattr(theme, RISK_COLOUR[status.state])
        if status.state is RiskState.HALTED:
            self.setText("■ HALTED")
            tip = f"Automatic trading is halted: {status.reason or 'no reason given'}"
            tip += "\nClick to resume (asks first)"
        else:
            label = "ACTIVE" if status.state is RiskState.ACTIVE else "REDUCING"
            self.setText(f"● {label} · HALT")
            tip = (
                "Trading is active"
                if status.state is RiskState.ACTIVE
                else f"Only orders that reduce exposure: {status.reason}"
            )
            tip += "\nClick or Ctrl+Shift+H: halt all automatic trading at once"
        self.setStyleSheet(f"color: {colour}; font-weight: bold; padding: 0 8px;")
        self.setToolTip(tip)


class StatusBar:
    """Permanent labels: capture state, link, pool health, TPS, p99, alerts."""

    def __init__(self, window: QMainWindow) -> None:
        bar = window.statusBar()
        self.labels: dict[str, QLabel] = {}
        tips = {
            "server": "The trade server's clock of the symbol in the Tick Chart",
            "session": "Capture state",
            "link": "Data bridge connection: acknowledged ticks and unacknowledged backlog",
            "pool": "Terminal connections streaming / total",
            "tps": "Ticks captured per second (last second)",
            "p99": "99th percentile latency from tick time to the collector (last second)",
            "alerts": "Unacknowledged alerts (Alt+5 shows the Alerts panel)",
        }
        self.backfill = QProgressBar(bar)
        self.backfill.setObjectName("status_backfill")
        self.backfill.setRange(0, 1000)
        self.backfill.setMaximumWidth(220)
        self.backfill.setToolTip(
            "History missed since the last run, being fetched from the terminal "
            "(Ctrl+Shift+B cancels; live capture is not held up)"
        )
        self.backfill.hide()
        bar.addPermanentWidget(self.backfill)
        for key, tip in tips.items():
            label = QLabel(parent=bar)
            label.setObjectName(f"status_{key}")
            label.setToolTip(tip)
            label.setContentsMargins(6, 0, 6, 0)
            bar.addPermanentWidget(label)
            self.labels[key] = label
        self._texts: dict[str, str] = {}
        self._tips = tips
        self.halt = HaltButton(bar)
        bar.addPermanentWidget(self.halt)

    def set(self, key: str, text: str, color: str | None = None, tip: str | None = None) -> None:
        """Show ``text``; ``tip`` replaces the label's tooltip (None: the usual one)."""
        value = f"{text}|{color}|{tip}"
        if self._texts.get(key) == value:
            return
        self._texts[key] = value
        label = self.labels[key]
        label.setText(text)
        label.setStyleSheet(f"color: {color};" if color else "")
        label.setToolTip(tip if tip is not None else self._tips[key])

    def text(self, key: str) -> str:
        return self.labels[key].text()
