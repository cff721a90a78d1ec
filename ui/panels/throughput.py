"""Throughput and latency over time: is capture keeping up, and is it getting slower?

Two stacked charts share one time axis: ticks per second (the total and one curve per
worker, so a worker that went quiet stands out) above the tick-to-collector latency
percentiles. The data is the monitor's history as the frame's snapshot carries it
(``SessionSnapshot.monitor.series``: read-only arrays at 1 s resolution), which advances
once a second; a render between two monitor ticks returns after one integer comparison,
so the panel costs nothing at display rate. The history belongs to the session, so it
survives Capture ▸ Restart (Ctrl+R); only the workers of the current pool have a curve
and a legend entry (a worker that is gone, or the backfill's "worker 0", has none).
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor, QKeySequence, QPen
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.session import DesktopSession, SessionSnapshot
from app.session_view import (
    LATENCY_SERIES_NAMES,
    TOTAL_SERIES,
    WORKER_PREFIX,
    FloatArray,
    MonitorView,
    SeriesView,
)
from ui.panels.base import Panel
from ui.tasks import TaskRunner
from ui.theme import Theme

#: ``(minutes, label)`` of the span selector; the 1 s history keeps an hour.
SPANS: tuple[tuple[int, str], ...] = ((1, "1 min"), (5, "5 min"), (15, "15 min"), (60, "60 min"))
DEFAULT_SPAN_MINUTES = 5

#: ``TOTAL_SERIES`` (tps.total) is the same measure as the worker series, so the total
#: is the sum of the worker curves drawn under it.
P50_SERIES, P99_SERIES, ACK_P99_SERIES = LATENCY_SERIES_NAMES
#: ``series name -> (legend label, theme colour name, dashed)``; values are seconds.
LATENCY_SERIES: dict[str, tuple[str, str, bool]] = {
    P50_SERIES: ("tick→collector p50", "info", False),
    P99_SERIES: ("tick→collector p99", "warn", False),
    ACK_P99_SERIES: ("collector→ack p99", "muted", True),
}
#: Hue step between consecutive workers (the golden ratio): neighbours never look alike,
#: whatever the pool size, without a fixed list of colours to run out of.
_HUE_STEP = 0.618033988749895


def _worker_pen(worker_id: int) -> QPen:
    hue = (0.02 + (worker_id - 1) * _HUE_STEP) % 1.0
    pen = QPen(QColor.fromHsvF(hue, 0.6, 0.95), 1)
    pen.setCosmetic(True)  # a width in pixels, whatever the zoom (as pg.mkPen makes it)
    return pen


def _new_curve(plot: pg.PlotItem, name: str, pen: QPen) -> pg.PlotDataItem:
    curve = plot.plot(name=name, pen=pen)
    curve.setClipToView(True)
    curve.setDownsampling(auto=True, method="peak")
    return curve


def _format_ms(seconds: object) -> str:
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        ms = float(seconds) * 1000
        return f"{ms:.1f} ms" if ms < 100 else f"{ms:,.0f} ms"
    return "– ms"


class ThroughputPanel(Panel):
    """Ticks/s (total and per worker) and latency percentiles for the chosen span."""

    title = "Throughput"
    object_name = "throughput"
    shortcut = "Alt+3"
    default_area = Qt.DockWidgetArea.BottomDockWidgetArea

    def __init__(
        self, session: DesktopSession, tasks: TaskRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(session, tasks, parent)
        self._span_minutes = DEFAULT_SPAN_MINUTES
        # What the last render drew: redrawing waits until the monitor ticks again.
        self._drawn_version = -1
        self._drawn_workers: tuple[int, ...] = ()
        self._shown = False
        self._dirty = True
        self._last: SessionSnapshot | None = None

        self.header = QLabel("Waiting for the monitor…")
        self.header.setToolTip(
            "Latest second: ticks per second captured by all workers, and the median and "
            "99th percentile of the tick-to-collector latency"
        )
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.span_combo = QComboBox()
        for minutes, label in SPANS:
            self.span_combo.addItem(label, minutes)
        self.span_combo.setCurrentIndex(
            next(i for i, (m, _) in enumerate(SPANS) if m == DEFAULT_SPAN_MINUTES)
        )
        self.span_combo.setToolTip("How much history the charts show (1 s resolution)")
        self.span_combo.currentIndexChanged.connect(self._span_changed)
        self.live_action = QAction("Live", self)
        self.live_action.setCheckable(True)
        self.live_action.setChecked(True)
        self.live_action.setShortcut(QKeySequence("Ctrl+L"))
        self.live_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.live_action.setToolTip(
            "Keep the charts on the latest span, scrolling as time passes (Ctrl+L). "
            "Panning or zooming a chart leaves live mode; this button returns to it."
        )
        self.live_action.toggled.connect(self._live_toggled)
        self.addAction(self.live_action)
        self.live_button = QToolButton()
        self.live_button.setDefaultAction(self.live_action)
        span_label = QLabel("&Span:")
        span_label.setBuddy(self.span_combo)

        top = QHBoxLayout()
        top.setContentsMargins(6, 4, 6, 0)
        top.addWidget(self.header, 1)
        top.addWidget(span_label)
        top.addWidget(self.span_combo)
        top.addWidget(self.live_button)

        orphans_before = set(QApplication.topLevelWidgets())
        self.graphics = pg.GraphicsLayoutWidget(parent=self)
        self.graphics.setToolTip(
            "Drag to pan, wheel to zoom, right-click for the chart menu; "
            "the small 'A' button at the bottom left returns to auto range"
        )
        self.tps_plot: pg.PlotItem = self.graphics.addPlot(
            row=0, col=0, axisItems={"bottom": pg.DateAxisItem()}
        )
        self.latency_plot: pg.PlotItem = self.graphics.addPlot(
            row=1, col=0, axisItems={"bottom": pg.DateAxisItem()}
        )
        self.latency_plot.setXLink(self.tps_plot)
        self.tps_plot.getAxis("bottom").setStyle(showValues=False)
        self.tps_plot.setLabel("left", "ticks/s")
        self.latency_plot.setLabel("left", "latency", units="ms")
        self.latency_plot.getAxis("left").enableAutoSIPrefix(False)
        for plot in (self.tps_plot, self.latency_plot):
            # No grid: pyqtgraph draws it as part of the axes, and repainting four
            # gridded axes each second cost ~30 ms of the loop (bench gui's p99 lag).
            plot.showGrid(x=False, y=False)
            plot.setMouseEnabled(x=True, y=False)
            plot.setMenuEnabled(True)
            plot.hideButtons()  # the Live button replaces pyqtgraph's auto-range "A"
            plot.setAutoVisible(y=True)  # y fits what is in view, also when zoomed in
            plot.getViewBox().sigRangeChangedManually.connect(self._user_moved)
        self.tps_legend = self.tps_plot.addLegend(offset=(8, 4), colCount=3)
        self.latency_legend = self.latency_plot.addLegend(offset=(8, 4), colCount=3)

        self.total_curve = _new_curve(self.tps_plot, "total", pg.mkPen(self.theme.text, width=2))
        #: One curve per worker id, created when the worker's series first appears.
        self.worker_curves: dict[int, pg.PlotDataItem] = {}
        self.latency_curves: dict[str, pg.PlotDataItem] = {
            name: _new_curve(self.latency_plot, label, self._latency_pen(colour, dashed))
            for name, (label, colour, dashed) in LATENCY_SERIES.items()
        }

        self._adopt_orphans(orphans_before)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.graphics, 1)
        self.apply_theme(self.theme)

    def _adopt_orphans(self, before: set[QWidget]) -> None:
        """Give pyqtgraph's parentless menus and their control widgets this panel as parent.

        pyqtgraph makes its context menus as top-level widgets that live as long as the
        Python plot objects do; as children of the panel they go when the panel goes.
        """
        for widget in QApplication.topLevelWidgets():
            if widget not in before and widget is not self and widget.parent() is None:
                widget.setParent(self, widget.windowFlags())

    # ------------------------------------------------------------------ rendering
    def render(self, snap: SessionSnapshot) -> None:  # type: ignore[override]
        self._last = snap
        view = snap.monitor
        if view is None:
            if self._shown or self._dirty:
                self._clear()
                self.header.setText(
                    "Capture stopped" if not snap.running else "Monitoring is off in the settings"
                )
                self._shown, self._dirty = False, False
                self._show_span_to_now()
            return
        workers = tuple(sorted(w.worker_id for w in snap.workers))
        if (
            view.series.version == self._drawn_version
            and workers == self._drawn_workers
            and not self._dirty
        ):
            return
        self._drawn_version, self._drawn_workers = view.series.version, workers
        self._shown, self._dirty = True, False
        self._draw(view, workers)

    def _draw(self, view: MonitorView, workers: tuple[int, ...]) -> None:
        series = view.series
        span = self._span_minutes * 60.0
        start = self._start_of_span(series, span)
        self._set(self.total_curve, series, TOTAL_SERIES, start)
        # Curves of workers that are no longer in the pool go, legend and all.
        for worker_id in [w for w in self.worker_curves if w not in workers]:
            self._remove_worker_curve(worker_id)
        for worker_id in workers:
            curve = self.worker_curves.get(worker_id)
            if curve is None:
                curve = self._add_worker_curve(worker_id)
            self._set(curve, series, f"{WORKER_PREFIX}{worker_id}", start)
        for name, curve in self.latency_curves.items():
            self._set(curve, series, name, start, scale=1000.0)
        if self.live_action.isChecked() and np.isfinite(start):
            end = start + span + 1.0  # a point stands for the second that starts there
            self.tps_plot.setXRange(end - span, end, padding=0)
        elif not np.isfinite(start):
            self._show_span_to_now()
        tps = view.number(TOTAL_SERIES)
        tps_text = f"{tps:,.0f} ticks/s" if tps is not None else "– ticks/s"
        p50, p99 = _format_ms(view.number(P50_SERIES)), _format_ms(view.number(P99_SERIES))
        self.header.setText(f"{tps_text} · p50 {p50} · p99 {p99}")

    def _show_span_to_now(self) -> None:
        """No point to draw: the time axis shows the span up to now, empty, rather than
        pyqtgraph's default 0…1 s (drawn as "00.050 … 00.950")."""
        end = time.time()
        self.tps_plot.setXRange(end - self._span_minutes * 60.0, end, padding=0)

    @staticmethod
    def _start_of_span(series: SeriesView, span: float) -> float:
        """The span ends at the newest point of any series (the history's horizon)."""
        total = series.get(TOTAL_SERIES)
        if total is not None and total[0].size:
            return float(total[0][-1]) - span
        return -np.inf

    @staticmethod
    def _set(
        curve: pg.PlotDataItem,
        series: SeriesView,
        name: str,
        start: float,
        scale: float = 1.0,
    ) -> None:
        data = series.get(name)
        if data is None:
            curve.setData(np.empty(0), np.empty(0))
            return
        times, values = data
        first = int(np.searchsorted(times, start, side="left"))
        x: FloatArray = np.ascontiguousarray(times[first:], dtype=np.float64)
        y: FloatArray = np.ascontiguousarray(values[first:], dtype=np.float64)
        if scale != 1.0:
            y = y * scale
        curve.setData(x, y)

    def _remove_worker_curve(self, worker_id: int) -> None:
        curve = self.worker_curves.pop(worker_id)
        self.tps_plot.removeItem(curve)  # and from the legend
        self.tps_legend.removeItem(curve)

    def legend_labels(self) -> list[str]:
        """The Ticks/s legend's entries, top to bottom (for tests and screenshots)."""
        return [label.text for _, label in self.tps_legend.items]

    def _add_worker_curve(self, worker_id: int) -> pg.PlotDataItem:
        curve = _new_curve(self.tps_plot, f"worker {worker_id}", _worker_pen(worker_id))
        curve.setZValue(-1)  # the total stays on top
        self.worker_curves[worker_id] = curve
        # Workers show up in whatever order their first batch arrived: list them by id.
        self.tps_legend.clear()
        self.tps_legend.addItem(self.total_curve, "total")
        for wid in sorted(self.worker_curves):
            self.tps_legend.addItem(self.worker_curves[wid], f"worker {wid}")
        return curve

    def _clear(self) -> None:
        for curve in self.worker_curves.values():
            self.tps_plot.removeItem(curve)  # and from the legend
        self.worker_curves.clear()
        empty = np.empty(0)
        self.total_curve.setData(empty, empty)
        for curve in self.latency_curves.values():
            curve.setData(empty, empty)

    # ------------------------------------------------------------------ controls
    @property
    def span_minutes(self) -> int:
        return self._span_minutes

    def _span_changed(self, index: int) -> None:
        self._span_minutes = int(self.span_combo.itemData(index))
        self._dirty = True
        if self.live_action.isChecked():
            self._redraw()
        else:
            self.live_action.setChecked(True)  # a new span is a request to see it

    def _live_toggled(self, live: bool) -> None:
        if live:
            self._dirty = True
            self._redraw()

    def _redraw(self) -> None:
        """Draw the last frame's snapshot again (a control changed between frames)."""
        if self._last is not None:
            self.render(self._last)
        else:
            self.refresh()

    def _user_moved(self, *_: object) -> None:
        self.live_action.setChecked(False)

    # ------------------------------------------------------------------ theme
    def _latency_pen(self, colour: str, dashed: bool) -> QPen:
        pen: QPen = pg.mkPen(self.theme.color(colour), width=1.5)
        if dashed:
            pen.setStyle(Qt.PenStyle.DashLine)
        return pen

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        self.graphics.setBackground(theme.chart_bg)
        for plot in (self.tps_plot, self.latency_plot):
            for side in ("left", "bottom"):
                axis = plot.getAxis(side)
                axis.setPen(pg.mkPen(theme.chart_fg))
                axis.setTextPen(pg.mkPen(theme.chart_fg))
        for legend in (self.tps_legend, self.latency_legend):
            legend.setLabelTextColor(theme.chart_fg)
            for _, label in legend.items:
                label.setText(label.text, color=theme.chart_fg)  # re-render in the new colour
            backdrop = theme.color("chart_bg")
            backdrop.setAlpha(200)
            legend.setBrush(pg.mkBrush(backdrop))
        self.total_curve.setPen(pg.mkPen(theme.text, width=2))
        for name, (_, colour, dashed) in LATENCY_SERIES.items():
            self.latency_curves[name].setPen(self._latency_pen(colour, dashed))
