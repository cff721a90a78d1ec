"""Timeframes and where their bars begin, in server time as MetaTrader draws them.

MT5 cuts bars by the *server's* clock: an H4 bar opens at server 00:00, 04:00, …, a D1
bar at server midnight, a W1 bar on Sunday 00:00 server time (``iTime(…, PERIOD_W1, …)``
is a Sunday), an MN1 bar on the 1st of the month at 00:00. The project keeps UTC inside
(docs/time.md), so a bar's open is that server-time boundary *converted to UTC*: with a
ny-close server an H4 bar opens at 22:00, 02:00, … UTC in winter and 21:00, 01:00, … in
summer, and a D1 bar that holds a daylight-saving switch lasts 23 or 25 hours in UTC.

Timeframes are named by milliseconds, the unit of the collector's bars. W1 and MN1 are
calendar periods: their numbers (7 days, a nominal 30 days) only name them.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from app.servertime import ServerTimeZone

__all__ = [
    "D1",
    "MN1",
    "TIMEFRAMES",
    "W1",
    "bar_starts_utc_ms",
    "is_calendar",
    "next_start_server_ms",
    "period_starts_server_ms",
    "timeframe_ms",
]

I64 = npt.NDArray[np.int64]

_MIN: Final = 60_000
_DAY: Final = 86_400_000
D1: Final = _DAY
W1: Final = 7 * _DAY
#: A calendar month; the number only names it (no month is 30 days by rule).
MN1: Final = 30 * _DAY
#: 1970-01-01 was a Thursday: Sunday 00:00 is 3 days after a multiple of a week.
_SUNDAY_SHIFT: Final = 3 * _DAY
_HOUR: Final = 60 * _MIN
#: Every server offset is a whole quarter hour (app.servertime), so bars this long or
#: shorter start at the same instants in UTC as in any server time.
_ZONE_FREE: Final = 15 * _MIN

#: Timeframes the exports and the collector offer, as MT5 names them.
TIMEFRAMES: Final[dict[str, int]] = {
    "M1": _MIN,
    "M5": 5 * _MIN,
    "M15": 15 * _MIN,
    "M30": 30 * _MIN,
    "H1": 60 * _MIN,
    "H4": 240 * _MIN,
    "D1": D1,
    "W1": W1,
    "MN1": MN1,
}


def timeframe_ms(name: str) -> int:
    """Milliseconds of a timeframe name (``"M5"``); ValueError names the valid ones."""
    try:
        return TIMEFRAMES[name.upper()]
    except KeyError:
        raise ValueError(f"unknown timeframe {name!r}; one of {', '.join(TIMEFRAMES)}") from None


def is_calendar(tf_ms: int) -> bool:
    """W1 and MN1: periods that are not multiples of a fixed length from the epoch."""
    return tf_ms in (W1, MN1)


def period_starts_server_ms(server_ms: I64, tf_ms: int) -> I64:
    """The start of each stamp's bar, both in server time (floored, also before 1970)."""
    server_ms = np.asarray(server_ms, dtype=np.int64)
    if tf_ms == W1:
        return server_ms - np.mod(server_ms - _SUNDAY_SHIFT, W1)
    if tf_ms == MN1:
        months = server_ms.astype("datetime64[ms]").astype("datetime64[M]")
        starts: I64 = months.astype("datetime64[ms]").astype(np.int64)
        return starts
    return server_ms - np.mod(server_ms, tf_ms)


def next_start_server_ms(start_server_ms: int, tf_ms: int) -> int:
    """The server-time start of the bar after the one starting at ``start_server_ms``."""
    if tf_ms == MN1:
        month = np.datetime64(start_server_ms, "ms").astype("datetime64[M]") + 1
        return int(month.astype("datetime64[ms]").astype(np.int64))
    return start_server_ms + tf_ms


def bar_starts_utc_ms(utc_ms: I64, tf_ms: int, zone: ServerTimeZone) -> I64:
    """The UTC open of each tick's bar: the server-time boundary converted back to UTC.

    Bars of 15 minutes or less are the plain UTC floor (every offset is a whole quarter
    hour). Bars up to an hour are floored by each tick's own offset (no switch falls
    inside one, and the autumn hour's two passes stay two bars, as UTC has them). Longer
    ones go through the zone: the few distinct server boundaries are converted once
    each, in order, so a boundary in an autumn hour is read as its earlier pass (the
    bar opens when the server's clock first showed it, and holds both passes).
    """
    utc_ms = np.asarray(utc_ms, dtype=np.int64)
    if (tf_ms <= _ZONE_FREE and _ZONE_FREE % tf_ms == 0) or not len(utc_ms):
        return utc_ms - np.mod(utc_ms, tf_ms)
    if tf_ms <= _HOUR:
        if zone.is_fixed():
            return utc_ms - np.mod(utc_ms + zone.offset_s(0) * 1000, tf_ms)
        return utc_ms - np.mod(zone.to_server_ms(utc_ms), tf_ms)
    server = period_starts_server_ms(zone.to_server_ms(utc_ms), tf_ms)
    uniq, back = np.unique(server, return_inverse=True)
    result: I64 = zone.to_utc_ms(uniq)[back]
    return result


def bar_end_utc_ms(start_utc_ms: int, tf_ms: int, zone: ServerTimeZone) -> int:
    """UTC instant at which the bar opened at ``start_utc_ms`` ends (the next one opens)."""
    start_server = int(zone.to_server_ms(np.array([start_utc_ms], np.int64))[0])
    nxt = next_start_server_ms(start_server, tf_ms)
    return int(zone.to_utc_ms(np.array([nxt], np.int64))[0])
