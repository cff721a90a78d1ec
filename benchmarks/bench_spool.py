"""Spool storage formats compared: fsync'd append-only segments vs SQLite WAL, as JSON.

Why: the durable spool needed a format, chosen by measurement (the result is written
in app/link/spool_segments.py's docstring). Both candidates get the same durability contract:
every message is handed to the OS at append (survives kill -9 of the process), nothing
is fsync'd per message.

- ``segments``: the real :class:`app.link.spool.Spool` (memory cache off, so every read
  would hit the file): one ``writev`` per record, fsync per sealed segment and at most
  every second, acked segments unlinked.
- ``sqlite``: one table ``seq -> (ticks, marks, payload)`` in WAL mode with
  ``synchronous=NORMAL`` (a commit is a WAL append, fsync at checkpoints), one
  autocommit INSERT per message, acks as ``DELETE WHERE seq <= ?``.

Figures: append+ack throughput (MB/s, messages/s) at 300 KB and 2 KB payloads, acks
``--window`` messages at a time like the link; CPU seconds (user+system of this process)
per GB appended; recovery time of ``--recovery-mb`` (default 1 GB) of unacked 300 KB
messages: opening the spool (segments: scan + crc of every record, which finds damage;
sqlite: ``index`` = seqs and lengths only, as SQLite has no checksums, and ``read_all`` =
every payload read, the same I/O as the segment scan). The page cache is warm unless
``/proc/sys/vm/drop_caches`` is writable (then ``cold`` figures are added).

Progress goes to stderr, the JSON report to stdout; ``--deadline`` bounds the whole run
(phases shrink or are marked skipped). Run from the repository root:
``python benchmarks/bench_spool.py [--dir /some/disk] [--deadline 300]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

try:
    import app  # noqa: F401
except ModuleNotFoundError:  # run as a script from a source tree that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.link.spool import DEFAULT_SEGMENT_BYTES, Spool

MARKS = b"\x01" * 48  # about what the link stores: a few symbols' cursors


def log(message: str) -> None:
    print(f"[bench_spool] {message}", file=sys.stderr, flush=True)


def make_payloads(size: int, n: int) -> list[bytes]:
    """Distinct payloads (so nothing can share one object), binary like MessagePack ticks."""
    base = bytes(range(256)) * (size // 256 + 1)
    return [i.to_bytes(8, "little") + base[8:size] for i in range(n)]


class Backend(Protocol):
    def append(self, seq: int, payload: bytes, ticks: int, marks: bytes) -> None: ...
    def ack(self, seq: int) -> None: ...
    def close(self) -> None: ...


class SegmentBackend:
    def __init__(self, directory: Path) -> None:
        self.spool = Spool(0, 2**40, directory, client_id="bench")

    def append(self, seq: int, payload: bytes, ticks: int, marks: bytes) -> None:
        self.spool.append(seq, payload, ticks, marks)

    def ack(self, seq: int) -> None:
        self.spool.ack(seq)

    def close(self) -> None:
        self.spool.close()

    @staticmethod
    def recover(directory: Path) -> int:
        with contextlib.closing(Spool(0, 2**40, directory)) as spool:
            return spool.recovered


class SqliteBackend:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(directory / "spool.db", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS spool "
            "(seq INTEGER PRIMARY KEY, ticks INTEGER, marks BLOB, payload BLOB)"
        )

    def append(self, seq: int, payload: bytes, ticks: int, marks: bytes) -> None:
        self.db.execute("INSERT INTO spool VALUES (?, ?, ?, ?)", (seq, ticks, marks, payload))

    def ack(self, seq: int) -> None:
        self.db.execute("DELETE FROM spool WHERE seq <= ?", (seq,))

    def close(self) -> None:
        self.db.close()

    @staticmethod
    def recover(directory: Path, read_all: bool) -> int:
        db = sqlite3.connect(directory / "spool.db", isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            column = "payload" if read_all else "length(payload)"
            n = 0
            for _ in db.execute(f"SELECT seq, ticks, {column} FROM spool ORDER BY seq"):
                n += 1
            db.execute("SELECT marks FROM spool ORDER BY seq DESC LIMIT 1").fetchone()
            return n
        finally:
            db.close()


FACTORIES: dict[str, Callable[[Path], Backend]] = {
    "segments": SegmentBackend,
    "sqlite": SqliteBackend,
}


def throughput(
    name: str, directory: Path, payloads: list[bytes], window: int, seconds: float
) -> dict[str, float]:
    """Append+ack for ``seconds`` (whole windows); rates over wall time, CPU per GB."""
    backend = FACTORIES[name](directory)
    size = len(payloads[0])
    seq = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        while time.perf_counter() - wall0 < seconds:
            for _ in range(window):
                seq += 1
                backend.append(seq, payloads[seq % len(payloads)], 100, MARKS)
            backend.ack(seq)
    finally:
        backend.close()
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    shutil.rmtree(directory, ignore_errors=True)
    mb = seq * size / 1e6
    return {
        "messages": seq,
        "mb_per_s": round(mb / wall, 1),
        "messages_per_s": round(seq / wall),
        "cpu_s_per_gb": round(cpu / mb * 1e3, 2),
    }


def drop_caches() -> bool:
    """Empty the page cache (root on Linux); dirty pages are written back first, since
    ``drop_caches`` only drops clean ones."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


def recovery(
    name: str, directory: Path, payloads: list[bytes], target_bytes: int, deadline: float
) -> dict[str, object]:
    """Fill ``target_bytes`` unacked (or what the deadline allows), then time the reopen."""
    backend = FACTORIES[name](directory)
    size = len(payloads[0])
    seq = 0
    try:
        while seq * size < target_bytes and time.monotonic() < deadline:
            seq += 1
            backend.append(seq, payloads[seq % len(payloads)], 100, MARKS)
            if seq % 1000 == 0:
                log(f"  {name}: {seq * size / 1e6:.0f} MB written")
    finally:
        backend.close()
    result: dict[str, object] = {"bytes": seq * size, "messages": seq}

    def timed(run: Callable[[], int]) -> float:
        start = time.perf_counter()
        assert run() == seq
        return round(time.perf_counter() - start, 3)

    runs: dict[str, Callable[[], int]]
    if name == "segments":
        runs = {"scan_crc": lambda: SegmentBackend.recover(directory)}
    else:
        runs = {
            "index": lambda: SqliteBackend.recover(directory, read_all=False),
            "read_all": lambda: SqliteBackend.recover(directory, read_all=True),
        }
    for label, run in runs.items():
        result[f"warm_{label}_s"] = timed(run)
        if drop_caches():
            result[f"cold_{label}_s"] = timed(run)
    shutil.rmtree(directory, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--window", type=int, default=32, help="messages per ack")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per throughput figure")
    parser.add_argument("--recovery-mb", type=int, default=1024, help="size of the recovery test")
    parser.add_argument("--deadline", type=float, default=300.0, help="bound on the whole run, s")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: tmp)")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.deadline
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-spool-", dir=args.dir) as tmp:
        root = Path(tmp)
        for size in (300_000, 2_000):
            payloads = make_payloads(size, 64)
            for name in FACTORIES:
                key = f"throughput_{name}_{size // 1000}kb"
                left = deadline - time.monotonic()
                if left < 5:
                    results[key] = "skipped: deadline"
                    continue
                log(f"{key} ...")
                results[key] = throughput(
                    name, root / key, payloads, args.window, min(args.seconds, left / 4)
                )
                log(f"{key}: {results[key]}")
        payloads = make_payloads(300_000, 64)
        for i, name in enumerate(FACTORIES):
            key = f"recovery_{name}"
            # each backend gets its share of the time left (writing dominates)
            share = (deadline - time.monotonic()) / (len(FACTORIES) - i)
            if share < 5:
                results[key] = "skipped: deadline"
                continue
            log(f"{key}: writing {args.recovery_mb} MB ...")
            results[key] = recovery(
                name,
                root / key,
                payloads,
                args.recovery_mb * 10**6,
                time.monotonic() + share * 0.7,
            )
            log(f"{key}: {results[key]}")
        directory = tmp
    report = {
        "benchmark": "spool formats: segments vs sqlite WAL",
        "setup": {
            "ack_window": args.window,
            "seconds_per_figure": args.seconds,
            "segment_bytes": DEFAULT_SEGMENT_BYTES,
            "marks_bytes": len(MARKS),
            "directory": directory,
        },
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
