"""How prices and tick times are written, shared by the quote board and the chart.

A price is only readable at its symbol's precision: ``1.0851`` and ``1.08510`` are the
same number but a trader reads the second as "five digits, last one zero". The
precision comes from the simulated terminal's profile when the symbol is simulated, and
is otherwise inferred from the prices themselves (see :class:`DigitsGuess`), because a
real terminal's ``SymbolInfo`` is not something the window may ask for on its own.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from app.config import ClientConfig
from app.terminal.market import DEFAULT_PROFILES

#: Most decimals a price is ever shown with (MT5 symbols use at most 8).
MAX_DIGITS = 8
#: Shown where a value does not exist yet (no tick, no rate).
MISSING = "—"


def captured_symbols(config: ClientConfig) -> tuple[str, ...]:
    """Every symbol the settings capture, in the order the settings list them."""
    return tuple(s for t in config.terminals for s in t.symbols)


def profile_digits(symbol: str, config: ClientConfig) -> int | None:
    """The digits of ``symbol`` when a simulated terminal captures it and knows it.

    A real MT5 terminal's broker may quote the same name with other digits, so the
    simulated profiles are only trusted for simulated terminals.
    """
    for term in config.terminals:
        if symbol in term.symbols:
            profile = DEFAULT_PROFILES.get(symbol)
            if term.kind == "simulated" and profile is not None:
                return profile.digits
            return None
    return None


def price_decimals(price: float) -> int:
    """Decimals written in ``price`` once float noise is rounded away (``1.0851`` -> 4)."""
    if not math.isfinite(price):
        return 0
    text = f"{price:.{MAX_DIGITS}f}".rstrip("0")
    return len(text) - text.index(".") - 1


class DigitsGuess:
    """The precision of a symbol nobody told us about, learnt from its quotes.

    Rule: the most decimals seen in any bid or ask so far. A price whose last digit
    happens to be 0 prints one decimal short, so a single quote can under-estimate, but
    with quotes spread over the last digit the maximum settles on the true digits within
    a few ticks and never overshoots (prices are multiples of the point).
    """

    __slots__ = ("digits",)

    def __init__(self) -> None:
        self.digits = 0

    def observe(self, *prices: float) -> int:
        for p in prices:
            if p:
                self.digits = max(self.digits, price_decimals(p))
        return self.digits


def point_of(digits: int) -> float:
    return 10.0**-digits


def format_price(value: float | None, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:.{digits}f}"


def format_signed(value: float | None, digits: int) -> str:
    """``+0.00012`` / ``-0.00012`` / ``0.00000``: the sign is part of what a change says."""
    if value is None or not math.isfinite(value):
        return MISSING
    text = f"{abs(value):.{digits}f}"
    if float(text) == 0.0:
        return text
    return ("+" if value > 0 else "-") + text


def format_time_msc(msc: int) -> str:
    """Local wall time of a tick with milliseconds, as the chart's date axis shows it."""
    if msc <= 0:
        return MISSING
    return datetime.fromtimestamp(msc / 1000).strftime("%H:%M:%S.") + f"{msc % 1000:03d}"


def format_datetime_msc(msc: int) -> str:
    """Full local date and time plus UTC, for tooltips."""
    if msc <= 0:
        return "no tick yet"
    local = datetime.fromtimestamp(msc / 1000).astimezone()
    utc = local.astimezone(UTC)
    ms = f"{msc % 1000:03d}"
    return (
        f"{local.strftime('%Y-%m-%d %H:%M:%S')}.{ms} {local.strftime('%Z')}"
        f" ({utc.strftime('%H:%M:%S')}.{ms} UTC)"
    )
