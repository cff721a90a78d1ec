"""Every outgoing bridge message the backend has not acked yet: durable, bounded, locked.

Why it exists: delivery is exactly-once only if the client can resend, after any
reconnect, every message after the bridge's last stored seq (docs/protocol.md §1). So a
message must outlive its first send until the bridge acks it — and, since a kill -9 of
the app during a bridge outage used to lose 17 % of the ticks, it must outlive the
process too.

Durable by default: with a directory, :meth:`Spool.append` writes EVERY message to its
segment file at once, so a kill -9 loses nothing ``append`` returned for; fsyncs bound
what a POWER LOSS takes (:mod:`app.link.spool_segments`: what exactly, and why segment
files rather than SQLite, with the benchmark figures).

Memory is only a cache (up to ``memory_limit_bytes`` of payloads) so the sender rarely
reads back from disk. A payload is cached at append if it fits; acks free the cache for
new ones. The cache keeps the OLDEST unacked payloads rather than evicting them for newer
ones because the sender is a FIFO reader: after an outage it resends from the oldest, so
those are the ones it needs first; while it keeps up, everything fits anyway. Without a
directory (tests, ``spool_disk_mb = 0``) the spool is memory-only and the memory limit is
the capacity. With a directory the capacity is the disk limit: ``fill_ratio`` is disk
bytes / disk limit.

Each record (layout: :mod:`app.link.spool_files`) carries, besides the payload, its
``marks``: a small opaque blob from the caller (the link stores the per-symbol capture
cursors at that message, so after a crash it knows up to where ticks are in the spool).
Recovery (:mod:`app.link.spool_index`) reads the ``seg-<write order>.spool`` files in
write order and applies one rule: a record with seq s supersedes every record written
earlier with seq >= s. That makes
:meth:`Spool.replace_after` crash-safe without rewriting anything: the new tail is
simply appended. A damaged record is skipped (resync on the next magic); a seq missing in
the middle becomes a *lost* entry that :meth:`Spool.peek_next_after` reports with
:class:`SpoolCorruptError` so the link can send a "lost" marker and go on. Acked data
goes by whole segments, oldest first.

One spool per session directory ``ROOT/<session>/`` (:mod:`app.link.spool_sessions`),
exclusively locked while open; a spool with unacked messages is kept at
:meth:`Spool.close` and resumed by the next run (:func:`find_leftovers`), an emptied one
is deleted.

Faults never hang and never retry inside (errors: :mod:`app.link.spool_errors`): a
limit raises :class:`SpoolFull`, a failed write (ENOSPC, EDQUOT, EIO...) raises
:class:`SpoolDiskError` after cutting the partial record away, and in both cases the
message is not kept; the caller keeps it and retries after acks or later (pausing
intake meanwhile). The spool is not thread-safe; every call does at most one record of
I/O (plus an fsync when a segment is sealed or the interval is due, and unlinks of acked
segments; :meth:`Spool.replace_after` writes one record per item) so it can run on the
asyncio loop; opening (the recovery scan, 1-3 s per GB spooled) may take longer, and
runs before the loop needs the spool.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from app.link.spool_errors import SpoolCorruptError, SpoolError, SpoolFull
from app.link.spool_files import (
    RECORD_HEADER_BYTES,
    Record,
    SessionLock,
    SpoolLocked,
    check_record,
    read_marks,
    read_records,
)
from app.link.spool_index import Entry, recover
from app.link.spool_segments import SegmentFiles
from app.link.spool_sessions import claim_session, find_leftovers, remove_session

__all__ = [
    "DEFAULT_FSYNC_INTERVAL",
    "DEFAULT_SEGMENT_BYTES",
    "RECORD_HEADER_BYTES",
    "Record",
    "Spool",
    "SpoolLocked",
    "find_leftovers",
    "read_records",
]

#: Segment rotation size: small enough that acks free disk space promptly, large enough
#: that the per-segment fsync is rare.
DEFAULT_SEGMENT_BYTES: Final = 4 * 2**20
#: Longest time appended records stay un-fsync'd while appends go on.
DEFAULT_FSYNC_INTERVAL: Final = 1.0
#: Acked entries are compacted away once they are this many and half the index.
_COMPACT_MIN: Final = 1024


class Spool:
    """Bounded, durable FIFO of ``(seq, payload, ticks, marks)`` awaiting the bridge's ack.

    Seqs are gap-free: the first ``append`` is ``last_seq + 1`` (1 for a new session).
    A sender loop keeps the seq it sent last and asks for the next one; that is one index
    lookup, O(1), plus at most one record read when the payload is not cached::

        sent = spool.acked_seq              # after welcome: spool.ack(last_seq) first
        while True:
            try:
                item = spool.peek_next_after(sent)
            except SpoolCorruptError as exc:
                send_lost(exc.seq, exc.ticks); sent = exc.seq; continue
            if item is None:
                await appended.wait()       # the caller's own "something new" signal
                continue
            seq, payload = item
            await ws.send(payload)
            sent = seq
    """

    def __init__(
        self,
        memory_limit_bytes: int,
        disk_limit_bytes: int,
        directory: Path | None,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        client_id: str = "",
        session: str | None = None,
        fsync_interval: float = DEFAULT_FSYNC_INTERVAL,
        background_fsync: bool = True,
    ) -> None:
        if memory_limit_bytes < 0 or disk_limit_bytes < 0:
            raise ValueError("spool limits must be >= 0")
        if segment_bytes <= 0:
            raise ValueError("segment_bytes must be > 0")
        if fsync_interval < 0:
            raise ValueError("fsync_interval must be >= 0")
        self._memory_limit = memory_limit_bytes
        self._disk_limit = disk_limit_bytes if directory is not None else 0
        self._directory = directory
        self._client_id = client_id
        # Entries of seqs acked_seq+1 .. last_seq live at _entries[_head:]; a list with a
        # moving head (not a deque) so that seq -> entry is O(1) anywhere in the window.
        self._entries: list[Entry] = []
        self._head = 0
        self._acked = 0
        self._last = 0
        self._ticks = 0
        self._marks = b""
        self._memory_bytes = 0
        self._spilled_total = 0
        self._recovered = 0
        self._recovery_damage: list[Record] = []
        self._lock: SessionLock | None = None
        self._closed = False
        self._files: SegmentFiles | None = None  # None: memory only
        if directory is None:
            self._session = session or uuid.uuid4().hex
            return
        self._files = SegmentFiles(
            directory, disk_limit_bytes, segment_bytes, fsync_interval, background_fsync
        )
        self._lock, self._client_id, self._session = claim_session(directory, client_id, session)
        try:
            self._recover(self._files)
        except BaseException:
            self._close_files()
            self._lock.release()
            raise

    # ------------------------------------------------------------------ observation
    def __len__(self) -> int:
        return self._last - self._acked

    def __repr__(self) -> str:
        return (
            f"Spool({self._session}: seqs {self._acked + 1}..{self._last}, "
            f"{len(self)} messages, memory {self._memory_bytes}/{self._memory_limit} B, "
            f"disk {self.disk_bytes}/{self._disk_limit} B)"
        )

    @property
    def session(self) -> str:
        """The session id: from ``spool.json`` when resumed, else the given one."""
        return self._session

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def directory(self) -> Path | None:
        return self._directory

    @property
    def recovered(self) -> int:
        """Messages found at open (lost ones included): 0 for a new session."""
        return self._recovered

    @property
    def recovery_damage(self) -> tuple[Record, ...]:
        """Damaged stretches met by the recovery scan (for the log), torn tails included."""
        return tuple(self._recovery_damage)

    @property
    def marks(self) -> bytes:
        """The ``marks`` of the newest message (b"" if there is none)."""
        return self._marks

    @property
    def ticks(self) -> int:
        """Ticks in the unacked messages (the sum of their ``ticks`` at append)."""
        return self._ticks

    @property
    def memory_bytes(self) -> int:
        """Payload bytes cached in memory; never above ``memory_limit_bytes``."""
        return self._memory_bytes

    @property
    def disk_bytes(self) -> int:
        """Size of the segment files, headers, marks and not yet deletable records included.

        Counts whole files because that is what the disk really holds; an append never
        takes it above ``disk_limit_bytes``.
        """
        return 0 if self._files is None else self._files.size

    @property
    def memory_limit_bytes(self) -> int:
        return self._memory_limit

    @property
    def disk_limit_bytes(self) -> int:
        """The disk limit in force: 0 without a directory."""
        return self._disk_limit

    @property
    def first_seq(self) -> int | None:
        """Oldest unacked seq, None when the spool is empty."""
        return self._acked + 1 if self._last > self._acked else None

    @property
    def last_seq(self) -> int:
        """Last appended seq, 0 before the first append of a new session."""
        return self._last

    @property
    def acked_seq(self) -> int:
        """Highest seq acked (a resumed spool: the lowest recovered seq - 1)."""
        return self._acked

    @property
    def fill_ratio(self) -> float:
        """0..1 of the capacity: disk bytes / disk limit, or memory only without a directory."""
        if self._files is not None:
            used, capacity = self._files.size, self._disk_limit
        else:
            used, capacity = self._memory_bytes, self._memory_limit
        return 1.0 if capacity == 0 else min(1.0, used / capacity)

    @property
    def spilled_total(self) -> int:
        """Messages whose payload did not fit the memory cache (read back from disk)."""
        return self._spilled_total

    @property
    def segment_paths(self) -> tuple[Path, ...]:
        """The segment files currently on disk, in write order."""
        return () if self._files is None else tuple(seg.path for seg in self._files.segments)

    # ------------------------------------------------------------------ mutation
    def append(self, seq: int, payload: bytes, ticks: int, marks: bytes = b"") -> None:
        """Keep ``payload`` (and ``marks``) until ``ack(seq)``; on disk at once if durable.

        Raises ValueError when ``seq`` is not ``last_seq + 1`` or the message could never
        fit even in an empty spool (waiting for acks would wait forever),
        :class:`SpoolFull` when it does not fit now and :class:`SpoolDiskError` when the
        write failed. None of them keeps the message or changes the spool.
        """
        self._check_open()
        if seq != self._last + 1:
            raise ValueError(f"spool expects seq {self._last + 1}, got {seq}")
        check_record(seq, ticks, marks, payload)
        size = len(payload)
        cache = self._memory_bytes + size <= self._memory_limit
        files = self._files
        if files is None:
            if size > self._memory_limit:
                raise ValueError(f"message {seq} of {size} bytes exceeds the spool's memory limit")
            if not cache:
                raise SpoolFull(
                    f"spool full: message {seq} of {size} bytes, "
                    f"{self._memory_limit - self._memory_bytes} bytes free in memory, "
                    "no disk spool",
                    seq,
                    size,
                )
            entry = Entry(ticks, size, payload, None, 0, marks=marks)
        else:
            length = RECORD_HEADER_BYTES + len(marks) + size
            if length > self._disk_limit:
                raise ValueError(
                    f"message {seq} of {size} bytes exceeds the spool's disk limit "
                    f"of {self._disk_limit} bytes"
                )
            if files.size + length > self._disk_limit:
                raise SpoolFull(
                    f"spool full: message {seq} of {size} bytes, "
                    f"{self._disk_limit - files.size} of {self._disk_limit} bytes "
                    f"free in {self._directory}",
                    seq,
                    size,
                )
            acked_marks = self._marks if self._acked == self._last else None
            seg, offset = files.write(seq, ticks, marks, payload, length, acked_marks=acked_marks)
            entry = Entry(
                ticks, size, payload if cache else None, seg, offset, length=length, marks=marks
            )
            if not cache:
                self._spilled_total += 1
        if cache:
            self._memory_bytes += size
        self._entries.append(entry)
        self._last = seq
        self._ticks += ticks
        self._marks = marks

    def replace_after(self, seq: int, items: Sequence[tuple[bytes, int, bytes]]) -> None:
        """Drop every unacked message > ``seq``; append ``(payload, ticks, marks)`` items
        as ``seq + 1``, ``seq + 2``, ...

        For the link re-cutting its unsent tail when a bridge announces a smaller frame
        limit. Crash-safe without rewriting anything: on disk the new records are just
        appended, and recovery lets a record supersede every earlier one with a seq >= its
        own. The old tail's bytes stay on disk until their segments are acked away, so
        there must be disk room for all the new records (else :class:`SpoolFull`, with
        nothing changed). If a write fails on the first item, nothing changed; if it fails
        later, :class:`SpoolDiskError` is raised with ``last_seq`` telling how many items
        went in: the caller appends the rest later with :meth:`append`.
        """
        self._check_open()
        if not self._acked <= seq <= self._last:
            raise ValueError(
                f"replace_after({seq}) outside the unacked window {self._acked}..{self._last}"
            )
        if not items:
            if seq == self._last:
                return
            raise ValueError("replace_after needs the items that replace the tail")
        cut = self._head + (seq - self._acked)
        dropped = self._entries[cut:]
        dropped_cached = sum(e.size for e in dropped if e.payload is not None)
        segments = () if self._files is None else self._files.segments
        if self._files is not None:
            need = sum(RECORD_HEADER_BYTES + len(m) + len(p) for p, _, m in items)
            if self._files.size + need > self._disk_limit:
                raise SpoolFull(
                    f"spool full: replacing messages after {seq} needs {need} bytes, "
                    f"{self._disk_limit - self._files.size} free in {self._directory}",
                    seq + 1,
                    need,
                )
        else:
            need = sum(len(p) for p, _, _ in items)
            free = self._memory_limit - (self._memory_bytes - dropped_cached)
            if need > free:
                raise SpoolFull(
                    f"spool full: replacing messages after {seq} needs {need} bytes, "
                    f"{free} bytes free in memory, no disk spool",
                    seq + 1,
                    need,
                )
        saved = (self._last, self._ticks, self._marks, self._memory_bytes, self._spilled_total)
        saved_live = [(s, s.live_max) for s in segments]
        del self._entries[cut:]
        self._last = seq
        self._ticks -= sum(e.ticks for e in dropped)
        self._memory_bytes -= dropped_cached
        self._marks = self._entries[-1].marks if len(self._entries) > self._head else b""
        for s in segments:
            s.live_max = min(s.live_max, seq)
        for i, (payload, ticks, marks) in enumerate(items):
            try:
                self.append(seq + 1 + i, payload, ticks, marks)
            except SpoolError:
                if i == 0:  # nothing superseded on disk: put the old tail back
                    self._entries.extend(dropped)
                    (
                        self._last,
                        self._ticks,
                        self._marks,
                        self._memory_bytes,
                        self._spilled_total,
                    ) = saved
                    for s, live in saved_live:
                        s.live_max = live
                raise

    def ack(self, seq: int) -> int:
        """Forget every message <= ``seq`` (acks are cumulative); return how many went.

        An ack at or below ``acked_seq`` is a harmless repeat and drops nothing. Acking
        past ``last_seq`` is a ValueError: the bridge claims something never sent.
        Segment files whose live records are all acked are deleted here, oldest first.
        """
        self._check_open()
        if seq > self._last:
            raise ValueError(f"ack {seq} is beyond the last appended seq {self._last}")
        if seq <= self._acked:
            return 0
        start = self._head
        stop = start + (seq - self._acked)
        entries = self._entries
        for i in range(start, stop):
            entry = entries[i]
            self._ticks -= entry.ticks
            if entry.payload is not None:
                self._memory_bytes -= entry.size
            # Drop the references now: the dead entry itself lingers until compaction.
            entry.payload = None
            entry.segment = None
        self._head = stop
        self._acked = seq
        if self._files is not None:
            self._files.drop_acked(seq)
        if self._head >= _COMPACT_MIN and 2 * self._head >= len(entries):
            del entries[: self._head]
            self._head = 0
        return stop - start

    def sync(self, *, force: bool = False) -> bool:
        """fsync the open segment if it has unsynced records and the interval is due.

        Called by every append; a caller may also call it on a timer so that the last
        appends before an idle stretch get flushed too. Returns whether it fsync'd.
        Raises :class:`OSError` if the fsync fails (nothing to undo: the records are
        still in the page cache).
        """
        self._check_open()
        return self._files is not None and self._files.sync(force=force)

    def close(self) -> None:
        """fsync, close the files and release the lock; idempotent.

        If every message is acked the session directory is deleted; otherwise it is kept
        for the next run to resume. The first OSError, if any, is raised after
        everything was attempted.
        """
        if self._closed:
            return
        self._closed = True
        error: OSError | None = None
        if self._files is not None and len(self) > 0 and self._files.active is not None:
            try:
                self._files.seal()
            except OSError as exc:
                error = exc
        empty = len(self) == 0
        self._close_files()
        self._forget()
        if self._lock is not None and self._directory is not None:
            if empty:
                error = remove_session(self._directory, self._lock) or error
            self._lock.release()
        if error is not None:
            raise error

    def discard(self) -> None:
        """Delete everything, acked or not, files and directory included; final."""
        if self._closed:
            return
        self._closed = True
        self._close_files()
        self._forget()
        if self._lock is not None and self._directory is not None:
            error = remove_session(self._directory, self._lock)
            self._lock.release()
            if error is not None:
                raise error

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ reading
    def peek_next_after(self, seq: int) -> tuple[int, bytes] | None:
        """The unacked message with the smallest seq > ``seq``, or None if there is none.

        A ``seq`` below ``acked_seq`` gives the oldest unacked message: acked ones are
        gone and the bridge already has them. O(1); an uncached payload costs one record
        read. A lost or damaged message raises :class:`SpoolCorruptError` (and stays
        lost): report it, then go on with ``peek_next_after(exc.seq)``.
        """
        self._check_open()
        target = max(seq, self._acked) + 1
        if target > self._last:
            return None
        entry = self._entries[self._head + (target - self._acked - 1)]
        payload = entry.payload
        if payload is None:
            if entry.lost is None:
                assert self._files is not None  # memory only: every payload is cached
                payload = self._files.read(target, entry)
            if entry.lost is not None:
                lost = entry.lost
                raise SpoolCorruptError(target, lost.ticks, lost.reason, lost.path, lost.offset)
            assert payload is not None
        return target, payload

    def iter_from(self, seq: int) -> Iterator[tuple[int, bytes]]:
        """Yield ``(seq, payload)`` for every unacked message >= ``seq``, in order.

        Lazy and live: each ``next`` returns the message after the previous one as the
        spool is *at that moment* (appends are seen, acked ones skipped); it ends at the
        first ``next`` that finds nothing newer. Each step is one :meth:`peek_next_after`
        (so a lost message raises).
        """
        after = seq - 1
        while (item := self.peek_next_after(after)) is not None:
            yield item
            after = item[0]

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("spool is closed")

    def _close_files(self) -> None:
        if self._files is not None:
            self._files.close()

    def _forget(self) -> None:
        if self._files is not None:
            self._files.forget()
        self._entries = []
        self._head = 0
        self._acked = self._last  # holds nothing any more: len() is 0
        self._ticks = self._memory_bytes = 0

    # ------------------------------------------------------------------ recovery
    def _recover(self, files: SegmentFiles) -> None:
        """Rebuild the index from the segments of an earlier run (before the loop runs)."""
        found = recover(files.directory, self._memory_limit)
        self._recovery_damage.extend(found.damage)
        entries, base = found.entries, found.base
        self._entries = entries
        self._acked = base
        self._last = base + len(entries)
        self._ticks = sum(e.ticks for e in entries)
        self._memory_bytes = found.memory
        self._spilled_total = sum(1 for e in entries if e.payload is None and e.lost is None)
        self._marks = entries[-1].marks if entries else read_marks(files.directory)
        self._recovered = len(entries)
        files.adopt(found.segments, found.next_number, base)
