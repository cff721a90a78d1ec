"""File → Export on the running capture, and the backfill progress in the status bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.connector.backfill import BackfillProgress, BackfillState
from app.session import DesktopSession
from app.terminal.export_files import read_ticks
from tests.conftest import wait_until
from ui.dialogs.export import ExportDialog
from ui.window import MainWindow

SHOTS = Path("/tmp/ui-shots")


async def test_export_cached_ticks_and_bars(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    window = MainWindow(session, layout_file=tmp_path / "layout.ini")
    qtbot.addWidget(window)
    window.show()
    assert session.runtime is not None
    collector = session.runtime.collector
    await wait_until(lambda: collector.stats.ticks_total > 200, 60, "ticks to export")

    window.export_action.trigger()
    dialog = next(w for w in window.findChildren(ExportDialog))
    dialog.symbol.setCurrentText("EURUSD")
    target = tmp_path / "EURUSD_ticks.csv"
    dialog.path.clear()
    qtbot.keyClicks(dialog.path, str(target))
    cached_before = len(collector.cache.snapshot("EURUSD"))
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    await wait_until(lambda: "Wrote" in dialog.message.text(), 60, "the export to finish")
    ticks = read_ticks(target).data
    assert len(ticks) >= cached_before
    cached = collector.cache.snapshot("EURUSD")[: len(ticks)]
    # Written in the simulated server's time (ny-close: GMT+2 or GMT+3), like MT5's export.
    zone = session.runtime.zones.zone_or_utc("EURUSD")
    assert zone.key == "ny-close"
    assert np.array_equal(ticks["time_msc"], zone.to_server_ms(cached["time_msc"]))
    assert set(np.unique(ticks["time_msc"] - cached["time_msc"]).tolist()) <= {
        7_200_000,
        10_800_000,
    }
    assert np.allclose(ticks["bid"], cached["bid"])
    assert f"{len(ticks):,} rows" in dialog.message.text()

    dialog.kind.setCurrentText("M1")
    bars_file = tmp_path / "EURUSD_M1.csv"
    dialog.path.setText(str(bars_file))
    dialog.path.setModified(True)
    qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    await wait_until(lambda: str(bars_file) in dialog.message.text(), 60, "the bars export")
    header = bars_file.read_text().splitlines()[0]
    assert header.startswith("<DATE>\t<TIME>\t<OPEN>")
    for folder in (tmp_path, SHOTS):  # SHOTS: for docs/screenshots/export.png
        folder.mkdir(parents=True, exist_ok=True)
        assert dialog.grab().save(str(folder / "export.png"))
    dialog.close()


async def test_backfill_progress_in_the_status_bar(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    window = MainWindow(session, layout_file=tmp_path / "layout.ini")
    qtbot.addWidget(window)
    window.show()
    running = BackfillProgress("simulated", "EURUSD", 0, 1000, 250, 1234, BackfillState.RUNNING)
    done = BackfillProgress("simulated", "GBPUSD", 0, 1000, 1000, 99, BackfillState.DONE)
    window.refresh_backfill([running, done])
    bar = window.status.backfill
    assert not bar.isHidden()
    assert bar.value() == 625
    assert "1,333 ticks" in bar.format()
    assert window.cancel_backfill_action.isEnabled()
    window.refresh_backfill([done])
    assert bar.isHidden()
    assert not window.cancel_backfill_action.isEnabled()
    assert QApplication.instance() is not None


async def test_export_starts_on_the_symbol_selected_in_market_watch(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path
) -> None:
    """XAUUSD clicked in Market Watch (the chart follows): Ctrl+E offers XAUUSD, not the
    first symbol of the settings."""
    from tests.ui.test_market_watch import _click_row  # noqa: PLC0415

    window = MainWindow(session, layout_file=tmp_path / "layout.ini")
    qtbot.addWidget(window)
    window.show()
    watch = window.panels["marketWatch"]
    first = session.config.terminals[0].symbols[0]
    assert first != "XAUUSD"
    await wait_until(lambda: watch.model.row_of("XAUUSD") is not None, 30, "the XAUUSD row")
    _click_row(qtbot, watch, "XAUUSD")  # type: ignore[arg-type]
    await wait_until(lambda: window.selected_symbol() == "XAUUSD", 10, "the chart to follow")
    window.activateWindow()  # shortcuts reach the active window only
    await wait_until(window.isActiveWindow, 10, "the window to become active")
    qtbot.keyClick(watch.table, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    await wait_until(lambda: bool(window.findChildren(ExportDialog)), 10, "the export dialog")
    dialog = window.findChildren(ExportDialog)[0]
    assert dialog.symbol.currentText() == "XAUUSD"
    assert "XAUUSD" in dialog.path.text()  # the suggested file names it too
    dialog.close()
