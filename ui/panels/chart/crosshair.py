"""The chart's crosshair and data window, and the bid/ask lines of a bar chart.

MT5's crosshair shows the time and price under the mouse and, in its Data Window, the
bar under it (open, high, low, close, spread, tick volume). Here one dashed vertical and
horizontal line follow the mouse over the plot, and a small label at the plot's top
left (the data window) shows what the panel reports for that point: the bar under the
mouse, or on the tick view the nearest tick's bid, ask and spread. The text comes from
a callback of the panel, which knows the data; this module only places things.
"""

from __future__ import annotations

from collections.abc import Callable

import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QLabel

from ui.theme import Theme

#: What the data window shows for a point (x: UTC s, y: price); None hides it.
Describe = Callable[[float, float], str | None]


class Crosshair:
    """Two lines following the mouse over ``plot`` and the data window label."""

    def __init__(self, plot: pg.PlotWidget, describe: Describe) -> None:
        self._plot = plot
        self._describe = describe
        self.vline = pg.InfiniteLine(angle=90, movable=False)
        self.hline = pg.InfiniteLine(angle=0, movable=False)
        for line in (self.vline, self.hline):
            line.setZValue(20)
            line.hide()
            plot.addItem(line, ignoreBounds=True)
        self.window = QLabel(plot)
        self.window.setObjectName("chartDataWindow")
        self.window.setTextFormat(Qt.TextFormat.RichText)
        self.window.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.window.hide()
        #: The last point described (x, y), for tests and a refresh after new data.
        self.at: tuple[float, float] | None = None
        plot.scene().sigMouseMoved.connect(self._moved)

    def apply_theme(self, theme: Theme) -> None:
        pen = pg.mkPen(theme.chart_fg, width=1, style=Qt.PenStyle.DashLine)
        self.vline.setPen(pen)
        self.hline.setPen(pen)
        self.window.setStyleSheet(
            f"QLabel#chartDataWindow {{ background: {theme.chart_bg}; color: {theme.chart_fg};"
            f" border: 1px solid {theme.muted}; padding: 3px 6px; font-family: monospace; }}"
        )

    def _moved(self, pos: QPointF) -> None:
        box = self._plot.getPlotItem().getViewBox()
        if not box.sceneBoundingRect().contains(pos):
            self.hide()
            return
        point = box.mapSceneToView(pos)
        self.show_at(point.x(), point.y())

    def show_at(self, x: float, y: float) -> None:
        """Put the crosshair at (x, y) in data coordinates and describe that point."""
        self.at = (x, y)
        self.vline.setPos(x)
        self.hline.setPos(y)
        self.vline.show()
        self.hline.show()
        self.update_text()

    def update_text(self) -> None:
        if self.at is None:
            return
        text = self._describe(*self.at)
        if text is None:
            self.window.hide()
            return
        if self.window.text() != text:
            self.window.setText(text)
            self.window.adjustSize()
        # Top left of the plot area, clear of the price axis.
        area = self._plot.getPlotItem().getViewBox().sceneBoundingRect()
        origin = self._plot.mapFromScene(area.topLeft())
        self.window.move(origin.x() + 6, origin.y() + 4)
        self.window.show()
        self.window.raise_()

    def hide(self) -> None:
        self.at = None
        self.vline.hide()
        self.hline.hide()
        self.window.hide()


class QuoteLines:
    """Horizontal bid and ask lines, labelled with their price, on a bar chart."""

    def __init__(self, plot: pg.PlotWidget) -> None:
        # The bid's label under its line, the ask's above: they never overlap.
        self.bid = pg.InfiniteLine(
            angle=0, movable=False, label="Bid {value:.5f}", labelOpts={"anchors": [(1, 0)] * 2}
        )
        self.ask = pg.InfiniteLine(
            angle=0, movable=False, label="Ask {value:.5f}", labelOpts={"anchors": [(1, 1)] * 2}
        )
        for line in (self.bid, self.ask):
            line.setZValue(10)
            line.label.setPosition(1.0)  # at the right edge, by the price axis
            line.hide()
            plot.addItem(line, ignoreBounds=True)
        self._digits = 5

    def apply_theme(self, theme: Theme) -> None:
        for line, colour in ((self.bid, theme.bid), (self.ask, theme.ask)):
            line.setPen(pg.mkPen(colour, width=1))
            line.label.setColor(colour)

    def set_quote(self, bid: float | None, ask: float | None, digits: int) -> None:
        if digits != self._digits:
            self._digits = digits
            self.bid.label.setFormat(f"Bid {{value:.{digits}f}}")
            self.ask.label.setFormat(f"Ask {{value:.{digits}f}}")
        for line, value in ((self.bid, bid), (self.ask, ask)):
            if value is None:
                line.hide()
                continue
            if line.value() != value:
                line.setValue(value)
            line.show()

    def hide(self) -> None:
        self.bid.hide()
        self.ask.hide()
