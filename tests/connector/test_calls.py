"""Calls of the terminal API through a real worker process (the trading path's pipe).

The answers are compared with the simulated terminal's own answers in this process
(its market is a pure function of seed, symbol and time), so a call that crossed the
pipe must come back as the same named tuple with the same fields.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.config import ClientConfig
from app.connector.calls import CallTimeout, NotConnected, TerminalCallError, WorkerGone
from app.runtime import Runtime
from app.terminal.faults import FaultMode, write_fault
from app.terminal.simulated import SimulatedTerminal
from app.terminal.types import AccountInfo, SymbolInfo, Tick
from tests.conftest import wait_until


def _config(control: Path, *, workers: int = 2, stall_s: float = 30) -> ClientConfig:
    return ClientConfig.model_validate(
        {
            "terminals": [
                {
                    "name": "sim",
                    "kind": "simulated",
                    "symbols": ["EURUSD", "GBPUSD"],
                    "market_hours": "always",
                    "control_file": str(control),
                }
            ],
            "pool": {
                "size": workers,
                "stall_timeout_s": stall_s,
                "backoff": {"initial_s": 0.2, "maximum_s": 0.5},
            },
            "backend": {"enabled": False},
            "monitor": {"enabled": False},
            # Only the test's own calls in the pipes (no account book refreshing).
            "trading": {"enabled": False},
        }
    )


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    rt = Runtime(_config(tmp_path / "faults.json"))
    await rt.start()
    try:
        # Both logged in: which one serves a terminal's calls is then deterministic.
        await wait_until(
            lambda: all(w.state == "streaming" for w in rt.pool.health()), 60, "both workers"
        )
        yield rt
    finally:
        write_fault(tmp_path / "faults.json", FaultMode.OK)
        await rt.stop()


async def test_round_trip_returns_the_terminals_named_tuples(runtime: Runtime) -> None:
    pool = runtime.pool
    account = await pool.call("sim", "account_info", 30)
    info = await pool.call("sim", "symbol_info", 5, "EURUSD")
    tick = await pool.call("sim", "symbol_info_tick", 5, symbol="GBPUSD")
    # The lowest-numbered connected worker serves a terminal's calls.
    assert pool.serving_worker("sim") == 1
    truth = SimulatedTerminal()
    assert truth.initialize()
    assert isinstance(account, AccountInfo)
    assert account == truth.account_info()
    assert isinstance(info, SymbolInfo)
    expected = truth.symbol_info("EURUSD")
    assert expected is not None
    assert (info.digits, info.point, info.filling_mode) == (
        expected.digits,
        expected.point,
        expected.filling_mode,
    )
    assert isinstance(tick, Tick)
    assert tick.bid < tick.ask
    # By worker id too.
    assert isinstance(await pool.call(2, "account_info", 5), AccountInfo)


async def test_refused_and_failed_calls_say_why(runtime: Runtime) -> None:
    pool = runtime.pool
    with pytest.raises(ValueError, match="not callable"):
        await pool.call("sim", "initialize", 5)
    with pytest.raises(TerminalCallError) as failed:
        await pool.call("sim", "symbol_info", 30, "NOSUCH")
    assert failed.value.code != 0
    with pytest.raises(NotConnected):
        await pool.call("other-terminal", "account_info", 0.1)


async def _stall(runtime: Runtime, control: Path) -> None:
    """Stall the terminal and wait until worker 1 is in it (silent: no ticks, no heartbeat)."""
    write_fault(control, FaultMode.STALL)
    slot = runtime.pool._slots[1]
    await wait_until(lambda: time.monotonic() - slot.last_message_at > 0.3, 10, "worker 1 to hang")


async def test_timeout_then_no_resend(runtime: Runtime, tmp_path: Path) -> None:
    pool = runtime.pool
    await pool.call("sim", "account_info", 30)  # connected
    await _stall(runtime, tmp_path / "faults.json")
    started = time.monotonic()
    with pytest.raises(CallTimeout):
        await pool.call("sim", "account_info", 0.5)
    assert time.monotonic() - started < 5
    slot = pool._slots[1]
    assert len(slot.calls) == 0  # forgotten: a late reply is dropped, nothing re-sent
    write_fault(tmp_path / "faults.json", FaultMode.OK)
    # The same worker answers the next call (its late reply to the first one is ignored).
    assert isinstance(await pool.call("sim", "account_info", 30), AccountInfo)


async def test_worker_killed_while_a_call_is_pending(runtime: Runtime, tmp_path: Path) -> None:
    pool = runtime.pool
    await pool.call("sim", "account_info", 30)
    pid = next(w.pid for w in pool.health() if w.worker_id == 1)
    assert pid is not None
    await _stall(runtime, tmp_path / "faults.json")
    pending = asyncio.create_task(pool.call("sim", "account_info", 60))
    await wait_until(lambda: len(pool._slots[1].calls) == 1, 10, "the call to be sent")
    started = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerGone):
        await pending
    assert time.monotonic() - started < 10  # told at once, not after the 60 s timeout
    write_fault(tmp_path / "faults.json", FaultMode.OK)
    # Worker 2 serves the terminal while worker 1 is restarted; nothing was re-sent.
    assert isinstance(await pool.call("sim", "account_info", 30), AccountInfo)
