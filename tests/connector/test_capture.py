"""Boundary de-duplication: overlapping second-resolution polls become an exact stream."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.connector.capture import MAX_POLL_COUNT, CaptureCursor, PollSizer
from app.ticks import TICK_DTYPE, TickArray


def history(times_msc: list[int]) -> TickArray:
    """A tick history whose ticks are told apart by a serial number in ``volume``."""
    ticks = np.zeros(len(times_msc), dtype=TICK_DTYPE)
    ticks["time_msc"] = sorted(times_msc)
    ticks["time"] = ticks["time_msc"] // 1000
    ticks["volume"] = np.arange(len(times_msc))
    return ticks


def copy_ticks_from(hist: TickArray, visible: int, from_seconds: int, count: int) -> TickArray:
    """What a terminal answers: ticks from a whole second on, of those it has so far."""
    seen = hist[:visible]
    start = int(np.searchsorted(seen["time_msc"], from_seconds * 1000, side="left"))
    return seen[start : start + count].copy()


def capture(hist: TickArray, steps: list[int], batch: int, start_msc: int) -> TickArray:
    cursor, sizer = CaptureCursor(start_msc), PollSizer(batch)
    out: list[TickArray] = []
    for visible in [*steps, len(hist)]:
        while True:
            polled = copy_ticks_from(hist, visible, cursor.from_seconds, sizer.count)
            new, skipped = cursor.cut(polled)
            more = sizer.after_poll(len(polled), skipped, len(new))
            cursor.advance(new)
            out.append(new)
            if not more:
                break
    return np.concatenate(out) if out else hist[:0]


def test_ticks_sharing_a_millisecond_across_polls_are_neither_lost_nor_doubled() -> None:
    # Three ticks at 1000.500, the poll boundary falls between the 2nd and the 3rd.
    hist = history([1_000_100, 1_000_500, 1_000_500, 1_000_500, 1_000_900, 1_001_000])
    cursor = CaptureCursor(1_000_000)
    first, _ = cursor.cut(copy_ticks_from(hist, 3, cursor.from_seconds, 100))
    cursor.advance(first)
    assert cursor.as_tuple() == (1_000_500, 2)
    second, skipped = cursor.cut(copy_ticks_from(hist, 6, cursor.from_seconds, 100))
    cursor.advance(second)
    assert skipped == 3
    assert list(np.concatenate([first, second])["volume"]) == list(range(6))
    assert cursor.as_tuple() == (1_001_000, 1)


def test_a_start_cursor_keeps_ticks_at_and_after_the_start() -> None:
    hist = history([999_999, 1_000_000, 1_000_000, 1_000_001])
    new, skipped = CaptureCursor(1_000_000).cut(hist)
    assert skipped == 1
    assert list(new["time_msc"]) == [1_000_000, 1_000_000, 1_000_001]


def test_advance_refuses_ticks_older_than_the_cursor() -> None:
    cursor = CaptureCursor(2_000_000, 1)
    with pytest.raises(ValueError, match="before the cursor"):
        cursor.advance(history([1_999_999]))


def test_poll_size_grows_when_a_full_answer_holds_nothing_new() -> None:
    # 50 ticks in one millisecond, all captured; a poll of 10 can never get past them.
    hist = history([5_000_000] * 50 + [5_000_001])
    out = capture(hist, [50], batch=10, start_msc=5_000_000)
    assert list(out["volume"]) == list(range(51))


def test_poll_sizer_asks_for_the_skipped_prefix_plus_a_batch() -> None:
    sizer = PollSizer(100)
    assert sizer.after_poll(returned=100, skipped=40, new=60) is True
    assert sizer.count == 140
    assert sizer.after_poll(returned=50, skipped=50, new=0) is False
    assert sizer.count == 150


def test_poll_sizer_reads_past_a_prefix_larger_than_any_cap() -> None:
    # A second holding more ticks than MAX_POLL_COUNT: the request must still reach past
    # the already captured prefix (it used to be capped at MAX_POLL_COUNT and stall).
    prefix = MAX_POLL_COUNT + 5
    sizer = PollSizer(100)
    sizer.count = prefix
    assert sizer.after_poll(returned=prefix, skipped=prefix, new=0) is True
    assert sizer.count > prefix
    assert sizer.after_poll(returned=prefix + 100, skipped=prefix, new=100) is False
    assert sizer.count == prefix + 100


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    n=st.integers(min_value=0, max_value=400),
    batch=st.integers(min_value=1, max_value=60),
)
def test_any_poll_schedule_captures_the_history_exactly(
    data: st.DataObject, n: int, batch: int
) -> None:
    # Millisecond offsets drawn from a small range so that many ticks share one.
    offsets = data.draw(st.lists(st.integers(0, 4_000), min_size=n, max_size=n))
    base = 1_700_000_000_000
    hist = history([base + o for o in offsets])
    steps = sorted(data.draw(st.lists(st.integers(0, n), max_size=12)))
    out = capture(hist, steps, batch, start_msc=base)
    assert np.array_equal(out, hist)
