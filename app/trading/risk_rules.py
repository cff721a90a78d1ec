"""The risk engine's rules about one intent on one account view, pure functions.

Apart from :mod:`app.trading.risk` (the state machine, the daily loss and the order
rate) so each stays readable; every rule here answers ``None`` (passes) or a
``(Rule, reason)`` pair whose reason is the line the trader reads.
"""

from __future__ import annotations

import enum
import math

from app.config.trading_schema import RiskLimitsConfig
from app.trading.account_view import AccountView
from app.trading.intent import Action, OrderIntent, OrderKind, Side

__all__ = ["EPS", "Refusal", "Rule", "fits", "malformed", "reduces", "volume_refusal"]

#: Lots compared with this slack: 0.1 + 0.2 lots is 0.30000000000000004.
EPS = 1e-9


class Rule(enum.StrEnum):
    """Which rule decided: ``accepted`` when none refused."""

    ACCEPTED = "accepted"
    DISABLED = "disabled"
    REAL_ACCOUNT = "real_account"  # the setting does not allow a real account
    REAL_ACCOUNT_CONSENT = "real_account_consent"  # allowed, but not confirmed this session
    INVALID = "invalid"
    STATE = "state"  # REDUCING or HALTED by hand
    DAILY_LOSS = "daily_loss"  # HALTED by the daily loss limit
    SYMBOL = "symbol"
    VOLUME = "volume"
    VOLUME_STEP = "volume_step"
    EXPOSURE = "exposure"
    POSITIONS = "positions"
    RATE = "rate"


Refusal = tuple[Rule, str]


def volume_refusal(
    intent: OrderIntent, view: AccountView, limits: RiskLimitsConfig, allowed: frozenset[str]
) -> Refusal | None:
    """Symbol, volume, exposure and position-count rules of an OPEN or CLOSE intent."""
    symbol, volume = intent.symbol, intent.volume
    opening = intent.action is Action.OPEN
    if opening and allowed and symbol not in allowed:
        return (
            Rule.SYMBOL,
            f"{symbol} is not among the allowed symbols (trading.risk.allowed_symbols)",
        )
    if opening and volume > limits.max_volume_per_order + EPS:
        return (
            Rule.VOLUME,
            f"volume {volume:g} lots is above the limit of "
            f"{limits.max_volume_per_order:g} lots per order",
        )
    rule = view.symbols.get(symbol)
    if rule is not None and not fits(volume, rule.min, rule.max, rule.step):
        return (
            Rule.VOLUME_STEP,
            f"volume {volume:g} lots does not fit {symbol} "
            f"(min {rule.min:g}, max {rule.max:g}, step {rule.step:g})",
        )
    if not opening:
        return None
    exposure = view.exposure(symbol)
    buy = intent.side is Side.BUY
    after = (exposure.worst_long if buy else exposure.worst_short) + volume
    if after > limits.max_exposure_per_symbol + EPS:
        return (
            Rule.EXPOSURE,
            f"{symbol} would be {after:g} lots {'long' if buy else 'short'} counting "
            f"positions and pending orders, above the limit of "
            f"{limits.max_exposure_per_symbol:g}",
        )
    if view.would_open_position(symbol):
        slots = view.position_slots() + 1
        if slots > limits.max_open_positions:
            return (
                Rule.POSITIONS,
                f"{slots} positions (open, or pending orders that may open one) "
                f"would pass the limit of {limits.max_open_positions}",
            )
    return None


def reduces(intent: OrderIntent, view: AccountView) -> bool:
    """A market order on a netting account against the net position, not flipping it."""
    if view.hedging or intent.kind is not OrderKind.MARKET:
        return False
    net = view.exposure(intent.symbol).net
    if intent.side is Side.BUY:
        return net < 0 and intent.volume <= -net + EPS
    return net > 0 and intent.volume <= net + EPS


def fits(volume: float, low: float, high: float, step: float) -> bool:
    if volume < low - EPS or volume > high + EPS:
        return False
    if step <= 0:
        return True
    steps = volume / step
    return abs(steps - round(steps)) < 1e-6


def malformed(intent: OrderIntent, view: AccountView) -> str | None:
    """What makes ``intent`` impossible on ``view``, in a line; ``None`` when nothing."""
    action = intent.action
    for name, value in (("price", intent.price), ("SL", intent.sl), ("TP", intent.tp)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            return f"{name} {value} is not a price"
    opens_or_closes = action is Action.OPEN or action is Action.CLOSE
    if opens_or_closes and not (math.isfinite(intent.volume) and intent.volume > 0):
        return f"volume {intent.volume} lots: it must be above 0"
    if action is Action.OPEN:
        if intent.kind is not OrderKind.MARKET and intent.price is None:
            return f"a {intent.kind.value} order needs a price"
        return None
    if intent.ticket is None:
        return f"{action.value} needs the ticket of a position or order"
    if action is Action.CLOSE:
        position = view.position(intent.ticket)
        if position is None:
            return f"position {intent.ticket} is not open"
        if position.symbol != intent.symbol:
            return f"position {intent.ticket} is {position.symbol}, not {intent.symbol}"
        if intent.volume > position.volume + EPS:
            return (
                f"cannot close {intent.volume:g} lots of position {intent.ticket}: "
                f"it holds {position.volume:g}"
            )
    elif action is Action.CANCEL:
        if view.order(intent.ticket) is None:
            return f"pending order {intent.ticket} does not exist"
    elif view.position(intent.ticket) is None and view.order(intent.ticket) is None:
        return f"no position or pending order {intent.ticket} to modify"
    return None
