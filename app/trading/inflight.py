"""The durable record of orders sent whose outcome is not known yet: never an order twice.

Before ``order_send`` leaves the client, the request (its id, terminal, the request dict
and when) is written here and fsync'd (the project's one ``atomic_write``); the entry is
removed only once the outcome is known: the terminal's answer, or a reconciliation that
found (or, with the terminal answering, did not find) the order by its comment
``tc:<request id>``. So a timeout, a killed worker or a killed app leaves an entry behind,
and the next attempt to trade on that terminal (or the next start) looks the request up
in the terminal's orders, positions and history before anything else is sent.

One small JSON file in the user data folder: a handful of entries at most, rewritten
whole (atomic rename) on every change; an order costs one fsync (the recording), about
1-5 ms on a local disk.
A damaged file is set aside (never silently emptied: it may name an order in flight).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from app.config.store import atomic_write
from app.paths import data_dir
from app.untrusted import read_regular_file

log = logging.getLogger(__name__)

#: The file's name in the user data folder.
FILE_NAME = "orders-in-flight.json"
_MAX_BYTES = 4 * 2**20


def default_journal_path() -> Path:
    return data_dir() / FILE_NAME


@dataclass(frozen=True, slots=True)
class InFlight:
    """One request sent (or about to be) whose outcome is not known yet."""

    request_id: str
    terminal: str
    #: The MT5 request dict as sent (action, symbol, type, volume, price, position ...).
    request: dict[str, Any]
    #: UTC ms when it was recorded, just before ``order_send``.
    sent_at_ms: int
    #: The intent's action (open/close/modify/cancel): how to recognise it in the terminal.
    action: str


class InFlightJournal:
    """The in-flight file; safe to use from the loop and from threads (one lock)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else default_journal_path()
        self._lock = threading.Lock()
        self._entries: dict[str, InFlight] = self._load()

    def _load(self) -> dict[str, InFlight]:
        try:
            raw = read_regular_file(self.path, _MAX_BYTES)
        except FileNotFoundError:
            return {}
        try:
            doc = orjson.loads(raw)
            return {e["request_id"]: InFlight(**e) for e in doc["in_flight"]}
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            aside = self.path.with_name(self.path.name + ".damaged")
            self.path.replace(aside)
            log.error(
                "the in-flight order file was unreadable (%s); moved to %s: check the "
                "terminal's orders and deals by hand for requests it named",
                exc,
                aside,
            )
            return {}

    def _save(self, *, sync: bool = True) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"in_flight": [asdict(e) for e in self._entries.values()]}
        atomic_write(self.path, orjson.dumps(doc, option=orjson.OPT_INDENT_2), sync=sync)

    def add(self, entry: InFlight) -> None:
        """Record ``entry`` durably; returns once it is on disk."""
        with self._lock:
            self._entries[entry.request_id] = entry
            self._save()

    def resolve(self, request_id: str) -> None:
        """The outcome of ``request_id`` is known: forget it. Not fsync'd: should a power
        cut bring the entry back, the next start only looks the request up again and
        finds it (one lookup, never a resend); the fsync would cost every order ~1-5 ms."""
        with self._lock:
            if self._entries.pop(request_id, None) is not None:
                self._save(sync=False)

    def entries(self, terminal: str | None = None) -> list[InFlight]:
        with self._lock:
            return [e for e in self._entries.values() if terminal in (None, e.terminal)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
