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
from collections import deque
from collections.abc import Callable
from typing import Protocol

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import CloseCode

from app.backoff import Backoff
from app.link.adapter import LatencySink, LinkAdapter, LinkOptions, LinkState
from app.link.machine import Marker
from app.link.spool import Spool
from app.protocol import codec
from app.security.secret import Secret

__all__ = ["AUTH_REFUSALS", "BridgeLink", "LatencySink", "LinkOptions", "LinkState", "SignalPeer"]

log = logging.getLogger(__name__)

#: Bridge → client frames are tiny (welcome, ack, error).
_MAX_INBOUND_BYTES = 2**20
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


class BridgeLink(LinkAdapter):
    """The WebSocket to the bridge; the shared rules are in :class:`LinkAdapter`."""

    name = "bridge link"

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
        super().__init__(
            url, client_id, spool, options, latency_sink=latency_sink, marker=marker, intake=intake
        )
        self._credential = credential
        self._ws: ClientConnection | None = None
        self._auth_refused = False
        #: Frames of the ``signals`` feature, sent before the next tick message.
        self._control: deque[bytes] = deque()
        self._signals = signals
        if signals is not None:
            signals.bind(self.send_control)

    def use_credential(self, credential: Secret | None) -> None:
        """Present ``credential`` from the next connection on: the runtime builds the link
        with the embedded backend's per-run key before that backend has started, and
        falls back to the configured login when it does not start."""
        self._credential = credential

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def rtt(self) -> float | None:
        """WebSocket ping round trip, seconds (None before the first pong)."""
        ws = self._ws
        return ws.latency if ws is not None and ws.latency else None

    def send_control(self, frame: bytes) -> bool:
        """Send a frame of the ``signals`` feature ahead of pending ticks; False when
        not connected (it is not kept: the signal desk resends what needs it)."""
        if self._ws is None:
            return False
        self._control.append(frame)
        self._work.set()
        return True

    # ------------------------------------------------------------ connection
    def _failure(self, exc: Exception) -> str:
        if isinstance(exc, websockets.ConnectionClosed):
            code = exc.rcvd.code if exc.rcvd is not None else None
            if code in _REFUSAL_CODES:
                self.machine.on_refused()
            reason = exc.rcvd.reason if exc.rcvd is not None and exc.rcvd.reason else ""
            return f"connection closed ({code}{': ' + reason if reason else ''})"
        if isinstance(exc, OSError | TimeoutError | websockets.WebSocketException):
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, codec.ProtocolError):
            return f"bridge broke the protocol ({exc.code}): {exc}"
        if isinstance(exc, _Refused):
            if exc.code in AUTH_REFUSALS:
                self._auth_refused = True
                return (
                    f"the bridge refused the credential for client {self.client_id!r} "
                    f"({exc.code}): {exc}"
                )
            self.machine.on_refused()
            return f"bridge refused a message ({exc.code}): {exc}"
        return super()._failure(exc)  # a bug must not end delivery for the whole run

    def _session_ended(self) -> None:
        self._ws = None
        self._control.clear()
        if self._signals is not None:
            self._signals.on_disconnect()

    def _retry_delay(self, backoff: Backoff) -> float:
        delay = backoff.next_delay()
        if self._auth_refused:
            self._auth_refused = False
            delay = max(delay, AUTH_RETRY_S)
        return delay

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

    async def close(self) -> None:
        await super().close()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()


class _Refused(Exception):  # noqa: N818 - the bridge's verdict, not our fault
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
