"""Throughput panel against a running session: the curves are the monitor's history."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.config.store import ConfigStore
from app.session import DesktopSession
from tests.conftest import wait_until
from ui.panels.throughput import TOTAL_SERIES, ThroughputPanel
from ui.tasks import TaskRunner

pytestmark = pytest.mark.slow

SHOTS = Path("/tmp/ui-shots")


def save_shot(widget: object, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    assert widget.grab().save(str(path))  # type: ignore[attr-defined]
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)
    return path


async def test_curves_follow_the_monitor_history(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    runtime = session.runtime
    assert runtime is not None
    assert runtime.monitor is not None
    monitor = runtime.monitor
    panel = ThroughputPanel(session, TaskRunner())
    qtbot.addWidget(panel)
    panel.resize(900, 420)
    panel.show()

    def total_points() -> int:
        panel.refresh()
        return len(panel.total_curve.xData) if panel.total_curve.xData is not None else 0

    def streamed() -> bool:  # workers start a few seconds in on a busy machine
        return total_points() >= 3 and float(np.nanmax(panel.total_curve.yData)) > 0

    await wait_until(streamed, 30, "three seconds of throughput history with ticks")

    # The drawn total is exactly the history's series over the span.
    times, values = monitor.history.series(TOTAL_SERIES)
    x, y = panel.total_curve.xData, panel.total_curve.yData
    assert x.dtype == np.float64
    np.testing.assert_array_equal(x, times[-x.size :])
    np.testing.assert_allclose(y, values[-y.size :])
    assert y.max() > 0, "the simulated workers stream ticks"

    # One curve per worker, each matching its own series and named in the legend.
    worker_ids = {w.worker_id for w in runtime.pool.health()}

    def every_worker_drawn() -> bool:
        panel.refresh()
        curves = panel.worker_curves
        return set(curves) == worker_ids and all(
            c.yData is not None and c.yData.size for c in curves.values()
        )

    await wait_until(every_worker_drawn, 15, "a curve for every worker")
    for worker_id, curve in panel.worker_curves.items():
        _, wv = monitor.history.series(f"tps.worker.{worker_id}")
        np.testing.assert_allclose(curve.yData, wv[-curve.yData.size :])
    legend_names = {label.text for _, label in panel.tps_legend.items}
    assert {f"worker {i}" for i in worker_ids} <= legend_names

    # Latency curves are in milliseconds; the header shows the latest second.
    _, p99 = monitor.history.series("latency.tick_to_collector.p99")
    lat = panel.latency_curves["latency.tick_to_collector.p99"]
    np.testing.assert_allclose(lat.yData, p99[-lat.yData.size :] * 1000)
    assert "ticks/s" in panel.header.text()
    assert "p99" in panel.header.text()
    assert "ms" in panel.header.text()

    # Between monitor ticks a refresh draws nothing (the curve keeps the same arrays).
    drawn, version = panel.total_curve.xData, panel._drawn_version
    panel.refresh()
    assert panel.total_curve.xData is drawn or panel._drawn_version != version

    # The span selector: choosing 1 min redraws at once with at most 61 points.
    panel.span_combo.setFocus()
    qtbot.keyClick(panel.span_combo, Qt.Key.Key_Home)  # the first item: 1 min
    assert panel.span_minutes == 1
    assert panel.total_curve.xData.size <= 61
    assert panel.total_curve.xData[-1] - panel.total_curve.xData[0] <= 60

    # Live mode keeps the x range on the latest minute; leaving it freezes the view.
    def x_end() -> float:
        return float(panel.tps_plot.getViewBox().viewRange()[0][1])

    assert x_end() == pytest.approx(panel.total_curve.xData[-1] + 1)
    qtbot.mouseClick(panel.live_button, Qt.MouseButton.LeftButton)
    assert not panel.live_button.isChecked()
    frozen = x_end()
    last = panel.total_curve.xData[-1]
    await wait_until(
        lambda: total_points() > 0 and panel.total_curve.xData[-1] > last, 10, "a new point"
    )
    assert x_end() == frozen
    panel.graphics.setFocus()
    qtbot.keyClick(panel.graphics, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert panel.live_button.isChecked(), "Ctrl+L returns to live mode"
    assert x_end() == pytest.approx(panel.total_curve.xData[-1] + 1)

    await wait_until(lambda: total_points() >= 8, 30, "a few more seconds of history")
    path = save_shot(panel, tmp_path, "throughput")
    assert path.stat().st_size > 0


def test_an_empty_chart_shows_the_span_up_to_now(ui_store: ConfigStore, qtbot: QtBot) -> None:
    """Capture stopped, nothing to draw: the time axis covers the span up to now (it was
    pyqtgraph's 0…1 s, labelled "00.050 … 00.950")."""
    panel = ThroughputPanel(DesktopSession(ui_store), TaskRunner())
    qtbot.addWidget(panel)
    panel.resize(900, 420)
    panel.show()
    panel.refresh()
    left, right = panel.tps_plot.viewRange()[0]
    now = time.time()
    assert now - 5 <= right <= now + 5
    assert right - left == pytest.approx(panel.span_minutes * 60, abs=1)
    assert panel.latency_plot.viewRange()[0] == pytest.approx([left, right])
    assert panel.header.text() == "Capture stopped"
