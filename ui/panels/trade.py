"""Toolbox ▸ Trade: the account line, open positions with live P/L, pending orders.

The panel renders :meth:`DesktopSession.trading_snapshot` (redrawn only when its
``version`` changes) and sends every wish through the session: double-click or Close…
opens the position dialog (close all or part, modify S/L-T/P), Delete closes the selected
positions after a confirm, a pending order is cancelled the same way. Nothing here talks
to a terminal.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QLabel,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from app.session import DesktopSession
from app.trading.intent import ExecutionReport
from app.trading.view import TradeOrder, TradePosition, TradingSnapshot
from ui.panels.trade_models import (
    OrdersModel,
    PositionsModel,
    TradingPanel,
    select_key,
    selected_tickets,
    trade_table,
)
from ui.tasks import TaskRunner
from ui.theme import Theme
from ui.trade_send import send_intent
from ui.trade_text import money, order_line, report_text

NO_TRADING = "Trading is not running (capture stopped, or trading is off in the settings)"


def account_text(snap: TradingSnapshot | None) -> str:
    """MT5's line under the positions: balance, equity, margin, free margin, level."""
    if snap is None:
        return NO_TRADING
    a = snap.account
    if a is None:
        return f"{snap.terminal}: waiting for the account"
    level = f"{a.margin_level:,.2f} %" if a.margin else "—"
    cur = a.currency
    return (
        f"Balance: {money(a.balance)} {cur}   Equity: {money(a.equity)}   "
        f"Margin: {money(a.margin)}   Free margin: {money(a.margin_free)}   "
        f"Margin level: {level}"
    )


class TradePanel(TradingPanel):
    title = "Trade"
    object_name = "trade"
    shortcut = "Alt+7"
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea

    def __init__(
        self, session: DesktopSession, tasks: TaskRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(session, tasks, parent)
        self.snapshot: TradingSnapshot | None = None
        self.positions_model = PositionsModel(self)
        self.orders_model = OrdersModel(self)
        by_time = (1, Qt.SortOrder.AscendingOrder)
        self.positions, self._pproxy = trade_table(
            self, self.positions_model, "positionsView", by_time
        )
        self.orders, self._oproxy = trade_table(self, self.orders_model, "ordersView", by_time)
        for view in (self.positions, self.orders):
            view.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.account = QLabel(NO_TRADING)
        self.account.setObjectName("accountLine")
        self.account.setToolTip(
            "The account as the terminal last reported it (read every second and after "
            "each trade); the positions' profit moves with the live prices in between"
        )
        self.account.setContentsMargins(6, 3, 6, 3)
        self.message = QLabel()
        self.message.setObjectName("tradeMessage")
        self.message.setContentsMargins(6, 0, 6, 3)
        self.message.hide()

        self.new_order_action = self.add_action(
            "&New order…", "Ctrl+N", "Open the New Order window (F9 anywhere)", self.new_order
        )
        self.close_action = self.add_action(
            "&Close position…",
            "Ctrl+W",
            "Close the selected position, all or part of its volume",
            self.edit_selected,
        )
        self.modify_action = self.add_action(
            "&Modify S/L-T/P…",
            "Ctrl+M",
            "Change the stop loss and take profit of the selected position",
            lambda: self.edit_selected(stops=True),
        )
        self.cancel_action = self.add_action(
            "C&ancel order",
            "Ctrl+Shift+Del",
            "Cancel the selected pending orders (asks first)",
            self.cancel_selected,
        )
        for action in (self.new_order_action, self.close_action, self.modify_action):
            self.positions.addAction(action)
        self.orders.addAction(self.new_order_action)
        self.orders.addAction(self.cancel_action)
        self.positions.doubleClicked.connect(lambda _i: self.edit_selected())
        self.orders.doubleClicked.connect(lambda _i: self.cancel_selected())
        for view, slot in (
            (self.positions, self.close_selected),
            (self.orders, self.cancel_selected),
        ):
            shortcut = QShortcut(QKeySequence(Qt.Key.Key_Delete), view)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(slot)
        self.positions.setToolTip(
            "Open positions: double-click to close or modify, Delete to close"
        )
        self.orders.setToolTip("Pending orders: double-click or Delete to cancel")

        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.positions)
        split.addWidget(self.orders)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(split, 1)
        layout.addWidget(self.account)
        layout.addWidget(self.message)
        for view in (self.positions, self.orders):
            for col, width in enumerate((80, 140, 70, 70, 80)):
                view.horizontalHeader().resizeSection(col, width)

    # ------------------------------------------------------------------ rendering
    def draw(self, snap: TradingSnapshot | None) -> None:
        self.snapshot = snap
        self.positions_model.update(snap.positions if snap else (), snap)
        self.orders_model.update(snap.orders if snap else (), snap)
        self.account.setText(account_text(snap))

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        self.positions_model.set_theme(theme)
        self.orders_model.set_theme(theme)

    # ------------------------------------------------------------------ selection
    def selected_positions(self) -> list[TradePosition]:
        tickets = selected_tickets(
            self.positions.selectionModel().selectedRows(), self._pproxy.mapToSource
        )
        by_ticket = {p.ticket: p for p in self.positions_model.rows()}
        return [by_ticket[t] for t in tickets if t in by_ticket]

    def selected_orders(self) -> list[TradeOrder]:
        tickets = selected_tickets(
            self.orders.selectionModel().selectedRows(), self._oproxy.mapToSource
        )
        by_ticket = {o.ticket: o for o in self.orders_model.rows()}
        return [by_ticket[t] for t in tickets if t in by_ticket]

    def select_position(self, ticket: int) -> bool:
        return select_key(self.positions, ticket)

    # ------------------------------------------------------------------ intents
    def say(self, report: ExecutionReport) -> None:
        if not isValid(self):  # the window closed while the core answered
            return
        self.message.setText(report_text(report))
        self.message.show()

    def new_order(self) -> None:
        from ui.dialogs.new_order import open_new_order  # noqa: PLC0415

        selected = self.selected_positions()
        open_new_order(self.session, self.tasks, self, selected[0].symbol if selected else None)

    def edit_selected(self, *, stops: bool = False) -> None:
        from ui.dialogs.position import PositionDialog  # noqa: PLC0415

        selected = self.selected_positions()
        if not selected:
            return
        dialog = PositionDialog(self.session, self.tasks, selected[0], self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        if stops:
            dialog.focus_stops()

    def _confirm(self, title: str, text: str, on_yes: object) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Question, title, text, parent=self)
        box.setObjectName("tradeConfirm")
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        box.setDefaultButton(QMessageBox.StandardButton.Yes)

        def finished(_r: int) -> None:
            if box.clickedButton() is box.button(QMessageBox.StandardButton.Yes) and callable(
                on_yes
            ):
                on_yes()

        box.finished.connect(finished)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    def close_selected(self) -> None:
        """Delete: close the selected positions (whole volume) after one confirm."""
        positions = self.selected_positions()
        if not positions:
            return
        names = "\n".join(f"#{p.ticket} {p.symbol} {p.volume:g} lots" for p in positions)

        def close_all() -> None:
            for p in positions:
                ticket = p.ticket
                send_intent(
                    self,
                    self.session,
                    self.tasks,
                    "close position",
                    lambda ticket=ticket: self.session.close_position(ticket),  # type: ignore[misc]
                    self.say,
                )

        self._confirm("Close positions", f"Close at the market price?\n{names}", close_all)

    def cancel_selected(self) -> None:
        orders = self.selected_orders()
        if not orders:
            return

        def cancel_all() -> None:
            for o in orders:
                ticket = o.ticket
                send_intent(
                    self,
                    self.session,
                    self.tasks,
                    "cancel order",
                    lambda ticket=ticket: self.session.cancel_order(ticket),  # type: ignore[misc]
                    self.say,
                )

        text = "\n".join(order_line(o) for o in orders)
        self._confirm("Cancel orders", f"Cancel these pending orders?\n{text}", cancel_all)
