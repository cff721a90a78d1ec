"""Builds the services from a config and runs them in order on one asyncio loop.

The headless ``run`` command and the desktop window both drive a :class:`Runtime`; the
window only renders what :meth:`Runtime.status` and the collector expose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
import numpy.typing as npt

from app import __version__
from app.clock import SYSTEM_CLOCK, Clock
from app.collector import Collector
from app.config import BackendConfig, ClientConfig
from app.connector import ConnectorPool, WorkerHealth, WorkerSpec, spread_symbols
from app.connector.backfill import Backfill, BackfillTarget
from app.connector.coverage import SpanBook
from app.connector.handoff import Handoff
from app.connector.history_sources import TerminalHistory
from app.daystats import DayBook
from app.history.chart_history import ChartHistory
from app.link.adapter import LinkAdapter
from app.link.delivery import (
    Delivery,
    check_stream_at_start,
    drain_at_stop,
    link_options,
    nats_options,
    open_spool,
    spool_root,
)
from app.link.embedded import EmbeddedBackend, EmbeddedBackendError, prepare_embedded
from app.link.hub import HubClient
from app.link.link import BridgeLink, LatencySink, LinkState
from app.link.positions import SpooledPositions, read_marks, recovered_spans
from app.link.signal_desk import Executor, SignalDesk, not_wired
from app.link.signal_desk import default_path as signals_path
from app.link.spool import Spool
from app.monitor.alerts import rule_from_dict
from app.monitor.monitor import Inputs, Monitor
from app.monitor.system import SystemSample, SystemSampler
from app.nats.sink import NatsLink
from app.security.audit import AuditLog
from app.security.connections import tls_context_for, tls_settings
from app.security.secret import Secret
from app.servertime import NY_CLOSE
from app.sessions import MarketHours
from app.terminal.replay import plan_of_spec
from app.terminal.spec import TerminalSpec
from app.ticks import TickBatch
from app.trading.service import TRADING_KINDS, Trading
from app.zones import ServerZones

log = logging.getLogger(__name__)

__all__ = ["Runtime", "RuntimeStatus", "link_options", "plan_workers", "spool_root"]

#: Batches that may wait between the pool and the collector before workers are held back
#: (at low rates a batch holds a few ticks: 1024 are a few hundred ms of capture).
QUEUE_BATCHES = 1024
#: ... and ticks, in units of ``pool.max_batch``: memory is bounded by ticks (512 full
#: batches once held 25M ticks, GBs, in limbo; 16 hold at most 160k ticks by default,
#: 10 MB). A count of 16 alone held the workers back at 10k ticks/s whenever the loop
#: stalled for 6 ms.
QUEUE_FULL_BATCHES = 16


def plan_workers(
    config: ClientConfig, passwords: Mapping[str, str] | None = None
) -> list[WorkerSpec]:
    """Spread ``pool.size`` connections over the terminals, in proportion to their symbols.

    Every terminal gets at least one connection, and no connection is left without a
    symbol, so the pool may end up smaller than ``pool.size`` but never idle.
    """
    passwords = passwords or {}
    total = sum(len(t.symbols) for t in config.terminals)
    specs: list[WorkerSpec] = []
    for term in config.terminals:
        share = max(1, round(config.pool.size * len(term.symbols) / total))
        spec = term.to_spec(passwords.get(term.name))
        # A replay is captured from its first tick, not from "now".
        start = plan_of_spec(spec).start_ms if spec.kind == "replay" else None
        for group in spread_symbols(term.symbols, share):
            specs.append(
                WorkerSpec(
                    worker_id=len(specs) + 1,
                    terminal=spec,
                    symbols=group,
                    cursors={} if start is None else dict.fromkeys(group, (start, 0)),
                    poll_interval=config.pool.poll_interval_ms / 1000,
                    max_batch=config.pool.max_batch,
                )
            )
    return specs


def _fan_sinks(sinks: list[LatencySink]) -> LatencySink:
    if len(sinks) == 1:
        return sinks[0]

    def fan(ack_time: float, captured_at: float, times: npt.NDArray[np.int64]) -> None:
        for sink in sinks:
            sink(ack_time, captured_at, times)

    return fan


@dataclass(frozen=True, slots=True)
class RuntimeStatus:
    ticks: int
    batches: int
    workers: list[WorkerHealth]
    link: LinkState | None
    #: Of ``ticks``, those fetched from the terminal's history (the backfill burst at
    #: start): a rate over them is not the live rate.
    history_ticks: int = 0

    @property
    def live_ticks(self) -> int:
        return self.ticks - self.history_ticks


class Runtime:
    def __init__(
        self,
        config: ClientConfig,
        *,
        passwords: Mapping[str, str] | None = None,
        start_msc: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
        latency_sink: LatencySink | None = None,
        credential: Secret | None = None,
        signal_executor: Executor | None = None,
        signals_file: Path | None = None,
        nats_credential: Secret | None = None,
    ) -> None:
        self.config = config
        #: None: signals go to this runtime's own order router (``self.trading``).
        self._signal_executor = signal_executor
        self._signals_file = signals_file
        #: The backend login (``user:password`` or a token) for a backend this runtime
        #: does not start; the embedded backend's own per-run key replaces it.
        self._credential = credential
        #: The NATS user's password, or a token without a user (from the vault).
        self._nats_credential = nats_credential
        pool_cfg = config.pool
        self.handoff: Handoff[TickBatch] = Handoff(
            QUEUE_BATCHES,
            max_weight=QUEUE_FULL_BATCHES * pool_cfg.max_batch,
            weight=len,
        )
        start = start_msc if start_msc is not None else int(clock.time() * 1000)
        workers = plan_workers(config, passwords)
        #: Each symbol's server time zone (settings, then what the workers detect).
        self.zones = ServerZones.from_specs((w.terminal, w.symbols) for w in workers)
        self.collector = Collector(
            config.cache.ticks_per_symbol,
            bar_history=config.cache.bar_history,
            clock=clock,
            zones=self.zones,
        )
        #: What each connection was planned with (terminal spec, symbols, start cursors).
        self.planned_workers: list[WorkerSpec] = workers
        #: Each symbol's day (high, low, previous close at server midnight) for the
        #: Market Watch, fed by every batch the collector numbers (app/daystats.py).
        self.day_stats = DayBook(self.collector, self.zones.zone, lambda: self.zones.version)
        self.collector.subscribe(self.day_stats.on_batch, name="day-stats")
        #: Which markets are open now: the ``sessions`` settings read through each
        #: terminal's server zone (a terminal that detects its zone counts as ny-close
        #: until a worker reports it: ``market_hours.set_zone``).
        self.market_hours = MarketHours.build(
            config.sessions.book(),
            {s: w.terminal.zone() or NY_CLOSE for w in workers for s in w.symbols},
            enabled=config.sessions.enabled,
            always_open={
                s
                for w in workers
                if w.terminal.kind == "simulated" and w.terminal.sessions is None
                for s in w.symbols
            },
        )
        self.pool = ConnectorPool(
            workers,
            self.handoff,
            policy=pool_cfg.backoff.policy(),
            stall_timeout=pool_cfg.stall_timeout_s,
            connect_timeout=pool_cfg.connect_timeout_s,
            start_msc=start,
            clock=clock,
        )
        self.pool.on_streaming = self._on_worker_zone
        #: History catch-up since the previous run: ``backfill.progress()`` / ``.cancel()``.
        self.backfill = Backfill(
            config.backfill, self.collector, clock=clock, market_hours=self.market_hours
        )
        #: The chart's bars: terminal history joined with live bars (app/history).
        self.chart = ChartHistory(
            self.collector, self.zones, self.market_hours, self._terminal_of, TerminalHistory,
            clock=clock,
        )  # fmt: skip
        self._backfill_targets = [
            BackfillTarget(w.terminal, sym, w.cursors.get(sym, (start, 0)))
            for w in workers
            for sym in w.symbols
        ]
        #: The reference backend this runtime started in a child process (the embedded
        #: default), or None when another backend is used.
        self.embedded: EmbeddedBackend | None = None
        #: Why the embedded backend wanted by the settings did not start (None: it did,
        #: or none was wanted): the window's status bar and welcome note say it.
        self.embedded_error: EmbeddedBackendError | None = None
        #: The link the window and the summary show (the bridge's, or the NATS sink's
        #: when ``backend.sink`` is "nats"); every link of the run is in ``delivery``.
        self.link: LinkAdapter | None = None
        self.delivery = Delivery()
        #: Each link's state as the run stopped, read before the spools closed (a closed
        #: spool holds nothing any more): what the summary reports as unacknowledged.
        self.final_links: tuple[LinkState, ...] = ()
        #: Signals from the AI services (``snapshot()``, ``accept(id)``, ``dismiss(id)``);
        #: None while delivery or trading is off.
        self.signals: SignalDesk | None = None
        self.hub: HubClient | None = None
        self._spool: Spool | None = None
        #: Where the live capture stands for the spans file: what the durable spool
        #: holds when delivery is on (app/link/positions.py), else the pool's cursors.
        self._live_position: Callable[[], Mapping[str, tuple[int, int]]] = self.pool.cursors
        self._http: httpx.AsyncClient | None = None
        self._hub_tls: ssl.SSLContext | None = None
        #: What the bridge links present: the embedded backend's key, or the login given.
        self._bridge_credential: Secret | None = credential
        #: Links built by _open_delivery, started by _connect_delivery (with the spools
        #: of earlier runs each drains and the drain link's factory).
        self._unstarted_links: list[
            tuple[LinkAdapter, list[Path], Callable[[Spool], LinkAdapter]]
        ] = []
        self.monitor: Monitor | None = None
        if config.monitor.enabled:
            rules = config.monitor.rules
            self.monitor = Monitor(
                None if rules is None else [rule_from_dict(r) for r in rules],
                clock=clock,
                reraise_after=config.monitor.reraise_after_s,
            )
            self.collector.subscribe(self.monitor.on_batch, name="monitor")
        sinks = [s for s in (latency_sink, self.monitor and self.monitor.on_ack) if s]
        self._latency_sink: LatencySink | None = _fan_sinks(sinks) if sinks else None
        self._sampler = SystemSampler(clock)
        self._tasks: list[asyncio.Task[None]] = []
        #: The order router and account books (docs/trading.md); None when
        #: ``trading.enabled`` is off or no terminal trades (replays only).
        self.trading: Trading | None = None
        traders = [t.name for t in config.terminals if t.kind in TRADING_KINDS]
        if config.trading.enabled and traders:
            self.trading = Trading(
                self.pool,
                config.trading,
                traders,
                audit=AuditLog(config.security.audit_log),
                zone_of=lambda t: self.zones.terminal_zone(t) or NY_CLOSE,
                prices=self._last_quote,
                clock=clock,
            )

    def _last_quote(self, symbol: str) -> tuple[float, float] | None:
        """(bid, ask) last captured: the live price the account books move P/L with."""
        s = self.collector.stats.symbols.get(symbol)
        return (s.last_bid, s.last_ask) if s is not None and s.last_bid else None

    async def start(self) -> None:
        """Open delivery first, so the first captured tick has somewhere to go; then
        start the workers and the embedded backend's process together.

        The links and their spool exist before any worker runs, so every tick is spooled
        (and shown) from the first one; the links connect once the backend listens.
        Spawning five workers and the backend's process each take most of a second on
        two cores: one after the other they were half of the window's cold start.
        Returns once the backend is up, or known not to start (``embedded_error``).
        """
        gate: asyncio.Event | None = None
        embedded: EmbeddedBackend | None = None
        if self.config.backend.enabled:
            gate, embedded = await self._open_delivery(self.config.backend)
        self._tasks.append(
            asyncio.create_task(self.collector.consume(self.handoff, gate), name="collector")
        )
        await self.pool.start()
        if self.trading is not None:
            await self.trading.start()
        await self.backfill.start(self._backfill_targets, self._live_position)
        if self.monitor is not None:
            self._tasks.append(asyncio.create_task(self._monitor_loop(), name="monitor"))
        if self.config.backend.enabled:
            await self._connect_delivery(self.config.backend, embedded)

    async def start_chart(self) -> None:
        """Start the chart's history helper and seed the day figures (the window's
        start): a headless run draws no chart and spawns no helper process for it."""
        await self.chart.start([t.symbol for t in self._backfill_targets], self.day_stats)

    async def _monitor_loop(self) -> None:
        """Once per interval: a system sample, then the monitor's metrics and alerts."""
        assert self.monitor is not None
        interval = self.config.monitor.interval_s
        next_at = asyncio.get_running_loop().time() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - asyncio.get_running_loop().time()))
            next_at += interval
            try:
                pids = {w.worker_id: w.pid for w in self.pool.health()}
                sample = await asyncio.to_thread(self._sampler.sample, pids)
                free = await asyncio.to_thread(self._spool_free_bytes)
                self.monitor.tick(self._monitor_inputs(sample, free))
            except Exception:
                log.exception("monitor tick failed")

    def _on_worker_zone(self, terminal: str, info: Mapping[str, Any]) -> None:
        """A worker's server zone (set, or detected on a real terminal): bars and the
        window read it from ``zones``, and the session hours of its symbols follow it."""
        if self.zones.report(terminal, info):
            zone = self.zones.terminal_zone(terminal)
            if zone is not None:
                self.market_hours.set_zone(self.zones.symbols_of(terminal), zone)

    def _terminal_of(self, symbol: str) -> TerminalSpec | None:
        return next((w.terminal for w in self.planned_workers if symbol in w.symbols), None)

    def add_symbol(self, terminal: str, symbol: str) -> int:
        """Capture ``symbol`` from ``terminal`` too, restarting only one of its workers
        (the one with the fewest symbols); the others keep streaming. Capture of the new
        symbol starts now (no backfill for it this run). Returns the restarted worker's id.
        """
        candidates = [w for w in self.planned_workers if w.terminal.name == terminal]
        if not candidates:
            raise ValueError(f"no worker captures from terminal {terminal!r}")
        if any(symbol in w.symbols for w in self.planned_workers):
            raise ValueError(f"{symbol} is captured already")
        target = min(candidates, key=lambda w: len(w.symbols))
        self.zones.add(symbol, terminal)
        self.market_hours.add(
            symbol, self.config.sessions.book(), self.zones.terminal_zone(terminal) or NY_CLOSE
        )
        updated = self.pool.add_symbol(target.worker_id, symbol)
        self.planned_workers = [
            updated if w.worker_id == target.worker_id else w for w in self.planned_workers
        ]
        log.info("worker %d: now also captures %s (restarted)", target.worker_id, symbol)
        return target.worker_id

    def remove_symbol(self, symbol: str) -> int:
        """Stop capturing ``symbol``: only the worker that captured it restarts (or is
        parked when it had no other symbol); the others keep streaming. Its cached ticks
        stay in the collector until the next start. Returns that worker's id."""
        target = next((w for w in self.planned_workers if symbol in w.symbols), None)
        if target is None:
            raise ValueError(f"{symbol} is not captured")
        updated = self.pool.remove_symbol(target.worker_id, symbol)
        self.planned_workers = [
            updated if w.worker_id == target.worker_id else w for w in self.planned_workers
        ]
        log.info("worker %d: no longer captures %s (restarted)", target.worker_id, symbol)
        return target.worker_id

    def _spool_free_bytes(self) -> dict[str, int]:
        """Free space under the spool folder (a statvfs: off the loop, once a second)."""
        folder = self._spool.directory if self._spool is not None else None
        if folder is None:
            return {}
        try:
            return {str(folder): shutil.disk_usage(folder).free}
        except OSError:
            return {}

    def _monitor_inputs(
        self, sample: SystemSample | None, spool_free: Mapping[str, int] | None = None
    ) -> Inputs:
        stats = self.collector.stats
        captured = {sym for w in self.planned_workers for sym in w.symbols}
        return Inputs(
            spool_free_bytes=spool_free or {},
            workers=self.pool.health(),
            link=self.link.state if self.link is not None else None,
            queue_depth=self.handoff.pending(),
            # A removed symbol's counters stay in the collector: it is no longer silent.
            last_tick_msc={
                sym: s.last_time_msc for sym, s in stats.symbols.items() if sym in captured
            },
            system=sample,
            market_hours=self.market_hours,
        )

    async def _open_delivery(
        self, cfg: BackendConfig
    ) -> tuple[asyncio.Event, EmbeddedBackend | None]:
        """The spool and the links, before any worker runs: the collector's intake gate,
        and the embedded backend to start (not started yet; see :meth:`start`)."""
        # Every endpoint is judged before anything starts: a refused plaintext endpoint
        # (or a stream the NATS cluster refuses) leaves nothing half-started.
        tls = tls_settings(self.config.security)
        allowed = self.config.security.plaintext_allowed
        bridge = cfg.sink in ("bridge", "both")
        link_tls = (
            tls_context_for(cfg.bridge_url, tls, self._on_pin_failure, plaintext_allowed=allowed)
            if bridge
            else None
        )
        self._hub_tls = tls_context_for(
            cfg.hub_url, tls, self._on_pin_failure, plaintext_allowed=allowed
        )
        nats = (
            nats_options(cfg, self.config.security, self._nats_credential, self._on_pin_failure)
            if cfg.sink != "bridge"
            else None
        )
        if nats is not None:
            await check_stream_at_start(nats, nats.connect_timeout + nats.ack_timeout)
        embedded = await prepare_embedded(cfg) if bridge else None
        # The embedded backend's per-run key is known before its process starts; should
        # it not start, _connect_delivery falls back to the configured login.
        self._bridge_credential = embedded.credential if embedded is not None else self._credential
        client_id = cfg.effective_client_id()
        options = link_options(cfg, link_tls)
        # The first link's spool carries the capture marks (where the spans file resumes).
        first: Literal["bridge", "nats"] = "bridge" if bridge else "nats"
        spool, leftovers = open_spool(cfg, spool_root(cfg, client_id, first), client_id)
        self._spool = spool
        marker: SpooledPositions | None = None
        if spool.disk_limit_bytes > 0:
            marker = SpooledPositions(self.pool.cursors())
            self._live_position = marker.positions
            self._adopt_recovered(spool)
        if bridge:
            self.signals = self._signal_desk()
            link: LinkAdapter = BridgeLink(
                cfg.bridge_url,
                client_id,
                spool,
                options,
                latency_sink=self._latency_sink,
                marker=marker,
                credential=self._bridge_credential,
                signals=self.signals,
            )
            self._add_link(link, spool, leftovers, lambda s: BridgeLink(
                cfg.bridge_url, client_id, s, options, intake=False,
                credential=self._bridge_credential,
            ))  # fmt: skip
        if nats is not None:
            if bridge:
                spool, leftovers = open_spool(cfg, spool_root(cfg, client_id, "nats"), client_id)
            link = NatsLink(
                nats,
                client_id,
                spool,
                options,
                latency_sink=None if bridge else self._latency_sink,
                marker=None if bridge else marker,
            )
            self._add_link(link, spool, leftovers, lambda s: NatsLink(
                nats, client_id, s, options, intake=False
            ))  # fmt: skip
        self.link = self.delivery.primary
        return self.delivery.room, embedded

    async def _connect_delivery(self, cfg: BackendConfig, embedded: EmbeddedBackend | None) -> None:
        """Start the embedded backend (when one is wanted), then the links, earlier
        runs' spools and the hub client against it."""
        if embedded is not None:
            try:
                await embedded.start()
                self.embedded = embedded
            except EmbeddedBackendError as exc:
                log.error("%s", exc)
                self.embedded_error = exc
                self._bridge_credential = self._credential
                for link in self.delivery.links:
                    if isinstance(link, BridgeLink):
                        link.use_credential(self._credential)
        for link, leftovers, drainer in self._unstarted_links:
            self._tasks.extend(self.delivery.drain_leftovers(leftovers, drainer, cfg))
            self._tasks.append(asyncio.create_task(link.run(), name=link.name))
        self._unstarted_links.clear()
        # Its default TLS context loads the CA bundle: a tenth of a second, not on the loop.
        verify = self._hub_tls if self._hub_tls is not None else True
        self._http = await asyncio.to_thread(httpx.AsyncClient, verify=verify)
        self.hub = HubClient(
            cfg.hub_url,
            cfg.effective_client_id(),
            version=__version__,
            capabilities=("ticks", "bars"),
            heartbeat_interval=cfg.hub_heartbeat_s,
            policy=cfg.backoff.policy(),
            http=self._http,
            credential=self._bridge_credential,
        )
        self._tasks.append(asyncio.create_task(self.hub.run(), name="hub-client"))

    def _signal_desk(self) -> SignalDesk | None:
        trading = self.config.trading
        if not trading.enabled:
            return None
        executor = self._signal_executor or (
            self.trading.router.execute if self.trading is not None else not_wired
        )
        desk = SignalDesk(
            executor,
            auto_sources=set(trading.auto_execute_sources),
            path=self._signals_file or signals_path(),
            deviation=trading.default_deviation,
        )
        self._tasks.append(asyncio.create_task(desk.run(), name="signals"))
        return desk

    def _add_link(
        self,
        link: LinkAdapter,
        spool: Spool,
        leftovers: list[Path],
        drainer: Callable[[Spool], LinkAdapter],
    ) -> None:
        """Put ``link`` on the collector's batches (its spool takes them at once); it
        connects, and earlier runs' spools beside its own are drained on links of their
        own, once the backend is up (:meth:`_connect_delivery`)."""
        self.delivery.add(link, spool, [], drainer, self.config.backend)
        self.collector.subscribe(link.offer, name=link.name)
        self.collector.on_burst_end(link.flush)
        self._unstarted_links.append((link, leftovers, drainer))

    def _adopt_recovered(self, spool: Spool) -> None:
        """The previous run's capture is safe up to the marks of its newest record: add
        that span to the book before the backfill works out the gaps."""
        marks = read_marks(spool.marks)
        book = self.backfill.book
        for target in self._backfill_targets:
            key = SpanBook.key(target.terminal.name, target.symbol)
            for span in recovered_spans(book.previous(key), marks, target.symbol):
                book.add_previous(key, span)

    async def stop(self) -> None:
        """Stop capture, deliver what was captured, then take the backend side down."""
        links = self.delivery.links
        for link in links:
            # Whatever the workers still send must reach the collector, or they could
            # never finish their last send and stop.
            link.hold_room_open()
        if self.trading is not None:
            await self.trading.stop()
        await self.pool.stop()
        await self.handoff.join()
        await self.backfill.stop()
        await self.chart.close()
        if links:
            await asyncio.gather(*(drain_at_stop(link, spool) for link, spool in zip(
                links, self.delivery.spools, strict=True
            )))  # fmt: skip
            # The spans end where the spool's last message ends, now that all is cut.
            self.backfill.save()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.monitor is not None:
            # Fold the last partial interval in, so the summary counts every tick.
            self.monitor.tick(self._monitor_inputs(None))
        if self.signals is not None:
            await self.signals.close()
        for link in links:
            await link.close()
        if self.hub is not None:
            with contextlib.suppress(Exception):
                await self.hub.stop()
        if self._http is not None:
            await self._http.aclose()
        if self.embedded is not None:
            await self.embedded.stop()
        self.final_links = tuple(link.state for link in links)
        for spool in self.delivery.spools:
            spool.close()

    def _on_pin_failure(self, host: str, expected: str, actual: str) -> None:
        log.error("TLS pin mismatch for %s: expected %s, got %s", host, expected, actual)
        AuditLog(self.config.security.audit_log).tls_pin_failure_hook()(host, expected, actual)

    def status(self) -> RuntimeStatus:
        stats = self.collector.stats
        return RuntimeStatus(
            stats.ticks_total,
            stats.last_seq,
            self.pool.health(),
            self.link.state if self.link is not None else None,
            stats.history_ticks,
        )
