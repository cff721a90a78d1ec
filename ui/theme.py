"""Dark and light themes: one palette for the widgets, one set of colours for the data.

Colours that carry meaning (up-tick blue, down-tick red, stale grey, worker states,
alert severities) live here and nowhere else, so every panel says the same thing the
same way in both themes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

ThemeName = Literal["dark", "light"]


@dataclass(frozen=True, slots=True)
class Theme:
    name: ThemeName
    window: str
    base: str
    alt_base: str
    text: str
    muted: str
    highlight: str
    up: str
    down: str
    stale: str
    bid: str
    ask: str
    ok: str
    warn: str
    bad: str
    #: A terminal that answers but lost its trade server: neither healthy nor broken.
    offline: str
    info: str
    chart_bg: str
    chart_fg: str

    def color(self, name: str) -> QColor:
        return QColor(getattr(self, name))


DARK = Theme(
    name="dark",
    window="#1e1f22",
    base="#16171a",
    alt_base="#1b1c20",
    text="#dcdfe4",
    muted="#7d828c",
    highlight="#2f5d9e",
    up="#3d8bfd",
    down="#e5484d",
    stale="#6b6f78",
    bid="#3d8bfd",
    ask="#e5484d",
    ok="#30a46c",
    warn="#f5a524",
    bad="#e5484d",
    offline="#a78bfa",
    info="#3d8bfd",
    chart_bg="#121316",
    chart_fg="#a8adb7",
)

LIGHT = Theme(
    name="light",
    window="#f3f4f6",
    base="#ffffff",
    alt_base="#f7f8fa",
    text="#1d2025",
    muted="#6b7280",
    highlight="#bcd3f5",
    up="#1f6feb",
    down="#cf222e",
    stale="#9ca3af",
    bid="#1f6feb",
    ask="#cf222e",
    ok="#1a7f37",
    warn="#b7791f",
    bad="#cf222e",
    offline="#7c3aed",
    info="#1f6feb",
    chart_bg="#ffffff",
    chart_fg="#40454f",
)

THEMES: dict[str, Theme] = {"dark": DARK, "light": LIGHT}


def apply_theme(app: QApplication, theme: Theme) -> None:
    """Fusion style with the theme's palette (the native styles ignore palettes)."""
    app.setStyle("Fusion")
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: theme.window,
        QPalette.ColorRole.WindowText: theme.text,
        QPalette.ColorRole.Base: theme.base,
        QPalette.ColorRole.AlternateBase: theme.alt_base,
        QPalette.ColorRole.Text: theme.text,
        QPalette.ColorRole.Button: theme.window,
        QPalette.ColorRole.ButtonText: theme.text,
        QPalette.ColorRole.ToolTipBase: theme.base,
        QPalette.ColorRole.ToolTipText: theme.text,
        QPalette.ColorRole.Highlight: theme.highlight,
        QPalette.ColorRole.HighlightedText: theme.text,
        QPalette.ColorRole.PlaceholderText: theme.muted,
        QPalette.ColorRole.BrightText: theme.bad,
        QPalette.ColorRole.Link: theme.info,
    }
    for role, color in roles.items():
        p.setColor(role, QColor(color))
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.ButtonText,
    ):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(theme.muted))
    app.setPalette(p)
    pg.setConfigOptions(background=theme.chart_bg, foreground=theme.chart_fg, antialias=False)
