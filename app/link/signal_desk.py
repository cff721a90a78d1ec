"""The client's signal desk: the bridge link's signals in, orders out, outcomes back.

A thin asyncio adapter over the pure :class:`~app.trading.signals.SignalBook`. The
bridge link hands it every ``signal`` frame (:meth:`on_signal`) and every
``outcome_stored`` (:meth:`on_outcome_stored`), and asks it at each welcome for what to
resend (:meth:`on_welcome`). The desk:

* saves the book, then acknowledges receipt (``signal_received``) at once, so a signal
  is acknowledged only once the client would know it after a crash;
* executes accepted signals through the injected :data:`Executor` (the execution path,
  which runs the risk engine); the entry is saved as ``executing`` *before* the
  executor is called, so a crash mid-order can never lead to a second order;
* reports each final state as a ``signal_outcome`` and keeps it (saved) until the bridge
  answers ``outcome_stored``; unconfirmed outcomes are sent again after every
  (re)connect and restart. The bridge keeps the first outcome of an id, so a resend is
  harmless.

The book is saved to ``signals.json`` in the user data folder with the project's atomic
write (:func:`app.config.store.atomic_write`): ids seen, entries and unconfirmed
outcomes. Trader actions (:meth:`accept`, :meth:`dismiss`) and :meth:`snapshot` are
what ``Runtime.signals`` offers the window.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec

from app.clock import SYSTEM_CLOCK, Clock, now_msc
from app.config.store import atomic_write
from app.protocol.codec import OutcomeStored, Signal, SignalOutcome, SignalReceived, encode
from app.trading.intent import ExecutionReport, OrderIntent, Outcome
from app.trading.signals import SignalBook, SignalEntry, SignalError, SignalsSnapshot
from app.trading.view import SignalState

log = logging.getLogger(__name__)

#: The execution path's entry: an intent in, its report out (the risk engine inside).
Executor = Callable[[OrderIntent], Awaitable[ExecutionReport]]
#: How often waiting signals are checked for expiry, seconds.
EXPIRY_CHECK_S = 0.25
FILE_NAME = "signals.json"


class _Saved(msgspec.Struct):
    entries: list[SignalEntry] = msgspec.field(default_factory=list)
    seen: list[str] = msgspec.field(default_factory=list)
    unconfirmed: list[SignalOutcome] = msgspec.field(default_factory=list)


_DECODER = msgspec.json.Decoder(_Saved)


class SignalDesk:
    def __init__(
        self,
        executor: Executor,
        *,
        auto_sources: frozenset[str] | set[str] | list[str] = frozenset(),
        path: Path | None = None,
        clock: Clock = SYSTEM_CLOCK,
        deviation: int = 10,
    ) -> None:
        self._executor = executor
        self._path = path
        self._clock = clock
        self._deviation = deviation
        saved = self._load()
        self.book = SignalBook(auto_sources, entries=saved.entries, seen=saved.seen)
        self._unconfirmed = {o.id: o for o in saved.unconfirmed}
        for signal_id in self.book.interrupted:  # in flight when the last run ended
            self._unconfirmed[signal_id] = self.book.get(signal_id).outcome()
        self._send: Callable[[bytes], bool] | None = None
        self._enabled = False
        self._save_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._executing: dict[str, asyncio.Task[None]] = {}
        self.executions = 0

    # ------------------------------------------------------------------ persistence
    def _load(self) -> _Saved:
        path = self._path
        if path is None or not path.exists():
            return _Saved()
        try:
            return _DECODER.decode(path.read_bytes())
        except (OSError, msgspec.DecodeError) as exc:
            aside = path.with_suffix(".corrupt")
            log.error("%s is unreadable (%s); moved to %s, starting empty", path, exc, aside)
            path.replace(aside)
            return _Saved()

    async def save(self) -> None:
        if self._path is None:
            return
        async with self._save_lock:
            entries = list(self.book)
            listed = {e.id for e in entries}
            doc = _Saved(
                entries,
                sorted(self.book.seen - listed),
                list(self._unconfirmed.values()),
            )
            data = msgspec.json.encode(doc)
            path = self._path
            await asyncio.to_thread(_write, path, data)

    # ------------------------------------------------------------------ the link's side
    def bind(self, send: Callable[[bytes], bool]) -> None:
        """The link's way to send a frame now (False when not connected)."""
        self._send = send

    def on_welcome(self, enabled: bool) -> list[bytes]:
        """Connected; ``enabled`` when the bridge speaks ``signals``. Returns the frames
        to send first: the outcomes the bridge has not confirmed."""
        self._enabled = enabled
        if not enabled:
            return []
        return [encode(o) for o in self._unconfirmed.values()]

    def on_disconnect(self) -> None:
        self._enabled = False

    def on_signal(self, signal: Signal) -> None:
        now = now_msc(self._clock)
        arrival = self.book.receive(signal, now)
        self._spawn(self._arrived(signal.id, now, arrival.duplicate))

    def on_outcome_stored(self, message: OutcomeStored) -> None:
        if self._unconfirmed.pop(message.id, None) is not None:
            self._spawn(self.save())

    # ------------------------------------------------------------------ the trader's side
    def snapshot(self) -> SignalsSnapshot:
        return self.book.snapshot()

    def accept(self, signal_id: str) -> str:
        """Accept a waiting signal; "" when done (it executes now), else why not."""
        try:
            entry = self.book.accept(signal_id, now_msc(self._clock))
        except SignalError as exc:
            return str(exc)
        log.info("signal %s accepted by the trader", signal_id)
        self._after_change(entry)
        return "" if entry.state is SignalState.ACCEPTED else entry.reason

    async def accept_signal(self, signal_id: str) -> ExecutionReport:
        """``TradingIntents.accept_signal``: accept, then wait for the execution's report
        (a refused one, with the reason, when the signal cannot be accepted or run)."""
        reason = self.accept(signal_id)
        if reason:
            return ExecutionReport("", Outcome.REFUSED, reason)
        task = self._executing.get(signal_id)
        if task is not None:
            await asyncio.shield(task)
        entry = self.book.get(signal_id)
        if entry.report is not None:
            return entry.report
        outcome = Outcome.REJECTED if entry.state is SignalState.REJECTED else Outcome.REFUSED
        return ExecutionReport(entry.request_id, outcome, entry.reason)

    def set_auto_execute(self, source: str, on: bool) -> None:
        """Signals of ``source`` arriving from now on execute without asking (or not).
        Waiting ones still wait; saving the setting is the caller's business."""
        sources = set(self.book.auto_sources)
        (sources.add if on else sources.discard)(source)
        self.book.auto_sources = frozenset(sources)

    def dismiss(self, signal_id: str) -> str:
        """Dismiss a waiting signal; "" when done, else why not."""
        try:
            entry = self.book.dismiss(signal_id, now_msc(self._clock))
        except SignalError as exc:
            return str(exc)
        log.info("signal %s dismissed by the trader", signal_id)
        self._after_change(entry)
        return ""

    # ------------------------------------------------------------------ the work
    async def run(self) -> None:
        """Execute what a previous run accepted but never started; expire on time."""
        for entry in list(self.book):
            if entry.state is SignalState.ACCEPTED:
                self._after_change(entry)
        while True:
            for entry in self.book.expire(now_msc(self._clock)):
                log.info("signal %s expired: %s", entry.id, entry.reason)
                self._after_change(entry)
            await asyncio.sleep(EXPIRY_CHECK_S)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.save()

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _arrived(self, signal_id: str, at_ms: int, duplicate: bool) -> None:
        if not duplicate:
            await self.save()
        self._transmit(encode(SignalReceived(signal_id, at_ms)))
        if duplicate:
            return
        entry = self.book.get(signal_id)
        if entry.state is SignalState.WAITING:
            log.info(
                "signal %s from %s waits for the trader: %s %s %s",
                signal_id,
                entry.signal.source,
                entry.signal.side,
                entry.signal.volume,
                entry.signal.symbol,
            )
        self._after_change(entry)

    def _after_change(self, entry: SignalEntry) -> None:
        if entry.state is SignalState.ACCEPTED:
            task = self._spawn(self._execute(entry.id))
            self._executing[entry.id] = task
            task.add_done_callback(lambda _: self._executing.pop(entry.id, None))
        elif entry.final and entry.id not in self._unconfirmed:
            self._spawn(self._report(entry))
        else:
            self._spawn(self.save())

    async def _execute(self, signal_id: str) -> None:
        try:
            started = self.book.start(signal_id, now_msc(self._clock), self._deviation)
        except SignalError:  # expired (and reported) before this task ran
            return
        if isinstance(started, SignalEntry):
            await self._report(started)
            return
        await self.save()  # "executing" is on disk before the order can exist
        try:
            report = await self._executor(started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the executor failed on signal %s", signal_id)
            entry = self.book.fail(signal_id, f"{type(exc).__name__}: {exc}", now_msc(self._clock))
        else:
            entry = self.book.finish(signal_id, report, now_msc(self._clock))
        self.executions += 1
        log.info("signal %s: %s %s", signal_id, entry.state, entry.reason)
        await self._report(entry)

    async def _report(self, entry: SignalEntry) -> None:
        outcome = entry.outcome()
        self._unconfirmed[entry.id] = outcome
        await self.save()
        self._transmit(encode(outcome))

    def _transmit(self, frame: bytes) -> None:
        if self._enabled and self._send is not None:
            self._send(frame)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)


async def not_wired(intent: OrderIntent) -> ExecutionReport:
    """The executor until the execution path is wired in: refuses, sends nothing."""
    return ExecutionReport(
        intent.request_id, Outcome.REFUSED, "no execution path in this build: nothing was sent"
    )


def default_path() -> Path:
    import platformdirs  # noqa: PLC0415 - only for the default location

    return platformdirs.user_data_path("trading-client") / FILE_NAME
