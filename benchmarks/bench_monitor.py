"""Cost of feeding the monitor (histogram, rate meter, series history), as JSON.

These calls sit on the ingest path (a latency per tick, a count per batch), so what
matters is nanoseconds per call next to what Python costs anyway. The same run measures
two baselines: an empty Python function call and a bound ``list.append``, each in the
same ``for`` loop as the figures, so the ``*_vs_empty_call`` ratios compare across
machines. Every figure is the best of several rounds, each at least ``--seconds`` / 5.

``record_many`` is given per call and per value for batches of 1, 100 and 10,000; its
per-call figure is amortised: mid-sized batches are staged and folded into the buckets
together, and that fold is included in the time.

Run from the repository root: ``python benchmarks/bench_monitor.py``.
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

from app.clock import SYSTEM_CLOCK
from app.monitor.histogram import LatencyHistogram
from app.monitor.history import SeriesHistory
from app.monitor.rates import RateBook, RateMeter

CALLS = 200_000  # scalar calls per round


def best_ns_per_call(run: Callable[[], int], seconds: float) -> float:
    """Best nanoseconds per call over rounds; ``run`` does one round and returns its calls."""
    best = float("inf")
    spent = 0.0
    rounds = 0
    while spent < seconds or rounds < 5:
        start = time.perf_counter_ns()
        calls = run()
        elapsed = time.perf_counter_ns() - start
        spent += elapsed / 1e9
        rounds += 1
        best = min(best, elapsed / calls)
    return best


def bench(seconds: float) -> dict[str, float]:
    per = seconds / 5
    rng = np.random.default_rng(1)
    latencies = rng.lognormal(np.log(2e-3), 1.5, CALLS)
    scalars = latencies.tolist()

    def empty(_: float) -> None:
        pass

    def loop_empty_call() -> int:
        f = empty
        for v in scalars:
            f(v)
        return CALLS

    def loop_list_append() -> int:
        held: list[float] = []
        append = held.append
        for v in scalars:
            append(v)
        return CALLS

    histogram = LatencyHistogram()

    def loop_record() -> int:
        record = histogram.record
        for v in scalars:
            record(v)
        return CALLS

    def record_many(batch: int) -> Callable[[], int]:
        calls = max(1, CALLS // batch)
        batches = [latencies[i * batch : (i + 1) * batch].copy() for i in range(calls)]

        def run() -> int:
            record = histogram.record_many
            for b in batches:
                record(b)
            histogram.count  # noqa: B018 - a read folds what is staged: part of the cost
            return calls

        return run

    meter = RateMeter((1, 10, 60), SYSTEM_CLOCK)

    def loop_meter_add() -> int:
        add = meter.add
        for _ in scalars:
            add(1)
        return CALLS

    book = RateBook((1, 10, 60), SYSTEM_CLOCK)
    symbols = [f"SYM{i}" for i in range(50)] * (CALLS // 50)

    def loop_book_add() -> int:
        add = book.add
        for s in symbols:
            add(s, 1)
        return len(symbols)

    def loop_history(timestamped: bool) -> Callable[[], int]:
        start = 1_700_000_000.0
        times = (start + np.arange(CALLS) * 0.01).tolist()  # 100 records per 1 s slot

        def run() -> int:
            history = SeriesHistory()
            record = history.record
            if timestamped:
                for v, t in zip(scalars, times, strict=True):
                    record("rate", v, t)
            else:
                for v in scalars:
                    record("rate", v)
            return CALLS

        return run

    histogram_full = LatencyHistogram()
    histogram_full.record_many(latencies)

    def loop_percentiles() -> int:
        for _ in range(1000):
            histogram_full.percentiles((50, 99, 99.9))
        return 1000

    def loop_meter_rates() -> int:
        for _ in range(1000):
            meter.rates()
        return 1000

    empty_ns = best_ns_per_call(loop_empty_call, per)
    append_ns = best_ns_per_call(loop_list_append, per)
    results: dict[str, float] = {
        "baseline_empty_call_ns": empty_ns,
        "baseline_list_append_ns": append_ns,
        "histogram_record_ns": best_ns_per_call(loop_record, per),
    }
    for batch in (1, 100, 10_000):
        call_ns = best_ns_per_call(record_many(batch), per)
        results[f"histogram_record_many_{batch}_ns_per_call"] = call_ns
        results[f"histogram_record_many_{batch}_ns_per_value"] = call_ns / batch
    results["rate_meter_add_ns"] = best_ns_per_call(loop_meter_add, per)
    results["rate_book_add_ns"] = best_ns_per_call(loop_book_add, per)
    results["series_history_record_ns"] = best_ns_per_call(loop_history(True), per)
    results["series_history_record_clock_ns"] = best_ns_per_call(loop_history(False), per)
    results["histogram_percentiles_3_ns"] = best_ns_per_call(loop_percentiles, per)
    results["rate_meter_rates_3_windows_ns"] = best_ns_per_call(loop_meter_rates, per)
    rounded = {k: round(v, 1) for k, v in results.items()}
    for key in ("histogram_record_ns", "rate_meter_add_ns", "series_history_record_ns"):
        rounded[key.removesuffix("_ns") + "_vs_empty_call"] = round(results[key] / empty_ns, 2)
    return rounded


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum time per figure")
    args = parser.parse_args(argv)
    report = {
        "benchmark": "monitor feeding",
        "setup": {"scalar_calls_per_round": CALLS, "histogram": "1 us..3600 s, 2 digits"},
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "results": bench(args.seconds),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
