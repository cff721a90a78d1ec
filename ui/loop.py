"""The one event loop: qasync's Qt-driven asyncio loop, with one gap closed.

``qasync.QEventLoop.run_until_complete`` processes Qt's pending events once more after
the future is done, *after* it has unset the running loop. Timers and thread callbacks
delivered in that last pass run asyncio code (``asyncio.sleep``, ``get_running_loop``)
that then finds no running loop and fails. It shows whenever a loop is run more than
once (pytest-asyncio runs fixture set-up, the test and tear-down as separate
``run_until_complete`` calls) and at the application's last pass. This subclass keeps
the loop marked as running through that pass.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ui  # noqa: F401 - PySide6 before qasync
import qasync


class GuiEventLoop(qasync.QEventLoop):  # type: ignore[misc]  # qasync is untyped
    def run_forever(self) -> Any:
        try:
            return super().run_forever()
        finally:
            # Still "running" for run_until_complete's final processEvents pass.
            asyncio.events._set_running_loop(self)

    def run_until_complete(self, future: Any) -> Any:
        try:
            return super().run_until_complete(future)
        finally:
            asyncio.events._set_running_loop(None)
