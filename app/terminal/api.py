"""The part of the ``MetaTrader5`` API the client calls, as a typing Protocol.

Both the real module (a module object) and :class:`~app.terminal.simulated.SimulatedTerminal`
satisfy it, so the connector runs one code path whatever the source of ticks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from app.terminal.types import AccountInfo, SymbolInfo, TerminalInfo, Tick
from app.ticks import TickArray

DateLike = datetime | int | float


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
