"""The window's dialogs: settings, credentials, master password, sync conflicts.

Dialogs that need an answer before a core coroutine can go on (a master password, a
conflict choice) are opened with ``open()`` and awaited through :func:`wait_finished`,
never with a nested ``exec()``: a second event loop inside the qasync loop would run
coroutines re-entrantly and deadlock on the first one that awaits the outer loop.
"""

from __future__ import annotations

import asyncio

from PySide6.QtWidgets import QApplication, QDialog, QLabel
from shiboken6 import isValid

from ui.theme import DARK, LIGHT, Theme


def palette_theme() -> Theme:
    """The data colours that fit the palette in use: a dialog opened before the window
    told it the theme must still draw red on dark and dark red on light."""
    app = QApplication.instance()
    if isinstance(app, QApplication) and app.palette().window().color().lightness() > 128:
        return LIGHT
    return DARK


async def wait_finished(dialog: QDialog) -> int:
    """Open ``dialog`` window-modally and wait, on the running loop, for its result."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()

    def finished(result: int) -> None:
        if not done.done():
            done.set_result(result)

    def destroyed() -> None:  # deleted with its parent, never answered: a "no"
        finished(QDialog.DialogCode.Rejected.value)

    dialog.finished.connect(finished)
    dialog.destroyed.connect(destroyed)
    dialog.open()
    try:
        return await done
    finally:
        if isValid(dialog):
            dialog.finished.disconnect(finished)
            dialog.destroyed.disconnect(destroyed)
            if dialog.isVisible():  # the awaiting task was cancelled: do not leave it open
                dialog.reject()


def set_message(label: QLabel, text: str, colour: str | None) -> None:
    """Show one line of outcome text (``colour`` from the theme), or hide the label."""
    label.setText(text)
    label.setStyleSheet(f"color: {colour};" if colour else "")
    label.setVisible(bool(text))


__all__ = ["palette_theme", "set_message", "wait_finished"]
