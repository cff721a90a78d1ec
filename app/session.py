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
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx

from app.config import ClientConfig
from app.config.gateway_sync import sync_with_gateway
from app.config.schema import TerminalConfig
from app.config.store import ConfigStore, InvalidConfig, LoadResult, validate_document
from app.config.sync import SyncResult
from app.export.api import ProgressCallback, export_bars, export_ticks
from app.history.chart_history import ChartSeries
from app.journal import Journal
from app.link.gateway import GatewayClient, GatewayError
from app.runtime import Runtime
from app.security.audit import AuditLog
from app.security.connections import tls_context_for, tls_settings
from app.security.logins import (
    backend_credential,
    needs_backend_credential,
    needs_vault,
    open_configured_vault,
    terminal_credential_name,
    terminal_passwords,
)
from app.security.secret import Secret
from app.security.vault import Vault, VaultLocked, default_vault_path, keyring_status
from app.terminal.api import MT5Api
from app.terminal.export_files.writer import FileFormat
from app.terminal.loader import TerminalUnavailable, open_terminal
from app.terminal.spec import TerminalSpec

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class SessionState(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"


class SymbolListError(Exception):
    """A terminal's symbol list could not be had; the message says why (MT5's error)."""


class MasterPasswordRequired(Exception):  # noqa: N818 -- a state the window reacts to
    """The vault is a file and the session has no master password for it yet."""


@dataclass(frozen=True, slots=True)
class ConnectionTest:
    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class TerminalSymbol:
    """One entry of a terminal's symbol list (``symbols_get()``), for the symbol browser."""

    name: str
    description: str
    path: str
    terminal: str


@dataclass(frozen=True, slots=True)
class SymbolAdded:
    """The answer to "capture this symbol": ``ok`` with what happened, or the reason not."""

    ok: bool
    symbol: str
    message: str
    #: The worker restarted to take it (None: not running, refused, or captured already).
    worker_id: int | None = None


def _initialize(api: MT5Api, spec: TerminalSpec) -> str:
    """Log in once for a short-lived call (connection test, symbol list): "" when it
    worked, else MT5's error."""
    ok = api.initialize(
        spec.path,
        login=spec.login,
        password=spec.password,
        server=spec.server,
        timeout=min(spec.timeout_ms, 15_000),
        portable=spec.portable,
    )
    if ok:
        return ""
    code, text = api.last_error()
    return f"MT5 error {code}: {text}"


RuntimeFactory = Callable[[ClientConfig, dict[str, str], Secret | None], Runtime]


def _default_runtime(
    config: ClientConfig, passwords: dict[str, str], credential: Secret | None
) -> Runtime:
    return Runtime(config, passwords=passwords, credential=credential)


class DesktopSession:
    """The core behind one window: settings, runtime, vault, journal."""

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
        self.state = SessionState.STOPPED
        self.error = ""
        self._master: Secret | None = None
        self._lock = asyncio.Lock()
        self._keyring_usable: bool | None = None
        self._symbol_lists: dict[str, list[TerminalSymbol]] = {}

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
            runtime = self._runtime_factory(self.config, passwords, credential)
            await runtime.start()
        except MasterPasswordRequired:
            self.state = SessionState.STOPPED
            raise
        except Exception as exc:
            self.state, self.error = SessionState.FAILED, f"{type(exc).__name__}: {exc}"
            log.error("capture did not start: %s", self.error)
            raise
        self.runtime = runtime
        self.state = SessionState.RUNNING
        log.info(
            "capture started: %d workers, %s",
            len(runtime.pool.health()),
            "backend " + self.config.backend.bridge_url
            if self.config.backend.enabled
            else "no backend",
        )

    async def stop(self) -> None:
        async with self._lock:
            await self._stop_locked()

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

    def acknowledge_alert(self, alert_id: str) -> None:
        if self.runtime is not None and self.runtime.monitor is not None:
            self.runtime.monitor.alerts.acknowledge(alert_id)

    # ------------------------------------------------------------------ chart
    def chart_bars(self, symbol: str, timeframe: str) -> ChartSeries | None:
        """Bars of ``symbol`` (history joined with live; app/history/chart_history.py)."""
        return None if self.runtime is None else self.runtime.chart.series(symbol, timeframe)

    def chart_ticks(self, symbol: str, start_msc: int, seen: int) -> ChartSeries | None:
        """The tick view: ticks since ``seen`` were drawn (or the window from ``start_msc``)."""
        return None if self.runtime is None else self.runtime.chart.ticks(symbol, start_msc, seen)

    def request_older(self, symbol: str, timeframe: str, before_ms: int) -> None:
        if self.runtime is not None:
            self.runtime.chart.request_older(symbol, timeframe, before_ms)

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

    # ------------------------------------------------------------------ vault
    def vault_is_file(self) -> bool:
        mode = self.config.security.vault
        if mode == "file":
            return True
        if mode == "keyring":
            return False
        if self._keyring_usable is None:
            self._keyring_usable = keyring_status().usable
        return not self._keyring_usable

    def vault_file_exists(self) -> bool:
        """Whether the vault file is there yet: a new one has its master password chosen
        (typed twice, minimum length), an existing one only has it entered."""
        return (self.config.security.vault_file or default_vault_path()).exists()

    def needs_master_password(self) -> bool:
        return self.vault_is_file() and self._master is None

    def set_master_password(self, secret: Secret | None) -> None:
        self._master = secret

    def _master_secret(self) -> Secret:
        if self._master is None:
            raise MasterPasswordRequired("the credential vault needs its master password")
        return self._master

    def _vault(self) -> Vault:
        audit = AuditLog(self.config.security.audit_log)
        return open_configured_vault(self.config.security, self._master_secret, audit)

    async def _in_vault(self, action: Callable[[Vault], _T]) -> _T:
        """Run ``action`` on the vault in a thread (scrypt takes a noticeable moment);
        a wrong master password is forgotten so the next attempt asks again."""
        if self.needs_master_password():
            raise MasterPasswordRequired("the credential vault needs its master password")
        try:
            return await asyncio.to_thread(lambda: action(self._vault()))
        except VaultLocked:
            self._master = None
            raise

    async def _passwords(self, config: ClientConfig) -> dict[str, str]:
        if not needs_vault(config):
            return {}
        return await self._in_vault(lambda vault: terminal_passwords(config, vault))

    async def _backend_credential(self, config: ClientConfig) -> Secret | None:
        if not needs_backend_credential(config):
            return None
        return await self._in_vault(lambda vault: backend_credential(config, vault))

    async def credential_names(self) -> list[str]:
        return await self._in_vault(lambda vault: sorted(vault.names()))

    async def store_credential(self, name: str, secret: Secret) -> None:
        await self._in_vault(lambda vault: vault.set(name, secret))
        log.info("credential %s stored in the vault", name)

    async def delete_credential(self, name: str) -> None:
        await self._in_vault(lambda vault: vault.delete(name))
        log.info("credential %s deleted from the vault", name)

    # ------------------------------------------------------------------ connection tests
    async def test_terminal(self, terminal_name: str, password: Secret | None) -> ConnectionTest:
        """Log in to the named terminal once, off the loop, and report the MT5 result."""
        term = next((t for t in self.config.terminals if t.name == terminal_name), None)
        if term is None:
            return ConnectionTest(False, f"no terminal named {terminal_name!r} in the settings")
        spec = term.to_spec(password.reveal() if password is not None else None)

        def attempt() -> ConnectionTest:
            try:
                api = open_terminal(spec)
            except TerminalUnavailable as exc:
                return ConnectionTest(False, str(exc))
            try:
                failed = _initialize(api, spec)
                if failed:
                    return ConnectionTest(False, failed)
                info = api.account_info()
                if info is None:  # None is an error with a reason, never "no account"
                    code, text = api.last_error()
                    return ConnectionTest(False, f"account_info: MT5 error {code}: {text}")
                return ConnectionTest(
                    True, f"{terminal_name}: account {info.login} on {info.server}"
                )
            finally:
                api.shutdown()

        return await asyncio.to_thread(attempt)

    # ------------------------------------------------------------------ symbols
    async def terminal_symbols(self, terminal_name: str | None = None) -> list[TerminalSymbol]:
        """The symbols a terminal offers (its ``symbols_get()``), asked once per session
        in a short-lived connection off the loop (the capture's terminals live in worker
        processes), like :meth:`test_terminal`. Raises :class:`SymbolListError` with the
        terminal's reason when it cannot be asked."""
        term = self._terminal(terminal_name)
        cached = self._symbol_lists.get(term.name)
        if cached is not None:
            return cached
        password = (await self._passwords(self.config)).get(term.name)
        spec = term.to_spec(password)

        def ask() -> list[TerminalSymbol]:
            try:
                api = open_terminal(spec)
            except TerminalUnavailable as exc:
                raise SymbolListError(str(exc)) from None
            try:
                failed = _initialize(api, spec)
                if failed:
                    raise SymbolListError(f"{term.name}: {failed}")
                infos = api.symbols_get()
                if infos is None:
                    code, text = api.last_error()
                    raise SymbolListError(f"{term.name}: symbols_get: MT5 error {code}: {text}")
                return [TerminalSymbol(i.name, i.description, i.path, term.name) for i in infos]
            finally:
                api.shutdown()

        symbols = await asyncio.to_thread(ask)
        self._symbol_lists[term.name] = symbols
        return symbols

    def _terminal(self, name: str | None) -> TerminalConfig:
        terms = self.config.terminals
        term = terms[0] if name is None else next((t for t in terms if t.name == name), None)
        if term is None:
            raise SymbolListError(f"no terminal named {name!r} in the settings")
        return term

    async def add_symbol(self, name: str, terminal_name: str | None = None) -> SymbolAdded:
        """Capture ``name`` (any case) from a terminal (default the first): refused with
        the terminal's reason when its ``symbols_get()`` has no such symbol; else saved in
        the settings (``terminals[i].symbols``) and, while capture runs, taken by one
        worker that restarts alone (``Runtime.add_symbol``)."""
        name = name.strip()
        owner = next(
            (
                (t.name, s)
                for t in self.config.terminals
                for s in t.symbols
                if s.casefold() == name.casefold()
            ),
            None,
        )
        if owner is not None:
            return SymbolAdded(True, owner[1], f"{owner[1]} is captured already by {owner[0]}")
        try:
            term = self._terminal(terminal_name)
            offered = await self.terminal_symbols(term.name)
        except SymbolListError as exc:
            return SymbolAdded(False, name, f"{name} not added: {exc}")
        match = next((s for s in offered if s.name.casefold() == name.casefold()), None)
        if match is None:
            return SymbolAdded(
                False,
                name,
                f"{name} not added: terminal {term.name} does not offer it "
                f"(not among the {len(offered)} symbols of its symbols_get())",
            )
        symbol = match.name
        async with self._lock:
            doc = self.config.model_dump(mode="json")
            index = next(i for i, t in enumerate(self.config.terminals) if t.name == term.name)
            doc["terminals"][index]["symbols"].append(symbol)
            try:
                config = validate_document(doc, "settings")
            except InvalidConfig as exc:
                return SymbolAdded(False, symbol, f"{symbol} not added: {exc}")
            await asyncio.to_thread(self.store.save, config)
            self.config = config
            worker: int | None = None
            if self.runtime is not None:
                self.runtime.config = config
                worker = self.runtime.add_symbol(term.name, symbol)
        log.info("%s added to terminal %s and saved to %s", symbol, term.name, self.store.path)
        where = f"; worker {worker} restarted to capture it" if worker is not None else ""
        return SymbolAdded(True, symbol, f"{symbol} added to {term.name}{where}", worker)

    async def test_gateway(self, username: str, password: Secret) -> ConnectionTest:
        url = self.config.backend.gateway_url
        tls = tls_context_for(
            url,
            tls_settings(self.config.security),
            plaintext_allowed=self.config.security.plaintext_allowed,
        )
        try:
            async with (
                httpx.AsyncClient(verify=tls if tls is not None else True, timeout=10) as http,
                GatewayClient(url, username, password.reveal(), http=http) as gateway,
            ):
                await gateway.login()
        except GatewayError as exc:
            return ConnectionTest(False, str(exc))
        except httpx.HTTPError as exc:
            return ConnectionTest(False, f"{url}: {type(exc).__name__}: {exc}")
        return ConnectionTest(True, f"logged in to {url} as {username}")


__all__ = [
    "ConnectionTest",
    "DesktopSession",
    "MasterPasswordRequired",
    "SessionState",
    "SymbolAdded",
    "SymbolListError",
    "TerminalSymbol",
    "terminal_credential_name",
]
