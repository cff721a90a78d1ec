"""The chart: a symbol's ticks (bid and ask lines) or its candles, M1 … D1, as MT5 draws them.

Everything drawn comes from the session's immutable snapshots (``DesktopSession.
chart_ticks`` / ``chart_bars``: :class:`~app.history.chart_history.ChartSeries`); the
chart never subscribes to ticks and reaches nothing of the runtime.

* **Tick view** ("Ticks", the window combo): a render with no new tick of the shown
  symbol touches nothing but, while following, the time axis once a second; new ticks
  are appended to the window already held (ui/panels/series.py).
* **Bar timeframes** (M1, M5, M15, M30, H1, H4, D1; buttons, keys 1…7, T for ticks):
  history from the terminal joined with live bars, older pages loaded as the view nears
  the oldest bar, bid/ask lines; see ui/panels/chart/bars_view.py.
* **Crosshair and data window** (ui/panels/chart/crosshair.py): the bar under the mouse
  (time in server time, OHLC, spread, tick volume), or on the tick view the tick there
  (bid, ask, spread).

Plot items are created once and fed with ``setData``/``set_bars``; :attr:`TickChart.frames`
counts those updates for the window's render benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QAction, QFontMetrics, QKeySequence
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

from app.history.chart_history import CHART_TIMEFRAMES, TICKS, ChartSeries
from app.session import DesktopSession
from ui.panels._format import (
    DigitsGuess,
    captured_symbols,
    format_datetime_msc,
    format_price,
    profile_digits,
    server_datetime,
)
from ui.panels.base import Panel
from ui.panels.chart.bars_view import DEFAULT_BARS, BarsView
from ui.panels.chart.candles import CandleItem
from ui.panels.chart.crosshair import Crosshair
from ui.panels.series import TickSeries
from ui.panels.server_axis import ServerDateAxis
from ui.tasks import TaskRunner
from ui.theme import Theme

#: Choices of the tick view's time window, in minutes.
WINDOWS_MIN = (1, 5, 15, 60)
DEFAULT_WINDOW_MIN = 5
#: While following with no new tick, the time axis still moves, this often (s).
FOLLOW_IDLE_S = 1.0
#: Room left right of "now" while following, as a fraction of the window.
RIGHT_MARGIN = 0.02
#: While following, the time axis moves in this many steps per window.
FOLLOW_STEPS = 300

Mode = Literal["ticks", "bars"]
#: The view buttons: the tick view, then MT5's timeframes, with their keys.
VIEWS: tuple[str, ...] = (TICKS, *CHART_TIMEFRAMES)
_KEYS = {TICKS: "T", **{tf: str(i + 1) for i, tf in enumerate(CHART_TIMEFRAMES)}}
_TIPS = {
    TICKS: "Bid and ask of every tick",
    "M1": "One-minute candles",
    "M5": "Five-minute candles",
    "M15": "15-minute candles",
    "M30": "30-minute candles",
    "H1": "Hourly candles",
    "H4": "Four-hour candles (server 00:00, 04:00 …)",
    "D1": "Daily candles (from server midnight)",
}


class TickChart(Panel):
    """Ticks or candles of one symbol, with history, crosshair and data window."""

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
        self._view = TICKS
        self._window_s = DEFAULT_WINDOW_MIN * 60.0
        self._following = True
        self._key: tuple[object, ...] = ()
        self._seen_ticks = -1
        self._series = TickSeries()
        self._right = 0.0
        self._last_x = 0.0
        self._range_at = float("-inf")
        self._guesses: dict[str, DigitsGuess] = {}
        self._quote: tuple[str, float, float] | None = None
        self._visible_bars = float(DEFAULT_BARS)

        # -- controls
        self.symbol_combo = QComboBox(self)
        self.symbol_combo.setToolTip("Symbol to plot (the captured symbols)")
        self.symbol_combo.setMinimumContentsLength(8)
        self.symbol_combo.currentTextChanged.connect(self.set_symbol)

        self.window_combo = QComboBox(self)
        for minutes in WINDOWS_MIN:
            self.window_combo.addItem(f"{minutes} min", minutes)
        self.window_combo.setCurrentIndex(WINDOWS_MIN.index(DEFAULT_WINDOW_MIN))
        self.window_combo.setToolTip("How many minutes of ticks the tick view shows")
        self.window_combo.currentIndexChanged.connect(self._on_window)

        self._view_group = QButtonGroup(self)
        self._view_group.setExclusive(True)
        #: One button per view: "ticks", "M1" … "D1".
        self.view_buttons: dict[str, QToolButton] = {}
        for view in VIEWS:
            button = QToolButton(self)
            button.setText("Ticks" if view == TICKS else view)
            button.setCheckable(True)
            button.setAutoRaise(True)
            action = QAction(button.text(), self)
            action.setShortcut(QKeySequence(_KEYS[view]))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.triggered.connect(lambda _=False, v=view: self.set_view(v))
            self.addAction(action)
            button.setToolTip(f"{_TIPS[view]} (key {_KEYS[view]})")
            self._view_group.addButton(button)
            self.view_buttons[view] = button
        self.ticks_button = self.view_buttons[TICKS]
        self.bars_button = self.view_buttons["M1"]
        self.ticks_button.setChecked(True)
        self._view_group.buttonClicked.connect(self._on_view_button)

        self.follow_action = QAction("Follow", self)
        self.follow_action.setCheckable(True)
        self.follow_action.setChecked(True)
        self.follow_action.setShortcut(QKeySequence("F"))
        self.follow_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.follow_action.setToolTip(
            "Keep the newest ticks or bars in view (F). Zooming or panning the chart pauses it."
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
        self.plot.setToolTip(
            "Drag to pan, wheel to zoom (time); scroll left for older history; F follows"
        )
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
        self.viewbox.setMouseEnabled(x=True, y=False)  # the wheel zooms time; y follows
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
        self.bars_view = BarsView(self.plot, self.candles)
        self.crosshair = Crosshair(self.plot, self._describe)
        self.viewbox.sigRangeChangedManually.connect(self._on_manual_range)
        self.viewbox.sigXRangeChanged.connect(self._on_x_range)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.symbol_combo)
        bar.addSpacing(6)
        for button in self.view_buttons.values():
            bar.addWidget(button)
        bar.addSpacing(6)
        bar.addWidget(self.window_combo)
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
        return "ticks" if self._view == TICKS else "bars"

    @property
    def timeframe(self) -> str:
        """``"ticks"`` or the bar timeframe shown (``"M1"`` … ``"D1"``)."""
        return self._view

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

    def set_view(self, view: str) -> None:
        """Show the tick view (``"ticks"``) or a timeframe's candles (``"M1"`` … ``"D1"``)."""
        if view not in VIEWS:
            raise ValueError(f"no view {view!r}; one of {', '.join(VIEWS)}")
        self.view_buttons[view].setChecked(True)
        if view == self._view:
            return
        self._view = view
        ticks = view == TICKS
        self.bid_curve.setVisible(ticks)
        self.ask_curve.setVisible(ticks)
        self.candles.setVisible(not ticks)
        self.window_combo.setVisible(ticks)
        if ticks:
            self.bars_view.quote.hide()
        self._visible_bars = float(DEFAULT_BARS)
        self.resume_follow()
        self._render_now()

    def set_mode(self, mode: Mode) -> None:
        """Ticks, or candles of the timeframe shown last (M1 at first)."""
        self.set_view(TICKS if mode == "ticks" else self.bars_view.key[1] or "M1")

    def set_window_minutes(self, minutes: int) -> None:
        index = self.window_combo.findData(minutes)
        if index < 0:
            raise ValueError(f"no {minutes} min window; choices: {WINDOWS_MIN}")
        self.window_combo.setCurrentIndex(index)

    def view_state(self) -> dict[str, Any]:
        """Symbol, window and view, for the saved layout."""
        return {
            "symbol": self._symbol,
            "window_min": round(self._window_s / 60),
            "mode": self.mode,
            "view": self._view,
        }

    def first_view(self) -> None:
        """M1 candles, as MT5 opens a chart: the terminal's history is on screen at the
        first start (the tick view shows only what was captured since)."""
        self.set_view("M1")

    def restore_view_state(self, state: Mapping[str, Any]) -> None:
        """Undo of :meth:`view_state`; unknown or malformed entries are ignored."""
        minutes = state.get("window_min")
        if minutes in WINDOWS_MIN:
            self.set_window_minutes(int(minutes))
        view = state.get("view")
        if view in VIEWS:
            self.set_view(str(view))
        elif state.get("mode") == "bars":  # a layout saved before the timeframes
            self.set_view("M1")
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
        symbol = self._symbol
        if not self.session.capturing:
            self._say("Capture is not running")
            return
        if not symbol:
            self._say("No symbol is captured: add symbols in Settings")
            return
        if self._view == TICKS:
            self._refresh_ticks(symbol)
        else:
            self._refresh_bars(symbol)

    def _refresh_ticks(self, symbol: str) -> None:
        now = self._now()
        key = (symbol, self._window_s, self._view)
        start_msc = int((now - self._window_s) * 1000)
        seen = self._seen_ticks if key == self._key else -1
        snap = self.session.chart_ticks(symbol, start_msc, seen)
        if snap is None:
            return
        if not snap.ticks_reset and not len(snap.ticks):
            if self._following and now - self._range_at >= FOLLOW_IDLE_S:
                self._follow(now)
            return
        newest = snap.last_time_msc / 1000 if snap.tick_count else now
        self.date_axis.set_zone(snap.zone, newest)
        series, ticks = self._series, snap.ticks
        x = ticks["time_msc"] / 1000.0
        if snap.ticks_reset:
            bid, ask = ticks["bid"].astype(np.float64), ticks["ask"].astype(np.float64)
            series.reset(x, bid, ask, self._window_s)
        else:
            series.append(x, ticks["bid"], ticks["ask"], self._window_s)
        series.trim_before(start_msc / 1000.0)
        self._last_x = float(series.x[-1]) if len(series) else 0.0
        self.bid_curve.setData(series.x, series.bid)
        self.ask_curve.setData(series.x, series.ask)
        self._key, self._seen_ticks = key, snap.tick_count
        self.frames += 1
        if self._following:
            self._follow(now)
        self._show_state(snap, now)

    def _refresh_bars(self, symbol: str) -> None:
        snap = self.session.chart_bars(symbol, self._view)
        if snap is None:
            return
        now = self._now()
        newest = snap.last_time_msc / 1000 if snap.tick_count else now
        self.date_axis.set_zone(snap.zone, newest)
        digits = self._digits(symbol, snap.bid, snap.ask)
        if self.bars_view.show(snap, digits):
            self.frames += 1
            self.crosshair.update_text()
        self._key = (symbol, self._view)
        if self._following:
            self._follow_bars()
        else:
            self._maybe_older()
        self._show_state(snap, now)

    def _follow_bars(self) -> None:
        span = self.bars_view.follow_range(self._visible_bars)
        if span is None:
            return
        left, right = span
        if abs(right - self._right) < 1e-6 and self._range_valid():
            return
        self._right = right
        self.viewbox.setXRange(left, right, padding=0)
        self._maybe_older()

    def _maybe_older(self) -> None:
        left = self.viewbox.viewRange()[0][0]
        before = self.bars_view.wants_older(left)
        if before is not None:
            self.session.request_older(self._symbol, self._view, before)

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
        self._right = 0.0
        if self.isVisible():
            self.refresh()

    def _digits(self, symbol: str, bid: float | None, ask: float | None) -> int:
        digits = profile_digits(symbol, self.session.config)
        if digits is None:
            guess = self._guesses.setdefault(symbol, DigitsGuess())
            digits = guess.observe(bid, ask) if bid is not None and ask is not None else 5
        return digits

    def _show_state(self, snap: ChartSeries, now: float) -> None:
        if snap.bid is None or snap.ask is None:
            self._quote = None
            self._say(self._waiting_text(snap))
            return
        self._quote = (snap.symbol, snap.bid, snap.ask)
        self._show_quote(snap.symbol, snap.bid, snap.ask)
        newest_tick = format_datetime_msc(snap.last_time_msc, snap.zone)
        self.status.setToolTip(f"Newest {snap.symbol} tick:\n{newest_tick}")

    def _show_quote(self, symbol: str, bid: float, ask: float) -> None:
        digits = self._digits(symbol, bid, ask)
        t = self.theme
        state = "" if self._following else f'  <span style="color:{t.warn}">paused</span>'
        view = self.bars_view
        if self._view != TICKS and view.loading:
            state += f'  <span style="color:{t.muted}">loading history…</span>'
        elif self._view != TICKS and view.error:
            state += f'  <span style="color:{t.warn}">history: {view.error}</span>'
        self._say(
            f'<span style="color:{t.bid}">Bid {format_price(bid, digits)}</span>'
            f'&nbsp;&nbsp;<span style="color:{t.ask}">Ask {format_price(ask, digits)}</span>'
            + state
        )

    @staticmethod
    def _waiting_text(snap: ChartSeries) -> str:
        """Why the chart is empty: a closed market says when it opens (server time)."""
        if not snap.closed_until_s:
            return f"Waiting for the first {snap.symbol} tick…"
        when = server_datetime(snap.closed_until_s * 1000, snap.zone).strftime("%a %H:%M")
        return f"{snap.symbol}: market closed, opens {when} server time"

    def _describe(self, x: float, y: float) -> str | None:
        """The data window's text at (x, y): the bar there, or the tick view's tick."""
        symbol = self._symbol
        if self._view != TICKS:
            return self.bars_view.describe(x, self._digits(symbol, None, None))
        series = self._series
        if not len(series):
            return None
        xs = series.x
        i = int(np.clip(np.searchsorted(xs, x), 1, len(xs) - 1))
        i = i - 1 if x - xs[i - 1] < xs[i] - x else i
        bid, ask = float(series.bid[i]), float(series.ask[i])
        digits = self._digits(symbol, bid, ask)
        when = server_datetime(int(xs[i] * 1000), self.date_axis.zone).strftime("%H:%M:%S")
        spread = (ask - bid) / 10.0**-digits
        return (
            f"<b>{symbol}</b> tick at {when}<table>"
            f"<tr><td>Bid</td><td align='right'>&nbsp;{format_price(bid, digits)}</td></tr>"
            f"<tr><td>Ask</td><td align='right'>&nbsp;{format_price(ask, digits)}</td></tr>"
            f"<tr><td>Spread</td><td align='right'>&nbsp;{spread:.0f}</td></tr></table>"
        )

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
        self.crosshair.apply_theme(theme)
        self.bars_view.quote.apply_theme(theme)

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
    def _on_view_button(self, button: object) -> None:
        view = next(v for v, b in self.view_buttons.items() if b is button)
        self.set_view(view)

    @Slot(bool)
    def _on_follow_toggled(self, on: bool) -> None:
        self._following = on
        if on:
            self.viewbox.enableAutoRange(axis=pg.ViewBox.YAxis)
            self._right = 0.0
            if self._view == TICKS:
                self._follow(self._now())
            else:
                self._follow_bars()
        if self._quote is not None:
            self._show_quote(*self._quote)

    @Slot(object)
    def _on_manual_range(self, _mask: object) -> None:
        """The user zoomed or panned: leave the view where they put it."""
        if self._following:
            self.follow_action.setChecked(False)

    @Slot(object, object)
    def _on_x_range(self, _box: object, _range: object) -> None:
        """A zoom keeps its bar count for following; a pan left may need older bars."""
        if self._view == TICKS:
            return
        left, right = self.viewbox.viewRange()[0]
        period = self.bars_view.period_s
        if not self._following and period > 0:
            self._visible_bars = max(10.0, (right - left) / period)
            self._maybe_older()
