"""A bounded hand-off from reader threads to the one asyncio consumer.

``asyncio.Queue`` is not thread-safe, and ``run_coroutine_threadsafe(queue.put(...))``
costs a task and a thread switch per batch: at thousands of small batches per second that
was most of the app's CPU. Here a producer thread appends under a lock and wakes the loop
only when the consumer is actually asleep; the consumer takes everything that is ready at
once. Producers block (outside the loop) while the hand-off is full, which is what
back-pressures the worker processes.

Room is counted under the one lock (a C lock) and a producer waits on a condition only
when the hand-off is full: ``threading.Semaphore`` is written in Python over a
``Condition``, and its acquire and release on every batch cost a tenth of the app's CPU
at 10k ticks/s in small batches.

Two bounds: the number of items, and optionally their total ``weight`` (ticks). Memory is
what the weight bounds; a count alone had to be small for large batches (16 batches of
up to 10k ticks at full speed) and then held back the workers at low rates, where a
batch holds a few ticks and 16 of them are 6 ms of capture: any stall of the loop longer
than that blocked every worker and added to the tick→ack latency.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class HandoffClosed(Exception):  # noqa: N818 - a state, not an error
    """The consumer side is gone; producers must stop."""


class Handoff(Generic[T]):
    """At most ``maxsize`` items and, with ``max_weight``, at most that much
    ``weight(item)`` in total (an item heavier than the bound still passes alone)."""

    def __init__(
        self,
        maxsize: int,
        *,
        max_weight: int | None = None,
        weight: Callable[[T], int] | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        if (max_weight is None) != (weight is None):
            raise ValueError("max_weight and weight go together")
        if max_weight is not None and max_weight < 1:
            raise ValueError("max_weight must be >= 1")
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._max_weight = max_weight
        self._weight_of = weight
        self._weight = 0
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._waiting = 0  # producers waiting for room
        self._sleeping = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()
        self._unfinished = 0
        #: Loop-side producers refused by :meth:`try_put`, called back on room.
        self._room_waiters: list[Callable[[], None]] = []

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the consumer runs on; must be called before the first ``put``."""
        self._loop = loop

    # -------------------------------------------------------------- producer threads
    def put(self, item: T) -> None:
        """Hand ``item`` over, waiting while the hand-off is full; raises HandoffClosed."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("Handoff.bind(loop) was not called")
        weight = self._weight_of(item) if self._weight_of is not None else 0
        with self._lock:
            while self._full() and not self._closed:
                if loop.is_closed():
                    raise HandoffClosed
                self._waiting += 1
                try:
                    self._not_full.wait(0.5)
                finally:
                    self._waiting -= 1
            if self._closed:
                raise HandoffClosed
            self._items.append(item)
            self._weight += weight
            wake = self._sleeping
            self._sleeping = False
        if wake:
            loop.call_soon_threadsafe(self._ready.set)

    def try_put(self, item: T, on_room: Callable[[], None]) -> bool:
        """Hand ``item`` over from the loop's own thread, never waiting: False when the
        hand-off is full, and then ``on_room`` is called (soon, on the loop) once the
        consumer took something. Raises HandoffClosed."""
        weight = self._weight_of(item) if self._weight_of is not None else 0
        with self._lock:
            if self._closed:
                raise HandoffClosed
            if self._full():
                self._room_waiters.append(on_room)
                return False
            self._items.append(item)
            self._weight += weight
            wake = self._sleeping
            self._sleeping = False
        if wake:
            self._ready.set()
        return True

    def _full(self) -> bool:
        items = self._items
        if len(items) >= self._maxsize:
            return True
        return self._max_weight is not None and bool(items) and self._weight >= self._max_weight

    # -------------------------------------------------------------- the consumer (loop)
    async def take(self, at_most: int | None = None, *, max_weight: int | None = None) -> list[T]:
        """What was handed over so far (at least one item, at most ``at_most`` items and,
        with a weight function, at most ``max_weight`` in total unless the first item
        alone is heavier), oldest first.

        The consumer takes a whole burst at once (one lock, one wake-up for all of it);
        the weight budget keeps a backlog of large batches from being taken in one go.
        """
        weight_of = self._weight_of
        while True:
            with self._lock:
                queued = self._items
                if queued:
                    whole = (at_most is None or len(queued) <= at_most) and (
                        max_weight is None or weight_of is None or self._weight <= max_weight
                    )
                    if whole:
                        items = list(queued)
                        queued.clear()
                        taken_weight = self._weight
                    else:
                        items, taken_weight = self._pop_some(at_most, max_weight)
                    self._sleeping = False
                    self._weight -= taken_weight
                    if self._waiting:
                        self._not_full.notify(len(items))
                    waiters, self._room_waiters = self._room_waiters, []
                    break
                self._sleeping = True
                self._ready.clear()
            await self._ready.wait()
        self._unfinished += len(items)
        if waiters:
            loop = asyncio.get_running_loop()
            for on_room in waiters:
                loop.call_soon(on_room)
        return items

    def _pop_some(self, at_most: int | None, max_weight: int | None) -> tuple[list[T], int]:
        """Pop from the front within both budgets (under the lock); at least one item."""
        queued, weight_of = self._items, self._weight_of
        count = len(queued) if at_most is None else min(at_most, len(queued))
        items: list[T] = []
        total = 0
        while len(items) < count:
            w = weight_of(queued[0]) if weight_of is not None else 0
            if items and max_weight is not None and total + w > max_weight:
                break
            items.append(queued.popleft())
            total += w
        return items, total

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
        """Refuse further items; blocked producers give up at once."""
        with self._lock:
            self._closed = True
            self._not_full.notify_all()
            waiters, self._room_waiters = self._room_waiters, []
        loop = self._loop
        if loop is not None and not loop.is_closed():
            for on_room in waiters:  # on the loop: they find it closed and give up
                loop.call_soon_threadsafe(on_room)
