"""Asked on quit while ticks are not delivered: "Quit anyway?" (Quit / Cancel).

Why ask: quitting with the link down used to close the window at once and leave the
process to log "stopping with N ticks the bridge has not acknowledged" — nobody was
told. With a durable spool nothing is lost (the next start sends them) and quitting does
not wait for the bridge; with the spool in memory only they are lost, and the dialog says
so. Opened with ``open()`` (no nested event loop, see :mod:`ui.dialogs`); the window
closes again when Quit is clicked.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget


def quit_text(ticks: int, kept: bool) -> str:
    if kept:
        return (
            f"{ticks:,} ticks are not yet delivered; they are kept in the spool and sent "
            "on the next start. Quit anyway?"
        )
    return (
        f"{ticks:,} ticks are not yet delivered, and the spool keeps nothing on disk "
        "(backend.spool_disk_mb = 0): quitting now loses them. Quit anyway?"
    )


def ask_quit(parent: QWidget, ticks: int, kept: bool, on_quit: Callable[[], None]) -> QMessageBox:
    """Open the question window-modally; ``on_quit`` runs when Quit is clicked."""
    box = QMessageBox(parent)
    box.setObjectName("quitConfirm")
    box.setWindowTitle("Quit Trading Client")
    box.setIcon(QMessageBox.Icon.Question if kept else QMessageBox.Icon.Warning)
    box.setText(quit_text(ticks, kept))
    quit_button = box.addButton("&Quit", QMessageBox.ButtonRole.AcceptRole)
    quit_button.setObjectName("quitButton")
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)

    def finished(_result: int) -> None:
        if box.clickedButton() is quit_button:
            on_quit()

    box.finished.connect(finished)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box
