"""Trade, Signals and the HALT control render a TradingSnapshot the way MT5's Toolbox
shows it; keys act on the selected row. Fed hand-built snapshots (the end-to-end path
on the simulated broker is tests/ui/test_trade_window.py): every shown figure is checked
against the snapshot's own fields."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMainWindow, QMessageBox
from pytestqt.qtbot import QtBot

from app.config.store import ConfigStore
from app.session import DesktopSession
from app.terminal import trade_constants as tc
from app.terminal.trade_types import TradeOrder, TradePosition
from app.terminal.types import AccountInfo
from app.trading.view import (
    RiskState,
    RiskStatus,
    SignalRow,
    SignalState,
    SymbolTerms,
    TradingSnapshot,
)
from ui.panels.signals import SignalsPanel
from ui.panels.trade import TradePanel, account_text
from ui.status_bar import StatusBar
from ui.tasks import TaskRunner
from ui.theme import DARK
from ui.trade_text import money

SHOTS = Path("/tmp/ui-shots")


def account(**over: object) -> AccountInfo:
    fields: dict[str, object] = dict.fromkeys(AccountInfo._fields, 0)
    fields.update(name="Demo", server="Simulated-Demo", currency="USD", company="sim")
    fields.update(
        login=5001,
        leverage=100,
        balance=10_000.0,
        equity=10_012.5,
        margin=108.5,
        margin_free=9_904.0,
        margin_level=9_228.11,
    )
    fields.update(over)
    return AccountInfo(**fields)  # type: ignore[arg-type]


def position(ticket: int, kind: int, symbol: str, volume: float, price: float) -> TradePosition:
    t = 1_765_000_000 + ticket
    return TradePosition(
        ticket, t, t * 1000, t, t * 1000, kind, 20_261_205, ticket, 0, volume, price,
        0.0, 0.0, price, 0.0, 0.0, symbol, "tc:abc", "",
    )  # fmt: skip


def order(ticket: int, kind: int, symbol: str, volume: float, price: float) -> TradeOrder:
    t = 1_765_000_000 + ticket
    return TradeOrder(
        ticket, t, t * 1000, 0, 0, 0, kind, 0, 0, tc.ORDER_STATE_PLACED, 0, 0, 0, 0, volume,
        volume, price, 0.0, 0.0, price, 0.0, symbol, "", "",
    )  # fmt: skip


def signal(sid: str, state: SignalState, **over: object) -> SignalRow:
    fields: dict[str, object] = {
        "id": sid,
        "source": "demo-ma-cross",
        "symbol": "EURUSD",
        "side": "buy",
        "volume": 0.01,
        "sl": 1.0831,
        "tp": 1.0871,
        "state": state,
        "reason": "",
        "created_at_ms": 1_765_000_000_000,
        "received_at_ms": 1_765_000_000_012,
        "valid_until_ms": 1_765_000_060_000,
    }
    fields.update(over)
    return SignalRow(**fields)  # type: ignore[arg-type]


def snapshot(version: int = 1, **over: object) -> TradingSnapshot:
    fields: dict[str, object] = {
        "version": version,
        "terminal": "sim",
        "account": account(),
        "positions": (
            position(11, tc.POSITION_TYPE_BUY, "EURUSD", 0.1, 1.08512),
            position(12, tc.POSITION_TYPE_SELL, "USDJPY", 0.2, 151.234),
        ),
        "orders": (order(21, tc.ORDER_TYPE_BUY_LIMIT, "EURUSD", 0.3, 1.08),),
        "live_profit": {11: 12.5, 12: -3.25},
        "symbols": {"EURUSD": SymbolTerms(5), "USDJPY": SymbolTerms(3)},
        "prices": {"EURUSD": (1.08637, 1.08649), "USDJPY": (151.25, 151.262)},
        "signals": (
            signal("s1", SignalState.WAITING),
            signal("s2", SignalState.EXECUTED, ticket=11, price=1.08512, latency_ms=4.2),
            signal("s3", SignalState.REFUSED, reason="max volume per order 0.5 exceeded"),
            signal("s4", SignalState.EXPIRED, reason="expired while waiting"),
        ),
        "risk": RiskStatus(RiskState.ACTIVE),
    }
    fields.update(over)
    return TradingSnapshot(**fields)  # type: ignore[arg-type]


@pytest.fixture
def idle_session(ui_store: ConfigStore) -> DesktopSession:
    return DesktopSession(ui_store)  # not started: the panels are fed snapshots


def shot(widget: object, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    widget.grab().save(str(SHOTS / f"{name}.png"))  # type: ignore[attr-defined]


def cell(view: object, row: int, col: int) -> str:
    model = view.model()  # type: ignore[attr-defined]
    return str(model.index(row, col).data())


def test_trade_tab_shows_account_positions_and_orders(
    qtbot: QtBot, idle_session: DesktopSession
) -> None:
    panel = TradePanel(idle_session, TaskRunner())
    qtbot.addWidget(panel)
    panel.resize(1100, 300)
    panel.show()
    snap = snapshot()
    panel.render_trading(snap)
    assert panel.positions.model().rowCount() == len(snap.positions)
    assert panel.orders.model().rowCount() == len(snap.orders)
    by_ticket = {cell(panel.positions, r, 0): r for r in range(2)}
    for p in snap.positions:
        row = by_ticket[str(p.ticket)]
        assert cell(panel.positions, row, 4) == p.symbol
        assert cell(panel.positions, row, 2) == ("buy" if p.type == 0 else "sell")
        assert cell(panel.positions, row, 9) == money(snap.live_profit[p.ticket])
        bid, ask = snap.prices[p.symbol]
        digits = snap.symbols[p.symbol].digits
        assert cell(panel.positions, row, 8) == f"{bid if p.type == 0 else ask:.{digits}f}"
        colour = panel.positions.model().index(row, 9).data(Qt.ItemDataRole.ForegroundRole)
        assert colour.name() == (DARK.up if snap.live_profit[p.ticket] > 0 else DARK.down)
    assert cell(panel.orders, 0, 2) == "buy limit"
    assert panel.account.text() == account_text(snap)
    assert account_text(snap).startswith(f"Balance: {money(snap.account.balance)} USD")  # type: ignore[union-attr]
    # Live P/L moves: same rows, new figure, the selection stays.
    assert panel.select_position(11)
    moved = snapshot(2, live_profit={11: -7.0, 12: -3.25})
    panel.render_trading(moved)
    assert cell(panel.positions, by_ticket["11"], 9) == money(-7.0)
    assert [p.ticket for p in panel.selected_positions()] == [11]
    shot(panel, "trade")


def test_delete_closes_after_a_confirm_and_no_closes_nothing(
    qtbot: QtBot, idle_session: DesktopSession
) -> None:
    panel = TradePanel(idle_session, TaskRunner())
    qtbot.addWidget(panel)
    panel.show()
    panel.render_trading(snapshot())
    panel.activateWindow()
    panel.positions.setFocus()
    qtbot.wait_until(panel.positions.hasFocus, timeout=5000)
    assert panel.select_position(snapshot().positions[0].ticket)
    qtbot.keyClick(panel.positions, Qt.Key.Key_Delete)
    box = panel.findChild(QMessageBox, "tradeConfirm")
    assert box is not None
    assert "Close at the market price?" in box.text()
    ticket = panel.selected_positions()[0].ticket
    assert f"#{ticket} " in box.text()
    box.button(QMessageBox.StandardButton.No).click()  # nothing is sent, nothing reported
    qtbot.wait_until(lambda: panel.findChild(QMessageBox, "tradeConfirm") is None, timeout=2000)
    assert not panel.message.isVisible()


def test_signals_panel_counts_waiting_and_lists_reasons(
    qtbot: QtBot, idle_session: DesktopSession
) -> None:
    panel = SignalsPanel(idle_session, TaskRunner())
    qtbot.addWidget(panel)
    panel.resize(1100, 260)
    panel.show()
    titles: list[str] = []
    panel.title_changed.connect(titles.append)
    snap = snapshot(auto_sources=frozenset({"demo-ma-cross"}))
    panel.render_trading(snap)
    waiting = sum(s.state is SignalState.WAITING for s in snap.signals)
    assert titles[-1] == f"Signals ({waiting})"
    model = panel.view.model()
    shown = {cell(panel.view, r, 7): cell(panel.view, r, 8) for r in range(model.rowCount())}
    assert set(shown) == {s.state.value for s in snap.signals}
    for s in snap.signals:
        if s.state in (SignalState.REFUSED, SignalState.EXPIRED):
            assert shown[s.state.value] == s.reason
    assert shown["executed"].startswith("#11 at 1.08512")
    check = panel.auto_checks["demo-ma-cross"]
    assert check.isChecked()
    assert "risk engine" in check.toolTip()
    # Only a waiting signal can be accepted.
    for s in snap.signals:
        assert panel.select_signal(s.id)
        assert panel.accept_action.isEnabled() == (s.state is SignalState.WAITING)
    shot(panel, "signals")


def test_halt_control_shows_each_state(qtbot: QtBot) -> None:
    window = QMainWindow()
    qtbot.addWidget(window)
    status = StatusBar(window)
    for state, colour in ((RiskState.ACTIVE, DARK.ok), (RiskState.REDUCING, DARK.warn)):
        status.halt.show_status(RiskStatus(state, "daily loss 80 % of the limit"), DARK)
        assert state.value.upper() in status.halt.text()
        assert colour in status.halt.styleSheet()
    status.halt.show_status(RiskStatus(RiskState.HALTED, "daily loss limit reached"), DARK)
    assert "HALTED" in status.halt.text()
    assert DARK.bad in status.halt.styleSheet()
    assert "daily loss limit reached" in status.halt.toolTip()
    status.halt.show_status(None, DARK)
    assert not status.halt.isEnabled()
