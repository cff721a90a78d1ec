"""Bars open where MT5 opens them: at the server's boundaries, kept in UTC.

The truth here is computed independently of app.servertime and app.timeframes: one
Python datetime per tick, New York's daylight saving from zoneinfo (ny-close is GMT+3
while New York is on summer time, else GMT+2), and the server boundary mapped back to
UTC by trying both offsets.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pytest

from app.collector import Collector
from app.collector.bars import H1, M1, BarAggregator
from app.servertime import NY_CLOSE, UTC_ZONE, parse_server_time_zone
from app.ticks import TickBatch
from app.timeframes import D1, MN1, TIMEFRAMES, W1, bar_end_utc_ms, bar_starts_utc_ms
from app.zones import ServerZones

from .ticks_factory import ticks_at

NY = zoneinfo.ZoneInfo("America/New_York")
H4 = TIMEFRAMES["H4"]
HOUR = 3_600_000


def ref_offset_s(utc_s: int) -> int:
    ny = dt.datetime.fromtimestamp(utc_s, dt.UTC).astimezone(NY)
    return 3 * 3600 if ny.dst() else 2 * 3600


def ref_start_ms(utc_ms: int, tf: int) -> int:
    s = utc_ms // 1000
    server = dt.datetime.fromtimestamp(s + ref_offset_s(s), dt.UTC).replace(tzinfo=None)
    day = server.replace(hour=0, minute=0, second=0, microsecond=0)
    if tf == H4:
        b = day.replace(hour=server.hour // 4 * 4)
    elif tf == D1:
        b = day
    elif tf == W1:
        b = day - dt.timedelta(days=(server.weekday() + 1) % 7)  # back to Sunday
    elif tf == MN1:
        b = day.replace(day=1)
    else:
        raise AssertionError(tf)
    naive = int(b.replace(tzinfo=dt.UTC).timestamp())
    candidates = [naive - off for off in (3 * 3600, 2 * 3600) if ref_offset_s(naive - off) == off]
    return min(candidates) * 1000


def year_of_ticks(rng: np.random.Generator) -> np.ndarray:
    """Times over 2024 with a dense stretch around both US switches (10 Mar, 3 Nov)."""
    start = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    end = int(dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    spread = rng.integers(start, end, 3000)
    dense = []
    for switch in ((2024, 3, 10, 7), (2024, 11, 3, 6)):
        at = int(dt.datetime(*switch, tzinfo=dt.UTC).timestamp() * 1000)
        dense.append(rng.integers(at - 30 * HOUR, at + 30 * HOUR, 1500))
    return np.sort(np.concatenate([spread, *dense])).astype(np.int64)


@pytest.mark.parametrize("tf", [H4, D1, W1, MN1], ids=["H4", "D1", "W1", "MN1"])
def test_bar_opens_are_server_boundaries_in_utc(tf: int) -> None:
    times = year_of_ticks(np.random.default_rng(tf % 1000))
    got = bar_starts_utc_ms(times, tf, NY_CLOSE)
    want = np.array([ref_start_ms(int(t), tf) for t in times], np.int64)
    assert np.array_equal(got, want)
    # And the aggregator, fed in uneven batches, opens exactly those bars.
    agg = BarAggregator(tf, history=100_000, zone=NY_CLOSE)
    ticks = ticks_at(times.tolist())
    for lo, hi in zip([0, 7, 500, 2100, 4000], [7, 500, 2100, 4000, len(ticks)], strict=True):
        agg.update(ticks[lo:hi])
    bars = agg.all()
    assert agg.late_dropped == 0
    assert bars["time_msc"].tolist() == sorted(set(want.tolist()))
    assert int(bars["tick_count"].sum()) == len(ticks)


def test_d1_opens_at_server_midnight_winter_and_summer() -> None:
    winter = int(dt.datetime(2024, 1, 17, 12, tzinfo=dt.UTC).timestamp() * 1000)
    summer = int(dt.datetime(2024, 7, 17, 12, tzinfo=dt.UTC).timestamp() * 1000)
    starts = bar_starts_utc_ms(np.array([winter, summer], np.int64), D1, NY_CLOSE)
    assert starts[0] == winter - 14 * HOUR  # 22:00 UTC the day before (GMT+2)
    assert starts[1] == summer - 15 * HOUR  # 21:00 UTC the day before (GMT+3)


def test_d1_bars_holding_a_switch_last_23_and_25_hours() -> None:
    spring = int(dt.datetime(2024, 3, 10, 12, tzinfo=dt.UTC).timestamp() * 1000)
    autumn = int(dt.datetime(2024, 11, 3, 12, tzinfo=dt.UTC).timestamp() * 1000)
    for at, hours in ((spring, 23), (autumn, 25)):
        start = int(bar_starts_utc_ms(np.array([at], np.int64), D1, NY_CLOSE)[0])
        assert bar_end_utc_ms(start, D1, NY_CLOSE) - start == hours * HOUR
        assert ref_start_ms(start + hours * HOUR, D1) == start + hours * HOUR


def test_w1_opens_on_sunday_server_time() -> None:
    wednesday = int(dt.datetime(2024, 7, 17, 12, tzinfo=dt.UTC).timestamp() * 1000)
    start = int(bar_starts_utc_ms(np.array([wednesday], np.int64), W1, NY_CLOSE)[0])
    server = dt.datetime.fromtimestamp(start / 1000 + 3 * 3600, dt.UTC)
    assert (server.weekday(), server.hour, server.minute) == (6, 0, 0)  # Sunday 00:00


def test_short_bars_and_whole_hour_offsets_stay_plain_utc() -> None:
    times = year_of_ticks(np.random.default_rng(5))
    for tf in (M1, 5 * M1, 15 * M1, H1):
        assert np.array_equal(bar_starts_utc_ms(times, tf, NY_CLOSE), times - times % tf)
    # A half-hour server (+05:30) moves H1 bars by half an hour, not M15 ones.
    india = parse_server_time_zone("+05:30")
    assert np.array_equal(bar_starts_utc_ms(times, H1, india), times - (times - 1800_000) % H1)
    assert np.array_equal(bar_starts_utc_ms(times, 15 * M1, india), times - times % (15 * M1))


def test_a_zone_reported_later_moves_the_next_bars_and_drops_nothing() -> None:
    zones = ServerZones([("real", None, ["EURUSD"])])
    collector = Collector(1000, bar_timeframes_ms=(M1, D1), zones=zones)
    day = int(dt.datetime(2024, 1, 17, tzinfo=dt.UTC).timestamp() * 1000)
    first = ticks_at([day + 20 * HOUR, day + 21 * HOUR])
    collector.ingest(TickBatch("EURUSD", first))
    assert collector.bars("EURUSD", D1)["time_msc"].tolist() == [day]  # UTC while unknown
    assert zones.report("real", {"server_time_zone": "+02:00", "server_offset_s": 7200})
    # 23:00 UTC is server 01:00 of the next day: a new D1 bar opened at 22:00 UTC; the
    # tick at 21:30 UTC (in the open UTC day, before the new boundary) is not late.
    later = ticks_at([day + 21 * HOUR + 1800_000, day + 23 * HOUR])
    collector.ingest(TickBatch("EURUSD", later))
    bars = collector.bars("EURUSD", D1)
    assert bars["time_msc"].tolist() == [day, day + 22 * HOUR]
    assert bars["tick_count"].tolist() == [3, 1]
    assert collector.aggregator("EURUSD", D1).late_dropped == 0  # type: ignore[union-attr]
    assert zones.zone("EURUSD") == parse_server_time_zone("+02:00")
    assert not zones.report("real", {"server_time_zone": "+02:00"})  # no change
    assert not zones.report("real", {"server_time_zone": "not a zone"})


def test_zones_from_settings() -> None:
    zones = ServerZones(
        [("sim", NY_CLOSE, ["EURUSD", "XAUUSD"]), ("real", None, ["GBPUSD", "EURUSD"])]
    )
    assert zones.zone("EURUSD") is NY_CLOSE  # the first terminal capturing it
    assert zones.zone("GBPUSD") is None
    assert zones.zone_or_utc("GBPUSD") is UTC_ZONE
    assert zones.terminal_of("GBPUSD") == "real"
    assert zones.terminals() == {"sim": NY_CLOSE, "real": None}
