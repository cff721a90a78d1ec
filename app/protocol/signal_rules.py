"""The value rules of a trading signal, one set for every side that judges one.

The gateway applies them to a service's ``POST /api/v1/signals`` (a 400 naming the first
broken rule), the bridge never forwards anything else, and the client applies them again
on arrival (a bridge is a peer, not a guarantee): a signal that breaks one is refused with
the same one-line reason. Kept apart from :mod:`app.protocol.codec`, which checks form
only, as :mod:`app.protocol.validation` is for ticks.

Expiry is not a value rule: it depends on when the signal is looked at, so it is
:func:`expired`, asked by the gateway at the POST and by the client at arrival and while
the signal waits.
"""

from __future__ import annotations

import math
from typing import Final

from app.protocol.codec import MAX_TEXT, Signal
from app.protocol.validation import symbol_ok

SIDES: Final = ("buy", "sell")
#: Outcomes a client reports (``SignalOutcome.outcome``).
OUTCOMES: Final = ("executed", "refused", "rejected", "expired", "dismissed")
MAX_SIGNAL_ID: Final = 100
MAX_SOURCE: Final = 64
#: Largest volume a signal may ask for, in lots (the risk engine has the real limit).
MAX_VOLUME: Final = 1000.0


def _printable(text: str, longest: int) -> bool:
    return 0 < len(text) <= longest and text.isprintable()


def _positive(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and value > 0)


def signal_problem(signal: Signal) -> str | None:
    """The first rule ``signal`` breaks, as one line; None when it keeps them all."""
    if not _printable(signal.id, MAX_SIGNAL_ID):
        return f"'id' must be 1..{MAX_SIGNAL_ID} printable characters"
    if not _printable(signal.source, MAX_SOURCE):
        return f"'source' must be 1..{MAX_SOURCE} printable characters"
    if not symbol_ok(signal.symbol):
        return "'symbol' must be 1..64 printable characters"
    if signal.side not in SIDES:
        return f"'side' must be 'buy' or 'sell', not {signal.side[:20]!r}"
    if (signal.volume is None) == (signal.risk_pct is None):
        return "exactly one of 'volume' and 'risk_pct' must be given"
    if signal.volume is not None and not (
        math.isfinite(signal.volume) and 0 < signal.volume <= MAX_VOLUME
    ):
        return f"'volume' must be a number in (0, {MAX_VOLUME:g}] lots"
    if signal.risk_pct is not None and not (
        math.isfinite(signal.risk_pct) and 0 < signal.risk_pct <= 100
    ):
        return "'risk_pct' must be a number in (0, 100]"
    for name in ("sl", "tp", "price"):
        if not _positive(getattr(signal, name)):
            return f"'{name}' must be a positive number when given"
    if signal.risk_pct is not None and signal.sl is None:
        return "'risk_pct' needs an 'sl' (the risk is the distance to it)"
    problem = _sides_problem(signal)
    if problem is not None:
        return problem
    if not 0 < signal.created_at_ms < 2**53 or not 0 < signal.valid_until_ms < 2**53:
        return "'created_at_ms' and 'valid_until_ms' must be epoch milliseconds"
    if signal.valid_until_ms <= signal.created_at_ms:
        return "'valid_until_ms' must be after 'created_at_ms'"
    if len(signal.comment) > MAX_TEXT or not signal.comment.isprintable():
        return f"'comment' must be at most {MAX_TEXT} printable characters"
    return None


def _sides_problem(signal: Signal) -> str | None:
    """SL below and TP above a buy (the other way round for a sell), against each other
    and against the price hint when there is one."""
    below, above = (signal.sl, signal.tp) if signal.side == "buy" else (signal.tp, signal.sl)
    if below is not None and above is not None and not below < above:
        return f"a {signal.side}'s stop-loss and take-profit are on the wrong sides"
    if signal.price is not None:
        if below is not None and not below < signal.price:
            return (
                f"a {signal.side}'s {'sl' if signal.side == 'buy' else 'tp'} must be below 'price'"
            )
        if above is not None and not above > signal.price:
            return (
                f"a {signal.side}'s {'tp' if signal.side == 'buy' else 'sl'} must be above 'price'"
            )
    return None


def expired(signal: Signal, now_ms: int) -> bool:
    return signal.valid_until_ms <= now_ms
