"""DayBook: each symbol's day at the server's midnight, from the collector's batches in any
order (the backfill's history arrives after the live ticks), checked against the
simulated market's own ticks with midnight written as plain UTC arithmetic."""

from __future__ import annotations

import datetime as dt

import numpy as np

from app.collector import Collector
from app.daystats import DayBook, DayStats
from app.servertime import NY_CLOSE
from app.terminal.market import DEFAULT_PROFILES, Market
from app.ticks import TICK_DTYPE, TickArray, TickBatch
from app.zones import ServerZones

SEED = 5


def utc_ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp()) * 1000  # type: ignore[misc]


def truth(ticks: TickArray, midnight_ms: int) -> tuple[float, float, float, float]:
    """(high, low, open, previous close) of the day opening at ``midnight_ms``."""
    t = ticks["time_msc"]
    today, before = ticks[t >= midnight_ms], ticks[t < midnight_ms]
    return (
        float(today["bid"].max()),
        float(today["bid"].min()),
        float(today["bid"][0]),
        float(before["bid"][-1]),
    )


def test_history_after_live_gives_the_day_of_one_in_order_pass() -> None:
    # Summer: a ny-close server's midnight is 21:00 UTC.
    midnight = utc_ms(2026, 7, 8, 21)
    start, now = midnight - 2 * 3_600_000, midnight + 3_600_000
    market = Market(SEED, DEFAULT_PROFILES)
    ticks = market.ticks_range("EURUSD", start, now)
    zones = ServerZones([("sim", NY_CLOSE, ["EURUSD"])])
    collector = Collector(len(ticks) + 10, zones=zones)
    book = DayBook(collector, zones.zone, lambda: zones.version)
    collector.subscribe(book.on_batch)

    # Live capture started 30 minutes before midnight: the day is not known yet...
    live_from = midnight - 30 * 60_000
    live = ticks[ticks["time_msc"] >= live_from]
    collector.ingest(TickBatch("EURUSD", live[live["time_msc"] < midnight - 60_000]))
    early = book.figures("EURUSD")
    assert early is not None
    assert not early.known
    assert early.high is None
    assert early.change_pct is None
    collector.ingest(TickBatch("EURUSD", live[live["time_msc"] >= midnight - 60_000]))
    # ... and after midnight it is: the last bid before midnight was seen live.
    figures = book.figures("EURUSD")
    assert figures is not None
    assert figures.known
    assert (figures.high, figures.low, figures.open, figures.prev_close) == truth(ticks, midnight)

    # The backfill's older history arrives afterwards, in chunks: nothing changes but
    # "pending" until it is put in front of the cache.
    history = ticks[ticks["time_msc"] < live_from]
    for chunk in np.array_split(history, 3):
        collector.ingest_history(TickBatch("EURUSD", chunk))
    pending = book.figures("EURUSD")
    assert pending is not None
    assert pending.pending
    collector.finish_history("EURUSD")
    final = book.figures("EURUSD")
    assert final is not None
    assert not final.pending
    assert (final.high, final.low, final.open, final.prev_close) == truth(ticks, midnight)
    bid = float(ticks["bid"][-1])
    assert final.change_pct == (bid - final.prev_close) / final.prev_close * 100  # type: ignore[operator]


def test_unknown_zone_has_no_day_and_a_reported_zone_rebuilds_from_the_cache() -> None:
    midnight = utc_ms(2026, 1, 14, 22)  # winter: 22:00 UTC
    ticks = Market(SEED, DEFAULT_PROFILES).ticks_range(
        "XAUUSD", midnight - 600_000, midnight + 600_000
    )
    zones = ServerZones([("real", None, ["XAUUSD"])])  # a real terminal, detecting
    collector = Collector(len(ticks) + 10, zones=zones)
    book = DayBook(collector, zones.zone, lambda: zones.version)
    collector.subscribe(book.on_batch)
    collector.ingest(TickBatch("XAUUSD", ticks))
    assert book.figures("XAUUSD") is None  # no midnight to cut at yet
    assert zones.report("real", {"server_time_zone": "ny-close"})
    figures = book.figures("XAUUSD")
    assert figures is not None
    assert figures.known
    assert figures.day_start_ms == midnight
    assert (figures.high, figures.low, figures.open, figures.prev_close) == truth(ticks, midnight)


def test_a_new_server_day_takes_the_last_bid_as_previous_close() -> None:
    first = utc_ms(2026, 1, 13, 22)
    ticks = Market(SEED, DEFAULT_PROFILES, {"BTCUSD": 1.0}).ticks_range(
        "BTCUSD", first - 60_000, first + 86_400_000 + 60_000
    )
    stats = DayStats(NY_CLOSE)
    for part in np.array_split(ticks, 50):  # in order, across two midnights
        stats.update(part)
    figures = stats.figures()
    assert figures is not None
    assert figures.day_start_ms == first + 86_400_000
    assert (figures.high, figures.low, figures.open, figures.prev_close) == truth(
        ticks, first + 86_400_000
    )


def test_the_cached_day_is_the_zones_own_midnight_across_dst_switches() -> None:
    # The fold keeps the server day it last looked up and reuses it for every tick inside
    # it; across both ny-close switches (23 h and 25 h days in UTC) each stamp must still
    # get the midnight the zone itself computes.
    stats = DayStats(NY_CLOSE)
    rng = np.random.default_rng(SEED)
    for start in (utc_ms(2026, 3, 6), utc_ms(2026, 10, 30)):
        stamps = np.sort(start + rng.integers(0, 6 * 86_400_000, 2_000))
        for at in stamps:
            want = NY_CLOSE.server_midnight_utc_s(int(at) // 1000) * 1000
            assert stats._midnight_ms(int(at)) == want
        for at in stamps[::-1][:200]:  # going back in time too (history after live)
            want = NY_CLOSE.server_midnight_utc_s(int(at) // 1000) * 1000
            assert stats._midnight_ms(int(at)) == want


def test_batches_in_any_order_and_size_give_the_figures_of_one_sorted_pass() -> None:
    # The fold's short cut (a batch wholly inside today, in time order) and its general
    # path must agree: random cuts of ticks across a server midnight, fed in order, in
    # reverse and shuffled, against the whole array folded at once.
    midnight = utc_ms(2026, 7, 8, 21)
    rng = np.random.default_rng(SEED)
    ticks = np.zeros(3_000, dtype=TICK_DTYPE)
    ticks["time_msc"] = np.sort(midnight - 3_600_000 + rng.integers(0, 7_200_000, 3_000))
    ticks["bid"] = 1.1 + rng.normal(0, 0.001, 3_000)
    whole = DayStats(NY_CLOSE)
    whole.update(ticks)
    cuts = np.sort(rng.choice(np.arange(1, 3_000), 60, replace=False))
    parts = np.split(ticks, cuts)
    for order in (parts, parts[::-1], [parts[i] for i in rng.permutation(len(parts))]):
        stats = DayStats(NY_CLOSE)
        for part in order:
            stats.update(part)
        assert stats.figures() == whole.figures()
