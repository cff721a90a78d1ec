"""The one settings schema of the client.

Every field carries a default, a range and a description: the settings editor and the
JSON Schema in ``config/`` are generated from this, so the description is what the user
reads as a tooltip. The ``sessions`` section (trading hours) is in
:mod:`app.config.sessions_schema`.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from app.backoff import BackoffPolicy
from app.clock import now_msc
from app.config.nats_schema import NatsSinkFields, check_duplicate_window
from app.config.section import Section
from app.config.sessions_schema import SessionsConfig
from app.config.trading_schema import TradingConfig, check_allowed_symbols_captured
from app.servertime import parse_server_time_zone
from app.sessions import SessionBook
from app.terminal.remote import refuse_remote_host
from app.terminal.spec import TerminalSpec

DEFAULT_SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "BTCUSD"]


#: The fields that apply to one kind of terminal only (or to a few), by kind.
TERMINAL_KIND_FIELDS: dict[str, list[str]] = {
    "simulated": [
        "seed",
        "rates",
        "market_hours",
        "control_file",
        "server_time_zone",
        "sim_balance",
        "sim_leverage",
        "sim_margin_mode",
        "sim_account",
        "sim_state_dir",
    ],
    "replay": [
        "replay_files",
        "replay_speed",
        "replay_shift_to_now",
        "replay_skip_bad_rows",
        "control_file",
    ],
    "mt5": ["path", "login", "server", "timeout_ms", "portable", "server_time_zone"],
    "remote": ["host", "port", "allow_remote_code", "request_timeout_s", "server_time_zone"],
}


class TerminalConfig(Section):
    name: str = Field(
        "simulated", min_length=1, description="A name for this terminal, shown in the pool panel."
    )
    kind: Literal["simulated", "mt5", "replay", "remote"] = Field(
        "simulated",
        description="'mt5' attaches to a real MetaTrader 5 terminal (Windows, 'mt5' extra); "
        "'remote' to a MetaTrader5 module served over RPyC (mt5linux under Wine on Linux, "
        "or 'trading-client terminal serve'); 'simulated' uses the built-in terminal; "
        "'replay' serves MT5 tick export files.",
        # The settings dialog shows a field named here only on terminals of its kinds
        # (fields named nowhere, such as the symbols, apply to every kind).
        json_schema_extra={"fields_by_kind": cast("Any", TERMINAL_KIND_FIELDS)},
    )
    path: str | None = Field(
        None, description="Path to terminal64.exe; empty attaches to the running terminal."
    )
    login: int | None = Field(
        None, ge=1, description="Broker account number; the password lives in the credential vault."
    )
    server: str | None = Field(None, description="Broker trade server, e.g. 'MetaQuotes-Demo'.")
    timeout_ms: int = Field(
        60_000, ge=1_000, le=600_000, description="How long initialize() may take, in ms."
    )
    portable: bool = Field(False, description="Start the terminal in portable mode.")
    server_time_zone: str | None = Field(
        None,
        description="The time zone the broker's server stamps ticks in: 'ny-close' "
        "(GMT+2 in winter, GMT+3 in summer, on US daylight saving dates), an IANA name "
        "('Europe/Athens', 'UTC') or an offset ('+02:00'). Empty: detected from fresh "
        "ticks on a real terminal; 'ny-close' for the simulated and replay terminals.",
    )
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Remote terminal only: the RPyC server's address. Anything but this "
        "machine needs allow_remote_code; prefer an SSH tunnel "
        "(ssh -L 18812:127.0.0.1:18812 HOST).",
    )
    port: int = Field(
        18812, ge=1, le=65535, description="Remote terminal only: the RPyC server's port."
    )
    allow_remote_code: bool = Field(
        False,
        description="Remote terminal only: allow a host other than this machine. RPyC "
        "classic is remote code execution: anyone who reaches the server's port can run "
        "code as its user.",
    )
    request_timeout_s: float = Field(
        5.0,
        ge=0.1,
        le=600,
        description="Remote terminal only: longest wait for one call's answer, seconds "
        "(initialize waits timeout_ms instead); slower is reported as IPC timeout -10005. "
        "Keep it below pool.stall_timeout_s.",
    )
    symbols: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SYMBOLS),
        min_length=1,
        description="Symbols to capture from this terminal.",
    )
    market_hours: Literal["sessions", "always"] = Field(
        "sessions",
        description="Simulated terminal only: 'sessions' closes its market like a ny-close "
        "broker's (FX and metals at the weekend, gold's daily break, crypto 24/7); "
        "'always' keeps every symbol trading 24/7.",
    )
    seed: int = Field(
        42, description="Simulated terminal only: the seed its market is generated from."
    )
    rates: dict[str, float] = Field(
        default_factory=dict,
        description="Simulated terminal only: ticks per second per symbol (1 to 1,000,000).",
    )
    control_file: Path | None = Field(
        None,
        description="Simulated and replay terminals: a JSON file that injects faults "
        "(tests, demos).",
    )
    sim_balance: float = Field(
        10_000.0,
        ge=0,
        le=1e12,
        description="Simulated terminal only: the deposit (USD) a new simulated account "
        "opens with; an existing account keeps its own books.",
    )
    sim_leverage: int = Field(
        100, ge=1, le=10_000, description="Simulated terminal only: a new account's leverage."
    )
    sim_margin_mode: Literal["hedging", "netting"] = Field(
        "hedging",
        description="Simulated terminal only: 'hedging' keeps each order's position apart; "
        "'netting' keeps one position per symbol (an opposite order reduces or reverses it).",
    )
    sim_account: Literal["demo", "real", "contest"] = Field(
        "demo",
        description="Simulated terminal only: the account's trade mode; 'real' makes the "
        "simulated account look like a live-money one (to try the real-account consent).",
    )
    sim_state_dir: Path | None = Field(
        None,
        description="Simulated terminal only: the folder its accounts' books are kept in "
        "(positions, orders, deals, balance); empty: 'simulated-broker' in the data folder.",
    )
    replay_files: dict[str, list[Path]] = Field(
        default_factory=dict,
        description="Replay terminal only: symbol → MT5 tick export files (Symbols → Ticks → "
        "Export), replayed in time order; every symbol captured needs files.",
    )
    replay_speed: float = Field(
        1.0,
        ge=0,
        le=1_000_000,
        description="Replay terminal only: 1 replays in real time, 10 ten times faster, "
        "0 as fast as possible.",
    )
    replay_shift_to_now: bool = Field(
        False,
        description="Replay terminal only: stamp the first tick with the start time and move "
        "all others by the same amount, so replayed ticks look live.",
    )
    replay_skip_bad_rows: bool = Field(
        False,
        description="Replay terminal only: skip unreadable rows of a file (and log how many) "
        "instead of refusing the file.",
    )

    @field_validator("symbols")
    @classmethod
    def _unique_symbols(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        for s in v:
            if not s.strip():
                raise ValueError("a symbol name cannot be empty")
            if s in seen:
                raise ValueError(f"{s} is listed twice")
            seen.add(s)
        return v

    @field_validator("server_time_zone")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        return parse_server_time_zone(v).key

    @field_validator("rates")
    @classmethod
    def _rates_in_range(cls, v: dict[str, float]) -> dict[str, float]:
        for sym, r in v.items():
            if not 1 <= r <= 1_000_000:
                raise ValueError(f"{sym}: {r:g} ticks/s is outside 1..1000000")
        return v

    @model_validator(mode="after")
    def _remote_host_allowed(self) -> TerminalConfig:
        if self.kind == "remote":
            refused = refuse_remote_host(self.host, self.port, self.allow_remote_code)
            if refused is not None:
                raise ValueError(refused)
        return self

    @model_validator(mode="after")
    def _replay_has_files(self) -> TerminalConfig:
        if self.kind != "replay":
            return self
        empty = [sym for sym, files in self.replay_files.items() if not files]
        if empty:
            raise ValueError(f"replay_files: no files listed for {', '.join(empty)}")
        missing = [sym for sym in self.symbols if sym not in self.replay_files]
        if missing:
            raise ValueError(
                f"replay_files: no files for {', '.join(missing)} (a replay terminal can "
                "only capture symbols it has files for)"
            )
        return self

    def to_spec(self, password: str | None = None, *, anchor_ms: int | None = None) -> TerminalSpec:
        """The worker's view of this terminal. A replay is anchored now (or at
        ``anchor_ms``): every worker made from this spec shares that replay clock."""
        replay = self.kind == "replay"
        if replay and anchor_ms is None:
            anchor_ms = now_msc()
        return TerminalSpec(
            name=self.name,
            kind=self.kind,
            path=self.path,
            login=self.login,
            password=password,
            server=self.server,
            timeout_ms=self.timeout_ms,
            portable=self.portable,
            server_time_zone=self.server_time_zone,
            host=self.host,
            port=self.port,
            allow_remote_code=self.allow_remote_code,
            request_timeout_s=self.request_timeout_s,
            seed=self.seed,
            rates=tuple(sorted(self.rates.items())),
            control_file=self.control_file,
            sim_balance=self.sim_balance,
            sim_leverage=self.sim_leverage,
            sim_margin_mode=self.sim_margin_mode,
            sim_account=self.sim_account,
            sim_state_dir=self.sim_state_dir,
            sessions=SessionBook.default()
            if self.kind == "simulated" and self.market_hours == "sessions"
            else None,
            replay_files=tuple(
                (sym, tuple(files))
                for sym, files in self.replay_files.items()
                if sym in self.symbols
            )
            if replay
            else (),
            replay_speed=self.replay_speed,
            replay_shift_to_now=self.replay_shift_to_now,
            replay_anchor_ms=anchor_ms if replay else None,
            replay_skip_bad_rows=self.replay_skip_bad_rows,
        )


class BackoffConfig(Section):
    initial_s: float = Field(0.5, gt=0, le=60, description="First reconnect delay, seconds.")
    maximum_s: float = Field(30.0, gt=0, le=3600, description="Longest reconnect delay, seconds.")
    multiplier: float = Field(
        2.0, ge=1, le=10, description="Growth of the delay per failed attempt."
    )
    jitter: float = Field(0.5, ge=0, le=1, description="Fraction of each delay that is randomised.")

    @model_validator(mode="after")
    def _ordered(self) -> BackoffConfig:
        if self.maximum_s < self.initial_s:
            raise ValueError(f"maximum_s {self.maximum_s} is below initial_s {self.initial_s}")
        return self

    def policy(self) -> BackoffPolicy:
        return BackoffPolicy(self.initial_s, self.maximum_s, self.multiplier, self.jitter)


class PoolConfig(Section):
    size: int = Field(
        5, ge=1, le=64, description="Number of terminal connections (worker processes)."
    )
    poll_interval_ms: float = Field(
        2.0, ge=0.1, le=1000, description="Pause between polls when a terminal has nothing new, ms."
    )
    max_batch: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="Most ticks taken from a terminal per poll and symbol.",
    )
    stall_timeout_s: float = Field(
        10.0,
        ge=1,
        le=600,
        description="A streaming worker silent this long is killed and restarted.",
    )
    connect_timeout_s: float = Field(
        90.0,
        ge=1,
        le=900,
        description="How long a worker may take to connect before it counts as stalled.",
    )
    backoff: BackoffConfig = Field(default_factory=BackoffConfig, description="Reconnect delays.")


class BackfillConfig(Section):
    enabled: bool = Field(
        True,
        description="At start, fetch the ticks missed since the previous run from each "
        "terminal's history and deliver them like live ones (replay terminals excepted).",
    )
    max_span_h: float = Field(
        24.0,
        gt=0,
        le=2_160,
        description="Look back at most this many hours of open market (a weekend does not "
        "count); an older part of a gap stays a gap.",
    )
    chunk_minutes: int = Field(
        10,
        ge=1,
        le=1_440,
        description="History asked for in one request, minutes (smaller: smoother progress, "
        "more requests).",
    )
    state_file: Path | None = Field(
        None,
        description="Where the captured time spans are remembered between runs; empty uses "
        "the user data folder.",
    )
    save_interval_s: float = Field(
        5.0, ge=0.5, le=600, description="How often the captured spans are saved, s."
    )


class CacheConfig(Section):
    ticks_per_symbol: int = Field(
        250_000,
        ge=1_000,
        le=50_000_000,
        description="Ticks kept in memory per symbol (60 bytes each).",
    )
    bar_history: int = Field(
        1_440, ge=10, le=1_000_000, description="Closed bars kept per symbol and timeframe."
    )


def check_endpoint_url(url: str, schemes: tuple[str, str]) -> str:
    """``url`` when it has one of ``schemes``, a host and a valid port; else ValueError."""
    example = f"{schemes[0]}://localhost:3001/ws" if schemes[0] == "ws" else "http://localhost:8000"
    parts = urlsplit(url.strip())
    # "@" anywhere, not only where urlsplit finds a user: a password holding "#" or "?"
    # makes the rest a fragment or a query, and the URL would be echoed with it.
    if "@" in url or parts.username is not None or parts.password is not None:
        # Not echoed: the text may hold a password.
        raise ValueError("must not carry a user or password (credentials go to the vault)")
    if parts.scheme.lower() not in schemes:
        raise ValueError(
            f"{url!r} is not a {schemes[0]}:// or {schemes[1]}:// URL (e.g. {example})"
        )
    if not parts.hostname:
        raise ValueError(f"{url!r} has no host (e.g. {example})")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has no valid port (1-65535)") from None
    return url


class BackendConfig(NatsSinkFields):
    """Where the ticks go; the NATS sink's fields are in :mod:`app.config.nats_schema`."""

    enabled: bool = Field(
        True, description="Stream ticks to the data bridge and register with the hub."
    )
    bridge_url: str = Field("ws://localhost:3001/ws", description="Data bridge WebSocket endpoint.")
    gateway_url: str = Field("http://localhost:8000", description="API gateway base URL.")
    hub_url: str = Field("http://localhost:7000", description="Central hub base URL.")

    @field_validator("bridge_url", "gateway_url", "hub_url")
    @classmethod
    def _endpoint_url(cls, v: str, info: ValidationInfo) -> str:
        """A URL the client can connect to, checked here so that ``config validate``
        refuses it: a mistyped one (``ws//host:3001/ws``) otherwise ran, delivered
        nothing and blamed port 80."""
        schemes = ("ws", "wss") if info.field_name == "bridge_url" else ("http", "https")
        return check_endpoint_url(v, schemes)

    gateway_username: str | None = Field(
        None,
        description="Backend login (gateway, and the bridge and hub of a backend this app "
        "does not start itself); its password lives in the credential vault "
        "(trading-client credentials set gateway/<username>).",
    )
    client_id: str | None = Field(
        None, description="This installation's id at the backend; empty uses 'desk-<hostname>'."
    )
    embedded: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Start the reference backend in-process: 'auto' when the bridge is on "
        "localhost and nothing listens there.",
    )
    demo_signals: bool = Field(
        True,
        description="The embedded backend runs its demo signal source (demo-ma-cross: M1 "
        "moving-average crossings of the captured ticks), so the window shows signals.",
    )
    embedded_db: Path | None = Field(
        None, description="SQLite file of the embedded backend; empty uses the user data folder."
    )
    batch_max_ticks: int = Field(
        5_000, ge=1, le=200_000, description="Most ticks in one message to the bridge."
    )
    linger_ms: float = Field(
        2.0, ge=0.1, le=1_000, description="Longest wait to fill a message before it is sent, ms."
    )
    window: int = Field(
        64, ge=1, le=10_000, description="Messages sent but not yet acknowledged, at most."
    )
    compression: bool = Field(
        False, description="Deflate compression (about half the loopback throughput)."
    )
    spool_memory_mb: int = Field(
        64,
        ge=1,
        le=65_536,
        description="Unacknowledged messages also kept in memory (a cache: every message is "
        "on disk when spool_disk_mb > 0, in memory only otherwise), MB.",
    )
    spool_disk_mb: int = Field(
        2_048,
        ge=0,
        le=1_000_000,
        description="The durable spool of unacknowledged messages on disk, MB: it survives "
        "a crash (the next run resends it); 0 keeps them in memory only.",
    )
    spool_dir: Path | None = Field(
        None,
        description="Folder of the durable spool (one sub-folder per client and session); "
        "empty uses the user cache folder.",
    )
    ping_interval_s: float = Field(5.0, ge=0.5, le=300, description="WebSocket ping interval, s.")
    ping_timeout_s: float = Field(
        5.0, ge=0.5, le=300, description="A link without pong this long is dropped, s."
    )
    hub_heartbeat_s: float = Field(
        5.0, ge=0.5, le=600, description="Heartbeat interval to the central hub, s."
    )
    backoff: BackoffConfig = Field(
        default_factory=BackoffConfig, description="Reconnect delays to the backend."
    )

    @model_validator(mode="after")
    def _nats_window(self) -> BackendConfig:
        check_duplicate_window(self.nats_duplicate_window_s, self.backoff.maximum_s)
        return self

    def effective_client_id(self) -> str:
        """``client_id``, or one derived from this machine's name."""
        return self.client_id or f"desk-{_hostname()}"


class TlsConfig(Section):
    min_version: Literal["1.2", "1.3"] = Field(
        "1.2", description="Lowest TLS version accepted for https/wss (1.3 is always preferred)."
    )
    ca_bundle: Path | None = Field(
        None, description="PEM file of trusted CAs; empty uses the system trust store."
    )
    pins: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Host (or host:port) → allowed SHA-256 fingerprints of the server's public "
        "key (base64 or hex); a mismatch refuses the connection.",
    )


class SecurityConfig(Section):
    tls: TlsConfig = Field(default_factory=TlsConfig, description="TLS for https/wss.")
    vault: Literal["auto", "keyring", "file"] = Field(
        "auto",
        description="Where credentials live: the OS keyring when usable ('auto'), or an "
        "encrypted file protected by a master password.",
    )
    vault_file: Path | None = Field(
        None, description="Encrypted credential file; empty uses the user data folder."
    )
    audit_log: Path | None = Field(
        None, description="Audit log (JSON lines); empty uses the user log folder."
    )
    plaintext_allowed: list[str] = Field(
        default_factory=list,
        description="Endpoints (host:port) on other machines that may be reached over plain "
        "ws:// or http:// (data and passwords cross the network in clear); any other "
        "endpoint not on this machine must use wss:// or https://.",
    )


def _hostname() -> str:
    return socket.gethostname()


class MonitorConfig(Section):
    enabled: bool = Field(True, description="Measure throughput, latency and system usage.")
    interval_s: float = Field(
        1.0, ge=0.1, le=60, description="How often metrics are computed and alert rules run, s."
    )
    rules: list[dict[str, Any]] | None = Field(
        None,
        description="Alert rules (threshold or state rules); empty uses the built-in set "
        "(TPS, p99 latency, worker failed, terminal offline, link down, spool, memory, no ticks).",
    )
    reraise_after_s: float = Field(
        300.0,
        ge=0,
        le=86_400,
        description="A condition back within this long reopens its alert instead of a new one.",
    )

    @field_validator("rules")
    @classmethod
    def _valid_rules(cls, v: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if v is None:
            return v
        from app.monitor.rules import rule_from_dict  # noqa: PLC0415 - avoids an import cycle

        names = set()
        for i, raw in enumerate(v):
            try:
                rule = rule_from_dict(raw)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"rule {i}: {exc}") from None
            if rule.name in names:
                raise ValueError(f"rule {i}: the name {rule.name!r} is used twice")
            names.add(rule.name)
        return v


class ClientConfig(Section):
    terminals: list[TerminalConfig] = Field(
        default_factory=lambda: [TerminalConfig()],
        min_length=1,
        description="Terminals to capture from.",
    )
    pool: PoolConfig = Field(default_factory=PoolConfig, description="Connection pool.")
    cache: CacheConfig = Field(default_factory=CacheConfig, description="In-memory tick cache.")
    backfill: BackfillConfig = Field(
        default_factory=BackfillConfig, description="History catch-up after a restart."
    )
    monitor: MonitorConfig = Field(
        default_factory=MonitorConfig, description="Metrics and alert rules."
    )
    security: SecurityConfig = Field(
        default_factory=SecurityConfig, description="Credentials, TLS and audit."
    )
    backend: BackendConfig = Field(default_factory=BackendConfig, description="Backend endpoints.")
    sessions: SessionsConfig = Field(
        default_factory=SessionsConfig,
        description="When markets trade (server time), for alerts and the Market Watch.",
    )
    trading: TradingConfig = Field(
        default_factory=TradingConfig, description="Orders, signals and risk limits."
    )

    @model_validator(mode="after")
    def _symbols_once(self) -> ClientConfig:
        owner: dict[str, str] = {}
        for t in self.terminals:
            for s in t.symbols:
                if s in owner:
                    raise ValueError(f"symbol {s} is captured by both {owner[s]} and {t.name}")
                owner[s] = t.name
        check_allowed_symbols_captured(self.trading, owner)
        return self
