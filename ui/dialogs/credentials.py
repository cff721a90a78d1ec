"""The credential vault from the window: which passwords are stored, store one, test it.

Names follow the vault's convention: ``mt5/<terminal>`` for a broker login of a terminal
in the settings, ``gateway/<user>`` for the API gateway. A password typed here goes from
the masked field into a :class:`~app.security.secret.Secret` for the one call that needs
it, and the field is emptied once it is stored and when the dialog closes; it is never
put in a label, a tooltip, a log line or an error text. Every vault call goes through the
session, off the GUI thread (scrypt takes a noticeable moment).

When the vault is a file, the master password is asked first (chosen and confirmed for
a new file); a wrong one is said so and asked again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from app.security.secret import Secret
from app.session import (
    ConnectionTest,
    DesktopSession,
    MasterPasswordRequired,
    VaultLocked,
    gateway_credential_name,
    terminal_credential_name,
)
from ui.dialogs import palette_theme, set_message
from ui.dialogs.master_password import SHOW_SHORTCUT, MasterPasswordDialog, PasswordField
from ui.dialogs.settings import error_text
from ui.tasks import TaskRunner
from ui.theme import Theme

log = logging.getLogger(__name__)
_T = TypeVar("_T")
Kind = Literal["mt5", "gateway"]


class _Locked(Exception):  # noqa: N818 -- the user left the vault locked
    """The master-password prompt was cancelled."""


class CredentialsDialog(QDialog):
    """Store, test and delete the passwords of ``session``'s terminals and gateway login."""

    def __init__(
        self, session: DesktopSession, tasks: TaskRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.tasks = tasks
        self.theme: Theme = palette_theme()
        self.unlocked = False
        self._busy = False
        self._started = False
        self.confirm_box: QMessageBox | None = None
        self.setObjectName("credentialsDialog")
        self.setWindowTitle("Credentials")
        layout = QVBoxLayout(self)

        self.status = QLabel(self)
        self.status.setObjectName("credentialsStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)

        body = QHBoxLayout()
        layout.addLayout(body, 1)

        left = QVBoxLayout()
        left.addWidget(QLabel("Stored in the vault", self))
        self.names = QListWidget(self)
        self.names.setObjectName("credentialNames")
        self.names.setToolTip(
            "Credentials in the vault (names only; passwords are never shown). Select one "
            "to replace or test it; Del deletes it; right-click for more."
        )
        self.names.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.names.customContextMenuRequested.connect(self._names_menu)
        self.names.currentItemChanged.connect(self._name_selected)
        self.names.setMinimumWidth(200)
        left.addWidget(self.names, 1)
        self.unlock_button = QPushButton("Unlock…", self)
        self.unlock_button.setToolTip("Enter the master password of the credential vault")
        self.unlock_button.setAutoDefault(False)
        self.unlock_button.clicked.connect(self.load)
        self.unlock_button.hide()
        left.addWidget(self.unlock_button)
        body.addLayout(left)

        right = QVBoxLayout()
        self.form = QFormLayout()
        self.kind = QComboBox(self)
        self.kind.addItem("MT5 terminal", "mt5")
        self.kind.addItem("API gateway", "gateway")
        self.kind.setToolTip(
            "MT5 terminal: the broker password of a terminal's login (stored as mt5/<terminal>); "
            "API gateway: the password of the gateway user (stored as gateway/<user>)"
        )
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.form.addRow("&Kind", self.kind)

        self.terminal = QComboBox(self)
        self.terminal.setToolTip(
            "The terminal (from the settings) whose login this password is for"
        )
        self.terminal.currentIndexChanged.connect(self._form_changed)
        self.form.addRow("&Terminal", self.terminal)

        self.username = QLineEdit(self)
        self.username.setPlaceholderText("gateway user name")
        self.username.setToolTip(
            "The API gateway user; the settings' backend.gateway_username is the one synced"
        )
        self.username.textChanged.connect(self._form_changed)
        self.form.addRow("&User", self.username)

        self.stored_as = QLabel(self)
        self.stored_as.setToolTip("The name the password is stored under in the vault")
        self.form.addRow("Stored as", self.stored_as)

        self.password = PasswordField("Password", self)
        self.password.line.textChanged.connect(self._form_changed)
        self.form.addRow("&Password", self.password)
        right.addLayout(self.form)

        self.test_result = QLabel(self)
        self.test_result.setObjectName("credentialsResult")
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.test_result.hide()
        right.addWidget(self.test_result)
        right.addStretch(1)
        body.addLayout(right, 1)

        buttons = QHBoxLayout()
        self.test_button = self._button(
            "Test connection",
            "Log in once with the typed password (or, for a terminal, without one) and "
            "report the result; nothing is stored (Ctrl+T)",
            self.test_connection,
        )
        self.save_button = self._button(
            "Save", "Store the password in the vault under the name shown (Ctrl+S)", self.save
        )
        self.delete_button = self._button(
            "Delete…", "Delete the selected credential from the vault (Del)", self.delete
        )
        self.close_button = self._button(
            "Close", "Close; the password field is emptied (Esc)", self.reject
        )
        buttons.addWidget(self.test_button)
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)

        QShortcut(QKeySequence("Ctrl+S"), self, self.save)
        QShortcut(QKeySequence("Ctrl+T"), self, self.test_connection)
        delete = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.names, self.delete)
        delete.setContext(Qt.ShortcutContext.WidgetShortcut)

        for term in session.config.terminals:
            login = f"login {term.login}" if term.login is not None else "no login"
            where = f" on {term.server}" if term.server else ""
            self.terminal.addItem(f"{term.name} ({term.kind}, {login}{where})", term.name)
        self.username.setText(session.config.backend.gateway_username or "")
        self._kind_changed()
        self.resize(720, 400)
        self._update_buttons()

    def _button(self, text: str, tip: str, slot: Callable[[], None]) -> QPushButton:
        button = QPushButton(text, self)
        button.setToolTip(tip)
        button.setAutoDefault(False)
        button.clicked.connect(slot)
        return button

    def apply_theme(self, theme: Theme) -> None:
        self.theme = theme

    # ------------------------------------------------------------------ the form
    @property
    def kind_value(self) -> Kind:
        return "gateway" if self.kind.currentData() == "gateway" else "mt5"

    def credential_name(self) -> str:
        """The vault name for the form's choice ("" while incomplete)."""
        if self.kind_value == "mt5":
            terminal = self.terminal.currentData()
            return terminal_credential_name(terminal) if terminal else ""
        user = self.username.text().strip()
        return gateway_credential_name(user) if user else ""

    def _kind_changed(self) -> None:
        mt5 = self.kind_value == "mt5"
        self.form.setRowVisible(self.terminal, mt5)
        self.form.setRowVisible(self.username, not mt5)
        self._form_changed()

    def _form_changed(self) -> None:
        name = self.credential_name()
        self.stored_as.setText(name or "—")
        self._sync_selection()
        set_message(self.test_result, "", None)
        self._update_buttons()

    def _sync_selection(self) -> None:
        """The list shows which stored credential the form is about (Delete acts on it)."""
        name = self.credential_name()
        matches = self.names.findItems(name, Qt.MatchFlag.MatchExactly) if name else []
        current = self.names.currentItem()
        if (current.text() if current is not None else None) != (name if matches else None):
            self.names.blockSignals(True)
            if matches:
                self.names.setCurrentItem(matches[0])
            else:
                self.names.setCurrentRow(-1)
                self.names.clearSelection()
            self.names.blockSignals(False)

    def _update_buttons(self) -> None:
        ready = self.unlocked and not self._busy
        name = self.credential_name()
        has_password = bool(self.password.text())
        # Saving into a locked (or not yet created) vault asks for its master password then.
        self.save_button.setEnabled(not self._busy and bool(name) and has_password)
        gateway_needs = self.kind_value == "gateway" and not has_password
        self.test_button.setEnabled(not self._busy and bool(name) and not gateway_needs)
        self.delete_button.setEnabled(ready and self.names.currentItem() is not None)
        self.names.setEnabled(self.unlocked)

    def _name_selected(self, item: QListWidgetItem | None) -> None:
        if item is None:
            self._update_buttons()
            return
        kind, _, label = item.text().partition("/")
        if kind == "mt5":
            self.kind.setCurrentIndex(self.kind.findData("mt5"))
            index = self.terminal.findData(label)
            if index < 0:  # stored for a terminal no longer in the settings
                self.terminal.addItem(f"{label} (not in the settings)", label)
                index = self.terminal.count() - 1
            self.terminal.setCurrentIndex(index)
        elif kind == "gateway":
            self.kind.setCurrentIndex(self.kind.findData("gateway"))
            self.username.setText(label)
        self._update_buttons()

    def _names_menu(self, pos: QPoint) -> None:
        item = self.names.itemAt(pos)
        if item is None:
            return
        menu = QMenu(self.names)
        test = QAction("Test connection", menu)
        test.triggered.connect(self.test_connection)
        remove = QAction("Delete…", menu)
        remove.triggered.connect(self.delete)
        menu.addAction(test)
        menu.addAction(remove)
        menu.popup(self.names.viewport().mapToGlobal(pos))

    def _set_busy(self, busy: bool, message: str = "") -> None:
        self._busy = busy
        if message:
            set_message(self.status, message, self.theme.muted)
        self._update_buttons()

    def _report(self, text: str, good: bool | None, label: QLabel | None = None) -> None:
        colour = {True: self.theme.ok, False: self.theme.bad, None: self.theme.muted}[good]
        set_message(label or self.status, text, colour)

    # ------------------------------------------------------------------ the vault
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._started:
            self._started = True
            # No prompt before the user asks for something: a vault that needs its master
            # password waits for Unlock… (or Save); one that does not is listed at once.
            if self.session.needs_master_password():
                self._show_locked("")
            else:
                self.load()

    def _show_locked(self, prefix: str) -> None:
        """The neutral state of a vault that is not open: what it takes to open it."""
        if self.session.vault_file_exists():
            self.unlock_button.setText("Unlock…")
            self.unlock_button.setToolTip("Enter the master password of the credential vault")
            text = "The credential vault is locked: Unlock… lists what it holds."
        else:
            self.unlock_button.setText("Create vault…")
            self.unlock_button.setToolTip(
                "Choose the master password of a new credential vault (or type a password "
                "and Save: the vault is created then)"
            )
            text = "No credential vault yet: Create vault…, or type a password and Save."
        self.unlock_button.show()
        self._report(prefix + text, None)

    def load(self) -> None:
        """Unlock the vault if needed and list what it holds."""
        self._set_busy(True, "Opening the credential vault…")
        self.tasks.run(
            self._vault(self.session.credential_names),
            "open the credential vault",
            on_done=self._loaded,
            on_error=self._failed,
        )

    async def _unlock(self, error: str) -> None:
        secret = await MasterPasswordDialog.ask_async(
            self, new_vault=not self.session.vault_file_exists(), error=error
        )
        if secret is None:
            raise _Locked
        self.session.set_master_password(secret)

    async def _vault(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """``call`` on the vault, asking for the master password first when needed and
        again after a wrong one (the session forgets a wrong password)."""
        error = ""
        while True:
            if self.session.needs_master_password():
                await self._unlock(error)
            try:
                return await call()
            except MasterPasswordRequired:
                error = ""
            except VaultLocked as exc:
                error = str(exc)
                self.session.set_master_password(None)

    def _loaded(self, names: list[str]) -> None:
        if not isValid(self):
            return
        self.unlocked = True
        self.unlock_button.hide()
        self._set_busy(False)
        self._show_names(names)
        where = "the encrypted vault file" if self.session.vault_is_file() else "the system keyring"
        count = f"{len(names)} credential{'s' if len(names) != 1 else ''}"
        self._report(f"{count} in {where}.", None)

    def _show_names(self, names: list[str]) -> None:
        self.names.blockSignals(True)
        self.names.clear()
        for name in names:
            self.names.addItem(name)
        self.names.blockSignals(False)
        self._sync_selection()
        self._update_buttons()

    def _failed(self, exc: BaseException) -> None:
        if not isValid(self):
            return
        self._set_busy(False)
        if isinstance(exc, _Locked):
            # A cancelled prompt is the user's choice, not an error: a neutral line.
            self.unlocked = self.unlocked and not self.session.needs_master_password()
            if not self.unlocked:
                self._show_locked("Nothing was read or changed. ")
            else:
                self._report("Nothing was changed.", None)
        else:
            log.warning("credential vault: %s", error_text(exc))
            self._report(error_text(exc), False)
        self._update_buttons()

    def save(self) -> None:
        name = self.credential_name()
        text = self.password.text()
        if self._busy or not name or not text:
            return
        secret = Secret(text)
        del text
        self._set_busy(True, f"Storing {name}…")

        async def store() -> list[str]:
            await self.session.store_credential(name, secret)
            return await self.session.credential_names()

        def stored(names: list[str]) -> None:
            if not isValid(self):
                return
            self.password.clear()
            self.unlocked = True  # saving opened (or created) the vault
            self.unlock_button.hide()
            self._set_busy(False)
            self._show_names(names)
            self._report(f"{name} stored in the vault.", True)

        self.tasks.run(self._vault(store), f"store {name}", on_done=stored, on_error=self._failed)

    def delete(self) -> None:
        item = self.names.currentItem()
        if self._busy or not self.unlocked or item is None:
            return
        name = item.text()
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete credential",
            f"Delete {name} from the credential vault?\n\nWhatever uses it (a terminal login, "
            "the gateway sync) will fail until a password is stored again.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.confirm_box = box

        def answered() -> None:
            yes = box.clickedButton() is box.button(QMessageBox.StandardButton.Yes)
            self.confirm_box = None
            if yes:
                self._delete(name)

        box.finished.connect(answered)
        box.open()

    def _delete(self, name: str) -> None:
        self._set_busy(True, f"Deleting {name}…")

        async def remove() -> list[str]:
            await self.session.delete_credential(name)
            return await self.session.credential_names()

        def removed(names: list[str]) -> None:
            if not isValid(self):
                return
            self._set_busy(False)
            self._show_names(names)
            self._report(f"{name} deleted from the vault.", True)

        self.tasks.run(
            self._vault(remove), f"delete {name}", on_done=removed, on_error=self._failed
        )

    # ------------------------------------------------------------------ testing
    def test_connection(self) -> None:
        name = self.credential_name()
        if self._busy or not name:
            return
        text = self.password.text()
        secret = Secret(text) if text else None
        del text
        if self.kind_value == "mt5":
            terminal = str(self.terminal.currentData())
            what = f"Logging in to {terminal}…"
            coro = self.session.test_terminal(terminal, secret)
        else:
            if secret is None:
                self._report("Type the gateway password to test it.", False, self.test_result)
                return
            user = self.username.text().strip()
            what = f"Logging in to the gateway as {user}…"
            coro = self.session.test_gateway(user, secret)
        self._busy = True
        self._update_buttons()
        self._report(what, None, self.test_result)

        def tested(outcome: ConnectionTest) -> None:
            if not isValid(self):
                return
            self._busy = False
            self._update_buttons()
            self._report(outcome.message, outcome.ok, self.test_result)

        def failed(exc: BaseException) -> None:
            if not isValid(self):
                return
            self._busy = False
            self._update_buttons()
            self._report(f"Test failed: {error_text(exc)}", False, self.test_result)

        self.tasks.run(coro, f"test {name}", on_done=tested, on_error=failed)

    # ------------------------------------------------------------------ closing
    def done(self, result: int) -> None:
        self.password.clear()
        super().done(result)


__all__ = ["SHOW_SHORTCUT", "CredentialsDialog"]
