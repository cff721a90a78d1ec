"""The risk engine's journal in the audit log, written off the order path.

An :class:`~app.security.audit.AuditLog` record costs a redaction pass over every string
and an ``fsync``: hundreds of microseconds to milliseconds, against a risk check of a
few microseconds (``benchmarks/bench_risk.py``). So the engine only hands the frozen
intent and decision to a queue here, and one writer thread turns them into records
(``trade.decision``, ``trade.state``, ``trade.consent``) in order. :meth:`AuditJournal.flush`
waits until everything handed over is written; :meth:`AuditJournal.close` does that and
stops the thread (records handed over after it are written synchronously: nothing is
lost at shutdown). A crash loses the records still queued, at most the last moments.

A record carries the intent's fields (symbol, side, volume, prices, ticket, origin,
source, signal id, request id), the decision (rule, reason, state), the account's login,
server and equity; nothing secret is in any of them, and the audit log's redactor masks
only values under secret-sounding keys, which none of these is.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from app.security.audit import AuditLog
from app.trading.account_view import AccountView
from app.trading.intent import OrderIntent
from app.trading.risk import RiskDecision, StateChange

__all__ = ["AuditJournal", "decision_details"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Decision:
    intent: OrderIntent
    decision: RiskDecision
    view: AccountView
    time_utc_s: float


@dataclass(frozen=True, slots=True)
class _Consent:
    granted: bool
    time_utc_s: float


_Item = _Decision | StateChange | _Consent | threading.Event | None


def _iso(time_utc_s: float) -> str:
    return datetime.fromtimestamp(time_utc_s, UTC).isoformat(timespec="milliseconds")


def decision_details(
    intent: OrderIntent, decision: RiskDecision, view: AccountView, time_utc_s: float
) -> dict[str, object]:
    """The audit record's fields for one decision (``reason`` is the trader's line)."""
    return {
        "decided_at": _iso(time_utc_s),
        "request_id": intent.request_id,
        "trade_action": intent.action.value,
        "symbol": intent.symbol,
        "side": intent.side.value,
        "volume": intent.volume,
        "kind": intent.kind.value,
        "price": intent.price,
        "sl": intent.sl,
        "tp": intent.tp,
        "ticket": intent.ticket,
        "origin": intent.origin.value,
        "source": intent.source,
        "signal_id": intent.signal_id,
        "terminal": intent.terminal,
        "accepted": decision.accepted,
        "rule": decision.rule.value,
        "reason": decision.reason,
        "state": decision.state.value,
        "login": view.login,
        "server": view.server,
        "equity": view.equity,
        "currency": view.currency,
    }


class AuditJournal:
    """A :class:`~app.trading.risk.RiskJournal` that writes to ``audit`` on its own
    thread (started at the first record, a daemon: it never holds the process up)."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- RiskJournal
    def decision(
        self, intent: OrderIntent, decision: RiskDecision, view: AccountView, time_utc_s: float
    ) -> None:
        self._put(_Decision(intent, decision, view, time_utc_s))

    def state_changed(self, change: StateChange) -> None:
        self._put(change)

    def consent(self, granted: bool, time_utc_s: float) -> None:
        self._put(_Consent(granted, time_utc_s))

    # ---------------------------------------------------------------- lifetime
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record handed over so far is written; False on timeout."""
        if self._thread is None or self._closed:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _put(self, item: _Item) -> None:
        if self._closed:
            self._write(item)
            return
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closed:
                    self._thread = threading.Thread(
                        target=self._run, name="risk-audit", daemon=True
                    )
                    self._thread.start()
        self._queue.put(item)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._write(item)
            except Exception:  # a record that cannot be written must not end the writer
                _log.exception("cannot write a trading audit record")

    def _write(self, item: _Item) -> None:
        audit = self._audit
        if isinstance(item, threading.Event):
            item.set()
        elif isinstance(item, _Decision):
            d = item.decision
            audit.record(
                "trade.decision",
                item.intent.symbol,
                "success" if d.accepted else "failure",
                **decision_details(item.intent, d, item.view, item.time_utc_s),
            )
        elif isinstance(item, StateChange):
            audit.record(
                "trade.state",
                item.state.value,
                "success",
                changed_at=_iso(item.time_utc_s),
                previous=item.previous.value,
                manual_state=item.manual_state.value,
                cause=item.cause.value,
                reason=item.reason,
            )
        elif isinstance(item, _Consent):
            audit.record(
                "trade.consent",
                "real_account",
                "success",
                granted=item.granted,
                changed_at=_iso(item.time_utc_s),
            )
