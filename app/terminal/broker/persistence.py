"""The simulated broker's books on disk: one SQLite file per (server, login).

A broker keeps an account's state across restarts of the terminal, and several
processes open the same simulated account at once (the worker that trades, a backfill
helper, a short-lived session call). SQLite in WAL mode fits: every ``order_send`` is
one ``BEGIN IMMEDIATE`` transaction (writers queue on the lock, readers never block and
see only committed books), and ``PRAGMA data_version`` tells a process cheaply whether
another one committed since it last read, so reads are served from memory otherwise.

Rows are the records as JSON, keyed by kind and ticket: the simulator's books are small,
and the schema cannot drift from the dataclasses.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from app.terminal.broker.state import (
    AccountSettings,
    AccountState,
    BrokerState,
    Deal,
    Order,
    Position,
)

__all__ = ["BrokerStore", "account_file"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS account (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS book (
    kind TEXT NOT NULL, ticket INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (kind, ticket)
);
"""
_KINDS: dict[str, type[Any]] = {
    "position": Position,
    "order": Order,
    "history_order": Order,
    "deal": Deal,
}


def account_file(folder: Path, server: str, login: int) -> Path:
    """``<folder>/<server>-<login>.sqlite``, the server name made safe for any OS."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", server).strip("._") or "server"
    return folder / f"{safe}-{int(login)}.sqlite"


def _dump(record: Any) -> str:
    return json.dumps(dataclasses.asdict(record), separators=(",", ":"))


class BrokerStore:
    """The books of one account; ``path=None`` keeps them in memory (tests, one-offs)."""

    def __init__(self, path: Path | None, settings: AccountSettings, *, opened_msc: int) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(
            str(path) if path is not None else ":memory:",
            timeout=30.0,
            isolation_level=None,  # explicit BEGIN/COMMIT
            check_same_thread=False,
        )
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._db.execute("SELECT 1 FROM account").fetchone() is None:
                opened = AccountState.opened(settings, opened_msc)
                self._db.execute("INSERT INTO account VALUES (1, ?)", (_dump(opened),))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._version = -1
        self._state = self._load()
        # One connection per store: threads of one process take turns (a read between
        # another thread's BEGIN and COMMIT would see, or roll back, its transaction).
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def read(self) -> BrokerState:
        """The committed books (re-read only when another connection committed)."""
        with self._lock:
            return self._read()

    def _read(self) -> BrokerState:
        version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        if version != self._version:
            self._state = self._load()
            self._version = version
        return self._state

    def remember(self, state: BrokerState) -> None:
        """Keep a state that differs from the stored one only in what need not be
        written (the instant up to which triggers were checked)."""
        with self._lock:
            self._state = state

    def update(self, step: Callable[[BrokerState], tuple[BrokerState, T]]) -> T:
        """Run ``step`` on the latest books under the write lock and commit what it
        changed in one transaction."""
        with self._lock:
            return self._update(step)

    def _update(self, step: Callable[[BrokerState], tuple[BrokerState, T]]) -> T:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            # Under the write lock: if nobody else committed since the last read, the
            # books in memory are current (no reload: its cost grows with the history).
            version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
            old = self._state if version == self._version else self._load()
            state, out = step(old)
            self._write(old, state)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._version = -1
            raise
        self._state = state
        self._version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        return out

    def _write(self, old: BrokerState, new: BrokerState) -> None:
        """Write what differs between the two books (records are immutable, so an
        unchanged one is the very same object)."""
        db = self._db
        if new.account != old.account:
            db.execute("UPDATE account SET body = ? WHERE id = 1", (_dump(new.account),))
        rows: list[tuple[str, int, str]] = []
        gone: list[tuple[str, int]] = []
        for kind, before, after in (
            ("position", old.positions, new.positions),
            ("order", old.orders, new.orders),
            ("history_order", old.history_orders, new.history_orders),
            ("deal", old.deals, new.deals),
        ):
            rows += [(kind, t, _dump(r)) for t, r in after.items() if before.get(t) is not r]
            gone += [(kind, t) for t in before if t not in after]
        db.executemany("INSERT OR REPLACE INTO book VALUES (?, ?, ?)", rows)
        db.executemany("DELETE FROM book WHERE kind = ? AND ticket = ?", gone)

    def _load(self) -> BrokerState:
        (body,) = self._db.execute("SELECT body FROM account WHERE id = 1").fetchone()
        account = AccountState(**json.loads(body))
        books: dict[str, dict[int, Any]] = {kind: {} for kind in _KINDS}
        for kind, ticket, raw in self._db.execute("SELECT kind, ticket, body FROM book"):
            cls = _KINDS.get(kind)
            if cls is not None:
                books[kind][int(ticket)] = cls(**json.loads(raw))
        return BrokerState(
            account,
            positions=books["position"],
            orders=books["order"],
            history_orders=books["history_order"],
            deals=books["deal"],
        )
