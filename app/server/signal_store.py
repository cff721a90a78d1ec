"""Where the reference backend keeps trading signals: the backend's one SQLite file.

The gateway writes a signal here when a service posts it; the bridge reads the signals
of the client a connection serves and sends them until the client says it received
them; the client's outcome is written back and read by ``GET /api/v1/signals/{id}``.

Why the database is the route from the gateway to the bridge: a signal must outlive a
restart of either service and wait for a client that is offline, so it has to be stored
anyway; with the row as the only truth, the bridge needs nothing from the gateway but a
nudge. In the reference backend both run in one process, so the gateway nudges the
bridge's connections directly (:meth:`app.server.bridge.Bridge.wake_signals`: the
signal leaves within a millisecond); a bridge in another process finds it at its next
poll (``SIGNAL_POLL_S``). No internal API, no second copy of a signal to keep in step.

Thread model: like the tick store, one write connection behind a lock; every method is
blocking and called through ``asyncio.to_thread``.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from app.protocol.codec import Signal, SignalOutcome
from app.server.db import connect, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS signals (
    id TEXT PRIMARY KEY, client_id TEXT NOT NULL, source TEXT NOT NULL,
    body BLOB NOT NULL, created_at_ms INTEGER NOT NULL, valid_until_ms INTEGER NOT NULL,
    posted_at_ms INTEGER NOT NULL, received_at_ms INTEGER, outcome BLOB,
    outcome_at_ms INTEGER);
CREATE INDEX IF NOT EXISTS signals_waiting ON signals (client_id, received_at_ms);
"""

#: Most signals one list answer carries (newest first).
LIST_LIMIT = 500
#: Most signals waiting for one client (not received, not expired): a service posting
#: faster than the client takes them is refused (429) instead of growing the table and
#: the burst the bridge sends at the next connect without bound.
MAX_WAITING = 1000


@dataclass(frozen=True, slots=True)
class StoredSignal:
    client_id: str
    signal: Signal
    posted_at_ms: int
    received_at_ms: int | None
    outcome: SignalOutcome | None
    outcome_at_ms: int | None

    def state(self, now_ms: int) -> str:
        """``pending`` (not yet received), ``received``, the client's outcome, or
        ``expired`` for one that never reached its client in time."""
        if self.outcome is not None:
            return self.outcome.outcome
        if self.received_at_ms is not None:
            return "received"
        return "expired" if self.signal.valid_until_ms <= now_ms else "pending"

    def as_json(self, now_ms: int) -> dict[str, Any]:
        doc: dict[str, Any] = {
            k: v for k, v in msgspec.structs.asdict(self.signal).items() if v is not None
        }
        doc.update(
            client_id=self.client_id,
            state=self.state(now_ms),
            posted_at_ms=self.posted_at_ms,
            received_at_ms=self.received_at_ms,
            outcome=None,
        )
        if self.outcome is not None:
            out = msgspec.structs.asdict(self.outcome)
            out.pop("id")
            out["at_ms"] = self.outcome_at_ms
            doc["outcome"] = out
        return doc


_ENC = msgspec.msgpack.Encoder()
_SIGNAL = msgspec.msgpack.Decoder(Signal)
_OUTCOME = msgspec.msgpack.Decoder(SignalOutcome)
_COLUMNS = "client_id, body, posted_at_ms, received_at_ms, outcome, outcome_at_ms"


def _row(row: tuple[Any, ...]) -> StoredSignal:
    client_id, body, posted, received, outcome, outcome_at = row
    return StoredSignal(
        str(client_id),
        _SIGNAL.decode(body),
        int(posted),
        None if received is None else int(received),
        None if outcome is None else _OUTCOME.decode(outcome),
        None if outcome_at is None else int(outcome_at),
    )


class SignalStore:
    def __init__(self, path: Path | str) -> None:
        self._conn = connect(path)
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()

    def add(
        self, client_id: str, signal: Signal, posted_at_ms: int, max_waiting: int = MAX_WAITING
    ) -> str:
        """Store a new signal for ``client_id``: ``"stored"``, ``"duplicate"`` (its id
        exists) or ``"full"`` (``max_waiting`` signals wait for the client already)."""
        with self._lock:
            try:
                with transaction(self._conn):
                    (waiting,) = self._conn.execute(
                        "SELECT COUNT(*) FROM signals WHERE client_id = ? "
                        "AND received_at_ms IS NULL AND valid_until_ms > ?",
                        (client_id, posted_at_ms),
                    ).fetchone()
                    if waiting >= max_waiting:
                        return "full"
                    self._conn.execute(
                        "INSERT INTO signals (id, client_id, source, body, created_at_ms, "
                        "valid_until_ms, posted_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            signal.id,
                            client_id,
                            signal.source,
                            _ENC.encode(signal),
                            signal.created_at_ms,
                            signal.valid_until_ms,
                            posted_at_ms,
                        ),
                    )
            except sqlite3.IntegrityError:
                return "duplicate"
        return "stored"

    def waiting(self, client_id: str, now_ms: int) -> list[Signal]:
        """The client's signals not yet received and still valid, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT body FROM signals WHERE client_id = ? AND received_at_ms IS NULL "
                "AND valid_until_ms > ? ORDER BY posted_at_ms, id",
                (client_id, now_ms),
            ).fetchall()
        return [_SIGNAL.decode(body) for (body,) in rows]

    def mark_received(self, client_id: str, signal_id: str, at_ms: int) -> bool:
        """The client acknowledged the signal (the first acknowledgement counts)."""
        with self._lock, transaction(self._conn):
            cur = self._conn.execute(
                "UPDATE signals SET received_at_ms = ? WHERE id = ? AND client_id = ? "
                "AND received_at_ms IS NULL",
                (at_ms, signal_id, client_id),
            )
        return cur.rowcount > 0

    def store_outcome(self, client_id: str, outcome: SignalOutcome, at_ms: int) -> bool:
        """Keep the client's outcome of one of its signals; the first one stays (a
        resend after a lost ``outcome_stored`` changes nothing). An outcome also
        implies receipt. False when the id is unknown, another client's, or decided."""
        with self._lock, transaction(self._conn):
            cur = self._conn.execute(
                "UPDATE signals SET outcome = ?, outcome_at_ms = ?, "
                "received_at_ms = COALESCE(received_at_ms, ?) "
                "WHERE id = ? AND client_id = ? AND outcome IS NULL",
                (_ENC.encode(outcome), at_ms, at_ms, outcome.id, client_id),
            )
        return cur.rowcount > 0

    def get(self, signal_id: str) -> StoredSignal | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM signals WHERE id = ?", (signal_id,)
            ).fetchone()
        return None if row is None else _row(row)

    def list(self, client_id: str, limit: int = LIST_LIMIT) -> list[StoredSignal]:
        """The client's signals, newest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM signals WHERE client_id = ? "
                "ORDER BY posted_at_ms DESC, id LIMIT ?",
                (client_id, limit),
            ).fetchall()
        return [_row(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
