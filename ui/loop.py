"""The one event loop: qasync's Qt-driven asyncio loop, with one gap closed.

qasync runs asyncio callbacks (task steps, timers, socket readiness) from Qt timer
events. Qt delivers those whenever *anyone* pumps events — including while the asyncio
loop is not "running": the last ``processEvents`` pass of ``run_until_complete``, a
``QApplication.processEvents()`` between two ``run_until_complete`` calls (pytest-qt
does that between a test and its fixtures' tear-down), a modal dialog. Code in such a
callback that asks for the running loop (``asyncio.sleep``, ``get_running_loop``) then
fails with "no running event loop". This subclass marks the loop as running for the
duration of every callback it runs outside ``run_forever``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import qasync


class GuiEventLoop(qasync.QEventLoop):  # type: ignore[misc]  # qasync is untyped
    def _add_callback(self, handle: asyncio.Handle, delay: float = 0) -> Any:
        handle._callback = self._as_running(handle._callback)  # type: ignore[attr-defined]
        return super()._add_callback(handle, delay)

    def _as_running(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            if asyncio.events._get_running_loop() is not None:
                return callback(*args)
            asyncio.events._set_running_loop(self)
            try:
                return callback(*args)
            finally:
                asyncio.events._set_running_loop(None)

        return run
