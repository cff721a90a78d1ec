"""How prices and tick times are written, shared by the quote board and the chart.

A price is only readable at its symbol's precision: ``1.0851`` and ``1.08510`` are the
same number but a trader reads the second as "five digits, last one zero". The
precision comes from the simulated terminal's profile when the symbol is simulated, and
is otherwise inferred from the prices themselves (see :class:`DigitsGuess`), because a
real terminal's ``SymbolInfo`` is not something the window may ask for on its own.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from app.config import ClientConfig
from app.servertime import ServerTimeZone, format_offset
from app.session_view import profile_digits

#: Most decimals a price is ever shown with (MT5 symbols use at most 8).
MAX_DIGITS = 8
#: Shown where a value does not exist yet (no tick, no rate).
MISSING = "—"

#: ``profile_digits`` lives with the core's view (the simulated terminal's profiles are
#: the core's); it is re-exported here for the panels that format prices.
__all__ = [
    "MISSING",
    "DigitsGuess",
    "captured_symbols",
    "format_datetime_msc",
    "format_price",
    "format_signed",
    "format_time_msc",
    "point_of",
    "price_decimals",
    "profile_digits",
    "server_datetime",
]


def captured_symbols(config: ClientConfig) -> tuple[str, ...]:
    """Every symbol the settings capture, in the order the settings list them."""
    return tuple(s for t in config.terminals for s in t.symbols)


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


def server_datetime(msc: int, zone: ServerTimeZone | None) -> datetime:
    """The server's wall clock at UTC ``msc`` (UTC while the zone is not known), naive.

    Converted here explicitly: ``datetime.fromtimestamp`` and pyqtgraph's date axis
    would show the machine's local time, which is neither MT5's nor UTC.
    """
    utc = datetime.fromtimestamp(msc // 1000, UTC).replace(tzinfo=None)
    offset = zone.offset_s(msc / 1000) if zone is not None else 0
    return utc + timedelta(seconds=offset, milliseconds=msc % 1000)


def format_time_msc(msc: int, zone: ServerTimeZone | None = None) -> str:
    """Server wall time of a tick with milliseconds, as MT5's Market Watch shows it."""
    if msc <= 0:
        return MISSING
    return server_datetime(msc, zone).strftime("%H:%M:%S.") + f"{msc % 1000:03d}"


def format_datetime_msc(msc: int, zone: ServerTimeZone | None = None) -> str:
    """Server date and time, then UTC and local time, for tooltips."""
    if msc <= 0:
        return "no tick yet"
    ms = f"{msc % 1000:03d}"
    utc = datetime.fromtimestamp(msc // 1000, UTC)
    local = utc.astimezone()
    if zone is None:
        server = "server time unknown (shown in UTC until the terminal reports its zone)"
    else:
        offset = format_offset(zone.offset_s(msc / 1000))
        at = server_datetime(msc, zone).strftime("%Y-%m-%d %H:%M:%S")
        server = f"{at}.{ms} server time ({zone.key}, {offset})"
    return (
        f"{server}\n{utc.strftime('%Y-%m-%d %H:%M:%S')}.{ms} UTC"
        f"\n{local.strftime('%Y-%m-%d %H:%M:%S')}.{ms} local ({local.strftime('%Z')})"
    )
