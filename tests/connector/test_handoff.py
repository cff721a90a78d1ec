"""The thread-to-loop hand-off: bounded (a producer waits while it is full, and goes on
as soon as the consumer takes), order kept, and closing releases a waiting producer."""

from __future__ import annotations

import asyncio
import threading

import pytest

from app.connector.handoff import Handoff, HandoffClosed


async def test_a_full_handoff_holds_the_producer_until_the_consumer_takes() -> None:
    handoff: Handoff[int] = Handoff(maxsize=3)
    handoff.bind(asyncio.get_running_loop())
    put: list[int] = []

    def produce() -> None:
        for i in range(10):
            handoff.put(i)
            put.append(i)

    thread = threading.Thread(target=produce)
    thread.start()
    async with asyncio.timeout(5):
        while len(put) < 3:
            await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)  # a producer that ignored the bound would be far ahead now
    assert len(put) == 3
    assert handoff.pending() == 3
    taken: list[int] = []
    async with asyncio.timeout(5):
        while len(taken) < 10:
            batch = await handoff.take(at_most=2)
            assert len(batch) <= 2
            taken.extend(batch)
            handoff.done(len(batch))
    thread.join(5)
    assert taken == list(range(10))


async def test_closing_releases_a_producer_waiting_for_room() -> None:
    handoff: Handoff[int] = Handoff(maxsize=1)
    handoff.bind(asyncio.get_running_loop())
    handoff.put(0)
    outcome: list[str] = []

    def produce() -> None:
        try:
            handoff.put(1)
        except HandoffClosed:
            outcome.append("closed")

    thread = threading.Thread(target=produce)
    thread.start()
    await asyncio.sleep(0.05)
    assert not outcome
    handoff.close()
    await asyncio.to_thread(thread.join, 5)
    assert outcome == ["closed"]
    with pytest.raises(HandoffClosed):
        handoff.put(2)


async def test_the_weight_bound_holds_many_light_items_and_few_heavy_ones() -> None:
    # Bounded by ticks, not only by count: light batches (a few ticks at low rates) pass
    # by the hundred, heavy ones stop the producer at the weight limit; one item heavier
    # than the whole bound still passes when the hand-off is empty.
    handoff: Handoff[list[int]] = Handoff(1_000, max_weight=100, weight=len)
    handoff.bind(asyncio.get_running_loop())
    for _ in range(99):
        handoff.put([0])
    assert handoff.pending() == 99
    handoff.put([0] * 50)  # 99 < 100: still room
    assert handoff.pending() == 100
    blocked = threading.Thread(target=handoff.put, args=([1] * 500,))
    blocked.start()
    await asyncio.sleep(0.05)
    assert handoff.pending() == 100  # the producer waits at the weight bound
    async with asyncio.timeout(5):
        taken = await handoff.take()
        while blocked.is_alive():
            await asyncio.sleep(0.005)
    assert len(taken) == 100
    assert await handoff.take() == [[1] * 500]  # heavier than the bound, alone


async def test_a_take_gets_the_whole_burst_within_its_budgets() -> None:
    # The consumer takes everything ready in one go (one wake-up for a burst), but no
    # more than its count and weight budgets; an item heavier than the budget comes alone.
    handoff: Handoff[list[int]] = Handoff(1_000, max_weight=10_000, weight=len)
    handoff.bind(asyncio.get_running_loop())
    for n in (3, 4, 5, 6, 50, 1, 1):
        handoff.put([n] * n)
    assert [len(x) for x in await handoff.take(max_weight=100)] == [3, 4, 5, 6, 50, 1, 1]
    for n in (30, 40, 50, 200, 1):
        handoff.put([n] * n)
    assert [len(x) for x in await handoff.take(max_weight=100)] == [30, 40]
    assert [len(x) for x in await handoff.take(max_weight=100)] == [50]
    assert [len(x) for x in await handoff.take(max_weight=100)] == [200]
    assert [len(x) for x in await handoff.take(2, max_weight=100)] == [1]
    for n in (1, 1, 1):
        handoff.put([n])
    assert len(await handoff.take(2, max_weight=100)) == 2
    assert handoff.pending() == 1
    # The weight still bounds the producers after partial takes.
    assert len(await handoff.take()) == 1
    handoff.put([7] * 9_999)
    handoff.put([8])
    assert handoff.pending() == 2


async def test_try_put_refuses_when_full_and_calls_back_once_there_is_room() -> None:
    # The loop-side producer (app/connector/loop_reader.py) never waits: refused, it is
    # called back after the consumer took something, and a closed hand-off raises.
    handoff: Handoff[int] = Handoff(2)
    handoff.bind(asyncio.get_running_loop())
    called: list[int] = []
    assert handoff.try_put(1, lambda: called.append(1))
    assert handoff.try_put(2, lambda: called.append(2))
    assert not handoff.try_put(3, lambda: called.append(3))
    await asyncio.sleep(0)
    assert called == []
    assert await handoff.take() == [1, 2]
    await asyncio.sleep(0)
    assert called == [3]
    assert handoff.try_put(3, lambda: called.append(4))
    assert await handoff.take() == [3]  # and the consumer was woken for it
    handoff.close()
    with pytest.raises(HandoffClosed):
        handoff.try_put(4, lambda: None)
