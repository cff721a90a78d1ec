"""MT5 export reader and replay throughput, printed as JSON.

Generates a tick export of ``--rows`` rows (the simulated EURUSD market, written by the
project's writer, so the file has the empty unchanged fields MT5 writes) and measures:

* ``reader_rows_per_s``: the vectorised reader (best of a few runs), UTF-8 and UTF-16;
* ``baseline_csv_rows_per_s``: the same file parsed by a plain Python ``csv`` loop with
  the same carry-forward (the obvious implementation), measured in the same run;
  ``reader_vs_baseline`` is the figure to compare across machines;
* ``replay_ticks_per_s``: a replay terminal at full speed polled like a worker does
  (capture cursor, poll sizer, batches of 10,000) into a collector with M1 and M5 bars,
  in one process (the worker's pipe and the bridge are measured by ``bench pipeline``).

Run from the repository root: ``python benchmarks/bench_export_reader.py [--rows 1500000]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np

try:
    import app  # noqa: F401
except ModuleNotFoundError:  # run as a script from a source tree that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.collector import M1, M5, Collector
from app.connector.capture import CaptureCursor, PollSizer
from app.terminal.constants import COPY_TICKS_ALL
from app.terminal.export_files import read_ticks, write_ticks
from app.terminal.market import DEFAULT_PROFILES, Market
from app.terminal.replay import ReplayTerminal
from app.ticks import TICK_DTYPE, TickArray, TickBatch

T0 = 1_700_000_000_000


def make_ticks(rows: int) -> TickArray:
    seconds = 3_600
    market = Market(7, DEFAULT_PROFILES, {"EURUSD": rows / seconds * 1.12})
    ticks = market.ticks_range("EURUSD", T0, T0 + seconds * 1000)
    return ticks[:rows]


def best(run: Callable[[], int], repeat: int) -> float:
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        n = run()
        rates.append(n / (time.perf_counter() - start))
    return max(rates)


def csv_baseline(path: Path) -> int:
    """What one would write first: csv.reader, int()/float() per field, carry forward,
    one tuple per row, and the tick array at the end."""
    bid = ask = last = volume = 0.0
    out = []
    epoch = date(1970, 1, 1).toordinal()
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f, delimiter="\t")
        next(rows)
        for day, clock, b, a, la, v, flags in rows:
            bid = float(b) if b else bid
            ask = float(a) if a else ask
            last = float(la) if la else last
            volume = float(v) if v else volume
            days = date(int(day[:4]), int(day[5:7]), int(day[8:10])).toordinal() - epoch
            ms = ((int(clock[:2]) * 60 + int(clock[3:5])) * 60 + int(clock[6:8])) * 1000 + int(
                clock[9:12]
            )
            t = days * 86_400_000 + ms
            out.append((t // 1000, bid, ask, last, int(volume), t, int(flags), volume))
    return len(np.array(out, dtype=TICK_DTYPE))


def replay_pipeline(path: Path, expected: int) -> float:
    """Ticks per second from a full-speed replay terminal through capture into a
    collector (the file is read before the clock starts)."""
    term = ReplayTerminal({"EURUSD": [path]}, speed=0)
    term.initialize()
    term.symbol_select("EURUSD")
    collector = Collector(250_000, (M1, M5))
    cursor, sizer = CaptureCursor(T0), PollSizer(10_000)
    total = 0
    start = time.perf_counter()
    while total < expected:
        polled = term.copy_ticks_from("EURUSD", cursor.from_seconds, sizer.count, COPY_TICKS_ALL)
        assert polled is not None
        new, skipped = cursor.cut(polled)
        sizer.after_poll(len(polled), skipped, len(new))
        if not len(new):
            break
        cursor.advance(new)
        collector.ingest(TickBatch("EURUSD", new))
        total += len(new)
    return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ticks = make_ticks(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        utf8 = Path(tmp) / "EURUSD_ticks.csv"
        utf16 = Path(tmp) / "EURUSD_ticks_utf16.csv"
        start = time.perf_counter()
        write_ticks(utf8, ticks, digits=5)
        write_s = time.perf_counter() - start
        write_ticks(utf16, ticks, digits=5, encoding="utf-16")
        assert np.array_equal(read_ticks(utf8).data, ticks)
        reader = best(lambda: len(read_ticks(utf8).data), args.repeat)
        reader16 = best(lambda: len(read_ticks(utf16).data), args.repeat)
        baseline = best(lambda: csv_baseline(utf8), 1)
        replay = max(replay_pipeline(utf8, len(ticks)) for _ in range(args.repeat))
        result = {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "machine": platform.machine(),
            "rows": len(ticks),
            "file_mb": round(utf8.stat().st_size / 2**20, 1),
            "reader_rows_per_s": round(reader),
            "reader_utf16_rows_per_s": round(reader16),
            "baseline_csv_rows_per_s": round(baseline),
            "reader_vs_baseline": round(reader / baseline, 1),
            "writer_rows_per_s": round(len(ticks) / write_s),
            "replay_ticks_per_s": round(replay),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
