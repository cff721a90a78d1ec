"""Messages between a worker process and its supervisor, as bytes on a pipe.

Tick batches cross the process boundary as the raw bytes of their numpy array behind a
small header, never pickled tick by tick; status changes are small JSON documents.
Calls of the terminal's API (``CallMsg`` → ``ReplyMsg``, the trading path) are pickled:
their arguments and answers are small, and pickle keeps the module's named tuples
(``OrderSendResult``, ``TradePosition`` ...) intact. Both ends are our own ``spawn``
processes running the same code, so unpickling is no wider trust than running it.
"""

from __future__ import annotations

import pickle
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
_CALL = b"C"
_REPLY = b"R"

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


@dataclass(frozen=True, slots=True)
class CallMsg:
    """Supervisor to worker: call ``method`` of the terminal API with ``kwargs``."""

    id: int
    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: Positional arguments (``order_send(request)``: the module's functions are not
    #: all callable by keyword).
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplyMsg:
    """Worker to supervisor: the answer to call ``id``. ``error`` is the terminal's
    ``(code, text)`` when the call failed (``None`` answer, or refused by the worker);
    then ``result`` is ``None``."""

    id: int
    result: Any = None
    error: tuple[int, str] | None = None


WorkerMessage = TickBatch | StatusMsg | HeartbeatMsg | StopMsg | CallMsg | ReplyMsg

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
    if isinstance(msg, CallMsg):
        return _CALL + pickle.dumps(
            (msg.id, msg.method, msg.kwargs, msg.args), pickle.HIGHEST_PROTOCOL
        )
    if isinstance(msg, ReplyMsg):
        return _REPLY + pickle.dumps((msg.id, msg.result, msg.error, None), pickle.HIGHEST_PROTOCOL)
    return _STOP


def decode(data: bytes | bytearray) -> WorkerMessage:
    """One message; a large one may come as the ``bytearray`` it was gathered into
    (app/connector/loop_reader.py), whose ticks are then viewed read-only as well."""
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
        # A read-only view of the received bytes, no copy: the collector shares one
        # read-only array with every subscriber anyway, and at full speed the copy
        # (a fresh 600 kB array per batch) was a tenth of the app's CPU.
        ticks = np.frombuffer(payload, dtype=TICK_DTYPE)
        if ticks.flags.writeable:  # gathered into a bytearray: still nobody edits it
            ticks.flags.writeable = False
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
    if kind in (_CALL, _REPLY):
        try:
            a, b, c, d = pickle.loads(body)
        except Exception as exc:  # unpickling can raise nearly anything on bad bytes
            raise WireError(f"bad call/reply message: {exc}") from exc
        if kind == _CALL:
            return CallMsg(int(a), str(b), dict(c), tuple(d))
        return ReplyMsg(int(a), b, None if c is None else (int(c[0]), str(c[1])))
    raise WireError(f"unknown message kind {bytes(kind)!r}")
