"""The part of the ``MetaTrader5`` API the client calls, as a typing Protocol.

Both the real module (a module object) and :class:`~app.terminal.simulated.SimulatedTerminal`
satisfy it, so the connector runs one code path whatever the source of ticks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from app.terminal.trade_types import (
    OrderCheckResult,
    OrderSendResult,
    TradeDeal,
    TradeOrder,
    TradePosition,
)
from app.terminal.types import AccountInfo, SymbolInfo, TerminalInfo, Tick
from app.ticks import TickArray

DateLike = datetime | int | float
#: Rows of ``app.terminal.trade_types.RATES_DTYPE``.
RatesArray = npt.NDArray[np.void]


class MT5Api(Protocol):
    COPY_TICKS_ALL: int

    def initialize(
        self,
        path: str | None = None,
        *,
        login: int | None = ...,
        password: str | None = ...,
        server: str | None = ...,
        timeout: int | None = ...,
        portable: bool = ...,
    ) -> bool: ...

    def login(
        self, login: int, password: str = ..., server: str = ..., timeout: int = ...
    ) -> bool: ...

    def shutdown(self) -> None: ...

    def version(self) -> tuple[int, int, str] | None: ...

    def last_error(self) -> tuple[int, str]: ...

    def terminal_info(self) -> TerminalInfo | None: ...

    def account_info(self) -> AccountInfo | None: ...

    def symbols_total(self) -> int: ...

    def symbols_get(self, group: str = ...) -> tuple[SymbolInfo, ...] | None: ...

    def symbol_info(self, symbol: str) -> SymbolInfo | None: ...

    def symbol_info_tick(self, symbol: str) -> Tick | None: ...

    def symbol_select(self, symbol: str, enable: bool = ...) -> bool: ...

    def copy_ticks_from(
        self, symbol: str, date_from: DateLike, count: int, flags: int
    ) -> TickArray | None: ...

    def copy_ticks_range(
        self, symbol: str, date_from: DateLike, date_to: DateLike, flags: int
    ) -> TickArray | None: ...


class MT5TradeApi(MT5Api, Protocol):
    """The trading and chart-history part of the module; the simulated terminal and the
    real module satisfy it (a replay terminal does not trade). ``order_send`` and
    ``order_check`` take the request dict as the real module does."""

    def copy_rates_from(
        self, symbol: str, timeframe: int, date_from: DateLike, count: int
    ) -> RatesArray | None: ...

    def copy_rates_from_pos(
        self, symbol: str, timeframe: int, start_pos: int, count: int
    ) -> RatesArray | None: ...

    def copy_rates_range(
        self, symbol: str, timeframe: int, date_from: DateLike, date_to: DateLike
    ) -> RatesArray | None: ...

    def order_check(self, request: dict[str, Any]) -> OrderCheckResult | None: ...

    def order_send(self, request: dict[str, Any]) -> OrderSendResult | None: ...

    def order_calc_margin(
        self, action: int, symbol: str, volume: float, price: float
    ) -> float | None: ...

    def order_calc_profit(
        self, action: int, symbol: str, volume: float, price_open: float, price_close: float
    ) -> float | None: ...

    def positions_total(self) -> int | None: ...

    def positions_get(
        self, *, symbol: str = ..., group: str = ..., ticket: int = ...
    ) -> tuple[TradePosition, ...] | None: ...

    def orders_total(self) -> int | None: ...

    def orders_get(
        self, *, symbol: str = ..., group: str = ..., ticket: int = ...
    ) -> tuple[TradeOrder, ...] | None: ...

    def history_orders_total(self, date_from: DateLike, date_to: DateLike) -> int | None: ...

    def history_orders_get(
        self,
        date_from: DateLike | None = ...,
        date_to: DateLike | None = ...,
        *,
        group: str = ...,
        ticket: int = ...,
        position: int = ...,
    ) -> tuple[TradeOrder, ...] | None: ...

    def history_deals_total(self, date_from: DateLike, date_to: DateLike) -> int | None: ...

    def history_deals_get(
        self,
        date_from: DateLike | None = ...,
        date_to: DateLike | None = ...,
        *,
        group: str = ...,
        ticket: int = ...,
        position: int = ...,
    ) -> tuple[TradeDeal, ...] | None: ...
