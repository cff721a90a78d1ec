"""The replay reader applies the bridge's value rules (issue #13 item 4): a tick the bridge
would refuse makes its row bad, reported in one line with file, line and field; and
numbers too long for an integer are a bad row, not an OverflowError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.clock import ManualClock
from app.terminal import constants as c
from app.terminal.export_files import ExportFormatError, read_ticks
from app.terminal.export_files.formats import TICK_HEADER
from app.terminal.export_files.reader import ExportReader
from app.terminal.replay import ReplayTerminal

GOOD = "2024.01.02\t10:00:00.000\t1.10000\t1.10020\t\t\t6"


def write(path: Path, *rows: str) -> Path:
    path.write_text("\t".join(TICK_HEADER) + "\n" + "\n".join(rows) + "\n")
    return path


CASES = [
    ("negative bid", "2024.01.02\t10:00:01.000\t-1.1\t1.10020\t\t\t2", "<BID>", "out of range"),
    ("absurd price", "2024.01.02\t10:00:01.000\t1.1\t1e13\t\t\t4", "<ASK>", "not a number"),
    ("huge ask", "2024.01.02\t10:00:01.000\t1.1\t9999999999999.0\t\t\t4", "<ASK>", "range"),
    ("year 9999", "9999.12.31\t10:00:01.000\t1.1\t1.10020\t\t\t6", "<DATE>", "in the future"),
    ("crossed", "2024.01.02\t10:00:01.000\t1.2\t1.1\t\t\t6", "<ASK>", "below <BID>"),
    ("flags 0x100", "2024.01.02\t10:00:01.000\t1.1\t1.10020\t\t\t256", "<FLAGS>", "range"),
    (
        "flags > 2^63",
        "2024.01.02\t10:00:01.000\t1.1\t1.2\t\t\t9223372036854775809",
        "<FLAGS>",
        "range",
    ),
    (
        "flags > 2^64",
        "2024.01.02\t10:00:01.000\t1.1\t1.2\t\t\t99999999999999999999999",
        "<FLAGS>",
        "range",
    ),
    ("huge volume", "2024.01.02\t10:00:01.000\t1.1\t1.2\t\t1e16\t22", "<VOLUME>", "number"),
    (
        "volume 10^16",
        "2024.01.02\t10:00:01.000\t1.1\t1.2\t\t10000000000000000\t22",
        "<VOLUME>",
        "range",
    ),
]


@pytest.mark.parametrize(
    ("row", "field", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_tick_the_bridge_would_refuse_is_a_bad_row_named_by_line_and_field(
    tmp_path: Path, row: str, field: str, needle: str
) -> None:
    # The row after sets every field, so that nothing is carried from the refused row.
    path = write(tmp_path / "EURUSD.csv", GOOD, row, "2024.01.02\t10:00:02.000\t1.1\t1.2\t0\t0\t30")
    with pytest.raises(ExportFormatError) as info:
        read_ticks(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), 3, field)
    assert needle in err.reason
    assert "\n" not in str(err)
    assert str(err).startswith(f"{path}:3: {field} ")
    skipped = read_ticks(path, skip_bad_rows=True)
    assert len(skipped.data) == 2
    assert skipped.report.bad_rows == 1


def test_ask_below_bid_is_kept_when_one_side_alone_changed(tmp_path: Path) -> None:
    path = write(
        tmp_path / "EURUSD.csv",
        GOOD,
        "2024.01.02\t10:00:01.000\t1.10030\t\t\t\t2",  # bid moved above the carried ask
        "2024.01.02\t10:00:02.000\t\t1.10040\t\t\t4",
    )
    data = read_ticks(path).data
    assert len(data) == 3
    assert data["ask"][1] < data["bid"][1]


def test_the_future_follows_the_readers_clock(tmp_path: Path) -> None:
    path = write(tmp_path / "EURUSD.csv", GOOD)
    early = ManualClock(start=1_600_000_000.0)  # 2020: the 2024 row is in its future
    with pytest.raises(ExportFormatError, match="in the future"):
        list(ExportReader(path, clock=early))
    assert len(np.concatenate(list(ExportReader(path)))) == 1


def test_a_replay_of_a_refused_file_fails_naming_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path / "EURUSD.csv", GOOD, CASES[0][1])
    term = ReplayTerminal({"EURUSD": [path]}, speed=0)
    assert term.initialize()
    assert not term.symbol_select("EURUSD")
    code, text = term.last_error()
    assert code == c.RES_E_FAIL
    assert f"{path}:3: <BID> '-1.1' is out of range" in text
