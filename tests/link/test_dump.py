"""``trading-client backend dump``: a spool as JSON lines, damage named, bad paths refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from app.link.positions import encode_marks
from app.link.spool import Spool
from app.protocol import codec
from app.ticks import TICK_DTYPE, TickBatch

CLI = (sys.executable, "-m", "app", "backend", "dump")


def spool_with_two_messages(directory: Path) -> None:
    ticks = np.zeros(12, dtype=TICK_DTYPE)
    ticks["time_msc"] = 1_700_000_000_000 + np.arange(12)
    ticks["time"] = ticks["time_msc"] // 1000
    ticks["bid"] = 1.1
    spool = Spool(0, 10**6, directory, client_id="c", session="s")
    for seq in (1, 2):
        marks = encode_marks({"EURUSD": (1, 0)}, {"EURUSD": (1_700_000_000_011, seq)})
        spool.append(seq, codec.encode_ticks(seq, [TickBatch("EURUSD", ticks)]), 12, marks)
    spool._close_files()  # as a crash leaves it: the files stay
    assert spool._lock is not None
    spool._lock.release()


def test_dump_prints_one_json_line_per_message_with_ticks_as_rows(tmp_path: Path) -> None:
    spool_with_two_messages(tmp_path / "s")
    done = subprocess.run(
        [*CLI, str(tmp_path / "s"), "--rows", "1"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [d["seq"] for d in lines] == [1, 2]
    first = lines[0]
    assert first["marks"] == {"EURUSD": [1, 0, 1_700_000_000_011, 1]}
    block = first["message"]["blocks"][0]
    assert (block["symbol"], block["n"], block["elided"], len(block["rows"])) == (
        "EURUSD",
        12,
        10,
        2,
    )


def test_a_damaged_record_is_named_and_the_rest_still_printed(tmp_path: Path) -> None:
    spool_with_two_messages(tmp_path / "s")
    seg = next((tmp_path / "s").glob("seg-*.spool"))
    data = bytearray(seg.read_bytes())
    data[200] ^= 0xFF  # inside the first record's payload
    seg.write_bytes(bytes(data))
    done = subprocess.run([*CLI, str(seg)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert "damage" in lines[0]
    assert lines[-1]["seq"] == 2
    assert "message" in lines[-1]


def test_a_path_that_is_no_spool_is_one_line_and_exit_1(tmp_path: Path) -> None:
    for path in (tmp_path / "missing", tmp_path):
        done = subprocess.run([*CLI, str(path)], capture_output=True, text=True, check=False)
        assert done.returncode == 1
        assert done.stdout == ""
        assert len(done.stderr.strip().splitlines()) == 1
        assert done.stderr.startswith("error: ")
