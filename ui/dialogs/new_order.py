"""New Order (F9), MT5's order window: symbol, volume, market or pending, S/L, T/P,
deviation; Sell at the bid (red) and Buy at the ask (blue), live.

The prices on the buttons come from the session's trading snapshot, read by a short timer
while the dialog is open (a dialog is not on the window's render timer). Validation is
inline (the volume grid of the symbol, a pending price, stops on the right side), so
an order the terminal would refuse for a typo is not sent; what the terminal answers
(retcode name and text) stays in the dialog.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from app.session import DesktopSession
from app.trading.intent import Action, ExecutionReport, OrderIntent, OrderKind, Origin, Side
from app.trading.view import SymbolTerms
from ui.dialogs import palette_theme, set_message
from ui.dialogs.position import outcome_label, price_spin
from ui.panels._format import captured_symbols
from ui.tasks import TaskRunner
from ui.trade_send import send_intent
from ui.trade_text import OUTCOME_COLOUR, digits_of, report_text, volume_problem

#: Type choices: (label, kind, side for a pending order or None for market).
ORDER_TYPES: tuple[tuple[str, OrderKind, Side | None], ...] = (
    ("Market execution", OrderKind.MARKET, None),
    ("Buy Limit", OrderKind.LIMIT, Side.BUY),
    ("Sell Limit", OrderKind.LIMIT, Side.SELL),
    ("Buy Stop", OrderKind.STOP, Side.BUY),
    ("Sell Stop", OrderKind.STOP, Side.SELL),
)
#: How often the Sell/Buy prices are redrawn while the dialog is open.
PRICE_INTERVAL_MS = 200


def side_button_style(colour: str) -> str:
    return (
        f"QPushButton {{ background: {colour}; color: white; font-weight: bold; "
        "padding: 6px 14px; border-radius: 3px; }"
        "QPushButton:disabled { background: #555; color: #aaa; }"
    )


def stops_problem(side: Side, price: float, sl: float | None, tp: float | None) -> str:
    """Why S/L or T/P sit on the wrong side of ``price`` (MT5 answers INVALID_STOPS)."""
    if not price:
        return ""
    below, above = (sl, tp) if side is Side.BUY else (tp, sl)
    if below is not None and below >= price:
        return f"{'S/L' if side is Side.BUY else 'T/P'} must be below {price:g} for a {side}"
    if above is not None and above <= price:
        return f"{'T/P' if side is Side.BUY else 'S/L'} must be above {price:g} for a {side}"
    return ""


class NewOrderDialog(QDialog):
    def __init__(
        self,
        session: DesktopSession,
        tasks: TaskRunner,
        parent: QWidget | None = None,
        symbol: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("newOrderDialog")
        self.setWindowTitle("Order")
        self.session = session
        self.tasks = tasks
        self.reports: list[ExecutionReport] = []
        self._sending = False

        self.symbol = QComboBox()
        self.symbol.setObjectName("symbolCombo")
        self.symbol.addItems(list(captured_symbols(session.config)))
        self.symbol.setToolTip("Symbol to trade (the captured symbols)")
        if symbol:
            self.symbol.setCurrentText(symbol)
        self.type = QComboBox()
        self.type.setObjectName("typeCombo")
        for label, _kind, _side in ORDER_TYPES:
            self.type.addItem(label)
        self.type.setToolTip("Market execution at the current price, or a pending order")
        self.volume = QDoubleSpinBox()
        self.volume.setObjectName("volumeSpin")
        self.volume.setToolTip("Lots, in the symbol's volume steps")
        self.price = price_spin(5, "The price a pending order triggers at")
        self.price.setObjectName("priceSpin")
        self.sl = price_spin(5, "Stop loss price (none: no stop loss)")
        self.sl.setObjectName("slSpin")
        self.tp = price_spin(5, "Take profit price (none: no take profit)")
        self.tp.setObjectName("tpSpin")
        self.deviation = QSpinBox()
        self.deviation.setObjectName("deviationSpin")
        self.deviation.setRange(0, 10_000)
        self.deviation.setValue(session.config.trading.default_deviation)
        self.deviation.setSuffix(" points")
        self.deviation.setToolTip(
            "Largest price move from the shown price a market order still fills at "
            "(else the terminal answers REQUOTE)"
        )
        form = QFormLayout()
        form.addRow("&Symbol", self.symbol)
        form.addRow("&Type", self.type)
        form.addRow("&Volume", self.volume)
        form.addRow("&Price", self.price)
        stops = QHBoxLayout()
        stops.addWidget(self.sl, 1)
        stops.addWidget(QLabel("Take profit"))
        stops.addWidget(self.tp, 1)
        form.addRow("Stop loss", stops)
        form.addRow("&Deviation", self.deviation)

        self.sell = QPushButton()
        self.sell.setObjectName("sellButton")
        self.sell.setToolTip("Sell at the bid (market execution)")
        self.buy = QPushButton()
        self.buy.setObjectName("buyButton")
        self.buy.setToolTip("Buy at the ask (market execution)")
        self.place = QPushButton("&Place")
        self.place.setObjectName("placeButton")
        self.place.setToolTip("Place the pending order at the price above")
        theme = palette_theme()
        self.sell.setStyleSheet(side_button_style(theme.down))
        self.buy.setStyleSheet(side_button_style(theme.up))
        self.sell.clicked.connect(lambda: self.send(Side.SELL))
        self.buy.clicked.connect(lambda: self.send(Side.BUY))
        self.place.clicked.connect(lambda: self.send(None))
        sides = QHBoxLayout()
        sides.addWidget(self.sell, 1)
        sides.addWidget(self.place, 1)
        sides.addWidget(self.buy, 1)

        self.problem = QLabel()
        self.problem.setObjectName("problemLabel")
        self.problem.setWordWrap(True)
        self.problem.hide()
        self.outcome = outcome_label()
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(sides)
        layout.addWidget(self.problem)
        layout.addWidget(self.outcome)
        layout.addWidget(close)
        self.setMinimumWidth(480)

        self.symbol.currentTextChanged.connect(self._symbol_changed)
        self.type.currentIndexChanged.connect(self._type_changed)
        for spin in (self.volume, self.price, self.sl, self.tp):
            spin.valueChanged.connect(self._validate)
        self._timer = QTimer(self)
        self._timer.setInterval(PRICE_INTERVAL_MS)
        self._timer.timeout.connect(self.refresh_prices)
        self._timer.start()
        self._symbol_changed(self.symbol.currentText())
        self._type_changed(0)

    # ------------------------------------------------------------------ state
    def terms(self) -> SymbolTerms | None:
        snap = self.session.trading_snapshot()
        return snap.symbols.get(self.symbol.currentText()) if snap is not None else None

    def quote(self) -> tuple[float, float] | None:
        snap = self.session.trading_snapshot()
        return snap.prices.get(self.symbol.currentText()) if snap is not None else None

    def order_type(self) -> tuple[OrderKind, Side | None]:
        _label, kind, side = ORDER_TYPES[self.type.currentIndex()]
        return kind, side

    def _symbol_changed(self, symbol: str) -> None:
        snap = self.session.trading_snapshot()
        quote = self.quote() or (0.0, 0.0)
        digits = digits_of(snap, symbol, *quote)
        for spin in (self.price, self.sl, self.tp):
            spin.setDecimals(digits)
            spin.setSingleStep(10.0**-digits)
            spin.setValue(0.0)
        terms = self.terms()
        step = terms.volume_step if terms is not None else 0.01
        self.volume.setDecimals(max(0, len(f"{step:g}".partition(".")[2])))
        self.volume.setSingleStep(step)
        if terms is not None:
            self.volume.setRange(terms.volume_min, terms.volume_max)
        else:
            self.volume.setRange(step, 1000.0)
        self.volume.setValue(max(self.volume.minimum(), 0.1))
        self.refresh_prices()
        self._validate()

    def _type_changed(self, _index: int) -> None:
        kind, _side = self.order_type()
        market = kind is OrderKind.MARKET
        self.price.setEnabled(not market)
        self.deviation.setEnabled(market)
        self.sell.setVisible(market)
        self.buy.setVisible(market)
        self.place.setVisible(not market)
        if not market and not self.price.value() and (q := self.quote()) is not None:
            self.price.setValue(q[1] if _side is Side.BUY else q[0])
        self._validate()

    def refresh_prices(self) -> None:
        quote = self.quote()
        snap = self.session.trading_snapshot()
        symbol = self.symbol.currentText()
        if quote is None:
            self.sell.setText("Sell by Market\n—")
            self.buy.setText("Buy by Market\n—")
            return
        digits = digits_of(snap, symbol, *quote)
        self.sell.setText(f"Sell by Market\n{quote[0]:.{digits}f}")
        self.buy.setText(f"Buy by Market\n{quote[1]:.{digits}f}")

    def problem_text(self, side: Side | None = None) -> str:
        """What is wrong with the order as filled in ("" when nothing is)."""
        if not self.symbol.currentText():
            return "No symbol is captured: add one in Market Watch"
        problem = volume_problem(self.volume.value(), self.terms())
        if problem:
            return problem
        kind, pending_side = self.order_type()
        sl, tp = self.sl.value() or None, self.tp.value() or None
        if kind is not OrderKind.MARKET:
            if not self.price.value():
                return "A pending order needs a price"
            assert pending_side is not None
            return stops_problem(pending_side, self.price.value(), sl, tp)
        quote = self.quote()
        if side is not None and quote is not None:
            return stops_problem(side, quote[1] if side is Side.BUY else quote[0], sl, tp)
        return ""

    def _validate(self) -> str:
        problem = self.problem_text()
        set_message(self.problem, problem, palette_theme().bad)
        ok = not problem and not self._sending
        for button in (self.sell, self.buy, self.place):
            button.setEnabled(ok)
        return problem

    # ------------------------------------------------------------------ sending
    def intent(self, side: Side | None) -> OrderIntent:
        kind, pending_side = self.order_type()
        chosen = side if kind is OrderKind.MARKET else pending_side
        assert chosen is not None
        return OrderIntent(
            action=Action.OPEN,
            symbol=self.symbol.currentText(),
            side=chosen,
            volume=self.volume.value(),
            origin=Origin.MANUAL,
            kind=kind,
            price=self.price.value() if kind is not OrderKind.MARKET else None,
            sl=self.sl.value() or None,
            tp=self.tp.value() or None,
            deviation=self.deviation.value(),
        )

    def send(self, side: Side | None) -> None:
        problem = self.problem_text(side)
        if problem:
            set_message(self.problem, problem, palette_theme().bad)
            return
        intent = self.intent(side)
        self._set_sending(True)
        send_intent(
            self,
            self.session,
            self.tasks,
            "send order",
            lambda: self.session.place_order(intent),
            self._show,
            on_cancel=lambda: self._set_sending(False),
        )

    def _set_sending(self, sending: bool) -> None:
        self._sending = sending
        if sending:
            set_message(self.outcome, "sending…", palette_theme().muted)
        self._validate()

    def _show(self, report: ExecutionReport) -> None:
        if not isValid(self):  # closed while the order was in flight
            return
        self.reports.append(report)
        self._set_sending(False)
        colour = getattr(palette_theme(), OUTCOME_COLOUR[report.outcome])
        set_message(self.outcome, report_text(report), colour)


def open_new_order(
    session: DesktopSession, tasks: TaskRunner, parent: QWidget, symbol: str | None = None
) -> NewOrderDialog:
    """F9 from anywhere: one New Order window, on ``symbol`` (the chart's) when given."""
    dialog = NewOrderDialog(session, tasks, parent, symbol)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    dialog.activateWindow()
    return dialog
