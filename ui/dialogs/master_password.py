"""Asking for the master password of the credential vault file.

The password goes from the line edit straight into a :class:`~app.security.secret.Secret`
and the line edit is emptied at once (on OK, Cancel or close), so the plaintext is not
left in a widget; it never reaches a label, a tooltip, a log line or an exception text.

Two ways to ask: :meth:`MasterPasswordDialog.ask_async` from a coroutine on the running
loop (what the window and the other dialogs use: the dialog is opened, not executed),
and :meth:`MasterPasswordDialog.ask`, a blocking ``exec()`` for code that runs before the
loop does.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from app.security.secret import Secret
from app.session import MIN_MASTER_PASSWORD_LENGTH
from ui.dialogs import palette_theme, set_message, wait_finished
from ui.theme import Theme

SHOW_SHORTCUT = "Alt+S"


class PasswordField(QWidget):
    """A masked line edit with a Show/Hide toggle (Alt+S), for any password."""

    def __init__(self, placeholder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(4)
        self.line = QLineEdit(self)
        self.line.setEchoMode(QLineEdit.EchoMode.Password)
        self.line.setPlaceholderText(placeholder)
        # No context menu: it would offer to copy the plaintext while it is shown.
        self.line.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
        self.line.setToolTip(
            f"{placeholder}. Typed characters are masked; {SHOW_SHORTCUT} shows them."
        )
        row.addWidget(self.line, 1)
        self.toggle = QToolButton(self)
        self.toggle.setObjectName("showPassword")
        self.toggle.setCheckable(True)
        self.toggle.setText("Show")
        self.toggle.setToolTip(f"Show or hide the password as typed ({SHOW_SHORTCUT})")
        self.toggle.toggled.connect(self.set_shown)
        row.addWidget(self.toggle, 0)
        # A shortcut of its own: a button's shortcut "animates" the click and toggles
        # only 100 ms later, after the next keystroke may already have landed.
        self.shortcut = QShortcut(QKeySequence(SHOW_SHORTCUT), self, self.toggle.toggle)
        self.setFocusProxy(self.line)
        self._linked: list[QLineEdit] = []

    def link(self, other: QLineEdit) -> None:
        """Another line edit (the confirmation) shown and hidden with this one."""
        self._linked.append(other)

    def set_shown(self, shown: bool) -> None:
        mode = QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password
        for line in (self.line, *self._linked):
            line.setEchoMode(mode)
        self.toggle.setText("Hide" if shown else "Show")
        if self.toggle.isChecked() != shown:
            self.toggle.setChecked(shown)

    def text(self) -> str:
        return self.line.text()

    def clear(self) -> None:
        """Empty the field, its undo history with it (``setText`` resets the history)."""
        self.line.setText("")
        for line in self._linked:
            line.setText("")
        self.set_shown(False)


class MasterPasswordDialog(QDialog):
    """The master password of the vault file; for a new file, chosen and typed twice."""

    def __init__(self, parent: QWidget | None = None, *, new_vault: bool, error: str = "") -> None:
        super().__init__(parent)
        self.new_vault = new_vault
        self.theme: Theme = palette_theme()
        self._secret: Secret | None = None
        self.setObjectName("masterPasswordDialog")
        self.setWindowTitle("New credential vault" if new_vault else "Unlock the credential vault")
        layout = QVBoxLayout(self)

        intro = QLabel(self)
        intro.setWordWrap(True)
        if new_vault:
            intro.setText(
                "Choose a master password for the new credential vault. It encrypts every "
                "password stored on this machine and cannot be recovered if forgotten."
            )
        else:
            intro.setText("Enter the master password of the credential vault.")
        layout.addWidget(intro)

        self.error_label = QLabel(self)
        self.error_label.setObjectName("masterPasswordError")
        self.error_label.setWordWrap(True)
        layout.addWidget(self.error_label)
        self.set_error(error)

        form = QFormLayout()
        self.password = PasswordField("Master password", self)
        form.addRow("&Master password", self.password)
        self.confirm: QLineEdit | None = None
        if new_vault:
            self.confirm = QLineEdit(self)
            self.confirm.setEchoMode(QLineEdit.EchoMode.Password)
            self.confirm.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
            self.confirm.setPlaceholderText("The same password again")
            self.confirm.setToolTip("Type the master password again, to rule out a typo")
            self.password.link(self.confirm)
            self.confirm.textChanged.connect(self._update)
            form.addRow("&Confirm", self.confirm)
        layout.addLayout(form)

        self.hint = QLabel(self)
        self.hint.setObjectName("masterPasswordHint")
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText("Create vault" if new_vault else "Unlock")
        self.ok_button.setToolTip(
            "Create the encrypted vault file with this password (Enter)"
            if new_vault
            else "Open the vault with this password (Enter)"
        )
        cancel = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        cancel.setToolTip("Leave the vault locked (Esc)")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        self.password.line.textChanged.connect(self._update)
        self.password.setFocus()
        self.setMinimumWidth(420)
        self._update()

    # ------------------------------------------------------------------ state
    def problem(self) -> str:
        """Why OK is not possible yet ("" when it is)."""
        text = self.password.text()
        if not text:
            return "Type the master password."
        if self.new_vault:
            if len(text) < MIN_MASTER_PASSWORD_LENGTH:
                return f"At least {MIN_MASTER_PASSWORD_LENGTH} characters ({len(text)} so far)."
            if self.confirm is not None and self.confirm.text() != text:
                return "The two passwords are not the same yet."
        return ""

    def _update(self) -> None:
        problem = self.problem()
        self.ok_button.setEnabled(not problem)
        if self.new_vault:
            rule = f"At least {MIN_MASTER_PASSWORD_LENGTH} characters, typed twice."
            set_message(
                self.hint, problem or rule, self.theme.warn if problem else self.theme.muted
            )
        else:
            set_message(self.hint, "", None)

    def set_error(self, text: str) -> None:
        """Why the last attempt failed (the vault's own words, as a sentence)."""
        set_message(self.error_label, text[:1].upper() + text[1:], self.theme.bad)

    # ------------------------------------------------------------------ answers
    def accept(self) -> None:
        if self.problem():
            return
        self._secret = Secret(self.password.text())
        self.password.clear()
        super().accept()

    def done(self, result: int) -> None:
        self.password.clear()  # Cancel and close too: never leave it in the widget
        super().done(result)

    def secret(self) -> Secret | None:
        """What the user entered, once accepted (None after Cancel)."""
        return self._secret

    @staticmethod
    async def ask_async(
        parent: QWidget | None, *, new_vault: bool, error: str = ""
    ) -> Secret | None:
        """Open the dialog over ``parent`` and wait for it without blocking the loop."""
        dialog = MasterPasswordDialog(parent, new_vault=new_vault, error=error)
        try:
            result = await wait_finished(dialog)
            accepted = result == QDialog.DialogCode.Accepted.value
            return dialog.secret() if accepted and isValid(dialog) else None
        finally:
            if isValid(dialog):
                dialog.deleteLater()

    @staticmethod
    def ask(parent: QWidget | None, *, new_vault: bool, error: str = "") -> Secret | None:
        """Blocking variant (``exec()``) for code that runs before the event loop does;
        inside the running loop use :meth:`ask_async`."""
        dialog = MasterPasswordDialog(parent, new_vault=new_vault, error=error)
        try:
            accepted = dialog.exec() == QDialog.DialogCode.Accepted.value
            return dialog.secret() if accepted else None
        finally:
            dialog.deleteLater()


__all__ = ["MasterPasswordDialog", "PasswordField"]
