"""The embedded backend cannot start (its bridge port is taken): the status bar and the
welcome note say so, instead of "link DOWN" and a note that ticks go to the backend
started inside the app (issue 15)."""

from __future__ import annotations

import socket
from pathlib import Path

from pytestqt.qtbot import QtBot

from app.config import ClientConfig
from app.config.store import ConfigStore
from app.session import DesktopSession
from tests.conftest import wait_until
from tests.ui.conftest import ui_config_document
from ui.welcome import WelcomeDialog, layout_settings
from ui.window import MainWindow


async def test_a_taken_port_is_named_in_the_status_bar_and_the_welcome_note(
    tmp_path: Path, qtbot: QtBot
) -> None:
    doc = ui_config_document(tmp_path)
    # Something else holds the bridge's port (not a data bridge: it never answers).
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    doc["backend"]["bridge_url"] = f"ws://127.0.0.1:{port}/ws"
    store = ConfigStore(tmp_path / "settings" / "client-config.json")
    store.save(ClientConfig.model_validate(doc))
    session = DesktopSession(store)
    try:
        note = WelcomeDialog(session, layout_settings(session))  # opens before capture
        qtbot.addWidget(note)
        await session.start()
        note.refresh_running(session)  # what ui.main does once capture has started
        window = MainWindow(session, layout_file=tmp_path / "layout.ini")
        qtbot.addWidget(window)
        window.show()
        label = window.status.labels["link"]
        await wait_until(lambda: "link DOWN" in label.text(), 30, "the link label")
        assert f"backend not started: port {port} in use" in label.text()
        assert "could not start" in label.toolTip()
        assert "set backend.embedded to 'never'" in label.toolTip()
        text = note.text()
        assert "could not be started" in text
        assert "kept in the spool on disk" in text
        assert "started inside the app" not in text
    finally:
        await session.stop()
        squatter.close()
