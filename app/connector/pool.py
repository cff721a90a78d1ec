"""The connector pool: N worker processes, supervised from the asyncio loop.

Each worker owns one terminal connection. The supervisor keeps a health state per
worker, restarts a dead or stalled one after the project's backoff policy, and hands
every restarted worker the cursor of the last tick that *reached the collector*, so a
crash costs neither a gap nor a duplicate. Batches flow into one bounded hand-off to the
loop; when it is full the reader blocks, the pipe fills, the worker blocks, and the ticks wait
in the terminal's own history: back-pressure without loss.

:meth:`ConnectorPool.call` runs one terminal API call (an order, an account read) in a
worker connected to that terminal and awaits its reply (``app/connector/calls.py``);
it never sends a call twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.context
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from app.backoff import Backoff, BackoffPolicy
from app.clock import SYSTEM_CLOCK, Clock
from app.connector import wire
from app.connector.calls import (
    CALLABLE_METHODS,
    CallTimeout,
    NotConnected,
    PendingCalls,
    WorkerGone,
)
from app.connector.capture import CaptureCursor
from app.connector.handoff import Handoff
from app.connector.health import WorkerHealth, WorkerState
from app.connector.loop_reader import LoopReader
from app.connector.loop_reader import usable as loop_reader_usable
from app.connector.process_start import discard, start_process, worker_context
from app.connector.reading import PipeReading
from app.connector.slot import Slot as _Slot
from app.connector.worker import EXIT_FATAL, EXIT_STOPPED, WorkerSpec, worker_main
from app.ticks import TickBatch

log = logging.getLogger(__name__)

#: A worker that streamed at least this long before dying starts its backoff afresh.
_STABLE_AFTER = 10.0
#: How often the supervisor looks at its workers (stall checks, intents).
_TICK = 0.1
#: How often a call waiting for a connected worker looks again.
_CALL_WAIT_STEP = 0.02


class ConnectorPool:
    def __init__(
        self,
        specs: Sequence[WorkerSpec],
        sink: Handoff[TickBatch],
        *,
        policy: BackoffPolicy | None = None,
        stall_timeout: float = 10.0,
        connect_timeout: float = 90.0,
        stop_timeout: float = 5.0,
        start_msc: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if len({s.worker_id for s in specs}) != len(specs):
            raise ValueError("worker ids must be unique")
        self._clock = clock
        start = start_msc if start_msc is not None else int(clock.time() * 1000)
        self._slots = {
            s.worker_id: _Slot(
                s,
                {sym: CaptureCursor(*s.cursors.get(sym, (start, 0))) for sym in s.symbols},
            )
            for s in specs
        }
        self._sink = sink
        self._readers = PipeReading(sink, clock, self._on_status)
        self._policy = policy or BackoffPolicy()
        self._stall_timeout = stall_timeout
        self._connect_timeout = connect_timeout
        self._stop_timeout = stop_timeout
        self._ctx = worker_context()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Called on the loop with (terminal name, info) of every "streaming" status.
        self.on_streaming: Callable[[str, Mapping[str, Any]], object] | None = None

    # ---------------------------------------------------------------- public API
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._sink.bind(self._loop)
        for slot in self._slots.values():
            slot.task = asyncio.create_task(
                self._supervise(slot), name=f"supervise-worker-{slot.worker_id}"
            )

    async def stop(self) -> None:
        """Stop every worker; the ticks they already sent are still delivered to the sink."""
        self._stopping = True
        for slot in self._slots.values():
            slot.wake.set()
        tasks = [s.task for s in self._slots.values() if s.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    def health(self) -> list[WorkerHealth]:
        now = self._clock.monotonic()
        out = []
        for slot in self._slots.values():
            proc = slot.process
            since = slot.streaming_since
            out.append(
                WorkerHealth(
                    worker_id=slot.worker_id,
                    terminal=slot.spec.terminal.name,
                    symbols=slot.spec.symbols,
                    state=slot.state,
                    pid=proc.pid if proc is not None and proc.is_alive() else None,
                    ticks=slot.ticks,
                    batches=slot.batches,
                    reconnects=slot.reconnects,
                    uptime=now - since if since is not None else 0.0,
                    last_error_code=slot.last_error[0],
                    last_error_text=slot.last_error[1],
                    last_tick_msc=slot.last_tick_msc,
                    enabled=slot.enabled,
                    server_time_zone=slot.server_time_zone,
                    server_offset_s=slot.server_offset_s,
                )
            )
        return out

    def cursors(self) -> dict[str, tuple[int, int]]:
        """Where capture stands per symbol: the resume point of the whole pool."""
        out: dict[str, tuple[int, int]] = {}
        for slot in self._slots.values():
            with slot.lock:
                out.update({sym: c.as_tuple() for sym, c in slot.cursors.items()})
        return out

    def restart(self, worker_id: int) -> None:
        """Reconnect a worker now, skipping any backoff wait (user intent)."""
        slot = self._slots[worker_id]
        slot.enabled = True
        slot.restart_requested = True
        slot.wake.set()

    def add_symbol(self, worker_id: int, symbol: str, start_msc: int | None = None) -> WorkerSpec:
        """Give worker ``worker_id`` one more symbol, captured from ``start_msc`` (default
        now), and restart that worker alone: the new process is planned with it, the
        others keep streaming. Returns the worker's new spec."""
        slot = self._slots[worker_id]
        start = start_msc if start_msc is not None else int(self._clock.time() * 1000)
        with slot.lock:
            if symbol not in slot.cursors:
                slot.cursors[symbol] = CaptureCursor(start, 0)
            slot.spec = replace(slot.spec, symbols=(*slot.spec.symbols, symbol))
        self.restart(worker_id)
        return slot.spec

    async def call(
        self, target: str | int, method: str, timeout: float, *args: Any, **kwargs: Any
    ) -> Any:
        """Call ``method`` of the terminal API in a worker and return its answer.

        ``target`` is a terminal name (served by the lowest-numbered worker of that
        terminal that is connected: deterministic, so one terminal's calls go through
        one process while it lives) or a worker id. Waits up to ``timeout`` for such a
        worker (:class:`NotConnected`: nothing was sent) and then for the reply
        (:class:`CallTimeout`); a worker that ends first raises :class:`WorkerGone`; a
        ``None`` answer raises ``TerminalCallError`` with the terminal's code and text.
        Never re-sends: after a timeout or a lost worker the caller must find out what
        happened in the terminal (for an order: ``app/trading/router.py``).
        """
        if method not in CALLABLE_METHODS:
            raise ValueError(f"{method} is not callable through a worker")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        slot = await self._slot_for_call(target, deadline)
        calls, conn = slot.calls, slot.conn
        assert conn is not None
        call_id, future = calls.open(method)
        try:
            conn.send_bytes(wire.encode(wire.CallMsg(call_id, method, kwargs, args)))
        except OSError as exc:
            calls.forget(call_id)
            raise WorkerGone(f"{method}: worker {slot.worker_id} gone ({exc})") from exc
        try:
            return await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
        except TimeoutError:
            calls.forget(call_id)
            raise CallTimeout(
                f"{method}: no answer from worker {slot.worker_id} within {timeout:g} s"
            ) from None

    def serving_worker(self, target: str | int) -> int | None:
        """The worker a call to ``target`` would go to now (None: none connected)."""
        ready = [
            s
            for s in self._slots.values()
            if s.ready and target in (s.worker_id, s.spec.terminal.name)
        ]
        return min(ready, key=lambda s: s.worker_id).worker_id if ready else None

    async def _slot_for_call(self, target: str | int, deadline: float) -> _Slot:
        known = [s for s in self._slots.values() if target in (s.worker_id, s.spec.terminal.name)]
        if not known:
            raise NotConnected(f"no worker of the pool serves {target!r}")
        loop = asyncio.get_running_loop()
        while True:
            worker_id = self.serving_worker(target)
            if worker_id is not None:
                return self._slots[worker_id]
            if loop.time() >= deadline or self._stopping:
                states = ", ".join(f"{s.worker_id}: {s.state}" for s in known)
                raise NotConnected(f"no worker connected to {target!r} ({states})")
            await asyncio.sleep(_CALL_WAIT_STEP)

    def remove_symbol(self, worker_id: int, symbol: str) -> WorkerSpec:
        """Stop capturing ``symbol`` on worker ``worker_id``: its cursor is dropped and
        that worker alone restarts without it (parked, ``stopped``, when it had no other
        symbol). Returns the worker's new spec."""
        slot = self._slots[worker_id]
        with slot.lock:
            slot.cursors.pop(symbol, None)
            slot.spec = replace(
                slot.spec, symbols=tuple(s for s in slot.spec.symbols if s != symbol)
            )
        if slot.spec.symbols:
            self.restart(worker_id)
        else:
            self.disable(worker_id)
        return slot.spec

    def disable(self, worker_id: int) -> None:
        slot = self._slots[worker_id]
        slot.enabled = False
        slot.wake.set()

    def enable(self, worker_id: int) -> None:
        slot = self._slots[worker_id]
        slot.enabled = True
        slot.wake.set()

    # ---------------------------------------------------------------- supervision
    async def _supervise(self, slot: _Slot) -> None:
        backoff = Backoff(self._policy)
        while not self._stopping:
            if not slot.enabled:
                slot.state = WorkerState.STOPPED
                await self._sleep_until_woken(slot, None)
                continue
            slot.restart_requested = False
            exit_code, streamed_for = await self._run_process(slot)
            if self._stopping:
                break
            if slot.restart_requested or not slot.enabled:
                backoff.reset()
                continue
            slot.reconnects += 1
            if exit_code == EXIT_FATAL:
                slot.state = WorkerState.FAILED
                log.error("worker %d failed: %s", slot.worker_id, slot.last_error[1])
                await self._sleep_until_woken(slot, None)
                backoff.reset()
                continue
            if streamed_for >= _STABLE_AFTER:
                backoff.reset()
            delay = backoff.next_delay()
            slot.state = WorkerState.BACKING_OFF
            log.warning(
                "worker %d ended (exit %s, %s); reconnecting in %.2f s",
                slot.worker_id,
                exit_code,
                slot.last_error[1] or "no error reported",
                delay,
            )
            await self._sleep_until_woken(slot, delay)
        slot.state = WorkerState.STOPPED

    async def _sleep_until_woken(self, slot: _Slot, timeout: float | None) -> None:
        slot.wake.clear()
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(slot.wake.wait(), timeout)

    async def _run_process(self, slot: _Slot) -> tuple[int | None, float]:
        """Run one worker process to its end; returns its exit code and streaming time."""
        loop = asyncio.get_running_loop()
        with slot.lock:
            cursors = {sym: c.as_tuple() for sym, c in slot.cursors.items()}
        spec = replace(slot.spec, cursors=cursors)
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=worker_main,
            args=(spec, child_conn),
            name=f"mt5-worker-{slot.worker_id}",
            daemon=True,
        )
        slot.state = WorkerState.CONNECTING
        slot.streaming_since = None
        slot.last_message_at = self._clock.monotonic()
        slot.ready = False
        slot.calls = calls = PendingCalls()
        await start_process(proc, child_conn)  # spawning is slow: on a thread, not the loop
        slot.process, slot.conn = proc, parent_conn
        ended = asyncio.Event()
        reader: threading.Thread | LoopReader
        if loop_reader_usable(loop, parent_conn):
            reader = self._readers.on_loop(slot, parent_conn, loop, ended, calls)
        else:
            reader = threading.Thread(
                target=self._readers.thread,
                args=(slot, parent_conn, loop, ended, calls),
                name=f"read-worker-{slot.worker_id}",
                daemon=True,
            )
            reader.start()
        stop_sent_at: float | None = None
        try:
            while not ended.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), _TICK)
                if ended.is_set():
                    break
                now = self._clock.monotonic()
                leaving = self._stopping or slot.restart_requested or not slot.enabled
                if leaving and stop_sent_at is None:
                    stop_sent_at = now
                    with contextlib.suppress(OSError):
                        parent_conn.send_bytes(wire.STOP_BYTES)
                elif stop_sent_at is not None and now - stop_sent_at > self._stop_timeout:
                    log.warning("worker %d ignored stop; killing it", slot.worker_id)
                    proc.kill()
                elif stop_sent_at is None:
                    self._check_stall(slot, proc, now)
            await asyncio.to_thread(proc.join)
            if isinstance(reader, threading.Thread):
                await asyncio.to_thread(reader.join)
        except asyncio.CancelledError:
            discard(proc)  # the loop is going away: the worker must not outlive it
            raise
        finally:
            if isinstance(reader, LoopReader):
                reader.close()
        parent_conn.close()
        streamed_for = (
            self._clock.monotonic() - slot.streaming_since if slot.streaming_since else 0.0
        )
        slot.streaming_since = None
        exit_code = proc.exitcode
        if exit_code not in (EXIT_STOPPED, None) and not slot.last_error[1]:
            slot.last_error = (0, f"worker process ended with exit code {exit_code}")
        return exit_code, streamed_for

    def _check_stall(
        self, slot: _Slot, proc: multiprocessing.process.BaseProcess, now: float
    ) -> None:
        if slot.held:
            return  # back-pressure, not a hung terminal (app/connector/reading.py)
        limit = self._stall_timeout if slot.streaming_since else self._connect_timeout
        silent = now - slot.last_message_at
        if silent > limit:
            slot.state = WorkerState.STALLED
            slot.last_error = (0, f"terminal did not answer for {silent:.1f} s")
            log.warning("worker %d stalled (%.1f s silent); killing it", slot.worker_id, silent)
            proc.kill()

    def _on_status(self, slot: _Slot, msg: wire.StatusMsg) -> None:
        if msg.error_code or msg.error_text:
            slot.last_error = (msg.error_code, msg.error_text)
        # Logged in (streaming, offline, or detecting the server's clock): calls served.
        slot.ready = msg.state in ("streaming", "offline", "detecting")
        if msg.state == "streaming":
            zone, offset = msg.info.get("server_time_zone"), msg.info.get("server_offset_s")
            slot.server_time_zone = zone if isinstance(zone, str) else None
            slot.server_offset_s = offset if isinstance(offset, int) else None
            if self.on_streaming is not None:  # the zone, also when only it changed
                self.on_streaming(slot.spec.terminal.name, msg.info)
            if slot.state is WorkerState.STREAMING:
                return  # a new offset (DST, re-detected): the stream goes on
            back = slot.state is WorkerState.OFFLINE
            slot.state = WorkerState.STREAMING
            if slot.streaming_since is None:  # not reset by a return from "offline"
                slot.streaming_since = self._clock.monotonic()
            slot.last_error = (0, "")
            log.info(
                "worker %d %s %s (server time %s)",
                slot.worker_id,
                "back online, streaming" if back else "streaming",
                ", ".join(slot.spec.symbols),
                slot.server_time_zone,
            )
        elif msg.state == "offline":
            slot.state = WorkerState.OFFLINE
            if slot.streaming_since is None:
                slot.streaming_since = self._clock.monotonic()
            log.warning("worker %d: %s", slot.worker_id, msg.error_text)
        elif msg.state in ("connecting", "detecting"):
            # Detecting: logged in, waiting for a fresh tick to learn the server's clock
            # (app/connector/worker.py); shown as connecting, nothing is polled yet.
            slot.state = WorkerState.CONNECTING
            slot.streaming_since = None
            slot.server_time_zone = slot.server_offset_s = None
        elif msg.state in ("error", "failed"):
            # The worker is on its way out; do not show it as streaming meanwhile.
            slot.state = WorkerState.FAILED if msg.state == "failed" else WorkerState.BACKING_OFF


def spread_symbols(symbols: Sequence[str], workers: int) -> list[tuple[str, ...]]:
    """Deal symbols round-robin over at most ``workers`` connections, none left empty."""
    n = max(1, min(workers, len(symbols)))
    return [tuple(symbols[i::n]) for i in range(n)]
