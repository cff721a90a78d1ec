"""History backfill: gaps from recorded spans, exact edges, cancel and resume, splice."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import numpy as np
import pytest

from app.clock import ManualClock
from app.collector import M1, M5, Collector, SequencedBatch
from app.config import ClientConfig
from app.config.schema import BackfillConfig
from app.connector import WorkerState
from app.connector.backfill import Backfill, BackfillState, BackfillTarget, format_progress
from app.connector.coverage import Span, SpanBook, find_gaps, merge_spans
from app.connector.history_sources import ApiHistory, HistorySource
from app.runtime import Runtime
from app.security.secret import Secret
from app.server.store import TickStore
from app.terminal.market import DEFAULT_PROFILES, Market
from app.terminal.simulated import SimulatedTerminal
from app.terminal.spec import TerminalSpec
from app.ticks import TickArray, TickBatch
from tests.conftest import wait_until
from tests.integration.test_delivery import Ports
from tests.server.conftest import ADMIN_KEY

RATE = 1_500.0  # high enough that many ticks share a millisecond
T0 = 1_700_000_000_000


def test_spans_merge_when_they_touch_and_gaps_lie_between() -> None:
    a = Span((100, 0), (200, 2))
    b = Span((200, 2), (300, 0))  # starts exactly where a ends: adjacent
    c = Span((400, 0), (500, 1))
    assert merge_spans([c, b, a, Span((50, 0), (50, 0))]) == [Span((100, 0), (300, 0)), c]
    assert find_gaps([a, c], (700, 0), floor_msc=0) == [
        Span((200, 2), (400, 0)),
        Span((500, 1), (700, 0)),
    ]
    assert find_gaps([a], (700, 0), floor_msc=600) == [Span((600, 0), (700, 0))]
    assert find_gaps([], (700, 0), floor_msc=0) == []  # nothing before: nothing missed
    assert find_gaps([Span((100, 0), (800, 0))], (700, 0), floor_msc=0) == []


def test_span_book_survives_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "spans.json"
    path.write_text("{not json")
    book = SpanBook(path)
    assert book.previous("t/EURUSD") == []
    book.record("t/EURUSD", "live", Span((1, 0), (5, 1)))
    book.save()
    assert SpanBook(path).previous("t/EURUSD") == [Span((1, 0), (5, 1))]


def _all_ticks(seconds: int) -> TickArray:
    return Market(3, DEFAULT_PROFILES, {"EURUSD": RATE}).ticks_range(
        "EURUSD", T0, T0 + seconds * 1000
    )


def _end_cursor(ticks: TickArray, i: int) -> tuple[int, int]:
    """The end cursor after capturing ``ticks[: i + 1]``: last ms and how many at it."""
    t = int(ticks["time_msc"][i])
    return t, i + 1 - int(np.searchsorted(ticks["time_msc"], t, side="left"))


class Recorder:
    def __init__(self, collector: Collector) -> None:
        self.history: list[TickArray] = []
        collector.subscribe(self.on_batch)

    def on_batch(self, item: SequencedBatch) -> None:
        if item.history:
            self.history.append(item.batch.ticks)

    def ticks(self) -> TickArray:
        return np.concatenate(self.history)


def _setup(tmp_path: Path, ticks: TickArray) -> tuple[int, tuple[int, int], int]:
    """A previous run that ended inside a millisecond shared by several ticks; returns
    the index of its last tick, its end cursor and where this run's live capture begins."""
    tm = ticks["time_msc"]
    shared = np.flatnonzero(tm[1:] == tm[:-1])
    i = int(shared[len(shared) // 5])  # ticks i and i + 1 share a millisecond
    end = _end_cursor(ticks, i)
    assert end[1] >= 1
    assert tm[i + 1] == end[0]  # the next tick is at the same ms: the edge is exact or not
    live_ms = int(tm[int(len(tm) * 0.8)])  # live starts at a ms that also has ticks
    book = SpanBook(tmp_path / "spans.json")
    book.record("sim/EURUSD", "live", Span((T0, 0), end))
    book.save()
    return i, end, live_ms


def _backfill(
    tmp_path: Path, collector: Collector, source: HistorySource, live_ms: int
) -> Backfill:
    config = BackfillConfig(chunk_minutes=1, state_file=tmp_path / "spans.json")
    return Backfill(
        config, collector, clock=ManualClock(live_ms / 1000 + 5), sources=lambda spec: source
    )


async def test_a_gap_is_filled_with_no_hole_and_no_duplicate_at_either_edge(
    tmp_path: Path,
) -> None:
    ticks = _all_ticks(200)
    i, end, live_ms = _setup(tmp_path, ticks)
    tm = ticks["time_msc"]
    live_from = int(np.searchsorted(tm, live_ms, side="left"))
    collector = Collector(10_000_000, (M1, M5), bar_history=100_000)
    recorder = Recorder(collector)
    # Live capture is already running when the backfill starts.
    collector.ingest(TickBatch("EURUSD", ticks[live_from : live_from + 5_000]))
    term = SimulatedTerminal(3, rates={"EURUSD": RATE})
    assert term.initialize()
    backfill = _backfill(tmp_path, collector, ApiHistory(term, term.server_time_zone), live_ms)
    target = BackfillTarget(TerminalSpec(name="sim"), "EURUSD", (live_ms, 0))
    await backfill.start([target], lambda: {"EURUSD": _end_cursor(ticks, live_from + 4_999)})
    await backfill.wait()
    (progress,) = backfill.progress()
    assert progress.state is BackfillState.DONE
    assert (progress.start_msc, progress.end_msc, progress.fraction) == (end[0], live_ms, 1.0)
    assert progress.ticks == live_from - (i + 1)
    assert np.array_equal(recorder.ticks(), ticks[i + 1 : live_from])
    # More live ticks after the splice: the cache and bars are those of one pass.
    collector.ingest(TickBatch("EURUSD", ticks[live_from + 5_000 :]))
    assert np.array_equal(collector.cache.snapshot("EURUSD"), ticks[i + 1 :])
    one_pass = Collector(10_000_000, (M1, M5), bar_history=100_000)
    one_pass.ingest(TickBatch("EURUSD", ticks[i + 1 :]))
    for tf in (M1, M5):
        assert np.array_equal(collector.bars("EURUSD", tf), one_pass.bars("EURUSD", tf))
    assert collector.stats.history_ticks == progress.ticks
    await backfill.stop()
    # The saved spans now join the previous run to this one: no gap remains.
    book = SpanBook(tmp_path / "spans.json")
    assert find_gaps(book.previous("sim/EURUSD"), (live_ms, 0), 0) == []


class Gated:
    """Answers the first ``free`` requests, then waits until released."""

    def __init__(self, inner: HistorySource, free: int) -> None:
        self.inner = inner
        self.free = free
        self.calls = 0
        self.release = asyncio.Event()
        self.blocked = asyncio.Event()

    async def fetch(self, symbol: str, from_s: int, to_s: int) -> TickArray:
        self.calls += 1
        if self.calls > self.free:
            self.blocked.set()
            await self.release.wait()
        return await self.inner.fetch(symbol, from_s, to_s)

    async def close(self) -> None:
        return None


async def test_cancelled_backfill_resumes_where_it_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ticks = _all_ticks(200)
    i, _, live_ms = _setup(tmp_path, ticks)
    live_from = int(np.searchsorted(ticks["time_msc"], live_ms, side="left"))
    term = SimulatedTerminal(3, rates={"EURUSD": RATE})
    assert term.initialize()
    target = BackfillTarget(TerminalSpec(name="sim"), "EURUSD", (live_ms, 0))

    first = Collector(10_000_000)
    rec1 = Recorder(first)
    gated = Gated(ApiHistory(term, term.server_time_zone), free=1)
    backfill = _backfill(tmp_path, first, gated, live_ms)
    await backfill.start([target], lambda: {"EURUSD": (live_ms, 0)})
    await asyncio.wait_for(gated.blocked.wait(), 30)
    assert backfill.progress()[0].state is BackfillState.RUNNING
    assert "EURUSD" in (format_progress(backfill.progress()) or "")
    backfill.cancel()
    with caplog.at_level(logging.WARNING, logger="app.connector.backfill"):
        await backfill.stop()
    (p,) = backfill.progress()
    assert p.state is BackfillState.CANCELLED
    assert "stopping before the history backfill finished (EURUSD " in caplog.text
    assert 0 < p.ticks < live_from - (i + 1)

    second = Collector(10_000_000)
    rec2 = Recorder(second)
    again = _backfill(tmp_path, second, ApiHistory(term, term.server_time_zone), live_ms)
    await again.start([target], lambda: {"EURUSD": (live_ms, 0)})
    await again.wait()
    assert again.progress()[0].state is BackfillState.DONE
    both = np.concatenate((rec1.ticks(), rec2.ticks()))
    assert np.array_equal(both, ticks[i + 1 : live_from])
    await again.stop()


async def test_a_failing_terminal_marks_the_job_failed(tmp_path: Path) -> None:
    ticks = _all_ticks(30)
    _, _, live_ms = _setup(tmp_path, ticks)
    term = SimulatedTerminal(3, rates={"EURUSD": RATE})  # never initialised: every call fails
    collector = Collector(1_000)
    backfill = _backfill(tmp_path, collector, ApiHistory(term, term.server_time_zone), live_ms)
    backfill._policy = backfill._policy.__class__(0.001, 0.002)
    target = BackfillTarget(TerminalSpec(name="sim"), "EURUSD", (live_ms, 0))
    await backfill.start([target], dict)
    await backfill.wait()
    (p,) = backfill.progress()
    assert p.state is BackfillState.FAILED
    assert "No IPC connection" in p.error
    assert "FAILED" in (format_progress([p]) or "")
    await backfill.stop()


# ----------------------------------------------------------------------- end to end


@pytest.mark.slow
async def test_restart_backfills_the_gap_into_the_backend_exactly(tmp_path: Path) -> None:
    """Run, stop, run again a few seconds later: the backend holds every tick from the
    first start to the second stop once, across both sessions, fetched by a real
    history process."""
    ports = Ports()
    rates = {"EURUSD": 400.0, "XAUUSD": 300.0}
    config = ports.config(tmp_path, rates)
    data = config.model_dump()
    data["backfill"]["state_file"] = str(tmp_path / "spans.json")
    config = ClientConfig.model_validate(data)
    async with ports.backend(tmp_path / "bridge.sqlite"):
        first_start = int(time.time() * 1000)
        rt = Runtime(config, start_msc=first_start, credential=Secret(ADMIN_KEY))
        await rt.start()
        await wait_until(lambda: rt.collector.stats.ticks_total > 2_000, 60, "first run ticks")
        await rt.stop()
        await asyncio.sleep(1.5)  # the outage to be backfilled (ticks keep coming)
        rt2 = Runtime(config, credential=Secret(ADMIN_KEY))
        await rt2.start()
        await wait_until(lambda: not rt2.backfill.active, 60, "backfill to finish")
        await wait_until(
            lambda: (
                all(w.state is WorkerState.STREAMING for w in rt2.pool.health())
                and rt2.collector.stats.ticks_total > rt2.collector.stats.history_ticks + 500
            ),
            60,
            "live ticks in the second run",
        )
        await rt2.stop()
        assert [p.state for p in rt2.backfill.progress()] == [BackfillState.DONE] * 2
        assert rt2.collector.stats.history_ticks > 0
    store = TickStore(tmp_path / "bridge.sqlite")
    try:
        market = Market(11, DEFAULT_PROFILES, rates)
        for sym in rates:
            got = store.read_ticks(client_id="test-desk", symbol=sym)
            got = got[np.argsort(got["time_msc"], kind="stable")]
            expected = market.ticks_range(sym, first_start, int(got["time_msc"][-1]) + 1)
            assert len(got) == len(expected), f"{sym}: {len(got)} stored, {len(expected)} expected"
            assert np.array_equal(got["time_msc"], expected["time_msc"])
            # Ticks at one millisecond may come from two sessions; compare as sets per ms.
            assert sorted(t.tobytes() for t in got) == sorted(t.tobytes() for t in expected)
    finally:
        store.close()
