"""Messages between a worker process and its supervisor, as bytes on a pipe.

Tick batches cross the process boundary as the raw bytes of their numpy array behind a
small header, never pickled tick by tick; status changes are small JSON documents.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from app.ticks import TICK_DTYPE, TickBatch

_TICKS = b"T"
_STATUS = b"S"
_HEARTBEAT = b"H"
_STOP = b"Q"

# symbol length, worker id, captured_at
_TICK_HEADER = struct.Struct("<HId")


@dataclass(frozen=True, slots=True)
class StatusMsg:
    """A worker's report of its own state, with the terminal's error when there is one."""

    state: str
    error_code: int = 0
    error_text: str = ""
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HeartbeatMsg:
    """Proof of life while the market is quiet, so a hung terminal shows up as a stall."""


@dataclass(frozen=True, slots=True)
class StopMsg:
    """Supervisor to worker: finish the current poll and exit cleanly."""


WorkerMessage = TickBatch | StatusMsg | HeartbeatMsg | StopMsg

HEARTBEAT_BYTES = _HEARTBEAT
STOP_BYTES = _STOP


class WireError(ValueError):
    """A message that does not decode: the peer is broken and must be restarted."""


def encode_batch(batch: TickBatch) -> bytes:
    name = batch.symbol.encode()
    header = _TICK_HEADER.pack(len(name), batch.worker_id, batch.captured_at)
    return b"".join((_TICKS, header, name, batch.ticks.tobytes()))


def encode_status(msg: StatusMsg) -> bytes:
    body = {"state": msg.state, "code": msg.error_code, "text": msg.error_text, "info": msg.info}
    return _STATUS + orjson.dumps(body)


def encode(msg: WorkerMessage) -> bytes:
    if isinstance(msg, TickBatch):
        return encode_batch(msg)
    if isinstance(msg, StatusMsg):
        return encode_status(msg)
    if isinstance(msg, HeartbeatMsg):
        return _HEARTBEAT
    return _STOP


def decode(data: bytes) -> WorkerMessage:
    kind, body = data[:1], memoryview(data)[1:]
    if kind == _TICKS:
        if len(body) < _TICK_HEADER.size:
            raise WireError("tick message shorter than its header")
        name_len, worker_id, captured_at = _TICK_HEADER.unpack_from(body)
        start = _TICK_HEADER.size + name_len
        payload = body[start:]
        if len(payload) % TICK_DTYPE.itemsize:
            raise WireError(f"tick payload of {len(payload)} bytes is not a whole number of ticks")
        symbol = bytes(body[_TICK_HEADER.size : start]).decode()
        # frombuffer over bytes is read-only; copy so consumers own a normal array.
        ticks = np.frombuffer(payload, dtype=TICK_DTYPE).copy()
        return TickBatch(symbol, ticks, worker_id, captured_at)
    if kind == _STATUS:
        try:
            doc = orjson.loads(body)
            return StatusMsg(doc["state"], int(doc["code"]), str(doc["text"]), dict(doc["info"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise WireError(f"bad status message: {exc}") from exc
    if kind == _HEARTBEAT:
        return HeartbeatMsg()
    if kind == _STOP:
        return StopMsg()
    raise WireError(f"unknown message kind {bytes(kind)!r}")
