"""What the tick chart draws: the window's bid/ask points, appended in place, thinned
to the screen's resolution when ticks are dense.

Two costs grow with the tick rate if the chart simply keeps every tick: appending by
``np.concatenate`` copies the whole window each frame, and pyqtgraph's downsampling and
auto-range scan every point each frame. At 100k ticks/s a 5-minute window of one symbol
holds millions of ticks, far more than the ~2000 pixels across a chart. So:

* points live in preallocated arrays that grow by doubling and drop old points by moving
  a start index (amortised O(new ticks) per frame, views handed to ``setData``);
* once a window holds more than :data:`DENSE_POINTS`, ticks are folded into buckets of
  ``window / BUCKETS`` seconds, each drawn as two points (its lowest and highest bid and
  ask) — the "peak" envelope pyqtgraph would draw anyway, computed once per tick
  instead of once per frame. A sparse window keeps every tick, so zooming into a quiet
  market shows the real ticks.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

#: Above this many points in the window, ticks are folded into buckets.
DENSE_POINTS = 20_000
#: Buckets across the window when folded (two points each).
BUCKETS = 2_000


class TickSeries:
    def __init__(self, capacity: int = 4096) -> None:
        self._x = np.empty(capacity)
        self._bid = np.empty(capacity)
        self._ask = np.empty(capacity)
        self._lo = 0
        self._hi = 0
        #: Bucket width in seconds while folding, else 0 (every tick kept).
        self.bucket_s = 0.0

    def __len__(self) -> int:
        return self._hi - self._lo

    @property
    def x(self) -> F64:
        return self._x[self._lo : self._hi]

    @property
    def bid(self) -> F64:
        return self._bid[self._lo : self._hi]

    @property
    def ask(self) -> F64:
        return self._ask[self._lo : self._hi]

    def reset(self, x: F64, bid: F64, ask: F64, window_s: float) -> None:
        """Start over with a whole window (a new symbol, window or capture)."""
        self._lo = self._hi = 0
        self.bucket_s = window_s / BUCKETS if len(x) > DENSE_POINTS else 0.0
        self.append(x, bid, ask, window_s)

    def append(self, x: F64, bid: F64, ask: F64, window_s: float) -> None:
        if not len(x):
            return
        if self.bucket_s == 0.0 and len(self) + len(x) > DENSE_POINTS:
            # Dense from now on: fold what is held, then the new ticks.
            held = (self.x.copy(), self.bid.copy(), self.ask.copy())
            self._lo = self._hi = 0
            self.bucket_s = window_s / BUCKETS
            self._put(*self._fold(*held))
        if self.bucket_s:
            x, bid, ask = self._fold(x, bid, ask)
            x, bid, ask = self._merge_open_bucket(x, bid, ask)
        self._put(x, bid, ask)

    def trim_before(self, t: float) -> None:
        self._lo += int(np.searchsorted(self.x, t, side="left"))

    # ------------------------------------------------------------------ internals
    def _put(self, x: F64, bid: F64, ask: F64) -> None:
        n = len(x)
        if self._hi + n > len(self._x):
            live = len(self)
            size = len(self._x)
            while live + n > size:
                size *= 2
            if size == len(self._x) and self._lo > 0:
                # Room at the front: move the live part down instead of growing.
                for arr in (self._x, self._bid, self._ask):
                    arr[:live] = arr[self._lo : self._hi]
            else:
                for name in ("_x", "_bid", "_ask"):
                    old = getattr(self, name)
                    new = np.empty(size)
                    new[:live] = old[self._lo : self._hi]
                    setattr(self, name, new)
            self._lo, self._hi = 0, live
        end = self._hi + n
        self._x[self._hi : end] = x
        self._bid[self._hi : end] = bid
        self._ask[self._hi : end] = ask
        self._hi = end

    def _fold(self, x: F64, bid: F64, ask: F64) -> tuple[F64, F64, F64]:
        """Two points per bucket: (first time, lows) and (last time, highs)."""
        if not len(x):
            return x, bid, ask
        b = np.floor(x / self.bucket_s)
        starts = np.concatenate(([0], np.flatnonzero(np.diff(b)) + 1))
        ends = np.concatenate((starts[1:], [len(x)])) - 1
        out_x = np.empty(2 * len(starts))
        out_bid = np.empty_like(out_x)
        out_ask = np.empty_like(out_x)
        out_x[0::2], out_x[1::2] = x[starts], x[ends]
        out_bid[0::2] = np.minimum.reduceat(bid, starts)
        out_bid[1::2] = np.maximum.reduceat(bid, starts)
        out_ask[0::2] = np.minimum.reduceat(ask, starts)
        out_ask[1::2] = np.maximum.reduceat(ask, starts)
        return out_x, out_bid, out_ask

    def _merge_open_bucket(self, x: F64, bid: F64, ask: F64) -> tuple[F64, F64, F64]:
        """The last bucket held may still be filling: fold the new first bucket into it."""
        if len(self) < 2 or not len(x):
            return x, bid, ask
        last = self._hi - 2
        if np.floor(self._x[last] / self.bucket_s) != np.floor(x[0] / self.bucket_s):
            return x, bid, ask
        self._x[last + 1] = x[1]
        self._bid[last] = min(self._bid[last], bid[0])
        self._bid[last + 1] = max(self._bid[last + 1], bid[1])
        self._ask[last] = min(self._ask[last], ask[0])
        self._ask[last + 1] = max(self._ask[last + 1], ask[1])
        return x[2:], bid[2:], ask[2:]
