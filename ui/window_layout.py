"""The window's docks and their layout: built from the panel types, sized on the first
show, saved beside the settings and put back at the next start; the colour theme.

The first of the three layers of :class:`ui.window.MainWindow` (layout → actions →
window), split by job so each stays readable: this one owns the docks and knows nothing
of menus, frames or quitting.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QShowEvent
from PySide6.QtWidgets import QApplication, QDockWidget, QMainWindow

from app.session import DesktopSession
from ui.panels.base import Panel
from ui.tasks import TaskRunner
from ui.theme import THEMES, Theme, apply_theme

log = logging.getLogger(__name__)

#: Bumped when the set of docks changes, so an old saved layout is not forced on new docks.
LAYOUT_VERSION = 2


def default_panels() -> list[type[Panel]]:
    """The panels in their default order (imported here: each module is heavy-ish)."""
    from ui.panels.alerts import AlertsPanel  # noqa: PLC0415
    from ui.panels.history import HistoryPanel  # noqa: PLC0415
    from ui.panels.journal import JournalPanel  # noqa: PLC0415
    from ui.panels.market_watch import MarketWatch  # noqa: PLC0415
    from ui.panels.pool import PoolPanel  # noqa: PLC0415
    from ui.panels.signals import SignalsPanel  # noqa: PLC0415
    from ui.panels.throughput import ThroughputPanel  # noqa: PLC0415
    from ui.panels.tick_chart import TickChart  # noqa: PLC0415
    from ui.panels.trade import TradePanel  # noqa: PLC0415

    return [
        MarketWatch,
        TickChart,
        ThroughputPanel,
        PoolPanel,
        AlertsPanel,
        JournalPanel,
        TradePanel,
        HistoryPanel,
        SignalsPanel,
    ]


class WindowLayout(QMainWindow):
    """Docks, their saved layout and the theme (set up by :class:`ui.window.MainWindow`)."""

    session: DesktopSession
    tasks: TaskRunner
    panels: dict[str, Panel]
    docks: dict[str, QDockWidget]
    theme: Theme
    #: View ▸ Dark theme (made by the actions layer; checked to follow the theme).
    theme_action: QAction
    _layout: QSettings
    _sized: bool
    _default_state: QByteArray

    # ------------------------------------------------------------------ building
    def _build_docks(self, panel_types: Sequence[type[Panel]]) -> None:
        previous: dict[Qt.DockWidgetArea, QDockWidget] = {}
        for cls in panel_types:
            panel = cls(self.session, self.tasks)
            dock = QDockWidget(panel.dock_title(), self)
            dock.setObjectName(cls.object_name)
            dock.setWidget(panel)
            dock.setFeatures(
                QDockWidget.DockWidgetFeature.DockWidgetClosable
                | QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            )
            panel.title_changed.connect(dock.setWindowTitle)
            area = cls.default_area
            if area in previous:
                self.tabifyDockWidget(previous[area], dock)
            else:
                self.addDockWidget(area, dock)
            previous.setdefault(area, dock)
            self.panels[cls.object_name] = panel
            self.docks[cls.object_name] = dock
        for first in previous.values():
            first.raise_()
        watch, chart = self.panels.get("marketWatch"), self.panels.get("tickChart")
        if watch is not None and chart is not None:
            watch.symbol_selected.connect(chart.set_symbol)  # type: ignore[attr-defined]

    def selected_symbol(self) -> str | None:
        """The symbol the trader is looking at: the chart's (it follows Market Watch's
        selection), else the first row selected in Market Watch."""
        symbol = getattr(self.panels.get("tickChart"), "symbol", "")
        if symbol:
            return str(symbol)
        watch = self.panels.get("marketWatch")
        selected: list[str] = getattr(watch, "selected_symbols", list)()
        return str(selected[0]) if selected else None

    # ------------------------------------------------------------------ layout
    def _size_default_docks(self) -> None:
        """Quotes and the chart get the room; the bottom tabs (throughput, pool, alerts,
        journal) a third of the height; Market Watch about 45 % of the width."""
        left = [
            d
            for n, d in self.docks.items()
            if type(self.panels[n]).default_area is Qt.DockWidgetArea.LeftDockWidgetArea
        ]
        bottom = [
            d
            for n, d in self.docks.items()
            if type(self.panels[n]).default_area is Qt.DockWidgetArea.BottomDockWidgetArea
        ]
        if left:
            self.resizeDocks(left[:1], [int(self.width() * 0.45)], Qt.Orientation.Horizontal)
            if bottom:
                # With no central widget the top row gives way only when it is resized
                # itself (resizing the bottom dock has no effect).
                self.resizeDocks(left[:1], [int(self.height() * 0.6)], Qt.Orientation.Vertical)

    def _restore_layout(self) -> bool:
        """Put back the saved geometry and docks; False when there was none to use."""
        geometry = self._layout.value("geometry")
        state = self._layout.value("state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        self._restore_panel_views()
        if not isinstance(state, QByteArray):
            return False
        if not self.restoreState(state, LAYOUT_VERSION):
            log.warning("the saved window layout does not fit this version; using the default")
            return False
        return True

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if not self._sized:
            self._sized = True
            # Dock sizes can be set only once the layout has a size to share out.
            QTimer.singleShot(0, self._size_default_docks)

    def _restore_panel_views(self) -> None:
        for name, panel in self.panels.items():
            raw = self._layout.value(f"panels/{name}")
            if not isinstance(raw, str):
                panel.first_view()
                continue
            try:
                state = json.loads(raw)
                if isinstance(state, dict):
                    panel.restore_view_state(state)
            except Exception:  # a damaged entry costs that panel's choices, nothing more
                log.warning("ignoring the saved view of the %s panel", panel.title)

    def save_layout(self) -> None:
        for name, panel in self.panels.items():
            self._layout.setValue(f"panels/{name}", json.dumps(panel.view_state()))
        self._layout.setValue("geometry", self.saveGeometry())
        self._layout.setValue("state", self.saveState(LAYOUT_VERSION))
        self._layout.setValue("theme", self.theme.name)
        self._layout.sync()

    def reset_layout(self) -> None:
        self.restoreState(self._default_state, LAYOUT_VERSION)
        for dock in self.docks.values():
            dock.show()
        self._size_default_docks()

    # ------------------------------------------------------------------ theme
    def _apply_theme(self, theme: Theme) -> None:
        self.theme = theme
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, theme)
        for panel in self.panels.values():
            panel.apply_theme(theme)
        if hasattr(self, "theme_action"):
            self.theme_action.setChecked(theme.name == "dark")

    def _toggle_theme(self) -> None:
        self._apply_theme(THEMES["light" if self.theme.name == "dark" else "dark"])


__all__ = ["LAYOUT_VERSION", "WindowLayout", "default_panels"]
