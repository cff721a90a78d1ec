"""Market Watch against a real capture: five simulated workers streaming quotes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pyqtgraph as pg
import pytest
from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.session import DesktopSession
from app.terminal.market import DEFAULT_PROFILES
from tests.conftest import wait_until
from ui.panels._format import format_price
from ui.panels.market_watch import (
    ASK,
    BID,
    NOT_CAPTURED,
    SORT_ROLE,
    STALE_AFTER_S,
    SYMBOL,
    TPS,
    MarketWatch,
)
from ui.tasks import TaskRunner
from ui.theme import DARK, Theme, apply_theme

pytestmark = [
    pytest.mark.slow,
    # The symbol completer's popup asks the offscreen platform for things it cannot do
    # (raise, keyboard grab, size hints); on a real screen these are no-ops, not faults.
    pytest.mark.qt_log_ignore(r"^This plugin does not support "),
]

SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD"]
SHOTS = Path("/tmp/ui-shots")


def _open(qtbot: QtBot, session: DesktopSession, **kwargs: object) -> MarketWatch:
    panel = MarketWatch(session, TaskRunner(), **kwargs)  # type: ignore[arg-type]
    qtbot.addWidget(panel)
    panel.resize(780, 260)
    panel.show()
    return panel


def _screen_rows(panel: MarketWatch) -> list[str]:
    """Symbols in the order the table shows them."""
    p = panel.proxy
    return [p.index(r, SYMBOL).data() for r in range(p.rowCount())]


def _cell(panel: MarketWatch, symbol: str, column: int) -> QModelIndex:
    row = panel.model.row_of(symbol)
    assert row is not None, f"{symbol} has no row"
    return panel.model.index(row, column)


def _click_row(qtbot: QtBot, panel: MarketWatch, symbol: str) -> None:
    row = panel.model.row_of(symbol)
    assert row is not None
    index = panel.proxy.mapFromSource(panel.model.index(row, SYMBOL))
    rect = panel.table.visualRect(index)
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def _click_header(qtbot: QtBot, panel: MarketWatch, column: int) -> None:
    header = panel.table.horizontalHeader()
    x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
    qtbot.mouseClick(
        header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, header.height() // 2)
    )


def _all_quoted(panel: MarketWatch) -> bool:
    panel.refresh()
    return all(_cell(panel, s, BID).data() not in ("", "—") for s in SYMBOLS)


@pytest.fixture
def dark(qapp: QApplication) -> Iterator[Theme]:
    """The window's dark theme for the screenshots; the application is left as found."""
    palette, style = qapp.palette(), qapp.style().name()
    apply_theme(qapp, DARK)
    yield DARK
    qapp.setPalette(palette)
    qapp.setStyle(style)
    pg.setConfigOptions(background="k", foreground="d")


def _save_shot(panel: MarketWatch, tmp_path: Path, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    image = panel.grab()
    assert image.save(str(tmp_path / f"{name}.png"))
    assert image.save(str(SHOTS / f"{name}.png"))


async def test_quotes_sorting_add_and_remove(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path, dark: Theme
) -> None:
    panel = _open(qtbot, session)
    assert panel.shown_symbols() == SYMBOLS

    await wait_until(lambda: _all_quoted(panel), 60, "quotes for all five symbols")

    # Ticks per second come from the monitor, once it has measured a second.
    def rates_shown() -> bool:
        panel.refresh()
        return all(_cell(panel, s, TPS).data() != "—" for s in SYMBOLS)

    await wait_until(rates_shown, 30, "ticks per second for all five symbols")

    # The cells are the collector's newest values at the symbol's digits.
    panel.refresh()
    assert session.runtime is not None
    stats = session.runtime.collector.stats.symbols
    for s in SYMBOLS:
        digits = DEFAULT_PROFILES[s].digits
        assert _cell(panel, s, BID).data() == format_price(stats[s].last_bid, digits)
        assert _cell(panel, s, ASK).data() == format_price(stats[s].last_ask, digits)
        assert stats[s].last_ask >= stats[s].last_bid
        align = _cell(panel, s, BID).data(Qt.ItemDataRole.TextAlignmentRole)
        assert align & Qt.AlignmentFlag.AlignRight
    assert panel.model.headerData(BID, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)

    # Sorting: clicking the Bid header sorts by the number, clicking again reverses.
    before = _screen_rows(panel)
    bids = {s: stats[s].last_bid for s in SYMBOLS}
    _click_header(qtbot, panel, BID)
    panel.refresh()
    header = panel.table.horizontalHeader()
    assert header.sortIndicatorSection() == BID
    first_order = header.sortIndicatorOrder()
    _click_header(qtbot, panel, BID)
    panel.refresh()
    assert header.sortIndicatorOrder() != first_order
    descending = header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
    expected = sorted(SYMBOLS, key=bids.__getitem__, reverse=descending)
    assert _screen_rows(panel) == expected
    keys = [panel.proxy.index(r, BID).data(SORT_ROLE) for r in range(5)]
    assert keys == sorted(keys, reverse=descending)
    assert _screen_rows(panel) != before or not descending

    # Selecting a row tells the chart which symbol to show.
    picked: list[str] = []
    panel.symbol_selected.connect(picked.append)
    _click_row(qtbot, panel, "XAUUSD")
    assert picked == ["XAUUSD"]

    # A symbol the terminal does not offer is refused, with the terminal's reason.
    qtbot.keyClicks(panel.add_edit, "AUDNZD")
    qtbot.keyClick(panel.add_edit, Qt.Key.Key_Return)
    await wait_until(lambda: "does not offer" in panel.hint.text(), 30, "the refusal")
    assert "AUDNZD" in panel.hint.text()
    assert "AUDNZD" not in panel.shown_symbols()
    assert panel.add_edit.text() == "AUDNZD"  # left to correct
    panel.add_edit.clear()

    # A row a saved layout names but nobody captures says where to fix it.
    panel.restore_view_state({**panel.view_state(), "added": ["AUDNZD"]})
    panel.add_symbol("AUDNZD")
    assert "AUDNZD" in panel.shown_symbols()
    assert _cell(panel, "AUDNZD", BID).data() == NOT_CAPTURED
    assert "add it in Settings" in panel.hint.text()
    assert panel.hint.isVisible()
    proxy_row = panel.proxy.mapFromSource(_cell(panel, "AUDNZD", SYMBOL)).row()
    assert panel.table.columnSpan(proxy_row, BID) > 1  # the hint is readable in full
    panel.refresh()  # an uncaptured row is not an error, and stays as it is
    assert _cell(panel, "AUDNZD", BID).data() == NOT_CAPTURED

    _save_shot(panel, tmp_path, "market_watch")

    # Delete hides the selected row: first the uncaptured one, then a captured one.
    _click_row(qtbot, panel, "AUDNZD")
    assert panel.selected_symbols() == ["AUDNZD"]
    qtbot.keyClick(panel.table, Qt.Key.Key_Delete)
    assert "AUDNZD" not in panel.shown_symbols()
    _click_row(qtbot, panel, "USDJPY")
    qtbot.keyClick(panel.table, Qt.Key.Key_Delete)
    assert "USDJPY" not in panel.shown_symbols()
    assert panel.model.rowCount() == 4
    panel.refresh()  # capture goes on; the hidden row does not come back by itself
    assert "USDJPY" not in panel.shown_symbols()

    # The view choice survives a restart of the window through the saved layout.
    state = panel.view_state()
    assert state["hidden"] == ["USDJPY"]
    again = MarketWatch(session, TaskRunner())
    qtbot.addWidget(again)
    again.restore_view_state(state)
    assert again.shown_symbols() == [s for s in SYMBOLS if s != "USDJPY"]
    assert again.table.horizontalHeader().sortIndicatorSection() == BID

    # Typing a captured name in any case brings it back, with its quotes.
    qtbot.keyClicks(panel.add_edit, "usdjpy")
    qtbot.keyClick(panel.add_edit, Qt.Key.Key_Return)
    assert "USDJPY" in panel.shown_symbols()
    panel.refresh()
    assert _cell(panel, "USDJPY", BID).data() not in ("", "—", NOT_CAPTURED)

    # The context menu's "Show all" brings back every hidden captured row.
    _click_row(qtbot, panel, "GBPUSD")
    qtbot.keyClick(panel.table, Qt.Key.Key_Delete)
    assert "GBPUSD" not in panel.shown_symbols()
    menu = panel.context_menu(QPoint(5, 5))
    qtbot.addWidget(menu)
    show_all = next(a for a in menu.actions() if a.text() == "Show all captured symbols")
    assert show_all.isEnabled()
    show_all.trigger()
    assert sorted(panel.shown_symbols()) == sorted(SYMBOLS)


async def test_flash_on_up_tick_and_stale_rows(session: DesktopSession, qtbot: QtBot) -> None:
    shift = [0.0]
    panel = _open(qtbot, session)

    def render() -> None:
        """A frame whose clock is ``shift`` seconds ahead (the snapshot's ``now``)."""
        snap = session.snapshot()
        panel.render(replace(snap, now=snap.now + shift[0]))

    theme = panel.theme
    seen: dict[str, object] = {}

    def up_tick_observed() -> bool:
        before = {s: panel.model.quote(panel.model.row_of(s) or 0).bid for s in SYMBOLS}
        render()
        for s in SYMBOLS:
            now_bid = panel.model.quote(panel.model.row_of(s) or 0).bid
            old = before[s]
            if old is not None and now_bid is not None and now_bid > old:
                seen["symbol"] = s
                seen["fg"] = _cell(panel, s, BID).data(Qt.ItemDataRole.ForegroundRole)
                seen["bg"] = _cell(panel, s, BID).data(Qt.ItemDataRole.BackgroundRole)
                return True
        return False

    await wait_until(up_tick_observed, 60, "a render in which some bid rose")
    assert seen["fg"].name() == theme.color("up").name()  # type: ignore[attr-defined]
    assert seen["bg"].rgb() == theme.color("up").rgb()  # type: ignore[attr-defined]

    def down_tick_observed() -> bool:
        before = {s: panel.model.quote(panel.model.row_of(s) or 0).bid for s in SYMBOLS}
        render()
        for s in SYMBOLS:
            now_bid = panel.model.quote(panel.model.row_of(s) or 0).bid
            old = before[s]
            if old is not None and now_bid is not None and now_bid < old:
                fg = _cell(panel, s, BID).data(Qt.ItemDataRole.ForegroundRole)
                seen["down"] = fg.name()
                return True
        return False

    await wait_until(down_tick_observed, 60, "a render in which some bid fell")
    assert seen["down"] == theme.color("down").name()

    # The flash fades: half a second later (by the panel's clock) the cell is plain again.
    symbol = str(seen["symbol"])
    shift[0] = 1.0
    render()
    q = panel.model.quote(panel.model.row_of(symbol) or 0)
    fg = _cell(panel, symbol, BID).data(Qt.ItemDataRole.ForegroundRole)
    if q.bid_dir == 0:  # unless a new move was seen in this very render
        assert fg is None
        assert _cell(panel, symbol, BID).data(Qt.ItemDataRole.BackgroundRole) is None

    # No tick for longer than STALE_AFTER_S: every row turns grey, with a tooltip why.
    shift[0] = 0.0
    await wait_until(lambda: _all_quoted(panel), 60, "quotes for all five symbols")
    shift[0] = STALE_AFTER_S + 5.0
    render()
    stale = theme.color("stale").name()
    for s in SYMBOLS:
        for column in (SYMBOL, BID, ASK):
            color = _cell(panel, s, column).data(Qt.ItemDataRole.ForegroundRole)
            assert color is not None
            assert color.name() == stale, (s, column)
        assert "out of date" in _cell(panel, s, BID).data(Qt.ItemDataRole.ToolTipRole)

    # Back to the real clock: fresh ticks make the rows live again.
    shift[0] = 0.0
    render()
    live = _cell(panel, "EURUSD", SYMBOL).data(Qt.ItemDataRole.ForegroundRole)
    assert live is None or live.name() != stale
