"""Trading constants of the ``MetaTrader5`` Python module, with the module's values.

Kept apart from :mod:`app.terminal.constants` (connection and tick constants) so that each
file stays one concept; both are re-exported where the simulated terminal mirrors the
module's attributes. Values are those of the real module (MQL5's ENUM_* numbering);
``TRADE_RETCODE_TEXT`` holds the texts the terminal shows for each return code.
"""

from __future__ import annotations

from typing import Final

# --- order_send actions (ENUM_TRADE_REQUEST_ACTIONS) -------------------------------
TRADE_ACTION_DEAL: Final = 1
TRADE_ACTION_PENDING: Final = 5
TRADE_ACTION_SLTP: Final = 6
TRADE_ACTION_MODIFY: Final = 7
TRADE_ACTION_REMOVE: Final = 8
TRADE_ACTION_CLOSE_BY: Final = 10

# --- order types (ENUM_ORDER_TYPE) ---------------------------------------------------
ORDER_TYPE_BUY: Final = 0
ORDER_TYPE_SELL: Final = 1
ORDER_TYPE_BUY_LIMIT: Final = 2
ORDER_TYPE_SELL_LIMIT: Final = 3
ORDER_TYPE_BUY_STOP: Final = 4
ORDER_TYPE_SELL_STOP: Final = 5
ORDER_TYPE_BUY_STOP_LIMIT: Final = 6
ORDER_TYPE_SELL_STOP_LIMIT: Final = 7
ORDER_TYPE_CLOSE_BY: Final = 8

# --- filling and expiry --------------------------------------------------------------
ORDER_FILLING_FOK: Final = 0
ORDER_FILLING_IOC: Final = 1
ORDER_FILLING_RETURN: Final = 2
ORDER_FILLING_BOC: Final = 3

ORDER_TIME_GTC: Final = 0
ORDER_TIME_DAY: Final = 1
ORDER_TIME_SPECIFIED: Final = 2
ORDER_TIME_SPECIFIED_DAY: Final = 3

# --- order states and reasons ----------------------------------------------------------
ORDER_STATE_STARTED: Final = 0
ORDER_STATE_PLACED: Final = 1
ORDER_STATE_CANCELED: Final = 2
ORDER_STATE_PARTIAL: Final = 3
ORDER_STATE_FILLED: Final = 4
ORDER_STATE_REJECTED: Final = 5
ORDER_STATE_EXPIRED: Final = 6
ORDER_STATE_REQUEST_ADD: Final = 7
ORDER_STATE_REQUEST_MODIFY: Final = 8
ORDER_STATE_REQUEST_CANCEL: Final = 9

ORDER_REASON_CLIENT: Final = 0
ORDER_REASON_MOBILE: Final = 1
ORDER_REASON_WEB: Final = 2
ORDER_REASON_EXPERT: Final = 3
ORDER_REASON_SL: Final = 4
ORDER_REASON_TP: Final = 5
ORDER_REASON_SO: Final = 6

# --- positions ---------------------------------------------------------------------------
POSITION_TYPE_BUY: Final = 0
POSITION_TYPE_SELL: Final = 1

POSITION_REASON_CLIENT: Final = 0
POSITION_REASON_MOBILE: Final = 1
POSITION_REASON_WEB: Final = 2
POSITION_REASON_EXPERT: Final = 3

# --- deals ---------------------------------------------------------------------------------
DEAL_TYPE_BUY: Final = 0
DEAL_TYPE_SELL: Final = 1
DEAL_TYPE_BALANCE: Final = 2
DEAL_TYPE_CREDIT: Final = 3
DEAL_TYPE_CHARGE: Final = 4
DEAL_TYPE_CORRECTION: Final = 5
DEAL_TYPE_BONUS: Final = 6
DEAL_TYPE_COMMISSION: Final = 7

DEAL_ENTRY_IN: Final = 0
DEAL_ENTRY_OUT: Final = 1
DEAL_ENTRY_INOUT: Final = 2
DEAL_ENTRY_OUT_BY: Final = 3

DEAL_REASON_CLIENT: Final = 0
DEAL_REASON_MOBILE: Final = 1
DEAL_REASON_WEB: Final = 2
DEAL_REASON_EXPERT: Final = 3
DEAL_REASON_SL: Final = 4
DEAL_REASON_TP: Final = 5
DEAL_REASON_SO: Final = 6
DEAL_REASON_ROLLOVER: Final = 7
DEAL_REASON_VMARGIN: Final = 8
DEAL_REASON_SPLIT: Final = 9

# --- account -------------------------------------------------------------------------------
ACCOUNT_TRADE_MODE_DEMO: Final = 0
ACCOUNT_TRADE_MODE_CONTEST: Final = 1
ACCOUNT_TRADE_MODE_REAL: Final = 2

ACCOUNT_MARGIN_MODE_RETAIL_NETTING: Final = 0
ACCOUNT_MARGIN_MODE_EXCHANGE: Final = 1
ACCOUNT_MARGIN_MODE_RETAIL_HEDGING: Final = 2

ACCOUNT_STOPOUT_MODE_PERCENT: Final = 0
ACCOUNT_STOPOUT_MODE_MONEY: Final = 1

# --- symbol trade properties ---------------------------------------------------------
#: ``symbol_info().filling_mode`` is a bit set of these (not the ORDER_FILLING_* values).
SYMBOL_FILLING_FOK: Final = 1
SYMBOL_FILLING_IOC: Final = 2
SYMBOL_FILLING_BOC: Final = 4

SYMBOL_TRADE_MODE_DISABLED: Final = 0
SYMBOL_TRADE_MODE_LONGONLY: Final = 1
SYMBOL_TRADE_MODE_SHORTONLY: Final = 2
SYMBOL_TRADE_MODE_CLOSEONLY: Final = 3
SYMBOL_TRADE_MODE_FULL: Final = 4

SYMBOL_TRADE_EXECUTION_REQUEST: Final = 0
SYMBOL_TRADE_EXECUTION_INSTANT: Final = 1
SYMBOL_TRADE_EXECUTION_MARKET: Final = 2
SYMBOL_TRADE_EXECUTION_EXCHANGE: Final = 3

SYMBOL_CALC_MODE_FOREX: Final = 0
SYMBOL_CALC_MODE_FUTURES: Final = 1
SYMBOL_CALC_MODE_CFD: Final = 2
SYMBOL_CALC_MODE_CFDINDEX: Final = 3
SYMBOL_CALC_MODE_CFDLEVERAGE: Final = 4
SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE: Final = 5

# --- timeframes (copy_rates_*) -----------------------------------------------------------
TIMEFRAME_M1: Final = 1
TIMEFRAME_M2: Final = 2
TIMEFRAME_M3: Final = 3
TIMEFRAME_M4: Final = 4
TIMEFRAME_M5: Final = 5
TIMEFRAME_M6: Final = 6
TIMEFRAME_M10: Final = 10
TIMEFRAME_M12: Final = 12
TIMEFRAME_M15: Final = 15
TIMEFRAME_M20: Final = 20
TIMEFRAME_M30: Final = 30
TIMEFRAME_H1: Final = 1 | 0x4000
TIMEFRAME_H2: Final = 2 | 0x4000
TIMEFRAME_H3: Final = 3 | 0x4000
TIMEFRAME_H4: Final = 4 | 0x4000
TIMEFRAME_H6: Final = 6 | 0x4000
TIMEFRAME_H8: Final = 8 | 0x4000
TIMEFRAME_H12: Final = 12 | 0x4000
TIMEFRAME_D1: Final = 24 | 0x4000
TIMEFRAME_W1: Final = 1 | 0x8000
TIMEFRAME_MN1: Final = 1 | 0xC000

# --- order_send / order_check return codes ---------------------------------------------
TRADE_RETCODE_REQUOTE: Final = 10004
TRADE_RETCODE_REJECT: Final = 10006
TRADE_RETCODE_CANCEL: Final = 10007
TRADE_RETCODE_PLACED: Final = 10008
TRADE_RETCODE_DONE: Final = 10009
TRADE_RETCODE_DONE_PARTIAL: Final = 10010
TRADE_RETCODE_ERROR: Final = 10011
TRADE_RETCODE_TIMEOUT: Final = 10012
TRADE_RETCODE_INVALID: Final = 10013
TRADE_RETCODE_INVALID_VOLUME: Final = 10014
TRADE_RETCODE_INVALID_PRICE: Final = 10015
TRADE_RETCODE_INVALID_STOPS: Final = 10016
TRADE_RETCODE_TRADE_DISABLED: Final = 10017
TRADE_RETCODE_MARKET_CLOSED: Final = 10018
TRADE_RETCODE_NO_MONEY: Final = 10019
TRADE_RETCODE_PRICE_CHANGED: Final = 10020
TRADE_RETCODE_PRICE_OFF: Final = 10021
TRADE_RETCODE_INVALID_EXPIRATION: Final = 10022
TRADE_RETCODE_ORDER_CHANGED: Final = 10023
TRADE_RETCODE_TOO_MANY_REQUESTS: Final = 10024
TRADE_RETCODE_NO_CHANGES: Final = 10025
TRADE_RETCODE_SERVER_DISABLES_AT: Final = 10026
TRADE_RETCODE_CLIENT_DISABLES_AT: Final = 10027
TRADE_RETCODE_LOCKED: Final = 10028
TRADE_RETCODE_FROZEN: Final = 10029
TRADE_RETCODE_INVALID_FILL: Final = 10030
TRADE_RETCODE_CONNECTION: Final = 10031
TRADE_RETCODE_ONLY_REAL: Final = 10032
TRADE_RETCODE_LIMIT_ORDERS: Final = 10033
TRADE_RETCODE_LIMIT_VOLUME: Final = 10034
TRADE_RETCODE_INVALID_ORDER: Final = 10035
TRADE_RETCODE_POSITION_CLOSED: Final = 10036
TRADE_RETCODE_INVALID_CLOSE_VOLUME: Final = 10038
TRADE_RETCODE_CLOSE_ORDER_EXIST: Final = 10039
TRADE_RETCODE_LIMIT_POSITIONS: Final = 10040
TRADE_RETCODE_REJECT_CANCEL: Final = 10041
TRADE_RETCODE_LONG_ONLY: Final = 10042
TRADE_RETCODE_SHORT_ONLY: Final = 10043
TRADE_RETCODE_CLOSE_ONLY: Final = 10044
TRADE_RETCODE_FIFO_CLOSE: Final = 10045

#: The terminal's text for each return code (MQL5 "Trade Server Return Codes").
TRADE_RETCODE_TEXT: Final[dict[int, str]] = {
    TRADE_RETCODE_REQUOTE: "Requote",
    TRADE_RETCODE_REJECT: "Request rejected",
    TRADE_RETCODE_CANCEL: "Request canceled by trader",
    TRADE_RETCODE_PLACED: "Order placed",
    TRADE_RETCODE_DONE: "Request completed",
    TRADE_RETCODE_DONE_PARTIAL: "Only part of the request was completed",
    TRADE_RETCODE_ERROR: "Request processing error",
    TRADE_RETCODE_TIMEOUT: "Request canceled by timeout",
    TRADE_RETCODE_INVALID: "Invalid request",
    TRADE_RETCODE_INVALID_VOLUME: "Invalid volume in the request",
    TRADE_RETCODE_INVALID_PRICE: "Invalid price in the request",
    TRADE_RETCODE_INVALID_STOPS: "Invalid stops in the request",
    TRADE_RETCODE_TRADE_DISABLED: "Trade is disabled",
    TRADE_RETCODE_MARKET_CLOSED: "Market is closed",
    TRADE_RETCODE_NO_MONEY: "There is not enough money to complete the request",
    TRADE_RETCODE_PRICE_CHANGED: "Prices changed",
    TRADE_RETCODE_PRICE_OFF: "There are no quotes to process the request",
    TRADE_RETCODE_INVALID_EXPIRATION: "Invalid order expiration date in the request",
    TRADE_RETCODE_ORDER_CHANGED: "Order state changed",
    TRADE_RETCODE_TOO_MANY_REQUESTS: "Too frequent requests",
    TRADE_RETCODE_NO_CHANGES: "No changes in request",
    TRADE_RETCODE_SERVER_DISABLES_AT: "Autotrading disabled by server",
    TRADE_RETCODE_CLIENT_DISABLES_AT: "Autotrading disabled by client terminal",
    TRADE_RETCODE_LOCKED: "Request locked for processing",
    TRADE_RETCODE_FROZEN: "Order or position frozen",
    TRADE_RETCODE_INVALID_FILL: "Invalid order filling type",
    TRADE_RETCODE_CONNECTION: "No connection with the trade server",
    TRADE_RETCODE_ONLY_REAL: "Operation is allowed only for live accounts",
    TRADE_RETCODE_LIMIT_ORDERS: "The number of pending orders has reached the limit",
    TRADE_RETCODE_LIMIT_VOLUME: (
        "The volume of orders and positions for the symbol has reached the limit"
    ),
    TRADE_RETCODE_INVALID_ORDER: "Incorrect or prohibited order type",
    TRADE_RETCODE_POSITION_CLOSED: "Position with the specified identifier has already been closed",
    TRADE_RETCODE_INVALID_CLOSE_VOLUME: "A close volume exceeds the current position volume",
    TRADE_RETCODE_CLOSE_ORDER_EXIST: "A close order already exists for a specified position",
    TRADE_RETCODE_LIMIT_POSITIONS: "The number of open positions has reached the limit",
    TRADE_RETCODE_REJECT_CANCEL: (
        "The pending order activation request is rejected, the order is canceled"
    ),
    TRADE_RETCODE_LONG_ONLY: "Only long positions are allowed",
    TRADE_RETCODE_SHORT_ONLY: "Only short positions are allowed",
    TRADE_RETCODE_CLOSE_ONLY: "Only position closing is allowed",
    TRADE_RETCODE_FIFO_CLOSE: "Position closing is allowed only by FIFO rule",
}

#: The retcode's constant name without the prefix, e.g. 10009 -> "DONE" (for messages).
TRADE_RETCODE_NAME: Final[dict[int, str]] = {
    value: name.removeprefix("TRADE_RETCODE_")
    for name, value in list(globals().items())
    if name.startswith("TRADE_RETCODE_") and isinstance(value, int)
}


def describe_retcode(code: int) -> str:
    """``"10009 DONE (Request completed)"``: one line a trader and a log reader both read."""
    name = TRADE_RETCODE_NAME.get(code, "UNKNOWN")
    text = TRADE_RETCODE_TEXT.get(code, "unknown return code")
    return f"{code} {name} ({text})"
