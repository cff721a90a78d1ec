"""The demo signal source: a moving-average crossover over the stored tick stream.

So that the embedded default shows signals without any AI service, the reference
backend runs this small source (name ``demo-ma-cross``): per client and symbol it folds
the stored bids into M1 closes (the last bid of each UTC minute that had a tick; a bar
closes when a tick of a later minute arrives, as MT5 closes bars), and when the simple
moving average of the last ``fast`` closes crosses that of the last ``slow`` closes it
emits a signal for that client: buy on a cross upwards, sell downwards; volume 0.01,
SL 10 and TP 20 pips from the close, valid 60 s. Not a strategy: a steady, explainable
trickle of signals on the simulated market.

:class:`MaCross` is the pure fold (tested against an independent computation); the
:class:`DemoSignalSource` task reads new ``tick_blocks`` rows by rowid once a second,
from where the table ended when it started (a large history is not replayed), and
stores signals through the same :class:`~app.server.signal_store.SignalStore` as the
gateway, with ids derived from client, symbol and bar (a restart cannot emit one twice).
Crossings on bars older than ``max_age_s`` (a backfill of history) emit nothing.
Setting: ``trading-client backend --no-demo-signals`` / ``backend.demo_signals``.

The reference backend runs it on 10-second bars (fast 5, slow 12: :data:`DEMO_SHAPE`), so
a new user sees a first signal about two minutes after the first ticks instead of the
twenty minutes M1 bars would need; the fold itself defaults to M1 with 5/20.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import sqlite3
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.clock import SYSTEM_CLOCK, Clock, now_msc
from app.protocol.codec import Signal
from app.server.db import connect
from app.server.signal_store import SignalStore
from app.ticks import TICK_DTYPE, TickArray

log = logging.getLogger(__name__)

SOURCE = "demo-ma-cross"
#: (bar seconds, fast, slow) of the embedded default: a signal within ~2 minutes.
DEMO_SHAPE = (10.0, 5, 12)
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Cross:
    """The fast average crossed the slow one at the close of the bar opening at
    ``bar_ms`` (UTC epoch ms); ``side`` is ``buy`` (upwards) or ``sell``."""

    symbol: str
    side: str
    bar_ms: int
    close: float
    fast: float
    slow: float


@dataclass(slots=True)
class _Series:
    slow: int
    minute: int | None = None
    last_bid: float = 0.0
    closes: deque[float] = field(default_factory=deque)
    diff: float | None = None


class MaCross:
    """M1 closes per symbol and their fast/slow SMA crossings; no I/O, no clock."""

    def __init__(self, fast: int = 5, slow: int = 20, bar_ms: int = MINUTE_MS) -> None:
        if not 1 <= fast < slow:
            raise ValueError("need 1 <= fast < slow")
        self.fast, self.slow, self.bar_ms = fast, slow, bar_ms
        self._series: dict[str, _Series] = {}

    def feed(self, symbol: str, ticks: TickArray) -> list[Cross]:
        """Fold ticks of ``symbol`` in time order; returns the crossings of the bars they
        closed. Ticks older than the bar in progress are ignored (backfilled history)."""
        series = self._series.get(symbol)
        if series is None:
            series = self._series[symbol] = _Series(self.slow)
        out: list[Cross] = []
        quoted = ticks["bid"] > 0
        bids = ticks["bid"][quoted]
        minutes = ticks["time_msc"][quoted] // self.bar_ms
        if series.minute is not None:
            later = minutes >= series.minute
            bids, minutes = bids[later], minutes[later]
        # The last tick of each minute (a block's ticks are in time order): one step per
        # minute, not per tick, so 10k ticks/s cost a few numpy calls.
        for i in np.flatnonzero(np.r_[minutes[1:] != minutes[:-1], True]) if len(bids) else ():
            minute = int(minutes[i])
            if series.minute is not None and minute > series.minute:
                cross = self._close(symbol, series)
                if cross is not None:
                    out.append(cross)
            series.minute = minute
            series.last_bid = float(bids[i])
        return out

    def _close(self, symbol: str, s: _Series) -> Cross | None:
        assert s.minute is not None
        s.closes.append(s.last_bid)
        if len(s.closes) > self.slow:
            s.closes.popleft()
        if len(s.closes) < self.slow:
            return None
        closes = list(s.closes)
        fast = sum(closes[-self.fast :]) / self.fast
        slow = sum(closes) / self.slow
        diff, before = fast - slow, s.diff
        s.diff = diff
        if before is None:
            return None
        side = "buy" if before <= 0 < diff else "sell" if before >= 0 > diff else None
        if side is None:
            return None
        return Cross(symbol, side, s.minute * self.bar_ms, s.last_bid, fast, slow)


def pip(price: float) -> float:
    """A pip for a quote of this size: 0.0001 at 1.x, 0.01 at 100.x, 0.1 at 1000.x."""
    return float(10.0 ** (math.floor(math.log10(price)) - 4))


def signal_of(
    cross: Cross, client_id: str, now_ms: int, *, volume: float = 0.01, valid_s: float = 60.0
) -> Signal:
    step = pip(cross.close)
    digits = max(0, 5 - math.floor(math.log10(cross.close)))
    sign = 1 if cross.side == "buy" else -1
    tag = hashlib.sha256(client_id.encode()).hexdigest()[:10]
    direction = "above" if cross.side == "buy" else "below"
    return Signal(
        id=f"{SOURCE}-{tag}-{cross.symbol[:40]}-{cross.bar_ms}",
        source=SOURCE,
        symbol=cross.symbol,
        side=cross.side,
        valid_until_ms=now_ms + int(valid_s * 1000),
        created_at_ms=now_ms,
        volume=volume,
        sl=round(cross.close - sign * 10 * step, digits),
        tp=round(cross.close + sign * 20 * step, digits),
        price=cross.close,
        comment=f"M1 SMA(5) crossed {direction} SMA(20) at {cross.close:.{digits}f}",
    )


class DemoSignalSource:
    """Reads new stored ticks once per ``interval_s`` and stores the signals they make."""

    def __init__(
        self,
        db_path: Path,
        signals: SignalStore,
        *,
        on_signal: Callable[[str], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        interval_s: float = 1.0,
        max_age_s: float = 120.0,
        bar_s: float = 60.0,
        fast: int = 5,
        slow: int = 20,
    ) -> None:
        self._shape = (fast, slow, int(bar_s * 1000))
        self._db_path = db_path
        self._signals = signals
        self._on_signal = on_signal
        self._clock = clock
        self._interval = interval_s
        self._max_age_ms = int(max_age_s * 1000)
        self._folds: dict[str, MaCross] = {}
        self._after: int | None = None
        self.emitted = 0

    def step(self) -> list[tuple[str, Signal]]:
        """One look at the table (blocking): the signals stored by it."""
        conn = connect(self._db_path)
        try:
            if self._after is None:
                row = conn.execute("SELECT MAX(rowid) FROM tick_blocks").fetchone()
                self._after = int(row[0] or 0)
            rows = conn.execute(
                "SELECT rowid, client_id, symbol, ticks FROM tick_blocks WHERE rowid > ? "
                "ORDER BY rowid LIMIT 2000",
                (self._after,),
            ).fetchall()
        except sqlite3.OperationalError:  # the tick table does not exist yet
            return []
        finally:
            conn.close()
        made = []
        now = now_msc(self._clock)
        for rowid, client_id, symbol, blob in rows:
            self._after = int(rowid)
            fold = self._folds.setdefault(str(client_id), MaCross(*self._shape))
            for cross in fold.feed(str(symbol), np.frombuffer(blob, dtype=TICK_DTYPE)):
                if now - (cross.bar_ms + self._shape[2]) > self._max_age_ms:
                    continue
                signal = signal_of(cross, str(client_id), now)
                if self._signals.add(str(client_id), signal, now) == "stored":
                    made.append((str(client_id), signal))
        return made

    async def run(self) -> None:
        while True:
            with contextlib.suppress(sqlite3.Error):
                for client_id, signal in await asyncio.to_thread(self.step):
                    self.emitted += 1
                    log.info(
                        "demo signal for %r: %s %s (%s)",
                        client_id,
                        signal.side,
                        signal.symbol,
                        signal.comment,
                    )
                    if self._on_signal is not None:
                        self._on_signal(client_id)
            await asyncio.sleep(self._interval)
