"""Never an order twice: kill the worker, or the whole app, between ``order_send`` and
its result (the broker's ``stall_after_send`` hook: the order is committed, the answer
never comes). The truth is the broker's own history, read by a fresh simulated terminal
on the same account folder; the fault stays on afterwards, so a re-sent order would
hang and show as a second deal.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from app.runtime import Runtime
from app.terminal.faults import FaultMode, write_fault
from app.terminal.trade_constants import ORDER_TYPE_BUY
from app.trading.inflight import InFlightJournal, default_journal_path
from app.trading.intent import Action, OrderIntent, Origin, Outcome, Side
from tests.conftest import wait_until, wait_until_sync
from tests.trading.conftest import broker_deals, load_settings, write_settings

CLI = [sys.executable, "-m", "app"]


async def test_worker_killed_between_order_send_and_its_result(tmp_path: Path) -> None:
    config = load_settings(tmp_path)
    write_fault(tmp_path / "faults.json", FaultMode.STALL_AFTER_SEND)
    runtime = Runtime(config)
    await runtime.start()
    try:
        trading = runtime.trading
        assert trading is not None
        await runtime.pool.call("sim", "account_info", 60)  # connected
        intent = OrderIntent(Action.OPEN, "EURUSD", Side.BUY, 0.1, Origin.CLI)
        pending = asyncio.create_task(trading.router.execute(intent))
        # The broker has the deal; the worker hangs before answering.
        await wait_until(lambda: len(broker_deals(config, intent.request_id)) == 1, 30, "deal")
        assert [e.request_id for e in trading.journal.entries()] == [intent.request_id]
        pid = next(w.pid for w in runtime.pool.health())
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        report = await asyncio.wait_for(pending, 60)
    finally:
        await runtime.stop()
    deals = broker_deals(config, intent.request_id)
    assert len(deals) == 1, deals  # executed once, never re-sent
    assert report.outcome is Outcome.EXECUTED, report
    assert (report.deal, report.order, report.position) == (
        deals[0].ticket,
        deals[0].order,
        deals[0].position_id,
    )
    assert deals[0].type == ORDER_TYPE_BUY
    assert len(InFlightJournal()) == 0  # the outcome is known: the entry is gone


def test_app_killed_between_order_send_and_its_result(tmp_path: Path) -> None:
    settings = write_settings(tmp_path)
    config = load_settings(tmp_path)
    write_fault(tmp_path / "faults.json", FaultMode.STALL_AFTER_SEND)
    app = subprocess.Popen(
        [*CLI, "trade", "buy", "EURUSD", "0.2", "--config", str(settings)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # The request is in the journal before it is sent, and the broker executed it.
        wait_until_sync(lambda: len(InFlightJournal()) == 1, 60, "the in-flight entry")
        request_id = InFlightJournal().entries()[0].request_id
        wait_until_sync(lambda: len(broker_deals(config, request_id)) == 1, 60, "the deal")
        app.send_signal(signal.SIGKILL)
        app.wait(30)
    finally:
        app.kill()
        app.communicate()
    assert default_journal_path().exists()
    assert InFlightJournal().entries()[0].request_id == request_id
    # Start again: the earlier request is looked up first and reported with its ticket.
    again = subprocess.run(
        [*CLI, "trade", "positions", "--json", "--config", str(settings)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    deals = broker_deals(config, request_id)
    assert len(deals) == 1, deals  # never sent twice
    assert f"earlier request {request_id}: executed" in again.stderr
    assert f"deal {deals[0].ticket}" in again.stderr
    positions = orjson.loads(again.stdout)
    assert [p["ticket"] for p in positions if p["comment"] == f"tc:{request_id}"] == [
        deals[0].position_id
    ]
    assert len(InFlightJournal()) == 0
