"""AccountBook through a real worker: versions move only on change, trades show at
once, live P/L agrees with the broker's own profit formula at the live price."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.runtime import Runtime
from app.terminal.simulated import SimulatedTerminal
from app.terminal.trade_constants import ORDER_TYPE_BUY
from app.trading.intent import Action, OrderIntent, Origin, Outcome, Side
from tests.conftest import wait_until
from tests.trading.conftest import load_settings


async def test_book_versions_trades_and_live_profit(tmp_path: Path) -> None:
    config = load_settings(tmp_path)
    runtime = Runtime(config)
    await runtime.start()
    try:
        trading = runtime.trading
        assert trading is not None
        book = trading.book("sim")
        first = await book.refresh()
        assert first.account is not None
        assert first.positions == ()
        again = await book.refresh()
        assert again.version == first.version  # nothing changed: no redraw
        report = await trading.router.execute(
            OrderIntent(Action.OPEN, "EURUSD", Side.BUY, 0.4, Origin.MANUAL)
        )
        assert report.outcome is Outcome.EXECUTED, report
        # The trade refreshes the book at once (no waiting for the period).
        await wait_until(lambda: len(book.snapshot().positions) == 1, 10, "the position")
        snap = book.snapshot()
        assert snap.version > first.version
        assert snap.net_volume == {"EURUSD": pytest.approx(0.4)}
        pos = snap.positions[0]
        assert (pos.ticket, pos.volume) == (report.position, 0.4)
        # Live P/L at the last captured bid, against the broker's own formula.
        await wait_until(lambda: runtime._last_quote("EURUSD") is not None, 10, "a live price")
        live = book.live_profit()[pos.ticket]
        quote = runtime._last_quote("EURUSD")
        assert quote is not None
        truth = SimulatedTerminal.from_spec(config.terminals[0].to_spec(None))
        assert truth.initialize()
        expected = truth.order_calc_profit(ORDER_TYPE_BUY, "EURUSD", 0.4, pos.price_open, quote[0])
        assert expected is not None
        assert live == pytest.approx(expected, abs=0.011)
    finally:
        await runtime.stop()


async def test_quick_orders_are_judged_on_the_account_after_the_previous_one(
    tmp_path: Path,
) -> None:
    """Two orders in a row: the second's risk check sees the first's position (the book
    is read again after a trade), so a one-position limit holds without waiting."""
    runtime = Runtime(load_settings(tmp_path, risk={"max_open_positions": 1}))
    await runtime.start()
    try:
        trading = runtime.trading
        assert trading is not None
        first, second = await asyncio.gather(
            *(
                trading.router.execute(OrderIntent(Action.OPEN, s, Side.BUY, 0.1, Origin.CLI))
                for s in ("EURUSD", "EURUSD")
            )
        )
        assert first.outcome is Outcome.EXECUTED, first
        assert second.outcome is Outcome.REFUSED, second
        assert second.message.endswith("would pass the limit of 1")
        positions = await runtime.pool.call("sim", "positions_get", 10)
        assert [p.ticket for p in positions] == [first.position]
    finally:
        await runtime.stop()
