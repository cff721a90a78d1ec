"""Quitting with ticks the bridge has not acknowledged: the user is asked, and Quit is
prompt (the spool is durable; nothing waits for the bridge)."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton
from pytestqt.qtbot import QtBot

from app.config import ClientConfig
from app.config.store import ConfigStore
from app.ports import free_ports
from app.session import DesktopSession
from tests.conftest import wait_until
from tests.ui.conftest import ui_config_document
from ui.window import MainWindow


def _question() -> QMessageBox | None:
    boxes = [
        w
        for w in QApplication.topLevelWidgets()
        if isinstance(w, QMessageBox) and w.objectName() == "quitConfirm" and w.isVisible()
    ]
    return boxes[0] if boxes else None


def _click(box: QMessageBox, name: str, qtbot: QtBot) -> None:
    button = next(b for b in box.findChildren(QPushButton) if b.text().replace("&", "") == name)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


async def test_quit_with_the_link_down_asks_and_then_quits_promptly(
    tmp_path: Path, qtbot: QtBot
) -> None:
    (dead,) = free_ports(1)  # nothing listens: the link stays down, ticks pile up
    doc = ui_config_document(tmp_path)
    doc["backend"] = {**doc["backend"], "bridge_url": f"ws://127.0.0.1:{dead}/ws"}
    doc["backend"]["embedded"] = "never"
    store = ConfigStore(tmp_path / "settings" / "client-config.json")
    store.save(ClientConfig.model_validate(doc))
    session = DesktopSession(store)
    await session.start()
    window = MainWindow(session, layout_file=tmp_path / "layout.ini")
    qtbot.addWidget(window)
    closed: list[bool] = []
    window.closing.connect(lambda: closed.append(True))
    window.show()
    window.activateWindow()
    try:
        await wait_until(window.isActiveWindow, 10, "the window to become active")
        await wait_until(lambda: session.undelivered_on_quit()[0] > 0, 30, "a backlog")

        # Ctrl+Q, then Cancel: the window stays and capture goes on.
        qtbot.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
        await wait_until(lambda: _question() is not None, 5, "the question")
        box = _question()
        assert box is not None
        assert "are not yet delivered; they are kept in the spool and sent on the next start" in (
            box.text()
        )
        shown = int(box.text().split()[0].replace(",", ""))
        assert shown > 0
        _click(box, "Cancel", qtbot)
        await wait_until(lambda: _question() is None, 5, "the question to go")
        assert window.isVisible()
        assert not closed

        # Ctrl+Q, then Quit: the window closes, and stopping does not wait for the bridge.
        qtbot.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
        await wait_until(lambda: _question() is not None, 5, "the question again")
        box = _question()
        assert box is not None
        _click(box, "Quit", qtbot)
        await wait_until(lambda: bool(closed), 5, "the window to close")
        assert not window.isVisible()
    finally:
        started = time.monotonic()
        await session.stop()
        stopped_in = time.monotonic() - started
    assert stopped_in < 5.0, f"stopping took {stopped_in:.1f} s"
