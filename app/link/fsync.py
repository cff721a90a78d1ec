"""fsync off the caller's thread, one at a time.

The spool runs on the asyncio loop, and an fsync of a 4 MB segment takes from a
millisecond to tens of milliseconds on a busy disk: with inline fsyncs the link's loop
stalled up to 4 s at full speed (``bench pipeline``), and the periodic fsync of the open
segment put its duration into the tick→ack p99. A kill -9 does not need them (the page
cache survives the process); they bound what a power loss can take, which a background
thread does just as well. On Windows a file that is open cannot be deleted, so there the
fsync stays inline.
"""

from __future__ import annotations

import logging
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from app.link.spool_files import fsync_directory

log = logging.getLogger(__name__)


class BackgroundSync:
    def __init__(self, *, inline: bool = sys.platform == "win32") -> None:
        self._inline = inline
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None
        self._warned = False

    def idle(self) -> bool:
        return self._pending is None or self._pending.done()

    def seal(self, fd: int, unlink: Path | None, directory: Path | None) -> None:
        """fsync and close ``fd`` (a sealed segment), delete ``unlink`` if given (an
        empty one), then fsync ``directory``. The fd belongs to this object now."""

        def job() -> None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            if unlink is not None:
                unlink.unlink(missing_ok=True)
            if directory is not None:
                fsync_directory(directory)

        self._run(job)

    def sync(self, fd: int, directory: Path | None) -> None:
        """fsync the open segment (through a duplicate fd: the caller keeps writing)."""
        dup = os.dup(fd)

        def job() -> None:
            try:
                os.fsync(dup)
            finally:
                os.close(dup)
            if directory is not None:
                fsync_directory(directory)

        self._run(job)

    def _run(self, job: object) -> None:
        assert callable(job)
        if self._inline:
            job()
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="spool-fsync")
        future = self._executor.submit(job)
        future.add_done_callback(self._report)
        self._pending = future

    def _report(self, future: Future[None]) -> None:
        exc = future.exception()
        if exc is not None and not self._warned:
            self._warned = True  # once: a failing disk would repeat it on every seal
            log.warning("spool fsync failed (%s): a power loss may take recent messages", exc)

    def close(self) -> None:
        """Wait for every fsync handed over; idempotent."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
