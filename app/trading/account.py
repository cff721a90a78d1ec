"""One terminal's account as immutable snapshots: balance, positions, pending orders.

The window, the risk engine and ``trading-client trade`` read the account from here,
never from the terminal directly: the terminal is reached only through its worker
(``ConnectorPool.call``), and asking it 33 times a second for a redraw would put
trading calls behind account reads. So the book asks at a modest rate (``refresh_s``,
1 s) and at once after each trade (``refresh_soon``); between two reads a position's
live P/L is the core's own, moved from the terminal's last ``profit`` by the live
price the collector captured (:meth:`AccountBook.live_profit`). ``version`` changes only
when what the terminal reported changed, so a panel redraws only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from app.clock import SYSTEM_CLOCK, Clock
from app.connector.calls import CallError, TerminalCallError
from app.terminal import trade_constants as tc
from app.terminal.constants import RES_S_OK
from app.terminal.trade_types import TradeDeal, TradeOrder, TradePosition
from app.terminal.types import AccountInfo, SymbolInfo

log = logging.getLogger(__name__)

#: (bid, ask) of a symbol as last captured, or None.
PriceSource = Callable[[str], tuple[float, float] | None]


class Caller(Protocol):
    """What the trading path needs of the pool (``ConnectorPool.call``)."""

    async def call(
        self, target: str | int, method: str, timeout: float, *args: Any, **kwargs: Any
    ) -> Any: ...


async def call_list(
    caller: Caller, target: str, method: str, timeout: float, *args: Any, **kwargs: Any
) -> Any:
    """A ``*_get`` call whose ``None`` with "Success" means "none" (the real module's
    answer for an empty selection on some builds): an empty tuple then."""
    try:
        return await caller.call(target, method, timeout, *args, **kwargs)
    except TerminalCallError as exc:
        if exc.code == RES_S_OK:
            return ()
        raise


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """What the terminal last reported about one account (times in server time)."""

    version: int
    terminal: str
    account: AccountInfo | None = None
    positions: tuple[TradePosition, ...] = ()
    orders: tuple[TradeOrder, ...] = ()
    #: UTC ms of the last successful read (0: never).
    updated_at_ms: int = 0
    #: Why the last read failed ("" when it did not).
    error: str = ""
    #: Open volume per symbol, buys minus sells (lots): what exposure limits look at.
    net_volume: Mapping[str, float] = field(default_factory=dict)


def net_volume(positions: tuple[TradePosition, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in positions:
        sign = 1.0 if p.type == tc.POSITION_TYPE_BUY else -1.0
        out[p.symbol] = round(out.get(p.symbol, 0.0) + sign * p.volume, 8)
    return out


def moved_profit(pos: TradePosition, info: SymbolInfo, bid: float, ask: float) -> float:
    """``pos.profit`` moved from the terminal's ``price_current`` to the live price
    (bid closes a buy, ask a sell), at the symbol's tick value per tick size."""
    buy = pos.type == tc.POSITION_TYPE_BUY
    live = bid if buy else ask
    if not live or not pos.price_current or info.trade_tick_size <= 0:
        return pos.profit
    delta = (live - pos.price_current) if buy else (pos.price_current - live)
    per_lot = delta / info.trade_tick_size * info.trade_tick_value
    return round(pos.profit + per_lot * pos.volume, 2)


class AccountBook:
    """The account of one terminal, refreshed through the pool (see the module doc)."""

    def __init__(
        self,
        caller: Caller,
        terminal: str,
        *,
        refresh_s: float = 1.0,
        timeout_s: float = 10.0,
        prices: PriceSource | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.terminal = terminal
        self._caller = caller
        self._refresh_s = refresh_s
        self._timeout = timeout_s
        self._prices = prices
        self._clock = clock
        self._snapshot = AccountSnapshot(0, terminal)
        self._symbols: dict[str, SymbolInfo] = {}
        self._soon = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        #: Trades announced (``refresh_soon``) and the number the snapshot was read after.
        self._trades = 0
        self._read_after = 0
        #: The read in progress and the trade count it began at.
        self._reading: asyncio.Future[AccountSnapshot] | None = None
        self._reading_from = 0

    def snapshot(self) -> AccountSnapshot:
        return self._snapshot

    async def refresh(self) -> AccountSnapshot:
        """Read account, positions and pending orders now; the version moves on change.

        Callers share a read in progress when it began after the last trade (the
        periodic task, the router before an order and a panel do not each ask the
        worker three times)."""
        task = self._reading
        if task is None or task.done() or self._reading_from < self._trades:
            self._reading_from = self._trades
            task = self._reading = asyncio.ensure_future(self._read(self._trades))
        return await asyncio.shield(task)

    async def _read(self, trades: int) -> AccountSnapshot:
        c, t, timeout = self._caller, self.terminal, self._timeout
        old = self._snapshot
        try:
            account = await c.call(t, "account_info", timeout)
            positions = tuple(await call_list(c, t, "positions_get", timeout))
            orders = tuple(await call_list(c, t, "orders_get", timeout))
        except CallError as exc:
            if old.error != str(exc):
                self._snapshot = replace(old, version=old.version + 1, error=str(exc))
            return self._snapshot
        for symbol in {p.symbol for p in positions} - self._symbols.keys():
            with contextlib.suppress(CallError):
                self._symbols[symbol] = await c.call(t, "symbol_info", timeout, symbol)
        now_ms = int(self._clock.time() * 1000)
        self._read_after = max(self._read_after, trades)
        if (account, positions, orders, "") == (old.account, old.positions, old.orders, old.error):
            # Same content: only the time of the read moves, not the version.
            self._snapshot = replace(old, updated_at_ms=now_ms)
        else:
            self._snapshot = AccountSnapshot(
                old.version + 1, t, account, positions, orders, now_ms, "", net_volume(positions)
            )
        return self._snapshot

    def live_profit(self) -> dict[int, float]:
        """Position ticket → profit at the latest captured price (the terminal's own
        ``profit`` for a symbol without a live price)."""
        out: dict[int, float] = {}
        for pos in self._snapshot.positions:
            info = self._symbols.get(pos.symbol)
            price = self._prices(pos.symbol) if self._prices is not None else None
            if info is None or price is None:
                out[pos.ticket] = pos.profit
            else:
                out[pos.ticket] = moved_profit(pos, info, *price)
        return out

    def refresh_soon(self) -> None:
        """A trade happened: read again now, not at the next period (and until then the
        snapshot is not :attr:`current`)."""
        self._trades += 1
        self._soon.set()

    @property
    def current(self) -> bool:
        """The snapshot was read after the last trade: what a risk check may judge the
        next order on (two quick orders must not both be judged on the state before
        the first; the router reads again when this is False)."""
        return self._snapshot.account is not None and self._read_after >= self._trades

    async def deals(self, date_from: int, date_to: int) -> tuple[TradeDeal, ...]:
        """The history's deals between two server-time instants (seconds), on demand."""
        found = await call_list(
            self._caller, self.terminal, "history_deals_get", self._timeout, date_from, date_to
        )
        return tuple(found)

    async def history_orders(self, date_from: int, date_to: int) -> tuple[TradeOrder, ...]:
        found = await call_list(
            self._caller, self.terminal, "history_orders_get", self._timeout, date_from, date_to
        )
        return tuple(found)

    async def run(self) -> None:
        """Refresh every ``refresh_s``, and at once when asked to."""
        while not self._closed:
            try:
                await self.refresh()
            except Exception:  # a bug must not end the book: log and keep the old data
                log.exception("account %s: refresh failed", self.terminal)
            self._soon.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that
            # arrives as the event is set (a trade's refresh_soon during stop), and the
            # task would never end.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._refresh_s):
                    await self._soon.wait()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"account-{self.terminal}")

    async def stop(self) -> None:
        self._closed = True
        for task in (self._task, self._reading):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._reading = None
