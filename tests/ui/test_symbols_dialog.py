"""The symbol browser (Ctrl+U), "Stop capturing" in Market Watch's menu, and the Time
column at a narrow dock width, driven by keys and clicks against a real capture.

Truth: the simulated terminal's own ``symbols_get()`` (names, descriptions, paths) and
the settings file on disk; the Time cell's seconds against the clock text Qt would draw
in the column's width.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QApplication, QStyle
from pytestqt.qtbot import QtBot

from app.session import DesktopSession
from app.terminal.simulated import SimulatedTerminal
from tests.conftest import wait_until
from ui.dialogs.symbols import SymbolsDialog
from ui.panels.market_watch import SYMBOL, TIME, MarketWatch
from ui.tasks import TaskRunner
from ui.window import MainWindow

pytestmark = [pytest.mark.slow, pytest.mark.qt_log_ignore(r"^This plugin does not support ")]

SHOTS = Path("/tmp/ui-shots")


def _shot(widget: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert widget.grab().save(str(SHOTS / f"{name}.png"))  # type: ignore[attr-defined]


def _click(qtbot: QtBot, dialog: SymbolsDialog, name: str) -> None:
    assert dialog.select(name)  # find the row, then click it as a person would
    index = dialog.tree.currentIndex()
    dialog.tree.scrollTo(index)
    rect = dialog.tree.visualRect(index)
    qtbot.mouseClick(dialog.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


async def test_browse_search_remove_and_add_symbols(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    window = MainWindow(session, layout_file=tmp_path / "layout.ini")
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    watch = window.panels["marketWatch"]
    assert isinstance(watch, MarketWatch)

    await wait_until(lambda: QApplication.activeWindow() is window, 10, "the window active")
    qtbot.keyClick(window, Qt.Key.Key_U, Qt.KeyboardModifier.ControlModifier)
    await wait_until(lambda: window.findChild(SymbolsDialog) is not None, 10, "the dialog")
    dialog = window.findChild(SymbolsDialog)
    assert isinstance(dialog, SymbolsDialog)
    await wait_until(lambda: not dialog.loading, 30, "the symbol lists")
    term = SimulatedTerminal.from_spec(session.config.terminals[0].to_spec(None))
    assert term.initialize()
    offered = {i.name: i for i in term.symbols_get() or ()}
    assert sorted(dialog.shown_symbols()) == sorted(offered)
    assert all(dialog.captured_marks().values())  # the fixture captures all five

    # The search matches description and folder too, case-insensitively.
    dialog.search.setFocus()
    qtbot.keyClicks(dialog.search, "gold")
    assert dialog.shown_symbols() == [
        n for n, i in offered.items() if "gold" in i.description.lower()
    ]
    dialog.search.clear()
    qtbot.keyClicks(dialog.search, "CRYPTO")
    assert dialog.shown_symbols() == ["BTCUSD"]
    assert dialog.shown_folders() == ["Crypto"]
    dialog.search.clear()
    qtbot.keyClicks(dialog.search, "usd")
    assert sorted(dialog.shown_symbols()) == sorted(offered)  # every name holds USD

    # Remove BTCUSD: saved, its worker alone restarts, the row leaves Market Watch.
    _click(qtbot, dialog, "BTCUSD")
    assert dialog.remove_button.isEnabled()
    assert not dialog.add_button.isEnabled()
    qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
    await wait_until(lambda: "no longer captured" in dialog.status.text(), 30, "removed")
    assert "BTCUSD" not in session.store.load().config.terminals[0].symbols
    assert not dialog.captured_marks()["BTCUSD"]
    window.render()
    assert "BTCUSD" not in watch.shown_symbols()
    _shot(dialog, "symbols-dialog")

    # Add it back from the same row.
    assert dialog.add_button.isEnabled()
    qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    await wait_until(lambda: "added to" in dialog.status.text(), 30, "added")
    assert "BTCUSD" in session.store.load().config.terminals[0].symbols
    assert dialog.captured_marks()["BTCUSD"]
    window.render()
    assert "BTCUSD" in watch.shown_symbols()
    dialog.close()

    # Market Watch's context menu: Stop capturing the selected row.
    row = watch.model.row_of("GBPUSD")
    assert row is not None
    index = watch.proxy.mapFromSource(watch.model.index(row, SYMBOL))
    rect = watch.table.visualRect(index)
    qtbot.mouseClick(watch.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    menu = watch.context_menu(rect.center())
    qtbot.addWidget(menu)
    stop = next(a for a in menu.actions() if a.text() == "Stop capturing GBPUSD")
    assert stop.isEnabled()
    stop.trigger()
    await wait_until(
        lambda: "GBPUSD" not in session.snapshot().captured, 30, "GBPUSD out of capture"
    )
    assert "GBPUSD" not in session.store.load().config.terminals[0].symbols
    await wait_until(lambda: "no longer captured" in watch.hint.text(), 10, "the hint")
    window.render()
    assert "GBPUSD" not in watch.shown_symbols()


async def test_time_column_keeps_seconds_when_narrow(session: DesktopSession, qtbot: QtBot) -> None:
    panel = MarketWatch(session, TaskRunner())
    qtbot.addWidget(panel)
    panel.resize(340, 240)  # a narrow dock: the nine columns want about 700 px
    panel.show()

    def quoted() -> bool:
        panel.refresh()
        return all(q.time_msc > 0 for q in panel.model.quotes())

    await wait_until(quoted, 60, "a quote for every symbol")
    table, header = panel.table, panel.table.horizontalHeader()
    viewport = table.viewport().width()
    for q in panel.model.quotes():
        row = panel.model.row_of(q.symbol)
        assert row is not None
        cell = panel.model.index(row, TIME)
        text = cell.data()
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d\d\d", text), text
        # What Qt draws in the cell: the text elided to the column minus its margins.
        margin = QApplication.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin) + 1
        metrics = QFontMetrics(cell.data(Qt.ItemDataRole.FontRole))
        drawn = metrics.elidedText(
            text, Qt.TextElideMode.ElideRight, table.columnWidth(TIME) - 2 * margin
        )
        assert re.search(r"\d\d:\d\d:\d\d", drawn), drawn
    # ... and the column is on screen, not scrolled off to the right.
    assert header.sectionViewportPosition(TIME) + header.sectionSize(TIME) <= viewport
    _shot(panel, "market_watch_narrow")
    # Wide again: every column back to its natural width.
    panel.resize(900, 240)
    await wait_until(
        lambda: table.columnWidth(SYMBOL) >= QFontMetrics(table.font()).horizontalAdvance("XAUUSD"),
        5,
        "columns restored",
    )
    _shot(panel, "market_watch_wide")  # docs: market_watch.png is test_market_watch's
