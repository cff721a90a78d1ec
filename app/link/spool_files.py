"""The spool's files: record format, segment scanning, the session lock and meta.

Kept apart from :mod:`app.link.spool` because these pieces are pure file handling that
a ``backend dump`` debugging command needs without a live spool (:func:`read_records`),
and because the record layout is easier to review on its own.

Record layout (little-endian), written with ONE ``write`` per record::

    magic    4s   b"SPR\\x01"   resync point after damage
    flags    u16  0 (reserved for later record kinds)
    reserved u16  0
    seq      u64
    ticks    u64
    marks    u32  length of the marks blob
    length   u32  length of the payload
    body_crc u32  crc32 of marks + payload
    head_crc u32  crc32 of every header byte before it

then ``marks`` then ``payload``. The header has its own crc so its lengths can be trusted
before the body is read: a damaged body is skipped exactly; a damaged header is skipped
by searching for the next magic (a false magic inside a payload is rejected by the header
crc). The magic makes resync possible at all; the header crc makes it safe.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from app.config.store import atomic_write, fsync_directory

__all__ = [
    "HEADER",
    "LOCK_NAME",
    "MAGIC",
    "MARKS_NAME",
    "META_NAME",
    "RECORD_HEADER_BYTES",
    "Record",
    "SessionLock",
    "SpoolLocked",
    "check_record",
    "encode_header",
    "fsync_directory",
    "is_temp_file",
    "read_marks",
    "read_meta",
    "read_records",
    "scan",
    "segment_name",
    "segment_number",
    "segment_paths",
    "write_marks",
    "write_meta",
]

MAGIC: Final = b"SPR\x01"
HEADER: Final = struct.Struct("<4sHHQQIIII")
#: Bytes each record costs on disk on top of its marks and payload.
RECORD_HEADER_BYTES: Final = HEADER.size
_HEAD_CRC_SPAN: Final = RECORD_HEADER_BYTES - 4
_MAX_U32: Final = 2**32 - 1
_MAX_U64: Final = 2**64 - 1
META_NAME: Final = "spool.json"
LOCK_NAME: Final = "spool.lock"
#: The marks of the newest record, kept when a full disk made the spool delete the
#: (fully acked) segment that held it.
MARKS_NAME: Final = "marks"
_SEGMENT_PREFIX: Final = "seg-"
_SEGMENT_SUFFIX: Final = ".spool"


class SpoolLocked(Exception):  # noqa: N818 - the name says the state, as the brief asks
    """Another open Spool (this process or another) holds the session directory."""

    def __init__(self, directory: Path) -> None:
        super().__init__(f"spool folder {directory} is in use by another open spool")
        self.directory = directory


def check_record(seq: int, ticks: int, marks: bytes, payload: bytes) -> None:
    """ValueError when the message does not fit a record's fields (u64 ticks, u32 lengths)."""
    if not 0 <= ticks <= _MAX_U64:
        raise ValueError(f"tick count must be >= 0, got {ticks}")
    if len(payload) > _MAX_U32 or len(marks) > _MAX_U32:
        raise ValueError(f"message {seq} of {len(payload)} bytes is too large for a record")


def encode_header(flags: int, seq: int, ticks: int, marks: bytes, payload: bytes) -> bytes:
    body_crc = zlib.crc32(payload, zlib.crc32(marks))
    head = HEADER.pack(MAGIC, flags, 0, seq, ticks, len(marks), len(payload), body_crc, 0)
    return head[:_HEAD_CRC_SPAN] + zlib.crc32(head[:_HEAD_CRC_SPAN]).to_bytes(4, "little")


def segment_name(number: int) -> str:
    return f"{_SEGMENT_PREFIX}{number:08d}{_SEGMENT_SUFFIX}"


def segment_number(path: Path) -> int | None:
    name = path.name
    if not (name.startswith(_SEGMENT_PREFIX) and name.endswith(_SEGMENT_SUFFIX)):
        return None
    digits = name[len(_SEGMENT_PREFIX) : -len(_SEGMENT_SUFFIX)]
    return int(digits) if digits.isdigit() else None


def segment_paths(directory: Path) -> list[Path]:
    """The segment files of a session directory in write order (by number)."""
    found = [(n, p) for p in directory.iterdir() if (n := segment_number(p)) is not None]
    return [p for _, p in sorted(found)]


@dataclass(frozen=True, slots=True)
class Record:
    """One record, or one damaged stretch, found in a segment file.

    For a good record ``damage`` is None. For a damaged stretch ``damage`` says what is
    wrong, ``length`` is how many bytes were skipped, and ``seq``/``ticks`` are set only
    when the header itself passed its crc (the body did not).
    """

    path: Path
    offset: int
    length: int
    seq: int | None
    ticks: int | None
    flags: int
    marks: bytes
    payload: bytes
    damage: str | None
    #: Where the payload starts in the file, and its length (also for a damaged body).
    payload_offset: int = 0
    payload_length: int = 0


def _header_at(data: bytes | memoryview, offset: int) -> tuple[int, ...] | str:
    """The unpacked header at ``offset``, or why there is none."""
    end = len(data)
    if end - offset < RECORD_HEADER_BYTES:
        return f"truncated header ({end - offset} of {RECORD_HEADER_BYTES} bytes)"
    if bytes(data[offset : offset + 4]) != MAGIC:
        return "bad magic"
    fields = HEADER.unpack_from(data, offset)
    if zlib.crc32(data[offset : offset + _HEAD_CRC_SPAN]) != fields[8]:
        return "header crc mismatch"
    return fields


def scan(path: Path, data: bytes, *, with_payload: bool = True) -> Iterator[Record]:
    """Every record and damaged stretch of one segment's bytes, in file order.

    A bad header skips to the next magic (or the end); a good header with a bad or
    truncated body skips exactly that record (its lengths are trustworthy). Without
    ``with_payload`` the payload is left in ``data`` (``payload_offset``/``_length``
    say where) instead of being copied: recovery copies only what it caches.
    """
    view = memoryview(data)
    offset = 0
    end = len(data)
    while offset < end:
        fields = _header_at(view, offset)
        if isinstance(fields, str):
            nxt = data.find(MAGIC, offset + 1)
            while nxt != -1 and isinstance(_header_at(view, nxt), str):
                nxt = data.find(MAGIC, nxt + 1)
            stop = end if nxt == -1 else nxt
            yield Record(path, offset, stop - offset, None, None, 0, b"", b"", fields)
            offset = stop
            continue
        _, flags, _, seq, ticks, marks_len, length, body_crc, _ = fields
        body = offset + RECORD_HEADER_BYTES
        at = body + marks_len
        stop = at + length
        if stop > end:
            reason = f"record of seq {seq} truncated ({end - body} of {marks_len + length} bytes)"
            yield Record(
                path, offset, end - offset, seq, ticks, flags, b"", b"", reason, at, length
            )
            return
        if zlib.crc32(view[body:stop]) != body_crc:
            reason = f"body crc mismatch in record of seq {seq}"
            yield Record(
                path, offset, stop - offset, seq, ticks, flags, b"", b"", reason, at, length
            )
        else:
            marks = bytes(view[body:at])
            payload = bytes(view[at:stop]) if with_payload else b""
            yield Record(
                path, offset, stop - offset, seq, ticks, flags, marks, payload, None, at, length
            )
        offset = stop


def read_records(path: Path) -> Iterator[Record]:
    """Every record of a segment file, or of all segments of a session directory.

    For ``backend dump``: nothing is locked, changed or recovered, damage is reported as
    a :class:`Record` with ``damage`` set rather than raised. Segments are read whole,
    one at a time (they are a few MiB).
    """
    paths = segment_paths(path) if path.is_dir() else [path]
    for p in paths:
        yield from scan(p, p.read_bytes())


# ---------------------------------------------------------------------- meta
def write_meta(directory: Path, client_id: str, session: str) -> None:
    """Write ``spool.json`` atomically, so it is whole or absent."""
    meta = {"client_id": client_id, "session": session, "created": time.time()}
    atomic_write(directory / META_NAME, json.dumps(meta).encode())


def write_marks(directory: Path, marks: bytes) -> None:
    """Replace the marks file atomically (never half a file)."""
    atomic_write(directory / MARKS_NAME, marks)


def is_temp_file(name: str) -> bool:
    """A temp file of :func:`atomic_write` that a crash left behind."""
    return name.startswith(".") and name.endswith(".tmp")


def read_marks(directory: Path) -> bytes:
    try:
        return (directory / MARKS_NAME).read_bytes()
    except OSError:
        return b""


def read_meta(directory: Path) -> dict[str, object] | None:
    """The meta of a session directory, None when it is missing or unreadable."""
    try:
        meta = json.loads((directory / META_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


# ---------------------------------------------------------------------- lock
class SessionLock:
    """An exclusive, non-blocking lock on ``directory/spool.lock``.

    ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows: both are released by the
    OS when the process dies, so a crashed run never leaves a stale lock behind, and
    ``flock`` also conflicts between two opens in one process (a second Spool on the same
    folder in the same process is refused too).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0)
        fd = os.open(directory / LOCK_NAME, flags, 0o644)
        try:
            _lock(fd)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK):
                raise SpoolLocked(directory) from None
            raise
        self._fd: int | None = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                _unlock(fd)
            os.close(fd)


if sys.platform == "win32":
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
