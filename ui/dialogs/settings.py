"""The settings editor: every setting of the schema, checked as it is typed.

The form is generated from the settings' JSON Schema (:mod:`ui.dialogs.schema_form`), so
it never falls behind the core. What is valid is decided by the core alone: ~200 ms
after the last keystroke the document goes to
:meth:`~app.session.DesktopSession.validate`, and every problem it names is shown in
red under its field (and listed, as links to the fields, at the top). OK and Apply stay
disabled while anything is wrong, so an invalid file can never be written from here.

Apply hands the settings to :meth:`~app.session.DesktopSession.apply_settings`, which
saves them atomically and restarts capture; "Sync with gateway" runs one sync step and,
on a conflict, shows both sides before anything is overwritten. Errors are one line of
text in the dialog, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from app.config import ClientConfig
from app.security.secret import Secret
from app.session import (
    ConfigError,
    DesktopSession,
    InvalidConfig,
    MasterPasswordRequired,
    MissingCredentialError,
    SyncResult,
    VaultError,
    VaultLocked,
)
from ui.dialogs import palette_theme, set_message, wait_finished
from ui.dialogs.master_password import MasterPasswordDialog
from ui.dialogs.schema_form import SchemaForm, summary_html
from ui.dialogs.sync_conflict import EndpointChangeDialog, SyncConflictDialog
from ui.tasks import TaskRunner
from ui.theme import Theme

log = logging.getLogger(__name__)

#: Quiet time after the last edit before the document is validated.
VALIDATE_DELAY_MS = 200


class _Cancelled(Exception):  # noqa: N818 -- the user said no, not a fault
    """The user closed the master-password prompt; nothing was done."""


def error_text(exc: BaseException) -> str:
    """One readable line for a failure (the core's messages are written to be shown)."""
    if isinstance(exc, MasterPasswordRequired):
        return "The credential vault needs its master password; nothing was changed."
    if isinstance(exc, InvalidConfig):
        return "The settings are not valid: " + "; ".join(exc.problems)
    if isinstance(exc, MissingCredentialError):
        # The core names the command-line fix; in the window it is the Credentials dialog.
        text, _, command = str(exc).partition(": run 'trading-client credentials set ")
        return (
            f"{text}: store it with Credentials… ({command.rstrip(chr(39))})" if command else text
        )
    if isinstance(exc, VaultError | ConfigError | LookupError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return f"{type(exc).__name__}: {exc}"


class SettingsDialog(QDialog):
    """Edit, check, apply and sync the settings of ``session``."""

    def __init__(
        self, session: DesktopSession, tasks: TaskRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.tasks = tasks
        self.theme: Theme = palette_theme()
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self._config: ClientConfig | None = None  # the form's content, when valid
        self._busy = False
        self._close_after_apply = False
        self.problems: list[tuple[str, str]] = []
        self.conflict_dialog: SyncConflictDialog | None = None
        self.endpoint_dialog: EndpointChangeDialog | None = None

        layout = QVBoxLayout(self)
        self.summary = QLabel(self)
        self.summary.setObjectName("settingsProblems")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.linkActivated.connect(self._reveal)
        self.summary.setToolTip("Click a problem to go to its setting")
        self.summary.hide()
        layout.addWidget(self.summary)

        self.form = SchemaForm(
            ClientConfig.model_json_schema(), ClientConfig().model_dump(mode="json"), self
        )
        self.form.edited.connect(self._edited)
        layout.addWidget(self.form, 1)

        self.status = QLabel(self)
        self.status.setObjectName("settingsStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.hide()
        layout.addWidget(self.status)

        buttons = QHBoxLayout()
        self.sync_button = self._button(
            "Sync with gateway",
            "Pull or push the settings through the API gateway; a conflict is shown before "
            "anything is overwritten (Ctrl+G). Apply or discard your edits first.",
            self.sync,
        )
        self.ok_button = self._button(
            "OK", "Apply the settings and close (Ctrl+Enter)", lambda: self.apply(close=True)
        )
        self.apply_button = self._button(
            "Apply",
            "Save the settings (atomically, with a backup) and restart capture with them (Ctrl+S)",
            self.apply,
        )
        self.cancel_button = self._button(
            "Cancel", "Discard the edits and close (Esc)", self.reject
        )
        buttons.addWidget(self.sync_button)
        buttons.addStretch(1)
        buttons.addWidget(self.ok_button)
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)

        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, lambda: self.apply(close=True))
        QShortcut(QKeySequence("Ctrl+S"), self, self.apply)
        QShortcut(QKeySequence("Ctrl+G"), self, self.sync)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(VALIDATE_DELAY_MS)
        self._timer.timeout.connect(self.validate_now)
        self.resize(860, 640)
        self.reload()

    def _button(self, text: str, tip: str, slot: Callable[[], None]) -> QPushButton:
        button = QPushButton(text, self)
        button.setToolTip(tip)
        # No default button: Enter in a field must not apply half-typed settings.
        button.setAutoDefault(False)
        button.clicked.connect(lambda: slot())  # noqa: PLW0108 - not clicked(bool) into it
        return button

    def apply_theme(self, theme: Theme) -> None:
        self.theme = theme
        self.validate_now()

    # ------------------------------------------------------------------ editing
    def reload(self) -> None:
        """Show the session's current settings, dropping any edits."""
        self.form.set_document(self.session.config.model_dump(mode="json"))
        self.validate_now()

    def _edited(self) -> None:
        # OK and Apply keep the last verdict until the check runs; they check again
        # anyway before doing anything.
        self._timer.start()

    def validate_now(self) -> ClientConfig | None:
        """Check the form's document now; the valid settings, or None."""
        self._timer.stop()
        config: ClientConfig | None = None
        lines: list[str] = []
        try:
            config = self.session.validate(self.form.document())
        except InvalidConfig as exc:
            lines = list(exc.problems)
        self.problems = self.form.show_problems(lines, self.theme.bad)
        if self.problems:
            config = None
            self.summary.setText(summary_html(self.problems, self.theme.bad))
            self.summary.setStyleSheet(f"color: {self.theme.bad};")
            self.summary.show()
        else:
            self.summary.hide()
        self._config = config
        self._update_buttons()
        return config

    def _reveal(self, path: str) -> None:
        self.form.reveal(path)

    @property
    def dirty(self) -> bool:
        """The form differs from the settings in use (an invalid form always does)."""
        return self._config is None or self._config != self.session.config

    def _update_buttons(self) -> None:
        valid = self._config is not None
        self.ok_button.setEnabled(not self._busy and valid)
        self.apply_button.setEnabled(not self._busy and valid and self.dirty)
        self.sync_button.setEnabled(not self._busy and not self.dirty)
        self.form.setEnabled(not self._busy)

    def _set_busy(self, busy: bool, message: str = "") -> None:
        self._busy = busy
        if message:
            set_message(self.status, message, self.theme.muted)
        self._update_buttons()

    def _report(self, text: str, good: bool | None) -> None:
        colour = {True: self.theme.ok, False: self.theme.bad, None: self.theme.muted}[good]
        set_message(self.status, text, colour)

    # ------------------------------------------------------------------ apply
    def apply(self, close: bool = False) -> None:
        """Save and restart capture (then close, for OK); nothing while invalid."""
        if self._busy:
            return
        config = self.validate_now()
        if config is None:
            return
        if config == self.session.config:
            if close:
                self.accept()
            return
        self._close_after_apply = close
        self._set_busy(True, "Saving the settings and restarting capture…")
        self.tasks.run(
            self._apply(config),
            "apply settings",
            on_done=self._applied,
            on_error=self._apply_failed,
        )

    async def _apply(self, config: ClientConfig) -> bool:
        was_running = self.session.runtime is not None
        try:
            changed = await self.session.apply_settings(config)
        except MasterPasswordRequired:
            # Saved, but capture could not restart without the terminal passwords.
            if await self._unlock("") is None:
                raise _Cancelled from None
            changed = await self.session.apply_settings(config)
            if was_running and self.session.runtime is None:
                await self.session.start()
        return changed

    def _applied(self, changed: bool) -> None:
        if not isValid(self):  # closed and deleted while capture restarted
            return
        self._set_busy(False)
        state = str(self.session.state)
        where = self.session.store.path
        if state == "running":
            self._report(f"Saved to {where}; capture restarted with the new settings.", True)
        else:
            self._report(f"Saved to {where}; capture is {state}.", state != "failed")
        self.validate_now()
        if self._close_after_apply:
            self.accept()

    def _apply_failed(self, exc: BaseException) -> None:
        if not isValid(self):
            log.warning("applying the settings failed: %s", error_text(exc))
            return
        self._set_busy(False)
        if isinstance(exc, _Cancelled):
            self._report(
                "Saved, but capture is stopped: the credential vault stayed locked.", False
            )
        else:
            log.warning("applying the settings failed: %s", error_text(exc))
            self._report(f"Not applied: {error_text(exc)}", False)
        self.validate_now()

    async def _unlock(self, error: str) -> Secret | None:
        """Ask for the master password; the secret is handed to the session."""
        secret = await MasterPasswordDialog.ask_async(
            self, new_vault=not self.session.vault_file_exists(), error=error
        )
        if secret is not None:
            self.session.set_master_password(secret)
        return secret

    # ------------------------------------------------------------------ sync
    def sync(self) -> None:
        """One sync step with the gateway (disabled while the form has unapplied edits)."""
        self.validate_now()
        if self._busy or self.dirty:
            return
        self._start_sync(None)

    def _start_sync(self, take: Literal["local", "remote"] | None) -> None:
        what = {None: "Syncing with the gateway…", "local": "Storing your settings at the gateway…"}
        self._set_busy(True, what.get(take, "Taking the gateway's settings…"))
        self.tasks.run(
            self._sync(take), "sync settings", on_done=self._synced, on_error=self._sync_failed
        )

    async def _sync(self, take: Literal["local", "remote"] | None) -> SyncResult | None:
        error = ""
        while True:
            try:
                return await self.session.sync_settings(take)
            except MasterPasswordRequired:
                pass
            except VaultLocked as exc:
                # The gateway login could not be read: forget the password, ask again.
                self.session.set_master_password(None)
                error = str(exc)
            if await self._unlock(error) is None:
                return None

    def _synced(self, result: SyncResult | None) -> None:
        if not isValid(self):
            return
        self._set_busy(False)
        if result is None:
            self._report("Not synced: the credential vault stayed locked.", False)
            return
        if result.status == "conflict":
            self._report(result.message, None)
            self._show_conflict(result)
            return
        if result.status == "endpoints_kept":
            self.reload()  # the rest of the gateway's settings was taken
            self._report("The gateway's changes of where data goes were not applied.", None)
            self._ask_endpoints(result)
            return
        if result.ok:
            self.reload()
            self._report(f"Gateway: {result.message}", True)
            return
        text = result.message
        if result.status == "offline":
            text = f"The gateway cannot be reached: {result.message}"
        self._report(f"Not synced: {text}", False)

    def _sync_failed(self, exc: BaseException) -> None:
        log.warning("settings sync failed: %s", error_text(exc))
        if not isValid(self):
            return
        self._set_busy(False)
        self._report(f"Not synced: {error_text(exc)}", False)

    def _show_conflict(self, result: SyncResult) -> None:
        dialog = SyncConflictDialog(result, self)
        self.conflict_dialog = dialog
        self.tasks.run(self._await_choice(dialog), "settings conflict")

    def _ask_endpoints(self, result: SyncResult) -> None:
        dialog = EndpointChangeDialog(result, self)
        self.endpoint_dialog = dialog
        self.tasks.run(self._await_endpoints(dialog), "endpoint change")

    async def _await_endpoints(self, dialog: EndpointChangeDialog) -> None:
        try:
            await wait_finished(dialog)
            choice = dialog.choice if isValid(dialog) else None
        finally:
            if isValid(self):
                self.endpoint_dialog = None
            if isValid(dialog):
                dialog.deleteLater()
        if not isValid(self):
            return
        if choice == "remote":
            self._start_sync("remote")
        else:
            self._report("Kept this machine's endpoints; nothing was redirected.", None)

    async def _await_choice(self, dialog: SyncConflictDialog) -> None:
        try:
            await wait_finished(dialog)
            choice = dialog.choice if isValid(dialog) else None
        finally:
            if isValid(self):
                self.conflict_dialog = None
            if isValid(dialog):
                dialog.deleteLater()
        if not isValid(self):
            return
        if choice is None:
            self._report("Conflict left open: nothing was changed on either side.", None)
        else:
            self._start_sync(choice)

    # ------------------------------------------------------------------ closing
    def reject(self) -> None:
        """Esc and Cancel drop the edits; not while an apply or sync is under way (the
        user would not learn how it ended)."""
        if self._busy:
            self._report("Still working; the dialog can be closed when this is done.", None)
            return
        self._timer.stop()
        super().reject()


__all__ = ["VALIDATE_DELAY_MS", "SettingsDialog", "error_text"]
