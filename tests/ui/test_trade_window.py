"""Trading in the window, end to end, as a trader does it: F9 → Buy 0.1 EURUSD → the
position is in the Trade tab with live P/L → closed from its context menu → the deal is
in History; HALT is one click; a waiting signal is accepted with Enter.

The real session on the embedded default (simulated terminal with its broker, worker
processes, the reference backend); independent truth is a fresh SimulatedTerminal on the
same account folder (``history_deals_get``), not the window's own figures.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import httpx
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from app.config import ClientConfig
from app.config.store import ConfigStore
from app.session import DesktopSession
from app.terminal import trade_constants as tc
from app.terminal.loader import open_terminal
from app.trading.intent import Outcome
from app.trading.view import RiskState, SignalState
from tests.conftest import wait_until
from tests.ui.conftest import ui_config_document
from ui.dialogs.new_order import NewOrderDialog
from ui.dialogs.position import PositionDialog
from ui.panels.history import HistoryPanel
from ui.panels.signals import SignalsPanel
from ui.panels.trade import TradePanel
from ui.panels.trade_models import select_key
from ui.trade_text import money
from ui.window import MainWindow

pytestmark = pytest.mark.timeout(180)

SHOTS = Path("/tmp/ui-shots")
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def ui_store(tmp_path: Path) -> ConfigStore:
    """The embedded default with the broker's books under ``tmp_path`` (the independent
    truth opens them again) and no demo signals (the test posts its own)."""
    doc = ui_config_document(
        tmp_path, backend={"demo_signals": False}, trading={"default_deviation": 50}
    )
    doc["terminals"][0]["sim_state_dir"] = str(tmp_path / "broker")
    store = ConfigStore(tmp_path / "settings" / "client-config.json")
    store.save(ClientConfig.model_validate(doc))
    return store


def shot(widget: QWidget, name: str) -> None:
    """A screenshot in /tmp/ui-shots; also in docs/screenshots with UPDATE_DOCS_IMG=1 (so a test
    run does not dirty the checkout)."""
    folders = (SHOTS, DOCS_IMG) if os.environ.get("UPDATE_DOCS_IMG") == "1" else (SHOTS,)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        assert widget.grab().save(str(folder / f"{name}.png"))


def top(kind: type[QWidget]) -> QWidget | None:
    return next((w for w in QApplication.topLevelWidgets() if isinstance(w, kind)), None)


def open_window(session: DesktopSession, qtbot: QtBot, tmp_path: Path) -> MainWindow:
    window = MainWindow(session, layout_file=tmp_path / "layout.ini")
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()  # shortcuts reach the active window only
    return window


async def test_buy_from_f9_close_from_the_trade_tab_find_the_deal_in_history(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    window = open_window(session, qtbot, tmp_path)
    trade = window.panels["trade"]
    history = window.panels["history"]
    assert isinstance(trade, TradePanel)
    assert isinstance(history, HistoryPanel)

    def ready() -> bool:
        snap = session.trading_snapshot()
        return bool(snap and snap.account and "EURUSD" in snap.prices and "EURUSD" in snap.symbols)

    await wait_until(ready, 60, "the account, EURUSD's price and its symbol_info")
    balance_before = session.trading_snapshot().account.balance  # type: ignore[union-attr]

    # F9 → New Order on EURUSD, 0.1 lots, Buy at the ask.
    await wait_until(window.isActiveWindow, 10, "the window to be active")
    qtbot.keyClick(window, Qt.Key.Key_F9)
    dialog = top(NewOrderDialog)
    assert isinstance(dialog, NewOrderDialog)
    dialog.symbol.setCurrentText("EURUSD")
    dialog.volume.setValue(0.1)
    await wait_until(lambda: dialog.buy.isEnabled() and "—" not in dialog.buy.text(), 10)
    shot(dialog, "new-order")
    qtbot.mouseClick(dialog.buy, Qt.MouseButton.LeftButton)
    await wait_until(lambda: dialog.reports, 30, "the order's report")
    report = dialog.reports[-1]
    assert report.outcome is Outcome.EXECUTED, report
    assert "10009" in dialog.outcome.text()
    assert "DONE" in dialog.outcome.text()
    ticket = report.position or report.order
    dialog.close()

    # The position is in the Trade tab, with the live P/L the core computes.
    window.show_panel("trade")
    await wait_until(lambda: trade.select_position(ticket), 20, "the position in the Trade tab")
    snap = session.trading_snapshot()
    assert snap is not None
    position = next(p for p in snap.positions if p.ticket == ticket)
    assert position.symbol == "EURUSD"
    assert position.volume == pytest.approx(0.1)
    assert position.type == tc.POSITION_TYPE_BUY
    trade.refresh()
    row = trade.positions.selectionModel().selectedRows()[0].row()
    shown_profit = trade.positions.model().index(row, 9).data()
    assert shown_profit == money(trade.snapshot.live_profit[ticket])  # type: ignore[union-attr]
    shot(trade, "trade")

    # Context menu ▸ Modify S/L-T/P… → a stop loss 200 points under the open price.
    trade.modify_action.trigger()
    editor = trade.findChild(PositionDialog)
    assert isinstance(editor, PositionDialog)
    stop = round(position.price_open - 200 * 1e-5, 5)
    editor.sl.setValue(stop)
    qtbot.mouseClick(editor.modify_button, Qt.MouseButton.LeftButton)
    await wait_until(lambda: "placed" in editor.outcome.text(), 30, "the modify's report")
    editor.close()
    await wait_until(lambda: trade.findChild(PositionDialog) is None, 5, "the editor to go")
    await wait_until(
        lambda: any(
            p.ticket == ticket and p.sl == pytest.approx(stop)
            for p in session.trading_snapshot().positions  # type: ignore[union-attr]
        ),
        20,
        "the new S/L in the account",
    )

    # Context menu ▸ Close position… → the position's window → Close.
    assert trade.close_action in trade.positions.actions()
    trade.close_action.trigger()
    closer = trade.findChild(PositionDialog)
    assert isinstance(closer, PositionDialog)
    assert closer.volume.value() == pytest.approx(0.1)
    qtbot.mouseClick(closer.close_button, Qt.MouseButton.LeftButton)
    await wait_until(lambda: "executed" in closer.outcome.text(), 30, "the close's report")
    closer.close()
    await wait_until(
        lambda: all(p.ticket != ticket for p in session.trading_snapshot().positions),  # type: ignore[union-attr]
        20,
        "the position to leave the Trade tab",
    )

    # History lists the closing deal; the terminal's own books say the same.
    window.show_panel("history")

    def closing_deals_shown() -> list[int]:
        return [
            d.ticket
            for d in history.deals_model.rows()
            if d.position_id == ticket and d.entry == tc.DEAL_ENTRY_OUT
        ]

    await wait_until(closing_deals_shown, 30, "the closing deal in History")
    term = session.config.terminals[0]
    truth = open_terminal(term.to_spec())
    assert truth.initialize()
    try:
        deals = truth.history_deals_get(0, int(time.time()) + 86_400) or ()
    finally:
        truth.shutdown()
    ours = [d for d in deals if d.position_id == ticket]
    assert sorted(d.entry for d in ours) == [tc.DEAL_ENTRY_IN, tc.DEAL_ENTRY_OUT]
    out = next(d for d in ours if d.entry == tc.DEAL_ENTRY_OUT)
    assert closing_deals_shown() == [out.ticket]
    shown = next(d for d in history.deals_model.rows() if d.ticket == out.ticket)
    assert shown == out
    assert money(out.profit) in [
        history.deals_model.index(r, 10).data() for r in range(history.deals_model.rowCount())
    ]
    await wait_until(
        lambda: (
            session.trading_snapshot().account.balance  # type: ignore[union-attr]
            == pytest.approx(balance_before + sum(d.profit + d.commission + d.swap for d in ours))
        ),
        20,
        "the balance to move by the trade's result",
    )
    shot(history, "history")

    # A pending order from F9 (Buy Limit under the market): in the orders table, then
    # cancelled with Delete and a confirm.
    window.activateWindow()
    await wait_until(window.isActiveWindow, 10, "the window to be active again")
    qtbot.keyClick(window, Qt.Key.Key_F9)
    pending = top(NewOrderDialog)
    assert isinstance(pending, NewOrderDialog)
    pending.symbol.setCurrentText("EURUSD")
    pending.type.setCurrentIndex(1)  # Buy Limit
    assert pending.place.isVisible()
    assert not pending.buy.isVisible()
    bid, _ask = session.trading_snapshot().prices["EURUSD"]  # type: ignore[union-attr]
    pending.price.setValue(0.0)
    assert "needs a price" in pending.problem.text()
    assert not pending.place.isEnabled()
    limit = round(bid - 500 * 1e-5, 5)
    pending.price.setValue(limit)
    pending.tp.setValue(round(limit - 100 * 1e-5, 5))  # a buy's T/P under its price
    assert "T/P must be above" in pending.problem.text()
    pending.tp.setValue(0.0)
    assert pending.place.isEnabled()
    qtbot.mouseClick(pending.place, Qt.MouseButton.LeftButton)
    await wait_until(lambda: pending.reports, 30, "the pending order's report")
    assert pending.reports[-1].outcome is Outcome.PLACED, pending.reports[-1]
    order_ticket = pending.reports[-1].order
    pending.close()
    window.show_panel("trade")

    def orders_shown() -> list[int]:
        return [o.ticket for o in trade.orders_model.rows()]

    await wait_until(lambda: order_ticket in orders_shown(), 20, "the order in the Trade tab")
    assert next(o for o in trade.orders_model.rows() if o.ticket == order_ticket).price_open == (
        pytest.approx(limit)
    )
    assert select_key(trade.orders, order_ticket)
    window.activateWindow()
    await wait_until(window.isActiveWindow, 10, "the window to be active again")
    trade.orders.setFocus()
    await wait_until(trade.orders.hasFocus, 5, "the orders table's focus")
    qtbot.keyClick(trade.orders, Qt.Key.Key_Delete)
    confirm = trade.findChild(QMessageBox, "tradeConfirm")
    assert isinstance(confirm, QMessageBox)
    assert f"#{order_ticket}" in confirm.text()
    confirm.button(QMessageBox.StandardButton.Yes).click()
    await wait_until(lambda: order_ticket not in orders_shown(), 20, "the order cancelled")

    # Export CSV… → the file holds the listed deals, field by field.
    target = tmp_path / "deals.csv"
    history.choose_export_file()
    chooser = history.findChild(QFileDialog, "historyExportDialog")
    assert isinstance(chooser, QFileDialog)
    chooser.selectFile(str(target))
    chooser.accept()
    await wait_until(lambda: "rows written" in history.message.text(), 20, "the export")
    with target.open(newline="") as f:
        written = list(csv.DictReader(f))
    listed = history.deals_model.rows()
    assert [int(r["ticket"]) for r in written] == [d.ticket for d in listed]
    row_out = next(r for r in written if int(r["ticket"]) == out.ticket)
    assert float(row_out["profit"]) == pytest.approx(out.profit)
    assert row_out["comment"] == out.comment


async def test_halt_click_and_a_signal_accepted_with_enter(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    window = open_window(session, qtbot, tmp_path)
    await wait_until(lambda: session.trading_snapshot() is not None, 60, "trading to run")
    halt = window.status.halt
    await wait_until(lambda: halt.state is RiskState.ACTIVE, 10, "HALT to show ACTIVE")

    # A signal from an AI service, through the gateway, waits for the trader.
    runtime = session.runtime
    assert runtime is not None
    assert runtime.embedded is not None
    await wait_until(lambda: runtime.link is not None and runtime.link.state.connected, 60)
    now = int(time.time() * 1000)
    body = {
        "client_id": session.config.backend.client_id,
        "id": "ui-signal-1",
        "source": "test-ai",
        "symbol": "EURUSD",
        "side": "buy",
        "volume": 0.01,
        "valid_until_ms": now + 120_000,
    }
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{runtime.embedded.gateway_url}/api/v1/signals",
            json=body,
            headers={"Authorization": f"Bearer {runtime.embedded.credential.reveal()}"},
        )
    assert answer.status_code == 201, answer.text
    signals = window.panels["signals"]
    assert isinstance(signals, SignalsPanel)
    window.show_panel("signals")
    await wait_until(lambda: signals.model.rowCount() == 1, 30, "the signal in the panel")
    dock = window.docks["signals"]
    await wait_until(lambda: dock.windowTitle() == "Signals (1)", 5, "the waiting count")
    signals.view.setFocus()
    assert signals.select_signal("ui-signal-1")
    await wait_until(signals.view.hasFocus, 5, "the list's focus")
    qtbot.keyClick(signals.view, Qt.Key.Key_Return)

    def state() -> SignalState | None:
        snap = session.trading_snapshot()
        row = next((s for s in snap.signals if s.id == "ui-signal-1"), None) if snap else None
        return row.state if row is not None else None

    await wait_until(lambda: state() is SignalState.EXECUTED, 30, "the accepted signal executed")
    await wait_until(lambda: dock.windowTitle() == "Signals", 5, "no signal waiting")
    row = next(s for s in session.trading_snapshot().signals if s.id == "ui-signal-1")  # type: ignore[union-attr]
    assert row.ticket
    await wait_until(
        lambda: any(p.ticket == row.ticket for p in session.trading_snapshot().positions),  # type: ignore[union-attr]
        20,
        "the signal's position in the account",
    )
    await wait_until(lambda: signals.model.index(0, 7).data() == "executed", 5, "the row")
    shot(signals, "signals")

    # Ctrl+Shift+H halts at once; Trade ▸ Resume trading… asks.
    qtbot.keyClick(
        window,
        Qt.Key.Key_H,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    await wait_until(lambda: halt.state is RiskState.HALTED, 5, "HALTED by the shortcut")
    window.trading.resume_action.trigger()
    box = window.trading.resume_box
    assert isinstance(box, QMessageBox)
    resume = box.findChild(QWidget, "resumeButton")
    assert resume is not None
    qtbot.mouseClick(resume, Qt.MouseButton.LeftButton)
    await wait_until(lambda: halt.state is RiskState.ACTIVE, 5, "ACTIVE after resuming")

    # HALT: one click, no question; the state shows red with the reason.
    qtbot.mouseClick(halt, Qt.MouseButton.LeftButton)
    await wait_until(lambda: halt.state is RiskState.HALTED, 5, "HALTED shown")
    assert "HALTED" in halt.text()
    assert window.theme.bad in halt.styleSheet()
    assert "halted from the window" in halt.toolTip()
    SHOTS.mkdir(exist_ok=True)
    assert window.grab().save(str(SHOTS / "window-halted.png"))
    # Resuming asks first.
    qtbot.mouseClick(halt, Qt.MouseButton.LeftButton)
    box = window.trading.resume_box
    assert isinstance(box, QMessageBox)
    resume = box.findChild(QWidget, "resumeButton")
    assert resume is not None
    qtbot.mouseClick(resume, Qt.MouseButton.LeftButton)
    await wait_until(lambda: halt.state is RiskState.ACTIVE, 5, "ACTIVE again")
