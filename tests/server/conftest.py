"""A reference backend on ephemeral loopback ports, and raw protocol v2 helpers for its
peers (binary frames built with the codec's own encoders, answers decoded to structs)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.protocol.codec import (
    Ack,
    BridgeMessage,
    Hello,
    Welcome,
    decode_bridge,
    encode,
    encode_ticks,
)
from app.server import ReferenceBackend
from app.server.users import Principal, UserStore, users_path
from app.ticks import TickArray, TickBatch, empty_ticks

#: The tests' key: an admin, so any client id works (authorization has tests of its own).
ADMIN_KEY = "tests-admin-key-0123456789abcdef0123456789"
KEYS = {ADMIN_KEY: Principal("@tests", frozenset(), admin=True)}
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def add_user(
    db_path: Path,
    name: str = "trader",
    password: str = "trader",
    clients: Sequence[str] = ("desk-1", "desk-2"),
    *,
    admin: bool = False,
) -> str:
    """A user in the users file of the backend at ``db_path``; returns its credential."""
    UserStore(users_path(db_path)).add(name, password, list(clients), admin=admin)
    return f"{name}:{password}"


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
) -> list[list[TickBatch]]:
    """``count`` messages of one batch per symbol, time-ordered per symbol across messages."""
    out = []
    for i in range(count):
        out.append(
            [
                TickBatch(sym, make_ticks(per_block, START_MSC + i * 1_000_000, seed=i * 31 + k))
                for k, sym in enumerate(symbols)
            ]
        )
    return out


def concat(msgs: Sequence[Sequence[TickBatch]], symbol: str | None = None) -> TickArray:
    parts = [b.ticks for batches in msgs for b in batches if symbol is None or b.symbol == symbol]
    return np.concatenate(parts) if parts else empty_ticks(0)


def new_session() -> str:
    return uuid.uuid4().hex


async def recv_msg(ws: ClientConnection, timeout: float = TIMEOUT) -> BridgeMessage:
    """The bridge's next message; a text frame fails (v2 bridges send binary only)."""
    frame = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(frame, bytes), f"expected a binary frame, got text {frame!r}"
    return decode_bridge(frame)


async def hello(
    ws: ClientConnection,
    client_id: str,
    session: str,
    resume_from: int = 0,
    credential: str | None = ADMIN_KEY,
) -> Welcome:
    """Send hello, return the welcome."""
    await ws.send(encode(Hello(client_id, session, resume_from, credential=credential)))
    welcome = await recv_msg(ws)
    assert isinstance(welcome, Welcome), welcome
    return welcome


async def say_hello(
    ws: ClientConnection,
    client_id: str,
    session: str,
    resume_from: int = 0,
    credential: str | None = ADMIN_KEY,
) -> int:
    """Send hello, return ``welcome.last_seq``."""
    return (await hello(ws, client_id, session, resume_from, credential)).last_seq


async def send_ticks(ws: ClientConnection, seq: int, batches: Sequence[TickBatch]) -> None:
    await ws.send(encode_ticks(seq, batches))


async def wait_ack(ws: ClientConnection, seq: int, timeout: float = TIMEOUT) -> None:
    """Read until a cumulative ack covers ``seq``."""
    while True:
        msg = await recv_msg(ws, timeout)
        assert isinstance(msg, Ack), msg
        if msg.seq >= seq:
            return


async def wait_closed(
    ws: ClientConnection, timeout: float = TIMEOUT
) -> tuple[list[BridgeMessage], int | None]:
    """Every message until the bridge closes the connection, and the close code it sent."""
    got: list[BridgeMessage] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                got.append(await recv_msg(ws))
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
    add_user(db_path)
    async with ReferenceBackend(
        bridge_port=0, gateway_port=0, hub_port=0, db_path=db_path, keys=KEYS
    ) as running:
        yield running
