"""The one event loop: qasync's Qt-driven asyncio loop, with two gaps closed.

qasync runs asyncio callbacks (task steps, timers, socket readiness) from Qt timer
events. Qt delivers those whenever *anyone* pumps events:

* while the asyncio loop is not "running": the last ``processEvents`` pass of
  ``run_until_complete``, a ``QApplication.processEvents()`` between two
  ``run_until_complete`` calls (pytest-qt does that between a test and its fixtures'
  tear-down), a modal dialog. Code in such a callback that asks for the running loop
  (``asyncio.sleep``, ``get_running_loop``) then fails with "no running event loop".
  Every callback run outside ``run_forever`` is therefore marked as running on this loop.
* *inside* a task's step: anything that pumps Qt events from a coroutine
  (``QApplication.processEvents()``, ``QTest`` mouse and key helpers, a nested
  ``QEventLoop.exec()``) makes Qt fire the timers of other callbacks in the middle of
  that step. asyncio cannot step a second task while one is executing: the nested
  wake-up raises "Cannot enter into task … while another task … is being executed", the
  wake-up is consumed, and that task is never resumed. Tasks orphaned like this (the
  collector, a worker's supervisor) then hold up everything that waits for them — a
  Ctrl+R that never finished restarting was this. Callbacks that Qt delivers while a
  task is executing are therefore held back and handed to Qt again, in order, once the
  step that pumped the events has returned, as asyncio's own loop would run them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import qasync


class GuiEventLoop(qasync.QEventLoop):  # type: ignore[misc]  # qasync is untyped
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Callbacks Qt delivered inside another task's step, oldest first.
        self._held: list[asyncio.Handle] = []

    def _add_callback(self, handle: asyncio.Handle, delay: float = 0) -> Any:
        handle._callback = self._guarded(handle, handle._callback)  # type: ignore[attr-defined]
        return super()._add_callback(handle, delay)

    def _guarded(self, handle: asyncio.Handle, callback: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            if asyncio.events._get_running_loop() is None:
                asyncio.events._set_running_loop(self)
                try:
                    return self._run_then_release(callback, args)
                finally:
                    asyncio.events._set_running_loop(None)
            if asyncio.current_task(self) is not None:
                # Delivered by events pumped inside a task's step: run it after the step.
                self._held.append(handle)
                return None
            return self._run_then_release(callback, args)

        return run

    def _run_then_release(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        try:
            return callback(*args)
        finally:
            if self._held and asyncio.current_task(self) is None:
                held, self._held = self._held, []
                for handle in held:
                    # Its callback is still guarded; a cancelled one is skipped by qasync.
                    qasync.QEventLoop._add_callback(self, handle, 0)
