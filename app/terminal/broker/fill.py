"""The broker's answer to one trade request: checks, then the fill or the refusal.

``execute(state, request, quotes, now)`` is pure: the books, the request and the market
in, the return code, the tickets and the new books out. The terminal (``sim_trading``)
runs it inside one store transaction after catching the books up with the tick stream.
"""

from __future__ import annotations

import dataclasses

from app.terminal import trade_constants as tc
from app.terminal.broker.account import Quote, Quotes, figures, volume_ok
from app.terminal.broker.contracts import Contract
from app.terminal.broker.deals import (
    COMMENT_MAX,
    Fill,
    book_fill,
    close_by,
    done_order,
    margin_needed,
)
from app.terminal.broker.state import BrokerState, Changes, Ledger, Order
from app.terminal.trade_types import TradeRequest

__all__ = ["Outcome", "execute"]

_MARKET = (tc.ORDER_TYPE_BUY, tc.ORDER_TYPE_SELL)
_PENDING = (
    tc.ORDER_TYPE_BUY_LIMIT,
    tc.ORDER_TYPE_SELL_LIMIT,
    tc.ORDER_TYPE_BUY_STOP,
    tc.ORDER_TYPE_SELL_STOP,
)
_EPS = 1e-9


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    retcode: int
    state: BrokerState
    changes: Changes = dataclasses.field(default_factory=Changes)
    deal: int = 0
    order: int = 0
    volume: float = 0.0
    price: float = 0.0
    bid: float = 0.0
    ask: float = 0.0


class _Refused(Exception):  # noqa: N818 (a control-flow signal, not an error)
    def __init__(self, retcode: int) -> None:
        super().__init__(retcode)
        self.retcode = retcode


def execute(
    state: BrokerState,
    request: TradeRequest,
    quotes: Quotes,
    now_msc: int,
    *,
    expiration_msc: int = 0,
) -> Outcome:
    """Check and carry out ``request`` at ``now_msc`` (UTC); ``expiration_msc`` is the
    request's ``expiration`` already read in UTC (ORDER_TIME_SPECIFIED)."""
    ledger = Ledger(state)
    quote: Quote | None = None
    try:
        handler = _HANDLERS.get(request.action)
        if handler is None:
            raise _Refused(tc.TRADE_RETCODE_INVALID)
        symbol = _symbol_of(ledger, request)
        c = quotes.contract(symbol)
        if c is None:
            raise _Refused(tc.TRADE_RETCODE_INVALID)
        if not quotes.is_open(symbol, now_msc):
            raise _Refused(tc.TRADE_RETCODE_MARKET_CLOSED)
        quote = quotes.quote(symbol, now_msc + 1)
        if quote is None:
            raise _Refused(tc.TRADE_RETCODE_PRICE_OFF)
        ctx = _Ctx(ledger, quotes, c, quote, now_msc, expiration_msc)
        out = handler(ctx, request)
    except _Refused as refused:
        bid, ask = (quote.bid, quote.ask) if quote is not None else (0.0, 0.0)
        return Outcome(refused.retcode, state, bid=bid, ask=ask)
    return dataclasses.replace(
        out, state=ledger.state(), changes=ledger.changes(), bid=quote.bid, ask=quote.ask
    )


@dataclasses.dataclass(slots=True)
class _Ctx:
    ledger: Ledger
    quotes: Quotes
    c: Contract
    q: Quote
    now: int
    expiration: int


def _symbol_of(ledger: Ledger, r: TradeRequest) -> str:
    """The request's symbol, or that of the position/order it names (MT5 accepts both)."""
    if r.symbol:
        return r.symbol
    if r.action in (tc.TRADE_ACTION_SLTP, tc.TRADE_ACTION_CLOSE_BY) and r.position in (
        ledger.positions
    ):
        return ledger.positions[r.position].symbol
    if r.action in (tc.TRADE_ACTION_MODIFY, tc.TRADE_ACTION_REMOVE) and r.order in ledger.orders:
        return ledger.orders[r.order].symbol
    raise _Refused(tc.TRADE_RETCODE_INVALID)


def _points(c: Contract, n: float) -> float:
    return n * c.point


def _check_stops(c: Contract, buy: bool, ref: float, sl: float, tp: float) -> None:
    """SL/TP on the right side of ``ref`` (the closing price, or a pending order's
    price) and at least ``stops_level`` points away."""
    gap = _points(c, c.stops_level) - _EPS
    if sl < 0 or tp < 0:
        raise _Refused(tc.TRADE_RETCODE_INVALID_STOPS)
    if buy:
        bad = (sl and sl > ref - gap) or (tp and tp < ref + gap)
    else:
        bad = (sl and sl < ref + gap) or (tp and tp > ref - gap)
    if bad:
        raise _Refused(tc.TRADE_RETCODE_INVALID_STOPS)


def _check_volume(c: Contract, volume: float) -> None:
    if not volume_ok(c, volume):
        raise _Refused(tc.TRADE_RETCODE_INVALID_VOLUME)


def _check_filling(c: Contract, filling: int, *, pending: bool, limit: bool) -> None:
    allowed = {
        tc.ORDER_FILLING_FOK: bool(c.filling_mode & tc.SYMBOL_FILLING_FOK),
        tc.ORDER_FILLING_IOC: bool(c.filling_mode & tc.SYMBOL_FILLING_IOC),
        tc.ORDER_FILLING_BOC: pending and limit and bool(c.filling_mode & tc.SYMBOL_FILLING_BOC),
        # Return: pending orders, and market orders unless on market execution.
        tc.ORDER_FILLING_RETURN: pending or c.exemode != tc.SYMBOL_TRADE_EXECUTION_MARKET,
    }
    if not allowed.get(filling, False):
        raise _Refused(tc.TRADE_RETCODE_INVALID_FILL)


def _check_money(ctx: _Ctx, fill: Fill) -> None:
    need = margin_needed(ctx.ledger, ctx.quotes, fill)
    if need is None:
        raise _Refused(tc.TRADE_RETCODE_PRICE_OFF)
    state = BrokerState(ctx.ledger.account, ctx.ledger.positions)
    free = figures(state, ctx.quotes, ctx.now + 1).margin_free
    if need > free + _EPS:
        raise _Refused(tc.TRADE_RETCODE_NO_MONEY)


def _deal(ctx: _Ctx, r: TradeRequest) -> Outcome:
    c, q, ledger = ctx.c, ctx.q, ctx.ledger
    if r.type not in _MARKET:
        raise _Refused(tc.TRADE_RETCODE_INVALID)
    buy = r.type == tc.ORDER_TYPE_BUY
    _check_volume(c, r.volume)
    _check_filling(c, r.type_filling, pending=False, limit=False)
    close = 0
    if r.position:
        pos = ledger.positions.get(r.position)
        if pos is None:
            closed = ledger.was_position(r.position)
            raise _Refused(tc.TRADE_RETCODE_POSITION_CLOSED if closed else tc.TRADE_RETCODE_INVALID)
        if pos.symbol != c.symbol or pos.is_buy == buy:
            raise _Refused(tc.TRADE_RETCODE_INVALID)
        if r.volume > pos.volume + _EPS:
            raise _Refused(tc.TRADE_RETCODE_INVALID_CLOSE_VOLUME)
        close = pos.ticket if ledger.account.hedging else 0
    price = q.ask if buy else q.bid
    if r.price and abs(r.price - price) > _points(c, max(r.deviation, 0)) + _EPS:
        instant = c.exemode == tc.SYMBOL_TRADE_EXECUTION_INSTANT
        raise _Refused(tc.TRADE_RETCODE_REQUOTE if instant else tc.TRADE_RETCODE_PRICE_CHANGED)
    if not close and (r.sl or r.tp):
        _check_stops(c, buy, q.bid if buy else q.ask, r.sl, r.tp)
    ticket = ledger.ticket()
    position = r.position or ticket
    if not ledger.account.hedging and not r.position:
        position = next(
            (p.ticket for p in ledger.positions.values() if p.symbol == c.symbol), ticket
        )
    fill = Fill(
        c,
        buy,
        r.volume,
        price,
        ctx.now,
        ticket,
        r.magic,
        r.comment,
        tc.DEAL_REASON_EXPERT,
        tc.POSITION_REASON_EXPERT,
        sl=r.sl,
        tp=r.tp,
        close=close,
    )
    _check_money(ctx, fill)
    deal = book_fill(ledger, ctx.quotes, fill)
    ledger.archive_order(
        _order(r, ticket, ctx.now, state=tc.ORDER_STATE_FILLED, price=price, position=position)
    )
    return Outcome(
        tc.TRADE_RETCODE_DONE, ledger.base, deal=deal, order=ticket, volume=r.volume, price=price
    )


def _order(
    r: TradeRequest,
    ticket: int,
    now: int,
    *,
    state: int,
    price: float,
    position: int = 0,
    expiration: int = 0,
) -> Order:
    done = state != tc.ORDER_STATE_PLACED
    return Order(
        ticket=ticket,
        symbol=r.symbol,
        type=r.type,
        state=state,
        volume_initial=r.volume,
        volume_current=0.0 if done else r.volume,
        price_open=price,
        sl=r.sl,
        tp=r.tp,
        time_setup_msc=now,
        time_done_msc=now if done else 0,
        type_time=r.type_time,
        type_filling=r.type_filling,
        expiration_msc=expiration,
        magic=r.magic,
        position_id=position,
        position_by_id=0,
        reason=tc.ORDER_REASON_EXPERT,
        comment=r.comment[:COMMENT_MAX],
        armed_msc=now,
    )


def _check_pending_price(c: Contract, q: Quote, order_type: int, price: float) -> None:
    gap = _points(c, c.stops_level) - _EPS
    ok = {
        tc.ORDER_TYPE_BUY_LIMIT: price <= q.ask - gap,
        tc.ORDER_TYPE_SELL_LIMIT: price >= q.bid + gap,
        tc.ORDER_TYPE_BUY_STOP: price >= q.ask + gap,
        tc.ORDER_TYPE_SELL_STOP: price <= q.bid - gap,
    }[order_type]
    if price <= 0 or not ok:
        raise _Refused(tc.TRADE_RETCODE_INVALID_PRICE)


def _expiration(ctx: _Ctx, type_time: int) -> int:
    if type_time == tc.ORDER_TIME_GTC:
        return 0
    if type_time == tc.ORDER_TIME_SPECIFIED and ctx.expiration > ctx.now:
        return ctx.expiration
    raise _Refused(tc.TRADE_RETCODE_INVALID_EXPIRATION)


def _pending(ctx: _Ctx, r: TradeRequest) -> Outcome:
    c = ctx.c
    if r.type not in _PENDING:
        raise _Refused(tc.TRADE_RETCODE_INVALID_ORDER)
    limit = r.type in (tc.ORDER_TYPE_BUY_LIMIT, tc.ORDER_TYPE_SELL_LIMIT)
    _check_volume(c, r.volume)
    _check_filling(c, r.type_filling, pending=True, limit=limit)
    _check_pending_price(c, ctx.q, r.type, r.price)
    buy = r.type in (tc.ORDER_TYPE_BUY_LIMIT, tc.ORDER_TYPE_BUY_STOP)
    _check_stops(c, buy, r.price, r.sl, r.tp)
    expiration = _expiration(ctx, r.type_time)
    ticket = ctx.ledger.ticket()
    ctx.ledger.put_order(
        _order(
            r, ticket, ctx.now, state=tc.ORDER_STATE_PLACED, price=r.price, expiration=expiration
        )
    )
    return Outcome(tc.TRADE_RETCODE_DONE, ctx.ledger.base, order=ticket, volume=r.volume)


def _sltp(ctx: _Ctx, r: TradeRequest) -> Outcome:
    pos = ctx.ledger.positions.get(r.position)
    if pos is None:
        closed = ctx.ledger.was_position(r.position)
        raise _Refused(tc.TRADE_RETCODE_POSITION_CLOSED if closed else tc.TRADE_RETCODE_INVALID)
    if abs(r.sl - pos.sl) < _EPS and abs(r.tp - pos.tp) < _EPS:
        raise _Refused(tc.TRADE_RETCODE_NO_CHANGES)
    _check_stops(ctx.c, pos.is_buy, ctx.q.bid if pos.is_buy else ctx.q.ask, r.sl, r.tp)
    ctx.ledger.put_position(dataclasses.replace(pos, sl=r.sl, tp=r.tp, time_update_msc=ctx.now))
    return Outcome(tc.TRADE_RETCODE_DONE, ctx.ledger.base)


def _modify(ctx: _Ctx, r: TradeRequest) -> Outcome:
    o = ctx.ledger.orders.get(r.order)
    if o is None:
        raise _Refused(tc.TRADE_RETCODE_INVALID)
    price = r.price or o.price_open
    same = abs(price - o.price_open) < _EPS and abs(r.sl - o.sl) < _EPS and abs(r.tp - o.tp) < _EPS
    if same and r.type_time == o.type_time and ctx.expiration == o.expiration_msc:
        raise _Refused(tc.TRADE_RETCODE_NO_CHANGES)
    _check_pending_price(ctx.c, ctx.q, o.type, price)
    _check_stops(ctx.c, o.is_buy, price, r.sl, r.tp)
    expiration = _expiration(ctx, r.type_time)
    ctx.ledger.put_order(
        dataclasses.replace(
            o,
            price_open=price,
            sl=r.sl,
            tp=r.tp,
            type_time=r.type_time,
            expiration_msc=expiration,
            armed_msc=ctx.now,
        )
    )
    return Outcome(tc.TRADE_RETCODE_DONE, ctx.ledger.base, order=o.ticket)


def _remove(ctx: _Ctx, r: TradeRequest) -> Outcome:
    o = ctx.ledger.orders.get(r.order)
    if o is None:
        raise _Refused(tc.TRADE_RETCODE_INVALID)
    ctx.ledger.archive_order(
        dataclasses.replace(o, state=tc.ORDER_STATE_CANCELED, time_done_msc=ctx.now)
    )
    return Outcome(tc.TRADE_RETCODE_DONE, ctx.ledger.base, order=o.ticket)


def _close_by(ctx: _Ctx, r: TradeRequest) -> Outcome:
    ledger = ctx.ledger
    pos, by = ledger.positions.get(r.position), ledger.positions.get(r.position_by)
    if not ledger.account.hedging or pos is None or by is None:
        raise _Refused(tc.TRADE_RETCODE_INVALID)
    if pos.symbol != by.symbol or pos.is_buy == by.is_buy:
        raise _Refused(tc.TRADE_RETCODE_INVALID)
    ticket = ledger.ticket()
    deal = close_by(ledger, ctx.quotes, pos, by, order=ticket, at=ctx.now)
    volume = min(pos.volume, by.volume)
    ledger.archive_order(
        done_order(
            ticket=ticket,
            symbol=pos.symbol,
            order_type=tc.ORDER_TYPE_CLOSE_BY,
            volume=volume,
            price=0.0,
            at_msc=ctx.now,
            magic=r.magic,
            position_id=pos.ticket,
            position_by_id=by.ticket,
            reason=tc.ORDER_REASON_EXPERT,
            comment=r.comment,
        )
    )
    return Outcome(
        tc.TRADE_RETCODE_DONE,
        ledger.base,
        deal=deal,
        order=ticket,
        volume=volume,
        price=by.price_open,
    )


_HANDLERS = {
    tc.TRADE_ACTION_DEAL: _deal,
    tc.TRADE_ACTION_PENDING: _pending,
    tc.TRADE_ACTION_SLTP: _sltp,
    tc.TRADE_ACTION_MODIFY: _modify,
    tc.TRADE_ACTION_REMOVE: _remove,
    tc.TRADE_ACTION_CLOSE_BY: _close_by,
}
