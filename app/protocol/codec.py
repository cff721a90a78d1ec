"""Protocol v2 of the data bridge: typed binary messages, ticks as raw dtype bytes.

Every frame is one MessagePack map with a ``type`` tag, decoded straight into the
``msgspec`` structs below. Ticks travel as the exact little-endian bytes of
:data:`app.ticks.TICK_DTYPE` (60 bytes a tick), one ``(symbol, bytes)`` pair per block,
so encoding is one copy of each block into the frame and decoding is one copy out of it
plus ``np.frombuffer`` — never one Python object per tick (protocol v1 sent JSON lists:
about ten copies and a Python float per field; it capped the pipeline at a twentieth of
what the socket carries).

One type for "the ticks of one symbol": :class:`app.ticks.TickBatch`. A ``Ticks``
message is encoded from batches and decoded back into batches; the wire pair is an
encoding detail of this module.

Frame size is bounded by construction: the bridge announces its limit in ``welcome``
and :func:`ticks_frame_bytes` gives the exact encoded size of a message before it is
encoded, so the link can cut and split to stay under it.

Both sides validate the form here, before anything is stored: a malformed message is
refused whole with a :class:`ProtocolError` whose ``code`` goes into the bridge's error
reply. Limits are checked before the work they bound: the number of blocks of a
``Ticks`` message is read from its MessagePack array header before a single block is
decoded (a 15 MB frame of one-tick blocks used to cost every other client seconds).
The values the ticks carry are judged by :mod:`app.protocol.validation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, TypeVar

import msgspec
import numpy as np
import orjson

from app.protocol import validation
from app.protocol.validation import symbol_ok
from app.ticks import TICK_DTYPE, TickArray, TickBatch

#: The version this module speaks. v1 (JSON text frames) is refused with ``bad_version``.
PROTOCOL_VERSION: Final = 2
#: Versions a client may offer in ``hello.versions``, newest first.
SUPPORTED_VERSIONS: Final = (2,)
#: The bridge's frame limit when it announces none (and the reference bridge's default).
DEFAULT_MAX_FRAME_BYTES: Final = 16 * 2**20
#: The smallest limit a bridge may announce: a frame must hold a hello and one tick.
MIN_MAX_FRAME_BYTES: Final = 4096
#: Bytes of one tick on the wire (``TICK_DTYPE.itemsize``).
TICK_BYTES: Final = TICK_DTYPE.itemsize
#: Most blocks one ``Ticks`` message may carry (the link cuts its messages to fit).
MAX_BLOCKS_PER_MESSAGE: Final = 4096
#: Most distinct symbols one ``Ticks`` message may carry.
MAX_SYMBOLS_PER_MESSAGE: Final = 1024
#: Longest symbol name; defined with the other value rules in :mod:`app.protocol.validation`.
MAX_SYMBOL_LENGTH: Final = validation.MAX_SYMBOL_LENGTH
MAX_ID_LENGTH: Final = 200
#: Largest error text either side sends; a refusal never echoes a payload.
MAX_TEXT: Final = 200
#: The optional features a peer may name in ``hello.features`` / ``welcome.features``.
#: A feature is used only when both sides name it, so an old peer (which names none and
#: ignores the field) never receives a message type it cannot decode.
FEATURE_SIGNALS: Final = "signals"
KNOWN_FEATURES: Final = frozenset({FEATURE_SIGNALS})


class ProtocolError(ValueError):
    """A message that breaks the protocol; ``code`` goes into the bridge's error reply."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------ messages
class _Message(msgspec.Struct, frozen=True, tag_field="type", forbid_unknown_fields=False):
    pass


class Hello(_Message, frozen=True, tag="hello"):
    """First message of the client. ``resume_from``: the highest seq it holds an ack for.

    ``credential`` is reserved for the bridge's authentication (an opaque token the
    client got from the gateway); bridges that do not check it ignore it.
    """

    client_id: str
    session: str
    resume_from: int
    versions: list[int] = msgspec.field(default_factory=lambda: list(SUPPORTED_VERSIONS))
    credential: str | None = None
    #: Optional features the client speaks (``"signals"``); absent in old clients.
    features: list[str] = msgspec.field(default_factory=list)


class Welcome(_Message, frozen=True, tag="welcome"):
    """The bridge's answer: the version it speaks, what it stored, its frame limit."""

    last_seq: int
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    version: int = PROTOCOL_VERSION
    #: The hello's features this bridge will use on this connection (a subset of them).
    features: list[str] = msgspec.field(default_factory=list)


class Ticks(_Message, frozen=True, tag="ticks"):
    """Message ``seq`` of the session: one ``(symbol, raw tick bytes)`` pair per block."""

    seq: int
    blocks: list[tuple[str, bytes]]


class Lost(_Message, frozen=True, tag="lost"):
    """Message ``seq`` existed but the client cannot send it (its spool record is damaged).

    The bridge counts it in ``lost_batches`` and takes ``seq`` as stored, so that the
    messages after it are not refused as a gap. ``ticks`` is how many it held, when known.
    """

    seq: int
    ticks: int = 0
    reason: str = ""


class Ack(_Message, frozen=True, tag="ack"):
    """Cumulative: every seq up to ``seq`` is stored durably."""

    seq: int


class Error(_Message, frozen=True, tag="error"):
    """Sent before the bridge closes the connection."""

    code: str
    message: str


class Signal(_Message, frozen=True, tag="signal"):
    """Bridge → client: a trading signal from an AI service (feature ``signals``).

    Sent again until the client's :class:`SignalReceived` for ``id``; the client
    executes a signal id at most once, whatever the resends. Exactly one of ``volume``
    (lots) and ``risk_pct`` (percent of equity risked down to ``sl``) is set. Times are
    epoch milliseconds UTC; ``price`` is the service's price hint (not a limit).
    Value rules: :mod:`app.protocol.signal_rules`.
    """

    id: str
    source: str
    symbol: str
    side: str
    valid_until_ms: int
    created_at_ms: int
    volume: float | None = None
    risk_pct: float | None = None
    sl: float | None = None
    tp: float | None = None
    price: float | None = None
    comment: str = ""


class SignalReceived(_Message, frozen=True, tag="signal_received"):
    """Client → bridge: signal ``id`` arrived (sent at once, again for every resend)."""

    id: str
    received_at_ms: int


class SignalOutcome(_Message, frozen=True, tag="signal_outcome"):
    """Client → bridge: what became of signal ``id``. Sent until :class:`OutcomeStored`
    names it; the bridge keeps the first outcome of an id (a resend changes nothing).

    ``outcome`` is one of ``executed``, ``refused``, ``rejected``, ``expired``,
    ``dismissed``; ``ticket`` the position (or order) ticket when executed.
    """

    id: str
    outcome: str
    reason: str = ""
    ticket: int = 0
    price: float = 0.0
    slippage_points: float | None = None
    latency_ms: float | None = None


class OutcomeStored(_Message, frozen=True, tag="outcome_stored"):
    """Bridge → client: the outcome of signal ``id`` is stored; stop resending it."""

    id: str


ClientMessage = Hello | Ticks | Lost
BridgeMessage = Welcome | Ack | Error | Signal | OutcomeStored
#: Client messages of the ``signals`` feature (handled beside the tick rules).
SignalMessage = SignalReceived | SignalOutcome


class _TicksHead(_Message, frozen=True, tag="ticks"):
    """A ``Ticks`` message with its blocks still encoded, to check their count first."""

    seq: int
    blocks: msgspec.Raw


_M = TypeVar("_M")
_ENCODER: Final = msgspec.msgpack.Encoder()
_CLIENT_DECODER: Final[
    msgspec.msgpack.Decoder[Hello | _TicksHead | Lost | SignalReceived | SignalOutcome]
] = msgspec.msgpack.Decoder(Hello | _TicksHead | Lost | SignalReceived | SignalOutcome)
_BLOCKS_DECODER: Final = msgspec.msgpack.Decoder(list[tuple[str, bytes]])
_BRIDGE_DECODER: Final = msgspec.msgpack.Decoder(BridgeMessage)


# ------------------------------------------------------------------ encoding
def encode(message: _Message) -> bytes:
    return _ENCODER.encode(message)


def encode_ticks(seq: int, batches: Sequence[TickBatch]) -> bytes:
    """The frame of message ``seq``: each batch's ticks copied once, as raw bytes."""
    return _ENCODER.encode(Ticks(seq, [(b.symbol, _raw(b.ticks)) for b in batches]))


def _raw(ticks: TickArray) -> Any:
    """A zero-copy byte view of a tick array (msgspec encodes a memoryview as binary)."""
    return np.ascontiguousarray(ticks, dtype=TICK_DTYPE).view(np.uint8).data


# Exact MessagePack sizes, so a message can be sized before it is encoded.
def _str_bytes(n: int) -> int:
    return n + (1 if n < 32 else 2 if n < 2**8 else 3 if n < 2**16 else 5)


def _bin_bytes(n: int) -> int:
    return n + (2 if n < 2**8 else 3 if n < 2**16 else 5)


def _uint_bytes(v: int) -> int:
    return 1 if v < 128 else 2 if v < 2**8 else 3 if v < 2**16 else 5 if v < 2**32 else 9


def _array_header(n: int) -> int:
    return 1 if n < 16 else 3 if n < 2**16 else 5


def block_bytes(symbol: str, n_ticks: int) -> int:
    """Encoded size of one block: a 2-array of the symbol and ``n_ticks`` ticks."""
    return 1 + _str_bytes(len(symbol.encode())) + _bin_bytes(n_ticks * TICK_BYTES)


def ticks_frame_bytes(seq: int, n_blocks: int, blocks_bytes: int) -> int:
    """Exact size of a ``Ticks`` frame whose blocks take ``blocks_bytes`` in total."""
    # fixmap(3) + "type" + "ticks" + "seq" + seq + "blocks" + array header + blocks
    return (
        1
        + _str_bytes(4)
        + _str_bytes(5)
        + _str_bytes(3)
        + _uint_bytes(seq)
        + _str_bytes(6)
        + _array_header(n_blocks)
        + blocks_bytes
    )


#: Upper bound of a frame's size beyond its blocks (seq up to 2**64, any block count).
FRAME_OVERHEAD: Final = ticks_frame_bytes(2**63, 2**16, 0)


def max_ticks_per_block(symbol: str, budget: int) -> int:
    """Most ticks of ``symbol`` whose block fits in ``budget`` bytes (0 if none does)."""
    fixed = block_bytes(symbol, 0) + 3  # + the widest bin header growth (2 → 5 bytes)
    return max(0, (budget - fixed) // TICK_BYTES)


# ------------------------------------------------------------------ decoding
def decode_client(frame: bytes | str) -> ClientMessage | SignalMessage:
    """A client frame, typed; ProtocolError for anything else (v1 text frames included).

    A ``Ticks`` message with more than :data:`MAX_BLOCKS_PER_MESSAGE` blocks is refused
    (``too_many_blocks``) from its array header, before any block is decoded.
    """
    message = _decode(_CLIENT_DECODER, frame)
    if not isinstance(message, _TicksHead):
        return message
    raw = bytes(memoryview(message.blocks)[:5])
    n = _array_length(raw)
    if n is None:
        raise ProtocolError("bad_message", "'blocks' must be a list")
    if n > MAX_BLOCKS_PER_MESSAGE:
        raise ProtocolError(
            "too_many_blocks",
            f"message {message.seq} has {n} blocks; at most {MAX_BLOCKS_PER_MESSAGE} are accepted",
        )
    try:
        blocks = _BLOCKS_DECODER.decode(message.blocks)
    except msgspec.DecodeError as exc:
        raise ProtocolError("bad_message", _short(f"not a protocol v2 message: {exc}")) from None
    return Ticks(message.seq, blocks)


def _array_length(head: bytes) -> int | None:
    """The element count of a MessagePack array from its first bytes (None: no array)."""
    if not head:
        return None
    b = head[0]
    if 0x90 <= b <= 0x9F:
        return b & 0x0F
    if b == 0xDC and len(head) >= 3:
        return int.from_bytes(head[1:3], "big")
    if b == 0xDD and len(head) >= 5:
        return int.from_bytes(head[1:5], "big")
    return None


def decode_bridge(frame: bytes | str) -> BridgeMessage:
    """A bridge frame, typed; ProtocolError for anything else."""
    return _decode(_BRIDGE_DECODER, frame)


def _decode(decoder: msgspec.msgpack.Decoder[_M], frame: bytes | str) -> _M:
    if isinstance(frame, str):
        raise _text_frame_error(frame)
    try:
        return decoder.decode(frame)
    except msgspec.DecodeError as exc:
        raise ProtocolError("bad_message", _short(f"not a protocol v2 message: {exc}")) from None


def _text_frame_error(frame: str) -> ProtocolError:
    try:
        doc = orjson.loads(frame)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and doc.get("type") in {"hello", "ticks", "welcome", "error"}:
        version = doc.get("version", 1)
        # The version is the peer's text: cut it short so the refusal never echoes a payload.
        return ProtocolError(
            "bad_version",
            f"protocol version {repr(version)[:20]} (JSON text frames) is not "
            f"supported; this side speaks version {PROTOCOL_VERSION} (binary MessagePack)",
        )
    return ProtocolError("bad_message", "text frame: protocol v2 frames are binary")


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def check_hello(hello: Hello) -> None:
    """Refuse a hello the bridge cannot serve (ids, seq, no common version)."""
    for name, value in (("client_id", hello.client_id), ("session", hello.session)):
        if not value or len(value) > MAX_ID_LENGTH or not value.isprintable():
            raise ProtocolError(
                "bad_message", f"'{name}' must be 1..{MAX_ID_LENGTH} printable characters"
            )
    if not 0 <= hello.resume_from < 2**63:
        raise ProtocolError("bad_message", "'resume_from' must be an integer in 0..2^63-1")
    if PROTOCOL_VERSION not in hello.versions:
        raise ProtocolError(
            "bad_version",
            _short(f"versions {hello.versions} offered; this bridge speaks {PROTOCOL_VERSION}"),
        )


def ticks_batches(message: Ticks) -> list[TickBatch]:
    """The blocks of a ``Ticks`` message as batches, checked for form: seq, symbols,
    whole ticks, and the symbols-per-message limit.

    The values are judged by :func:`app.protocol.validation.validate_blocks` (the bridge
    runs it next, with its clock). The arrays are read-only views of one copy each.
    """
    if not 1 <= message.seq < 2**63:
        raise ProtocolError("bad_message", "'seq' must be an integer in 1..2^63-1")
    if not message.blocks:
        raise ProtocolError("bad_message", "'blocks' must be a non-empty list")
    if len(message.blocks) > MAX_BLOCKS_PER_MESSAGE:
        raise ProtocolError(
            "too_many_blocks", f"at most {MAX_BLOCKS_PER_MESSAGE} blocks per message"
        )
    out = []
    for i, (symbol, raw) in enumerate(message.blocks):
        if not symbol_ok(symbol):
            raise ProtocolError(
                "bad_message",
                f"block {i}: 'symbol' must be 1..{MAX_SYMBOL_LENGTH} printable characters",
            )
        if not raw or len(raw) % TICK_BYTES:
            raise ProtocolError(
                "bad_message",
                f"block {i} ({symbol}): {len(raw)} bytes is not a positive multiple "
                f"of {TICK_BYTES}",
            )
        out.append(TickBatch(symbol, np.frombuffer(raw, dtype=TICK_DTYPE)))
    symbols = len({b.symbol for b in out})
    if symbols > MAX_SYMBOLS_PER_MESSAGE:
        raise ProtocolError(
            "too_many_symbols",
            f"message {message.seq} has {symbols} symbols; at most "
            f"{MAX_SYMBOLS_PER_MESSAGE} are accepted",
        )
    return out


# ------------------------------------------------------------------ reading frames as text
def to_text(frame: bytes | str, *, rows: int = 5) -> dict[str, Any]:
    """A frame as a JSON-able dict for humans (``backend dump``): ticks as rows, the
    first and last ``rows`` of each block."""
    try:
        message: _Message = decode_client(frame)
    except ProtocolError:
        message = decode_bridge(frame)
    doc: dict[str, Any] = {
        "type": type(message).__struct_config__.tag,
        **msgspec.structs.asdict(message),
    }
    if isinstance(message, Ticks):
        blocks = []
        for symbol, raw in message.blocks:
            ticks = np.frombuffer(raw, dtype=TICK_DTYPE) if len(raw) % TICK_BYTES == 0 else None
            if ticks is None:
                blocks.append({"symbol": symbol, "bytes": len(raw), "error": "not whole ticks"})
                continue
            shown = (
                ticks if len(ticks) <= 2 * rows else np.concatenate([ticks[:rows], ticks[-rows:]])
            )
            blocks.append(
                {
                    "symbol": symbol,
                    "n": len(ticks),
                    "columns": list(TICK_DTYPE.names or ()),
                    "rows": [[v.item() for v in row] for row in shown],
                    "elided": max(0, len(ticks) - 2 * rows),
                }
            )
        doc["blocks"] = blocks
    if isinstance(message, Hello) and message.credential is not None:
        doc["credential"] = "***"
    return doc
