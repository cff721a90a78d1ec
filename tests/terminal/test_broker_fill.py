"""The simulated broker fills like a strict one: prices, margin and profit against an
independent computation (the terminal's own tick history, contract sizes by hand)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from app.clock import ManualClock
from app.sessions import SessionBook
from app.terminal import trade_constants as tc
from app.terminal.faults import FaultMode
from app.terminal.market import DEFAULT_PROFILES
from app.terminal.simulated import SimulatedTerminal
from tests.terminal.broker_kit import START, last_quote, market, terminal

INVALID = (-2, "Terminal: Invalid params")
NO_IPC = (-10004, "No IPC connection")
CONTRACT = {"EURUSD": 100_000, "USDJPY": 100_000, "XAUUSD": 100, "BTCUSD": 1}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START + 0.5)


@pytest.mark.parametrize("symbol", ["EURUSD", "USDJPY", "XAUUSD", "BTCUSD"])
def test_market_orders_fill_at_ask_and_bid_with_margin_and_profit_by_hand(
    clock: ManualClock, symbol: str
) -> None:
    t = terminal(clock)
    bid, ask = last_quote(t, symbol)
    buy = market(t, symbol, 0.1)
    assert (buy.retcode, buy.comment) == (tc.TRADE_RETCODE_DONE, "Request executed")
    assert (buy.price, buy.bid, buy.ask, buy.volume) == (ask, bid, ask, 0.1)
    deal = t.history_deals_get(ticket=buy.deal)
    assert deal is not None
    assert deal[0].price == ask
    assert deal[0].entry == tc.DEAL_ENTRY_IN

    # Margin: FX with a USD base is volume × contract / leverage; otherwise × price.
    units = 0.1 * CONTRACT[symbol]
    expected_margin = units / 100 if symbol == "USDJPY" else units * ask / 100
    info = t.account_info()
    assert info is not None
    assert info.margin == pytest.approx(expected_margin, abs=0.01)
    calc = t.order_calc_margin(tc.ORDER_TYPE_BUY, symbol, 0.1, ask)
    assert calc == pytest.approx(expected_margin, abs=0.01)

    clock.advance(90)
    bid2, _ = last_quote(t, symbol)
    # Profit in USD: a yen profit converts at the closing price (USDJPY's own cross).
    gain = (bid2 - ask) * units / (bid2 if symbol == "USDJPY" else 1.0)
    positions = t.positions_get(symbol=symbol)
    assert positions is not None
    assert len(positions) == 1
    assert positions[0].price_current == bid2
    assert positions[0].profit == pytest.approx(gain, abs=0.01)
    info = t.account_info()
    assert info is not None
    assert info.equity == pytest.approx(info.balance + positions[0].profit, abs=0.01)
    assert info.margin_free == pytest.approx(info.equity - info.margin, abs=0.01)
    assert info.margin_level == pytest.approx(info.equity / info.margin * 100, abs=0.01)

    close = market(t, symbol, 0.1, buy=False, position=buy.order)
    assert close.retcode == tc.TRADE_RETCODE_DONE
    assert close.price == bid2
    out = t.history_deals_get(ticket=close.deal)
    assert out is not None
    assert out[0].entry == tc.DEAL_ENTRY_OUT
    assert out[0].position_id == buy.order
    assert out[0].profit == pytest.approx(gain, abs=0.01)
    assert t.order_calc_profit(tc.ORDER_TYPE_BUY, symbol, 0.1, ask, bid2) == out[0].profit
    after = t.account_info()
    assert after is not None
    assert after.balance == pytest.approx(10_000 + out[0].profit, abs=1e-9)
    assert (after.margin, t.positions_total()) == (0.0, 0)


def test_sell_fills_at_bid_and_tickets_comment_magic(clock: ManualClock) -> None:
    t = terminal(clock)
    bid, _ = last_quote(t, "EURUSD")
    long_comment = "tc:0123456789ab and a lot more text"
    r = market(t, "EURUSD", 0.2, buy=False, magic=77, comment=long_comment)
    assert r.retcode == tc.TRADE_RETCODE_DONE
    assert r.price == bid
    assert r.request.comment == long_comment
    assert r.request.magic == 77
    clock.advance(1)
    r2 = market(t, "EURUSD", 0.1)
    assert r.order < r.deal < r2.order < r2.deal  # unique and increasing
    assert r2.request_id == r.request_id + 1
    pos = t.positions_get(ticket=r.order)
    assert pos is not None
    assert (pos[0].identifier, pos[0].magic, pos[0].comment) == (r.order, 77, long_comment[:31])
    orders = t.history_orders_get(position=r.order)
    assert orders is not None
    assert orders[0].state == tc.ORDER_STATE_FILLED
    assert orders[0].comment == long_comment[:31]


def test_each_refusal_has_its_retcode(clock: ManualClock) -> None:
    t = terminal(clock)
    bid, ask = last_quote(t, "EURUSD")
    point = DEFAULT_PROFILES["EURUSD"].point

    def code(symbol: str, volume: float, **extra: object) -> int:
        return market(t, symbol, volume, **extra).retcode

    # Instant execution (FX) requotes, market execution (gold) says prices changed.
    assert code("EURUSD", 0.1, price=ask + 11 * point) == tc.TRADE_RETCODE_REQUOTE
    assert code("EURUSD", 0.1, price=ask + 9 * point) == tc.TRADE_RETCODE_DONE
    _gold_bid, gold_ask = last_quote(t, "XAUUSD")
    assert code("XAUUSD", 0.1, price=gold_ask + 1.0) == tc.TRADE_RETCODE_PRICE_CHANGED
    # Gold allows fill-or-kill only; RETURN never on market execution.
    assert code("XAUUSD", 0.1, filling=tc.ORDER_FILLING_IOC) == tc.TRADE_RETCODE_INVALID_FILL
    assert code("BTCUSD", 0.1, filling=tc.ORDER_FILLING_RETURN) == tc.TRADE_RETCODE_INVALID_FILL
    info = t.symbol_info("XAUUSD")
    assert info is not None
    assert info.filling_mode == tc.SYMBOL_FILLING_FOK
    for volume in (0.001, 0.015, 100.01, 0.0):
        assert code("EURUSD", volume) == tc.TRADE_RETCODE_INVALID_VOLUME
    # Stops: inside trade_stops_level (10 points) or on the wrong side.
    assert code("EURUSD", 0.1, sl=bid - 5 * point) == tc.TRADE_RETCODE_INVALID_STOPS
    assert code("EURUSD", 0.1, sl=bid + 50 * point) == tc.TRADE_RETCODE_INVALID_STOPS
    assert code("EURUSD", 0.1, tp=bid - 50 * point) == tc.TRADE_RETCODE_INVALID_STOPS
    assert code("EURUSD", 0.1, buy=False, sl=ask - 50 * point) == tc.TRADE_RETCODE_INVALID_STOPS
    assert code("EURUSD", 0.1, sl=bid - 50 * point, tp=bid + 50 * point) == tc.TRADE_RETCODE_DONE
    # 20 lots of EURUSD need ~21,700 USD of margin at 1:100.
    assert code("EURUSD", 20.0) == tc.TRADE_RETCODE_NO_MONEY
    check = t.order_check(
        {"action": tc.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 20.0, "type": 0}
    )
    assert check is not None
    assert (check.retcode, check.comment) == (10019, "No money")
    ok = t.order_check({"action": tc.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 1.0})
    assert ok is not None
    assert (ok.retcode, ok.comment) == (0, "Done")
    assert t.positions_total() == 2  # order_check books nothing
    # Closing: a position that is gone; more than its volume.
    first = market(t, "EURUSD", 0.1)
    assert code("EURUSD", 0.2, buy=False, position=first.order) == 10038
    assert code("EURUSD", 0.1, buy=False, position=first.order) == tc.TRADE_RETCODE_DONE
    assert code("EURUSD", 0.1, buy=False, position=first.order) == 10036


def test_market_closed_no_quote_and_connection(clock: ManualClock, tmp_path: Path) -> None:
    saturday = ManualClock(1_700_300_000.0)  # Sat 18 Nov 2023 09:33 UTC
    t = terminal(saturday, sessions=SessionBook.default())
    assert market(t, "EURUSD", 0.1).retcode == tc.TRADE_RETCODE_MARKET_CLOSED
    assert market(t, "BTCUSD", 0.1).retcode == tc.TRADE_RETCODE_DONE  # crypto trades 24/7

    silent = terminal(clock, rates={"GBPUSD": 0.0})
    r = market(silent, "GBPUSD", 0.1)
    assert (r.retcode, r.comment) == (tc.TRADE_RETCODE_PRICE_OFF, "Off quotes")

    online = terminal(clock)
    online.set_fault(FaultMode.OFFLINE)  # lost its trade server: a result, not None
    r = market(online, "EURUSD", 0.1)
    assert (r.retcode, r.deal, r.order) == (tc.TRADE_RETCODE_CONNECTION, 0, 0)
    online.set_fault(FaultMode.DISCONNECT)  # the IPC link is down: None, like every call
    assert online.order_send({"action": 1, "symbol": "EURUSD", "volume": 0.1}) is None
    assert online.last_error() == NO_IPC
    assert online.positions_get() is None
    assert online.last_error() == NO_IPC


def test_bad_calls_answer_none_with_invalid_params(clock: ManualClock) -> None:
    t = terminal(clock)
    good = {"action": tc.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1}
    bad_calls = [
        lambda: t.order_send(None),
        lambda: t.order_send({**good, "volumes": 0.1}),
        lambda: t.order_send({**good, "volume": "0.1"}),
        lambda: t.order_send(good, magic=1),
        lambda: t.order_check([1, 2]),
        t.history_deals_get,
        lambda: t.order_calc_margin(tc.ORDER_TYPE_BUY, "NOPE", 0.1, 1.0),
        lambda: t.order_calc_profit(tc.TRADE_ACTION_PENDING, "EURUSD", 0.1, 1.0, 1.1),
    ]
    for call in bad_calls:
        assert call() is None
        assert t.last_error() == INVALID
    assert t.positions_total() == 0
    assert t.last_error() == (1, "Success")
    unknown = market(t, "NOPE", 0.1)
    assert (unknown.retcode, unknown.comment) == (tc.TRADE_RETCODE_INVALID, "Invalid request")


def test_symbol_info_trade_fields_per_class(clock: ManualClock) -> None:
    t = terminal(clock)
    fx, gold, btc, jpy = (t.symbol_info(s) for s in ("EURUSD", "XAUUSD", "BTCUSD", "USDJPY"))
    assert fx is not None
    assert gold is not None
    assert btc is not None
    assert jpy is not None
    assert (fx.trade_contract_size, gold.trade_contract_size, btc.trade_contract_size) == (
        100_000,
        100,
        1,
    )
    assert fx.trade_calc_mode == tc.SYMBOL_CALC_MODE_FOREX
    assert gold.trade_calc_mode == tc.SYMBOL_CALC_MODE_CFDLEVERAGE
    assert fx.trade_exemode == tc.SYMBOL_TRADE_EXECUTION_INSTANT
    assert fx.trade_tick_value == pytest.approx(1.0)  # 0.00001 × 100,000 USD
    assert jpy.trade_tick_value == pytest.approx(100.0 / jpy.bid)  # 100 yen in USD
    assert (fx.volume_min, fx.volume_step, fx.trade_stops_level) == (0.01, 0.01, 10)
    assert (jpy.currency_profit, jpy.currency_margin) == ("JPY", "USD")


#: The trade functions' parameter names, as the module's documentation spells them.
TRADE_SIGNATURES = {
    "order_check": ["request"],
    "order_send": ["request"],
    "order_calc_margin": ["action", "symbol", "volume", "price"],
    "order_calc_profit": ["action", "symbol", "volume", "price_open", "price_close"],
    "positions_total": [],
    "positions_get": ["symbol", "group", "ticket"],
    "orders_total": [],
    "orders_get": ["symbol", "group", "ticket"],
    "history_orders_total": ["date_from", "date_to"],
    "history_orders_get": ["date_from", "date_to", "group", "ticket", "position"],
    "history_deals_total": ["date_from", "date_to"],
    "history_deals_get": ["date_from", "date_to", "group", "ticket", "position"],
}


def test_trade_functions_have_the_real_parameter_names_and_constants() -> None:
    for name, params in TRADE_SIGNATURES.items():
        sig = inspect.signature(getattr(SimulatedTerminal, name))
        named = [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        assert named == params, name
    for constant in (
        "TRADE_ACTION_DEAL",
        "ORDER_FILLING_FOK",
        "TRADE_RETCODE_DONE",
        "DEAL_REASON_SL",
    ):
        assert getattr(SimulatedTerminal, constant) == getattr(tc, constant)
