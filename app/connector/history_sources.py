"""Where a backfill (and the chart) reads a terminal's history.

:class:`TerminalHistory` reads it in a helper process of its own, spawned on first use:
the ``MetaTrader5`` module is one per process and blocking, so the history of a real
terminal must never be read on the loop or in the live worker. :class:`ApiHistory` reads
an API object in this process (tests, tools). Both answer in UTC through
:class:`~app.connector.server_clock.UtcTerminal`, as the live worker reads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from typing import Final, Protocol, TypeVar

from app.clock import SYSTEM_CLOCK, Clock
from app.connector.process_start import worker_context
from app.connector.server_clock import OffsetDetector, UtcTerminal, zone_for_offset
from app.connector.worker import initialize_terminal, watch_parent
from app.history.rates import BarsAnswer, HistoryBarsError, copy_bars
from app.servertime import ServerTimeZone
from app.terminal.api import MT5Api
from app.terminal.constants import CONNECTION_ERRORS, COPY_TICKS_ALL
from app.terminal.loader import open_terminal
from app.terminal.spec import TerminalSpec
from app.ticks import TickArray

__all__ = [
    "CLOSE_WAIT_S",
    "ApiHistory",
    "HistoryError",
    "HistorySource",
    "TerminalHistory",
    "copy_range",
    "select_symbol",
]

#: Looks at a symbol's last tick (and the pause between them) to detect a real
#: terminal's server time zone in the history process.
_DETECT_LOOKS: Final = 12
_DETECT_PAUSE_S: Final = 0.25


class HistoryError(RuntimeError):
    """The terminal refused a history request; the text is its ``last_error``."""

    def __init__(self, text: str, code: int = 0) -> None:
        super().__init__(text)
        self.code = code

    def __reduce__(self) -> tuple[type[HistoryError], tuple[str, int]]:
        return (HistoryError, (str(self), self.code))


class HistorySource(Protocol):
    """Where a backfill reads history: ``copy_ticks_range`` of one terminal."""

    async def fetch(self, symbol: str, from_s: int, to_s: int) -> TickArray: ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------- in the helper process

_T = TypeVar("_T")

_API: MT5Api | None = None
_SPEC: TerminalSpec | None = None
_ZONE: ServerTimeZone | None = None
_SELECTED: set[str] = set()


def _child_init(spec: TerminalSpec) -> None:
    """Initializer of the history process: like a worker, minus the streaming."""
    global _SPEC  # noqa: PLW0603 - one terminal per process, as in a worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    _SPEC = spec


def _child_api() -> MT5Api:
    global _API  # noqa: PLW0603
    assert _SPEC is not None
    if _API is None:
        api = open_terminal(_SPEC)
        if not initialize_terminal(api, _SPEC):
            code, text = api.last_error()
            raise HistoryError(f"initialize {_SPEC.name}: {text}", code)
        _API = api
        _SELECTED.clear()
    return _API


def _child_zone(api: MT5Api, symbol: str) -> ServerTimeZone:
    """The configured zone, or one detected from a fresh tick of ``symbol`` (a few looks)."""
    global _ZONE  # noqa: PLW0603
    assert _SPEC is not None
    if _ZONE is None:
        _ZONE = _SPEC.zone()
    if _ZONE is not None:
        return _ZONE
    view, detector = UtcTerminal(api, None), OffsetDetector()
    for look in range(_DETECT_LOOKS):
        if look:
            time.sleep(_DETECT_PAUSE_S)
        offset = detector.observe(view.last_stamps([symbol]), int(time.time() * 1000))
        if offset is not None:
            _ZONE = zone_for_offset(offset, time.time())
            return _ZONE
    raise HistoryError(
        f"{_SPEC.name}: server time zone not detected (no fresh {symbol} tick; the market "
        "may be closed): set terminals[].server_time_zone, or the next run fetches this"
    )


@contextlib.contextmanager
def _child_terminal(symbol: str) -> Iterator[UtcTerminal]:
    """The helper's terminal in UTC with ``symbol`` selected; a connection error makes
    the next request initialise (select, detect) again."""
    global _API, _ZONE  # noqa: PLW0603
    api = _child_api()
    try:
        if symbol not in _SELECTED:
            select_symbol(api, symbol)
            _SELECTED.add(symbol)
        yield UtcTerminal(api, _child_zone(api, symbol))
    except (HistoryError, HistoryBarsError) as exc:
        if exc.code in CONNECTION_ERRORS:
            api.shutdown()
            _API = _ZONE = None
        raise


def _child_fetch(symbol: str, from_s: int, to_s: int) -> TickArray:
    with _child_terminal(symbol) as terminal:
        return copy_range(terminal, symbol, from_s, to_s)


def _child_bars(symbol: str, tf_ms: int, before_s: int, count: int) -> BarsAnswer:
    """The chart's bars request (app/history), in the same helper process as the ticks."""
    with _child_terminal(symbol) as terminal:
        now_ms = int(time.time() * 1000)
        return copy_bars(terminal, symbol, tf_ms, before_s, count, now_ms=now_ms)


def select_symbol(api: MT5Api, symbol: str) -> None:
    """Put ``symbol`` in Market Watch: a terminal serves history only for those."""
    if not api.symbol_select(symbol, True):
        code, text = api.last_error()
        raise HistoryError(f"symbol {symbol} is not available: {text}", code)


def copy_range(terminal: UtcTerminal, symbol: str, from_s: int, to_s: int) -> TickArray:
    """``copy_ticks_range`` in UTC; ``None`` is the terminal's error (an empty array: no ticks)."""
    ticks = terminal.copy_ticks_range(symbol, from_s, to_s, COPY_TICKS_ALL)
    if ticks is None:
        code, text = terminal.api.last_error()
        raise HistoryError(f"copy_ticks_range {symbol}: {text}", code)
    return ticks


#: How long closing waits for a terminated helper process to be reaped.
CLOSE_WAIT_S = 5.0


class TerminalHistory:
    """History from one terminal, read in a process of its own (started on first use).

    A request is submitted on a thread: the first submit starts the helper process,
    which with the fork server waits until the server has imported the helper's modules
    (and with spawn, forks and pickles): up to half a second on a busy machine that the
    window's loop must not wait through (it drew the first frames meanwhile).
    """

    def __init__(self, spec: TerminalSpec) -> None:
        self.spec = spec
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        #: Submits (which may start the process) and close's hand-over of the executor
        #: exclude each other, so a process started by a submit in flight is terminated.
        self._lock = threading.Lock()

    def _submit(self, fn: Callable[..., _T], *args: object) -> concurrent.futures.Future[_T]:
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=worker_context(),
                    initializer=_child_init,
                    initargs=(self.spec,),
                )
            return self._executor.submit(fn, *args)

    async def _call(self, fn: Callable[..., _T], *args: object) -> _T:
        future = await asyncio.to_thread(self._submit, fn, *args)
        return await asyncio.wrap_future(future)

    async def fetch(self, symbol: str, from_s: int, to_s: int) -> TickArray:
        return await self._call(_child_fetch, symbol, from_s, to_s)

    async def bars(self, symbol: str, tf_ms: int, before_s: int, count: int) -> BarsAnswer:
        """Bars for the chart (app/history/rates.py), read in the same kind of process."""
        return await self._call(_child_bars, symbol, tf_ms, before_s, count)

    async def close(self) -> None:
        """Stop the helper at once: a chart request for 100k sampled bars may keep it busy
        for seconds, and nothing it would still answer is wanted (the next run asks
        again). Its process is terminated, then joined within a bound."""

        def take() -> list[BaseProcess]:
            with self._lock:
                executor, self._executor = self._executor, None
            if executor is None:
                return []
            # Taken before shutdown(), which forgets them (and, with wait=False, would
            # leave a busy helper running its job to the end).
            processes = list((getattr(executor, "_processes", None) or {}).values())
            executor.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                with contextlib.suppress(Exception):
                    process.terminate()
            return processes

        def reap(processes: list[BaseProcess]) -> None:
            for process in processes:
                process.join(CLOSE_WAIT_S)

        processes = await asyncio.to_thread(take)
        if processes:
            await asyncio.to_thread(reap, processes)


class ApiHistory:
    """History from a terminal API object in this process (tests, tools), whose server
    clock is ``zone``."""

    def __init__(self, api: MT5Api, zone: ServerTimeZone, clock: Clock = SYSTEM_CLOCK) -> None:
        self.api = api
        self.terminal = UtcTerminal(api, zone)
        self.clock = clock
        self._selected: set[str] = set()

    async def fetch(self, symbol: str, from_s: int, to_s: int) -> TickArray:
        if symbol not in self._selected:
            await asyncio.to_thread(select_symbol, self.api, symbol)
            self._selected.add(symbol)
        return await asyncio.to_thread(copy_range, self.terminal, symbol, from_s, to_s)

    async def bars(self, symbol: str, tf_ms: int, before_s: int, count: int) -> BarsAnswer:
        if symbol not in self._selected:
            await asyncio.to_thread(select_symbol, self.api, symbol)
            self._selected.add(symbol)
        now_ms = int(self.clock.time() * 1000)
        return await asyncio.to_thread(
            copy_bars, self.terminal, symbol, tf_ms, before_s, count, now_ms=now_ms
        )

    async def close(self) -> None:
        return None
