"""Start-up is not latency: the first poll of a worker brings the ticks the terminal had
before the worker was up; counting their age as tick→collector latency put a ~2,000 ms
spike at the head of the latency chart and made the steady few ms read as zero."""

from __future__ import annotations

import numpy as np

from app.clock import ManualClock
from app.collector import SequencedBatch
from app.monitor.monitor import Inputs, Monitor
from app.ticks import TickArray, TickBatch, empty_ticks


def _ticks(first_s: float, n: int, step_ms: int = 1) -> TickArray:
    out = empty_ticks(n)
    out["time_msc"] = int(first_s * 1000) + np.arange(n) * step_ms
    out["bid"], out["ask"] = 1.1, 1.2
    return out


def _inputs() -> Inputs:
    return Inputs(workers=[], link=None, queue_depth=0, last_tick_msc={})


def test_the_catch_up_of_a_starting_worker_is_not_read_as_latency() -> None:
    clock = ManualClock()
    monitor = Monitor(rules=[], clock=clock)
    t0 = clock.time()
    # The worker starts streaming at t0 + 2 s; its first poll holds ticks since t0.
    up = t0 + 2.0
    clock.set_time(up + 0.004)
    first = TickBatch("EURUSD", _ticks(t0, 2000), worker_id=1, captured_at=up)
    monitor.on_batch(SequencedBatch(1, first, clock.time()))
    # Then live batches: each tick 3 ms old when the collector takes it.
    seq = 1
    for _ in range(20):
        clock.advance(0.05)
        seq += 1
        live = TickBatch("EURUSD", _ticks(clock.time() - 0.003, 1), 1, clock.time() - 0.001)
        monitor.on_batch(SequencedBatch(seq, live, clock.time()))
    m = monitor.tick(_inputs())
    # The truth: live ticks 3 ms old, the first batch 4 ms after the worker was up.
    assert m["latency.tick_to_collector.max"] <= 0.0045
    assert m["latency.tick_to_collector.p99"] >= 0.0025  # still measured, not zeroed


def test_ticks_late_after_the_start_still_count() -> None:
    """Only ticks from before the worker's start are clipped: a tick that waited 1.5 s
    while the worker streamed is 1.5 s of latency."""
    clock = ManualClock()
    monitor = Monitor(rules=[], clock=clock)
    start = clock.time()
    first = TickBatch("EURUSD", _ticks(start, 1), 1, start)
    monitor.on_batch(SequencedBatch(1, first, start + 0.002))
    clock.advance(3.0)
    late = TickBatch("EURUSD", _ticks(clock.time() - 1.5, 1), 1, clock.time())
    monitor.on_batch(SequencedBatch(2, late, clock.time()))
    m = monitor.tick(_inputs())
    assert abs(float(m["latency.tick_to_collector.max"]) - 1.5) < 0.05
