"""Trading return types of the ``MetaTrader5`` module, mirrored as named tuples.

Field names and order follow the real module, so code written against these
(attribute access, ``_asdict()``) runs unchanged against a real terminal. ``order_send``
and ``order_check`` take the request as a plain ``dict`` (as the real module does) and
echo it back as a :class:`TradeRequest` inside their results; ``RATES_DTYPE`` is the
structured dtype ``copy_rates_*`` answer with (``time`` in server-time seconds).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class TradeRequest(NamedTuple):
    action: int
    magic: int
    order: int
    symbol: str
    volume: float
    price: float
    stoplimit: float
    sl: float
    tp: float
    deviation: int
    type: int
    type_filling: int
    type_time: int
    expiration: int
    comment: str
    position: int
    position_by: int


class OrderSendResult(NamedTuple):
    retcode: int
    deal: int
    order: int
    volume: float
    price: float
    bid: float
    ask: float
    comment: str
    request_id: int
    retcode_external: int
    request: TradeRequest


class OrderCheckResult(NamedTuple):
    retcode: int
    balance: float
    equity: float
    profit: float
    margin: float
    margin_free: float
    margin_level: float
    comment: str
    request: TradeRequest


class TradePosition(NamedTuple):
    ticket: int
    time: int
    time_msc: int
    time_update: int
    time_update_msc: int
    type: int
    magic: int
    identifier: int
    reason: int
    volume: float
    price_open: float
    sl: float
    tp: float
    price_current: float
    swap: float
    profit: float
    symbol: str
    comment: str
    external_id: str


class TradeOrder(NamedTuple):
    ticket: int
    time_setup: int
    time_setup_msc: int
    time_done: int
    time_done_msc: int
    time_expiration: int
    type: int
    type_time: int
    type_filling: int
    state: int
    magic: int
    position_id: int
    position_by_id: int
    reason: int
    volume_initial: float
    volume_current: float
    price_open: float
    sl: float
    tp: float
    price_current: float
    price_stoplimit: float
    symbol: str
    comment: str
    external_id: str


class TradeDeal(NamedTuple):
    ticket: int
    order: int
    time: int
    time_msc: int
    type: int
    entry: int
    magic: int
    position_id: int
    reason: int
    volume: float
    price: float
    commission: float
    swap: float
    profit: float
    fee: float
    symbol: str
    comment: str
    external_id: str


#: ``copy_rates_from`` / ``copy_rates_from_pos`` / ``copy_rates_range`` rows.
RATES_DTYPE = np.dtype(
    [
        ("time", "<i8"),
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("tick_volume", "<u8"),
        ("spread", "<i4"),
        ("real_volume", "<u8"),
    ]
)

#: ``TradeRequest`` fields' defaults: the real module fills what a request dict omits.
REQUEST_DEFAULTS = TradeRequest(
    action=0,
    magic=0,
    order=0,
    symbol="",
    volume=0.0,
    price=0.0,
    stoplimit=0.0,
    sl=0.0,
    tp=0.0,
    deviation=0,
    type=0,
    type_filling=0,
    type_time=0,
    expiration=0,
    comment="",
    position=0,
    position_by=0,
)


def trade_request(fields: dict[str, object]) -> TradeRequest:
    """The request dict as the module echoes it back; unknown keys raise ``TypeError``
    (the real module refuses them with "Invalid params")."""
    unknown = set(fields) - set(TradeRequest._fields)
    if unknown:
        raise TypeError(f"unknown request field(s): {', '.join(sorted(unknown))}")
    return REQUEST_DEFAULTS._replace(**fields)  # type: ignore[arg-type]
