"""The data bridge's message format, both directions, in one place.

Ticks travel columnar (one JSON array per tick field) so that a batch encodes with one
``orjson`` call over numpy arrays and stays readable from any backend language. The
bridge side validates everything before it stores anything: a malformed message is
refused whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from app.ticks import TICK_DTYPE, TickArray

PROTOCOL_VERSION = 1
#: Largest frame either side accepts (websockets ``max_size``).
MAX_FRAME_BYTES = 16 * 2**20

#: Tick columns on the wire, in the order of :data:`app.ticks.TICK_DTYPE` (minus ``time``,
#: which is ``time_msc // 1000``).
COLUMNS: tuple[str, ...] = ("time_msc", "bid", "ask", "last", "volume", "volume_real", "flags")

_OPTS = orjson.OPT_SERIALIZE_NUMPY


class ProtocolError(ValueError):
    """A message that breaks the protocol; ``code`` goes into the bridge's error reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Block:
    symbol: str
    ticks: TickArray


# ------------------------------------------------------------------ client → bridge
def encode_hello(client_id: str, session: str, resume_from: int) -> bytes:
    return orjson.dumps(
        {
            "type": "hello",
            "version": PROTOCOL_VERSION,
            "client_id": client_id,
            "session": session,
            "resume_from": resume_from,
        }
    )


def encode_ticks(seq: int, blocks: Sequence[Block]) -> bytes:
    return orjson.dumps(
        {
            "type": "ticks",
            "seq": seq,
            # Field views of a structured array are strided; orjson needs each column
            # contiguous, which one small copy per column gives.
            "blocks": [
                {"symbol": b.symbol, **{c: np.ascontiguousarray(b.ticks[c]) for c in COLUMNS}}
                for b in blocks
            ],
        },
        option=_OPTS,
    )


# ------------------------------------------------------------------ bridge → client
def encode_welcome(last_seq: int) -> bytes:
    return orjson.dumps({"type": "welcome", "last_seq": last_seq})


def encode_ack(seq: int) -> bytes:
    return orjson.dumps({"type": "ack", "seq": seq})


def encode_error(code: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "code": code, "message": message})


# ------------------------------------------------------------------ decoding
def decode(data: bytes | str) -> dict[str, Any]:
    """Parse one frame into a dict with a string ``type``; ProtocolError otherwise."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError("bad_message", f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
        raise ProtocolError("bad_message", "a message must be a JSON object with a 'type'")
    return doc


def _int_field(doc: dict[str, Any], name: str, minimum: int = 0) -> int:
    value = doc.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ProtocolError("bad_message", f"'{name}' must be an integer >= {minimum}")
    return value


def _str_field(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ProtocolError("bad_message", f"'{name}' must be a non-empty string")
    return value


@dataclass(frozen=True, slots=True)
class Hello:
    client_id: str
    session: str
    resume_from: int


def parse_hello(doc: dict[str, Any]) -> Hello:
    if doc["type"] != "hello":
        raise ProtocolError("bad_message", f"expected hello first, got {doc['type']!r}")
    version = doc.get("version", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        raise ProtocolError("bad_version", f"protocol version {version!r} is not supported")
    return Hello(
        _str_field(doc, "client_id"), _str_field(doc, "session"), _int_field(doc, "resume_from")
    )


def parse_ticks(doc: dict[str, Any]) -> tuple[int, list[Block]]:
    """The seq and the tick blocks of a ``ticks`` message, validated column by column."""
    seq = _int_field(doc, "seq", 1)
    raw_blocks = doc.get("blocks")
    if not isinstance(raw_blocks, list) or not raw_blocks:
        raise ProtocolError("bad_message", "'blocks' must be a non-empty list")
    blocks = []
    for i, raw in enumerate(raw_blocks):
        if not isinstance(raw, dict):
            raise ProtocolError("bad_message", f"block {i} is not an object")
        symbol = raw.get("symbol")
        if not isinstance(symbol, str) or not symbol or len(symbol) > 64:
            raise ProtocolError("bad_message", f"block {i}: 'symbol' must be a short string")
        columns = {c: raw.get(c) for c in COLUMNS}
        lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
        if len(lengths) != 1 or -1 in lengths or 0 in lengths:
            raise ProtocolError(
                "bad_message",
                f"block {i} ({symbol}): every column must be a list of one length >= 1",
            )
        ticks = np.zeros(len(columns["time_msc"] or ()), dtype=TICK_DTYPE)
        try:
            for name, values in columns.items():
                arr = np.asarray(values)
                if arr.dtype.kind not in "iuf" or arr.ndim != 1:
                    raise ValueError(f"column {name} is not numeric")
                if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                    raise ValueError(f"column {name} holds NaN or infinity")
                ticks[name] = arr
        except (ValueError, TypeError, OverflowError) as exc:
            raise ProtocolError("bad_message", f"block {i} ({symbol}): {exc}") from None
        tm = ticks["time_msc"]
        if np.any(tm[1:] < tm[:-1]):
            raise ProtocolError("bad_message", f"block {i} ({symbol}): time_msc goes backwards")
        ticks["time"] = tm // 1000
        blocks.append(Block(symbol, ticks))
    return seq, blocks
