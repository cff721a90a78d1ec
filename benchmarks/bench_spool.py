"""Spool append+ack throughput for 100 KB payloads, memory-only vs spilling, as JSON.

Absolute rates depend on the machine and its disk, so the same run measures baselines
over the very same bytes: a copy into a list, a bare ``list.append`` of the same object
(the spool keeps a reference to the immutable payload, never a copy, so this is the fair
floor for memory-only) and a raw buffered file write (what spilling can at best be), with
and without one fsync per segment's worth of bytes like the spool does. The ``*_vs_*``
ratios (spool time / baseline time: how many times slower the spool is) are the figures
to compare across machines.

Each round appends ``--messages`` messages and acks them ``--window`` at a time, the way
the link acks a window of messages in flight. ``disk_send`` also reads every message
back before acking it (a resend of a spilled backlog): its baseline writes then reads.

Run from the repository root: ``python benchmarks/bench_spool.py [--dir /some/disk]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

try:
    import app  # noqa: F401
except ModuleNotFoundError:  # run as a script from a source tree that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.link.spool import DEFAULT_SEGMENT_BYTES, Spool

PAYLOAD_BYTES = 100_000
_WRITE_BUFFER = 2**20


def make_payloads(n: int) -> list[bytes]:
    """Distinct JSON-like payloads: the spool must not get away with sharing one object."""
    base = (b'{"time_msc":[1732440000123,1732440000250],"bid":[1.05412,1.05413]}' * 1_600)[
        :PAYLOAD_BYTES
    ]
    return [i.to_bytes(8, "little") + base[8:] for i in range(n)]


def best_seconds(run: Callable[[], None], seconds: float) -> float:
    """Best wall time of one round over rounds lasting at least ``seconds`` in total."""
    best = float("inf")
    spent = 0.0
    rounds = 0
    while spent < seconds or rounds < 3:
        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
        spent += elapsed
        rounds += 1
        best = min(best, elapsed)
    return best


def bench(payloads: list[bytes], window: int, directory: Path, seconds: float) -> dict[str, object]:
    n = len(payloads)
    total = n * PAYLOAD_BYTES
    raw_file = directory / "raw.bin"

    def list_copy() -> None:
        held: list[bytes] = []
        for i, p in enumerate(payloads, start=1):
            held.append(bytes(memoryview(p)))  # bytes(p) would share, not copy
            if i % window == 0:
                held.clear()

    def list_append() -> None:
        held: list[bytes] = []
        for i, p in enumerate(payloads, start=1):
            held.append(p)
            if i % window == 0:
                held.clear()

    def file_write(fsync_every: int | None, read_back: bool) -> Callable[[], None]:
        def run() -> None:
            with (
                open(raw_file, "wb", buffering=_WRITE_BUFFER) as w,
                open(raw_file, "rb", buffering=0) as r,
            ):
                since_sync = 0
                for p in payloads:
                    w.write(p)
                    since_sync += len(p)
                    if fsync_every is not None and since_sync >= fsync_every:
                        w.flush()
                        os.fsync(w.fileno())
                        since_sync = 0
                if read_back:
                    w.flush()
                    for i in range(n):
                        r.seek(i * PAYLOAD_BYTES)
                        r.read(PAYLOAD_BYTES)
            raw_file.unlink()

        return run

    def spool_run(memory_limit: int, disk: bool, send: bool) -> Callable[[], None]:
        def run() -> None:
            spool_dir = directory / "spool" if disk else None
            with Spool(memory_limit, 2**40 if disk else 0, spool_dir) as spool:
                after = 0
                for seq, p in enumerate(payloads, start=1):
                    spool.append(seq, p, 100)
                    if seq % window == 0:
                        if send:
                            while (item := spool.peek_next_after(after)) is not None:
                                after = item[0]
                        spool.ack(seq)

        return run

    def rate(elapsed: float) -> dict[str, float]:
        return {"messages_per_s": round(n / elapsed), "mb_per_s": round(total / elapsed / 1e6)}

    t_copy = best_seconds(list_copy, seconds)
    t_append = best_seconds(list_append, seconds)
    t_write = best_seconds(file_write(None, read_back=False), seconds)
    t_write_sync = best_seconds(file_write(DEFAULT_SEGMENT_BYTES, read_back=False), seconds)
    t_write_read = best_seconds(file_write(DEFAULT_SEGMENT_BYTES, read_back=True), seconds)
    t_memory = best_seconds(spool_run(2**40, disk=False, send=False), seconds)
    t_disk = best_seconds(spool_run(0, disk=True, send=False), seconds)
    t_disk_send = best_seconds(spool_run(0, disk=True, send=True), seconds)
    return {
        "baseline_list_copy": rate(t_copy),
        "baseline_list_append": rate(t_append),
        "baseline_file_write": rate(t_write),
        "baseline_file_write_fsync_per_segment": rate(t_write_sync),
        "baseline_file_write_fsync_then_read": rate(t_write_read),
        "spool_memory_only": rate(t_memory),
        "spool_disk": rate(t_disk),
        "spool_disk_send": rate(t_disk_send),
        "memory_only_vs_list_copy": round(t_memory / t_copy, 2),
        "memory_only_vs_list_append": round(t_memory / t_append, 2),
        "disk_vs_file_write_fsync_per_segment": round(t_disk / t_write_sync, 2),
        "disk_send_vs_file_write_fsync_then_read": round(t_disk_send / t_write_read, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=1_000, help="messages per round")
    parser.add_argument("--window", type=int, default=32, help="messages per ack")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum time per figure")
    parser.add_argument("--dir", type=Path, default=None, help="where to spill (default: tmp)")
    args = parser.parse_args(argv)
    payloads = make_payloads(args.messages)
    with tempfile.TemporaryDirectory(prefix="bench-spool-", dir=args.dir) as tmp:
        results = bench(payloads, args.window, Path(tmp), args.seconds)
        directory = tmp
    report = {
        "benchmark": "spool.append+ack",
        "setup": {
            "payload_bytes": PAYLOAD_BYTES,
            "messages_per_round": args.messages,
            "ack_window": args.window,
            "segment_bytes": DEFAULT_SEGMENT_BYTES,
            "directory": directory,
        },
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
