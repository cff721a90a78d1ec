"""The order path's adapter: intent → risk → worker's ``order_send`` → report, never twice.

Each step is a rule of :mod:`app.trading.execution` or a call through the pool
(``ConnectorPool.call``: the worker connected to the intent's terminal). The one thing
this module adds is the *order of durable steps* that makes "never an order twice" hold
across timeouts, dead workers and a killed app:

1. an earlier request of this terminal whose outcome is unknown is reconciled first;
   while it stays unknown nothing new is sent to that terminal;
2. the risk engine's verdict on an ``AccountView`` of the book's snapshot (refused:
   nothing is sent, nothing recorded);
3. the request is written to the in-flight journal (fsync'd) *before* ``order_send``;
4. the terminal's answer → report, and only then the journal entry is cleared;
5. no answer (timeout, worker gone, an IPC error): the entry stays and the request is
   looked up by its comment ``tc:<id>`` in the terminal's orders, positions and history
   (:func:`~app.trading.execution.find_request`), retried until the worker is back and
   the terminal answers. "Not found" is final only for a read that began at least
   ``settle_s`` after the request was sent (default: the order timeout, the time a
   terminal itself gives a request): the request can no longer be on its way. It is
   never re-sent; a new order is a new intent with a new id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from app.clock import SYSTEM_CLOCK, Clock
from app.connector.calls import CallError, NotConnected, TerminalCallError
from app.servertime import NY_CLOSE, ServerTimeZone
from app.terminal.constants import CONNECTION_ERRORS
from app.terminal.trade_constants import POSITION_TYPE_BUY
from app.terminal.trade_types import OrderSendResult, TradeOrder, TradePosition
from app.terminal.types import SymbolInfo
from app.trading import execution
from app.trading.account import AccountBook, Caller, call_list
from app.trading.account_view import AccountView
from app.trading.inflight import InFlight, InFlightJournal
from app.trading.intent import (
    Action,
    ExecutionReport,
    OrderIntent,
    Origin,
    Outcome,
    Side,
)

log = logging.getLogger(__name__)

#: Server time may be up to 14 h ahead of UTC (and 12 h behind): history reads are
#: widened by this much on both sides so the request's time is inside whatever the zone.
_ZONE_MARGIN_S = 15 * 3600
_RECONCILE_STEP_S = 0.2


class RiskVerdict(Protocol):
    @property
    def accepted(self) -> bool: ...

    @property
    def reason(self) -> str: ...


class RiskGate(Protocol):
    """What the router needs of the risk engine (``app/trading/risk.py`` ``RiskEngine``)."""

    def check(self, intent: OrderIntent, view: AccountView) -> RiskVerdict: ...


@dataclass(frozen=True, slots=True)
class RouterSettings:
    order_timeout_s: float = 10.0
    default_deviation: int = 10
    #: Seconds after sending from which "not in the terminal" is final (None: the
    #: order timeout).
    settle_s: float | None = None
    #: How long one order's reconciliation is retried before the report says UNKNOWN
    #: (the entry stays in the journal and is reconciled again before the next order).
    reconcile_timeout_s: float = 60.0
    #: Hours of history searched before the request's time.
    lookback_h: float = 24.0


class OrderRouter:
    """Every order of the application goes through :meth:`execute` (window, CLI, signals)."""

    def __init__(
        self,
        caller: Caller,
        books: Mapping[str, AccountBook],
        journal: InFlightJournal,
        risk: RiskGate,
        *,
        default_terminal: str,
        settings: RouterSettings | None = None,
        zone_of: Callable[[str], ServerTimeZone] = lambda terminal: NY_CLOSE,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._caller = caller
        #: A terminal's server zone: the risk engine's day starts at its server midnight.
        self._zone_of = zone_of
        self.books = books
        self.journal = journal
        self.risk = risk
        self.default_terminal = default_terminal
        self.settings = settings or RouterSettings()
        self._clock = clock
        self._symbols: dict[tuple[str, str], SymbolInfo] = {}
        #: One order at a time per terminal: reconcile-then-send must not interleave.
        self._locks: dict[str, asyncio.Lock] = {}
        #: The answer to the last intent, for a status line.
        self.last_report: ExecutionReport | None = None

    @property
    def caller(self) -> Caller:
        """The pool (``call(terminal, method, timeout, *args)``), for reads such as a
        dialog's ``symbol_info``; orders go through :meth:`execute`, never through it."""
        return self._caller

    # ------------------------------------------------------------------ intents
    async def execute(self, intent: OrderIntent) -> ExecutionReport:
        """Run ``intent`` to its report (see the module doc for the steps)."""
        terminal = intent.terminal or self.default_terminal
        lock = self._locks.setdefault(terminal, asyncio.Lock())
        async with lock:
            report = await self._execute(replace(intent, terminal=terminal), terminal)
        self.last_report = report
        log.info("order %s %s: %s", intent.request_id, report.outcome, report.message)
        return report

    async def close_position(
        self,
        ticket: int,
        volume: float | None = None,
        *,
        terminal: str | None = None,
        origin: Origin = Origin.MANUAL,
        source: str = "manual",
    ) -> ExecutionReport:
        """Close (part of) position ``ticket`` at the market."""
        pos = await self._position(terminal or self.default_terminal, ticket)
        if pos is None:
            return ExecutionReport("", Outcome.REJECTED, f"no open position {ticket}")
        buy = pos.type == POSITION_TYPE_BUY
        return await self.execute(
            OrderIntent(
                Action.CLOSE,
                pos.symbol,
                Side.SELL if buy else Side.BUY,
                volume or pos.volume,
                origin,
                deviation=self.settings.default_deviation,
                ticket=ticket,
                source=source,
                terminal=terminal,
            )
        )

    async def modify_position(
        self,
        ticket: int,
        sl: float | None,
        tp: float | None,
        *,
        terminal: str | None = None,
        origin: Origin = Origin.MANUAL,
    ) -> ExecutionReport:
        """Set SL/TP of a position (or price-less SL/TP of a pending order)."""
        term = terminal or self.default_terminal
        pos = await self._position(term, ticket)
        order = None if pos is not None else await self._order(term, ticket)
        symbol = pos.symbol if pos is not None else order.symbol if order is not None else ""
        return await self.execute(
            OrderIntent(
                Action.MODIFY, symbol, Side.BUY, 0.0, origin, sl=sl, tp=tp, ticket=ticket,
                terminal=terminal,
            )
        )  # fmt: skip

    async def cancel_order(
        self, ticket: int, *, terminal: str | None = None, origin: Origin = Origin.MANUAL
    ) -> ExecutionReport:
        order = await self._order(terminal or self.default_terminal, ticket)
        symbol = order.symbol if order is not None else ""
        return await self.execute(
            OrderIntent(
                Action.CANCEL, symbol, Side.BUY, 0.0, origin, ticket=ticket, terminal=terminal
            )
        )

    # ------------------------------------------------------------------ the path
    async def _execute(self, intent: OrderIntent, terminal: str) -> ExecutionReport:
        started = time.perf_counter()
        rid = intent.request_id
        book = self.books.get(terminal)
        if book is None:
            return ExecutionReport(rid, Outcome.REFUSED, f"no terminal {terminal!r} trades here")
        if self.journal.entries(terminal):
            await self._reconcile_entries(terminal)
            left = self.journal.entries(terminal)
            if left:
                return ExecutionReport(
                    rid,
                    Outcome.REFUSED,
                    f"nothing sent: the outcome of earlier request {left[0].request_id} on "
                    f"{terminal} is not known yet (the terminal is not answering)",
                )
        snap = book.snapshot() if book.current else await book.refresh()
        if snap.account is None:
            return ExecutionReport(rid, Outcome.REJECTED, f"not sent: no account ({snap.error})")
        try:
            rules = await self._symbol(terminal, intent.symbol) if intent.symbol else None
        except CallError as exc:
            return ExecutionReport(rid, Outcome.REJECTED, f"not sent: {exc}")
        view = AccountView.of(
            snap.account,
            self._zone_of(terminal),
            self._clock.time(),
            positions=snap.positions,
            orders=snap.orders,
            symbols=() if rules is None else (rules,),
        )
        verdict = self.risk.check(intent, view)
        if not verdict.accepted:
            return ExecutionReport(rid, Outcome.REFUSED, verdict.reason)
        try:
            request, point = await self._request(intent, terminal)
        except execution.IntentError as exc:
            return ExecutionReport(rid, Outcome.REJECTED, str(exc))
        except CallError as exc:  # nothing was sent: the order is not in flight
            return ExecutionReport(rid, Outcome.REJECTED, f"not sent: {exc}")
        entry = InFlight(rid, terminal, request, self._now_ms(), str(intent.action))
        await asyncio.to_thread(self.journal.add, entry)
        try:
            result: OrderSendResult = await self._caller.call(
                terminal, "order_send", self.settings.order_timeout_s, request
            )
        except NotConnected as exc:  # not sent at all
            await asyncio.to_thread(self.journal.resolve, rid)
            return ExecutionReport(rid, Outcome.REJECTED, f"not sent: {exc}")
        except TerminalCallError as exc:
            if exc.code not in CONNECTION_ERRORS:  # refused before the trade server
                await asyncio.to_thread(self.journal.resolve, rid)
                return ExecutionReport(rid, Outcome.REJECTED, f"order_send failed: {exc.text}")
            log.warning("order %s: %s; looking it up in the terminal", rid, exc)
            return await self._reconcile_one(entry, started)
        except CallError as exc:
            log.warning("order %s: %s; looking it up in the terminal", rid, exc)
            return await self._reconcile_one(entry, started)
        latency = (time.perf_counter() - started) * 1000
        report = execution.report_of(rid, request, result, point, latency)
        await asyncio.to_thread(self.journal.resolve, rid)
        book.refresh_soon()
        if report.deal and not report.position:
            if view.hedging:
                # Hedging: a market order opens its own position, named by the order.
                report = replace(report, position=report.order)
            else:
                position = await self._position_of_deal(terminal, report.deal)
                report = replace(report, position=position)
        return report

    async def _position_of_deal(self, terminal: str, deal: int) -> int:
        """The position a deal opened or added to (``OrderSendResult`` does not say; on a
        netting account it is not the order's ticket). 0 when the terminal cannot tell."""
        try:
            found = await call_list(
                self._caller,
                terminal,
                "history_deals_get",
                self.settings.order_timeout_s,
                ticket=deal,
            )
        except CallError:
            return 0
        return int(found[0].position_id) if found else 0

    async def _request(self, intent: OrderIntent, terminal: str) -> tuple[dict[str, Any], float]:
        t = self.settings.order_timeout_s
        position = order = None
        if intent.ticket is not None and intent.action is not Action.OPEN:
            position = await self._position(terminal, intent.ticket)
            if position is None and intent.action is not Action.CLOSE:
                order = await self._order(terminal, intent.ticket)
        symbol = position.symbol if position is not None else intent.symbol
        symbol = order.symbol if order is not None else symbol
        if not symbol:
            raise execution.IntentError(f"no open position or pending order {intent.ticket}")
        info = await self._symbol(terminal, symbol)
        tick = await self._caller.call(terminal, "symbol_info_tick", t, symbol)
        request = execution.build_request(intent, info, tick, position=position, order=order)
        return request, info.point

    async def _symbol(self, terminal: str, symbol: str) -> SymbolInfo:
        """``symbol_info`` once per terminal and symbol (volume rules, filling, point)."""
        info = self._symbols.get((terminal, symbol))
        if info is None:
            info = await self._caller.call(
                terminal, "symbol_info", self.settings.order_timeout_s, symbol
            )
            self._symbols[(terminal, symbol)] = info
        return info

    async def _position(self, terminal: str, ticket: int) -> TradePosition | None:
        t = self.settings.order_timeout_s
        found = await call_list(self._caller, terminal, "positions_get", t)
        return next((p for p in found if p.ticket == ticket), None)

    async def _order(self, terminal: str, ticket: int) -> TradeOrder | None:
        t = self.settings.order_timeout_s
        found = await call_list(self._caller, terminal, "orders_get", t)
        return next((o for o in found if o.ticket == ticket), None)

    # ------------------------------------------------------------------ reconciliation
    async def reconcile(
        self, terminal: str | None = None, timeout: float | None = None
    ) -> list[ExecutionReport]:
        """Settle every in-flight entry (of ``terminal``) whose outcome is unknown; each
        terminal's entries under its order lock, so no order is sent meanwhile."""
        # Entries of a terminal not configured here wait for a run that trades on it.
        terminals = {e.terminal for e in self.journal.entries(terminal) if e.terminal in self.books}
        out: list[ExecutionReport] = []
        for term in sorted(terminals):
            async with self._locks.setdefault(term, asyncio.Lock()):
                out += await self._reconcile_entries(term, timeout)
        return out

    async def _reconcile_entries(
        self, terminal: str, timeout: float | None = None
    ) -> list[ExecutionReport]:
        return [
            await self._reconcile_one(entry, None, timeout)
            for entry in self.journal.entries(terminal)
        ]

    async def _reconcile_one(
        self, entry: InFlight, started: float | None, timeout: float | None = None
    ) -> ExecutionReport:
        s = self.settings
        settle_ms = 1000 * (s.settle_s if s.settle_s is not None else s.order_timeout_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout if timeout is not None else s.reconcile_timeout_s)
        last_error = ""
        while True:
            read_at = self._now_ms()
            try:
                seen = await self._read_trades(entry)
            except CallError as exc:
                last_error = str(exc)
            else:
                report = execution.find_request(entry.request_id, entry.request, seen)
                if (
                    report.outcome is not Outcome.REJECTED
                    or read_at - entry.sent_at_ms >= settle_ms
                ):
                    if started is not None:
                        report = replace(report, latency_ms=(time.perf_counter() - started) * 1000)
                    await asyncio.to_thread(self.journal.resolve, entry.request_id)
                    book = self.books.get(entry.terminal)
                    if book is not None:
                        book.refresh_soon()
                    log.warning("order %s reconciled: %s", entry.request_id, report.message)
                    return report
                last_error = "too early to say it was not executed"
            if loop.time() >= deadline:
                return ExecutionReport(
                    entry.request_id,
                    Outcome.UNKNOWN,
                    f"outcome unknown ({last_error}); it is looked up again before the "
                    f"next order on {entry.terminal} and at the next start, never re-sent",
                )
            await asyncio.sleep(_RECONCILE_STEP_S)

    async def _read_trades(self, entry: InFlight) -> execution.TerminalTrades:
        c, t, timeout = self._caller, entry.terminal, self.settings.order_timeout_s
        since = int(entry.sent_at_ms // 1000 - self.settings.lookback_h * 3600 - _ZONE_MARGIN_S)
        until = int(self._clock.time()) + _ZONE_MARGIN_S
        return execution.TerminalTrades(
            orders=tuple(await call_list(c, t, "orders_get", timeout)),
            positions=tuple(await call_list(c, t, "positions_get", timeout)),
            history_orders=tuple(
                await call_list(c, t, "history_orders_get", timeout, since, until)
            ),
            history_deals=tuple(await call_list(c, t, "history_deals_get", timeout, since, until)),
        )

    def unsettled(self) -> list[InFlight]:
        """In-flight entries of the terminals this router trades on."""
        return [e for e in self.journal.entries() if e.terminal in self.books]

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)


__all__ = [
    "OrderRouter",
    "RiskGate",
    "RiskVerdict",
    "RouterSettings",
]
