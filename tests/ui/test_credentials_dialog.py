"""The credentials dialog against a real running session with a file vault: the master
password chosen for a new vault, a terminal password stored encrypted (never in plain
text), show/hide, connection tests, deletion with confirmation, and a wrong master
password on a second session told as such."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QLineEdit, QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from app.config.store import ConfigStore
from app.session import DesktopSession
from tests.conftest import wait_until
from tests.server.conftest import add_user
from ui.dialogs import palette_theme
from ui.dialogs.credentials import CredentialsDialog
from ui.dialogs.master_password import MasterPasswordDialog
from ui.tasks import TaskRunner
from ui.theme import DARK, apply_theme

pytestmark = pytest.mark.slow

SHOTS = Path("/tmp/ui-shots")
MASTER = "short but long enough"
TERMINAL_PASSWORD = "Terminal-Pa55word!"


def shot(widget: QWidget, tmp_path: Path, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    image = widget.grab()
    assert image.save(str(tmp_path / f"{name}.png"))
    assert image.save(str(SHOTS / f"{name}.png"))


@pytest.fixture
def dark(qapp: QApplication) -> Iterator[None]:
    palette, style = qapp.palette(), qapp.style().name()
    apply_theme(qapp, DARK)
    yield
    qapp.setPalette(palette)
    qapp.setStyle(style)


def open_dialog(session: DesktopSession, qtbot: QtBot) -> CredentialsDialog:
    """Over a stand-in main window, as the window opens it."""
    host = QWidget()
    qtbot.addWidget(host)
    host.show()
    dialog = CredentialsDialog(session, TaskRunner(), host)
    dialog.host = host  # type: ignore[attr-defined]  # keeps the parent alive with it
    dialog.resize(760, 380)
    dialog.open()
    return dialog


def visible_master(parent: QWidget) -> MasterPasswordDialog | None:
    found = [d for d in parent.findChildren(MasterPasswordDialog) if d.isVisible()]
    return found[0] if found else None


async def master_prompt(parent: QWidget) -> MasterPasswordDialog:
    await wait_until(lambda: visible_master(parent) is not None, 10, "the master password prompt")
    master = visible_master(parent)
    assert master is not None
    return master


def click(qtbot: QtBot, widget: QWidget) -> None:
    assert widget.isEnabled(), widget
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)


def names(dialog: CredentialsDialog) -> list[str]:
    return [dialog.names.item(i).text() for i in range(dialog.names.count())]


async def test_store_test_toggle_and_delete_then_wrong_master_password(
    session: DesktopSession, qtbot: QtBot, tmp_path: Path, dark: None
) -> None:
    vault_file = session.config.security.vault_file
    assert vault_file is not None
    assert not vault_file.exists()
    dialog = open_dialog(session, qtbot)

    # A new vault: the master password is chosen, with the length rule and a confirmation.
    await wait_until(dialog.unlock_button.isVisible, 10, "Create vault…")
    click(qtbot, dialog.unlock_button)
    master = await master_prompt(dialog)
    assert master.confirm is not None
    assert master.password.line.echoMode() == QLineEdit.EchoMode.Password
    qtbot.keyClicks(master.password.line, "short")
    assert not master.ok_button.isEnabled()
    assert "At least 8 characters" in master.hint.text()
    qtbot.keyClicks(master.password.line, " but long enough")
    qtbot.keyClicks(master.confirm, "short but long enougH")
    assert not master.ok_button.isEnabled()
    assert "not the same" in master.hint.text()
    master.confirm.setText("")
    qtbot.keyClicks(master.confirm, MASTER)
    click(qtbot, master.ok_button)
    assert master.password.text() == ""  # the typed password left the widget at once
    assert master.confirm.text() == ""
    await wait_until(lambda: dialog.unlocked, 30, "the vault to be opened")
    assert "0 credentials" in dialog.status.text()

    # A terminal password: masked, shown and hidden again with Alt+S and with the button.
    assert dialog.kind.currentData() == "mt5"
    assert dialog.terminal.currentData() == "simulated"
    assert dialog.stored_as.text() == "mt5/simulated"
    line = dialog.password.line
    assert line.echoMode() == QLineEdit.EchoMode.Password
    qtbot.mouseClick(line, Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    qtbot.keyClicks(line, TERMINAL_PASSWORD)
    dialog.activateWindow()
    await wait_until(dialog.isActiveWindow, 5, "the dialog to be the active window")
    qtbot.keyClick(line, Qt.Key.Key_S, Qt.KeyboardModifier.AltModifier)
    assert line.echoMode() == QLineEdit.EchoMode.Normal
    assert line.text() == TERMINAL_PASSWORD  # Alt+S typed nothing
    qtbot.keyClick(line, Qt.Key.Key_S, Qt.KeyboardModifier.AltModifier)
    assert line.echoMode() == QLineEdit.EchoMode.Password
    click(qtbot, dialog.password.toggle)
    assert line.echoMode() == QLineEdit.EchoMode.Normal
    click(qtbot, dialog.password.toggle)
    assert line.echoMode() == QLineEdit.EchoMode.Password
    assert "Alt+S" in dialog.password.toggle.toolTip()

    # Test connection logs in to the simulated terminal.
    click(qtbot, dialog.test_button)
    await wait_until(
        lambda: dialog.test_result.text().startswith("simulated: account"), 30, "the login result"
    )
    assert DARK.ok in dialog.test_result.styleSheet()

    # Save: stored under mt5/simulated, encrypted, and the field emptied.
    click(qtbot, dialog.save_button)
    await wait_until(lambda: "mt5/simulated" in names(dialog), 30, "the stored credential")
    assert line.text() == ""
    assert "mt5/simulated stored" in dialog.status.text()
    assert "mt5/simulated" in await session.credential_names()
    blob = vault_file.read_bytes()
    assert TERMINAL_PASSWORD.encode() not in blob
    assert TERMINAL_PASSWORD.encode("utf-16-le") not in blob
    assert MASTER.encode() not in blob

    # The API gateway: a wrong password fails the test in red, the right one logs in
    # (as a user of the embedded backend's users file: there is no default account).
    add_user(tmp_path / "backend.sqlite", admin=True)
    dialog.kind.setCurrentIndex(dialog.kind.findData("gateway"))
    assert dialog.username.isVisible()
    assert not dialog.terminal.isVisible()
    qtbot.keyClicks(dialog.username, "trader")
    assert dialog.stored_as.text() == "gateway/trader"
    assert not dialog.test_button.isEnabled()  # a gateway test needs the password
    qtbot.keyClicks(dialog.password.line, "not-it")
    click(qtbot, dialog.test_button)
    await wait_until(
        lambda: "wrong username or password" in dialog.test_result.text(), 30, "refusal"
    )
    assert DARK.bad in dialog.test_result.styleSheet()
    assert "not-it" not in dialog.test_result.text()
    dialog.password.clear()
    qtbot.keyClicks(dialog.password.line, "trader")
    click(qtbot, dialog.test_button)
    await wait_until(lambda: "logged in to" in dialog.test_result.text(), 30, "the gateway login")
    shot(dialog, tmp_path, "credentials-dialog")
    click(qtbot, dialog.save_button)
    await wait_until(lambda: "gateway/trader" in names(dialog), 30, "the gateway credential")

    # Delete asks first; No keeps it, Yes deletes it.
    dialog.names.setCurrentItem(
        dialog.names.findItems("gateway/trader", Qt.MatchFlag.MatchExactly)[0]
    )
    click(qtbot, dialog.delete_button)
    await wait_until(lambda: dialog.confirm_box is not None, 5, "the confirmation")
    assert dialog.confirm_box is not None
    click(qtbot, dialog.confirm_box.button(QMessageBox.StandardButton.No))
    assert "gateway/trader" in names(dialog)
    item = dialog.names.findItems("gateway/trader", Qt.MatchFlag.MatchExactly)[0]
    rect = dialog.names.visualItemRect(item)
    qtbot.mouseClick(dialog.names.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert dialog.names.hasFocus()
    qtbot.keyClick(dialog.names, Qt.Key.Key_Delete)
    await wait_until(lambda: dialog.confirm_box is not None, 5, "the confirmation")
    assert dialog.confirm_box is not None
    click(qtbot, dialog.confirm_box.button(QMessageBox.StandardButton.Yes))
    await wait_until(lambda: "gateway/trader" not in names(dialog), 30, "the deletion")
    assert await session.credential_names() == ["mt5/simulated"]

    # Closing empties the password field.
    qtbot.keyClicks(dialog.password.line, "left-over")
    qtbot.keyClick(dialog.password.line, Qt.Key.Key_Escape)
    assert not dialog.isVisible()
    assert dialog.password.text() == ""

    # Another session (say, the next start) with a wrong master password: said so, asked again.
    other = DesktopSession(ConfigStore(session.store.path))
    assert other.needs_master_password()
    second = open_dialog(other, qtbot)
    await wait_until(second.unlock_button.isVisible, 10, "Unlock…")
    click(qtbot, second.unlock_button)
    master = await master_prompt(second)
    assert master.confirm is None  # an existing vault: no confirmation
    qtbot.keyClicks(master.password.line, "not the master password")
    click(qtbot, master.ok_button)
    await wait_until(
        lambda: (m := visible_master(second)) is not None and m is not master,
        30,
        "the prompt to come back",
    )
    retry = visible_master(second)
    assert retry is not None
    assert retry.error_label.text().startswith("Wrong master password")
    assert retry.error_label.isVisible()
    retry.resize(460, retry.sizeHint().height())
    shot(retry, tmp_path, "credentials-wrong-master-password")
    click(qtbot, retry.buttons.button(retry.buttons.StandardButton.Cancel))
    await wait_until(lambda: "locked" in second.status.text(), 10, "the locked state")
    assert second.unlock_button.isVisible()
    assert second.names.count() == 0

    # Unlock with the right one: the stored names appear.
    click(qtbot, second.unlock_button)
    master = await master_prompt(second)
    qtbot.keyClicks(master.password.line, MASTER)
    click(qtbot, master.ok_button)
    await wait_until(lambda: names(second) == ["mt5/simulated"], 30, "the names after unlocking")
    assert not second.unlock_button.isVisible()


async def test_opening_asks_nothing_and_cancel_leaves_a_neutral_state(
    session: DesktopSession, qtbot: QtBot
) -> None:
    """File > Credentials on a machine without a vault: the dialog, not a prompt; the
    prompt comes with Save; its Cancel is a choice, not an error in red."""
    theme = palette_theme()
    dialog = open_dialog(session, qtbot)
    await wait_until(dialog.unlock_button.isVisible, 10, "Create vault…")
    assert visible_master(dialog) is None
    assert "No credential vault yet" in dialog.status.text()
    assert theme.bad not in dialog.status.styleSheet()

    qtbot.keyClicks(dialog.password.line, TERMINAL_PASSWORD)
    click(qtbot, dialog.save_button)
    master = await master_prompt(dialog)
    assert master.confirm is not None  # a new vault: its master password is chosen here
    click(qtbot, master.buttons.button(master.buttons.StandardButton.Cancel))
    await wait_until(lambda: "Nothing was read or changed" in dialog.status.text(), 10, "cancel")
    assert theme.bad not in dialog.status.styleSheet()
    assert dialog.unlock_button.isVisible()
    vault_file = session.config.security.vault_file
    assert vault_file is not None
    assert not vault_file.exists()
