"""Pending orders, SL and TP trigger at the first crossing in the terminal's own tick
history, whoever asks and however often."""

from __future__ import annotations

import pytest

from app.clock import ManualClock
from app.terminal import trade_constants as tc
from app.terminal.market import DEFAULT_PROFILES
from app.terminal.simulated import SimulatedTerminal
from tests.terminal.broker_kit import START, first_index, history, last_quote, market, terminal

POINT = DEFAULT_PROFILES["EURUSD"].point


def _after(t: SimulatedTerminal, symbol: str, server_msc: int) -> object:
    ticks = history(t, symbol, back_s=7200)
    return ticks[ticks["time_msc"] > server_msc]


def test_sl_and_tp_close_at_the_first_crossing() -> None:
    clock = ManualClock(START + 0.5)
    t = terminal(clock)
    bid, _ = last_quote(t, "EURUSD")
    sl, tp = round(bid - 12 * POINT, 5), round(bid + 12 * POINT, 5)
    buy = market(t, "EURUSD", 0.1, sl=sl, tp=tp)
    assert buy.retcode == tc.TRADE_RETCODE_DONE
    opened = t.positions_get(ticket=buy.order)
    assert opened is not None
    clock.advance(1800)

    later = _after(t, "EURUSD", opened[0].time_msc)
    bids = later["bid"]  # type: ignore[index]
    i = first_index((bids <= sl) | (bids >= tp))
    hit = later[i]  # type: ignore[index]
    assert t.positions_total() == 0
    deals = t.history_deals_get(position=buy.order)
    assert deals is not None
    assert len(deals) == 2
    out = deals[1]
    assert out.entry == tc.DEAL_ENTRY_OUT
    assert out.reason == (tc.DEAL_REASON_SL if hit["bid"] <= sl else tc.DEAL_REASON_TP)
    assert (out.price, out.time_msc) == (float(hit["bid"]), int(hit["time_msc"]))
    assert out.profit == pytest.approx((out.price - buy.price) * 10_000, abs=0.01)
    assert out.comment.startswith("[sl " if out.reason == tc.DEAL_REASON_SL else "[tp ")
    info = t.account_info()
    assert info is not None
    assert info.balance == pytest.approx(10_000 + out.profit, abs=1e-9)


def test_pending_limit_and_stop_fill_where_the_history_crosses() -> None:
    clock = ManualClock(START + 0.5)
    t = terminal(clock)
    bid, ask = last_quote(t, "EURUSD")
    limit_price = round(ask - 15 * POINT, 5)
    stop_price = round(bid - 15 * POINT, 5)
    placed = []
    for kind, price in (
        (tc.ORDER_TYPE_BUY_LIMIT, limit_price),
        (tc.ORDER_TYPE_SELL_STOP, stop_price),
    ):
        r = t.order_send(
            {
                "action": tc.TRADE_ACTION_PENDING,
                "symbol": "EURUSD",
                "volume": 0.1,
                "type": kind,
                "price": price,
                "type_filling": tc.ORDER_FILLING_RETURN,
                "magic": 5,
            }
        )
        assert r is not None
        assert r.retcode == tc.TRADE_RETCODE_DONE
        assert r.deal == 0
        placed.append(r.order)
    assert t.orders_total() == 2
    active = t.orders_get(ticket=placed[0])
    assert active is not None
    assert active[0].state == tc.ORDER_STATE_PLACED
    setup_msc = active[0].time_setup_msc
    clock.advance(3600)

    later = _after(t, "EURUSD", setup_msc)
    i_limit = first_index(later["ask"] <= limit_price)  # type: ignore[index]
    i_stop = first_index(later["bid"] <= stop_price)  # type: ignore[index]
    assert t.orders_total() == 0
    for ticket, i, price in (
        (placed[0], i_limit, limit_price),  # a limit fills at its price
        (placed[1], i_stop, float(later[i_stop]["bid"])),  # type: ignore[index]
    ):
        done = t.history_orders_get(ticket=ticket)
        assert done is not None
        assert done[0].state == tc.ORDER_STATE_FILLED
        assert done[0].time_done_msc == int(later[i]["time_msc"])  # type: ignore[index]
        deal = t.history_deals_get(position=ticket)
        assert deal is not None
        assert deal[0].price == price
        assert deal[0].order == ticket
        assert deal[0].magic == 5
    positions = t.positions_get()
    assert positions is not None
    assert {p.ticket for p in positions} == set(placed)


def test_invalid_pending_price_modify_remove_and_expiry() -> None:
    clock = ManualClock(START + 0.5)
    t = terminal(clock)
    bid, ask = last_quote(t, "EURUSD")

    def pending(kind: int, price: float, **extra: object) -> tuple[int, int]:
        r = t.order_send(
            {
                "action": tc.TRADE_ACTION_PENDING,
                "symbol": "EURUSD",
                "volume": 0.1,
                "type": kind,
                "price": price,
                "type_filling": tc.ORDER_FILLING_RETURN,
                **extra,
            }
        )
        assert r is not None
        return r.retcode, r.order

    assert pending(tc.ORDER_TYPE_BUY_LIMIT, ask + 50 * POINT)[0] == tc.TRADE_RETCODE_INVALID_PRICE
    assert pending(tc.ORDER_TYPE_BUY_STOP, ask + 5 * POINT)[0] == tc.TRADE_RETCODE_INVALID_PRICE
    far = round(bid - 3000 * POINT, 5)
    code, order = pending(tc.ORDER_TYPE_BUY_LIMIT, far)
    assert code == tc.TRADE_RETCODE_DONE
    modify = {"action": tc.TRADE_ACTION_MODIFY, "order": order, "price": far - POINT}
    assert (r := t.order_send(modify)) is not None
    assert r.retcode == tc.TRADE_RETCODE_DONE
    assert (r := t.order_send(modify)) is not None
    assert r.retcode == tc.TRADE_RETCODE_NO_CHANGES
    remove = {"action": tc.TRADE_ACTION_REMOVE, "order": order}
    assert (r := t.order_send(remove)) is not None
    assert r.retcode == tc.TRADE_RETCODE_DONE
    gone = t.history_orders_get(ticket=order)
    assert gone is not None
    assert gone[0].state == tc.ORDER_STATE_CANCELED

    tick = t.symbol_info_tick("EURUSD")
    assert tick is not None
    code, order = pending(
        tc.ORDER_TYPE_SELL_LIMIT,
        round(ask + 3000 * POINT, 5),
        type_time=tc.ORDER_TIME_SPECIFIED,
        expiration=tick.time + 60,
    )
    assert code == tc.TRADE_RETCODE_DONE
    clock.advance(30)
    assert t.orders_total() == 1
    clock.advance(60)
    assert t.orders_total() == 0
    expired = t.history_orders_get(ticket=order)
    assert expired is not None
    assert expired[0].state == tc.ORDER_STATE_EXPIRED
    assert expired[0].time_done == tick.time + 60


def test_sltp_modification_moves_the_stops() -> None:
    clock = ManualClock(START + 0.5)
    t = terminal(clock)
    bid, _ = last_quote(t, "EURUSD")
    buy = market(t, "EURUSD", 0.1)
    r = t.order_send(
        {"action": tc.TRADE_ACTION_SLTP, "position": buy.order, "sl": round(bid - 2 * POINT, 5)}
    )
    assert r is not None
    assert r.retcode == tc.TRADE_RETCODE_INVALID_STOPS
    sl = round(bid - 500 * POINT, 5)
    r = t.order_send({"action": tc.TRADE_ACTION_SLTP, "position": buy.order, "sl": sl})
    assert r is not None
    assert r.retcode == tc.TRADE_RETCODE_DONE
    positions = t.positions_get(ticket=buy.order)
    assert positions is not None
    assert positions[0].sl == sl


def test_triggers_do_not_depend_on_polling() -> None:
    """One terminal asked every few seconds, another only at the end: the same deals."""
    clocks = [ManualClock(START + 0.5), ManualClock(START + 0.5)]
    terms = [terminal(c) for c in clocks]
    for t in terms:
        bid, ask = last_quote(t, "EURUSD")
        market(t, "EURUSD", 0.1, sl=round(bid - 11 * POINT, 5), tp=round(bid + 11 * POINT, 5))
        market(t, "EURUSD", 0.2, buy=False, sl=round(ask + 14 * POINT, 5))
        t.order_send(
            {
                "action": tc.TRADE_ACTION_PENDING,
                "symbol": "EURUSD",
                "volume": 0.3,
                "type": tc.ORDER_TYPE_SELL_LIMIT,
                "price": round(bid + 13 * POINT, 5),
                "tp": round(bid - 5 * POINT, 5),
            }
        )
    for _ in range(300):
        clocks[0].advance(4)
        terms[0].positions_total()
    clocks[1].advance(1200)
    deals = [t.history_deals_get(0, 2_000_000_000) for t in terms]
    assert deals[0] is not None
    assert len(deals[0]) >= 4
    assert deals[0] == deals[1]
    assert terms[0].account_info() == terms[1].account_info()
