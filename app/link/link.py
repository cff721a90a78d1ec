"""The bridge link: every tick the collector sequenced, delivered to the data bridge.

A thin asyncio adapter over :class:`~app.link.machine.LinkMachine`, which holds every
rule (numbering, cutting within the bridge's frame limit, the send window, acks, resume
after a reconnect, pausing intake, refusals). This module only runs the WebSocket, the
linger timer and the reconnect backoff, and publishes :class:`LinkState`.

Messages stay in the :class:`~app.link.spool.Spool` until the bridge acks them; after any
reconnect the bridge's ``welcome`` says what it stored and the link resends the rest, in
order; the bridge ignores a seq it already stored. With a spool directory the spool
survives a crash and the next run resumes the same session, so the backend sees every
tick exactly once.

When the spool nears its limit (or its disk fails), :attr:`BridgeLink.room` is cleared:
the runtime stops taking batches from the pool, which back-pressures the workers, and the
ticks wait in the terminal's own history. The policy never drops a tick; it trades
latency for memory.

Given a :class:`SignalPeer` (the signal desk), the link names the ``signals`` feature in
its hello and, when the welcome names it too, routes the bridge's ``signal`` and
``outcome_stored`` frames to the peer and sends the peer's frames ahead of the next tick
message (:meth:`BridgeLink.send_control`). Those frames are outside the seq numbering
and the spool: the peer resends what needs it after each welcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import CloseCode

from app.backoff import Backoff, BackoffPolicy
from app.collector import SequencedBatch
from app.link.machine import LinkMachine, MachineOptions, Marker
from app.link.spool import Spool
from app.protocol import codec
from app.security.secret import Secret

log = logging.getLogger(__name__)

#: Called for every acked message with (ack time, capture time of its oldest batch,
#: the ``time_msc`` of all its ticks), all wall-clock: the monitor and the pipeline
#: benchmark turn these into tick→ack latency distributions.
LatencySink = Callable[[float, float, npt.NDArray[np.int64]], None]

#: Bridge → client frames are tiny (welcome, ack, error).
_MAX_INBOUND_BYTES = 2**20
#: Retry a cut the spool refused this often while nothing else wakes the link.
_RETRY_CUT_S = 0.05
#: Close codes by which a bridge refuses what it was sent.
_REFUSAL_CODES = frozenset({CloseCode.POLICY_VIOLATION, CloseCode.MESSAGE_TOO_BIG})
#: Error codes that are not about a message (the link reconnects and sends it again).
_NOT_A_REFUSAL = frozenset({"superseded", "internal_error", "shutting_down"})
#: Error codes by which the bridge refuses the hello's credential (not a message).
AUTH_REFUSALS = frozenset(
    {
        "unauthorized",
        "invalid_credentials",
        "invalid_token",
        "token_expired",
        "forbidden",
        "too_many_attempts",
    }
)
#: Least pause before trying a refused credential again: a wrong password stays wrong
#: until someone fixes it, and hammering would only lock the user out.
AUTH_RETRY_S = 30.0


class SignalPeer(Protocol):
    """Who takes the ``signals`` feature's frames (:class:`app.link.signal_desk.SignalDesk`).

    The link only routes: signals and outcome confirmations in, the peer's frames out
    (``send`` is handed over by :meth:`bind`; it returns False while disconnected, and the
    peer sends again what matters after the next welcome)."""

    def bind(self, send: Callable[[bytes], bool]) -> None: ...

    def on_welcome(self, enabled: bool) -> list[bytes]: ...

    def on_disconnect(self) -> None: ...

    def on_signal(self, signal: codec.Signal) -> None: ...

    def on_outcome_stored(self, message: codec.OutcomeStored) -> None: ...


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
    #: The bridge's frame limit in force, and the largest frame sent so far.
    max_frame_bytes: int = codec.DEFAULT_MAX_FRAME_BYTES
    largest_frame_bytes: int = 0
    #: Messages recovered from an earlier run's spool, resent in this one.
    resumed_batches: int = 0
    #: Damaged spool records sent as "lost" (their ticks did not reach the bridge).
    lost_batches: int = 0
    #: Why the spool's disk cannot take data ("" when it can): intake is paused.
    spool_disk_error: str = ""
    #: The spool's folder ("" for a memory-only spool).
    spool_folder: str = ""
    #: Why the link stopped sending ("" while it sends).
    halted: str = ""


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
        latency_sink: LatencySink | None = None,
        marker: Marker | None = None,
        intake: bool = True,
        credential: Secret | None = None,
        signals: SignalPeer | None = None,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self._credential = credential
        self.options = options or LinkOptions()
        self.machine = LinkMachine(
            spool,
            MachineOptions(
                self.options.batch_max_ticks,
                self.options.window,
                keep_times=latency_sink is not None,
            ),
            marker=marker,
        )
        self._spool = spool
        self._latency_sink = latency_sink
        self._resumed = len(spool)
        self._linger_handle: asyncio.TimerHandle | None = None
        self._work = asyncio.Event()
        #: Set while the collector may hand batches over (see the module docstring).
        self.room = asyncio.Event()
        self.room.set()
        self._room_held_open = False
        #: False for a link that only drains an earlier run's spool.
        self.intake = intake
        self._ws: ClientConnection | None = None
        self._reconnects = 0
        self._last_error = ""
        self._auth_refused = False
        #: Frames of the ``signals`` feature, sent before the next tick message.
        self._control: deque[bytes] = deque()
        self._signals = signals
        if signals is not None:
            signals.bind(self.send_control)

    @property
    def session(self) -> str:
        return self._spool.session

    # ------------------------------------------------------------ intake (collector side)
    def offer(self, item: SequencedBatch) -> None:
        """Collector callback: queue a batch for the next message. Never blocks."""
        if not self.intake:
            raise RuntimeError("this link only drains an earlier run's spool")
        machine = self.machine
        first = not machine.has_pending
        if machine.offer(item.batch, history=item.history, now=time.time()):
            self.cut()
        elif first:
            loop = asyncio.get_running_loop()
            self._linger_handle = loop.call_later(self.options.linger, self.cut)

    def cut(self) -> None:
        """Turn the pending batches into numbered messages in the spool."""
        if self._linger_handle is not None:
            self._linger_handle.cancel()
            self._linger_handle = None
        machine = self.machine
        if machine.cut():
            self._work.set()
        if machine.blocked:  # the spool refused: retry shortly (acks also retry)
            loop = asyncio.get_running_loop()
            self._linger_handle = loop.call_later(_RETRY_CUT_S, self.cut)
        self._sync_room()

    def hold_room_open(self) -> None:
        """Stopping: take every batch the workers still send, whatever the spool says,
        or they could never finish their last send and stop (pending batches then wait
        in memory until the drain cuts them)."""
        self._room_held_open = True
        self.room.set()

    def _sync_room(self) -> None:
        if self.machine.room or self._room_held_open:
            self.room.set()
        else:
            self.room.clear()

    def send_control(self, frame: bytes) -> bool:
        """Send a frame of the ``signals`` feature ahead of pending ticks; False when
        not connected (it is not kept: the signal desk resends what needs it)."""
        if self._ws is None:
            return False
        self._control.append(frame)
        self._work.set()
        return True

    # ------------------------------------------------------------ state
    @property
    def state(self) -> LinkState:
        ws = self._ws
        machine = self.machine
        spool = self._spool
        return LinkState(
            connected=ws is not None,
            url=self.url,
            session=spool.session,
            backlog_batches=len(spool),
            backlog_ticks=spool.ticks + machine.pending_ticks,
            last_sent_seq=machine.sent,
            last_acked_seq=machine.acked,
            ticks_acked=machine.ticks_acked,
            reconnects=self._reconnects,
            rtt=ws.latency if ws is not None and ws.latency else None,
            spool_fill=spool.fill_ratio,
            intake_paused=not self.room.is_set(),
            last_error=machine.halted or machine.disk_error or self._last_error,
            max_frame_bytes=machine.frame_limit,
            largest_frame_bytes=machine.largest_frame,
            resumed_batches=self._resumed,
            lost_batches=machine.lost_messages,
            spool_disk_error=machine.disk_error,
            spool_folder=str(spool.directory or ""),
            halted=machine.halted,
        )

    def all_acked(self) -> bool:
        return self.machine.all_acked()

    async def drain(self, timeout: float) -> bool:
        """Cut what is pending and wait until the bridge acked everything; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self.machine.has_pending:
                self.cut()
            if self.machine.all_acked():
                return True
            if time.monotonic() > deadline or self.machine.halted:
                return False
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------ connection
    async def run(self) -> None:
        """Connect, stream, and reconnect after the backoff policy, until cancelled."""
        backoff = Backoff(self.options.policy)
        while True:
            try:
                await self._session(backoff)
            except asyncio.CancelledError:
                raise
            except websockets.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code in _REFUSAL_CODES:
                    self.machine.on_refused()
                reason = exc.rcvd.reason if exc.rcvd is not None and exc.rcvd.reason else ""
                self._note_error(f"connection closed ({code}{': ' + reason if reason else ''})")
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                self._note_error(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            except codec.ProtocolError as exc:
                self._note_error(f"bridge broke the protocol ({exc.code}): {exc}")
            except _Refused as exc:
                if exc.code in AUTH_REFUSALS:
                    self._auth_refused = True
                    self._note_error(
                        f"the bridge refused the credential for client {self.client_id!r} "
                        f"({exc.code}): {exc}"
                    )
                else:
                    self.machine.on_refused()
                    self._note_error(f"bridge refused a message ({exc.code}): {exc}")
            except Exception as exc:  # a bug must not end delivery for the whole run
                log.exception("bridge link failed unexpectedly")
                self._note_error(f"internal error: {type(exc).__name__}: {exc}")
            finally:
                self._ws = None
                self._control.clear()
                if self._signals is not None:
                    self._signals.on_disconnect()
                self.machine.on_disconnect()
                self._sync_room()
            if self.machine.halted:
                self._note_error(self.machine.halted)
            self._reconnects += 1
            delay = backoff.next_delay()
            if self._auth_refused:
                self._auth_refused = False
                delay = max(delay, AUTH_RETRY_S)
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
            max_size=_MAX_INBOUND_BYTES,
            ping_interval=opts.ping_interval,
            ping_timeout=opts.ping_timeout,
            open_timeout=opts.open_timeout,
            ssl=opts.ssl_context,
        ) as ws:
            credential = self._credential.reveal() if self._credential is not None else None
            features = [codec.FEATURE_SIGNALS] if self._signals is not None else []
            await ws.send(self.machine.hello(self.client_id, credential, features))
            answer = codec.decode_bridge(await asyncio.wait_for(ws.recv(), opts.open_timeout))
            if isinstance(answer, codec.Error):
                raise _Refused(answer.code, answer.message)
            if not isinstance(answer, codec.Welcome):
                raise codec.ProtocolError("bad_message", "expected welcome")
            self.machine.on_welcome(answer)
            self._sync_room()
            if self.machine.halted:
                return
            # A new limit may have re-cut the spool; what gathered meanwhile goes now.
            if self.machine.has_pending:
                self.cut()
            self._ws = ws
            if self._signals is not None:
                enabled = codec.FEATURE_SIGNALS in answer.features
                self._control.extend(self._signals.on_welcome(enabled))
            self._last_error = ""
            backoff.reset()
            log.info(
                "bridge link up: %s (session %s, resuming after seq %d, frame limit %d)",
                self.url,
                self.session,
                self.machine.acked,
                self.machine.frame_limit,
            )
            # The receiver owns the session: when the socket closes, its loop ends (or
            # raises) and the sender, blocked on the window or on ``send``, is cancelled.
            self._work.set()
            sender = asyncio.create_task(self._send_loop(ws), name="bridge-link-send")
            try:
                await self._receive_loop(ws)
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, websockets.WebSocketException):
                    await sender

    async def _send_loop(self, ws: ClientConnection) -> None:
        machine = self.machine
        control = self._control
        while True:
            while control:
                await ws.send(control.popleft())
            frame = machine.next_frame()
            if frame is None:
                self._work.clear()
                await self._work.wait()
                continue
            await ws.send(frame)

    async def _receive_loop(self, ws: ClientConnection) -> None:
        async for frame in ws:
            message = codec.decode_bridge(frame)
            if isinstance(message, codec.Ack):
                self._on_ack(message.seq)
            elif isinstance(message, codec.Signal):
                if self._signals is not None:
                    self._signals.on_signal(message)
            elif isinstance(message, codec.OutcomeStored):
                if self._signals is not None:
                    self._signals.on_outcome_stored(message)
            elif isinstance(message, codec.Error):
                if message.code in _NOT_A_REFUSAL:
                    raise websockets.ConnectionClosedOK(None, None)
                raise _Refused(message.code, message.message)
            else:
                raise codec.ProtocolError("bad_message", "unexpected welcome from the bridge")
        raise websockets.ConnectionClosedOK(None, None)

    def _on_ack(self, seq: int) -> None:
        acked = self.machine.on_ack(seq)
        sink = self._latency_sink
        if sink is not None and acked:
            now = time.time()
            for item in acked:
                if item.times is not None:
                    sink(now, item.captured_at, item.times)
        machine = self.machine
        if machine.has_pending and (machine.idle or machine.blocked):
            self.cut()  # the link just went idle, or the spool has room again
        else:
            self._sync_room()
        self._work.set()

    async def close(self) -> None:
        if self._linger_handle is not None:
            self._linger_handle.cancel()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()


class _Refused(Exception):  # noqa: N818 - the bridge's verdict, not our fault
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
