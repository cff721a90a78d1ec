"""What every dock panel is: a widget that renders the session's state when asked.

The window owns one render timer (display rate, see :data:`ui.window.RENDER_INTERVAL_MS`): it
asks the session for one :class:`~app.session.SessionSnapshot` per frame and calls
:meth:`Panel.render` with it on each visible panel, so every panel of a frame shows the
same instant; panels never subscribe to per-tick events and never reach into the core.
A render compares the snapshot with what it drew last and updates the widgets only where
something changed. Intents go through the session's methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from app.session import DesktopSession, SessionSnapshot
from ui.tasks import TaskRunner
from ui.theme import DARK, Theme


class Panel(QWidget):
    #: Title of the dock (and of its View-menu entry).
    title: ClassVar[str] = ""
    #: Stable ``objectName`` of the dock: the saved layout refers to docks by it.
    object_name: ClassVar[str] = ""
    #: Shortcut that shows and focuses the panel, e.g. ``"Alt+1"``.
    shortcut: ClassVar[str] = ""
    default_area: ClassVar[Qt.DockWidgetArea] = Qt.DockWidgetArea.LeftDockWidgetArea
    #: Refreshed even while hidden (a tabbed-away Alerts panel must still count alerts
    #: in its dock title); only for panels whose refresh is cheap between changes.
    refresh_when_hidden: ClassVar[bool] = False

    #: The dock title changed (e.g. the Alerts panel shows its unacknowledged count).
    title_changed = Signal(str)

    def __init__(
        self, session: DesktopSession, tasks: TaskRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.tasks = tasks
        self.theme: Theme = DARK
        self.setObjectName(f"{self.object_name}Panel")

    def render(self, snap: SessionSnapshot) -> None:  # type: ignore[override]  # not QWidget.render
        """Draw ``snap`` (the frame's snapshot); called at display rate while visible.

        The default is for a panel that reads on its own (the tick chart until it reads
        through the session; the Journal, which polls the session's journal ring).
        """
        self.refresh()

    def refresh(self) -> None:
        """Draw the latest state now, outside the window's frame (a panel shown alone,
        tests): one snapshot asked for this panel only."""
        self.render(self.session.snapshot())

    def apply_theme(self, theme: Theme) -> None:
        """Switch colours; panels that draw with theme colours override this."""
        self.theme = theme

    def dock_title(self) -> str:
        return self.title

    def view_state(self) -> dict[str, Any]:
        """The user's view choices (JSON-able), saved with the window layout."""
        return {}

    def restore_view_state(self, state: Mapping[str, Any]) -> None:
        """Undo of :meth:`view_state`; must ignore unknown or malformed entries."""

    def first_view(self) -> None:
        """The view a new user meets (the window has no saved choices for this panel)."""

    def add_action(
        self, text: str, shortcut: str | QKeySequence, tip: str, slot: Callable[[], object]
    ) -> QAction:
        """An action of this panel: its shortcut works while the panel has the focus, and
        its tooltip names the shortcut (toolbar buttons and context menus reuse it)."""
        action = QAction(text, self)
        keys = QKeySequence(shortcut)
        action.setShortcut(keys)
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.setToolTip(f"{tip} ({keys.toString(QKeySequence.SequenceFormat.NativeText)})")
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action
