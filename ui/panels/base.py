"""What every dock panel is: a widget that renders the session's state when asked.

The window owns one render timer (display rate, see :data:`ui.window.RENDER_INTERVAL_MS`) and
calls :meth:`Panel.refresh` on each visible panel; panels never subscribe to per-tick
events. A refresh reads the latest state (collector stats, pool health, monitor
metrics...) and updates the widgets only where something changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from app.session import DesktopSession
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

    def refresh(self) -> None:
        """Render the latest state; called at display rate while the panel is visible."""

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
