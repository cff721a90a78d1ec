"""How every connection to the backend's SQLite file is opened.

The tick store and the settings store share one file; opening both the same way (WAL,
explicit transactions, a busy timeout) is what lets them write from different threads
without "database is locked" errors and lets readers run beside the writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: How long a writer waits for another connection's transaction before giving up.
BUSY_TIMEOUT_MS = 10_000
#: Page size of a new database. Tick blocks are BLOBs of up to megabytes: at SQLite's
#: default 4 KiB each one spans hundreds of overflow pages, each a WAL frame written
#: (and checkpointed) on its own. 16 KiB cut the bridge's CPU per tick at full speed by
#: about 30 % (bench in docs/architecture.md) with no measurable cost for small commits.
PAGE_SIZE = 16_384


def connect(path: Path | str, *, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection in WAL mode with autocommit off the table: transactions are explicit.

    ``synchronous=FULL`` makes a commit survive a power cut, which is what an ack
    promises; ``NORMAL`` would only survive a crash of the process.
    """
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Only takes effect while the file is still empty (a new database); an existing one
    # keeps the page size it was made with.
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        conn.close()
        raise sqlite3.OperationalError(f"{path}: cannot switch to WAL mode (got {mode})")
    if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"unknown synchronous level {synchronous!r}")
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception.

    IMMEDIATE takes the write lock up front, so a transaction that reads before it writes
    (every one here: check the stored seq or version, then write) cannot be overtaken.
    Leaving the block normally commits, also when nothing was written.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
