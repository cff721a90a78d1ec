"""The stream consumer's rules, without I/O: what a message is, and what to report.

Why pure: which messages are stored, which are terminated as foreign, and when a kind of
garbage is worth a log line are decisions a property test can drive with any bytes;
``store_consumer`` only fetches, commits and acks.

Every message on the tick stream is judged by :func:`classify`:

- a block (one protocol v2 ``ticks`` frame of ONE block, the ``Tc-*`` headers of
  :class:`app.nats.subjects.BlockKey`, the frame's seq equal to the header's) → stored
  once by its key, then acked;
- a ``lost`` marker → recorded once, counted like the bridge counts a ``lost`` frame,
  then acked;
- anything else (no headers, not protocol v2, another message type, several blocks,
  mismatched seq) → :class:`Foreign`: counted per kind, logged the first time a kind is
  seen, and terminated so the stream never redelivers it and never blocks on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.nats.subjects import BlockKey
from app.protocol import codec
from app.server.store import KeyedBlock, KeyedLost


@dataclass(frozen=True, slots=True)
class Foreign:
    """A message that is not a trading client's block: ``kind`` names why (a fixed set)."""

    kind: str
    detail: str


Judged = KeyedBlock | KeyedLost | Foreign


def classify(headers: Mapping[str, str] | None, data: bytes) -> Judged:
    """What a message of the tick stream is (see the module docstring)."""
    try:
        key = BlockKey.from_headers(dict(headers) if headers else None)
    except ValueError as exc:
        return Foreign("headers", str(exc))
    try:
        message = codec.decode_client(data)
    except codec.ProtocolError as exc:
        return Foreign("payload", str(exc))
    if isinstance(message, codec.Lost):
        if message.seq != key.seq:
            return Foreign("seq_mismatch", f"lost seq {message.seq} under header seq {key.seq}")
        return KeyedLost(key.client_id, key.session, key.seq, message.ticks, message.reason)
    if not isinstance(message, codec.Ticks):
        return Foreign("message_type", f"a {type(message).__name__} frame on the tick stream")
    try:
        batches = codec.ticks_batches(message)
    except codec.ProtocolError as exc:
        return Foreign("payload", str(exc))
    if message.seq != key.seq:
        return Foreign("seq_mismatch", f"frame seq {message.seq} under header seq {key.seq}")
    if len(batches) != 1:
        return Foreign("blocks", f"{len(batches)} blocks in one message (the contract: one)")
    return KeyedBlock(key.client_id, key.session, key.seq, key.idx, batches[0])


@dataclass
class Tally:
    """What the consumer did since it started (reported as progress and in the summary).

    ``stored_*`` count rows the consumer's own transactions inserted; ``duplicates``
    blocks already stored (a redelivery after a crash, a resend beyond the duplicate
    window, another consumer of the same durable); ``redelivered`` messages JetStream
    delivered more than once.
    """

    stored_blocks: int = 0
    stored_ticks: int = 0
    duplicates: int = 0
    lost: int = 0
    redelivered: int = 0
    acked: int = 0
    foreign: dict[str, int] = field(default_factory=dict)

    def note_foreign(self, item: Foreign) -> bool:
        """Count ``item``; True when its kind is new (worth one log line, not one per message)."""
        seen = item.kind in self.foreign
        self.foreign[item.kind] = self.foreign.get(item.kind, 0) + 1
        return not seen

    @property
    def foreign_total(self) -> int:
        return sum(self.foreign.values())


@dataclass
class RateMeter:
    """Stored ticks per second over the last report interval (times given, no clock read)."""

    last_time: float
    last_ticks: int = 0

    def rate(self, now: float, ticks: int) -> float:
        elapsed = now - self.last_time
        value = (ticks - self.last_ticks) / elapsed if elapsed > 0 else 0.0
        self.last_time, self.last_ticks = now, ticks
        return value


def summary_line(tally: Tally, seconds: float, lag: int | None) -> str:
    """The final line of ``trading-client store``: what was stored, how fast, what is left."""
    rate = tally.stored_ticks / seconds if seconds > 0 else 0.0
    foreign = ", ".join(f"{k} {v}" for k, v in sorted(tally.foreign.items())) or "0"
    return (
        f"stored {tally.stored_ticks} ticks in {tally.stored_blocks} blocks in {seconds:.1f} s "
        f"({rate:,.0f} ticks/s); duplicates {tally.duplicates}, lost markers {tally.lost}, "
        f"redelivered {tally.redelivered}, foreign {foreign}; lag {'?' if lag is None else lag}"
    )


def progress_line(tally: Tally, rate: float, lag: int | None) -> str:
    """One progress line on stderr: rate and lag first, they are what an operator watches."""
    return (
        f"store: {rate:,.0f} ticks/s  lag {'?' if lag is None else lag} msgs  "
        f"stored {tally.stored_ticks} ticks / {tally.stored_blocks} blocks  "
        f"dup {tally.duplicates}  redelivered {tally.redelivered}  foreign {tally.foreign_total}"
    )
