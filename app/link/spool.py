"""Every outgoing bridge message the backend has not acked yet: durable, bounded, locked.

Why it exists: delivery is exactly-once only if the client can resend, after any
reconnect, every message after the bridge's last stored seq (docs/protocol.md §1). So a
message must outlive its first send until the bridge acks it — and, since a kill -9 of
the app during a bridge outage used to lose 17 % of the ticks, it must outlive the
process too.

Durable by default. With a directory, EVERY message is written to the current segment
file inside :meth:`Spool.append`, as ONE ``write`` (``writev`` of header+marks and the
payload, so the payload is not copied) straight into the OS, unbuffered in Python. The
page cache survives a kill -9 of the process, so a crash loses nothing that ``append``
returned for. ``fsync`` is not per record (it would cap throughput at the disk's flush
rate): a segment is fsync'd (with its directory) when it is sealed, at :meth:`close`, and
the open segment at most every ``fsync_interval`` seconds (checked at each append and by
:meth:`Spool.sync`, which the caller may run on a timer while idle). What survives a
POWER LOSS: every sealed segment, and the open segment up to its last fsync; the records
appended since (at most ``fsync_interval`` s of appends) may be lost or torn. Recovery
drops a torn tail silently and restores the ``marks`` of the last intact record, which is
exactly how the link knows from where to re-capture ticks; unsynced pages that reach the
disk out of order can instead leave holes, which recovery reports as lost seqs.

Memory is only a cache (up to ``memory_limit_bytes`` of payloads) so the sender rarely
reads back from disk. A payload is cached at append if it fits; acks free the cache for
new ones. The cache keeps the OLDEST unacked payloads rather than evicting them for newer
ones because the sender is a FIFO reader: after an outage it resends from the oldest, so
those are the ones it needs first; while it keeps up, everything fits anyway. Without a
directory (tests, ``spool_disk_mb = 0``) the spool is memory-only and the memory limit is
the capacity. With a directory the capacity is the disk limit: ``fill_ratio`` is disk
bytes / disk limit.

Why segment files, not SQLite, measured by benchmarks/bench_spool.py (2-core VM, ext4
on virtio, ack window 32, 48-byte marks; two runs: the second / the first where they
differ; SQLite 3.40 in WAL mode, synchronous=NORMAL, one autocommit INSERT per message):

=============================  ===================  ====================
append+ack                     segments             SQLite WAL
=============================  ===================  ====================
300 KB payloads, MB/s          196 / 203            54 / 108
300 KB payloads, messages/s    655 / 677            181 / 358
2 KB payloads, MB/s            127 / 204            16 / 40
2 KB payloads, messages/s      63 244 / 101 805     7 974 / 20 008
CPU s per GB, 300 KB / 2 KB    1.4 / 3.9            4.9 / 18.8
recovery of 1 GB, warm cache   0.77 s (crc of all)  0.18 s index, 1.1 s all
recovery of 1 GB, cold cache   2.5 s (crc of all)   10.1 s index, 1.0 s all
=============================  ===================  ====================

Segments are 2-8x faster at 3-5x less CPU because each byte is written once (SQLite
writes it to the WAL, then again into the table at checkpoint) and dropping acked data
is one ``unlink`` per segment instead of DELETEs leaving free pages to reuse. Recovery
is comparable (a second or two per GB, cold or warm); SQLite's cheap "index only"
figure is not a like-for-like alternative, because SQLite has no checksums: a damaged
payload would be returned silently, while the segment scan checks a crc per record.

Records (see :mod:`app.link.spool_files`): magic, a header with its own crc (seq, ticks,
marks length, payload length, body crc), then ``marks`` (a small opaque blob from the
caller: the link stores the per-symbol capture cursors at that message, so after a crash
it knows up to where ticks are in the spool) and the payload. Segments are named
``seg-<write order>.spool``; recovery reads them in write order and applies one rule: a
record with seq s supersedes every record written earlier with seq >= s. That makes
:meth:`Spool.replace_after` crash-safe without rewriting anything: the new tail is
simply appended. A damaged record is skipped (resync on the next magic); a seq missing in
the middle becomes a *lost* entry that :meth:`Spool.peek_next_after` reports with
:class:`SpoolCorruptError` so the link can send a "lost" marker and go on. Acked data
goes by whole segments, oldest first (never a later one before an earlier one: that could
resurrect records the later one superseded).

One spool per session directory ``ROOT/<session>/`` (segments, ``spool.json`` with
client_id/session/created, ``spool.lock``), exclusively locked while open; a spool with
unacked messages is kept at :meth:`Spool.close` and resumed by the next run
(:func:`find_leftovers`), an emptied one is deleted.

Faults never hang and never retry inside: a limit raises :class:`SpoolFull`, a failed
write (ENOSPC, EDQUOT, EIO...) raises :class:`SpoolDiskError` after cutting the partial
record away, and in both cases the message is not kept; the caller keeps it and retries
after acks or later (pausing intake meanwhile). The spool is not thread-safe; every call
does at most one record of I/O (plus an fsync when a segment is sealed or the interval
is due, and unlinks of acked segments; :meth:`Spool.replace_after` writes one record per
item) so it can run on the asyncio loop; opening (the recovery scan, 1-3 s per GB
spooled) may take longer, and runs before the loop needs the spool.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from app.link.fsync import BackgroundSync
from app.link.spool_files import (
    RECORD_HEADER_BYTES,
    Record,
    SessionLock,
    SpoolLocked,
    encode_header,
    read_marks,
    read_meta,
    read_records,
    scan,
    segment_name,
    write_marks,
    write_meta,
)
from app.link.spool_index import Entry, LostRecord, Segment, recover
from app.link.spool_sessions import find_leftovers, remove_session

__all__ = [
    "DEFAULT_FSYNC_INTERVAL",
    "DEFAULT_SEGMENT_BYTES",
    "RECORD_HEADER_BYTES",
    "Record",
    "Spool",
    "SpoolCorruptError",
    "SpoolDiskError",
    "SpoolError",
    "SpoolFull",
    "SpoolLocked",
    "find_leftovers",
    "read_records",
]

#: Segment rotation size: small enough that acks free disk space promptly, large enough
#: that the per-segment fsync is rare.
DEFAULT_SEGMENT_BYTES: Final = 4 * 2**20
#: Longest time appended records stay un-fsync'd while appends go on.
DEFAULT_FSYNC_INTERVAL: Final = 1.0
_MAX_U32: Final = 2**32 - 1
_MAX_U64: Final = 2**64 - 1
#: Acked entries are compacted away once they are this many and half the index.
_COMPACT_MIN: Final = 1024
#: Write errors that deleting acked data can cure.
_DISK_FULL: Final = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
_OPEN_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


class SpoolError(Exception):
    """Base of the spool's own errors."""


class SpoolFull(SpoolError):  # noqa: N818 - a state the caller waits out, not a fault
    """The message does not fit now; retry after acks free space. Nothing was kept."""

    def __init__(self, message: str, seq: int, size: int) -> None:
        super().__init__(message)
        self.seq = seq
        self.size = size


class SpoolDiskError(SpoolFull):
    """Writing the message failed (disk full, quota, I/O error): it was not kept.

    A :class:`SpoolFull` because the caller's answer is the same — keep the data, pause
    intake, retry later — but it names the folder, the OS error and the free bytes, so
    the user can see which disk to clean up.
    """

    def __init__(
        self, seq: int, size: int, directory: Path, error: OSError, free_bytes: int | None
    ) -> None:
        free = "unknown" if free_bytes is None else f"{free_bytes}"
        reason = error.strerror or str(error)
        super().__init__(
            f"spool folder {directory}: cannot write message {seq} ({size} bytes): "
            f"[Errno {error.errno}] {reason}; {free} bytes free on that disk",
            seq,
            size,
        )
        self.directory = directory
        self.errno = error.errno
        self.free_bytes = free_bytes


class SpoolCorruptError(SpoolError):
    """Message ``seq`` cannot be read back (damaged record): it is now marked lost.

    ``ticks`` is its tick count when known (the header or the index was readable), else
    None. The caller reports it (a "lost" marker for that seq) and goes on with
    ``peek_next_after(seq)``; asking for the same seq again raises again.
    """

    def __init__(
        self, seq: int, ticks: int | None, reason: str, path: Path | None, offset: int | None
    ) -> None:
        where = "" if path is None else f" ({path} at offset {offset})"
        super().__init__(f"spool message {seq} is lost: {reason}{where}")
        self.seq = seq
        self.ticks = ticks
        self.reason = reason
        self.path = path
        self.offset = offset


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
        # The open segment is kept until it is sealed, even when fully acked (its newest
        # record holds the marks a crash needs), so it must stay a small part of the
        # disk limit or an acked-but-kept segment would hold intake paused.
        if directory is not None and disk_limit_bytes > 0:
            segment_bytes = min(segment_bytes, max(64 * 1024, disk_limit_bytes // 8))
        self._segment_bytes = segment_bytes
        self._fsync_interval = fsync_interval
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
        self._disk_bytes = 0
        self._spilled_total = 0
        self._recovered = 0
        self._recovery_damage: list[Record] = []
        self._segments: deque[Segment] = deque()
        self._active: Segment | None = None
        self._next_number = 1
        self._reader: tuple[Segment, io.FileIO] | None = None
        self._unsynced = False  # the active segment has records not fsync'd yet
        self._dir_unsynced = False  # a segment was created since the last directory fsync
        self._synced_at = time.monotonic()
        self._lock: SessionLock | None = None
        # fsync on a thread of its own (app/link/fsync.py); inline for tests that count.
        self._syncer = BackgroundSync() if background_fsync else BackgroundSync(inline=True)
        self._closed = False
        if directory is None:
            self._session = session or uuid.uuid4().hex
            return
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = SessionLock(directory)
        try:
            meta = read_meta(directory)
            if meta is None:
                self._session = session or directory.name
                write_meta(directory, client_id, self._session)
            else:
                owner = meta.get("client_id")
                if client_id and owner and owner != client_id:
                    raise SpoolError(
                        f"spool folder {directory} belongs to client {owner!r}, not {client_id!r}"
                    )
                self._client_id = str(owner or client_id)
                self._session = str(meta.get("session") or session or directory.name)
            self._recover(directory)
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
            f"disk {self._disk_bytes}/{self._disk_limit} B)"
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
        return self._disk_bytes

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
        if self._directory is not None:
            used, capacity = self._disk_bytes, self._disk_limit
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
        return tuple(seg.path for seg in self._segments)

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
        if not 0 <= ticks <= _MAX_U64:
            raise ValueError(f"tick count must be >= 0, got {ticks}")
        size = len(payload)
        if size > _MAX_U32 or len(marks) > _MAX_U32:
            raise ValueError(f"message {seq} of {size} bytes is too large for a record")
        cache = self._memory_bytes + size <= self._memory_limit
        if self._directory is None:
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
            if self._disk_bytes + length > self._disk_limit:
                raise SpoolFull(
                    f"spool full: message {seq} of {size} bytes, "
                    f"{self._disk_limit - self._disk_bytes} of {self._disk_limit} bytes "
                    f"free in {self._directory}",
                    seq,
                    size,
                )
            seg, offset = self._write(seq, ticks, marks, payload, length)
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
        if self._directory is not None:
            need = sum(RECORD_HEADER_BYTES + len(m) + len(p) for p, _, m in items)
            if self._disk_bytes + need > self._disk_limit:
                raise SpoolFull(
                    f"spool full: replacing messages after {seq} needs {need} bytes, "
                    f"{self._disk_limit - self._disk_bytes} free in {self._directory}",
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
        saved_live = [(s, s.live_max) for s in self._segments]
        del self._entries[cut:]
        self._last = seq
        self._ticks -= sum(e.ticks for e in dropped)
        self._memory_bytes -= dropped_cached
        self._marks = self._entries[-1].marks if len(self._entries) > self._head else b""
        for s in self._segments:
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
        self._drop_acked_segments()
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
        seg = self._active
        if seg is None or seg.fd is None or not self._unsynced:
            return False
        now = time.monotonic()
        if not force and now - self._synced_at < self._fsync_interval:
            return False
        if not self._syncer.idle():
            return False  # the previous fsync still runs: the next append tries again
        self._synced_at = now
        self._unsynced = False
        directory = self._directory if self._dir_unsynced else None
        self._dir_unsynced = False
        self._syncer.sync(seg.fd, directory)
        return True

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
        if self._directory is not None and len(self) > 0 and self._active is not None:
            try:
                self._seal()
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
                payload = self._read(target, entry)
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

    # ------------------------------------------------------------------ disk
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("spool is closed")

    def _disk_error(self, seq: int, size: int, exc: OSError) -> SpoolDiskError:
        assert self._directory is not None
        free: int | None = None
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(self._directory).free
        return SpoolDiskError(seq, size, self._directory, exc, free)

    def _write(
        self, seq: int, ticks: int, marks: bytes, payload: bytes, length: int
    ) -> tuple[Segment, int]:
        """Write one record to the open segment (sealing/opening one as needed).

        Any OSError becomes :class:`SpoolDiskError` after the partial record is cut away,
        so the segment keeps holding whole records only.
        """
        seg = self._active
        try:
            if seg is not None and seg.size > 0 and seg.size + length > self._segment_bytes:
                self._seal()
                seg = None
            if seg is None:
                seg = self._open_segment()
            else:
                self.sync()
        except OSError as exc:
            raise self._disk_error(seq, len(payload), exc) from exc
        fd = seg.fd
        assert fd is not None
        offset = seg.size
        head = encode_header(0, seq, ticks, marks, payload)
        try:
            _write_all(fd, head + marks, payload)
        except OSError as exc:
            try:
                os.ftruncate(fd, offset)
                os.lseek(fd, offset, os.SEEK_SET)
            except OSError:
                # Cannot cut it back: stop writing to this file. Recovery skips the
                # partial record (a damaged stretch with no seq of its own).
                self._abandon_active()
            if exc.errno in _DISK_FULL and self._release_acked_active():
                return self._write(seq, ticks, marks, payload, length)  # once: now empty
            raise self._disk_error(seq, len(payload), exc) from exc
        seg.size += length
        seg.live_max = seq
        self._disk_bytes += length
        if not self._unsynced:
            self._unsynced = True
            self._synced_at = time.monotonic()
        return seg, offset

    def _release_acked_active(self) -> bool:
        """On a full disk, give back the open segment when every record in it is acked.

        It is kept otherwise only for the marks of its newest record; those go to the
        small marks file first, so a crash afterwards still knows where the capture is
        safe. True when something was freed (the caller retries its write once).
        """
        seg = self._active
        if seg is None or seg.size == 0 or self._acked < self._last or self._directory is None:
            return False
        if self._segments and self._segments[0] is not seg:
            return False  # an older segment is still there: deletions go oldest first
        self._segments.popleft()
        self._active = None
        self._unsynced = False
        if self._reader is not None and self._reader[0] is seg:
            self._close_reader()
        fd, seg.fd = seg.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._disk_bytes -= seg.size
        with contextlib.suppress(OSError):
            seg.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # after the unlink: there is room now
            write_marks(self._directory, self._marks)
        return True

    def _open_segment(self) -> Segment:
        assert self._directory is not None
        number = self._next_number
        path = self._directory / segment_name(number)
        fd = os.open(path, _OPEN_FLAGS, 0o644)
        self._next_number = number + 1
        seg = Segment(path, number, 0, fd)
        self._segments.append(seg)
        self._active = seg
        self._dir_unsynced = True
        return seg

    def _seal(self) -> None:
        """fsync and close the open segment; it stays readable and deletable.

        Whatever happens the segment ends up closed, so a failing disk raises once here
        rather than on every later append.
        """
        seg = self._active
        assert seg is not None
        fd = seg.fd
        self._active = None
        seg.fd = None
        self._unsynced = False
        if fd is None:
            return
        empty = seg.size == 0
        if empty:
            self._segments.remove(seg)
        self._syncer.seal(fd, seg.path if empty else None, self._directory)
        self._dir_unsynced = False

    def _abandon_active(self) -> None:
        seg = self._active
        assert seg is not None
        self._active = None
        fd, seg.fd = seg.fd, None
        self._unsynced = False
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        if seg.size == 0:  # no record of ours in it: nothing would ever ack it away
            self._segments.remove(seg)
            with contextlib.suppress(OSError):
                seg.path.unlink(missing_ok=True)

    def _drop_acked_segments(self) -> None:
        segments = self._segments
        while segments and segments[0].live_max <= self._acked:
            seg = segments[0]
            if seg is self._active:
                # The open segment stays until it is sealed, acked or not: its newest
                # record carries the marks that say, after a kill -9, up to where the
                # capture is safe (app/link/positions.py). Without it a crash right after
                # an ack would leave no marks, and the next run would fetch acked ticks
                # again. Its acked records are resent then; the bridge drops them by seq.
                break
            segments.popleft()
            if self._reader is not None and self._reader[0] is seg:
                self._close_reader()
            if seg is self._active:
                self._active = None
                self._unsynced = False
            fd, seg.fd = seg.fd, None
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)  # closed first: Windows cannot delete open files
            self._disk_bytes -= seg.size
            with contextlib.suppress(OSError):
                # A file that cannot be deleted only wastes space; recovery would find
                # its records acked-or-superseded-by-position and resend at worst.
                seg.path.unlink(missing_ok=True)

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader[1].close()
            self._reader = None

    def _close_files(self) -> None:
        self._close_reader()
        for seg in self._segments:
            fd, seg.fd = seg.fd, None
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._active = None
        self._syncer.close()  # every fsync handed over is done before files go

    def _forget(self) -> None:
        self._segments.clear()
        self._entries = []
        self._head = 0
        self._acked = self._last  # holds nothing any more: len() is 0
        self._ticks = self._memory_bytes = self._disk_bytes = 0

    def _read(self, seq: int, entry: Entry) -> bytes | None:
        """The payload of ``entry`` from disk, or None after marking it lost."""
        seg = entry.segment
        assert seg is not None
        offset = entry.offset
        try:
            if self._reader is None or self._reader[0] is not seg:
                self._close_reader()
                # Unbuffered: a read-ahead buffer could serve stale bytes of a file that
                # changed underneath, hiding exactly the damage the checks are for.
                self._reader = (seg, io.FileIO(seg.path, "rb"))
            reader = self._reader[1]
            reader.seek(offset)
            data = _read_exact(reader, entry.length)
        except OSError as exc:
            return self._mark_lost(entry, f"read failed: {exc}", seg.path, offset)
        found = next(scan(seg.path, data, with_payload=False), None)
        if found is None or found.damage is not None:
            reason = "record missing" if found is None else found.damage
            assert reason is not None
            return self._mark_lost(entry, reason, seg.path, offset)
        if (found.seq, found.ticks, found.payload_length, found.length) != (
            seq,
            entry.ticks,
            entry.size,
            entry.length,
        ):
            return self._mark_lost(
                entry,
                f"record says seq {found.seq}, {found.payload_length} bytes, "
                f"{found.ticks} ticks; expected seq {seq}, {entry.size} bytes, "
                f"{entry.ticks} ticks",
                seg.path,
                offset,
            )
        return data[found.payload_offset :]

    @staticmethod
    def _mark_lost(entry: Entry, reason: str, path: Path, offset: int) -> bytes | None:
        """Mark ``entry`` lost for good (its payload cannot be had); always None."""
        entry.lost = LostRecord(reason, entry.ticks, path, offset)
        return None

    # ------------------------------------------------------------------ recovery
    def _recover(self, directory: Path) -> None:
        """Rebuild the index from the segments of an earlier run (before the loop runs)."""
        found = recover(directory, self._memory_limit)
        self._segments.extend(found.segments)
        self._next_number = max(self._next_number, found.next_number)
        self._recovery_damage.extend(found.damage)
        entries, base = found.entries, found.base
        self._entries = entries
        self._acked = base
        self._last = base + len(entries)
        self._ticks = sum(e.ticks for e in entries)
        self._memory_bytes = found.memory
        self._spilled_total = sum(1 for e in entries if e.payload is None and e.lost is None)
        self._marks = entries[-1].marks if entries else read_marks(directory)
        self._recovered = len(entries)
        self._disk_bytes = sum(seg.size for seg in self._segments)
        self._drop_acked_segments()
        for seg in list(self._segments):  # empty files (a cut tail) hold nothing
            if seg.size == 0:
                self._segments.remove(seg)
                seg.path.unlink(missing_ok=True)


def _write_all(fd: int, head: bytes, payload: bytes) -> None:
    """One ``writev`` (one ``write`` on Windows); finishes a short write, never retries.

    A short write only happens when the disk fills up midway: the continuation then
    raises the real error (ENOSPC...), and the caller cuts the partial record away.
    """
    if not hasattr(os, "writev"):
        data = memoryview(head + payload)
        while data:
            n = os.write(fd, data)
            if n <= 0:
                raise OSError(errno.EIO, "write returned 0")
            data = data[n:]
        return
    bufs: list[bytes | memoryview] = [head, payload] if payload else [head]
    while bufs:
        n = os.writev(fd, bufs)
        if n <= 0:
            raise OSError(errno.EIO, "write returned 0")
        while bufs and n >= len(bufs[0]):
            n -= len(bufs[0])
            bufs.pop(0)
        if n:
            bufs[0] = memoryview(bufs[0])[n:]


def _read_exact(f: io.FileIO, n: int) -> bytes:
    """Up to ``n`` bytes, fewer only at end of file (a raw read may return short)."""
    data = f.read(n) or b""
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = f.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)
