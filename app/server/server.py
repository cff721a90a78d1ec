"""The three services of protocol.md in one event loop, on the ports asked for.

Port 0 means "any free port"; the ``*_url`` properties report the ports actually bound,
which is how tests run many backends side by side without port clashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import platformdirs
from aiohttp import web

from app.clock import SYSTEM_CLOCK, Clock
from app.logfiles import demote_traffic_logs
from app.ports import service_url
from app.protocol.codec import DEFAULT_MAX_FRAME_BYTES, MIN_MAX_FRAME_BYTES
from app.server.auth import Authenticator
from app.server.bridge import PATH, Bridge
from app.server.demo_signals import DEMO_SHAPE, DemoSignalSource
from app.server.gateway import Gateway
from app.server.httpjson import DEFAULT_HTTP_LIMITS, HttpLimits
from app.server.hub import DEFAULT_HUB_LIMITS, Hub, HubLimits
from app.server.limits import BridgeLimits
from app.server.settings import SettingsStore
from app.server.signal_api import SignalApi
from app.server.signal_store import SignalStore
from app.server.store import TickStore
from app.server.users import Principal, UserStore, users_path

if TYPE_CHECKING:
    from app.nats.forwarder import Forwarder
    from app.nats.signal_relay import SignalRelay
    from app.nats.subjects import StreamSpec

log = logging.getLogger(__name__)

#: Seconds a stopping HTTP server waits for requests still running.
HTTP_SHUTDOWN_TIMEOUT = 2.0


def default_db_path() -> Path:
    return platformdirs.user_data_path("trading-client") / "reference-backend.sqlite"


async def _serve_app(
    app: web.Application,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    limits: HttpLimits = DEFAULT_HTTP_LIMITS,
) -> tuple[web.AppRunner, int]:
    # keepalive_timeout also runs from the moment a connection opens: one that sends no
    # request, or half a request head, is closed after it (aiohttp's default is an hour).
    demote_traffic_logs()  # an access line per request (every heartbeat) is not an event
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=HTTP_SHUTDOWN_TIMEOUT,
        keepalive_timeout=limits.idle_timeout,
        # After an answer to a request whose body never finished (408), aiohttp reads
        # on for this long before closing (its default: 10 s): no longer than idle.
        lingering_time=limits.idle_timeout,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, int(runner.addresses[0][1])


class ReferenceBackend:
    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        bridge_port: int = 3001,
        gateway_port: int = 8000,
        hub_port: int = 7000,
        db_path: Path | str | None = None,
        keys: Mapping[str, Principal] | None = None,
        users_file: Path | str | None = None,
        token_ttl: float = 3600.0,
        compression: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        synchronous: str = "FULL",
        ssl_context: ssl.SSLContext | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        bridge_limits: BridgeLimits | None = None,
        http_limits: HttpLimits = DEFAULT_HTTP_LIMITS,
        hub_limits: HubLimits = DEFAULT_HUB_LIMITS,
        tick_clock: Clock = SYSTEM_CLOCK,
        demo_signals: bool = True,
        forward_nats: tuple[str, ...] = (),
        forward_stream: StreamSpec | None = None,
    ) -> None:
        if max_frame_bytes < MIN_MAX_FRAME_BYTES:
            # Checked here too, so a bad setting fails before a database is opened.
            raise ValueError(
                f"max_frame_bytes {max_frame_bytes} is below the protocol's minimum "
                f"{MIN_MAX_FRAME_BYTES}"
            )
        self.host = host
        self.db_path = Path(db_path) if db_path is not None else default_db_path()
        self._ports = {"bridge": bridge_port, "gateway": gateway_port, "hub": hub_port}
        #: The users file (``backend users``); by default next to the database.
        self.users_file = Path(users_file) if users_file is not None else users_path(self.db_path)
        #: In-memory credentials (the embedded backend's per-run key, tests' keys).
        self._keys = dict(keys or {})
        self._token_ttl = token_ttl
        self._compression = compression
        #: The bridge's bounds (frame limit, queues, budgets, tick rules); ``max_frame_bytes``
        #: is used when no limits are given.
        self.bridge_limits = bridge_limits or BridgeLimits(max_frame_bytes=max_frame_bytes)
        #: The bridge's frame limit, announced to clients in ``welcome``.
        self.max_frame_bytes = self.bridge_limits.max_frame_bytes
        self.http_limits = http_limits
        self._hub_limits = hub_limits
        #: "Now" for the tick time window (the wall clock; ``clock`` drives HTTP timers).
        self._tick_clock = tick_clock
        self._clock = clock
        self._synchronous = synchronous
        #: Serve wss/https with this server context (tests of TLS and pinning).
        self._ssl = ssl_context
        self._store: TickStore | None = None
        self._settings: SettingsStore | None = None
        self._bridge: Bridge | None = None
        self._runners: list[web.AppRunner] = []
        #: Run the demo signal source (``demo-ma-cross``) over the stored ticks.
        self.demo_signals = demo_signals
        self._signals: SignalStore | None = None
        self.demo: DemoSignalSource | None = None
        self._demo_task: asyncio.Task[None] | None = None
        #: Forward every stored block (app/nats/forwarder.py) and relay signals
        #: (app/nats/signal_relay.py) to these NATS servers.
        self._forward = (forward_nats, forward_stream)
        self.forwarder: Forwarder | None = None
        self.relay: SignalRelay | None = None
        self._forward_tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ lifetime
    async def start(self) -> None:
        """Open the database and bind all three ports; on any failure (typically
        ``OSError`` for a port in use) everything already started is stopped again and
        the error propagates."""
        if self._store is not None:
            raise RuntimeError("the reference backend is already running")
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            store = self._store = await asyncio.to_thread(
                TickStore, self.db_path, synchronous=self._synchronous
            )
            self._settings = await asyncio.to_thread(SettingsStore, self.db_path)
            signals = self._signals = await asyncio.to_thread(SignalStore, self.db_path)
            auth = Authenticator(
                UserStore(self.users_file),
                keys=self._keys,
                token_ttl=self._token_ttl,
                clock=self._clock,
            )
            self._bridge = Bridge(
                store,
                auth,
                compression=self._compression,
                limits=self.bridge_limits,
                clock=self._tick_clock,
                signals=signals,
            )
            self._ports["bridge"] = await self._bridge.start(
                self.host, self._ports["bridge"], self._ssl
            )
            bridge = self._bridge
            signal_api = SignalApi(
                signals, auth, on_signal=bridge.wake_signals, clock=self._tick_clock
            )
            gateway = Gateway(
                store, self._settings, auth, limits=self.http_limits, signals=signal_api
            )
            hub = Hub(auth, clock=self._clock, limits=self.http_limits, hub_limits=self._hub_limits)
            for name, app in (("gateway", gateway.app()), ("hub", hub.app())):
                runner, self._ports[name] = await _serve_app(
                    app, self.host, self._ports[name], self._ssl, self.http_limits
                )
                self._runners.append(runner)
            if self.demo_signals:
                bar_s, fast, slow = DEMO_SHAPE
                self.demo = DemoSignalSource(
                    self.db_path,
                    signals,
                    on_signal=bridge.wake_signals,
                    clock=self._tick_clock,
                    bar_s=bar_s,
                    fast=fast,
                    slow=slow,
                )
                self._demo_task = asyncio.create_task(self.demo.run(), name="demo-signals")
            if self._forward[0]:
                # Imported here: app.nats imports app.server's store, and nats-py is only
                # loaded by a backend that forwards.
                from app.nats.forwarder import Forwarder  # noqa: PLC0415
                from app.nats.signal_relay import SignalRelay  # noqa: PLC0415

                servers, spec = self._forward
                self.forwarder = Forwarder(self.db_path, servers, spec=spec)
                self.relay = SignalRelay(
                    self.db_path, servers, signals, replicas=spec.replicas if spec else 1
                )
                self._forward_tasks = [
                    asyncio.create_task(self.forwarder.run(), name="forward"),
                    asyncio.create_task(self.relay.run(), name="signal-relay"),
                ]
        except BaseException:
            await self.stop()
            raise
        log.info(
            "reference backend up: %s %s %s (db %s)",
            self.bridge_url,
            self.gateway_url,
            self.hub_url,
            self.db_path,
        )

    async def stop(self) -> None:
        """Idempotent, and safe after a failed ``start``. The bridge goes first so that
        every message it accepted is committed before the database closes."""
        for task in (self._demo_task, *self._forward_tasks):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._demo_task, self._forward_tasks = None, []
        if self._bridge is not None:
            await self._bridge.stop()
            self._bridge = None
        while self._runners:
            await self._runners.pop().cleanup()
        if self._settings is not None:
            self._settings.close()
            self._settings = None
        if self._signals is not None:
            self._signals.close()
            self._signals = None
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
            self._store = None

    async def __aenter__(self) -> ReferenceBackend:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ where
    @property
    def store(self) -> TickStore:
        if self._store is None:
            raise RuntimeError("the reference backend is not running")
        return self._store

    @property
    def signals(self) -> SignalStore:
        if self._signals is None:
            raise RuntimeError("the reference backend is not running")
        return self._signals

    @property
    def bridge_port(self) -> int:
        return self._ports["bridge"]

    @property
    def gateway_port(self) -> int:
        return self._ports["gateway"]

    @property
    def hub_port(self) -> int:
        return self._ports["hub"]

    @property
    def bridge_url(self) -> str:
        return service_url("wss" if self._ssl else "ws", self.host, self.bridge_port, PATH)

    @property
    def gateway_url(self) -> str:
        return service_url("https" if self._ssl else "http", self.host, self.gateway_port)

    @property
    def hub_url(self) -> str:
        return service_url("https" if self._ssl else "http", self.host, self.hub_port)


async def serve_forever(
    backend: ReferenceBackend,
    *,
    ready: Callable[[ReferenceBackend], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Start ``backend``, call ``ready`` once it listens, and run until SIGINT/SIGTERM
    (or until ``stop`` is set); always stops the backend on the way out."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available on Windows' proactor loop: Ctrl-C then arrives as KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await backend.start()
        if ready is not None:
            ready(backend)
        await stop.wait()
        log.info("reference backend stopping")
    finally:
        await backend.stop()
        for sig in installed:
            loop.remove_signal_handler(sig)
