"""The chart's bars: the terminal's history joined with the live capture, never blocking.

The window asks, once per frame, for a symbol's bars of one timeframe
(:meth:`ChartHistory.series`) and gets an immutable :class:`ChartSeries`. Behind it:

* **History from the terminal**, read in the backfill's helper process per terminal
  (``TerminalHistory.bars``: ``copy_rates_from`` through ``UtcTerminal``, so the bars
  open in UTC at the server's boundaries), :data:`PAGE_BARS` bars a request (older
  pages as many as held, up to :data:`MAX_PAGE_BARS`: scrolling far back through a
  zoomed-out chart takes a few requests, not hundreds). The first
  request for (symbol, timeframe) starts when the window first asks; until it answers
  the series says ``loading``. :meth:`ChartHistory.request_older` fetches the page
  before the oldest bar held (the window calls it when the view nears that bar);
  an empty answer marks the history ``complete``.
* **Live bars from the collector**: its M1 bars, folded into the timeframe at the
  server's boundaries (:func:`app.collector.bars.resample_bars`).
* **The seam**: a history answer holds every tick before ``until_ms`` (when it was
  read); live capture holds every tick since the runtime started (earlier). The bar
  holding ``until_ms`` is in both: it is merged (open from history, close from live,
  extremes of both, counts of both minus the live ticks before ``until_ms``, counted
  once when the live capture has passed ``until_ms``). Bars before it come from the
  history only, bars after it from the live capture only: no gap, no duplicate.
* **The day figures at start**: :meth:`ChartHistory.start` seeds the Market Watch's
  :class:`~app.daystats.DayBook` with each symbol's H1 bars of the last two server
  days (previous close at server midnight, today's high/low), after the chart's first
  request so that one is not delayed. The DayBook stays the owner of the figures.

Plain asyncio and numpy: no Qt (the window reads only the snapshots).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from app.clock import SYSTEM_CLOCK, Clock
from app.collector import M1, BarArray, Collector, TickCache, empty_bars
from app.collector.bars import resample_bars
from app.daystats import DayBook
from app.history.rates import BarsSource
from app.servertime import ServerTimeZone
from app.sessions import MarketHours
from app.terminal.spec import TerminalSpec
from app.ticks import TickArray, empty_ticks
from app.timeframes import TIMEFRAMES, bar_starts_utc_ms
from app.zones import ServerZones

__all__ = [
    "CHART_TIMEFRAMES",
    "PAGE_BARS",
    "TICKS",
    "BarArray",
    "ChartHistory",
    "ChartSeries",
    "empty_bars",
    "window_ticks",
]

log = logging.getLogger(__name__)

#: The chart's timeframes (MT5's toolbar) and the tick view.
CHART_TIMEFRAMES: Final = ("M1", "M5", "M15", "M30", "H1", "H4", "D1")
TICKS: Final = "ticks"
#: Bars per history request (a screen and more of M1: 10 hours).
PAGE_BARS: Final = 600
#: Older pages double with the bars held, up to this many a request.
MAX_PAGE_BARS: Final = 20_000
#: H1 bars asked at start for the day figures (two server days and a bit).
_DAY_SEED_BARS: Final = 52
#: The day figures wait at most this long for the chart's first request.
_SEED_AFTER_CHART_S: Final = 2.0


@dataclass(frozen=True, slots=True, eq=False)
class ChartSeries:
    """What the chart draws for one symbol and timeframe at one instant (immutable).

    Bars are split in two so a frame copies only what changed: ``history`` (the same
    array object from frame to frame until more history arrives; ``history_version``
    changes with it) and ``recent`` (the seam bar and the live bars after it). Bars
    open in UTC (``app.collector.BAR_DTYPE``). The tick view fills ``ticks`` instead:
    the whole window when ``ticks_reset``, else only the ticks since the last call.
    """

    symbol: str
    timeframe: str
    history: BarArray
    recent: BarArray
    history_version: int
    ticks: TickArray
    ticks_reset: bool
    #: Ticks of the symbol received so far (the tick view's position).
    tick_count: int
    bid: float | None
    ask: float | None
    last_time_msc: int
    zone: ServerTimeZone | None
    #: A history request for this series is under way.
    loading: bool
    #: The last history request failed (its reason), else "".
    error: str
    #: The terminal has no bars older than ``history[0]``.
    complete: bool
    #: Before the symbol's first tick, while its market is closed: when it opens (UTC
    #: s); else 0.
    closed_until_s: int

    @property
    def bars(self) -> BarArray:
        """All bars, oldest first (a fresh array: for tests and tools, not per frame)."""
        return np.concatenate((self.history, self.recent))

    @property
    def oldest_ms(self) -> int | None:
        if len(self.history):
            return int(self.history["time_msc"][0])
        return int(self.recent["time_msc"][0]) if len(self.recent) else None


@dataclass(slots=True)
class _Book:
    """History of one (symbol, timeframe) and how it joins the live bars."""

    tf_ms: int
    bars: BarArray = field(default_factory=empty_bars)
    #: History holds every tick before this UTC ms (0: no answer yet).
    until_ms: int = 0
    #: Start of the bar holding ``until_ms`` (the seam) and the history's part of it.
    seam_ms: int = 0
    prefix: BarArray = field(default_factory=empty_bars)
    seam: BarArray = field(default_factory=empty_bars)
    #: Live ticks before ``until_ms`` in the seam bar: (count, spread sum); None until
    #: the live capture has passed ``until_ms``.
    overlap: tuple[int, float] | None = None
    loading: bool = False
    error: str = ""
    complete: bool = False
    version: int = 0


def window_ticks(cache: TickCache, symbol: str, start_msc: int, hint: int = 1024) -> TickArray:
    """Ticks of ``symbol`` at or after ``start_msc``, read from the end of its ring.

    The ring has no time index; reading ``hint`` ticks from the end and growing the read
    until it reaches back past ``start_msc`` (or the ring's oldest tick) copies little
    more than the window itself.
    """
    if symbol not in cache:
        return empty_ticks()
    n = max(int(hint), 16)
    while True:
        ticks = cache.snapshot(symbol, n)
        if len(ticks) < n or (len(ticks) and ticks["time_msc"][0] < start_msc):
            break
        n *= 4
    first = int(np.searchsorted(ticks["time_msc"], start_msc, side="left"))
    return ticks[first:]


class ChartHistory:
    """Bars for the chart: history from the terminals joined with the live capture.

    ``terminal_of`` names the terminal that captures a symbol; ``make_source`` opens
    its history reader (default: a helper process per terminal, created on first use).
    """

    def __init__(
        self,
        collector: Collector,
        zones: ServerZones,
        market_hours: MarketHours,
        terminal_of: Callable[[str], TerminalSpec | None],
        make_source: Callable[[TerminalSpec], BarsSource],
        *,
        clock: Clock = SYSTEM_CLOCK,
        page: int = PAGE_BARS,
    ) -> None:
        self._collector = collector
        self._zones = zones
        self._hours = market_hours
        self._terminal_of = terminal_of
        self._make_source = make_source
        self._clock = clock
        self._page = page
        self._books: dict[tuple[str, str], _Book] = {}
        self._sources: dict[str, BarsSource] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._first_answer = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle
    async def start(self, symbols: list[str], day_book: DayBook | None = None) -> None:
        """Take the running loop for requests; seed the day figures of ``symbols``."""
        self._loop = asyncio.get_running_loop()
        # Start each terminal's helper process now (spawning takes a second or more):
        # the chart's first request then finds it ready.
        warmed: set[str] = set()
        for symbol in symbols:
            spec = self._terminal_of(symbol)
            if spec is not None and spec.name not in warmed:
                warmed.add(spec.name)
                self._spawn(self._warm(spec, symbol))
        if day_book is not None and symbols:
            self._spawn(self._seed_days(symbols, day_book))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        sources, self._sources = list(self._sources.values()), {}
        for source in sources:
            with contextlib.suppress(Exception):
                await source.close()

    # ------------------------------------------------------------------ snapshots
    def series(self, symbol: str, timeframe: str) -> ChartSeries:
        """Bars of ``symbol`` in ``timeframe`` (``"M1"`` … ``"D1"``) now; the first call
        for a pair starts loading its history."""
        tf_ms = TIMEFRAMES[timeframe]
        book = self._books.get((symbol, timeframe))
        if book is None:
            book = self._books[(symbol, timeframe)] = _Book(tf_ms)
            self._fetch(symbol, timeframe, book, older=False)
        live = self._live_bars(symbol, tf_ms)
        if book.until_ms == 0:
            history, recent = empty_bars(), live
        else:
            history, recent = book.prefix, self._join(symbol, book, live)
        return self._snapshot(symbol, timeframe, book, history, recent)

    def ticks(self, symbol: str, start_msc: int, seen: int) -> ChartSeries:
        """The tick view: the ticks since ``seen`` ticks of ``symbol`` were drawn, or the
        whole window from ``start_msc`` (``ticks_reset``) when that cannot be appended."""
        cache = self._collector.cache
        stats = self._collector.stats.symbols.get(symbol)
        count = stats.ticks if stats is not None else 0
        new = count - seen
        ring = len(cache.ring(symbol)) if symbol in cache else 0
        reset = seen < 0 or new < 0 or new > ring
        if reset:
            ticks = window_ticks(cache, symbol, start_msc, max(new, 0) + 1024)
        elif new > 0:
            ticks = cache.snapshot(symbol, new)
        else:
            ticks = empty_ticks()
        empty = empty_bars()
        return self._snapshot(symbol, TICKS, None, empty, empty, ticks=ticks, reset=reset)

    def request_older(self, symbol: str, timeframe: str, before_ms: int) -> None:
        """Load the page of bars before ``before_ms`` (the oldest bar the window holds),
        unless a request runs or the history is complete."""
        book = self._books.get((symbol, timeframe))
        if book is None or book.loading or book.complete or book.until_ms == 0:
            return
        oldest = int(book.bars["time_msc"][0]) if len(book.bars) else book.seam_ms
        if before_ms > oldest:
            return  # already held
        self._fetch(symbol, timeframe, book, older=True)

    # ------------------------------------------------------------------ internals
    def _snapshot(
        self,
        symbol: str,
        timeframe: str,
        book: _Book | None,
        history: BarArray,
        recent: BarArray,
        *,
        ticks: TickArray | None = None,
        reset: bool = False,
    ) -> ChartSeries:
        stats = self._collector.stats.symbols.get(symbol)
        now_s = int(self._clock.time())
        # Asked only while the symbol has no tick: the chart then says when it opens.
        opens = self._hours.closed_until(symbol, now_s) if stats is None else now_s
        return ChartSeries(
            symbol=symbol,
            timeframe=timeframe,
            history=history,
            recent=recent,
            history_version=book.version if book is not None else 0,
            ticks=ticks if ticks is not None else empty_ticks(),
            ticks_reset=reset,
            tick_count=stats.ticks if stats is not None else 0,
            bid=stats.last_bid if stats is not None else None,
            ask=stats.last_ask if stats is not None else None,
            last_time_msc=stats.last_time_msc if stats is not None else 0,
            zone=self._zones.zone(symbol),
            loading=book is not None and book.loading,
            error=book.error if book is not None else "",
            complete=book is not None and book.complete,
            closed_until_s=opens if opens > now_s else 0,
        )

    def _live_bars(self, symbol: str, tf_ms: int) -> BarArray:
        try:
            m1 = self._collector.bars(symbol, M1)
        except KeyError:
            return empty_bars()
        return m1 if tf_ms == M1 else resample_bars(m1, tf_ms, self._zones.zone(symbol))

    def _join(self, symbol: str, book: _Book, live: BarArray) -> BarArray:
        """The seam bar and the live bars after it (see the module doc)."""
        times = live["time_msc"]
        tail = live[int(np.searchsorted(times, book.seam_ms, side="left")) :]
        stats = self._collector.stats.symbols.get(symbol)
        if book.overlap is None and stats is not None and stats.last_time_msc >= book.until_ms:
            book.overlap = self._overlap(symbol, book)
        at_seam = len(tail) and int(tail["time_msc"][0]) == book.seam_ms
        if not len(book.seam):
            return tail
        if book.overlap is None or not at_seam:
            # Live capture has not passed the history's end yet: history's seam bar.
            after = tail[tail["time_msc"] > book.seam_ms]
            return np.concatenate((book.seam, after))
        seam = book.seam.copy()
        first = tail[0]
        count, ssum = book.overlap
        seam["high"] = max(float(seam["high"][0]), float(first["high"]))
        seam["low"] = min(float(seam["low"][0]), float(first["low"]))
        seam["close"] = first["close"]
        seam["tick_count"] += int(first["tick_count"]) - count
        seam["spread_min"] = min(float(seam["spread_min"][0]), float(first["spread_min"]))
        seam["spread_max"] = max(float(seam["spread_max"][0]), float(first["spread_max"]))
        seam["spread_sum"] += float(first["spread_sum"]) - ssum
        return np.concatenate((seam, tail[1:]))

    def _overlap(self, symbol: str, book: _Book) -> tuple[int, float]:
        """Live ticks in ``[seam_ms, until_ms)``: whole M1 bars, then the cached ticks
        of the last minute (read once, right after live capture passed ``until_ms``)."""
        minute = book.until_ms - book.until_ms % M1
        count, ssum = 0, 0.0
        try:
            m1 = self._collector.bars(symbol, M1)
        except KeyError:
            m1 = empty_bars()
        inside = m1[(m1["time_msc"] >= book.seam_ms) & (m1["time_msc"] < minute)]
        count += int(inside["tick_count"].sum())
        ssum += float(inside["spread_sum"].sum())
        ticks = window_ticks(self._collector.cache, symbol, max(minute, book.seam_ms))
        ticks = ticks[ticks["time_msc"] < book.until_ms]
        count += len(ticks)
        ssum += float((ticks["ask"] - ticks["bid"]).sum())
        return count, ssum

    def _fetch(self, symbol: str, timeframe: str, book: _Book, *, older: bool) -> None:
        spec = self._terminal_of(symbol)
        if self._loop is None or spec is None:
            book.error = "" if spec is not None else f"no terminal captures {symbol}"
            return
        book.loading = True
        self._spawn(self._load(symbol, timeframe, book, spec, older))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _source(self, spec: TerminalSpec) -> BarsSource:
        source = self._sources.get(spec.name)
        if source is None:
            source = self._sources[spec.name] = self._make_source(spec)
        return source

    async def _load(
        self, symbol: str, timeframe: str, book: _Book, spec: TerminalSpec, older: bool
    ) -> None:
        if older and len(book.bars):
            before_s = int(book.bars["time_msc"][0]) // 1000 - 1
        elif older:
            before_s = book.seam_ms // 1000 - 1
        else:
            before_s = int(self._clock.time())
        # Older pages grow with what is held (a zoomed-out view scrolls through more).
        count = min(max(self._page, len(book.bars)), MAX_PAGE_BARS) if older else self._page
        try:
            answer = await self._source(spec).bars(symbol, book.tf_ms, before_s, count)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            book.error = f"{symbol} {timeframe} history: {exc}"
            log.warning("%s", book.error)
            return
        finally:
            book.loading = False
            self._first_answer.set()
        book.error = ""
        bars = answer.bars
        if older:
            held = int(book.bars["time_msc"][0]) if len(book.bars) else book.seam_ms
            bars = bars[bars["time_msc"] < held]
            book.complete = len(bars) == 0
            book.bars = np.concatenate((bars, book.bars))
            book.prefix = book.bars[book.bars["time_msc"] < book.seam_ms]
        else:
            self._adopt(symbol, book, bars, answer.until_ms)
        book.version += 1

    def _adopt(self, symbol: str, book: _Book, bars: BarArray, until_ms: int) -> None:
        """A first answer: where the seam is and what of it the history holds."""
        zone = self._zones.zone_or_utc(symbol)
        seam = bar_starts_utc_ms(np.array([until_ms], np.int64), book.tf_ms, zone)
        book.until_ms, book.seam_ms = until_ms, int(seam[0])
        book.bars = bars
        book.prefix = bars[bars["time_msc"] < book.seam_ms]
        book.seam = bars[bars["time_msc"] == book.seam_ms].copy()
        book.overlap = None
        book.complete = len(bars) < self._page

    async def _warm(self, spec: TerminalSpec, symbol: str) -> None:
        with contextlib.suppress(Exception):
            await self._source(spec).bars(symbol, M1, int(self._clock.time()), 1)

    async def _seed_days(self, symbols: list[str], day_book: DayBook) -> None:
        """The day figures from H1 history: after the chart's first answer (or a while)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_answer.wait(), _SEED_AFTER_CHART_S)
        for symbol in symbols:
            spec = self._terminal_of(symbol)
            if spec is None:
                continue
            now_s = int(self._clock.time())
            try:
                answer = await self._source(spec).bars(
                    symbol, TIMEFRAMES["H1"], now_s, _DAY_SEED_BARS
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: day figures not seeded from history: %s", symbol, exc)
                continue
            day_book.seed(symbol, answer.bars)
