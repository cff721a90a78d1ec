"""The collector: the single place where captured tick batches enter the client.

Every batch from the connector pool is numbered, checked for stale ticks, cached,
aggregated into bars and fanned out, in one synchronous call that does a handful of
numpy operations per batch and never waits on a subscriber. Keeping it synchronous
lets it run from the pool's queue consumer, a replay or a test alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from app.clock import SYSTEM_CLOCK, Clock
from app.collector.bars import DEFAULT_BAR_HISTORY, M1, BarAggregator, BarArray, empty_bars
from app.collector.cache import TickCache, TickRing
from app.collector.fanout import CallbackSubscription, FanOut, QueueSubscription
from app.collector.sequenced import SequencedBatch
from app.collector.stats import CollectorStats, SymbolStats
from app.servertime import ServerTimeZone
from app.ticks import TICK_DTYPE, TickBatch

_log = logging.getLogger(__name__)

#: What ``consume`` takes at once, at most: this many batches and (from a source that
#: weighs them in ticks, the pool's hand-off) this many ticks. Between two takes the gate
#: is looked at and the loop runs other tasks, so a backlog cannot starve the UI and the
#: network tasks sharing the loop; at full speed a batch holds up to ``pool.max_batch``
#: ticks, and taking a whole backlog at once blocked the loop for seconds and ran past a
#: closed gate. At low rates a burst is a few small batches, taken (and offered to the
#: link, which sends them as one message) in one go: a cap of 4 batches split bursts.
_TAKE_AT_MOST = 256
_TAKE_TICKS = 20_000
_LOG_EVERY = 1000
#: Batches up to this many ticks are checked for stale ticks in Python (see ``ingest``).
_SMALL = 16


def _in_order(times: list[int], newest: int | None) -> bool:
    """Whether ``times`` never goes back, nor below ``newest`` (None: no tick before)."""
    before = times[0] if newest is None else newest
    for t in times:
        if t < before:
            return False
        before = t
    return True


def _not_stale(time_msc: npt.NDArray[np.int64], newest: int | None) -> npt.NDArray[np.bool_]:
    """Which ticks are not older than any tick before them (``newest``: of earlier
    batches, None for none)."""
    newest_before = np.maximum.accumulate(time_msc)
    if newest is not None:
        np.maximum(newest_before, newest, out=newest_before)
    return time_msc >= newest_before


class _SymbolState:
    """Per-symbol mutable state, kept together so ingest does one dict lookup."""

    __slots__ = (
        "aggregators",
        "history",
        "last_ask",
        "last_bid",
        "last_msc",
        "ring",
        "stale",
        "ticks",
        "zones_version",
    )

    def __init__(self, ring: TickRing, aggregators: tuple[BarAggregator, ...]) -> None:
        self.ring = ring
        self.aggregators = aggregators
        self.ticks = 0
        self.stale = 0
        self.last_msc = 0
        self.last_bid = 0.0
        self.last_ask = 0.0
        self.history: _History | None = None
        self.zones_version = -1


class _History:
    """Backfilled ticks of one symbol, staged until the backfill ends (see
    :meth:`Collector.finish_history`): a ring and bars of their own, so the live ones
    are never rewritten while the GUI reads them."""

    __slots__ = ("aggregators", "last_msc", "ring")

    def __init__(
        self,
        capacity: int,
        timeframes: tuple[int, ...],
        bar_history: int,
        zone: ServerTimeZone | None,
    ) -> None:
        self.ring = TickRing(capacity)
        self.aggregators = tuple(BarAggregator(tf, bar_history, zone) for tf in timeframes)
        self.last_msc: int | None = None


class BatchSource(Protocol):
    """Where batches come from: the pool's thread-to-loop hand-off, or a test."""

    async def take(
        self, at_most: int | None = None, *, max_weight: int | None = None
    ) -> list[TickBatch]: ...

    def done(self, n: int) -> None: ...

    def pending(self) -> int: ...


class ZoneLookup(Protocol):
    """Where a symbol's server zone comes from (:class:`app.zones.ServerZones`):
    ``version`` changes whenever a zone does."""

    @property
    def version(self) -> int: ...

    def zone(self, symbol: str) -> ServerTimeZone | None: ...


class Collector:
    """Sequence, cache, aggregate and fan out tick batches.

    Stale guard: per symbol, a tick whose ``time_msc`` is strictly older than the newest
    tick already ingested (in an earlier batch or earlier in the same batch) is dropped
    and counted in ``stats.stale_dropped``. Ticks sharing a millisecond are legitimate
    and kept. The capture upstream is meant to make the count 0; a non-zero count
    points at a re-read overlap or a clock problem there, not at lost data here.

    Not thread-safe: call ``ingest`` from one thread (the event loop's, via ``consume``).
    """

    def __init__(
        self,
        cache_capacity_per_symbol: int,
        bar_timeframes_ms: Iterable[int] = (M1,),
        bar_history: int = DEFAULT_BAR_HISTORY,
        clock: Clock = SYSTEM_CLOCK,
        zones: ZoneLookup | None = None,
    ) -> None:
        timeframes = tuple(dict.fromkeys(int(tf) for tf in bar_timeframes_ms))
        if any(tf <= 0 for tf in timeframes):
            raise ValueError(f"bar timeframes must be > 0 ms, got {timeframes}")
        if bar_history < 1:
            raise ValueError(f"bar_history must be >= 1, got {bar_history}")
        self._cache = TickCache(cache_capacity_per_symbol)
        self._timeframes = timeframes
        self._bar_history = bar_history
        self._clock = clock
        #: Bars of H1 and longer open at the symbol's server boundaries (app.timeframes);
        #: a zone reported later applies from each aggregator's next bar.
        self._zones = zones
        self._fanout: FanOut[SequencedBatch] = FanOut()
        self._symbols: dict[str, _SymbolState] = {}
        self._seq = 0
        self._batches = 0
        self._skipped = 0
        self._ticks = 0
        self._stale = 0
        self._consume_errors = 0
        self._burst_end: list[Callable[[], object]] = []
        self._history_ticks = 0

    # -- ingest -----------------------------------------------------------------------

    def ingest(self, batch: TickBatch) -> SequencedBatch | None:
        """Take one batch in; return it numbered, or ``None`` if no tick was kept."""
        ticks = batch.ticks
        if ticks.dtype != TICK_DTYPE:
            raise TypeError(f"expected tick dtype {TICK_DTYPE}, got {ticks.dtype}")
        self._batches += 1
        n = len(ticks)
        if n == 0:
            self._skipped += 1
            return None
        state = self._symbols.get(batch.symbol)
        if state is None:
            state = self._add_symbol(batch.symbol)
        if self._zones is not None and state.zones_version != self._zones.version:
            self._refresh_zone(batch.symbol, state)

        time_msc = ticks["time_msc"]
        newest = state.last_msc if state.ticks else None
        # A few ticks (low rates) are checked in Python: numpy's call overhead, not the
        # work, was most of the cost; out of order, the numpy path sorts it out.
        keep = None
        if n > _SMALL or not _in_order(time_msc.tolist(), newest):
            keep = _not_stale(time_msc, newest)
        if keep is not None and not keep.all():
            kept = int(np.count_nonzero(keep))
            state.stale += n - kept
            self._stale += n - kept
            if kept == 0:
                self._skipped += 1
                return None
            ticks = ticks[keep]
            time_msc = ticks["time_msc"]
            n = kept

        shared = ticks.view()
        shared.flags.writeable = False  # one array for all subscribers: nobody edits it
        self._seq += 1
        state.ring.append(shared)
        for aggregator in state.aggregators:
            aggregator.update(shared)
        state.ticks += n
        state.last_msc = int(time_msc[-1])
        state.last_bid = float(shared["bid"][-1])
        state.last_ask = float(shared["ask"][-1])
        self._ticks += n

        out = SequencedBatch(
            self._seq,
            TickBatch(batch.symbol, shared, batch.worker_id, batch.captured_at),
            self._clock.time(),
        )
        self._fanout.publish(out)
        return out

    # -- history (backfill) -------------------------------------------------------------

    def ingest_history(self, batch: TickBatch) -> SequencedBatch | None:
        """Take in ticks fetched from the terminal's history for a span the live capture
        never saw: older than the first live tick of the symbol, oldest chunk first.

        They are numbered and fanned out at once (so the bridge stores them), flagged
        ``history``. The cache and bars shown live are not touched until
        :meth:`finish_history`, which puts the staged history in front of them. Ticks
        older than the history already taken are dropped as stale.
        """
        ticks = batch.ticks
        if ticks.dtype != TICK_DTYPE:
            raise TypeError(f"expected tick dtype {TICK_DTYPE}, got {ticks.dtype}")
        self._batches += 1
        if len(ticks) == 0:
            self._skipped += 1
            return None
        state = self._symbols.get(batch.symbol)
        if state is None:
            state = self._add_symbol(batch.symbol)
        hist = state.history
        if hist is None:
            hist = state.history = _History(
                self._cache.capacity_per_symbol,
                self._timeframes,
                self._bar_history,
                self._zone_of(batch.symbol),
            )
        time_msc = ticks["time_msc"]
        newest_before = np.maximum.accumulate(time_msc)
        if hist.last_msc is not None:
            np.maximum(newest_before, hist.last_msc, out=newest_before)
        keep = time_msc >= newest_before
        if not keep.all():
            dropped = len(ticks) - int(np.count_nonzero(keep))
            state.stale += dropped
            self._stale += dropped
            ticks = ticks[keep]
            if not len(ticks):
                self._skipped += 1
                return None
        shared = ticks.view()
        shared.flags.writeable = False
        self._seq += 1
        hist.ring.append(shared)
        for aggregator in hist.aggregators:
            aggregator.update(shared)
        hist.last_msc = int(shared["time_msc"][-1])
        state.ticks += len(shared)
        self._ticks += len(shared)
        self._history_ticks += len(shared)
        out = SequencedBatch(
            self._seq,
            TickBatch(batch.symbol, shared, batch.worker_id, batch.captured_at),
            self._clock.time(),
            history=True,
        )
        self._fanout.publish(out)
        return out

    def finish_history(self, symbol: str) -> None:
        """Put the staged history of ``symbol`` in front of its live cache and bars.

        Exact when the live ring still holds every live tick (the common case: the
        backfill ends long before the ring wraps): the history's aggregators are fed the
        live ticks and replace the live ones, which gives the very bars one in-order pass
        would have. When the ring has wrapped, the live ticks in it no longer reach back
        to the history, so the cache keeps only live ticks, and the bars are joined bar
        by bar (the bar at the seam merges exactly, except its spread sum, which adds
        two partial sums).
        """
        state = self._symbols.get(symbol)
        if state is None or state.history is None:
            return
        hist, state.history = state.history, None
        live = state.ring.snapshot()
        complete = state.ring.total_appended == len(live)
        if complete:
            hist_ticks = hist.ring.snapshot()
            state.ring.clear()
            state.ring.append(hist_ticks)
            state.ring.append(live)
            for aggregator in hist.aggregators:
                aggregator.update(live)
            state.aggregators = hist.aggregators
        else:
            for older, newer in zip(hist.aggregators, state.aggregators, strict=True):
                newer.prepend(older)
        if not len(live) and hist.last_msc is not None and hist.last_msc > state.last_msc:
            # No live tick yet: the history is the newest this symbol has seen.
            newest = hist.ring.snapshot(1)
            state.last_msc = hist.last_msc
            state.last_bid = float(newest["bid"][-1])
            state.last_ask = float(newest["ask"][-1])

    def history_pending(self, symbol: str) -> bool:
        """Whether backfilled history of ``symbol`` is staged but not yet in front of its
        cache (figures drawn from the cache are not final yet)."""
        state = self._symbols.get(symbol)
        return state is not None and state.history is not None

    async def consume(self, source: BatchSource, gate: asyncio.Event | None = None) -> None:
        """Ingest everything ``source`` hands over, until cancelled.

        While ``gate`` is clear nothing is taken: the source fills and the pool's workers
        wait, which is how a full bridge spool slows capture down without losing ticks.

        A batch that makes ``ingest`` raise (a wrong dtype from a misbehaving source) is
        logged and counted in ``stats.consume_errors``; capture of everything else goes on.
        Batches taken together are ingested without an ``await`` in between, so a
        cancellation can never drop half of them.
        """
        while True:
            if gate is not None and not gate.is_set():
                await gate.wait()
            batches = await source.take(_TAKE_AT_MOST, max_weight=_TAKE_TICKS)
            for batch in batches:
                try:
                    self.ingest(batch)
                except Exception:
                    self._consume_errors += 1
                    if self._consume_errors % _LOG_EVERY == 1:
                        _log.exception("collector rejected a batch of %r", batch.symbol)
            source.done(len(batches))
            for callback in self._burst_end:
                callback()
            if source.pending():
                # More is waiting: let the loop turn first (the link cuts what this burst
                # offered, and a long backlog must not starve the loop). Otherwise the
                # next take waits, and the loop turns anyway.
                await asyncio.sleep(0)

    def _add_symbol(self, symbol: str) -> _SymbolState:
        zone = self._zone_of(symbol)
        aggregators = tuple(BarAggregator(tf, self._bar_history, zone) for tf in self._timeframes)
        state = self._symbols[symbol] = _SymbolState(self._cache.ring(symbol), aggregators)
        if self._zones is not None:
            state.zones_version = self._zones.version
        return state

    def _zone_of(self, symbol: str) -> ServerTimeZone | None:
        return None if self._zones is None else self._zones.zone(symbol)

    def _refresh_zone(self, symbol: str, state: _SymbolState) -> None:
        assert self._zones is not None
        state.zones_version = self._zones.version
        zone = self._zones.zone(symbol)
        for aggregator in state.aggregators:
            if aggregator.zone != zone:
                aggregator.set_zone(zone)
        if state.history is not None:
            for aggregator in state.history.aggregators:
                aggregator.set_zone(zone)

    # -- reading ----------------------------------------------------------------------

    @property
    def cache(self) -> TickCache:
        return self._cache

    @property
    def timeframes_ms(self) -> tuple[int, ...]:
        return self._timeframes

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def stats(self) -> CollectorStats:
        return CollectorStats(
            batches=self._batches,
            batches_skipped=self._skipped,
            ticks_total=self._ticks,
            last_seq=self._seq,
            stale_dropped=self._stale,
            subscriber_errors=self._fanout.errors,
            consume_errors=self._consume_errors,
            history_ticks=self._history_ticks,
            symbols={
                name: SymbolStats(s.ticks, s.stale, s.last_msc, s.last_bid, s.last_ask)
                for name, s in self._symbols.items()
            },
        )

    def aggregator(self, symbol: str, timeframe_ms: int = M1) -> BarAggregator | None:
        """The live aggregator, for ``current()`` / ``closed()``; ``None`` before any tick."""
        self._check_timeframe(timeframe_ms)
        state = self._symbols.get(symbol)
        if state is None:
            return None
        return state.aggregators[self._timeframes.index(timeframe_ms)]

    def bars(self, symbol: str, timeframe_ms: int = M1) -> BarArray:
        """Closed bars in the history followed by the open bar; empty for an unseen symbol."""
        aggregator = self.aggregator(symbol, timeframe_ms)
        return empty_bars() if aggregator is None else aggregator.all()

    def _check_timeframe(self, timeframe_ms: int) -> None:
        if timeframe_ms not in self._timeframes:
            raise KeyError(
                f"timeframe {timeframe_ms} ms is not aggregated; configured: {self._timeframes}"
            )

    # -- subscribers ------------------------------------------------------------------

    def on_burst_end(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` after ``consume`` ingested each burst it took at once (the
        link cuts what the burst offered right then, not one loop turn later)."""
        self._burst_end.append(callback)

    def subscribe(
        self, callback: Callable[[SequencedBatch], object], name: str | None = None
    ) -> CallbackSubscription[SequencedBatch]:
        """Call ``callback`` inline with every sequenced batch; it must return fast."""
        return self._fanout.subscribe(callback, name)

    def subscribe_queue(
        self, maxlen: int, name: str | None = None
    ) -> QueueSubscription[SequencedBatch]:
        """A drop-oldest queue of at most ``maxlen`` batches, for an async consumer."""
        return self._fanout.subscribe_queue(maxlen, name)

    def close(self) -> None:
        """Detach all subscribers; queue consumers drain what they hold and stop."""
        self._fanout.close()
