"""The connector pool's record of one connection (``app/connector/pool.py``), shared with
the pipe readers (``app/connector/reading.py``) that update it as batches arrive."""

from __future__ import annotations

import asyncio
import multiprocessing.process
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from app.connector.calls import PendingCalls
from app.connector.capture import CaptureCursor
from app.connector.health import WorkerState
from app.connector.worker import WorkerSpec


@dataclass(slots=True)
class Slot:
    """The supervisor's record of one connection, across process restarts."""

    spec: WorkerSpec
    cursors: dict[str, CaptureCursor]
    state: WorkerState = WorkerState.STOPPED
    enabled: bool = True
    process: multiprocessing.process.BaseProcess | None = None
    conn: Connection | None = None
    ticks: int = 0
    batches: int = 0
    reconnects: int = 0
    streaming_since: float | None = None
    last_message_at: float = 0.0
    #: The reader waits for room in the hand-off (back-pressure from the link).
    held: bool = False
    last_error: tuple[int, str] = (0, "")
    last_tick_msc: int = 0
    #: The server time zone the worker reported (None: not known yet, detecting).
    server_time_zone: str | None = None
    server_offset_s: int | None = None
    restart_requested: bool = False
    #: The current process is logged in to its terminal and serves calls.
    ready: bool = False
    #: Calls sent to the current process, awaiting their replies.
    calls: PendingCalls = field(default_factory=PendingCalls)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    #: Serialises cursor updates (reader thread) with cursor reads (restart).
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def worker_id(self) -> int:
        return self.spec.worker_id
