"""The bridge's resource limits, and the byte budget its connections share.

Issue #13 measured what one hostile peer could do without them: 15 MB frames of one-tick
blocks stalled every client for 3-46 s, and 8 connections of 2 frames each took the
backend from 83 MB to 1.9 GB. Every limit here is checked before the work it bounds:

* a frame's size by websockets, before it is buffered whole (``max_frame_bytes``);
* frames buffered per connection by websockets' receive queue (``max_queue``): beyond
  it the socket is not read, and TCP pushes back on the sender;
* blocks and symbols per message by the codec, from the message's array header
  (:data:`app.protocol.codec.MAX_BLOCKS_PER_MESSAGE`), before a block is decoded; ticks
  per block are bounded by the frame size (``max_frame_bytes / 60``);
* decoded, accepted but not yet committed bytes per connection (``max_pending_bytes``)
  and across all connections (``max_total_pending_bytes``, the :class:`ByteBudget`):
  a connection over either stops reading until its commits catch up;
* connections at once (``max_connections``), refused with 503 at the handshake.

Fairness: the shared budget never stops a connection that has nothing pending, so a
slow or flooding peer that holds the budget delays its own reading only; an honest
client with one small message in flight is always read and committed in turn.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

from app.protocol.codec import DEFAULT_MAX_FRAME_BYTES, MIN_MAX_FRAME_BYTES
from app.protocol.validation import DEFAULT_TICK_RULES, TickRules
from app.server.accept import MAX_RESUME_GAP

#: Most messages stored in one transaction (bounds the time one commit takes).
MAX_GROUP: Final = 256
#: Tick bytes after which a group is cut short even below ``MAX_GROUP`` messages: with
#: 16 MiB frames, 256 messages would make one transaction of 4 GiB.
MAX_GROUP_BYTES: Final = 32 * 2**20


@dataclass(frozen=True, slots=True)
class BridgeLimits:
    """Every bound of the bridge in one frozen config (defaults: the reference backend)."""

    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    #: Frames websockets buffers per connection before it stops reading the socket.
    max_queue: int = 2
    #: Accepted-but-uncommitted messages per connection before its reader waits.
    max_pending: int = 2 * MAX_GROUP
    #: The same by size (at least one frame more than a full group).
    max_pending_bytes: int = 2 * MAX_GROUP_BYTES
    #: Accepted-but-uncommitted bytes across all connections.
    max_total_pending_bytes: int = 256 * 2**20
    max_connections: int = 1024
    max_resume_gap: int = MAX_RESUME_GAP
    tick_rules: TickRules = field(default=DEFAULT_TICK_RULES)

    def __post_init__(self) -> None:
        if self.max_frame_bytes < MIN_MAX_FRAME_BYTES:
            raise ValueError(
                f"max_frame_bytes {self.max_frame_bytes} is below the protocol's minimum "
                f"{MIN_MAX_FRAME_BYTES} (a frame must hold a hello and one tick)"
            )
        for name in (
            "max_queue",
            "max_pending",
            "max_pending_bytes",
            "max_total_pending_bytes",
            "max_connections",
            "max_resume_gap",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


class ByteBudget:
    """Bytes accepted but not yet committed, across connections, and who waits for room.

    Not thread-safe: used from the event loop only (the commits run on the writer thread,
    but take and give happen on the loop around them).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiting: set[asyncio.Event] = set()

    def over(self) -> bool:
        return self.used >= self.limit

    def take(self, n: int) -> None:
        self.used += n

    def give(self, n: int) -> None:
        """Return ``n`` bytes and wake every connection waiting for room."""
        self.used = max(0, self.used - n)
        for event in self._waiting:
            event.set()

    def watch(self, event: asyncio.Event) -> None:
        self._waiting.add(event)

    def unwatch(self, event: asyncio.Event) -> None:
        self._waiting.discard(event)
