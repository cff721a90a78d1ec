"""The spool on a real 2 MB filesystem that fills up: an error, never damage or a hang."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.link.spool import Spool, read_records
from app.link.spool_errors import SpoolDiskError
from tests.conftest import small_filesystem


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (skipped where mounting is not permitted)."""
    with small_filesystem(tmp_path, "2m") as mnt:
        yield mnt


def payload(seq: int) -> bytes:
    return (seq.to_bytes(4, "little") * 5_000)[:20_000]


def test_a_full_disk_raises_keeps_everything_intact_and_recovers_after_acks(
    small_fs: Path,
) -> None:
    directory = small_fs / "session"
    spool = Spool(0, 10**9, directory, segment_bytes=100_000, client_id="c")
    try:
        error: SpoolDiskError | None = None
        for seq in range(1, 1_000):  # 2 MB / 20 KB: fails long before the bound
            try:
                spool.append(seq, payload(seq), 1, b"m%d" % seq)
            except SpoolDiskError as exc:
                error = exc
                break
        assert error is not None
        kept = spool.last_seq
        assert kept > 50
        assert error.seq == kept + 1
        assert str(directory) in str(error)
        assert error.free_bytes is not None
        assert error.free_bytes < 20_000 + 100
        assert f"{error.free_bytes} bytes free" in str(error)
        # nothing already spooled is damaged: every record on disk is whole
        records = list(read_records(directory))
        assert all(r.damage is None for r in records)
        assert [r.seq for r in records] == list(range(1, kept + 1))
        assert list(spool.iter_from(0)) == [(s, payload(s)) for s in range(1, kept + 1)]
        # a retry without acks fails the same way, quickly, changing nothing
        with pytest.raises(SpoolDiskError):
            spool.append(kept + 1, payload(kept + 1), 1)
        assert spool.last_seq == kept
        # acks delete whole segments: room again
        spool.ack(kept // 2)
        for seq in range(kept + 1, kept + 11):
            spool.append(seq, payload(seq), 1, b"m%d" % seq)
        spool.close()  # unacked: kept for the next run
        with Spool(0, 10**9, directory, segment_bytes=100_000, client_id="c") as again:
            assert again.last_seq == kept + 10
            assert again.marks == b"m%d" % (kept + 10)
            assert again.recovery_damage == ()
            first = again.acked_seq + 1
            assert first <= kept // 2 + 1
            got = list(again.iter_from(0))
            assert got == [(s, payload(s)) for s in range(first, kept + 11)]
            again.ack(again.last_seq)
        assert not directory.exists()
    finally:
        spool.close()
