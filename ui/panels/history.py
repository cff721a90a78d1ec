"""Toolbox ▸ History: the account's deals and orders over a period, with totals, and
export of what is listed to CSV.

The rows come from ``DesktopSession.trade_history`` (the terminal's ``history_deals_get``
/ ``history_orders_get`` through the worker, never called from Qt); the panel asks again
when the period changes, on Refresh, and when the open positions or orders change (a close
makes a deal). The CSV is written by the session in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PySide6.QtCore import QDate, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFileDialog,
    QLabel,
    QPushButton,
    QTabWidget,
    QWidget,
)
from shiboken6 import isValid

from app.session import DesktopSession
from app.trading.view import DEAL_TYPE_BALANCE, TradeDeal, TradeOrder, TradingSnapshot
from ui.panels.base import Panel
from ui.panels.table import lay_out_table_panel, status_label
from ui.panels.trade_models import (
    DealsModel,
    HistoryOrdersModel,
    tickets_of,
    trade_table,
)
from ui.tasks import TaskRunner
from ui.theme import Theme
from ui.trade_text import money

DAY_MS = 86_400_000
NOT_READ = "History not read"
#: Period choices: (label, days back from today's start; None: custom).
PERIODS: tuple[tuple[str, int | None], ...] = (
    ("Today", 0),
    ("Last 3 days", 2),
    ("Last week", 6),
    ("Last month", 29),
    ("Custom…", None),
)


def period_range(days_back: int, now_ms: int) -> tuple[int, int]:
    """[start, end) in UTC ms: from the start of the UTC day ``days_back`` days ago to a
    day past now (a trade server's clock may run ahead of UTC)."""
    today = now_ms - now_ms % DAY_MS
    return today - days_back * DAY_MS, now_ms + DAY_MS


def totals(deals: tuple[TradeDeal, ...]) -> tuple[float, float, float]:
    """(trading profit incl. commission and swap, deposits, withdrawals) of ``deals``."""
    profit = deposit = withdrawal = 0.0
    for d in deals:
        if d.type == DEAL_TYPE_BALANCE:
            if d.profit >= 0:
                deposit += d.profit
            else:
                withdrawal += d.profit
        else:
            profit += d.profit + d.commission + d.swap + d.fee
    return profit, deposit, withdrawal


class HistoryPanel(Panel):
    title = "History"
    object_name = "history"
    shortcut = "Alt+8"
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea

    def __init__(
        self, session: DesktopSession, tasks: TaskRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(session, tasks, parent)
        self._seen: object = ()
        self._loading = False
        self._again = False
        self.loads = 0
        self.deals_model = DealsModel(self)
        self.orders_model = HistoryOrdersModel(self)
        by_time = (0, Qt.SortOrder.AscendingOrder)
        self.deals_view, _ = trade_table(self, self.deals_model, "dealsView", by_time)
        self.orders_view, _ = trade_table(self, self.orders_model, "historyOrdersView", by_time)
        for view in (self.deals_view, self.orders_view):
            view.horizontalHeader().resizeSection(0, 140)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.deals_view, "Deals")
        self.tabs.addTab(self.orders_view, "Orders")

        self.period = QComboBox()
        self.period.setObjectName("periodCombo")
        for label, _days in PERIODS:
            self.period.addItem(label)
        self.period.setToolTip("The period listed (days in UTC)")
        self.period.setCurrentIndex(2)
        today = QDate.currentDate()
        self.date_from = QDateEdit(today.addDays(-7))
        self.date_to = QDateEdit(today)
        for edit, tip in ((self.date_from, "First day"), (self.date_to, "Last day (included)")):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy.MM.dd")
            edit.setToolTip(tip)
            edit.setVisible(False)
            edit.dateChanged.connect(lambda _d: self.reload())
        self.period.currentIndexChanged.connect(self._period_changed)
        self.refresh_button = QPushButton("&Refresh")
        self.refresh_button.setToolTip("Ask the terminal again")
        self.refresh_button.clicked.connect(self.reload)
        self.export_button = QPushButton("&Export CSV…")
        self.export_button.setObjectName("exportCsvButton")
        self.export_button.setToolTip("Write the rows of the tab shown to a CSV file")
        self.export_button.clicked.connect(self.choose_export_file)
        self.totals = status_label(
            "Over the period: profit of the trades (with commission and swap), deposits and "
            "withdrawals",
            "Profit: 99 999 999.99 · Deposit: 99 999 999.99 · Withdrawal: 99 999 999.99",
        )
        self.totals.setObjectName("historyTotals")
        self.message = QLabel()
        self.message.setObjectName("historyMessage")
        lay_out_table_panel(
            self,
            [
                self.period,
                self.date_from,
                self.date_to,
                self.refresh_button,
                self.export_button,
                self.message,
                None,
                self.totals,
            ],
            self.tabs,
        )

    # ------------------------------------------------------------------ loading
    def range_ms(self) -> tuple[int, int]:
        days = PERIODS[self.period.currentIndex()][1]
        if days is not None:
            return period_range(days, int(time.time() * 1000))
        first, last = self.date_from.date(), self.date_to.date()
        start = datetime(first.year(), first.month(), first.day(), tzinfo=UTC)
        end = datetime(last.year(), last.month(), last.day(), tzinfo=UTC) + timedelta(days=1)
        return int(start.timestamp() * 1000), int(end.timestamp() * 1000)

    def _period_changed(self, index: int) -> None:
        custom = PERIODS[index][1] is None
        self.date_from.setVisible(custom)
        self.date_to.setVisible(custom)
        self.reload()

    def refresh(self) -> None:
        if asyncio.events._get_running_loop() is None:
            return  # Qt pumping events between two runs of the loop (tests, a modal)
        snap = self.session.trading_snapshot()
        # A close or a fill changes the open tickets: that is when History has news.
        seen = (
            (snap.terminal, tickets_of(snap.positions), tickets_of(snap.orders)) if snap else None
        )
        if seen != self._seen:
            self._seen = seen
            self.reload()

    def reload(self) -> None:
        if self.session.trading_snapshot() is None:
            self.message.setText("Trading is not running")
            return
        if self._loading:
            self._again = True  # one more pass when this one ends
            return
        self._loading = True
        start, end = self.range_ms()
        self.tasks.run(
            self.session.trade_history(start, end),
            "read the trade history",
            self._loaded,
            self._failed,
        )

    def _loaded(self, result: tuple[tuple[TradeDeal, ...], tuple[TradeOrder, ...]]) -> None:
        if not isValid(self):  # the window closed while the core answered
            return
        deals, orders = result
        snap: TradingSnapshot | None = self.session.trading_snapshot()
        self.deals_model.update(deals, snap)
        self.orders_model.update(orders, snap)
        profit, deposit, withdrawal = totals(deals)
        text = f"Profit: {money(profit)} · Deposit: {money(deposit)}"
        if withdrawal:
            text += f" · Withdrawal: {money(withdrawal)}"
        self.totals.setText(text)
        if self.message.text().startswith(NOT_READ):
            self.message.setText("")  # the failure is over; an export's line stays
        self.loads += 1
        self._done()

    def _failed(self, exc: BaseException) -> None:
        if not isValid(self):  # the window closed while the core answered
            return
        self.message.setText(f"{NOT_READ}: {exc}")
        self._done()

    def _done(self) -> None:
        self._loading = False
        if self._again:
            self._again = False
            self.reload()

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        self.deals_model.set_theme(theme)
        self.orders_model.set_theme(theme)

    # ------------------------------------------------------------------ export
    def choose_export_file(self) -> None:
        kind = "deals" if self.tabs.currentIndex() == 0 else "orders"
        dialog = QFileDialog(self, f"Export {kind} to CSV", f"{kind}.csv", "CSV files (*.csv)")
        dialog.setObjectName("historyExportDialog")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix("csv")
        dialog.fileSelected.connect(lambda path: self.export_csv(Path(path)))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def export_csv(self, path: Path) -> None:
        """Write the rows of the tab shown (deals or orders) to ``path``, via the session."""
        model = self.deals_model if self.tabs.currentIndex() == 0 else self.orders_model
        rows = model.rows()
        self.tasks.run(
            self.session.export_trade_rows(path, rows),
            "export the history",
            lambda n: self.message.setText(f"{n} rows written to {path}"),
            lambda exc: self.message.setText(f"Not exported: {exc}"),
        )
