"""``trading-client bench pipeline``: end-to-end throughput and latency, with its ceiling.

Three measurements in one run, each against a server in *another* process over loopback:

* **raw ceiling** — pre-generated ticks, the link's own encoder and websockets, sent to
  a peer that acks without parsing: the most this machine's loopback and encoder allow;
* **ceiling with parsing** — the same, but the peer validates every message with the
  bridge's own parser (no storage): what any bridge that reads the ticks can reach;
* **full speed** — the whole pipeline (simulated terminal → worker processes →
  collector → bridge link → reference bridge parsing and storing in SQLite → ack) under
  an offered rate above what it can take: acked ticks/s, and its ratio to the ceiling;
* **monitoring on vs off** — full speed again, alternating off/on/off/on, and the cost of
  the monitor's per-batch hot path against an empty call;
* **fixed rate** — the pipeline at 10,000 ticks/s: tick→ack latency percentiles. It runs
  before full speed, so that its RSS is not inflated by the full-speed backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil
from websockets.asyncio.client import connect

from app.clock import SYSTEM_CLOCK
from app.collector import SequencedBatch
from app.config import DEFAULT_SYMBOLS, ClientConfig
from app.monitor.monitor import Monitor
from app.protocol import codec
from app.runtime import Runtime
from app.terminal.market import DEFAULT_PROFILES, Market
from app.ticks import TickBatch


@contextlib.asynccontextmanager
async def server_process(*args: str, lines: int = 1) -> AsyncIterator[list[str]]:
    """Run ``python -m ARGS`` and yield the first ``lines`` lines it prints (its URLs)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        out = []
        for _ in range(lines):
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if not line:
                raise RuntimeError(f"server {' '.join(args)} exited before it was ready")
            out.append(line.decode().strip())
        yield out
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _percentiles(ms: npt.NDArray[np.float64]) -> dict[str, float]:
    if not len(ms):
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "samples": 0}
    p50, p99 = np.percentile(ms, [50, 99])
    return {
        "p50": round(float(p50), 3),
        "p99": round(float(p99), 3),
        "max": round(float(ms.max()), 3),
        "samples": len(ms),
    }


async def raw_ceiling(url: str, seconds: float, batch_ticks: int, window: int) -> float:
    """Acked ticks/s for encoder + websockets alone."""
    market = Market(42, DEFAULT_PROFILES, dict.fromkeys(DEFAULT_SYMBOLS, 200_000.0))
    now = int(time.time() * 1000)
    blocks = []
    for i, sym in enumerate(DEFAULT_SYMBOLS * 8):
        ticks = market.ticks_from(sym, now - 60_000 + i * 1_000, batch_ticks, now)
        blocks.append(codec.Block(sym, ticks))
    async with connect(url, compression=None, max_size=codec.MAX_FRAME_BYTES) as ws:
        await ws.send(codec.encode_hello("bench", "raw", 0), text=True)
        await ws.recv()
        acked, sent, ticks_acked = 0, 0, 0
        room = asyncio.Event()
        room.set()
        done = False

        async def receive() -> None:
            nonlocal acked, ticks_acked
            async for frame in ws:
                acked = codec.decode(frame)["seq"]
                ticks_acked = acked * batch_ticks
                room.set()
                if done and acked == sent:
                    return

        receiver = asyncio.create_task(receive())
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            if sent - acked >= window:
                room.clear()
                await room.wait()
                continue
            sent += 1
            await ws.send(codec.encode_ticks(sent, [blocks[sent % len(blocks)]]), text=True)
        done = True
        await asyncio.wait_for(receiver, 30)
        return ticks_acked / (time.perf_counter() - t0)


class _Latencies:
    def __init__(self) -> None:
        self.tick_ms: list[npt.NDArray[np.float64]] = []
        self.capture_ms: list[npt.NDArray[np.float64]] = []
        self.on = False

    def __call__(self, ack_time: float, captured_at: float, times: npt.NDArray[np.int64]) -> None:
        if self.on:
            self.tick_ms.append((ack_time * 1000 - times).astype(np.float64))
            self.capture_ms.append(np.full(len(times), (ack_time - captured_at) * 1000))

    def result(self) -> dict[str, dict[str, float]]:
        return {
            "tick_time_to_ack_ms": _percentiles(_cat(self.tick_ms)),
            "capture_to_ack_ms": _percentiles(_cat(self.capture_ms)),
        }


def _cat(parts: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    return np.concatenate(parts) if parts else np.zeros(0)


async def run_pipeline(
    urls: list[str],
    rate_per_symbol: float,
    seconds: float,
    spool_dir: Path,
    *,
    monitoring: bool = True,
) -> dict[str, Any]:
    bridge, gateway, hub = urls
    config = ClientConfig.model_validate(
        {
            "terminals": [{"rates": dict.fromkeys(DEFAULT_SYMBOLS, rate_per_symbol)}],
            "backend": {
                "bridge_url": bridge,
                "gateway_url": gateway,
                "hub_url": hub,
                "embedded": "never",
                "client_id": "bench",
                "spool_dir": str(spool_dir),
            },
            "monitor": {"enabled": monitoring},
        }
    )
    lat = _Latencies()
    rt = Runtime(config, latency_sink=lat)
    await rt.start()
    try:
        deadline = time.monotonic() + 120
        while not (
            all(w.state == "streaming" for w in rt.pool.health())
            and rt.link
            and rt.link.state.connected
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the pipeline did not come up within 120 s")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)
        assert rt.link is not None
        lat.on = True
        t0, a0 = time.perf_counter(), rt.link.state.ticks_acked
        await asyncio.sleep(seconds)
        t1, a1 = time.perf_counter(), rt.link.state.ticks_acked
        lat.on = False
        me = psutil.Process()
        rss_workers = sum(
            psutil.Process(w.pid).memory_info().rss for w in rt.pool.health() if w.pid
        )
        result = {
            "offered_ticks_per_s": rate_per_symbol * len(DEFAULT_SYMBOLS),
            "acked_ticks_per_s": round((a1 - a0) / (t1 - t0)),
            "rss_mb_app": round(me.memory_info().rss / 2**20, 1),
            "rss_mb_workers_total": round(rss_workers / 2**20, 1),
            **lat.result(),
        }
    finally:
        await rt.stop()
    return result


async def bench(seconds: float, synchronous: str = "FULL") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        tmpdir = Path(tmp)
        async with server_process("app.bench.sink") as (sink_url,):
            ceiling = await raw_ceiling(sink_url, seconds, 5_000, 64)
        async with server_process("app.bench.sink", "--parse") as (sink_url,):
            parsed_ceiling = await raw_ceiling(sink_url, seconds, 5_000, 64)
        backend_args = [
            "app",
            "backend",
            "--bridge-port",
            "0",
            "--gateway-port",
            "0",
            "--hub-port",
            "0",
            "--synchronous",
            synchronous,
        ]
        async with server_process(
            *backend_args, "--db", str(tmpdir / "fixed.sqlite"), lines=1
        ) as out:
            fixed = await run_pipeline(_urls(out[0]), 2_000.0, seconds, tmpdir)
        async with server_process(
            *backend_args, "--db", str(tmpdir / "full.sqlite"), lines=1
        ) as out:
            full = await run_pipeline(_urls(out[0]), 200_000.0, seconds, tmpdir)
            # Monitoring on vs off, alternated so that drift of a busy machine hits both.
            by_mode: dict[bool, list[int]] = {True: [], False: []}
            for monitoring in (False, True, False, True):
                run = await run_pipeline(
                    _urls(out[0]), 200_000.0, seconds, tmpdir, monitoring=monitoring
                )
                by_mode[monitoring].append(run["acked_ticks_per_s"])
    ratio = full["acked_ticks_per_s"] / ceiling if ceiling else 0.0
    on, off = (statistics.mean(by_mode[m]) for m in (True, False))
    return {
        "benchmark": "pipeline",
        "cpus": psutil.cpu_count(),
        "seconds_per_phase": seconds,
        "bridge_sqlite_synchronous": synchronous,
        "raw_ceiling_ticks_per_s": round(ceiling),
        "ceiling_with_bridge_parsing_ticks_per_s": round(parsed_ceiling),
        "full_speed": {
            **full,
            "ratio_to_raw_ceiling": round(ratio, 3),
            "ratio_to_ceiling_with_parsing": round(full["acked_ticks_per_s"] / parsed_ceiling, 3),
        },
        "fixed_rate": fixed,
        "monitoring": {
            "record_ns_per_batch": monitor_record_cost(),
            "acked_ticks_per_s_off": by_mode[False],
            "acked_ticks_per_s_on": by_mode[True],
            "on_vs_off": round(on / off, 3) if off else None,
        },
        "targets": {
            "full_speed_ge_500k": full["acked_ticks_per_s"] >= 500_000,
            "ratio_ge_0_4": ratio >= 0.4,
            "p99_tick_to_ack_le_5ms_at_10k": fixed["tick_time_to_ack_ms"]["p99"] <= 5.0,
            "monitoring_within_5_percent": off > 0 and on / off >= 0.95,
        },
    }


def monitor_record_cost(calls: int = 200_000) -> dict[str, float]:
    """ns per ``Monitor.on_batch`` call (the per-batch hot path), against an empty call."""
    monitor = Monitor(clock=SYSTEM_CLOCK)
    ticks = Market(42, DEFAULT_PROFILES).ticks_range("EURUSD", 1_700_000_000_000, 1_700_000_060_000)
    item = SequencedBatch(1, TickBatch("EURUSD", ticks[:100], 1, time.time()), time.time())

    def empty(_: SequencedBatch) -> None:
        return None

    timings = {}
    for name, fn in (("baseline_empty_call", empty), ("on_batch", monitor.on_batch)):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn(item)
        timings[name] = (time.perf_counter_ns() - t0) / calls
    return {k: round(v, 1) for k, v in timings.items()}


def _urls(line: str) -> list[str]:
    """The bridge, gateway and hub URLs from the backend's start-up line, in that order."""
    found = [w.strip(",;") for w in line.split() if "://" in w]
    bridge = next(u for u in found if u.startswith("ws"))
    http = [u for u in found if u.startswith("http")]
    return [bridge, http[0], http[1]]
