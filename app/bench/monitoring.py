"""The monitoring phase of ``bench pipeline``: full-speed throughput with the monitor
off and on, and the cost of its per-batch hot path."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from app.bench.harness import Progress, Settings, backend_process
from app.bench.runs import FULL_SPEED_RATE, run_pipeline
from app.clock import SYSTEM_CLOCK
from app.collector import SequencedBatch
from app.monitor.monitor import Monitor
from app.terminal.market import DEFAULT_PROFILES, Market
from app.ticks import TickBatch


# ------------------------------------------------------------------ monitoring cost
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


async def monitoring_phase(settings: Settings, progress: Progress, tmp: Path) -> dict[str, Any]:
    """Full speed off/on/off/on, alternated so that drift of a busy machine hits both."""
    by_mode: dict[bool, list[int]] = {True: [], False: []}
    async with backend_process(settings, tmp / "monitoring.sqlite") as urls:
        for monitoring in (False, True, False, True):
            run = await run_pipeline(
                urls,
                FULL_SPEED_RATE,
                settings,
                progress=progress,
                name=f"monitoring {'on' if monitoring else 'off'}",
                spool_dir=tmp,
                monitoring=monitoring,
            )
            by_mode[monitoring].append(run["acked_ticks_per_s"])
    on, off = (statistics.mean(by_mode[m]) for m in (True, False))
    return {
        "record_ns_per_batch": monitor_record_cost(),
        "acked_ticks_per_s_off": by_mode[False],
        "acked_ticks_per_s_on": by_mode[True],
        "on_vs_off": round(on / off, 3) if off else None,
    }
