"""Where the data bridge keeps ticks: one SQLite file, raw tick records as BLOBs.

Blocks are stored as the exact bytes of :data:`app.ticks.TICK_DTYPE` — the bytes protocol
v2 carries — so what a test reads back compares bit for bit with what the client
captured, and storing binds a zero-copy view of each block instead of one row per tick.
A group of messages and the session's new ``last_seq`` go into ONE transaction: a crash
can never leave ticks without their seq, or a seq without its ticks, and one fsync
covers many messages.

A ``Lost`` message (the client's spool record of it is damaged) is stored as a seq with
no tick rows: the session's ``last_seq`` advances over it, so the messages after it are
not refused as a gap, and ``lost_batches`` counts it.

Counters saturate at SQLite's INTEGER maximum (:func:`app.server.accept.saturating_add`):
they are written in every store transaction, so a single counter that overflowed — one
hello with a ``resume_from`` near ``2**63`` is enough — would otherwise fail every later
commit of every client.

Thread model: every method is safe to call from any thread. Writes share one connection
behind a lock (the bridge funnels them through its single writer thread anyway, so the
lock is never contended on the hot path); reads open their own short-lived connection,
which in WAL mode sees the last commit without waiting for a running writer.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self

import numpy as np

from app.server.accept import INT64_MAX, resume, saturating_add
from app.server.db import connect, transaction
from app.ticks import TICK_DTYPE, TickArray, TickBatch, empty_ticks

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (client_id TEXT, session TEXT, last_seq INTEGER NOT NULL,
                       ticks INTEGER NOT NULL, PRIMARY KEY (client_id, session));
CREATE TABLE IF NOT EXISTS tick_blocks (client_id TEXT, session TEXT, seq INTEGER, idx INTEGER,
                          symbol TEXT, n INTEGER, first_msc INTEGER, last_msc INTEGER,
                          ticks BLOB,
                          PRIMARY KEY (client_id, session, seq, idx));
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS lost_messages (client_id TEXT, session TEXT, seq INTEGER,
                          ticks INTEGER, reason TEXT, PRIMARY KEY (client_id, session, seq));
"""

#: The delivery counters of ``stats()``, in the order protocol.md lists them.
COUNTERS: tuple[str, ...] = (
    "ticks_received",
    "ticks_stored",
    "batches_stored",
    "duplicate_batches",
    "refused_messages",
    "lost_batches",
)

#: Sessions whose ``last_seq`` a store keeps in memory (the most recently used ones).
SEQ_CACHE: Final = 4096

#: Prefix of the per-reason refusal counters in the ``counters`` table.
REFUSED_PREFIX = "refused:"

#: One message to store: its seq and its batches (none for a ``Lost`` marker).
Item = tuple[int, Sequence[TickBatch]]


@dataclass(frozen=True, slots=True)
class KeyedBlock:
    """One block with its exactly-once key, as a stream consumer receives it (any order)."""

    client_id: str
    session: str
    seq: int
    idx: int
    batch: TickBatch


@dataclass(frozen=True, slots=True)
class KeyedLost:
    """A client's ``lost`` marker for link message ``seq``, as a stream consumer receives it."""

    client_id: str
    session: str
    seq: int
    ticks: int
    reason: str


@dataclass(frozen=True, slots=True)
class BlocksStored:
    """What one :meth:`TickStore.store_blocks` transaction added (duplicates: already there)."""

    blocks: int = 0
    ticks: int = 0
    duplicates: int = 0
    lost: int = 0


class StoreConflictError(RuntimeError):
    """The group does not continue the stored ``last_seq``.

    The bridge never lets this happen; the check runs inside the transaction anyway, so
    that a bug there can only refuse a group, never store a seq twice or leave a hole.
    """


def _added(counts: dict[str, int], added: dict[str, int]) -> dict[str, int]:
    """``counts`` with ``added`` summed in, each saturating at SQLite's maximum."""
    return {name: saturating_add(value, added.get(name, 0)) for name, value in counts.items()}


class TickStore:
    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self._synchronous = synchronous
        self._conn = connect(self.path, synchronous=synchronous)
        self._conn.executescript(SCHEMA)
        self._write_lock = threading.Lock()
        # Counters are bumped from the event loop while the writer thread commits; a
        # separate lock keeps the loop from ever waiting for an fsync.
        self._count_lock = threading.Lock()
        stored = dict(self._conn.execute("SELECT name, value FROM counters").fetchall())
        self._counts = {name: int(stored.get(name, 0)) for name in COUNTERS}
        # Refusals per reason (protocol codes and tick rule names: a set the bridge's own
        # code defines, so a peer cannot grow it).
        self._counts.update(
            {str(k): int(v) for k, v in stored.items() if str(k).startswith(REFUSED_PREFIX)}
        )
        #: What the ``counters`` table holds (as of the last commit): a transaction writes
        #: only the rows that changed, not all of them.
        self._written = dict(self._counts)
        #: ``last_seq`` per session as of this store's last commit (see :meth:`store`).
        self._last_seq: dict[tuple[str, str], int] = {}
        self._dirty = False
        self._commits = 0
        self._closed = False

    # ------------------------------------------------------------------ writes
    def last_seq(self, client_id: str, session: str) -> int:
        """The session's stored ``last_seq``, read from the table (the bridge asks once per
        connection, so a connection always starts from what is on disk)."""
        with self._write_lock:
            row = self._conn.execute(
                "SELECT last_seq FROM sessions WHERE client_id = ? AND session = ?",
                (client_id, session),
            ).fetchone()
            last = int(row[0]) if row else 0
            self._remember(client_id, session, last)
        return last

    def _remember(self, client_id: str, session: str, last: int) -> None:
        """Cache a session's ``last_seq`` (the most recently used :data:`SEQ_CACHE`)."""
        key = (client_id, session)
        self._last_seq.pop(key, None)
        self._last_seq[key] = last
        if len(self._last_seq) > SEQ_CACHE:
            del self._last_seq[next(iter(self._last_seq))]

    def _stored_last(self, client_id: str, session: str) -> int:
        """``last_seq`` inside a write transaction: the cached value when this store wrote
        or read it last, else the table's. Why a cache: the read was one of the few
        statements of every commit; the write that follows is guarded by this value, so
        a stale one refuses the group instead of storing it."""
        last = self._last_seq.get((client_id, session))
        if last is not None:
            return last
        row = self._conn.execute(
            "SELECT last_seq FROM sessions WHERE client_id = ? AND session = ?",
            (client_id, session),
        ).fetchone()
        return int(row[0]) if row else 0

    def store(self, client_id: str, session: str, items: Sequence[Item]) -> int:
        """Store consecutive messages and their session's new ``last_seq``; returns it.

        An item without batches is a lost message: it advances ``last_seq`` and counts
        in ``lost_batches``. Raises :class:`StoreConflictError` (nothing stored) when the
        first seq is not the stored ``last_seq + 1`` or the seqs are not consecutive.
        """
        if not items:
            return self.last_seq(client_id, session)
        first, new_last = items[0][0], items[-1][0]
        if [seq for seq, _ in items] != list(range(first, new_last + 1)):
            raise StoreConflictError(f"{client_id}/{session}: seqs of a group must be consecutive")
        if not 1 <= first <= new_last <= INT64_MAX:
            raise StoreConflictError(f"{client_id}/{session}: seqs must be in 1..2^63-1")
        rows = []
        n_ticks = n_stored = n_lost = 0
        for seq, batches in items:
            if not batches:
                n_lost += 1
                continue
            n_stored += 1
            for idx, batch in enumerate(batches):
                ticks = np.ascontiguousarray(batch.ticks, dtype=TICK_DTYPE)
                if not len(ticks):
                    raise StoreConflictError(f"{client_id}/{session}: seq {seq} has an empty block")
                tm = ticks["time_msc"]
                rows.append(
                    (
                        client_id,
                        session,
                        seq,
                        idx,
                        batch.symbol,
                        len(ticks),
                        int(tm[0]),
                        int(tm[-1]),
                        ticks.view(np.uint8).data,  # bound as a BLOB without a copy
                    )
                )
                n_ticks += len(ticks)
        added = {"ticks_stored": n_ticks, "batches_stored": n_stored, "lost_batches": n_lost}
        with self._write_lock:
            try:
                with transaction(self._conn):
                    written = self._store_in(
                        client_id=client_id,
                        session=session,
                        first=first,
                        new_last=new_last,
                        rows=rows,
                        added=added,
                    )
            except BaseException:
                self._last_seq.pop((client_id, session), None)  # unknown now: read it again
                raise
            self._written.update(written)
            self._remember(client_id, session, new_last)
            self._commits += 1
        with self._count_lock:
            self._counts.update(_added(self._counts, added))
        return new_last

    def _store_in(
        self,
        *,
        client_id: str,
        session: str,
        first: int,
        new_last: int,
        rows: list[tuple[Any, ...]],
        added: dict[str, int],
    ) -> dict[str, int]:
        """The statements of one :meth:`store` transaction; returns the counters written."""
        conn = self._conn
        stored_last = self._stored_last(client_id, session)
        if first != stored_last + 1:
            raise StoreConflictError(
                f"{client_id}/{session}: stored last_seq is {stored_last}, "
                f"a group starting at {first} does not continue it"
            )
        # Guarded by the last_seq this group continues: should the cached value be stale
        # (another store wrote the session since), nothing matches and nothing is stored.
        cur = conn.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?) "
            "ON CONFLICT (client_id, session) DO UPDATE SET "
            "last_seq = excluded.last_seq, "
            f"ticks = CASE WHEN ticks > {INT64_MAX} - excluded.ticks THEN {INT64_MAX} "
            "ELSE ticks + excluded.ticks END "
            "WHERE last_seq = ?",
            (client_id, session, new_last, added["ticks_stored"], stored_last),
        )
        if cur.rowcount != 1:
            raise StoreConflictError(
                f"{client_id}/{session}: last_seq changed under this store (another writer?)"
            )
        conn.executemany("INSERT INTO tick_blocks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        with self._count_lock:
            snapshot = _added(self._counts, added)
        return self._write_counters(snapshot)

    def store_blocks(
        self, blocks: Sequence[KeyedBlock], lost: Sequence[KeyedLost] = ()
    ) -> BlocksStored:
        """Store blocks that arrive in any order and any number of times, in ONE transaction.

        Why not :meth:`store`: a stream consumer sees blocks of many sessions, from several
        consumers sharing the work, redelivered after a crash between commit and ack — so
        there is no ``last_seq`` to continue. The key (client, session, seq, idx) is the
        same primary key the bridge writes, so ``INSERT … ON CONFLICT DO NOTHING`` stores
        each block once whoever stored it first, and export and history readers see one
        table. ``lost`` markers go into ``lost_messages`` (idempotent too) and count in
        ``lost_batches``, as the bridge counts a ``lost`` frame. ``sessions`` (the bridge's
        resume state of live links) is not touched: a stream has no order to resume from.
        """
        rows = []
        for block in blocks:
            ticks = np.ascontiguousarray(block.batch.ticks, dtype=TICK_DTYPE)
            if not len(ticks):
                continue  # nothing to keep; the publisher never sends one
            tm = ticks["time_msc"]
            rows.append(
                (
                    (block.client_id, block.session, block.seq, block.idx, block.batch.symbol),
                    (len(ticks), int(tm[0]), int(tm[-1]), ticks.view(np.uint8).data),
                )
            )
        n_blocks = n_ticks = n_lost = 0
        with self._write_lock:
            conn = self._conn
            with transaction(conn):
                for key, (n, first, last, blob) in rows:
                    cur = conn.execute(
                        "INSERT INTO tick_blocks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT DO NOTHING",
                        (*key, n, first, last, blob),
                    )
                    if cur.rowcount > 0:
                        n_blocks += 1
                        n_ticks += n
                for marker in lost:
                    cur = conn.execute(
                        "INSERT INTO lost_messages VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (marker.client_id, marker.session, marker.seq, marker.ticks, marker.reason),
                    )
                    n_lost += max(cur.rowcount, 0)
                added = {
                    "ticks_stored": n_ticks,
                    "batches_stored": n_blocks,
                    "duplicate_batches": len(rows) - n_blocks,
                    "lost_batches": n_lost,
                }
                with self._count_lock:
                    snapshot = _added(self._counts, added)
                written = self._write_counters(snapshot)
            self._written.update(written)
            self._commits += 1
        with self._count_lock:
            self._counts.update(_added(self._counts, added))
        return BlocksStored(n_blocks, n_ticks, len(rows) - n_blocks, n_lost)

    def adopt_resume(
        self, client_id: str, session: str, resume_from: int, max_gap: int = INT64_MAX
    ) -> int:
        """Accept a client's word that everything up to ``resume_from`` was acked before.

        Happens only when this database lost what it had acked (replaced, restored from
        an old backup). The client has already forgotten those batches, so insisting on
        them would refuse the session forever; instead the gap is recorded in
        ``lost_batches`` and delivery continues. Returns the session's new ``last_seq``.
        The bridge passes its ``max_gap`` (``bad_resume`` beyond it); the store itself
        only guarantees that nothing overflows.
        """
        with self._write_lock:
            conn = self._conn
            self._last_seq.pop((client_id, session), None)  # re-read below, cached after
            with transaction(conn):
                row = conn.execute(
                    "SELECT last_seq FROM sessions WHERE client_id = ? AND session = ?",
                    (client_id, session),
                ).fetchone()
                stored_last = int(row[0]) if row else 0
                new_last, lost = resume(stored_last, resume_from, max_gap)
                if not lost:
                    return stored_last
                conn.execute(
                    "INSERT INTO sessions VALUES (?, ?, ?, 0) "
                    "ON CONFLICT (client_id, session) DO UPDATE SET last_seq = excluded.last_seq",
                    (client_id, session, new_last),
                )
                with self._count_lock:
                    snapshot = _added(self._counts, {"lost_batches": lost})
                written = self._write_counters(snapshot)
            self._written.update(written)
            self._remember(client_id, session, new_last)
        with self._count_lock:
            self._counts.update(_added(self._counts, {"lost_batches": lost}))
        return new_last

    def _write_counters(self, counts: dict[str, int]) -> dict[str, int]:
        """Write the counters whose value differs from the table's; returns them, for
        the caller to note in ``_written`` once its transaction committed."""
        changed = {k: v for k, v in counts.items() if self._written.get(k) != v}
        if changed:
            self._conn.executemany(
                "INSERT INTO counters VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                list(changed.items()),
            )
        return changed

    def flush(self) -> None:
        """Persist the counters that changed outside a store transaction (refusals,
        duplicates), so that ``backend stats --db`` sees them after a shutdown."""
        with self._count_lock:
            if not self._dirty:
                return
            snapshot = dict(self._counts)
            self._dirty = False
        with self._write_lock:
            with transaction(self._conn):
                written = self._write_counters(snapshot)
            self._written.update(written)

    # ------------------------------------------------------------------ counters
    def _bump(self, name: str, by: int = 1) -> None:
        with self._count_lock:
            self._counts[name] = saturating_add(self._counts[name], by)
            self._dirty = True

    def count_received(self, n_ticks: int) -> None:
        """Ticks of a new, in-order message accepted for storing (stored once committed)."""
        self._bump("ticks_received", n_ticks)

    def count_duplicate(self) -> None:
        self._bump("duplicate_batches")

    def count_refused(self, reason: str = "unspecified") -> None:
        """One refused message, also counted under ``reason`` (``refused_by_reason``)."""
        name = REFUSED_PREFIX + reason
        with self._count_lock:
            self._counts["refused_messages"] = saturating_add(self._counts["refused_messages"], 1)
            self._counts[name] = saturating_add(self._counts.get(name, 0), 1)
            self._dirty = True

    @property
    def commits(self) -> int:
        """Store transactions committed since opening: fewer than batches when grouped."""
        return self._commits

    # ------------------------------------------------------------------ reads
    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        conn = connect(self.path, synchronous=self._synchronous)
        try:
            yield conn
        finally:
            conn.close()

    def stats(self) -> dict[str, Any]:
        """The delivery statistics of protocol.md §2."""
        with self._count_lock:
            counts = dict(self._counts)
        result: dict[str, Any] = {name: counts[name] for name in COUNTERS}
        result["refused_by_reason"] = {
            name[len(REFUSED_PREFIX) :]: value
            for name, value in sorted(counts.items())
            if name.startswith(REFUSED_PREFIX)
        }
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT client_id, session, last_seq, ticks FROM sessions "
                "ORDER BY client_id, session"
            ).fetchall()
        result["sessions"] = [
            {"client_id": c, "session": s, "last_seq": int(last), "ticks": int(n)}
            for c, s, last, n in rows
        ]
        return result

    def read_ticks(
        self, client_id: str | None = None, session: str | None = None, symbol: str | None = None
    ) -> TickArray:
        """Every stored tick matching the filters, in (client_id, session, seq, idx) order."""
        where, params = [], []
        for column, value in (("client_id", client_id), ("session", session), ("symbol", symbol)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT ticks FROM tick_blocks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY client_id, session, seq, idx"
        with self._reader() as conn:
            parts = [np.frombuffer(blob, dtype=TICK_DTYPE) for (blob,) in conn.execute(sql, params)]
        return np.concatenate(parts) if parts else empty_ticks(0)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        with self._write_lock:
            self._conn.close()
            self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stored_symbols(path: Path) -> set[str]:
    """The symbols a backend database holds, read without creating or changing it.

    Why read-only: ``export --db`` with a mistyped path used to create an empty database
    (``TickStore`` makes its schema) and report 0 rows as a success. Raises
    ``sqlite3.Error`` for a file that is not a tick database.
    """
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {str(s) for (s,) in conn.execute("SELECT DISTINCT symbol FROM tick_blocks")}
    finally:
        conn.close()
