"""What the window shows of trading, as one immutable snapshot, and the intents it sends.

The window (``ui/``) never talks to a worker, the risk engine or the signal book: it
renders a :class:`TradingSnapshot` that the session builds once per frame, and sends
every wish through the :class:`TradingIntents` methods of ``DesktopSession``. Positions,
orders and the account are the terminal's own named tuples (times in server time, as the
MT5 terminal shows them), so the Toolbox shows exactly what the terminal reported; only
``live_profit`` is the core's, recomputed from live prices between the terminal's reports.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from app.terminal import trade_constants as tc
from app.terminal.trade_constants import describe_retcode
from app.terminal.trade_types import TradeDeal, TradeOrder, TradePosition
from app.terminal.types import AccountInfo
from app.trading.intent import ExecutionReport, OrderIntent

#: MT5's words for the terminal's trade constants, as its Toolbox writes them (the window
#: shows them; it reads the terminal's vocabulary only through this module).
ORDER_TYPE_TEXT: dict[int, str] = {
    tc.ORDER_TYPE_BUY: "buy",
    tc.ORDER_TYPE_SELL: "sell",
    tc.ORDER_TYPE_BUY_LIMIT: "buy limit",
    tc.ORDER_TYPE_SELL_LIMIT: "sell limit",
    tc.ORDER_TYPE_BUY_STOP: "buy stop",
    tc.ORDER_TYPE_SELL_STOP: "sell stop",
    tc.ORDER_TYPE_BUY_STOP_LIMIT: "buy stop limit",
    tc.ORDER_TYPE_SELL_STOP_LIMIT: "sell stop limit",
    tc.ORDER_TYPE_CLOSE_BY: "close by",
}
DEAL_TYPE_TEXT: dict[int, str] = {
    tc.DEAL_TYPE_BUY: "buy",
    tc.DEAL_TYPE_SELL: "sell",
    tc.DEAL_TYPE_BALANCE: "balance",
    tc.DEAL_TYPE_CREDIT: "credit",
    tc.DEAL_TYPE_CHARGE: "charge",
    tc.DEAL_TYPE_CORRECTION: "correction",
    tc.DEAL_TYPE_BONUS: "bonus",
    tc.DEAL_TYPE_COMMISSION: "commission",
}
DEAL_ENTRY_TEXT: dict[int, str] = {
    tc.DEAL_ENTRY_IN: "in",
    tc.DEAL_ENTRY_OUT: "out",
    tc.DEAL_ENTRY_INOUT: "in/out",
    tc.DEAL_ENTRY_OUT_BY: "out by",
}
ORDER_STATE_TEXT: dict[int, str] = {
    tc.ORDER_STATE_STARTED: "started",
    tc.ORDER_STATE_PLACED: "placed",
    tc.ORDER_STATE_CANCELED: "canceled",
    tc.ORDER_STATE_PARTIAL: "partial",
    tc.ORDER_STATE_FILLED: "filled",
    tc.ORDER_STATE_REJECTED: "rejected",
    tc.ORDER_STATE_EXPIRED: "expired",
}
POSITION_TYPE_BUY = tc.POSITION_TYPE_BUY
DEAL_TYPE_BALANCE = tc.DEAL_TYPE_BALANCE


class RiskState(enum.StrEnum):
    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class RiskStatus:
    state: RiskState
    reason: str = ""
    #: UTC ms of the last state change (0: never changed).
    since_ms: int = 0


class SignalState(enum.StrEnum):
    """A signal's state (rules: :mod:`app.trading.signals`)."""

    WAITING = "waiting"
    #: Accepted (by the trader, or an automatic source) and about to be executed.
    ACCEPTED = "accepted"
    EXECUTING = "executing"
    EXECUTED = "executed"
    REFUSED = "refused"
    REJECTED = "rejected"
    EXPIRED = "expired"
    DISMISSED = "dismissed"


@dataclass(frozen=True, slots=True)
class SignalRow:
    """One signal as the Signals panel lists it (times UTC ms)."""

    id: str
    source: str
    symbol: str
    side: str
    volume: float
    sl: float | None
    tp: float | None
    state: SignalState
    reason: str
    created_at_ms: int
    received_at_ms: int
    valid_until_ms: int
    auto: bool = False
    ticket: int = 0
    price: float = 0.0
    slippage_points: float | None = None
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class SymbolTerms:
    """What the New Order dialog and the one-click bar need of a symbol's ``symbol_info``:
    the precision prices are typed in and the volume grid (the terminal refuses a volume
    off ``volume_step`` with INVALID_VOLUME, so the spin box steps by it)."""

    digits: int
    volume_min: float = 0.01
    volume_max: float = 100.0
    volume_step: float = 0.01
    #: Minimum distance of SL/TP from the price, in points (0: none).
    stops_level: int = 0

    @property
    def point(self) -> float:
        return 10.0**-self.digits


@dataclass(frozen=True, slots=True)
class TradingSnapshot:
    """Trading state of one terminal's account, for one frame.

    ``version`` changes whenever anything shown changed, so a panel redraws only then.
    ``live_profit`` maps position ticket → profit at the latest captured price.
    """

    version: int
    terminal: str
    account: AccountInfo | None
    positions: tuple[TradePosition, ...] = ()
    orders: tuple[TradeOrder, ...] = ()
    live_profit: Mapping[int, float] = field(default_factory=dict)
    signals: tuple[SignalRow, ...] = ()
    risk: RiskStatus = RiskStatus(RiskState.ACTIVE)
    #: The account is real and the trader has not consented in this session yet.
    real_account_consent_needed: bool = False
    #: Signal sources whose signals execute without asking.
    auto_sources: frozenset[str] = frozenset()
    #: The answer to the last intent sent from this window, for the status line.
    last_report: ExecutionReport | None = None
    #: Trading terms of the symbols the account can trade (the captured ones).
    symbols: Mapping[str, SymbolTerms] = field(default_factory=dict)
    #: Latest captured (bid, ask) per symbol: the prices the Sell/Buy buttons show.
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)


class TradingIntents(Protocol):
    """The trading methods of ``DesktopSession`` (the window's only way to trade)."""

    def trading_snapshot(self) -> TradingSnapshot | None: ...

    async def place_order(self, intent: OrderIntent) -> ExecutionReport: ...

    async def close_position(self, ticket: int, volume: float | None = None) -> ExecutionReport: ...

    async def modify_position(
        self, ticket: int, sl: float | None, tp: float | None
    ) -> ExecutionReport: ...

    async def cancel_order(self, ticket: int) -> ExecutionReport: ...

    def halt_trading(self, reason: str) -> None: ...

    def resume_trading(self) -> None: ...

    def grant_real_account_consent(self) -> None: ...

    async def accept_signal(self, signal_id: str) -> ExecutionReport: ...

    def dismiss_signal(self, signal_id: str) -> None: ...

    def set_auto_execute(self, source: str, on: bool) -> None: ...

    async def trade_history(
        self, date_from_ms: int, date_to_ms: int
    ) -> tuple[tuple[TradeDeal, ...], tuple[TradeOrder, ...]]: ...


__all__ = [
    "DEAL_ENTRY_TEXT",
    "DEAL_TYPE_BALANCE",
    "DEAL_TYPE_TEXT",
    "ORDER_STATE_TEXT",
    "ORDER_TYPE_TEXT",
    "POSITION_TYPE_BUY",
    "AccountInfo",
    "RiskState",
    "RiskStatus",
    "SignalRow",
    "SignalState",
    "SymbolTerms",
    "TradeDeal",
    "TradeOrder",
    "TradePosition",
    "TradingIntents",
    "TradingSnapshot",
    "describe_retcode",
]
