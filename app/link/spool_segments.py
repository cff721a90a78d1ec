"""The open spool's segment files: append, fsync, seal, read back, delete when acked.

Kept apart from :mod:`app.link.spool` so the spool itself is the index and its rules
(seqs, acks, limits, the memory cache) while this class owns every file descriptor:
what is written where, when it is fsync'd, and when a file may go. The record layout
and scanning are :mod:`app.link.spool_files`; rebuilding the index from the files of an
earlier run is :mod:`app.link.spool_index`.

Every message is written to the current segment file inside :meth:`SegmentFiles.write`,
as ONE ``write`` (``writev`` of header+marks and the payload, so the payload is not
copied) straight into the OS, unbuffered in Python. The page cache survives a kill -9 of
the process, so a crash loses nothing that an append returned for. ``fsync`` is not per
record (it would cap throughput at the disk's flush rate): a segment is fsync'd (with its
directory) when it is sealed, at close, and the open segment at most every
``fsync_interval`` seconds (checked at each write and by :meth:`SegmentFiles.sync`, which
the caller may run on a timer while idle). What survives a POWER LOSS: every sealed
segment, and the open segment up to its last fsync; the records appended since (at most
``fsync_interval`` s of appends) may be lost or torn. Recovery drops a torn tail silently
and restores the ``marks`` of the last intact record, which is exactly how the link knows
from where to re-capture ticks; unsynced pages that reach the disk out of order can
instead leave holes, which recovery reports as lost seqs.

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

Acked data goes by whole segments, oldest first (never a later one before an earlier
one: that could resurrect records the later one superseded).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import time
from collections import deque
from pathlib import Path
from typing import Final

from app.link.fsync import BackgroundSync
from app.link.spool_errors import DISK_FULL, SpoolDiskError
from app.link.spool_files import encode_header, scan, segment_name, write_marks
from app.link.spool_index import Entry, LostRecord, Segment

__all__ = ["SegmentFiles"]

_OPEN_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


class SegmentFiles:
    """The segment files of one open session folder, oldest first.

    ``size`` is the bytes of all segment files (what the disk really holds). Not
    thread-safe; each call does at most one record of I/O, plus an fsync handed to
    :class:`~app.link.fsync.BackgroundSync` and unlinks of acked segments.
    """

    def __init__(
        self,
        directory: Path,
        disk_limit: int,
        segment_bytes: int,
        fsync_interval: float,
        background_fsync: bool,
    ) -> None:
        self.directory = directory
        # The open segment is kept until it is sealed, even when fully acked (its newest
        # record holds the marks a crash needs), so it must stay a small part of the
        # disk limit or an acked-but-kept segment would hold intake paused.
        if disk_limit > 0:
            segment_bytes = min(segment_bytes, max(64 * 1024, disk_limit // 8))
        self._segment_bytes = segment_bytes
        self._fsync_interval = fsync_interval
        self.segments: deque[Segment] = deque()
        self.active: Segment | None = None
        self.size = 0
        self._next_number = 1
        self._reader: tuple[Segment, io.FileIO] | None = None
        self._unsynced = False  # the active segment has records not fsync'd yet
        self._dir_unsynced = False  # a segment was created since the last directory fsync
        self._synced_at = time.monotonic()
        # fsync on a thread of its own (app/link/fsync.py); inline for tests that count.
        self._syncer = BackgroundSync() if background_fsync else BackgroundSync(inline=True)

    def adopt(self, segments: list[Segment], next_number: int, acked: int) -> None:
        """Take over the segments recovery found; delete the acked and the empty ones."""
        self.segments.extend(segments)
        self._next_number = max(self._next_number, next_number)
        self.size = sum(seg.size for seg in self.segments)
        self.drop_acked(acked)
        for seg in list(self.segments):  # empty files (a cut tail) hold nothing
            if seg.size == 0:
                self.segments.remove(seg)
                seg.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ writing
    def write(
        self,
        seq: int,
        ticks: int,
        marks: bytes,
        payload: bytes,
        length: int,
        *,
        acked_marks: bytes | None,
    ) -> tuple[Segment, int]:
        """Write one record to the open segment (sealing/opening one as needed).

        Any OSError becomes :class:`SpoolDiskError` after the partial record is cut away,
        so the segment keeps holding whole records only. ``acked_marks`` is the newest
        message's marks when every message is acked (else None): then a full disk may
        give back the open segment (:meth:`_release_acked_active`) and retry once.
        """
        seg = self.active
        try:
            if seg is not None and seg.size > 0 and seg.size + length > self._segment_bytes:
                self.seal()
                seg = None
            if seg is None:
                seg = self._open_segment()
            else:
                self.sync()
        except OSError as exc:
            raise SpoolDiskError.measured(seq, len(payload), self.directory, exc) from exc
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
            if exc.errno in DISK_FULL and self._release_acked_active(acked_marks):
                # once: the open segment is gone now, so acked_marks no longer matter
                return self.write(seq, ticks, marks, payload, length, acked_marks=None)
            raise SpoolDiskError.measured(seq, len(payload), self.directory, exc) from exc
        seg.size += length
        seg.live_max = seq
        self.size += length
        if not self._unsynced:
            self._unsynced = True
            self._synced_at = time.monotonic()
        return seg, offset

    def _release_acked_active(self, acked_marks: bytes | None) -> bool:
        """On a full disk, give back the open segment when every record in it is acked.

        It is kept otherwise only for the marks of its newest record; those go to the
        small marks file first, so a crash afterwards still knows where the capture is
        safe. True when something was freed (the caller retries its write once).
        """
        seg = self.active
        if seg is None or seg.size == 0 or acked_marks is None:
            return False
        if self.segments and self.segments[0] is not seg:
            return False  # an older segment is still there: deletions go oldest first
        self.segments.popleft()
        self.active = None
        self._unsynced = False
        if self._reader is not None and self._reader[0] is seg:
            self._close_reader()
        fd, seg.fd = seg.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.size -= seg.size
        with contextlib.suppress(OSError):
            seg.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # after the unlink: there is room now
            write_marks(self.directory, acked_marks)
        return True

    def _open_segment(self) -> Segment:
        number = self._next_number
        path = self.directory / segment_name(number)
        fd = os.open(path, _OPEN_FLAGS, 0o644)
        self._next_number = number + 1
        seg = Segment(path, number, 0, fd)
        self.segments.append(seg)
        self.active = seg
        self._dir_unsynced = True
        return seg

    def sync(self, *, force: bool = False) -> bool:
        """fsync the open segment if it has unsynced records and the interval is due."""
        seg = self.active
        if seg is None or seg.fd is None or not self._unsynced:
            return False
        now = time.monotonic()
        if not force and now - self._synced_at < self._fsync_interval:
            return False
        if not self._syncer.idle():
            return False  # the previous fsync still runs: the next append tries again
        self._synced_at = now
        self._unsynced = False
        directory = self.directory if self._dir_unsynced else None
        self._dir_unsynced = False
        self._syncer.sync(seg.fd, directory)
        return True

    def seal(self) -> None:
        """fsync and close the open segment; it stays readable and deletable.

        Whatever happens the segment ends up closed, so a failing disk raises once here
        rather than on every later append.
        """
        seg = self.active
        assert seg is not None
        fd = seg.fd
        self.active = None
        seg.fd = None
        self._unsynced = False
        if fd is None:
            return
        empty = seg.size == 0
        if empty:
            self.segments.remove(seg)
        self._syncer.seal(fd, seg.path if empty else None, self.directory)
        self._dir_unsynced = False

    def _abandon_active(self) -> None:
        seg = self.active
        assert seg is not None
        self.active = None
        fd, seg.fd = seg.fd, None
        self._unsynced = False
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        if seg.size == 0:  # no record of ours in it: nothing would ever ack it away
            self.segments.remove(seg)
            with contextlib.suppress(OSError):
                seg.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ deleting
    def drop_acked(self, acked: int) -> None:
        """Delete the segments, oldest first, whose live records are all <= ``acked``."""
        segments = self.segments
        while segments and segments[0].live_max <= acked:
            seg = segments[0]
            if seg is self.active:
                # The open segment stays until it is sealed, acked or not: its newest
                # record carries the marks that say, after a kill -9, up to where the
                # capture is safe (app/link/positions.py). Without it a crash right after
                # an ack would leave no marks, and the next run would fetch acked ticks
                # again. Its acked records are resent then; the bridge drops them by seq.
                break
            segments.popleft()
            if self._reader is not None and self._reader[0] is seg:
                self._close_reader()
            fd, seg.fd = seg.fd, None
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)  # closed first: Windows cannot delete open files
            self.size -= seg.size
            with contextlib.suppress(OSError):
                # A file that cannot be deleted only wastes space; recovery would find
                # its records acked-or-superseded-by-position and resend at worst.
                seg.path.unlink(missing_ok=True)

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader[1].close()
            self._reader = None

    def close(self) -> None:
        """Close every file; wait for the fsyncs handed over. The files stay on disk."""
        self._close_reader()
        for seg in self.segments:
            fd, seg.fd = seg.fd, None
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.active = None
        self._syncer.close()  # every fsync handed over is done before files go

    def forget(self) -> None:
        """Hold nothing any more (after :meth:`close`, when the files are kept or gone)."""
        self.segments.clear()
        self.size = 0

    # ------------------------------------------------------------------ reading
    def read(self, seq: int, entry: Entry) -> bytes | None:
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
            return _mark_lost(entry, f"read failed: {exc}", seg.path, offset)
        found = next(scan(seg.path, data, with_payload=False), None)
        if found is None or found.damage is not None:
            reason = "record missing" if found is None else found.damage
            assert reason is not None
            return _mark_lost(entry, reason, seg.path, offset)
        if (found.seq, found.ticks, found.payload_length, found.length) != (
            seq,
            entry.ticks,
            entry.size,
            entry.length,
        ):
            return _mark_lost(
                entry,
                f"record says seq {found.seq}, {found.payload_length} bytes, "
                f"{found.ticks} ticks; expected seq {seq}, {entry.size} bytes, "
                f"{entry.ticks} ticks",
                seg.path,
                offset,
            )
        return data[found.payload_offset :]


def _mark_lost(entry: Entry, reason: str, path: Path, offset: int) -> bytes | None:
    """Mark ``entry`` lost for good (its payload cannot be had); always None."""
    entry.lost = LostRecord(reason, entry.ticks, path, offset)
    return None


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
