"""Capture through ``trading-client terminal serve`` (kind "remote"), with the server
SIGKILLed and started again mid-stream: the stream must equal the terminal's history.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.config import TerminalConfig
from app.connector import WorkerState
from app.runtime import Runtime
from app.terminal.constants import RES_E_INTERNAL_FAIL_CONNECT
from app.terminal.market import DEFAULT_PROFILES, Market
from tests.conftest import wait_until
from tests.connector.test_pool import (
    assert_equals_terminal_history,
    live_workers,
    make_config,
    now_msc,
    start,
)
from tests.terminal.served import ServedTerminal

pytestmark = pytest.mark.slow

SEED, RATE = 23, 400
SYMBOLS = ["EURUSD", "XAUUSD"]


@pytest.fixture
async def runtimes() -> AsyncIterator[list[Runtime]]:
    out: list[Runtime] = []
    yield out
    for rt in out:
        await rt.stop()
    await wait_until(lambda: not live_workers(), 30, "worker processes to exit")


async def test_capture_through_a_served_terminal_survives_the_server_being_killed(
    runtimes: list[Runtime],
) -> None:
    server = ServedTerminal(seed=SEED, rate=RATE).start()
    try:
        remote = TerminalConfig(
            name="wine",
            kind="remote",
            port=server.port,
            symbols=SYMBOLS,
            server_time_zone="UTC",  # as the server is told to stamp (see ServedTerminal)
            request_timeout_s=2,
        )
        config = make_config(remote, size=2)
        config = config.model_copy(
            update={"backfill": config.backfill.model_copy(update={"enabled": False})}
        )
        start_msc = now_msc()
        rt, rec = await start(runtimes, config, start_msc)
        health = rt.pool.health
        await wait_until(
            lambda: all(w.state is WorkerState.STREAMING for w in health()), 90, "streaming"
        )
        await wait_until(lambda: all(rec.count(s) > 200 for s in SYMBOLS), 30, "first ticks")

        server.kill()
        await wait_until(
            lambda: all(w.last_error_code == RES_E_INTERNAL_FAIL_CONNECT for w in health()),
            30,
            "every worker to report the IPC error",
        )
        assert all("No IPC connection" in w.last_error_text for w in health())
        assert all(w.state is not WorkerState.FAILED for w in health())
        down = {s: rec.count(s) for s in SYMBOLS}
        server.start()  # same port, same seed: the same history
        await wait_until(
            lambda: all(w.state is WorkerState.STREAMING and w.reconnects >= 1 for w in health()),
            60,
            "the workers to stream again",
        )
        await wait_until(
            lambda: all(rec.count(s) > down[s] + 2 * RATE for s in SYMBOLS),
            30,
            "ticks from after the restart",
        )
        await rt.stop()
    finally:
        server.stop()
    market = Market(SEED, DEFAULT_PROFILES, dict.fromkeys(DEFAULT_PROFILES, float(RATE)))
    for symbol in SYMBOLS:
        # Every tick from the start, across the outage, tick for tick: no hole, no double.
        assert assert_equals_terminal_history(rec, symbol, market, start_msc) > 2 * RATE
    assert rec.seqs == list(range(1, len(rec.seqs) + 1))
