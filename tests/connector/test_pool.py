"""The pool with real worker processes on the simulated terminal.

These tests kill, stall and disconnect real processes and then compare what was
captured with what the terminal's (deterministic) history holds for the same span.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import threading
import time
import zoneinfo
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from app.collector import SequencedBatch
from app.config import ClientConfig, TerminalConfig
from app.connector import WorkerState
from app.connector import pool as pool_module
from app.runtime import Runtime
from app.terminal.market import DEFAULT_PROFILES, Market
from app.ticks import TickArray
from tests.conftest import wait_until
from tests.processes import mp_children

pytestmark = pytest.mark.slow

SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD"]


def make_config(*terminals: TerminalConfig, size: int = 5) -> ClientConfig:
    return ClientConfig.model_validate(
        {
            # The pool is tested against a market that trades 24/7, whatever the day.
            "terminals": [
                {"market_hours": "always", **t.model_dump(exclude_unset=True)} for t in terminals
            ],
            "pool": {
                "size": size,
                "stall_timeout_s": 3,
                "connect_timeout_s": 60,
                "backoff": {"initial_s": 0.2, "maximum_s": 1.0},
            },
            "cache": {"ticks_per_symbol": 1_000_000},
            "backend": {"enabled": False},
        }
    )


class Recorder:
    """Everything the collector fanned out, per symbol, in arrival order."""

    def __init__(self) -> None:
        self.batches: dict[str, list[TickArray]] = defaultdict(list)
        self.seqs: list[int] = []
        #: Tick→collector latency of every batch, as the monitor measures it.
        self.latencies: list[float] = []

    def __call__(self, item: SequencedBatch) -> None:
        self.seqs.append(item.seq)
        self.batches[item.batch.symbol].append(item.batch.ticks)
        if not item.history:
            self.latencies.append(item.received_at - int(item.batch.ticks["time_msc"][0]) / 1000)

    def ticks(self, symbol: str) -> TickArray:
        return np.concatenate(self.batches[symbol])

    def count(self, symbol: str) -> int:
        return sum(len(b) for b in self.batches[symbol])


@pytest.fixture
async def started() -> AsyncIterator[list[Runtime]]:
    """Runtimes a test starts; always stopped, and no worker process may outlive them."""
    runtimes: list[Runtime] = []
    yield runtimes
    for rt in runtimes:
        await rt.stop()
    await wait_until(lambda: not live_workers(), 30, "worker processes to exit")


def live_workers() -> list[psutil.Process]:
    """Worker processes of this test process (the resource tracker and the fork server
    live on, by design)."""
    return mp_children(psutil.Process())


async def start(
    runtimes: list[Runtime], config: ClientConfig, start_msc: int
) -> tuple[Runtime, Recorder]:
    rt = Runtime(config, start_msc=start_msc)
    rec = Recorder()
    rt.collector.subscribe(rec)
    runtimes.append(rt)
    await rt.start()
    return rt, rec


def assert_equals_terminal_history(
    rec: Recorder, symbol: str, market: Market, start_msc: int
) -> int:
    got = rec.ticks(symbol)
    last = int(got["time_msc"][-1])
    expected = market.ticks_range(symbol, start_msc, last + 1)
    # The newest millisecond may have been cut by a poll's count: whatever is missing
    # must lie exactly there, and everything before it must match tick for tick.
    assert len(got) <= len(expected)
    assert np.all(expected["time_msc"][len(got) :] == last)
    assert np.array_equal(got, expected[: len(got)]), f"{symbol}: captured stream differs"
    return len(got)


def now_msc() -> int:
    return int(time.time() * 1000)


@pytest.mark.parametrize("readers", ["loop", "threads"])
async def test_sigkilled_worker_restarts_and_the_stream_has_no_gap_and_no_double(
    started: list[Runtime], readers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pipes are read on the loop where it can (asyncio's selector loop), else by a
    # thread per worker (Windows, the window's qasync loop): both keep the same promise.
    if readers == "threads":
        monkeypatch.setattr(pool_module, "loop_reader_usable", lambda loop, conn: False)
    rates = {"EURUSD": 3000.0, "GBPUSD": 500.0, "USDJPY": 500.0, "XAUUSD": 500.0, "BTCUSD": 500.0}
    config = make_config(TerminalConfig(symbols=SYMBOLS, rates=rates, seed=7))
    start_msc = now_msc()
    rt, rec = await start(started, config, start_msc)

    def states() -> list[WorkerState]:
        return [w.state for w in rt.pool.health()]

    await wait_until(
        lambda: all(s is WorkerState.STREAMING for s in states()), 90, "5 streaming workers"
    )
    await wait_until(lambda: all(rec.count(s) > 100 for s in SYMBOLS), 30, "ticks on every symbol")
    reader_threads = [t for t in threading.enumerate() if t.name.startswith("read-worker-")]
    assert len(reader_threads) == (5 if readers == "threads" else 0)
    # The simulated server keeps ny-close time (GMT+3 while New York is on summer time).
    summer = datetime.datetime.now(zoneinfo.ZoneInfo("America/New_York")).dst()
    for w in rt.pool.health():
        assert (w.server_time_zone, w.server_offset_s) == (
            "ny-close",
            3 * 3600 if summer else 2 * 3600,
        )
    # Ticks are UTC after the worker: their latency is the pipeline's, not the offset.
    assert min(rec.latencies) >= 0
    assert max(rec.latencies) < 30  # seconds on a busy machine, never the 2-3 h offset
    before = {w.worker_id: w for w in rt.pool.health()}
    victim = next(w for w in before.values() if "EURUSD" in w.symbols)
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)

    others_left_streaming: list[str] = []

    def restarted() -> bool:
        health = {w.worker_id: w for w in rt.pool.health()}
        for wid, w in health.items():
            if wid != victim.worker_id and (
                w.state is not WorkerState.STREAMING or w.pid != before[wid].pid
            ):
                others_left_streaming.append(f"worker {wid}: {w.state} pid {w.pid}")
        v = health[victim.worker_id]
        return v.state is WorkerState.STREAMING and v.pid not in (None, victim.pid)

    await wait_until(restarted, 60, "the killed worker to stream again")
    assert others_left_streaming == []
    v = next(w for w in rt.pool.health() if w.worker_id == victim.worker_id)
    assert v.reconnects == 1
    assert all(w.reconnects == 0 for w in rt.pool.health() if w.worker_id != victim.worker_id)
    # Let the restarted worker capture well past the moment of the kill.
    resumed_from = rec.count("EURUSD")
    await wait_until(lambda: rec.count("EURUSD") > resumed_from + 3000, 30, "more EURUSD ticks")
    await rt.stop()

    market = Market(7, DEFAULT_PROFILES, rates)
    counts = {s: assert_equals_terminal_history(rec, s, market, start_msc) for s in SYMBOLS}
    assert counts["EURUSD"] > 3000
    assert rec.seqs == list(range(1, len(rec.seqs) + 1))
    assert rt.collector.stats.stale_dropped == 0


async def test_stalled_terminal_is_killed_and_restarted_while_another_keeps_streaming(
    started: list[Runtime], tmp_path: Path
) -> None:
    control = tmp_path / "faults.json"
    control.write_text(json.dumps({"mode": "ok"}))
    config = make_config(
        TerminalConfig(
            name="flaky", symbols=["EURUSD"], rates={"EURUSD": 200}, control_file=control
        ),
        TerminalConfig(name="steady", symbols=["GBPUSD"], rates={"GBPUSD": 200}),
        size=2,
    )
    start_msc = now_msc()
    rt, rec = await start(started, config, start_msc)
    health = rt.pool.health
    await wait_until(
        lambda: all(w.state is WorkerState.STREAMING for w in health()), 90, "streaming"
    )
    flaky = next(w for w in health() if w.terminal == "flaky")
    control.write_text(json.dumps({"mode": "stall"}))
    await wait_until(
        lambda: (
            health()[flaky.worker_id - 1].state is WorkerState.STALLED
            or health()[flaky.worker_id - 1].reconnects >= 1
        ),
        30,
        "the stall to be detected",
    )
    assert "did not answer" in health()[flaky.worker_id - 1].last_error_text
    control.write_text(json.dumps({"mode": "ok"}))
    await wait_until(
        lambda: (
            health()[flaky.worker_id - 1].state is WorkerState.STREAMING
            and health()[flaky.worker_id - 1].pid != flaky.pid
        ),
        60,
        "the stalled worker to stream again",
    )
    steady = next(w for w in health() if w.terminal == "steady")
    assert steady.reconnects == 0
    mark = rec.count("EURUSD")
    await wait_until(lambda: rec.count("EURUSD") > mark + 200, 30, "EURUSD after the stall")
    await rt.stop()
    market = Market(42, DEFAULT_PROFILES, {"EURUSD": 200, "GBPUSD": 200})
    for sym in ("EURUSD", "GBPUSD"):
        assert_equals_terminal_history(rec, sym, market, start_msc)


async def test_disconnect_reports_the_mt5_error_and_reconnects_when_the_terminal_returns(
    started: list[Runtime], tmp_path: Path
) -> None:
    control = tmp_path / "faults.json"
    control.write_text(json.dumps({"mode": "ok"}))
    config = make_config(
        TerminalConfig(symbols=["XAUUSD"], rates={"XAUUSD": 300}, control_file=control), size=1
    )
    start_msc = now_msc()
    rt, rec = await start(started, config, start_msc)
    await wait_until(lambda: rt.pool.health()[0].state is WorkerState.STREAMING, 90, "streaming")
    await wait_until(lambda: rec.count("XAUUSD") > 50, 30, "first ticks")
    control.write_text(json.dumps({"mode": "disconnect"}))
    await wait_until(lambda: rt.pool.health()[0].last_error_code == -10004, 30, "the IPC error")
    w = rt.pool.health()[0]
    assert "No IPC connection" in w.last_error_text
    assert w.state in (WorkerState.BACKING_OFF, WorkerState.CONNECTING)
    control.write_text(json.dumps({"mode": "ok"}))
    await wait_until(
        lambda: (
            rt.pool.health()[0].state is WorkerState.STREAMING
            and rt.pool.health()[0].reconnects >= 1
        ),
        60,
        "reconnect after the terminal returns",
    )
    mark = rec.count("XAUUSD")
    await wait_until(lambda: rec.count("XAUUSD") > mark + 100, 30, "ticks after reconnect")
    await rt.stop()
    assert_equals_terminal_history(
        rec, "XAUUSD", Market(42, DEFAULT_PROFILES, {"XAUUSD": 300}), start_msc
    )


async def test_authorization_failure_fails_the_worker_with_the_mt5_code_and_no_retry_storm(
    started: list[Runtime], tmp_path: Path
) -> None:
    control = tmp_path / "faults.json"
    control.write_text(json.dumps({"mode": "auth_fail"}))
    config = make_config(
        TerminalConfig(symbols=["EURUSD"], login=12345, server="Sim-Demo", control_file=control),
        size=1,
    )
    rt, _ = await start(started, config, now_msc())

    def failed_and_gone() -> bool:
        w = rt.pool.health()[0]
        return w.state is WorkerState.FAILED and w.pid is None and w.reconnects >= 1

    await wait_until(failed_and_gone, 60, "the failed state, with the worker process gone")
    w = rt.pool.health()[0]
    assert w.last_error_code == -6
    assert "Authorization failed" in w.last_error_text
    assert w.reconnects == 1
    assert w.pid is None
    # A user's "reconnect" after fixing the account starts it again.
    control.write_text(json.dumps({"mode": "ok"}))
    rt.pool.restart(w.worker_id)
    await wait_until(
        lambda: rt.pool.health()[0].state is WorkerState.STREAMING, 60, "streaming after retry"
    )


async def test_disable_and_enable_a_worker(started: list[Runtime]) -> None:
    config = make_config(
        TerminalConfig(symbols=["EURUSD", "GBPUSD"], rates={"EURUSD": 100, "GBPUSD": 100}), size=2
    )
    start_msc = now_msc()
    rt, rec = await start(started, config, start_msc)
    await wait_until(
        lambda: all(w.state is WorkerState.STREAMING for w in rt.pool.health()), 90, "streaming"
    )
    rt.pool.disable(1)
    await wait_until(
        lambda: (
            rt.pool.health()[0].state is WorkerState.STOPPED and rt.pool.health()[0].pid is None
        ),
        30,
        "worker 1 stopped",
    )
    assert rt.pool.health()[1].state is WorkerState.STREAMING
    rt.pool.enable(1)
    await wait_until(
        lambda: rt.pool.health()[0].state is WorkerState.STREAMING, 60, "worker 1 back"
    )
    assert rt.pool.health()[0].reconnects == 0
    # Re-enabled, it resumes from its cursor: the disabled span is backfilled, not lost.
    mark = rec.count("EURUSD")
    await wait_until(lambda: rec.count("EURUSD") > mark + 50, 30, "EURUSD after re-enable")
    await rt.stop()
    market = Market(42, DEFAULT_PROFILES, {"EURUSD": 100, "GBPUSD": 100})
    for sym in ("EURUSD", "GBPUSD"):
        assert_equals_terminal_history(rec, sym, market, start_msc)
