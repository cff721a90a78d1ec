"""``trading-client gui``: the window on a qasync loop, from start to a clean exit.

One asyncio loop, driven by Qt's event loop through qasync, runs both the window and the
core (pool supervisor, collector, bridge link, monitor). Quitting stops capture first —
what was captured is still delivered — and only then ends the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication
from shiboken6 import isValid

from app.journal import Journal, install_journal
from app.paths import resource_path
from app.session import DesktopSession, MasterPasswordRequired
from ui.loop import GuiEventLoop
from ui.qtlog import route_qt_messages
from ui.welcome import show_welcome
from ui.window import MainWindow

log = logging.getLogger(__name__)

NO_DISPLAY = (
    "error: no display to open the window on; run headless with 'trading-client run', "
    "or set QT_QPA_PLATFORM=offscreen"
)


@dataclass(frozen=True, slots=True)
class GuiOptions:
    config_path: Path
    screenshot: Path | None = None
    quit_after: float | None = None
    theme: str | None = None


def display_available() -> bool:
    """Whether Qt has somewhere to draw (Linux/BSD need X11 or Wayland, or offscreen)."""
    if sys.platform in ("win32", "darwin"):
        return True
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith(("xcb", "wayland")):
        return True  # offscreen, minimal, vnc, eglfs...: they need no display server
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_gui(options: GuiOptions) -> int:
    if not display_available():
        print(NO_DISPLAY, file=sys.stderr)
        return 2
    route_qt_messages()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Trading Client")
    app.setOrganizationName("trading-client")
    # Closing the window must not end Qt's event loop: capture still has to stop (and
    # deliver what is in flight) on this loop; run_window returns when that is done.
    app.setQuitOnLastWindowClosed(False)
    icon = resource_path("icons", "trading-client.png")
    if icon is not None:
        app.setWindowIcon(QIcon(str(icon)))
    loop = GuiEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        with loop:
            code: int = loop.run_until_complete(run_window(options))
            return code
    finally:
        asyncio.set_event_loop(None)


async def run_window(options: GuiOptions) -> int:
    """Open the window, start capture, and wait until the user (or ``quit_after``) closes it."""
    journal = Journal()
    install_journal(journal)
    root = logging.getLogger()
    for handler in root.handlers:
        if handler is not journal and handler.level == logging.NOTSET:
            handler.setLevel(root.level)  # the terminal keeps the --log-level it was given
    root.setLevel(min(root.level, logging.INFO))  # the Journal panel shows INFO and up

    session = DesktopSession.open(options.config_path, journal=journal)
    for warning in session.load_warnings:
        log.warning("%s", warning)
    window = MainWindow(session, layout_file=session.layout_path, theme=options.theme)
    closed = asyncio.Event()
    window.closing.connect(closed.set)
    previous_sigint = signal.signal(signal.SIGINT, lambda *_: window.quit_now())
    window.show()
    welcome = show_welcome(window, session)  # first start: what runs; non-modal
    try:
        await _start_capture(window, session)
        if welcome is not None and isValid(welcome):
            welcome.refresh_running(session)
        if options.quit_after is not None:
            QTimer.singleShot(int(options.quit_after * 1000), lambda: _finish(window, options))
        await closed.wait()
    finally:
        signal.signal(signal.SIGINT, previous_sigint)
        await window.tasks.cancel_all()
        await session.stop()
        root.removeHandler(journal)
        window.deleteLater()
    return 0


async def _start_capture(window: MainWindow, session: DesktopSession) -> None:
    """Start capture; a file vault holding terminal passwords is unlocked first."""
    if session.needs_vault_to_start() and session.needs_master_password():
        from ui.dialogs.master_password import MasterPasswordDialog  # noqa: PLC0415

        secret = await MasterPasswordDialog.ask_async(window, new_vault=False)
        if secret is None:
            log.warning("capture not started: the credential vault stayed locked")
            return
        session.set_master_password(secret)
    try:
        await session.start()
    except MasterPasswordRequired:
        log.warning("capture not started: the credential vault needs its master password")
    except Exception as exc:  # shown in the status bar and the journal; the window stays
        log.error("capture did not start: %s", exc)


def _finish(window: MainWindow, options: GuiOptions) -> None:
    if options.screenshot is not None:
        window.render()  # the latest state, not the one of the previous frame
        options.screenshot.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(options.screenshot)):
            log.error("could not write the screenshot to %s", options.screenshot)
    window.quit_now()
