"""One-click trading: [Sell bid] [volume] [Buy ask] for the symbol on the chart.

A separate widget so the chart (or the window) hosts it with a line: ``set_symbol`` follows
the chart's symbol, ``refresh`` is called on the window's render tick. A click sends a
market order at once (no dialog, as MT5's one-click trading), through the session and so
through the risk engine; the answer shows as the widget's tooltip and status line.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QPushButton, QWidget
from shiboken6 import isValid

from app.session import DesktopSession
from app.trading.intent import Action, ExecutionReport, OrderIntent, Origin, Side
from ui.dialogs.new_order import side_button_style
from ui.tasks import TaskRunner
from ui.theme import DARK, Theme
from ui.trade_send import send_intent
from ui.trade_text import digits_of, report_text, volume_problem


class OneClickBar(QWidget):
    #: The answer of each order sent from the bar, as one line (the window shows it).
    reported = Signal(str)

    def __init__(
        self, session: DesktopSession, tasks: TaskRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("oneClickBar")
        self.session = session
        self.tasks = tasks
        self.symbol = ""
        self.reports: list[ExecutionReport] = []
        self._quote: tuple[float, float] | None = None
        self.sell = QPushButton("SELL")
        self.sell.setObjectName("oneClickSell")
        self.buy = QPushButton("BUY")
        self.buy.setObjectName("oneClickBuy")
        self.volume = QDoubleSpinBox()
        self.volume.setObjectName("oneClickVolume")
        self.volume.setDecimals(2)
        self.volume.setRange(0.01, 1000.0)
        self.volume.setSingleStep(0.01)
        self.volume.setValue(0.1)
        self.volume.setToolTip("Lots of a one-click order")
        self.sell.clicked.connect(lambda: self.send(Side.SELL))
        self.buy.clicked.connect(lambda: self.send(Side.BUY))
        row = QHBoxLayout(self)
        row.setContentsMargins(2, 2, 2, 2)
        row.setSpacing(2)
        row.addWidget(self.sell)
        row.addWidget(self.volume)
        row.addWidget(self.buy)
        self.apply_theme(DARK)
        self.refresh()

    def apply_theme(self, theme: Theme) -> None:
        self.sell.setStyleSheet(side_button_style(theme.down))
        self.buy.setStyleSheet(side_button_style(theme.up))

    def set_symbol(self, symbol: str) -> None:
        if symbol != self.symbol:
            self.symbol = symbol
            self._quote = None
            snap = self.session.trading_snapshot()
            terms = snap.symbols.get(symbol) if snap is not None else None
            if terms is not None:
                self.volume.setSingleStep(terms.volume_step)
                self.volume.setRange(terms.volume_min, terms.volume_max)
            self.refresh()

    def refresh(self) -> None:
        """Redraw the prices (cheap when they did not move)."""
        snap = self.session.trading_snapshot()
        quote = snap.prices.get(self.symbol) if snap is not None and self.symbol else None
        enabled = quote is not None
        self.sell.setEnabled(enabled)
        self.buy.setEnabled(enabled)
        if quote == self._quote and self.sell.text() != "SELL":
            return
        self._quote = quote
        if quote is None:
            self.sell.setText("SELL")
            self.buy.setText("BUY")
            tip = "No price yet" if self.symbol else "No symbol on the chart"
            self.sell.setToolTip(tip)
            self.buy.setToolTip(tip)
            return
        digits = digits_of(snap, self.symbol, *quote)
        self.sell.setText(f"SELL {quote[0]:.{digits}f}")
        self.buy.setText(f"BUY {quote[1]:.{digits}f}")
        self.sell.setToolTip(f"Sell {self.symbol} at the bid now (one click, no dialog)")
        self.buy.setToolTip(f"Buy {self.symbol} at the ask now (one click, no dialog)")

    def send(self, side: Side) -> None:
        snap = self.session.trading_snapshot()
        terms = snap.symbols.get(self.symbol) if snap is not None else None
        problem = volume_problem(self.volume.value(), terms)
        if not self.symbol or problem:
            self.reported.emit(problem or "no symbol on the chart")
            return
        intent = OrderIntent(
            action=Action.OPEN,
            symbol=self.symbol,
            side=side,
            volume=self.volume.value(),
            origin=Origin.MANUAL,
            deviation=self.session.config.trading.default_deviation,
        )
        send_intent(
            self,
            self.session,
            self.tasks,
            f"one-click {side}",
            lambda: self.session.place_order(intent),
            self._show,
        )

    def _show(self, report: ExecutionReport) -> None:
        if not isValid(self):  # the window closed while the core answered
            return
        self.reports.append(report)
        self.reported.emit(f"{self.symbol} {report_text(report)}")
