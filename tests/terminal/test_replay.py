"""The replay terminal: the MT5 API over export files, on a manual clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.clock import ManualClock
from app.collector import M1, M5, Collector
from app.connector.capture import CaptureCursor, PollSizer
from app.terminal import constants as c
from app.terminal.export_files import write_ticks
from app.terminal.loader import TerminalUnavailable, open_terminal
from app.terminal.replay import ReplayTerminal, symbol_from_file_name
from app.terminal.spec import TerminalSpec
from app.ticks import TickArray, TickBatch
from tests.export.helpers import T0, dukascopy_ticks, market_ticks

WALL = 1_800_000_000.0


@pytest.fixture
def eurusd(tmp_path: Path) -> tuple[Path, TickArray]:
    ticks = market_ticks("EURUSD", seconds=60, rate=100.0)
    path = tmp_path / "EURUSD_202311142213_202311142214.csv"
    write_ticks(path, ticks, digits=5, encoding="utf-16")
    return path, ticks


def test_symbol_from_file_name() -> None:
    assert symbol_from_file_name("/x/EURUSD_202401020000_202401022359.csv") == "EURUSD"
    assert symbol_from_file_name("EURUSD.a_M1_2024.csv") == "EURUSD.a"
    assert symbol_from_file_name("XAUUSD.csv") == "XAUUSD"


def test_as_fast_as_possible_serves_the_file_unchanged(eurusd: tuple[Path, TickArray]) -> None:
    path, ticks = eurusd
    term = ReplayTerminal({"EURUSD": [path]}, speed=0, clock=ManualClock(WALL))
    assert term.initialize()
    assert term.symbol_select("EURUSD")
    got = term.copy_ticks_from("EURUSD", T0 // 1000, 10_000_000, c.COPY_TICKS_ALL)
    assert got is not None
    assert np.array_equal(got, ticks)
    got["bid"] = 0  # a fresh array: the caller may change it
    tail = term.copy_ticks_range("EURUSD", T0 // 1000 + 30, T0 // 1000 + 40, c.COPY_TICKS_ALL)
    assert tail is not None
    tm = ticks["time_msc"]
    assert np.array_equal(tail, ticks[(tm >= T0 + 30_000) & (tm <= T0 + 40_000)])
    info = term.symbol_info("EURUSD")
    assert info is not None
    assert (info.digits, info.point, info.bid) == (5, 1e-5, float(ticks["bid"][-1]))
    assert term.symbol_info_tick("EURUSD") == tuple(ticks[-1].tolist())


def test_real_speed_with_shift_to_now_maps_ticks_onto_the_wall_clock(
    eurusd: tuple[Path, TickArray],
) -> None:
    path, ticks = eurusd
    clock = ManualClock(WALL)
    anchor = int(WALL * 1000)
    term = ReplayTerminal(
        {"EURUSD": [path]}, speed=2.0, shift_to_now=True, anchor_ms=anchor, clock=clock
    )
    assert term.initialize()
    assert term.symbol_select("EURUSD")
    # "Now" is the server's now: 2027-01-15 at a ny-close server is GMT+2.
    server_now = anchor + 2 * 3_600_000
    shift = server_now - int(ticks["time_msc"][0])
    assert term.plan.start_ms == anchor  # in UTC, where capture starts
    assert term.plan.served_start_ms == server_now
    assert term.plan.end_ms == {"EURUSD": int(ticks["time_msc"][-1]) + shift - 2 * 3_600_000}
    clock.advance(5.0)  # at speed 2: ten seconds of the file are visible
    got = term.copy_ticks_from("EURUSD", 0, 10_000_000, c.COPY_TICKS_ALL)
    assert got is not None
    expected = ticks[ticks["time_msc"] <= ticks["time_msc"][0] + 10_000].copy()
    expected["time_msc"] += shift
    expected["time"] = expected["time_msc"] // 1000
    assert np.array_equal(got, expected)
    mask = term.copy_ticks_from("EURUSD", 0, 10_000_000, c.COPY_TICKS_TRADE)
    assert mask is not None
    assert len(mask) == 0
    assert term.plan.finished_at() == anchor + (ticks["time_msc"][-1] - ticks["time_msc"][0]) / 2


def test_overlapping_files_are_taken_once(tmp_path: Path) -> None:
    ticks = market_ticks("EURUSD", seconds=30, rate=300.0)
    a, b = tmp_path / "EURUSD_a.csv", tmp_path / "EURUSD_b.csv"
    cut = len(ticks) // 2
    write_ticks(a, ticks[: cut + 500])
    write_ticks(b, ticks[cut:])
    term = ReplayTerminal({"EURUSD": [b, a]}, speed=0)
    assert term.initialize()
    assert term.symbol_select("EURUSD")
    got = term.copy_ticks_from("EURUSD", 0, 10_000_000, c.COPY_TICKS_ALL)
    assert got is not None
    assert np.array_equal(got, ticks)


def test_a_bad_file_fails_selection_naming_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "EURUSD.csv"
    write_ticks(path, market_ticks(seconds=2))
    lines = path.read_text().splitlines()
    lines[5] = lines[5].replace("2023.", "2023-", 1)
    path.write_text("\n".join(lines) + "\n")
    term = ReplayTerminal({"EURUSD": [path]}, speed=0)
    assert term.initialize()
    assert not term.symbol_select("EURUSD")
    code, text = term.last_error()
    assert code == c.RES_E_FAIL
    assert f"{path}:6: <DATE>" in text
    skipping = ReplayTerminal({"EURUSD": [path]}, speed=0, skip_bad_rows=True)
    assert skipping.initialize()
    assert skipping.symbol_select("EURUSD")


def test_open_terminal_reports_a_missing_file_clearly(tmp_path: Path) -> None:
    spec = TerminalSpec(
        name="replay", kind="replay", replay_files=(("EURUSD", (tmp_path / "nope.csv",)),)
    )
    with pytest.raises(
        TerminalUnavailable, match=r"cannot replay: EURUSD: replay file .* not exist"
    ):
        open_terminal(spec)


def _capture(term: ReplayTerminal, symbol: str, start_msc: int, collector: Collector) -> int:
    """The worker's poll loop, in process: cursor, sizer, collector."""
    cursor, sizer = CaptureCursor(start_msc), PollSizer(5_000)
    total = 0
    while True:
        polled = term.copy_ticks_from(symbol, cursor.from_seconds, sizer.count, c.COPY_TICKS_ALL)
        assert polled is not None
        new, skipped = cursor.cut(polled)
        more = sizer.after_poll(len(polled), skipped, len(new))
        if len(new):
            cursor.advance(new)
            collector.ingest(TickBatch(symbol, new))
            total += len(new)
        if not more and not len(new):
            return total


def _bars(ticks: TickArray, tf: int) -> list[tuple[int, float, float, float, float, int]]:
    """Bars the plain way: a dict of lists per period (independent of the collector)."""
    groups: dict[int, list[tuple[float, float]]] = {}
    for t, bid, ask in zip(
        ticks["time_msc"].tolist(), ticks["bid"].tolist(), ticks["ask"].tolist(), strict=True
    ):
        groups.setdefault(t - t % tf, []).append((bid, ask))
    return [
        (start, q[0][0], max(b for b, _ in q), min(b for b, _ in q), q[-1][0], len(q))
        for start, q in sorted(groups.items())
    ]


@pytest.mark.parametrize("source", ["market", "dukascopy"])
def test_collector_bars_from_a_replayed_file_equal_independent_bars(
    tmp_path: Path, source: str
) -> None:
    ticks = (
        market_ticks("EURUSD", seconds=900, rate=40.0) if source == "market" else dukascopy_ticks()
    )
    path = tmp_path / "EURUSD_x.csv"
    write_ticks(path, ticks, digits=5, encoding="utf-16")
    term = ReplayTerminal({"EURUSD": [path]}, speed=0)
    assert term.initialize()
    assert term.symbol_select("EURUSD")
    collector = Collector(len(ticks) + 10, (M1, M5), bar_history=10_000)
    assert _capture(term, "EURUSD", int(ticks["time_msc"][0]), collector) == len(ticks)
    assert np.array_equal(collector.cache.snapshot("EURUSD"), ticks)
    for tf in (M1, M5):
        bars = collector.bars("EURUSD", tf)
        got = [
            (
                int(b["time_msc"]),
                float(b["open"]),
                float(b["high"]),
                float(b["low"]),
                float(b["close"]),
                int(b["tick_count"]),
            )
            for b in bars
        ]
        assert got == _bars(ticks, tf)
        spreads = ticks["ask"] - ticks["bid"]
        starts = ticks["time_msc"] - ticks["time_msc"] % tf
        for b in bars:
            in_bar = spreads[starts == b["time_msc"]]
            assert b["spread_min"] == in_bar.min()
            assert b["spread_max"] == in_bar.max()
            assert b["spread_sum"] == pytest.approx(in_bar.sum(), rel=1e-12)
