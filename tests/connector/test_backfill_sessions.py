"""A history backfill across a ny-close weekend: exactly the market's ticks, no gap left.

The previous run stopped on Friday 23:00 server; this one starts on Monday 00:10 server.
The truth is the 24/7 market of the same seed with New York's Friday 16:57 – Sunday 17:00
cut out (zoneinfo), not the schedule code under test.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

import numpy as np

from app.clock import ManualClock
from app.collector import M1, Collector
from app.config.schema import BackfillConfig
from app.connector.backfill import Backfill, BackfillState, BackfillTarget
from app.connector.coverage import Span, SpanBook, find_gaps
from app.connector.history_sources import ApiHistory
from app.servertime import NY_CLOSE
from app.sessions import MarketHours, SessionBook
from app.terminal.market import DEFAULT_PROFILES, Market
from app.terminal.simulated import SimulatedTerminal
from app.terminal.spec import TerminalSpec
from app.ticks import TickArray
from tests.connector.test_backfill import Recorder

NY = zoneinfo.ZoneInfo("America/New_York")
SEED, RATES = 8, {"EURUSD": 20.0}


def ny(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=NY).timestamp())  # type: ignore[misc]


PREV_END = ny(2026, 1, 16, 16, 0)  # server Friday 23:00
CLOSE = ny(2026, 1, 16, 16, 57)
OPEN = ny(2026, 1, 18, 17, 0)
LIVE = ny(2026, 1, 18, 17, 10)  # server Monday 00:10


class Counting(ApiHistory):
    def __init__(self, term: SimulatedTerminal) -> None:
        super().__init__(term, NY_CLOSE)  # the simulated terminal stamps in ny-close
        self.requests: list[tuple[int, int]] = []

    async def fetch(self, symbol: str, from_s: int, to_s: int) -> TickArray:
        self.requests.append((from_s, to_s))
        return await super().fetch(symbol, from_s, to_s)


def _backfill(tmp_path: Path, collector: Collector, source: Counting) -> Backfill:
    # Two hours of *open market* back from Monday 00:10 reach Friday afternoon; two
    # wall-clock hours would reach only Sunday and leave Friday's last hour a hole.
    config = BackfillConfig(chunk_minutes=10, max_span_h=2, state_file=tmp_path / "spans.json")
    hours = MarketHours.build(SessionBook.default(), {"EURUSD": NY_CLOSE})
    return Backfill(
        config,
        collector,
        clock=ManualClock(LIVE + 5),
        sources=lambda spec: source,
        market_hours=hours,
    )


async def test_a_backfill_across_a_weekend_has_no_hole_and_leaves_no_gap(tmp_path: Path) -> None:
    book = SpanBook(tmp_path / "spans.json")
    book.record("sim/EURUSD", "live", Span((PREV_END * 1000 - 3_600_000, 0), (PREV_END * 1000, 0)))
    book.save()
    term = SimulatedTerminal(
        SEED, rates=RATES, clock=ManualClock(LIVE + 5), sessions=SessionBook.default()
    )
    assert term.initialize()
    source = Counting(term)
    collector = Collector(1_000_000, (M1,), bar_history=10_000)
    recorder = Recorder(collector)
    backfill = _backfill(tmp_path, collector, source)
    target = BackfillTarget(TerminalSpec(name="sim"), "EURUSD", (LIVE * 1000, 0))
    await backfill.start([target], lambda: {"EURUSD": (LIVE * 1000, 0)})
    await backfill.wait()

    market = Market(SEED, DEFAULT_PROFILES, RATES)
    truth = np.concatenate(
        [
            market.ticks_range("EURUSD", PREV_END * 1000, CLOSE * 1000),
            market.ticks_range("EURUSD", OPEN * 1000, LIVE * 1000),
        ]
    )
    (progress,) = backfill.progress()
    assert progress.state is BackfillState.DONE
    assert (progress.start_msc, progress.end_msc, progress.fraction) == (
        PREV_END * 1000,
        LIVE * 1000,
        1.0,
    )
    assert progress.ticks == len(truth)
    assert np.array_equal(recorder.ticks(), truth)
    # The closed weekend was asked for in one request, not in 290 empty chunks.
    weekend = [r for r in source.requests if r[0] >= CLOSE and r[1] <= OPEN]
    assert len(weekend) == 1
    assert len(source.requests) < 12
    await backfill.stop()

    # No gap remains, so the next run has nothing to fetch (no retry of the weekend).
    saved = SpanBook(tmp_path / "spans.json")
    assert find_gaps(saved.previous("sim/EURUSD"), (LIVE * 1000, 0), 0) == []
    again = _backfill(tmp_path, Collector(1_000, (M1,), bar_history=10), Counting(term))
    assert again.plan([target]) == []


def test_a_periodic_save_finishing_late_never_overwrites_the_final_one(tmp_path: Path) -> None:
    # The periodic save writes on a thread; the one at stop runs on the loop. Content
    # encoded earlier and written later (the thread lost the race) is dropped, so the
    # file keeps the newest spans, never fewer (which would fetch ticks twice).
    book = SpanBook(tmp_path / "spans.json")
    book.record("sim/EURUSD", "live", Span((1_000, 0), (2_000, 0)))
    periodic = book.encoded()
    book.record("sim/EURUSD", "live", Span((1_000, 0), (9_000, 0)))
    book.save()  # the final save at stop
    book.write(periodic)  # the thread's older content arrives last
    assert SpanBook(tmp_path / "spans.json").spans() == {
        "sim/EURUSD": [Span((1_000, 0), (9_000, 0))]
    }
