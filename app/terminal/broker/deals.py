"""Turning a fill into deals and positions: the hedging and netting rules.

Shared by market orders (``order_send``) and by pending orders, stop losses and take
profits that the tick stream triggers, so a fill is booked one way whatever caused it.
"""

from __future__ import annotations

import dataclasses

from app.terminal import trade_constants as tc
from app.terminal.broker.account import Quotes, converter
from app.terminal.broker.contracts import Contract, margin, profit
from app.terminal.broker.state import Deal, Ledger, Order, Position

__all__ = ["COMMENT_MAX", "Fill", "book_fill", "close_by", "done_order", "margin_needed"]

#: MT5 keeps at most 31 characters of an order's comment.
COMMENT_MAX = 31


@dataclasses.dataclass(frozen=True, slots=True)
class Fill:
    """One execution: ``order`` (its ticket) bought or sold ``volume`` at ``price``."""

    contract: Contract
    buy: bool
    volume: float
    price: float
    at_msc: int
    order: int
    magic: int
    comment: str
    deal_reason: int
    position_reason: int
    sl: float = 0.0
    tp: float = 0.0
    #: Hedging: the position this fill closes (0: opens a new one).
    close: int = 0


def margin_needed(ledger: Ledger, quotes: Quotes, f: Fill) -> float | None:
    """Extra margin the fill takes (0 when it only reduces a position; None: no rate)."""
    to_usd = converter(quotes, f.at_msc + 1)
    lev = ledger.account.leverage
    if ledger.account.hedging:
        if f.close:
            return 0.0
        return margin(f.contract, f.volume, f.price, lev, to_usd)
    pos = _netting_position(ledger, f.contract.symbol)
    if pos is None or pos.is_buy == f.buy:
        return margin(f.contract, f.volume, f.price, lev, to_usd)
    if f.volume <= pos.volume + 1e-9:
        return 0.0
    return margin(f.contract, f.volume - pos.volume, f.price, lev, to_usd)


def book_fill(ledger: Ledger, quotes: Quotes, f: Fill) -> int:
    """Book the fill; returns the deal ticket."""
    if ledger.account.hedging:
        if f.close:
            return _reduce(ledger, quotes, ledger.positions[f.close], f, tc.DEAL_ENTRY_OUT)
        return _open(ledger, quotes, f, f.order, f.volume)
    pos = _netting_position(ledger, f.contract.symbol)
    if pos is None:
        return _open(ledger, quotes, f, f.order, f.volume)
    if pos.is_buy == f.buy:
        return _add(ledger, quotes, pos, f)
    if f.volume <= pos.volume + 1e-9:
        return _reduce(ledger, quotes, pos, f, tc.DEAL_ENTRY_OUT)
    return _reverse(ledger, quotes, pos, f)


def done_order(
    *,
    ticket: int,
    symbol: str,
    order_type: int,
    volume: float,
    price: float,
    at_msc: int,
    magic: int,
    position_id: int,
    reason: int,
    comment: str,
    position_by_id: int = 0,
) -> Order:
    """A market order the broker made and filled at once (a close by, an SL or TP)."""
    return Order(
        ticket=ticket,
        symbol=symbol,
        type=order_type,
        state=tc.ORDER_STATE_FILLED,
        volume_initial=volume,
        volume_current=0.0,
        price_open=price,
        sl=0.0,
        tp=0.0,
        time_setup_msc=at_msc,
        time_done_msc=at_msc,
        type_time=tc.ORDER_TIME_GTC,
        type_filling=tc.ORDER_FILLING_FOK,
        expiration_msc=0,
        magic=magic,
        position_id=position_id,
        position_by_id=position_by_id,
        reason=reason,
        comment=comment[:COMMENT_MAX],
        armed_msc=at_msc,
    )


def close_by(
    ledger: Ledger, quotes: Quotes, pos: Position, by: Position, *, order: int, at: int
) -> int:
    """Close two opposite positions against each other at ``by``'s opening price (MT5's
    rule): two OUT_BY deals, the smaller volume of the two. Returns the first deal."""
    c = quotes.contract(pos.symbol)
    assert c is not None  # checked by the caller
    volume = round(min(pos.volume, by.volume), 8)
    first = 0
    for p in (pos, by):
        f = Fill(
            c,
            not p.is_buy,
            volume,
            by.price_open,
            at,
            order,
            p.magic,
            "",
            tc.DEAL_REASON_EXPERT,
            p.reason,
        )
        deal = _reduce(ledger, quotes, p, f, tc.DEAL_ENTRY_OUT_BY)
        first = first or deal
    return first


# --- internals -----------------------------------------------------------------------------


def _netting_position(ledger: Ledger, symbol: str) -> Position | None:
    return next((p for p in ledger.positions.values() if p.symbol == symbol), None)


def _margin_of(
    ledger: Ledger, quotes: Quotes, c: Contract, *, volume: float, price: float, at: int
) -> float:
    m = margin(c, volume, price, ledger.account.leverage, converter(quotes, at + 1))
    return round(m or 0.0, 2)


def _deal(
    ledger: Ledger, f: Fill, entry: int, *, position_id: int, volume: float, gain: float
) -> int:
    ticket = ledger.ticket()
    ledger.add_deal(
        Deal(
            ticket=ticket,
            order=f.order,
            time_msc=f.at_msc,
            type=tc.DEAL_TYPE_BUY if f.buy else tc.DEAL_TYPE_SELL,
            entry=entry,
            magic=f.magic,
            position_id=position_id,
            reason=f.deal_reason,
            volume=volume,
            price=f.price,
            profit=gain,
            symbol=f.contract.symbol,
            comment=f.comment[:COMMENT_MAX],
        )
    )
    return ticket


def _open(ledger: Ledger, quotes: Quotes, f: Fill, ticket: int, volume: float) -> int:
    deal = _deal(ledger, f, tc.DEAL_ENTRY_IN, position_id=ticket, volume=volume, gain=0.0)
    ledger.put_position(
        Position(
            ticket=ticket,
            symbol=f.contract.symbol,
            type=tc.POSITION_TYPE_BUY if f.buy else tc.POSITION_TYPE_SELL,
            volume=volume,
            price_open=f.price,
            sl=f.sl,
            tp=f.tp,
            time_msc=f.at_msc,
            time_update_msc=f.at_msc,
            magic=f.magic,
            reason=f.position_reason,
            comment=f.comment[:COMMENT_MAX],
            margin=_margin_of(
                ledger, quotes, f.contract, volume=volume, price=f.price, at=f.at_msc
            ),
        )
    )
    return deal


def _add(ledger: Ledger, quotes: Quotes, pos: Position, f: Fill) -> int:
    """Netting, same direction: one position at the volume-weighted price."""
    volume = round(pos.volume + f.volume, 8)
    price = round(
        (pos.price_open * pos.volume + f.price * f.volume) / volume, f.contract.digits + 3
    )
    deal = _deal(ledger, f, tc.DEAL_ENTRY_IN, position_id=pos.ticket, volume=f.volume, gain=0.0)
    ledger.put_position(
        dataclasses.replace(
            pos,
            volume=volume,
            price_open=price,
            sl=f.sl or pos.sl,
            tp=f.tp or pos.tp,
            time_update_msc=f.at_msc,
            margin=_margin_of(ledger, quotes, f.contract, volume=volume, price=price, at=f.at_msc),
        )
    )
    return deal


def _gain(quotes: Quotes, pos: Position, f: Fill, volume: float) -> float:
    to_usd = converter(quotes, f.at_msc + 1)
    return (
        profit(
            f.contract,
            pos.is_buy,
            volume,
            price_open=pos.price_open,
            price_close=f.price,
            to_usd=to_usd,
        )
        or 0.0
    )


def _reduce(ledger: Ledger, quotes: Quotes, pos: Position, f: Fill, entry: int) -> int:
    volume = min(f.volume, pos.volume)
    gain = _gain(quotes, pos, f, volume)
    deal = _deal(ledger, f, entry, position_id=pos.ticket, volume=volume, gain=gain)
    ledger.credit(gain)
    left = round(pos.volume - volume, 8)
    if left <= 1e-9:
        ledger.close_position(pos.ticket)
    else:
        ledger.put_position(
            dataclasses.replace(
                pos,
                volume=left,
                time_update_msc=f.at_msc,
                margin=round(pos.margin * left / pos.volume, 2),
            )
        )
    return deal


def _reverse(ledger: Ledger, quotes: Quotes, pos: Position, f: Fill) -> int:
    """Netting, more than the position against it: one INOUT deal, the position keeps
    its id and turns around at the fill price."""
    gain = _gain(quotes, pos, f, pos.volume)
    deal = _deal(ledger, f, tc.DEAL_ENTRY_INOUT, position_id=pos.ticket, volume=f.volume, gain=gain)
    ledger.credit(gain)
    left = round(f.volume - pos.volume, 8)
    ledger.put_position(
        dataclasses.replace(
            pos,
            type=tc.POSITION_TYPE_BUY if f.buy else tc.POSITION_TYPE_SELL,
            volume=left,
            price_open=f.price,
            sl=f.sl,
            tp=f.tp,
            time_update_msc=f.at_msc,
            margin=_margin_of(ledger, quotes, f.contract, volume=left, price=f.price, at=f.at_msc),
        )
    )
    return deal
