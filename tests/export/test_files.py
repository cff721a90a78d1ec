"""MT5 export files: round trips, the layouts MT5 writes, and every way a row can be wrong."""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.terminal.export_files import (
    RATES_DTYPE,
    ExportFormatError,
    ExportReader,
    ExportUnavailableError,
    RatesBuilder,
    parquet_available,
    rates_from_ticks,
    read_bars,
    read_export,
    read_ticks,
    read_time_span,
    sniff,
    write_bars,
    write_ticks,
)
from app.ticks import TICK_DTYPE
from tests.export.helpers import dukascopy_ticks, market_ticks

HEADER = "<DATE>\t<TIME>\t<BID>\t<ASK>\t<LAST>\t<VOLUME>\t<FLAGS>"


def write_text(
    path: Path, lines: list[str], *, encoding: str = "utf-8", newline: str = "\n", bom: bool = False
) -> Path:
    text = newline.join(lines) + newline
    data = text.encode(encoding)
    if bom:
        data = {
            "utf-8": codecs.BOM_UTF8,
            "utf-16-le": codecs.BOM_UTF16_LE,
            "utf-16-be": codecs.BOM_UTF16_BE,
        }[encoding] + data
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    ("symbol", "digits", "encoding", "crlf"),
    [
        ("EURUSD", 5, "utf-8", False),
        ("EURUSD", None, "utf-16", None),  # MT5 style: UTF-16 LE, BOM, CRLF
        ("XAUUSD", 2, "utf-8", True),
        ("SBER", 2, "utf-8", False),  # deals: last, volume, buy/sell flags
        ("SBER", None, "utf-16", None),
    ],
)
def test_generated_ticks_round_trip_exactly(
    tmp_path: Path, symbol: str, digits: int | None, encoding: str, crlf: bool | None
) -> None:
    ticks = market_ticks(symbol, seconds=120, rate=300.0)
    assert len(ticks) > 10_000
    path = tmp_path / f"{symbol}_export.csv"
    assert write_ticks(path, ticks, digits=digits, encoding=encoding, crlf=crlf) == len(ticks)  # type: ignore[arg-type]
    got = read_ticks(path)
    assert got.report.bad_rows == 0
    assert got.data.dtype == TICK_DTYPE
    assert np.array_equal(got.data, ticks)
    assert got.report.rows == len(ticks)
    if digits is not None:
        assert got.report.digits == digits


def test_small_blocks_read_the_same_as_one_block(tmp_path: Path) -> None:
    ticks = market_ticks("SBER", seconds=30, rate=100.0)
    path = tmp_path / "sber.csv"
    write_ticks(path, ticks, encoding="utf-16")
    whole = read_export(path).data
    pieces = np.concatenate(list(ExportReader(path, block_bytes=97)))
    assert np.array_equal(whole, ticks)
    assert np.array_equal(pieces, ticks)


def test_real_dukascopy_ticks_round_trip(tmp_path: Path) -> None:
    ticks = dukascopy_ticks()
    assert len(ticks) > 4_000
    path = tmp_path / "EURUSD_2019.csv"
    write_ticks(path, ticks, digits=5)
    text = path.read_text().splitlines()
    assert text[0] == HEADER
    assert text[1].startswith("2019.01.01\t22:02:37.254\t1.14598\t1.14682\t\t\t6")
    assert any("\t\t" in line and line.endswith("\t2") for line in text[2:50])  # ask empty
    assert np.array_equal(read_ticks(path).data, ticks)
    assert read_time_span(path) == (int(ticks["time_msc"][0]), int(ticks["time_msc"][-1]))


# ----------------------------------------------------------------------- the MT5 layout


def test_empty_fields_carry_the_previous_values(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "t.csv",
        [
            HEADER,
            "2024.01.02\t00:05:00.123\t1.10012\t1.10020\t\t\t6",
            "2024.01.02\t00:05:00.123\t1.10013\t\t\t\t2",
            "2024.01.02\t00:05:01.000\t\t1.10025\t\t\t4",
            "2024.01.02\t00:05:02.500\t\t\t1.10030\t3\t56",
            "2024.01.02\t00:05:03.000\t1.10010\t\t\t\t2",
        ],
        newline="\r\n",
        bom=True,
    )
    got = read_ticks(path).data
    base = int(np.datetime64("2024-01-02T00:05:00.123", "ms").astype(np.int64))
    assert got["time_msc"].tolist() == [base, base, base + 877, base + 2377, base + 2877]
    assert got["time"].tolist() == [t // 1000 for t in got["time_msc"].tolist()]
    assert got["bid"].tolist() == [1.10012, 1.10013, 1.10013, 1.10013, 1.10010]
    assert got["ask"].tolist() == [1.10020, 1.10020, 1.10025, 1.10025, 1.10025]
    assert got["last"].tolist() == [0, 0, 0, 1.10030, 1.10030]
    assert got["volume"].tolist() == [0, 0, 0, 3, 3]
    assert got["volume_real"].tolist() == [0, 0, 0, 3.0, 3.0]
    assert got["flags"].tolist() == [6, 2, 4, 56, 2]


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-8", False),
        ("utf-8", True),
        ("utf-16-le", True),
        ("utf-16-be", True),
        ("utf-16-le", False),
    ],
)
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_encodings_and_line_ends(tmp_path: Path, encoding: str, bom: bool, newline: str) -> None:
    lines = [
        HEADER,
        "2024.01.02\t00:05:00.123\t1.1\t1.2\t\t\t6",
        "2024.01.02\t00:05:00.124\t1.3\t\t\t\t2",
    ]
    path = write_text(tmp_path / "t.csv", lines, encoding=encoding, newline=newline, bom=bom)
    got = read_ticks(path).data
    assert got["bid"].tolist() == [1.1, 1.3]
    assert got["ask"].tolist() == [1.2, 1.2]


def test_a_file_without_final_newline_and_with_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        HEADER + "\n\n2024.01.02\t00:05:00.123\t1.1\t1.2\t\t\t6\n\n"
        "2024.01.02\t00:05:00.200\t1.3\t\t\t\t2"
    )
    assert read_ticks(path).data["bid"].tolist() == [1.1, 1.3]


@pytest.mark.parametrize("with_time", [True, False])
def test_bars_round_trip_with_and_without_time(tmp_path: Path, with_time: bool) -> None:
    ticks = market_ticks("EURUSD", seconds=3 * 3600, rate=5.0)
    tf = 60_000 if with_time else 86_400_000
    bars = rates_from_ticks(ticks, tf, 1e-5)
    path = tmp_path / "bars.csv"
    write_bars(path, bars, digits=5, with_time=with_time)
    header = path.read_text().splitlines()[0]
    assert ("<TIME>" in header) is with_time
    got = read_bars(path)
    assert sniff(path) == "bars"
    assert got.report.has_time is with_time
    assert np.array_equal(got.data, bars)


def test_mt5_bar_export_as_written_by_the_terminal(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "EURUSD_D1.csv",
        [
            "<DATE>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>",
            "2024.01.02\t1.10356\t1.10408\t1.09393\t1.09414\t120450\t0\t1",
            "2024.01.03\t1.09414\t1.09710\t1.08925\t1.09211\t111902\t0\t2",
        ],
        encoding="utf-16-le",
        newline="\r\n",
        bom=True,
    )
    got = read_bars(path).data
    assert got.dtype == RATES_DTYPE
    assert got["time"].tolist() == [1704153600, 1704240000]
    assert got["close"].tolist() == [1.09414, 1.09211]
    assert got["tick_volume"].tolist() == [120450, 111902]
    assert got["spread"].tolist() == [1, 2]


def test_rates_builder_over_chunks_equals_one_pass() -> None:
    ticks = market_ticks("SBER", seconds=900, rate=20.0)
    one = rates_from_ticks(ticks, 300_000, 0.01)
    builder = RatesBuilder(300_000, 0.01)
    parts = [builder.add(ticks[i : i + 777]) for i in range(0, len(ticks), 777)]
    parts.append(builder.finish())
    assert np.array_equal(np.concatenate(parts), one)


def test_a_tick_file_is_not_a_bar_file(tmp_path: Path) -> None:
    path = write_text(tmp_path / "t.csv", [HEADER, "2024.01.02\t00:05:00.123\t1.1\t1.2\t\t\t6"])
    with pytest.raises(ExportFormatError, match="ticks export, not a bars export"):
        read_bars(path)


def test_unknown_header_is_refused_clearly(tmp_path: Path) -> None:
    path = write_text(tmp_path / "x.csv", ["time,bid,ask", "1,2,3"])
    with pytest.raises(ExportFormatError, match=r"x\.csv:1: header .* not an MT5 export header"):
        read_ticks(path)


def test_parquet_without_pyarrow_says_how_to_get_it(tmp_path: Path) -> None:
    ticks = market_ticks(seconds=1)
    if parquet_available():
        import pyarrow.parquet as pq  # noqa: PLC0415

        write_ticks(tmp_path / "t.parquet", ticks, fmt="parquet")
        table = pq.read_table(tmp_path / "t.parquet")
        assert table.column("time_msc").to_pylist() == ticks["time_msc"].tolist()
    else:
        with pytest.raises(ExportUnavailableError, match="pip install pyarrow"):
            write_ticks(tmp_path / "t.parquet", ticks, fmt="parquet")


# ----------------------------------------------------------------------- bad rows


GOOD = "2024.01.02\t00:05:00.123\t1.1\t1.2\t\t\t6"


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ("2024.01.02\t00:05:00.200\t\t\t\t\t2", "<BID>", "marks it as changed"),
        ("2024.13.02\t00:05:00.200\t1.1\t\t\t\t2", "<DATE>", "not a date"),
        ("2024.02.30\t00:05:00.200\t1.1\t\t\t\t2", "<DATE>", "not a date"),
        ("2024.01.02\t24:05:00.200\t1.1\t\t\t\t2", "<TIME>", "not a time"),
        ("2024.01.02\t00:05:00\t1.1\t\t\t\t2", "<TIME>", "not a time"),
        ("2024.01.02\t00:05:00.200\tnan\t\t\t\t2", "<BID>", "not a number"),
        ("2024.01.02\t00:05:00.200\t1e5\t\t\t\t2", "<BID>", "not a number"),
        ("2024.01.02\t00:05:00.200\t1_1\t\t\t\t2", "<BID>", "not a number"),
        ("2024.01.02\t00:05:00.200\t1.1.1\t\t\t\t2", "<BID>", "not a number"),
        ("2024.01.02\t00:05:00.200\t-\t\t\t\t2", "<BID>", "not a number"),
        ("2024.01.02\t00:05:00.200\t1.1\t\t\t-3\t2", "<VOLUME>", "not a number"),
        ("2024.01.02\t00:05:00.200\t1.1\t\t\t\t2.5", "<FLAGS>", "not a number"),
        ("2024.01.02\t00:05:00.200\t1.1\t\t\t\t", "<FLAGS>", "is empty"),
        ("2024.01.02\t00:05:00.200\t1.1\t\t\t\t2\t", "row", "has 8 fields, expected 7"),
        ("2024.01.02\t00:05:00.200\t1.1", "row", "has 3 fields, expected 7"),
        ("2024.01.02\t00:04:00.000\t1.1\t\t\t\t2", "<TIME>", "earlier than the row before"),
        ("2024.01.02\t00:05:00.200\t1.1\t\t\t\t99999999999", "<FLAGS>", "out of range"),
    ],
)
def test_a_bad_row_names_file_line_and_field(
    tmp_path: Path, row: str, field: str, reason: str
) -> None:
    path = write_text(tmp_path / "bad.csv", [HEADER, GOOD, row, GOOD.replace("00.123", "01.000")])
    with pytest.raises(ExportFormatError) as info:
        read_ticks(path)
    err = info.value
    assert (err.line, err.field) == (3, field), str(err)
    assert reason in err.reason
    assert str(err).startswith(f"{path}:3: {field}")
    skipped = read_ticks(path, skip_bad_rows=True)
    assert skipped.report.examples[0].line == 3
    # A bad row that had a value in a column (-3 as volume) leaves that column unknown,
    # so the next row, which would carry it, is skipped too.
    assert skipped.report.bad_rows == (2 if field == "<VOLUME>" else 1)
    assert len(skipped.data) == 3 - skipped.report.bad_rows


def test_first_row_without_bid_has_nothing_to_carry(tmp_path: Path) -> None:
    path = write_text(tmp_path / "t.csv", [HEADER, "2024.01.02\t00:05:00.123\t\t1.2\t\t\t4", GOOD])
    with pytest.raises(ExportFormatError, match=r"t\.csv:2: <BID> is empty and no earlier row"):
        read_ticks(path)
    got = read_ticks(path, skip_bad_rows=True)
    assert got.report.bad_rows == 1
    assert got.data["bid"].tolist() == [1.1]


def test_values_are_never_carried_across_an_unreadable_row(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "t.csv",
        [
            HEADER,
            "2024.01.02\t00:05:00.100\t1.1\t1.2\t\t\t6",
            "2024.01.02\t00:05:00.200\t1.5\tx\t\t\t6",  # unreadable: its bid is unknown
            "2024.01.02\t00:05:00.300\t\t1.3\t\t\t4",  # would carry bid 1.1: wrong, skipped
            "2024.01.02\t00:05:00.400\t1.6\t\t\t\t2",  # sets bid again; ask from the row above
            "2024.01.02\t00:05:00.500\t\t1.4\t\t\t4",
        ],
    )
    got = read_ticks(path, skip_bad_rows=True)
    assert got.report.bad_rows == 2
    assert [e.line for e in got.report.examples] == [3, 4]
    assert "could not be read" in got.report.examples[1].reason
    assert got.data["bid"].tolist() == [1.1, 1.6, 1.6]
    assert got.data["ask"].tolist() == [1.2, 1.3, 1.4]


def test_many_bad_rows_are_counted_and_a_few_shown(tmp_path: Path) -> None:
    rows = [HEADER, GOOD] + [f"2024.01.02\t00:05:{s:02d}.000\tbad\t\t\t\t2" for s in range(1, 40)]
    path = write_text(tmp_path / "t.csv", rows)
    got = read_ticks(path, skip_bad_rows=True)
    assert got.report.bad_rows == 39
    assert len(got.report.examples) == 10
    assert "39 bad rows skipped (first: line 3 <BID>" in got.report.summary()


# ----------------------------------------------------------------------- fuzzing

_BASE = market_ticks("SBER", seconds=20, rate=8.0)


def _lines(tmp_path: Path) -> list[str]:
    path = tmp_path / "base.csv"
    write_ticks(path, _BASE, digits=2)
    return path.read_text().splitlines()


_MUTATIONS = [
    lambda r: r.rsplit("\t", 3)[0],  # truncated
    lambda r: r + "\t",  # an extra tab
    lambda r: r.replace("\t", "\t\t", 1),  # a tab doubled
    lambda r: "2024.02.31" + r[10:],  # no such day
    lambda r: r[:11] + "12:61:00.000" + r[23:],  # no such minute
    lambda r: r[:11] + "1:00:00.000" + r[23:],  # short time
    lambda r: r.rsplit("\t", 1)[0] + "\tNaN",  # NaN text as flags
    lambda r: r.rsplit("\t", 1)[0] + "\t",  # no flags
    lambda r: "\t".join([*r.split("\t")[:2], "nan", *r.split("\t")[3:]]),  # NaN price
    lambda r: "\t".join([*r.split("\t")[:2], "1.2.3", *r.split("\t")[3:]]),
    lambda r: "\t".join([*r.split("\t")[:3], "inf", *r.split("\t")[4:]]),
    lambda r: r.replace(".", ",", 3),
    lambda r: "\x00" + r[1:],
    lambda r: r[: len(r) // 2],  # cut anywhere
]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_fuzzed_files_give_a_clear_error_or_only_true_rows(
    tmp_path: Path, data: st.DataObject
) -> None:
    lines = _lines(tmp_path)
    body = lines[1:]
    picks = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(body) - 1), st.integers(0, len(_MUTATIONS) - 1)),
            min_size=1,
            max_size=6,
        )
    )
    mutated = {}
    for index, which in picks:
        new = _MUTATIONS[which](body[index])
        if new != body[index]:
            mutated[index] = new
    if not mutated:
        return
    rows = [mutated.get(i, row) for i, row in enumerate(body)]
    path = tmp_path / "fuzz.csv"
    path.write_text("\n".join([lines[0], *rows]) + "\n")
    # Every mutation makes its row invalid: strict reading stops at the first one.
    with pytest.raises(ExportFormatError) as info:
        read_ticks(path)
    assert info.value.line == min(mutated) + 2, str(info.value)
    got = read_ticks(path, skip_bad_rows=True)
    assert got.report.rows + got.report.bad_rows == len(body)
    assert got.report.bad_rows >= len(mutated)
    # Every row read back is the true tick of its line, exactly: nothing is invented.
    keep = [i for i in range(len(body)) if i not in mutated]
    true_rows = _BASE[keep]
    # A subsequence of the unmutated rows, with their exact values.
    j = 0
    for tick in got.data:
        while j < len(true_rows) and true_rows[j].tobytes() != tick.tobytes():
            j += 1
        assert j < len(true_rows), f"row {tick} is not a true tick"
        j += 1
