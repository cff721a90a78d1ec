"""A ``MetaTrader5`` module on another process (or machine), reached over RPyC classic.

The ``MetaTrader5`` package runs on Windows only. On Linux the terminal and a Windows
Python run under Wine, and the ``mt5linux`` package serves that Python over RPyC
*classic* (default port 18812): the client imports ``MetaTrader5`` on the server side,
evaluates calls there and copies results back by value. :class:`RemoteTerminal` talks
to that same server (and to ``trading-client terminal serve``, which serves the
simulated terminal the same way), and answers with the :class:`~app.terminal.api.MT5Api`
conventions, so the worker runs one code path for native, simulated and remote.

What it does differently from ``mt5linux``'s client, and why:

* **No pickle.** ``mt5linux`` copies results with ``rpyc.classic.obtain`` (pickled on
  the server, unpickled here). The real module's result types (``TerminalInfo``,
  ``SymbolInfo`` …) live in the ``MetaTrader5`` package, which the Linux side does not
  have, so they cannot be unpickled here (mt5linux issue #57); and unpickling what a
  server sends lets that server run code in the client. A helper installed on the
  server once per connection turns each result into plain values RPyC's own encoding
  (brine) copies by value: named tuples as (field, value) pairs, numpy arrays as their
  dtype description and raw bytes. Here they become the project's named tuples
  (:mod:`app.terminal.types`) and numpy structured arrays with the MT5 tick dtype.
* **Nothing exposed to the server.** ``rpyc.classic.connect`` serves a SlaveService on
  the client side too, so the server could run code in the client; we connect with
  :class:`rpyc.VoidService` and pass only plain values.
* **One call, one round trip, one lock.** The helper calls the function and reads
  ``last_error()`` under a lock shared by every connection of the server process: the
  module is a process-wide singleton, and another client's call must not overwrite the
  error code between our call and our ``last_error()``. A call that cannot get the lock
  within its timeout (another client's call hangs) answers -10005 itself.
* **Errors as the real module reports them.** Connection refused, EOF and reset give
  ``None``/``False`` and ``last_error() == (-10004, "No IPC connection")``; an answer
  slower than ``request_timeout_s`` gives ``-10005 "IPC timeout"``. The connection is
  then dropped: the worker reports the code, exits and is restarted with backoff, the
  same as with a native terminal whose IPC broke.
* ``shutdown()`` only closes the connection: every client of the server shares the
  terminal, and the real ``shutdown`` would cut them all off.

RPyC classic is remote code execution by design: whoever reaches the port runs code as
the user running the server. Hosts other than this machine are refused unless the user
opts in (:func:`refuse_remote_host`); tunnel over SSH instead.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, TypeVar, get_type_hints

import numpy as np

from app.ports import is_loopback
from app.terminal import constants as c
from app.terminal.types import AccountInfo, SymbolInfo, TerminalInfo, Tick
from app.ticks import TICK_DTYPE, TickArray

if TYPE_CHECKING:
    from app.terminal.api import DateLike
    from app.terminal.spec import TerminalSpec

__all__ = [
    "DEFAULT_PORT",
    "REMOTE_CODE_WARNING",
    "RemoteTerminal",
    "refuse_remote_host",
]

log = logging.getLogger(__name__)

DEFAULT_PORT: Final = 18812
REMOTE_CODE_WARNING: Final = "RPyC classic: anyone who can connect can run code as you"
#: Longest wait for the TCP connection itself; ``initialize``'s timeout bounds the rest.
CONNECT_TIMEOUT_S: Final = 5.0
#: Added to ``initialize``'s own timeout before the client gives up on the answer, so
#: that the server's -10005 (not ours) is what the user reads when the terminal is slow.
INITIALIZE_GRACE_S: Final = 5.0

#: Runs on the server, once per connection, in the connection's namespace. Written for
#: any Python 3 the Windows side may have (no newer syntax), with only the standard
#: library and the MetaTrader5 module (numpy comes with it).
SERVER_HELPER: Final = """
import sys as _tc_sys, threading as _tc_threading, types as _tc_types
import MetaTrader5 as mt5
_tc_shared = _tc_sys.modules.get("_trading_client_remote")
if _tc_shared is None:
    _tc_shared = _tc_types.ModuleType("_trading_client_remote")
    _tc_shared.lock = _tc_threading.Lock()
    _tc_sys.modules["_trading_client_remote"] = _tc_shared

def _tc_scalar(v):
    if v is None or isinstance(v, (bool, int, float, str, bytes)):
        return v
    if hasattr(v, "item"):
        return v.item()
    return repr(v)

def _tc_plain(v):
    if v is None or isinstance(v, (bool, int, float, str, bytes)):
        return ("v", v)
    if hasattr(v, "_asdict"):
        return ("nt", tuple((k, _tc_scalar(x)) for k, x in v._asdict().items()))
    if hasattr(v, "dtype") and hasattr(v, "tobytes"):
        return ("a", repr(v.dtype.descr), v.tobytes())
    if isinstance(v, (tuple, list)):
        return ("t", tuple(_tc_plain(x) for x in v))
    return ("v", _tc_scalar(v))

def _tc_call(name, args, kwargs, wait_s):
    if not _tc_shared.lock.acquire(True, wait_s):
        return ("v", None), (-10005, "IPC timeout: the terminal is busy with another call")
    try:
        result = getattr(mt5, name)(*args, **dict(kwargs))
        error = None
        if result is None or result is False:
            error = tuple(mt5.last_error())
    finally:
        _tc_shared.lock.release()
    return _tc_plain(result), error
"""

_NT = TypeVar("_NT", TerminalInfo, AccountInfo, SymbolInfo, Tick)


def refuse_remote_host(host: str, port: int, allow_remote_code: bool) -> str | None:
    """Why ``host`` must not be used, or None when it may.

    RPyC classic has no authentication: anyone who reaches the port runs code as the
    user running the server. On this machine that is the user already; across a
    network it is anyone on it, so it takes an explicit opt-in.
    """
    if allow_remote_code or is_loopback(host):
        return None
    return (
        f"host {host!r} is not this machine, and an RPyC classic server lets anyone who "
        "reaches it run code as its user: tunnel it over SSH instead "
        f"(ssh -L {port}:127.0.0.1:{port} {host}, then host 127.0.0.1), or set "
        "allow_remote_code to true if you trust every machine on that network"
    )


def load_rpyc() -> ModuleType:
    """Import rpyc only for remote terminals (the rest of the client never needs it)."""
    return importlib.import_module("rpyc")


class RemoteTerminal:
    """The ``MetaTrader5`` API of a module served over RPyC classic; see the module doc."""

    COPY_TICKS_ALL: int = c.COPY_TICKS_ALL
    COPY_TICKS_INFO: int = c.COPY_TICKS_INFO
    COPY_TICKS_TRADE: int = c.COPY_TICKS_TRADE

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        *,
        request_timeout_s: float = 5.0,
        allow_remote_code: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.request_timeout_s = request_timeout_s
        self.allow_remote_code = allow_remote_code
        self._conn: Any = None
        self._call: Callable[..., Any] | None = None
        self._error: tuple[int, str] = _error(c.RES_E_INTERNAL_FAIL_CONNECT)

    @classmethod
    def from_spec(cls, spec: TerminalSpec) -> RemoteTerminal:
        return cls(
            spec.host,
            spec.port,
            request_timeout_s=spec.request_timeout_s,
            allow_remote_code=spec.allow_remote_code,
        )

    def __getattr__(self, name: str) -> Any:
        """The module's other constants (``TICK_FLAG_*``, ``RES_*`` …), as the real one has."""
        if name.isupper() and hasattr(c, name):
            return getattr(c, name)
        raise AttributeError(name)

    # --- connection --------------------------------------------------------------------

    def _connect(self, timeout_s: float) -> bool:
        self._close()
        refused = refuse_remote_host(self.host, self.port, self.allow_remote_code)
        if refused is not None:
            self._error = (c.RES_E_INTERNAL_FAIL_CONNECT, refused)
            return False
        rpyc = load_rpyc()
        try:
            stream = rpyc.SocketStream.connect(
                self.host,
                self.port,
                timeout=min(timeout_s, CONNECT_TIMEOUT_S),
                attempts=1,  # rpyc's default retries 6 times: 6x the timeout
                nodelay=True,
            )
            conn = rpyc.utils.factory.connect_stream(
                stream,
                rpyc.VoidService,
                config={"sync_request_timeout": timeout_s, "allow_pickle": False},
            )
            self._conn = conn
            conn.root.execute(SERVER_HELPER)
            self._call = conn.root.namespace["_tc_call"]
        except Exception as exc:  # refused, reset, a server that is not RPyC, no module
            self._fail_ipc(exc, "connect")
            self._close()
            return False
        return True

    def _close(self) -> None:
        conn, self._conn, self._call = self._conn, None, None
        if conn is not None:
            # The socket first: rpyc's close() would otherwise wait up to a request
            # timeout for a stalled server's answer before it lets go.
            with contextlib.suppress(Exception):
                conn._channel.close()
            with contextlib.suppress(Exception):
                conn.close()

    def _fail_ipc(self, exc: BaseException, what: str) -> None:
        """A failed call in the module's terms. A broken or slow link drops the connection
        (the caller initialises again); an exception raised on the server keeps it."""
        if getattr(exc, "_remote_tb", None) is not None:  # raised on the server
            first = str(exc).strip().splitlines()[:1]
            detail = f"{type(exc).__name__}: {first[0] if first else ''}"
            self._error = (
                c.RES_E_INTERNAL_FAIL,
                f"{c.ERROR_TEXT[c.RES_E_INTERNAL_FAIL]} "
                f"on the server during {what}: {detail[:200]}",
            )
            return
        self._close()
        code = (
            c.RES_E_INTERNAL_FAIL_TIMEOUT
            if isinstance(exc, TimeoutError)
            else c.RES_E_INTERNAL_FAIL_CONNECT
        )
        self._error = (
            code,
            f"{c.ERROR_TEXT[code]} ({self.host}:{self.port}: {what}: {type(exc).__name__})",
        )

    def _invoke(self, name: str, *args: object, **kwargs: object) -> Any:
        """Call ``name`` on the server; the plain result, or None with ``_error`` set."""
        call = self._call
        if call is None:
            self._error = _error(c.RES_E_INTERNAL_FAIL_CONNECT)
            return None
        # Wait for the server's lock a little less than we wait for the answer, so that a
        # terminal busy with another client's hung call is the server's -10005, in time.
        answer_s = float(self._conn._config["sync_request_timeout"])
        wait_s = answer_s - INITIALIZE_GRACE_S if name == "initialize" else 0.8 * answer_s
        try:
            plain, error = call(name, args, tuple(kwargs.items()), wait_s)
        except Exception as exc:
            self._fail_ipc(exc, name)
            return None
        if error is not None:
            self._error = (int(error[0]), str(error[1]))
        else:
            self._error = _error(c.RES_S_OK)
        return plain

    def probe(self, timeout_s: float) -> tuple[bool, tuple[int, int, str] | None]:
        """(server reachable, ``version()``) without ``initialize``: what ``doctor`` asks.

        ``initialize`` could start a terminal or log in; a check must not. The version is
        None when the terminal behind a reachable server is not initialised yet.
        """
        if not self._connect(timeout_s):
            return False, None
        try:
            self._conn._config["sync_request_timeout"] = timeout_s
            version = self.version()
            return self._conn is not None or version is not None, version
        finally:
            self._close()

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
        timeout_ms = 60_000 if timeout is None else timeout
        # The server's initialize may wait up to its timeout; wait that long and a bit.
        if not self._connect(timeout_ms / 1000 + INITIALIZE_GRACE_S):
            return False
        kwargs: dict[str, object] = {"timeout": timeout_ms, "portable": portable}
        if login is not None:
            kwargs.update(login=login, password=password or "", server=server or "")
        args = () if path is None else (path,)
        ok = _value(self._invoke("initialize", *args, **kwargs)) is True
        if self._conn is not None:
            self._conn._config["sync_request_timeout"] = self.request_timeout_s
        return ok

    def login(
        self, login: int, password: str = "", server: str = "", timeout: int = 60_000
    ) -> bool:
        plain = self._invoke("login", login, password=password, server=server, timeout=timeout)
        return _value(plain) is True

    def shutdown(self) -> None:
        """Close our connection only: the terminal behind the server is shared."""
        self._close()

    def version(self) -> tuple[int, int, str] | None:
        value = _value(self._invoke("version"))
        if not isinstance(value, tuple) or len(value) != 3:
            return None
        major, build, date = value
        return (int(major), int(build), str(date))

    def last_error(self) -> tuple[int, str]:
        return self._error

    def terminal_info(self) -> TerminalInfo | None:
        return _named(TerminalInfo, self._invoke("terminal_info"))

    def account_info(self) -> AccountInfo | None:
        return _named(AccountInfo, self._invoke("account_info"))

    def symbols_total(self) -> int:
        value = _value(self._invoke("symbols_total"))
        return int(value) if isinstance(value, int) else 0

    def symbols_get(self, group: str = "*") -> tuple[SymbolInfo, ...] | None:
        plain = self._invoke("symbols_get", group=group)
        if plain is None or plain[0] != "t":
            return None
        infos = [_named(SymbolInfo, item) for item in plain[1]]
        return tuple(i for i in infos if i is not None)

    def symbol_info(self, symbol: str) -> SymbolInfo | None:
        return _named(SymbolInfo, self._invoke("symbol_info", symbol))

    def symbol_info_tick(self, symbol: str) -> Tick | None:
        return _named(Tick, self._invoke("symbol_info_tick", symbol))

    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        return _value(self._invoke("symbol_select", symbol, bool(enable))) is True

    def copy_ticks_from(
        self, symbol: str, date_from: DateLike, count: int, flags: int
    ) -> TickArray | None:
        plain = self._invoke("copy_ticks_from", symbol, _seconds(date_from), int(count), flags)
        return self._ticks(plain)

    def copy_ticks_range(
        self, symbol: str, date_from: DateLike, date_to: DateLike, flags: int
    ) -> TickArray | None:
        plain = self._invoke(
            "copy_ticks_range", symbol, _seconds(date_from), _seconds(date_to), flags
        )
        return self._ticks(plain)

    def _ticks(self, plain: Any) -> TickArray | None:
        if plain is None or plain[0] != "a":
            return None
        try:
            return _tick_array(plain[1], plain[2])
        except (ValueError, TypeError, SyntaxError) as exc:
            self._error = (
                c.RES_E_INTERNAL_FAIL,
                f"{c.ERROR_TEXT[c.RES_E_INTERNAL_FAIL]}: the server sent ticks that are not "
                f"MT5 ticks ({exc})",
            )
            return None


def _error(code: int) -> tuple[int, str]:
    return (code, c.ERROR_TEXT[code])


def _value(plain: Any) -> Any:
    """A scalar or tuple result (``("v", x)``, or ``("t", …)`` of scalars)."""
    if plain is None:
        return None
    if plain[0] == "v":
        return plain[1]
    if plain[0] == "t":
        return tuple(_value(p) for p in plain[1])
    return None


def _seconds(value: object) -> object:
    """Dates go as whole epoch seconds: a ``datetime`` would travel as a reference to an
    object of this process, which the terminal on the other side cannot read."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return math.floor(aware.timestamp())
    if isinstance(value, np.integer | np.floating):
        return value.item()
    return value


_ZERO: dict[type[Any], dict[str, Any]] = {}


def _named(cls: type[_NT], plain: Any) -> _NT | None:
    """The project's named tuple from a server's (field, value) pairs.

    Fields the project does not know (a newer terminal) are dropped; fields the server
    did not send (an older one) take their type's zero, so ``_asdict()`` keys stay fixed.
    """
    if plain is None or plain[0] != "nt":
        return None
    zero = _ZERO.get(cls)
    if zero is None:
        zero = _ZERO[cls] = {name: kind() for name, kind in get_type_hints(cls).items()}
    fields = dict(zero)
    fields.update((k, v) for k, v in plain[1] if k in zero)
    return cls(**fields)


def _tick_array(descr_text: str, data: bytes) -> TickArray:
    """Ticks from a dtype description (``repr(dtype.descr)``) and the raw bytes.

    The description is parsed as a literal (never evaluated): a list of (name, format)
    pairs. The result has exactly the MT5 tick dtype, whatever padding the server used.
    """
    descr = ast.literal_eval(descr_text)
    if not isinstance(descr, list) or not all(
        isinstance(d, tuple) and len(d) == 2 and all(isinstance(x, str) for x in d) for d in descr
    ):
        raise ValueError("not a flat dtype description")
    dtype = np.dtype(descr)
    if len(data) % max(dtype.itemsize, 1):
        raise ValueError(f"{len(data)} bytes is not a whole number of {dtype.itemsize}-byte ticks")
    arr = np.frombuffer(data, dtype=dtype)
    if dtype == TICK_DTYPE:
        return arr.copy()  # writable, and not tied to the received buffer
    missing = [n for n in TICK_DTYPE.names or () if n not in (dtype.names or ())]
    if missing:
        raise ValueError(f"fields {', '.join(missing)} are missing")
    out = np.empty(len(arr), dtype=TICK_DTYPE)
    for name in TICK_DTYPE.names or ():
        out[name] = arr[name]
    return out
