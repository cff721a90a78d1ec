"""History backfill: fetch the ticks missed between two runs, without holding up live ones.

Within a run nothing needs fetching: a restarted worker resumes from the pool's cursor
and reads what it missed from the terminal's history (``docs/architecture.md``). Between
runs, the ticks from the end of the previous run to the start of this one are missing.
At start, :class:`Backfill` works out those gaps from the spans recorded in the
:class:`~app.connector.coverage.SpanBook` and fetches them with ``copy_ticks_range`` in
chunks, oldest first, while live capture runs from the start cursor on:

* **no hole, no duplicate at either edge**: a gap runs from the cursor where the last
  recorded span ended to the live capture's start cursor, and is fetched with the very
  cursor arithmetic of the live capture (``CaptureCursor.cut``), so ticks sharing a
  millisecond at either edge are counted, not guessed;
* **not blocking live ticks**: the terminal calls run in a separate process per
  terminal (the ``MetaTrader5`` module is one per process and blocking), the loop only
  awaits the results; fetched ticks enter the collector through
  :meth:`~app.collector.Collector.ingest_history`, which delivers them at once and puts
  them in front of the live cache and bars when the symbol's backfill ends;
* **cancellable and resumable**: :meth:`Backfill.cancel` stops at once; what was fetched
  is recorded as a span (saved every ``save_interval_s`` and at stop), so the next
  run fetches only the rest;
* **observable**: :meth:`Backfill.progress` returns plain :class:`BackfillProgress`
  records for the window and the ``run`` command to poll;
* **UTC**: gaps and cursors are UTC; the terminal is read through
  :class:`~app.connector.server_clock.UtcTerminal` (its server time converted both ways),
  as the live worker reads it. A real terminal without a configured zone has it detected
  in the helper process from a fresh tick (as the worker does); in a closed market that
  fails clearly and the job is retried, then left for the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final

import numpy as np

from app.backoff import Backoff, BackoffPolicy
from app.clock import SYSTEM_CLOCK, Clock, now_msc
from app.collector import Collector
from app.config.schema import BackfillConfig
from app.connector.capture import CaptureCursor
from app.connector.coverage import Cursor, Span, SpanBook, find_gaps
from app.connector.history_sources import HistoryError, HistorySource, TerminalHistory
from app.sessions import MarketHours
from app.terminal.simulated import MAX_TICKS_PER_CALL
from app.terminal.spec import TerminalSpec
from app.ticks import TickArray, TickBatch

__all__ = [
    "Backfill",
    "BackfillProgress",
    "BackfillState",
    "BackfillTarget",
    "format_progress",
]

log = logging.getLogger(__name__)

#: Attempts per chunk before a job fails (connection errors are retried with backoff).
_ATTEMPTS: Final = 5


class BackfillState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """One gap being filled, as the window and ``run`` show it (a snapshot)."""

    terminal: str
    symbol: str
    #: The gap: ticks after ``start_msc`` (the previous run's last tick) up to
    #: ``end_msc`` (where live capture began), epoch ms.
    start_msc: int
    end_msc: int
    #: How far it is filled (epoch ms).
    done_msc: int
    ticks: int
    state: BackfillState
    error: str = ""

    @property
    def fraction(self) -> float:
        """0..1, by time covered (1 when done)."""
        if self.state is BackfillState.DONE:
            return 1.0
        span = self.end_msc - self.start_msc
        return 1.0 if span <= 0 else min(1.0, max(0.0, (self.done_msc - self.start_msc) / span))

    @property
    def active(self) -> bool:
        return self.state in (BackfillState.PENDING, BackfillState.RUNNING)


def format_progress(items: Sequence[BackfillProgress]) -> str | None:
    """One status line for the active and failed jobs, or None when there is nothing to say."""
    shown = [p for p in items if p.active or p.state is BackfillState.FAILED]
    if not shown:
        return None
    parts = []
    for p in shown:
        text = f"{p.symbol} {p.fraction * 100:.0f}% ({p.ticks:,} ticks)"
        if p.state is BackfillState.FAILED:
            text = f"{p.symbol} FAILED: {p.error}"
        elif p.state is BackfillState.PENDING:
            text = f"{p.symbol} pending"
        parts.append(text)
    return "backfill  " + "  ".join(parts)


# ---------------------------------------------------------------- the manager


@dataclass(frozen=True, slots=True)
class BackfillTarget:
    """A symbol whose gap since the last run may need filling, and where live begins."""

    terminal: TerminalSpec
    symbol: str
    live_begin: Cursor


@dataclass(slots=True)
class _Job:
    key: str
    name: str
    target: BackfillTarget
    gap: Span
    cursor: CaptureCursor
    ticks: int = 0
    state: BackfillState = BackfillState.PENDING
    error: str = ""

    def progress(self) -> BackfillProgress:
        return BackfillProgress(
            terminal=self.target.terminal.name,
            symbol=self.target.symbol,
            start_msc=self.gap.begin[0],
            end_msc=self.gap.end[0],
            done_msc=self.cursor.last_msc,
            ticks=self.ticks,
            state=self.state,
            error=self.error,
        )


@dataclass(slots=True)
class _Live:
    key: str
    symbol: str
    begin: Cursor


@dataclass
class _Runner:
    jobs: list[_Job] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


def default_state_file() -> Path:
    import platformdirs  # noqa: PLC0415 - only when no path is configured

    return platformdirs.user_data_path("trading-client") / "capture-spans.json"


class Backfill:
    """Fills the gaps since the last run, per terminal, and records captured spans.

    ``sources`` makes the history reader of a terminal (default: a helper process per
    terminal); tests pass an in-process one.
    """

    def __init__(
        self,
        config: BackfillConfig,
        collector: Collector,
        *,
        clock: Clock = SYSTEM_CLOCK,
        sources: Callable[[TerminalSpec], HistorySource] = TerminalHistory,
        policy: BackoffPolicy | None = None,
        market_hours: MarketHours | None = None,
    ) -> None:
        self.config = config
        #: When markets trade: the look-back counts open hours, a closed stretch is
        #: asked for in one request (it is still asked for: the terminal has the truth).
        self._hours = market_hours or MarketHours(enabled=False)
        self._collector = collector
        self._clock = clock
        self._sources = sources
        self._policy = policy or BackoffPolicy(0.5, 10.0)
        self.book = SpanBook(config.state_file or default_state_file())
        self._runners: dict[str, _Runner] = {}
        self._live: list[_Live] = []
        self._live_position: Callable[[], Mapping[str, Cursor]] | None = None
        self._saver: asyncio.Task[None] | None = None
        self._history_sources: list[HistorySource] = []
        self._started = False

    # ------------------------------------------------------------ public API
    def plan(self, targets: Sequence[BackfillTarget]) -> list[BackfillProgress]:
        """Work out the gaps (nothing is fetched yet); returns them as pending jobs."""
        if not self.config.enabled:
            return []
        now_s = now_msc(self._clock) // 1000
        span_s = int(self.config.max_span_h * 3600)
        for target in targets:
            floor = self._hours.reach_back(target.symbol, now_s, span_s) * 1000
            key = SpanBook.key(target.terminal.name, target.symbol)
            self._live.append(_Live(key, target.symbol, target.live_begin))
            if target.terminal.kind == "replay":
                continue  # a replay's files are the whole history; nothing was missed
            for gap in find_gaps(self.book.previous(key), target.live_begin, floor):
                runner = self._runners.setdefault(target.terminal.name, _Runner())
                name = f"backfill-{len(runner.jobs)}"
                runner.jobs.append(_Job(key, name, target, gap, CaptureCursor(*gap.begin)))
        return self.progress()

    async def start(
        self,
        targets: Sequence[BackfillTarget],
        live_position: Callable[[], Mapping[str, Cursor]],
    ) -> None:
        """Plan, then fetch in the background; ``live_position()`` gives the live end
        cursor per symbol (the pool's cursors), for the spans saved while running."""
        if self._started:
            raise RuntimeError("backfill already started")
        self._started = True
        self.plan(targets)
        if not self.config.enabled:
            return
        self._live_position = live_position
        for runner in self._runners.values():
            runner.task = asyncio.create_task(self._run(runner), name="backfill")
        self._saver = asyncio.create_task(self._save_loop(), name="backfill-save")

    def progress(self) -> list[BackfillProgress]:
        """Every gap of this run, oldest first per terminal: poll it (cheap)."""
        return [job.progress() for r in self._runners.values() for job in r.jobs]

    @property
    def active(self) -> bool:
        return any(p.active for p in self.progress())

    def cancel(self, symbol: str | None = None) -> None:
        """Stop filling (one symbol, or all); what was fetched stays recorded."""
        for runner in self._runners.values():
            for job in runner.jobs:
                if job.state is BackfillState.PENDING and symbol in (None, job.target.symbol):
                    job.state = BackfillState.CANCELLED
            running = [j for j in runner.jobs if j.state is BackfillState.RUNNING]
            if runner.task is not None and any(symbol in (None, j.target.symbol) for j in running):
                runner.task.cancel()

    async def wait(self) -> None:
        """Until every job has ended (done, cancelled or failed)."""
        tasks = [r.task for r in self._runners.values() if r.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel what runs, close the history processes, save the spans."""
        self.cancel()
        await self.wait()
        if self._saver is not None:
            self._saver.cancel()
            await asyncio.gather(self._saver, return_exceptions=True)
        for source in self._history_sources:
            with contextlib.suppress(Exception):
                await source.close()
        self._history_sources.clear()
        self.save()
        left = [p for p in self.progress() if p.state is not BackfillState.DONE]
        if left:
            # Nothing is lost (the spans say what is still missing), but the trader and
            # the summary must not read a stopped backfill as a complete history.
            log.warning(
                "stopping before the history backfill finished (%s): the next run fetches the rest",
                ", ".join(f"{p.symbol} {p.fraction:.0%}" for p in left),
            )

    def save(self) -> None:
        """Record this run's spans (live and fetched) and write the file."""
        if self._record():
            self.book.save()

    def _record(self) -> bool:
        """Put this run's spans into the book; False when the backfill is off."""
        if not self.config.enabled:
            return False
        positions = dict(self._live_position()) if self._live_position is not None else {}
        for live in self._live:
            end = positions.get(live.symbol, live.begin)
            self.book.record(live.key, "live", Span(live.begin, max(end, live.begin)))
        for runner in self._runners.values():
            for job in runner.jobs:
                self.book.record(job.key, job.name, Span(job.gap.begin, job.cursor.as_tuple()))
        return True

    # ------------------------------------------------------------ internals
    async def _save_loop(self) -> None:
        """Save every ``save_interval_s``: the spans are taken on the loop, the file is
        written (and fsync'd) on a thread, so the capture never waits for the disk."""
        while True:
            await asyncio.sleep(self.config.save_interval_s)
            if self._record():
                await asyncio.to_thread(self.book.write, self.book.encoded())

    async def _run(self, runner: _Runner) -> None:
        source: HistorySource | None = None
        symbols = {job.target.symbol for job in runner.jobs}
        try:
            for job in runner.jobs:
                if job.state is not BackfillState.PENDING:
                    continue
                if source is None:
                    source = self._sources(job.target.terminal)
                    self._history_sources.append(source)
                job.state = BackfillState.RUNNING
                try:
                    await self._fill(job, source)
                except asyncio.CancelledError:
                    job.state = BackfillState.CANCELLED
                    raise
                except Exception as exc:
                    job.state = BackfillState.FAILED
                    job.error = str(exc) or type(exc).__name__
                    log.error("backfill of %s failed: %s", job.target.symbol, job.error)
                else:
                    job.state = BackfillState.DONE
                    log.info("backfill of %s: %d ticks", job.target.symbol, job.ticks)
        except asyncio.CancelledError:
            for job in runner.jobs:
                if job.state is BackfillState.PENDING:
                    job.state = BackfillState.CANCELLED
        finally:
            for symbol in symbols:
                self._collector.finish_history(symbol)

    async def _fetch(self, source: HistorySource, symbol: str, from_s: int, to_s: int) -> TickArray:
        backoff = Backoff(self._policy)
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return await source.fetch(symbol, from_s, to_s)
            except HistoryError as exc:
                if attempt == _ATTEMPTS:
                    raise
                delay = backoff.next_delay()
                log.warning("%s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _fill(self, job: _Job, source: HistorySource) -> None:
        """Fetch ``job.gap`` window by window; see the module doc for the edge rules."""
        symbol = job.target.symbol
        end_msc, end_seen = job.gap.end
        last_s = end_msc // 1000
        chunk_s = self.config.chunk_minutes * 60
        cursor = job.cursor
        while cursor.as_tuple() < job.gap.end:
            from_s = cursor.from_seconds
            reopens = self._hours.closed_until(symbol, from_s)
            to_s = min(max(from_s + chunk_s, reopens), last_s + 1)
            raw = await self._fetch(source, symbol, from_s, to_s)
            new, _ = cursor.cut(raw)
            final = to_s > last_s
            limit = end_msc if final else to_s * 1000
            tm = new["time_msc"]
            take = int(np.searchsorted(tm, limit, side="left"))
            if final:
                at_end = int(np.searchsorted(tm, end_msc, side="right")) - take
                take += min(at_end, end_seen)
            batch = new[:take]
            if len(batch):
                self._collector.ingest_history(TickBatch(symbol, batch, 0, self._clock.time()))
                cursor.advance(batch)
                job.ticks += len(batch)
            if len(raw) >= MAX_TICKS_PER_CALL and take == len(new):
                if not len(batch):
                    raise HistoryError(
                        f"copy_ticks_range {symbol}: more ticks in one second than one call returns"
                    )
                continue  # the answer was cut short: more of this window waits
            if final:
                cursor.last_msc, cursor.seen_at_last = end_msc, end_seen
            elif cursor.as_tuple() < (limit, 0):
                cursor.last_msc, cursor.seen_at_last = limit, 0
