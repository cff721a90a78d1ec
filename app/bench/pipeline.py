"""``trading-client bench pipeline``: end-to-end throughput and latency, with its ceilings.

Every measurement runs against a server in *another* process over loopback, as a real
deployment does. The phases (``--phases`` runs a subset; ``--seconds`` is the measured
length of each):

* **raw_ceiling** — pre-generated ticks, the protocol's encoder and websockets, sent to
  a peer that acks without parsing: the most this machine's loopback and encoder allow;
* **parse_ceiling** — the same, but the peer validates every message with the bridge's
  own decoder (no storage): what any bridge that reads the ticks can reach;
* **capture_ceiling** — the full-speed pool and collector (same config, same offered
  rate) with delivery disabled: what the pipeline could take if delivery cost nothing;
* **fixed_rate** — the pipeline at 10,000 ticks/s: tick→ack latency percentiles. It runs
  before full speed, so that its RSS is not inflated by the full-speed backlog;
* **full_speed** — the whole pipeline (simulated terminal → worker processes →
  collector → bridge link → reference bridge parsing and storing in SQLite → ack) under
  an offered rate above what it can take: acked ticks/s, its ratio to the ceilings, RSS;
* **monitoring** — full speed again, alternating off/on/off/on, and the cost of the
  monitor's per-batch hot path against an empty call;
* **backlog** — 200,000 ticks/s offered with the bridge down for 10 s, then up: what was
  captured meanwhile, how long the backlog takes to drain, the largest frame against the
  bridge's announced limit, and whether the bridge stored every captured tick.

The benchmark must never hang (a full-speed run once looped for 200 s on a refused
frame): every phase has a deadline, a failing phase prints one line on stderr and is
listed under ``"failed"`` while the others still run, every subprocess is terminated
(killed if it does not exit), and progress goes to stderr once a second so a slow phase
is visibly slow rather than silently stuck.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final

import psutil

from app.bench import PHASES
from app.bench.backlog import BACKLOG_RATE, CAUGHT_UP_LAG_S, backlog_phase
from app.bench.ceilings import CEILING_BATCH_TICKS, CEILING_WINDOW, ceiling_phase, raw_ceiling
from app.bench.harness import (
    OUTAGE_S,
    STOP_TIMEOUT_S,
    PhaseError,
    Progress,
    Settings,
    backend_process,
    run_phase,
    server_process,
)
from app.bench.monitoring import monitor_record_cost, monitoring_phase
from app.bench.runs import (
    FULL_SPEED_RATE,
    WARMUP_S,
    measure,
    pipeline_config,
    run_pipeline,
    running,
)

# The harness, the phases and their constants live in their own modules; the names that
# were defined here stay importable from here.
__all__ = [
    "BACKLOG_RATE",
    "CAUGHT_UP_LAG_S",
    "CEILING_BATCH_TICKS",
    "CEILING_WINDOW",
    "FIXED_RATE",
    "FULL_SPEED_RATE",
    "OUTAGE_S",
    "STOP_TIMEOUT_S",
    "WARMUP_S",
    "PhaseError",
    "Progress",
    "Settings",
    "backend_process",
    "backlog_phase",
    "bench",
    "measure",
    "monitor_record_cost",
    "monitoring_phase",
    "pipeline_config",
    "raw_ceiling",
    "run_pipeline",
    "running",
    "server_process",
]

#: Per symbol at fixed rate: 10,000 ticks/s over the five default symbols.
FIXED_RATE: Final = 2_000.0


# ------------------------------------------------------------------ the run
def _ratio(num: float | None, den: float | None) -> float | None:
    return round(num / den, 3) if num is not None and den else None


def _target(value: float | None, ok: Callable[[float], bool]) -> bool | None:
    """A target's verdict; ``None`` when its figure was not measured."""
    return None if value is None or math.isnan(value) else ok(value)


async def bench(settings: Settings, progress: Progress | None = None) -> dict[str, Any]:
    """Run the selected phases; the document lists what failed under ``"failed"``."""
    progress = progress or Progress()
    failed: list[str] = []
    run_deadline = settings.run_deadline()
    wanted = set(settings.phases)
    figures: dict[str, Any] = {}

    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as name:
        tmp = Path(name)

        async def fixed() -> dict[str, Any]:
            async with backend_process(settings, tmp / "fixed.sqlite") as urls:
                return await run_pipeline(
                    urls, FIXED_RATE, settings, progress=progress, name="fixed_rate", spool_dir=tmp
                )

        async def full() -> dict[str, Any]:
            async with backend_process(settings, tmp / "full.sqlite") as urls:
                return await run_pipeline(
                    urls,
                    FULL_SPEED_RATE,
                    settings,
                    progress=progress,
                    name="full_speed",
                    spool_dir=tmp,
                )

        async def capture() -> dict[str, Any]:
            return await run_pipeline(
                None,
                FULL_SPEED_RATE,
                settings,
                progress=progress,
                name="capture_ceiling",
                spool_dir=tmp,
            )

        phases: dict[str, tuple[float, Callable[[], Coroutine[Any, Any, Any]]]] = {
            "raw_ceiling": (run_deadline, lambda: ceiling_phase(settings, progress, parse=False)),
            "parse_ceiling": (run_deadline, lambda: ceiling_phase(settings, progress, parse=True)),
            "capture_ceiling": (run_deadline, capture),
            "fixed_rate": (run_deadline, fixed),
            "full_speed": (run_deadline, full),
            "monitoring": (4 * run_deadline, lambda: monitoring_phase(settings, progress, tmp)),
            "backlog": (
                run_deadline + settings.outage + settings.startup_timeout + 60,
                lambda: backlog_phase(settings, progress, tmp),
            ),
        }
        for phase in PHASES:
            if phase in wanted:
                deadline, work = phases[phase]
                figures[phase] = await run_phase(phase, deadline, work, progress, failed)
    return _document(settings, figures, failed)


def _document(settings: Settings, figures: dict[str, Any], failed: list[str]) -> dict[str, Any]:
    raw = figures.get("raw_ceiling")
    parsed = figures.get("parse_ceiling")
    capture = figures.get("capture_ceiling")
    capture_tps = capture["captured_ticks_per_s"] if capture else None
    full = figures.get("full_speed")
    full_tps = full["acked_ticks_per_s"] if full else None
    fixed = figures.get("fixed_rate")
    monitoring = figures.get("monitoring")
    backlog = figures.get("backlog")
    ratio_capture = _ratio(full_tps, capture_tps)
    if full is not None:
        full = {
            **full,
            "ratio_to_raw_ceiling": _ratio(full_tps, raw),
            "ratio_to_ceiling_with_parsing": _ratio(full_tps, parsed),
            "ratio_to_capture_ceiling": ratio_capture,
        }
    largest = backlog and backlog["largest_frame_bytes"]
    limit = backlog and backlog["max_frame_bytes"]
    return {
        "benchmark": "pipeline",
        "cpus": psutil.cpu_count(),
        "seconds_per_phase": settings.seconds,
        "bridge_sqlite_synchronous": settings.synchronous,
        "phases": list(settings.phases),
        "failed": failed,
        "raw_ceiling_ticks_per_s": round(raw) if raw is not None else None,
        "ceiling_with_bridge_parsing_ticks_per_s": round(parsed) if parsed is not None else None,
        "capture_ceiling_ticks_per_s": capture_tps,
        "capture_ceiling": capture,
        "full_speed": full,
        "fixed_rate": fixed,
        "monitoring": monitoring,
        "backlog": backlog,
        "targets": {
            "full_speed_ge_1_5M": _target(full_tps, lambda v: v >= 1_500_000),
            "ratio_to_capture_ceiling_ge_0_8": _target(ratio_capture, lambda v: v >= 0.8),
            "p99_tick_to_ack_le_2ms_at_10k": _target(
                fixed["tick_time_to_ack_ms"]["p99"] if fixed else None, lambda v: v <= 2.0
            ),
            "rss_app_le_300mb": _target(full["rss_mb_app"] if full else None, lambda v: v <= 300),
            "backlog_drained": None if backlog is None else bool(backlog["drained"]),
            "largest_frame_within_limit": (
                None if not largest or not limit else bool(largest <= limit)
            ),
            "monitoring_within_5_percent": _target(
                monitoring["on_vs_off"] if monitoring else None, lambda v: v >= 0.95
            ),
        },
    }
