"""The window's menus and what their actions do: File (settings, credentials, export,
quit), Capture (restart, cancel backfill), View (a panel per Alt+N, symbols, layout,
theme, notifications), Help.

The second layer of :class:`ui.window.MainWindow` (layout → actions → window). Every
shortcut is application-wide, so it works whichever dock (or floating panel) has the
focus; every intent goes to the session through the window's task runner.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox

from app import __version__
from ui.window_layout import WindowLayout


class WindowActions(WindowLayout):
    """Menus, shortcuts and the dialogs they open (set up by :class:`ui.window.MainWindow`)."""

    settings_action: QAction
    credentials_action: QAction
    export_action: QAction
    restart_action: QAction
    cancel_backfill_action: QAction
    symbols_action: QAction
    notify_action: QAction
    view_menu: QMenu
    show_actions: dict[str, QAction]

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
        self._build_view_menu()

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(
            self._action("&Keyboard shortcuts", self.show_shortcuts, "F1", "List the shortcuts")
        )
        help_menu.addAction(self._action("&About", self.show_about))

    def _build_view_menu(self) -> None:
        view = self.menuBar().addMenu("&View")
        self.view_menu = view
        #: View ▸ <panel> (Alt+1…): show the panel and raise its tab. Not Qt's
        #: toggleViewAction: it hid a tabbed panel the user asked to see.
        self.show_actions = {}
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


__all__ = ["WindowActions"]
