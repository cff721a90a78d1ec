"""Run the core's coroutines from Qt slots, on the one shared loop.

A click handler cannot ``await``; it hands the coroutine to :class:`TaskRunner`, which
keeps a reference (so the task is not collected mid-flight), reports a failure as one
readable line through :attr:`TaskRunner.failed` instead of an unhandled-exception
warning, and cancels whatever is still running when the window closes.

(This replaces qasync's ``@asyncSlot``: the runner is one QObject for the whole window,
so no slot has to be an async method of a particular widget.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class TaskRunner(QObject):
    #: ``(what, message)`` when a task raised.
    failed = Signal(str, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks: set[asyncio.Task[Any]] = set()

    def run(
        self,
        coro: Coroutine[Any, Any, _T],
        what: str,
        on_done: Callable[[_T], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> asyncio.Task[_T]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[_T]) -> None:
            self._tasks.discard(t)
            if t.cancelled():
                return
            exc = t.exception()
            if exc is not None:
                if on_error is not None:
                    on_error(exc)
                else:
                    log.error("%s failed: %s: %s", what, type(exc).__name__, exc)
                    self.failed.emit(what, f"{type(exc).__name__}: {exc}")
            elif on_done is not None:
                on_done(t.result())

        task.add_done_callback(done)
        return task

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
