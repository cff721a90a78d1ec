"""Market Watch's column headers are whole at the window's default size and at any dock
width; a narrow dock leaves whole columns out (named in a tooltip) instead of cutting
labels ("read" for "Spread", "hg %" for "Chg %" under a real X server).

Truth: the style's own drawing of each label (tests/ui/header_truth.py), so the check
holds with whatever fonts the platform has: run it under Xvfb with
``QT_QPA_PLATFORM=xcb`` as well as offscreen. Prices: the cell text against what Qt
would draw in the column's width (the font's own metrics).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QApplication, QStyle
from pytestqt.qtbot import QtBot

from app.session import DesktopSession
from tests.conftest import wait_until
from tests.ui.header_truth import label_drawn_whole
from ui.panels.market_watch import MarketWatch
from ui.panels.quotes import ASK, BID, COLUMNS, SPREAD, SYMBOL, TIME
from ui.tasks import TaskRunner
from ui.window import MainWindow

pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support ")

#: The optional columns, most wanted first (MT5's own default board: Symbol, Bid, Ask).
WANTED = ("Bid", "Ask", "Spread", "Chg %", "High", "Low", "Ticks/s")


def cut_headers(panel: MarketWatch) -> list[str]:
    header = panel.table.horizontalHeader()
    return [
        f"{COLUMNS[c]!r} in {header.sectionSize(c)} px"
        for c in range(header.count())
        if not header.isSectionHidden(c) and not label_drawn_whole(header, c)
    ]


def shown(panel: MarketWatch) -> list[str]:
    header = panel.table.horizontalHeader()
    return [COLUMNS[c] for c in range(header.count()) if not header.isSectionHidden(c)]


def cut_prices(panel: MarketWatch) -> list[str]:
    """Bid/ask cells Qt would elide in their column's width."""
    table = panel.table
    margin = QApplication.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin) + 1
    out = []
    for row in range(panel.model.rowCount()):
        for col in (BID, ASK):
            cell = panel.model.index(row, col)
            text = str(cell.data())
            metrics = QFontMetrics(cell.data(Qt.ItemDataRole.FontRole))
            width = table.columnWidth(col) - 2 * margin
            if metrics.elidedText(text, Qt.TextElideMode.ElideRight, width) != text:
                out.append(f"{text} in {table.columnWidth(col)} px")
    return out


async def _quoted(panel: MarketWatch) -> None:
    def every_symbol() -> bool:
        panel.refresh()
        return all(q.time_msc > 0 for q in panel.model.quotes())

    await wait_until(every_symbol, 60, "a quote for every symbol")  # the Time column is fitted


async def test_no_header_is_cut_at_the_default_size(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    window = MainWindow(session, layout_file=tmp_path / "layout.ini")
    qtbot.addWidget(window)
    window.show()
    panel = window.panels["marketWatch"]
    assert isinstance(panel, MarketWatch)
    await _quoted(panel)
    assert shown(panel) == list(COLUMNS)  # the default size has room for every column
    assert cut_headers(panel) == []
    assert cut_prices(panel) == []
    header = panel.table.horizontalHeader()
    for col in range(header.count()):  # a short label says the rest in its tooltip
        assert panel.model.headerData(col, header.orientation(), 3)  # Qt.ToolTipRole

    # Sorting by a click on "Spread" draws an arrow in its header: still whole.
    x = header.sectionViewportPosition(SPREAD) + header.sectionSize(SPREAD) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    await wait_until(lambda: header.sortIndicatorSection() == SPREAD, 5, "sorted by Spread")
    assert cut_headers(panel) == []


@pytest.mark.parametrize("width", [300, 340, 420, 520, 640, 900])
async def test_narrow_docks_leave_columns_out_whole(
    session: DesktopSession, qtbot: QtBot, width: int
) -> None:
    panel = MarketWatch(session, TaskRunner())
    qtbot.addWidget(panel)
    panel.resize(width, 240)
    panel.show()
    await _quoted(panel)
    assert cut_headers(panel) == [], f"at {width} px"
    assert cut_prices(panel) == [], f"at {width} px"
    names = shown(panel)
    assert {"Symbol", "Bid", "Ask", "Time"} <= set(names)
    header = panel.table.horizontalHeader()
    tip = str(panel.model.headerData(SYMBOL, Qt.Orientation.Horizontal, 3))
    left_out = [c for c in COLUMNS if c not in names]
    if left_out:  # said where the user looks for it, and the least wanted went first
        assert f"Left out for lack of room: {', '.join(left_out)}" in tip
        assert set(left_out) == set(WANTED[-len(left_out) :])
    else:
        assert "Left out" not in tip
    # The Time column is on screen, not scrolled off to the right.
    viewport = panel.table.viewport().width()
    assert header.sectionViewportPosition(TIME) + header.sectionSize(TIME) <= viewport + 1
    if width >= 520:
        assert {"Spread", "Chg %"} <= set(names)
    if width >= 900:
        assert names == list(COLUMNS)
    # Wide again: every column back.
    panel.resize(1000, 240)
    await wait_until(lambda: shown(panel) == list(COLUMNS), 5, "every column back")
    assert "Left out" not in str(panel.model.headerData(SYMBOL, Qt.Orientation.Horizontal, 3))
