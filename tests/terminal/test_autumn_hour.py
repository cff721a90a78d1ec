"""A 24/7 symbol's export across the autumn switch: read, replayed, captured in UTC.

BTCUSD trades through the autumn switch of 2026 (1 Nov, 06:00 UTC: a ny-close server
goes from GMT+3 back to GMT+2, so server 08:00–09:00 happens twice). The file is written
by the project's writer from a UTC series stamped in server time; the truth is that UTC
series (and its server stamps computed from zoneinfo's New York, independently of
app.servertime, in tests/export/test_server_time.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.clock import ManualClock
from app.collector import Collector
from app.export.api import export_ticks
from app.servertime import NY_CLOSE
from app.terminal import constants as c
from app.terminal.export_files import ExportFormatError, read_export, read_ticks, write_ticks
from app.terminal.market import DEFAULT_PROFILES, Market
from app.terminal.replay import ReplayTerminal, plan_of_spec
from app.terminal.spec import TerminalSpec
from app.ticks import TickArray, TickBatch
from tests.connector.test_server_time import Harness
from tests.export.test_server_time import file_times_ms, ref_server_ms
from tests.test_servertime import utc_s

H_MS = 3_600_000
#: The autumn switch of 2026 at a ny-close server (the first Sunday of November).
SWITCH_2026 = utc_s(2026, 11, 1, 6) * 1000
SWITCH_2025 = utc_s(2025, 11, 2, 6) * 1000
#: Two ticks a second for 1 h 30 min before the switch and 1 h 30 min after it.
RATE = 2.0


def btc_utc(switch_ms: int = SWITCH_2026, seed: int = 7) -> TickArray:
    market = Market(seed, DEFAULT_PROFILES, {"BTCUSD": RATE})
    return market.ticks_range("BTCUSD", switch_ms - 90 * 60_000, switch_ms + 90 * 60_000)


def in_server_time(utc: TickArray) -> TickArray:
    server = utc.copy()
    server["time_msc"] = NY_CLOSE.to_server_ms(utc["time_msc"])
    server["time"] = server["time_msc"] // 1000
    return server


@pytest.fixture(scope="module")
def autumn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TickArray]:
    """The export file of BTCUSD across the switch, and the UTC series it was made from."""
    utc = btc_utc()
    path = tmp_path_factory.mktemp("autumn") / "BTCUSD_202611010430_202611010730.csv"
    write_ticks(path, in_server_time(utc), digits=2)
    return path, utc


# ----------------------------------------------------------------------- the reader


@pytest.mark.parametrize("block_bytes", [4 << 20, 1000], ids=["one-block", "small-blocks"])
def test_the_reader_accepts_the_autumn_hour_and_returns_the_rows_as_in_the_file(
    autumn: tuple[Path, TickArray], block_bytes: int
) -> None:
    path, utc = autumn
    stamps = file_times_ms(path)
    assert np.array_equal(stamps, ref_server_ms(utc["time_msc"]))  # the server's clock
    assert (np.diff(stamps) < 0).sum() == 1  # its one jump back, 09:00 → 08:00
    got = read_export(path, block_bytes=block_bytes)
    assert got.report.bad_rows == 0
    assert np.array_equal(got.data["time_msc"], stamps)
    assert np.array_equal(got.data, in_server_time(utc))


def test_a_second_step_back_in_the_same_file_is_refused(
    autumn: tuple[Path, TickArray], tmp_path: Path
) -> None:
    path, _ = autumn
    lines = path.read_text().splitlines()
    # In the second pass (server 08:30 again), a row ten minutes back: the same hour of
    # the same Sunday, but the file has had its step back already.
    i = next(k for k, ln in enumerate(lines) if "\t08:30:" in ln and k > len(lines) // 2)
    back = lines[i].replace("\t08:30:", "\t08:20:", 1)
    bad = tmp_path / "BTCUSD_twice.csv"
    bad.write_text("\n".join([*lines[: i + 1], back, *lines[i + 1 :]]) + "\n")
    with pytest.raises(ExportFormatError, match="is earlier than the row before") as info:
        read_ticks(bad)
    assert (info.value.line, info.value.field) == (i + 2, "<TIME>")  # lines[0] is line 1
    skipped = read_ticks(bad, skip_bad_rows=True)
    assert skipped.report.bad_rows == 1
    assert np.array_equal(skipped.data, read_ticks(path).data)


def test_one_step_back_per_300_days_reads_a_file_over_two_autumns(tmp_path: Path) -> None:
    utc = np.concatenate([btc_utc(SWITCH_2025, seed=3), btc_utc(SWITCH_2026)])
    path = tmp_path / "BTCUSD_2025_2026.csv"
    write_ticks(path, in_server_time(utc), digits=2)
    assert (np.diff(file_times_ms(path)) < 0).sum() == 2
    got = read_ticks(path).data
    assert np.array_equal(got, in_server_time(utc))
    # Read back with the zone, it is the UTC series (each autumn hour by its jump back).
    assert np.array_equal(NY_CLOSE.to_utc_ms(got["time_msc"]), utc["time_msc"])


# ----------------------------------------------------------------------- the replay


def captured(spec: TerminalSpec, clock: ManualClock, until_s: float | None = None) -> TickArray:
    """What a worker (in this process, real pipe) captures of a replay, from its start."""
    plan = plan_of_spec(spec)
    replay = ReplayTerminal.from_spec(spec, clock=clock)
    h = Harness(spec, replay, clock, ("BTCUSD",), plan.start_ms)  # as plan_workers does
    h.worker.connect()
    h.step()
    if until_s is not None:
        h.run_until(until_s)
    return h.ticks("BTCUSD")


def replay_spec(path: Path, **kw: object) -> TerminalSpec:
    fields: dict[str, object] = {
        "name": "replay",
        "kind": "replay",
        "replay_files": (("BTCUSD", (path,)),),
        "replay_speed": 0,
        "replay_anchor_ms": utc_s(2026, 12, 1) * 1000,
    }
    fields.update(kw)
    return TerminalSpec(**fields)  # type: ignore[arg-type]


def assert_same_ticks(got: TickArray, want: TickArray) -> None:
    assert len(got) == len(want), f"{len(got)} captured, {len(want)} in the file"
    assert not (np.diff(got["time_msc"]) < 0).any()
    assert np.array_equal(got, want)


def test_a_replay_across_the_autumn_hour_is_captured_in_utc_exactly(
    autumn: tuple[Path, TickArray],
) -> None:
    path, utc = autumn
    spec = replay_spec(path)
    plan = plan_of_spec(spec)
    assert (plan.start_ms, plan.end_ms) == (int(utc["time_msc"][0]), {"BTCUSD": utc_s_last(utc)})
    assert plan.served_start_ms == int(in_server_time(utc)["time_msc"][0])
    got = captured(spec, ManualClock(utc_s(2026, 12, 1)))
    assert_same_ticks(got, utc)


def utc_s_last(utc: TickArray) -> int:
    return int(utc["time_msc"][-1])


@pytest.mark.parametrize("shift_to_now", [False, True], ids=["file-times", "shift-to-now"])
def test_a_timed_replay_runs_the_autumn_hour_in_true_elapsed_time(
    autumn: tuple[Path, TickArray], shift_to_now: bool
) -> None:
    path, utc = autumn
    speed = 120.0
    anchor_s = utc_s(2026, 12, 1)
    spec = replay_spec(
        path, replay_speed=speed, replay_anchor_ms=anchor_s * 1000, replay_shift_to_now=shift_to_now
    )
    plan = plan_of_spec(spec)
    span = int(utc["time_msc"][-1] - utc["time_msc"][0])
    assert plan.finished_at() == anchor_s * 1000 + span / speed  # 3 h of ticks, not 2
    want = utc.copy()
    if shift_to_now:  # the first tick at the anchor, the rest at their true distances
        want["time_msc"] += anchor_s * 1000 - int(utc["time_msc"][0])
        want["time"] = want["time_msc"] // 1000
        assert plan.served_start_ms == anchor_s * 1000 + 2 * H_MS  # server-now, GMT+2
    clock = ManualClock(anchor_s)
    half = captured(spec, clock, anchor_s + span / speed / 2 / 1000)
    # Half-way (past the switch): the ticks of the elapsed time times the speed, in UTC.
    elapsed_ms = (clock.time() - anchor_s) * 1000
    assert 0.5 * span < elapsed_ms * speed < 0.6 * span
    visible = want["time_msc"] <= int(want["time_msc"][0]) + int(elapsed_ms * speed)
    assert_same_ticks(half, want[visible])
    clock = ManualClock(anchor_s)
    assert_same_ticks(captured(spec, clock, anchor_s + span / speed / 1000 + 5), want)


def test_our_export_reads_back_and_replays_to_the_original_utc_ticks(tmp_path: Path) -> None:
    utc = btc_utc(seed=11)
    collector = Collector(len(utc))
    collector.ingest(TickBatch("BTCUSD", utc))
    out = tmp_path / "BTCUSD_export.csv"
    assert export_ticks(collector, "BTCUSD", out, digits=2, zone=NY_CLOSE) == len(utc)
    back = read_ticks(out).data
    assert np.array_equal(back["time_msc"], ref_server_ms(utc["time_msc"]))
    assert_same_ticks(captured(replay_spec(out), ManualClock(utc_s(2026, 12, 1))), utc)


def test_a_step_back_where_the_zone_has_no_autumn_hour_fails_the_replay_clearly(
    autumn: tuple[Path, TickArray],
) -> None:
    path, _ = autumn
    term = ReplayTerminal({"BTCUSD": [path]}, speed=0, server_time_zone=NY_CLOSE)
    assert term.initialize()
    assert term.symbol_select("BTCUSD")
    fixed = replay_spec(path, server_time_zone="+03:00")
    wrong = ReplayTerminal.from_spec(fixed, clock=ManualClock(utc_s(2026, 12, 1)))
    assert wrong.initialize()
    assert not wrong.symbol_select("BTCUSD")
    code, text = wrong.last_error()
    assert code == c.RES_E_FAIL
    assert "goes back in time at 2026.11.01 08:" in text
    assert "server time zone +03:00 has no autumn hour" in text


@pytest.mark.parametrize(
    ("before", "after", "accepted"),
    [
        ("2026.11.01\t08:59:59.999", "2026.11.01\t08:00:00.000", True),  # the whole hour
        ("2026.11.01\t08:30:00.000", "2026.11.01\t08:29:00.000", True),  # a quiet hour
        ("2026.11.01\t09:00:00.500", "2026.11.01\t08:59:59.000", False),  # two clock hours
        ("2026.11.01\t08:10:00.000", "2026.11.01\t07:50:00.000", False),
        ("2026.11.02\t08:30:00.000", "2026.11.02\t08:29:00.000", False),  # a Monday
    ],
)
def test_the_step_back_must_lie_in_one_clock_hour_of_a_sunday(
    tmp_path: Path, before: str, after: str, accepted: bool
) -> None:
    head = "<DATE>\t<TIME>\t<BID>\t<ASK>\t<LAST>\t<VOLUME>\t<FLAGS>"
    rows = [f"{before}\t60000.5\t60001.5\t\t\t6", f"{after}\t60000.6\t\t\t\t2"]
    path = tmp_path / "BTCUSD.csv"
    path.write_text("\n".join([head, *rows]) + "\n")
    if accepted:
        assert len(read_ticks(path).data) == 2
    else:
        with pytest.raises(ExportFormatError, match=r":3: <TIME> .* is earlier than the row"):
            read_ticks(path)
