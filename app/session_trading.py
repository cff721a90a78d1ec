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
from typing import TYPE_CHECKING, NamedTuple

from app.config.store import atomic_write
from app.terminal.trade_constants import ACCOUNT_TRADE_MODE_REAL
from app.terminal.trade_types import TradeDeal, TradeOrder
from app.trading.intent import ExecutionReport, OrderIntent, Outcome
from app.trading.view import (
    RiskState,
    RiskStatus,
    SignalRow,
    SymbolTerms,
    TradingSnapshot,
)

if TYPE_CHECKING:
    from app.config import ClientConfig
    from app.link.signal_desk import SignalDesk
    from app.runtime import Runtime
    from app.terminal.types import SymbolInfo
    from app.trading.risk import RiskEngine
    from app.trading.service import Trading

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

    def _init_trading(self) -> None:
        self._symbol_terms: dict[str, SymbolTerms] = {}
        self._terms_asked: set[str] = set()
        self._terms_tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ parts
    def _desk(self) -> Trading | None:
        """``runtime.trading`` (None: capture stopped or trading disabled)."""
        return self.runtime.trading if self.runtime is not None else None

    def _risk(self) -> RiskEngine | None:
        """The risk engine in front of the router (halt, resume, state, consent)."""
        desk = self._desk()
        return desk.risk if desk is not None else None

    def _signals(self) -> SignalDesk | None:
        return self.runtime.signals if self.runtime is not None else None

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

    def _build_trading_snapshot(self, desk: Trading) -> TradingSnapshot:
        """Account book + risk engine + signal desk + captured prices, as one value."""
        book = desk.book()
        account = book.snapshot()
        risk = desk.risk
        state = getattr(risk, "state", None)
        status = (
            RiskStatus(RiskState(str(state)), getattr(risk, "state_reason", ""))
            if state is not None
            else RiskStatus(RiskState.ACTIVE)
        )
        info = account.account
        consent_needed = (
            info is not None
            and info.trade_mode == ACCOUNT_TRADE_MODE_REAL
            and self.config.trading.allow_real_account
            and not getattr(risk, "real_account_consent", False)
        )
        signals, auto, signals_version = self._signal_rows()
        prices = self._prices()
        self._ask_symbol_terms(desk, tuple(prices))
        key = (account.version, signals_version, status, consent_needed, auto, self._last_report)
        if key != self._trading_key:
            self._trading_key = key
            self._trading_version += 1
        return TradingSnapshot(
            # Prices move the live P/L every tick: the version the panels compare moves too.
            version=self._trading_version * 1_000_003 + self._price_seq(),
            terminal=account.terminal,
            account=info,
            positions=account.positions,
            orders=account.orders,
            live_profit=book.live_profit(),
            signals=signals,
            risk=status,
            real_account_consent_needed=consent_needed,
            auto_sources=auto,
            last_report=self._last_report,
            symbols=dict(self._symbol_terms),
            prices=prices,
        )

    def _prices(self) -> dict[str, tuple[float, float]]:
        runtime = self.runtime
        if runtime is None:
            return {}
        return {
            name: (s.last_bid, s.last_ask)
            for name, s in runtime.collector.stats.symbols.items()
            if s.last_bid and s.last_ask
        }

    def _price_seq(self) -> int:
        return self.runtime.collector.last_seq if self.runtime is not None else 0

    def _signal_rows(self) -> tuple[tuple[SignalRow, ...], frozenset[str], int]:
        desk = self._signals()
        if desk is None:
            return (), frozenset(self.config.trading.auto_execute_sources), 0
        snap = desk.snapshot()
        return (
            tuple(e.row() for e in snap.entries),
            frozenset(desk.book.auto_sources),
            int(snap.version),
        )

    def _ask_symbol_terms(self, desk: Trading, symbols: tuple[str, ...]) -> None:
        """The captured symbols' ``symbol_info`` (volume grid, digits), asked once each
        through the worker in the background: the snapshot is built synchronously."""
        missing = [s for s in symbols if s not in self._symbol_terms and s not in self._terms_asked]
        if not missing:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # Qt pumping events between two runs of the loop: next frame
            return
        self._terms_asked.update(missing)

        if self.runtime is None:
            return
        pool = self.runtime.pool
        terminal = desk.router.default_terminal

        async def ask() -> None:
            for symbol in missing:
                try:
                    info = await pool.call(terminal, "symbol_info", 10.0, symbol)
                except Exception as exc:  # shown as guessed digits, asked again next run
                    log.warning("symbol_info %s: %s", symbol, exc)
                    continue
                if info is not None:
                    self._symbol_terms[symbol] = terms_of(info)

        task = loop.create_task(ask(), name="symbol-terms")
        self._terms_tasks.add(task)
        task.add_done_callback(self._terms_tasks.discard)

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
        risk = self._risk()
        if risk is not None:
            log.warning("trading HALTED from the window: %s", reason)
            risk.halt(reason)
            self._trading_cache = (0.0, None, None)

    def resume_trading(self) -> None:
        risk = self._risk()
        if risk is not None:
            log.info("trading resumed from the window")
            risk.resume("resumed from the window")
            self._trading_cache = (0.0, None, None)

    def grant_real_account_consent(self) -> None:
        risk = self._risk()
        if risk is not None:
            log.warning("real-account trading consented to for this session")
            risk.grant_real_account_consent()
            self._trading_cache = (0.0, None, None)

    async def accept_signal(self, signal_id: str) -> ExecutionReport:
        """Accept a waiting signal and wait for its order's report (the signal desk
        executes it through the same router and risk engine as any order)."""
        signals = self._signals()
        if signals is None:
            return self._report(ExecutionReport("", Outcome.REFUSED, "signals are not running"))
        self._trading_cache = (0.0, None, None)
        return self._report(await signals.accept_signal(signal_id))

    def dismiss_signal(self, signal_id: str) -> None:
        signals = self._signals()
        if signals is not None:
            signals.dismiss(signal_id)
            self._trading_cache = (0.0, None, None)

    def set_auto_execute(self, source: str, on: bool) -> None:
        """For this session (the settings' ``trading.auto_execute_sources`` is the
        lasting choice): the signal desk executes ``source``'s next signals itself."""
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
        book = desk.book()
        start, end = date_from_ms // 1000, date_to_ms // 1000
        return tuple(await book.deals(start, end)), tuple(await book.history_orders(start, end))

    async def export_trade_rows(self, path: Path, rows: Sequence[NamedTuple]) -> int:
        """Write ``rows`` (deals or orders, as the History tab lists them) to ``path`` as
        CSV, atomically, in a worker thread; returns the rows written."""
        data = rows_csv(rows).encode()
        await asyncio.to_thread(atomic_write, path, data)
        log.info("exported %d trade history rows to %s", len(rows), path)
        return len(rows)


def terms_of(info: SymbolInfo) -> SymbolTerms:
    """The New Order dialog's view of a ``SymbolInfo``."""
    return SymbolTerms(
        digits=int(info.digits),
        volume_min=float(info.volume_min),
        volume_max=float(info.volume_max),
        volume_step=float(info.volume_step),
        stops_level=int(info.trade_stops_level),
    )


__all__ = ["SessionTrading", "rows_csv", "terms_of"]
