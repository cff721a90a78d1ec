"""Capture in UTC from terminals that stamp in server time, across both DST switches.

The worker runs in this process on a ManualClock with a real pipe and a real simulated
terminal (ny-close); the history backfill reads through the same adapter. Truth: the
market's own UTC history and switch instants written by hand (tests/test_servertime.py).
"""

from __future__ import annotations

import multiprocessing
from collections import defaultdict
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import pytest

from app.clock import ManualClock
from app.collector import M1, Collector, SequencedBatch
from app.config.schema import BackfillConfig
from app.connector import wire
from app.connector.backfill import Backfill, BackfillState, BackfillTarget
from app.connector.coverage import Span, SpanBook
from app.connector.history_sources import ApiHistory
from app.connector.server_clock import OffsetDetector, UtcTerminal, ticks_to_utc
from app.connector.worker import WorkerSpec, _Worker
from app.servertime import NY_CLOSE, parse_server_time_zone
from app.terminal import constants as c
from app.terminal.api import MT5Api
from app.terminal.export_files import write_ticks
from app.terminal.market import DEFAULT_PROFILES, Market
from app.terminal.replay import ReplayTerminal, plan_of_spec
from app.terminal.simulated import SimulatedTerminal
from app.terminal.spec import TerminalSpec
from app.ticks import TickArray, TickBatch, empty_ticks
from tests.test_servertime import US_AUTUMN, US_SPRING, utc_s

H = 3600
SEED = 9
STEP_S = 5.0


class Harness:
    """A worker on a manual clock, its pipe drained after every step."""

    def __init__(
        self,
        terminal: TerminalSpec,
        api: MT5Api,
        clock: ManualClock,
        symbols: tuple[str, ...],
        start_msc: int | None = None,
    ) -> None:
        self.clock = clock
        self.parent, child = multiprocessing.Pipe()
        # The start cursor: "now" in UTC unless given (a replay starts at its first tick).
        self.start_msc = int(clock.time() * 1000) if start_msc is None else start_msc
        cursors = dict.fromkeys(symbols, (self.start_msc, 0))
        spec = WorkerSpec(1, terminal, symbols, cursors, max_batch=2_000)
        self.worker = _Worker(spec, child, api, clock)
        self.batches: dict[str, list[TickBatch]] = defaultdict(list)
        self.statuses: list[wire.StatusMsg] = []

    def drain(self) -> None:
        conn: Connection = self.parent
        while conn.poll():
            msg = wire.decode(conn.recv_bytes())
            if isinstance(msg, TickBatch):
                self.batches[msg.symbol].append(msg)
            elif isinstance(msg, wire.StatusMsg):
                self.statuses.append(msg)

    def step(self) -> None:
        while self.worker.step():  # as run() does: again at once while answers are cut
            self.drain()
        self.drain()

    def run_until(self, until_s: float) -> None:
        while self.clock.time() < until_s:
            self.clock.advance(STEP_S)
            self.step()

    def ticks(self, symbol: str) -> TickArray:
        # (Empty for a symbol whose market is closed then, e.g. FX on a Sunday morning.)
        return np.concatenate([empty_ticks()] + [b.ticks for b in self.batches[symbol]])

    def zones(self) -> list[tuple[str, object]]:
        return [(s.state, s.info.get("server_time_zone")) for s in self.statuses]


def market(symbol: str, from_msc: int, to_msc: int) -> TickArray:
    return Market(SEED, DEFAULT_PROFILES).ticks_range(symbol, from_msc, to_msc)


def assert_captured_exactly(h: Harness, symbol: str) -> None:
    """Stored (UTC) stream == the market's own UTC history from start to now."""
    got = h.ticks(symbol)
    expected = market(symbol, h.start_msc, int(h.clock.time() * 1000) + 1)
    assert len(got) == len(expected), f"{symbol}: {len(got)} captured, {len(expected)} made"
    assert np.array_equal(got, expected), f"{symbol}: captured stream differs"
    # Latency as the monitor reads it (arrival minus tick time): seconds, not hours.
    for batch in h.batches[symbol]:
        age = batch.captured_at - int(batch.ticks["time_msc"][-1]) / 1000
        assert 0 <= age <= STEP_S + 0.001, age


@pytest.mark.parametrize(
    ("switch", "before", "after"), [(US_SPRING, 2 * H, 3 * H), (US_AUTUMN, 3 * H, 2 * H)]
)
def test_a_configured_ny_close_terminal_is_captured_exactly_across_a_switch(
    switch: int, before: int, after: int
) -> None:
    clock = ManualClock(switch - 300)
    api = SimulatedTerminal(SEED, clock=clock)  # ny-close by default
    h = Harness(TerminalSpec(), api, clock, ("BTCUSD",))  # 24/7: trades through the switch
    h.worker.connect()
    h.step()
    # (Not longer: in the repeated hour every poll re-reads the hour's first pass.)
    h.run_until(switch + 120)
    assert_captured_exactly(h, "BTCUSD")
    # The zone and its offset as the worker reports them: before, then after the switch.
    offsets = [s.info["server_offset_s"] for s in h.statuses if s.state == "streaming"]
    assert offsets == [before, after]
    assert {s.info["server_time_zone"] for s in h.statuses} == {"ny-close"}


def test_a_detected_ny_close_broker_is_followed_through_the_spring_switch() -> None:
    clock = ManualClock(US_SPRING - 300)
    api = SimulatedTerminal(SEED, clock=clock)  # stands in for a broker at ny-close
    h = Harness(TerminalSpec(name="broker", kind="mt5"), api, clock, ("BTCUSD", "EURUSD"))
    h.worker.connect()
    h.step()
    assert h.zones() == [("detecting", None)]
    assert not h.batches  # nothing is read with an unknown offset
    clock.advance(1.0)
    h.step()
    # +2 agrees with ny-close in winter: the rule is taken, not only today's offset.
    assert h.zones()[-1] == ("streaming", "ny-close")
    assert h.statuses[-1].info["server_offset_s"] == 2 * H
    h.run_until(US_SPRING + 300)
    offsets = [s.info["server_offset_s"] for s in h.statuses if s.state == "streaming"]
    assert offsets == [2 * H, 3 * H]  # the health follows the switch
    for symbol in ("BTCUSD", "EURUSD"):
        assert_captured_exactly(h, symbol)


def test_a_detected_ny_close_broker_is_followed_through_the_autumn_hour() -> None:
    clock = ManualClock(US_AUTUMN - 300)
    api = SimulatedTerminal(SEED, clock=clock)
    h = Harness(TerminalSpec(name="broker", kind="mt5"), api, clock, ("BTCUSD",))
    h.worker.connect()
    clock.advance(1.0)
    h.step()
    clock.advance(1.0)
    h.step()
    assert h.zones()[-1] == ("streaming", "ny-close")
    h.run_until(US_AUTUMN + 120)
    assert_captured_exactly(h, "BTCUSD")  # the repeated hour, read by the jump back


@pytest.mark.parametrize(
    ("lead_s", "how"),
    [
        # A poll across the US switch: read by the rule, the answer steps back an hour
        # (ny-close's spring gap): the ticks before it are kept, the zone detected again.
        (300, [("detecting", None), ("streaming", "+02:00")]),
        # The 60 s re-check falls first: the rule's +3 is reported, then +2 found and
        # taken as a fixed offset after one more round.
        (302, [("streaming", "ny-close"), ("streaming", "+02:00")]),
    ],
    ids=["step-back", "re-check"],
)
def test_a_broker_that_does_not_switch_on_us_dates_becomes_a_fixed_offset(
    lead_s: int, how: list[tuple[str, object]]
) -> None:
    """A broker on EU dates (Europe/Athens: +2 until the last Sunday of March) taken for
    ny-close in winter: at the US switch the rule is wrong for three weeks. It costs a
    minute of waiting and never a tick (read an hour early, they are older than the
    cursor and fetched again once the offset is right)."""
    clock = ManualClock(US_SPRING - lead_s)
    athens = parse_server_time_zone("Europe/Athens")
    api = SimulatedTerminal(SEED, clock=clock, server_time_zone=athens)
    h = Harness(TerminalSpec(name="broker", kind="mt5"), api, clock, ("BTCUSD", "EURUSD"))
    h.worker.connect()
    h.step()
    clock.advance(1.0)
    h.step()
    assert h.zones()[-1] == ("streaming", "ny-close")
    h.run_until(US_SPRING + 300)
    assert h.zones()[2:] == how
    if how[0][0] == "streaming":
        assert h.statuses[-1].info["server_time_zone_was"] == "ny-close"
    for symbol in ("BTCUSD", "EURUSD"):
        assert_captured_exactly(h, symbol)


def test_detection_needs_a_tick_seen_arriving() -> None:
    now = utc_s(2025, 7, 1) * 1000
    d = OffsetDetector()
    assert d.observe({"EURUSD": now + 3 * H * 1000 - 5_000}, now) is None  # first look
    assert d.observe({"EURUSD": now + 3 * H * 1000 - 5_000}, now + 1_000) is None  # quiet
    assert d.observe({"EURUSD": now + 3 * H * 1000 + 900}, now + 2_000) == 3 * H
    # A change seen only after a long pause proves nothing about the tick's age.
    assert d.observe({"EURUSD": now + 3 * H * 1000 + 9_000}, now + 200_000) is None
    # A "new" tick far from any quarter hour of the clock is not trusted.
    assert d.observe({"EURUSD": now + 3 * H * 1000 + 400_000}, now + 201_000) is None
    # A closed market: nothing changes, nothing is guessed.
    assert d.observe({}, now + 202_000) is None


def test_the_adapter_converts_both_ways_and_refuses_without_a_zone() -> None:
    clock = ManualClock(utc_s(2025, 7, 15, 12))
    api = SimulatedTerminal(SEED, clock=clock)
    assert api.initialize()
    utc = UtcTerminal(api, NY_CLOSE)
    now_s = int(clock.time())
    got = utc.copy_ticks_range("EURUSD", now_s - 30, now_s, c.COPY_TICKS_ALL)
    assert got is not None
    assert np.array_equal(got, market("EURUSD", (now_s - 30) * 1000, now_s * 1000 + 1))
    assert utc.last_stamps(["EURUSD"])["EURUSD"] == int(got["time_msc"][-1]) + 3 * H * 1000
    with pytest.raises(RuntimeError, match="not known"):
        UtcTerminal(api, None).copy_ticks_from("EURUSD", now_s, 10, c.COPY_TICKS_ALL)
    readonly = got.copy()
    readonly.flags.writeable = False
    assert (
        ticks_to_utc(readonly, parse_server_time_zone("+01:00"))["time"][0]
        == (int(got["time_msc"][0]) - H * 1000) // 1000
    )


class Recorder:
    def __init__(self, collector: Collector) -> None:
        self.history: list[TickArray] = []
        collector.subscribe(self.on_batch)

    def on_batch(self, item: SequencedBatch) -> None:
        self.history.append(item.batch.ticks)


@pytest.mark.parametrize("switch", [US_SPRING, US_AUTUMN], ids=["spring", "autumn"])
async def test_a_backfill_across_a_switch_has_no_hole_and_no_duplicate(
    tmp_path: Path, switch: int
) -> None:
    # The previous run ended 40 min before the switch; this one starts 40 min after.
    end, live = (switch - 2400) * 1000, (switch + 2400) * 1000
    book = SpanBook(tmp_path / "spans.json")
    book.record("sim/BTCUSD", "live", Span((end - 60_000, 0), (end, 0)))
    book.save()
    clock = ManualClock(live / 1000 + 5)
    term = SimulatedTerminal(SEED, clock=clock)
    assert term.initialize()
    collector = Collector(1_000_000, (M1,), bar_history=10_000)
    rec = Recorder(collector)
    config = BackfillConfig(chunk_minutes=7, state_file=tmp_path / "spans.json")
    backfill = Backfill(
        config, collector, clock=clock, sources=lambda spec: ApiHistory(term, NY_CLOSE)
    )
    target = BackfillTarget(TerminalSpec(name="sim"), "BTCUSD", (live, 0))
    await backfill.start([target], lambda: {"BTCUSD": (live, 0)})
    await backfill.wait()
    (progress,) = backfill.progress()
    assert progress.state is BackfillState.DONE
    got = np.concatenate(rec.history)
    expected = market("BTCUSD", end, live)  # from the previous end (none seen at it) to live
    assert np.array_equal(got, expected)


def test_a_replayed_export_recorded_at_gmt_plus_2_is_captured_two_hours_earlier(
    tmp_path: Path,
) -> None:
    # A file exported at a GMT+2 broker: its stamps are the server's, 2 h ahead of UTC.
    server = market("EURUSD", utc_s(2025, 1, 15, 12) * 1000, utc_s(2025, 1, 15, 12, 2) * 1000)
    path = tmp_path / "EURUSD_202501151400_202501151402.csv"
    write_ticks(path, server, digits=5)
    spec = TerminalSpec(
        name="replay",
        kind="replay",
        server_time_zone="+02:00",
        replay_files=(("EURUSD", (path,)),),
        replay_speed=0,
        replay_anchor_ms=utc_s(2026, 1, 1) * 1000,
    )
    plan = plan_of_spec(spec)
    assert plan.start_ms == int(server["time_msc"][0]) - 2 * H * 1000
    clock = ManualClock(utc_s(2026, 1, 1))
    replay = ReplayTerminal.from_spec(spec, clock=clock)
    h = Harness(spec, replay, clock, ("EURUSD",), plan.start_ms)  # as plan_workers does
    h.worker.connect()
    h.step()
    got = h.ticks("EURUSD")
    assert len(got) == len(server)
    assert np.array_equal(got["time_msc"], server["time_msc"] - 2 * H * 1000)
    assert np.array_equal(got["time"], got["time_msc"] // 1000)
    assert np.array_equal(got["bid"], server["bid"])
    assert h.zones() == [("streaming", "+02:00")]
