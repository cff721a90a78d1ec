"""The spool across process deaths: SIGKILL mid-append, torn and damaged records,
replace_after then crash, the session lock between processes, leftovers."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.link.spool import (
    RECORD_HEADER_BYTES,
    Spool,
    SpoolLocked,
    find_leftovers,
    read_records,
)
from app.link.spool_errors import SpoolCorruptError
from app.link.spool_files import write_marks

H = RECORD_HEADER_BYTES
ROOT = Path(__file__).resolve().parents[2]
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL")

# A child that appends forever and prints each seq once append returned for it.
APPENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from app.link.spool import Spool

    def payload(seq):
        size = 1_000 + (seq * 7_919) % 20_000
        return (seq.to_bytes(4, "little") * (size // 4 + 1))[:size]

    spool = Spool(50_000, 10**9, Path(sys.argv[1]), segment_bytes=200_000,
                  client_id="c", session="s")
    print("open", flush=True)
    if sys.argv[2] == "hold":
        sys.stdin.read()
        raise SystemExit
    seq = 0
    while True:
        seq += 1
        spool.append(seq, payload(seq), seq % 50, b"marks-%d" % seq)
        print(seq, flush=True)
    """
)


def payload(seq: int) -> bytes:
    size = 1_000 + (seq * 7_919) % 20_000
    return (seq.to_bytes(4, "little") * (size // 4 + 1))[:size]


def start(directory: Path, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", APPENDER, str(directory), mode],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "open\n"
    return proc


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            pipe.close()


@posix_only
@pytest.mark.parametrize("run", range(3))
def test_sigkill_while_appending_recovers_a_gap_free_prefix(tmp_path: Path, run: int) -> None:
    directory = tmp_path / "s"
    target = random.Random(run).randrange(20, 400)
    proc = start(directory, "append")
    assert proc.stdout is not None
    confirmed = 0
    while confirmed < target:  # wait for a state, not a time: then kill at once
        confirmed = int(proc.stdout.readline())
    kill(proc)
    with Spool(50_000, 10**9, directory, segment_bytes=200_000, client_id="c") as spool:
        assert spool.session == "s"
        assert spool.acked_seq == 0
        assert spool.last_seq >= confirmed  # every append that returned survived
        assert spool.recovered == spool.last_seq
        assert spool.marks == b"marks-%d" % spool.last_seq
        assert spool.ticks == sum(s % 50 for s in range(1, spool.last_seq + 1))
        got = list(spool.iter_from(0))  # raises if anything was lost
        assert got == [(s, payload(s)) for s in range(1, spool.last_seq + 1)]
        spool.append(spool.last_seq + 1, b"after", 1)  # and it goes on
        spool.ack(spool.last_seq)
    assert not directory.exists()


def make(directory: Path, n: int, *, segment_bytes: int = 10**6) -> Spool:
    spool = Spool(0, 10**6, directory, segment_bytes=segment_bytes, client_id="c")
    for seq in range(1, n + 1):
        spool.append(seq, payload(seq), seq, b"m%03d" % seq)
    return spool


def crash(spool: Spool) -> None:
    """An in-process kill -9: files as written, no fsync, no cleanup, lock released."""
    spool._close_files()
    assert spool._lock is not None
    spool._lock.release()
    spool._closed = True


def test_a_torn_last_record_is_dropped_and_the_marks_are_the_last_whole_ones(
    tmp_path: Path,
) -> None:
    crash(make(tmp_path, 5))
    seg = tmp_path / "seg-00000001.spool"
    size = seg.stat().st_size
    os.truncate(seg, size - 100)  # the last append was cut short by the crash
    with Spool(0, 10**6, tmp_path) as spool:
        assert (spool.recovered, spool.last_seq, spool.marks) == (4, 4, b"m004")
        assert [s for s, _ in spool.iter_from(0)] == [1, 2, 3, 4]
        assert [d.seq for d in spool.recovery_damage] == [5]
        assert seg.stat().st_size == size - (H + 4 + len(payload(5)))  # cut to whole records
        spool.append(5, b"again", 1)


def test_a_flipped_byte_in_the_middle_loses_exactly_that_record(tmp_path: Path) -> None:
    crash(make(tmp_path, 6))
    seg = tmp_path / "seg-00000001.spool"
    offsets = [r.offset for r in read_records(seg)]
    data = bytearray(seg.read_bytes())
    data[offsets[2] + H + 4 + 500] ^= 0x40  # inside the payload of seq 3
    seg.write_bytes(bytes(data))
    assert [r.damage is not None for r in read_records(seg)] == [False, False, True] + [False] * 3
    with Spool(0, 10**6, tmp_path) as spool:
        assert (spool.recovered, spool.last_seq, spool.marks) == (6, 6, b"m006")
        assert spool.peek_next_after(1) == (2, payload(2))
        with pytest.raises(SpoolCorruptError) as excinfo:
            spool.peek_next_after(2)
        assert (excinfo.value.seq, excinfo.value.ticks) == (3, 3)
        rest = list(spool.iter_from(4))
        assert rest == [(s, payload(s)) for s in (4, 5, 6)]


def test_a_flipped_header_byte_resyncs_on_the_next_magic(tmp_path: Path) -> None:
    crash(make(tmp_path, 6))
    seg = tmp_path / "seg-00000001.spool"
    offsets = [r.offset for r in read_records(seg)]
    data = bytearray(seg.read_bytes())
    data[offsets[3] + 10] ^= 0x01  # the seq of record 4: its header crc fails
    seg.write_bytes(bytes(data))
    with Spool(0, 10**6, tmp_path) as spool:
        assert spool.last_seq == 6
        assert [d.seq for d in spool.recovery_damage] == [None]
        with pytest.raises(SpoolCorruptError) as excinfo:
            spool.peek_next_after(3)
        assert (excinfo.value.seq, excinfo.value.ticks) == (4, None)
        assert list(spool.iter_from(5)) == [(5, payload(5)), (6, payload(6))]


def test_replace_after_then_crash_recovers_the_replaced_tail(tmp_path: Path) -> None:
    spool = make(tmp_path, 8, segment_bytes=30_000)
    spool.replace_after(5, [(b"six", 60, b"r6"), (b"seven", 70, b"r7")])
    crash(spool)
    with Spool(0, 10**6, tmp_path) as again:
        assert (again.last_seq, again.marks, again.ticks) == (7, b"r7", 15 + 130)
        assert list(again.iter_from(0)) == [
            *[(s, payload(s)) for s in range(1, 6)],
            (6, b"six"),
            (7, b"seven"),
        ]
        # a crash between the two new records: the first one alone already cuts the tail
        again.replace_after(3, [(b"four", 4, b"q4"), (b"five", 5, b"q5")])
        seg = again.segment_paths[-1]
        last = list(read_records(seg))[-1]
        crash(again)
    os.truncate(seg, last.offset)
    with Spool(0, 10**6, tmp_path) as third:
        assert (third.last_seq, third.marks) == (4, b"q4")
        assert [p for _, p in third.iter_from(3)] == [payload(3), b"four"]


@posix_only
def test_the_lock_is_held_across_processes_and_freed_by_death(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    holder = start(directory, "hold")
    try:
        with pytest.raises(SpoolLocked, match=str(directory)):
            Spool(0, 10**6, directory)
        assert find_leftovers(tmp_path, "c") == []  # held by a live process
    finally:
        kill(holder)
    assert find_leftovers(tmp_path, "c") == []  # free now, but empty: removed
    assert not directory.exists()


def test_a_second_spool_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with Spool(0, 10**6, tmp_path), pytest.raises(SpoolLocked):
        Spool(0, 10**6, tmp_path)
    Spool(0, 10**6, tmp_path).close()  # free again after close


def test_find_leftovers_oldest_first_of_that_client_only(tmp_path: Path) -> None:
    for name in ("b-old", "a-new"):
        crash(make(tmp_path / name, 2))
    crash(Spool(0, 10**6, tmp_path / "empty", client_id="c"))
    other = Spool(0, 10**6, tmp_path / "other", client_id="someone-else")
    other.append(1, b"x", 1)
    crash(other)
    (tmp_path / "half-created").mkdir()
    (tmp_path / "half-created" / "spool.lock").touch()
    (tmp_path / "unrelated").mkdir()
    (tmp_path / "unrelated" / "keep.txt").touch()
    live = make(tmp_path / "live", 1)
    try:
        assert find_leftovers(tmp_path, "c") == [tmp_path / "b-old", tmp_path / "a-new"]
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "a-new",
            "b-old",
            "live",
            "other",
            "unrelated",
        ]
    finally:
        live.close()
    with Spool(0, 10**6, tmp_path / "b-old", client_id="c") as resumed:
        assert (resumed.session, resumed.recovered) == ("b-old", 2)
        resumed.ack(2)
    assert find_leftovers(tmp_path, "c") == [tmp_path / "a-new", tmp_path / "live"]
    assert find_leftovers(tmp_path / "missing", "c") == []


def test_a_resumed_spool_keeps_its_session_and_continues_the_seqs(tmp_path: Path) -> None:
    spool = make(tmp_path / "s", 4)
    spool.ack(2)
    spool.close()
    with Spool(100, 10**6, tmp_path / "s", session="ignored") as spool:
        assert spool.session == "s"
        assert (spool.acked_seq, spool.first_seq, spool.last_seq) == (0, 1, 4)
        spool.ack(2)  # the bridge's welcome says what it has
        spool.append(5, b"five", 5, b"m005")
        assert [s for s, _ in spool.iter_from(0)] == [3, 4, 5]


def test_a_crash_right_after_everything_was_acked_keeps_the_newest_marks(
    tmp_path: Path,
) -> None:
    spool = make(tmp_path, 5)
    spool.ack(5)  # all acked: the open segment must stay for its marks
    crash(spool)
    with Spool(0, 10**6, tmp_path) as again:
        assert again.marks == b"m005"
        # The acked records come back as unacked: resent, the bridge drops them by seq.
        assert [s for s, _ in again.iter_from(0)] == [1, 2, 3, 4, 5]


def test_a_session_with_only_its_marks_file_is_a_leftover_and_keeps_them(
    tmp_path: Path,
) -> None:
    """What a full disk leaves: every record acked and deleted, the marks in their file."""
    directory = tmp_path / "s1"
    spool = make(directory, 2)
    spool.ack(2)
    crash(spool)
    for seg in directory.glob("seg-*.spool"):
        seg.unlink()
    write_marks(directory, b"m002")
    assert find_leftovers(tmp_path, "c") == [directory]
    with Spool(0, 10**6, directory) as again:
        assert (again.marks, len(again)) == (b"m002", 0)
    assert not directory.exists()  # nothing left to resume: closed empty, removed
