"""The NATS sink: every tick the collector sequenced, published into a JetStream stream.

The same link as the bridge's (:class:`~app.link.adapter.LinkAdapter`: the
:class:`~app.link.machine.LinkMachine` rules, the durable :class:`~app.link.spool.Spool`,
intake pausing, reconnect over app/backoff.py); only the transport differs. Each spooled
message ``seq`` becomes one NATS message per block (:func:`app.nats.subjects.tick_messages`),
published pipelined (``publish_async``, at most ``max_in_flight`` awaiting their ack).

**Acks in seq order.** Message ``seq`` counts as acknowledged — spool released, the
machine's cumulative ack — only when the stream acked every one of its blocks, and only
once every message before it is acknowledged too, so the spool releases a prefix exactly
as with the bridge. A publish ack with ``duplicate`` set counts: the stream stored that
block before (a resend).

**Nothing lost, nothing doubled.** Any failure — the connection drops, a publish ack
does not come within ``ack_timeout``, the cluster has no stream leader — ends the
connection; the next one resends every unacknowledged message with the same
``Nats-Msg-Id`` and JetStream drops what it already stored. After a crash the next run
resumes the spool's session and seq, so the same holds across runs.

**Frames within max_payload.** The machine cuts messages within the server's
``max_payload`` (from its INFO) less room for headers, instead of the bridge's welcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from functools import partial

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError, ServiceUnavailableError

from app.backoff import Backoff
from app.link.adapter import LatencySink, LinkAdapter, LinkOptions
from app.link.machine import Marker
from app.link.spool import Spool
from app.nats.connect import NatsOptions, open_connection
from app.nats.stream import StreamRefusedError, ensure_stream
from app.nats.subjects import OutMessage, lost_message, tick_messages
from app.protocol import codec

log = logging.getLogger(__name__)

__all__ = ["HEADER_ROOM", "NatsLink"]

#: Bytes of ``max_payload`` left for a message's headers (ids, client, session, seq).
HEADER_ROOM = 2048


class _Ended(Exception):  # noqa: N818 - a reason, not a bug
    """Why a connection ended (its text is the link's last error)."""


@dataclass(slots=True)
class _Flight:
    """One connection's publishes awaiting acks: blocks left per seq, in seq order."""

    ack_timeout: float
    #: seq -> [blocks not yet acked, when the message was published (monotonic)]
    outstanding: dict[int, list[float]] = field(default_factory=dict)
    ended: asyncio.Future[None] = field(default_factory=asyncio.Future)
    duplicates: int = 0

    def fail(self, reason: BaseException) -> None:
        if not self.ended.done():
            self.ended.set_exception(reason)

    def finish(self) -> None:
        """The connection is over: later failures (its close callback) change nothing."""
        if not self.ended.done():
            self.ended.set_result(None)
        elif not self.ended.cancelled():
            self.ended.exception()  # retrieved: asyncio would log it as never retrieved

    def overdue(self, now: float) -> bool:
        head = next(iter(self.outstanding.values()), None)
        return head is not None and now - head[1] > self.ack_timeout


class NatsLink(LinkAdapter):
    """Publishes the spooled messages into JetStream; the runtime drives it like
    :class:`~app.link.link.BridgeLink` (offer, cut, room, state, drain, run, close)."""

    name = "NATS sink"

    def __init__(
        self,
        nats: NatsOptions,
        client_id: str,
        spool: Spool,
        options: LinkOptions | None = None,
        *,
        latency_sink: LatencySink | None = None,
        marker: Marker | None = None,
        intake: bool = True,
    ) -> None:
        super().__init__(
            ",".join(nats.servers),
            client_id,
            spool,
            options,
            latency_sink=latency_sink,
            marker=marker,
            intake=intake,
        )
        self.nats = nats
        self._client: Client | None = None
        self._server = 0
        self._flight: _Flight | None = None
        #: Publish acks that said "duplicate" (blocks stored by an earlier attempt).
        self.duplicates = 0
        #: Most publishes seen awaiting their ack at once (bounded by ``max_in_flight``).
        self.peak_in_flight = 0

    @property
    def connected(self) -> bool:
        client = self._client
        return client is not None and client.is_connected

    # ------------------------------------------------------------ connection
    async def _session(self, backoff: Backoff) -> None:
        flight = _Flight(self.nats.ack_timeout)

        async def closed() -> None:
            flight.fail(_Ended("connection to NATS lost"))

        client, self._server = await open_connection(
            self.nats, first=self._server, on_closed=closed
        )
        try:
            js = client.jetstream(
                timeout=self.nats.ack_timeout, publish_async_max_pending=self.nats.max_in_flight
            )
            await self._check_stream(js)
            limit = max(codec.MIN_MAX_FRAME_BYTES, client.max_payload - HEADER_ROOM)
            # No welcome from NATS: resume after what this spool knows is acked; the
            # stream drops whatever of the rest it stored already (Nats-Msg-Id).
            self.machine.on_welcome(codec.Welcome(self.machine.acked, limit))
            self._sync_room()
            if self.machine.halted:
                return
            if self.machine.has_pending:
                self.cut()
            self._client, self._flight = client, flight
            self._last_error = ""
            backoff.reset()
            log.info(
                "NATS sink up: %s (stream %s, session %s, resuming after seq %d, frame limit %d)",
                client.connected_url.netloc if client.connected_url else "?",
                self.nats.stream.name,
                self.session,
                self.machine.acked,
                limit,
            )
            self._work.set()
            tasks = [
                asyncio.create_task(self._send_loop(js, flight), name="nats-sink-send"),
                asyncio.create_task(self._watch(flight), name="nats-sink-watch"),
            ]
            try:
                for task in tasks:
                    task.add_done_callback(partial(_task_ended, flight=flight))
                await asyncio.shield(flight.ended)
            finally:
                flight.finish()  # the sender stops at its next turn, whatever else happens
                await _cancel(tasks)
        finally:
            self._flight = None
            with contextlib.suppress(Exception):
                await client.close()
            flight.finish()

    async def _check_stream(self, js: JetStreamContext) -> None:
        try:
            done = await ensure_stream(js, self.nats.stream)
        except StreamRefusedError as exc:
            self.machine.halted = str(exc)
            log.error("NATS sink halted: %s", exc)
            return
        if done != "ok":
            log.info("NATS stream %s %s", self.nats.stream.name, done)

    async def _send_loop(self, js: JetStreamContext, flight: _Flight) -> None:
        machine = self.machine
        while not flight.ended.done():
            frame = machine.next_frame()
            if frame is None:
                self._work.clear()
                await self._work.wait()
                continue
            seq, messages = self._messages(frame)
            flight.outstanding[seq] = [float(len(messages)), time.monotonic()]
            if not messages:  # nothing to publish (no block): acked as it stands
                self._release(flight)
            for message in messages:
                future = await js.publish_async(
                    message.subject,
                    message.payload,
                    wait_stall=self.nats.ack_timeout,
                    headers=message.headers,
                )
                future.add_done_callback(partial(self._published, flight, seq))
                self.peak_in_flight = max(self.peak_in_flight, js.publish_async_pending())

    def _messages(self, frame: bytes) -> tuple[int, list[OutMessage]]:
        """The NATS messages of a spooled frame (a ``ticks`` message, or ``lost``)."""
        message = codec.decode_client(frame)
        if isinstance(message, codec.Ticks):
            batches = codec.ticks_batches(message)
            return message.seq, tick_messages(self.client_id, self.session, message.seq, batches)
        if isinstance(message, codec.Lost):
            lost = lost_message(
                self.client_id, self.session, message.seq, message.ticks, message.reason
            )
            return message.seq, [lost]
        raise codec.ProtocolError("bad_message", "the spool holds a frame that is no message")

    def _published(self, flight: _Flight, seq: int, future: asyncio.Future[PubAck]) -> None:
        if future.cancelled():
            return
        exc = future.exception()  # retrieved even when ignored: asyncio would log it
        if flight.ended.done():
            return  # that connection is over: the next one resends the unacked
        if exc is not None:
            flight.fail(exc)
            return
        if future.result().duplicate:
            flight.duplicates += 1
            self.duplicates += 1
        outstanding = flight.outstanding
        entry = outstanding.get(seq)
        if entry is None:
            return
        entry[0] -= 1
        self._release(flight)

    def _release(self, flight: _Flight) -> None:
        """Ack the longest prefix of messages whose blocks are all acked (cumulative)."""
        outstanding = flight.outstanding
        top = 0
        while outstanding:
            first = next(iter(outstanding))
            if outstanding[first][0] > 0:
                break
            del outstanding[first]
            top = first
        if top:
            self._on_ack(top)

    async def _watch(self, flight: _Flight) -> None:
        """End the connection when the oldest publish waits past the ack timeout."""
        period = min(1.0, self.nats.ack_timeout / 4)
        while True:
            await asyncio.sleep(period)
            if flight.overdue(time.monotonic()):
                raise _Ended(f"no publish ack within {self.nats.ack_timeout:g} s")

    def _failure(self, exc: Exception) -> str:
        if isinstance(exc, NoStreamResponseError | ServiceUnavailableError):
            return f"stream {self.nats.stream.name} not available (no leader, or missing)"
        if isinstance(exc, APIError):
            # The stream refused a message (too large, limits): the machine halts when
            # the same message is refused twice, instead of resending it forever.
            self.machine.on_refused()
            return f"the stream refused a message: {exc.description or exc}"
        if isinstance(exc, _Ended | OSError | TimeoutError | codec.ProtocolError):
            return str(exc) or type(exc).__name__
        if type(exc).__module__.startswith("nats"):
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return super()._failure(exc)

    def _session_ended(self) -> None:
        self._client = None
        self._flight = None

    async def close(self) -> None:
        await super().close()
        client = self._client
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until each has ended.

    Cancelled once is not always enough: nats-py swallows a ``CancelledError`` that
    reaches it while it hands a publish to its flusher (``Client._flush_pending``), and
    the sender then carried on — the session never ended, and the sink stalled for good
    after a node's failure. So the tasks are cancelled again until they are gone (the
    sender also stops by itself once its connection is over)."""
    for task in tasks:
        task.cancel()
    pending = {task for task in tasks if not task.done()}
    while pending:
        _, pending = await asyncio.wait(pending, timeout=0.2)
        for task in pending:
            task.cancel()
    for task in tasks:
        if not task.cancelled():
            task.exception()  # the session's reason is in the flight, not here


def _task_ended(task: asyncio.Task[None], *, flight: _Flight) -> None:
    """A sender or watcher that stops ends the connection with its reason."""
    if task.cancelled():
        return
    exc = task.exception()
    flight.fail(exc if exc is not None else _Ended("sender stopped"))
