"""Everything the desktop window may ask of the core, in one object.

The window (``ui/``) renders state and sends intent; it never opens a file, a socket or
the vault itself. :class:`DesktopSession` is the other side of that line: it owns the
settings store, the running :class:`~app.runtime.Runtime`, the credential vault and the
in-memory journal, and turns each user intent (restart a worker, apply settings, store a
password, sync with the gateway) into core calls. Anything slow or blocking (scrypt,
file writes, a terminal login) runs in a worker thread, so the loop the window shares
never stalls.

Being plain asyncio, the session is driven the same way by the window and by tests that
have no Qt at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from app.config import ClientConfig
from app.config.gateway_sync import flatten_settings, sync_with_gateway
from app.config.load import ConfigError
from app.config.store import ConfigStore, InvalidConfig, LoadResult, validate_document
from app.config.sync import SyncResult
from app.export.api import (
    ExportCancelledError,
    ExportProgress,
    ProgressCallback,
    export_bars,
    export_ticks,
)
from app.history.chart_history import ChartSeries
from app.journal import Journal
from app.logfiles import log_file_path
from app.monitor.history import SeriesHistory
from app.monitor.history_file import load_history, save_history
from app.paths import app_paths
from app.runtime import Runtime
from app.security.audit import AuditLog
from app.security.logins import (
    MissingCredentialError,
    gateway_credential_name,
    terminal_credential_name,
)
from app.security.secret import Secret
from app.security.vault import MIN_MASTER_PASSWORD_LENGTH, VaultError, VaultLocked
from app.session_symbols import SymbolChange, SymbolIntents, SymbolListError, TerminalSymbol
from app.session_trading import SessionTrading
from app.session_vault import ConnectionTest, MasterPasswordRequired, VaultIntents
from app.session_view import SessionSnapshot, SessionState, SnapshotBuilder
from app.terminal.export_files import TIMEFRAMES as EXPORT_TIMEFRAMES
from app.terminal.export_files.writer import FileFormat

log = logging.getLogger(__name__)

# The window's one line into the core is this module and app.session_view (an
# import-linter contract in pyproject.toml): the errors and small values its dialogs
# name (ConfigError, VaultLocked, flatten_settings, EXPORT_TIMEFRAMES...) are re-exported
# here (``__all__``) rather than imported from the modules that raise or define them.

#: (settings, terminal passwords, backend login, NATS credential) -> the runtime.
RuntimeFactory = Callable[[ClientConfig, dict[str, str], Secret | None, Secret | None], Runtime]


def _default_runtime(
    config: ClientConfig,
    passwords: dict[str, str],
    credential: Secret | None,
    nats_credential: Secret | None,
) -> Runtime:
    return Runtime(
        config, passwords=passwords, credential=credential, nats_credential=nats_credential
    )


class DesktopSession(VaultIntents, SymbolIntents, SessionTrading):
    """The core behind one window: settings, runtime, vault, journal.

    The window reads :meth:`snapshot` once per frame and sends every intent through a
    method here (vault intents: :mod:`app.session_vault`; symbols:
    :mod:`app.session_symbols`; trading: :mod:`app.session_trading`); it never touches
    :attr:`runtime` itself.
    """

    def __init__(
        self,
        store: ConfigStore,
        *,
        journal: Journal | None = None,
        runtime_factory: RuntimeFactory = _default_runtime,
    ) -> None:
        self.store = store
        self.journal = journal if journal is not None else Journal()
        self._runtime_factory = runtime_factory
        loaded: LoadResult = store.load()
        self.config: ClientConfig = loaded.config
        #: What the user must be told about how the settings were found (corrupt file...).
        self.load_warnings: list[str] = list(loaded.warnings)
        self.first_run = loaded.source == "defaults" and not loaded.warnings
        self.runtime: Runtime | None = None
        #: The runtime between its creation and the end of its start (see ``_shown``).
        self._starting: Runtime | None = None
        self._init_trading()
        self.state = SessionState.STOPPED
        self.error = ""
        self._master: Secret | None = None
        self._lock = asyncio.Lock()
        self._keyring_usable: bool | None = None
        self._symbol_lists: dict[str, list[TerminalSymbol]] = {}
        self._views = SnapshotBuilder()
        #: The Throughput history outlives each runtime (a restart keeps the charts):
        #: every new runtime's monitor records into this one.
        self._history = SeriesHistory()
        # ... and a restart of the app: saved at stop, beside the settings.
        load_history(self._history, self.history_path)
        #: Grows at every (re)start, so the snapshot rebuilds what depends on the run.
        self._run = 0

    @classmethod
    def open(cls, config_path: Path, *, journal: Journal | None = None) -> DesktopSession:
        """The session of the settings file at ``config_path``, for the window's entry
        point, which never touches the settings store itself."""
        return cls(ConfigStore(config_path), journal=journal)

    @classmethod
    def with_settings(cls, config_path: Path, config: ClientConfig) -> DesktopSession:
        """A session whose settings file is first written with ``config`` (benchmarks,
        demos: the window's package never writes the settings itself)."""
        store = ConfigStore(config_path)
        store.save(config)
        return cls(store)

    @property
    def history_path(self) -> Path:
        """Where the Throughput history is kept between runs: next to the settings."""
        return self.store.path.parent / "throughput-history.json"

    @property
    def layout_path(self) -> Path:
        """Where the window keeps its layout: next to the settings it belongs with."""
        return self.store.path.parent / "window-layout.ini"

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start capture with the current settings.

        Raises :class:`MasterPasswordRequired` before anything starts when terminal
        passwords live in a file vault the session cannot open yet.
        """
        async with self._lock:
            await self._start_locked()

    async def _start_locked(self) -> None:
        if self.runtime is not None:
            return
        self.state, self.error = SessionState.STARTING, ""
        try:
            passwords = await self._passwords(self.config)
            credential = await self._backend_credential(self.config)
            nats_secret = await self._nats_credential(self.config)
            runtime = self._runtime_factory(self.config, passwords, credential, nats_secret)
            if runtime.monitor is not None:
                runtime.monitor.history = self._history  # the charts go on across restarts
            # The chart's history helper first: spawning it runs beside the workers'
            # start, and the last hour is on screen as soon as the first tick is.
            await runtime.start_chart()
            self._starting = runtime
            try:
                await runtime.start()
            except BaseException:
                await runtime.chart.close()  # its helper process is not left behind
                raise
            finally:
                self._starting = None
        except MasterPasswordRequired:
            self.state = SessionState.STOPPED
            raise
        except Exception as exc:
            self.state, self.error = SessionState.FAILED, f"{type(exc).__name__}: {exc}"
            log.error("capture did not start: %s", self.error)
            raise
        self.runtime = runtime
        self._run += 1
        self.state = SessionState.RUNNING
        log.info(
            "capture started: %d workers, %s",
            len(runtime.pool.health()),
            "backend " + self.config.backend.bridge_url
            if self.config.backend.enabled
            else "no backend",
        )

    async def stop(self) -> None:
        """Stop capture and keep the Throughput history for the next start of the app
        (Ctrl+R's restart keeps it in memory and does not write it)."""
        async with self._lock:
            await self._stop_locked()
            if len(self._history):
                try:
                    await asyncio.to_thread(save_history, self._history, self.history_path)
                except OSError as exc:
                    log.warning("throughput history not saved: %s", exc)

    async def _stop_locked(self) -> None:
        runtime, self.runtime = self.runtime, None
        if runtime is None:
            return
        self.state = SessionState.STOPPING
        try:
            await runtime.stop()
        finally:
            self.state = SessionState.STOPPED
            log.info("capture stopped")

    async def restart(self) -> None:
        async with self._lock:
            await self._stop_locked()
            await self._start_locked()

    def file_locations(self) -> list[tuple[str, Path]]:
        """Where this session's files are (settings, data, spool, vault, log file), as
        ``(what, path)`` rows for the welcome note and Help."""
        return [*app_paths(self.store.path, self.config).items(), ("log file", log_file_path())]

    @property
    def backend_problem(self) -> tuple[str, str] | None:
        """Why the backend the settings start inside the app is not running: (short,
        whole text), or None when nothing went wrong."""
        error = self.runtime.embedded_error if self.runtime is not None else None
        return (error.short, str(error)) if error is not None else None

    def undelivered_on_quit(self) -> tuple[int, bool]:
        """Ticks that quitting now leaves undelivered, and whether they are kept.

        Only while the link is down (or halted): with the bridge connected, stopping
        waits for its acknowledgements. Kept is True when the spool is on disk (the next
        start sends them), False when it is in memory only (they are lost). (0, True)
        when nothing would be left behind.
        """
        runtime = self.runtime
        if runtime is None or runtime.link is None:
            return 0, True
        state = runtime.link.state
        if state.connected and not state.halted:
            return 0, True
        return state.backlog_ticks, self.config.backend.spool_disk_mb > 0

    # ------------------------------------------------------------------ intents
    def restart_worker(self, worker_id: int) -> None:
        if self.runtime is not None:
            log.info("worker %d: reconnect requested", worker_id)
            self.runtime.pool.restart(worker_id)

    def disable_worker(self, worker_id: int) -> None:
        if self.runtime is not None:
            log.info("worker %d: disabled by the user", worker_id)
            self.runtime.pool.disable(worker_id)

    def enable_worker(self, worker_id: int) -> None:
        if self.runtime is not None:
            log.info("worker %d: enabled by the user", worker_id)
            self.runtime.pool.enable(worker_id)

    def acknowledge_alert(self, alert_id: str) -> bool:
        """Mark an alert seen; False when it is not known (capture restarted since the
        window drew it: a new monitor, new alerts)."""
        if self.runtime is None or self.runtime.monitor is None:
            return False
        try:
            self.runtime.monitor.alerts.acknowledge(alert_id)
        except KeyError:
            return False
        return True

    def cancel_backfill(self) -> bool:
        """Stop fetching the history missed since the last run (live capture goes on;
        the next run fetches the rest). False when nothing was running."""
        if self.runtime is None or not any(j.active for j in self.runtime.backfill.progress()):
            return False
        log.info("history backfill cancelled by the user")
        self.runtime.backfill.cancel()
        return True

    # ------------------------------------------------------------------ chart
    @property
    def _shown(self) -> Runtime | None:
        """The runtime the window draws: the running one, or the one starting (its ticks
        and chart history show while the embedded backend still starts; intents wait
        for :attr:`runtime`)."""
        return self.runtime if self.runtime is not None else self._starting

    @property
    def capturing(self) -> bool:
        """Whether the window has capture to draw (running, or starting its backend)."""
        return self._shown is not None

    def chart_bars(self, symbol: str, timeframe: str) -> ChartSeries | None:
        """Bars of ``symbol`` (history joined with live; app/history/chart_history.py)."""
        shown = self._shown
        return None if shown is None else shown.chart.series(symbol, timeframe)

    def chart_ticks(self, symbol: str, start_msc: int, seen: int) -> ChartSeries | None:
        """The tick view: ticks since ``seen`` were drawn (or the window from ``start_msc``)."""
        shown = self._shown
        return None if shown is None else shown.chart.ticks(symbol, start_msc, seen)

    def request_older(self, symbol: str, timeframe: str, before_ms: int) -> None:
        shown = self._shown
        if shown is not None:
            shown.chart.request_older(symbol, timeframe, before_ms)

    # ------------------------------------------------------------------ export
    async def export_cached(
        self,
        symbol: str,
        path: Path,
        *,
        timeframe: str | None = None,
        fmt: FileFormat = "mt5",
        progress: ProgressCallback | None = None,
    ) -> int:
        """Write the cached ticks of ``symbol`` (or bars of ``timeframe``, M1…MN1) to
        ``path`` in a worker thread, in the symbol's server time like MT5's exports (UTC
        while a detected zone is not known yet); returns rows written. ``progress``
        returning False cancels (the partial file is removed: :class:`ExportCancelledError`)."""
        if self.runtime is None:
            raise RuntimeError("capture is not running: nothing is cached to export")
        collector = self.runtime.collector
        zone = self.runtime.zones.zone_or_utc(symbol)
        if timeframe is None:
            rows = await asyncio.to_thread(
                export_ticks, collector, symbol, path, fmt=fmt, progress=progress, zone=zone
            )
        else:
            rows = await asyncio.to_thread(
                export_bars,
                collector,
                symbol,
                path,
                timeframe,
                fmt=fmt,
                progress=progress,
                zone=zone,
            )
        log.info("exported %d rows of %s to %s in server time %s", rows, symbol, path, zone.key)
        return rows

    # ------------------------------------------------------------------ settings
    def validate(self, document: dict[str, Any]) -> ClientConfig:
        """The settings ``document`` describes, or ``InvalidConfig`` listing each problem
        as ``field: value: rule`` (what the settings dialog shows next to the field)."""
        return validate_document(document, "settings")

    async def apply_settings(self, config: ClientConfig) -> bool:
        """Save ``config`` (atomically, with a backup) and restart capture with it.

        Returns False when nothing changed (then nothing is written or restarted).
        """
        async with self._lock:
            if config == self.config:
                return False
            await asyncio.to_thread(self.store.save, config)
            previous, self.config = self.config, config
            log.info("settings applied and saved to %s", self.store.path)
            AuditLog(config.security.audit_log).record(
                "config.change", str(self.store.path), "success", via="settings dialog"
            )
            if self.runtime is not None:
                await self._stop_locked()
                try:
                    await self._start_locked()
                except MasterPasswordRequired:
                    self.config = previous
                    raise
            return True

    async def sync_settings(self, take: Literal["local", "remote"] | None = None) -> SyncResult:
        """One sync step with the API gateway; a conflict is returned, never settled
        without ``take``. Pulled settings become the session's settings (and restart
        capture)."""
        if self.needs_master_password():
            raise MasterPasswordRequired("the credential vault needs its master password")
        try:
            result = await sync_with_gateway(self.store, take, master_password=self._master_secret)
        except VaultLocked:
            self._master = None  # wrong: ask again next time
            raise
        if result.status == "endpoints_kept":
            log.warning("settings: %s", result.message)  # the dialog asks; the log says
        if result.config is not None and result.config != self.config:
            async with self._lock:
                self.config = result.config
                if self.runtime is not None:
                    await self._stop_locked()
                    await self._start_locked()
        return result

    # ------------------------------------------------------------------ the view
    def snapshot(self, now: float | None = None) -> SessionSnapshot:
        """What the window shows now, as one immutable value (built once per frame by
        the window's render timer and handed to every panel)."""
        return self._views.build(
            now=time.time() if now is None else now,
            state=self.state,
            error=self.error,
            run=self._run,
            terminals={t.name: tuple(t.symbols) for t in self.config.terminals},
            runtime=self._shown,
            history=self._history,
            history_version=self._run,
        )


__all__ = [
    "EXPORT_TIMEFRAMES",
    "MIN_MASTER_PASSWORD_LENGTH",
    "ConfigError",
    "ConnectionTest",
    "DesktopSession",
    "ExportCancelledError",
    "ExportProgress",
    "InvalidConfig",
    "MasterPasswordRequired",
    "MissingCredentialError",
    "SessionSnapshot",
    "SessionState",
    "SymbolChange",
    "SymbolListError",
    "SyncResult",
    "TerminalSymbol",
    "VaultError",
    "VaultLocked",
    "flatten_settings",
    "gateway_credential_name",
    "terminal_credential_name",
]
