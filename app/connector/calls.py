"""Calls of a terminal's API through the worker that owns it: the trading path's pipe.

The ``MetaTrader5`` module is one terminal per process, so an order (or an account
read) for a terminal must be served by a worker connected to it. The supervisor sends a
:class:`~app.connector.wire.CallMsg` with an id; the worker answers between two polls
with a :class:`~app.connector.wire.ReplyMsg`. This module holds what both ends agree
on (the allow-list, the errors) and the supervisor's table of calls awaiting a reply.

Nothing here ever sends a call twice. A call whose reply did not come (timeout, worker
gone) may or may not have run in the terminal: the caller is told which of the two
happened (:class:`CallTimeout`, :class:`WorkerGone`) and decides. For an order, that
decision is the execution path's reconciliation (``app/trading/router.py``).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Final

#: The terminal functions a worker serves over its pipe: trading and account reads.
#: Everything else (``initialize``, ``shutdown``, ``copy_ticks_*`` ...) is the worker's
#: own business; a call outside this list is refused by both ends.
CALLABLE_METHODS: Final = frozenset(
    {
        "order_send",
        "order_check",
        "order_calc_margin",
        "order_calc_profit",
        "positions_total",
        "positions_get",
        "orders_total",
        "orders_get",
        "history_orders_total",
        "history_orders_get",
        "history_deals_total",
        "history_deals_get",
        "account_info",
        "symbol_info",
        "symbol_info_tick",
    }
)

#: The code of a call the worker refused or that raised (the module's RES_E_INVALID_PARAMS).
REFUSED_CODE: Final = -2


class CallError(Exception):
    """A call through a worker did not give an answer."""


class NotConnected(CallError):  # noqa: N818 (says what happened, like WorkerGone)
    """No worker is connected to the terminal: the call was *not* sent."""


class CallTimeout(CallError):  # noqa: N818
    """No reply within the timeout: the call may or may not have run in the terminal."""


class WorkerGone(CallError):  # noqa: N818
    """The worker ended (killed, crashed, stopped) before replying: the call may or may
    not have run in the terminal."""


class TerminalCallError(CallError):
    """The terminal answered ``None``/``False`` (or refused the call): ``last_error()``."""

    def __init__(self, method: str, code: int, text: str) -> None:
        super().__init__(f"{method}: {text} ({code})")
        self.method = method
        self.code = code
        self.text = text


class PendingCalls:
    """The supervisor's calls of one worker process awaiting their replies.

    Futures are resolved on the loop (replies arrive on the reader thread, which hands
    them over with ``call_soon_threadsafe``). ``fail_all`` is called when the process
    ends, so nobody waits on a dead worker until the timeout.
    """

    _ids = itertools.count(1)

    def __init__(self) -> None:
        self._waiting: dict[int, tuple[str, asyncio.Future[Any]]] = {}

    def open(self, method: str) -> tuple[int, asyncio.Future[Any]]:
        call_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = (method, future)
        return call_id, future

    def forget(self, call_id: int) -> None:
        self._waiting.pop(call_id, None)

    def resolve(self, call_id: int, result: Any, error: tuple[int, str] | None) -> None:
        entry = self._waiting.pop(call_id, None)
        if entry is None or entry[1].done():
            return  # timed out already: the caller was told, a late reply changes nothing
        method, future = entry
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(TerminalCallError(method, error[0], error[1]))

    def fail_all(self, why: str) -> None:
        waiting, self._waiting = self._waiting, {}
        for method, future in waiting.values():
            if not future.done():
                future.set_exception(WorkerGone(f"{method}: {why}"))

    def __len__(self) -> int:
        return len(self._waiting)
