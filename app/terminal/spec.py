"""How to reach one terminal: a picklable description handed to each worker process."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from app.servertime import NY_CLOSE, ServerTimeZone, parse_server_time_zone
from app.sessions import SessionBook

if TYPE_CHECKING:
    from app.terminal.broker.state import AccountSettings

TerminalKind = Literal["simulated", "mt5", "replay", "remote"]


@dataclass(frozen=True, slots=True)
class TerminalSpec:
    """Everything a worker needs to open its terminal.

    ``kind="mt5"`` uses the real ``MetaTrader5`` module (Windows only);
    ``kind="simulated"`` uses :class:`~app.terminal.simulated.SimulatedTerminal`, whose
    market is a pure function of ``seed``, the symbol and the time;
    ``kind="replay"`` uses :class:`~app.terminal.replay.ReplayTerminal`, which serves
    MT5 tick export files (``replay_*`` fields);
    ``kind="remote"`` uses :class:`~app.terminal.remote.RemoteTerminal`: a ``MetaTrader5``
    module served over RPyC classic (the ``mt5linux`` server under Wine, or
    ``trading-client terminal serve``) at ``host``:``port``.
    """

    name: str = "simulated"
    kind: TerminalKind = "simulated"
    path: str | None = None
    login: int | None = None
    #: Never printed: excluded from ``repr`` so it cannot leak into logs or tracebacks.
    password: str | None = field(default=None, repr=False)
    server: str | None = None
    timeout_ms: int = 60_000
    portable: bool = False
    #: The server's time zone as set (``app.servertime`` key); ``None``: the kind's default
    #: (see :meth:`zone`).
    server_time_zone: str | None = None
    # --- remote terminal only ---
    host: str = "127.0.0.1"
    port: int = 18812
    #: RPyC classic lets whoever connects run code: a host that is not this machine is
    #: refused unless the user said so (see :func:`app.terminal.remote.refuse_remote_host`).
    allow_remote_code: bool = False
    #: Longest wait for one call's answer (rpyc ``sync_request_timeout``), seconds.
    request_timeout_s: float = 5.0
    # --- simulated terminal only ---
    seed: int = 42
    #: Ticks per second per symbol; symbols not listed use their profile's default.
    rates: tuple[tuple[str, float], ...] = ()
    #: JSON file a test (or a user) writes to inject faults into a running simulated terminal.
    control_file: Path | None = None
    #: The simulated market's trading hours (in :meth:`zone`'s server time); ``None``
    #: trades every symbol 24/7.
    sessions: SessionBook | None = None
    #: The simulated broker: how a new account opens (an existing one keeps its books).
    sim_balance: float = 10_000.0
    sim_leverage: int = 100
    sim_margin_mode: Literal["hedging", "netting"] = "hedging"
    sim_account: Literal["demo", "real", "contest"] = "demo"
    #: Where the simulated accounts' books are kept (``None``: the user data folder).
    sim_state_dir: Path | None = None
    # --- replay terminal only ---
    #: (symbol, (file, ...)) pairs: the MT5 tick exports each symbol is replayed from.
    replay_files: tuple[tuple[str, tuple[Path, ...]], ...] = ()
    #: 1 = real time, 10 = ten times faster, 0 = as fast as possible.
    replay_speed: float = 1.0
    #: Move tick times so that the first tick is stamped with the replay's start.
    replay_shift_to_now: bool = False
    #: Wall-clock ms at which the replay starts; shared by every worker (and restart) of
    #: a run so that all of them see one replay clock.
    replay_anchor_ms: int | None = None
    #: Skip (and log) unreadable rows instead of refusing the file.
    replay_skip_bad_rows: bool = False

    def zone(self) -> ServerTimeZone | None:
        """The zone the terminal stamps ticks in; ``None`` means "detect it" (real terminals).

        Simulated and replay terminals default to ny-close, like most brokers: the
        default run is never in UTC, so nothing downstream can quietly assume it.
        """
        if self.server_time_zone:
            return parse_server_time_zone(self.server_time_zone)
        return NY_CLOSE if self.kind in ("simulated", "replay") else None

    def account_settings(self) -> AccountSettings:
        """How the simulated broker opens a new account for this terminal."""
        from app.terminal.broker.state import AccountSettings  # noqa: PLC0415 (light, lazy)

        return AccountSettings(
            balance=self.sim_balance,
            leverage=self.sim_leverage,
            margin_mode=self.sim_margin_mode,
            account=self.sim_account,
        )

    def broker_dir(self) -> Path:
        """The simulated accounts' folder: ``sim_state_dir``, else ``simulated-broker``
        in the user data folder (a broker keeps accounts across restarts of the app)."""
        if self.sim_state_dir is not None:
            return self.sim_state_dir
        from app.paths import data_dir  # noqa: PLC0415 (app.paths imports the settings)

        return data_dir() / "simulated-broker"
