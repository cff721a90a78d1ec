"""A reference backend on ephemeral loopback ports, and raw-protocol helpers for its peers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.protocol.codec import Block, encode_hello, encode_ticks
from app.server import ReferenceBackend
from app.ticks import TickArray, empty_ticks

START_MSC = 1_732_440_000_000
TIMEOUT = 10.0


def make_ticks(n: int, start_msc: int = START_MSC, seed: int = 0) -> TickArray:
    """``n`` ticks in time order, some sharing a millisecond, ``time`` = ``time_msc // 1000``
    as the codec derives it, so stored ticks compare equal field by field."""
    rng = np.random.default_rng(seed)
    ticks = empty_ticks(n)
    ticks["time_msc"] = start_msc + np.cumsum(rng.integers(0, 400, n))
    ticks["time"] = ticks["time_msc"] // 1000
    ticks["bid"] = np.round(1.05 + np.cumsum(rng.normal(0, 1e-4, n)), 5)
    ticks["ask"] = ticks["bid"] + 8e-5
    ticks["last"] = 0.0
    ticks["volume"] = rng.integers(0, 5, n)
    ticks["volume_real"] = ticks["volume"] * 1.5
    ticks["flags"] = rng.choice([2, 4, 6], n)
    return ticks


def messages(
    count: int, per_block: int = 50, symbols: Sequence[str] = ("EURUSD", "XAUUSD")
) -> list[list[Block]]:
    """``count`` messages of one block per symbol, time-ordered per symbol across messages."""
    out = []
    for i in range(count):
        out.append(
            [
                Block(sym, make_ticks(per_block, START_MSC + i * 1_000_000, seed=i * 31 + k))
                for k, sym in enumerate(symbols)
            ]
        )
    return out


def concat(msgs: Sequence[Sequence[Block]], symbol: str | None = None) -> TickArray:
    parts = [b.ticks for blocks in msgs for b in blocks if symbol is None or b.symbol == symbol]
    return np.concatenate(parts) if parts else empty_ticks(0)


def new_session() -> str:
    return uuid.uuid4().hex


async def recv_json(ws: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
    return doc


async def say_hello(
    ws: ClientConnection, client_id: str, session: str, resume_from: int = 0
) -> int:
    """Send hello, return ``welcome.last_seq``."""
    await ws.send(encode_hello(client_id, session, resume_from).decode())
    welcome = await recv_json(ws)
    assert welcome["type"] == "welcome", welcome
    return int(welcome["last_seq"])


async def send_ticks(ws: ClientConnection, seq: int, blocks: Sequence[Block]) -> None:
    await ws.send(encode_ticks(seq, blocks).decode())


async def wait_ack(ws: ClientConnection, seq: int, timeout: float = TIMEOUT) -> None:
    """Read until a cumulative ack covers ``seq``."""
    while True:
        doc = await recv_json(ws, timeout)
        assert doc["type"] == "ack", doc
        if doc["seq"] >= seq:
            return


async def wait_closed(
    ws: ClientConnection, timeout: float = TIMEOUT
) -> tuple[list[dict[str, Any]], int | None]:
    """Every message until the bridge closes the connection, and the close code it sent."""
    got: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                got.append(orjson.loads(await ws.recv()))
    except ConnectionClosed as exc:
        return got, exc.rcvd.code if exc.rcvd is not None else None


async def poll_until(
    check: Callable[[], Awaitable[bool]], timeout: float = TIMEOUT, what: str = "condition"
) -> None:
    """Ask a server until ``check`` holds (for states only a request can observe)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


def open_ws(url: str) -> Any:
    return connect(url, max_size=None, compression=None, open_timeout=TIMEOUT)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "backend.sqlite"


@pytest.fixture
async def backend(db_path: Path) -> AsyncIterator[ReferenceBackend]:
    async with ReferenceBackend(
        bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path
    ) as running:
        yield running
