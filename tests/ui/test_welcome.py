"""The welcome note on a first start: non-modal, says what runs and where things are,
and stays away once dismissed or once a real terminal is configured."""

from __future__ import annotations

import itertools
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication, QPushButton
from pytestqt.qtbot import QtBot

from app.config import ClientConfig
from app.config.store import ConfigStore
from app.logfiles import log_file_path
from app.security.vault import default_vault_path
from app.session import DesktopSession
from tests.conftest import wait_until
from ui.welcome import DONT_SHOW_KEY, WelcomeDialog, show_welcome, welcome_wanted
from ui.window import MainWindow


def _fresh_session(tmp_path: Path) -> DesktopSession:
    """A session on a settings file that does not exist yet: a first start."""
    return DesktopSession(ConfigStore(tmp_path / "settings" / "client-config.json"))


def _window(session: DesktopSession, qtbot: QtBot) -> MainWindow:
    # No panels: the note is about the window's frame, not about what the docks draw.
    window = MainWindow(session, layout_file=session.layout_path, panels=[])
    qtbot.addWidget(window)
    window.show()
    return window


async def test_first_start_shows_a_non_modal_note_with_the_facts(
    tmp_path: Path, qtbot: QtBot
) -> None:
    session = _fresh_session(tmp_path)
    assert session.first_run
    window = _window(session, qtbot)
    dialog = show_welcome(window, session)
    assert dialog is not None
    assert dialog.isVisible()
    assert not dialog.isModal()
    assert dialog.windowModality() == Qt.WindowModality.NonModal
    assert QApplication.activeModalWidget() is None  # the window stays usable
    assert dialog.parent() is window

    dialog.grab().save(str(tmp_path / "welcome.png"))
    Path("/tmp/ui-shots").mkdir(exist_ok=True)
    dialog.grab().save("/tmp/ui-shots/welcome.png")
    text = dialog.text()
    assert "simulated MetaTrader&nbsp;5 terminal" in text
    assert "reference backend" in text
    assert "Ctrl+," in text
    assert "Ctrl+Shift+K" in text
    assert "trading-client[mt5]" in text
    for path in (
        session.store.path,
        default_vault_path(),
        log_file_path(),
        session.store.backup_dir,
    ):
        assert str(path) in text, path

    close = next(b for b in dialog.findChildren(QPushButton) if b.text() == "Close")
    qtbot.mouseClick(close, Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()
    window.close()


async def test_dont_show_again_is_kept_in_the_layout_file(tmp_path: Path, qtbot: QtBot) -> None:
    session = _fresh_session(tmp_path)
    window = _window(session, qtbot)
    dialog = show_welcome(window, session)
    assert dialog is not None
    qtbot.keyClick(dialog.dont_show, Qt.Key.Key_Space)  # as a keyboard user ticks it
    assert dialog.dont_show.isChecked()
    dialog.close()
    window.close()

    stored = QSettings(str(session.layout_path), QSettings.Format.IniFormat)
    assert str(stored.value(DONT_SHOW_KEY)).lower() == "true"
    # The next start (no longer a first run, still simulated) stays quiet.
    again = DesktopSession(ConfigStore(session.store.path))
    assert not again.first_run
    assert not welcome_wanted(again)
    second = _window(again, qtbot)
    assert show_welcome(second, again) is None
    second.close()


def test_shown_again_while_simulated_never_once_a_real_terminal_is_set(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "settings" / "client-config.json")
    store.save(ClientConfig())
    simulated = DesktopSession(store)
    assert not simulated.first_run
    assert welcome_wanted(simulated)  # not dismissed, still on generated ticks

    store.save(
        ClientConfig.model_validate(
            {"terminals": [{"name": "Live", "kind": "mt5", "symbols": ["EURUSD"]}]}
        )
    )
    real = DesktopSession(store)
    assert not welcome_wanted(real)


async def test_buttons_open_settings_and_credentials(tmp_path: Path, qtbot: QtBot) -> None:
    session = _fresh_session(tmp_path)
    opened: list[str] = []
    settings = QSettings(str(tmp_path / "layout.ini"), QSettings.Format.IniFormat)
    dialog = WelcomeDialog(
        session,
        settings,
        open_settings=lambda: opened.append("settings"),
        open_credentials=lambda: opened.append("credentials"),
    )
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.settings_button is not None
    assert dialog.credentials_button is not None
    qtbot.mouseClick(dialog.settings_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dialog.credentials_button, Qt.MouseButton.LeftButton)
    assert opened == ["settings", "credentials"]
    assert dialog.isVisible()  # non-modal: the note stays while the user works
    dialog.close()


async def test_the_note_has_no_blank_gap(tmp_path: Path, qtbot: QtBot) -> None:
    """Each block follows the one above at the layout's spacing: no empty band between
    the text and the 'Don't show again' box, however the word-wrapped text breaks."""
    session = _fresh_session(tmp_path)
    window = _window(session, qtbot)
    dialog = show_welcome(window, session)
    assert dialog is not None
    qtbot.addWidget(dialog)
    await wait_until(dialog.isVisible, 10, "the note")
    QApplication.processEvents()
    spacing = dialog.layout().spacing()
    blocks = [*dialog.labels, dialog.dont_show]
    for above, below in itertools.pairwise(blocks):
        gap = below.geometry().top() - above.geometry().bottom()
        assert gap <= 2 * spacing, f"{gap} px blank below {above.text()[:40]!r}"
    for label in dialog.labels:  # and no block is cut short to get there
        assert label.height() >= label.heightForWidth(label.width())
