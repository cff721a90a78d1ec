"""A stand-in for the ``MetaTrader5`` module, backed by the deterministic :class:`Market`.

It answers with the real module's function names, keyword names, constants, return
types and error conventions (``None`` plus ``last_error()``, never exceptions), so the
connector and collector run one code path whether a real terminal is behind them or
not, and can be tested on any OS.

What it deliberately reproduces because capture code must cope with it:

* dates are whole seconds (``date_from`` is truncated), so a poll from "the last tick"
  re-reads part of a second and the caller must de-duplicate;
* ticks exist only up to the injected clock's "now": it is a live terminal;
* faults on demand (:class:`FaultMode`), in-process or from another process through a
  JSON control file, for tests of reconnects and watchdogs.

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

import functools
import json
import logging
import math
import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, get_type_hints

import numpy as np

from app.clock import SYSTEM_CLOCK, Clock, now_msc
from app.servertime import NY_CLOSE, ServerTimeZone
from app.sessions import SessionBook
from app.terminal import constants as c
from app.terminal.market import DEFAULT_PROFILES, SymbolProfile
from app.terminal.session_market import SessionMarket, market_for
from app.terminal.types import AccountInfo, SymbolInfo, TerminalInfo, Tick
from app.ticks import TickArray
from app.untrusted import read_regular_file

if TYPE_CHECKING:
    from app.terminal.api import DateLike
    from app.terminal.spec import TerminalSpec

__all__ = ["MAX_TICKS_PER_CALL", "FaultMode", "SimulatedTerminal", "write_fault"]

log = logging.getLogger(__name__)

#: Cap on the ticks one ``copy_ticks_*`` call returns (~60 MB), so that a range of days
#: at a high tick rate cannot exhaust memory; the real terminal caps its buffers too.
MAX_TICKS_PER_CALL: Final = 1_000_000

BUILD: Final = 4755
BUILD_DATE: Final = "24 Jan 2025"
DEFAULT_LOGIN: Final = 10_000_001
DEFAULT_SERVER: Final = "Simulated-Demo"
COMPANY: Final = "Simulated Markets Ltd."

_CONTROL_POLL_S = 0.05
_STALL_STEP_S = 0.01
_DEFAULT_TIMEOUT_MS = 60_000
_MASKS: Final[dict[int, int]] = {
    c.COPY_TICKS_ALL: 0,
    c.COPY_TICKS_INFO: c.TICK_FLAG_BID | c.TICK_FLAG_ASK,
    c.COPY_TICKS_TRADE: c.TICK_FLAG_LAST | c.TICK_FLAG_VOLUME,
}


class FaultMode(StrEnum):
    """What the simulated terminal pretends is wrong with it."""

    OK = "ok"
    #: The link to the terminal broke: calls fail with ``RES_E_INTERNAL_FAIL_CONNECT``
    #: until the mode is "ok" again *and* the caller re-initialises.
    DISCONNECT = "disconnect"
    #: The terminal hangs: calls block until the mode changes.
    STALL = "stall"
    #: The trade server rejects credentials: ``initialize``/``login`` with a login fail.
    AUTH_FAIL = "auth_fail"


def write_fault(path: Path, mode: FaultMode | str) -> None:
    """Set the fault of every simulated terminal watching ``path`` (atomically)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"mode": FaultMode(mode).value}), encoding="utf-8")
    os.replace(tmp, path)


def _epoch_seconds(value: object) -> int | None:
    """Whole epoch seconds of a date argument, or None if it is not one.

    The real terminal works at second resolution here: fractions are truncated. Naive
    datetimes are taken as UTC (as the MetaTrader5 documentation asks callers to use).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        seconds: float = aware.timestamp()
    elif isinstance(value, int | np.integer):
        return int(value) if value >= 0 else None
    elif isinstance(value, float | np.floating):
        seconds = float(value)
    else:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return math.floor(seconds)


class SimulatedTerminal:
    """The ``MetaTrader5`` module's API over a simulated market; see the module doc.

    ``accounts`` maps logins to passwords; ``None`` accepts any login. A ``None`` or
    empty password stands for the one the terminal has saved, and is accepted.
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
        sessions: SessionBook | None = None,
        session_zone: ServerTimeZone = NY_CLOSE,
    ) -> None:
        # Trading hours (``sessions``, read through ``session_zone``): no ticks while a
        # market is closed; None trades every symbol 24/7.
        self.market = market_for(
            seed,
            profiles if profiles is not None else DEFAULT_PROFILES,
            rates,
            sessions,
            session_zone,
        )
        self._clock = clock
        self._accounts = dict(accounts) if accounts is not None else None
        self._selected = dict.fromkeys(self.market.symbols(), True)
        self._connected = False
        self._error = (c.RES_E_INTERNAL_FAIL_CONNECT, c.ERROR_TEXT[c.RES_E_INTERNAL_FAIL_CONNECT])
        self._login = next(iter(self._accounts), DEFAULT_LOGIN) if self._accounts else DEFAULT_LOGIN
        self._server = DEFAULT_SERVER
        self._path = "C:\\Program Files\\Simulated MetaTrader 5"
        self._fault = FaultMode.OK
        self._control_file = Path(control_file) if control_file is not None else None
        self._control_sig: tuple[int, int, int] | None = None
        self._control_checked = -math.inf
        self._poll_control(force=True)

    @classmethod
    def from_spec(cls, spec: TerminalSpec, *, clock: Clock = SYSTEM_CLOCK) -> SimulatedTerminal:
        return cls(
            seed=spec.seed,
            rates=dict(spec.rates),
            clock=clock,
            control_file=spec.control_file,
            sessions=spec.sessions,
            session_zone=spec.zone() or NY_CLOSE,
        )

    # --- faults ------------------------------------------------------------------------

    @property
    def fault(self) -> FaultMode:
        self._poll_control()
        return self._fault

    def set_fault(self, mode: FaultMode | str) -> None:
        """Inject a fault in this process (the control file, when it changes, overrides)."""
        self._apply_fault(FaultMode(mode))

    def _apply_fault(self, mode: FaultMode) -> None:
        self._fault = mode
        if mode is FaultMode.DISCONNECT:
            self._connected = False

    def _poll_control(self, *, force: bool = False) -> None:
        """Re-read the control file when it changed; at most every 50 ms, so calls stay cheap."""
        path = self._control_file
        if path is None:
            return
        now = time.monotonic()
        if not force and now - self._control_checked < _CONTROL_POLL_S:
            return
        self._control_checked = now
        try:
            st = os.stat(path)
        except OSError:
            return  # no file: no override, keep the current mode
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        if sig == self._control_sig:
            return
        try:
            raw = read_regular_file(path, 64 * 2**10)  # a FIFO must not hang the worker
            mode = FaultMode(json.loads(raw.decode("utf-8"))["mode"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable fault control file %s: %s", path, exc)
            return  # retried on the next change (e.g. a writer that was half-way through)
        self._control_sig = sig
        self._apply_fault(mode)

    def _wait_while_stalled(self, deadline: float = math.inf) -> bool:
        """Block like a hung terminal; False if ``deadline`` (monotonic) passed first."""
        self._poll_control()
        while self._fault is FaultMode.STALL:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_STALL_STEP_S)
            self._poll_control()
        return True

    def _ready(self) -> bool:
        """Gate of every call that talks to the terminal."""
        self._wait_while_stalled()
        if self._fault is FaultMode.DISCONNECT:
            self._connected = False
        if not self._connected:
            self._fail(c.RES_E_INTERNAL_FAIL_CONNECT)
            return False
        return True

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
        if path is not None:
            self._path = path
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
        if not self._ready():
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

    def version(self) -> tuple[int, int, str] | None:
        if not self._ready():
            return None
        self._ok()
        return (500, BUILD, BUILD_DATE)

    def last_error(self) -> tuple[int, str]:
        return self._error

    def terminal_info(self) -> TerminalInfo | None:
        if not self._ready():
            return None
        self._ok()
        return TerminalInfo(
            community_account=False,
            community_connection=False,
            connected=True,
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
            ping_last=25_000,
            community_balance=0.0,
            retransmission=0.0,
            company=COMPANY,
            name="Simulated MetaTrader 5",
            language="English",
            path=self._path,
            data_path=self._path,
            commondata_path="C:\\ProgramData\\MetaQuotes\\Terminal\\Common",
        )

    def account_info(self) -> AccountInfo | None:
        if not self._ready():
            return None
        self._ok()
        return AccountInfo(
            login=self._login,
            trade_mode=0,  # ACCOUNT_TRADE_MODE_DEMO
            leverage=100,
            limit_orders=200,
            margin_so_mode=0,
            trade_allowed=True,
            trade_expert=True,
            margin_mode=2,  # retail hedging
            currency_digits=2,
            fifo_close=False,
            balance=10_000.0,
            credit=0.0,
            profit=0.0,
            equity=10_000.0,
            margin=0.0,
            margin_free=10_000.0,
            margin_level=0.0,
            margin_so_call=50.0,
            margin_so_so=30.0,
            margin_initial=0.0,
            margin_maintenance=0.0,
            assets=0.0,
            liabilities=0.0,
            commission_blocked=0.0,
            name="Simulated Trader",
            server=self._server,
            currency="USD",
            company=COMPANY,
        )

    # --- symbols -----------------------------------------------------------------------

    def symbols_total(self) -> int:
        if not self._ready():
            return 0
        self._ok()
        return len(self._selected)

    def symbols_get(self, group: str = "*") -> tuple[SymbolInfo, ...] | None:
        if not self._ready():
            return None
        names = _match_group(self.market.symbols(), group)
        at = now_msc(self._clock) + 1
        self._ok()
        return tuple(self._symbol_info(name, at) for name in names)

    def symbol_info(self, symbol: str) -> SymbolInfo | None:
        if not self._ready():
            return None
        if symbol not in self._selected:
            self._fail(c.RES_E_NOT_FOUND)
            return None
        self._ok()
        return self._symbol_info(symbol, now_msc(self._clock) + 1)

    def symbol_info_tick(self, symbol: str) -> Tick | None:
        if not self._ready():
            return None
        if symbol not in self._selected:
            self._fail(c.RES_E_NOT_FOUND)
            return None
        if not self._selected[symbol]:
            self._fail(c.RES_E_FAIL)  # as the real one, for a symbol not in Market Watch
            return None
        tick = self.market.last_tick(symbol, now_msc(self._clock) + 1)
        if tick is None:
            self._fail(c.RES_E_NOT_FOUND)
            return None
        self._ok()
        return Tick(
            time=int(tick["time"]),
            bid=float(tick["bid"]),
            ask=float(tick["ask"]),
            last=float(tick["last"]),
            volume=int(tick["volume"]),
            time_msc=int(tick["time_msc"]),
            flags=int(tick["flags"]),
            volume_real=float(tick["volume_real"]),
        )

    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        if not self._ready():
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
        fields = dict(_SYMBOL_INFO_ZERO)
        fields.update(
            select=self._selected[symbol],
            visible=self._selected[symbol],
            time=int(tick["time"]) if tick is not None else 0,
            digits=p.digits,
            spread=round((ask - bid) / p.point),
            spread_float=True,
            trade_calc_mode=0 if p.path.startswith("Forex") else 2,
            trade_mode=4,  # SYMBOL_TRADE_MODE_FULL
            trade_exemode=2,  # SYMBOL_TRADE_EXECUTION_MARKET
            swap_rollover3days=3,
            expiration_mode=15,
            filling_mode=1,
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
            trade_tick_value=1.0,
            trade_tick_value_profit=1.0,
            trade_tick_value_loss=1.0,
            trade_tick_size=p.point,
            trade_contract_size=p.contract_size,
            volume_min=0.01,
            volume_max=100.0,
            volume_step=0.01,
            currency_base=p.currency_base,
            currency_profit=p.currency_profit,
            currency_margin=p.currency_base,
            description=p.description,
            name=p.name,
            path=p.path or p.name,
        )
        if isinstance(self.market, SessionMarket):
            fields.update(self.market.session_fields(symbol, at_msc, tick))
        return SymbolInfo(**fields)

    # --- ticks -------------------------------------------------------------------------

    def copy_ticks_from(
        self, symbol: str, date_from: DateLike, count: int, flags: int
    ) -> TickArray | None:
        if not self._ready():
            return None
        start = _epoch_seconds(date_from)
        valid_count = isinstance(count, int | np.integer) and not isinstance(count, bool)
        if symbol not in self._selected or start is None or flags not in _MASKS:
            self._fail(c.RES_E_INVALID_PARAMS)
            return None
        if not valid_count or count <= 0:
            self._fail(c.RES_E_INVALID_PARAMS)
            return None
        return self._copy(symbol, start * 1000, self._until(), int(count), flags)

    def copy_ticks_range(
        self, symbol: str, date_from: DateLike, date_to: DateLike, flags: int
    ) -> TickArray | None:
        """Ticks with ``date_from <= time_msc / 1000 <= date_to`` (both ends whole seconds).

        ``date_to`` is inclusive at millisecond ``date_to * 1000``, as MQL5's
        ``CopyTicksRange`` documents ``to_msc``.
        """
        if not self._ready():
            return None
        start, end = _epoch_seconds(date_from), _epoch_seconds(date_to)
        if symbol not in self._selected or start is None or end is None or flags not in _MASKS:
            self._fail(c.RES_E_INVALID_PARAMS)
            return None
        until = min(end * 1000 + 1, self._until())
        return self._copy(symbol, start * 1000, until, MAX_TICKS_PER_CALL, flags)

    # Where the ticks come from: the two hooks a terminal serving other data overrides
    # (the replay terminal serves files), keeping the argument checks and error codes.
    def _until(self) -> int:
        """Exclusive bound (epoch ms) of the tick times that exist now."""
        return now_msc(self._clock) + 1

    def _copy(
        self, symbol: str, from_msc: int, until: int, count: int, flags: int
    ) -> TickArray | None:
        ticks = self.market.ticks_from(symbol, from_msc, count, until, mask=_MASKS[flags])
        self._ok()
        return ticks


#: Every ``SymbolInfo`` field at its type's zero; the simulation fills in what it knows.
_SYMBOL_INFO_ZERO: Final[dict[str, Any]] = {
    name: kind() for name, kind in get_type_hints(SymbolInfo).items()
}


def _match_group(names: tuple[str, ...], group: str) -> list[str]:
    """MT5 group syntax: comma-separated ``*`` masks, ``!`` excludes; inclusions first.

    A group of exclusions only selects nothing, as inclusions are applied first.
    Matching is case-insensitive, as symbol names are in the terminal.
    """
    include: list[str] = []
    exclude: list[str] = []
    for raw in group.split(","):
        mask = raw.strip().upper()
        if not mask:
            continue
        if mask.startswith("!"):
            exclude.append(mask[1:])
        else:
            include.append(mask)

    def hit(name: str, masks: list[str]) -> bool:
        return any(_mask_regex(m).fullmatch(name.upper()) for m in masks)

    return [n for n in names if hit(n, include) and not hit(n, exclude)]


@functools.lru_cache(maxsize=256)
def _mask_regex(mask: str) -> re.Pattern[str]:
    """Only ``*`` is a wildcard in MT5 masks; everything else is literal."""
    return re.compile(".*".join(re.escape(part) for part in mask.split("*")))
