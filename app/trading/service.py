"""``Runtime.trading``: the order router and one account book per trading terminal.

Built by the runtime (and by ``trading-client trade``) when ``config.trading.enabled``;
started after the pool (the books and the router reach the terminals through it) and
stopped before it. At start, requests a previous run left in flight are reconciled in
the background as soon as their terminal's worker answers (docs/trading.md
"Execution path"); the router also reconciles them before any new order on that
terminal, so nothing waits on the background task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from app.clock import SYSTEM_CLOCK, Clock
from app.config.trading_schema import TradingConfig
from app.security.audit import AuditLog
from app.servertime import NY_CLOSE, ServerTimeZone
from app.trading.account import AccountBook, Caller, PriceSource
from app.trading.inflight import InFlightJournal
from app.trading.risk import RiskEngine
from app.trading.risk_audit import AuditJournal
from app.trading.router import OrderRouter, RouterSettings

log = logging.getLogger(__name__)

#: Terminal kinds that trade (a replay of export files has no account).
TRADING_KINDS = frozenset({"simulated", "mt5", "remote"})


class Trading:
    """The router (``trading.router``) and the books (``trading.books[terminal]``)."""

    def __init__(
        self,
        caller: Caller,
        config: TradingConfig,
        terminals: Sequence[str],
        *,
        risk: RiskEngine | None = None,
        audit: AuditLog | None = None,
        zone_of: Callable[[str], ServerTimeZone] | None = None,
        prices: PriceSource | None = None,
        journal_path: Path | None = None,
        refresh_s: float = 1.0,
        settings: RouterSettings | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not terminals:
            raise ValueError("no terminal that trades is configured")
        timeout = config.order_timeout_s
        self.books = {
            t: AccountBook(
                caller, t, refresh_s=refresh_s, timeout_s=timeout, prices=prices, clock=clock
            )
            for t in terminals
        }
        self.journal = InFlightJournal(journal_path)
        #: Decisions and state changes go to the audit log, off the order path.
        self._audit = AuditJournal(audit if audit is not None else AuditLog())
        #: The one risk engine in front of every order (halt, resume, consent: here).
        self.risk = risk if risk is not None else RiskEngine(config, clock, self._audit)
        self.router = OrderRouter(
            caller,
            self.books,
            self.journal,
            self.risk,
            default_terminal=terminals[0],
            zone_of=zone_of or (lambda terminal: NY_CLOSE),
            settings=settings
            or RouterSettings(order_timeout_s=timeout, default_deviation=config.default_deviation),
            clock=clock,
        )
        self._reconciling: asyncio.Task[None] | None = None

    def book(self, terminal: str | None = None) -> AccountBook:
        return self.books[terminal or self.router.default_terminal]

    async def start(self, *, refresh: bool = True) -> None:
        """Start the books' refresh loops (``refresh=False``: read on demand only, for
        one-shot commands) and reconcile what a previous run left in flight."""
        if refresh:
            for book in self.books.values():
                book.start()
        if self.router.unsettled():
            log.warning(
                "%d order request(s) of an earlier run have no known outcome; looking them "
                "up in the terminal",
                len(self.router.unsettled()),
            )
            self._reconciling = asyncio.create_task(self._reconcile(), name="trading-reconcile")

    async def _reconcile(self) -> None:
        """Until every earlier request's outcome is known (each round bounded, so an
        order waits at most one round for the terminal's lock)."""
        while self.router.unsettled():
            for report in await self.router.reconcile():
                log.warning("earlier request %s: %s", report.request_id, report.message)
            if self.router.unsettled():
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._reconciling is not None:
            self._reconciling.cancel()
            await asyncio.gather(self._reconciling, return_exceptions=True)
        for book in self.books.values():
            await book.stop()
        await asyncio.to_thread(self._audit.close)
