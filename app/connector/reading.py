"""Reading the worker pipes: batches into the collector's hand-off, in order, and the
supervisor's cursors moved past each one once it is there (``app/connector/pool.py``
restarts a worker from them).

Two ways, the same rules: :meth:`PipeReading.on_loop` on asyncio's own selector loop
(``app/connector/loop_reader.py``: one wake-up per batch), and :meth:`PipeReading.thread`,
a thread per worker, elsewhere (Windows pipes, the window's qasync loop). While the
hand-off is full the reader is held back (``slot.held``): the pipe fills, the worker
blocks in its send, and that silence is not a stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from multiprocessing.connection import Connection

from app.clock import Clock
from app.connector import wire
from app.connector.calls import PendingCalls
from app.connector.handoff import Handoff, HandoffClosed
from app.connector.loop_reader import LoopReader
from app.connector.slot import Slot
from app.ticks import TickBatch

#: The pool's logger: a worker's garbage is the pool's event, wherever it was read.
log = logging.getLogger("app.connector.pool")


class PipeReading:
    """Reads for one pool: its hand-off (``sink``), clock and status handler."""

    def __init__(
        self,
        sink: Handoff[TickBatch],
        clock: Clock,
        on_status: Callable[[Slot, wire.StatusMsg], None],
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._on_status = on_status

    def thread(
        self,
        slot: Slot,
        conn: Connection,
        loop: asyncio.AbstractEventLoop,
        ended: asyncio.Event,
        calls: PendingCalls,
    ) -> None:
        """Drain one worker's pipe until EOF (its death), feeding the sink in order."""
        try:
            while True:
                try:
                    data = conn.recv_bytes()
                except (EOFError, OSError):
                    return
                slot.last_message_at = self._clock.monotonic()
                try:
                    msg = wire.decode(data)
                except wire.WireError as exc:
                    log.error("worker %d sent garbage (%s); restarting it", slot.worker_id, exc)
                    slot.last_error = (0, f"bad message from worker: {exc}")
                    if slot.process is not None:
                        slot.process.kill()
                    return
                if isinstance(msg, TickBatch):
                    with slot.lock:
                        removed = msg.symbol not in slot.cursors
                    if removed:
                        # The last batches of a symbol just removed (remove_symbol), sent
                        # before the process was told: not captured any more, dropped.
                        continue
                    # While the hand-off is full (the link paused intake) the worker is
                    # held back on purpose: that silence is not a stall.
                    slot.held = True
                    try:
                        if not self._hand_over(msg):
                            return
                    finally:
                        slot.held = False
                        slot.last_message_at = self._clock.monotonic()
                    self._handed_over(slot, msg)
                elif isinstance(msg, wire.StatusMsg):
                    loop.call_soon_threadsafe(self._on_status, slot, msg)
                elif isinstance(msg, wire.ReplyMsg):
                    loop.call_soon_threadsafe(calls.resolve, msg.id, msg.result, msg.error)
        finally:
            # A loop that is already closed has nobody left waiting for this.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_reader_end, slot, calls)
                loop.call_soon_threadsafe(ended.set)

    def on_loop(
        self,
        slot: Slot,
        conn: Connection,
        loop: asyncio.AbstractEventLoop,
        ended: asyncio.Event,
        calls: PendingCalls,
    ) -> LoopReader:
        """What :meth:`thread` does, on the loop (``app/connector/loop_reader.py``): one
        wake-up per batch instead of a thread's and then the loop's."""

        def on_message(data: bytes | bytearray) -> bool:
            slot.last_message_at = self._clock.monotonic()
            try:
                msg = wire.decode(data)
            except wire.WireError as exc:
                log.error("worker %d sent garbage (%s); restarting it", slot.worker_id, exc)
                slot.last_error = (0, f"bad message from worker: {exc}")
                if slot.process is not None:
                    slot.process.kill()
                reader.close()
                on_end()
                return True
            if isinstance(msg, TickBatch):
                with slot.lock:
                    if msg.symbol not in slot.cursors:
                        return True  # a symbol just removed (see thread): dropped
                try:
                    if not self._sink.try_put(msg, reader.resume):
                        slot.held = True  # back-pressure, not a stall (see thread)
                        return False
                except HandoffClosed:
                    reader.close()
                    on_end()
                    return True
                slot.held = False
                self._handed_over(slot, msg)
            elif isinstance(msg, wire.StatusMsg):
                self._on_status(slot, msg)
            elif isinstance(msg, wire.ReplyMsg):
                calls.resolve(msg.id, msg.result, msg.error)
            return True

        def on_end() -> None:
            self._on_reader_end(slot, calls)
            ended.set()

        reader = LoopReader(loop, conn, on_message, on_end)
        return reader

    def _handed_over(self, slot: Slot, batch: TickBatch) -> None:
        """A batch is in the collector's queue: the supervisor's cursor moves past it."""
        with slot.lock:
            cursor = slot.cursors.get(batch.symbol)
            if cursor is not None:  # None: removed while this batch was handed
                cursor.advance(batch.ticks)
        slot.ticks += len(batch.ticks)
        slot.batches += 1
        slot.last_tick_msc = batch.last_msc

    @staticmethod
    def _on_reader_end(slot: Slot, calls: PendingCalls) -> None:
        """The process is gone (or unreadable): its unanswered calls fail now, and no
        new call is sent to it (both on the loop, so no call slips in between)."""
        if slot.calls is calls:
            slot.ready = False
        calls.fail_all(f"worker {slot.worker_id} ended before replying")

    def _hand_over(self, batch: TickBatch) -> bool:
        """Give a batch to the collector, waiting for room; False once nobody consumes."""
        try:
            self._sink.put(batch)
        except HandoffClosed:
            return False
        return True
