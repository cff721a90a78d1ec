"""One run of the pipeline in ``bench pipeline``: a started runtime, its progress lines,
and what it captures and acks after a warm-up, with latency histograms and RSS."""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from app.bench.harness import (
    BENCH_CREDENTIAL,
    STOP_TIMEOUT_S,
    PhaseError,
    Progress,
    Settings,
    backend_pid,
    cpu_seconds,
    finish,
    kill,
    rss_mb,
)
from app.config import DEFAULT_SYMBOLS, ClientConfig
from app.monitor.histogram import LatencyHistogram
from app.runtime import Runtime

#: Offered ticks/s per symbol at full speed (and for the capture ceiling): above what the
#: pipeline can take on any machine we run on, so that the figure is its capacity.
FULL_SPEED_RATE: Final = 400_000.0
#: Run before measuring, so that start-up transients (spawn, first connect) are excluded.
WARMUP_S: Final = 1.5


# ------------------------------------------------------------------ the pipeline
def _percentiles(hist: LatencyHistogram) -> dict[str, float]:
    """p50/p99/max in ms of a histogram of seconds (≈1 % buckets)."""
    if not hist.count:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "samples": 0}
    p50, p99 = hist.percentiles([50, 99])
    return {
        "p50": round(p50 * 1000, 3),
        "p99": round(p99 * 1000, 3),
        "max": round(hist.max * 1000, 3),
        "samples": hist.count,
    }


class _Latencies:
    """The link's latency sink: tick time → ack and capture → ack, while ``on``.

    Folded into the monitor's log-bucketed histograms (≈1 % error), not kept per tick:
    at full speed a list of every sample held 150 MB and counted as the app's RSS.
    """

    def __init__(self) -> None:
        self.tick = LatencyHistogram()
        self.capture = LatencyHistogram()
        self.on = False

    def __call__(self, ack_time: float, captured_at: float, times: npt.NDArray[np.int64]) -> None:
        if self.on:
            self.tick.record_many(np.maximum(ack_time - times / 1000.0, 1e-6))
            age = max(ack_time - captured_at, 1e-6)
            self.capture.record_many(np.full(len(times), age))

    def result(self) -> dict[str, dict[str, float]]:
        return {
            "tick_time_to_ack_ms": _percentiles(self.tick),
            "capture_to_ack_ms": _percentiles(self.capture),
        }


def pipeline_config(
    rate_per_symbol: float,
    spool_dir: Path,
    urls: list[str] | None,
    *,
    monitoring: bool = True,
) -> ClientConfig:
    """The benchmark's client settings; ``urls=None`` disables delivery altogether."""
    backend: dict[str, Any] = {"enabled": False}
    if urls is not None:
        bridge, gateway, hub = urls
        backend = {
            "bridge_url": bridge,
            "gateway_url": gateway,
            "hub_url": hub,
            "embedded": "never",
            "client_id": "bench",
            "spool_dir": str(spool_dir),
        }
    return ClientConfig.model_validate(
        {
            # A benchmark loads the pipeline at its rate whatever the day: no weekend.
            "terminals": [
                {
                    "rates": dict.fromkeys(DEFAULT_SYMBOLS, rate_per_symbol),
                    "market_hours": "always",
                }
            ],
            "backend": backend,
            "backfill": {"enabled": False, "state_file": str(spool_dir / "backfill.json")},
            "monitor": {"enabled": monitoring},
        }
    )


def fresh_spool(parent: Path) -> Path:
    """A spool folder of its own for one run: the runtime resumes what an earlier run left
    unacknowledged in its spool folder, which would mix one run's backlog into the next."""
    return Path(tempfile.mkdtemp(prefix="spool-", dir=parent))


def ticks_acked(rt: Runtime) -> int:
    return rt.link.state.ticks_acked if rt.link is not None else 0


def ticks_captured(rt: Runtime) -> int:
    return rt.collector.stats.ticks_total


def _streaming(rt: Runtime) -> int:
    return sum(w.state == "streaming" for w in rt.pool.health())


async def _report(rt: Runtime, name: str, progress: Progress) -> None:
    """One progress line a second: what was captured and acked since the last one."""
    last = time.monotonic(), ticks_captured(rt), ticks_acked(rt)
    while True:
        await asyncio.sleep(1.0)
        now, captured, acked = time.monotonic(), ticks_captured(rt), ticks_acked(rt)
        dt = max(now - last[0], 1e-9)
        workers = rt.pool.health()
        text = f"  {name}: captured {(captured - last[1]) / dt:>11,.0f} ticks/s"
        if rt.link is not None:
            state = rt.link.state
            text += f"  acked {(acked - last[2]) / dt:>11,.0f} ticks/s"
            text += f"  link {'up' if state.connected else 'DOWN'}"
            text += f", backlog {state.backlog_ticks:,} ticks"
        text += f"  workers {_streaming(rt)}/{len(workers)} streaming"
        progress.say(text)
        last = now, captured, acked


@contextlib.asynccontextmanager
async def running(
    config: ClientConfig,
    settings: Settings,
    progress: Progress,
    name: str,
    *,
    latency_sink: _Latencies | None = None,
    need_link: bool = True,
) -> AsyncIterator[Runtime]:
    """A started runtime whose workers all stream (and whose link is up, if
    ``need_link``); stopped on the way out, its worker processes killed if stopping
    takes longer than a minute."""
    rt = Runtime(config, latency_sink=latency_sink, credential=BENCH_CREDENTIAL)
    reporter = asyncio.create_task(_report(rt, name, progress))
    try:
        try:
            async with asyncio.timeout(settings.startup_timeout):
                await rt.start()
                while not (
                    rt.pool.health()
                    and _streaming(rt) == len(rt.pool.health())
                    and (not need_link or (rt.link is not None and rt.link.state.connected))
                ):
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise PhaseError(
                f"the pipeline did not come up within {settings.startup_timeout:g} s"
            ) from None
        yield rt
    finally:
        reporter.cancel()
        pids = [w.pid for w in rt.pool.health() if w.pid]
        if not await finish(rt.stop(), STOP_TIMEOUT_S):
            progress.say(f"  {name}: the runtime did not stop cleanly; killing its workers")
            kill(pids)


async def _loop_lag(worst: list[float], interval: float = 0.05) -> None:
    """The app's event loop blocked longest while measuring (a wake-up this late): a
    stall there holds back capture, delivery and the window alike, and stretches the
    measured span (hence ``measured_s``). Kept in ``worst[0]``, seconds."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(interval)
        worst[0] = max(worst[0], loop.time() - before - interval)


async def measure(
    rt: Runtime, seconds: float, latency_sink: _Latencies | None = None
) -> dict[str, Any]:
    """Captured and acked ticks/s over ``seconds`` after a warm-up, and RSS at the end."""
    await asyncio.sleep(WARMUP_S)
    if latency_sink is not None:
        latency_sink.on = True
    pids: dict[str, int | None] = {"app": None, "bridge": backend_pid()}
    pids.update({f"worker {w.worker_id}": w.pid for w in rt.pool.health() if w.pid})
    if pids["bridge"] is None or rt.link is None:
        del pids["bridge"]
    cpu0 = cpu_seconds(pids)
    t0, c0, a0 = time.perf_counter(), ticks_captured(rt), ticks_acked(rt)
    worst_lag = [0.0]
    lag = asyncio.create_task(_loop_lag(worst_lag))
    await asyncio.sleep(seconds)
    t1, c1, a1 = time.perf_counter(), ticks_captured(rt), ticks_acked(rt)
    cpu1 = cpu_seconds(pids)
    lag.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await lag
    if latency_sink is not None:
        latency_sink.on = False
    workers = {str(w.worker_id): rss_mb(w.pid) for w in rt.pool.health() if w.pid}
    result: dict[str, Any] = {
        "offered_ticks_per_s": sum(sum(t.rates.values()) for t in rt.config.terminals),
        "captured_ticks_per_s": round((c1 - c0) / (t1 - t0)),
        **({"acked_ticks_per_s": round((a1 - a0) / (t1 - t0))} if rt.link is not None else {}),
        "measured_s": round(t1 - t0, 2),
        "loop_lag_max_ms": round(worst_lag[0] * 1000, 1),
        "rss_mb_app": rss_mb(),
        "rss_mb_workers_total": round(sum(workers.values()), 1),
        "rss_mb_workers": workers,
        "cpu_ns_per_tick": _cpu_per_tick(cpu0, cpu1, (a1 - a0) if rt.link is not None else c1 - c0),
    }
    if latency_sink is not None:
        result.update(latency_sink.result())
    return result


def _cpu_per_tick(
    before: dict[str, float], after: dict[str, float], ticks: int
) -> dict[str, float | None]:
    """CPU ns each process spent per tick acked (captured without delivery), and their
    sum: unlike ticks/s, hardly moved by other load on the machine, so runs on a busy
    machine stay comparable, and ``cores / total`` is what the pipeline could reach
    with the machine to itself."""
    if ticks <= 0:
        return {}
    out: dict[str, float | None] = {}
    for name, start in before.items():
        spent = after[name] - start
        out[name] = None if math.isnan(spent) else round(spent / ticks * 1e9)
    workers = [v for k, v in out.items() if k.startswith("worker") and v is not None]
    out["workers"] = sum(workers)
    out["total"] = sum(v for k, v in out.items() if not k.startswith("worker ") and v)
    return out


async def run_pipeline(
    urls: list[str] | None,
    rate_per_symbol: float,
    settings: Settings,
    *,
    progress: Progress,
    name: str,
    spool_dir: Path,
    monitoring: bool = True,
) -> dict[str, Any]:
    config = pipeline_config(rate_per_symbol, fresh_spool(spool_dir), urls, monitoring=monitoring)
    lat = _Latencies() if urls is not None else None
    async with running(
        config, settings, progress, name, latency_sink=lat, need_link=urls is not None
    ) as rt:
        return await measure(rt, settings.seconds, lat)
