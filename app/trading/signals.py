"""The client's book of trading signals, with no I/O: what each signal is and may become.

Every rule about a signal lives here, fed events with the time they happen (``now_ms``,
UTC epoch milliseconds): a signal arrives, the trader accepts or dismisses it, its
execution starts and ends, time passes. The adapter (:mod:`app.link.signal_desk`) only
moves frames, calls the executor and saves the book; so the rules are tested without
sockets or clocks.

States (``SignalState``): ``waiting`` for the trader → ``accepted`` (by the trader, or at
arrival when its source is in ``trading.auto_execute_sources``) → ``executing`` →
``executed`` / ``refused`` / ``rejected``; or ``expired`` (already at arrival, or while
it waited), ``dismissed`` by the trader, ``refused`` at arrival when it breaks a value
rule. The last five are final and are reported to the bridge once each.

**At most once.** An id the book has seen is never taken again: a resend by the bridge
(or a service posting an id twice) is a ``duplicate``, acknowledged and otherwise
ignored; the book's entries are saved across restarts by the adapter, and an entry found
``executing`` after a restart (the app stopped with the order in flight) is never
executed again: it becomes ``rejected`` naming its request id, for the trader to check.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Final

from app.protocol.codec import Signal, SignalOutcome
from app.protocol.signal_rules import expired, signal_problem
from app.trading.intent import (
    Action,
    ExecutionReport,
    OrderIntent,
    Origin,
    Outcome,
    Side,
    new_request_id,
)
from app.trading.view import SignalRow, SignalState

#: Final entries kept in the book (the oldest go first; the adapter keeps their ids).
MAX_ENTRIES: Final = 500


#: States a signal never leaves; each is reported to the bridge once.
FINAL_STATES: Final = frozenset(
    {
        SignalState.EXECUTED,
        SignalState.REFUSED,
        SignalState.REJECTED,
        SignalState.EXPIRED,
        SignalState.DISMISSED,
    }
)


class SignalError(ValueError):
    """An action the book refuses (unknown id, not waiting); the text says why."""


@dataclass(frozen=True, slots=True)
class SignalEntry:
    """One signal as the window shows it. Times are UTC epoch milliseconds."""

    signal: Signal
    state: SignalState
    received_at_ms: int
    #: Executed without asking (its source is automatic).
    auto: bool = False
    reason: str = ""
    #: The order's request id once execution started (its comment in the terminal).
    request_id: str = ""
    executed_at_ms: int | None = None
    report: ExecutionReport | None = None

    @property
    def id(self) -> str:
        return self.signal.id

    @property
    def receive_latency_ms(self) -> int:
        """Created by the service → received here (includes the clocks' difference)."""
        return self.received_at_ms - self.signal.created_at_ms

    @property
    def execute_latency_ms(self) -> int | None:
        """Received → the executor answered (None until it has)."""
        if self.executed_at_ms is None:
            return None
        return self.executed_at_ms - self.received_at_ms

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def row(self) -> SignalRow:
        """The line the Signals panel shows (``TradingSnapshot.signals``)."""
        signal, report = self.signal, self.report
        return SignalRow(
            id=signal.id,
            source=signal.source,
            symbol=signal.symbol,
            side=signal.side,
            volume=signal.volume or 0.0,
            sl=signal.sl,
            tp=signal.tp,
            state=self.state,
            reason=self.reason,
            created_at_ms=signal.created_at_ms,
            received_at_ms=self.received_at_ms,
            valid_until_ms=signal.valid_until_ms,
            auto=self.auto,
            ticket=(report.position or report.order) if report is not None else 0,
            price=report.price if report is not None else 0.0,
            slippage_points=report.slippage_points if report is not None else None,
            latency_ms=None if self.execute_latency_ms is None else float(self.execute_latency_ms),
        )

    def outcome(self) -> SignalOutcome:
        """The report to the bridge of a final entry."""
        row = self.row()
        return SignalOutcome(
            row.id,
            str(row.state),
            row.reason,
            ticket=row.ticket,
            price=row.price,
            slippage_points=row.slippage_points,
            latency_ms=row.latency_ms,
        )


@dataclass(frozen=True, slots=True)
class SignalsSnapshot:
    """The book at one moment, newest first; ``version`` grows with every change."""

    entries: tuple[SignalEntry, ...]
    version: int
    duplicates: int

    def rows(self) -> tuple[SignalRow, ...]:
        """The entries as ``TradingSnapshot.signals`` lists them."""
        return tuple(e.row() for e in self.entries)

    def by_state(self, state: SignalState) -> tuple[SignalEntry, ...]:
        return tuple(e for e in self.entries if e.state is state)

    def get(self, signal_id: str) -> SignalEntry | None:
        return next((e for e in self.entries if e.id == signal_id), None)

    def summary(self) -> str:
        """One line for ``run``'s summary: how many signals, by state."""
        counts: dict[str, int] = {}
        for entry in self.entries:
            counts[entry.state] = counts.get(entry.state, 0) + 1
        states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        return f"signals: {len(self.entries)} received ({states or 'none'})"


@dataclass(frozen=True, slots=True)
class Arrival:
    """What :meth:`SignalBook.receive` made of a signal frame: the entry (None for a
    duplicate of an id no longer in the book) and whether it was a duplicate."""

    entry: SignalEntry | None
    duplicate: bool


def intent_for(entry: SignalEntry, deviation: int = 10) -> OrderIntent | str:
    """The market order a signal asks for, or why it cannot be one."""
    signal = entry.signal
    if signal.volume is None:
        return "risk_pct not supported yet: the signal must give a volume"
    return OrderIntent(
        action=Action.OPEN,
        symbol=signal.symbol,
        side=Side(signal.side),
        volume=signal.volume,
        origin=Origin.SIGNAL,
        sl=signal.sl,
        tp=signal.tp,
        deviation=deviation,
        source=signal.source,
        signal_id=signal.id,
        request_id=entry.request_id or new_request_id(),
    )


_STATE_OF: Final = {
    Outcome.EXECUTED: SignalState.EXECUTED,
    Outcome.PLACED: SignalState.EXECUTED,
    Outcome.REFUSED: SignalState.REFUSED,
    Outcome.REJECTED: SignalState.REJECTED,
    Outcome.UNKNOWN: SignalState.REJECTED,
}


class SignalBook:
    def __init__(
        self,
        auto_sources: Iterable[str] = (),
        *,
        entries: Iterable[SignalEntry] = (),
        seen: Iterable[str] = (),
    ) -> None:
        self.auto_sources = frozenset(auto_sources)
        self._entries: dict[str, SignalEntry] = {}
        #: Every id ever taken, also those whose entries were dropped from the book.
        self._seen: set[str] = set(seen)
        self.version = 0
        self.duplicates = 0
        #: Ids restored ``executing``: now rejected, their outcome still to report.
        self.interrupted: list[str] = []
        for saved in entries:
            entry = saved
            if saved.state is SignalState.EXECUTING:
                self.interrupted.append(saved.id)
                entry = replace(
                    saved,
                    state=SignalState.REJECTED,
                    reason="the app stopped while the order was in flight; it is not sent "
                    f"again: check the terminal for request id {saved.request_id}",
                )
            self._entries[entry.id] = entry
            self._seen.add(entry.id)

    # ------------------------------------------------------------------ reading
    def __iter__(self) -> Iterator[SignalEntry]:
        return iter(self._entries.values())

    def __contains__(self, signal_id: str) -> bool:
        return signal_id in self._seen

    def get(self, signal_id: str) -> SignalEntry:
        entry = self._entries.get(signal_id)
        if entry is None:
            raise SignalError(f"no signal {signal_id[:100]!r}")
        return entry

    @property
    def seen(self) -> frozenset[str]:
        return frozenset(self._seen)

    def snapshot(self) -> SignalsSnapshot:
        entries = sorted(self._entries.values(), key=lambda e: e.received_at_ms, reverse=True)
        return SignalsSnapshot(tuple(entries), self.version, self.duplicates)

    # ------------------------------------------------------------------ events
    def _put(self, entry: SignalEntry) -> SignalEntry:
        self._entries[entry.id] = entry
        self._seen.add(entry.id)
        self.version += 1
        if len(self._entries) > MAX_ENTRIES:
            for old in sorted(
                (e for e in self._entries.values() if e.final),
                key=lambda e: e.received_at_ms,
            )[: len(self._entries) - MAX_ENTRIES]:
                del self._entries[old.id]
        return entry

    def receive(self, signal: Signal, now_ms: int) -> Arrival:
        """A signal frame. A known id is a duplicate: nothing changes."""
        if signal.id in self._seen:
            self.duplicates += 1
            return Arrival(self._entries.get(signal.id), True)
        auto = signal.source in self.auto_sources
        problem = signal_problem(signal)
        if problem is not None:
            entry = SignalEntry(signal, SignalState.REFUSED, now_ms, auto, problem)
        elif expired(signal, now_ms):
            entry = SignalEntry(
                signal,
                SignalState.EXPIRED,
                now_ms,
                auto,
                f"expired {now_ms - signal.valid_until_ms} ms before it arrived",
            )
        else:
            state = SignalState.ACCEPTED if auto else SignalState.WAITING
            entry = SignalEntry(signal, state, now_ms, auto)
        return Arrival(self._put(entry), False)

    def accept(self, signal_id: str, now_ms: int) -> SignalEntry:
        """The trader accepts a waiting signal (an expired one expires instead)."""
        entry = self._waiting(signal_id, "accept")
        if expired(entry.signal, now_ms):
            return self._expire(entry, now_ms)
        return self._put(replace(entry, state=SignalState.ACCEPTED))

    def dismiss(
        self, signal_id: str, now_ms: int, reason: str = "dismissed by the trader"
    ) -> SignalEntry:
        entry = self._waiting(signal_id, "dismiss")
        if expired(entry.signal, now_ms):
            return self._expire(entry, now_ms)
        return self._put(replace(entry, state=SignalState.DISMISSED, reason=reason))

    def _waiting(self, signal_id: str, verb: str) -> SignalEntry:
        entry = self.get(signal_id)
        if entry.state is not SignalState.WAITING:
            raise SignalError(f"cannot {verb} signal {signal_id[:100]!r}: it is {entry.state}")
        return entry

    def start(self, signal_id: str, now_ms: int, deviation: int = 10) -> OrderIntent | SignalEntry:
        """Begin executing an accepted signal: its order intent, or the entry it became
        (expired, or refused when it cannot be an order)."""
        entry = self.get(signal_id)
        if entry.state is not SignalState.ACCEPTED:
            raise SignalError(f"signal {signal_id[:100]!r} is {entry.state}, not accepted")
        if expired(entry.signal, now_ms):
            return self._expire(entry, now_ms)
        intent = intent_for(entry, deviation)
        if isinstance(intent, str):
            return self._put(replace(entry, state=SignalState.REFUSED, reason=intent))
        self._put(replace(entry, state=SignalState.EXECUTING, request_id=intent.request_id))
        return intent

    def finish(self, signal_id: str, report: ExecutionReport, now_ms: int) -> SignalEntry:
        """The executor answered."""
        entry = self.get(signal_id)
        if entry.state is not SignalState.EXECUTING:
            raise SignalError(f"signal {signal_id[:100]!r} is {entry.state}, not executing")
        reason = report.message
        if report.outcome is Outcome.UNKNOWN:
            reason = f"no answer from the terminal yet (being reconciled): {report.message}"
        return self._put(
            replace(
                entry,
                state=_STATE_OF[report.outcome],
                reason=reason,
                executed_at_ms=now_ms,
                report=report,
            )
        )

    def fail(self, signal_id: str, reason: str, now_ms: int) -> SignalEntry:
        """The executor raised instead of answering: rejected with its reason."""
        entry = self.get(signal_id)
        return self._put(
            replace(entry, state=SignalState.REJECTED, reason=reason, executed_at_ms=now_ms)
        )

    def expire(self, now_ms: int) -> list[SignalEntry]:
        """Waiting (and accepted, not yet started) signals whose time is up."""
        due = [
            e
            for e in self._entries.values()
            if e.state in (SignalState.WAITING, SignalState.ACCEPTED) and expired(e.signal, now_ms)
        ]
        return [self._expire(e, now_ms) for e in due]

    def _expire(self, entry: SignalEntry, now_ms: int) -> SignalEntry:
        late = now_ms - entry.signal.valid_until_ms
        what = "waiting for the trader" if entry.state is SignalState.WAITING else "accepted"
        return self._put(
            replace(
                entry,
                state=SignalState.EXPIRED,
                reason=f"expired while {what} ({late} ms past valid_until)",
            )
        )
