"""The unit the collector hands to subscribers: a batch with its place in the stream."""

from __future__ import annotations

from dataclasses import dataclass

from app.ticks import TickBatch


@dataclass(frozen=True, slots=True)
class SequencedBatch:
    """A batch as ingested, numbered so that consumers can detect what they missed.

    ``seq`` counts non-empty ingested batches from 1 with no gaps, across all symbols:
    a queue subscriber that sees 41 after 37 knows it dropped three batches. ``batch``
    holds only the ticks that were kept (stale ones removed) and its tick array is a
    read-only view shared by all subscribers. ``received_at`` is the collector clock's
    wall time at ingest, to be compared with ``batch.captured_at`` for latency.

    ``history`` marks ticks fetched after the fact by the backfill (older than the live
    stream of their symbol): deliver them like any other, but do not read their age as
    a latency.
    """

    seq: int
    batch: TickBatch
    received_at: float
    history: bool = False

    @property
    def symbol(self) -> str:
        return self.batch.symbol

    def __len__(self) -> int:
        return len(self.batch)
