"""Collector ingest throughput, printed as JSON.

Absolute ticks/s depend on the machine, so the same run also measures a baseline, the
cost of ``np.copy`` of the very same batches; ``ingest_vs_copy`` (how many times slower
than a bare copy ingest is) is the figure to compare across machines.

Run from the repository root: ``python benchmarks/bench_collector.py [--seconds 0.5]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

try:
    import app  # noqa: F401
except ModuleNotFoundError:  # run as a script from a source tree that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.collector import M1, M5, Collector, SequencedBatch
from app.ticks import TickArray, TickBatch, empty_ticks

BATCH_SIZES = (100, 1_000, 10_000)
SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD")
CACHE_CAPACITY = 100_000


def make_ticks(n: int, seed: int = 0) -> TickArray:
    """Realistic spacing: a third of ticks share a millisecond, the rest ~0 to 1 s apart."""
    rng = np.random.default_rng(seed)
    gaps = np.where(rng.random(n) < 0.33, 0, rng.integers(1, 1_000, n))
    time_msc = 1_700_000_000_000 + np.cumsum(gaps)
    ticks = empty_ticks(n)
    ticks["time_msc"] = time_msc
    ticks["time"] = time_msc // 1000
    ticks["bid"] = np.round(1.1 + np.cumsum(rng.normal(0.0, 0.0002, n)), 5)
    ticks["ask"] = ticks["bid"] + rng.integers(0, 30, n) * 1e-5
    ticks["flags"] = 6
    return ticks


def make_batches(batch_size: int, total_ticks: int) -> list[TickBatch]:
    """Batches cycling over a few symbols, each symbol's ticks in time order."""
    per_symbol = max(1, total_ticks // (batch_size * len(SYMBOLS)))
    batches: list[TickBatch] = []
    streams = {s: make_ticks(per_symbol * batch_size, seed=i) for i, s in enumerate(SYMBOLS)}
    for k in range(per_symbol):
        for symbol, ticks in streams.items():
            part = ticks[k * batch_size : (k + 1) * batch_size]
            batches.append(TickBatch(symbol, part, worker_id=0, captured_at=0.0))
    return batches


def best_rate(run: Callable[[], int], seconds: float) -> float:
    """Best ticks/s over repeated runs lasting at least ``seconds`` in total."""
    best = 0.0
    spent = 0.0
    rounds = 0
    while spent < seconds or rounds < 3:
        start = time.perf_counter()
        ticks = run()
        elapsed = time.perf_counter() - start
        spent += elapsed
        rounds += 1
        best = max(best, ticks / elapsed)
    return best


def bench(batch_size: int, total_ticks: int, seconds: float) -> dict[str, float | int]:
    batches = make_batches(batch_size, total_ticks)
    n_ticks = sum(len(b) for b in batches)

    def copy_only() -> int:
        for b in batches:
            np.copy(b.ticks)
        return n_ticks

    def ingest(subscribers: int) -> Callable[[], int]:
        def run() -> int:
            # A fresh collector per round: the stale guard would drop a replayed stream.
            collector = Collector(CACHE_CAPACITY, bar_timeframes_ms=(M1, M5))
            received = [0]

            def on_batch(sb: SequencedBatch) -> None:
                received[0] += len(sb)

            for _ in range(subscribers):
                collector.subscribe(on_batch)
            for b in batches:
                collector.ingest(b)
            return n_ticks

        return run

    baseline = best_rate(copy_only, seconds)
    plain = best_rate(ingest(0), seconds)
    with_callback = best_rate(ingest(1), seconds)
    return {
        "batch_size": batch_size,
        "batches": len(batches),
        "baseline_copy_ticks_per_s": round(baseline),
        "ingest_ticks_per_s": round(plain),
        "ingest_with_callback_ticks_per_s": round(with_callback),
        "ingest_batches_per_s": round(plain / batch_size),
        "ingest_vs_copy": round(baseline / plain, 1),
        "ingest_with_callback_vs_copy": round(baseline / with_callback, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--ticks", type=int, default=400_000, help="ticks per measurement")
    parser.add_argument("--seconds", type=float, default=0.5, help="minimum time per figure")
    args = parser.parse_args(argv)
    results = [bench(size, args.ticks, args.seconds) for size in BATCH_SIZES]
    report = {
        "benchmark": "collector.ingest",
        "setup": {
            "symbols": len(SYMBOLS),
            "bar_timeframes_ms": [M1, M5],
            "cache_capacity_per_symbol": CACHE_CAPACITY,
            "callback": "counts ticks",
        },
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
