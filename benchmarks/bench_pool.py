"""Connector pool throughput and memory, printed as JSON.

Runs the real pool (worker processes on the simulated terminal) into the collector at
an offered rate far above what the machine can take, and reports the ticks/s that reach
the collector in steady state. The same run measures a baseline: how fast *one* process
can merely generate the same market in-process (``Market.ticks_range``), so
``pool_vs_generation`` says what the pool costs on top of producing the ticks at all.

It also fills the tick cache and reports the RSS of the app process when the cache is
full and again a few seconds later (memory must stay flat), and of the workers.

Run from the repository root: ``python benchmarks/bench_pool.py [--seconds 8]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path

import psutil

try:
    import app  # noqa: F401
except ModuleNotFoundError:  # run as a script from a source tree that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import ClientConfig
from app.runtime import Runtime
from app.terminal.market import DEFAULT_PROFILES, Market

SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD"]


def generation_baseline(rate: float, seconds: float) -> float:
    """Ticks/s one process generates the same market at, for the same symbols."""
    market = Market(42, DEFAULT_PROFILES, dict.fromkeys(SYMBOLS, rate))
    start = int(time.time() * 1000) - 600_000
    produced, t0, span = 0, time.perf_counter(), 1_000
    while time.perf_counter() - t0 < seconds:
        for sym in SYMBOLS:
            produced += len(market.ticks_range(sym, start, start + span))
        start += span
    return produced / (time.perf_counter() - t0)


def rss_mb(proc: psutil.Process) -> float:
    return proc.memory_info().rss / 2**20


async def run_pool(rate: float, seconds: float, workers: int, cache: int) -> dict[str, object]:
    config = ClientConfig.model_validate(
        {
            "terminals": [{"symbols": SYMBOLS, "rates": dict.fromkeys(SYMBOLS, rate)}],
            "pool": {"size": workers},
            "cache": {"ticks_per_symbol": cache},
            # The pool and collector alone: the link has its own benchmark (bench pipeline).
            "backend": {"enabled": False},
        }
    )
    rt = Runtime(config)
    me = psutil.Process()
    rss_start = rss_mb(me)
    await rt.start()
    try:
        while not all(w.state == "streaming" for w in rt.pool.health()):
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # let the first (catch-up) polls pass
        t0, n0 = time.perf_counter(), rt.collector.stats.ticks_total
        await asyncio.sleep(seconds)
        t1, n1 = time.perf_counter(), rt.collector.stats.ticks_total
        lag_ms = int(time.time() * 1000) - min(w.last_tick_msc for w in rt.pool.health())
        full = all(len(rt.collector.cache.ring(s)) == cache for s in SYMBOLS)
        rss_full = rss_mb(me)
        await asyncio.sleep(3.0)
        rss_later = rss_mb(me)
        worker_rss = [rss_mb(psutil.Process(w.pid)) for w in rt.pool.health() if w.pid is not None]
    finally:
        await rt.stop()
    return {
        "workers": workers,
        "offered_ticks_per_s": rate * len(SYMBOLS),
        "sustained_ticks_per_s": round((n1 - n0) / (t1 - t0)),
        "lag_behind_now_ms": lag_ms,
        "cache_ticks_per_symbol": cache,
        "cache_full": full,
        "cache_mb": round(rt.collector.cache.nbytes / 2**20, 1),
        "app_rss_mb_at_start": round(rss_start, 1),
        "app_rss_mb_cache_full": round(rss_full, 1),
        "app_rss_mb_3s_later": round(rss_later, 1),
        "worker_rss_mb_each": [round(r, 1) for r in worker_rss],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=200_000, help="offered ticks/s per symbol")
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--cache", type=int, default=250_000, help="cache ticks per symbol")
    args = parser.parse_args()
    baseline = generation_baseline(args.rate, 2.0)
    pool = asyncio.run(run_pool(args.rate, args.seconds, args.workers, args.cache))
    sustained = pool["sustained_ticks_per_s"]
    assert isinstance(sustained, int)
    print(
        json.dumps(
            {
                "benchmark": "connector.pool",
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "baseline_generation_ticks_per_s_one_process": round(baseline),
                **pool,
                "pool_vs_generation": round(sustained / baseline, 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
