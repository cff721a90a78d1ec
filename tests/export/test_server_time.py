"""Exports in server time, like MT5's: UTC ticks out in the server's clock and back.

BTCUSD trades through the autumn switch of 2024 (3 Nov, 06:00 UTC: a ny-close server
goes from GMT+3 back to GMT+2, so server 08:00–09:00 happens twice). The truth for
"server time" is computed here from zoneinfo's New York, independently of app.servertime.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from pathlib import Path

import numpy as np
import pytest

from app.collector import Collector
from app.export.api import export_bars, export_ticks
from app.server.store import TickStore
from app.servertime import NY_CLOSE
from app.terminal.export_files import rates_from_ticks, read_bars, read_ticks
from app.terminal.market import DEFAULT_PROFILES, Market
from app.ticks import TickArray, TickBatch
from app.timeframes import TIMEFRAMES
from tests.test_cli import run_clis

NY = zoneinfo.ZoneInfo("America/New_York")
UTC_FROM = int(dt.datetime(2024, 11, 3, 3, tzinfo=dt.UTC).timestamp() * 1000)
UTC_TO = int(dt.datetime(2024, 11, 3, 7, 30, tzinfo=dt.UTC).timestamp() * 1000)


#: The spring switch: 10 Mar 2024, 07:00 UTC (server 09:00 GMT+2 → 10:00 GMT+3).
SPRING_FROM = int(dt.datetime(2024, 3, 10, 5, tzinfo=dt.UTC).timestamp() * 1000)
SPRING_TO = int(dt.datetime(2024, 3, 10, 9, tzinfo=dt.UTC).timestamp() * 1000)


def btc_ticks(lo: int = UTC_FROM, hi: int = UTC_TO) -> TickArray:
    return Market(7, DEFAULT_PROFILES, {"BTCUSD": 2.0}).ticks_range("BTCUSD", lo, hi)


def file_times_ms(path: Path) -> np.ndarray:
    """``<DATE> <TIME>`` of an MT5 tick export, parsed here without the reader."""
    rows = [line.split("\t")[:2] for line in path.read_text().splitlines()[1:]]
    stamps = [f"{d.replace('.', '-')}T{t}" for d, t in rows]
    return np.array(stamps, dtype="datetime64[ms]").astype(np.int64)


def ref_server_ms(utc_ms: np.ndarray) -> np.ndarray:
    def off(ms: int) -> int:
        ny = dt.datetime.fromtimestamp(ms // 1000, dt.UTC).astimezone(NY)
        return (3 if ny.dst() else 2) * 3_600_000

    return np.array([int(t) + off(int(t)) for t in utc_ms], np.int64)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TickArray]:
    ticks = btc_ticks()
    path = tmp_path_factory.mktemp("db") / "ticks.sqlite"
    with TickStore(path) as store:
        store.store("desk", "s1", [(1, [TickBatch("BTCUSD", ticks)])])
    return path, ticks


def test_ticks_round_trip_through_server_time(tmp_path: Path) -> None:
    utc = btc_ticks(SPRING_FROM, SPRING_TO)
    collector = Collector(len(utc))
    collector.ingest(TickBatch("BTCUSD", utc))
    out = tmp_path / "BTCUSD_ticks.csv"
    assert export_ticks(collector, "BTCUSD", out, digits=2, zone=NY_CLOSE) == len(utc)
    back = read_ticks(out).data
    # The file holds server time: GMT+2 before the switch, GMT+3 after.
    assert np.array_equal(back["time_msc"], ref_server_ms(utc["time_msc"]))
    # The replay reader's ticks, read back with the same zone, are the original UTC ticks.
    back["time_msc"] = NY_CLOSE.to_utc_ms(back["time_msc"])
    back["time"] = back["time_msc"] // 1000
    assert np.array_equal(back, utc)


def test_the_autumn_hour_is_written_twice_like_the_server_clock(
    db: tuple[Path, TickArray], tmp_path: Path
) -> None:
    path, utc = db
    out = tmp_path / "BTCUSD_ticks.csv"
    assert export_ticks(path, "BTCUSD", out, digits=2, zone=NY_CLOSE) == len(utc)
    stamps = file_times_ms(out)
    assert np.array_equal(stamps, ref_server_ms(utc["time_msc"]))
    assert (np.diff(stamps) < 0).sum() == 1  # the clock's one jump back, 09:00 → 08:00
    assert np.array_equal(NY_CLOSE.to_utc_ms(stamps), utc["time_msc"])


def test_bars_cut_at_server_boundaries(db: tuple[Path, TickArray], tmp_path: Path) -> None:
    path, utc = db
    server = utc.copy()
    server["time_msc"] = ref_server_ms(utc["time_msc"])
    server["time"] = server["time_msc"] // 1000
    for tf in ("H1", "H4", "D1", "W1"):
        out = tmp_path / f"BTCUSD_{tf}.csv"
        export_bars(path, "BTCUSD", out, tf, digits=2, zone=NY_CLOSE)
        got = read_bars(out).data
        # Sorted server times: the autumn hour's two passes make one server-time bar.
        order = np.argsort(server["time_msc"], kind="stable")
        if tf in ("D1", "W1"):  # the whole span is Sunday 3 Nov, server time
            assert got["time"].tolist() == [int(dt.datetime(2024, 11, 3).timestamp()) - _local()]
        want = rates_from_ticks(server[order], TIMEFRAMES[tf], 0.01)
        assert got["time"].tolist() == want["time"].tolist()
        assert got["tick_volume"].sum() == len(utc)
    h4 = read_bars(tmp_path / "BTCUSD_H4.csv").data["time"] % 86_400 // 3600
    assert h4.tolist() == [4, 8]  # server 04:00 and 08:00 (06:00–09:30 server)


def _local() -> int:
    """dt.datetime(…).timestamp() reads a naive date as local time; undo that."""
    naive = dt.datetime(2024, 11, 3)
    return int(naive.timestamp()) - int(naive.replace(tzinfo=dt.UTC).timestamp())


def test_cli_says_which_zone_and_reads_from_to_as_server_time(
    db: tuple[Path, TickArray], tmp_path: Path
) -> None:
    path, utc = db
    out = tmp_path / "a.csv"
    # 07:00–07:30 server time is 04:00–04:30 UTC (GMT+3 before the switch).
    common = ["export", "ticks", "--symbol", "BTCUSD", "--db", str(path), "--digits", "2"]
    span = ["--from", "2024-11-03T07:00:00", "--to", "2024.11.03 07:30"]
    # The zone of the terminal that captures the symbol, from the settings.
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps(
            {
                "terminals": [
                    {"name": "athens", "symbols": ["BTCUSD"], "server_time_zone": "Europe/Athens"}
                ]
            }
        )
    )
    # Three independent exports, started together.
    result, athens, bad = run_clis(
        [*common, *span, "--out", str(out)],
        [*common, "--config", str(settings), "--out", str(tmp_path / "b.csv")],
        [*common, "--server-time-zone", "Mars/Olympus", "--out", str(tmp_path / "c")],
    )
    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("server time: ny-close (no configured terminal captures BTCUSD)")
    lo, hi = UTC_FROM + 3_600_000, UTC_FROM + 5_400_000
    want = utc[(utc["time_msc"] >= lo) & (utc["time_msc"] < hi)]
    assert np.array_equal(read_ticks(out).data["time_msc"], ref_server_ms(want["time_msc"]))
    assert athens.returncode == 0, athens.stderr
    assert athens.stderr.splitlines()[0].startswith(
        "server time: Europe/Athens (terminal 'athens')"
    )
    # Bad input: one line, exit 2.
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert "unknown" in bad.stderr
