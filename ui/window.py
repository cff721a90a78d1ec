"""The main window: dock panels around nothing, one render timer, menus and a status bar.

Every panel is a :class:`QDockWidget` (movable, closable, re-openable from View). The
window holds no state of its own beyond the layout: when the render timer fires
(:data:`RENDER_INTERVAL_MS`) it asks the session for one immutable snapshot and hands it
to every visible panel and the status bar, so the cost of drawing is bounded by the
display rate however fast ticks arrive, and one frame shows one instant.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QMainWindow,
    QMessageBox,
    QSystemTrayIcon,
    QWidget,
)

from app import __version__
from app.session import DesktopSession, SessionSnapshot, SessionState
from app.session_view import BackfillProgress, LinkState, WorkerState
from ui.panels.base import Panel
from ui.status_bar import StatusBar
from ui.tasks import TaskRunner
from ui.theme import THEMES, Theme, apply_theme
from ui.trading import TradingControls

log = logging.getLogger(__name__)

#: Views are redrawn this often: a 30 ms timer (33 Hz), so that a frame missed now and
#: then under load still leaves the charts at 30 frames per second.
RENDER_INTERVAL_MS = 30
#: Bumped when the set of docks changes, so an old saved layout is not forced on new docks.
LAYOUT_VERSION = 2


def default_panels() -> list[type[Panel]]:
    """The panels in their default order (imported here: each module is heavy-ish)."""
    from ui.panels.alerts import AlertsPanel  # noqa: PLC0415
    from ui.panels.history import HistoryPanel  # noqa: PLC0415
    from ui.panels.journal import JournalPanel  # noqa: PLC0415
    from ui.panels.market_watch import MarketWatch  # noqa: PLC0415
    from ui.panels.pool import PoolPanel  # noqa: PLC0415
    from ui.panels.signals import SignalsPanel  # noqa: PLC0415
    from ui.panels.throughput import ThroughputPanel  # noqa: PLC0415
    from ui.panels.tick_chart import TickChart  # noqa: PLC0415
    from ui.panels.trade import TradePanel  # noqa: PLC0415

    return [
        MarketWatch,
        TickChart,
        ThroughputPanel,
        PoolPanel,
        AlertsPanel,
        JournalPanel,
        TradePanel,
        HistoryPanel,
        SignalsPanel,
    ]


class MainWindow(QMainWindow):
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
        self.panels: dict[str, Panel] = {}
        self.docks: dict[str, QDockWidget] = {}
        self._build_docks(panels if panels is not None else default_panels())
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

    # ------------------------------------------------------------------ building
    def _build_docks(self, panel_types: Sequence[type[Panel]]) -> None:
        previous: dict[Qt.DockWidgetArea, QDockWidget] = {}
        for cls in panel_types:
            panel = cls(self.session, self.tasks)
            dock = QDockWidget(panel.dock_title(), self)
            dock.setObjectName(cls.object_name)
            dock.setWidget(panel)
            dock.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetClosable
                | QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            )
            panel.title_changed.connect(dock.setWindowTitle)
            area = cls.default_area
            if area in previous:
                self.tabifyDockWidget(previous[area], dock)
            else:
                self.addDockWidget(area, dock)
            previous.setdefault(area, dock)
            self.panels[cls.object_name] = panel
            self.docks[cls.object_name] = dock
        for first in previous.values():
            first.raise_()
        self._connect_panels()

    def _connect_panels(self) -> None:
        watch, chart = self.panels.get("marketWatch"), self.panels.get("tickChart")
        if watch is not None and chart is not None:
            watch.symbol_selected.connect(chart.set_symbol)  # type: ignore[attr-defined]
        alerts = self.panels.get("alerts")
        if alerts is not None and hasattr(alerts, "notify"):
            alerts.notify.connect(self._notify)

    def _action(
        self,
        text: str,
        slot: Callable[[], object],
        shortcut: str | QKeySequence.StandardKey | None = None,
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.settings_action = self._action(
            "&Settings…",
            self.open_settings,
            "Ctrl+,",
            "Edit the settings (synced with the gateway)",
        )
        self.credentials_action = self._action(
            "&Credentials…",
            self.open_credentials,
            "Ctrl+Shift+K",
            "Store broker and gateway passwords in the encrypted vault",
        )
        self.export_action = self._action(
            "&Export…",
            self.open_export,
            "Ctrl+E",
            "Write cached ticks or bars to an MT5 export file, CSV or Parquet",
        )
        file_menu.addAction(self.settings_action)
        file_menu.addAction(self.credentials_action)
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(
            self._action(
                # Not StandardKey.Quit: it is empty on Windows and on bare X (no desktop theme).
                "&Quit",
                self.close,
                "Ctrl+Q",
                "Stop capture and quit",
            )
        )

        capture = bar.addMenu("&Capture")
        self.restart_action = self._action(
            "&Restart capture",
            self.restart_capture,
            "Ctrl+R",
            "Stop every terminal connection and start again with the current settings",
        )
        capture.addAction(self.restart_action)
        self.cancel_backfill_action = self._action(
            "&Cancel history backfill",
            self.cancel_backfill,
            "Ctrl+Shift+B",
            "Stop fetching the history missed since the last run (live capture goes on)",
        )
        capture.addAction(self.cancel_backfill_action)

        view = bar.addMenu("&View")
        self.view_menu = view
        #: View ▸ <panel> (Alt+1…): show the panel and raise its tab. Not Qt's
        #: toggleViewAction: it hid a tabbed panel the user asked to see.
        self.show_actions: dict[str, QAction] = {}
        for name in self.docks:
            title = self.panels[name].title
            show = self._action(
                title,
                self._shower(name),
                type(self.panels[name]).shortcut or None,
                f"Show the {title} panel and bring it to the front",
            )
            self.show_actions[name] = show
            view.addAction(show)
        view.addSeparator()
        self.symbols_action = self._action(
            "S&ymbols…",
            self.open_symbols,
            "Ctrl+U",
            "Search the terminals' symbols and start or stop capturing them",
        )
        view.addAction(self.symbols_action)
        view.addSeparator()
        view.addAction(
            self._action("Reset &layout", self.reset_layout, "Ctrl+Shift+L", "Put every panel back")
        )
        self.theme_action = self._action(
            "&Dark theme", self._toggle_theme, "Ctrl+Shift+T", "Switch between dark and light"
        )
        self.theme_action.setCheckable(True)
        view.addAction(self.theme_action)
        self.notify_action = self._action(
            "Desktop &notifications",
            lambda: self._layout.setValue("notify", self.notify_action.isChecked()),
            tip="Show newly raised alerts as desktop notifications (system tray)",
        )
        self.notify_action.setCheckable(True)
        self.notify_action.setChecked(str(self._layout.value("notify", "true")) == "true")
        view.addAction(self.notify_action)

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(
            self._action("&Keyboard shortcuts", self.show_shortcuts, "F1", "List the shortcuts")
        )
        help_menu.addAction(self._action("&About", self.show_about))

    # ------------------------------------------------------------------ layout
    def _size_default_docks(self) -> None:
        """Quotes and the chart get the room; the bottom tabs (throughput, pool, alerts,
        journal) a third of the height; Market Watch about 45 % of the width."""
        left = [
            d
            for n, d in self.docks.items()
            if type(self.panels[n]).default_area is Qt.DockWidgetArea.LeftDockWidgetArea
        ]
        bottom = [
            d
            for n, d in self.docks.items()
            if type(self.panels[n]).default_area is Qt.DockWidgetArea.BottomDockWidgetArea
        ]
        if left:
            self.resizeDocks(left[:1], [int(self.width() * 0.45)], Qt.Orientation.Horizontal)
            if bottom:
                # With no central widget the top row gives way only when it is resized
                # itself (resizing the bottom dock has no effect).
                self.resizeDocks(left[:1], [int(self.height() * 0.6)], Qt.Orientation.Vertical)

    def _restore_layout(self) -> bool:
        """Put back the saved geometry and docks; False when there was none to use."""
        geometry = self._layout.value("geometry")
        state = self._layout.value("state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        self._restore_panel_views()
        if not isinstance(state, QByteArray):
            return False
        if not self.restoreState(state, LAYOUT_VERSION):
            log.warning("the saved window layout does not fit this version; using the default")
            return False
        return True

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._sized:
            self._sized = True
            # Dock sizes can be set only once the layout has a size to share out.
            QTimer.singleShot(0, self._size_default_docks)

    def _restore_panel_views(self) -> None:
        for name, panel in self.panels.items():
            raw = self._layout.value(f"panels/{name}")
            if not isinstance(raw, str):
                continue
            try:
                state = json.loads(raw)
                if isinstance(state, dict):
                    panel.restore_view_state(state)
            except Exception:  # a damaged entry costs that panel's choices, nothing more
                log.warning("ignoring the saved view of the %s panel", panel.title)

    def save_layout(self) -> None:
        for name, panel in self.panels.items():
            self._layout.setValue(f"panels/{name}", json.dumps(panel.view_state()))
        self._layout.setValue("geometry", self.saveGeometry())
        self._layout.setValue("state", self.saveState(LAYOUT_VERSION))
        self._layout.setValue("theme", self.theme.name)
        self._layout.sync()

    def reset_layout(self) -> None:
        self.restoreState(self._default_state, LAYOUT_VERSION)
        for dock in self.docks.values():
            dock.show()
        self._size_default_docks()

    # ------------------------------------------------------------------ theme
    def _apply_theme(self, theme: Theme) -> None:
        self.theme = theme
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, theme)
        for panel in self.panels.values():
            panel.apply_theme(theme)
        if hasattr(self, "theme_action"):
            self.theme_action.setChecked(theme.name == "dark")

    def _toggle_theme(self) -> None:
        self._apply_theme(THEMES["light" if self.theme.name == "dark" else "dark"])

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
        self._refresh_status(snap)
        self.trading.refresh(self.theme, self.selected_symbol())
        self.frames += 1
        self.last_frame_s = time.perf_counter() - started

    def _refresh_link(self, link: LinkState, problem: tuple[str, str] | None) -> None:
        """The link label says the cause, not only "down": the tooltip has the whole text."""
        s, t = self.status, self.theme
        backlog = f"backlog {link.backlog_ticks:,}"
        if link.halted:
            s.set("link", f"link HALTED · {backlog}", t.bad, link.halted)
        elif link.spool_disk_error:
            s.set(
                "link", f"spool disk full · capture held · {backlog}", t.bad, link.spool_disk_error
            )
        elif link.connected:
            held = " · capture held" if link.intake_paused else ""
            s.set("link", f"link up · {backlog}{held}", t.warn if held else t.ok)
        elif problem is not None:
            # The cause, not only "down": the embedded backend did not start.
            s.set("link", f"link DOWN · {problem[0]} · {backlog}", t.bad, problem[1])
        else:
            s.set("link", f"link DOWN · {backlog}", t.bad, link.last_error or None)

    def _refresh_status(self, snap: SessionSnapshot) -> None:
        s, t = self.status, self.theme
        state = snap.state
        if state is SessionState.FAILED:
            s.set("session", f"capture failed: {snap.error}", t.bad)
        elif state is not SessionState.RUNNING:
            s.set("session", f"capture {state.value}…", t.warn)
        else:
            s.set("session", "capturing", t.ok)
        if not snap.running:
            for key in ("server", "link", "pool", "tps", "p99"):
                s.set(key, "")
            s.set("alerts", "")
            self._refresh_backfill(())
            return
        if snap.link is None:
            s.set("link", "no backend", t.muted)
        else:
            self._refresh_link(snap.link, snap.backend_problem)
        self._refresh_backfill(snap.backfill)
        clock = snap.clock(self.selected_symbol())
        s.set("server", clock.text, None, clock.tooltip)
        workers = snap.workers
        streaming = snap.streaming
        failed = sum(w.state is WorkerState.FAILED for w in workers)
        offline = sum(w.state is WorkerState.OFFLINE for w in workers)
        color = t.ok if streaming == len(workers) else t.bad if failed else t.warn
        text = f"pool {streaming}/{len(workers)} streaming"
        s.set("pool", text + (f", {offline} terminal offline" if offline else ""), color)
        view = snap.monitor
        if view is None:
            return
        tps = view.number("tps.total")
        s.set("tps", f"{tps:,.0f} ticks/s" if tps is not None else "– ticks/s")
        p99 = view.number("latency.tick_to_collector.p99")
        s.set("p99", f"p99 {p99 * 1000:.1f} ms" if p99 is not None else "p99 –")
        unacked = view.unacknowledged
        s.set(
            "alerts",
            f"⚠ {unacked} alerts" if unacked else "no alerts",
            t.bad if unacked else t.muted,
        )

    def _refresh_backfill(self, jobs: Sequence[BackfillProgress]) -> None:
        bar = self.status.backfill
        running = [j for j in jobs if j.active]
        if not running:
            bar.setVisible(False)
            self.cancel_backfill_action.setEnabled(False)
            return
        fraction = sum(j.fraction for j in jobs) / len(jobs)
        ticks = sum(j.ticks for j in jobs)
        bar.setValue(int(1000 * fraction))
        bar.setFormat(f"backfill {fraction:.0%} · {ticks:,} ticks")
        bar.setVisible(True)
        self.cancel_backfill_action.setEnabled(True)

    # ------------------------------------------------------------------ intents
    def open_settings(self) -> None:
        from ui.dialogs.settings import SettingsDialog  # noqa: PLC0415

        dialog = SettingsDialog(self.session, self.tasks, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def open_credentials(self) -> None:
        from ui.dialogs.credentials import CredentialsDialog  # noqa: PLC0415

        dialog = CredentialsDialog(self.session, self.tasks, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def open_symbols(self) -> None:
        from ui.dialogs.symbols import open_symbols  # noqa: PLC0415

        open_symbols(self.session, self.tasks, self)

    def open_export(self) -> None:
        from ui.dialogs.export import ExportDialog  # noqa: PLC0415

        dialog = ExportDialog(self.session, self.tasks, self, self.selected_symbol())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def selected_symbol(self) -> str | None:
        """The symbol the trader is looking at: the chart's (it follows Market Watch's
        selection), else the first row selected in Market Watch."""
        symbol = getattr(self.panels.get("tickChart"), "symbol", "")
        if symbol:
            return str(symbol)
        watch = self.panels.get("marketWatch")
        selected: list[str] = getattr(watch, "selected_symbols", list)()
        return str(selected[0]) if selected else None

    def cancel_backfill(self) -> None:
        if self.session.cancel_backfill():
            self.statusBar().showMessage("history backfill cancelled", 5000)

    def restart_capture(self) -> None:
        self.statusBar().showMessage("restarting capture…", 3000)
        self.tasks.run(self.session.restart(), "restart capture")

    def _shower(self, name: str) -> Callable[[], None]:
        return lambda: self.show_panel(name)

    def show_panel(self, name: str) -> None:
        """Show the panel and bring its tab (or floating window) to the front."""
        dock = self.docks[name]
        dock.show()
        dock.raise_()
        self.panels[name].setFocus()

    def shortcut_lines(self) -> list[tuple[str, str]]:
        lines: list[tuple[str, str]] = []
        for action in self.findChildren(QAction):
            seq = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            if seq and action.text():
                lines.append((action.text().replace("&", ""), seq))
        return sorted(set(lines))

    def show_shortcuts(self) -> None:
        rows = "".join(
            f"<tr><td>{t}</td><td><b>{k}</b></td></tr>" for t, k in self.shortcut_lines()
        )
        box = QMessageBox(self)
        box.setWindowTitle("Keyboard shortcuts")
        box.setText(f"<table cellspacing=6>{rows}</table>")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def show_about(self) -> None:
        box = QMessageBox(self)
        box.setWindowTitle("About Trading Client")
        box.setText(
            f"<b>Trading Client {__version__}</b><br>Captures every MetaTrader 5 tick, "
            "aggregates and caches it, and streams it to the backend.<br><br>"
            f"Settings: {self.session.store.path}"
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

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
