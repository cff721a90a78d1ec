"""Tick Chart against a real capture: lines, symbol choice, follow/pause, M1 candles."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.collector import M1
from app.session import DesktopSession
from tests.conftest import wait_until
from ui.panels.tick_chart import DEFAULT_WINDOW_MIN, TickChart
from ui.tasks import TaskRunner
from ui.theme import DARK, Theme, apply_theme

pytestmark = [
    pytest.mark.slow,
    # Showing a top-level widget asks the offscreen platform for size hints it cannot
    # propagate; on a real screen this is a no-op, not a fault.
    pytest.mark.qt_log_ignore(r"^This plugin does not support "),
]

SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD"]
SHOTS = Path("/tmp/ui-shots")


@pytest.fixture
def dark(qapp: QApplication) -> Iterator[Theme]:
    """The window's dark theme for the screenshots; the application is left as found."""
    palette, style = qapp.palette(), qapp.style().name()
    apply_theme(qapp, DARK)
    yield DARK
    qapp.setPalette(palette)
    qapp.setStyle(style)
    pg.setConfigOptions(background="k", foreground="d")


def _save_shot(chart: TickChart, tmp_path: Path, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    image = chart.grab()
    assert image.save(str(tmp_path / f"{name}.png"))
    assert image.save(str(SHOTS / f"{name}.png"))


def _curve_x(chart: TickChart) -> np.ndarray:
    x, _ = chart.bid_curve.getData()
    return np.empty(0) if x is None else np.asarray(x)


def _drag(qtbot: QtBot, chart: TickChart, dx: int) -> None:
    """Pan the plot with the mouse, as a person would."""
    viewport = chart.plot.viewport()
    start = viewport.rect().center()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    for step in range(1, 6):
        qtbot.mouseMove(viewport, start + QPoint(dx * step // 5, 0))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=start + QPoint(dx, 0))


async def test_tick_chart_lines_follow_and_bars(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path, dark: Theme
) -> None:
    chart = TickChart(session, TaskRunner())
    qtbot.addWidget(chart)
    chart.resize(900, 420)
    chart.show()
    combo = chart.symbol_combo
    assert [combo.itemText(i) for i in range(combo.count())] == SYMBOLS
    assert chart.symbol == "EURUSD"
    assert chart.window_s == DEFAULT_WINDOW_MIN * 60
    assert chart.following

    def enough_ticks() -> bool:
        chart.refresh()
        return len(_curve_x(chart)) >= 20

    await wait_until(enough_ticks, 60, "20 EURUSD ticks on the chart")
    assert chart.frames > 0
    x = _curve_x(chart)
    _, bid = chart.bid_curve.getData()
    ax, ask = chart.ask_curve.getData()
    now = time.time()
    assert x.dtype == np.float64
    assert np.all(np.diff(x) >= 0)
    assert x[0] >= now - chart.window_s - 2
    assert x[-1] <= now + 1
    assert np.array_equal(ax, x)
    assert np.all(ask >= bid)
    assert 0.9 < float(np.median(bid)) < 1.3  # EURUSD, not another symbol

    # No new tick since the last render: nothing is redrawn.
    frames = chart.frames
    chart.refresh()
    chart.refresh()
    assert chart.frames == frames

    # Following: the x range ends at "now" (plus a small margin).
    left, right = chart.viewbox.viewRange()[0]
    assert abs(right - left - chart.window_s * 1.02) < 1
    assert now - 2 < right < now + chart.window_s * 0.02 + 2

    # Another symbol through the combo (keyboard, as a person would): other prices.
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    assert chart.symbol == "GBPUSD"

    def gbp_drawn() -> bool:
        chart.refresh()
        _, y = chart.bid_curve.getData()
        return y is not None and len(y) > 0 and float(np.median(y)) > 1.2

    await wait_until(gbp_drawn, 60, "GBPUSD ticks on the chart")

    # A manual pan pauses following: the view stays where the user put it.
    _drag(qtbot, chart, 150)
    assert not chart.following
    assert not chart.follow_button.isChecked()
    panned = chart.viewbox.viewRange()[0]
    assert panned[1] < right - 1  # dragged to the right = looking at the past
    frames = chart.frames
    await wait_until(lambda: (chart.refresh(), chart.frames > frames)[1], 30, "new ticks")
    assert chart.viewbox.viewRange()[0] == pytest.approx(panned)
    assert "paused" in chart.status.text()

    # Follow (the button) jumps back to now and follows again.
    qtbot.mouseClick(chart.follow_button, Qt.MouseButton.LeftButton)
    assert chart.following
    assert chart.follow_button.isChecked()
    assert chart.viewbox.viewRange()[0][1] > time.time() - 2

    # Pause again and resume with F, the button's shortcut.
    _drag(qtbot, chart, -120)
    assert not chart.following
    chart.plot.setFocus()
    qtbot.keyClick(chart.plot, Qt.Key.Key_F)
    assert chart.following
    assert chart.follow_action.shortcut().toString() == "F"

    # A shorter window through its combo: the data and the x range shrink with it.
    chart.window_combo.setFocus()
    qtbot.keyClick(chart.window_combo, Qt.Key.Key_Up)
    assert chart.window_s == 60
    chart.refresh()
    left, right = chart.viewbox.viewRange()[0]
    assert right - left == pytest.approx(60 * 1.02, abs=0.5)
    assert _curve_x(chart)[0] >= time.time() - 62
    _save_shot(chart, tmp_path, "tick_chart")

    # M1 bars: history from the terminal joined with the collector's live bars; the
    # live part's OHLC is exactly the collector's.
    qtbot.mouseClick(chart.bars_button, Qt.MouseButton.LeftButton)
    assert chart.mode == "bars"
    assert chart.candles.isVisible()
    assert not chart.bid_curve.isVisible()

    def history_drawn() -> bool:
        chart.refresh()
        return len(chart.candles) > 60

    await wait_until(history_drawn, 60, "M1 history on the chart")
    assert session.runtime is not None
    bars = session.runtime.collector.bars("GBPUSD", M1)
    drawn = chart.candles.bars
    assert np.all(np.diff(drawn["time_msc"]) > 0)
    after_seam = bars[bars["time_msc"] > drawn["time_msc"][-1] - 60_000 * 2]
    tail = drawn[-len(after_seam) + 1 :] if len(after_seam) > 1 else drawn[:0]
    for field in ("time_msc", "open", "high", "low", "close"):
        assert np.array_equal(tail[field], after_seam[1:][field]), field
    assert chart.candles.boundingRect().height() > 0
    _save_shot(chart, tmp_path, "tick_chart_bars")

    # The choices survive a restart of the window through the saved layout.
    again = TickChart(session, TaskRunner())
    qtbot.addWidget(again)
    again.restore_view_state(chart.view_state())
    assert (again.symbol, again.window_s, again.mode) == ("GBPUSD", 60, "bars")

    # Back to ticks: the lines come back.
    qtbot.mouseClick(chart.ticks_button, Qt.MouseButton.LeftButton)
    chart.refresh()
    assert chart.mode == "ticks"
    assert chart.bid_curve.isVisible()
    assert len(_curve_x(chart)) > 0
