"""RateMeter and RateBook on a ManualClock: exact counts at window edges, decay to zero."""

from __future__ import annotations

import pytest

from app.clock import ManualClock
from app.monitor.rates import RateBook, RateMeter


def test_a_steady_stream_reads_its_rate_on_every_window() -> None:
    clock = ManualClock()
    meter = RateMeter((1, 10, 60), clock)
    for _ in range(600):  # 10 events every 100 ms = 100/s for 60 s
        meter.add(10)
        clock.advance(0.1)
    assert meter.rate(1) == pytest.approx(100.0)
    assert meter.rate(10) == pytest.approx(100.0)
    assert meter.rate(60) == pytest.approx(100.0)
    assert meter.rates() == pytest.approx({1.0: 100.0, 10.0: 100.0, 60.0: 100.0})
    assert meter.total == 6000


def test_windows_see_only_their_own_span() -> None:
    clock = ManualClock()
    meter = RateMeter((1, 10, 60), clock)
    clock.advance(60)  # a minute observed before anything happens
    meter.add(600)  # a burst ...
    clock.advance(0.5)
    meter.add(50)
    clock.advance(0.55)  # ... now 1.05 s later: both bursts are in completed slots
    assert meter.rate(1) == pytest.approx(650 / 1)
    assert meter.rate(10) == pytest.approx(650 / 10)
    assert meter.rate(60) == pytest.approx(650 / 60)
    clock.advance(0.5)  # the first burst's slot left the 1 s window, the second's did not
    assert meter.rate(1) == pytest.approx(50 / 1)
    assert meter.rate(10) == pytest.approx(650 / 10)


def test_the_slot_still_filling_is_not_counted_yet() -> None:
    clock = ManualClock()
    meter = RateMeter((1,), clock)
    clock.advance(5)
    meter.add(7)
    assert meter.rate(1) == 0.0  # same 100 ms slot: not completed
    clock.advance(0.1)
    assert meter.rate(1) == pytest.approx(7.0)
    clock.advance(0.9)  # the slot is the oldest of the window: still in
    assert meter.rate(1) == pytest.approx(7.0)
    clock.advance(0.1)  # and now out
    assert meter.rate(1) == 0.0


def test_idle_time_decays_every_rate_to_exactly_zero() -> None:
    clock = ManualClock()
    meter = RateMeter((1, 10, 60), clock)
    for _ in range(100):
        meter.add(3)
        clock.advance(0.25)
    rates_when_busy = meter.rates()
    assert all(r > 0 for r in rates_when_busy.values())
    clock.advance(10.0)
    assert meter.rate(1) == 0.0
    assert meter.rate(10) == 0.0
    assert meter.rate(60) > 0
    clock.advance(3600)  # longer than the ring: cleared in one step
    assert meter.rates() == {1.0: 0.0, 10.0: 0.0, 60.0: 0.0}
    meter.add(5)  # and counts again afterwards
    clock.advance(0.1)
    assert meter.rate(1) == pytest.approx(5.0)
    assert meter.total == 305


def test_a_young_meter_divides_by_the_time_it_has_observed() -> None:
    clock = ManualClock()
    meter = RateMeter((1, 60), clock)
    for _ in range(30):  # 3 s at 20 events/s
        meter.add(2)
        clock.advance(0.1)
    assert meter.rate(60) == pytest.approx(20.0)  # not 60 events / 60 s
    assert meter.rate(1) == pytest.approx(20.0)
    assert RateMeter((1,), clock).rate(1) == 0.0  # nothing observed yet


def test_uneven_clock_steps_are_counted_in_the_right_slots() -> None:
    clock = ManualClock(start=0.0)
    meter = RateMeter((1, 10), clock)
    steps = [0.013, 0.2, 0.05, 0.31, 0.07, 0.0, 0.9, 0.037] * 20
    times: list[float] = []
    for step in steps:
        clock.advance(step)
        meter.add()
        times.append(clock.monotonic())
    clock.advance(0.1)
    now_slot = int(clock.monotonic() * 10 + 1e-6)
    for window in (1, 10):
        first = now_slot - window * 10
        expected = sum(1 for t in times if first <= int(t * 10 + 1e-6) < now_slot)
        assert meter.rate(window) == pytest.approx(expected / window)


def test_windows_are_validated() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="whole number"):
        RateMeter((0.15,), clock)
    with pytest.raises(ValueError, match="at least one"):
        RateMeter((), clock)
    meter = RateMeter((1, 10), clock)
    assert meter.rate(5) == 0.0  # any whole-slot window the ring holds
    with pytest.raises(ValueError, match="longer"):
        meter.rate(11)
    seconds = RateMeter((1, 60), clock, resolution=1.0)
    clock.advance(2)
    seconds.add(4)
    clock.advance(1)
    assert seconds.rate(1) == pytest.approx(4.0)


def test_rate_book_makes_meters_on_first_use_from_the_books_start() -> None:
    clock = ManualClock()
    book = RateBook((1, 10), clock)
    clock.advance(5)  # EURUSD is first seen 5 s after the book started
    for _ in range(50):
        book.add("EURUSD", 4)
        book.add("total", 4)
        clock.advance(0.1)
    book.add("worker-1")
    assert "EURUSD" in book
    assert book.names() == ["EURUSD", "total", "worker-1"]
    assert len(book) == 3
    assert list(book) == book.names()
    assert book.rate("EURUSD", 1) == pytest.approx(40.0)
    # 200 events over the 10 s observed, not 200 over the 5 s since its first event.
    assert book.rate("EURUSD", 10) == pytest.approx(20.0)
    assert book.rates(10) == pytest.approx({"EURUSD": 20.0, "total": 20.0, "worker-1": 0.0})
    assert book.totals() == {"EURUSD": 200, "total": 200, "worker-1": 1}
    assert book.rate("GBPUSD") == 0.0
    assert "GBPUSD" not in book  # reading does not create
    assert book["total"].total == 200
    assert book.meter("GBPUSD").total == 0
    book.remove("GBPUSD")
    book.remove("never-there")
    assert "GBPUSD" not in book
    with pytest.raises(ValueError, match="whole number"):
        RateBook((0.25,), clock, resolution=0.1)
