"""A bounded hand-off from reader threads to the one asyncio consumer.

``asyncio.Queue`` is not thread-safe, and ``run_coroutine_threadsafe(queue.put(...))``
costs a task and a thread switch per batch: at thousands of small batches per second that
was most of the app's CPU. Here a producer thread appends under a lock and wakes the loop
only when the consumer is actually asleep; the consumer takes everything that is ready at
once. Producers block (outside the loop) while the hand-off is full, which is what
back-pressures the worker processes.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class HandoffClosed(Exception):  # noqa: N818 - a state, not an error
    """The consumer side is gone; producers must stop."""


class Handoff(Generic[T]):
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._items: deque[T] = deque()
        self._slots = threading.Semaphore(maxsize)
        self._lock = threading.Lock()
        self._sleeping = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()
        self._unfinished = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the consumer runs on; must be called before the first ``put``."""
        self._loop = loop

    # -------------------------------------------------------------- producer threads
    def put(self, item: T) -> None:
        """Hand ``item`` over, waiting while the hand-off is full; raises HandoffClosed."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("Handoff.bind(loop) was not called")
        while not self._slots.acquire(timeout=0.5):
            if self._closed or loop.is_closed():
                raise HandoffClosed
        with self._lock:
            if self._closed:
                raise HandoffClosed
            self._items.append(item)
            wake = self._sleeping
            self._sleeping = False
        if wake:
            loop.call_soon_threadsafe(self._ready.set)

    # -------------------------------------------------------------- the consumer (loop)
    async def take(self, at_most: int | None = None) -> list[T]:
        """What was handed over so far (at least one item, at most ``at_most``), oldest
        first."""
        while True:
            with self._lock:
                if self._items:
                    if at_most is None or len(self._items) <= at_most:
                        items = list(self._items)
                        self._items.clear()
                    else:
                        items = [self._items.popleft() for _ in range(at_most)]
                    self._sleeping = False
                    break
                self._sleeping = True
                self._ready.clear()
            await self._ready.wait()
        self._unfinished += len(items)
        for _ in items:
            self._slots.release()
        return items

    def done(self, n: int) -> None:
        """The consumer finished ``n`` taken items (for :meth:`join`)."""
        self._unfinished -= n

    def pending(self) -> int:
        with self._lock:
            return len(self._items)

    async def join(self) -> None:
        """Wait until every item handed over so far was taken and done."""
        # Only used when stopping, so a short poll beats another synchronisation path.
        while self.pending() or self._unfinished:
            await asyncio.sleep(0.005)

    def close(self) -> None:
        """Refuse further items; blocked producers give up within half a second."""
        self._closed = True
