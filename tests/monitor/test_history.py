"""SeriesHistory: slot means, fixed memory, 1 min consistent with 1 s, CSV/JSON round trips."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from app.clock import ManualClock
from app.monitor.history import SeriesHistory, Table, read_csv, read_json

T0 = 1_700_000_040.0  # on a minute boundary


def test_values_in_one_slot_are_averaged_and_stamped_with_the_slot_start() -> None:
    h = SeriesHistory()
    h.record("ticks_per_s", 10.0, T0 + 0.1)
    h.record("ticks_per_s", 20.0, T0 + 0.5)
    h.record("ticks_per_s", 60.0, T0 + 0.999)
    h.record("ticks_per_s", 5.0, T0 + 1.0)
    times, values = h.series("ticks_per_s")
    assert times.tolist() == [T0, T0 + 1]
    assert values.tolist() == [30.0, 5.0]
    times, values = h.series("ticks_per_s", 60)
    assert times.tolist() == [T0]
    assert values.tolist() == [95.0 / 4]
    h.record("ticks_per_s", 7.0, T0 + 1.5)  # after a read, the slot still takes values
    assert h.series("ticks_per_s")[1].tolist() == [30.0, 6.0]
    h.record("ticks_per_s", math.nan, T0 + 1.6)  # ignored
    assert h.series("ticks_per_s")[1].tolist() == [30.0, 6.0]


def test_time_defaults_to_the_clock() -> None:
    clock = ManualClock(start=T0)
    h = SeriesHistory(clock=clock)
    h.record("cpu", 1.0)
    clock.advance(2.5)
    h.record("cpu", 3.0)
    assert h.series("cpu")[0].tolist() == [T0, T0 + 2]


def test_gaps_are_absent_or_nan_when_dense() -> None:
    h = SeriesHistory()
    for dt, v in [(0, 1.0), (1, 2.0), (4, 5.0)]:
        h.record("q", v, T0 + dt)
    times, values = h.series("q")
    assert times.tolist() == [T0, T0 + 1, T0 + 4]
    times, values = h.series("q", dense=True)
    assert times.tolist() == [T0 + i for i in range(5)]
    assert values.tolist()[:2] == [1.0, 2.0]
    assert np.isnan(values[2:4]).all()
    assert values[4] == 5.0


def test_late_values_join_their_slot_while_it_is_kept() -> None:
    h = SeriesHistory(((1, 10),))
    h.record("x", 1.0, T0)
    h.record("x", 9.0, T0 + 5)
    h.record("x", 3.0, T0 + 0.5)  # late, same slot as the first: averaged in
    h.record("x", 4.0, T0 + 2)  # late, empty slot: filled
    h.record("x", 100.0, T0 - 20)  # older than the ring reaches: dropped
    times, values = h.series("x")
    assert times.tolist() == [T0, T0 + 2, T0 + 5]
    assert values.tolist() == [2.0, 4.0, 9.0]


def test_memory_is_fixed_however_long_it_runs() -> None:
    h = SeriesHistory()
    h.record("a", 0.0, T0)
    h.record("b", 0.0, T0)
    size = h.nbytes
    # Two rings of 3600 and 1440 slots: slot id, sum and count per slot.
    assert size == 2 * (3600 + 1440) * (8 + 8 + 4)
    rng = np.random.default_rng(1)
    for i, v in enumerate(rng.random(3 * 86_400 // 7).tolist()):  # three days, a point/7 s
        t = T0 + i * 7
        h.record("a", v, t)
        h.record("b", -v, t)
    assert h.nbytes == size
    times, _ = h.series("a")
    assert len(times) <= 3600
    assert times[-1] - times[0] < 3600  # only the last hour at 1 s
    times, _ = h.series("a", 60)
    assert len(times) == 1440  # a point every 7 s reaches every minute
    assert times[-1] - times[0] == (1440 - 1) * 60


def test_the_horizon_is_shared_so_a_stale_series_ages_out() -> None:
    h = SeriesHistory(((1, 60),))
    h.record("stale", 1.0, T0)
    h.record("live", 1.0, T0)
    h.record("live", 2.0, T0 + 59)
    assert h.series("stale")[0].tolist() == [T0]
    h.record("live", 3.0, T0 + 60)  # "stale"'s point is now out of the 60 s horizon
    assert h.series("stale")[0].size == 0
    assert h.series("live")[1].tolist() == [2.0, 3.0]


def test_one_minute_series_is_consistent_with_the_one_second_series() -> None:
    h = SeriesHistory()
    rng = np.random.default_rng(7)
    t = T0 + 13.0  # start mid-minute: the first minute is partial
    end = T0 + 45 * 60
    while t < end:  # irregular sampling, several points in some seconds, none in others
        h.record("rate", float(rng.normal(100, 15)), t)
        t += float(rng.exponential(0.7))
    sec_t, sec_v = h.series("rate", 1)
    min_t, min_v = h.series("rate", 60)
    # Recover per-second sums and counts from a second pass of the same records.
    replay = SeriesHistory(((1, 3600),))
    rng = np.random.default_rng(7)
    counts: dict[float, int] = {}
    t = T0 + 13.0
    while t < end:
        replay.record("rate", float(rng.normal(100, 15)), t)
        second = math.floor(t)
        counts[second] = counts.get(second, 0) + 1
        t += float(rng.exponential(0.7))
    assert replay.series("rate")[1].tolist() == sec_v.tolist()
    weights = np.array([counts[s] for s in sec_t.tolist()])
    minute_of = np.floor(sec_t / 60) * 60
    assert min_t.tolist() == np.unique(minute_of).tolist()
    for m, value in zip(min_t.tolist(), min_v.tolist(), strict=True):
        inside = minute_of == m
        expected = np.sum(sec_v[inside] * weights[inside]) / np.sum(weights[inside])
        assert value == pytest.approx(expected, rel=1e-12)


def test_one_point_a_second_makes_each_minute_the_mean_of_its_seconds() -> None:
    h = SeriesHistory()
    values = np.arange(180, dtype=np.float64) ** 1.5
    for i, v in enumerate(values.tolist()):
        h.record("p99", v, T0 + i)
    _, per_minute = h.series("p99", 60)
    assert per_minute == pytest.approx(values.reshape(3, 60).mean(axis=1), rel=1e-12)


def _filled() -> SeriesHistory:
    h = SeriesHistory()
    for i in range(300):
        t = T0 + i
        h.record("ticks/s", 1000.0 + i / 3, t)  # not a short decimal: repr must round-trip
        if i % 3 == 0:
            h.record("p99 latency, s", 0.001 * (1 + i % 7) / 3, t)  # comma in the name
        if 100 <= i < 110:
            h.record("queue", float(i), t)
    return h


def _assert_tables_equal(got: Table, want: Table) -> None:
    got_t, got_cols = got
    want_t, want_cols = want
    assert got_t.tolist() == want_t.tolist()
    assert list(got_cols) == list(want_cols)
    for name in want_cols:
        np.testing.assert_array_equal(got_cols[name], want_cols[name])  # NaN == NaN here


def test_csv_round_trip(tmp_path: Path) -> None:
    h = _filled()
    path = tmp_path / "history.csv"
    h.to_csv(path)
    _assert_tables_equal(read_csv(path), h.table())
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == 'time,ticks/s,"p99 latency, s",queue'
    assert len(lines) == 301
    assert lines[2].endswith(",,")  # a gap is an empty cell
    # An open file works too, and names pick and order the columns.
    buffer = io.StringIO()
    h.to_csv(buffer, names=["queue", "ticks/s"], resolution=60)
    buffer.seek(0)
    times, columns = read_csv(buffer)
    assert list(columns) == ["queue", "ticks/s"]
    assert times.tolist() == h.series("ticks/s", 60)[0].tolist()
    assert columns["ticks/s"].tolist() == h.series("ticks/s", 60)[1].tolist()


def test_json_round_trip(tmp_path: Path) -> None:
    h = _filled()
    path = tmp_path / "history.json"
    h.to_json(path)
    _assert_tables_equal(read_json(path), h.table())
    document = json.loads(path.read_text(encoding="utf-8"))  # plain JSON: no NaN tokens
    assert document["resolution"] == 1.0
    assert document["series"]["queue"][0] is None
    buffer = io.StringIO()
    h.to_json(buffer, names=["queue"], resolution=60)
    buffer.seek(0)
    _assert_tables_equal(read_json(buffer), h.table(["queue"], 60))


def test_names_errors_and_clear() -> None:
    h = SeriesHistory()
    h.record("b", 1.0, T0)
    h.record("a", 1.0, T0)
    assert h.names() == ["b", "a"]
    assert "a" in h
    assert len(h) == 2
    with pytest.raises(KeyError):
        h.series("c")
    with pytest.raises(ValueError, match="resolution"):
        h.series("a", 5)
    h.clear()
    assert h.names() == []
    assert h.nbytes == 0
    times, columns = h.table()
    assert times.size == 0
    assert columns == {}
    with pytest.raises(ValueError, match="repeat"):
        SeriesHistory(((1, 10), (1, 20)))
    with pytest.raises(ValueError, match="bad resolution"):
        SeriesHistory(((0, 10),))
