"""The window's event loop when something pumps Qt events inside a coroutine.

A coroutine that pumps Qt events (``processEvents``, ``QTest``'s mouse helpers, a nested
``QEventLoop``) made qasync run other tasks' wake-ups in the middle of its step; asyncio
refused them ("Cannot enter into task") and those tasks were never resumed. That
orphaned the collector and the workers' supervisors in the chart test, and its Ctrl+R
then waited for them forever. Truth here: each task's own result, reached within a
deadline, and the order asyncio promises (callbacks never run inside a step).
"""

from __future__ import annotations

import asyncio

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

DEADLINE_S = 5.0


async def _finished(tasks: list[asyncio.Future[str]]) -> list[str]:
    """The tasks' results once all are done, or a failure naming how many are stuck.

    (``asyncio.wait``, not ``wait_for``: an orphaned task cannot even be cancelled, so
    ``wait_for`` would hang on it instead of failing.)"""
    _, pending = await asyncio.wait(tasks, timeout=DEADLINE_S)
    assert not pending, f"{len(pending)} of {len(tasks)} tasks never resumed"
    return [t.result() for t in tasks]


async def _waiter(event: asyncio.Event, seen: list[str]) -> str:
    await event.wait()
    seen.append("waiter resumed")
    return "woken"


async def test_a_task_woken_while_another_pumps_events_is_resumed() -> None:
    seen: list[str] = []
    event = asyncio.Event()
    waiter = asyncio.ensure_future(_waiter(event, seen))
    await asyncio.sleep(0)  # the waiter now sleeps on the event
    event.set()  # its wake-up is queued as a Qt timer ...
    QApplication.processEvents()  # ... which Qt delivers here, inside this task's step
    QApplication.processEvents()
    seen.append("step ended")
    assert await _finished([waiter]) == ["woken"]
    assert seen == ["step ended", "waiter resumed"]  # never inside the pumping step


async def test_many_tasks_woken_inside_a_nested_qt_loop_all_finish() -> None:
    seen: list[str] = []
    events = [asyncio.Event() for _ in range(20)]
    waiters = [asyncio.ensure_future(_waiter(e, seen)) for e in events]
    await asyncio.sleep(0)
    for event in events:
        event.set()
    nested = QEventLoop()
    QTimer.singleShot(50, nested.quit)
    nested.exec()  # a modal dialog's loop, opened from a coroutine
    seen.append("step ended")
    assert await _finished(waiters) == ["woken"] * 20
    assert seen[0] == "step ended"


async def test_a_cancelled_callback_held_back_is_not_run() -> None:
    ran: list[int] = []
    loop = asyncio.get_running_loop()
    kept = loop.call_soon(ran.append, 1)
    dropped = loop.call_soon(ran.append, 2)
    QApplication.processEvents()  # both are held back: this task is executing
    dropped.cancel()
    assert ran == []
    await asyncio.sleep(0.05)
    assert ran == [1]
    assert not kept.cancelled()
