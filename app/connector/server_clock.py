"""The terminal seen in UTC: where the connector crosses from server time to UTC.

A terminal stamps ticks in its trade server's time (``app/servertime.py``; most brokers
run at GMT+2/+3) and reads the dates it is asked for on that clock. Everything after the
worker is UTC (docs/time.md), so the two users of a terminal's history, the live worker
(:mod:`app.connector.worker`) and the history backfill (:mod:`app.connector.backfill`),
both call it through :class:`UtcTerminal`: dates asked for go UTC → server, answers come
back server → UTC (``time_msc`` through :meth:`ServerTimeZone.to_utc_ms`, which reads the
autumn hour by the jump back; ``time`` = ``time_msc // 1000``). Nothing else converts.

**Detecting a real terminal's zone.** A real terminal does not say its server's offset.
The one sound evidence is a tick that is known to be fresh: its server stamp minus the
UTC clock is the offset, up to the tick's age. The age cannot be read from the stamp
without knowing the offset, so :class:`OffsetDetector` takes freshness from observation
instead: it looks at every symbol's ``symbol_info_tick`` now and then, and a symbol whose
last tick *changed* since the previous look (at most :data:`MAX_LOOK_GAP_MS` ago) has a
tick that arrived after that look. That stamp minus the clock, rounded to 15 minutes
(:func:`~app.servertime.detect_offset_s`), is the offset; the remainder must be within
:data:`MAX_AGE_MS` (a sanity check against a terminal that replays old ticks). With
nothing changing (a quiet or closed market) there is no sample, and nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, cast

import numpy as np

from app.servertime import (
    NY_CLOSE,
    ServerTimeZone,
    detect_offset_s,
    format_offset,
    parse_server_time_zone,
)
from app.terminal.api import MT5Api, MT5TradeApi, RatesArray
from app.ticks import TickArray

__all__ = [
    "MAX_AGE_MS",
    "MAX_LOOK_GAP_MS",
    "OffsetDetector",
    "UtcTerminal",
    "future_ms",
    "ticks_to_utc",
    "zone_for_offset",
]

#: A changed last tick proves freshness only if the previous look is this recent.
MAX_LOOK_GAP_MS: Final = 120_000
#: A fresh tick's stamp may differ from "clock + offset" by its age and the clocks' skew;
#: more than this and the sample is not trusted (the rounding itself allows 7.5 min).
MAX_AGE_MS: Final = 120_000


def zone_for_offset(offset_s: int, utc_s: float) -> ServerTimeZone:
    """The zone a detected offset most likely belongs to: ny-close when it agrees now.

    Most MT5 brokers run ny-close, and taking its rule (not just today's offset) makes a
    detected terminal cross the DST switches like a configured one: the autumn hour of a
    24/7 symbol is read by the jump back instead of an hour late. A broker that does not
    switch on the US dates shows as a disagreement at a re-check (or through the future
    guard) and becomes a fixed offset: a wrong rule costs a minute of waiting, never a
    tick (ticks read an hour early are older than the cursor and fetched again).
    """
    if NY_CLOSE.offset_s(utc_s) == offset_s:
        return NY_CLOSE
    return parse_server_time_zone(format_offset(offset_s))  # e.g. "+03:00"


def ticks_to_utc(ticks: TickArray, zone: ServerTimeZone) -> TickArray:
    """An answer of the terminal (server time, in true order) with UTC stamps.

    In place when the array may be written (the module's answers are fresh arrays);
    ``time`` follows ``time_msc`` so that the two never disagree.
    """
    if zone.is_fixed() and zone.offset_s(0) == 0:
        return ticks
    if not ticks.flags.writeable:
        ticks = ticks.copy()
    utc = zone.to_utc_ms(ticks["time_msc"])
    ticks["time_msc"] = utc
    ticks["time"] = utc // 1000
    return ticks


class UtcTerminal:
    """A terminal API whose dates and tick times are UTC; see the module doc.

    ``zone`` is ``None`` while a real terminal's zone is not known yet: the tick calls
    refuse then (``RuntimeError``), since an answer read with a wrong offset would move a
    capture cursor by hours (a hole, or ticks stamped in the future).
    """

    def __init__(self, api: MT5Api, zone: ServerTimeZone | None) -> None:
        self.api = api
        self.zone = zone

    def _zone(self) -> ServerTimeZone:
        if self.zone is None:
            raise RuntimeError("the server time zone is not known yet")
        return self.zone

    def copy_ticks_from(
        self, symbol: str, from_utc_s: int, count: int, flags: int
    ) -> TickArray | None:
        """``copy_ticks_from`` from a UTC second; ``None`` as the module's (last_error)."""
        zone = self._zone()
        ticks = self.api.copy_ticks_from(symbol, zone.to_server_s(from_utc_s), count, flags)
        return None if ticks is None else ticks_to_utc(ticks, zone)

    def copy_ticks_range(
        self, symbol: str, from_utc_s: int, to_utc_s: int, flags: int
    ) -> TickArray | None:
        """``copy_ticks_range`` between UTC seconds (``to`` inclusive, as the module's).

        Around the autumn hour the terminal may answer more than asked (its reading of
        an ambiguous date); callers cut answers by time anyway.
        """
        zone = self._zone()
        ticks = self.api.copy_ticks_range(
            symbol, zone.to_server_s(from_utc_s), zone.to_server_s(to_utc_s), flags
        )
        return None if ticks is None else ticks_to_utc(ticks, zone)

    def copy_rates_from(
        self, symbol: str, timeframe: int, before_utc_s: int, count: int
    ) -> RatesArray | None:
        """``copy_rates_from``: the ``count`` bars opening at or before a UTC second, with
        ``time`` in UTC seconds (each bar's server-time open read in the zone; in the
        autumn hour as the earlier pass, where H4 and longer bars open)."""
        zone = self._zone()
        api = cast(MT5TradeApi, self.api)  # the module and our terminals have the rates calls
        rates = api.copy_rates_from(symbol, timeframe, zone.to_server_s(before_utc_s), count)
        if rates is None or not len(rates):
            return rates
        rates["time"] = zone.to_utc_ms(rates["time"].astype(np.int64) * 1000) // 1000
        return rates

    def last_stamps(self, symbols: Iterable[str]) -> dict[str, int]:
        """Server ``time_msc`` of each symbol's last tick (symbols without one left out)."""
        out: dict[str, int] = {}
        for symbol in symbols:
            tick = self.api.symbol_info_tick(symbol)
            if tick is not None and tick.time_msc > 0:
                out[symbol] = int(tick.time_msc)
        return out


class OffsetDetector:
    """Sans-I/O: server offsets from looks at the symbols' last ticks; see the module doc."""

    def __init__(self) -> None:
        self._previous: dict[str, int] = {}
        self._previous_at: int | None = None

    def observe(self, stamps: Mapping[str, int], utc_now_ms: int) -> int | None:
        """One look (``UtcTerminal.last_stamps`` at ``utc_now_ms``): the offset in seconds
        when some symbol's last tick changed since the previous look, else None."""
        previous, previous_at = self._previous, self._previous_at
        self._previous, self._previous_at = dict(stamps), utc_now_ms
        if previous_at is None or utc_now_ms - previous_at > MAX_LOOK_GAP_MS:
            return None
        fresh = [ms for sym, ms in stamps.items() if sym in previous and previous[sym] != ms]
        if not fresh:
            return None
        newest = max(fresh)
        offset = detect_offset_s(newest, utc_now_ms)
        age = utc_now_ms - (newest - offset * 1000)
        if abs(age) > MAX_AGE_MS:
            return None
        return offset


def future_ms(ticks: TickArray, utc_now_ms: int) -> int:
    """How far the newest tick of a UTC answer lies ahead of the clock (0 if not)."""
    if not len(ticks):
        return 0
    return max(0, int(np.max(ticks["time_msc"])) - utc_now_ms)
