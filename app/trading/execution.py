"""The order path's rules, without I/O: intent → MT5 request → report; reconciliation.

Pure functions over the terminal's own named tuples, so that every rule (which filling
mode, which price, which side closes a position, how slippage is signed, what counts as
"the terminal has this request") is tested without a process, and the adapter
(:mod:`app.trading.router`) only moves data between the pool, the journal and these.

Never an order twice: every request carries ``magic = APP_MAGIC`` and ``comment =
"tc:<request id>"``; :func:`find_request` is the one place that decides, from the
terminal's orders, positions and history, whether a request reached the terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.terminal import trade_constants as tc
from app.terminal.trade_types import OrderSendResult, TradeDeal, TradeOrder, TradePosition
from app.terminal.types import SymbolInfo, Tick
from app.trading.intent import (
    APP_MAGIC,
    Action,
    ExecutionReport,
    OrderIntent,
    OrderKind,
    Outcome,
    Side,
    request_id_of,
)

#: What a reconciliation says when the terminal answered and has no trace of the request.
NOT_EXECUTED = "not executed (no order with this id at the terminal)"

_PENDING_TYPES = {
    (Side.BUY, OrderKind.LIMIT): tc.ORDER_TYPE_BUY_LIMIT,
    (Side.SELL, OrderKind.LIMIT): tc.ORDER_TYPE_SELL_LIMIT,
    (Side.BUY, OrderKind.STOP): tc.ORDER_TYPE_BUY_STOP,
    (Side.SELL, OrderKind.STOP): tc.ORDER_TYPE_SELL_STOP,
}
#: Retcodes that mean "done as asked".
_DONE = frozenset({tc.TRADE_RETCODE_DONE, tc.TRADE_RETCODE_DONE_PARTIAL, tc.TRADE_RETCODE_PLACED})


class IntentError(ValueError):
    """The intent cannot become a request (missing price, unknown position ...)."""


def filling_for(filling_mode: int) -> int:
    """The ``type_filling`` a symbol accepts: ``symbol_info().filling_mode`` is a bit
    set of SYMBOL_FILLING_* (not the ORDER_FILLING_* values); FOK when allowed, then
    IOC, else RETURN (exchange/request execution, where neither bit is set)."""
    if filling_mode & tc.SYMBOL_FILLING_FOK:
        return tc.ORDER_FILLING_FOK
    if filling_mode & tc.SYMBOL_FILLING_IOC:
        return tc.ORDER_FILLING_IOC
    return tc.ORDER_FILLING_RETURN


def _base(intent: OrderIntent, info: SymbolInfo) -> dict[str, Any]:
    return {
        "symbol": intent.symbol,
        "magic": APP_MAGIC,
        "comment": intent.comment,
        "type_time": tc.ORDER_TIME_GTC,
        "type_filling": filling_for(info.filling_mode),
    }


def _stops(intent: OrderIntent) -> dict[str, float]:
    return {"sl": float(intent.sl or 0.0), "tp": float(intent.tp or 0.0)}


def build_request(
    intent: OrderIntent,
    info: SymbolInfo,
    tick: Tick,
    *,
    position: TradePosition | None = None,
    order: TradeOrder | None = None,
) -> dict[str, Any]:
    """The ``order_send`` request dict for ``intent``.

    ``position`` is the position a CLOSE or a MODIFY of SL/TP is about, ``order`` the
    pending order a MODIFY or CANCEL is about (looked up by the adapter from
    ``intent.ticket``). Market prices come from ``tick`` (ask to buy, bid to sell).
    """
    req = _base(intent, info)
    if intent.action is Action.OPEN:
        if intent.kind is OrderKind.MARKET:
            buy = intent.side is Side.BUY
            price = tick.ask if buy else tick.bid
            req |= {
                "action": tc.TRADE_ACTION_DEAL,
                "type": tc.ORDER_TYPE_BUY if buy else tc.ORDER_TYPE_SELL,
                "price": float(price),
                "deviation": int(intent.deviation),
            }
        else:
            if intent.price is None:
                raise IntentError(f"a {intent.kind} order needs a price")
            req |= {
                "action": tc.TRADE_ACTION_PENDING,
                "type": _PENDING_TYPES[(intent.side, intent.kind)],
                "price": float(intent.price),
            }
        return req | {"volume": float(intent.volume)} | _stops(intent)
    if intent.action is Action.CLOSE:
        if position is None:
            raise IntentError(f"no open position {intent.ticket}")
        was_buy = position.type == tc.POSITION_TYPE_BUY
        volume = intent.volume if intent.volume > 0 else position.volume
        if volume > position.volume + 1e-9:
            raise IntentError(
                f"close volume {volume:g} is more than position {position.ticket}'s "
                f"{position.volume:g}"
            )
        return req | {
            "action": tc.TRADE_ACTION_DEAL,
            "symbol": position.symbol,
            "position": position.ticket,
            "type": tc.ORDER_TYPE_SELL if was_buy else tc.ORDER_TYPE_BUY,
            "price": float(tick.bid if was_buy else tick.ask),
            "volume": float(volume),
            "deviation": int(intent.deviation),
        }
    if intent.action is Action.MODIFY:
        if position is not None:
            return (
                req
                | {
                    "action": tc.TRADE_ACTION_SLTP,
                    "symbol": position.symbol,
                    "position": position.ticket,
                }
                | _stops(intent)
            )
        if order is not None:
            price = intent.price if intent.price is not None else order.price_open
            return (
                req
                | {
                    "action": tc.TRADE_ACTION_MODIFY,
                    "symbol": order.symbol,
                    "order": order.ticket,
                    "price": float(price),
                }
                | _stops(intent)
            )
        raise IntentError(f"no open position or pending order {intent.ticket}")
    if order is None:
        raise IntentError(f"no pending order {intent.ticket}")
    return req | {"action": tc.TRADE_ACTION_REMOVE, "symbol": order.symbol, "order": order.ticket}


def slippage_points(request: dict[str, Any], fill_price: float, point: float) -> float | None:
    """Signed slippage of a deal in points, positive = worse than the price asked."""
    if request.get("action") != tc.TRADE_ACTION_DEAL or not fill_price or point <= 0:
        return None
    asked = float(request.get("price", 0.0))
    if not asked:
        return None
    worse = fill_price - asked if request.get("type") == tc.ORDER_TYPE_BUY else asked - fill_price
    return round(worse / point, 1)


def report_of(
    request_id: str,
    request: dict[str, Any],
    result: OrderSendResult,
    point: float,
    latency_ms: float,
) -> ExecutionReport:
    """The report of a terminal's answer to ``order_send``."""
    message = tc.describe_retcode(result.retcode)
    if result.comment:
        message += f": {result.comment}"
    if result.retcode not in _DONE:
        outcome = Outcome.REJECTED
    elif request.get("action") == tc.TRADE_ACTION_DEAL:
        outcome = Outcome.EXECUTED
    else:
        outcome = Outcome.PLACED
    position = int(request.get("position", 0))
    return ExecutionReport(
        request_id=request_id,
        outcome=outcome,
        message=message,
        retcode=result.retcode,
        order=result.order,
        deal=result.deal,
        position=position,
        price=result.price,
        volume=result.volume,
        slippage_points=(
            slippage_points(request, result.price, point) if outcome is Outcome.EXECUTED else None
        ),
        latency_ms=latency_ms,
    )


@dataclass(frozen=True, slots=True)
class TerminalTrades:
    """What the terminal holds, as read for a reconciliation (server-time history)."""

    orders: Sequence[TradeOrder]
    positions: Sequence[TradePosition]
    history_orders: Sequence[TradeOrder]
    history_deals: Sequence[TradeDeal]


def _ours(magic: int, comment: str, request_id: str) -> bool:
    return magic == APP_MAGIC and request_id_of(comment) == request_id


def find_request(request_id: str, request: dict[str, Any], seen: TerminalTrades) -> ExecutionReport:
    """Whether the terminal has ``request_id``, as a report: EXECUTED (a deal: its ticket,
    price, volume), PLACED (a pending order on the books or in history, or the asked
    SL/TP/removal in effect), or REJECTED with :data:`NOT_EXECUTED`.

    Only called with the terminal's answers in hand: "not found" is then final, and the
    request is never sent again.
    """
    action = request.get("action")
    if action in (tc.TRADE_ACTION_SLTP, tc.TRADE_ACTION_MODIFY, tc.TRADE_ACTION_REMOVE):
        return _find_change(request_id, request, seen)
    for deal in seen.history_deals:
        if _ours(deal.magic, deal.comment, request_id):
            return ExecutionReport(
                request_id,
                Outcome.EXECUTED,
                f"executed: deal {deal.ticket} found in the terminal's history",
                order=deal.order,
                deal=deal.ticket,
                position=deal.position_id,
                price=deal.price,
                volume=deal.volume,
            )
    for order in (*seen.orders, *seen.history_orders):
        if _ours(order.magic, order.comment, request_id):
            placed = order.state in (tc.ORDER_STATE_PLACED, tc.ORDER_STATE_PARTIAL)
            if action == tc.TRADE_ACTION_PENDING or placed:
                return ExecutionReport(
                    request_id,
                    Outcome.PLACED,
                    f"placed: order {order.ticket} found at the terminal",
                    order=order.ticket,
                    price=order.price_open,
                    volume=order.volume_initial,
                )
            if order.state == tc.ORDER_STATE_FILLED:
                return ExecutionReport(
                    request_id,
                    Outcome.EXECUTED,
                    f"executed: order {order.ticket} filled (its deal is outside the history read)",
                    order=order.ticket,
                    position=order.position_id,
                    price=order.price_current,
                    volume=order.volume_initial,
                )
    for pos in seen.positions:
        if _ours(pos.magic, pos.comment, request_id):
            return ExecutionReport(
                request_id,
                Outcome.EXECUTED,
                f"executed: position {pos.ticket} found at the terminal",
                position=pos.ticket,
                price=pos.price_open,
                volume=pos.volume,
            )
    return ExecutionReport(request_id, Outcome.REJECTED, NOT_EXECUTED)


def _find_change(request_id: str, request: dict[str, Any], seen: TerminalTrades) -> ExecutionReport:
    """A modification or removal carries no trace of its own: it is in effect or not."""
    action = request["action"]
    if action == tc.TRADE_ACTION_SLTP:
        ticket = int(request.get("position", 0))
        pos = next((p for p in seen.positions if p.ticket == ticket), None)
        done = pos is not None and (pos.sl, pos.tp) == (request.get("sl"), request.get("tp"))
    elif action == tc.TRADE_ACTION_MODIFY:
        ticket = int(request.get("order", 0))
        order = next((o for o in seen.orders if o.ticket == ticket), None)
        asked = (request.get("price"), request.get("sl"), request.get("tp"))
        done = order is not None and (order.price_open, order.sl, order.tp) == asked
    else:
        ticket = int(request.get("order", 0))
        done = all(o.ticket != ticket for o in seen.orders)
    if done:
        return ExecutionReport(request_id, Outcome.PLACED, f"done: {ticket} is as asked")
    return ExecutionReport(request_id, Outcome.REJECTED, NOT_EXECUTED)
