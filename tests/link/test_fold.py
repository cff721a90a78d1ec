"""One message per loop turn: the batches the collector offers in one turn (a burst taken
from the pool's hand-off at once) leave as ONE message — one spool write, one send, one
ack — and that message is cut before the loop polls again, never after a timer."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from app.collector import Collector, SequencedBatch
from app.connector.handoff import Handoff
from app.link.adapter import LinkAdapter
from app.link.spool import Spool
from app.protocol import codec
from app.ticks import TICK_DTYPE, TickArray, TickBatch

SYMBOLS = ["EURUSD", "GBPUSD", "EURUSD", "USDJPY", "AUDUSD", "EURUSD"]


def ticks(start_msc: int, n: int) -> TickArray:
    out = np.zeros(n, dtype=TICK_DTYPE)
    out["time_msc"] = start_msc + np.arange(n)
    out["time"] = out["time_msc"] // 1000
    out["bid"] = 1.1
    out["ask"] = 1.1001
    return out


def batches(first_msc: int) -> list[TickBatch]:
    return [
        TickBatch(symbol, ticks(first_msc + 10 * i, 4), 1, time.time())
        for i, symbol in enumerate(SYMBOLS)
    ]


def connected_link() -> tuple[LinkAdapter, Spool]:
    spool = Spool(2**24, 0, None, client_id="c", session="s")
    link = LinkAdapter("ws://127.0.0.1:1/ws", "c", spool)
    link.machine.on_welcome(codec.Welcome(0))  # connected, nothing in flight: eager
    return link, spool


def message(spool: Spool, seq: int) -> list[TickBatch]:
    item = spool.peek_next_after(seq - 1)
    assert item is not None
    assert item[0] == seq
    decoded = codec.decode_client(item[1])
    assert isinstance(decoded, codec.Ticks)
    return codec.ticks_batches(decoded)


def same(got: list[TickBatch], sent: list[TickBatch]) -> bool:
    return [(b.symbol, b.ticks.tobytes()) for b in got] == [
        (b.symbol, b.ticks.tobytes()) for b in sent
    ]


async def test_batches_offered_in_one_turn_leave_as_one_message_cut_in_that_turn() -> None:
    link, spool = connected_link()
    sent = batches(1_700_000_000_000)
    for seq, batch in enumerate(sent, start=1):
        link.offer(SequencedBatch(seq, batch, time.time()))
    assert len(spool) == 0  # folded, not cut batch by batch
    await asyncio.sleep(0)  # the end of this loop turn: no timer waited for
    assert len(spool) == 1
    assert same(message(spool, 1), sent)
    # The next turn's batch goes at once as a message of its own (the link is idle).
    later = batches(1_700_000_001_000)[:1]
    link.offer(SequencedBatch(7, later[0], time.time()))
    await asyncio.sleep(0)
    assert len(spool) == 2
    assert same(message(spool, 2), later)
    await link.close()


async def test_a_burst_in_the_handoff_is_taken_at_once_and_sent_as_one_message() -> None:
    link, spool = connected_link()
    handoff: Handoff[TickBatch] = Handoff(1_024, max_weight=100_000, weight=len)
    handoff.bind(asyncio.get_running_loop())
    collector = Collector(1_000)
    collector.subscribe(link.offer)
    collector.on_burst_end(link.flush)
    sent = batches(1_700_000_000_000)
    for batch in sent:
        handoff.put(batch)
    consumer = asyncio.create_task(collector.consume(handoff))
    try:
        async with asyncio.timeout(5):
            await handoff.join()
            while len(spool) < 1:
                await asyncio.sleep(0)
        assert len(spool) == 1
        assert same(message(spool, 1), sent)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await link.close()


def test_can_send_says_whether_a_frame_waits_within_the_window() -> None:
    spool = Spool(2**24, 0, None, client_id="c", session="s")
    link = LinkAdapter("ws://127.0.0.1:1/ws", "c", spool)
    machine = link.machine
    machine.options.window = 2
    assert not machine.can_send  # not connected
    machine.on_welcome(codec.Welcome(0))
    assert not machine.can_send  # nothing spooled
    for n, batch in enumerate(batches(1_700_000_000_000)[:3]):
        machine.offer(batch)
        machine.cut()
        assert machine.can_send == (n < 2)
        if n < 2:
            assert machine.next_frame() is not None
    assert not machine.can_send  # two in flight: the window is full
    assert machine.on_ack(1)
    assert machine.can_send
    assert machine.next_frame() is not None
    assert not machine.can_send


async def test_flush_cuts_what_the_turn_offered_at_once_and_nothing_else() -> None:
    # The collector calls flush when a burst is ingested: the message is cut right then,
    # not one loop iteration later; with nothing due, flush does nothing.
    link, spool = connected_link()
    link.flush()
    assert len(spool) == 0
    sent = batches(1_700_000_000_000)
    for seq, batch in enumerate(sent, start=1):
        link.offer(SequencedBatch(seq, batch, time.time()))
    link.flush()
    assert len(spool) == 1
    assert same(message(spool, 1), sent)
    await asyncio.sleep(0)
    assert len(spool) == 1  # the scheduled cut was taken back
    await link.close()
