"""The argument conventions of the ``MetaTrader5`` calls, shared by the simulated terminals.

Kept apart from :mod:`app.terminal.simulated` so that the simulated and replay terminals
read dates, copy flags and symbol groups one way, as the real module does.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import UTC, datetime
from typing import Any, Final, get_type_hints

import numpy as np

from app.terminal import constants as c
from app.terminal.types import SymbolInfo

__all__ = ["COPY_MASKS", "SYMBOL_INFO_ZERO", "epoch_seconds", "match_group"]

#: ``COPY_TICKS_*`` flags → the tick flags a returned tick must share (0: all ticks).
COPY_MASKS: Final[dict[int, int]] = {
    c.COPY_TICKS_ALL: 0,
    c.COPY_TICKS_INFO: c.TICK_FLAG_BID | c.TICK_FLAG_ASK,
    c.COPY_TICKS_TRADE: c.TICK_FLAG_LAST | c.TICK_FLAG_VOLUME,
}

#: Every ``SymbolInfo`` field at its type's zero; the simulation fills in what it knows.
SYMBOL_INFO_ZERO: Final[dict[str, Any]] = {
    name: kind() for name, kind in get_type_hints(SymbolInfo).items()
}


def epoch_seconds(value: object) -> int | None:
    """Whole epoch seconds of a date argument, or None if it is not one.

    The real terminal works at second resolution here: fractions are truncated. The
    number is read on the *server's* clock (a terminal stamps and looks up ticks in its
    server time); naive datetimes are taken as that clock's reading, aware ones by their
    epoch value, as the MetaTrader5 package converts them.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        seconds: float = aware.timestamp()
    elif isinstance(value, int | np.integer):
        return int(value) if value >= 0 else None
    elif isinstance(value, float | np.floating):
        seconds = float(value)
    else:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return math.floor(seconds)


def match_group(names: tuple[str, ...], group: str) -> list[str]:
    """MT5 group syntax: comma-separated ``*`` masks, ``!`` excludes; inclusions first.

    A group of exclusions only selects nothing, as inclusions are applied first.
    Matching is case-insensitive, as symbol names are in the terminal.
    """
    include: list[str] = []
    exclude: list[str] = []
    for raw in group.split(","):
        mask = raw.strip().upper()
        if not mask:
            continue
        if mask.startswith("!"):
            exclude.append(mask[1:])
        else:
            include.append(mask)

    def hit(name: str, masks: list[str]) -> bool:
        return any(_mask_regex(m).fullmatch(name.upper()) for m in masks)

    return [n for n in names if hit(n, include) and not hit(n, exclude)]


@functools.lru_cache(maxsize=256)
def _mask_regex(mask: str) -> re.Pattern[str]:
    """Only ``*`` is a wildcard in MT5 masks; everything else is literal."""
    return re.compile(".*".join(re.escape(part) for part in mask.split("*")))
