from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from app.collector.fanout import FanOut, QueueSubscription


def test_a_raising_callback_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    fanout: FanOut[int] = FanOut()
    before: list[int] = []
    after: list[int] = []
    fanout.subscribe(before.append, "before")

    def broken(item: int) -> None:
        raise RuntimeError(f"broken on {item}")

    bad = fanout.subscribe(broken, "broken")
    fanout.subscribe(after.append, "after")
    queue = fanout.subscribe_queue(10)

    with caplog.at_level(logging.ERROR, logger="app.collector.fanout"):
        for i in range(5):
            fanout.publish(i)  # must not raise

    assert before == after == [0, 1, 2, 3, 4]
    assert queue.drain() == [0, 1, 2, 3, 4]
    assert bad.errors == fanout.errors == 5
    # Logged with its traceback, but not once per failure.
    records = [r for r in caplog.records if "broken" in r.getMessage()]
    assert len(records) == 1
    assert records[0].exc_info is not None


def test_a_callback_may_unsubscribe_itself_while_being_called() -> None:
    fanout: FanOut[int] = FanOut()
    seen: list[int] = []
    others: list[int] = []

    def once(item: int) -> None:
        seen.append(item)
        sub.close()

    sub = fanout.subscribe(once)
    fanout.subscribe(others.append)
    fanout.publish(1)
    fanout.publish(2)
    assert seen == [1]
    assert others == [1, 2]
    assert not sub.active
    assert len(fanout.subscribers) == 1
    sub.close()  # idempotent


def test_a_full_queue_drops_the_oldest_and_counts() -> None:
    fanout: FanOut[int] = FanOut()
    queue = fanout.subscribe_queue(maxlen=3, name="ui")
    for i in range(10):
        fanout.publish(i)
    assert len(queue) == 3
    assert queue.dropped == 7
    assert queue.received == 10
    assert queue.drain() == [7, 8, 9]
    assert queue.name == "ui"
    assert queue.maxlen == 3


async def test_async_iteration_gets_items_in_order_and_ends_on_close() -> None:
    fanout: FanOut[int] = FanOut()
    queue = fanout.subscribe_queue(100)
    got: list[int] = []

    async def consume() -> None:
        async for item in queue:
            got.append(item)

    task = asyncio.create_task(consume())
    fanout.publish(1)
    await asyncio.sleep(0)
    fanout.publish(2)
    fanout.publish(3)
    await asyncio.sleep(0)
    fanout.publish(4)
    queue.close()  # what is already queued is still delivered
    await asyncio.wait_for(task, timeout=1)
    assert got == [1, 2, 3, 4]
    fanout.publish(5)  # a closed queue is detached and receives nothing
    assert len(queue) == 0
    assert fanout.subscribers == ()


async def test_immediate_close_ends_iteration_without_the_backlog() -> None:
    queue: QueueSubscription[int] = QueueSubscription(None, 10, "q")
    for i in range(5):
        queue.put(i)
    queue.close(immediate=True)
    got = [item async for item in queue]
    assert got == []
    assert queue.closed


async def test_close_wakes_a_waiting_consumer() -> None:
    fanout: FanOut[int] = FanOut()
    queue = fanout.subscribe_queue(4)
    task = asyncio.create_task(anext(queue, None))
    await asyncio.sleep(0)
    assert not task.done()
    fanout.close()
    assert await asyncio.wait_for(task, timeout=1) is None


async def test_a_put_from_another_thread_wakes_the_consumer() -> None:
    queue: QueueSubscription[str] = QueueSubscription(None, 4, "q")
    task = asyncio.create_task(anext(queue))
    await asyncio.sleep(0)
    thread = threading.Thread(target=queue.put, args=("from thread",))
    thread.start()
    thread.join()
    assert await asyncio.wait_for(task, timeout=1) == "from thread"


async def test_a_cancelled_consumer_leaves_the_queue_usable() -> None:
    queue: QueueSubscription[int] = QueueSubscription(None, 4, "q")
    task = asyncio.create_task(anext(queue))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    queue.put(1)
    assert await asyncio.wait_for(anext(queue), timeout=1) == 1


def test_invalid_maxlen_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        FanOut[int]().subscribe_queue(0)
