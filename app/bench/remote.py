"""``trading-client bench remote``: capture through a remote terminal against the native path.

The same simulated market twice in one run: **native**, the terminal loaded in each
worker process (what the real ``MetaTrader5`` module is on Windows), and **remote**, the
workers talking over RPyC to ``trading-client terminal serve`` in another process (what
``mt5linux`` under Wine is on Linux). Per path:

* ``full_speed``: the pool and collector (no delivery) under an offered rate above what
  either path takes: captured ticks/s sustained over ``--seconds`` after a warm-up;
* ``fixed_rate``: 2,000 ticks/s per symbol; latency from a tick's time to the collector
  receiving it (p50/p99: the poll interval, the terminal call, the pipe), and the
  terminal call alone — one poll as the worker makes it, called from this process —
  from the poll to the ticks received (p50/p99).

``added`` is remote minus native. Ticks are stamped in UTC on both paths (the server
is told so), so no server-time conversion enters the latency. Progress goes to stderr,
each phase has a deadline, and a phase that fails is listed under ``"failed"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, Final

import psutil

from app.bench.harness import PhaseError, Progress, Settings, run_phase, server_process
from app.bench.runs import WARMUP_S, _percentiles, measure, running
from app.collector import SequencedBatch
from app.config import DEFAULT_SYMBOLS, ClientConfig
from app.monitor.histogram import LatencyHistogram
from app.servertime import UTC_ZONE
from app.terminal.api import MT5Api
from app.terminal.constants import COPY_TICKS_ALL
from app.terminal.remote import RemoteTerminal
from app.terminal.simulated import SimulatedTerminal

#: Offered ticks/s per symbol at full speed: above what either path takes here.
FULL_RATE: Final = 200_000
#: Per symbol at fixed rate: 10,000 ticks/s over the five default symbols.
FIXED_RATE: Final = 2_000
SEED: Final = 42
#: Terminal calls timed per path for the call latency (one symbol, one poll each).
CALLS: Final = 2_000

PATHS: Final = ("native", "remote")


def _config(rate: int, port: int | None) -> ClientConfig:
    terminal: dict[str, Any] = {
        "rates": dict.fromkeys(DEFAULT_SYMBOLS, float(rate)),
        "seed": SEED,
        "server_time_zone": "UTC",
        # Every symbol ticks, also at the weekend (the server side is started the same way).
        "market_hours": "always",
    }
    if port is not None:
        terminal.update(kind="remote", port=port, name="remote")
    return ClientConfig.model_validate(
        {
            "terminals": [terminal],
            "backend": {"enabled": False},
            "backfill": {"enabled": False},
            "monitor": {"enabled": False},
        }
    )


class _ToCollector:
    """Tick time → the collector sequenced it, per batch (oldest tick), while ``on``."""

    def __init__(self) -> None:
        self.hist = LatencyHistogram()
        self.on = False

    def __call__(self, item: SequencedBatch) -> None:
        if self.on and len(item.batch.ticks):
            age = time.time() - int(item.batch.ticks["time_msc"][0]) / 1000.0
            self.hist.record_many([max(age, 1e-6)])


def _call_latency(api: MT5Api, seconds: float) -> dict[str, float]:
    """One poll as the worker makes it (from the current second), timed from the call to
    the ticks in hand; blocking, run in a thread."""
    hist = LatencyHistogram()
    end = time.monotonic() + seconds
    calls = 0
    while calls < CALLS and time.monotonic() < end:
        began = time.perf_counter()
        ticks = api.copy_ticks_from("EURUSD", int(time.time()), 10_000, COPY_TICKS_ALL)
        hist.record_many([max(time.perf_counter() - began, 1e-9)])
        if ticks is None:
            raise PhaseError(f"copy_ticks_from failed: {api.last_error()}")
        calls += 1
        time.sleep(0.002)  # the worker's poll interval
    return _percentiles(hist)


@contextlib.asynccontextmanager
async def _terminal(remote: bool, rate: int, settings: Settings) -> AsyncIterator[int | None]:
    """The port of a ``terminal serve`` at ``rate`` (the rates are the server's), or None
    for the native path."""
    if not remote:
        yield None
        return
    args = ("app", "terminal", "serve", "--port", "0", "--seed", str(SEED), "--rate", str(rate))
    async with server_process(
        "terminal server",
        settings.startup_timeout,
        *args,
        "--server-time-zone",
        "UTC",
        "--market-hours",
        "always",
    ) as line:
        try:
            yield int(line.split(" on ", 1)[1].split()[0].rsplit(":", 1)[1])
        except (IndexError, ValueError):
            raise PhaseError(f"unexpected line from terminal serve: {line!r}") from None


async def _path(name: str, remote: bool, settings: Settings, progress: Progress) -> Any:
    async with (
        _terminal(remote, FULL_RATE, settings) as port,
        running(
            _config(FULL_RATE, port), settings, progress, f"{name} full speed", need_link=False
        ) as rt,
    ):
        full = await measure(rt, settings.seconds)
    lat = _ToCollector()
    async with (
        _terminal(remote, FIXED_RATE, settings) as port,
        running(
            _config(FIXED_RATE, port), settings, progress, f"{name} fixed rate", need_link=False
        ) as rt,
    ):
        rt.collector.subscribe(lat)
        await asyncio.sleep(WARMUP_S)
        lat.on = True
        await asyncio.sleep(settings.seconds)
        lat.on = False
        api: MT5Api
        if port is None:
            # Stamped in UTC like the served one: the poll asks from the current second.
            api = SimulatedTerminal(
                SEED,
                rates=dict.fromkeys(DEFAULT_SYMBOLS, float(FIXED_RATE)),
                server_time_zone=UTC_ZONE,
            )
        else:
            api = RemoteTerminal("127.0.0.1", port)
        if not api.initialize(timeout=10_000):
            raise PhaseError(f"initialize failed: {api.last_error()}")
        try:
            call = await asyncio.to_thread(_call_latency, api, settings.seconds)
        finally:
            api.shutdown()
    return {
        "captured_ticks_per_s": full["captured_ticks_per_s"],
        "offered_ticks_per_s": full["offered_ticks_per_s"],
        "rss_mb_workers_total": full["rss_mb_workers_total"],
        "tick_to_collector_ms": _percentiles(lat.hist),
        "poll_to_received_ms": call,
    }


async def bench_remote(settings: Settings, progress: Progress | None = None) -> dict[str, Any]:
    """Both paths in one run; the document lists what failed under ``"failed"``."""
    progress = progress or Progress()
    failed: list[str] = []
    figures: dict[str, Any] = {}
    deadline = 2 * settings.run_deadline()
    for name in PATHS:

        async def work(name: str = name) -> Any:
            return await _path(name, name == "remote", settings, progress)

        figures[name] = await run_phase(name, deadline, work, progress, failed)
    return _document(settings, figures, failed)


def _added(native: Any, remote: Any, key: str) -> dict[str, float] | None:
    if native is None or remote is None:
        return None
    return {p: round(remote[key][p] - native[key][p], 3) for p in ("p50", "p99")}


def _document(settings: Settings, figures: dict[str, Any], failed: list[str]) -> dict[str, Any]:
    native, remote = figures.get("native"), figures.get("remote")
    ratio = None
    if native and remote and native["captured_ticks_per_s"]:
        ratio = round(remote["captured_ticks_per_s"] / native["captured_ticks_per_s"], 3)
    return {
        "benchmark": "remote",
        "cpus": psutil.cpu_count(),
        "seconds_per_phase": settings.seconds,
        "failed": failed,
        "native": native,
        "remote": remote,
        "remote_to_native_throughput": ratio,
        "added_tick_to_collector_ms": _added(native, remote, "tick_to_collector_ms"),
        "added_poll_to_received_ms": _added(native, remote, "poll_to_received_ms"),
    }
