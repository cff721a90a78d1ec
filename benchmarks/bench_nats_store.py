"""The stream consumer's store rate vs storing the same blocks directly, as JSON.

For each block size (25 and 250 ticks per block, ``--sizes``): the same blocks are
published into a real single-node JetStream (``LocalCluster``, loopback), then

* ``direct`` (the baseline, same run): :meth:`TickStore.store_blocks` on a fresh database,
  ``--batch`` blocks per transaction — the ceiling of the storage alone;
* ``consumer``: :class:`StoreConsumer` with ``--batch`` messages per fetch, from the
  first message to ``--until-idle`` (fetch, decode, commit, ack), on another fresh
  database; ``ratio_to_direct`` is its ticks/s over the baseline's.

Both use ``synchronous=FULL`` (what the command does by default). Every phase has a
deadline (``--deadline`` seconds each); a phase that misses it, or a database that does
not hold exactly the published blocks afterwards, fails the run (exit 1). Progress goes
to stderr, the report to stdout. Run from the repository root:
``python benchmarks/bench_nats_store.py [--ticks 500000] [--sizes 25 250]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
import numpy as np

try:
    import app  # noqa: F401
except ModuleNotFoundError:  # run as a script from a source tree that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.nats.cluster import LocalCluster
from app.nats.store_consumer import StoreConfig, StoreConsumer
from app.nats.store_rules import classify
from app.nats.stream import stream_config
from app.nats.subjects import OutMessage, StreamSpec, tick_messages
from app.server.store import KeyedBlock, TickStore
from app.ticks import TICK_DTYPE, TickBatch

SYMBOLS = ("EURUSD", "XAUUSD", "GBPUSD", "USDJPY")


class PhaseFailedError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[bench_nats_store] {message}", file=sys.stderr, flush=True)


def make_messages(total_ticks: int, per_block: int) -> list[OutMessage]:
    """Link messages of one block per symbol, ``total_ticks`` ticks in all."""
    rng = np.random.default_rng(per_block)
    out: list[OutMessage] = []
    blocks = max(1, total_ticks // per_block)
    seq = 0
    while len(out) < blocks:
        seq += 1
        batches = []
        for sym in SYMBOLS[: min(len(SYMBOLS), blocks - len(out))]:
            ticks = np.zeros(per_block, dtype=TICK_DTYPE)
            ticks["time_msc"] = 1_732_440_000_000 + seq * 1000 + np.arange(per_block)
            ticks["time"] = ticks["time_msc"] // 1000
            ticks["bid"] = 1.1 + rng.random(per_block) / 100
            ticks["ask"] = ticks["bid"] + 1e-4
            batches.append(TickBatch(sym, ticks))
        out.extend(tick_messages("bench", "s1", seq, batches))
    return out


async def publish(servers: str, messages: list[OutMessage], stream: str) -> float:
    nc = await nats.connect(servers=servers)
    try:
        js = nc.jetstream()
        await js.add_stream(stream_config(StreamSpec(name=stream)))
        started = time.perf_counter()
        for start in range(0, len(messages), 1000):
            await asyncio.gather(
                *(
                    js.publish(m.subject, m.payload, headers=m.headers, timeout=30)
                    for m in messages[start : start + 1000]
                )
            )
        return time.perf_counter() - started
    finally:
        await nc.close()


async def drop_stream(servers: str, stream: str) -> None:
    """The next size's stream listens on the same subjects: this one goes first."""
    nc = await nats.connect(servers=servers)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


def direct(db: Path, messages: list[OutMessage], batch: int) -> float:
    """The baseline: the same blocks (decoded once beforehand) stored straight in."""
    blocks = [classify(m.headers, m.payload) for m in messages]
    keyed = [b for b in blocks if isinstance(b, KeyedBlock)]
    with TickStore(db) as store:
        started = time.perf_counter()
        for start in range(0, len(keyed), batch):
            store.store_blocks(keyed[start : start + batch])
        return time.perf_counter() - started


async def consume(servers: str, db: Path, stream: str, batch: int) -> float:
    config = StoreConfig(servers=(servers,), db=db, stream=stream, batch=batch)
    with TickStore(db) as store:
        started = time.perf_counter()
        await StoreConsumer(config, store).run(until_idle=True)
        return time.perf_counter() - started


def check(db: Path, blocks: int, ticks: int) -> None:
    conn = sqlite3.connect(db)
    try:
        rows, n = conn.execute("SELECT COUNT(*), SUM(n) FROM tick_blocks").fetchone()
    finally:
        conn.close()
    if (rows, n) != (blocks, ticks):
        raise PhaseFailedError(f"{db.name}: {rows} blocks / {n} ticks, expected {blocks}/{ticks}")


async def within(what: str, deadline: float, coro: Any) -> Any:
    try:
        return await asyncio.wait_for(coro, deadline)
    except TimeoutError:
        raise PhaseFailedError(f"{what}: no result within {deadline:g} s") from None


def figures(seconds: float, blocks: int, ticks: int) -> dict[str, float]:
    return {
        "seconds": round(seconds, 3),
        "ticks_per_s": round(ticks / seconds),
        "msgs_per_s": round(blocks / seconds),
    }


async def run_size(
    cluster: LocalCluster, tmp: Path, args: argparse.Namespace, per_block: int
) -> dict[str, Any]:
    messages = make_messages(args.ticks, per_block)
    blocks, ticks = len(messages), len(messages) * per_block
    stream = f"T{per_block}"
    log(f"{per_block} ticks/block: publishing {blocks} blocks ({ticks} ticks)")
    published = await within("publish", args.deadline, publish(cluster.servers, messages, stream))
    log(f"{per_block} ticks/block: direct store (baseline)")
    base_db = tmp / f"direct-{per_block}.sqlite"
    base = await within(
        "direct", args.deadline, asyncio.to_thread(direct, base_db, messages, args.batch)
    )
    check(base_db, blocks, ticks)
    log(f"{per_block} ticks/block: consumer")
    cons_db = tmp / f"consumer-{per_block}.sqlite"
    took = await within(
        "consumer", args.deadline, consume(cluster.servers, cons_db, stream, args.batch)
    )
    check(cons_db, blocks, ticks)
    await drop_stream(cluster.servers, stream)
    result = {
        "blocks": blocks,
        "ticks": ticks,
        "publish": figures(published, blocks, ticks),
        "direct": figures(base, blocks, ticks),
        "consumer": figures(took, blocks, ticks),
    }
    result["consumer"]["ratio_to_direct"] = round(base / took, 3)
    log(
        f"{per_block} ticks/block: consumer {result['consumer']['ticks_per_s']:,} ticks/s vs "
        f"direct {result['direct']['ticks_per_s']:,} ticks/s"
    )
    return result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "batch": args.batch,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
    }
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        with LocalCluster(tmp / "nats", size=1) as cluster:
            for per_block in args.sizes:
                report[f"ticks_per_block_{per_block}"] = await run_size(
                    cluster, tmp, args, per_block
                )
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=500_000, help="ticks per block size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 250])
    parser.add_argument("--batch", type=int, default=256, help="blocks per fetch/transaction")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds per phase")
    try:
        print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
    except PhaseFailedError as exc:
        print(f"[bench_nats_store] FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
