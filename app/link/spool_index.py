"""The spool's index entries, and rebuilding them from an earlier run's segment files.

An :class:`Entry` is one message of the spool: its payload cached in memory and/or a
record in a :class:`Segment` file, or a :class:`LostRecord` when it cannot be read back.
:func:`recover` reads the segments of a session folder once, in write order, applying
the supersede rule of :mod:`app.link.spool_files` (a record with seq s supersedes every
record written earlier with seq >= s); a seq missing between intact records becomes a
lost entry; damage after the last intact record is a torn tail (a crash mid-write) and
is cut off. Payloads are cached up to the memory limit, oldest first, as appends would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from app.link.spool_files import Record, scan, segment_number, segment_paths


class Segment:
    """One segment file and how far its records are still needed."""

    __slots__ = ("fd", "live_max", "number", "path", "size")

    def __init__(self, path: Path, number: int, size: int, fd: int | None) -> None:
        self.path = path
        self.number = number
        self.size = size
        self.fd = fd  # None once sealed (or recovered: never appended to again)
        # Highest seq with a live record here: deletable once acked up to it.
        self.live_max = 0


class LostRecord:
    """Why an entry cannot be read back, and where."""

    __slots__ = ("offset", "path", "reason", "ticks")

    def __init__(
        self, reason: str, ticks: int | None, path: Path | None, offset: int | None
    ) -> None:
        self.reason = reason
        self.ticks = ticks
        self.path = path
        self.offset = offset


class Entry:
    """One message: payload cached in memory and/or a record in ``segment``."""

    __slots__ = ("length", "lost", "marks", "offset", "payload", "segment", "size", "ticks")

    def __init__(
        self,
        ticks: int,
        size: int,
        payload: bytes | None,
        segment: Segment | None,
        offset: int,
        *,
        length: int = 0,
        marks: bytes = b"",
    ) -> None:
        self.ticks = ticks
        self.size = size
        self.payload = payload
        self.segment = segment
        self.offset = offset
        self.length = length  # whole record on disk
        self.marks = marks
        self.lost: LostRecord | None = None


@dataclass(slots=True)
class Recovered:
    """What :func:`recover` found: entries for seqs ``base+1 ..``, in order."""

    entries: list[Entry]
    base: int
    segments: list[Segment]
    next_number: int
    damage: list[Record]
    memory: int


def recover(directory: Path, memory_limit: int) -> Recovered:
    """Rebuild the index from the segment files in ``directory`` (see the module doc)."""
    segments: list[Segment] = []
    next_number = 1
    damage: list[Record] = []
    entries: list[Entry] = []
    base = 0  # entries hold base+1 .. base+len(entries)
    started = False
    pending: dict[int, int] = {}  # seq -> ticks of damaged records with a good header
    tail: tuple[Segment, int] | None = None  # first damage after the last good record
    memory = 0
    for path in segment_paths(directory):
        number = segment_number(path)
        assert number is not None
        data = path.read_bytes()
        seg = Segment(path, number, len(data), None)
        segments.append(seg)
        next_number = max(next_number, number + 1)
        for rec in scan(path, data, with_payload=False):
            if rec.damage is not None or rec.seq is None or rec.seq == 0:
                damage.append(rec)
                if rec.seq:
                    pending[rec.seq] = rec.ticks or 0
                if tail is None:
                    tail = (seg, rec.offset)
                continue
            tail = None
            s = rec.seq
            if not started:
                started = True
                base = min((d for d in pending if d < s), default=s) - 1
            if s <= base:  # supersedes everything recovered so far
                for e in entries:
                    if e.payload is not None:
                        memory -= e.size
                entries.clear()
                base = s - 1
            elif s <= base + len(entries):
                for e in entries[s - base - 1 :]:
                    if e.payload is not None:
                        memory -= e.size
                del entries[s - base - 1 :]
            else:
                for gap in range(base + len(entries) + 1, s):
                    lost = Entry(pending.get(gap, 0), 0, None, None, 0)
                    lost.lost = LostRecord(
                        "record missing or damaged (found at recovery)",
                        pending.get(gap),
                        None,
                        None,
                    )
                    entries.append(lost)
            pending.clear()
            size = rec.payload_length
            payload: bytes | None = None
            if memory + size <= memory_limit:
                payload = data[rec.payload_offset : rec.payload_offset + size]
                memory += size
            entry = Entry(
                rec.ticks or 0,
                size,
                payload,
                seg,
                rec.offset,
                length=rec.length,
                marks=rec.marks,
            )
            entries.append(entry)
    if tail is not None and tail[0] is segments[-1]:
        seg, offset = tail
        os.truncate(seg.path, offset)  # a torn tail: the append never returned
        seg.size = offset
    for i, e in enumerate(entries):
        if e.segment is not None:
            e.segment.live_max = base + 1 + i
    return Recovered(entries, base, segments, next_number, damage, memory)
