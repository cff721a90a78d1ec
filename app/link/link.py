"""The bridge link: every tick the collector sequenced, delivered to the data bridge.

Collector batches are coalesced into messages (cut at ``batch_max_ticks`` or after
``linger`` seconds, whichever comes first), numbered 1, 2, 3… per session, and kept in
the :class:`~app.link.spool.Spool` until the bridge acks them. After any reconnect the
bridge's ``welcome`` says what it stored and the link resends the rest, in order; the
bridge ignores a seq it already stored. So the backend sees every tick exactly once.

When the spool nears its limit, :attr:`BridgeLink.room` is cleared: the runtime stops
taking batches from the pool, which back-pressures the workers, and the ticks wait in the
terminal's own history. The policy never drops a tick; it trades latency for memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import websockets
from websockets.asyncio.client import ClientConnection, connect

from app.backoff import Backoff, BackoffPolicy
from app.collector import SequencedBatch
from app.link.spool import Spool, SpoolFull
from app.protocol import codec

log = logging.getLogger(__name__)

#: Intake pauses above this spool fill ratio and resumes below ``_RESUME_FILL``.
_PAUSE_FILL = 0.9
_RESUME_FILL = 0.7

#: Called for every acked message with (ack time, capture time of its oldest batch,
#: the ``time_msc`` of all its ticks), all wall-clock: the monitor and the pipeline
#: benchmark turn these into tick→ack latency distributions.
LatencySink = Callable[[float, float, npt.NDArray[np.int64]], None]


@dataclass(frozen=True, slots=True)
class LinkState:
    """What the UI and the monitor show about the link."""

    connected: bool
    url: str
    session: str
    backlog_batches: int
    backlog_ticks: int
    last_sent_seq: int
    last_acked_seq: int
    ticks_acked: int
    reconnects: int
    #: WebSocket ping round trip, seconds (None before the first pong).
    rtt: float | None
    spool_fill: float
    intake_paused: bool
    last_error: str


@dataclass(slots=True)
class LinkOptions:
    batch_max_ticks: int = 5_000
    linger: float = 0.002
    #: Messages sent but not yet acked, at most.
    window: int = 64
    compression: bool = False
    ping_interval: float = 5.0
    ping_timeout: float = 5.0
    open_timeout: float = 5.0
    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    ssl_context: ssl.SSLContext | None = None


class BridgeLink:
    def __init__(
        self,
        url: str,
        client_id: str,
        spool: Spool,
        options: LinkOptions | None = None,
        *,
        session: str | None = None,
        latency_sink: LatencySink | None = None,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.session = session or uuid.uuid4().hex
        self.options = options or LinkOptions()
        self._spool = spool
        self._latency_sink = latency_sink
        self._pending: list[codec.Block] = []
        self._pending_ticks = 0
        self._pending_captured_at = 0.0
        self._linger_handle: asyncio.TimerHandle | None = None
        self._next_seq = 1
        self._acked = 0
        self._sent = 0
        self._ticks_acked = 0
        #: seq -> (earliest capture time, ticks, their time_msc when a sink wants them).
        self._meta: dict[int, tuple[float, int, npt.NDArray[np.int64] | None]] = {}
        self._work = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self._ws: ClientConnection | None = None
        self._reconnects = 0
        self._last_error = ""
        self._closing = False

    # ------------------------------------------------------------ intake (collector side)
    def offer(self, item: SequencedBatch) -> None:
        """Collector callback: queue a batch for the next message. Never blocks."""
        batch = item.batch
        if not self._pending:
            self._pending_captured_at = batch.captured_at or time.time()
            loop = asyncio.get_running_loop()
            self._linger_handle = loop.call_later(self.options.linger, self.cut)
        self._pending.append(codec.Block(batch.symbol, batch.ticks))
        self._pending_ticks += len(batch.ticks)
        # Like Nagle's algorithm: an idle link sends at once (lowest latency at low
        # rates); while messages are in flight, batches gather until the size or the
        # linger cuts them (fewest messages at high rates).
        idle = self._ws is not None and self._acked == self._next_seq - 1
        if idle or self._pending_ticks >= self.options.batch_max_ticks:
            self.cut()

    def cut(self) -> None:
        """Turn the pending blocks into one numbered message in the spool."""
        if self._linger_handle is not None:
            self._linger_handle.cancel()
            self._linger_handle = None
        if not self._pending:
            return
        seq = self._next_seq
        payload = codec.encode_ticks(seq, self._pending)
        try:
            self._spool.append(seq, payload, self._pending_ticks)
        except SpoolFull:
            # Keep the blocks pending (nothing is dropped) and stop intake until acks
            # make room; the next cut retries.
            self._update_room(force_pause=True)
            loop = asyncio.get_running_loop()
            self._linger_handle = loop.call_later(0.05, self.cut)
            return
        times = None
        if self._latency_sink is not None:
            times = np.concatenate([b.ticks["time_msc"] for b in self._pending])
        self._meta[seq] = (self._pending_captured_at, self._pending_ticks, times)
        self._next_seq += 1
        self._pending = []
        self._pending_ticks = 0
        self._update_room()
        self._work.set()

    def _update_room(self, force_pause: bool = False) -> None:
        fill = self._spool.fill_ratio
        if force_pause or fill >= _PAUSE_FILL:
            if self.room.is_set():
                log.warning(
                    "spool %.0f %% full: pausing intake until the bridge catches up", fill * 100
                )
            self.room.clear()
        elif fill <= _RESUME_FILL and not self.room.is_set():
            log.info("spool back to %.0f %%: intake resumed", fill * 100)
            self.room.set()

    # ------------------------------------------------------------ state
    @property
    def state(self) -> LinkState:
        ws = self._ws
        return LinkState(
            connected=ws is not None,
            url=self.url,
            session=self.session,
            backlog_batches=len(self._spool),
            backlog_ticks=self._spool.ticks + self._pending_ticks,
            last_sent_seq=self._sent,
            last_acked_seq=self._acked,
            ticks_acked=self._ticks_acked,
            reconnects=self._reconnects,
            rtt=ws.latency if ws is not None and ws.latency else None,
            spool_fill=self._spool.fill_ratio,
            intake_paused=not self.room.is_set(),
            last_error=self._last_error,
        )

    async def drain(self, timeout: float) -> bool:
        """Cut what is pending and wait until the bridge acked everything; False on timeout."""
        self.cut()
        deadline = time.monotonic() + timeout
        while self._acked < self._next_seq - 1:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    # ------------------------------------------------------------ connection
    async def run(self) -> None:
        """Connect, stream, and reconnect after the backoff policy, until cancelled."""
        backoff = Backoff(self.options.policy)
        while True:
            try:
                await self._session(backoff)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                self._note_error(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            except codec.ProtocolError as exc:
                self._note_error(f"bridge broke the protocol ({exc.code}): {exc}")
            except Exception as exc:  # a bug must not end delivery for the whole run
                log.exception("bridge link failed unexpectedly")
                self._note_error(f"internal error: {type(exc).__name__}: {exc}")
            finally:
                self._ws = None
            self._reconnects += 1
            delay = backoff.next_delay()
            log.info("bridge link down; reconnecting in %.2f s", delay)
            await asyncio.sleep(delay)

    def _note_error(self, text: str) -> None:
        if text != self._last_error:
            log.warning("bridge link %s: %s", self.url, text)
        self._last_error = text

    async def _session(self, backoff: Backoff) -> None:
        opts = self.options
        async with connect(
            self.url,
            compression="deflate" if opts.compression else None,
            max_size=codec.MAX_FRAME_BYTES,
            ping_interval=opts.ping_interval,
            ping_timeout=opts.ping_timeout,
            open_timeout=opts.open_timeout,
            ssl=opts.ssl_context,
        ) as ws:
            await ws.send(codec.encode_hello(self.client_id, self.session, self._acked))
            welcome = codec.decode(await asyncio.wait_for(ws.recv(), opts.open_timeout))
            if welcome["type"] == "error":
                raise codec.ProtocolError(str(welcome.get("code")), str(welcome.get("message")))
            if welcome["type"] != "welcome" or not isinstance(welcome.get("last_seq"), int):
                raise codec.ProtocolError(
                    "bad_message", f"expected welcome, got {welcome['type']!r}"
                )
            self._on_ack(welcome["last_seq"])
            self._ws = ws
            self._last_error = ""
            backoff.reset()
            log.info("bridge link up: %s (resuming after seq %d)", self.url, self._acked)
            # The receiver owns the session: when the socket closes, its loop ends (or
            # raises) and the sender, blocked on the spool or on ``send``, is cancelled.
            sender = asyncio.create_task(self._send_loop(ws), name="bridge-link-send")
            try:
                await self._receive_loop(ws)
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, websockets.WebSocketException):
                    await sender

    async def _send_loop(self, ws: ClientConnection) -> None:
        cursor = self._acked
        while True:
            if cursor - self._acked >= self.options.window:
                self._work.clear()
                await self._work.wait()
                continue
            nxt = self._spool.peek_next_after(max(cursor, self._acked))
            if nxt is None:
                self._work.clear()
                await self._work.wait()
                continue
            seq, payload = nxt
            await ws.send(payload, text=True)
            cursor = seq
            self._sent = max(self._sent, seq)

    async def _receive_loop(self, ws: ClientConnection) -> None:
        async for frame in ws:
            doc = codec.decode(frame)
            kind = doc["type"]
            if kind == "ack":
                seq = doc.get("seq")
                if not isinstance(seq, int):
                    raise codec.ProtocolError("bad_message", "ack without an integer seq")
                self._on_ack(seq)
            elif kind == "error":
                raise codec.ProtocolError(str(doc.get("code")), str(doc.get("message")))
            else:
                raise codec.ProtocolError("bad_message", f"unexpected {kind!r} from the bridge")
        raise websockets.ConnectionClosedOK(None, None)

    def _on_ack(self, seq: int) -> None:
        if seq > self._next_seq - 1:
            raise codec.ProtocolError(
                "bad_ack", f"bridge acked seq {seq}, but only {self._next_seq - 1} were sent"
            )
        if seq <= self._acked:
            return
        now = time.time()
        for s in range(self._acked + 1, seq + 1):
            captured_at, ticks, times = self._meta.pop(s, (now, 0, None))
            self._ticks_acked += ticks
            if self._latency_sink is not None and times is not None:
                self._latency_sink(now, captured_at, times)
        self._spool.ack(seq)
        self._acked = seq
        self._update_room()
        if self._pending and self._acked == self._next_seq - 1:
            self.cut()  # the link just went idle: what gathered meanwhile goes now
        self._work.set()

    async def close(self) -> None:
        self._closing = True
        if self._linger_handle is not None:
            self._linger_handle.cancel()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
