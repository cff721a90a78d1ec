from __future__ import annotations

import asyncio
import tracemalloc

import numpy as np
import pytest

from app.clock import ManualClock
from app.collector import M1, M5, BarAggregator, Collector, SequencedBatch
from app.collector.bars import BAR_DTYPE
from app.connector.handoff import Handoff
from app.ticks import TickBatch, empty_ticks

from .ticks_factory import START_MSC, batch, make_ticks, split, ticks_at


def test_sequence_numbers_are_gap_free_across_symbols_and_skip_empty_batches() -> None:
    collector = Collector(cache_capacity_per_symbol=1_000)
    rng = np.random.default_rng(1)
    ticks = {s: make_ticks(rng, 300) for s in ("EURUSD", "GBPUSD", "USDJPY")}
    seqs: list[int] = []
    for i in range(30):
        for symbol, all_ticks in ticks.items():
            part = all_ticks[i * 10 : i * 10 + (i % 4) * 3]  # every 4th batch is empty
            result = collector.ingest(batch(symbol, part))
            if len(part) == 0:
                assert result is None
            else:
                assert result is not None
                seqs.append(result.seq)

    assert seqs == list(range(1, len(seqs) + 1))
    stats = collector.stats
    assert stats.last_seq == collector.last_seq == len(seqs)
    assert stats.batches == 90
    assert stats.batches == stats.last_seq + stats.batches_skipped


def test_stale_ticks_are_dropped_and_counted_equal_milliseconds_kept() -> None:
    clock = ManualClock(start=1_700_000_000.5)
    collector = Collector(cache_capacity_per_symbol=100, clock=clock)
    t = START_MSC
    first = collector.ingest(batch("EURUSD", ticks_at([t, t + 5, t + 10])))
    assert first is not None

    # t+10 repeats the last millisecond (legitimate); t+9 and t are stale; one more
    # goes back within the batch itself.
    mixed = ticks_at([t + 9, t + 10, t, t + 12, t + 11, t + 12])
    out = collector.ingest(batch("EURUSD", mixed))
    assert out is not None
    assert out.batch.ticks["time_msc"].tolist() == [t + 10, t + 12, t + 12]
    assert out.seq == 2
    assert out.received_at == 1_700_000_000.5

    # Another symbol has its own clock of ticks.
    assert collector.ingest(batch("GBPUSD", ticks_at([t]))) is not None

    # Entirely stale: no sequence number, nothing cached.
    assert collector.ingest(batch("EURUSD", ticks_at([t + 1, t + 2]))) is None

    stats = collector.stats
    assert stats.stale_dropped == 5
    assert stats.symbols["EURUSD"].stale_dropped == 5
    assert stats.symbols["GBPUSD"].stale_dropped == 0
    assert stats.ticks_total == 7
    assert stats.ticks_per_symbol == {"EURUSD": 6, "GBPUSD": 1}
    assert stats.last_seq == 3
    assert stats.batches_skipped == 1
    cached = collector.cache.snapshot("EURUSD")["time_msc"].tolist()
    assert cached == [t, t + 5, t + 10, t + 10, t + 12, t + 12]


def test_cache_and_bars_hold_what_was_ingested() -> None:
    rng = np.random.default_rng(2)
    ticks = make_ticks(rng, 3_000)
    collector = Collector(cache_capacity_per_symbol=500, bar_timeframes_ms=(M1, M5))
    for part in split(ticks, rng.integers(0, len(ticks), 60).tolist()):
        collector.ingest(batch("EURUSD", part))

    np.testing.assert_array_equal(collector.cache.snapshot("EURUSD"), ticks[-500:])
    for timeframe in (M1, M5):
        reference = BarAggregator(timeframe)
        reference.update(ticks)
        np.testing.assert_array_equal(collector.bars("EURUSD", timeframe), reference.all())
    aggregator = collector.aggregator("EURUSD", M5)
    assert aggregator is not None
    assert aggregator.timeframe_ms == M5

    last = collector.stats.symbols["EURUSD"]
    assert last.last_time_msc == int(ticks["time_msc"][-1])
    assert last.last_bid == float(ticks["bid"][-1])
    assert last.last_ask == float(ticks["ask"][-1])


def test_bars_of_unknown_symbol_or_timeframe() -> None:
    collector = Collector(cache_capacity_per_symbol=10)
    assert len(collector.bars("EURUSD")) == 0
    assert collector.bars("EURUSD").dtype == BAR_DTYPE
    assert collector.aggregator("EURUSD") is None
    with pytest.raises(KeyError, match="not aggregated"):
        collector.bars("EURUSD", M5)


def test_stats_is_a_snapshot() -> None:
    collector = Collector(cache_capacity_per_symbol=10)
    collector.ingest(batch("EURUSD", ticks_at([START_MSC])))
    stats = collector.stats
    collector.ingest(batch("EURUSD", ticks_at([START_MSC + 1])))
    collector.ingest(batch("USDJPY", ticks_at([START_MSC + 1])))
    assert stats.ticks_total == 1
    assert stats.last_seq == 1
    assert set(stats.symbols) == {"EURUSD"}
    assert collector.stats.ticks_total == 3


def test_subscribers_share_one_read_only_array_and_see_every_batch() -> None:
    collector = Collector(cache_capacity_per_symbol=10)
    seen: list[SequencedBatch] = []
    collector.subscribe(seen.append)

    def writer(sb: SequencedBatch) -> None:
        sb.batch.ticks["bid"] = 0.0

    collector.subscribe(writer)
    queue = collector.subscribe_queue(maxlen=10, name="monitor")

    source = TickBatch("EURUSD", ticks_at([START_MSC, START_MSC + 1]), worker_id=3, captured_at=9)
    out = collector.ingest(source)

    assert out is not None
    assert seen == [out]
    assert queue.drain() == [out]
    assert not out.batch.ticks.flags.writeable
    assert out.batch.worker_id == 3
    assert out.batch.captured_at == 9
    assert out.symbol == "EURUSD"
    assert len(out) == 2
    assert collector.stats.subscriber_errors == 1  # the writer failed; nothing else did
    assert source.ticks.flags.writeable  # the producer's own array is left alone


def test_a_raising_subscriber_never_reaches_ingest() -> None:
    collector = Collector(cache_capacity_per_symbol=10)

    def broken(_: SequencedBatch) -> None:
        raise ValueError("subscriber bug")

    collector.subscribe(broken)
    received: list[int] = []
    collector.subscribe(lambda sb: received.append(sb.seq))
    for i in range(3):
        collector.ingest(batch("EURUSD", ticks_at([START_MSC + i])))
    assert received == [1, 2, 3]
    assert collector.stats.subscriber_errors == 3


async def test_a_slow_async_consumer_never_blocks_ingest() -> None:
    collector = Collector(cache_capacity_per_symbol=100)
    queue = collector.subscribe_queue(maxlen=8, name="slow-ui")
    got: list[int] = []

    async def slow_ui() -> None:
        async for item in queue:
            got.append(item.seq)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(slow_ui())
    await asyncio.sleep(0)  # the consumer is now waiting
    for i in range(500):  # no await: ingest never yields to the consumer
        collector.ingest(batch("EURUSD", ticks_at([START_MSC + i])))
    assert collector.last_seq == 500
    assert queue.dropped == 492

    collector.close()
    await asyncio.wait_for(task, timeout=2)
    assert got == list(range(493, 501))


async def test_consume_ingests_from_a_handoff_until_cancelled() -> None:
    collector = Collector(cache_capacity_per_symbol=1_000)
    source: Handoff[TickBatch] = Handoff(maxsize=1_000)
    source.bind(asyncio.get_running_loop())
    ticks = make_ticks(np.random.default_rng(3), 400)
    for part in np.array_split(ticks, 200):
        source.put(batch("EURUSD", part))
    source.put(TickBatch("EURUSD", np.zeros(3, dtype=BAR_DTYPE)))  # wrong dtype
    source.put(batch("EURUSD", empty_ticks(0)))
    source.put(batch("USDJPY", ticks[:5]))

    task = asyncio.create_task(collector.consume(source))
    await asyncio.wait_for(source.join(), timeout=2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    stats = collector.stats
    assert stats.consume_errors == 1
    assert stats.last_seq == 201
    assert stats.ticks_per_symbol == {"EURUSD": 400, "USDJPY": 5}
    np.testing.assert_array_equal(collector.cache.snapshot("EURUSD"), ticks)


def test_wrong_dtype_is_refused_before_anything_is_counted() -> None:
    collector = Collector(cache_capacity_per_symbol=10)
    with pytest.raises(TypeError, match="tick dtype"):
        collector.ingest(TickBatch("EURUSD", np.zeros(1, dtype=BAR_DTYPE)))
    assert collector.stats.batches == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cache_capacity_per_symbol": 0}, ">= 1"),
        ({"cache_capacity_per_symbol": 1, "bar_timeframes_ms": (0,)}, "> 0"),
        ({"cache_capacity_per_symbol": 1, "bar_history": 0}, ">= 1"),
    ],
)
def test_invalid_configuration_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Collector(**kwargs)  # type: ignore[arg-type]


def test_memory_stays_flat_once_caches_and_bar_histories_are_full() -> None:
    collector = Collector(
        cache_capacity_per_symbol=5_000, bar_timeframes_ms=(M1, M5), bar_history=50
    )
    queue = collector.subscribe_queue(maxlen=16)
    rng = np.random.default_rng(4)
    symbols = ("EURUSD", "GBPUSD", "USDJPY")
    ticks = make_ticks(rng, 200_000)
    parts = np.array_split(ticks, 400)

    def feed(chunk: list[np.ndarray]) -> None:
        for part in chunk:
            for symbol in symbols:
                collector.ingest(batch(symbol, part))

    feed(parts[:200])  # every ring and every bar history is full by now
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        feed(parts[200:])
        grown, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert collector.cache.nbytes == len(symbols) * 5_000 * ticks.dtype.itemsize
    assert queue.dropped > 0
    assert grown - baseline < 64 * 1024
