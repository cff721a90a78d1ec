"""The NATS sink ends a connection's tasks even when one swallows its cancellation.

nats-py catches a ``CancelledError`` that reaches it inside ``Client._flush_pending``
(while a publish is handed to its flusher) and carries on: cancelled once, the sink's
sender went on running, the session never ended, and after a node's failure the sink
published nothing more for good (found by tests/nats/test_scale_out.py)."""

from __future__ import annotations

import asyncio

from app.nats.sink import _cancel


async def test_a_task_that_swallows_one_cancel_is_cancelled_again_until_it_ends() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed == 1:
                    continue  # what nats-py's flush does with the first cancel
                raise

    async def plain() -> None:
        await asyncio.Event().wait()

    tasks = [asyncio.create_task(stubborn()), asyncio.create_task(plain())]
    await asyncio.sleep(0)  # both are waiting
    await asyncio.wait_for(_cancel(tasks), timeout=10)
    assert all(task.done() for task in tasks)
    assert swallowed == 2
