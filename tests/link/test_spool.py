"""The spool against real segment files in tmp_path, and against a plain list model."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from app.link import spool as spool_module
from app.link.spool import (
    RECORD_HEADER_BYTES,
    Spool,
    SpoolCorruptError,
    SpoolFull,
)

H = RECORD_HEADER_BYTES


def payload(seq: int, size: int) -> bytes:
    """Distinct per seq, so a message served for the wrong seq cannot pass unnoticed."""
    return (seq.to_bytes(4, "little") * (size // 4 + 1))[:size]


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def fill(spool: Spool, seqs: range, size: int, ticks: int = 1) -> None:
    for seq in seqs:
        spool.append(seq, payload(seq, size), ticks)


# ---------------------------------------------------------------------- placement
def test_fifo_order_across_memory_and_disk(tmp_path: Path) -> None:
    with Spool(350, 10_000, tmp_path, segment_bytes=3 * (H + 100)) as spool:
        fill(spool, range(1, 21), 100)
        assert spool.memory_bytes == 300  # seqs 1-3
        assert spool.spilled_total == 17
        segments = sorted(f"seg-{first}.spool" for first in (4, 7, 10, 13, 16, 19))
        assert files(tmp_path) == segments
        expected = [(s, payload(s, 100)) for s in range(1, 21)]
        assert list(spool.iter_from(1)) == expected
        assert list(spool.iter_from(1)) == expected  # repeatable: a second resend
        assert list(spool.iter_from(15)) == expected[14:]


def test_spill_happens_exactly_past_the_memory_limit(tmp_path: Path) -> None:
    with Spool(300, 10_000, tmp_path) as spool:
        fill(spool, range(1, 4), 100)
        assert (spool.memory_bytes, spool.disk_bytes, spool.spilled_total) == (300, 0, 0)
        assert files(tmp_path) == []
        spool.append(4, payload(4, 1), 1)  # one byte past the limit
        assert (spool.memory_bytes, spool.disk_bytes, spool.spilled_total) == (300, H + 1, 1)
        assert files(tmp_path) == ["seg-4.spool"]


def test_memory_freed_by_acks_takes_new_messages_while_old_ones_stay_on_disk(
    tmp_path: Path,
) -> None:
    with Spool(200, 10_000, tmp_path) as spool:
        fill(spool, range(1, 6), 100)  # 1-2 memory, 3-5 disk
        assert spool.ack(2) == 2
        assert spool.memory_bytes == 0
        fill(spool, range(6, 8), 100)  # room again: memory
        assert spool.memory_bytes == 200
        assert spool.spilled_total == 3
        assert [s for s, _ in spool.iter_from(0)] == [3, 4, 5, 6, 7]
        assert list(spool.iter_from(0)) == [(s, payload(s, 100)) for s in range(3, 8)]


def test_memory_only_spool_never_touches_disk_and_is_full_at_the_memory_limit() -> None:
    spool = Spool(250, 10**9, None)
    fill(spool, range(1, 3), 100)
    with pytest.raises(SpoolFull, match="no disk spool"):
        spool.append(3, payload(3, 100), 1)
    assert (len(spool), spool.disk_limit_bytes, spool.fill_ratio) == (2, 0, 200 / 250)
    spool.close()


def test_memory_stays_bounded_with_mixed_sizes(tmp_path: Path) -> None:
    sizes = [(s * 7919) % 997 for s in range(1, 400)]
    with Spool(5_000, 10**7, tmp_path, segment_bytes=20_000) as spool:
        for seq, size in enumerate(sizes, start=1):
            spool.append(seq, payload(seq, size), size)
            assert spool.memory_bytes <= 5_000
            if seq % 13 == 0:
                spool.ack(seq - 20)
        assert spool.ticks == sum(sizes[spool.acked_seq :])
        assert list(spool.iter_from(0)) == [
            (s, payload(s, sizes[s - 1])) for s in range(spool.acked_seq + 1, len(sizes) + 1)
        ]


def test_a_long_session_keeps_its_index_compact(tmp_path: Path) -> None:
    with Spool(2_000, 10**6, tmp_path, segment_bytes=1_000) as spool:
        for seq in range(1, 20_001):
            spool.append(seq, payload(seq, 10 + seq % 30), 1)
            if seq % 7 == 0:
                spool.ack(seq - 300)
                assert len(spool._entries) <= 2 * max(len(spool), 1_024)
        assert spool.acked_seq == 19_999 - 300  # the last multiple of 7, minus the lag
        assert spool.peek_next_after(spool.acked_seq) == (19_700, payload(19_700, 10 + 19_700 % 30))
        got = list(spool.iter_from(0))
        assert got == [(s, payload(s, 10 + s % 30)) for s in range(19_700, 20_001)]


# ---------------------------------------------------------------------- acks
def test_acks_free_memory_and_delete_fully_acked_segments(tmp_path: Path) -> None:
    with Spool(200, 10_000, tmp_path, segment_bytes=2 * (H + 100)) as spool:
        fill(spool, range(1, 9), 100)  # 1-2 memory; 3-4, 5-6, 7-8 in three segments
        assert files(tmp_path) == ["seg-3.spool", "seg-5.spool", "seg-7.spool"]
        assert spool.disk_bytes == 6 * (H + 100)
        assert spool.ack(1) == 1
        assert spool.memory_bytes == 100
        assert spool.ack(3) == 2
        assert spool.memory_bytes == 0
        # seg-3 is half acked: it stays, whole, until its last record is acked.
        assert files(tmp_path) == ["seg-3.spool", "seg-5.spool", "seg-7.spool"]
        assert spool.disk_bytes == 6 * (H + 100)
        assert spool.ack(6) == 3
        assert files(tmp_path) == ["seg-7.spool"]
        assert spool.disk_bytes == 2 * (H + 100)
        assert spool.ack(8) == 2  # the open segment goes too
        assert files(tmp_path) == []
        assert (len(spool), spool.disk_bytes, spool.first_seq) == (0, 0, None)
        fill(spool, range(9, 13), 100)  # spills into a fresh segment
        assert files(tmp_path) == ["seg-11.spool"]
        assert list(spool.iter_from(0)) == [(s, payload(s, 100)) for s in range(9, 13)]


def test_ack_is_cumulative(tmp_path: Path) -> None:
    with Spool(1_000, 10_000, tmp_path) as spool:
        for seq in range(1, 11):
            spool.append(seq, payload(seq, 10), seq)
        assert spool.ack(4) == 4
        assert (len(spool), spool.first_seq, spool.last_seq, spool.acked_seq) == (6, 5, 10, 4)
        assert spool.ticks == sum(range(5, 11))
        assert spool.ack(2) == 0  # an older ack repeated: harmless
        assert spool.ack(4) == 0
        assert spool.ack(10) == 6
        assert (len(spool), spool.ticks, spool.memory_bytes) == (0, 0, 0)
        with pytest.raises(ValueError, match="beyond the last appended seq 10"):
            spool.ack(11)


def test_ack_beyond_the_last_seq_changes_nothing() -> None:
    spool = Spool(1_000, 0, None)
    fill(spool, range(1, 4), 10)
    with pytest.raises(ValueError, match="beyond"):
        spool.ack(4)
    assert (len(spool), spool.memory_bytes) == (3, 30)


# ---------------------------------------------------------------------- full
def test_spool_full_at_the_limit_and_recovery_after_ack(tmp_path: Path) -> None:
    record = H + 100
    with Spool(200, 3 * record, tmp_path, segment_bytes=record) as spool:
        fill(spool, range(1, 6), 100)  # 2 in memory, 3 on disk: exactly full
        assert spool.fill_ratio == pytest.approx(1.0)
        with pytest.raises(SpoolFull) as excinfo:
            spool.append(6, payload(6, 100), 1)
        assert excinfo.value.seq == 6
        assert (len(spool), spool.last_seq, spool.memory_bytes) == (5, 5, 200)
        assert spool.disk_bytes == 3 * record
        spool.append(6, b"", 1)  # zero bytes still fit a memory that is exactly full
        assert spool.memory_bytes == 200
        with pytest.raises(SpoolFull):
            spool.append(7, payload(7, 1), 1)
        spool.ack(1)  # frees memory: the very same append now succeeds
        spool.append(7, payload(7, 100), 1)
        with pytest.raises(SpoolFull):
            spool.append(8, payload(8, 100), 1)
        spool.ack(3)  # frees seq 2 in memory and seg-3 on disk
        assert (spool.memory_bytes, spool.disk_bytes) == (100, 2 * record)
        spool.append(8, payload(8, 100), 1)  # memory
        spool.append(9, payload(9, 100), 1)  # disk
        assert files(tmp_path) == ["seg-4.spool", "seg-5.spool", "seg-9.spool"]
        with pytest.raises(SpoolFull):
            spool.append(10, payload(10, 100), 1)
        sizes = {4: 100, 5: 100, 6: 0, 7: 100, 8: 100, 9: 100}
        assert list(spool.iter_from(0)) == [(s, payload(s, n)) for s, n in sizes.items()]


def test_a_message_that_can_never_fit_is_a_value_error(tmp_path: Path) -> None:
    with Spool(100, 200, tmp_path) as spool:
        spool.append(1, payload(1, 200 - H), 1)  # fits an empty disk exactly
        with pytest.raises(ValueError, match="exceeds the spool's memory and disk limits"):
            spool.append(2, payload(2, 201 - H), 1)
    with pytest.raises(ValueError, match="exceeds"):
        Spool(100, 10**9, None).append(1, payload(1, 101), 1)


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


# ---------------------------------------------------------------------- reading
def test_iter_from_after_a_partial_ack(tmp_path: Path) -> None:
    with Spool(250, 10_000, tmp_path) as spool:
        fill(spool, range(1, 11), 100)
        spool.ack(6)
        expected = [(s, payload(s, 100)) for s in range(7, 11)]
        assert list(spool.iter_from(1)) == expected  # acked ones are gone, not an error
        assert list(spool.iter_from(7)) == expected
        assert list(spool.iter_from(9)) == expected[2:]
        assert list(spool.iter_from(11)) == []


def test_iter_from_sees_appends_and_acks_between_steps(tmp_path: Path) -> None:
    with Spool(250, 10_000, tmp_path) as spool:
        fill(spool, range(1, 4), 100)
        it = spool.iter_from(2)
        assert next(it) == (2, payload(2, 100))
        fill(spool, range(4, 7), 100)  # the collector appends while the link sends
        assert next(it) == (3, payload(3, 100))
        spool.ack(4)  # the bridge already has 4: skipped
        assert next(it) == (5, payload(5, 100))
        assert next(it) == (6, payload(6, 100))
        assert next(it, None) is None
        other = spool.iter_from(0)
        assert next(other) == (5, payload(5, 100))


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
                spool.ack(seq - 2)  # acks trail the sends
        assert sent == [1, 2, 3, 4, 5, 6]
        # after a reconnect: the bridge's welcome says last_seq 4, resend from 5
        spool.ack(4)
        assert spool.peek_next_after(4) == (5, payload(5, 60))
        assert spool.peek_next_after(-10) == (5, payload(5, 60))
        assert spool.peek_next_after(6) is None


def test_records_of_the_open_segment_are_readable_before_it_is_sealed(tmp_path: Path) -> None:
    with Spool(0, 10**6, tmp_path) as spool:
        spool.append(1, payload(1, 10), 1)  # sits in the write buffer
        assert spool.peek_next_after(0) == (1, payload(1, 10))
        spool.append(2, payload(2, 10), 1)
        assert list(spool.iter_from(0)) == [(1, payload(1, 10)), (2, payload(2, 10))]


def test_segments_are_fsynced_when_sealed_never_per_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(spool_module.os, "fsync", synced.append)
    with Spool(0, 10**6, tmp_path, segment_bytes=4 * (H + 50)) as spool:
        fill(spool, range(1, 13), 50)
        assert len(synced) == 2  # seg-1 and seg-5 sealed; seg-9 still open
        assert files(tmp_path) == ["seg-1.spool", "seg-5.spool", "seg-9.spool"]
        assert (tmp_path / "seg-1.spool").stat().st_size == 4 * (H + 50)


# ---------------------------------------------------------------------- damage
@pytest.fixture
def sealed(tmp_path: Path) -> Iterator[Spool]:
    """Seqs 1-2 in sealed seg-1.spool (records at 0 and H+100), 3 in the open seg-3."""
    spool = Spool(0, 10**6, tmp_path, segment_bytes=2 * (H + 100))
    fill(spool, range(1, 4), 100)
    yield spool
    spool.close()


def flip(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x01]))


def test_a_flipped_payload_byte_is_reported_with_file_and_offset(
    sealed: Spool, tmp_path: Path
) -> None:
    seg = tmp_path / "seg-1.spool"
    flip(seg, (H + 100) + H + 37)
    assert sealed.peek_next_after(0) == (1, payload(1, 100))  # the record before is fine
    with pytest.raises(SpoolCorruptError, match="crc mismatch in record of seq 2") as excinfo:
        sealed.peek_next_after(1)
    assert excinfo.value.path == seg
    assert excinfo.value.offset == H + 100
    assert str(seg) in str(excinfo.value)
    assert f"offset {H + 100}" in str(excinfo.value)
    with pytest.raises(SpoolCorruptError):
        list(sealed.iter_from(0))


def test_a_flipped_header_byte_is_reported(sealed: Spool, tmp_path: Path) -> None:
    seg = tmp_path / "seg-1.spool"
    flip(seg, 0)  # low byte of seq 1
    with pytest.raises(SpoolCorruptError, match=r"offset 0: header says seq 0") as excinfo:
        sealed.peek_next_after(0)
    assert excinfo.value.path == seg


def test_a_truncated_segment_is_reported(sealed: Spool, tmp_path: Path) -> None:
    seg = tmp_path / "seg-1.spool"
    with seg.open("r+b") as f:
        f.truncate(H + 100 + H + 50)  # a crash halfway through the second record
    assert sealed.peek_next_after(0) == (1, payload(1, 100))
    with pytest.raises(SpoolCorruptError, match=r"truncated \(50 of 100 payload bytes\)"):
        sealed.peek_next_after(1)
    with seg.open("r+b") as f:
        f.truncate(H + 100 + 5)
    with pytest.raises(SpoolCorruptError, match=r"truncated in its header \(5 of 24 bytes\)"):
        sealed.peek_next_after(1)


def test_damage_in_the_open_segment_is_seen_even_after_an_earlier_read(
    sealed: Spool, tmp_path: Path
) -> None:
    assert sealed.peek_next_after(2) == (3, payload(3, 100))  # flushes and reads seg-3
    flip(tmp_path / "seg-3.spool", H + 99)
    with pytest.raises(SpoolCorruptError, match=r"seg-3\.spool is corrupt at offset 0"):
        sealed.peek_next_after(2)


def test_a_failed_write_leaves_the_spool_consistent(tmp_path: Path) -> None:
    class FailingWriter:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            pass

    with Spool(0, 10**6, tmp_path) as spool:
        fill(spool, range(1, 3), 10)
        active = spool._active
        assert active is not None
        assert active.writer is not None
        active.writer.flush()
        active.writer.close()
        active.writer = FailingWriter()  # type: ignore[assignment]
        with pytest.raises(OSError, match="No space left"):
            spool.append(3, payload(3, 10), 1)
        assert (len(spool), spool.last_seq, spool.disk_bytes) == (2, 2, 2 * (H + 10))
        spool.append(3, payload(3, 10), 1)  # the retry goes to a fresh segment
        assert files(tmp_path) == ["seg-1.spool", "seg-3.spool"]
        assert list(spool.iter_from(0)) == [(s, payload(s, 10)) for s in (1, 2, 3)]


# ---------------------------------------------------------------------- lifecycle
def test_close_removes_the_files_and_is_final(tmp_path: Path) -> None:
    (tmp_path / "unrelated.txt").write_text("kept")
    spool = Spool(100, 10**6, tmp_path, segment_bytes=300)
    fill(spool, range(1, 10), 100)
    spool.peek_next_after(5)  # leaves a reader open
    assert len(files(tmp_path)) > 2
    spool.close()
    assert files(tmp_path) == ["unrelated.txt"]
    assert (len(spool), spool.memory_bytes, spool.disk_bytes) == (0, 0, 0)
    spool.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        spool.append(10, b"x", 1)
    with pytest.raises(ValueError, match="closed"):
        spool.peek_next_after(0)
    with pytest.raises(ValueError, match="closed"):
        spool.ack(1)


def test_leftovers_of_a_crashed_run_are_removed(tmp_path: Path) -> None:
    crashed = Spool(0, 10**6, tmp_path)
    fill(crashed, range(1, 4), 10)  # never closed
    assert files(tmp_path) == ["seg-1.spool"]
    with Spool(0, 10**6, tmp_path) as spool:
        assert files(tmp_path) == []
        fill(spool, range(1, 3), 10)  # same file name as the stale one: no clash
        assert list(spool.iter_from(0)) == [(1, payload(1, 10)), (2, payload(2, 10))]


def test_constructor_rejects_nonsense_limits(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="limits"):
        Spool(-1, 0, None)
    with pytest.raises(ValueError, match="segment_bytes"):
        Spool(0, 0, tmp_path, segment_bytes=0)


# ---------------------------------------------------------------------- model
MEMORY_LIMIT = 256
DISK_LIMIT = 1_200
SEGMENT_BYTES = 300


class SpoolMachine(RuleBasedStateMachine):
    """Random appends, acks and (interleaved) iterations against a list of the unacked."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="spool-test-"))
        self.spool = Spool(MEMORY_LIMIT, DISK_LIMIT, self.directory, segment_bytes=SEGMENT_BYTES)
        self.model: list[tuple[int, bytes, int]] = []
        self.acked = 0
        self.last = 0
        self.iterators: list[tuple[Iterator[tuple[int, bytes]], list[int]]] = []

    def teardown(self) -> None:
        self.spool.close()
        assert files(self.directory) == []
        shutil.rmtree(self.directory)

    def expected_from(self, seq: int) -> list[tuple[int, bytes]]:
        return [(s, p) for s, p, _ in self.model if s >= seq]

    @rule(size=st.integers(0, 150), ticks=st.integers(0, 50))
    def append(self, size: int, ticks: int) -> None:
        seq = self.last + 1
        before = (self.spool.memory_bytes, self.spool.disk_bytes)
        try:
            self.spool.append(seq, payload(seq, size), ticks)
        except SpoolFull:
            assert before[0] + size > MEMORY_LIMIT
            assert before[1] + H + size > DISK_LIMIT
            assert (self.spool.memory_bytes, self.spool.disk_bytes) == before
            return
        self.model.append((seq, payload(seq, size), ticks))
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

    @rule(offset=st.integers(-2, 12))
    def iterate(self, offset: int) -> None:
        start = self.acked + offset
        assert list(self.spool.iter_from(start)) == self.expected_from(start)

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

    @invariant()
    def matches_the_model(self) -> None:
        spool = self.spool
        assert len(spool) == len(self.model)
        assert spool.ticks == sum(t for _, _, t in self.model)
        assert spool.first_seq == (self.model[0][0] if self.model else None)
        assert spool.last_seq == self.last
        assert spool.acked_seq == self.acked
        assert 0 <= spool.memory_bytes <= MEMORY_LIMIT
        assert 0 <= spool.disk_bytes <= DISK_LIMIT
        assert 0.0 <= spool.fill_ratio <= 1.0
        assert spool.memory_bytes <= sum(len(p) for _, p, _ in self.model)
        assert files(self.directory) == sorted(p.name for p in spool.segment_paths)
        if not self.model:
            assert (spool.memory_bytes, spool.disk_bytes, spool.segment_paths) == (0, 0, ())


SpoolMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=60, deadline=None, derandomize=True, database=None
)
TestSpoolAgainstModel = SpoolMachine.TestCase
