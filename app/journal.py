"""The application log kept in memory for the window's Journal panel.

A plain :class:`logging.Handler` that keeps the newest records in a bounded ring. Records
arrive from any thread (the loop, ``to_thread`` helpers, the embedded backend's writer);
the panel polls :meth:`Journal.after` at display rate with the last sequence number it
has, so a burst of log lines costs the GUI one refresh, not one signal per line.

Messages are formatted when they are recorded, after the redaction filter ran (the
filter sits on the root handlers and on this one), so a secret never reaches the ring.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

#: Records kept; older ones fall off (the file log, when configured, keeps everything).
DEFAULT_CAPACITY = 5000


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    created: float
    level: int
    level_name: str
    source: str
    message: str


class Journal(logging.Handler):
    def __init__(self, capacity: int = DEFAULT_CAPACITY, level: int = logging.DEBUG) -> None:
        super().__init__(level)
        self._entries: deque[JournalEntry] = deque(maxlen=capacity)
        self._seq = 0
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        except Exception:  # a broken format string must not break logging
            message = str(record.msg)
        with self._guard:
            self._seq += 1
            self._entries.append(
                JournalEntry(
                    self._seq,
                    record.created,
                    record.levelno,
                    record.levelname,
                    record.name,
                    message,
                )
            )

    @property
    def last_seq(self) -> int:
        return self._seq

    def after(self, seq: int) -> list[JournalEntry]:
        """Entries newer than ``seq`` still in the ring, oldest first."""
        with self._guard:
            if not self._entries or self._entries[-1].seq <= seq:
                return []
            first = self._entries[0].seq
            start = max(0, seq - first + 1)
            return list(self._entries)[start:]

    def clear(self) -> None:
        with self._guard:
            self._entries.clear()


def install_journal(journal: Journal, logger: logging.Logger | None = None) -> None:
    """Attach ``journal`` to ``logger`` (the root by default) with the redaction filter
    that the other handlers carry."""
    from app.security.redact import RedactingFilter  # noqa: PLC0415 - avoid a cycle

    target = logger if logger is not None else logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for f in journal.filters):
        journal.addFilter(RedactingFilter())
    if journal not in target.handlers:
        target.addHandler(journal)
