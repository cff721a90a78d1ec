"""Starting worker processes: off the event loop, and never an orphan left behind.

``Process.start()`` (spawn, or a fork from the fork server) is measured where it runs,
by a wrapper around the real one; whether a started process is gone is asked of the OS
(psutil), not of the pool.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from multiprocessing.process import BaseProcess

import psutil
import pytest

from app.config import ClientConfig
from app.connector import ConnectorPool, WorkerState
from app.connector.handoff import Handoff
from app.connector.process_start import worker_context
from app.runtime import plan_workers
from app.ticks import TickBatch
from tests.conftest import wait_until

pytestmark = pytest.mark.slow

SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY"]
#: The loop-lag probe's timer.
PROBE_S = 0.01
#: How long a start is made to take in the loop-lag test (as one did under load).
SLOW_START_S = 0.5


class Starts:
    """Every ``Process.start()`` of the test: its process, and when and how long it ran.

    ``hold`` makes each start that much slower (a stack sampler saw ~0.5 s per start in
    the window on a loaded 2-core machine; a bare one takes a few ms, too little to tell a
    stall from the machine's noise); a cleared ``gate`` holds every start until it is set
    (a start that is certainly in flight).
    """

    def __init__(self) -> None:
        self.procs: list[BaseProcess] = []
        self.durations: list[float] = []
        self.returned_at: list[float] = []
        self.hold = 0.0
        self.gate = threading.Event()
        self.gate.set()
        self.at_gate = 0
        self.lock = threading.Lock()


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> Iterator[Starts]:
    record = Starts()
    kind = worker_context().Process  # spawned, or forked from the fork server
    real_start = kind.start

    def observed_start(self: BaseProcess) -> None:
        t0 = time.perf_counter()
        with record.lock:
            record.at_gate += 1
        record.gate.wait(60)
        time.sleep(record.hold)
        real_start(self)
        record.durations.append(time.perf_counter() - t0)
        record.returned_at.append(time.monotonic())
        record.procs.append(self)

    monkeypatch.setattr(kind, "start", observed_start)
    yield record
    record.gate.set()
    for proc in record.procs:  # a failed test must not leave workers behind either
        if proc.is_alive():
            proc.kill()
            proc.join(10)


def make_pool() -> ConnectorPool:
    config = ClientConfig.model_validate(
        {
            "terminals": [
                {
                    "symbols": SYMBOLS,
                    "rates": dict.fromkeys(SYMBOLS, 100.0),
                    "market_hours": "always",
                }
            ],
            "pool": {"size": len(SYMBOLS)},
            "backend": {"enabled": False},
        }
    )
    return ConnectorPool(plan_workers(config), Handoff[TickBatch](1024))


def still_there(pids: list[int | None]) -> list[int]:
    """Those of ``pids`` that are still children of this process, zombies included (a
    killed but unreaped worker counts: it still holds its pid)."""
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    return [pid for pid in pids if pid in children]


def supervisors() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("supervise-worker-")]


async def test_the_loop_runs_on_while_workers_start(starts: Starts) -> None:
    """A probe timer every 10 ms: how late it fires while three workers start stays well
    under one start's duration (on the loop, the three starts were one stall of their
    sum: the supervisors reach them in the same loop iteration)."""
    starts.hold = SLOW_START_S
    pool = make_pool()
    lags: list[float] = []

    async def probe() -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(PROBE_S)
            lags.append(time.perf_counter() - t0 - PROBE_S)

    prober = asyncio.create_task(probe())
    await wait_until(lambda: len(lags) > 1, 10, "the probe to run")
    try:
        await pool.start()
        await wait_until(lambda: len(starts.durations) == 3, 60, "three worker starts")
        await asyncio.sleep(2 * PROBE_S)  # a lag that ends only now is counted too
    finally:
        prober.cancel()
        await pool.stop()
    spawn = min(starts.durations)
    assert max(lags) < spawn / 2, (
        f"the loop stalled {max(lags) * 1000:.0f} ms while a start took {spawn * 1000:.0f} ms"
    )
    assert not still_there([p.pid for p in starts.procs])


async def test_cancelled_while_starting_leaves_no_worker(starts: Starts) -> None:
    """The loop shutting down cancels the supervisors while their starts run on threads:
    each process still comes into being, and is killed and reaped at once."""
    starts.gate.clear()
    pool = make_pool()
    await pool.start()
    await wait_until(lambda: starts.at_gate == 3, 30, "three starts in flight")
    tasks = supervisors()
    assert len(tasks) == 3
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert all(t.cancelled() for t in tasks)
    starts.gate.set()
    await wait_until(lambda: len(starts.procs) == 3, 60, "the three starts to finish")
    pids = [p.pid for p in starts.procs]
    await wait_until(lambda: not still_there(pids), 30, "the started workers to be reaped")
    assert all(p.exitcode == -signal.SIGKILL for p in starts.procs)


async def test_cancelled_while_running_leaves_no_worker(starts: Starts) -> None:
    pool = make_pool()
    await pool.start()
    await wait_until(
        lambda: all(w.pid is not None for w in pool.health()), 60, "three running workers"
    )
    tasks = supervisors()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    pids = [p.pid for p in starts.procs]
    await wait_until(lambda: not still_there(pids), 30, "the workers to be reaped")


async def test_stop_while_starting_stops_every_worker(starts: Starts) -> None:
    """``stop()`` during the starts waits for them and stops what they started."""
    starts.gate.clear()
    pool = make_pool()
    await pool.start()
    await wait_until(lambda: starts.at_gate == 3, 30, "three starts in flight")
    stopping = asyncio.create_task(pool.stop())
    starts.gate.set()
    await stopping
    assert len(starts.procs) == 3
    assert not still_there([p.pid for p in starts.procs])
    assert all(w.state is WorkerState.STOPPED for w in pool.health())
