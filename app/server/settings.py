"""The gateway's settings documents: one versioned JSON object per client.

The version is the optimistic-concurrency token of protocol.md §2 (ETag / If-Match):
a write names the version it was based on and fails when someone else wrote in between,
so two desks editing the same client's settings never silently overwrite each other.
Kept in the backend's SQLite file so that settings outlive a restart.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from app.server.db import connect, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (client_id TEXT PRIMARY KEY, version INTEGER NOT NULL,
                                     document TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class SettingsDoc:
    version: int
    settings: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "settings": self.settings}


class SettingsStore:
    """Blocking and thread-safe: the gateway calls it through ``asyncio.to_thread``."""

    def __init__(self, path: Path | str) -> None:
        self._conn = connect(path)
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()

    def get(self, client_id: str) -> SettingsDoc:
        with self._lock:
            return self._get(client_id)

    def _get(self, client_id: str) -> SettingsDoc:
        row = self._conn.execute(
            "SELECT version, document FROM settings WHERE client_id = ?", (client_id,)
        ).fetchone()
        if row is None:
            return SettingsDoc(0, {})
        return SettingsDoc(int(row[0]), orjson.loads(row[1]))

    def put(
        self, client_id: str, expected_version: int, settings: dict[str, Any]
    ) -> tuple[bool, SettingsDoc]:
        """Compare-and-set: ``(True, new document)``, or ``(False, current document)``
        when ``expected_version`` is not the stored version."""
        with self._lock:
            conn = self._conn
            with transaction(conn):
                current = self._get(client_id)
                if current.version != expected_version:
                    return False, current
                new = SettingsDoc(current.version + 1, settings)
                conn.execute(
                    "INSERT INTO settings VALUES (?, ?, ?) ON CONFLICT (client_id) DO UPDATE "
                    "SET version = excluded.version, document = excluded.document",
                    (client_id, new.version, orjson.dumps(settings).decode()),
                )
            return True, new

    def close(self) -> None:
        with self._lock:
            self._conn.close()
