"""Pending orders, stop losses and take profits, triggered by the tick stream.

A pure function of the market: ``catch_up(state, quotes, until)`` scans every tick from
the last instant the books were checked up to ``until`` (vectorised, per symbol, an hour
at a time) for the first crossing of any active order or stop, books it, and goes on
from there until nothing more triggers. Whoever calls first (the trading worker, a
backfill helper, a short-lived session) books the same events at the same ticks, so
results never depend on how often anyone polls.

Rules (as MT5 evaluates them): a buy limit fills when the ask falls to its price, a sell
limit when the bid rises to it (at the order's price); a buy stop when the ask reaches
it, a sell stop when the bid does (at that tick's price). A buy position closes at the
bid, a sell at the ask: SL when that price reaches the stop, TP when it reaches the
target, at that tick's price. Only ticks strictly after an order's placement (or last
change) count: the order was checked against everything up to that millisecond.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from app.terminal import trade_constants as tc
from app.terminal.broker.account import Quotes, figures
from app.terminal.broker.deals import Fill, book_fill, done_order, margin_needed
from app.terminal.broker.state import BrokerState, Changes, Ledger, Order, Position
from app.ticks import TickArray

__all__ = ["WINDOW_MS", "catch_up"]

#: Span of ticks scanned at once (bounds memory after a long pause).
WINDOW_MS = 3_600_000

_FILL, _EXPIRE, _STOP = 0, 1, 2


@dataclasses.dataclass(frozen=True, slots=True)
class _Event:
    time_msc: int
    rank: int
    ticket: int
    bid: float = 0.0
    ask: float = 0.0
    reason: int = 0

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.time_msc, self.rank, self.ticket)


def catch_up(state: BrokerState, quotes: Quotes, until_msc: int) -> tuple[BrokerState, Changes]:
    """The books after every trigger in ``(checked_msc, until_msc)``; ``Changes`` is
    empty when nothing but the checked instant moved."""
    ledger = Ledger(state)
    w = state.account.checked_msc + 1
    while w < until_msc and (ledger.orders or _stopped(ledger)):
        w_end = min(until_msc, w + WINDOW_MS)
        symbols = {o.symbol for o in ledger.orders.values()}
        symbols |= {p.symbol for p in ledger.positions.values() if p.sl or p.tp}
        ticks = {s: quotes.ticks(s, w, w_end) for s in symbols}
        while (event := _earliest(ledger, ticks, w, w_end)) is not None:
            _apply(ledger, quotes, event)  # creates no order, so ``ticks`` covers all
        w = w_end
    changed = ledger.changes()
    ledger.checked(until_msc - 1)
    if not changed:
        return dataclasses.replace(state, account=ledger.account), changed
    return ledger.state(), ledger.changes()


def _stopped(ledger: Ledger) -> bool:
    return any(p.sl or p.tp for p in ledger.positions.values())


def _first(mask: npt.NDArray[np.bool_]) -> int | None:
    if not len(mask):
        return None
    i = int(np.argmax(mask))
    return i if mask[i] else None


def _after(t: TickArray, armed: int, w: int) -> int:
    return int(np.searchsorted(t["time_msc"], max(armed + 1, w), side="left"))


def _order_event(o: Order, t: TickArray, w: int, w_end: int) -> _Event | None:
    lo = _after(t, o.armed_msc, w)
    part = t[lo:]
    if o.expiration_msc:
        part = part[part["time_msc"] < o.expiration_msc]
    bid, ask = part["bid"], part["ask"]
    cond = {
        tc.ORDER_TYPE_BUY_LIMIT: ask <= o.price_open,
        tc.ORDER_TYPE_SELL_LIMIT: bid >= o.price_open,
        tc.ORDER_TYPE_BUY_STOP: ask >= o.price_open,
        tc.ORDER_TYPE_SELL_STOP: bid <= o.price_open,
    }[o.type]
    i = _first(cond)
    if i is not None:
        tick = part[i]
        return _Event(
            int(tick["time_msc"]), _FILL, o.ticket, float(tick["bid"]), float(tick["ask"])
        )
    if o.expiration_msc and w <= o.expiration_msc < w_end:
        return _Event(o.expiration_msc, _EXPIRE, o.ticket)
    return None


def _stop_event(p: Position, t: TickArray, w: int) -> _Event | None:
    part = t[_after(t, p.time_update_msc, w) :]
    price = part["bid"] if p.is_buy else part["ask"]
    no = np.zeros(len(part), dtype=np.bool_)
    if p.is_buy:
        hit_sl = price <= p.sl if p.sl else no
        hit_tp = price >= p.tp if p.tp else no
    else:
        hit_sl = price >= p.sl if p.sl else no
        hit_tp = price <= p.tp if p.tp else no
    i = _first(hit_sl | hit_tp)
    if i is None:
        return None
    reason = tc.DEAL_REASON_SL if hit_sl[i] else tc.DEAL_REASON_TP
    tick = part[i]
    return _Event(
        int(tick["time_msc"]), _STOP, p.ticket, float(tick["bid"]), float(tick["ask"]), reason
    )


def _earliest(ledger: Ledger, ticks: dict[str, TickArray], w: int, w_end: int) -> _Event | None:
    events = [_order_event(o, ticks[o.symbol], w, w_end) for o in ledger.orders.values()]
    events += [
        _stop_event(p, ticks[p.symbol], w) for p in ledger.positions.values() if p.sl or p.tp
    ]
    found = [e for e in events if e is not None]
    return min(found, key=lambda e: e.key) if found else None


def _apply(ledger: Ledger, quotes: Quotes, e: _Event) -> None:
    if e.rank == _STOP:
        _stop_out(ledger, quotes, ledger.positions[e.ticket], e)
        return
    o = ledger.orders[e.ticket]
    if e.rank == _EXPIRE:
        ledger.archive_order(
            dataclasses.replace(o, state=tc.ORDER_STATE_EXPIRED, time_done_msc=e.time_msc)
        )
        return
    c = quotes.contract(o.symbol)
    assert c is not None  # the order was accepted for a known symbol
    limit = o.type in (tc.ORDER_TYPE_BUY_LIMIT, tc.ORDER_TYPE_SELL_LIMIT)
    price = o.price_open if limit else (e.ask if o.is_buy else e.bid)
    fill = Fill(
        c,
        o.is_buy,
        o.volume_current,
        price,
        e.time_msc,
        o.ticket,
        o.magic,
        o.comment,
        tc.DEAL_REASON_EXPERT,
        tc.POSITION_REASON_EXPERT,
        sl=o.sl,
        tp=o.tp,
    )
    need = margin_needed(ledger, quotes, fill)
    free = figures(BrokerState(ledger.account, ledger.positions), quotes, e.time_msc + 1)
    if need is None or need > free.margin_free:
        ledger.archive_order(
            dataclasses.replace(o, state=tc.ORDER_STATE_REJECTED, time_done_msc=e.time_msc)
        )
        return
    netted = next(
        (p.ticket for p in ledger.positions.values() if p.symbol == o.symbol),
        o.ticket,
    )
    book_fill(ledger, quotes, fill)
    ledger.archive_order(
        dataclasses.replace(
            o,
            state=tc.ORDER_STATE_FILLED,
            time_done_msc=e.time_msc,
            volume_current=0.0,
            position_id=o.ticket if ledger.account.hedging else netted,
        )
    )


def _stop_out(ledger: Ledger, quotes: Quotes, p: Position, e: _Event) -> None:
    c = quotes.contract(p.symbol)
    assert c is not None
    sl = e.reason == tc.DEAL_REASON_SL
    level = p.sl if sl else p.tp
    comment = f"[{'sl' if sl else 'tp'} {level:.{c.digits}f}]"
    ticket = ledger.ticket()
    price = e.bid if p.is_buy else e.ask
    fill = Fill(
        c,
        not p.is_buy,
        p.volume,
        price,
        e.time_msc,
        ticket,
        p.magic,
        comment,
        e.reason,
        p.reason,
        close=p.ticket if ledger.account.hedging else 0,
    )
    book_fill(ledger, quotes, fill)
    ledger.archive_order(
        done_order(
            ticket=ticket,
            symbol=p.symbol,
            order_type=tc.ORDER_TYPE_SELL if p.is_buy else tc.ORDER_TYPE_BUY,
            volume=p.volume,
            price=price,
            at_msc=e.time_msc,
            magic=p.magic,
            position_id=p.ticket,
            reason=tc.ORDER_REASON_SL if sl else tc.ORDER_REASON_TP,
            comment=comment,
        )
    )
