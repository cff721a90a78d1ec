"""Constants of the ``MetaTrader5`` Python module, with the values the module uses.

Note that ``COPY_TICKS_ALL`` is -1 in Python (it is 3 in MQL5).
"""

from __future__ import annotations

from typing import Final

COPY_TICKS_ALL: Final = -1
COPY_TICKS_INFO: Final = 1
COPY_TICKS_TRADE: Final = 2

TICK_FLAG_BID: Final = 0x02
TICK_FLAG_ASK: Final = 0x04
TICK_FLAG_LAST: Final = 0x08
TICK_FLAG_VOLUME: Final = 0x10
TICK_FLAG_BUY: Final = 0x20
TICK_FLAG_SELL: Final = 0x40

RES_S_OK: Final = 1
RES_E_FAIL: Final = -1
RES_E_INVALID_PARAMS: Final = -2
RES_E_NO_MEMORY: Final = -3
RES_E_NOT_FOUND: Final = -4
RES_E_INVALID_VERSION: Final = -5
RES_E_AUTH_FAILED: Final = -6
RES_E_UNSUPPORTED: Final = -7
RES_E_AUTO_TRADING_DISABLED: Final = -8
RES_E_INTERNAL_FAIL: Final = -10000
RES_E_INTERNAL_FAIL_SEND: Final = -10001
RES_E_INTERNAL_FAIL_RECEIVE: Final = -10002
RES_E_INTERNAL_FAIL_INIT: Final = -10003
RES_E_INTERNAL_FAIL_CONNECT: Final = -10004
RES_E_INTERNAL_FAIL_TIMEOUT: Final = -10005

#: The texts ``last_error()`` pairs with each code.
ERROR_TEXT: Final[dict[int, str]] = {
    RES_S_OK: "Success",
    RES_E_FAIL: "Terminal: Call failed",
    RES_E_INVALID_PARAMS: "Terminal: Invalid params",
    RES_E_NO_MEMORY: "Terminal: No memory",
    RES_E_NOT_FOUND: "Terminal: Not found",
    RES_E_INVALID_VERSION: "Terminal: Invalid version",
    RES_E_AUTH_FAILED: "Terminal: Authorization failed",
    RES_E_UNSUPPORTED: "Terminal: Unsupported method",
    RES_E_AUTO_TRADING_DISABLED: "Terminal: Auto-trading disabled",
    RES_E_INTERNAL_FAIL: "Internal error",
    RES_E_INTERNAL_FAIL_SEND: "IPC send failed",
    RES_E_INTERNAL_FAIL_RECEIVE: "IPC recv failed",
    RES_E_INTERNAL_FAIL_INIT: "IPC initialize failed",
    RES_E_INTERNAL_FAIL_CONNECT: "No IPC connection",
    RES_E_INTERNAL_FAIL_TIMEOUT: "IPC timeout",
}

#: Codes after which re-initialising the terminal may help (the link to it broke).
CONNECTION_ERRORS: Final = frozenset(
    {
        RES_E_INTERNAL_FAIL,
        RES_E_INTERNAL_FAIL_SEND,
        RES_E_INTERNAL_FAIL_RECEIVE,
        RES_E_INTERNAL_FAIL_INIT,
        RES_E_INTERNAL_FAIL_CONNECT,
        RES_E_INTERNAL_FAIL_TIMEOUT,
    }
)
