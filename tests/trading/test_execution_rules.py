"""The order path's pure rules (app/trading/execution.py) on the terminal's own tuples."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.terminal import trade_constants as tc
from app.terminal.simulated import SimulatedTerminal
from app.terminal.trade_types import (
    REQUEST_DEFAULTS,
    OrderSendResult,
    TradeDeal,
    TradeOrder,
    TradePosition,
    trade_request,
)
from app.terminal.types import SymbolInfo, Tick
from app.trading.execution import (
    NOT_EXECUTED,
    IntentError,
    TerminalTrades,
    build_request,
    filling_for,
    find_request,
    report_of,
)
from app.trading.inflight import InFlight, InFlightJournal
from app.trading.intent import APP_MAGIC, Action, OrderIntent, OrderKind, Origin, Outcome, Side


@pytest.fixture(scope="module")
def market() -> tuple[SymbolInfo, Tick]:
    term = SimulatedTerminal()
    assert term.initialize()
    info, tick = term.symbol_info("EURUSD"), term.symbol_info_tick("EURUSD")
    assert info is not None
    assert tick is not None
    return info, tick


def _position(ticket: int, kind: int, volume: float = 0.5) -> TradePosition:
    return TradePosition(
        ticket, 0, 0, 0, 0, kind, APP_MAGIC, ticket, 3, volume, 1.1, 0.0, 0.0, 1.1, 0.0, 0.0,
        "EURUSD", "tc:abc", "",
    )  # fmt: skip


def test_filling_follows_the_symbols_bits() -> None:
    assert filling_for(tc.SYMBOL_FILLING_FOK | tc.SYMBOL_FILLING_IOC) == tc.ORDER_FILLING_FOK
    assert filling_for(tc.SYMBOL_FILLING_IOC) == tc.ORDER_FILLING_IOC
    assert filling_for(0) == tc.ORDER_FILLING_RETURN


def test_market_orders_ask_the_side_price(market: tuple[SymbolInfo, Tick]) -> None:
    info, tick = market
    buy = OrderIntent(Action.OPEN, "EURUSD", Side.BUY, 0.1, Origin.CLI, sl=1.0, deviation=7)
    req = build_request(buy, info, tick)
    assert req["action"] == tc.TRADE_ACTION_DEAL
    assert (req["type"], req["price"]) == (tc.ORDER_TYPE_BUY, tick.ask)
    assert (req["magic"], req["comment"]) == (APP_MAGIC, f"tc:{buy.request_id}")
    assert req["type_filling"] == filling_for(info.filling_mode)
    assert (req["sl"], req["tp"], req["deviation"]) == (1.0, 0.0, 7)
    sell = build_request(OrderIntent(Action.OPEN, "EURUSD", Side.SELL, 0.1, Origin.CLI), info, tick)
    assert (sell["type"], sell["price"]) == (tc.ORDER_TYPE_SELL, tick.bid)
    # Every key is one the module accepts.
    assert set(req) <= set(REQUEST_DEFAULTS._fields)


def test_close_takes_the_opposite_side(market: tuple[SymbolInfo, Tick]) -> None:
    info, tick = market
    intent = OrderIntent(Action.CLOSE, "EURUSD", Side.SELL, 0, Origin.CLI, ticket=9)
    req = build_request(intent, info, tick, position=_position(9, tc.POSITION_TYPE_BUY))
    assert (req["type"], req["price"], req["position"], req["volume"]) == (
        tc.ORDER_TYPE_SELL,
        tick.bid,
        9,
        0.5,
    )
    big = OrderIntent(Action.CLOSE, "EURUSD", Side.SELL, 2.0, Origin.CLI, ticket=9)
    with pytest.raises(IntentError, match="more than"):
        build_request(big, info, tick, position=_position(9, tc.POSITION_TYPE_BUY))
    pending = OrderIntent(Action.OPEN, "EURUSD", Side.BUY, 1, Origin.CLI, kind=OrderKind.LIMIT)
    with pytest.raises(IntentError, match="needs a price"):
        build_request(pending, info, tick)


def _result(retcode: int, price: float, request: dict[str, object]) -> OrderSendResult:
    return OrderSendResult(retcode, 11, 12, 0.1, price, 0.0, 0.0, "", 1, 0, trade_request(request))


def test_report_signs_slippage_against_the_price_asked(market: tuple[SymbolInfo, Tick]) -> None:
    info, tick = market
    buy = build_request(OrderIntent(Action.OPEN, "EURUSD", Side.BUY, 0.1, Origin.CLI), info, tick)
    worse = tick.ask + 3 * info.point
    rep = report_of("r1", buy, _result(tc.TRADE_RETCODE_DONE, worse, buy), info.point, 1.5)
    assert rep.outcome is Outcome.EXECUTED
    assert rep.slippage_points == pytest.approx(3.0)
    assert rep.message.startswith(tc.describe_retcode(tc.TRADE_RETCODE_DONE))
    rejected = report_of("r2", buy, _result(tc.TRADE_RETCODE_REQUOTE, 0.0, buy), info.point, 1)
    assert rejected.outcome is Outcome.REJECTED
    assert "REQUOTE" in rejected.message
    assert rejected.slippage_points is None


def _deal(ticket: int, comment: str, magic: int = APP_MAGIC) -> TradeDeal:
    return TradeDeal(
        ticket, 100 + ticket, 0, 0, 0, 0, magic, 7, 3, 0.1, 1.1, 0, 0, 0, 0, "EURUSD", comment, ""
    )


def test_find_request_by_comment_and_magic() -> None:
    req = {"action": tc.TRADE_ACTION_DEAL, "type": tc.ORDER_TYPE_BUY, "price": 1.1}
    deals = [_deal(1, "tc:other"), _deal(2, "tc:abc", magic=1), _deal(3, "tc:abc")]
    found = find_request("abc", req, TerminalTrades((), (), (), deals))
    assert (found.outcome, found.deal, found.order) == (Outcome.EXECUTED, 3, 103)
    missing = find_request("zzz", req, TerminalTrades((), (), (), deals))
    assert (missing.outcome, missing.message) == (Outcome.REJECTED, NOT_EXECUTED)
    # A position opened by the request, its deal outside the history read.
    pos = find_request("abc", req, TerminalTrades((), (_position(5, 0),), (), ()))
    assert (pos.outcome, pos.position) == (Outcome.EXECUTED, 5)
    pending = TradeOrder(
        8, 0, 0, 0, 0, 0, tc.ORDER_TYPE_BUY_LIMIT, 0, 2, tc.ORDER_STATE_PLACED, APP_MAGIC, 0, 0,
        3, 1.0, 1.0, 1.0, 0, 0, 1.1, 0, "EURUSD", "tc:pend", "",
    )  # fmt: skip
    placed = find_request(
        "pend", {"action": tc.TRADE_ACTION_PENDING}, TerminalTrades((pending,), (), (), ())
    )
    assert (placed.outcome, placed.order) == (Outcome.PLACED, 8)


def test_journal_survives_a_new_process_view(tmp_path: Path) -> None:
    path = tmp_path / "in-flight.json"
    journal = InFlightJournal(path)
    journal.add(InFlight("abc", "sim", {"action": 1, "price": 1.5}, 123, "open"))
    journal.add(InFlight("def", "other", {"action": 1}, 124, "open"))
    again = InFlightJournal(path)  # what a restarted app reads
    assert [e.request_id for e in again.entries("sim")] == ["abc"]
    assert again.entries("sim")[0].request == {"action": 1, "price": 1.5}
    again.resolve("abc")
    assert [e.request_id for e in InFlightJournal(path).entries()] == ["def"]
    path.write_text("{broken")
    assert len(InFlightJournal(path)) == 0
    assert path.with_name(path.name + ".damaged").exists()
