"""The main window as a user meets it: docks, menus, shortcuts, status bar, layout, theme,
and the ``gui`` command itself in a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QDockWidget, QMessageBox, QTabBar
from pytestqt.qtbot import QtBot

from app.config import ClientConfig
from app.config.store import ConfigStore
from app.link.link import LinkState
from app.session import DesktopSession
from tests.conftest import wait_until
from tests.ui.conftest import ui_config_document
from ui.panels.market_watch import MarketWatch
from ui.panels.throughput import ThroughputPanel
from ui.panels.tick_chart import TickChart
from ui.window import MainWindow

SHOTS = Path("/tmp/ui-shots")
PANELS = (
    "marketWatch",
    "tickChart",
    "throughput",
    "pool",
    "alerts",
    "journal",
    "trade",
    "history",
    "signals",
)


def _open(session: DesktopSession, qtbot: QtBot, layout: Path) -> MainWindow:
    window = MainWindow(session, layout_file=layout)
    qtbot.addWidget(window)
    window.show()
    return window


def _shot(window: MainWindow, tmp_path: Path, name: str) -> None:
    for folder in (tmp_path, SHOTS):
        folder.mkdir(parents=True, exist_ok=True)
        assert window.grab().save(str(folder / f"{name}.png"))


async def test_window_runs_the_embedded_default(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    window = _open(session, qtbot, tmp_path / "layout.ini")
    assert set(window.docks) == set(PANELS)
    for name, dock in window.docks.items():
        assert isinstance(dock, QDockWidget)
        assert dock.objectName() == name
        assert window.show_actions[name].shortcut().toString(), f"{name} has no shortcut"

    await wait_until(lambda: window.status.text("session") == "capturing", 30, "capturing")
    await wait_until(lambda: "5/5 streaming" in window.status.text("pool"), 60, "5/5 streaming")
    await wait_until(lambda: "link up" in window.status.text("link"), 30, "the bridge link")

    def tps_shown() -> bool:
        return window.status.text("tps").replace(",", "").split()[0].isdigit()

    await wait_until(tps_shown, 30, "ticks/s in the status bar")
    frames = window.frames
    await wait_until(lambda: window.frames >= frames + 10, 10, "the render timer")
    # What a trader sees a few seconds in: every symbol's day figures (seeded from the
    # terminal's history) and the last hour of M1 bars, not just seconds of ticks.
    watch, chart = window.panels["marketWatch"], window.panels["tickChart"]
    assert isinstance(watch, MarketWatch)
    assert isinstance(chart, TickChart)

    def day_known() -> bool:
        watch.refresh()
        return all(q.day is not None and q.day.known for q in watch.model.quotes())

    await wait_until(day_known, 30, "every symbol's day figures")
    # A new user's chart opens on M1 (as MT5's does): the history is on screen unasked.
    assert chart.timeframe == "M1"
    await wait_until(lambda: len(chart.candles) >= 60, 30, "an hour of M1 bars")
    drawn = window.frames
    await wait_until(lambda: window.frames >= drawn + 3, 10, "a frame with them")
    _shot(window, tmp_path, "window-dark")


async def test_view_menu_shortcuts_hide_and_show_panels(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    window = _open(session, qtbot, tmp_path / "layout.ini")
    window.activateWindow()  # shortcuts reach the active window only
    await wait_until(window.isActiveWindow, 10, "the window to become active")
    dock = window.docks["throughput"]
    assert not dock.isHidden()
    dock.close()  # the dock's own close button
    assert dock.isHidden()
    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.AltModifier)
    await wait_until(lambda: not dock.isHidden(), 5, "Alt+3 to show the dock again")

    # Reset layout brings back every panel the user closed.
    for d in window.docks.values():
        d.close()
    assert all(d.isHidden() for d in window.docks.values())
    qtbot.keyClick(
        window,
        Qt.Key.Key_L,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    await wait_until(
        lambda: not any(d.isHidden() for d in window.docks.values()), 5, "reset layout"
    )

    # A newly raised alert reaches the status bar; desktop notifications need a tray,
    # which the offscreen platform has not: the option says so instead of failing.
    window._notify("critical", "Alert", "link to the data bridge down for 3 s")
    assert window.statusBar().currentMessage() == "CRITICAL: link to the data bridge down for 3 s"
    assert window.tray is None
    assert not window.notify_action.isEnabled()
    assert "no system tray" in window.notify_action.toolTip()

    # F1 lists the shortcuts, every panel's among them.
    lines = dict(window.shortcut_lines())
    for name in PANELS:
        assert window.panels[name].title in lines
    assert lines["Settings…"] == "Ctrl+,"
    window.show_shortcuts()
    box = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox))
    assert "Alt+1" in box.text()
    box.close()


def _in_front(window: MainWindow, name: str) -> bool:
    """The dock is shown and, when tabbed, its tab is the current one."""
    dock = window.docks[name]
    if dock.isHidden():
        return False
    title = dock.windowTitle()
    for bar in window.findChildren(QTabBar):
        titles = [bar.tabText(i) for i in range(bar.count())]
        if bar.isVisible() and title in titles:
            return bar.tabText(bar.currentIndex()) == title
    return not window.tabifiedDockWidgets(dock)  # not tabbed: shown is in front


async def test_alt_4_5_6_show_the_tabbed_panel_and_bring_it_to_the_front(
    ui_store: ConfigStore, qtbot: QtBot, tmp_path: Path
) -> None:
    # No capture needed: the docks and shortcuts are the window's own.
    window = _open(DesktopSession(ui_store), qtbot, tmp_path / "layout.ini")
    window.activateWindow()  # shortcuts reach the active window only
    await wait_until(window.isActiveWindow, 10, "the window to become active")
    assert "shows the Alerts panel" in window.status.labels["alerts"].toolTip()
    # The first bottom tab is in front once the layout has settled.
    await wait_until(lambda: _in_front(window, "throughput"), 5, "the first tab in front")
    for key, name in ((Qt.Key.Key_5, "alerts"), (Qt.Key.Key_4, "pool"), (Qt.Key.Key_6, "journal")):
        assert not _in_front(window, name)
        qtbot.keyClick(window, key, Qt.KeyboardModifier.AltModifier)
        await wait_until(partial(_in_front, window, name), 5, f"{name} in front")
        # Pressed again: it stays (shown and raised, not toggled away).
        qtbot.keyClick(window, key, Qt.KeyboardModifier.AltModifier)
        QApplication.processEvents()
        assert _in_front(window, name)
    # Closed with its own button, the key brings it back in front too.
    window.docks["alerts"].close()
    qtbot.keyClick(window, Qt.Key.Key_5, Qt.KeyboardModifier.AltModifier)
    await wait_until(lambda: _in_front(window, "alerts"), 5, "alerts back in front")


async def test_layout_and_theme_survive_a_restart(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    layout = tmp_path / "layout.ini"
    first = _open(session, qtbot, layout)
    first.activateWindow()
    await wait_until(first.isActiveWindow, 10, "the window to become active")
    first.docks["journal"].close()
    chart = first.panels["tickChart"]
    chart.restore_view_state({"symbol": "XAUUSD", "window_min": 15, "mode": "bars"})
    first.panels["marketWatch"].restore_view_state({"hidden": ["BTCUSD"]})
    first.removeDockWidget(first.docks["pool"])
    first.addDockWidget(Qt.DockWidgetArea.TopDockWidgetArea, first.docks["pool"])
    first.docks["pool"].show()
    dark_window = QApplication.palette().color(QPalette.ColorRole.Window).name()
    qtbot.keyClick(
        first, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    await wait_until(lambda: first.theme.name == "light", 5, "the light theme")
    assert QApplication.palette().color(QPalette.ColorRole.Window).name() != dark_window
    drawn = first.frames  # the palette reaches the widgets through posted events
    await wait_until(lambda: first.frames >= drawn + 2, 10, "frames in the light theme")
    _shot(first, tmp_path, "window-light")
    first.close()
    assert layout.exists()
    assert not first.findChild(QTimer, "renderTimer").isActive(), "render timer left running"

    second = _open(session, qtbot, layout)
    assert second.theme.name == "light"
    assert second.panels["tickChart"].view_state() == {
        "symbol": "XAUUSD",
        "window_min": 15,
        "mode": "bars",
        "view": "M1",  # bars were shown on M1 (the chart's timeframes: "Ticks", "M1" … "D1")
    }
    assert second.panels["marketWatch"].view_state()["hidden"] == ["BTCUSD"]
    assert second.docks["journal"].isHidden()
    assert second.dockWidgetArea(second.docks["pool"]) == Qt.DockWidgetArea.TopDockWidgetArea
    second.reset_layout()
    assert not second.docks["journal"].isHidden()
    assert second.dockWidgetArea(second.docks["pool"]) != Qt.DockWidgetArea.TopDockWidgetArea


async def test_ctrl_r_restarts_capture_and_keeps_the_throughput_history(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    window = _open(session, qtbot, tmp_path / "layout.ini")
    window.show_panel("throughput")
    panel = window.panels["throughput"]
    assert isinstance(panel, ThroughputPanel)
    await wait_until(lambda: "5/5 streaming" in window.status.text("pool"), 60, "streaming")

    def total_x() -> np.ndarray:
        x = panel.total_curve.xData
        return np.empty(0) if x is None else x

    await wait_until(lambda: total_x().size >= 3, 30, "three seconds of throughput history")
    before_x = total_x().copy()
    before = session.runtime
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    await wait_until(
        lambda: session.runtime is not None and session.runtime is not before, 60, "a new runtime"
    )
    await wait_until(lambda: "5/5 streaming" in window.status.text("pool"), 60, "streaming again")
    # The new run's monitor ticks into the same history: the points from before the
    # restart are still drawn, and new ones follow them.
    await wait_until(
        lambda: total_x().size > 0 and total_x()[-1] > before_x[-1] + 1, 30, "new points"
    )
    assert np.isin(before_x, total_x()).all(), "the history from before Ctrl+R is kept"
    # One legend entry per worker of the pool: nothing stale (no "worker 0").
    ids = sorted(w.worker_id for w in session.snapshot().workers)
    assert panel.legend_labels() == ["total", *(f"worker {i}" for i in ids)]


def _gui(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trading_client", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_gui_command_saves_a_screenshot_and_quits(tmp_path: Path) -> None:
    config = tmp_path / "client-config.json"
    ConfigStore(config).save(ClientConfig.model_validate(ui_config_document(tmp_path)))
    shot = tmp_path / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    started = time.monotonic()
    done = _gui(
        ["gui", "--config", str(config), "--screenshot", str(shot), "--quit-after", "4"], env
    )
    assert done.returncode == 0, done.stderr
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert time.monotonic() - started < 100
    assert (tmp_path / "window-layout.ini").exists()


def test_no_display_is_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = "xcb"
    done = _gui(["gui", "--config", str(tmp_path / "c.json")], env, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "trading-client run" in lines[0]
    assert "QT_QPA_PLATFORM=offscreen" in lines[0]
    assert "Traceback" not in done.stderr


def test_the_core_entry_point_has_no_window(tmp_path: Path) -> None:
    """``python -m app`` is the core alone: it never loads Qt, and says where the window is."""
    done = subprocess.run(
        [sys.executable, "-m", "app", "gui", "--config", str(tmp_path / "c.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "trading-client" in done.stderr
    assert "Traceback" not in done.stderr


async def test_the_link_label_names_the_cause_and_the_tooltip_has_it_whole(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    window = _open(session, qtbot, tmp_path / "layout.ini")
    await wait_until(lambda: "link up" in window.status.text("link"), 30, "the bridge link")
    base = LinkState(False, "ws://x/ws", "s", 3, 1_234, 0, 0, 0, 0, None, 0.5, True, "")
    label = window.status.labels["link"]
    cases = [
        (replace(base, last_error="ConnectionRefusedError: nobody"), "link DOWN", "nobody"),
        (replace(base, halted="the bridge refused message 7 twice"), "link HALTED", "message 7"),
        (replace(base, spool_disk_error="spool folder /x: 12 bytes free"), "disk full", "/x"),
        (replace(base, connected=True), "capture held", "Data bridge connection"),
    ]
    for state, text, tip in cases:
        window.status.show_link(state, None, window.theme)
        assert text in label.text()
        assert "1,234" in label.text()
        assert tip in label.toolTip()
