"""What the risk engine sees of an account: one immutable snapshot per check.

The engine is pure (no terminal calls, no clock reads for the account's state), so
everything it judges an order against is handed to it in one :class:`AccountView`:
the account's money and mode, its positions and pending orders, the volume rules of the
symbols it knows, and *which server day* the snapshot belongs to. The day is computed
here from the account's :class:`~app.servertime.ServerTimeZone` (server midnight, in UTC
seconds), so the daily loss limit restarts when the broker's day does, not at UTC
midnight, and the engine needs no time zone of its own.

Exposure is counted the way a broker could end up holding it: net lots of the open
positions (buys minus sells), plus every pending order in its own direction, since any
of them can fill without asking us again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from app.servertime import ServerTimeZone
from app.terminal.trade_constants import (
    ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
    ACCOUNT_TRADE_MODE_DEMO,
    ACCOUNT_TRADE_MODE_REAL,
    ORDER_TYPE_BUY_LIMIT,
    ORDER_TYPE_BUY_STOP,
    ORDER_TYPE_BUY_STOP_LIMIT,
    POSITION_TYPE_BUY,
)
from app.terminal.trade_types import TradeOrder, TradePosition
from app.terminal.types import AccountInfo, SymbolInfo

__all__ = ["AccountView", "Exposure", "VolumeRule"]

_BUY_PENDING = frozenset({ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_BUY_STOP, ORDER_TYPE_BUY_STOP_LIMIT})
_EMPTY: Mapping[str, VolumeRule] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class VolumeRule:
    """A symbol's ``volume_min`` / ``volume_max`` / ``volume_step`` (lots)."""

    min: float
    max: float
    step: float

    @classmethod
    def of(cls, info: SymbolInfo) -> VolumeRule:
        return cls(info.volume_min, info.volume_max, info.volume_step)


@dataclass(frozen=True, slots=True)
class Exposure:
    """One symbol's exposure in lots: ``net`` of the positions (buy > 0), and the
    pending orders' volume per direction (both ≥ 0)."""

    net: float = 0.0
    pending_buy: float = 0.0
    pending_sell: float = 0.0

    @property
    def worst_long(self) -> float:
        """Net long lots if every pending buy filled and no pending sell did."""
        return self.net + self.pending_buy

    @property
    def worst_short(self) -> float:
        """Net short lots (≥ 0 when short) if every pending sell filled."""
        return self.pending_sell - self.net


@dataclass(frozen=True, slots=True)
class AccountView:
    """An account at one instant, as the risk engine judges orders against it.

    ``day_start_utc_s`` is the UTC second of the server midnight that began the
    snapshot's server day: the engine's day key for the daily loss limit.
    ``symbols`` maps a symbol to its volume rule where known (a symbol missing from it is
    checked against the settings' limits only; the terminal still checks its own).
    """

    login: int
    server: str
    currency: str
    trade_mode: int
    margin_mode: int
    balance: float
    equity: float
    margin_free: float
    day_start_utc_s: int
    time_utc_s: float
    positions: tuple[TradePosition, ...] = ()
    orders: tuple[TradeOrder, ...] = ()
    symbols: Mapping[str, VolumeRule] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def of(
        cls,
        account: AccountInfo,
        zone: ServerTimeZone,
        now_utc_s: float,
        *,
        positions: Iterable[TradePosition] = (),
        orders: Iterable[TradeOrder] = (),
        symbols: Iterable[SymbolInfo] | Mapping[str, VolumeRule] = (),
    ) -> AccountView:
        """The view of what the terminal answered (``account_info``, ``positions_get``,
        ``orders_get``, ``symbol_info``) at ``now_utc_s``, on a server in ``zone``."""
        rules: Mapping[str, VolumeRule]
        if isinstance(symbols, Mapping):
            rules = MappingProxyType(dict(symbols))
        else:
            rules = MappingProxyType({s.name: VolumeRule.of(s) for s in symbols})
        return cls(
            login=account.login,
            server=account.server,
            currency=account.currency,
            trade_mode=account.trade_mode,
            margin_mode=account.margin_mode,
            balance=account.balance,
            equity=account.equity,
            margin_free=account.margin_free,
            day_start_utc_s=zone.server_midnight_utc_s(int(now_utc_s)),
            time_utc_s=now_utc_s,
            positions=tuple(positions),
            orders=tuple(orders),
            symbols=rules,
        )

    @property
    def hedging(self) -> bool:
        """Several positions per symbol (an opposite order opens another one)."""
        return self.margin_mode == ACCOUNT_MARGIN_MODE_RETAIL_HEDGING

    @property
    def is_real(self) -> bool:
        return self.trade_mode == ACCOUNT_TRADE_MODE_REAL

    @property
    def is_demo(self) -> bool:
        return self.trade_mode == ACCOUNT_TRADE_MODE_DEMO

    def exposure(self, symbol: str) -> Exposure:
        """Net position lots and pending lots of ``symbol`` (a loop: a few dozen rows)."""
        net = buy = sell = 0.0
        for p in self.positions:
            if p.symbol == symbol:
                net += p.volume if p.type == POSITION_TYPE_BUY else -p.volume
        for o in self.orders:
            if o.symbol == symbol:
                if o.type in _BUY_PENDING:
                    buy += o.volume_current
                else:
                    sell += o.volume_current
        return Exposure(net, buy, sell)

    def position(self, ticket: int) -> TradePosition | None:
        for p in self.positions:
            if p.ticket == ticket:
                return p
        return None

    def order(self, ticket: int) -> TradeOrder | None:
        for o in self.orders:
            if o.ticket == ticket:
                return o
        return None

    def would_open_position(self, symbol: str) -> bool:
        """Whether a new order in ``symbol`` may add a position: always on a hedging
        account; on a netting one only where the symbol has neither a position nor a
        pending order (which would already claim its one position)."""
        if self.hedging:
            return True
        return not any(p.symbol == symbol for p in self.positions) and not any(
            o.symbol == symbol for o in self.orders
        )

    def position_slots(self) -> int:
        """Positions there are, or may be once the pending orders fill: on a hedging
        account each pending order may become one; on a netting account one per symbol."""
        if self.hedging:
            return len(self.positions) + len(self.orders)
        return len({p.symbol for p in self.positions} | {o.symbol for o in self.orders})
