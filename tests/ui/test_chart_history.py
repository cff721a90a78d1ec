"""The chart as a trader uses it: history at start, timeframes, scrolling back, the
crosshair's data window and Ctrl+R, in the real window on the embedded default.

Truth: the bars the chart holds are checked against the timeframe's own grid (server
boundaries), against what they were before an action (count grows, oldest moves back),
and the data window's text against the drawn bar under the mouse.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from pytestqt.qtbot import QtBot

from app.session import DesktopSession
from tests.conftest import wait_until
from tests.ui.test_tick_chart import _drag
from ui.panels.tick_chart import TickChart
from ui.window import MainWindow

pytestmark = [
    pytest.mark.qt_log_ignore(r"^This plugin does not support "),
]
SHOTS = Path("/tmp/ui-shots")


def _shot(chart: TickChart, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert chart.grab().save(str(SHOTS / f"{name}.png"))


async def test_chart_history_timeframes_scroll_crosshair_and_restart(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    window = MainWindow(session, layout_file=tmp_path / "layout.ini")
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    chart = window.panels["tickChart"]
    assert isinstance(chart, TickChart)
    started = time.time()

    # History right after start: M1 with more than the last hour, not just live bars.
    qtbot.mouseClick(chart.view_buttons["M1"], Qt.MouseButton.LeftButton)
    assert chart.timeframe == "M1"
    await wait_until(lambda: len(chart.candles) >= 100, 30, "M1 history on the chart")
    bars = chart.candles.bars
    assert bars["time_msc"][0] / 1000 < started - 3600
    assert np.all(np.diff(bars["time_msc"]) % 60_000 == 0)
    assert np.all(np.diff(bars["time_msc"]) > 0)
    left, right = chart.viewbox.viewRange()[0]
    assert right - left >= 3600  # the last hour is in view
    assert right > time.time() - 120
    assert chart.bars_view.quote.bid.isVisible()  # bid and ask lines on bar charts
    assert chart.bars_view.quote.ask.value() > chart.bars_view.quote.bid.value()

    # Another timeframe by a click: H1 bars on the hour.
    qtbot.mouseClick(chart.view_buttons["H1"], Qt.MouseButton.LeftButton)
    assert chart.timeframe == "H1"
    await wait_until(
        lambda: chart.bars_view.key[1] == "H1" and len(chart.candles) >= 100, 30, "H1 bars"
    )
    h1 = chart.candles.bars
    assert np.all(h1["time_msc"] % 3_600_000 == 0)
    assert h1["time_msc"][0] / 1000 < started - 100 * 3600
    # ... and back to M5 with its key (MT5 has none fixed; the tooltip says which).
    assert "key 2" in chart.view_buttons["M5"].toolTip()
    chart.plot.setFocus()
    qtbot.keyClick(chart.plot, Qt.Key.Key_2)
    assert chart.timeframe == "M5"
    await wait_until(lambda: len(chart.candles) >= 100, 30, "M5 bars")

    # Scrolling left (dragging the past into view) loads older bars lazily.
    before = chart.candles.bars
    oldest = int(before["time_msc"][0])

    def went_back() -> bool:  # not the count: a new live M5 bar also grows it
        return int(chart.candles.bars["time_msc"][0]) < oldest

    for _ in range(40):  # a page of M5 is 600 bars; a drag moves ~60
        _drag(qtbot, chart, 600)
        if went_back():
            break
        await wait_until(lambda: not chart.bars_view.loading, 30, "an older page")
    assert not chart.following
    await wait_until(went_back, 30, "older M5 bars")
    grown = chart.candles.bars
    assert int(grown["time_msc"][0]) < oldest
    assert np.all(np.diff(grown["time_msc"]) > 0)
    assert chart.bars_view.requests >= 1

    # The crosshair's data window shows the bar under the mouse.
    qtbot.keyClick(chart.plot, Qt.Key.Key_F)  # back to the newest bars
    qtbot.keyClick(chart.plot, Qt.Key.Key_1)  # M1
    await wait_until(lambda: chart.bars_view.key[1] == "M1", 30, "M1 again")
    chart.refresh()
    viewport = chart.plot.viewport()
    spot = QPoint(int(viewport.width() * 0.6), viewport.height() // 2)
    qtbot.mouseMove(viewport, spot)
    await wait_until(lambda: chart.crosshair.at is not None, 10, "the crosshair")
    x = chart.crosshair.at[0] if chart.crosshair.at else 0.0
    drawn = chart.candles.bars
    i = int(np.searchsorted(drawn["time_msc"] / 1000, x, side="right")) - 1
    bar = drawn[i]
    text = chart.crosshair.window.text()
    assert chart.crosshair.window.isVisible()
    for name in ("open", "high", "low", "close"):
        assert f"{float(bar[name]):.5f}" in text, name
    assert f"{int(bar['tick_count'])}" in text
    assert "server time (ny-close" in text
    _shot(chart, "chart")

    # Ctrl+R restarts capture: the chart stays filled, then shows the new history.
    window.activateWindow()
    counts: list[int] = []
    old_runtime = session.runtime
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    await wait_until(
        lambda: (
            (counts.append(len(chart.candles)), session.runtime is not old_runtime)[1]
            and session.runtime is not None
        ),
        60,
        "the restart",
    )

    def refilled() -> bool:
        chart.refresh()
        counts.append(len(chart.candles))
        return not chart.bars_view.loading and len(chart.candles) >= 100

    await wait_until(refilled, 60, "history after the restart")
    assert min(counts) >= 100
