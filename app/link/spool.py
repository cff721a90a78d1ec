"""Every outgoing bridge message the backend has not acked yet, bounded, spilling to disk.

Why it exists: delivery is exactly-once only if the client can resend, after any
reconnect, every message after the bridge's last stored seq (docs/protocol.md §1). So a
message must outlive its first send until the bridge acks it, and an outage of minutes
at full capture rate must not exhaust RAM: past ``memory_limit_bytes`` messages go to
append-only segment files instead.

Layout — one FIFO, each message placed once. The spool is a single seq-ordered list of
entries; each entry holds its payload either in memory or as an (offset, size) into a
segment file. At ``append`` a message goes to memory when it fits under the memory limit,
otherwise to the tail of the current segment. So when the link falls behind, memory
holds the oldest messages and the newest spill to disk; once acks free memory, new
messages go to memory again while the older spilled ones stay on disk and are read back
on demand, one record per :meth:`Spool.peek_next_after`. This was chosen over "reload
the oldest disk records into memory after acks" because it never moves data twice, never
does bulk I/O inside ``ack`` (which runs on the asyncio loop), and FIFO order comes from
the list, not from where payloads live. The cost is about 100 bytes of index per message
on disk, which is negligible for 10 KB–1 MB payloads.

Segments are named ``seg-<first seq>.spool``. Each record is a 24-byte little-endian
header ``(seq u64, ticks u64, length u32, crc32 u32)`` then the payload; the crc covers
the first three header fields and the payload, and every read checks seq, length, ticks
and crc, so a torn or damaged record raises :class:`SpoolCorruptError` naming the file and
offset instead of returning a wrong payload. Writes go through a 1 MiB buffer (flushed
before a record of the open segment is read back); a segment is flushed, fsync'd and
closed when the next record would take it past ``segment_bytes`` — once per segment,
never per record. A segment file is deleted as soon as every record in it is acked.

When full: :meth:`Spool.append` raises :class:`SpoolFull` and changes nothing. The spool
never drops a message; the caller's policy is that the link pauses intake from the
collector, which back-pressures the capture, so ticks wait in the terminal's own history
until acks make room — nothing is lost, it only arrives late.

Not implemented: resume across app restarts. Seqs are per session (a fresh session id
per run), so segment files are useful to this process only: :meth:`Spool.close` deletes
them and the constructor deletes leftovers of a crashed run from ``directory`` (one spool
per directory). The spool is not thread-safe; every method is synchronous and cheap
(O(1) amortised, at most one record of disk I/O) so it can be called from the loop.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import zlib
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final, Self

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "RECORD_HEADER_BYTES",
    "Spool",
    "SpoolCorruptError",
    "SpoolError",
    "SpoolFull",
]

_HEADER: Final = struct.Struct("<QQII")  # seq, ticks, payload length, crc32
#: Bytes each spilled message costs on disk on top of its payload.
RECORD_HEADER_BYTES: Final = _HEADER.size
_CRC_PREFIX: Final = RECORD_HEADER_BYTES - 4  # the crc covers seq, ticks and length
#: Segment rotation size: small enough that acks free disk space promptly, large enough
#: that the per-segment fsync is rare.
DEFAULT_SEGMENT_BYTES: Final = 4 * 2**20
_WRITE_BUFFER_BYTES: Final = 2**20
_SEGMENT_GLOB: Final = "seg-*.spool"
_MAX_U32: Final = 2**32 - 1
_MAX_U64: Final = 2**64 - 1
#: Acked entries are compacted away once they are this many and half the index.
_COMPACT_MIN: Final = 1024


class SpoolError(Exception):
    """Base of the spool's own errors."""


class SpoolFull(SpoolError):  # noqa: N818 - a state the caller waits out, not a fault
    """The message fits neither in memory nor on disk; retry after acks free space.

    Raised before anything changes, so the caller can retry the very same ``append``.
    """

    def __init__(self, seq: int, size: int, memory_free: int, disk_free: int | None) -> None:
        where = "no disk spool" if disk_free is None else f"{disk_free} bytes free on disk"
        super().__init__(
            f"spool full: message {seq} of {size} bytes, "
            f"{memory_free} bytes free in memory, {where}"
        )
        self.seq = seq
        self.size = size


class SpoolCorruptError(SpoolError):
    """A spilled record failed its length/seq/crc check: the segment file is damaged."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"spool segment {path} is corrupt at offset {offset}: {reason}")
        self.path = path
        self.offset = offset


class _Segment:
    __slots__ = ("first_seq", "last_seq", "path", "size", "writer")

    def __init__(self, path: Path, first_seq: int, writer: BinaryIO) -> None:
        self.path = path
        self.first_seq = first_seq
        self.last_seq = first_seq - 1  # no record yet
        self.size = 0
        self.writer: BinaryIO | None = writer  # None once sealed


class _Entry:
    """One message: ``payload`` in memory, or ``segment`` + ``offset`` on disk."""

    __slots__ = ("offset", "payload", "segment", "size", "ticks")

    def __init__(
        self, ticks: int, size: int, payload: bytes | None, segment: _Segment | None, offset: int
    ) -> None:
        self.ticks = ticks
        self.size = size
        self.payload = payload
        self.segment = segment
        self.offset = offset


class Spool:
    """Bounded FIFO of ``(seq, payload, ticks)`` awaiting the bridge's ack.

    Seqs are gap-free: the first ``append`` is seq 1, each next one ``last_seq + 1``. A
    sender loop keeps the seq it sent last and asks for the next one; that is one index
    lookup, O(1), plus at most one record read when that message is on disk::

        sent = spool.acked_seq              # after welcome: spool.ack(last_seq) first
        while True:
            item = spool.peek_next_after(sent)
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
    ) -> None:
        if memory_limit_bytes < 0 or disk_limit_bytes < 0:
            raise ValueError("spool limits must be >= 0")
        if segment_bytes <= 0:
            raise ValueError("segment_bytes must be > 0")
        self._memory_limit = memory_limit_bytes
        self._disk_limit = disk_limit_bytes if directory is not None else 0
        self._directory = directory
        self._segment_bytes = segment_bytes
        # Entries of seqs acked_seq+1 .. last_seq live at _entries[_head:]; a list with a
        # moving head (not a deque) so that seq -> entry is O(1) anywhere in the window.
        self._entries: list[_Entry] = []
        self._head = 0
        self._acked = 0
        self._last = 0
        self._ticks = 0
        self._memory_bytes = 0
        self._disk_bytes = 0
        self._spilled_total = 0
        self._segments: deque[_Segment] = deque()
        self._active: _Segment | None = None
        self._reader: tuple[_Segment, io.FileIO] | None = None
        self._closed = False
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            for stale in directory.glob(_SEGMENT_GLOB):
                stale.unlink()

    # ------------------------------------------------------------------ observation
    def __len__(self) -> int:
        return self._last - self._acked

    def __repr__(self) -> str:
        return (
            f"Spool(seqs {self._acked + 1}..{self._last}, {len(self)} messages, "
            f"memory {self._memory_bytes}/{self._memory_limit} B, "
            f"disk {self._disk_bytes}/{self._disk_limit} B)"
        )

    @property
    def ticks(self) -> int:
        """Ticks in the unacked messages (the sum of their ``ticks`` at append)."""
        return self._ticks

    @property
    def memory_bytes(self) -> int:
        """Payload bytes held in memory; never above ``memory_limit_bytes``."""
        return self._memory_bytes

    @property
    def disk_bytes(self) -> int:
        """Size of the segment files on disk, headers included.

        Counts whole files, acked records of a partly acked segment included, because
        that is what the disk really holds; never above ``disk_limit_bytes``.
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
        """Last appended seq, 0 before the first append."""
        return self._last

    @property
    def acked_seq(self) -> int:
        """Highest seq acked so far (0 at the start): ``resume_from`` of the hello."""
        return self._acked

    @property
    def fill_ratio(self) -> float:
        """(memory + disk bytes) / (memory + disk limits), 0..1; 1.0 for zero limits."""
        capacity = self._memory_limit + self._disk_limit
        if capacity == 0:
            return 1.0
        return min(1.0, (self._memory_bytes + self._disk_bytes) / capacity)

    @property
    def spilled_total(self) -> int:
        """Messages ever written to disk: how often the memory limit was hit, in messages."""
        return self._spilled_total

    @property
    def segment_paths(self) -> tuple[Path, ...]:
        """The segment files currently on disk, oldest first."""
        return tuple(seg.path for seg in self._segments)

    # ------------------------------------------------------------------ mutation
    def append(self, seq: int, payload: bytes, ticks: int) -> None:
        """Keep ``payload`` until ``ack(seq)``; in memory if it fits, otherwise on disk.

        Raises ValueError when ``seq`` is not ``last_seq + 1`` or the payload could never
        fit even in an empty spool (waiting for acks would then wait forever), and
        :class:`SpoolFull` when it does not fit now. Neither changes anything.
        """
        self._check_open()
        if seq != self._last + 1:
            raise ValueError(f"spool expects seq {self._last + 1}, got {seq}")
        if not 0 <= ticks <= _MAX_U64:
            raise ValueError(f"tick count must be >= 0, got {ticks}")
        size = len(payload)
        fits_disk = self._directory is not None and (
            size <= _MAX_U32 and RECORD_HEADER_BYTES + size <= self._disk_limit
        )
        if size > self._memory_limit and not fits_disk:
            raise ValueError(
                f"message {seq} of {size} bytes exceeds the spool's memory and disk limits"
            )
        if self._memory_bytes + size <= self._memory_limit:
            entry = _Entry(ticks, size, payload, None, 0)
            self._memory_bytes += size
        else:
            entry = self._spill(seq, payload, ticks)
        self._entries.append(entry)
        self._last = seq
        self._ticks += ticks

    def ack(self, seq: int) -> int:
        """Forget every message <= ``seq`` (acks are cumulative); return how many went.

        An ack at or below ``acked_seq`` is a harmless repeat and drops nothing. Acking
        past ``last_seq`` is a ValueError: the bridge claims something never sent.
        Segment files whose records are all acked are deleted here.
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
            if entry.segment is None:
                self._memory_bytes -= entry.size
            # Drop the references now: the dead entry itself lingers until compaction.
            entry.payload = None
            entry.segment = None
        self._head = stop
        self._acked = seq
        segments = self._segments
        while segments and segments[0].last_seq <= seq:
            self._delete_segment(segments.popleft())
        if self._head >= _COMPACT_MIN and 2 * self._head >= len(entries):
            del entries[: self._head]
            self._head = 0
        return stop - start

    def close(self) -> None:
        """Delete the segment files and forget everything; idempotent.

        Unacked messages are lost on purpose: they belong to this session, which ends
        here (no resume across restarts). Every file is attempted; the first OSError,
        if any, is raised afterwards.
        """
        if self._closed:
            return
        self._closed = True
        self._close_reader()
        error: OSError | None = None
        for seg in self._segments:
            try:
                self._discard(seg)
            except OSError as exc:
                error = error or exc
        self._segments.clear()
        self._active = None
        self._entries = []
        self._head = 0
        self._acked = self._last  # holds nothing any more: len() is 0
        self._ticks = self._memory_bytes = self._disk_bytes = 0
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
        gone and the bridge already has them. O(1); a message on disk costs one record
        read (and raises :class:`SpoolCorruptError` if that record is damaged).
        """
        self._check_open()
        target = max(seq, self._acked) + 1
        if target > self._last:
            return None
        entry = self._entries[self._head + (target - self._acked - 1)]
        payload = entry.payload
        if payload is None:
            payload = self._read(target, entry)
        return target, payload

    def iter_from(self, seq: int) -> Iterator[tuple[int, bytes]]:
        """Yield ``(seq, payload)`` for every unacked message >= ``seq``, in order.

        Lazy and live: each ``next`` returns the message after the previous one as the
        spool is *at that moment*, so messages appended while the consumer runs are
        yielded too, messages acked meanwhile are skipped, and the iterator ends at the
        first ``next`` that finds nothing newer (a finished generator cannot resume; a
        long-lived sender loop should use :meth:`peek_next_after`). Any number of
        iterators may run at once; each step is one :meth:`peek_next_after`.
        """
        after = seq - 1
        while (item := self.peek_next_after(after)) is not None:
            yield item
            after = item[0]

    # ------------------------------------------------------------------ disk
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("spool is closed")

    def _spill(self, seq: int, payload: bytes, ticks: int) -> _Entry:
        size = len(payload)
        record = RECORD_HEADER_BYTES + size
        if self._directory is None or self._disk_bytes + record > self._disk_limit:
            disk_free = None if self._directory is None else self._disk_limit - self._disk_bytes
            raise SpoolFull(seq, size, self._memory_limit - self._memory_bytes, disk_free)
        seg = self._active
        if seg is not None and seg.size > 0 and seg.size + record > self._segment_bytes:
            self._seal_active()
            seg = None
        if seg is None:
            seg = self._open_segment(seq)
        writer = seg.writer
        assert writer is not None
        offset = seg.size
        crc_prefix = _HEADER.pack(seq, ticks, size, 0)[:_CRC_PREFIX]
        crc = zlib.crc32(payload, zlib.crc32(crc_prefix))
        try:
            writer.write(_HEADER.pack(seq, ticks, size, crc))
            writer.write(payload)
        except BaseException:
            self._abandon_active(offset)
            raise
        seg.size += record
        seg.last_seq = seq
        self._disk_bytes += record
        self._spilled_total += 1
        return _Entry(ticks, size, None, seg, offset)

    def _open_segment(self, first_seq: int) -> _Segment:
        assert self._directory is not None
        path = self._directory / f"seg-{first_seq}.spool"
        writer = io.BufferedWriter(io.FileIO(path, "xb"), buffer_size=_WRITE_BUFFER_BYTES)
        seg = _Segment(path, first_seq, writer)
        self._segments.append(seg)
        self._active = seg
        return seg

    def _seal_active(self) -> None:
        """Flush, fsync and close the open segment; it stays readable and deletable.

        Whatever happens the segment ends up closed, so a failing disk raises once here
        rather than on every later append; a record that never reached the file is then
        reported as truncated when read, never returned wrong.
        """
        seg = self._active
        assert seg is not None
        writer = seg.writer
        assert writer is not None
        seg.writer = None
        self._active = None
        try:
            writer.flush()
            os.fsync(writer.fileno())
        finally:
            writer.close()

    def _abandon_active(self, good_size: int) -> None:
        """After a failed write: cut the segment back to its last whole record."""
        seg = self._active
        assert seg is not None
        writer = seg.writer
        assert writer is not None
        seg.writer = None
        self._active = None
        with contextlib.suppress(OSError):
            writer.close()
        with contextlib.suppress(OSError):
            os.truncate(seg.path, good_size)
        if seg.size == 0:  # no record of ours in it: nothing will ever ack it away
            self._segments.remove(seg)
            seg.path.unlink(missing_ok=True)

    def _delete_segment(self, seg: _Segment) -> None:
        if self._reader is not None and self._reader[0] is seg:
            self._close_reader()
        if seg is self._active:
            self._active = None
        self._discard(seg)
        self._disk_bytes -= seg.size

    @staticmethod
    def _discard(seg: _Segment) -> None:
        """Close and delete a segment file (closed first: Windows cannot delete open files)."""
        writer = seg.writer
        seg.writer = None
        if writer is not None:
            with contextlib.suppress(OSError):  # deleted next: a failed flush does not matter
                writer.close()
        seg.path.unlink(missing_ok=True)

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader[1].close()
            self._reader = None

    def _read(self, seq: int, entry: _Entry) -> bytes:
        seg = entry.segment
        assert seg is not None
        if seg.writer is not None:
            seg.writer.flush()  # the record may still sit in the write buffer
        if self._reader is None or self._reader[0] is not seg:
            self._close_reader()
            # Unbuffered: a read-ahead buffer could serve stale bytes of a file that
            # changed underneath, hiding exactly the damage the checks are for.
            self._reader = (seg, io.FileIO(seg.path, "rb"))
        reader = self._reader[1]
        offset = entry.offset
        reader.seek(offset)
        header = _read_exact(reader, RECORD_HEADER_BYTES)
        if len(header) < RECORD_HEADER_BYTES:
            raise SpoolCorruptError(
                seg.path,
                offset,
                f"record of seq {seq} truncated in its header "
                f"({len(header)} of {RECORD_HEADER_BYTES} bytes)",
            )
        found_seq, found_ticks, length, crc = _HEADER.unpack(header)
        if (found_seq, length, found_ticks) != (seq, entry.size, entry.ticks):
            raise SpoolCorruptError(
                seg.path,
                offset,
                f"header says seq {found_seq}, {length} bytes, {found_ticks} ticks; "
                f"expected seq {seq}, {entry.size} bytes, {entry.ticks} ticks",
            )
        payload = _read_exact(reader, length)
        if len(payload) < length:
            raise SpoolCorruptError(
                seg.path,
                offset,
                f"record of seq {seq} truncated ({len(payload)} of {length} payload bytes)",
            )
        if zlib.crc32(payload, zlib.crc32(header[:_CRC_PREFIX])) != crc:
            raise SpoolCorruptError(seg.path, offset, f"crc mismatch in record of seq {seq}")
        return payload


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
