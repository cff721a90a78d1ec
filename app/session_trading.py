"""The trading side of :class:`~app.session.DesktopSession`: the :class:`TradingIntents`
the window calls, over the runtime's execution path (``runtime.trading``: router, account
books, risk engine) and signal book (``runtime.signals``).

Why a mixin in its own module: ``app/session.py`` is the window's one door into the core
and stays one file per job (under 600 lines); trading is a job of its own. Intents are
coroutines that wait only on the worker's answer (never block the loop); the snapshot is
built at most once per frame however many widgets ask for it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from app.config.store import atomic_write
from app.terminal.trade_types import TradeDeal, TradeOrder
from app.trading.intent import ExecutionReport, OrderIntent, Outcome
from app.trading.view import SymbolTerms, TradingSnapshot

if TYPE_CHECKING:
    from app.config import ClientConfig
    from app.runtime import Runtime

log = logging.getLogger(__name__)

#: A snapshot asked for again within this many seconds is the same frame's.
FRAME_S = 0.010
NOT_RUNNING = "trading is not running (capture stopped, or trading.enabled is off)"


def rows_csv(rows: Sequence[NamedTuple]) -> str:
    """The rows as CSV, one column per named-tuple field (the module's field names)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if rows:
        writer.writerow(rows[0]._fields)
        writer.writerows(rows)
    return out.getvalue()


class SessionTrading:
    """Mixed into ``DesktopSession`` (which provides ``runtime`` and ``config``)."""

    runtime: Runtime | None
    config: ClientConfig

    _trading_cache: tuple[float, object, TradingSnapshot | None] = (0.0, None, None)
    _trading_version = 0
    _trading_key: object = None
    _last_report: ExecutionReport | None = None

    # ------------------------------------------------------------------ parts
    def _desk(self) -> Any:
        """``runtime.trading`` (None: capture stopped or trading disabled)."""
        return getattr(self.runtime, "trading", None) if self.runtime is not None else None

    def _signals(self) -> Any:
        return getattr(self.runtime, "signals", None) if self.runtime is not None else None

    # ------------------------------------------------------------------ snapshot
    def trading_snapshot(self) -> TradingSnapshot | None:
        desk = self._desk()
        now = time.monotonic()
        at, owner, cached = self._trading_cache
        if owner is desk and now - at < FRAME_S:
            return cached
        snap = self._build_trading_snapshot(desk) if desk is not None else None
        self._trading_cache = (now, desk, snap)
        return snap

    def _build_trading_snapshot(self, desk: Any) -> TradingSnapshot:
        return desk.snapshot(self._last_report)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ intents
    async def place_order(self, intent: OrderIntent) -> ExecutionReport:
        desk = self._desk()
        if desk is None:
            return self._report(ExecutionReport(intent.request_id, Outcome.REFUSED, NOT_RUNNING))
        return self._report(await desk.router.execute(intent))

    async def close_position(self, ticket: int, volume: float | None = None) -> ExecutionReport:
        desk = self._desk()
        if desk is None:
            return self._report(ExecutionReport("", Outcome.REFUSED, NOT_RUNNING))
        return self._report(await desk.router.close_position(ticket, volume))

    async def modify_position(
        self, ticket: int, sl: float | None, tp: float | None
    ) -> ExecutionReport:
        desk = self._desk()
        if desk is None:
            return self._report(ExecutionReport("", Outcome.REFUSED, NOT_RUNNING))
        return self._report(await desk.router.modify_position(ticket, sl, tp))

    async def cancel_order(self, ticket: int) -> ExecutionReport:
        desk = self._desk()
        if desk is None:
            return self._report(ExecutionReport("", Outcome.REFUSED, NOT_RUNNING))
        return self._report(await desk.router.cancel_order(ticket))

    def _report(self, report: ExecutionReport) -> ExecutionReport:
        self._last_report = report
        self._trading_cache = (0.0, None, None)
        return report

    def halt_trading(self, reason: str) -> None:
        desk = self._desk()
        if desk is not None:
            log.warning("trading HALTED from the window: %s", reason)
            desk.risk.halt(reason)
            self._trading_cache = (0.0, None, None)

    def resume_trading(self) -> None:
        desk = self._desk()
        if desk is not None:
            log.info("trading resumed from the window")
            desk.risk.resume("resumed from the window")
            self._trading_cache = (0.0, None, None)

    def grant_real_account_consent(self) -> None:
        desk = self._desk()
        if desk is not None:
            log.warning("real-account trading consented to for this session")
            desk.risk.grant_real_account_consent()
            self._trading_cache = (0.0, None, None)

    async def accept_signal(self, signal_id: str) -> ExecutionReport:
        signals = self._signals()
        if signals is None:
            return self._report(ExecutionReport("", Outcome.REFUSED, "signals are not running"))
        return self._report(await signals.accept(signal_id))

    def dismiss_signal(self, signal_id: str) -> None:
        signals = self._signals()
        if signals is not None:
            signals.dismiss(signal_id)
            self._trading_cache = (0.0, None, None)

    def set_auto_execute(self, source: str, on: bool) -> None:
        signals = self._signals()
        if signals is not None:
            log.info("signals from %s: %s", source, "automatic" if on else "wait for the trader")
            signals.set_auto_execute(source, on)
            self._trading_cache = (0.0, None, None)

    async def trade_history(
        self, date_from_ms: int, date_to_ms: int
    ) -> tuple[tuple[TradeDeal, ...], tuple[TradeOrder, ...]]:
        """Deals and orders of the account between the two instants (UTC ms, compared
        with the terminal's deal times), through the worker."""
        desk = self._desk()
        if desk is None:
            raise RuntimeError(NOT_RUNNING)
        deals, orders = await desk.history(date_from_ms // 1000, date_to_ms // 1000)
        return tuple(deals), tuple(orders)

    async def export_trade_rows(self, path: Path, rows: Sequence[NamedTuple]) -> int:
        """Write ``rows`` (deals or orders, as the History tab lists them) to ``path`` as
        CSV, atomically, in a worker thread; returns the rows written."""
        data = rows_csv(rows).encode()
        await asyncio.to_thread(atomic_write, path, data)
        log.info("exported %d trade history rows to %s", len(rows), path)
        return len(rows)


def terms_of(info: Any) -> SymbolTerms:
    """The New Order dialog's view of a ``SymbolInfo``."""
    return SymbolTerms(
        digits=int(info.digits),
        volume_min=float(info.volume_min),
        volume_max=float(info.volume_max),
        volume_step=float(info.volume_step),
        stops_level=int(info.trade_stops_level),
    )


__all__ = ["SessionTrading", "rows_csv", "terms_of"]
