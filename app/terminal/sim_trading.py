"""The trading half of the simulated terminal: the ``MetaTrader5`` trade functions over
the pure broker core (:mod:`app.terminal.broker`).

:class:`SimTrading` is a mixin of :class:`~app.terminal.simulated.SimulatedTerminal`; it
only adapts: argument conventions and errors of the module (``None`` plus
``last_error()``), server-time stamps, and the store transaction around the core. Every
call first catches the books up with the tick stream (pending orders, SL, TP), so what
any process sees is a function of the market and the requests, never of polling.

A disconnected terminal (IPC down) answers ``None`` with ``-10004`` like every call; a
terminal that lost its trade server (``FaultMode.OFFLINE``) answers ``order_send`` with
retcode ``10031`` CONNECTION, as MT5 does. ``FaultMode.STALL_AFTER_SEND`` commits the
order, then blocks the call (until the mode changes or the process is killed): the
test hook for "the broker executed, the client never heard".
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from app.terminal import constants as c
from app.terminal import trade_constants as tc
from app.terminal.arguments import epoch_seconds, match_group
from app.terminal.broker.account import Quotes, converter, figures, position_value
from app.terminal.broker.contracts import margin, profit
from app.terminal.broker.fill import execute
from app.terminal.broker.persistence import BrokerStore, account_file
from app.terminal.broker.state import AccountSettings, AccountState, BrokerState
from app.terminal.broker.triggers import catch_up
from app.terminal.broker.view import (
    MarketQuotes,
    deal_tuple,
    order_tuple,
    parse_request,
    position_tuple,
)
from app.terminal.faults import FaultMode
from app.terminal.trade_types import (
    OrderCheckResult,
    OrderSendResult,
    TradeDeal,
    TradeOrder,
    TradePosition,
    TradeRequest,
)
from app.terminal.types import AccountInfo

if TYPE_CHECKING:
    from app.servertime import ServerTimeZone
    from app.terminal.api import DateLike
    from app.terminal.market import Market

__all__ = ["RESULT_COMMENT", "SimTrading"]

T = TypeVar("T")
R = TypeVar("R")

#: What the trade server writes in a result's ``comment`` (short forms, as the real
#: module returns them); codes not listed carry the MQL5 text of the code.
RESULT_COMMENT: dict[int, str] = {
    tc.TRADE_RETCODE_DONE: "Request executed",
    tc.TRADE_RETCODE_REQUOTE: "Requote",
    tc.TRADE_RETCODE_INVALID: "Invalid request",
    tc.TRADE_RETCODE_INVALID_VOLUME: "Invalid volume",
    tc.TRADE_RETCODE_INVALID_PRICE: "Invalid price",
    tc.TRADE_RETCODE_INVALID_STOPS: "Invalid stops",
    tc.TRADE_RETCODE_MARKET_CLOSED: "Market closed",
    tc.TRADE_RETCODE_NO_MONEY: "No money",
    tc.TRADE_RETCODE_PRICE_CHANGED: "Prices changed",
    tc.TRADE_RETCODE_PRICE_OFF: "Off quotes",
    tc.TRADE_RETCODE_NO_CHANGES: "No changes",
    tc.TRADE_RETCODE_INVALID_FILL: "Unsupported filling mode",
    tc.TRADE_RETCODE_CONNECTION: "No connection",
}
_CHECK_DONE = "Done"  # order_check's comment for retcode 0
_STALL_STEP_S = 0.01


def _comment(retcode: int) -> str:
    return RESULT_COMMENT.get(retcode) or tc.TRADE_RETCODE_TEXT.get(retcode, "")


class SimTrading:
    """``order_send`` & co. for a simulated terminal (see the module doc)."""

    #: A replay terminal serves files and does not trade (``RES_E_UNSUPPORTED``).
    _trades: ClassVar[bool] = True

    if TYPE_CHECKING:  # provided by SimulatedTerminal
        market: Market
        server_time_zone: ServerTimeZone
        _login: int
        _server: str
        _fault: FaultMode

        def _ready(self, call: str) -> bool: ...
        def _live_until(self) -> int: ...
        def _server_msc(self, utc_msc: int) -> int: ...
        def _fail(self, code: int) -> None: ...
        def _ok(self) -> None: ...
        def _poll_control(self, *, force: bool = False) -> None: ...

    def _init_broker(self, settings: AccountSettings | None, folder: Path | None) -> None:
        """``folder``: where accounts are kept, one file per (server, login); None keeps
        the books in memory for this object's life."""
        self._broker_settings = settings or AccountSettings()
        self._broker_dir = folder
        self._stores: dict[tuple[str, int], BrokerStore] = {}
        self._stores_lock = threading.Lock()  # one store per account, whichever thread asks
        self._request_id = 0

    def _close_broker(self) -> None:
        """Close the account files (``shutdown``); the next trade call reopens them."""
        with self._stores_lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()

    # --- books ---------------------------------------------------------------------------

    def _store(self, *, create: bool) -> BrokerStore | None:
        """The account's store; a file is only created by a trade (reads of an account
        that never traded are served from its settings, so capture runs write nothing)."""
        key = (self._server, self._login)
        with self._stores_lock:
            store = self._stores.get(key)
            if store is not None:
                return store
            path = None
            if self._broker_dir is not None:
                path = account_file(self._broker_dir, *key)
                if not create and not path.exists():
                    return None
            opened = self._live_until() - 1
            store = self._stores[key] = BrokerStore(path, self._broker_settings, opened_msc=opened)
            return store

    def _books(self, *, create: bool = False) -> tuple[Quotes, BrokerState]:
        until = self._live_until()
        quotes = MarketQuotes(self.market, until)
        store = self._store(create=create)
        if store is None:
            return quotes, BrokerState(AccountState.opened(self._broker_settings, until - 1))
        state = store.read()
        if state.account.checked_msc < until - 1:
            caught, changes = catch_up(state, quotes, until)
            if changes:
                state = store.update(lambda s: _twice(catch_up(s, quotes, until)[0]))
            else:
                store.remember(caught)
                state = caught
        return quotes, state

    def _guarded(self, call: str, body: Callable[[], T]) -> T | None:
        """The module's conventions around a trade call: the gate, then None with
        ``last_error`` on bad arguments or a broken store."""
        if not self._trades:
            self._fail(c.RES_E_UNSUPPORTED)
            return None
        if not self._ready(call):
            return None
        try:
            out = body()
        except _InvalidParams:
            self._fail(c.RES_E_INVALID_PARAMS)
            return None
        except sqlite3.Error:
            self._fail(c.RES_E_INTERNAL_FAIL)
            return None
        self._ok()
        return out

    # --- account ---------------------------------------------------------------------------

    def account_info(self) -> AccountInfo | None:
        if not self._ready("account_info"):
            return None
        if self._trades:
            try:
                quotes, state = self._books()
            except sqlite3.Error:
                self._fail(c.RES_E_INTERNAL_FAIL)
                return None
            f = figures(state, quotes, self._live_until())
        else:
            state = BrokerState(AccountState.opened(self._broker_settings, 0))
            f = figures(state, MarketQuotes(self.market, 0), 0)
        a = state.account
        self._ok()
        return AccountInfo(
            login=self._login,
            trade_mode=a.trade_mode,
            leverage=a.leverage,
            limit_orders=200,
            margin_so_mode=tc.ACCOUNT_STOPOUT_MODE_PERCENT,
            trade_allowed=True,
            trade_expert=True,
            margin_mode=a.margin_mode,
            currency_digits=2,
            fifo_close=False,
            balance=f.balance,
            credit=0.0,
            profit=f.profit,
            equity=f.equity,
            margin=f.margin,
            margin_free=f.margin_free,
            margin_level=f.margin_level,
            margin_so_call=50.0,
            margin_so_so=30.0,
            margin_initial=0.0,
            margin_maintenance=0.0,
            assets=0.0,
            liabilities=0.0,
            commission_blocked=0.0,
            name="Simulated Trader",
            server=self._server,
            currency="USD",
            company="Simulated Markets Ltd.",
        )

    def _trade_fields(self, symbol: str, bid: float) -> dict[str, Any]:
        """``symbol_info``'s trade fields, from the same contract the fill model uses."""
        k = MarketQuotes(self.market, 0).contract(symbol)
        if k is None:
            return {}
        tick_value = k.point * k.contract_size
        if k.currency_profit != "USD":
            tick_value = tick_value / bid if k.currency_base == "USD" and bid > 0 else 0.0
        return {
            "trade_calc_mode": k.calc_mode,
            "trade_mode": tc.SYMBOL_TRADE_MODE_FULL,
            "trade_exemode": k.exemode,
            "filling_mode": k.filling_mode,
            "trade_stops_level": k.stops_level,
            "trade_tick_value": tick_value,
            "trade_tick_value_profit": tick_value,
            "trade_tick_value_loss": tick_value,
            "trade_tick_size": k.point,
            "trade_contract_size": k.contract_size,
            "volume_min": k.volume_min,
            "volume_max": k.volume_max,
            "volume_step": k.volume_step,
            "volume_limit": 0.0,
            "margin_initial": 0.0,
            "margin_hedged": k.contract_size,
            "currency_profit": k.currency_profit,
            "currency_margin": k.currency_margin,
        }

    # --- orders ----------------------------------------------------------------------------

    def order_send(self, request: Any = None, /, **kwargs: Any) -> OrderSendResult | None:
        def body() -> OrderSendResult:
            req = _request(request, kwargs)
            self._request_id += 1
            if self._fault is FaultMode.OFFLINE:
                return _send_result(tc.TRADE_RETCODE_CONNECTION, req, self._request_id)
            until = self._live_until()
            quotes = MarketQuotes(self.market, until)
            expiration = self._utc_ms(req.expiration)
            store = self._store(create=True)
            assert store is not None

            def step(state: BrokerState) -> tuple[BrokerState, Any]:
                caught = catch_up(state, quotes, until)[0]
                out = execute(caught, req, quotes, until - 1, expiration_msc=expiration)
                return out.state, out

            out = store.update(step)
            return OrderSendResult(
                retcode=out.retcode,
                deal=out.deal,
                order=out.order,
                volume=out.volume,
                price=out.price,
                bid=out.bid,
                ask=out.ask,
                comment=_comment(out.retcode),
                request_id=self._request_id,
                retcode_external=0,
                request=req,
            )

        result = self._guarded("order_send", body)
        if result is not None:
            self._stall_after_send()
        return result

    def _stall_after_send(self) -> None:
        """The test hook: the order is committed; the answer never comes back while the
        fault is ``stall_after_send`` (a test SIGKILLs the process meanwhile)."""
        self._poll_control()
        while self._fault is FaultMode.STALL_AFTER_SEND:
            time.sleep(_STALL_STEP_S)
            self._poll_control()

    def order_check(self, request: Any = None, /, **kwargs: Any) -> OrderCheckResult | None:
        def body() -> OrderCheckResult:
            req = _request(request, kwargs)
            quotes, state = self._books()
            now = self._live_until() - 1
            out = execute(state, req, quotes, now, expiration_msc=self._utc_ms(req.expiration))
            done = out.retcode == tc.TRADE_RETCODE_DONE
            f = figures(out.state if done else state, quotes, now + 1)
            level = f.equity / f.margin * 100.0 if f.margin > 0 else 0.0
            return OrderCheckResult(
                retcode=0 if done else out.retcode,
                balance=f.balance,
                equity=f.equity,
                profit=f.profit,
                margin=f.margin,
                margin_free=f.margin_free,
                margin_level=level,
                comment=_CHECK_DONE if done else _comment(out.retcode),
                request=req,
            )

        return self._guarded("order_check", body)

    def order_calc_margin(
        self, action: int, symbol: str, volume: float, price: float
    ) -> float | None:
        def body() -> float:
            quotes, state = self._books()
            k = quotes.contract(symbol) if isinstance(symbol, str) else None
            if k is None or action not in (tc.ORDER_TYPE_BUY, tc.ORDER_TYPE_SELL):
                raise _InvalidParams
            to_usd = converter(quotes, self._live_until())
            value = margin(k, float(volume), float(price), state.account.leverage, to_usd)
            if value is None:
                raise _InvalidParams
            return round(value, 2)

        return self._guarded("order_calc_margin", body)

    def order_calc_profit(
        self, action: int, symbol: str, volume: float, price_open: float, price_close: float
    ) -> float | None:
        def body() -> float:
            quotes = MarketQuotes(self.market, self._live_until())
            k = quotes.contract(symbol) if isinstance(symbol, str) else None
            if k is None or action not in (tc.ORDER_TYPE_BUY, tc.ORDER_TYPE_SELL):
                raise _InvalidParams
            value = profit(
                k,
                action == tc.ORDER_TYPE_BUY,
                float(volume),
                price_open=float(price_open),
                price_close=float(price_close),
                to_usd=converter(quotes, self._live_until()),
            )
            if value is None:
                raise _InvalidParams
            return value

        return self._guarded("order_calc_profit", body)

    # --- positions and active orders ---------------------------------------------------------

    def positions_total(self) -> int | None:
        return self._guarded("positions_total", lambda: len(self._books()[1].positions))

    def positions_get(
        self, *, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> tuple[TradePosition, ...] | None:
        def body() -> tuple[TradePosition, ...]:
            quotes, state = self._books()
            until = self._live_until()
            chosen = _select(state.positions, symbol=symbol, group=group, ticket=ticket)
            return tuple(
                position_tuple(p, self._server_msc, *position_value(p, quotes, until))
                for p in chosen
            )

        return self._guarded("positions_get", body)

    def orders_total(self) -> int | None:
        return self._guarded("orders_total", lambda: len(self._books()[1].orders))

    def orders_get(
        self, *, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> tuple[TradeOrder, ...] | None:
        def body() -> tuple[TradeOrder, ...]:
            quotes, state = self._books()
            until = self._live_until()
            out = []
            for o in _select(state.orders, symbol=symbol, group=group, ticket=ticket):
                q = quotes.quote(o.symbol, until)
                current = (q.ask if o.is_buy else q.bid) if q is not None else 0.0
                out.append(order_tuple(o, self._server_msc, current))
            return tuple(out)

        return self._guarded("orders_get", body)

    # --- history -----------------------------------------------------------------------------

    def history_orders_total(self, date_from: DateLike, date_to: DateLike) -> int | None:
        found = self.history_orders_get(date_from, date_to)
        return None if found is None else len(found)

    def history_orders_get(
        self,
        date_from: DateLike | None = None,
        date_to: DateLike | None = None,
        *,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
    ) -> tuple[TradeOrder, ...] | None:
        """Orders by setup time in ``[date_from, date_to]`` (server time), or by
        ``ticket`` / ``position``, as the module selects them."""

        def body() -> tuple[TradeOrder, ...]:
            book = self._books()[1].history_orders
            chosen = self._history(
                book,
                "time_setup_msc",
                date_from=date_from,
                date_to=date_to,
                group=group,
                ticket=ticket,
                position=position,
            )
            return tuple(order_tuple(o, self._server_msc, o.price_open) for o in chosen)

        return self._guarded("history_orders_get", body)

    def history_deals_total(self, date_from: DateLike, date_to: DateLike) -> int | None:
        found = self.history_deals_get(date_from, date_to)
        return None if found is None else len(found)

    def history_deals_get(
        self,
        date_from: DateLike | None = None,
        date_to: DateLike | None = None,
        *,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
    ) -> tuple[TradeDeal, ...] | None:
        def body() -> tuple[TradeDeal, ...]:
            book = self._books()[1].deals
            chosen = self._history(
                book,
                "time_msc",
                date_from=date_from,
                date_to=date_to,
                group=group,
                ticket=ticket,
                position=position,
            )
            return tuple(deal_tuple(d, self._server_msc) for d in chosen)

        return self._guarded("history_deals_get", body)

    def _history(
        self,
        book: dict[int, R],
        time_field: str,
        *,
        date_from: DateLike | None,
        date_to: DateLike | None,
        group: str | None,
        ticket: int | None,
        position: int | None,
    ) -> list[R]:
        span = self._history_span(date_from, date_to, ticket, position)
        return [
            r
            for r in _select(book, group=group, ticket=ticket)
            if (position is None or getattr(r, "position_id", None) == position)
            and (span is None or span[0] <= int(getattr(r, time_field)) <= span[1])
        ]

    def _history_span(
        self,
        date_from: DateLike | None,
        date_to: DateLike | None,
        ticket: int | None,
        position: int | None,
    ) -> tuple[int, int] | None:
        """The UTC ms span of server-time dates (both ends whole seconds, inclusive);
        None when a ticket or position selects instead, as in the module."""
        if ticket is not None or position is not None:
            return None
        start, end = epoch_seconds(date_from), epoch_seconds(date_to)
        if start is None or end is None:
            raise _InvalidParams
        zone = self.server_time_zone
        return zone.to_utc_s(start, later=False) * 1000, zone.to_utc_s(end, later=True) * 1000 + 999

    def _utc_ms(self, server_s: int) -> int:
        if server_s <= 0:
            return 0
        return self.server_time_zone.to_utc_s(server_s, later=False) * 1000


class _InvalidParams(Exception):  # noqa: N818 (maps to the module's "Invalid params")
    pass


def _twice(state: BrokerState) -> tuple[BrokerState, BrokerState]:
    return state, state


def _request(request: object, kwargs: dict[str, Any]) -> TradeRequest:
    if kwargs:
        raise _InvalidParams
    parsed = parse_request(request)
    if parsed is None:
        raise _InvalidParams
    return parsed


def _send_result(retcode: int, req: TradeRequest, request_id: int) -> OrderSendResult:
    return OrderSendResult(retcode, 0, 0, 0.0, 0.0, 0.0, 0.0, _comment(retcode), request_id, 0, req)


def _select(
    book: dict[int, R],
    *,
    symbol: str | None = None,
    group: str | None = None,
    ticket: int | None = None,
) -> list[R]:
    """Records by ticket, symbol or MT5 group mask (one of them, as the module takes)."""
    if ticket is not None:
        return [book[ticket]] if ticket in book else []
    records = [book[t] for t in sorted(book)]
    if symbol is not None:
        return [r for r in records if getattr(r, "symbol", None) == symbol]
    if group is not None:
        names = tuple({str(getattr(r, "symbol", "")) for r in records})
        keep = set(match_group(names, group))
        return [r for r in records if getattr(r, "symbol", None) in keep]
    return records


# The module's trade constants, so ``mt5.TRADE_ACTION_DEAL`` works on the simulated terminal.
for _name in dir(tc):
    if _name.isupper() and isinstance(getattr(tc, _name), int):
        setattr(SimTrading, _name, getattr(tc, _name))
