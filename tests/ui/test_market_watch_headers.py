"""Market Watch's column headers are whole at the window's default size.

Truth: the header font's own metrics — each label's width plus the style's header
margins (and the sort arrow on the sorted column) against the section Qt gives it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QApplication, QStyle
from pytestqt.qtbot import QtBot

from app.session import DesktopSession
from tests.conftest import wait_until
from ui.panels.market_watch import MarketWatch
from ui.window import MainWindow

pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support ")


def clipped_headers(panel: MarketWatch) -> list[str]:
    header = panel.table.horizontalHeader()
    model = header.model()
    metrics = QFontMetrics(header.font())
    style = QApplication.style()
    margin = style.pixelMetric(QStyle.PixelMetric.PM_HeaderMargin)
    arrow = style.pixelMetric(QStyle.PixelMetric.PM_HeaderMarkSize)
    out = []
    for col in range(header.count()):
        if header.isSectionHidden(col):
            continue
        label = str(model.headerData(col, header.orientation()))
        need = metrics.horizontalAdvance(label) + 2 * margin
        if header.isSortIndicatorShown() and header.sortIndicatorSection() == col:
            need += arrow + margin
        if need > header.sectionSize(col):
            out.append(f"{label!r}: {need} px wanted, {header.sectionSize(col)} px given")
    return out


async def test_no_header_is_clipped_at_the_default_size(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    window = MainWindow(session, layout_file=tmp_path / "layout.ini")
    qtbot.addWidget(window)
    window.show()
    panel = window.panels["marketWatch"]
    assert isinstance(panel, MarketWatch)

    def quoted() -> bool:
        panel.refresh()
        return all(q.time_msc > 0 for q in panel.model.quotes())

    await wait_until(quoted, 60, "a quote for every symbol")  # the Time column is fitted
    assert clipped_headers(panel) == []
    header = panel.table.horizontalHeader()
    for col in range(header.count()):  # a short label says the rest in its tooltip
        assert panel.model.headerData(col, header.orientation(), 3)  # Qt.ToolTipRole
