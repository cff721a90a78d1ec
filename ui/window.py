"""The main window: dock panels around nothing, one render timer, menus and a status bar.

Every panel is a :class:`QDockWidget` (movable, closable, re-openable from View). The
window holds no state of its own beyond the layout: when the render timer fires
(:data:`RENDER_INTERVAL_MS`) it asks the session for one immutable snapshot and hands it
to every visible panel and the status bar, so the cost of drawing is bounded by the
display rate however fast ticks arrive, and one frame shows one instant.

Three layers, one job each: :mod:`ui.window_layout` (docks, saved layout, theme),
:mod:`ui.window_actions` (menus, shortcuts, the dialogs they open) and this module (the
frame, desktop notifications, quitting); the status bar's texts are
:mod:`ui.status_bar`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMainWindow, QSystemTrayIcon, QWidget

from app import __version__
from app.session import DesktopSession, SessionSnapshot
from app.session_view import BackfillProgress
from ui.panels.base import Panel
from ui.status_bar import StatusBar
from ui.tasks import TaskRunner
from ui.theme import THEMES, Theme
from ui.trading import TradingControls
from ui.window_actions import WindowActions
from ui.window_layout import LAYOUT_VERSION, default_panels

log = logging.getLogger(__name__)

#: Views are redrawn this often: a 30 ms timer (33 Hz), so that a frame missed now and
#: then under load still leaves the charts at 30 frames per second.
RENDER_INTERVAL_MS = 30


class MainWindow(WindowActions):
    #: Emitted when the user asked to quit and the layout is saved; the application then
    #: stops capture (which may take a moment: ticks still in flight are delivered).
    closing = Signal()

    def __init__(
        self,
        session: DesktopSession,
        *,
        layout_file: Path,
        panels: Sequence[type[Panel]] | None = None,
        theme: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.setObjectName("MainWindow")
        self.setWindowTitle(f"Trading Client {__version__} — MetaTrader 5 tick capture")
        self.setDockNestingEnabled(True)
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks
            | QMainWindow.DockOption.AllowNestedDocks
            | QMainWindow.DockOption.AllowTabbedDocks
        )
        self.tasks = TaskRunner(self)
        self.tasks.failed.connect(self._task_failed)
        self._layout = QSettings(str(layout_file), QSettings.Format.IniFormat)
        self.panels = {}
        self.docks = {}
        self._build_docks(panels if panels is not None else default_panels())
        alerts = self.panels.get("alerts")
        if alerts is not None and hasattr(alerts, "notify"):
            alerts.notify.connect(self._notify)
        self._build_menus()
        self.status = StatusBar(self)
        self.trading = TradingControls(self, session, self.tasks, self.status)
        self._build_tray()
        saved_theme = self._layout.value("theme", "dark")
        self.theme: Theme = THEMES.get(theme or str(saved_theme), THEMES["dark"])
        self._apply_theme(self.theme)
        self.resize(1400, 860)
        self._default_state = self.saveState(LAYOUT_VERSION)
        self._sized = self._restore_layout()
        #: Frames drawn and the time the last one took (read by ``bench gui``).
        self.frames = 0
        self.last_frame_s = 0.0
        #: The snapshot the last frame drew (None before the first frame).
        self.last_snapshot: SessionSnapshot | None = None
        self._render_timer = QTimer(self)
        self._render_timer.setObjectName("renderTimer")
        self._render_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._render_timer.timeout.connect(self.render)
        self._render_timer.start(RENDER_INTERVAL_MS)
        self._closed = False
        self._quit_confirmed = False

    # ------------------------------------------------------------------ rendering
    def render(self) -> None:  # type: ignore[override]  # QWidget.render is unrelated
        """One frame: one snapshot of the session, drawn by every visible panel, then
        the status bar."""
        started = time.perf_counter()
        snap = self.session.snapshot()
        self.last_snapshot = snap
        for name, panel in self.panels.items():
            visible = not self.docks[name].isHidden() and panel.isVisible()
            if visible or panel.refresh_when_hidden:
                try:
                    panel.render(snap)
                except Exception:
                    # One broken panel must not take the window (or the timer) down.
                    log.exception("the %s panel failed to refresh", panel.title)
        running = self.status.show_snapshot(snap, self.theme, self.selected_symbol())
        self.cancel_backfill_action.setEnabled(running)
        self.trading.refresh(self.theme, self.selected_symbol())
        self.frames += 1
        self.last_frame_s = time.perf_counter() - started

    def refresh_backfill(self, jobs: Sequence[BackfillProgress]) -> None:
        """The backfill progress bar and Capture ▸ Cancel history backfill for ``jobs``."""
        self.cancel_backfill_action.setEnabled(self.status.show_backfill(jobs))

    def _notify(self, severity: str, title: str, message: str) -> None:
        """A newly raised alert: in the status bar always; as a desktop notification
        too when the user turned them on and the desktop has a system tray."""
        self.statusBar().showMessage(f"{severity.upper()}: {message}", 10_000)
        if self.tray is not None and self.notify_action.isChecked():
            icon = {
                "critical": QSystemTrayIcon.MessageIcon.Critical,
                "warning": QSystemTrayIcon.MessageIcon.Warning,
            }.get(severity.lower(), QSystemTrayIcon.MessageIcon.Information)
            self.tray.showMessage(title, message, icon, 10_000)

    def _bring_back(self, _reason: QSystemTrayIcon.ActivationReason) -> None:
        self.showNormal()
        self.activateWindow()

    def _build_tray(self) -> None:
        """A tray icon (click: bring the window back) where the desktop has a tray."""
        self.tray: QSystemTrayIcon | None = None
        if not QSystemTrayIcon.isSystemTrayAvailable():
            self.notify_action.setEnabled(False)
            self.notify_action.setToolTip("This desktop has no system tray")
            return
        self.tray = QSystemTrayIcon(self.windowIcon(), self)
        self.tray.setToolTip(self.windowTitle())
        self.tray.activated.connect(self._bring_back)
        self.tray.show()

    def _task_failed(self, what: str, message: str) -> None:
        self.statusBar().showMessage(f"{what} failed: {message}", 15_000)

    # ------------------------------------------------------------------ closing
    def quit_now(self) -> None:
        """Close without asking (Quit clicked; Ctrl-C in a terminal; --quit-after)."""
        self._quit_confirmed = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        ticks, kept = self.session.undelivered_on_quit()
        if not self._closed and ticks and not self._quit_confirmed:
            event.ignore()  # asked first; Quit closes again (ui/dialogs/quit_confirm.py)
            from ui.dialogs.quit_confirm import ask_quit  # noqa: PLC0415

            ask_quit(self, ticks, kept, self.quit_now)
            return
        if not self._closed:
            self._closed = True
            self._render_timer.stop()
            if self.tray is not None:
                self.tray.hide()
            self.save_layout()
            self.closing.emit()
        event.accept()


__all__ = ["LAYOUT_VERSION", "RENDER_INTERVAL_MS", "MainWindow", "default_panels"]
