"""What a symbol is as a trading contract, and the broker's money formulas.

The market profiles (``app/terminal/market.py``) say how a symbol *moves*; a broker also
says how it *trades*: lot size, volume limits, stops level, filling and execution modes,
how margin and profit are computed. One :class:`Contract` per symbol, derived from the
profile's class (the tree path), so ``symbol_info`` and the fill model read the same
numbers. Pure functions: the caller hands in the prices (and the cross rates) to use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.terminal import trade_constants as tc
from app.terminal.market import SymbolProfile

__all__ = ["ACCOUNT_CURRENCY", "Contract", "contract_for", "margin", "profit"]

#: The simulated accounts' deposit currency.
ACCOUNT_CURRENCY = "USD"

#: ``to_usd(currency, amount)``: an amount in ``currency`` in the account currency at
#: the instant the caller means (None: no quote for the conversion).
Converter = Callable[[str, float], float | None]


@dataclass(frozen=True, slots=True)
class Contract:
    """The trade properties ``symbol_info`` reports and the fill model enforces."""

    symbol: str
    digits: int
    point: float
    contract_size: float
    volume_min: float
    volume_max: float
    volume_step: float
    #: Minimal distance of SL/TP/pending prices from the market, in points.
    stops_level: int
    #: ``SYMBOL_FILLING_*`` bits.
    filling_mode: int
    exemode: int
    calc_mode: int
    currency_base: str
    currency_profit: str
    currency_margin: str
    margin_rate: float = 1.0


def contract_for(profile: SymbolProfile) -> Contract:
    """Believable retail-broker terms per symbol class (FX, metals, crypto CFDs).

    FX trades on instant execution (a price off by more than ``deviation`` is requoted),
    metals and crypto on market execution (PRICE_CHANGED instead). Gold allows only
    fill-or-kill, as several brokers do, so a wrong filling mode can be provoked.
    """
    path = profile.path.lower()
    common = {
        "symbol": profile.name,
        "digits": profile.digits,
        "point": profile.point,
        "contract_size": profile.contract_size,
        "currency_base": profile.currency_base,
        "currency_profit": profile.currency_profit,
        "currency_margin": profile.currency_base,
        "volume_min": 0.01,
        "volume_step": 0.01,
    }
    if path.startswith("forex"):
        return Contract(
            **common,  # type: ignore[arg-type]
            volume_max=100.0,
            stops_level=10,
            filling_mode=tc.SYMBOL_FILLING_FOK | tc.SYMBOL_FILLING_IOC,
            exemode=tc.SYMBOL_TRADE_EXECUTION_INSTANT,
            calc_mode=tc.SYMBOL_CALC_MODE_FOREX,
        )
    if path.startswith("metals"):
        return Contract(
            **common,  # type: ignore[arg-type]
            volume_max=50.0,
            stops_level=20,
            filling_mode=tc.SYMBOL_FILLING_FOK,
            exemode=tc.SYMBOL_TRADE_EXECUTION_MARKET,
            calc_mode=tc.SYMBOL_CALC_MODE_CFDLEVERAGE,
        )
    return Contract(  # crypto and anything else: a leveraged CFD
        **common,  # type: ignore[arg-type]
        volume_max=10.0,
        stops_level=100,
        filling_mode=tc.SYMBOL_FILLING_FOK | tc.SYMBOL_FILLING_IOC,
        exemode=tc.SYMBOL_TRADE_EXECUTION_MARKET,
        calc_mode=tc.SYMBOL_CALC_MODE_CFDLEVERAGE,
    )


def margin(
    c: Contract, volume: float, price: float, leverage: int, to_usd: Converter
) -> float | None:
    """Initial margin in the account currency (None: no rate to convert it).

    FOREX: ``volume × contract / leverage`` in the margin (base) currency, converted with
    the order's own price when the symbol quotes against USD; CFDLEVERAGE:
    ``volume × contract × price / leverage`` in the profit currency; CFD: without leverage.
    """
    if c.calc_mode == tc.SYMBOL_CALC_MODE_FOREX:
        amount = volume * c.contract_size / leverage * c.margin_rate
        if c.currency_margin == ACCOUNT_CURRENCY:
            return amount
        if c.currency_profit == ACCOUNT_CURRENCY:
            return amount * price
        return to_usd(c.currency_margin, amount)
    lev = leverage if c.calc_mode == tc.SYMBOL_CALC_MODE_CFDLEVERAGE else 1
    amount = volume * c.contract_size * price / lev * c.margin_rate
    return _in_usd(c, amount, price, to_usd)


def profit(
    c: Contract,
    is_buy: bool,
    volume: float,
    *,
    price_open: float,
    price_close: float,
    to_usd: Converter,
) -> float | None:
    """Profit of a (part of a) position in the account currency, rounded to cents.

    In the profit currency it is ``±(close − open) × contract × volume``; a symbol quoted
    in another currency against USD (USDJPY: yen) converts with its own closing price.
    """
    sign = 1.0 if is_buy else -1.0
    amount = sign * (price_close - price_open) * c.contract_size * volume
    usd = _in_usd(c, amount, price_close, to_usd)
    return None if usd is None else round(usd, 2)


def _in_usd(c: Contract, amount: float, price: float, to_usd: Converter) -> float | None:
    if c.currency_profit == ACCOUNT_CURRENCY:
        return amount
    if c.currency_base == ACCOUNT_CURRENCY and price > 0:
        return amount / price
    return to_usd(c.currency_profit, amount)
