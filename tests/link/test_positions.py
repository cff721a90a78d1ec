"""Marks: where the spooled capture ends, live and history, and what a crash proves safe."""

from __future__ import annotations

import numpy as np

from app.connector.coverage import Span
from app.link.positions import Marks, SpooledPositions, read_marks, recovered_spans
from app.ticks import TICK_DTYPE, TickArray, TickBatch


def ticks(msc: list[int]) -> TickArray:
    t = np.zeros(len(msc), dtype=TICK_DTYPE)
    t["time_msc"] = msc
    t["time"] = t["time_msc"] // 1000
    return t


def test_marks_carry_the_live_span_and_the_history_position() -> None:
    positions = SpooledPositions({"EURUSD": (1_000, 0)})
    marks = positions.prepare(
        [TickBatch("EURUSD", ticks([1_000, 1_005, 1_005]))],
        [TickBatch("EURUSD", ticks([500, 600, 600]))],
    )
    assert positions.positions() == {"EURUSD": (1_000, 0)}  # not committed yet
    positions.commit()
    assert positions.positions() == {"EURUSD": (1_005, 2)}
    got = read_marks(marks)
    assert got.spans == {"EURUSD": Span((1_000, 0), (1_005, 2))}
    assert got.history == {"EURUSD": (600, 2)}
    # History goes on in a later gap; an out-of-order batch withdraws the claim.
    positions.prepare([], [TickBatch("EURUSD", ticks([700]))])
    positions.commit()
    later = read_marks(positions.prepare([], [TickBatch("EURUSD", ticks([650]))]))
    assert "EURUSD" not in later.history


def test_a_crash_during_a_backfill_extends_the_book_from_the_gap_start_to_the_position() -> None:
    before = Span((100, 0), (200, 0))  # an old run
    crashed_live = Span((1_000, 0), (1_500, 3))
    marks = Marks({"EURUSD": crashed_live}, {"EURUSD": (450, 1)})
    # Nothing of the backfill was saved before the crash: the gap began at 200.
    assert recovered_spans([before], marks, "EURUSD") == [crashed_live, Span((200, 0), (450, 1))]
    # A partial backfill span was saved (to 300): from there on.
    saved = Span((200, 0), (300, 0))
    assert recovered_spans([before, saved], marks, "EURUSD")[-1] == Span((300, 0), (450, 1))
    # No backfill, no history position: only the live span.
    assert recovered_spans([before], Marks({"EURUSD": crashed_live}, {}), "EURUSD") == [
        crashed_live
    ]
    assert recovered_spans([before], marks, "XAUUSD") == []
