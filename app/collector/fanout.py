"""Fan-out of published items to subscribers that can never stall the producer.

Capture must not lose ticks because the UI is repainting or the bridge link is
reconnecting, so :meth:`FanOut.publish` never waits:

* callback subscribers run inline and must return fast; an exception is logged (rate
  limited, a broken subscriber at hundreds of batches per second must not flood the
  log), counted, and does not reach the producer or the other subscribers;
* queue subscribers get a bounded queue each; when it is full the *oldest* item is
  dropped and counted, because for live data the newest is the one worth showing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

_log = logging.getLogger(__name__)

#: After the first error of a subscriber, log only every this many.
_LOG_EVERY = 1000


class CallbackSubscription(Generic[T]):
    """A sync callable called with every published item until :meth:`close`."""

    __slots__ = ("_active", "_fanout", "callback", "errors", "name")

    def __init__(self, fanout: FanOut[T], callback: Callable[[T], object], name: str) -> None:
        self._fanout = fanout
        self.callback = callback
        self.name = name
        self.errors = 0
        self._active = True

    @property
    def active(self) -> bool:
        return self._active

    def close(self) -> None:
        """Stop receiving items; safe to call from inside the callback and more than once."""
        if self._active:
            self._active = False
            self._fanout._detach(self)

    def __repr__(self) -> str:
        return f"CallbackSubscription({self.name!r}, errors={self.errors})"


class QueueSubscription(Generic[T]):
    """A bounded drop-oldest queue, consumed with ``async for item in sub``.

    One consumer task per subscription. Items are put from the loop thread normally;
    a put from another thread is tolerated (the waiting consumer is woken through
    ``call_soon_threadsafe``), though ``dropped`` may then be off by a few.
    """

    def __init__(self, fanout: FanOut[T] | None, maxlen: int, name: str) -> None:
        if maxlen < 1:
            raise ValueError(f"queue maxlen must be >= 1, got {maxlen}")
        self._fanout = fanout
        self.name = name
        self._items: deque[T] = deque(maxlen=maxlen)
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0
        self.received = 0

    @property
    def maxlen(self) -> int:
        maxlen = self._items.maxlen
        assert maxlen is not None
        return maxlen

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """Enqueue without ever waiting; a full queue loses its oldest item."""
        if self._closed:
            return
        items = self._items
        if len(items) == items.maxlen:
            self.dropped += 1
        items.append(item)  # deque(maxlen) evicts the oldest itself
        self.received += 1
        if self._waiter is not None:
            self._wake()

    def drain(self) -> list[T]:
        """Take every queued item at once, for a consumer that polls (e.g. a UI timer)."""
        items = list(self._items)
        self._items.clear()
        return items

    def close(self, *, immediate: bool = False) -> None:
        """Stop receiving; iteration ends once the queue is empty (at once if ``immediate``)."""
        if self._closed:
            return
        self._closed = True
        if immediate:
            self._items.clear()
        if self._fanout is not None:
            self._fanout._detach(self)
        self._wake()

    def __aiter__(self) -> QueueSubscription[T]:
        return self

    async def __anext__(self) -> T:
        while True:
            if self._items:
                return self._items.popleft()
            if self._closed:
                raise StopAsyncIteration
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        loop = waiter.get_loop()
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            waiter.set_result(None)
            return
        # A closed consumer loop raises RuntimeError: there is nobody left to wake.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_release, waiter)

    def __repr__(self) -> str:
        return (
            f"QueueSubscription({self.name!r}, queued={len(self)}/{self.maxlen}, "
            f"dropped={self.dropped}, closed={self._closed})"
        )


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class FanOut(Generic[T]):
    """Publishes each item to every callback and queue subscriber, never blocking."""

    def __init__(self) -> None:
        # Copy-on-write tuples: publish iterates without copying, and a subscriber may
        # unsubscribe (itself or another) while being called.
        self._callbacks: tuple[CallbackSubscription[T], ...] = ()
        self._queues: tuple[QueueSubscription[T], ...] = ()
        self._count = 0
        self.errors = 0
        self.published = 0

    def subscribe(
        self, callback: Callable[[T], object], name: str | None = None
    ) -> CallbackSubscription[T]:
        self._count += 1
        sub = CallbackSubscription(self, callback, name or f"callback-{self._count}")
        self._callbacks = (*self._callbacks, sub)
        return sub

    def subscribe_queue(self, maxlen: int, name: str | None = None) -> QueueSubscription[T]:
        self._count += 1
        sub = QueueSubscription(self, maxlen, name or f"queue-{self._count}")
        self._queues = (*self._queues, sub)
        return sub

    def unsubscribe(self, sub: CallbackSubscription[T] | QueueSubscription[T]) -> None:
        sub.close()

    @property
    def subscribers(self) -> tuple[CallbackSubscription[T] | QueueSubscription[T], ...]:
        return (*self._callbacks, *self._queues)

    def publish(self, item: T) -> None:
        self.published += 1
        for sub in self._callbacks:
            try:
                sub.callback(item)
            except Exception:
                sub.errors += 1
                self.errors += 1
                if sub.errors % _LOG_EVERY == 1:
                    _log.exception(
                        "subscriber %s raised (error %d of it); it keeps receiving",
                        sub.name,
                        sub.errors,
                    )
        for queue in self._queues:
            queue.put(item)

    def close(self) -> None:
        """Detach every subscriber; queue consumers finish what is queued, then stop."""
        for sub in self._callbacks:
            sub.close()
        for queue in self._queues:
            queue.close()

    def _detach(self, sub: CallbackSubscription[T] | QueueSubscription[T]) -> None:
        if isinstance(sub, CallbackSubscription):
            self._callbacks = tuple(s for s in self._callbacks if s is not sub)
        else:
            self._queues = tuple(s for s in self._queues if s is not sub)
