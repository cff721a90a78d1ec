"""OHLC candles of bid for any number of bars: only the bars in view are drawn.

A chart scrolled back through months of M1 holds 100k bars and more; building a shape
per bar (the first version built a ``QRectF`` per bar in Python) costs a second at that
size. So the item keeps the bars as numpy columns in two parts, ``history`` (replaced
only when more history arrives) and ``recent`` (the seam bar and the live bars, small,
replaced every frame), and at paint time:

* slices the bars inside the view's x range (``searchsorted`` on the opens);
* when they are more than about one per two pixels, draws each pixel column's range
  (lowest low to highest high) as one line, the envelope the candles would cover anyway;
* else builds the wicks and bodies as four ``QPainterPath`` objects (up/down) from
  numpy arrays in one call each (``pyqtgraph.arrayToQPath``), no Python loop per bar.

``dataBounds`` answers the y extent of the bars in view only, for the view box's
visible-y auto range.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QPainter, QPainterPath

from app.history.chart_history import BarArray, empty_bars

#: Body width of a candle, as a fraction of its period.
CANDLE_BODY = 0.7
#: Above this many bars per pixel column the envelope is drawn instead of candles.
_BARS_PER_PIXEL = 0.5

F64 = npt.NDArray[np.float64]


def _columns(bars: BarArray) -> dict[str, F64]:
    return {
        "t": bars["time_msc"] / 1000.0,
        "o": bars["open"].astype(np.float64),
        "h": bars["high"].astype(np.float64),
        "l": bars["low"].astype(np.float64),
        "c": bars["close"].astype(np.float64),
    }


def _rect_path(x0: F64, x1: F64, y0: F64, y1: F64) -> QPainterPath:
    """Closed rectangles (x0..x1, y0..y1) as one path, built from arrays."""
    n = len(x0)
    x = np.stack((x0, x1, x1, x0, x0), axis=1).ravel()
    y = np.stack((y0, y0, y1, y1, y0), axis=1).ravel()
    connect = np.ones(5 * n, dtype=np.int32)
    connect[4::5] = 0
    path: QPainterPath = pg.arrayToQPath(x, y, connect=connect)
    return path


def _line_path(x: F64, y0: F64, y1: F64) -> QPainterPath:
    path: QPainterPath = pg.arrayToQPath(
        np.repeat(x, 2), np.stack((y0, y1), axis=1).ravel(), connect="pairs"
    )
    return path


class CandleItem(pg.GraphicsObject):  # type: ignore[misc]
    """Candles of one series; see the module doc."""

    def __init__(self, up: str, down: str, period_s: float = 60.0) -> None:
        super().__init__()
        self.period_s = period_s
        self._history = empty_bars()
        self._history_key: object = None
        self._recent = empty_bars()
        self._parts: list[dict[str, F64]] = [_columns(empty_bars())] * 2
        self._bounds = QRectF()
        self._pens: dict[int, Any] = {}
        self._brushes: dict[int, Any] = {}
        self.set_colors(up, down)

    # ------------------------------------------------------------------ data
    @property
    def bars(self) -> BarArray:
        """All bars drawn, oldest first (a fresh array: for tests and the data window)."""
        return np.concatenate((self._history, self._recent))

    def __len__(self) -> int:
        return len(self._history) + len(self._recent)

    @property
    def oldest_s(self) -> float | None:
        for part in self._parts:
            if len(part["t"]):
                return float(part["t"][0])
        return None

    @property
    def newest_s(self) -> float | None:
        for part in reversed(self._parts):
            if len(part["t"]):
                return float(part["t"][-1])
        return None

    def set_colors(self, up: str, down: str) -> None:
        self._pens = {1: pg.mkPen(up, width=1), -1: pg.mkPen(down, width=1)}
        self._brushes = {1: pg.mkBrush(up), -1: pg.mkBrush(down)}
        self.update()

    def set_bars(
        self, history: BarArray, recent: BarArray, period_s: float, key: object = None
    ) -> bool:
        """Draw ``history`` then ``recent``; ``key`` names the history (unchanged key:
        its columns are kept). False when nothing changed."""
        same_history = key is not None and key == self._history_key
        if (
            same_history
            and period_s == self.period_s
            and len(recent) == len(self._recent)
            and np.array_equal(recent, self._recent)
        ):
            return False
        self.prepareGeometryChange()
        if not same_history or period_s != self.period_s:
            self._history = history
            self._history_key = key
            self._parts[0] = _columns(history)
        self.period_s = period_s
        self._recent = recent.copy()
        self._parts[1] = _columns(self._recent)
        self._bounds = self._compute_bounds()
        self.update()
        self.informViewBoundsChanged()
        return True

    def bar_at(self, x: float) -> np.void | None:
        """The bar whose period holds time ``x`` (UTC s), or None."""
        for part, bars in zip(self._parts, (self._history, self._recent), strict=True):
            t = part["t"]
            i = int(np.searchsorted(t, x, side="right")) - 1
            if 0 <= i < len(t) and x < t[i] + self.period_s:
                return bars[i]  # type: ignore[no-any-return]
        return None

    def _compute_bounds(self) -> QRectF:
        oldest, newest = self.oldest_s, self.newest_s
        if oldest is None or newest is None:
            return QRectF()
        lows = [p["l"].min() for p in self._parts if len(p["l"])]
        highs = [p["h"].max() for p in self._parts if len(p["h"])]
        low, high = float(min(lows)), float(max(highs))
        return QRectF(oldest, low, newest + self.period_s - oldest, max(high - low, 1e-12))

    def _visible(self, x0: float, x1: float) -> dict[str, F64]:
        """Columns of the bars overlapping ``[x0, x1]``."""
        out: dict[str, list[F64]] = {k: [] for k in ("t", "o", "h", "l", "c")}
        for part in self._parts:
            t = part["t"]
            lo = max(0, int(np.searchsorted(t, x0 - self.period_s, side="left")))
            hi = int(np.searchsorted(t, x1, side="right"))
            for k, columns in out.items():
                columns.append(part[k][lo:hi])
        return {k: np.concatenate(v) for k, v in out.items()}

    # ------------------------------------------------------------------ pyqtgraph
    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(self._bounds)

    def dataBounds(  # noqa: N802
        self,
        ax: int,
        frac: float = 1.0,
        orthoRange: tuple[float, float] | None = None,  # noqa: N803
    ) -> tuple[float | None, float | None]:
        """Data extent for auto-range; on y only the candles inside the visible x range."""
        if not len(self):
            return None, None
        if ax == 0:
            oldest, newest = self.oldest_s, self.newest_s
            assert oldest is not None
            assert newest is not None
            return oldest, newest + self.period_s
        if orthoRange is None:
            return self._bounds.top(), self._bounds.bottom()
        cols = self._visible(orthoRange[0], orthoRange[1])
        if not len(cols["t"]):
            return None, None
        return float(cols["l"].min()), float(cols["h"].max())

    def pixelPadding(self) -> float:  # noqa: N802
        return 1.0

    def paint(self, painter: QPainter, *args: Any) -> None:
        view = self.getViewBox()
        if view is None or not len(self):
            return
        (x0, x1), _ = view.viewRange()
        cols = self._visible(x0, x1)
        n = len(cols["t"])
        if not n:
            return
        width_px = max(1.0, float(view.width()))
        if n > width_px * _BARS_PER_PIXEL * 2:
            self._paint_envelope(painter, cols, x0, x1, int(width_px))
            return
        half = self.period_s * CANDLE_BODY / 2
        x = cols["t"] + self.period_s / 2
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        for side in (1, -1):
            mask = (cols["c"] >= cols["o"]) if side == 1 else (cols["c"] < cols["o"])
            if not mask.any():
                continue
            o, c = cols["o"][mask], cols["c"][mask]
            xs = x[mask]
            painter.setPen(self._pens[side])
            painter.setBrush(self._brushes[side])
            painter.drawPath(_line_path(xs, cols["l"][mask], cols["h"][mask]))
            painter.drawPath(_rect_path(xs - half, xs + half, np.minimum(o, c), np.maximum(o, c)))

    def _paint_envelope(
        self, painter: QPainter, cols: dict[str, F64], x0: float, x1: float, columns: int
    ) -> None:
        """One vertical line per pixel column: its bars' lowest low to highest high."""
        step = (x1 - x0) / columns
        bucket = np.floor((cols["t"] - x0) / step).astype(np.int64)
        starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
        low = np.minimum.reduceat(cols["l"], starts)
        high = np.maximum.reduceat(cols["h"], starts)
        x = (x0 + (bucket[starts] + 0.5) * step).astype(np.float64)
        painter.setPen(self._pens[1])
        painter.drawPath(_line_path(x, low, high))
