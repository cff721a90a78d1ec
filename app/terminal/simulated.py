"""A stand-in for the ``MetaTrader5`` module, backed by the deterministic :class:`Market`.

It answers with the real module's function names, keyword names, constants, return
types and error conventions (``None`` plus ``last_error()``, never exceptions), so the
connector and collector run one code path whether a real terminal is behind them or
not, and can be tested on any OS.

What it deliberately reproduces because capture code must cope with it:

* dates are whole seconds (``date_from`` is truncated), so a poll from "the last tick"
  re-reads part of a second and the caller must de-duplicate;
* ticks exist only up to the injected clock's "now": it is a live terminal;
* ticks are stamped in the trade server's time zone (``server_time_zone``, ny-close by
  default: GMT+2 in winter, GMT+3 in summer), not in UTC, as a real broker stamps them,
  and the dates asked for are read on that clock; the market underneath stays a pure
  function of UTC. In the autumn hour a 24/7 symbol's stamps go back an hour while the
  ticks stay in true order; an ambiguous ``date_from`` is read as the earlier pass (more
  ticks, never fewer), an ambiguous ``date_to`` as the later one;
* faults on demand (:class:`FaultMode`), in-process or from another process through a
  JSON control file, for tests of reconnects and watchdogs; and single functions
  answering ``None`` with a given ``last_error`` code (``write_fault(..., fail=...)``);
* Market Watch: a fresh terminal shows only its default set (:data:`DEFAULT_MARKET_WATCH`,
  the FX majors); other symbols exist (``symbols_get``, ``symbol_info`` with
  ``select=False``) but serve no data until ``symbol_select(symbol, True)``:
  ``symbol_info_tick`` and ``copy_ticks_*`` answer ``None`` with ``RES_E_FAIL``
  ("Terminal: Call failed", as users of the real module report);
* a terminal that lost its trade server while the IPC works (:attr:`FaultMode.OFFLINE`):
  every call succeeds, ``terminal_info().connected`` is False and no tick newer than the
  moment it went offline exists; back online, the history is complete again (the real
  terminal downloads the missed ticks on reconnect);
* ``portable=True`` keeps the data folder in the installation folder
  (``terminal_info().data_path == path``); otherwise it is the per-user
  ``AppData\\Roaming\\MetaQuotes\\Terminal\\<instance id>``. The real ``TerminalInfo`` has no
  ``portable`` field: that is where the flag shows.

Known differences from the real module (documented guesses where its behaviour is not):

* an unknown symbol gives ``RES_E_INVALID_PARAMS`` from ``copy_ticks_*`` and
  ``RES_E_NOT_FOUND`` from ``symbol_info*``/``symbol_select``: treat both as "unknown";
* ``symbols_total()`` returns 0 (not ``None``) without a connection, as ``MT5Api`` types it;
* ``copy_ticks_range`` returns at most :data:`MAX_TICKS_PER_CALL` ticks (the oldest
  ones): continue from the last ``time_msc`` for more; ``copy_ticks_from`` returns up to
  the ``count`` asked for (the caller's own memory bound), however large: ``date_from``
  is a whole second, so a second holding more ticks than any fixed cap could never be
  read past otherwise;
* ``initialize`` under a broken link reports ``RES_E_INTERNAL_FAIL_CONNECT`` like every
  other call (the real one may say ``RES_E_INTERNAL_FAIL_INIT`` or ``_TIMEOUT``; all
  three are in ``CONNECTION_ERRORS``); under a stall it gives up after ``timeout`` ms
  with ``RES_E_INTERNAL_FAIL_TIMEOUT``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from app.clock import SYSTEM_CLOCK, Clock, now_msc
from app.servertime import NY_CLOSE, ServerTimeZone
from app.sessions import SessionBook
from app.terminal import constants as c
from app.terminal.arguments import COPY_MASKS, SYMBOL_INFO_ZERO, epoch_seconds, match_group
from app.terminal.faults import ControlFile, FaultMode, write_fault
from app.terminal.market import DEFAULT_PROFILES, SymbolProfile
from app.terminal.session_market import SessionMarket, market_for
from app.terminal.sim_rates import SimRates
from app.terminal.sim_trading import SimTrading
from app.terminal.types import SymbolInfo, TerminalInfo, Tick
from app.ticks import TickArray

if TYPE_CHECKING:
    from app.terminal.api import DateLike
    from app.terminal.broker.state import AccountSettings
    from app.terminal.spec import TerminalSpec

__all__ = [
    "DEFAULT_MARKET_WATCH",
    "MAX_TICKS_PER_CALL",
    "FaultMode",
    "SimulatedTerminal",
    "write_fault",
]

#: Cap on the ticks one ``copy_ticks_*`` call returns (~60 MB), so that a range of days
#: at a high tick rate cannot exhaust memory; the real terminal caps its buffers too.
MAX_TICKS_PER_CALL: Final = 1_000_000

#: What a fresh simulated terminal shows in Market Watch; other symbols need
#: ``symbol_select(symbol, True)`` before they serve data, as on a real terminal.
DEFAULT_MARKET_WATCH: Final = frozenset({"EURUSD", "GBPUSD", "USDJPY"})

BUILD: Final = 4755
BUILD_DATE: Final = "24 Jan 2025"
DEFAULT_LOGIN: Final = 10_000_001
DEFAULT_SERVER: Final = "Simulated-Demo"
COMPANY: Final = "Simulated Markets Ltd."

#: Where a non-portable terminal keeps its data (the instance id hashes the install path).
_USER_DATA_PATH: Final = (
    "C:\\Users\\trader\\AppData\\Roaming\\MetaQuotes\\Terminal\\D0E8209F77C8CF37AD8BF550E51FF075"
)
_STALL_STEP_S = 0.01
_DEFAULT_TIMEOUT_MS = 60_000


class SimulatedTerminal(SimRates, SimTrading):
    """The ``MetaTrader5`` module's API over a simulated market; see the module doc.

    ``accounts`` maps logins to passwords; ``None`` accepts any login. A ``None`` or
    empty password stands for the one the terminal has saved, and is accepted.
    ``broker`` opens new trading accounts; ``broker_dir`` keeps their books (one SQLite
    file per server and login; ``None``: in memory), see :mod:`app.terminal.sim_trading`.
    """

    # The module's constants, so code written as ``mt5.COPY_TICKS_ALL`` works unchanged.
    COPY_TICKS_ALL: int = c.COPY_TICKS_ALL
    COPY_TICKS_INFO: int = c.COPY_TICKS_INFO
    COPY_TICKS_TRADE: int = c.COPY_TICKS_TRADE
    TICK_FLAG_BID: int = c.TICK_FLAG_BID
    TICK_FLAG_ASK: int = c.TICK_FLAG_ASK
    TICK_FLAG_LAST: int = c.TICK_FLAG_LAST
    TICK_FLAG_VOLUME: int = c.TICK_FLAG_VOLUME
    TICK_FLAG_BUY: int = c.TICK_FLAG_BUY
    TICK_FLAG_SELL: int = c.TICK_FLAG_SELL
    RES_S_OK: int = c.RES_S_OK
    RES_E_FAIL: int = c.RES_E_FAIL
    RES_E_INVALID_PARAMS: int = c.RES_E_INVALID_PARAMS
    RES_E_NO_MEMORY: int = c.RES_E_NO_MEMORY
    RES_E_NOT_FOUND: int = c.RES_E_NOT_FOUND
    RES_E_INVALID_VERSION: int = c.RES_E_INVALID_VERSION
    RES_E_AUTH_FAILED: int = c.RES_E_AUTH_FAILED
    RES_E_UNSUPPORTED: int = c.RES_E_UNSUPPORTED
    RES_E_AUTO_TRADING_DISABLED: int = c.RES_E_AUTO_TRADING_DISABLED
    RES_E_INTERNAL_FAIL: int = c.RES_E_INTERNAL_FAIL
    RES_E_INTERNAL_FAIL_SEND: int = c.RES_E_INTERNAL_FAIL_SEND
    RES_E_INTERNAL_FAIL_RECEIVE: int = c.RES_E_INTERNAL_FAIL_RECEIVE
    RES_E_INTERNAL_FAIL_INIT: int = c.RES_E_INTERNAL_FAIL_INIT
    RES_E_INTERNAL_FAIL_CONNECT: int = c.RES_E_INTERNAL_FAIL_CONNECT
    RES_E_INTERNAL_FAIL_TIMEOUT: int = c.RES_E_INTERNAL_FAIL_TIMEOUT

    def __init__(
        self,
        seed: int = 42,
        *,
        profiles: Mapping[str, SymbolProfile] | None = None,
        rates: Mapping[str, float] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        accounts: Mapping[int, str] | None = None,
        control_file: Path | str | None = None,
        server_time_zone: ServerTimeZone = NY_CLOSE,
        market_watch: Collection[str] | None = None,
        sessions: SessionBook | None = None,
        broker: AccountSettings | None = None,
        broker_dir: Path | None = None,
    ) -> None:
        self._init_broker(broker, broker_dir)
        # Trading hours (``sessions``, in server time): no ticks while a market is
        # closed; None trades every symbol 24/7.
        self.market = market_for(
            seed,
            profiles if profiles is not None else DEFAULT_PROFILES,
            rates,
            sessions,
            server_time_zone,
        )
        self._clock = clock
        #: The clock the trade server stamps ticks in (``app.servertime``).
        self.server_time_zone = server_time_zone
        self._accounts = dict(accounts) if accounts is not None else None
        # Market Watch as a fresh terminal shows it: the default majors, and every
        # symbol that is not one of the default profiles (a test's own market).
        shown = market_watch
        if shown is None:
            shown = [
                s
                for s in self.market.symbols()
                if s in DEFAULT_MARKET_WATCH or s not in DEFAULT_PROFILES
            ]
        self._selected = {s: s in shown for s in self.market.symbols()}
        self._connected = False
        self._error = (c.RES_E_INTERNAL_FAIL_CONNECT, c.ERROR_TEXT[c.RES_E_INTERNAL_FAIL_CONNECT])
        self._login = next(iter(self._accounts), DEFAULT_LOGIN) if self._accounts else DEFAULT_LOGIN
        self._server = DEFAULT_SERVER
        self._path = "C:\\Program Files\\Simulated MetaTrader 5"
        self._fault = FaultMode.OK
        self._portable = False
        #: Exclusive bound of the tick times served while offline (None: online).
        self._offline_until: int | None = None
        #: Functions made to answer None with a code (fault injection).
        self._failing: dict[str, int] = {}
        self._control = ControlFile(Path(control_file)) if control_file is not None else None
        self._poll_control(force=True)

    @classmethod
    def from_spec(cls, spec: TerminalSpec, *, clock: Clock = SYSTEM_CLOCK) -> SimulatedTerminal:
        return cls(
            seed=spec.seed,
            rates=dict(spec.rates),
            clock=clock,
            control_file=spec.control_file,
            server_time_zone=spec.zone() or NY_CLOSE,
            sessions=spec.sessions,
            broker=spec.account_settings(),
            broker_dir=spec.broker_dir(),
        )

    # --- faults ------------------------------------------------------------------------

    @property
    def fault(self) -> FaultMode:
        self._poll_control()
        return self._fault

    def set_fault(self, mode: FaultMode | str, *, fail: Mapping[str, int] | None = None) -> None:
        """Inject a fault in this process (the control file, when it changes, overrides)."""
        self._apply_fault(FaultMode(mode), fail or {})

    def _apply_fault(self, mode: FaultMode, fail: Mapping[str, int]) -> None:
        if mode is FaultMode.OFFLINE and self._offline_until is None:
            self._offline_until = self._until()  # nothing newer arrives from now on
        elif mode is not FaultMode.OFFLINE:
            self._offline_until = None
        self._fault = mode
        self._failing = {name: code for name, code in fail.items() if code in c.ERROR_TEXT}
        if mode is FaultMode.DISCONNECT:
            self._connected = False

    def _poll_control(self, *, force: bool = False) -> None:
        """Apply the control file's fault when it changed (read at most every 50 ms)."""
        if self._control is not None and (change := self._control.poll(force=force)):
            self._apply_fault(*change)

    def _wait_while_stalled(self, deadline: float = math.inf) -> bool:
        """Block like a hung terminal; False if ``deadline`` (monotonic) passed first."""
        self._poll_control()
        while self._fault is FaultMode.STALL:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_STALL_STEP_S)
            self._poll_control()
        return True

    def _ready(self, call: str) -> bool:
        """Gate of every call that talks to the terminal (``call``: the function's name)."""
        self._wait_while_stalled()
        if self._fault is FaultMode.DISCONNECT:
            self._connected = False
        if not self._connected:
            self._fail(c.RES_E_INTERNAL_FAIL_CONNECT)
            return False
        injected = self._failing.get(call)
        if injected is not None:
            self._fail(injected)
            return False
        return True

    def _live_until(self) -> int:
        """Exclusive bound of the tick times served now: frozen while offline."""
        until = self._until()
        return until if self._offline_until is None else min(until, self._offline_until)

    def _shown(self, symbol: str) -> bool:
        """A known symbol serves data only from Market Watch (``RES_E_FAIL`` otherwise)."""
        if self._selected.get(symbol, True):
            return True
        self._fail(c.RES_E_FAIL)
        return False

    def _fail(self, code: int) -> None:
        self._error = (code, c.ERROR_TEXT[code])

    def _ok(self) -> None:
        self._error = (c.RES_S_OK, c.ERROR_TEXT[c.RES_S_OK])

    # --- session -----------------------------------------------------------------------

    def initialize(
        self,
        path: str | None = None,
        *,
        login: int | None = None,
        password: str | None = None,
        server: str | None = None,
        timeout: int | None = None,
        portable: bool = False,
    ) -> bool:
        timeout_ms = _DEFAULT_TIMEOUT_MS if timeout is None else timeout
        if not self._wait_while_stalled(time.monotonic() + timeout_ms / 1000):
            self._connected = False
            self._fail(c.RES_E_INTERNAL_FAIL_TIMEOUT)
            return False
        if self._fault is FaultMode.DISCONNECT:
            self._connected = False
            self._fail(c.RES_E_INTERNAL_FAIL_CONNECT)
            return False
        injected = self._failing.get("initialize")
        if injected is not None:
            self._connected = False
            self._fail(injected)
            return False
        if path is not None:
            self._path = path
        self._portable = bool(portable)
        if login is not None and not self._authorize(login, password, server):
            self._connected = False
            return False
        self._connected = True
        self._ok()
        return True

    def login(
        self,
        login: int,
        password: str | None = None,
        server: str | None = None,
        timeout: int = _DEFAULT_TIMEOUT_MS,
    ) -> bool:
        if not self._ready("login"):
            return False
        if not self._authorize(login, password, server):
            return False
        self._ok()
        return True

    def _authorize(self, login: int, password: str | None, server: str | None) -> bool:
        known = self._accounts is None or (
            login in self._accounts and (not password or self._accounts[login] == password)
        )
        if self._fault is FaultMode.AUTH_FAIL or not known:
            self._fail(c.RES_E_AUTH_FAILED)
            return False
        self._login = login
        if server:
            self._server = server
        return True

    def shutdown(self) -> None:
        self._connected = False
        self._close_broker()

    def version(self) -> tuple[int, int, str] | None:
        if not self._ready("version"):
            return None
        self._ok()
        return (500, BUILD, BUILD_DATE)

    def last_error(self) -> tuple[int, str]:
        return self._error

    def terminal_info(self) -> TerminalInfo | None:
        if not self._ready("terminal_info"):
            return None
        self._ok()
        return TerminalInfo(
            community_account=False,
            community_connection=False,
            connected=self._fault is not FaultMode.OFFLINE,
            dlls_allowed=False,
            trade_allowed=False,
            tradeapi_disabled=False,
            email_enabled=False,
            ftp_enabled=False,
            notifications_enabled=False,
            mqid=False,
            build=BUILD,
            maxbars=100_000,
            codepage=0,
            ping_last=25_000 if self._fault is not FaultMode.OFFLINE else 0,
            community_balance=0.0,
            retransmission=0.0,
            company=COMPANY,
            name="Simulated MetaTrader 5",
            language="English",
            path=self._path,
            data_path=self._path if self._portable else _USER_DATA_PATH,
            commondata_path="C:\\ProgramData\\MetaQuotes\\Terminal\\Common",
        )

    # --- symbols -----------------------------------------------------------------------

    def symbols_total(self) -> int:
        if not self._ready("symbols_total"):
            return 0
        self._ok()
        return len(self._selected)

    def symbols_get(self, group: str = "*") -> tuple[SymbolInfo, ...] | None:
        if not self._ready("symbols_get"):
            return None
        names = match_group(self.market.symbols(), group)
        at = self._live_until()
        self._ok()
        return tuple(self._symbol_info(name, at) for name in names)

    def symbol_info(self, symbol: str) -> SymbolInfo | None:
        if not self._ready("symbol_info"):
            return None
        if symbol not in self._selected:
            self._fail(c.RES_E_NOT_FOUND)
            return None
        self._ok()
        return self._symbol_info(symbol, self._live_until())

    def symbol_info_tick(self, symbol: str) -> Tick | None:
        if not self._ready("symbol_info_tick"):
            return None
        if symbol not in self._selected:
            self._fail(c.RES_E_NOT_FOUND)
            return None
        if not self._shown(symbol):
            return None
        tick = self.market.last_tick(symbol, self._live_until())
        if tick is None:
            self._fail(c.RES_E_NOT_FOUND)
            return None
        self._ok()
        server_msc = self._server_msc(int(tick["time_msc"]))
        return Tick(
            time=server_msc // 1000,
            bid=float(tick["bid"]),
            ask=float(tick["ask"]),
            last=float(tick["last"]),
            volume=int(tick["volume"]),
            time_msc=server_msc,
            flags=int(tick["flags"]),
            volume_real=float(tick["volume_real"]),
        )

    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        if not self._ready("symbol_select"):
            return False
        if symbol not in self._selected:
            self._fail(c.RES_E_NOT_FOUND)
            return False
        self._selected[symbol] = bool(enable)
        self._ok()
        return True

    def _symbol_info(self, symbol: str, at_msc: int) -> SymbolInfo:
        p = self.market.profile(symbol)
        tick = self.market.last_tick(symbol, at_msc)
        bid = float(tick["bid"]) if tick is not None else 0.0
        ask = float(tick["ask"]) if tick is not None else 0.0
        last = float(tick["last"]) if tick is not None else 0.0
        fields = dict(SYMBOL_INFO_ZERO)
        fields.update(
            select=self._selected[symbol],
            visible=self._selected[symbol],
            time=self._server_msc(int(tick["time_msc"])) // 1000 if tick is not None else 0,
            digits=p.digits,
            spread=round((ask - bid) / p.point),
            spread_float=True,
            swap_rollover3days=3,
            expiration_mode=15,
            order_mode=127,
            bid=bid,
            bidhigh=bid,
            bidlow=bid,
            ask=ask,
            askhigh=ask,
            asklow=ask,
            last=last,
            lasthigh=last,
            lastlow=last,
            point=p.point,
            trade_tick_size=p.point,
            currency_base=p.currency_base,
            currency_profit=p.currency_profit,
            currency_margin=p.currency_base,
            description=p.description,
            name=p.name,
            path=p.path or p.name,
        )
        fields.update(self._trade_fields(symbol, bid))  # volumes, filling, stops, margin
        if isinstance(self.market, SessionMarket):
            fields.update(self.market.session_fields(symbol, at_msc, tick))
        return SymbolInfo(**fields)

    # --- ticks -------------------------------------------------------------------------

    def copy_ticks_from(
        self, symbol: str, date_from: DateLike, count: int, flags: int
    ) -> TickArray | None:
        if not self._ready("copy_ticks_from"):
            return None
        start = epoch_seconds(date_from)
        valid_count = isinstance(count, int | np.integer) and not isinstance(count, bool)
        if symbol not in self._selected or start is None or flags not in COPY_MASKS:
            self._fail(c.RES_E_INVALID_PARAMS)
            return None
        if not valid_count or count <= 0:
            self._fail(c.RES_E_INVALID_PARAMS)
            return None
        if not self._shown(symbol):
            return None
        return self._copy(symbol, start, None, int(count), flags)

    def copy_ticks_range(
        self, symbol: str, date_from: DateLike, date_to: DateLike, flags: int
    ) -> TickArray | None:
        """Ticks with ``date_from <= time_msc / 1000 <= date_to`` (both ends whole seconds,
        server time).

        ``date_to`` is inclusive at millisecond ``date_to * 1000``, as MQL5's
        ``CopyTicksRange`` documents ``to_msc``.
        """
        if not self._ready("copy_ticks_range"):
            return None
        start, end = epoch_seconds(date_from), epoch_seconds(date_to)
        if symbol not in self._selected or start is None or end is None or flags not in COPY_MASKS:
            self._fail(c.RES_E_INVALID_PARAMS)
            return None
        if not self._shown(symbol):
            return None
        return self._copy(symbol, start, end, MAX_TICKS_PER_CALL, flags)

    def _until(self) -> int:
        """Exclusive bound (UTC epoch ms) of the tick times that exist now; the replay
        terminal overrides it with its own clock."""
        return now_msc(self._clock) + 1

    # Where the ticks come from: the hook a terminal serving other data overrides (the
    # replay terminal serves files), keeping the argument checks and error codes.
    def _copy(
        self, symbol: str, from_s: int, to_s: int | None, count: int, flags: int
    ) -> TickArray | None:
        """The first ``count`` ticks from server second ``from_s`` up to now (and up to
        ``to_s`` inclusive when given), stamped in server time."""
        zone = self.server_time_zone
        from_msc = zone.to_utc_s(from_s, later=False) * 1000
        until = self._live_until()
        if to_s is not None:
            until = min(until, zone.to_utc_s(to_s, later=True) * 1000 + 1)
        ticks = self.market.ticks_from(symbol, from_msc, count, until, mask=COPY_MASKS[flags])
        server = zone.to_server_ms(ticks["time_msc"])
        ticks["time_msc"] = server
        ticks["time"] = server // 1000
        self._ok()
        return ticks

    def _server_msc(self, utc_msc: int) -> int:
        """One UTC instant as the server's clock stamps it."""
        return utc_msc + 1000 * self.server_time_zone.offset_s(utc_msc // 1000)
