"""The spool's behaviour while open: memory-only and durable, against a list model too.

Recovery, crashes, locks and a full disk are in test_spool_recovery.py and
test_spool_disk_full.py.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from app.link import spool_segments
from app.link.spool import RECORD_HEADER_BYTES, Spool, read_records
from app.link.spool_errors import SpoolCorruptError, SpoolDiskError, SpoolFull

H = RECORD_HEADER_BYTES


def payload(seq: int, size: int) -> bytes:
    """Distinct per seq, so a message served for the wrong seq cannot pass unnoticed."""
    return (seq.to_bytes(4, "little") * (size // 4 + 1))[:size]


def segs(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("seg-"))


def fill(spool: Spool, seqs: range, size: int, ticks: int = 1) -> None:
    for seq in seqs:
        spool.append(seq, payload(seq, size), ticks, f"m{seq}".encode())


def crash(spool: Spool) -> None:
    """What a kill -9 leaves: files as written, no fsync, no cleanup, lock released."""
    spool._close_files()
    assert spool._lock is not None
    spool._lock.release()
    spool._closed = True


# ---------------------------------------------------------------------- memory-only
def test_memory_only_spool_is_full_at_the_memory_limit() -> None:
    spool = Spool(250, 10**9, None)
    fill(spool, range(1, 3), 100)
    with pytest.raises(SpoolFull, match="no disk spool") as excinfo:
        spool.append(3, payload(3, 100), 1)
    assert (excinfo.value.seq, excinfo.value.size) == (3, 100)
    assert (len(spool), spool.disk_limit_bytes, spool.fill_ratio) == (2, 0, 200 / 250)
    assert spool.marks == b"m2"
    spool.ack(1)
    spool.append(3, payload(3, 100), 1)
    assert list(spool.iter_from(0)) == [(s, payload(s, 100)) for s in (2, 3)]
    with pytest.raises(ValueError, match="exceeds the spool's memory limit"):
        spool.append(4, payload(4, 251), 1)
    spool.close()


def test_memory_only_replace_after() -> None:
    spool = Spool(1_000, 0, None)
    fill(spool, range(1, 6), 100)
    spool.replace_after(2, [(b"a" * 10, 3, b"x"), (b"b" * 10, 4, b"y")])
    assert (spool.last_seq, spool.ticks, spool.marks, spool.memory_bytes) == (4, 9, b"y", 220)
    assert list(spool.iter_from(0)) == [
        (1, payload(1, 100)),
        (2, payload(2, 100)),
        (3, b"a" * 10),
        (4, b"b" * 10),
    ]
    with pytest.raises(SpoolFull):
        spool.replace_after(4, [(b"c" * 781, 1, b"")])
    assert spool.last_seq == 4
    spool.discard()


# ---------------------------------------------------------------------- durable
def test_every_append_is_in_the_file_at_once(tmp_path: Path) -> None:
    with Spool(10**6, 10**6, tmp_path / "s", session="s") as spool:
        fill(spool, range(1, 4), 100)
        assert spool.memory_bytes == 300  # cached too: the sender does not read back
        assert spool.spilled_total == 0
        records = list(read_records(tmp_path / "s"))
        assert [(r.seq, r.ticks, r.marks, r.payload) for r in records] == [
            (s, 1, f"m{s}".encode(), payload(s, 100)) for s in (1, 2, 3)
        ]
        assert spool.disk_bytes == 3 * (H + 2 + 100)
        assert spool.fill_ratio == pytest.approx(spool.disk_bytes / 10**6)


def test_memory_caches_the_oldest_payloads_and_the_rest_is_read_back(tmp_path: Path) -> None:
    with Spool(250, 10**6, tmp_path, segment_bytes=3 * (H + 102)) as spool:
        fill(spool, range(1, 21), 100)
        assert spool.memory_bytes == 200  # seqs 1-2
        assert spool.spilled_total == 18
        assert segs(tmp_path) == [p.name for p in spool.segment_paths]
        assert len(spool.segment_paths) >= 7  # 3 records a segment, fewer with longer marks
        expected = [(s, payload(s, 100)) for s in range(1, 21)]
        assert list(spool.iter_from(1)) == expected
        assert list(spool.iter_from(1)) == expected  # repeatable: a second resend
        assert list(spool.iter_from(15)) == expected[14:]
        spool.ack(2)
        spool.append(21, payload(21, 100), 1)  # freed cache takes the new one
        assert spool.memory_bytes == 100


def test_acks_delete_fully_acked_segments_oldest_first(tmp_path: Path) -> None:
    record = H + 2 + 100
    with Spool(0, 10**6, tmp_path, segment_bytes=2 * record) as spool:
        fill(spool, range(1, 7), 100)
        assert segs(tmp_path) == [f"seg-{n:08d}.spool" for n in (1, 2, 3)]
        assert spool.ack(1) == 1
        assert len(segs(tmp_path)) == 3  # half acked: stays whole
        assert spool.ack(4) == 3
        assert segs(tmp_path) == ["seg-00000003.spool"]
        assert spool.disk_bytes == 2 * record
        assert spool.ack(6) == 2
        # The open segment stays until it is sealed: its last record's marks must
        # survive a crash right after this ack.
        assert (segs(tmp_path), spool.first_seq) == (["seg-00000003.spool"], None)
        fill(spool, range(7, 9), 100)
        spool.ack(7)  # the sealed, acked segment goes now
        assert segs(tmp_path) == ["seg-00000004.spool"]
        assert list(spool.iter_from(0)) == [(8, payload(8, 100))]


def test_ack_is_cumulative(tmp_path: Path) -> None:
    with Spool(1_000, 10_000, tmp_path) as spool:
        for seq in range(1, 11):
            spool.append(seq, payload(seq, 10), seq)
        assert spool.ack(4) == 4
        assert (len(spool), spool.first_seq, spool.last_seq, spool.acked_seq) == (6, 5, 10, 4)
        assert spool.ticks == sum(range(5, 11))
        assert spool.ack(2) == 0
        assert spool.ack(10) == 6
        assert (len(spool), spool.ticks, spool.memory_bytes) == (0, 0, 0)
        with pytest.raises(ValueError, match="beyond the last appended seq 10"):
            spool.ack(11)


def test_spool_full_at_the_disk_limit_and_room_again_after_acks(tmp_path: Path) -> None:
    record = H + 2 + 100
    with Spool(10**6, 3 * record, tmp_path, segment_bytes=record) as spool:
        fill(spool, range(1, 4), 100)
        assert spool.fill_ratio == pytest.approx(1.0)
        with pytest.raises(SpoolFull, match="spool full: message 4") as excinfo:
            spool.append(4, payload(4, 100), 1, b"m4")
        assert not isinstance(excinfo.value, SpoolDiskError)
        assert (len(spool), spool.last_seq, spool.disk_bytes) == (3, 3, 3 * record)
        spool.ack(1)
        spool.append(4, payload(4, 100), 1, b"m4")  # the very same append now succeeds
        assert list(spool.iter_from(0)) == [(s, payload(s, 100)) for s in (2, 3, 4)]


def test_a_message_that_can_never_fit_is_a_value_error(tmp_path: Path) -> None:
    with Spool(100, 200, tmp_path) as spool:
        spool.append(1, payload(1, 200 - H), 1)  # fits an empty disk exactly
        with pytest.raises(ValueError, match="exceeds the spool's disk limit"):
            spool.append(2, payload(2, 200 - H), 1, b"x")


def test_append_needs_the_next_seq() -> None:
    spool = Spool(1_000, 0, None)
    with pytest.raises(ValueError, match="expects seq 1, got 2"):
        spool.append(2, b"x", 1)
    spool.append(1, b"x", 1)
    for wrong in (1, 3, 0):
        with pytest.raises(ValueError, match="expects seq 2"):
            spool.append(wrong, b"x", 1)
    with pytest.raises(ValueError, match="tick count"):
        spool.append(2, b"x", -1)
    assert len(spool) == 1


def test_peek_next_after_is_the_sender_loop_primitive(tmp_path: Path) -> None:
    with Spool(100, 10_000, tmp_path) as spool:
        assert spool.peek_next_after(0) is None
        sent: list[int] = []
        after = spool.acked_seq
        for seq in range(1, 7):
            spool.append(seq, payload(seq, 60), 1)
            while (item := spool.peek_next_after(after)) is not None:
                assert item[1] == payload(item[0], 60)
                sent.append(item[0])
                after = item[0]
            if seq % 2 == 0:
                spool.ack(seq - 2)
        assert sent == [1, 2, 3, 4, 5, 6]
        spool.ack(4)
        assert spool.peek_next_after(-10) == (5, payload(5, 60))
        assert spool.peek_next_after(6) is None


def test_fsync_when_sealed_and_at_most_every_interval_never_per_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(spool_segments.os, "fsync", synced.append)
    record = H + 2 + 50
    with Spool(
        0,
        10**6,
        tmp_path / "a",
        segment_bytes=4 * record,
        fsync_interval=3600,
        background_fsync=False,
    ) as spool:
        synced.clear()  # creating spool.json syncs it and the folder
        for seq in range(1, 13):
            spool.append(seq, payload(seq, 50), 1, b"mm")
        # seg 1 and 2 sealed: file + folder each; seg 3 still open and not synced
        assert len(synced) == 4
        assert spool.sync() is False  # not due
        assert spool.sync(force=True) is True
        assert spool.sync(force=True) is False  # nothing new
    with Spool(0, 10**6, tmp_path / "b", fsync_interval=0, background_fsync=False) as spool:
        synced.clear()
        fill(spool, range(1, 6), 50)
        assert len(synced) == 4 + 1  # before appends 2-5; the folder once


def test_fsync_runs_off_the_callers_thread_and_is_done_by_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real_fsync = spool_segments.os.fsync

    def fsync(fd: int) -> None:
        threads.append(threading.current_thread().name)
        real_fsync(fd)

    monkeypatch.setattr(spool_segments.os, "fsync", fsync)
    record = H + 2 + 50
    with Spool(0, 10**6, tmp_path, segment_bytes=2 * record) as spool:
        threads.clear()
        for seq in range(1, 8):
            spool.append(seq, payload(seq, 50), 1, b"mm")
    # Three segments sealed while appending, the fourth at close: all on the fsync thread.
    assert len(threads) >= 4
    assert all(name.startswith("spool-fsync") for name in threads)


def test_replace_after_drops_the_tail_and_appends_new_records(tmp_path: Path) -> None:
    with Spool(0, 10**6, tmp_path, segment_bytes=3 * (H + 102)) as spool:
        fill(spool, range(1, 8), 100)
        spool.ack(2)
        spool.replace_after(4, [(b"new5", 10, b"r5"), (b"new6", 20, b"r6")])
        assert (spool.last_seq, spool.marks, spool.ticks) == (6, b"r6", 2 + 30)
        assert list(spool.iter_from(0)) == [
            (3, payload(3, 100)),
            (4, payload(4, 100)),
            (5, b"new5"),
            (6, b"new6"),
        ]
        spool.append(7, b"seven", 1, b"m7")
        spool.ack(6)
        # every segment before the one holding 7 holds only acked or superseded records
        assert len(spool.segment_paths) == 1
        with pytest.raises(ValueError, match="outside the unacked window"):
            spool.replace_after(5, [(b"x", 1, b"")])
        with pytest.raises(ValueError, match="needs the items"):
            spool.replace_after(6, [])
        spool.replace_after(7, [])  # nothing to replace: a no-op


def test_replace_after_that_cannot_write_changes_nothing(tmp_path: Path) -> None:
    with Spool(0, 5 * (H + 102), tmp_path) as spool:
        fill(spool, range(1, 5), 100)
        with pytest.raises(SpoolFull, match="replacing messages after 2"):
            spool.replace_after(2, [(payload(3, 100), 1, b"a"), (payload(4, 100), 1, b"b")])
        assert (spool.last_seq, spool.marks, spool.ticks) == (4, b"m4", 4)
        assert [s for s, _ in spool.iter_from(0)] == [1, 2, 3, 4]


def test_a_failed_write_is_cut_away_and_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Spool(0, 10**6, tmp_path / "s") as spool:
        fill(spool, range(1, 3), 10)
        real = spool_segments.os.writev

        def half_then_enospc(fd: int, bufs: list[bytes]) -> int:
            monkeypatch.setattr(spool_segments.os, "writev", enospc)
            return real(fd, [bytes(bufs[0])[:5]])

        def enospc(fd: int, bufs: list[bytes]) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(spool_segments.os, "writev", half_then_enospc)
        with pytest.raises(SpoolDiskError, match="No space left") as excinfo:
            spool.append(3, payload(3, 10), 1)
        assert str(tmp_path / "s") in str(excinfo.value)
        assert excinfo.value.free_bytes is not None
        assert (len(spool), spool.last_seq, spool.disk_bytes) == (2, 2, 2 * (H + 2 + 10))
        assert all(r.damage is None for r in read_records(tmp_path / "s"))
        monkeypatch.setattr(spool_segments.os, "writev", real)
        spool.append(3, payload(3, 10), 1)  # the retry works in the same segment
        assert [r.seq for r in read_records(tmp_path / "s")] == [1, 2, 3]


def test_a_damaged_record_read_back_is_reported_lost_once_per_ask(tmp_path: Path) -> None:
    with Spool(0, 10**6, tmp_path) as spool:
        fill(spool, range(1, 4), 100)
        seg = spool.segment_paths[0]
        data = bytearray(seg.read_bytes())
        data[(H + 102) + H + 2 + 37] ^= 1  # payload of seq 2
        seg.write_bytes(bytes(data))
        assert spool.peek_next_after(0) == (1, payload(1, 100))
        with pytest.raises(SpoolCorruptError, match="body crc mismatch") as excinfo:
            spool.peek_next_after(1)
        assert (excinfo.value.seq, excinfo.value.ticks) == (2, 1)
        assert excinfo.value.path == seg
        assert excinfo.value.offset == H + 102
        assert spool.peek_next_after(2) == (3, payload(3, 100))  # the caller goes on
        with pytest.raises(SpoolCorruptError):
            spool.peek_next_after(1)  # still lost on a resend
        assert spool.ack(3) == 3


def test_close_keeps_unacked_and_is_final(tmp_path: Path) -> None:
    spool = Spool(100, 10**6, tmp_path / "s", segment_bytes=300)
    fill(spool, range(1, 10), 100)
    spool.peek_next_after(5)  # leaves a reader open
    spool.close()
    assert len(segs(tmp_path / "s")) > 2
    spool.close()  # idempotent
    for call in (lambda: spool.append(10, b"x", 1), lambda: spool.peek_next_after(0)):
        with pytest.raises(ValueError, match="closed"):
            call()


def test_close_with_everything_acked_deletes_the_directory(tmp_path: Path) -> None:
    spool = Spool(100, 10**6, tmp_path / "s", segment_bytes=300)
    fill(spool, range(1, 10), 100)
    spool.ack(9)
    spool.close()
    assert not (tmp_path / "s").exists()


def test_discard_deletes_everything(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    spool = Spool(100, 10**6, tmp_path / "s")
    fill(spool, range(1, 10), 100)
    spool.discard()
    assert not (tmp_path / "s").exists()


def test_constructor_rejects_nonsense(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="limits"):
        Spool(-1, 0, None)
    with pytest.raises(ValueError, match="segment_bytes"):
        Spool(0, 0, tmp_path, segment_bytes=0)


# ---------------------------------------------------------------------- model
MEMORY_LIMIT = 256
DISK_LIMIT = 2_000
SEGMENT_BYTES = 300


class SpoolMachine(RuleBasedStateMachine):
    """Random appends, acks, reads, replace_after, closes and crashes against a list."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="spool-test-"))
        self.directory = self.root / "session"
        self.spool = self.open()
        self.model: list[tuple[int, bytes, int, bytes]] = []
        self.acked = 0
        self.last = 0
        self.iterators: list[tuple[Iterator[tuple[int, bytes]], list[int]]] = []

    def open(self) -> Spool:
        return Spool(MEMORY_LIMIT, DISK_LIMIT, self.directory, segment_bytes=SEGMENT_BYTES)

    def teardown(self) -> None:
        self.spool.discard()
        shutil.rmtree(self.root)

    def expected_from(self, seq: int) -> list[tuple[int, bytes]]:
        return [(s, p) for s, p, _, _ in self.model if s >= seq]

    @rule(size=st.integers(0, 150), ticks=st.integers(0, 50), marks=st.binary(max_size=8))
    def append(self, size: int, ticks: int, marks: bytes) -> None:
        seq = self.last + 1
        before = (self.spool.memory_bytes, self.spool.disk_bytes)
        try:
            self.spool.append(seq, payload(seq, size), ticks, marks)
        except SpoolFull:
            assert before[1] + H + len(marks) + size > DISK_LIMIT
            assert (self.spool.memory_bytes, self.spool.disk_bytes) == before
            return
        self.model.append((seq, payload(seq, size), ticks, marks))
        self.last = seq

    @rule(k=st.integers(-2, 10))
    def ack(self, k: int) -> None:
        seq = self.acked + k
        if seq > self.last:
            with pytest.raises(ValueError, match="beyond"):
                self.spool.ack(seq)
            return
        dropped = [m for m in self.model if m[0] <= seq]
        assert self.spool.ack(seq) == len(dropped)
        self.model = self.model[len(dropped) :]
        self.acked = max(self.acked, seq)

    @precondition(lambda self: bool(self.model))
    @rule(keep=st.integers(0, 10), sizes=st.lists(st.integers(0, 80), min_size=1, max_size=4))
    def replace_after(self, keep: int, sizes: list[int]) -> None:
        seq = min(self.acked + keep, self.last)
        items = [(payload(1000 + seq + i, n), i, bytes([i])) for i, n in enumerate(sizes)]
        try:
            self.spool.replace_after(seq, items)
        except SpoolFull:
            assert self.spool.last_seq == self.last
            return
        self.model = [m for m in self.model if m[0] <= seq]
        self.model += [(seq + 1 + i, p, t, m) for i, (p, t, m) in enumerate(items)]
        self.last = seq + len(items)

    @rule(offset=st.integers(-1, 12))
    def peek(self, offset: int) -> None:
        after = self.acked + offset
        expected = self.expected_from(after + 1)
        assert self.spool.peek_next_after(after) == (expected[0] if expected else None)

    @precondition(lambda self: len(self.iterators) < 3)
    @rule(offset=st.integers(-1, 5))
    def start_iterator(self, offset: int) -> None:
        start = self.acked + offset
        self.iterators.append((self.spool.iter_from(start), [start]))

    @precondition(lambda self: bool(self.iterators))
    @rule(which=st.integers(0, 2))
    def step_iterator(self, which: int) -> None:
        it, cursor = self.iterators[which % len(self.iterators)]
        expected = self.expected_from(cursor[0])
        got = next(it, None)
        if not expected:
            assert got is None
            self.iterators.remove((it, cursor))
            return
        assert got == expected[0]
        cursor[0] = expected[0][0] + 1

    @rule(kill=st.booleans())
    def reopen(self, kill: bool) -> None:
        """Close (or crash) and open again: the unacked messages come back."""
        if kill:
            crash(self.spool)
        else:
            self.spool.close()
        self.iterators.clear()
        if not self.model and not kill:
            assert not self.directory.exists()
        self.spool = self.open()
        spool = self.spool
        assert spool.last_seq == (self.last if self.model else spool.last_seq)
        assert spool.acked_seq <= self.acked  # partly acked segments come back too
        if self.model:
            assert spool.marks == self.model[-1][3]
            spool.ack(self.acked)
        else:  # nothing unacked: whatever came back is acked already
            spool.ack(spool.last_seq)
            assert spool.last_seq <= self.last
            self.acked = self.last = spool.last_seq
        assert list(spool.iter_from(0)) == self.expected_from(0)

    @invariant()
    def matches_the_model(self) -> None:
        spool = self.spool
        assert len(spool) == len(self.model)
        assert spool.ticks == sum(t for _, _, t, _ in self.model)
        assert spool.first_seq == (self.model[0][0] if self.model else None)
        assert spool.last_seq == self.last
        assert spool.acked_seq == self.acked
        assert 0 <= spool.memory_bytes <= MEMORY_LIMIT
        assert 0 <= spool.disk_bytes <= DISK_LIMIT
        assert 0.0 <= spool.fill_ratio <= 1.0
        if self.model:
            assert spool.marks == self.model[-1][3]
        assert segs(self.directory) == sorted(p.name for p in spool.segment_paths)
        assert spool.disk_bytes == sum(p.stat().st_size for p in spool.segment_paths)


SpoolMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=40, deadline=None, derandomize=True, database=None
)
TestSpoolAgainstModel = SpoolMachine.TestCase
