"""Starting a worker process off the event loop, and never leaving an orphan behind.

Where the platform has one (Linux, macOS; not Windows, not the frozen build, whose
executable is not a Python that could run the fork server), workers and the history
helper are forked from multiprocessing's *fork server*, which imported their modules
once (:data:`PRELOAD`): a spawned child imports them itself, about 0.3 s of CPU each, and
five workers plus the helper importing at once were a second and a half of CPU on the
window's cold start (two cores). The server is a clean single-threaded process started
from this one, so a fork of it is as safe as a spawn; a child still watches this
process (its sentinel pipe), and the server exits when this process does.
:func:`warm_worker_start` starts the server early, so it imports while the window is
being built.

``Process.start()`` with the ``spawn`` method forks and execs a fresh interpreter and
pickles the worker's spec to it: about 0.5 s per worker on a loaded 2-core machine, and
on the asyncio loop that was a stall of the whole window (1.0-1.4 s with five workers at
start). :func:`start_process` runs it on a thread instead. The task awaiting it may be
cancelled meanwhile (the loop shutting down); the start cannot be undone half-way, so
the process still comes into being, and whichever side is second (the thread finishing
the start, or the cancellation) kills and reaps it: a cancelled start leaves no process.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import threading
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # ForkServerContext does not exist on Windows
    from multiprocessing.context import ForkServerContext, SpawnContext

#: What a worker and the history helper import, loaded once in the fork server.
PRELOAD = ("app.connector.worker", "app.connector.history_sources")


def _forkserver_usable() -> bool:
    frozen = bool(getattr(sys, "frozen", False))
    return not frozen and "forkserver" in multiprocessing.get_all_start_methods()


def worker_context() -> SpawnContext | ForkServerContext:
    """How worker processes start: forked from the fork server (see the module doc),
    else spawned."""
    if _forkserver_usable():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD))
        return ctx
    return multiprocessing.get_context("spawn")


def warm_worker_start() -> None:
    """Start the fork server now (a fork and exec, milliseconds; it imports
    :data:`PRELOAD` in its own process meanwhile). Idempotent; nothing without one."""
    if _forkserver_usable():
        import multiprocessing.forkserver  # noqa: PLC0415 - not on Windows

        worker_context()
        multiprocessing.forkserver.ensure_running()


async def start_process(proc: BaseProcess, child_end: Connection) -> None:
    """Start ``proc`` on a thread, then close the parent's copy of ``child_end`` (so that
    the child's death shows as EOF). An error of ``start()`` is raised here, as it was on
    the loop. Cancelled meanwhile: the process is killed as soon as it exists, without
    holding the cancellation up."""
    guard = _StartGuard(proc, child_end)
    try:
        await asyncio.to_thread(guard.start)
    except asyncio.CancelledError:
        guard.abandon()
        raise


def discard(proc: BaseProcess) -> None:
    """SIGKILL a started process and reap it on a thread (the loop never waits for it)."""
    proc.kill()
    threading.Thread(target=proc.join, name=f"reap-{proc.name}", daemon=True).start()


class _StartGuard:
    """Who kills the process of an abandoned start: the one of the two that is second."""

    def __init__(self, proc: BaseProcess, child_end: Connection) -> None:
        self._proc = proc
        self._child_end = child_end
        self._lock = threading.Lock()
        self._started = False
        self._abandoned = False

    def start(self) -> None:
        """On the thread. ``child_end`` is closed only here: closing it on the loop while
        ``start()`` pickles it would hand the child a closed (or reused) descriptor."""
        self._proc.start()
        self._child_end.close()
        with self._lock:
            self._started = True
            if not self._abandoned:
                return
        self._proc.kill()
        self._proc.join()

    def abandon(self) -> None:
        """On the loop, when the awaiting task is cancelled."""
        with self._lock:
            self._abandoned = True
            if not self._started:
                return  # the thread kills it once it exists
        discard(self._proc)
