"""The welcome note: what runs on a first start, how to connect a real terminal, where
the files are.

Why non-modal: on a first start capture is already running on the embedded default (a
simulated terminal streaming into the reference backend inside the app); the user should
see the window working behind the note, not a dialog that blocks it. The note is shown
on the first start and, until "Don't show again" is ticked, on later starts while every
terminal is still simulated: that is when the question "is this real data?" comes up.
Once a real terminal is configured it is never shown again uninvited.

The choice is kept in the window's layout file (``window-layout.ini`` next to the
settings), so it moves and resets together with the rest of the window's state.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.session import DesktopSession

#: Key in the layout file; True once the user ticked "Don't show again".
DONT_SHOW_KEY = "welcome/dont_show"


def layout_settings(session: DesktopSession) -> QSettings:
    return QSettings(str(session.layout_path), QSettings.Format.IniFormat)


def welcome_wanted(session: DesktopSession, settings: QSettings | None = None) -> bool:
    """Whether to greet: first start, or still on simulated terminals, unless dismissed."""
    settings = settings if settings is not None else layout_settings(session)
    if str(settings.value(DONT_SHOW_KEY, "false")).lower() == "true":
        return False
    if session.first_run:
        return True
    return all(t.kind == "simulated" for t in session.config.terminals)


def _running_text(session: DesktopSession) -> str:
    config = session.config
    snap = session.snapshot()
    kinds = {t.kind for t in config.terminals}
    symbols = sorted({s for t in config.terminals for s in t.symbols})
    if kinds == {"simulated"}:
        terminal = (
            "a <b>simulated MetaTrader&nbsp;5 terminal</b> (generated ticks, not a market "
            "feed) answering the same API as the real one"
        )
    else:
        terminal = f"terminals of kind {', '.join(sorted(kinds))}"
    backend = config.backend
    if not backend.enabled:
        where = "Ticks are captured and cached here; streaming to a backend is off."
    elif (problem := snap.backend_problem) is not None:
        where = (
            f"<b>The reference backend could not be started</b> ({html.escape(problem[1])}). "
            + (
                "Ticks are kept in the spool on disk and sent when a data bridge answers at "
                if backend.spool_disk_mb > 0
                else "Ticks wait in memory (no spool on disk) for a data bridge at "
            )
            + f"{html.escape(backend.bridge_url)}."
        )
    elif snap.running and not snap.embedded_backend:
        where = f"Ticks are streamed to the data bridge at {html.escape(backend.bridge_url)}."
    elif backend.embedded in ("auto", "always"):
        where = (
            "Ticks are streamed to the <b>reference backend</b> started inside the app "
            f"(data bridge {html.escape(backend.bridge_url)}) unless one already runs there."
        )
    else:
        where = f"Ticks are streamed to the data bridge at {html.escape(backend.bridge_url)}."
    return (
        f"Capture is running with {config.pool.size} worker processes on {terminal}, "
        f"for {html.escape(', '.join(symbols))}. {where}"
    )


def _how_to_text() -> str:
    return (
        "<b>To capture from a real MetaTrader&nbsp;5 terminal</b> (Windows, with "
        "<code>pip install 'trading-client[mt5]'</code>):"
        "<ol>"
        "<li><b>File ▸ Settings…</b> (Ctrl+,): add a terminal of kind <i>mt5</i> with the "
        "path of its <code>terminal64.exe</code>, the login and the broker's server.</li>"
        "<li><b>File ▸ Credentials…</b> (Ctrl+Shift+K): store the account's password as "
        "<code>mt5/&lt;terminal name&gt;</code>; it goes to the system keyring or an "
        "encrypted file, never into the settings.</li>"
        "</ol>"
        "<code>trading-client doctor</code> checks this machine and the settings."
    )


def _paths_text(session: DesktopSession) -> str:
    rows = session.file_locations()
    cells = "".join(
        f"<tr><td>{html.escape(label)}</td><td><code>{html.escape(str(path))}</code></td></tr>"
        for label, path in rows
    )
    return f"<b>Where the files are</b><table cellspacing=4>{cells}</table>"


class WelcomeDialog(QDialog):
    """The note itself; ``open_settings``/``open_credentials`` are the window's actions."""

    def __init__(
        self,
        session: DesktopSession,
        settings: QSettings,
        parent: QWidget | None = None,
        *,
        open_settings: Callable[[], None] | None = None,
        open_credentials: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("welcomeDialog")
        self.setWindowTitle("Welcome to Trading Client")
        self.setModal(False)
        self._settings = settings
        self.setMinimumWidth(640)
        layout = QVBoxLayout(self)
        layout.setSpacing(12)
        title = QLabel("<h3>Welcome to Trading Client</h3>", self)
        layout.addWidget(title)
        self.labels: list[QLabel] = []
        for text in (_running_text(session), _how_to_text(), _paths_text(session)):
            label = QLabel(text, self)
            label.setWordWrap(True)
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            layout.addWidget(label)
            self.labels.append(label)
        self.dont_show = QCheckBox("Don't show again", self)
        self.dont_show.setObjectName("welcomeDontShow")
        self.dont_show.setChecked(str(settings.value(DONT_SHOW_KEY, "false")).lower() == "true")
        # Saved at once: quitting with the note still open must keep the choice too.
        self.dont_show.toggled.connect(self._remember)
        layout.addWidget(self.dont_show)
        buttons = QDialogButtonBox(self)
        self.settings_button: QPushButton | None = None
        self.credentials_button: QPushButton | None = None
        if open_settings is not None:
            self.settings_button = buttons.addButton(
                "Open Settings…", QDialogButtonBox.ButtonRole.ActionRole
            )
            self.settings_button.clicked.connect(open_settings)
        if open_credentials is not None:
            self.credentials_button = buttons.addButton(
                "Open Credentials…", QDialogButtonBox.ButtonRole.ActionRole
            )
            self.credentials_button.clicked.connect(open_credentials)
        close = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.setDefault(True)
        close.clicked.connect(self.close)
        layout.addWidget(buttons)
        # adjustSize() sizes word-wrapped labels for a narrower width than the dialog
        # gets, which left a blank band under the text: take the height for the width.
        self.adjustSize()
        width = max(self.width(), self.minimumWidth())
        height = layout.heightForWidth(width)
        if height > 0:
            self.resize(width, height)

    def refresh_running(self, session: DesktopSession) -> None:
        """Say what runs once capture has started (the note opens before it does, and
        the embedded backend may not have started)."""
        self.labels[0].setText(_running_text(session))

    def text(self) -> str:
        """Everything the note says, as plain text (for tests and screen readers' sake)."""
        return "\n".join(label.text() for label in self.labels)

    def _remember(self, checked: bool) -> None:
        self._settings.setValue(DONT_SHOW_KEY, checked)
        self._settings.sync()


def show_welcome(window: QWidget, session: DesktopSession) -> WelcomeDialog | None:
    """Show the note over ``window`` when it is due; the dialog, or None."""
    settings = layout_settings(session)
    if not welcome_wanted(session, settings):
        return None
    dialog = WelcomeDialog(
        session,
        settings,
        window,
        open_settings=getattr(window, "open_settings", None),
        open_credentials=getattr(window, "open_credentials", None),
    )
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog
