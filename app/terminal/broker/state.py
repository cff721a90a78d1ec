"""The simulated broker's books: account, open positions, active orders, history.

Plain frozen records, times in UTC milliseconds (the terminal stamps them in server time
on the way out). A :class:`BrokerState` is never changed in place: the core works on a
:class:`Ledger` (a copy that records what it touched) and hands back a new state plus
the :class:`Changes`, which is exactly what the store writes in one transaction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from app.terminal import trade_constants as tc

__all__ = [
    "AccountSettings",
    "AccountState",
    "BrokerState",
    "Changes",
    "Deal",
    "Ledger",
    "Order",
    "Position",
]

MarginMode = Literal["hedging", "netting"]
AccountKind = Literal["demo", "real", "contest"]


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """How a *new* simulated account is opened; an existing one keeps its own books."""

    balance: float = 10_000.0
    leverage: int = 100
    margin_mode: MarginMode = "hedging"
    account: AccountKind = "demo"

    def __post_init__(self) -> None:
        if not self.balance >= 0 or self.leverage < 1:
            raise ValueError("a simulated account needs balance >= 0 and leverage >= 1")

    @property
    def margin_mode_code(self) -> int:
        if self.margin_mode == "netting":
            return tc.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
        return tc.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING

    @property
    def trade_mode_code(self) -> int:
        return {
            "demo": tc.ACCOUNT_TRADE_MODE_DEMO,
            "contest": tc.ACCOUNT_TRADE_MODE_CONTEST,
            "real": tc.ACCOUNT_TRADE_MODE_REAL,
        }[self.account]


@dataclass(frozen=True, slots=True)
class AccountState:
    balance: float
    leverage: int
    margin_mode: int
    trade_mode: int
    #: The next ticket; orders, deals (and so positions) draw from one increasing counter.
    next_ticket: int = 1_000_001
    #: Every tick up to this UTC ms has been checked for triggers (pending, SL, TP).
    checked_msc: int = 0

    @classmethod
    def opened(cls, settings: AccountSettings, at_msc: int) -> AccountState:
        return cls(
            balance=round(settings.balance, 2),
            leverage=settings.leverage,
            margin_mode=settings.margin_mode_code,
            trade_mode=settings.trade_mode_code,
            checked_msc=at_msc,
        )

    @property
    def hedging(self) -> bool:
        return self.margin_mode == tc.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING


@dataclass(frozen=True, slots=True)
class Position:
    ticket: int
    symbol: str
    type: int
    volume: float
    price_open: float
    sl: float
    tp: float
    time_msc: int
    #: Last change; SL/TP trigger only on ticks after it.
    time_update_msc: int
    magic: int
    reason: int
    comment: str
    #: Margin held, in the account currency (computed at the opening price).
    margin: float

    @property
    def is_buy(self) -> bool:
        return self.type == tc.POSITION_TYPE_BUY


@dataclass(frozen=True, slots=True)
class Order:
    ticket: int
    symbol: str
    type: int
    state: int
    volume_initial: float
    volume_current: float
    price_open: float
    sl: float
    tp: float
    time_setup_msc: int
    time_done_msc: int
    type_time: int
    type_filling: int
    #: UTC ms after which a pending order expires (0: good till cancelled).
    expiration_msc: int
    magic: int
    position_id: int
    position_by_id: int
    reason: int
    comment: str
    #: Placement or last modification; a pending order triggers only on ticks after it.
    armed_msc: int = 0

    @property
    def is_buy(self) -> bool:
        return self.type in (tc.ORDER_TYPE_BUY, tc.ORDER_TYPE_BUY_LIMIT, tc.ORDER_TYPE_BUY_STOP)


@dataclass(frozen=True, slots=True)
class Deal:
    ticket: int
    order: int
    time_msc: int
    type: int
    entry: int
    magic: int
    position_id: int
    reason: int
    volume: float
    price: float
    profit: float
    symbol: str
    comment: str


@dataclass(frozen=True, slots=True)
class BrokerState:
    account: AccountState
    positions: dict[int, Position] = field(default_factory=dict)
    #: Active (placed, not yet triggered) pending orders.
    orders: dict[int, Order] = field(default_factory=dict)
    #: Filled, cancelled, rejected and expired orders.
    history_orders: dict[int, Order] = field(default_factory=dict)
    deals: dict[int, Deal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Changes:
    """What one step wrote: the store turns it into rows (upserts and deletes)."""

    account: bool = False
    positions: tuple[Position, ...] = ()
    closed_positions: tuple[int, ...] = ()
    orders: tuple[Order, ...] = ()
    gone_orders: tuple[int, ...] = ()
    history_orders: tuple[Order, ...] = ()
    deals: tuple[Deal, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.account
            or self.positions
            or self.closed_positions
            or self.orders
            or self.gone_orders
            or self.history_orders
            or self.deals
        )


class Ledger:
    """A working copy of a state that remembers what changed (the core's scratch pad)."""

    def __init__(self, state: BrokerState) -> None:
        self.base = state
        self.account = state.account
        self.positions = dict(state.positions)
        self.orders = dict(state.orders)
        self._history: dict[int, Order] = {}
        self._deals: dict[int, Deal] = {}
        self._touched_positions: set[int] = set()
        self._touched_orders: set[int] = set()

    # --- tickets and balance ---------------------------------------------------------

    def ticket(self) -> int:
        t = self.account.next_ticket
        self.account = dataclasses.replace(self.account, next_ticket=t + 1)
        return t

    def credit(self, amount: float) -> None:
        self.account = dataclasses.replace(
            self.account, balance=round(self.account.balance + amount, 2)
        )

    def checked(self, at_msc: int) -> None:
        if at_msc > self.account.checked_msc:
            self.account = dataclasses.replace(self.account, checked_msc=at_msc)

    # --- records ---------------------------------------------------------------------

    def put_position(self, p: Position) -> None:
        self.positions[p.ticket] = p
        self._touched_positions.add(p.ticket)

    def close_position(self, ticket: int) -> None:
        self.positions.pop(ticket, None)
        self._touched_positions.add(ticket)

    def put_order(self, o: Order) -> None:
        self.orders[o.ticket] = o
        self._touched_orders.add(o.ticket)

    def archive_order(self, o: Order) -> None:
        """An order leaves the active book (filled, cancelled, expired, rejected)."""
        self.orders.pop(o.ticket, None)
        self._touched_orders.add(o.ticket)
        self._history[o.ticket] = o

    def add_deal(self, d: Deal) -> None:
        self._deals[d.ticket] = d

    def history_order(self, ticket: int) -> Order | None:
        return self._history.get(ticket) or self.base.history_orders.get(ticket)

    def was_position(self, ticket: int) -> bool:
        """A position of this id existed (it is closed now)."""
        return any(d.position_id == ticket for d in self._deals.values()) or any(
            d.position_id == ticket for d in self.base.deals.values()
        )

    # --- result ----------------------------------------------------------------------

    def changes(self) -> Changes:
        return Changes(
            account=self.account != self.base.account,
            positions=tuple(
                self.positions[t] for t in sorted(self._touched_positions) if t in self.positions
            ),
            closed_positions=tuple(
                t for t in sorted(self._touched_positions) if t not in self.positions
            ),
            orders=tuple(self.orders[t] for t in sorted(self._touched_orders) if t in self.orders),
            gone_orders=tuple(t for t in sorted(self._touched_orders) if t not in self.orders),
            history_orders=tuple(self._history.values()),
            deals=tuple(self._deals.values()),
        )

    def state(self) -> BrokerState:
        history = self.base.history_orders
        deals = self.base.deals
        if self._history:
            history = {**history, **self._history}
        if self._deals:
            deals = {**deals, **self._deals}
        return BrokerState(self.account, dict(self.positions), dict(self.orders), history, deals)
