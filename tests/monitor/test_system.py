"""System usage against real processes: this one, busy/idle children, loopback traffic."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from app.clock import ManualClock
from app.monitor.system import SystemSample, SystemSampler, WorkerUsage, run_sampler
from tests.conftest import wait_until, wait_until_sync

pytestmark = pytest.mark.slow

MB = 1024 * 1024
#: Holds ~60 MB of touched memory and spins one core until killed.
BUSY_FAT = (
    "import sys\n"
    "buf = bytearray(b'\\x01') * (60 * 1024 * 1024)\n"
    "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
    "while True:\n"
    "    pass\n"
)
#: Sleeps until its stdin is closed (or it is killed).
IDLE = "import sys; sys.stdin.read()"

Spawn = Callable[[str], subprocess.Popen[bytes]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start ``python -c`` children; every one is killed and reaped at teardown."""
    children: list[subprocess.Popen[bytes]] = []

    def _spawn(code: str) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        children.append(child)
        return child

    yield _spawn
    for child in children:
        child.kill()
        child.wait(timeout=30)
        if child.stdin is not None:
            child.stdin.close()


def _sample_until(
    sampler: SystemSampler,
    pids: dict[int, int | None],
    predicate: Callable[[SystemSample], bool],
    what: str,
    timeout: float = 15.0,
) -> SystemSample:
    """Sample (every ~20 ms) until ``predicate`` holds for a sample; return that sample."""
    last: list[SystemSample] = []

    def check() -> bool:
        last[:] = [sampler.sample(pids)]
        return predicate(last[0])

    wait_until_sync(check, timeout=timeout, what=what)
    return last[0]


def test_samples_this_process() -> None:
    sampler = SystemSampler()
    sample = sampler.sample({})
    me = psutil.Process()
    assert sample.workers == {}
    assert sample.rss_bytes > 10 * MB
    assert abs(sample.rss_bytes - me.memory_info().rss) < 50 * MB
    assert sample.threads >= 1
    assert 0.0 <= sample.cpu_percent <= 100.0
    assert sample.process_cpu_percent >= 0.0
    assert abs(sample.time - time.time()) < 60
    # The first sample has nothing to compare network counters to.
    assert sample.net_in_bytes_per_s is None
    assert sample.net_out_bytes_per_s is None
    if sys.platform.startswith("linux"):
        assert sample.open_files is not None


def test_open_files_counts_files_this_process_opens(tmp_path: os.PathLike[str]) -> None:
    sampler = SystemSampler()
    before = sampler.sample({}).open_files
    if before is None:
        pytest.skip("open files are not readable on this platform")
    handles = [open(os.path.join(tmp_path, f"f{i}"), "w") for i in range(5)]  # noqa: SIM115
    try:
        after = sampler.sample({}).open_files
    finally:
        for handle in handles:
            handle.close()
    assert after is not None
    assert after >= before + 5


def test_process_cpu_shows_own_busy_thread() -> None:
    sampler = SystemSampler()
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        sample = _sample_until(
            sampler, {}, lambda s: s.process_cpu_percent > 5 and s.cpu_percent > 0, "own CPU"
        )
    finally:
        stop.set()
        spinner.join()
    assert sample.process_cpu_percent > 5


def test_busy_fat_worker_shows_cpu_and_rss(spawn: Spawn) -> None:
    child = spawn(BUSY_FAT)
    sampler = SystemSampler()
    pids: dict[int, int | None] = {3: child.pid}

    sample = _sample_until(
        sampler,
        pids,
        lambda s: (
            3 in s.workers and s.workers[3].cpu_percent > 0 and s.workers[3].rss_bytes > 50 * MB
        ),
        "worker CPU > 0 and RSS > 50 MB",
    )
    usage = sample.workers[3]
    assert usage.pid == child.pid
    assert usage.threads >= 1
    metrics = sample.as_metrics()
    assert metrics["worker.3.cpu_percent"] == usage.cpu_percent
    assert metrics["worker.3.rss_bytes"] == usage.rss_bytes


def test_killed_worker_is_absent_from_next_sample(spawn: Spawn) -> None:
    dead, alive = spawn(IDLE), spawn(IDLE)
    sampler = SystemSampler()
    pids: dict[int, int | None] = {1: dead.pid, 2: alive.pid}
    assert set(sampler.sample(pids).workers) == {1, 2}

    dead.kill()
    dead.wait(timeout=30)
    sample = sampler.sample(pids)  # the supervisor has not noticed yet: same pid
    assert set(sample.workers) == {2}
    assert "worker.1.cpu_percent" not in sample.as_metrics()
    assert "worker.2.cpu_percent" in sample.as_metrics()
    # And it stays absent, without errors, for as long as the stale pid is passed.
    assert set(sampler.sample(pids).workers) == {2}


@pytest.mark.skipif(os.name != "posix", reason="zombies are a POSIX thing")
def test_unreaped_worker_counts_as_dead(spawn: Spawn) -> None:
    child = spawn(IDLE)
    sampler = SystemSampler()
    pids: dict[int, int | None] = {1: child.pid}
    assert 1 in sampler.sample(pids).workers

    child.kill()  # not waited for: it stays a zombie

    def is_zombie() -> bool:
        try:
            return psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until_sync(is_zombie, timeout=15, what="the killed child to become a zombie")
    assert sampler.sample(pids).workers == {}


def test_restarted_worker_is_followed_to_its_new_pid(spawn: Spawn) -> None:
    first = spawn(IDLE)
    sampler = SystemSampler()
    assert sampler.sample({0: first.pid}).workers[0].pid == first.pid

    first.kill()
    first.wait(timeout=30)
    assert sampler.sample({0: None}).workers == {}  # between processes: no pid

    second = spawn(BUSY_FAT)
    sample = sampler.sample({0: second.pid})
    assert sample.workers[0].pid == second.pid
    assert sample.workers[0].cpu_percent == 0.0  # psutil's first reading of a pid
    _sample_until(
        sampler,
        {0: second.pid},
        lambda s: 0 in s.workers and s.workers[0].cpu_percent > 0,
        "CPU of the restarted worker",
    )


def test_unknown_pid_and_none_are_absent_without_error(spawn: Spawn) -> None:
    child = spawn(IDLE)
    child.kill()
    child.wait(timeout=30)  # reaped: its pid names no process now
    if psutil.pid_exists(child.pid):
        pytest.skip("the pid was reused already")
    sampler = SystemSampler()
    assert sampler.sample({1: None, 2: child.pid}).workers == {}


def _loopback_traffic(total: int) -> None:
    """Push ``total`` bytes through a TCP connection on 127.0.0.1 and read them back."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            peer, _ = server.accept()
            with peer:
                received = 0

                def read() -> None:
                    nonlocal received
                    while received < total:
                        chunk = peer.recv(1 << 20)
                        if not chunk:
                            break
                        received += len(chunk)

                reader = threading.Thread(target=read)
                reader.start()
                client.sendall(b"\x00" * total)
                reader.join(timeout=30)
                assert received == total


def test_network_rates_after_loopback_traffic() -> None:
    sampler = SystemSampler()
    assert sampler.sample({}).net_in_bytes_per_s is None
    _loopback_traffic(8 * MB)
    sample = sampler.sample({})
    assert sample.net_in_bytes_per_s is not None
    assert sample.net_out_bytes_per_s is not None
    assert sample.net_in_bytes_per_s >= 0
    assert sample.net_out_bytes_per_s >= 0
    if sys.platform.startswith("linux"):  # loopback is one of the counted interfaces
        assert sample.net_in_bytes_per_s > 0
        assert sample.net_out_bytes_per_s > 0


def test_network_rate_arithmetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rates are byte deltas over the clock's monotonic span; a backwards counter is None."""
    counters = iter(
        [
            psutil._ntuples.snetio(1000, 5000, 0, 0, 0, 0, 0, 0),  # sent, recv, ...
            psutil._ntuples.snetio(3000, 6000, 0, 0, 0, 0, 0, 0),
            psutil._ntuples.snetio(2000, 7000, 0, 0, 0, 0, 0, 0),  # an interface went away
            psutil._ntuples.snetio(2500, 7100, 0, 0, 0, 0, 0, 0),
        ]
    )
    monkeypatch.setattr(psutil, "net_io_counters", lambda: next(counters))
    clock = ManualClock()
    sampler = SystemSampler(clock=clock)
    assert sampler.sample({}).net_out_bytes_per_s is None
    clock.advance(2.0)
    second = sampler.sample({})
    assert second.time == clock.time()
    assert (second.net_in_bytes_per_s, second.net_out_bytes_per_s) == (500.0, 1000.0)
    clock.advance(1.0)
    third = sampler.sample({})
    assert (third.net_in_bytes_per_s, third.net_out_bytes_per_s) == (None, None)
    clock.advance(0.5)
    fourth = sampler.sample({})
    assert (fourth.net_in_bytes_per_s, fourth.net_out_bytes_per_s) == (200.0, 1000.0)


def test_as_metrics_names() -> None:
    sample = SystemSample(
        time=1.0,
        cpu_percent=12.5,
        process_cpu_percent=40.0,
        rss_bytes=100,
        threads=7,
        open_files=None,
        net_in_bytes_per_s=None,
        net_out_bytes_per_s=3.0,
        workers={
            2: WorkerUsage(pid=20, cpu_percent=1.5, rss_bytes=200, threads=2),
            0: WorkerUsage(pid=10, cpu_percent=0.0, rss_bytes=300, threads=3),
        },
    )
    assert sample.as_metrics() == {
        "system.cpu_percent": 12.5,
        "system.process_cpu_percent": 40.0,
        "system.rss_bytes": 100.0,
        "system.threads": 7.0,
        "system.open_files": None,
        "system.net_in_bytes_per_s": None,
        "system.net_out_bytes_per_s": 3.0,
        "worker.0.cpu_percent": 0.0,
        "worker.0.rss_bytes": 300.0,
        "worker.2.cpu_percent": 1.5,
        "worker.2.rss_bytes": 200.0,
    }


def test_sample_with_five_workers_is_cheap(spawn: Spawn) -> None:
    children = [spawn(IDLE) for _ in range(5)]
    pids: dict[int, int | None] = {i: c.pid for i, c in enumerate(children)}
    sampler = SystemSampler()
    assert len(sampler.sample(pids).workers) == 5
    rounds = 50
    started = time.perf_counter()
    for _ in range(rounds):
        sample = sampler.sample(pids)
    per_sample = (time.perf_counter() - started) / rounds
    assert len(sample.workers) == 5
    # ~1 ms on Linux; the bound only catches something pathological (a blocking call).
    assert per_sample < 0.1, f"{per_sample * 1000:.1f} ms per sample"


async def test_run_sampler_delivers_and_stops_on_cancel(spawn: Spawn) -> None:
    child = spawn(IDLE)
    samples: list[SystemSample] = []
    task = asyncio.create_task(
        run_sampler(SystemSampler(), 0.05, lambda: {7: child.pid}, samples.append)
    )
    await wait_until(lambda: len(samples) >= 3, timeout=15, what="three samples")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert all(7 in s.workers for s in samples)
    assert samples[0].net_in_bytes_per_s is None
    assert samples[-1].net_in_bytes_per_s is not None
    times = [s.time for s in samples]
    assert times == sorted(times)


async def test_run_sampler_survives_failing_callbacks(caplog: pytest.LogCaptureFixture) -> None:
    samples: list[SystemSample] = []
    calls = 0

    def pids() -> dict[int, int | None]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("pool not ready")
        return {}

    def on_sample(sample: SystemSample) -> None:
        if not samples:
            samples.append(sample)
            raise ValueError("first delivery fails")
        samples.append(sample)

    task = asyncio.create_task(run_sampler(SystemSampler(), 0.02, pids, on_sample))
    try:
        await wait_until(lambda: len(samples) >= 3, timeout=15, what="samples after errors")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert "system usage sample failed" in caplog.text


async def test_run_sampler_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval"):
        await run_sampler(SystemSampler(), 0, dict, lambda _: None)
