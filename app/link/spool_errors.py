"""The spool's own errors, and which OS errors mean "the disk is full".

Kept apart from :mod:`app.link.spool` so that the link's rules
(:mod:`app.link.machine`) can name what the spool raises without the spool's file
handling, and so the segment files (:mod:`app.link.spool_segments`) and the spool's
index raise the same types. :class:`~app.link.spool_files.SpoolLocked` stays with the
session lock that raises it.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from pathlib import Path
from typing import Final

__all__ = [
    "DISK_FULL",
    "SpoolCorruptError",
    "SpoolDiskError",
    "SpoolError",
    "SpoolFull",
]

#: Write errors that deleting acked data can cure.
DISK_FULL: Final = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


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

    @classmethod
    def measured(cls, seq: int, size: int, directory: Path, error: OSError) -> SpoolDiskError:
        """The error with the free bytes of ``directory``'s disk, measured now."""
        free: int | None = None
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(directory).free
        return cls(seq, size, directory, error, free)


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
