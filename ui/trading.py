"""Trading in the main window: the Trade menu (New Order F9, HALT Ctrl+Shift+H, resume),
the HALT control of the status bar, and the one-click bar over the chart.

Kept out of ``ui/window.py`` (which stays under 600 lines): the window builds one
:class:`TradingControls` after its status bar and calls :meth:`refresh` on each render
tick; everything else (actions, the toolbar, the resume question) lives here.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QMessageBox, QToolBar

from app.session import DesktopSession
from app.trading.view import RiskState
from ui.panels.one_click import OneClickBar
from ui.status_bar import StatusBar
from ui.tasks import TaskRunner
from ui.theme import Theme

HALT_REASON = "halted from the window"


class TradingControls(QObject):
    def __init__(
        self,
        window: QMainWindow,
        session: DesktopSession,
        tasks: TaskRunner,
        status: StatusBar,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.session = session
        self.tasks = tasks
        self.status = status
        self.new_order_action = self._action(
            "&New order…", "F9", "Open the New Order window", self.new_order
        )
        self.halt_action = self._action(
            "&Halt trading",
            "Ctrl+Shift+H",
            "Halt all automatic trading at once (signals wait, nothing is sent automatically)",
            self.halt,
        )
        self.resume_action = self._action(
            "&Resume trading…", None, "Resume trading after a halt (asks first)", self.ask_resume
        )
        bar = window.menuBar()
        menu = QMenu("&Trade", bar)
        menus = bar.actions()
        if menus:  # before Help, the last menu by convention
            bar.insertMenu(menus[-1], menu)
        else:
            bar.addMenu(menu)
        for action in (self.new_order_action, self.halt_action, self.resume_action):
            menu.addAction(action)
        status.halt.clicked.connect(self.halt_clicked)
        self.one_click = OneClickBar(session, tasks)
        self.one_click.reported.connect(lambda text: window.statusBar().showMessage(text, 10_000))
        self.toolbar = QToolBar("One-click trading", window)
        self.toolbar.setObjectName("oneClickToolbar")
        self.toolbar.addWidget(self.one_click)
        window.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.toolbar)
        menu.addSeparator()
        menu.addAction(self.toolbar.toggleViewAction())
        self.resume_box: QMessageBox | None = None
        self._theme: Theme | None = None

    def _action(self, text: str, keys: str | None, tip: str, slot: object) -> QAction:
        action = QAction(text, self.window)
        if keys:
            action.setShortcut(QKeySequence(keys))
            action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.window.addAction(action)
        return action

    # ------------------------------------------------------------------ rendering
    def refresh(self, theme: Theme, symbol: str | None) -> None:
        """One frame: the HALT control's state and the one-click prices of ``symbol``."""
        if theme is not self._theme:
            self._theme = theme
            self.one_click.apply_theme(theme)
        snap = self.session.trading_snapshot()
        self.status.halt.show_status(snap.risk if snap is not None else None, theme)
        halted = snap is not None and snap.risk.state is RiskState.HALTED
        self.halt_action.setEnabled(snap is not None and not halted)
        self.resume_action.setEnabled(halted)
        if symbol is not None:
            self.one_click.set_symbol(symbol)
        self.one_click.refresh()

    # ------------------------------------------------------------------ intents
    def new_order(self) -> None:
        from ui.dialogs.new_order import open_new_order  # noqa: PLC0415

        open_new_order(self.session, self.tasks, self.window, self.one_click.symbol or None)

    def halt(self) -> None:
        """No question: a kill switch that asks is one that comes too late."""
        if self.session.trading_snapshot() is None:
            return
        self.session.halt_trading(HALT_REASON)
        self.window.statusBar().showMessage("Automatic trading HALTED", 10_000)

    def halt_clicked(self) -> None:
        if self.status.halt.state is RiskState.HALTED:
            self.ask_resume()
        else:
            self.halt()

    def ask_resume(self) -> None:
        box = QMessageBox(self.window)
        box.setObjectName("resumeConfirm")
        box.setWindowTitle("Resume trading")
        box.setIcon(QMessageBox.Icon.Question)
        box.setText(
            "Resume trading? Automatic sources send orders again (each still checked by "
            "the risk engine)."
        )
        resume = box.addButton("&Resume", QMessageBox.ButtonRole.AcceptRole)
        resume.setObjectName("resumeButton")
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)

        def finished(_r: int) -> None:
            if box.clickedButton() is resume:
                self.session.resume_trading()
                self.window.statusBar().showMessage("Trading resumed", 10_000)

        box.finished.connect(finished)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.resume_box = box
