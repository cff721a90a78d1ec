"""Tick Chart: bid and ask of one symbol over the last minutes, or its M1 candles.

Everything drawn is read from the collector's in-memory cache at render time; the chart
never subscribes to ticks. A render that finds no new tick of the shown symbol since the
previous one (the symbol's tick count did not move) touches nothing but, while
following, the time axis once a second. When ticks did arrive, only those new ticks are
copied out of the cache and appended to the window already held (a full read of the
window happens only when the symbol, the window, the mode or the capture changes).

The plot items (two curves, one candle item) are created once and fed with
``setData``/:meth:`CandleItem.set_bars`; :attr:`TickChart.frames` counts those updates
for the window's render benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QRectF, Qt, Slot
from PySide6.QtGui import QAction, QFontMetrics, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.collector import M1, BarArray, Collector, TickCache, empty_bars
from app.runtime import Runtime
from app.session import DesktopSession
from app.ticks import TickArray
from ui.panels._format import (
    DigitsGuess,
    captured_symbols,
    format_datetime_msc,
    format_price,
    profile_digits,
)
from ui.panels.base import Panel
from ui.panels.series import TickSeries
from ui.panels.server_axis import ServerDateAxis
from ui.tasks import TaskRunner
from ui.theme import Theme

#: Choices of the time window, in minutes.
WINDOWS_MIN = (1, 5, 15, 60)
DEFAULT_WINDOW_MIN = 5
#: While following with no new tick, the time axis still moves, this often (s).
FOLLOW_IDLE_S = 1.0
#: Room left right of "now" while following, as a fraction of the window.
RIGHT_MARGIN = 0.02
#: While following, the time axis moves in this many steps per window.
FOLLOW_STEPS = 300
#: Body width of a candle, as a fraction of its period.
CANDLE_BODY = 0.7

Mode = Literal["ticks", "bars"]
F64 = npt.NDArray[np.float64]


class CandleItem(pg.GraphicsObject):  # type: ignore[misc]
    """OHLC candles of bid, one item for all bars, rebuilt only when the bars change.

    Painted from prepared lists of rectangles and lines (not a ``QPicture``, whose
    integer bounding rectangle is useless at FX prices like 1.08512).
    """

    def __init__(self, up: str, down: str, period_s: float = M1 / 1000) -> None:
        super().__init__()
        self._period = period_s
        self._bars: BarArray = empty_bars()
        self._bodies: dict[int, list[QRectF]] = {1: [], -1: []}
        self._wicks: dict[int, list[QLineF]] = {1: [], -1: []}
        self._bounds = QRectF()
        self._pens: dict[int, Any] = {}
        self._brushes: dict[int, Any] = {}
        self.set_colors(up, down)

    @property
    def bars(self) -> BarArray:
        """The bars drawn, oldest first (``BAR_DTYPE``)."""
        return self._bars

    def set_colors(self, up: str, down: str) -> None:
        self._pens = {1: pg.mkPen(up, width=1), -1: pg.mkPen(down, width=1)}
        self._brushes = {1: pg.mkBrush(up), -1: pg.mkBrush(down)}
        self.update()

    def set_bars(self, bars: BarArray) -> bool:
        """Draw ``bars``; returns False (and does nothing) if they are the ones drawn."""
        if len(bars) == len(self._bars) and np.array_equal(bars, self._bars):
            return False
        self.prepareGeometryChange()
        self._bars = bars.copy()
        self._build()
        self.update()
        self.informViewBoundsChanged()
        return True

    def _build(self) -> None:
        bars = self._bars
        self._bodies = {1: [], -1: []}
        self._wicks = {1: [], -1: []}
        if len(bars) == 0:
            self._bounds = QRectF()
            return
        half = self._period * CANDLE_BODY / 2
        t0 = bars["time_msc"] / 1000.0 + self._period / 2
        rows = zip(
            t0.tolist(),
            bars["open"].tolist(),
            bars["high"].tolist(),
            bars["low"].tolist(),
            bars["close"].tolist(),
            strict=True,
        )
        for x, o, h, lo, c in rows:
            side = 1 if c >= o else -1
            self._wicks[side].append(QLineF(x, lo, x, h))
            if c == o:  # a doji: the body is a line
                self._wicks[side].append(QLineF(x - half, o, x + half, o))
            else:
                self._bodies[side].append(QRectF(x - half, min(o, c), 2 * half, abs(c - o)))
        x0 = float(t0[0]) - half
        x1 = float(t0[-1]) + half
        low = float(bars["low"].min())
        high = float(bars["high"].max())
        self._bounds = QRectF(x0, low, x1 - x0, max(high - low, 1e-12))

    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(self._bounds)

    def dataBounds(  # noqa: N802
        self,
        ax: int,
        frac: float = 1.0,
        orthoRange: tuple[float, float] | None = None,  # noqa: N803
    ) -> tuple[float | None, float | None]:
        """Data extent for auto-range; on y only the candles inside the visible x range."""
        bars = self._bars
        if len(bars) == 0:
            return None, None
        x = bars["time_msc"] / 1000.0 + self._period / 2
        if ax == 0:
            half = self._period * CANDLE_BODY / 2
            return float(x[0]) - half, float(x[-1]) + half
        if orthoRange is not None:
            bars = bars[(x >= orthoRange[0]) & (x <= orthoRange[1])]
            if len(bars) == 0:
                return None, None
        return float(bars["low"].min()), float(bars["high"].max())

    def pixelPadding(self) -> float:  # noqa: N802
        return 1.0

    def paint(self, painter: QPainter, *args: Any) -> None:
        for side in (1, -1):
            painter.setPen(self._pens[side])
            painter.setBrush(self._brushes[side])
            if self._wicks[side]:
                painter.drawLines(self._wicks[side])
            if self._bodies[side]:
                painter.drawRects(self._bodies[side])


def window_ticks(cache: TickCache, symbol: str, start_msc: int, hint: int = 1024) -> TickArray:
    """Ticks of ``symbol`` at or after ``start_msc``, read from the end of its ring.

    The ring has no time index; reading ``hint`` ticks from the end and growing the read
    until it reaches back past ``start_msc`` (or the ring's oldest tick) copies little
    more than the window itself.
    """
    if symbol not in cache:
        return cache.snapshot(symbol, 0)
    n = max(int(hint), 16)
    while True:
        ticks = cache.snapshot(symbol, n)
        if len(ticks) < n or (len(ticks) and ticks["time_msc"][0] < start_msc):
            break
        n *= 4
    first = int(np.searchsorted(ticks["time_msc"], start_msc, side="left"))
    return ticks[first:]


class TickChart(Panel):
    """Bid/ask lines (or M1 candles) of one symbol over the last N minutes."""

    title = "Tick Chart"
    object_name = "tickChart"
    shortcut = "Alt+2"
    default_area = Qt.DockWidgetArea.RightDockWidgetArea

    def __init__(
        self,
        session: DesktopSession,
        tasks: TaskRunner,
        parent: QWidget | None = None,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(session, tasks, parent)
        #: Plot updates done (data actually set); the window's benchmark reads it.
        self.frames = 0
        self._now = now
        self._symbol = ""
        self._captured: tuple[str, ...] | None = None
        self._mode: Mode = "ticks"
        self._window_s = DEFAULT_WINDOW_MIN * 60.0
        self._following = True
        self._runtime: object | None = None
        self._key: tuple[object, ...] = ()
        self._seen_ticks = -1
        self._series = TickSeries()
        self._right = 0.0
        self._last_x = 0.0
        self._range_at = float("-inf")
        self._guesses: dict[str, DigitsGuess] = {}
        self._quote: tuple[str, float, float] | None = None

        # -- controls
        self.symbol_combo = QComboBox(self)
        self.symbol_combo.setToolTip("Symbol to plot (the captured symbols)")
        self.symbol_combo.setMinimumContentsLength(8)
        self.symbol_combo.currentTextChanged.connect(self.set_symbol)

        self.window_combo = QComboBox(self)
        for minutes in WINDOWS_MIN:
            self.window_combo.addItem(f"{minutes} min", minutes)
        self.window_combo.setCurrentIndex(WINDOWS_MIN.index(DEFAULT_WINDOW_MIN))
        self.window_combo.setToolTip("How many minutes of ticks the chart shows")
        self.window_combo.currentIndexChanged.connect(self._on_window)

        self.ticks_button = QToolButton(self)
        self.ticks_button.setText("Ticks")
        self.ticks_button.setToolTip("Bid and ask of every tick")
        self.bars_button = QToolButton(self)
        self.bars_button.setText("M1 bars")
        self.bars_button.setToolTip("One-minute candles of the bid (open, high, low, close)")
        self._mode_group = QButtonGroup(self)
        self._mode_group.setExclusive(True)
        for button in (self.ticks_button, self.bars_button):
            button.setCheckable(True)
            button.setAutoRaise(True)
            self._mode_group.addButton(button)
        self.ticks_button.setChecked(True)
        self._mode_group.buttonClicked.connect(self._on_mode_button)

        self.follow_action = QAction("Follow", self)
        self.follow_action.setCheckable(True)
        self.follow_action.setChecked(True)
        self.follow_action.setShortcut(QKeySequence("F"))
        self.follow_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.follow_action.setToolTip(
            "Keep the newest ticks in view (F). Zooming or panning the chart pauses it."
        )
        self.follow_action.toggled.connect(self._on_follow_toggled)
        self.addAction(self.follow_action)
        self.follow_button = QToolButton(self)
        self.follow_button.setDefaultAction(self.follow_action)
        self.follow_button.setAutoRaise(True)

        self.status = QLabel(self)
        self.status.setToolTip("Newest bid and ask of the symbol shown, and the chart's state")
        self.status.setTextFormat(Qt.TextFormat.RichText)

        # -- plot: items created once, fed with setData on refresh
        self.date_axis = ServerDateAxis(orientation="bottom")
        self.plot = pg.PlotWidget(self, axisItems={"bottom": self.date_axis})
        self.plot.setToolTip("Drag to pan, wheel to zoom; F or Follow returns to the newest ticks")
        item = self.plot.getPlotItem()
        item.hideButtons()
        item.setMenuEnabled(False)  # its "View All" etc. would fight with following
        # No grid: pyqtgraph draws it with the axes, whose text would then be repainted
        # with every new tick (the costliest part of a frame, measured).
        for name in ("left", "bottom"):
            # Repainting the plot area next to an axis blits its cached pixmap; its text
            # is drawn again only when its range changes.
            item.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        # A fixed price-axis width: labels growing a digit must not shift the plot.
        left = item.getAxis("left")
        left.setWidth(QFontMetrics(left.font()).horizontalAdvance("000000.000") + 12)
        self.viewbox: pg.ViewBox = item.getViewBox()
        self.viewbox.setAutoVisible(y=True)
        self.viewbox.enableAutoRange(axis=pg.ViewBox.YAxis)
        self.bid_curve: pg.PlotDataItem = item.plot(name="Bid")
        self.ask_curve: pg.PlotDataItem = item.plot(name="Ask")
        for curve in (self.bid_curve, self.ask_curve):
            curve.setClipToView(True)
            curve.setDownsampling(auto=True, method="peak")
        self.candles = CandleItem(self.theme.up, self.theme.down)
        item.addItem(self.candles)
        self.candles.hide()
        self.viewbox.sigRangeChangedManually.connect(self._on_manual_range)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.symbol_combo)
        bar.addWidget(self.window_combo)
        bar.addSpacing(6)
        bar.addWidget(self.ticks_button)
        bar.addWidget(self.bars_button)
        bar.addSpacing(6)
        bar.addWidget(self.follow_button)
        bar.addSpacing(10)
        bar.addWidget(self.status, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addWidget(self.plot, 1)
        self.apply_theme(self.theme)
        self._sync_symbols()

    # ------------------------------------------------------------------ public
    @property
    def symbol(self) -> str:
        return self._symbol

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def following(self) -> bool:
        return self._following

    @property
    def window_s(self) -> float:
        return self._window_s

    @Slot(str)
    def set_symbol(self, symbol: str) -> None:
        """Plot ``symbol`` (connected to Market Watch's selection by the window)."""
        symbol = symbol.strip()
        if not symbol or symbol == self._symbol:
            return
        combo = self.symbol_combo
        if combo.findText(symbol) < 0:
            combo.addItem(symbol)
        if combo.currentText() != symbol:
            combo.blockSignals(True)
            combo.setCurrentText(symbol)
            combo.blockSignals(False)
        self._symbol = symbol
        self.resume_follow()  # another symbol: another price scale, start at "now"
        self._render_now()

    def set_mode(self, mode: Mode) -> None:
        if mode == self._mode:
            return
        self._mode = mode
        (self.bars_button if mode == "bars" else self.ticks_button).setChecked(True)
        ticks = mode == "ticks"
        self.bid_curve.setVisible(ticks)
        self.ask_curve.setVisible(ticks)
        self.candles.setVisible(not ticks)
        self.viewbox.enableAutoRange(axis=pg.ViewBox.YAxis)
        self._render_now()

    def set_window_minutes(self, minutes: int) -> None:
        index = self.window_combo.findData(minutes)
        if index < 0:
            raise ValueError(f"no {minutes} min window; choices: {WINDOWS_MIN}")
        self.window_combo.setCurrentIndex(index)

    def view_state(self) -> dict[str, Any]:
        """Symbol, window and mode, for the saved layout."""
        return {
            "symbol": self._symbol,
            "window_min": round(self._window_s / 60),
            "mode": self._mode,
        }

    def restore_view_state(self, state: Mapping[str, Any]) -> None:
        """Undo of :meth:`view_state`; unknown or malformed entries are ignored."""
        minutes = state.get("window_min")
        if minutes in WINDOWS_MIN:
            self.set_window_minutes(int(minutes))
        mode = state.get("mode")
        if mode in ("ticks", "bars"):
            self.set_mode("bars" if mode == "bars" else "ticks")
        symbol = state.get("symbol")
        if isinstance(symbol, str) and symbol:
            self.set_symbol(symbol)

    @Slot()
    def resume_follow(self) -> None:
        if self.follow_action.isChecked():
            self._on_follow_toggled(True)  # re-anchor at "now" all the same
        else:
            self.follow_action.setChecked(True)  # -> _on_follow_toggled

    def pause_follow(self) -> None:
        self.follow_action.setChecked(False)

    # ------------------------------------------------------------------ rendering
    def refresh(self) -> None:
        self._sync_symbols()
        runtime = self.session.runtime
        symbol = self._symbol
        if runtime is None:
            self._runtime = None
            self._say("Capture is not running")
            return
        if not symbol:
            self._say("No symbol is captured: add symbols in Settings")
            return
        now = self._now()
        stats = runtime.collector.stats.symbols.get(symbol)
        count = stats.ticks if stats is not None else 0
        key = (symbol, self._window_s, self._mode)
        fresh = runtime is not self._runtime or key != self._key or count < self._seen_ticks
        if not fresh and count == self._seen_ticks:
            if self._following and now - self._range_at >= FOLLOW_IDLE_S:
                self._follow(now)
            return
        newest = stats.last_time_msc / 1000 if stats is not None and stats.ticks else now
        self.date_axis.set_zone(runtime.zones.zone(symbol), newest)
        start_msc = int((now - self._window_s) * 1000)
        if self._mode == "ticks":
            self._update_ticks(runtime.collector.cache, symbol, count, fresh, start_msc)
        else:
            self._update_bars(runtime.collector, symbol, start_msc)
        self._runtime, self._key, self._seen_ticks = runtime, key, count
        self.frames += 1
        if self._following:
            self._follow(now)
        self._quote = (symbol, stats.last_bid, stats.last_ask) if stats is not None else None
        if stats is None:
            self._say(self._waiting_text(runtime, symbol, now))
        else:
            self._show_quote(symbol, stats.last_bid, stats.last_ask)
            newest_tick = format_datetime_msc(stats.last_time_msc, runtime.zones.zone(symbol))
            self.status.setToolTip(f"Newest {symbol} tick:\n{newest_tick}")

    def _update_ticks(
        self, cache: TickCache, symbol: str, count: int, fresh: bool, start_msc: int
    ) -> None:
        new = count - self._seen_ticks
        ring_len = len(cache.ring(symbol)) if symbol in cache else 0
        series = self._series
        if fresh or self._seen_ticks < 0 or new > ring_len:
            hint = max(new, 0) + 1024
            ticks = window_ticks(cache, symbol, start_msc, hint)
            series.reset(
                ticks["time_msc"] / 1000.0,
                ticks["bid"].astype(np.float64),
                ticks["ask"].astype(np.float64),
                self._window_s,
            )
        elif new > 0:
            ticks = cache.snapshot(symbol, new)
            series.append(ticks["time_msc"] / 1000.0, ticks["bid"], ticks["ask"], self._window_s)
        series.trim_before(start_msc / 1000.0)
        self._last_x = float(series.x[-1]) if len(series) else 0.0
        self.bid_curve.setData(series.x, series.bid)
        self.ask_curve.setData(series.x, series.ask)

    def _update_bars(self, collector: Collector, symbol: str, start_msc: int) -> None:
        try:
            bars: BarArray = collector.bars(symbol, M1)
        except KeyError:
            self.candles.set_bars(empty_bars())
            self._say("M1 bars are not aggregated by this capture")
            return
        bars = bars[bars["time_msc"] + M1 > start_msc]
        self.candles.set_bars(bars)
        self._last_x = float(bars["time_msc"][-1] + M1) / 1000 if len(bars) else 0.0

    def _follow(self, now: float) -> None:
        # The range moves in steps of 1/300 of the window (1 s for 5 minutes): a step is
        # about a pixel, and the time axis (text, costly to draw) is redrawn once a step
        # instead of every frame. The margin keeps the newest ticks in view meanwhile.
        step = self._window_s / FOLLOW_STEPS
        right = np.ceil((max(now, self._last_x) + self._window_s * RIGHT_MARGIN) / step) * step
        self._range_at = now
        if right == self._right and self._range_valid():
            return
        self._right = float(right)
        self.viewbox.setXRange(right - self._window_s * (1 + RIGHT_MARGIN), right, padding=0)

    def _range_valid(self) -> bool:
        _left, right = self.viewbox.viewRange()[0]
        return bool(abs(right - self._right) < 1e-6)

    def _render_now(self) -> None:
        """Apply a user's choice at once instead of at the next frame."""
        self._key = ()
        if self.isVisible():
            self.refresh()

    def _show_quote(self, symbol: str, bid: float, ask: float) -> None:
        digits = profile_digits(symbol, self.session.config)
        if digits is None:
            digits = self._guesses.setdefault(symbol, DigitsGuess()).observe(bid, ask)
        t = self.theme
        state = "" if self._following else f'  <span style="color:{t.warn}">paused</span>'
        self._say(
            f'<span style="color:{t.bid}">Bid {format_price(bid, digits)}</span>'
            f'&nbsp;&nbsp;<span style="color:{t.ask}">Ask {format_price(ask, digits)}</span>'
            + state
        )

    @staticmethod
    def _waiting_text(runtime: Runtime, symbol: str, now: float) -> str:
        """Why the chart is empty: a closed market says when it opens (server time)."""
        opens = runtime.market_hours.closed_until(symbol, int(now))
        if opens <= now:
            return f"Waiting for the first {symbol} tick…"
        zone = runtime.zones.zone_or_utc(symbol)
        when = time.strftime("%a %H:%M", time.gmtime(zone.to_server_s(opens)))
        return f"{symbol}: market closed, opens {when} server time"

    def _say(self, text: str) -> None:
        if self.status.text() != text:
            self.status.setText(text)

    def apply_theme(self, theme: Theme) -> None:
        super().apply_theme(theme)
        self.plot.setBackground(theme.chart_bg)
        item = self.plot.getPlotItem()
        for name in ("left", "bottom"):
            axis = item.getAxis(name)
            axis.setPen(theme.chart_fg)
            axis.setTextPen(theme.chart_fg)
        self.bid_curve.setPen(pg.mkPen(theme.bid, width=1))
        self.ask_curve.setPen(pg.mkPen(theme.ask, width=1))
        self.candles.set_colors(theme.up, theme.down)

    # ------------------------------------------------------------------ reactions
    def _sync_symbols(self) -> None:
        captured = captured_symbols(self.session.config)
        if captured == self._captured:
            return
        self._captured = captured
        combo = self.symbol_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(list(captured))
        if self._symbol and self._symbol not in captured:
            combo.addItem(self._symbol)
        combo.blockSignals(False)
        if not self._symbol and captured:
            self.set_symbol(captured[0])
        elif self._symbol:
            combo.blockSignals(True)
            combo.setCurrentText(self._symbol)
            combo.blockSignals(False)

    @Slot(int)
    def _on_window(self, index: int) -> None:
        minutes = self.window_combo.itemData(index)
        self._window_s = float(minutes) * 60.0
        self.resume_follow()
        self._render_now()

    @Slot(object)
    def _on_mode_button(self, button: object) -> None:
        self.set_mode("bars" if button is self.bars_button else "ticks")

    @Slot(bool)
    def _on_follow_toggled(self, on: bool) -> None:
        self._following = on
        if on:
            self.viewbox.enableAutoRange(axis=pg.ViewBox.YAxis)
            self._follow(self._now())
        if self._quote is not None:
            self._show_quote(*self._quote)

    @Slot(object)
    def _on_manual_range(self, _mask: object) -> None:
        """The user zoomed or panned: leave the view where they put it."""
        if self._following:
            self.follow_action.setChecked(False)
