"""Test helpers of the consumer and forwarder tests: blocks to publish, the truth to compare.

The truth is what was published (kept here, by key), compared with the rows of the
database read by plain SQL — never with the consumer's own counters.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import nats
import nats.errors
import numpy as np
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

from app.nats.subjects import OutMessage, tick_messages
from app.ticks import TICK_DTYPE, TickBatch

T = TypeVar("T")
Key = tuple[str, str, int, int]


def make_ticks(n: int, start_msc: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ticks = np.zeros(n, dtype=TICK_DTYPE)
    ticks["time_msc"] = start_msc + np.arange(n)
    ticks["time"] = ticks["time_msc"] // 1000
    ticks["bid"] = 1.1 + rng.random(n) / 100
    ticks["ask"] = ticks["bid"] + 0.0001
    return ticks


def link_messages(
    client: str, session: str, seqs: int, ticks_per_block: int, symbols: Sequence[str]
) -> tuple[list[OutMessage], dict[Key, bytes]]:
    """``seqs`` link messages of one block per symbol each, as NATS messages, and the
    truth: every block's tick bytes by key."""
    out: list[OutMessage] = []
    truth: dict[Key, bytes] = {}
    for seq in range(1, seqs + 1):
        batches = [
            TickBatch(sym, make_ticks(ticks_per_block, seq * 10_000, seq * 100 + i))
            for i, sym in enumerate(symbols)
        ]
        out.extend(tick_messages(client, session, seq, batches))
        for idx, batch in enumerate(batches):
            truth[(client, session, seq, idx)] = batch.ticks.tobytes()
    return out, truth


async def settled(call: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """``call`` retried while the cluster elects a leader (a deadline, no fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except (nats.errors.TimeoutError, NoStreamResponseError, ServiceUnavailableError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def publish(
    servers: str,
    messages: Sequence[OutMessage],
    *,
    stream: str = "TICKS",
    replicas: int = 1,
    raw: Sequence[tuple[str, bytes, dict[str, str] | None]] = (),
) -> None:
    """Create the stream if needed and publish ``messages`` (then ``raw`` ones), each acked."""
    nc = await nats.connect(servers=servers.split(","), max_reconnect_attempts=-1)
    try:
        js = nc.jetstream()
        await settled(
            lambda: js.add_stream(
                name=stream, subjects=["ticks.>"], num_replicas=replicas, duplicate_window=600
            )
        )
        pending = [
            js.publish(m.subject, m.payload, headers=m.headers, timeout=10) for m in messages
        ]
        for start in range(0, len(pending), 500):  # pipelined, bounded
            await asyncio.gather(*pending[start : start + 500])
        for subject, payload, headers in raw:
            await js.publish(subject, payload, headers=headers, timeout=10)
    finally:
        await nc.close()


def stored(db: Path) -> dict[Key, list[bytes]]:
    """Every block row of a backend database, by key (a list: a doubled row would show)."""
    rows: dict[Key, list[bytes]] = {}
    conn = sqlite3.connect(db)
    try:
        for c, s, q, i, blob in conn.execute(
            "SELECT client_id, session, seq, idx, ticks FROM tick_blocks"
        ):
            rows.setdefault((c, s, int(q), int(i)), []).append(bytes(blob))
    finally:
        conn.close()
    return rows


def row_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(db, timeout=5)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM tick_blocks").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def assert_same(db: Path, truth: dict[Key, bytes]) -> None:
    """The database holds exactly the published blocks, each once, bit for bit."""
    rows = stored(db)
    doubled = {k: len(v) for k, v in rows.items() if len(v) != 1}
    assert not doubled, f"doubled rows: {list(doubled)[:5]}"
    missing = sorted(set(truth) - set(rows))
    extra = sorted(set(rows) - set(truth))
    assert not missing, f"{len(missing)} blocks missing, e.g. {missing[:5]}"
    assert not extra, f"{len(extra)} unexpected blocks, e.g. {extra[:5]}"
    wrong = [k for k, v in truth.items() if rows[k][0] != v]
    assert not wrong, f"{len(wrong)} blocks with other ticks, e.g. {wrong[:5]}"
