"""Immutable snapshots of the collector counters, safe to hand to the UI or a monitor."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SymbolStats:
    ticks: int
    stale_dropped: int
    #: ``time_msc`` of the newest tick ingested; with bid/ask, what a quote board shows.
    last_time_msc: int
    last_bid: float
    last_ask: float


@dataclass(frozen=True, slots=True)
class CollectorStats:
    """Counters at one instant. ``batches`` counts every call to ingest; those that were
    empty or entirely stale are ``batches_skipped`` and got no sequence number, so
    ``batches == last_seq + batches_skipped``."""

    batches: int
    batches_skipped: int
    ticks_total: int
    last_seq: int
    stale_dropped: int
    subscriber_errors: int
    consume_errors: int
    symbols: Mapping[str, SymbolStats]
    #: Of ``ticks_total``, those that came from the history backfill.
    history_ticks: int = 0

    @property
    def ticks_per_symbol(self) -> dict[str, int]:
        return {name: s.ticks for name, s in self.symbols.items()}
