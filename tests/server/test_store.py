"""The tick store on its own: one transaction per group, nothing half-stored, lost
messages as seqs without rows, and no counter that can overflow SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from app.server.accept import INT64_MAX
from app.server.db import PAGE_SIZE
from app.server.store import StoreConflictError, TickStore
from tests.server.conftest import concat, messages


def test_groups_are_stored_and_read_back_in_seq_order(tmp_path: Path) -> None:
    msgs = messages(6)
    with TickStore(tmp_path / "t.sqlite") as store:
        assert store.last_seq("c", "s") == 0
        assert store.store("c", "s", list(enumerate(msgs[:4], start=1))) == 4
        assert store.store("c", "s", list(enumerate(msgs[4:], start=5))) == 6
        assert store.commits == 2
        assert np.array_equal(store.read_ticks("c", "s"), concat(msgs))
        assert np.array_equal(store.read_ticks(symbol="XAUUSD"), concat(msgs, "XAUUSD"))
        assert len(store.read_ticks("other")) == 0


def test_a_group_that_does_not_continue_last_seq_stores_nothing(tmp_path: Path) -> None:
    msgs = messages(4)
    with TickStore(tmp_path / "t.sqlite") as store:
        store.store("c", "s", [(1, msgs[0])])
        for bad in ([(3, msgs[2])], [(1, msgs[0])], [(2, msgs[1]), (4, msgs[3])]):
            with pytest.raises(StoreConflictError):
                store.store("c", "s", bad)
        assert store.last_seq("c", "s") == 1
        assert np.array_equal(store.read_ticks(), concat(msgs[:1]))
        assert store.stats()["batches_stored"] == 1


def test_last_seq_and_counters_survive_reopening(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    msgs = messages(2)
    n = len(concat(msgs))
    with TickStore(db) as store:
        store.count_received(n)
        store.store("c", "s", [(1, msgs[0]), (2, msgs[1])])
        store.count_duplicate()
        store.count_refused("bad_tick")
    with TickStore(db) as again:
        assert again.last_seq("c", "s") == 2
        assert again.stats() == {
            "ticks_received": n,
            "ticks_stored": n,
            "batches_stored": 2,
            "duplicate_batches": 1,
            "refused_messages": 1,
            "lost_batches": 0,
            "refused_by_reason": {"bad_tick": 1},
            "sessions": [{"client_id": "c", "session": "s", "last_seq": 2, "ticks": n}],
        }


def test_counters_written_per_commit_are_only_the_changed_ones(tmp_path: Path) -> None:
    """What the table holds after each commit equals the store's own counts, although a
    commit writes only the rows that changed (and never a row for a counter still 0)."""
    db = tmp_path / "t.sqlite"
    msgs = messages(3)
    with TickStore(db) as store:
        for seq, blocks in enumerate(msgs, start=1):
            store.count_received(len(concat([blocks])))
            store.store("c", "s", [(seq, blocks)])
            conn = sqlite3.connect(db)
            try:
                table = dict(conn.execute("SELECT name, value FROM counters").fetchall())
            finally:
                conn.close()
            stats = store.stats()
            assert table == {
                name: stats[name] for name in ("ticks_received", "ticks_stored", "batches_stored")
            }


def test_a_session_written_by_another_store_is_read_again_at_the_next_connection(
    tmp_path: Path,
) -> None:
    """The cached ``last_seq`` never outlives a connection start: the bridge calls
    ``last_seq`` at every hello, which reads the table."""
    db = tmp_path / "t.sqlite"
    msgs = messages(4)
    with TickStore(db) as first, TickStore(db) as second:
        first.store("c", "s", [(1, msgs[0])])
        assert second.last_seq("c", "s") == 1
        second.store("c", "s", [(2, msgs[1]), (3, msgs[2])])
        with pytest.raises(StoreConflictError):  # the stale cache refuses, stores nothing
            first.store("c", "s", [(2, msgs[1])])
        assert first.last_seq("c", "s") == 3
        assert first.store("c", "s", [(4, msgs[3])]) == 4
        assert np.array_equal(first.read_ticks("c", "s"), concat(msgs))


def test_new_databases_use_large_pages(tmp_path: Path) -> None:
    """Tick blocks are large BLOBs: 16 KiB pages write them in a quarter of the WAL frames."""
    db = tmp_path / "t.sqlite"
    TickStore(db).close()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE == 16_384
    finally:
        conn.close()


def test_the_database_is_in_wal_mode_with_the_documented_tables(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    TickStore(db).close()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [row[1] for row in conn.execute("PRAGMA table_info(tick_blocks)")]
        assert columns == [
            "client_id",
            "session",
            "seq",
            "idx",
            "symbol",
            "n",
            "first_msc",
            "last_msc",
            "ticks",
        ]
        columns = [row[1] for row in conn.execute("PRAGMA table_info(sessions)")]
        assert columns == ["client_id", "session", "last_seq", "ticks"]
    finally:
        conn.close()


def test_a_lost_message_advances_last_seq_without_tick_rows(tmp_path: Path) -> None:
    msgs = messages(3)
    with TickStore(tmp_path / "t.sqlite") as store:
        assert store.store("c", "s", [(1, msgs[0]), (2, []), (3, msgs[2])]) == 3
        assert store.store("c", "s", [(4, [])]) == 4
        assert np.array_equal(store.read_ticks("c", "s"), concat([msgs[0], msgs[2]]))
        stats = store.stats()
        assert (stats["batches_stored"], stats["lost_batches"]) == (2, 2)
        assert stats["ticks_stored"] == len(concat([msgs[0], msgs[2]]))
        assert stats["sessions"][0]["last_seq"] == 4


def test_counters_saturate_instead_of_breaking_every_later_commit(tmp_path: Path) -> None:
    """Two sessions resuming from near 2**63 would push lost_batches past SQLite's
    INTEGER range; the counter stops at the maximum and storing goes on for everyone."""
    db = tmp_path / "t.sqlite"
    msgs = messages(2)
    with TickStore(db) as store:
        assert store.adopt_resume("a", "s", INT64_MAX) == INT64_MAX
        assert store.adopt_resume("b", "s", INT64_MAX - 1) == INT64_MAX - 1
        assert store.adopt_resume("b", "s", 5) == INT64_MAX - 1  # never goes back
        assert store.stats()["lost_batches"] == INT64_MAX
        assert store.store("c", "s", [(1, msgs[0])]) == 1
        assert store.store("b", "s", [(INT64_MAX, [])]) == INT64_MAX
        for _ in range(3):
            store.count_duplicate()
        store.count_received(INT64_MAX)
        store.count_received(INT64_MAX)
    with TickStore(db) as again:
        stats = again.stats()
        assert stats["lost_batches"] == INT64_MAX
        assert stats["ticks_received"] == INT64_MAX
        assert stats["duplicate_batches"] == 3
        assert again.store("c", "s", [(2, msgs[1])]) == 2
        assert np.array_equal(again.read_ticks("c", "s"), concat(msgs))


def test_seqs_beyond_sqlites_range_are_refused_whole(tmp_path: Path) -> None:
    with TickStore(tmp_path / "t.sqlite") as store:
        store.adopt_resume("c", "s", INT64_MAX)
        with pytest.raises(StoreConflictError):
            store.store("c", "s", [(INT64_MAX + 1, [])])
        with pytest.raises(ValueError, match="resume_from"):
            store.adopt_resume("d", "s", INT64_MAX + 1)
        assert store.last_seq("c", "s") == INT64_MAX
        assert store.last_seq("d", "s") == 0


def test_a_sessions_tick_count_saturates_too(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    msgs = messages(2)
    with TickStore(db) as store:
        store.store("c", "s", [(1, msgs[0])])
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE sessions SET ticks = ?", (INT64_MAX - 1,))
    conn.close()
    with TickStore(db) as store:
        assert store.store("c", "s", [(2, msgs[1])]) == 2
        assert store.stats()["sessions"][0]["ticks"] == INT64_MAX
