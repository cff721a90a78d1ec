"""Read a tick stream back, independently of the sink: every message, its key, its ticks.

Tests compare this with the truth (the simulated terminal's own history, or the batches
they offered), never with the sink's counters.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import nats
import numpy as np
import numpy.typing as npt

from app.nats.subjects import LOST_TOKEN, BlockKey, untoken
from app.protocol import codec
from app.ticks import TICK_DTYPE


@dataclass(frozen=True, slots=True)
class Stored:
    key: BlockKey
    subject: str
    symbol: str | None  # None: a lost marker
    ticks: npt.NDArray[np.void]
    lost: codec.Lost | None = None


async def read_stream(servers: str | list[str], stream: str = "TICKS") -> list[Stored]:
    """Every message of ``stream``, in stream order (an ordered consumer from the start)."""
    urls = servers.split(",") if isinstance(servers, str) else servers
    nc = await nats.connect(servers=urls, connect_timeout=5)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(stream)).state.messages
        out: list[Stored] = []
        if total == 0:
            return out
        sub = await js.subscribe("ticks.>", stream=stream, ordered_consumer=True)
        while len(out) < total:
            msg = await sub.next_msg(timeout=10)
            key = BlockKey.from_headers(msg.headers)
            decoded = codec.decode_client(msg.data)
            sym_token = msg.subject.split(".", 2)[2]
            if sym_token == LOST_TOKEN:
                assert isinstance(decoded, codec.Lost)
                out.append(Stored(key, msg.subject, None, np.zeros(0, TICK_DTYPE), decoded))
                continue
            assert isinstance(decoded, codec.Ticks)
            (batch,) = codec.ticks_batches(decoded)
            assert batch.symbol == untoken(sym_token)
            out.append(Stored(key, msg.subject, batch.symbol, batch.ticks))
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


async def message_count(servers: str, stream: str = "TICKS") -> int:
    """Messages in ``stream`` now (0 while it or the server is not there)."""
    try:
        nc = await nats.connect(servers=servers.split(","), connect_timeout=2)
    except Exception:
        return 0
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    except Exception:
        return 0
    finally:
        await nc.close()


def read_stream_sync(servers: str | list[str], stream: str = "TICKS") -> list[Stored]:
    return asyncio.run(read_stream(servers, stream))


def doubled_keys(stored: list[Stored]) -> list[BlockKey]:
    return [k for k, n in Counter(s.key for s in stored).items() if n > 1]


def ticks_by_symbol(stored: list[Stored]) -> dict[str, npt.NDArray[np.void]]:
    """Each symbol's ticks in (session, seq, idx) order: the order they were captured."""
    parts: dict[str, list[npt.NDArray[np.void]]] = {}
    for s in sorted(stored, key=lambda s: (s.key.session, s.key.seq, s.key.idx)):
        if s.symbol is not None:
            parts.setdefault(s.symbol, []).append(s.ticks)
    return {sym: np.concatenate(p) for sym, p in parts.items()}
