"""The data bridge: ticks in over a WebSocket, stored exactly once, acked cumulatively.

Protocol v2 (``app/protocol/codec.py``): every frame is binary MessagePack. This module
is the I/O half only; what to do with each message (store / re-ack / refuse, and the
hello's resume rule) is decided by :mod:`app.server.accept`, which is pure and tested
on its own with arbitrary message streams.

Each connection runs two tasks. The reader decodes every frame and feeds it to the
rules, which decide on an in-memory ``accepted`` seq, so reading never waits for the
disk. The committer takes everything that piled up while the previous commit ran and
stores it as one transaction, then sends ONE ack for the highest seq: at high rates a
commit covers many messages, at low rates each message is acked as soon as its own
commit is done.

All SQLite work goes through one dedicated writer thread. A single thread keeps writes
serialized without lock contention (SQLite allows one writer anyway), keeps the one
write connection on one thread, and orders a session's ``last_seq`` read for a new
connection strictly after the previous connection's commits.

A session (client_id, session) is served by at most one connection: a newer connection
takes over and the older one is closed once its accepted messages are committed, so the
``welcome`` of the newer one always reflects everything the older one stored.

The hello must carry a credential (``hello.credential``, see :mod:`app.server.auth`)
allowed for its client id, or the connection is refused (``error`` then close 1008)
before any tick is read. A session belongs to its client id: only a credential allowed
for that client id can open, resume or take over any of its sessions, so knowing a
session id gives nothing to anyone else.

The frame limit is the bridge's own setting, announced in ``welcome``: the client sizes
its messages to it (``codec.ticks_frame_bytes``), and websockets closes with 1009 any
frame beyond it before it is buffered whole. The other bounds (frames buffered per
connection, uncommitted bytes per connection and in total, connections, how far a hello
may resume, the tick value rules) are in :class:`app.server.limits.BridgeLimits`; every
refusal is counted per reason in ``refused_by_reason``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from app.clock import SYSTEM_CLOCK, Clock
from app.protocol.codec import (
    DEFAULT_MAX_FRAME_BYTES,
    FEATURE_SIGNALS,
    MAX_TEXT,
    PROTOCOL_VERSION,
    Ack,
    Error,
    Hello,
    ProtocolError,
    SignalOutcome,
    SignalReceived,
    Welcome,
    check_hello,
    decode_client,
    encode,
)
from app.server.accept import Accept, Duplicate, Refuse, SessionRules, resume
from app.server.auth import Authenticator, AuthRefused, forbidden
from app.server.limits import MAX_GROUP, MAX_GROUP_BYTES, BridgeLimits, ByteBudget
from app.server.signal_route import SignalRoute
from app.server.signal_store import SignalStore
from app.server.store import TickStore

log = logging.getLogger(__name__)

T = TypeVar("T")

PATH = "/ws"
#: A connection that does not say hello within this time is closed.
HELLO_TIMEOUT = 10.0


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _peer(ws: ServerConnection) -> str:
    addr = ws.remote_address
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr)


def _host(ws: ServerConnection) -> str:
    addr = ws.remote_address
    return str(addr[0]) if isinstance(addr, tuple) and addr else str(addr)


def _too_big(exc: ConnectionClosed) -> bool:
    return exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG


def _error(code: str, message: str) -> bytes:
    return encode(Error(code, _short(message)))


@dataclass(eq=False)
class _Slot:
    """Who serves one session; ``generation`` tells a waiting connection it was overtaken."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    owner: _Connection | None = None
    generation: int = 0
    users: int = 0


class Bridge:
    def __init__(
        self,
        store: TickStore,
        auth: Authenticator,
        *,
        compression: str | None = None,
        hello_timeout: float = HELLO_TIMEOUT,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        limits: BridgeLimits | None = None,
        clock: Clock = SYSTEM_CLOCK,
        signals: SignalStore | None = None,
    ) -> None:
        if limits is None:
            limits = BridgeLimits(max_frame_bytes=max_frame_bytes)
        self.limits = limits
        self.store = store
        self._auth = auth
        self.max_frame_bytes = limits.max_frame_bytes
        self.clock = clock
        self.budget = ByteBudget(limits.max_total_pending_bytes)
        self._compression = compression
        self._hello_timeout = hello_timeout
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tickstore-writer")
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._server: Server | None = None
        self.port = 0
        #: Where signals for clients wait (None: this bridge offers no ``signals``).
        self.signals = signals
        self._routes: dict[str, set[SignalRoute]] = {}

    # ------------------------------------------------------------------ lifetime
    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> int:
        """Listen (over TLS when given a context); returns the actual port (``port=0``
        picks a free one)."""
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._admit,
            max_size=self.max_frame_bytes,
            max_queue=self.limits.max_queue,
            compression=self._compression,
            ssl=ssl_context,
        )
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Close every connection (1001), let their accepted messages commit, then stop
        the writer thread."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await asyncio.to_thread(self._writer.shutdown, True)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store call on the writer thread."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """The handshake check: the path, and the connection limit (503 beyond it)."""
        if request.path.split("?", 1)[0] != PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found: the bridge is at /ws\n")
        server = self._server
        # ``connections`` holds the open ones; this one is still in its handshake.
        if server is not None and len(server.connections) >= self.limits.max_connections:
            self.store.count_refused("too_many_connections")
            return connection.respond(
                HTTPStatus.SERVICE_UNAVAILABLE, "too many connections; retry later\n"
            )
        return None

    def wake_signals(self, client_id: str) -> None:
        """The gateway stored a signal for ``client_id``: its connections send it now."""
        for route in self._routes.get(client_id, ()):
            route.wake.set()

    def open_route(self, client_id: str, send: Callable[[bytes], Awaitable[None]]) -> SignalRoute:
        assert self.signals is not None
        route = SignalRoute(self.signals, client_id, send, clock=self.clock)
        self._routes.setdefault(client_id, set()).add(route)
        return route

    def close_route(self, route: SignalRoute) -> None:
        routes = self._routes.get(route.client_id)
        if routes is not None:
            routes.discard(route)
            if not routes:
                del self._routes[route.client_id]

    # ------------------------------------------------------------------ refusals
    def note_refusal(self, who: str, code: str, message: str, counter: str = "") -> None:
        self.store.count_refused(counter or code)
        log.warning("bridge refused a message from %s: %s: %s", who, code, _short(message))

    def note_too_big(self, who: str) -> None:
        self.note_refusal(
            who, "too_big", f"frame larger than {self.max_frame_bytes} bytes (closed 1009)"
        )

    async def refuse(self, ws: ServerConnection, who: str, refusal: Refuse) -> None:
        self.note_refusal(who, refusal.code, refusal.message, refusal.counter)
        with contextlib.suppress(ConnectionClosed):
            await ws.send(_error(refusal.code, refusal.message))
        await _close(ws, CloseCode.POLICY_VIOLATION, refusal.code)

    # ------------------------------------------------------------------ connections
    async def _handle(self, ws: ServerConnection) -> None:
        who = _peer(ws)
        try:
            # recv() without decode=False: a text frame must stay recognisable as one
            # (a v1 client), so that it is refused as ``bad_version``.
            frame = await asyncio.wait_for(ws.recv(), self._hello_timeout)
        except TimeoutError:
            log.info("bridge: %s sent no hello within %.0f s; closing", who, self._hello_timeout)
            await _close(ws, CloseCode.POLICY_VIOLATION, "no hello")
            return
        except ConnectionClosed as exc:
            if _too_big(exc):
                self.note_too_big(who)
            return
        try:
            hello = decode_client(frame)
            if not isinstance(hello, Hello):
                raise ProtocolError("bad_message", "the first message must be a hello")
            check_hello(hello)
        except ProtocolError as exc:
            await self.refuse(ws, who, Refuse.of(exc))
            return
        try:
            principal = await self._auth.credential(hello.credential, _host(ws))
            if not principal.may(hello.client_id):
                raise forbidden(principal, hello.client_id)
        except AuthRefused as exc:
            # Not counted in the store: an unauthenticated peer writes nothing at all.
            log.warning("bridge refused the hello of %s: %s: %s", who, exc.code, exc.message)
            with contextlib.suppress(ConnectionClosed):
                await ws.send(_error(exc.code, exc.message))
            await _close(ws, CloseCode.POLICY_VIOLATION, exc.code)
            return
        who = f"{who} ({principal.name}: {hello.client_id}/{hello.session})"
        await self._serve_session(ws, who, hello)

    def _resume_refusal(self, last_seq: int, resume_from: int) -> Refuse | None:
        """A hello claiming acks implausibly far beyond what is stored is refused."""
        try:
            resume(last_seq, resume_from, self.limits.max_resume_gap)
        except ProtocolError as exc:
            return Refuse.of(exc)
        return None

    async def _serve_session(self, ws: ServerConnection, who: str, hello: Hello) -> None:
        key = (hello.client_id, hello.session)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        slot.users += 1
        slot.generation += 1
        generation = slot.generation
        if slot.users > 1:
            log.warning(
                "bridge: a newer connection %s takes over session %s/%s; closing the older "
                "connection %s",
                _peer(ws),
                hello.client_id,
                hello.session,
                slot.owner.who if slot.owner is not None else "(still starting)",
            )
        if slot.owner is not None:
            slot.owner.kick()
        refusal: Refuse | None = None
        superseded = failed = False
        try:
            async with slot.lock:
                if slot.generation != generation:
                    superseded = True
                else:
                    last_seq = await self.call(self.store.last_seq, *key)
                    refusal = self._resume_refusal(last_seq, hello.resume_from)
                    if refusal is None:
                        if hello.resume_from > last_seq:
                            log.error(
                                "bridge: %s holds acks up to %d but only %d is stored "
                                "(was the database replaced?); recording %d lost batches "
                                "and continuing after %d",
                                who,
                                hello.resume_from,
                                last_seq,
                                hello.resume_from - last_seq,
                                hello.resume_from,
                            )
                            last_seq = await self.call(
                                self.store.adopt_resume,
                                *key,
                                hello.resume_from,
                                self.limits.max_resume_gap,
                            )
                        features = (
                            [FEATURE_SIGNALS]
                            if self.signals is not None and FEATURE_SIGNALS in hello.features
                            else []
                        )
                        welcome = Welcome(
                            last_seq, self.max_frame_bytes, PROTOCOL_VERSION, features
                        )
                        try:
                            await ws.send(encode(welcome))
                        except ConnectionClosed:
                            return
                        rules = SessionRules(last_seq, self.limits.tick_rules, self.clock)
                        conn = _Connection(self, ws, who, key, rules, signals=bool(features))
                        slot.owner = conn
                        if slot.generation != generation:  # overtaken while starting up
                            conn.kick()
                        try:
                            refusal = await conn.serve()
                        finally:
                            slot.owner = None
                        superseded, failed = conn.superseded, conn.failed
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[key]
        # Outside the lock: the newer connection must not wait for this close handshake.
        if failed:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(_error("internal_error", "storing failed"))
            await _close(ws, CloseCode.INTERNAL_ERROR, "storing failed")
        elif refusal is not None:
            await self.refuse(ws, who, refusal)
        elif superseded:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(_error("superseded", "a newer connection took over this session"))
            await _close(ws, CloseCode.NORMAL_CLOSURE, "superseded")


class _Connection:
    """One session's stream on one socket, from welcome to the last commit."""

    def __init__(
        self,
        bridge: Bridge,
        ws: ServerConnection,
        who: str,
        key: tuple[str, str],
        rules: SessionRules,
        *,
        signals: bool = False,
    ) -> None:
        self.bridge = bridge
        self.ws = ws
        self.who = who
        self.key = key
        self.rules = rules
        self.superseded = False
        self.failed = False
        self._pending: list[Accept] = []
        self._pending_bytes = 0
        self._closing = False
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._reader: asyncio.Task[Refuse | None] | None = None
        self._route = bridge.open_route(key[0], self._send) if signals else None

    def kick(self) -> None:
        """Stop accepting messages (a newer connection took over the session)."""
        self.superseded = True
        if self._reader is not None:
            self._reader.cancel()  # websockets' recv() is safe to cancel

    async def serve(self) -> Refuse | None:
        """Run until the socket closes, a message is refused or a newer connection takes
        over; returns once every accepted message is committed (or its commit failed)."""
        committer = asyncio.create_task(self._commit_loop())
        self._reader = asyncio.create_task(self._read_loop(committer))
        route = self._route
        sender = asyncio.create_task(route.run()) if route is not None else None
        if self.superseded:
            self._reader.cancel()
        try:
            await asyncio.wait({self._reader})
        finally:
            if sender is not None and route is not None:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
                self.bridge.close_route(route)
            self._closing = True
            self._wake.set()
            if not self._reader.done():
                self._reader.cancel()
            await asyncio.shield(committer)
        if self._reader.cancelled():
            return None
        return self._reader.result()

    def _full(self) -> bool:
        """Wait before reading more: this connection's own bounds, or the shared budget
        while this connection has something pending (one with nothing pending is always
        read, so a flood elsewhere never stalls it)."""
        limits = self.bridge.limits
        return (
            len(self._pending) >= limits.max_pending
            or self._pending_bytes >= limits.max_pending_bytes
            or (bool(self._pending) and self.bridge.budget.over())
        )

    async def _read_loop(self, committer: asyncio.Task[None]) -> Refuse | None:
        store = self.bridge.store
        while not self.failed:
            try:
                frame = await self.ws.recv()
            except ConnectionClosed as exc:
                if _too_big(exc):
                    self.bridge.note_too_big(self.who)
                return None
            try:
                message = decode_client(frame)
            except ProtocolError as exc:
                return Refuse.of(exc)
            if isinstance(message, SignalReceived | SignalOutcome):
                if self._route is None:
                    return Refuse("bad_message", "signal messages need the 'signals' feature")
                await self._route.handle(message)
                continue
            decision = self.rules.receive(message)
            if isinstance(decision, Refuse):
                return decision
            if isinstance(decision, Duplicate):
                store.count_duplicate()
                if decision.reack is not None:
                    await self._send(encode(Ack(decision.reack)))
                continue
            if decision.lost:
                log.error(
                    "bridge: %s reports message %d lost (%d ticks): %s",
                    self.who,
                    decision.seq,
                    decision.lost_ticks,
                    _short(decision.reason) or "no reason given",
                )
            else:
                store.count_received(decision.ticks)
            self._pending.append(decision)
            self._pending_bytes += decision.nbytes
            self.bridge.budget.take(decision.nbytes)
            self._wake.set()
            if self._full():
                budget = self.bridge.budget
                budget.watch(self._room)
                try:
                    while self._full() and not committer.done():
                        self._room.clear()
                        await self._room.wait()
                finally:
                    budget.unwatch(self._room)
        return None

    def _take_group(self) -> list[Accept]:
        n = size = 0
        for accept in self._pending[:MAX_GROUP]:
            if n and size + accept.nbytes > MAX_GROUP_BYTES:
                break
            n += 1
            size += accept.nbytes
        group = self._pending[:n]
        del self._pending[:n]
        self._pending_bytes -= size
        self.bridge.budget.give(size)
        return group

    async def _commit_loop(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            group = self._take_group()
            self._room.set()
            items = [(a.seq, a.batches) for a in group]
            try:
                committed = await self.bridge.call(
                    self.bridge.store.store, self.key[0], self.key[1], items
                )
                ack = self.rules.commit(committed)
            except Exception:
                log.exception("bridge: storing seq %d.. for %s failed", group[0].seq, self.who)
                # Stop this connection; the client resends everything unacked elsewhere.
                self.failed = True
                self.rules.forget_pending()
                self._pending.clear()
                self.bridge.budget.give(self._pending_bytes)
                self._pending_bytes = 0
                self._room.set()
                if self._reader is not None:
                    self._reader.cancel()
                return
            await self._send(encode(Ack(ack)))

    async def _send(self, data: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(data)


async def _close(ws: ServerConnection, code: CloseCode, reason: str) -> None:
    """Close, reading and dropping whatever the peer still sends meanwhile.

    Without the reader, frames the peer sent after the refused one fill the receive
    queue, websockets stops reading the socket, the peer's close frame is never seen and
    the close waits for its full timeout.
    """

    async def discard() -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.recv(decode=False)

    drain = asyncio.create_task(discard())
    try:
        await ws.close(code, reason)
    finally:
        drain.cancel()
